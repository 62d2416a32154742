"""Typed rows: one ``TypedDict`` per table of :mod:`tams_analytics.schema`, as ``Catalog.records`` and ``row``
return them and the write rules build them. A row read with ``columns=`` holds only those keys, so every key is
optional to the type checker (``total=False``); ``tests/test_rows.py`` keeps each in step with its schema.
"""

from __future__ import annotations

import datetime as dt
from typing import Final, Generic, TypedDict, TypeVar

__all__ = [
    "TABLES",
    "CollectionRow",
    "DeleteRequestRow",
    "FlowRow",
    "InstanceRow",
    "LeaseRow",
    "ObjectDeletionRow",
    "ObjectRow",
    "ProfileRow",
    "SegmentRow",
    "ServiceRow",
    "SourceRow",
    "StorageBackendRow",
    "Table",
    "TagRow",
    "WebhookEventRow",
    "WebhookRow",
]


class SourceRow(TypedDict, total=False):
    id: str
    format: str
    label: str | None
    description: str | None
    created_by: str | None
    updated_by: str | None
    created: dt.datetime | None
    updated: dt.datetime | None


class FlowRow(TypedDict, total=False):
    id: str
    source_id: str
    format: str
    codec: str | None
    container: str | None
    label: str | None
    description: str | None
    created_by: str | None
    updated_by: str | None
    created: dt.datetime | None
    metadata_updated: dt.datetime | None
    segments_updated: dt.datetime | None
    metadata_version: str | None
    generation: int | None
    read_only: bool | None
    status: str | None
    max_bit_rate: int | None
    avg_bit_rate: int | None
    profile_id: str | None
    frame_width: int | None
    frame_height: int | None
    sample_rate: int | None
    init_segments: bool | None
    #: JSON text of the rest of the flow document
    doc: str | None


class SegmentRow(TypedDict, total=False):
    flow_id: str
    object_id: str
    timerange: str
    start_ns: int
    end_ns: int
    ts_offset: int | None
    last_duration: int | None
    object_timerange: str | None
    sample_offset: int | None
    sample_count: int | None
    key_frame_count: int | None
    init_object_id: str | None
    created: dt.datetime | None


class ObjectRow(TypedDict, total=False):
    id: str
    allocated_flow_id: str | None
    first_referenced_by_flow: str | None
    registered: bool | None
    is_init: bool | None
    timerange: str | None
    start_ns: int | None
    end_ns: int | None
    key_frame_count: int | None
    init_object_id: str | None
    content_type: str | None
    size_bytes: int | None
    created: dt.datetime | None
    unreferenced_since: dt.datetime | None


class InstanceRow(TypedDict, total=False):
    object_id: str
    storage_id: str | None
    storage_key: str | None
    url: str | None
    label: str | None
    controlled: bool | None
    position: int | None
    created: dt.datetime | None


class TagRow(TypedDict, total=False):
    entity_type: str
    entity_id: str
    name: str
    value: str
    is_array: bool
    position: int


class CollectionRow(TypedDict, total=False):
    flow_id: str
    member_id: str
    position: int
    role: str | None
    container_mapping: str | None


class WebhookRow(TypedDict, total=False):
    id: str
    url: str
    status: str | None
    api_key_name: str | None
    api_key_value: str | None
    doc: str | None
    error: str | None
    created: dt.datetime | None
    created_by: str | None


class DeleteRequestRow(TypedDict, total=False):
    id: str
    flow_id: str
    timerange_to_delete: str
    timerange_remaining: str | None
    object_id: str | None
    delete_flow: bool
    status: str
    created: dt.datetime | None
    created_by: str | None
    updated: dt.datetime | None
    expiry: dt.datetime | None
    error: str | None


class StorageBackendRow(TypedDict, total=False):
    id: str
    store_type: str
    provider: str
    store_product: str
    label: str | None
    region: str | None
    availability_zone: str | None
    default_storage: bool | None


class ProfileRow(TypedDict, total=False):
    id: str
    label: str | None
    format: str | None
    codec: str | None
    doc: str | None


class ServiceRow(TypedDict, total=False):
    key: str
    value: str | None


class LeaseRow(TypedDict, total=False):
    name: str
    holder: str | None
    expires: dt.datetime | None
    acquired: dt.datetime | None


class WebhookEventRow(TypedDict, total=False):
    id: str
    webhook_id: str
    event_type: str
    created: dt.datetime | None
    seq: int | None
    event: str | None
    attempts: int | None
    next_attempt: dt.datetime | None
    last_error: str | None


class ObjectDeletionRow(TypedDict, total=False):
    storage_id: str
    storage_key: str
    object_id: str | None
    forgotten_at: dt.datetime | None
    due_at: dt.datetime | None
    attempts: int | None
    last_error: str | None
    next_attempt_at: dt.datetime | None


Row = TypeVar("Row")


class Table(Generic[Row]):
    """A table's name that carries its row type: ``catalog.records(TABLES.segments, ...)`` is a
    ``list[SegmentRow]`` to the type checker (a plain name gives plain dicts)."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"Table({self.name!r})"


class _Tables:
    """The tables, each a :class:`Table` of its row type."""

    sources: Final = Table[SourceRow]("sources")
    flows: Final = Table[FlowRow]("flows")
    segments: Final = Table[SegmentRow]("segments")
    objects: Final = Table[ObjectRow]("objects")
    object_instances: Final = Table[InstanceRow]("object_instances")
    tags: Final = Table[TagRow]("tags")
    collections: Final = Table[CollectionRow]("collections")
    webhooks: Final = Table[WebhookRow]("webhooks")
    delete_requests: Final = Table[DeleteRequestRow]("delete_requests")
    storage_backends: Final = Table[StorageBackendRow]("storage_backends")
    profiles: Final = Table[ProfileRow]("profiles")
    service: Final = Table[ServiceRow]("service")
    leases: Final = Table[LeaseRow]("leases")
    webhook_events: Final = Table[WebhookEventRow]("webhook_events")
    object_deletions: Final = Table[ObjectDeletionRow]("object_deletions")


#: every table, typed (``TABLES.segments``)
TABLES: Final = _Tables()

#: the row type of each table
ROW_TYPES: dict[str, type] = {
    "sources": SourceRow,
    "flows": FlowRow,
    "segments": SegmentRow,
    "objects": ObjectRow,
    "object_instances": InstanceRow,
    "tags": TagRow,
    "collections": CollectionRow,
    "webhooks": WebhookRow,
    "delete_requests": DeleteRequestRow,
    "storage_backends": StorageBackendRow,
    "profiles": ProfileRow,
    "service": ServiceRow,
    "leases": LeaseRow,
    "webhook_events": WebhookEventRow,
    "object_deletions": ObjectDeletionRow,
}
