"""TAMS JSON documents <-> table rows: flow documents, ``flow-segment-post.json`` documents and tags.

The one place that knows both shapes on the library side: flows keep a few properties in their own
columns (for filters) and the rest of the document as JSON in ``doc``; segment documents become
``segments`` rows with int64-ns bounds beside the canonical timerange text; tags become ``tags`` rows.
The catalog writes what it is sent with these, and the ``tams+http`` engine reads what a server lists
with them (so it lives outside the catalog: engines never import the catalog).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import pyarrow as pa

from tams_analytics.exceptions import TamsError
from tams_analytics.schema import SEGMENTS
from tams_analytics.timerange import TimeRange, Timestamp

__all__ = [
    "EMPTY_ARRAY_POSITION",
    "FLOW_COLUMNS",
    "FLOW_PROPERTIES",
    "FLOW_SERVER_MANAGED",
    "SOURCE_PROPERTIES",
    "Failure",
    "TagValue",
    "dumps",
    "flow_to_row",
    "row_to_flow",
    "segment_rows",
    "segments_table",
    "tag_rows",
]

#: Flow properties kept in their own columns (the rest of the document is JSON in ``doc``).
FLOW_COLUMNS: Final = (
    "id",
    "source_id",
    "format",
    "codec",
    "container",
    "label",
    "description",
    "created_by",
    "updated_by",
    "metadata_version",
    "generation",
    "read_only",
    "status",
    "max_bit_rate",
    "avg_bit_rate",
    "profile_id",
)
#: Flow fields the service manages itself: ignored when a client sends them (flow-common.json, ADR 0003).
FLOW_SERVER_MANAGED: Final = frozenset({"created", "metadata_updated", "segments_updated", "collected_by", "timerange"})
#: Flow sub-resources a client may set or unset one at a time.
FLOW_PROPERTIES: Final = frozenset({"label", "description", "read_only", "max_bit_rate", "avg_bit_rate"})
SOURCE_PROPERTIES: Final = frozenset({"label", "description"})
_ESSENCE_COLUMNS: Final = ("frame_width", "frame_height", "sample_rate", "init_segments")

#: Segment fields that are timestamps on the wire and int64 ns in the table.
_NS_FIELDS: Final = ("ts_offset", "last_duration")
_INT_FIELDS: Final = ("sample_offset", "sample_count", "key_frame_count")


TagValue = str | list[str]
#: Position of the marker row that keeps an empty array tag (``[]``) alive; filters skip it.
EMPTY_ARRAY_POSITION = -1


@dataclass(frozen=True)
class Failure:
    """One segment that was not registered, and why."""

    index: int
    object_id: str | None
    timerange: str | None
    reason: str


def dumps(value: Any) -> str:
    """Compact, stable JSON text for document columns."""
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


# -- flows ---------------------------------------------------------------------------------------------------
def flow_to_row(flow: Mapping[str, Any]) -> dict[str, Any]:
    """Split a flow document into table columns plus the JSON ``doc`` of everything else."""
    row = {k: flow.get(k) for k in FLOW_COLUMNS}
    essence = flow.get("essence_parameters") or {}
    for k in _ESSENCE_COLUMNS:
        row[k] = essence.get(k)
    rest = {
        k: v
        for k, v in flow.items()
        if k not in FLOW_COLUMNS and k not in FLOW_SERVER_MANAGED and k not in ("tags", "flow_collection")
    }
    row["doc"] = dumps(rest)
    return row


def row_to_flow(row: Mapping[str, Any]) -> dict[str, Any]:
    """The flow document of a ``flows`` row (without tags, collections and timerange)."""
    flow: dict[str, Any] = {k: row[k] for k in FLOW_COLUMNS if row.get(k) is not None}
    flow.update(json.loads(row["doc"]) if row.get("doc") else {})
    for k in ("created", "metadata_updated", "segments_updated"):
        if row.get(k) is not None:
            flow[k] = row[k]
    return flow


# -- segments ------------------------------------------------------------------------------------------------
def segments_table(items: Sequence[Mapping[str, Any]]) -> tuple[pa.Table, list[Failure]]:
    """Convert wire segment documents into ``segments`` rows; items that do not parse become failures.

    The returned table has one row per parsed item and an ``index`` column naming its position in
    ``items``; ``get_urls`` (uncontrolled instances) stays in the documents.

    >>> table, failed = segments_table([{"object_id": "o", "timerange": "[0:0_1:0)"}, {"object_id": "p"}])
    >>> table.column("end_ns").to_pylist(), [f.index for f in failed]
    ([1000000000], [1])
    """
    rows, failures = segment_rows(items)
    return pa.Table.from_pylist(rows, schema=SEGMENT_ROWS), failures


#: the schema of :func:`segments_table`: an ``index`` column, then the ``segments`` columns (all nullable)
SEGMENT_ROWS: Final = pa.schema([pa.field("index", pa.int64()), *[f.with_nullable(True) for f in SEGMENTS]])


def segment_rows(items: Sequence[Mapping[str, Any]]) -> tuple[list[dict[str, Any]], list[Failure]]:
    """:func:`segments_table` as dicts (keys of :data:`SEGMENT_ROWS` that have a value)."""
    rows: list[dict[str, Any]] = []
    failures: list[Failure] = []
    for i, item in enumerate(items):
        try:
            rows.append(_segment_row(i, item))
        except (TamsError, TypeError, ValueError) as exc:
            tr = item.get("timerange") if isinstance(item, Mapping) else None
            oid = item.get("object_id") if isinstance(item, Mapping) else None
            failures.append(
                Failure(i, oid if isinstance(oid, str) else None, tr if isinstance(tr, str) else None, str(exc))
            )
    return rows, failures


def _segment_row(index: int, item: Mapping[str, Any]) -> dict[str, Any]:
    if not isinstance(item, Mapping):
        raise TamsError("a segment must be a JSON object")
    oid = item.get("object_id")
    if not isinstance(oid, str) or not oid:
        raise TamsError("object_id must be a non-empty string")
    tr = TimeRange.from_str(item.get("timerange"))  # type: ignore[arg-type]
    if tr.is_empty:
        raise TamsError(f"segment timerange {item.get('timerange')!r} is empty")
    if tr.start_ns is None or tr.end_ns is None:
        raise TamsError(f"segment timerange {item.get('timerange')!r} must be bounded")
    lo, hi = tr.storage_bounds()
    row: dict[str, Any] = {"index": index, "object_id": oid, "timerange": str(tr), "start_ns": lo, "end_ns": hi}
    for k in _NS_FIELDS:
        if item.get(k) is not None:
            row[k] = Timestamp.from_str(item[k]).ns
    if row.get("last_duration") is not None and row["last_duration"] < 0:
        raise TamsError("last_duration cannot be negative")
    if item.get("object_timerange") is not None:
        row["object_timerange"] = str(TimeRange.from_str(item["object_timerange"]))
    for k in _INT_FIELDS:
        if item.get(k) is not None:
            v = item[k]
            if isinstance(v, bool) or not isinstance(v, int):
                raise TamsError(f"{k} must be an integer")
            row[k] = v
    if item.get("init_object_id") is not None:
        if not isinstance(item["init_object_id"], str):
            raise TamsError("init_object_id must be a string")
        row["init_object_id"] = item["init_object_id"]
    return row


# -- tags ------------------------------------------------------------------------------------------------------
def tag_rows(entity_type: str, entity_id: str, tags: Mapping[str, TagValue]) -> list[dict[str, object]]:
    """Rows of the ``tags`` table for one entity's tags."""
    rows: list[dict[str, object]] = []
    for name, value in tags.items():
        if isinstance(value, str):
            rows.append(
                dict(
                    entity_type=entity_type,
                    entity_id=entity_id,
                    name=name,
                    value=value,
                    is_array=False,
                    position=0,
                )
            )
        elif not value:
            rows.append(
                dict(
                    entity_type=entity_type,
                    entity_id=entity_id,
                    name=name,
                    value="",
                    is_array=True,
                    position=EMPTY_ARRAY_POSITION,
                )
            )
        else:
            rows.extend(
                dict(
                    entity_type=entity_type,
                    entity_id=entity_id,
                    name=name,
                    value=v,
                    is_array=True,
                    position=i,
                )
                for i, v in enumerate(value)
            )
    return rows
