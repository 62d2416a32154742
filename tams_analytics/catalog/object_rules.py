"""The object rules of a segment registration: which objects a batch may register or re-use, and the object
rows it writes.

A segment registers its object on first use (on the flow the object was allocated for, if any); a re-used
object's properties cannot change, a media object never becomes an init object or the reverse, and a
re-use must lie within the object's timerange (the segment's timerange minus its ``ts_offset``).

A segment's media object has an init object exactly when the segment's flow uses initialisation segments
(``essence_parameters.init_segments``, false when omitted: "MUST be set to true if Media Objects have
init_object populated. If set to true, all Media Objects MUST have init_object populated", flow-video.json,
flow-audio.json, flow-data.json, flow-multi.json). A segment naming an init object on a flow without them is
refused, and one without, on a flow with them, unless it re-uses an object that has an init object (the spec
asks re-uses to omit ``init_object_id``), which the segment then records as its own: before the batch's other
rules where the rows before it cannot matter (:func:`init_segments_refused`), else in order
(:func:`check_objects`). :func:`init_segments_change` refuses changing a flow's setting while it holds segments
the new one would break.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from tams_analytics.clock import utcnow, written_at
from tams_analytics.exceptions import ConflictError
from tams_analytics.predicates import Op, Term, isin
from tams_analytics.pyrows import SMALL, column_values, distinct_values, repeated_values
from tams_analytics.timerange import TimeRange

if TYPE_CHECKING:
    from tams_analytics.catalog import Catalog

__all__ = [
    "ObjectState",
    "check_objects",
    "flows_using_init",
    "init_segments_change",
    "init_segments_reason",
    "init_segments_refused",
    "mentioned_ids",
    "write_objects",
]

_TS = pa.timestamp("us", tz="UTC")


def mentioned_ids(segs: pa.Table) -> pa.Array:
    """Every object id ``segs`` mention, as media or init object (with repeats)."""
    return pa.concat_arrays(
        [segs.column("object_id").combine_chunks(), pc.drop_null(segs.column("init_object_id")).combine_chunks()]
    )


def init_segments_reason(flow_id: str, uses_init_segments: bool) -> str:
    """Why a segment breaks its flow's ``init_segments`` rule."""
    if uses_init_segments:
        return (
            f"flow {flow_id} uses initialisation segments (essence_parameters.init_segments is true): "
            "every segment must give init_object_id (a re-use of an object that has one may omit it)"
        )
    return (
        f"flow {flow_id} does not use initialisation segments (essence_parameters.init_segments is not true): "
        "its segments cannot have an init object unless the flow sets init_segments to true"
    )


def flows_using_init(flow_ids: pa.ChunkedArray | pa.Array, flows: Mapping[str, Mapping[str, Any]]) -> np.ndarray | None:
    """Per row of ``flow_ids``, whether its flow uses initialisation segments; None when none of ``flows`` (the
    flows' rows, by id) does: the norm, decided without a pass over the rows."""
    using = [f for f, row in flows.items() if row.get("init_segments")]
    if not using:
        return None
    return np.asarray(pc.is_in(flow_ids, value_set=pa.array(using, pa.string())), dtype=bool)


