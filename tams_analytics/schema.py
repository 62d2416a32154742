"""The entity model: one pyarrow schema per table.

Every engine creates exactly these tables. Design rules:

* Timeranges are stored twice: canonical text (what the API returns, clusivity as written) and
  ``start_ns``/``end_ns`` int64 half-open bounds (what every query compares). Unbounded sides use the
  sentinels :data:`~tams_analytics.timerange.START_UNBOUNDED` / ``END_UNBOUNDED``.
* Timestamps that analysts compute with (``ts_offset``, ``last_duration``) are int64 nanoseconds.
* Tags are rows (``entity_type``, ``entity_id``, ``name``, ``value``), not JSON text, so a tag filter is a
  plain predicate every engine can run (and VAST can push down).
* Nested wire documents that are only ever returned whole (essence parameters, webhook filters) are JSON
  text beside the columns that queries filter on.
* Presigned URLs are never stored: object instances hold a storage key, and URLs are minted when read.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import pyarrow as pa

__all__ = ["PRIMARY_KEYS", "PROJECTIONS", "SCHEMAS", "SORT_KEYS", "TABLES", "Projection", "TagEntity"]

TS = pa.timestamp("us", tz="UTC")

SOURCES: Final = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("format", pa.string(), nullable=False),
        ("label", pa.string()),
        ("description", pa.string()),
        ("created_by", pa.string()),
        ("updated_by", pa.string()),
        ("created", TS),
        ("updated", TS),
    ]
)

FLOWS: Final = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("source_id", pa.string(), nullable=False),
        pa.field("format", pa.string(), nullable=False),
        ("codec", pa.string()),
        ("container", pa.string()),
        ("label", pa.string()),
        ("description", pa.string()),
        ("created_by", pa.string()),
        ("updated_by", pa.string()),
        ("created", TS),
        ("metadata_updated", TS),
        ("segments_updated", TS),
        ("metadata_version", pa.string()),
        ("generation", pa.int64()),
        ("read_only", pa.bool_()),
        ("status", pa.string()),
        ("max_bit_rate", pa.int64()),
        ("avg_bit_rate", pa.int64()),
        ("profile_id", pa.string()),
        # filterable essence parameters, copied out of `essence_parameters`
        ("frame_width", pa.int64()),
        ("frame_height", pa.int64()),
        ("sample_rate", pa.int64()),
        ("init_segments", pa.bool_()),
        # JSON text of the remaining flow document (essence_parameters, segment_duration, ...), as put
        ("doc", pa.string()),
    ]
)

SEGMENTS: Final = pa.schema(
    [
        pa.field("flow_id", pa.string(), nullable=False),
        pa.field("object_id", pa.string(), nullable=False),
        pa.field("timerange", pa.string(), nullable=False),
        pa.field("start_ns", pa.int64(), nullable=False),
        pa.field("end_ns", pa.int64(), nullable=False),
        ("ts_offset", pa.int64()),
        ("last_duration", pa.int64()),
        ("object_timerange", pa.string()),
        ("sample_offset", pa.int64()),
        ("sample_count", pa.int64()),
        ("key_frame_count", pa.int64()),
        ("init_object_id", pa.string()),
        ("created", TS),
    ]
)

OBJECTS: Final = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        # the flow the id was allocated for by POST /flows/{id}/storage (null for external objects)
        ("allocated_flow_id", pa.string()),
        ("first_referenced_by_flow", pa.string()),
        ("registered", pa.bool_()),
        ("is_init", pa.bool_()),
        ("timerange", pa.string()),
        ("start_ns", pa.int64()),
        ("end_ns", pa.int64()),
        ("key_frame_count", pa.int64()),
        ("init_object_id", pa.string()),
        ("content_type", pa.string()),
        ("size_bytes", pa.int64()),
        ("created", TS),
        # when no segment references the object any more (null while referenced); garbage collection
        # deletes it from storage after the service's min_object_timeout
        ("unreferenced_since", TS),
    ]
)

OBJECT_INSTANCES: Final = pa.schema(
    [
        pa.field("object_id", pa.string(), nullable=False),
        # controlled copies: a storage backend and a key in it (the URL is minted when read)
        ("storage_id", pa.string()),
        ("storage_key", pa.string()),
        # uncontrolled instances: a client-provided URL and label
        ("url", pa.string()),
        ("label", pa.string()),
        ("controlled", pa.bool_()),
        ("position", pa.int64()),
        ("created", TS),
    ]
)

TAGS: Final = pa.schema(
    [
        pa.field("entity_type", pa.string(), nullable=False),
        pa.field("entity_id", pa.string(), nullable=False),
        pa.field("name", pa.string(), nullable=False),
        pa.field("value", pa.string(), nullable=False),
        # False for a string tag; True for an array tag (one row per element, ordered by position)
        pa.field("is_array", pa.bool_(), nullable=False),
        pa.field("position", pa.int64(), nullable=False),
    ]
)

COLLECTIONS: Final = pa.schema(
    [
        pa.field("flow_id", pa.string(), nullable=False),
        pa.field("member_id", pa.string(), nullable=False),
        pa.field("position", pa.int64(), nullable=False),
        ("role", pa.string()),
        ("container_mapping", pa.string()),
    ]
)

WEBHOOKS: Final = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("url", pa.string(), nullable=False),
        ("status", pa.string()),
        ("api_key_name", pa.string()),
        # a secret: stored to send with deliveries, never returned by the API nor logged
        ("api_key_value", pa.string()),
        # JSON text: events and every filter/transformation option of webhook.json
        ("doc", pa.string()),
        ("error", pa.string()),
        ("created", TS),
        ("created_by", pa.string()),
    ]
)

DELETE_REQUESTS: Final = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("flow_id", pa.string(), nullable=False),
        pa.field("timerange_to_delete", pa.string(), nullable=False),
        ("timerange_remaining", pa.string()),
        ("object_id", pa.string()),
        pa.field("delete_flow", pa.bool_(), nullable=False),
        pa.field("status", pa.string(), nullable=False),
        ("created", TS),
        ("created_by", pa.string()),
        ("updated", TS),
        ("expiry", TS),
        ("error", pa.string()),
    ]
)

STORAGE_BACKENDS: Final = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("store_type", pa.string(), nullable=False),
        pa.field("provider", pa.string(), nullable=False),
        pa.field("store_product", pa.string(), nullable=False),
        ("label", pa.string()),
        ("region", pa.string()),
        ("availability_zone", pa.string()),
        ("default_storage", pa.bool_()),
    ]
)

PROFILES: Final = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        ("label", pa.string()),
        ("format", pa.string()),
        ("codec", pa.string()),
        ("doc", pa.string()),
    ]
)

SERVICE: Final = pa.schema([pa.field("key", pa.string(), nullable=False), pa.field("value", pa.string())])

#: who does a piece of background work (a flow delete request, a webhook's deliveries, object collection) until
#: when: several server processes sharing a store claim work here (``server.leases``)
LEASES: Final = pa.schema(
    [
        pa.field("name", pa.string(), nullable=False),
        # the server process holding it (null: free), and until when; a lease past ``expires`` is free
        ("holder", pa.string()),
        ("expires", TS),
        ("acquired", TS),
    ]
)

#: the webhook outbox: one row per event to deliver to one webhook, written with the change that causes it
#: and deleted once delivered (``server.webhooks.outbox``)
WEBHOOK_EVENTS: Final = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("webhook_id", pa.string(), nullable=False),
        pa.field("event_type", pa.string(), nullable=False),
        # delivery order per webhook: (created, seq); seq orders the events one write produced
        ("created", TS),
        ("seq", pa.int64()),
        # JSON text: the event body and what its rendering and the webhook filters need
        ("event", pa.string()),
        ("attempts", pa.int64()),
        ("next_attempt", TS),
        ("last_error", pa.string()),
    ]
)

#: the object deletion queue: the bytes of a controlled instance the catalog forgot (an object collected, an
#: instance removed), one row each, written in the transaction that forgets it; the server's deleter deletes the
#: bytes once ``due_at`` (forgotten + the grace period) has passed, then the row (``catalog.object_deletions``)
OBJECT_DELETIONS: Final = pa.schema(
    [
        pa.field("storage_id", pa.string(), nullable=False),
        pa.field("storage_key", pa.string(), nullable=False),
        ("object_id", pa.string()),
        ("forgotten_at", TS),
        ("due_at", TS),
        # attempts made (each claimed before it is made), the last failure, and when the next may be made
        ("attempts", pa.int64()),
        ("last_error", pa.string()),
        ("next_attempt_at", TS),
    ]
)

#: Table name -> schema. The order is creation order.
SCHEMAS: Final[dict[str, pa.Schema]] = {
    "sources": SOURCES,
    "flows": FLOWS,
    "segments": SEGMENTS,
    "objects": OBJECTS,
    "object_instances": OBJECT_INSTANCES,
    "tags": TAGS,
    "collections": COLLECTIONS,
    "webhooks": WEBHOOKS,
    "delete_requests": DELETE_REQUESTS,
    "storage_backends": STORAGE_BACKENDS,
    "profiles": PROFILES,
    "service": SERVICE,
    "leases": LEASES,
    "webhook_events": WEBHOOK_EVENTS,
    "object_deletions": OBJECT_DELETIONS,
}
TABLES: Final = tuple(SCHEMAS)

#: Columns that identify a row (unique in every engine; enforced by the catalog's writes).
PRIMARY_KEYS: Final[dict[str, tuple[str, ...]]] = {
    "sources": ("id",),
    "flows": ("id",),
    "segments": ("flow_id", "start_ns"),
    "objects": ("id",),
    "object_instances": ("object_id", "position"),
    "tags": ("entity_type", "entity_id", "name", "position"),
    "collections": ("flow_id", "position"),
    "webhooks": ("id",),
    "delete_requests": ("id",),
    "storage_backends": ("id",),
    "profiles": ("id",),
    "service": ("key",),
    "leases": ("name",),
    "webhook_events": ("id",),
    "object_deletions": ("storage_id", "storage_key"),
}

#: Physical sort/clustering order per table: engines that can (VAST sorting keys, DuckDB rewrites) keep
#: rows in this order so that one flow's window is a narrow range scan.
SORT_KEYS: Final[dict[str, tuple[str, ...]]] = {
    "segments": ("flow_id", "start_ns"),
    "tags": ("entity_type", "name", "value"),
    "object_instances": ("object_id",),
    "collections": ("flow_id",),
}


@dataclass(frozen=True)
class Projection:
    """A second copy of some columns of a table, kept by the store in another order (a VAST semi-sorted
    projection, ``Table.create_projection``): a read whose filter pins ``sorted_columns[0]`` and that needs
    no column outside the projection reads the matching range of it instead of the whole table."""

    name: str
    sorted_columns: tuple[str, ...]
    unsorted_columns: tuple[str, ...]
    #: the reads it serves, in words (``doctor`` says what its absence costs)
    serves: str

    @property
    def columns(self) -> tuple[str, ...]:
        return self.sorted_columns + self.unsorted_columns


#: Projections per table, on engines that have them (VAST); the sorting key of a table serves one order only,
#: and segments are sorted by flow. Each holds exactly the columns the lookups it serves read (a read needing a
#: column outside it reads the table).
PROJECTIONS: Final[dict[str, tuple[Projection, ...]]] = {
    "segments": (
        Projection(
            "segments_by_object",
            ("object_id",),
            ("flow_id",),
            "an object's referencing flows (GET /objects/{id}) and whether segments still reference objects "
            "(segment and flow deletion, garbage collection)",
        ),
        Projection(
            "segments_by_init_object",
            ("init_object_id",),
            ("flow_id", "created"),
            "the flows an init object serves (GET /objects/{id}) and whether segments still name objects as "
            "their init object (segment and flow deletion, garbage collection)",
        ),
    ),
    # every column: the reads by id take whole rows (objects have no sorting key, and ids are random uuids)
    "objects": (
        Projection(
            "objects_by_id",
            ("id",),
            tuple(n for n in OBJECTS.names if n != "id"),
            "objects by id (GET /objects/{id}, the object checks of every segment registration, allocation)",
        ),
    ),
}


class TagEntity:
    """Values of ``tags.entity_type``."""

    SOURCE: Final = "source"
    FLOW: Final = "flow"
    WEBHOOK: Final = "webhook"
    STORAGE_BACKEND: Final = "storage_backend"


def empty_table(name: str) -> pa.Table:
    """An empty Arrow table with the schema of ``name``."""
    return SCHEMAS[name].empty_table()
