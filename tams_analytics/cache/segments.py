"""The ``segments`` table in memory, a flow at a time: which queries a cached flow answers, and how.

A query pinned to one flow (``flow_id == f``) or to a few (``flow_id in (...)``), whose other predicates
a :class:`~tams_analytics.cache.timeline.Timeline` evaluates exactly, in ``start_ns``/``end_ns`` order, is
answered from each flow's timeline. A query in ``start_ns`` order loads a missing flow's timeline, as
little of it as the query needs: a query of bounds only (a registration's overlap check) loads bounds
and the rows of the newest segments (the tail: what live readers ask for); a query of rows (a page) loads
a flow of up to :attr:`CacheConfig.flow_rows` segments with its rows, a longer one as bounds and a tail.
A page a bounds-only timeline's tail cannot answer loads the flow's rows (a short flow) or reads just the
page's rows from the store by their exact ``start_ns`` range (a long one: a narrow read at any depth). A live
edge's page (the newest few segments, newest first) of a flow not kept is read from the store (a window of its
newest row groups) while the flow's bounds and tail load in the background: on an archive's store a flow's load reads
all its segments, and its live readers, each asking for one row, would otherwise load every live flow at once.

The writer's thread never loads a timeline: a registration's overlap check (:meth:`FlowSegments.held_bounds`) uses
the timelines kept and hands the flows it missed to a background thread (:meth:`FlowSegments.warm`), which loads
them as :meth:`~FlowSegments.preload` does, a chunk of flows in two statements; until then those flows' checks read
the store narrowly (their span only). On a store as old as an archive a flow's load reads all its segments, tens to
hundreds of milliseconds each, and every POST of a group commit waited behind it.
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from tams_analytics.cache.keyed import KeyedCache
from tams_analytics.cache.timeline import BOUNDS, TAIL_WEIGHT, RowBlocks, Timeline, UncachedQuery, conformed, int64
from tams_analytics.engines.base import Engine, OrderBy
from tams_analytics.nonblocking import may_block
from tams_analytics.predicates import AllOf, AnyOf, Predicate, Term, balanced, flatten, isin, pinned
from tams_analytics.pyrows import SMALL, column_values, table_rows
from tams_analytics.schema import SCHEMAS

__all__ = ["FlowSegments"]

logger = logging.getLogger(__name__)


class _Uncacheable:
    """The entry of a flow no timeline can hold (too long, or its segments overlap): its queries go to the store."""


UNCACHEABLE = _Uncacheable()
#: the segments table's schema as queries answer it
_SEGMENTS = pa.schema([f.with_nullable(True) for f in SCHEMAS["segments"]])
Entry = Timeline | _Uncacheable
#: flows whose timelines :meth:`FlowSegments.preload` loads in one pair of statements (a tail's predicate has
#: a term per flow)
PRELOAD_CHUNK = 500
#: flows the background loader (:meth:`FlowSegments.warm`) loads at a time, and how often it tries a flow that a
#: write touched while it loaded (then it waits for the flow's next registration to ask again)
WARM_CHUNK = 200
WARM_TRIES = 5
#: how long the background loader waits before it tries again the flows a write touched while it loaded them (doubled
#: at each try: a write in flight ends first)
WARM_BACKOFF_S = 0.02
#: the share of the bounds tier the background loader fills at most: it never evicts timelines to load others
WARM_FILL = 0.9


class FlowSegments:
    """Timelines by flow, with rows (``rows``, weighed in segments) or bounds only (``bounds``)."""

    def __init__(
        self, inner: Engine, *, rows: int, flow_rows: int, bounds: int, row_blocks: int, tail_rows: int
    ) -> None:
        self.inner = inner
        self.tail_rows = tail_rows
        self.flow_rows = flow_rows
        self.bound_segments = bounds
        weigh: Callable[[Entry], int] = lambda t: t.size if isinstance(t, Timeline) else 1  # noqa: E731
        self.with_rows: KeyedCache[Entry] = KeyedCache(rows, weigh)
        self.bounds_only: KeyedCache[Entry] = KeyedCache(bounds, weigh)
        self.blocks = RowBlocks(row_blocks)
        self._loading: dict[Hashable, threading.Lock] = {}
        self._loading_guard = threading.Lock()
        #: the last insert split by flow, and its split (appenders run on the writer thread, one change at a time)
        self._split: tuple[pa.Table, Callable[[Hashable], pa.Table]] | None = None
        #: flows to load in the background (:meth:`warm`), with the tries each has had, in the order asked
        self._warm_queue: dict[Hashable, int] = {}
        self._warm_wake = threading.Condition()
        self._warmer: threading.Thread | None = None
        self._warm_closed = False
        self._warm_busy = False
        self._warned_full = False
        #: flows the background loader kept, and its loads' failures (statistics and tests)
        self.warmed = 0
        self.warm_failures = 0

    # -- answers -----------------------------------------------------------------------------------------
    def answer(
        self,
        where: Sequence[Predicate],
        *,
        columns: Sequence[str] | None,
        order_by: OrderBy,
        limit: int | None,
        load: bool | None = None,
        records: bool = False,
    ) -> pa.Table | list[dict[str, Any]] | None:
        """The answer to a query on ``segments``, as Arrow (or as dicts with ``records``), or None (ask the
        store)."""
        flat = flatten(where)
        pinned_flows = pinned(flat, "flow_id")
        if pinned_flows is None or not pinned_flows:
            return None
        flows = list(dict.fromkeys(pinned_flows))
        if load is None:
            load = bool(order_by) and order_by[0][0] == "start_ns"
        rest = [p for p in flat if not (isinstance(p, Term) and p.column == "flow_id" and p.op in ("==", "isin"))]
        rows = records or columns is None or not set(columns) <= {"flow_id", *BOUNDS}
        edge = bool(order_by) and order_by[0] == ("start_ns", True) and limit is not None and limit <= self.tail_rows
        if edge and load:
            missing = [f for f in flows if self.kept(f, use=False) is None]
            if missing:  # the store reads a live edge's page by its window; the flow is loaded in the background
                self.warm(missing)
                return None
        parts: list[tuple[Hashable, Timeline, np.ndarray]] = []
        for flow_id in flows:
            timeline = self.timeline(flow_id, load, rows=rows)
            if timeline is None:
                return None
            try:
                idx = timeline.indices(rest, order_by=order_by, limit=limit)
                if (
                    rows
                    and load
                    and timeline.bounds_only
                    and not timeline.in_tail(idx)
                    and timeline.n <= self.flow_rows
                ):
                    timeline = self._with_rows(flow_id)  # a short flow kept for writes, now read: keep its rows
                    if timeline is None:
                        return None
                    idx = timeline.indices(rest, order_by=order_by, limit=limit)
                parts.append((flow_id, timeline, idx))
            except UncachedQuery:
                return None
        if len(parts) == 1:
            flow_id, timeline, idx = parts[0]
            if records and (not timeline.bounds_only or timeline.in_tail(idx)):
                return self.blocks.rows(timeline, idx)
            table = self._table(flow_id, timeline, idx, columns, order_by)
            return table_rows(table, table.column_names) if records else table
        tables = [self._table(f, t, i, columns, order_by) for f, t, i in parts]
        table = pa.concat_tables(tables) if tables else None
        if table is None:
            return None
        if order_by and table.num_rows:
            column, descending = order_by[0]
            if column not in table.column_names:
                return None
            table = table.take(pc.sort_indices(table, [(column, "descending" if descending else "ascending")]))
        if limit is not None:
            table = table.slice(0, max(0, int(limit)))
        return table_rows(table, table.column_names) if records else table

    def _table(
        self, flow_id: Hashable, timeline: Timeline, idx: np.ndarray, columns: Sequence[str] | None, order_by: OrderBy
    ) -> pa.Table:
        """The rows at ``idx`` of a flow's timeline; from a bounds-only one, columns beyond the bounds are read
        from the store by the exact ``start_ns`` range of those rows."""
        wanted = list(columns) if columns is not None else None
        if not timeline.bounds_only or timeline.in_tail(idx):
            return timeline.select(idx, wanted)
        extra = [c for c in (wanted or ["*"]) if c not in BOUNDS and c != "flow_id"]
        if not extra:
            table = timeline.select(idx, [c for c in (wanted or BOUNDS) if c in BOUNDS])
            if wanted is None or "flow_id" in wanted:
                table = table.append_column("flow_id", pa.repeat(pa.scalar(flow_id, pa.string()), table.num_rows))
            return table.select(wanted) if wanted is not None else table
        if not len(idx):
            schema = pa.schema([f.with_nullable(True) for f in SCHEMAS["segments"]])
            return schema.empty_table().select(wanted) if wanted is not None else schema.empty_table()
        starts = timeline.start[idx]
        lo, hi = int(starts.min()), int(starts.max())
        may_block(f"segments of flow {flow_id}")
        where = [Term("flow_id", "==", flow_id), Term("start_ns", ">=", lo), Term("start_ns", "<=", hi)]
        need = None if wanted is None else list(dict.fromkeys([*wanted, "start_ns"]))
        table = self.inner.query("segments", where, columns=need, order_by=[("start_ns", False)])
        if table.num_rows != len(idx):  # the store and the timeline disagree: never answer from it
            raise UncachedQuery(f"flow {flow_id}: {table.num_rows} rows in the store's range, {len(idx)} expected")
        # the store's rows are in start order; put them in idx's (starts are unique within a flow)
        have = np.asarray(table.column("start_ns").to_numpy(), dtype=np.int64)
        table = table.take(pa.array(np.searchsorted(have, starts), pa.int64()))
        return table.select(wanted) if wanted is not None else table

    def held_bounds(self, spans: Mapping[str, tuple[int, int]]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Per flow of ``spans`` a timeline is kept for, the ``(starts, ends)`` of its segments overlapping its span
        ``[lo, hi)``: numpy slices, no Arrow call (each would hand the GIL over: see
        :class:`~tams_analytics.cache.timeline.RowBlocks`). Never loads (the writer's thread asks): the flows not
        kept are left out (the caller reads their spans from the store) and loaded in the background (:meth:`warm`)."""
        out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        missing: list[Hashable] = []
        for flow_id, (lo, hi) in spans.items():
            value = self.kept(flow_id)
            if value is None:
                missing.append(flow_id)
            elif isinstance(value, Timeline):
                idx = value.indices([Term("start_ns", "<", hi), Term("end_ns", ">", lo)])
                out[flow_id] = (value.start[idx], value.end[idx])
        if missing:
            self.warm(missing)
        return out

    def count(self, where: Sequence[Predicate]) -> int | None:
        """How many rows match, from kept timelines only (never loads), or None."""
        got = self.answer(where, columns=["start_ns"], order_by=(), limit=None, load=False)
        return None if got is None else len(got)

    # -- timelines ---------------------------------------------------------------------------------------------
    def timeline(self, flow_id: Hashable, load: bool, *, rows: bool = True) -> Timeline | None:
        """The flow's kept timeline, or None; on a miss with ``load``, loaded (with its rows if ``rows`` and
        the flow is short enough, else as bounds and a tail)."""
        value = self.kept(flow_id)
        if value is None and load:
            may_block(f"segments of flow {flow_id}")
            with self._load_lock(flow_id):
                value = self.kept(flow_id)
                if value is None:
                    value = self._load(flow_id, rows=rows)
        return value if isinstance(value, Timeline) else None

    def _with_rows(self, flow_id: Hashable) -> Timeline | None:
        """The flow's timeline loaded again with its rows (it was kept as bounds and a tail)."""
        may_block(f"segments of flow {flow_id}")
        with self._load_lock(flow_id):
            hit, value = self.with_rows.get(flow_id)
            if not hit:
                value = self._load(flow_id, rows=True)
                if isinstance(value, Timeline) and not value.bounds_only:
                    self.bounds_only.discard(flow_id)
        return value if isinstance(value, Timeline) else None

    def kept(self, flow_id: Hashable, *, use: bool = True) -> Entry | None:
        """The flow's entry if kept; ``use``: counted as a read of it (the background loader's checks are not)."""
        for cache in (self.with_rows, self.bounds_only):
            hit, value = cache.get(flow_id) if use else cache.peek(flow_id)
            if hit:
                return value
        return None

    def _load(self, flow_id: Hashable, *, rows: bool) -> Entry | None:
        rows_token = self.with_rows.begin_load([flow_id])
        bounds_token = self.bounds_only.begin_load([flow_id])
        if rows_token is None or bounds_token is None:
            for cache, token in ((self.with_rows, rows_token), (self.bounds_only, bounds_token)):
                if token is not None:
                    cache.abandon_load(token)
            return None
        of_flow = [Term("flow_id", "==", flow_id)]
        target, other = self.with_rows, self.bounds_only
        try:
            n = self.inner.count("segments", of_flow)
            value: Entry
            if rows and n <= self.flow_rows:
                value = Timeline.of(_canonical(self.inner.query("segments", of_flow)))
            elif n + 2 * TAIL_WEIGHT * self.tail_rows <= self.bound_segments:  # (a tail grows to twice its rows)
                target, other = self.bounds_only, self.with_rows
                value = self._bounds_with_tail(flow_id, self.inner.query("segments", of_flow, columns=list(BOUNDS)))
            else:
                value = UNCACHEABLE
        except UncachedQuery:
            value = UNCACHEABLE
        except BaseException:
            self.with_rows.abandon_load(rows_token)
            self.bounds_only.abandon_load(bounds_token)
            raise
        tokens = {id(self.with_rows): rows_token, id(self.bounds_only): bounds_token}
        target.end_load(tokens[id(target)], {flow_id: value})
        other.abandon_load(tokens[id(other)])
        return value

    def preload(self, flow_ids: Sequence[Hashable], *, partial: bool = False) -> int:
        """Load ahead the timelines of ``flow_ids`` not kept yet (bounds and the rows of the newest ``tail_rows``
        segments), in two store statements for up to :data:`PRELOAD_CHUNK` flows. A flow too long to keep as bounds
        is kept as such (its queries go to the store); one written while this loads is left to load on use. A chunk
        with a flow being written is skipped whole, unless ``partial`` (then only that flow is). Returns how many
        flows were kept."""
        flows = [f for f in dict.fromkeys(flow_ids) if self.kept(f, use=False) is None]
        loaded = 0
        for at in range(0, len(flows), PRELOAD_CHUNK):
            chunk = flows[at : at + PRELOAD_CHUNK]
            token = self.bounds_only.begin_load(chunk, partial=partial)
            if token is None:
                continue
            values: dict[Hashable, Entry] = {}
            try:
                values = self._bounds_with_tails(chunk)
            finally:
                self.bounds_only.end_load(token, values)
            loaded += len(values)
        return loaded

    def _bounds_with_tails(self, flows: list[Hashable]) -> dict[Hashable, Entry]:
        """Bounds-only timelines with their tails for ``flows`` (those a bounds timeline can hold): the bounds of
        all of them in one statement, the tails in another (each flow from its own tail's first start)."""
        by_flow = [("flow_id", False), ("start_ns", False)]
        bounds = self.inner.query("segments", [isin("flow_id", flows)], columns=["flow_id", *BOUNDS], order_by=by_flow)
        timelines: dict[Hashable, Timeline] = {}
        out: dict[Hashable, Entry] = {}
        for flow_id, part in _runs(bounds):
            if part.num_rows + 2 * TAIL_WEIGHT * self.tail_rows <= self.bound_segments:
                timelines[flow_id] = Timeline.of(part.select(list(BOUNDS)), bounds_only=True)
            else:
                out[flow_id] = UNCACHEABLE
        empty = bounds.schema.empty_table().select(list(BOUNDS))
        for flow_id in flows:  # no segments yet (a new flow): kept empty, its tail fills as segments are appended
            if flow_id not in timelines and flow_id not in out:
                timelines[flow_id] = Timeline.of(empty, bounds_only=True)
        tail_from = {
            f: int(t.start[t.n - min(t.n, self.tail_rows)]) for f, t in timelines.items() if min(t.n, self.tail_rows)
        }
        tails: dict[Hashable, pa.Table] = {}
        if tail_from:
            each: list[Predicate] = [
                AllOf((Term("flow_id", "==", f), Term("start_ns", ">=", s))) for f, s in tail_from.items()
            ]
            # (the flows and the earliest tail's start, redundant with the terms, are what the store filters its
            # rows by first: its zone maps skip the row groups of other flows and of older segments, where the terms
            # alone were tried on every row of the table, 0.8 s a chunk on a store of 8 M segments against 0.17)
            where: list[Predicate] = [
                isin("flow_id", list(tail_from)),
                Term("start_ns", ">=", min(tail_from.values())),
                balanced(each, lambda a, b: AnyOf((a, b))),
            ]
            tails = dict(_runs(_canonical(self.inner.query("segments", where, order_by=by_flow))))
        for flow_id, timeline in timelines.items():
            tail = tails.get(flow_id, _SEGMENTS.empty_table())
            if tail.num_rows == min(timeline.n, self.tail_rows):  # else the store moved on: load on use
                out[flow_id] = timeline.with_tail(tail, self.tail_rows)
        return out

    def _bounds_with_tail(self, flow_id: Hashable, bounds: pa.Table) -> Timeline:
        """A bounds-only timeline with the rows of its newest ``tail_rows`` segments (the live edge's pages
        answered from memory), read by their exact ``start_ns`` range."""
        timeline = Timeline.of(bounds, bounds_only=True)
        keep = min(timeline.n, self.tail_rows)
        if keep:
            first = int(timeline.start[timeline.n - keep])
            where = [Term("flow_id", "==", flow_id), Term("start_ns", ">=", first)]
            tail = _canonical(self.inner.query("segments", where, order_by=[("start_ns", False)]))
            if tail.num_rows != keep:
                raise UncachedQuery(f"flow {flow_id}: the store's tail has {tail.num_rows} rows")
        else:  # a new flow: its tail fills as segments are appended
            tail = _SEGMENTS.empty_table()
        return timeline.with_tail(tail, self.tail_rows)

    # -- loading in the background -----------------------------------------------------------------------------
    def warm(self, flow_ids: Iterable[Hashable]) -> None:
        """Load the timelines of ``flow_ids`` (bounds and a tail) on a background thread, a chunk of
        :data:`WARM_CHUNK` flows at a time, each flow tried up to :data:`WARM_TRIES` times (a write to it while it
        loads discards what was read); never past :data:`WARM_FILL` of the bounds tier (it would evict timelines in
        use to keep others: a cache too small for the live flows says so once, at WARNING)."""
        with self._warm_wake:
            if self._warm_closed:
                return
            fresh = [f for f in flow_ids if f not in self._warm_queue]
            if not fresh:
                return
            self._warm_queue.update(dict.fromkeys(fresh, 0))
            if self._warmer is None:
                self._warmer = threading.Thread(target=self._warm_loop, name="tams-warm-timelines", daemon=True)
                self._warmer.start()
            self._warm_wake.notify_all()

    def close(self, timeout_s: float = 10.0) -> None:
        """Stop the background loader: wait for the chunk it is loading (at most ``timeout_s``), so that the store
        closes under no statement of it."""
        with self._warm_wake:
            self._warm_closed = True
            self._warm_queue.clear()
            self._warm_wake.notify_all()
            warmer = self._warmer
        if warmer is not None and warmer is not threading.current_thread():
            warmer.join(timeout_s)

    def warming(self) -> int:
        """How many flows wait for the background loader."""
        with self._warm_wake:
            return len(self._warm_queue)

    def wait_warmed(self, timeout_s: float) -> bool:
        """Wait until the background loader has nothing left to load, at most ``timeout_s``; whether it has
        nothing left (False: still loading at the timeout)."""
        with self._warm_wake:
            return self._warm_wake.wait_for(lambda: not self._warm_queue and not self._warm_busy, timeout_s)

    def _warm_loop(self) -> None:
        while True:
            with self._warm_wake:
                while not self._warm_queue and not self._warm_closed:
                    self._warm_wake.wait()
                if self._warm_closed:
                    return
                chunk = list(itertools.islice(self._warm_queue, WARM_CHUNK))
                self._warm_busy = True
            try:
                self._warm(chunk)
            finally:
                with self._warm_wake:
                    self._warm_busy = False
                    self._warm_wake.notify_all()

    def _warm(self, chunk: list[Hashable]) -> None:
        """Load one chunk of the flows waiting (see :meth:`warm`); requeue those a write touched meanwhile."""
        if self.bounds_only.weight >= WARM_FILL * self.bounds_only.capacity:
            self._full(len(chunk))
            self._unqueue(chunk)
            return
        try:
            self.warmed += self.preload(chunk, partial=True)
        except Exception as exc:  # the store failed: these flows' checks read the store
            self.warm_failures += 1
            self._unqueue(chunk)
            if self._warm_closed:
                return
            logger.warning("read cache: %s flows' timelines could not be loaded ahead: %s", len(chunk), exc)
            return
        again = 0
        with self._warm_wake:
            for flow_id in chunk:
                tries = self._warm_queue.pop(flow_id, None)
                if tries is not None and tries + 1 < WARM_TRIES and self.kept(flow_id, use=False) is None:
                    self._warm_queue[flow_id] = tries + 1  # written meanwhile: again, after the others
                    again = max(again, tries + 1)
            if again:
                self._warm_wake.wait_for(lambda: self._warm_closed, WARM_BACKOFF_S * 2 ** (again - 1))

    def _unqueue(self, flows: list[Hashable]) -> None:
        with self._warm_wake:
            for flow_id in flows:
                self._warm_queue.pop(flow_id, None)

    def _full(self, waiting: int) -> None:
        if not self._warned_full:
            self._warned_full = True
            logger.warning(
                "read cache: its %s bounds are %.0f%% used: %s flows are not loaded, their registrations read the "
                "store; raise read_cache_bound_segments (TAMS_READ_CACHE_BOUND_SEGMENTS) to keep every live flow",
                f"{self.bounds_only.capacity:,}",
                100 * self.bounds_only.weight / max(1, self.bounds_only.capacity),
                waiting,
            )

    def _load_lock(self, flow_id: Hashable) -> threading.Lock:
        with self._loading_guard:
            if len(self._loading) > 1024:  # locks of flows loaded long ago
                self._loading = {k: v for k, v in self._loading.items() if v.locked()}
            return self._loading.setdefault(flow_id, threading.Lock())

    # -- the change feed -----------------------------------------------------------------------------------------
    def caches(self) -> tuple[KeyedCache[Entry], KeyedCache[Entry]]:
        return self.with_rows, self.bounds_only

    def settled(self) -> None:
        """A transaction's changes are all applied: let go of its rows."""
        self._split = None

    def appender(self, rows: pa.Table, cache: KeyedCache[Entry]) -> Callable[[Hashable, Entry], Entry | None]:
        """How a committed insert of ``rows`` changes a flow's entry in ``cache``."""
        limit = self.flow_rows if cache is self.with_rows else self.bound_segments
        last = self._split
        by_flow = last[1] if last is not None and last[0] is rows else _by_flow(conformed(rows, _SEGMENTS))
        self._split = (rows, by_flow)  # the other tier's appender of this change splits nothing again

        def update(flow_id: Hashable, timeline: Entry) -> Entry | None:
            if not isinstance(timeline, Timeline):  # a flow no timeline holds stays so
                return timeline
            try:
                grown = timeline.appended(*by_flow(flow_id))
            except Exception:  # the write has committed: never fail it, drop the entry (reloaded on use)
                logger.exception("could not extend the cached timeline of flow %s; dropping it", flow_id)
                return None
            if grown is None or grown.n > limit:
                return None  # reloaded on use, into the tier its length calls for
            return grown

        return update


