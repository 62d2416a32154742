"""The object rules of a segment registration: which objects a batch may register or re-use, and the object
rows it writes.

A segment registers its object on first use (on the flow the object was allocated for, if any); a re-used
object's properties cannot change, a media object never becomes an init object or the reverse, and a
re-use must lie within the object's timerange (the segment's timerange minus its ``ts_offset``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from tams_analytics.clock import utcnow
from tams_analytics.predicates import isin
from tams_analytics.timerange import TimeRange

if TYPE_CHECKING:
    from tams_analytics.catalog import Catalog

__all__ = ["ObjectState", "check_objects", "mentioned_ids", "write_objects"]

_TS = pa.timestamp("us", tz="UTC")


def mentioned_ids(segs: pa.Table) -> pa.Array:
    """Every object id ``segs`` mention, as media or init object (with repeats)."""
    return pa.concat_arrays(
        [segs.column("object_id").combine_chunks(), pc.drop_null(segs.column("init_object_id")).combine_chunks()]
    )


@dataclass
class ObjectState:
    """The objects of one registration batch: as stored before it, and the rows it will write.

    ``stored`` holds the stored rows of every object the batch mentions (read in one query);
    ``repeated`` the ids the batch mentions more than once (as media or init objects, in any of its
    registrations): only objects mentioned once may take the array path (:func:`check_objects`).
    """

    stored: dict[str, dict[str, Any]]
    repeated: frozenset[str]
    now: Any = field(default_factory=utcnow)
    #: changed or new objects as dicts (rows of ``stored`` among them are replaced)
    pending: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: new objects of fresh ingest, as tables
    new_rows: list[pa.Table] = field(default_factory=list)

    @classmethod
    def load(cls, catalog: Catalog, mentioned: pa.Array, now: Any = None) -> ObjectState:
        """The state for a batch mentioning ``mentioned`` ids: their stored rows, in one query; ``now`` is
        the batch's time (default: the current time)."""
        counts = pc.value_counts(mentioned)
        repeated = pc.filter(counts.field("values"), pc.greater(counts.field("counts"), 1)).to_pylist()
        ids = pc.unique(mentioned).to_pylist()
        stored = {r["id"]: r for r in catalog.rows("objects", [isin("id", ids)]).to_pylist()} if ids else {}
        return cls(stored, frozenset(repeated), now if now is not None else utcnow())

    def current(self, oid: str) -> dict[str, Any] | None:
        return self.pending.get(oid) or self.stored.get(oid)


def _fresh_objects(segs: pa.Table, ok: np.ndarray, state: ObjectState) -> np.ndarray:
    """Rows (among ``ok``) whose object is new and concerns nothing else of the batch, and that set no
    init object, object timerange or ts_offset: every object rule passes for them as they are."""
    if not ok.any():
        return np.zeros(len(ok), dtype=bool)
    oid = segs.column("object_id")
    plain = pc.and_(
        pc.and_(pc.is_null(segs.column("init_object_id")), pc.is_null(segs.column("object_timerange"))),
        pc.fill_null(pc.equal(segs.column("ts_offset"), 0), True),
    )
    fresh = pc.and_(pa.array(ok), plain)
    taken = sorted(set(state.stored) | state.repeated)
    if taken:
        fresh = pc.and_(fresh, pc.invert(pc.is_in(oid, value_set=pa.array(taken, pa.string()))))
    return np.asarray(fresh.to_numpy(zero_copy_only=False), dtype=bool)


def _new_object_rows(segs: pa.Table, flow_ids: pa.Array, now: Any) -> pa.Table:
    """``objects`` rows first registered by ``segs`` (fresh rows, of the flows ``flow_ids``): the object
    timeline is the segment's (no ts_offset, no object_timerange)."""
    n = segs.num_rows
    return pa.table(
        {
            "id": segs.column("object_id"),
            "allocated_flow_id": pa.nulls(n, pa.string()),
            "first_referenced_by_flow": flow_ids,
            "registered": pa.repeat(pa.scalar(True), n),
            "is_init": pa.repeat(pa.scalar(False), n),
            "timerange": segs.column("timerange"),
            "start_ns": segs.column("start_ns"),
            "end_ns": segs.column("end_ns"),
            "key_frame_count": segs.column("key_frame_count"),
            "init_object_id": pa.nulls(n, pa.string()),
            "content_type": pa.nulls(n, pa.string()),
            "size_bytes": pa.nulls(n, pa.int64()),
            "created": pa.repeat(pa.scalar(now, _TS), n),
            "unreferenced_since": pa.nulls(n, _TS),
        }
    )


def check_objects(state: ObjectState, flows: pa.Array, segs: pa.Table, ok: np.ndarray) -> dict[int, str]:
    """Apply the object rules to the rows ``ok`` of a batch (row ``i`` is a segment of flow ``flows[i]``), in
    row order; record the object rows to write in ``state``; return the rows that fail them, and why.

    Rows registering a new object that nothing else in the batch mentions, without an init object,
    object timerange or ts_offset (a fresh ingest: the norm) pass every rule, so their object rows
    are built with array operations; the other rows go through the rules one by one, in order.
    """
    pending, now, current = state.pending, state.now, state.current
    reasons: dict[int, str] = {}
    fresh = _fresh_objects(segs, ok, state)
    if fresh.any():
        keep = pa.array(fresh)
        state.new_rows.append(_new_object_rows(segs.filter(keep), flows.filter(keep), now))
    rest = np.flatnonzero(ok & ~fresh)
    if not len(rest):
        return reasons
    cols = segs.take(pa.array(rest)).to_pydict()
    cols["flow_id"] = flows.take(pa.array(rest)).to_pylist()
    for k, pos in enumerate(rest):
        oid = cols["object_id"][k]
        flow_id = cols["flow_id"][k]
        seg_tr = TimeRange.from_str(cols["timerange"][k])
        offset = cols["ts_offset"][k] or 0
        init_id = cols["init_object_id"][k]
        o = current(oid)
        why: str | None = None
        if o is not None and o.get("is_init"):
            why = f"object {oid} is registered as an initialisation object"
        elif o is None or not o.get("registered"):
            allocated = o.get("allocated_flow_id") if o else None
            if allocated not in (None, flow_id):
                why = f"object {oid} was allocated for flow {allocated}: register it there first"
        else:
            why = _reuse_conflict(o, cols, k, seg_tr, offset)
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
                TimeRange.from_str(cols["object_timerange"][k])
                if cols["object_timerange"][k]
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
                "key_frame_count": cols["key_frame_count"][k],
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
    return reasons


def write_objects(catalog: Catalog, state: ObjectState) -> None:
    """Upsert the batch's object rows: one delete (of those already stored) and one insert per kind, not a
    statement per object."""
    changed = [oid for oid in state.pending if oid in state.stored]
    if changed:
        catalog.engine.delete("objects", [isin("id", changed)])
    if state.new_rows:
        catalog.engine.insert("objects", pa.concat_tables(state.new_rows))
    if state.pending:
        catalog.engine.insert("objects", pa.Table.from_pylist(list(state.pending.values())))


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
