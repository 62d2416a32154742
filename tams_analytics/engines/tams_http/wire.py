"""TAMS API documents -> rows of :mod:`tams_analytics.schema`, with the library's own wire conversions.

Flows go through :func:`~tams_analytics.codec.flows.flow_to_row` and segments through
:func:`~tams_analytics.codec.segments.segments_table` (timerange text and int64-ns bounds), exactly as a server
stores what it is sent; tags become rows with :func:`~tams_analytics.codec.tags.tag_rows`.

What the API does not expose is null: ``segments.created`` and ``segments.object_timerange`` (a segment
listing reports the *object's* timerange there, which is ``objects.timerange``), and objects' and
instances' bookkeeping (``size_bytes``, ``content_type``, ``created``, ``allocated_flow_id``,
``unreferenced_since``, ``storage_key``). Objects are those that segments reference (the API lists no
others), so ``registered`` is true and ``unreferenced_since`` null for every one of them; their
``first_referenced_by_flow`` is known only when an object is read by id (its own document has it).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

import pyarrow as pa

from tams_analytics.codec.flows import flow_to_row
from tams_analytics.codec.segments import segments_table
from tams_analytics.codec.tags import tag_rows
from tams_analytics.exceptions import TamsError
from tams_analytics.schema import SCHEMAS, TagEntity
from tams_analytics.timerange import TimeRange

__all__ = [
    "UNAVAILABLE",
    "collection_rows",
    "flow_rows",
    "instance_rows",
    "instances_of_segments",
    "object_rows",
    "objects_of_segments",
    "segment_rows",
    "source_rows",
    "storage_backend_rows",
    "table_of",
    "tag_rows_of",
]

#: ``table.column`` that the TAMS API never exposes (always null through this engine)
UNAVAILABLE: Final = frozenset(
    {
        "segments.created",
        "segments.object_timerange",
        "objects.allocated_flow_id",
        "objects.content_type",
        "objects.size_bytes",
        "objects.created",
        "objects.unreferenced_since",
        "object_instances.storage_key",
        "object_instances.created",
    }
)
_DATETIMES: Final = ("created", "updated", "metadata_updated", "segments_updated")


def _datetime(value: Any) -> dt.datetime | None:
    """An RFC 3339 ``date-time`` as an aware UTC datetime (None when absent or not a date-time)."""
    if not isinstance(value, str):
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)).astimezone(dt.UTC)


def table_of(name: str, rows: Iterable[Mapping[str, Any]]) -> pa.Table:
    """``rows`` (dicts) as a table of ``name``'s schema: missing columns null, others dropped."""
    schema = pa.schema([f.with_nullable(True) for f in SCHEMAS[name]])
    return pa.Table.from_pylist([{k: r.get(k) for k in schema.names} for r in rows], schema=schema)


def source_rows(docs: Sequence[Mapping[str, Any]]) -> pa.Table:
    out = []
    for d in docs:
        row = {k: d.get(k) for k in SCHEMAS["sources"].names}
        out.append(row | {k: _datetime(d.get(k)) for k in _DATETIMES if k in row})
    return table_of("sources", out)


def flow_rows(docs: Sequence[Mapping[str, Any]]) -> pa.Table:
    out = []
    for d in docs:
        row = flow_to_row(d)
        out.append(row | {k: _datetime(d.get(k)) for k in ("created", "metadata_updated", "segments_updated")})
    return table_of("flows", out)


def tag_rows_of(entity_type: str, docs: Sequence[Mapping[str, Any]]) -> list[dict[str, object]]:
    return [r for d in docs for r in tag_rows(entity_type, d["id"], d.get("tags") or {})]


def collection_rows(docs: Sequence[Mapping[str, Any]]) -> pa.Table:
    out = []
    for d in docs:
        for position, item in enumerate(d.get("flow_collection") or ()):
            mapping = item.get("container_mapping")
            out.append(
                {
                    "flow_id": d["id"],
                    "member_id": item["id"],
                    "position": position,
                    "role": item.get("role"),
                    "container_mapping": None if mapping is None else json.dumps(mapping, separators=(",", ":")),
                }
            )
    return table_of("collections", out)


