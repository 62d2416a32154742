"""Segment rows -> ``flow-segment.json`` (routes and webhook deliveries render segments the same way), from what
:mod:`server.fetch` fetched: pure."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from tams_analytics.timerange import TimeRange, Timestamp

#: int64-ns columns that are Timestamps on the wire
_TS_FIELDS = ("ts_offset", "last_duration")
_INT_FIELDS = ("sample_offset", "sample_count", "key_frame_count")
#: the ``segments`` columns rendering reads (and ``start_ns``, the paging key): pages convert only these
WIRE_COLUMNS = ("object_id", "timerange", "start_ns", *_TS_FIELDS, "object_timerange", *_INT_FIELDS, "init_object_id")


def segment_wire(
    row: Mapping[str, Any],
    *,
    get_urls: list[dict[str, Any]] | None = None,
    init_get_urls: list[dict[str, Any]] | None = None,
    object_timerange: str | None = None,
) -> dict[str, Any]:
    """One ``segments`` row as ``flow-segment.json``; ``get_urls`` lists are left out when None."""
    out: dict[str, Any] = {"object_id": row["object_id"], "timerange": row["timerange"]}
    for k in _TS_FIELDS:
        if row.get(k) is not None:
            out[k] = str(Timestamp(row[k]))
    for k in _INT_FIELDS:
        if row.get(k) is not None:
            out[k] = row[k]
    if object_timerange is not None:
        out["object_timerange"] = object_timerange
    if get_urls is not None:
        out["get_urls"] = get_urls
    if row.get("init_object_id"):
        init: dict[str, Any] = {"object_id": row["init_object_id"]}
        if init_get_urls is not None:
            init["get_urls"] = init_get_urls
        out["init_object"] = init
    return out


def segments_wire(
    rows: Sequence[Mapping[str, Any]],
    urls: Mapping[str, list[dict[str, Any]] | None],
    object_timeranges: Mapping[str, str | None] | None = None,
) -> list[dict[str, Any]]:
    """Segment rows as wire documents, with their objects' ``get_urls`` (``urls``: see
    :class:`~server.fetch.SegmentDetails`) and, when ``object_timeranges`` is given, each object's timerange
    (``include_object_timerange``). Pure: everything it needs is fetched before."""
    out = []
    for r in rows:
        init_id = r.get("init_object_id")
        out.append(
            segment_wire(
                r,
                get_urls=urls.get(r["object_id"]),
                init_get_urls=urls.get(init_id) if init_id else None,
                object_timerange=None if object_timeranges is None else _object_timerange(r, object_timeranges),
            )
        )
    return out


def _object_timerange(row: Mapping[str, Any], object_trs: Mapping[str, str | None]) -> str:
    """The object's timerange; for an object without one, what the segment implies (timerange - ts_offset)."""
    stored = object_trs.get(row["object_id"]) or row.get("object_timerange")
    if stored:
        return stored
    return str(TimeRange.from_str(row["timerange"]).shift(-(row.get("ts_offset") or 0)))
