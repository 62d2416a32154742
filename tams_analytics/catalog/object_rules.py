"""The object rules of a segment registration: which objects a batch may register or re-use, and the object
rows it writes.

A segment registers its object on first use (on the flow the object was allocated for, if any); a re-used
object's properties cannot change, a media object never becomes an init object or the reverse, and a
re-use must lie within the object's timerange (the segment's timerange minus its ``ts_offset``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from tams_analytics.clock import utcnow
from tams_analytics.predicates import isin
from tams_analytics.timerange import TimeRange
from tams_analytics.timerange_vector import parse_timeranges

if TYPE_CHECKING:
    from tams_analytics.catalog import Catalog

__all__ = ["ObjectWrites", "check_objects", "write_objects"]

_TS = pa.timestamp("us", tz="UTC")


@dataclass(frozen=True)
class ObjectWrites:
    """Object rows a registration writes: changed or new ones as dicts, fresh new ones as a table."""

    pending: dict[str, dict[str, Any]]
    #: ids of the objects already stored (only these need deleting before their rows are re-inserted)
    stored: frozenset[str]
    new_rows: pa.Table


def _fresh_objects(segs: pa.Table, ok: np.ndarray, stored: frozenset[str]) -> np.ndarray:
    """Rows (among ``ok``) whose object is new and concerns no other row of the batch, and that set no
    init object, object timerange or ts_offset: every object rule passes for them as they are."""
    if not ok.any():
        return np.zeros(len(ok), dtype=bool)
    oid = segs.column("object_id")
    candidates = pa.array(ok)
    mentioned = pc.drop_null(segs.column("init_object_id"))
    plain = pc.and_(
        pc.and_(pc.is_null(segs.column("init_object_id")), pc.is_null(segs.column("object_timerange"))),
        pc.fill_null(pc.equal(segs.column("ts_offset"), 0), True),
    )
    fresh = pc.and_(candidates, plain)
    fresh = pc.and_(fresh, pc.invert(pc.is_in(oid, value_set=pa.array(sorted(stored), pa.string()))))
    fresh = pc.and_(fresh, pc.invert(pc.is_in(oid, value_set=mentioned.combine_chunks())))
    # an object registered by two rows of the batch: the second is a re-use, checked by the rules
    ok_ids = pc.filter(oid, candidates)
    counts = pc.value_counts(ok_ids)
    repeated = pc.filter(counts.field("values"), pc.greater(counts.field("counts"), 1))
    fresh = pc.and_(fresh, pc.invert(pc.is_in(oid, value_set=repeated)))
    return np.asarray(fresh.to_numpy(zero_copy_only=False), dtype=bool)


def _new_object_rows(segs: pa.Table, flow_id: str, now: Any) -> pa.Table:
    """``objects`` rows first registered by ``segs`` (fresh rows): the object timeline is the segment's."""
    n = segs.num_rows
    parsed = parse_timeranges(segs.column("timerange"))
    return pa.table(
        {
            "id": segs.column("object_id"),
            "allocated_flow_id": pa.nulls(n, pa.string()),
            "first_referenced_by_flow": pa.repeat(pa.scalar(flow_id, pa.string()), n),
            "registered": pa.repeat(pa.scalar(True), n),
            "is_init": pa.repeat(pa.scalar(False), n),
            "timerange": parsed.text,
            "start_ns": pa.array(parsed.start_ns, pa.int64()),
            "end_ns": pa.array(parsed.end_ns, pa.int64()),
            "key_frame_count": segs.column("key_frame_count"),
            "init_object_id": pa.nulls(n, pa.string()),
            "content_type": pa.nulls(n, pa.string()),
            "size_bytes": pa.nulls(n, pa.int64()),
            "created": pa.repeat(pa.scalar(now, _TS), n),
            "unreferenced_since": pa.nulls(n, _TS),
        }
    )