def segment_rows(flow_id: str, docs: Sequence[Mapping[str, Any]]) -> pa.Table:
    """One flow's ``flow-segment.json`` documents as ``segments`` rows."""
    items = []
    for d in docs:
        item = {k: v for k, v in d.items() if k not in ("init_object", "get_urls", "object_timerange")}
        init = d.get("init_object")
        if isinstance(init, Mapping) and init.get("object_id"):
            item["init_object_id"] = init["object_id"]
        items.append(item)
    table, failed = segments_table(items)
    if failed:
        raise TamsError(f"flow {flow_id}: the server listed a segment that does not parse ({failed[0].reason})")
    table = table.drop_columns(["index"])
    flows = pa.array([flow_id] * table.num_rows, pa.string())
    return table.set_column(table.schema.get_field_index("flow_id"), "flow_id", flows)


def _bounds(timerange: str | None) -> tuple[str | None, int | None, int | None]:
    if timerange is None:
        return None, None, None
    tr = TimeRange.from_str(timerange)
    lo, hi = tr.storage_bounds()
    return str(tr), lo, hi


def objects_of_segments(docs: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The objects ``flow-segment.json`` documents reference (media and init), first mention first; their
    ``object_timerange`` (listed with ``include_object_timerange=true``) is the object's timerange."""
    seen: dict[str, dict[str, Any]] = {}
    for d in docs:
        init = d.get("init_object") if isinstance(d.get("init_object"), Mapping) else None
        init_id = init.get("object_id") if init else None
        if d["object_id"] not in seen:
            tr, lo, hi = _bounds(d.get("object_timerange"))
            seen[d["object_id"]] = {
                "id": d["object_id"],
                "registered": True,
                "is_init": False,
                "timerange": tr,
                "start_ns": lo,
                "end_ns": hi,
                "key_frame_count": d.get("key_frame_count"),
                "init_object_id": init_id,
            }
        if init_id and init_id not in seen:
            seen[init_id] = {"id": init_id, "registered": True, "is_init": True}
    return list(seen.values())


def object_rows(docs: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """``object.json`` documents as ``objects`` rows (an init object has no ``timerange``)."""
    out = []
    for d in docs:
        tr, lo, hi = _bounds(d.get("timerange"))
        init = d.get("init_object") if isinstance(d.get("init_object"), Mapping) else None
        out.append(
            {
                "id": d["id"],
                "first_referenced_by_flow": d.get("first_referenced_by_flow"),
                "registered": True,
                "is_init": tr is None,
                "timerange": tr,
                "start_ns": lo,
                "end_ns": hi,
                "key_frame_count": d.get("key_frame_count"),
                "init_object_id": init.get("id") if init else None,
            }
        )
    return out


def instance_rows(docs: Sequence[Mapping[str, Any]]) -> pa.Table:
    """The ``get_urls`` of ``object.json`` documents (read with ``verbose_storage=true``) as
    ``object_instances`` rows, in preference order. A controlled instance's URL is minted for the reader,
    not a property of the instance: it is left out (``storage_id`` names the backend)."""
    out = []
    for d in docs:
        for position, u in enumerate(d.get("get_urls") or ()):
            controlled = bool(u.get("controlled", True))
            out.append(
                {
                    "object_id": d["id"],
                    "storage_id": u.get("storage_id"),
                    "url": None if controlled else u.get("url"),
                    "label": u.get("label"),
                    "controlled": controlled,
                    "position": position,
                }
            )
    return table_of("object_instances", out)


def instances_of_segments(docs: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The objects ``flow-segment.json`` documents (listed with ``verbose_storage=true``) reference, media
    and init, as ``{"id", "get_urls"}``, first mention first: what :func:`instance_rows` reads. An object's
    ``get_urls`` are its own wherever it is listed (ADR 0038), so a segment listing gives every instance of
    a flow's objects in a request per page instead of one per object."""
    seen: dict[str, dict[str, Any]] = {}
    for d in docs:
        init = d.get("init_object") if isinstance(d.get("init_object"), Mapping) else None
        for oid, urls in (
            (d["object_id"], d.get("get_urls")),
            (init and init.get("object_id"), init and init.get("get_urls")),
        ):
            if oid and oid not in seen:
                seen[oid] = {"id": oid, "get_urls": urls or []}
    return list(seen.values())


def storage_backend_rows(docs: Sequence[Mapping[str, Any]]) -> tuple[pa.Table, list[dict[str, object]]]:
    """``storage-backends-list.json`` items as rows, and their tags as ``tags`` rows."""
    table = table_of("storage_backends", [dict(d) for d in docs])
    return table, tag_rows_of(TagEntity.STORAGE_BACKEND, docs)
