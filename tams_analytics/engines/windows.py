"""Pages of one flow's segments through a window on ``start_ns``, for engines without an index to walk.

A page is ``WHERE flow_id = ? ORDER BY start_ns [DESC] LIMIT n``. DuckDB has no index it can walk in
``start_ns`` order, so it reads every row of the flow, and the newest-first page of a long flow grown by
live ingest every row of the row groups the flow shares (137 ms at 100k segments, 491 ms at 10M,
measured); VAST runs ordering and limit client-side, after reading the ordering column of the whole flow.
Both skip data by ``start_ns`` though: DuckDB's zone maps (each row group's min and max) prune whole row
groups, and segments are stored nearly in time order (a recorder appends them as they happen, a bulk load
brings a flow's segments together); VAST prunes by its sorting key ``(flow_id, start_ns)``. So a page first
asks for the rows inside a window on ``start_ns`` where it most likely lies, and widens the window when it
holds fewer rows than the page wants.

The window is one-sided (``start_ns < edge`` for a page in time order, ``start_ns >= edge`` newest
first), which keeps the answer exact whatever the window: when it holds ``limit`` rows, every row outside
it sorts after them. Its width comes from the flow's extent (the lowest and highest start, the number of
segments), read once per flow and widened by the engine's own inserts and by the starts pages return
(which is how an engine that shares its store with other writers, VAST, learns of their segments).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final, TypeVar

import pyarrow as pa
import pyarrow.compute as pc

from tams_analytics.engines.base import OrderBy
from tams_analytics.predicates import Predicate, Term, conjuncts, pinned
from tams_analytics.pyrows import SMALL, column_values

#: a page's answer: Arrow, or rows as dicts
Answer = TypeVar("Answer", pa.Table, list[dict[str, Any]])


def _size(answer: pa.Table | list[dict[str, Any]]) -> int:
    return answer.num_rows if isinstance(answer, pa.Table) else len(answer)


__all__ = ["Extent", "FlowExtents"]

#: pages up to this many rows take a window (a larger limit reads much of the flow anyway)
MAX_LIMIT: Final = 10_000
#: the first window is this many times the page's expected span; each retry widens it by ``GROWTH``
FIRST_WIDTH: Final = 2
GROWTH: Final = 16
#: windows tried before the plain query
TRIES: Final = 3
#: extents kept (flows); beyond it they are forgotten and read again when asked for
CAPACITY: Final = 200_000


@dataclass(frozen=True)
class Extent:
    """One flow's segment starts as last seen: from ``lo`` to ``hi``, ``n`` of them (none: ``n`` 0)."""

    lo: int
    hi: int
    n: int

    def widened(self, lo: int, hi: int, n: int) -> Extent:
        if not self.n:
            return Extent(lo, hi, n)
        return Extent(min(self.lo, lo), max(self.hi, hi), self.n + n)

    @property
    def step(self) -> float:
        """The mean distance between two starts."""
        return (self.hi - self.lo) / max(self.n - 1, 1)


#: the columns a windowed page may filter on besides its flow (other filters, such as an object id, can
#: leave every window short of a page: those queries run as they are)
_BOUNDS: Final = frozenset({"flow_id", "start_ns", "end_ns"})


def _windowable(where: Sequence[Predicate]) -> bool:
    """Whether ``where`` is an AND of comparisons on the flow and the segments' bounds only."""
    return all(isinstance(t, Term) and t.column in _BOUNDS for t in conjuncts(where))


def _bound(where: Sequence[Predicate], *, lower: bool, columns: tuple[str, ...] = ("start_ns",)) -> int | None:
    """The tightest bound ``where`` puts on ``columns`` (a cursor, or the timerange it overlaps): a lower
    one, or an upper one; None if it puts none."""
    best: int | None = None
    for term in conjuncts(where):
        if isinstance(term, Term) and term.column in columns and term.op in ("<", "<=", ">", ">="):
            if (term.op in (">", ">=")) == lower and isinstance(term.value, int):
                value = int(term.value)
                best = value if best is None else (max(best, value) if lower else min(best, value))
    return best