def init_segments_refused(segs: pa.Table, uses_init: np.ndarray | None, state: ObjectState) -> dict[int, str]:
    """The rows of ``segs`` that break their flow's ``init_segments`` rule, and why, decided before the other
    rules of a batch (so that a refused row neither blocks later rows as an overlap nor registers its object):
    a row naming an init object on a flow without init segments, and a row whose object's init object (the
    row's, or a stored object's that the row re-uses) does not suit its flow, for objects the batch mentions
    once or registered before the batch. Rows of other objects mentioned more than once depend on the rows
    before them: :func:`check_objects` judges those in order. ``uses_init``: from :func:`flows_using_init`.
    Array operations; with no flow using init segments and no init object named or re-used (live ingest of
    MPEG-TS: the norm) it only looks for a valid value in one column."""
    column = segs.column("init_object_id")
    stored_with_init = [oid for oid, row in state.stored.items() if row.get("registered") and row.get("init_object_id")]
    # none named: the column's null count says so (is_valid's kernel costs 15 µs a batch)
    if uses_init is None and not stored_with_init and column.null_count == len(column):
        return {}
    named = np.asarray(column.is_valid(), dtype=bool)
    wants = uses_init if uses_init is not None else np.zeros(segs.num_rows, dtype=bool)
    objects = segs.column("object_id")
    has_init = named.copy()
    if stored_with_init:
        has_init |= np.asarray(pc.is_in(objects, value_set=pa.array(stored_with_init, pa.string())), dtype=bool)
    decided = has_init != wants
    # objects mentioned again in the batch depend on the rows before, unless registered already (settled); stored
    # init objects used as media are refused for that first (check_objects)
    later = sorted(
        (state.repeated - state.settled()) | {oid for oid, row in state.stored.items() if row.get("is_init")}
    )
    if later:
        decided &= ~np.asarray(pc.is_in(objects, value_set=pa.array(later, pa.string())), dtype=bool)
    rows = np.flatnonzero(decided | (named & ~wants))
    flow_ids = segs.column("flow_id").take(pa.array(rows, pa.int64())).to_pylist() if len(rows) else []
    return {int(p): init_segments_reason(f, bool(wants[p])) for p, f in zip(rows, flow_ids, strict=True)}


def init_segments_change(catalog: Catalog, flow_id: str, before: Any, after: Any) -> None:
    """Refuse changing a flow's ``init_segments`` from ``before`` to ``after`` while it holds segments the new
    setting would forbid (ConflictError naming how many): a store whose segments break the rule would answer
    readers with segments they cannot decode as the flow says. One count, only when the setting changes."""
    if bool(before) == bool(after):
        return
    op: Op = "isnull" if after else "notnull"
    n = catalog.count("segments", [Term("flow_id", "==", flow_id), Term("init_object_id", op)])
    if n:
        have = "without" if after else "with"
        raise ConflictError(
            f"flow {flow_id} holds {n} segment{'s' if n != 1 else ''} {have} init_object_id, so "
            f"essence_parameters.init_segments cannot become {'true' if after else 'false'}: "
            "every segment must have an init object exactly when the flow sets init_segments to true "
            "(delete those segments first, or keep the setting)"
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
    #: by row of the batch: the init object a segment re-using an object takes from it (omitted in the request,
    #: as the spec asks of re-uses), to record with the segment
    segment_inits: dict[int, str] = field(default_factory=dict)

    @classmethod
    def load(cls, catalog: Catalog, mentioned: pa.Array, now: Any = None) -> ObjectState:
        """The state for a batch mentioning ``mentioned`` ids: their stored rows, in one query, and those of the
        init objects of the stored ones, which re-uses take (a second query, only when there are some); ``now``
        is the batch's time (default: the current time)."""
        repeated = repeated_values(mentioned)
        ids = distinct_values(mentioned)
        stored = {r["id"]: dict(r) for r in catalog.records("objects", [isin("id", ids)])} if ids else {}
        inits = sorted({r["init_object_id"] for r in stored.values() if r.get("init_object_id")} - stored.keys())
        if inits:
            stored |= {r["id"]: dict(r) for r in catalog.records("objects", [isin("id", inits)])}
        return cls(stored, frozenset(repeated), now if now is not None else utcnow())

    def anew(self) -> ObjectState:
        """The state as it was before any row was judged: the same stored rows (never changed in place), nothing
        pending; for judging the batch's rows again."""
        return ObjectState(self.stored, self.repeated, self.now)

    def current(self, oid: str) -> dict[str, Any] | None:
        return self.pending.get(oid) or self.stored.get(oid)

    def settled(self) -> frozenset[str]:
        """The objects registered before the batch: what the rules read of them (role, init object, timerange,
        properties) no batch row can change, so rows mentioning them are judged alike in any order."""
        return frozenset(oid for oid, row in self.stored.items() if row.get("registered"))


def _fresh_objects(segs: pa.Table, ok: np.ndarray, state: ObjectState) -> np.ndarray:
    """Rows (among ``ok``) whose object is new and concerns nothing else of the batch, and that set no
    init object, object timerange or ts_offset: every object rule passes for them as they are."""
    if not ok.any():
        return np.zeros(len(ok), dtype=bool)
    if len(ok) <= SMALL:  # a live batch: a Python loop over its few rows costs less than Arrow's seven calls
        return _fresh_few(segs, ok, state)
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


def _fresh_few(segs: pa.Table, ok: np.ndarray, state: ObjectState) -> np.ndarray:
    """:func:`_fresh_objects` of a few rows, in Python."""
    oids, inits = column_values(segs.column("object_id")), column_values(segs.column("init_object_id"))
    ranges, offsets = column_values(segs.column("object_timerange")), column_values(segs.column("ts_offset"))
    taken = state.stored.keys() | state.repeated
    return np.array(
        [
            bool(ok[i]) and inits[i] is None and ranges[i] is None and not offsets[i] and oids[i] not in taken
            for i in range(len(oids))
        ],
        dtype=bool,
    )


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
            "created": written_at(now, n),
            "unreferenced_since": pa.nulls(n, _TS),
        }
    )


