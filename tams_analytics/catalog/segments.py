"""Flow segments: atomic bulk registration without overlaps, covered-only deletion, flow timeranges."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from tams_analytics import predicates as P
from tams_analytics.catalog.base import utcnow
from tams_analytics.catalog.flows import Changes, FlowsMixin
from tams_analytics.catalog.read_cache import NotCached, Timeline, UncachedQuery
from tams_analytics.exceptions import ConflictError, NotFoundError, ReadOnlyError, TamsError
from tams_analytics.predicates import Term, isin
from tams_analytics.pyrows import table_rows
from tams_analytics.schema import SEGMENTS
from tams_analytics.timerange import TimeRange, Timestamp
from tams_analytics.timerange_vector import parse_timeranges

#: Segment fields that are timestamps on the wire and int64 ns in the table.
_NS_FIELDS = ("ts_offset", "last_duration")
_INT_FIELDS = ("sample_offset", "sample_count", "key_frame_count")
_TS = pa.timestamp("us", tz="UTC")


@dataclass(frozen=True)
class Failure:
    """One segment that was not registered, and why."""

    index: int
    object_id: str | None
    timerange: str | None
    reason: str


@dataclass
class AddResult:
    """Outcome of :meth:`SegmentsMixin.add_segments`."""

    accepted: list[int] = field(default_factory=list)
    failed: list[Failure] = field(default_factory=list)
    changes: Changes = field(default_factory=Changes)

    @property
    def all_accepted(self) -> bool:
        return not self.failed


@dataclass(frozen=True)
class DeleteResult:
    """Outcome of :meth:`SegmentsMixin.delete_segments`."""

    deleted: int
    #: the hull of what was deleted (``()`` when nothing was)
    timerange: TimeRange
    #: False when ``limit`` stopped the deletion before every covered segment was gone
    complete: bool = True


def segments_table(items: Sequence[Mapping[str, Any]]) -> tuple[pa.Table, list[Failure]]:
    """Convert wire segment documents into ``segments`` rows; items that do not parse become failures.

    The returned table has one row per parsed item and an ``index`` column naming its position in
    ``items``; ``get_urls`` (uncontrolled instances) stays in the documents.
    """
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
    schema = pa.schema([pa.field("index", pa.int64()), *[f.with_nullable(True) for f in SEGMENTS]])
    return pa.Table.from_pylist(rows, schema=schema), failures


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
    row: dict[str, Any] = {
        "index": index,
        "object_id": oid,
        "timerange": str(tr),
        "start_ns": lo,
        "end_ns": hi,
    }
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


def shift(tr: TimeRange, offset_ns: int) -> TimeRange:
    """``tr`` moved by ``-offset_ns``: from the flow timeline to the object's (``ts_offset`` rule)."""
    if tr.is_empty or not offset_ns:
        return tr
    return TimeRange(
        None if tr.start is None else tr.start.ns - offset_ns,
        None if tr.end is None else tr.end.ns - offset_ns,
        include_start=tr.include_start,
        include_end=tr.include_end,
    )


@dataclass(frozen=True)
class _ObjectWrites:
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