def _canonical(table: pa.Table) -> pa.Table:
    """``table`` in the types writes insert (DuckDB answers ``created`` as ``timestamp[us, tz=Etc/UTC]``, writes
    carry ``tz=UTC``): cast once when a flow is loaded, so that appending a write's rows casts nothing (a cast
    of every appended row per flow per commit cost 0.2-0.3 ms in the writer)."""
    if table.schema.names != _SEGMENTS.names or table.schema == _SEGMENTS:
        return table
    return table.cast(_SEGMENTS)


def _runs(rows: pa.Table) -> list[tuple[Hashable, pa.Table]]:
    """``rows`` ordered by ``flow_id`` as (flow id, its rows) runs: slices, in order."""
    return [(flow_id, rows.slice(at, n)) for flow_id, at, n in _run_bounds(rows)]


def _run_bounds(rows: pa.Table) -> list[tuple[Hashable, int, int]]:
    """``(flow id, first position, rows)`` of each run of ``rows`` ordered by ``flow_id``, in order."""
    if not rows.num_rows:
        return []
    if rows.num_rows == 1:  # a live recorder's segment: no Arrow call
        return [(rows.column("flow_id")[0].as_py(), 0, 1)]
    encoded = pc.dictionary_encode(rows.column("flow_id")).combine_chunks()
    counts = np.bincount(np.asarray(encoded.indices.to_numpy(zero_copy_only=False)))
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    return [
        (flow_id, int(a), int(n)) for flow_id, a, n in zip(encoded.dictionary.to_pylist(), starts, counts, strict=True)
    ]