def check_objects(
    state: ObjectState, flows: pa.Array, segs: pa.Table, ok: np.ndarray, uses_init: np.ndarray | None = None
) -> dict[int, str]:
    """Apply the object rules to the rows ``ok`` of a batch (row ``i`` is a segment of flow ``flows[i]``, whose
    flow uses initialisation segments where ``uses_init`` says so: :func:`flows_using_init`), in row order;
    record the object rows to write in ``state``; return the rows that fail them, and why.

    Rows registering a new object that nothing else in the batch mentions, without an init object,
    object timerange or ts_offset (a fresh ingest: the norm) pass every rule but the flow's init_segments one,
    so their object rows are built with array operations; the other rows go through the rules one by one, in
    order.
    """
    pending, now, current = state.pending, state.now, state.current
    reasons: dict[int, str] = {}
    fresh = _fresh_objects(segs, ok, state)
    if uses_init is not None and (fresh & uses_init).any():  # a new object without an init object
        for pos in np.flatnonzero(fresh & uses_init).tolist():
            reasons[pos] = init_segments_reason(flows[pos].as_py(), True)
        fresh &= ~uses_init
        ok = ok.copy()
        ok[list(reasons)] = False
    if len(fresh) and fresh.all():  # (no filter to call)
        state.new_rows.append(_new_object_rows(segs, flows, now))
    elif fresh.any():
        keep = pa.array(fresh)
        state.new_rows.append(_new_object_rows(segs.filter(keep), flows.filter(keep), now))
    rest = np.flatnonzero(ok & ~fresh)
    if not len(rest):
        return reasons
    cols = segs.take(pa.array(rest)).to_pydict()
    cols["flow_id"] = flows.take(pa.array(rest)).to_pylist()
    for k, pos in enumerate(rest.tolist()):
        oid = cols["object_id"][k]
        flow_id = cols["flow_id"][k]
        seg_tr = TimeRange.from_str(cols["timerange"][k])
        offset = cols["ts_offset"][k] or 0
        init_id = cols["init_object_id"][k]
        o = current(oid)
        why: str | None = None
        # an init object as media, then the flow's init_segments rule, in the order init_segments_refused
        # applies them to the other rows: the object's init object is the segment's, or the re-used object's
        # (re-uses omit it)
        reused_init = o.get("init_object_id") if o is not None and o.get("registered") else None
        wants_init = bool(uses_init[pos]) if uses_init is not None else False
        if o is not None and o.get("is_init"):
            why = f"object {oid} is registered as an initialisation object"
        elif bool(init_id or reused_init) != wants_init:
            why = init_segments_reason(flow_id, wants_init)
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
        if not init_id and reused_init:
            state.segment_inits[int(pos)] = init_id = reused_init
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
                        }
                    ),
                    # allocated rows have none yet; a registered one keeps its first
                    "first_referenced_by_flow": (io or {}).get("first_referenced_by_flow") or flow_id,
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
