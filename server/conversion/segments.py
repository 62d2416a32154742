"""Segment rows -> ``flow-segment.json`` (routes and webhook deliveries render segments the same way)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from server.conversion.urls import UrlMinter, UrlOptions
from tams_analytics.catalog import Catalog
from tams_analytics.predicates import isin
from tams_analytics.timerange import TimeRange, Timestamp

if TYPE_CHECKING:
    from server.stores import Stores  # server.stores imports this module's package

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
    catalog: Catalog,
    rows: Sequence[Mapping[str, Any]],
    stores: Stores,
    options: UrlOptions,
    *,
    include_object_timerange: bool = False,
) -> list[dict[str, Any]]:
    """A page of segment rows as wire documents.

    Instances of every media and init object on the page come from one catalog call (none at all when
    the reader wants no URLs), and each object's URLs are built once per page even when many
    segments share it (init objects usually are), or not at all while a list built for an earlier
    page from the very same instance rows is still valid (:class:`~server.conversion.urls.MintedUrlLists`).
    """
    if not rows:
        return []
    ids = list(
        dict.fromkeys([r["object_id"] for r in rows] + [r["init_object_id"] for r in rows if r.get("init_object_id")])
    )
    urls_of = url_lookup(catalog, ids, stores, options)
    object_trs: dict[str, str | None] = {}
    if include_object_timerange:
        t = catalog.rows("objects", [isin("id", ids)], columns=["id", "timerange"])
        object_trs = dict(zip(t.column("id").to_pylist(), t.column("timerange").to_pylist(), strict=True))
    out = []
    for r in rows:
        init_id = r.get("init_object_id")
        out.append(
            segment_wire(
                r,
                get_urls=urls_of(r["object_id"]),
                init_get_urls=urls_of(init_id) if init_id else None,
                object_timerange=_object_timerange(r, object_trs) if include_object_timerange else None,
            )
        )
    return out


def url_lookup(
    catalog: Catalog, ids: Sequence[str], stores: Stores, options: UrlOptions
) -> Callable[[str], list[dict[str, Any]] | None]:
    """``object_id -> get_urls | None`` for the given ids."""
    if options.wants_none:
        return lambda _oid: None
    instances = {oid: tuple(rows) for oid, rows in catalog.object_instances(ids).items()}
    mint = UrlMinter(stores, options)
    lists = stores.url_lists
    return lambda oid: lists.get(oid, instances.get(oid, ()), options, mint)


def _object_timerange(row: Mapping[str, Any], object_trs: Mapping[str, str | None]) -> str:
    """The object's timerange; for an object without one, what the segment implies (timerange - ts_offset)."""
    stored = object_trs.get(row["object_id"]) or row.get("object_timerange")
    if stored:
        return stored
    return str(TimeRange.from_str(row["timerange"]).shift(-(row.get("ts_offset") or 0)))