def check_objects(
    catalog: Catalog, flow_id: str, segs: pa.Table, ok: np.ndarray
) -> tuple[ObjectWrites, dict[int, str]]:
    """Apply the object rules; return the object rows to write and the rows that fail them.

    Rows registering a new object that nothing else in the batch mentions, without an init object,
    object timerange or ts_offset (a fresh ingest: the norm) pass every rule, so their object rows
    are built with array operations; the other rows go through the rules one by one, in order.
    """
    cols = segs.to_pydict()
    ids = set(cols["object_id"]) | {x for x in cols["init_object_id"] if x}
    stored = {r["id"]: r for r in catalog.rows("objects", [isin("id", sorted(ids))]).to_pylist()}
    pending: dict[str, dict[str, Any]] = {}
    reasons: dict[int, str] = {}
    now = utcnow()
    fresh = _fresh_objects(segs, ok, frozenset(stored))
    writes = ObjectWrites(pending, frozenset(stored), _new_object_rows(segs.filter(pa.array(fresh)), flow_id, now))

    def current(oid: str) -> dict[str, Any] | None:
        return pending.get(oid) or stored.get(oid)

    for pos in np.flatnonzero(ok & ~fresh):
        oid = cols["object_id"][pos]
        seg_tr = TimeRange.from_str(cols["timerange"][pos])
        offset = cols["ts_offset"][pos] or 0
        init_id = cols["init_object_id"][pos]
        o = current(oid)
        why: str | None = None
        if o is not None and o.get("is_init"):
            why = f"object {oid} is registered as an initialisation object"
        elif o is None or not o.get("registered"):
            allocated = o.get("allocated_flow_id") if o else None
            if allocated not in (None, flow_id):
                why = f"object {oid} was allocated for flow {allocated}: register it there first"
        else:
            why = _reuse_conflict(o, cols, pos, seg_tr, offset)
        if why is None and init_id:
            io = current(init_id)
            if io is not None and io.get("registered") and not io.get("is_init"):
                why = f"object {init_id} is a media object and cannot be an initialisation object"
            elif init_id == oid:
                why = "an object cannot be its own initialisation object"
        if why is not None:
            reasons[int(pos)] = why
            continue
        if o is None or not o.get("registered"):
            obj_tr = (
                TimeRange.from_str(cols["object_timerange"][pos])
                if cols["object_timerange"][pos]
                else seg_tr.shift(-offset)
            )
            lo, hi = obj_tr.storage_bounds()
            pending[oid] = {
                **(
                    o
                    or {
                        "id": oid,
                        "allocated_flow_id": None,
                        "created": now,
                        "content_type": None,
                        "size_bytes": None,
                    }
                ),
                "registered": True,
                "is_init": False,
                "first_referenced_by_flow": flow_id,
                "timerange": str(obj_tr),
                "start_ns": lo,
                "end_ns": hi,
                "key_frame_count": cols["key_frame_count"][pos],
                "init_object_id": init_id,
                "unreferenced_since": None,
            }
        elif o.get("unreferenced_since") is not None:
            pending[oid] = {**o, "unreferenced_since": None}
        if init_id:
            io = current(init_id)
            if io is None or not io.get("registered") or io.get("unreferenced_since") is not None:
                pending[init_id] = {
                    **(
                        io
                        or {
                            "id": init_id,
                            "allocated_flow_id": None,
                            "created": now,
                            "content_type": None,
                            "size_bytes": None,
                            "first_referenced_by_flow": flow_id,
                        }
                    ),
                    "registered": True,
                    "is_init": True,
                    "timerange": None,
                    "start_ns": None,
                    "end_ns": None,
                    "unreferenced_since": None,
                }
    return writes, reasons


def write_objects(catalog: Catalog, objects: ObjectWrites) -> None:
    """Upsert object rows: one delete (of those already stored) and one insert per kind, not a
    statement per object."""
    changed = [oid for oid in objects.pending if oid in objects.stored]
    if changed:
        catalog.engine.delete("objects", [isin("id", changed)])
    if objects.pending:
        catalog.engine.insert("objects", pa.Table.from_pylist(list(objects.pending.values())))
    if objects.new_rows.num_rows:
        catalog.engine.insert("objects", objects.new_rows)


def _reuse_conflict(
    o: Mapping[str, Any], cols: Mapping[str, list[Any]], pos: int, seg_tr: TimeRange, offset: int
) -> str | None:
    """Why re-using registered object ``o`` for this segment is refused, or None."""
    oid = o["id"]
    kfc = cols["key_frame_count"][pos]
    if kfc is not None and o.get("key_frame_count") is not None and kfc != o["key_frame_count"]:
        return f"key_frame_count {kfc} differs from object {oid}'s {o['key_frame_count']}"
    otr = cols["object_timerange"][pos]
    if otr is not None and o.get("timerange") and TimeRange.from_str(otr) != TimeRange.from_str(o["timerange"]):
        return f"object_timerange {otr} differs from object {oid}'s {o['timerange']}"
    init_id = cols["init_object_id"][pos]
    if init_id is not None and init_id != o.get("init_object_id"):
        return f"init_object_id {init_id} differs from object {oid}'s {o.get('init_object_id')}"
    if o.get("timerange") and not TimeRange.from_str(o["timerange"]).covers(seg_tr.shift(-offset)):
        return f"timerange minus ts_offset lies outside object {oid}'s timerange {o['timerange']}"
    return None