def _small_by_flow(rows: pa.Table) -> dict[Hashable, tuple[pa.Table, np.ndarray, np.ndarray]]:
    """:func:`_by_flow`'s split of a live batch's few rows, sorted in Python: a flow's rows in start order that lie
    together in ``rows`` are a slice of it, with no sort or take in Arrow (6 rows of 6 flows: 86 -> 39 µs)."""
    flows = column_values(rows.column("flow_id"))
    starts, ends = column_values(rows.column("start_ns")), column_values(rows.column("end_ns"))
    positions: dict[Hashable, list[int]] = {}
    for at in sorted(range(len(flows)), key=lambda i: (flows[i], starts[i])):
        positions.setdefault(flows[at], []).append(at)
    parts: dict[Hashable, tuple[pa.Table, np.ndarray, np.ndarray]] = {}
    for flow_id, ats in positions.items():
        together = ats == list(range(ats[0], ats[0] + len(ats)))
        table = rows.slice(ats[0], len(ats)) if together else rows.take(ats)
        parts[flow_id] = (
            table,
            np.array([starts[i] for i in ats], dtype=np.int64),
            np.array([ends[i] for i in ats], dtype=np.int64),
        )
    return parts


def _by_flow(rows: pa.Table) -> Callable[[Hashable], tuple[pa.Table, np.ndarray, np.ndarray]]:
    """``rows`` of one flow, in start order, with their starts and ends, by flow id: a batch's insert is split
    once (when first asked), not filtered again for every flow it touched, and its bounds become numpy once
    (a live batch holds one row of each of many flows: per flow only slices, no Arrow call, each of which
    would hand the GIL over on the writer thread)."""
    parts: dict[Hashable, tuple[pa.Table, np.ndarray, np.ndarray]] = {}

    def of(flow_id: Hashable) -> tuple[pa.Table, np.ndarray, np.ndarray]:
        if not parts and 1 < rows.num_rows <= SMALL:
            parts.update(_small_by_flow(rows))
        elif not parts and rows.num_rows:
            table = rows
            if rows.num_rows > 1:
                table = rows.take(pc.sort_indices(rows, [("flow_id", "ascending"), ("start_ns", "ascending")]))
            start, end = int64(table.column("start_ns")), int64(table.column("end_ns"))
            for f, at, n in _run_bounds(table):
                parts[f] = (table.slice(at, n), start[at : at + n], end[at : at + n])
        empty = np.zeros(0, dtype=np.int64)
        return parts.get(flow_id, (rows.slice(0, 0), empty, empty))

    return of