class FlowExtents:
    """The extents of the flows pages have asked for, widened by the engine's inserts.

    An extent only places windows: an answer never depends on it (a window that holds too few rows is
    widened, and the last resort is the plain query), so an extent read while a write was in flight, or
    left wide by deleted segments, costs at most a wider window. An engine that shares its store with other
    writers gives ``max_age``: an extent is read again after that many seconds (their segments change the
    flow's density, which the starts pages return do not tell).
    """

    def __init__(self, max_age: float | None = None) -> None:
        self.max_age = max_age
        self._lock = threading.Lock()
        self._extents: dict[str, Extent] = {}
        #: when each extent was read (with ``max_age``)
        self._read_at: dict[str, float] = {}

    def inserted(self, table: str, rows: pa.Table) -> None:
        """Widen the kept extents of the flows the engine inserts ``rows`` of ``table`` into."""
        if table != "segments" or not self._extents:
            return
        if rows.num_rows <= SMALL:  # a live batch: Python's loop costs less than an Arrow group-by's call
            found: dict[str, tuple[int, int, int]] = {}
            flows, starts = column_values(rows.column("flow_id")), column_values(rows.column("start_ns"))
            for flow_id, start in zip(flows, starts, strict=True):
                lo, hi, n = found.get(flow_id, (start, start, 0))
                found[flow_id] = (min(lo, start), max(hi, start), n + 1)
            spans = [(flow_id, lo, hi, n) for flow_id, (lo, hi, n) in found.items()]
        else:
            with self._lock:
                known = [f for f in pc.unique(rows.column("flow_id")).to_pylist() if f in self._extents]
            if not known:
                return
            g = rows.group_by("flow_id").aggregate([("start_ns", "min"), ("start_ns", "max"), ("start_ns", "count")])
            spans = list(
                zip(
                    g.column("flow_id").to_pylist(),
                    g.column("start_ns_min").to_pylist(),
                    g.column("start_ns_max").to_pylist(),
                    g.column("start_ns_count").to_pylist(),
                    strict=True,
                )
            )
        with self._lock:
            for flow_id, lo, hi, n in spans:
                kept = self._extents.get(flow_id)
                if kept is not None:
                    self._extents[flow_id] = kept.widened(lo, hi, n)

    def extent(self, flow_id: str, read: Callable[[], tuple[int | None, int | None, int]]) -> Extent:
        """The flow's extent; ``read`` gives ``(min start, max start, count)`` from the store when it is
        not kept (a flow without segments is kept too: its ``n`` is 0)."""
        with self._lock:
            kept = self._extents.get(flow_id)
            stale = self.max_age is not None and time.monotonic() - self._read_at.get(flow_id, 0.0) > self.max_age
        if kept is not None and not stale:
            return kept
        lo, hi, n = read()
        extent = Extent(lo, hi, n) if lo is not None and hi is not None else Extent(0, 0, 0)
        with self._lock:
            if len(self._extents) >= CAPACITY:
                self._extents.clear()
                self._read_at.clear()
            if stale:
                self._extents[flow_id] = extent
            if self.max_age is not None:
                self._read_at[flow_id] = time.monotonic()
            return self._extents.setdefault(flow_id, extent)

    # -- pages ---------------------------------------------------------------------------------------------
    def page(
        self,
        name: str,
        where: Sequence[Predicate],
        order_by: OrderBy,
        limit: int | None,
        run: Callable[[Sequence[Predicate]], Answer],
        read: Callable[[str], tuple[int | None, int | None, int]],
    ) -> Answer | None:
        """The answer to a query of ``name`` if it is a page of one flow's segments ordered by ``start_ns``
        (``run`` runs it with extra conjuncts, as Arrow or as rows, ``read`` reads a flow's extent), else None
        (the caller runs the query as it is)."""
        if name != "segments" or not order_by or order_by[0][0] != "start_ns":
            return None
        if limit is None or not 0 < limit <= MAX_LIMIT or not _windowable(where):
            return None
        flows = pinned(where, "flow_id")
        if flows is None or len(flows) != 1:
            return None
        flow_id = flows[0]
        extent = self.extent(flow_id, lambda: read(flow_id))
        if extent.n <= 2 * limit:
            return None
        width = FIRST_WIDTH * limit * extent.step
        if order_by[0][1]:  # newest first: windows reach back from the cursor (or the newest start)
            upper = _bound(where, lower=False)
            # past the page's own lower bound (a timerange's start) a window saves nothing: the plain query
            stop = _bound(where, lower=True, columns=("start_ns", "end_ns"))
            start = min(extent.hi if upper is None else upper, extent.hi)
            floor = max(extent.lo, stop) if stop is not None else extent.lo
            for _ in range(TRIES):
                edge = int(start - width)
                if edge <= floor:
                    break
                table = run([*where, Term("start_ns", ">=", edge)])
                if _size(table) >= limit:
                    return self._seen(flow_id, table)
                width *= GROWTH
        else:  # in time order: windows reach forward from the cursor (or the timerange's start)
            lower = _bound(where, lower=True, columns=("start_ns", "end_ns"))
            start, stop = max(extent.lo if lower is None else lower, extent.lo), _bound(where, lower=False)
            ceiling = min(extent.hi, stop) if stop is not None else extent.hi
            for _ in range(TRIES):
                edge = int(start + width) + 1
                if edge > ceiling:
                    break
                table = run([*where, Term("start_ns", "<", edge)])
                if _size(table) >= limit:
                    return self._seen(flow_id, table)
                width *= GROWTH
        return run(list(where))

    def _seen(self, flow_id: str, page: Answer) -> Answer:
        """``page``, its starts widening the flow's extent (segments other writers added since it was read)."""
        starts = _starts(page)
        if starts is not None:
            lo, hi = starts
            with self._lock:
                kept = self._extents.get(flow_id)
                if kept is not None and kept.n and (lo < kept.lo or hi > kept.hi):
                    self._extents[flow_id] = kept.widened(lo, hi, 0)
        return page


def _starts(page: pa.Table | list[dict[str, Any]]) -> tuple[int, int] | None:
    """The lowest and highest start of a page's rows (None: no rows, or no starts)."""
    if isinstance(page, pa.Table):
        if "start_ns" not in page.column_names or not page.num_rows:
            return None
        mm = pc.min_max(page.column("start_ns"))
        return int(mm["min"].as_py()), int(mm["max"].as_py())
    if not page or "start_ns" not in page[0]:
        return None
    first, last = page[0]["start_ns"], page[-1]["start_ns"]  # a page is in start order, one way or the other
    return min(first, last), max(first, last)