class SegmentsMixin(FlowsMixin):
    """Segment registration, deletion and flow timeranges."""

    def add_segments(
        self,
        flow_id: str,
        segments: pa.Table | Sequence[Mapping[str, Any]],
        *,
        uncontrolled_urls: Mapping[int, Sequence[Mapping[str, str]]] | None = None,
        reserved_labels: frozenset[str] = frozenset(),
    ) -> AddResult:
        """Register segments on a flow, atomically, never storing two overlapping segments.

        Every segment is checked against the flow's stored segments and the segments accepted before it
        in the same call (abutting ranges are fine); those that overlap, or break the object rules
        (first registration on the allocating flow, no changes to a re-used object's properties, no
        init/media role swap, re-use within the object's timerange), fail individually and the rest
        are stored. ``segments`` is a list of wire documents, or a table from :func:`segments_table`.
        """
        result = AddResult()
        if not isinstance(segments, pa.Table):
            docs = list(segments)
            segments, result.failed = segments_table(docs)
            uncontrolled_urls = {
                i: d["get_urls"] for i, d in enumerate(docs) if isinstance(d, Mapping) and d.get("get_urls")
            } | dict(uncontrolled_urls or {})
        urls = dict(uncontrolled_urls or {})
        with self.transaction():
            flow = self.row("flows", [Term("id", "==", flow_id)])
            if flow is None:
                raise NotFoundError(f"flow {flow_id} does not exist")
            if flow.get("read_only"):
                raise ReadOnlyError(f"flow {flow_id} is read-only")
            self._refuse_if_being_deleted(flow)
            if not flow.get("container"):
                raise ConflictError(f"flow {flow_id} has no container set, so segments cannot be registered")
            if segments.num_rows == 0:
                return result
            # labels first: a row refused for its labels must neither block later rows of the batch
            # as an overlap nor register its object
            ok = np.ones(segments.num_rows, dtype=bool)
            reasons = self._check_labels(segments, urls, reserved_labels, ok)
            ok[list(reasons)] = False
            ok, overlap_reasons = self._check_overlaps(flow_id, segments, ok)
            reasons.update(overlap_reasons)
            objects, obj_reasons = self._check_objects(flow_id, segments, ok)
            reasons.update(obj_reasons)
            index = (
                segments.column("index").to_numpy()
                if "index" in segments.column_names
                else np.arange(segments.num_rows)
            )
            for pos, why in sorted(reasons.items()):
                ok[pos] = False
                result.failed.append(
                    Failure(
                        int(index[pos]),
                        segments.column("object_id")[pos].as_py(),
                        segments.column("timerange")[pos].as_py(),
                        why,
                    )
                )
            result.failed.sort(key=lambda f: f.index)
            keep = pa.array(ok)
            accepted = segments.filter(keep)
            if accepted.num_rows:
                now = utcnow()
                rows = accepted.drop_columns(["index"]) if "index" in accepted.column_names else accepted
                rows = rows.set_column(
                    rows.schema.get_field_index("flow_id"),
                    "flow_id",
                    pa.repeat(pa.scalar(flow_id, pa.string()), rows.num_rows),
                )
                rows = rows.set_column(
                    rows.schema.get_field_index("created"),
                    "created",
                    pa.repeat(pa.scalar(now, _TS), rows.num_rows),
                )
                self.engine.insert("segments", rows)
                self._write_objects(objects)
                accepted_index = index[ok].tolist()
                self._write_uncontrolled(accepted, urls)
                self.engine.update("flows", [Term("id", "==", flow_id)], {"segments_updated": now})
                result.accepted = accepted_index
        return result

    def _check_overlaps(
        self, flow_id: str, segs: pa.Table, ok: np.ndarray | None = None
    ) -> tuple[np.ndarray, dict[int, str]]:
        """Which rows can be stored: not overlapping stored segments, nor earlier rows of the batch.

        Rows already refused (``ok`` False) are skipped and never block other rows.
        """
        starts = segs.column("start_ns").to_numpy()
        ends = segs.column("end_ns").to_numpy()
        n = len(starts)
        ok = np.ones(n, dtype=bool) if ok is None else ok.copy()
        reasons: dict[int, str] = {}
        stored = self.rows(
            "segments",
            [
                Term("flow_id", "==", flow_id),
                *P.flatten([P.overlaps(TimeRange.from_ns(int(starts.min()), int(ends.max())))]),
            ],
            columns=["start_ns", "end_ns", "timerange"],
            order_by=[("start_ns", False)],
        )
        if stored.num_rows:
            s_start = stored.column("start_ns").to_numpy()
            s_end = stored.column("end_ns").to_numpy()
            idx = np.searchsorted(s_start, ends, side="left")
            prev = np.clip(idx - 1, 0, None)
            clash = (idx > 0) & (s_end[prev] > starts)
            texts = stored.column("timerange")
            for pos in np.flatnonzero(clash & ok):
                reasons[int(pos)] = f"timerange overlaps the stored segment {texts[int(prev[pos])].as_py()}"
                ok[pos] = False
        # within the batch: fast check first (sorted, abutting batches are the norm)
        cand = np.flatnonzero(ok)
        order = cand[np.argsort(starts[cand], kind="stable")]
        if len(order) > 1 and np.any(starts[order[1:]] < ends[order[:-1]]):
            taken: list[tuple[int, int, int]] = []  # (start, end, pos) of rows accepted so far, sorted
            import bisect

            texts_b = segs.column("timerange")
            for pos in cand:  # array order: earlier rows win
                s, e = int(starts[pos]), int(ends[pos])
                k = bisect.bisect_left(taken, (e, -1, -1))
                if k > 0 and taken[k - 1][1] > s:
                    other = taken[k - 1][2]
                    reasons[int(pos)] = f"timerange overlaps segment {texts_b[other].as_py()} earlier in the request"
                    ok[pos] = False
                    continue
                bisect.insort(taken, (s, e, int(pos)))
        return ok, reasons

    def _check_labels(
        self,
        segs: pa.Table,
        urls: Mapping[int, Sequence[Mapping[str, str]]],
        reserved: frozenset[str],
        ok: np.ndarray,
    ) -> dict[int, str]:
        """Uncontrolled get_urls: a label must be unique in the request and differ from backend labels."""
        reasons: dict[int, str] = {}
        if not urls:
            return reasons
        index = segs.column("index").to_pylist() if "index" in segs.column_names else list(range(segs.num_rows))
        for pos, i in enumerate(index):
            items = urls.get(i) or []
            labels = [u.get("label") for u in items]
            if len(set(labels)) != len(labels):
                reasons[pos] = "get_urls labels must be unique"
            elif reserved.intersection(labels):
                reasons[pos] = (
                    f"get_urls label {sorted(reserved.intersection(labels))[0]!r} is a storage backend's label"
                )
        return reasons

    def _check_objects(self, flow_id: str, segs: pa.Table, ok: np.ndarray) -> tuple[_ObjectWrites, dict[int, str]]:
        """Apply the object rules; return the object rows to write and the rows that fail them.

        Rows registering a new object that nothing else in the batch mentions, without an init object,
        object timerange or ts_offset (a fresh ingest: the norm) pass every rule, so their object rows
        are built with array operations; the other rows go through the rules one by one, in order.
        """
        cols = segs.to_pydict()
        ids = set(cols["object_id"]) | {x for x in cols["init_object_id"] if x}
        stored = {r["id"]: r for r in self.rows("objects", [isin("id", sorted(ids))]).to_pylist()}
        pending: dict[str, dict[str, Any]] = {}
        reasons: dict[int, str] = {}
        now = utcnow()
        fresh = _fresh_objects(segs, ok, frozenset(stored))
        writes = _ObjectWrites(pending, frozenset(stored), _new_object_rows(segs.filter(pa.array(fresh)), flow_id, now))

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
                    else shift(seg_tr, offset)
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

    def _write_objects(self, objects: _ObjectWrites) -> None:
        """Upsert object rows: one delete (of those already stored) and one insert per kind, not a
        statement per object."""
        changed = [oid for oid in objects.pending if oid in objects.stored]
        if changed:
            self.engine.delete("objects", [isin("id", changed)])
        if objects.pending:
            self.engine.insert("objects", pa.Table.from_pylist(list(objects.pending.values())))
        if objects.new_rows.num_rows:
            self.engine.insert("objects", objects.new_rows)

    def _write_uncontrolled(self, accepted: pa.Table, urls: Mapping[int, Sequence[Mapping[str, str]]]) -> None:
        if not urls:
            return
        index = (
            accepted.column("index").to_pylist() if "index" in accepted.column_names else list(range(accepted.num_rows))
        )
        wanted: dict[tuple[str, str], str] = {}
        for i, oid in zip(index, accepted.column("object_id").to_pylist(), strict=True):
            for u in urls.get(i) or []:
                wanted.setdefault((oid, u["label"]), u["url"])
        if wanted:
            self.add_uncontrolled_instances(wanted)

    # provided by the objects mixin
    def add_uncontrolled_instances(self, urls: Mapping[tuple[str, str], str]) -> None:  # pragma: no cover
        raise NotImplementedError

    # -- deletion ---------------------------------------------------------------------------------------------
    def delete_segments(
        self,
        flow_id: str,
        timerange: TimeRange | str = "_",
        object_id: str | None = None,
        *,
        limit: int | None = None,
        force: bool = False,
    ) -> DeleteResult:
        """Delete the flow's segments that ``timerange`` covers completely (partial overlaps stay whole).

        With ``limit``, delete only the earliest ``limit`` of them (for delete requests that report
        progress). Objects that no segment references any more are marked for garbage collection.
        """
        tr = TimeRange.from_str(timerange) if isinstance(timerange, str) else timerange
        with self.transaction():
            flow = self.row("flows", [Term("id", "==", flow_id)])
            if flow is None:
                raise NotFoundError(f"flow {flow_id} does not exist")
            if flow.get("read_only") and not force:
                raise ReadOnlyError(f"flow {flow_id} is read-only")
            where: list[P.Predicate] = [Term("flow_id", "==", flow_id), *P.flatten([P.covered_by(tr)])]
            if object_id is not None:
                where.append(Term("object_id", "==", object_id))
            complete = True
            if limit is not None:
                firsts = self.rows(
                    "segments", where, columns=["start_ns"], order_by=[("start_ns", False)], limit=limit + 1
                )
                if firsts.num_rows > limit:
                    complete = False
                    where.append(Term("start_ns", "<=", firsts.column("start_ns")[limit - 1].as_py()))
            gone = self.rows("segments", where, columns=["object_id", "init_object_id", "start_ns", "end_ns"])
            if gone.num_rows == 0:
                return DeleteResult(0, TimeRange.never(), complete)
            self.engine.delete("segments", where)
            ids = set(gone.column("object_id").to_pylist()) | {
                x for x in gone.column("init_object_id").to_pylist() if x
            }
            self._mark_unreferenced(sorted(ids))
            self.engine.update("flows", [Term("id", "==", flow_id)], {"segments_updated": utcnow()})
            hull = TimeRange.from_ns(
                int(np.min(gone.column("start_ns").to_numpy())), int(np.max(gone.column("end_ns").to_numpy()))
            )
        return DeleteResult(gone.num_rows, hull, complete)

    def _segment_object_ids(self, where: Sequence[P.Predicate]) -> list[str]:
        t = self.rows("segments", where, columns=["object_id", "init_object_id"])
        return sorted(set(t.column("object_id").to_pylist()) | {x for x in t.column("init_object_id").to_pylist() if x})

    def _mark_unreferenced(self, object_ids: Sequence[str]) -> None:
        """Stamp ``unreferenced_since`` on objects that no segment references now (as media or init)."""
        if not object_ids:
            return
        ids = list(object_ids)
        used = set(self.rows("segments", [isin("object_id", ids)], columns=["object_id"]).column(0).to_pylist())
        used |= set(
            self.rows("segments", [isin("init_object_id", ids)], columns=["init_object_id"]).column(0).to_pylist()
        )
        unused = [i for i in ids if i not in used]
        if unused:
            self.engine.update(
                "objects",
                [isin("id", unused), Term("unreferenced_since", "isnull")],
                {"unreferenced_since": utcnow()},
            )

    # -- reads ------------------------------------------------------------------------------------------------
    def flow_timerange(self, flow_id: str, within: TimeRange | str | None = None) -> TimeRange:
        """From the first segment's start to the last segment's end (``()`` without segments).

        With ``within``, only segments overlapping it count (their full extent, not clipped).
        """
        # from a flow the read cache holds already; not worth loading one for (it is not a page)
        timeline = self.read_cache.kept_timeline(flow_id) if self.read_cache is not None else None
        if timeline is not None:
            with contextlib.suppress(UncachedQuery):
                return timeline.extent(P.flatten([P.overlaps(within)]) if within is not None else [])
        where: list[P.Predicate] = [Term("flow_id", "==", flow_id)]
        if within is not None:
            where += P.flatten([P.overlaps(within)])
        first = self.rows("segments", where, columns=["timerange"], order_by=[("start_ns", False)], limit=1)
        if first.num_rows == 0:
            return TimeRange.never()
        last = self.rows("segments", where, columns=["timerange"], order_by=[("end_ns", True)], limit=1)
        return TimeRange.from_str(first.column(0)[0].as_py()).hull(TimeRange.from_str(last.column(0)[0].as_py()))

    def segment_rows(
        self,
        flow_id: str,
        *,
        timerange: TimeRange | str | None = None,
        object_id: str | None = None,
        after_start_ns: int | None = None,
        reverse: bool = False,
        limit: int | None = None,
    ) -> pa.Table:
        """One page of a flow's segments in time order (keyset paging on ``start_ns``)."""
        where = _page_where(timerange, object_id, after_start_ns, reverse)
        timeline = self._timeline(flow_id)
        if timeline is not None:
            with contextlib.suppress(UncachedQuery):
                return timeline.select(where, reverse=reverse, limit=limit)
        of_flow = Term("flow_id", "==", flow_id)
        return self.rows("segments", [of_flow, *where], order_by=[("start_ns", reverse)], limit=limit)

    def segment_page(
        self,
        flow_id: str,
        columns: Sequence[str],
        *,
        timerange: TimeRange | str | None = None,
        object_id: str | None = None,
        after_start_ns: int | None = None,
        reverse: bool = False,
        limit: int | None = None,
        cached_only: bool = False,
    ) -> list[dict[str, Any]]:
        """:meth:`segment_rows` as dicts of ``columns``, for the server: from a cached flow they are
        the read cache's own Python rows (do not modify them), built without any Arrow call. With
        ``cached_only``, raises :class:`~tams_analytics.catalog.read_cache.NotCached` rather than
        reading the store."""
        where = _page_where(timerange, object_id, after_start_ns, reverse)
        timeline = self._timeline(flow_id, cached_only=cached_only)
        if timeline is not None and self.read_cache is not None:
            with contextlib.suppress(UncachedQuery):
                idx = timeline.indices(where, reverse=reverse, limit=limit)
                return self.read_cache.blocks.rows(timeline, idx, tuple(columns))
        if cached_only:
            raise NotCached(flow_id)
        of_flow = Term("flow_id", "==", flow_id)
        table = self.rows("segments", [of_flow, *where], columns=columns, order_by=[("start_ns", reverse)], limit=limit)
        return table_rows(table, columns)

    def _timeline(self, flow_id: str, *, cached_only: bool = False) -> Timeline | None:
        """The flow's cached timeline (loaded on a miss), or None without a cache or when not kept."""
        if self.read_cache is None:
            return None
        of_flow = Term("flow_id", "==", flow_id)
        return self.read_cache.timeline(
            flow_id,
            lambda: self.count("segments", [of_flow]),
            lambda: self.rows("segments", [of_flow]),
            cached_only=cached_only,
        )


def _page_where(
    timerange: TimeRange | str | None, object_id: str | None, after_start_ns: int | None, reverse: bool
) -> list[P.Predicate]:
    """The predicates of a segments page, besides its flow."""
    where: list[P.Predicate] = []
    if timerange is not None:
        where += P.flatten([P.overlaps(timerange)])
    if object_id is not None:
        where.append(Term("object_id", "==", object_id))
    if after_start_ns is not None:
        where.append(Term("start_ns", "<" if reverse else ">", after_start_ns))
    return where


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
    if o.get("timerange") and not TimeRange.from_str(o["timerange"]).covers(shift(seg_tr, offset)):
        return f"timerange minus ts_offset lies outside object {oid}'s timerange {o['timerange']}"
    return None
