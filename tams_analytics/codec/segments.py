"""Flow segments: ``flow-segment.json`` / ``flow-segment-post.json`` documents <-> ``segments`` rows.

Documents become rows with int64-ns bounds beside the canonical timerange text (:func:`segments_table`,
:func:`segment_rows`: what the catalog registers, and what the ``tams+http`` engine reads a server's listings
into), and rows become documents again (:func:`segment_doc`, :func:`segment_docs`: what the server's pages and
webhook notifications send). The segment's fields are named once, here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, TypedDict

import pyarrow as pa

from tams_analytics.exceptions import TamsError
from tams_analytics.rows import SegmentRow
from tams_analytics.schema import SEGMENTS
from tams_analytics.timerange import TimeRange, Timestamp

__all__ = [
    "SEGMENT_ROWS",
    "WIRE_COLUMNS",
    "Failure",
    "GetUrls",
    "InitObject",
    "SegmentDoc",
    "segment_doc",
    "segment_docs",
    "segment_rows",
    "segments_table",
]

#: Segment fields that are timestamps on the wire and int64 ns in the table.
_NS_FIELDS: Final = ("ts_offset", "last_duration")
_INT_FIELDS: Final = ("sample_offset", "sample_count", "key_frame_count")


@dataclass(frozen=True)
class Failure:
    """One segment that was not registered, and why."""

    index: int
    object_id: str | None
    timerange: str | None
    reason: str


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
    tr = TimeRange.from_str(item.get("timerange"))
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


#: the ``segments`` columns rendering reads (and ``start_ns``, the paging key): pages convert only these
WIRE_COLUMNS = ("object_id", "timerange", "start_ns", *_NS_FIELDS, "object_timerange", *_INT_FIELDS, "init_object_id")

#: ``get_urls`` items (``flow-segment.json``: ``url``, ``label``, ``presigned``, ``controlled``, storage details)
GetUrls = list[dict[str, Any]]


class InitObject(TypedDict, total=False):
    object_id: str
    get_urls: GetUrls


class SegmentDoc(TypedDict, total=False):
    """``flow-segment.json``."""

    object_id: str
    timerange: str
    ts_offset: str
    last_duration: str
    object_timerange: str
    sample_offset: int
    sample_count: int
    key_frame_count: int
    get_urls: GetUrls
    init_object: InitObject


def segment_doc(
    row: SegmentRow,
    *,
    get_urls: GetUrls | None = None,
    init_get_urls: GetUrls | None = None,
    object_timerange: str | None = None,
) -> SegmentDoc:
    """One ``segments`` row as ``flow-segment.json``; ``get_urls`` lists are left out when None."""
    out = SegmentDoc(object_id=row["object_id"], timerange=row["timerange"])
    if (ts_offset := row.get("ts_offset")) is not None:
        out["ts_offset"] = str(Timestamp(ts_offset))
    if (last_duration := row.get("last_duration")) is not None:
        out["last_duration"] = str(Timestamp(last_duration))
    if (sample_offset := row.get("sample_offset")) is not None:
        out["sample_offset"] = sample_offset
    if (sample_count := row.get("sample_count")) is not None:
        out["sample_count"] = sample_count
    if (key_frame_count := row.get("key_frame_count")) is not None:
        out["key_frame_count"] = key_frame_count
    if object_timerange is not None:
        out["object_timerange"] = object_timerange
    if get_urls is not None:
        out["get_urls"] = get_urls
    if init_id := row.get("init_object_id"):
        init = InitObject(object_id=init_id)
        if init_get_urls is not None:
            init["get_urls"] = init_get_urls
        out["init_object"] = init
    return out


def segment_docs(
    rows: Sequence[SegmentRow],
    urls: Mapping[str, GetUrls | None],
    object_timeranges: Mapping[str, str | None] | None = None,
) -> list[SegmentDoc]:
    """Segment rows as wire documents, with their objects' ``get_urls`` (``urls``, by object id: fetched before,
    as the reader's options say) and, when ``object_timeranges`` is given, each object's timerange
    (``include_object_timerange``). Pure: everything it needs is fetched before."""
    out = []
    for r in rows:
        init_id = r.get("init_object_id")
        out.append(
            segment_doc(
                r,
                get_urls=urls.get(r["object_id"]),
                init_get_urls=urls.get(init_id) if init_id else None,
                object_timerange=None if object_timeranges is None else _object_timerange(r, object_timeranges),
            )
        )
    return out


def _object_timerange(row: SegmentRow, object_trs: Mapping[str, str | None]) -> str:
    """The object's timerange; for an object without one, what the segment implies (timerange - ts_offset)."""
    stored = object_trs.get(row["object_id"]) or row.get("object_timerange")
    if stored:
        return stored
    return str(TimeRange.from_str(row["timerange"]).shift(-(row.get("ts_offset") or 0)))
