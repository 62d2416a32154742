"""One flow's segments in memory: sorted by ``start_ns``, searched with binary searches, rows as dicts.

A :class:`Timeline` answers a query on one flow's segments (the predicates of a page, an overlap
check, a flow's extent) as the store would: the integer bounds on ``start_ns``/``end_ns`` narrow the
search to a slice by binary search, then every other predicate is evaluated exactly on as much of that
slice as the answer needs (:class:`Mask`, SQL semantics: a NULL compares false), so a page costs
O(log n + page) whatever the flow's length. A predicate it cannot evaluate raises :class:`UncachedQuery`
and the caller asks the store.

A timeline holds either the flow's rows (Arrow) and their bounds, or only the bounds (a long flow, or one
only written to: 16 bytes a segment) and the rows of its newest segments (its *tail*, what the live edge's
readers ask for): then it still answers which segments a query selects, and their bounds, and the caller
reads the rows the tail lacks from the store by their exact ``start_ns`` range.

Appending at the live edge is amortised O(1): the bound arrays grow in place into spare capacity that
no earlier version of the timeline can see (readers holding an older version keep a consistent view).
"""

from __future__ import annotations

import functools
import itertools
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from tams_analytics.predicates import AllOf, AnyOf, Const, InSubquery, Predicate, Term, Visitor, conjuncts
from tams_analytics.pyrows import table_rows

if TYPE_CHECKING:
    from tams_analytics.engines.base import OrderBy

__all__ = ["BOUNDS", "Mask", "RowBlocks", "Timeline", "UncachedQuery", "conformed", "int64"]

_lineages = itertools.count()
#: the columns a bounds-only timeline holds
BOUNDS = ("start_ns", "end_ns")
#: rows of its newest segments a bounds-only timeline keeps
TAIL_ROWS = 128
#: a tail row weighs as many bounds as its bytes would hold (about 200 bytes against 16)
TAIL_WEIGHT = 12
#: appended rows a timeline keeps as slices of their batches before it joins them (one Arrow join per this many
#: appends to a flow nobody reads, and no batch's rows held longer than that): each timeline joins as its count of
#: segments passes a multiple of this, shifted by its phase (:func:`phase`), so that timelines appended together join
#: at different appends (sizes of their own would meet at common multiples). A slice is a table of its own: for the
#: segments' 14 columns about 7 KB of Arrow's C++ objects (arrays, their data, buffers), however few its rows, which
#: neither Arrow's pool nor Python's allocator counts. At 64, 1,600 live flows held about 600 MB of them (the store
#: process at 1.1 GB on a young store after 5 minutes at 400 POSTs/s); at 8, with 3.5 slices a flow on average,
#: about 40 MB, and a join of 8 costs no more a row than a join of 64 (36 against 48 µs an append, on 400 flows)
MAX_PENDING = 8
#: chunks a timeline's rows may have before they are levelled (:func:`levelled`)
MAX_CHUNKS = 16
#: rows a timeline's table may have to be joined into one chunk (:func:`absorbed`): copying this few costs less than
#: keeping their chunks, each column's chunk about 500 bytes of Arrow's C++ objects (400 flows of 300 rows: 35 MB
#: against 56 MB with levelled chunks, at the same cost an append)
COMBINED_ROWS = 4096


def phase(number: int) -> float:
    """A number in ``[0, 1)`` spread evenly over timelines (by a number each is given when loaded, kept as it
    grows), that staggers their upkeep.

    Live flows loaded together and appended at one rate would otherwise join their appended rows (and cut their
    tails back) in the same few seconds, each time: measured on 1,600 live flows at 400 POSTs/s, the writer's
    thread spent 8 s of one 15-s window joining, and POSTs waited up to 7 s, every 64 appends (256 s)."""
    return ((number * 2_654_435_761) % 4096) / 4096


_staggers = itertools.count()


def absorbed(held: pa.Table, pending: Sequence[pa.Table], max_chunks: int = MAX_CHUNKS) -> pa.Table:
    """``held`` with the ``pending`` rows after it, without copying ``held``'s rows but now and then.

    The join is a concatenation of chunks (2 µs), until the table has more than ``max_chunks``; then its chunks
    are levelled (:func:`levelled`). Combining the whole table instead copies every row of a long flow at each
    join (12 ms at 100,000 rows: a live flow's p99). A table of at most :data:`COMBINED_ROWS` rows is combined into
    one chunk: its copy is cheaper than its chunks' keep."""
    joined = pa.concat_tables([held, *pending])
    if joined.num_rows <= COMBINED_ROWS:
        return joined.combine_chunks()
    return joined if joined.column(0).num_chunks <= max_chunks else levelled(joined)


def levelled(table: pa.Table) -> pa.Table:
    """``table`` in chunks of decreasing sizes, as a binary counter carries: its leading chunks that already
    decrease are kept, the rest become one chunk, merged first with the chunks before it while the one before is
    less than twice its size. So a table that grows row by row keeps O(log n) chunks, each more than twice the
    next, and a row is copied O(log n) times over all its appends."""
    chunks = [b for b in table.to_batches() if b.num_rows]
    kept = 1
    while kept < len(chunks) and chunks[kept].num_rows < chunks[kept - 1].num_rows:
        kept += 1
    levels, fresh = chunks[:kept], chunks[kept:]
    rows = sum(b.num_rows for b in fresh)
    while levels and levels[-1].num_rows < 2 * rows:
        rows += levels[-1].num_rows
        fresh.insert(0, levels.pop())
    levels += pa.Table.from_batches(fresh).combine_chunks().to_batches() if len(fresh) > 1 else fresh
    return pa.Table.from_batches(levels, schema=table.schema)


class UncachedQuery(Exception):
    """A query a timeline cannot answer exactly: the caller asks the store."""


class _Growable:
    """int64 arrays with spare capacity, shared by the versions of one timeline; ``length`` is how many
    entries the newest version uses (only it may write beyond)."""

    def __init__(self, start: np.ndarray, end: np.ndarray, spare: int) -> None:
        n = len(start)
        cap = n + spare
        self.start = np.empty(cap, dtype=np.int64)
        self.end = np.empty(cap, dtype=np.int64)
        self.start[:n], self.end[:n] = start, end
        self.length = n
        self.lock = threading.Lock()

    def grown(self, n: int, start: np.ndarray, end: np.ndarray) -> _Growable | None:
        """These arrays with ``start``/``end`` written at ``n`` (in place when ``n`` is the newest length and
        there is room; a new, larger copy otherwise); None when an older version asks to grow in place."""
        k = len(start)
        with self.lock:
            if n == self.length and n + k <= len(self.start):
                self.start[n : n + k], self.end[n : n + k] = start, end
                self.length = n + k
                return self
        if n != self.length:
            return None
        bigger = _Growable(self.start[:n], self.end[:n], max(1024, 2 * (n + k)))
        return bigger.grown(n, start, end)


@dataclass(frozen=True, eq=False)
class Timeline:
    """One flow's segments in ``start_ns`` order: their rows (None for a bounds-only timeline) and the
    arrays binary searches need. Segments of a flow never overlap, so their ends are sorted too.

    Rows appended at the live edge are kept as they came (``_pending``: slices of the batches that wrote them)
    and joined to the rows, or the tail, when a reader first asks for them (:attr:`rows`, :attr:`tail`): the
    segment writer appends one row to each of many flows per batch, and joining Arrow tables there would
    hand the GIL to the event loop and wait to get it back once per flow (see :class:`RowBlocks`)."""

    #: the rows (or the tail's rows) joined so far; :attr:`rows` and :attr:`tail` add the pending ones
    _held: pa.Table | None
    n: int
    _arrays: _Growable
    #: shared by the versions a timeline grows into: keys its row blocks in :class:`RowBlocks`
    lineage: int = field(default_factory=lambda: next(_lineages))
    #: whether ``_held`` is a tail (the rows of the newest segments) of a bounds-only timeline
    _is_tail: bool = False
    #: how many rows the tail keeps (it grows to twice that before it is cut back)
    tail_rows: int = TAIL_ROWS
    #: rows appended after ``_held``, in order, not joined yet
    _pending: tuple[pa.Table, ...] = ()
    #: how many rows ``_held`` and ``_pending`` hold together
    _held_n: int = -1
    #: where in its rounds of upkeep this timeline is (:func:`phase`): kept by every version it grows into (flows
    #: loaded together grow their arrays together too)
    _stagger: float = field(default_factory=lambda: phase(next(_staggers)))

    def __post_init__(self) -> None:
        if self._held_n < 0:
            held = self._held.num_rows if self._held is not None else 0
            object.__setattr__(self, "_held_n", held + sum(t.num_rows for t in self._pending))

    @classmethod
    def of(cls, rows: pa.Table, *, bounds_only: bool = False, tail: pa.Table | None = None) -> Timeline:
        """From a flow's rows in any order (with ``bounds_only``, only their ``start_ns``/``end_ns``, and
        ``tail``: the rows of the newest of them, in start order)."""
        if rows.num_rows:
            rows = rows.take(pc.sort_indices(rows, [("start_ns", "ascending")]))
        start = int64(rows.column("start_ns"))
        end = int64(rows.column("end_ns"))
        if len(end) > 1 and np.any(end[1:] < end[:-1]):
            raise UncachedQuery("segments of the flow overlap: its ends are not sorted")
        arrays = _Growable(start, end, max(64, len(start) // 8))
        if not bounds_only:
            return cls(rows.combine_chunks(), len(start), arrays)
        return cls(None, len(start), arrays).with_tail(tail)

    def with_tail(self, tail: pa.Table | None, tail_rows: int = TAIL_ROWS) -> Timeline:
        """This bounds-only timeline with ``tail``: the rows of its newest segments, in start order."""
        held = tail.combine_chunks() if tail is not None else None
        return Timeline(held, self.n, self._arrays, self.lineage, held is not None, tail_rows, _stagger=self._stagger)

    @functools.cached_property
    def rows(self) -> pa.Table | None:
        """The flow's rows (None for a bounds-only timeline)."""
        return None if self._is_tail or self._held is None else self._joined()

    @functools.cached_property
    def tail(self) -> pa.Table | None:
        """A bounds-only timeline's newest rows: rows ``n - len(tail)`` to ``n`` (None: no rows kept)."""
        return self._joined() if self._is_tail else None

    def _joined(self) -> pa.Table:
        assert self._held is not None
        return absorbed(self._held, self._pending) if self._pending else self._held

    @property
    def tail_start(self) -> int:
        """The position of the first row the tail holds (``n`` without a tail)."""
        return self.n - (self._held_n if self._is_tail else 0)

    @property
    def start(self) -> np.ndarray:
        return self._arrays.start[: self.n]

    @property
    def end(self) -> np.ndarray:
        return self._arrays.end[: self.n]

    @property
    def size(self) -> int:
        """The timeline's weight in a cache: its segments, and a tail's rows as 12 bounds each (their bytes)."""
        return self.n + TAIL_WEIGHT * (self._held_n if self._is_tail else 0)

    @property
    def bounds_only(self) -> bool:
        return self._held is None or self._is_tail

    def appended(
        self, new: pa.Table, start: np.ndarray | None = None, end: np.ndarray | None = None
    ) -> Timeline | None:
        """This timeline with ``new`` rows added, when they all start after its last segment and keep the
        ends sorted (the live edge); None otherwise (the caller drops the entry). ``start``/``end``: the new rows'
        bounds, when the caller has them as arrays already (rows in start order)."""
        if not new.num_rows:
            return self
        if start is None or end is None:
            if new.num_rows > 1:
                new = new.take(pc.sort_indices(new, [("start_ns", "ascending")]))
            start, end = int64(new.column("start_ns")), int64(new.column("end_ns"))
        last_start = self._arrays.start[self.n - 1] if self.n else None
        last_end = self._arrays.end[self.n - 1] if self.n else None
        if last_start is not None and (start[0] <= last_start or end[0] < last_end):
            return None
        if len(end) > 1 and np.any(end[1:] < end[:-1]):
            return None
        arrays = self._arrays.grown(self.n, start, end)
        if arrays is None:
            return None
        lineage = self.lineage if arrays is self._arrays else next(_lineages)
        n = self.n + len(start)
        if self._held is None:
            return Timeline(None, n, arrays, lineage, False, self.tail_rows, _stagger=self._stagger)
        joined = self.__dict__.get("tail" if self._is_tail else "rows")  # a reader joined this version's rows
        held, pending = (joined, ()) if joined is not None else (self._held, self._pending)
        pending = (*pending, conformed(new, self._held.schema))
        grown = Timeline(held, n, arrays, lineage, self._is_tail, self.tail_rows, pending, -1, self._stagger)
        stagger = self._stagger
        if self._is_tail and grown._held_n > self.tail_rows * (1.5 + stagger / 2):  # (at most twice its rows)
            tail = grown._joined()
            kept = tail.slice(tail.num_rows - self.tail_rows).combine_chunks()
            return Timeline(kept, n, arrays, lineage, True, self.tail_rows, _stagger=stagger)
        shift = int(stagger * MAX_PENDING)  # (its phase among timelines appended together)
        if (self.n + shift) // MAX_PENDING != (n + shift) // MAX_PENDING:  # no growing list of slices to hold
            return Timeline(grown._joined(), n, arrays, lineage, self._is_tail, self.tail_rows, _stagger=stagger)
        return grown

    # -- queries ---------------------------------------------------------------------------------------------
    def indices(self, where: Sequence[Predicate], *, order_by: OrderBy = (), limit: int | None = None) -> np.ndarray:
        """Positions of the rows matching every predicate (on this flow's columns), in the order of
        ``order_by`` (``start_ns`` or ``end_ns``, either way), at most ``limit``: the store's
        ``ORDER BY ... LIMIT`` answer."""
        descending = False
        if order_by:
            (column, descending), *rest_order = order_by
            if rest_order or column not in BOUNDS:
                raise UncachedQuery(f"order by {order_by!r}")
        lo, hi = 0, self.n
        rest: list[Predicate] = []
        start, end = self.start, self.end
        for term in conjuncts(where):
            if isinstance(term, Term) and term.column in BOUNDS and _is_int(term.value) and term.op in _BOUND_OPS:
                array = start if term.column == "start_ns" else end
                side: Literal["left", "right"] = "left" if term.op in ("<", ">=") else "right"
                cut = int(np.searchsorted(array, term.value, side=side))
                if term.op in ("<", "<="):
                    hi = min(hi, cut)
                else:
                    lo = max(lo, cut)
            else:
                rest.append(term)
        if lo >= hi:
            return np.empty(0, dtype=np.int64)
        if limit is not None and limit <= 0:
            return np.empty(0, dtype=np.int64)
        return self._scan(lo, hi, rest, descending, limit)

    def _scan(self, lo: int, hi: int, rest: list[Predicate], descending: bool, limit: int | None) -> np.ndarray:
        """Positions in ``lo:hi`` matching ``rest``, from the front (or the back), at most ``limit``: only as
        many rows are evaluated as the answer needs (a chunk, doubling)."""
        if not rest:  # only the positions the answer holds: a page of a 10M-segment flow is not 10M positions
            if limit is not None:
                lo, hi = (max(lo, hi - limit), hi) if descending else (lo, min(hi, lo + limit))
            idx = np.arange(lo, hi, dtype=np.int64)
            return idx[::-1] if descending else idx
        if limit is None:
            idx = np.flatnonzero(AllOf(tuple(rest)).accept(Mask(self, lo, hi))) + lo
            return idx[::-1] if descending else idx
        found: list[np.ndarray] = []
        count, chunk = 0, max(64, 4 * limit)
        a, b = (hi, hi) if descending else (lo, lo)
        while count < limit and (a > lo if descending else b < hi):
            if descending:
                a, b = max(lo, a - chunk), a
            else:
                a, b = b, min(hi, b + chunk)
            part = np.flatnonzero(AllOf(tuple(rest)).accept(Mask(self, a, b))) + a
            part = part[::-1] if descending else part
            found.append(part)
            count += len(part)
            chunk *= 2
        idx = np.concatenate(found) if found else np.empty(0, dtype=np.int64)
        return idx[:limit]

    def in_tail(self, idx: np.ndarray) -> bool:
        """Whether a bounds-only timeline's tail holds the rows at ``idx``."""
        return self._is_tail and (not len(idx) or int(idx.min()) >= self.tail_start)

    def select(self, idx: np.ndarray, columns: Sequence[str] | None = None) -> pa.Table:
        """The rows at ``idx`` as Arrow (a bounds-only timeline: from its tail, or only ``start_ns``/``end_ns``)."""
        if self.bounds_only and self.in_tail(idx):
            assert self.tail is not None
            tail = self.tail if columns is None else self.tail.select(list(columns))
            return tail.take(pa.array(idx - self.tail_start, pa.int64()))
        if self.bounds_only:
            wanted = list(columns or BOUNDS)
            if not set(wanted) <= set(BOUNDS):
                raise UncachedQuery(f"a bounds-only timeline has no column {sorted(set(wanted) - set(BOUNDS))}")
            arrays = {"start_ns": self.start[idx], "end_ns": self.end[idx]}
            return pa.table({c: pa.array(arrays[c], pa.int64()) for c in wanted})
        assert self.rows is not None
        rows = self.rows if columns is None else self.rows.select(list(columns))
        if len(idx) and idx[-1] - idx[0] == len(idx) - 1:
            return rows.slice(int(idx[0]), len(idx))
        return rows.take(pa.array(idx, pa.int64()))


_BOUND_OPS = frozenset({"<", "<=", ">", ">="})


def conformed(new: pa.Table, schema: pa.Schema) -> pa.Table:
    """``new``'s columns of ``schema``, in its order and types (cast only when they differ; nothing at all, not
    even an Arrow call, when they are so already)."""
    if new.schema == schema:
        return new
    new = new.select(schema.names)
    return new if new.schema == schema else new.cast(schema)


def _is_int(value: Any) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


class RowBlocks:
    """Timeline rows as Python dicts, converted a block at a time (from the lowest row a read asks for to the
    block's end) and kept, least recently used out.

    A page of a cached timeline is then built without any Arrow call: on a threaded server every
    such call releases the GIL, and the hand-overs cost more than the conversion itself. Rows of a timeline's
    lineage never change at a position (appends only add rows after them), so a block serves every version
    of the timeline; the block at the live edge grows in place, converting only the rows appended since it
    was last read (readers of an older version index below their length). A bounds-only timeline's blocks
    hold the rows of its tail. The dicts are shared by every reader: nobody may modify them.
    """

    SIZE = 256

    def __init__(self, capacity: int = 128) -> None:
        self.capacity = capacity
        #: (lineage, block number) -> (the position of the block's first row, its rows from there on)
        self._blocks: OrderedDict[tuple[int, int], tuple[int, list[dict[str, Any]]]] = OrderedDict()
        self._lock = threading.Lock()

    def rows(self, timeline: Timeline, idx: np.ndarray | Sequence[int]) -> list[dict[str, Any]]:
        """The rows at positions ``idx`` of ``timeline`` as (shared, read-only) dicts of every column."""
        if timeline.bounds_only and not timeline.in_tail(np.asarray(idx, dtype=np.int64)):
            raise UncachedQuery("a bounds-only timeline has no rows there")
        # per block, the lowest row asked for: a block is converted from there (a live-edge read of one row
        # converts that row, not the block's up to 256, when the block was not kept, e.g. more live flows than
        # blocks)
        lowest: dict[int, int] = {}
        for i in idx:
            b = int(i) // self.SIZE
            if i < lowest.get(b, i + 1):
                lowest[b] = int(i)
        out: list[dict[str, Any]] = []
        block: list[dict[str, Any]] = []
        block_no, first = -1, 0
        for i in idx:
            if i // self.SIZE != block_no:
                block_no = int(i) // self.SIZE
                first, block = self._block(timeline, block_no, lowest[block_no])
            out.append(block[i - first])
        return out

    def _block(self, timeline: Timeline, block_no: int, needed: int) -> tuple[int, list[dict[str, Any]]]:
        """Block ``block_no`` of the timeline, from row ``needed`` (or a lower one already converted) to its
        last."""
        start = block_no * self.SIZE
        end = min(start + self.SIZE, timeline.n)
        low = max(start, needed) if not timeline.bounds_only else max(start, needed, timeline.tail_start)
        key = (timeline.lineage, block_no)
        with self._lock:
            entry = self._blocks.get(key)
            if entry is not None:
                self._blocks.move_to_end(key)
            first, block = entry if entry is not None and entry[0] <= low else (low, [])
            have = first + len(block)
            if have >= end:
                return first, block
        new = self._convert(timeline, have, end)
        with self._lock:
            current = self._blocks.get(key)
            if current is not None and current[1] is block:  # the kept list: extend it (others may have)
                block.extend(new[first + len(block) - have :])
                return first, block
            entry = (first, block[: have - first] + new)
            self._blocks[key] = entry
            while len(self._blocks) > self.capacity:
                self._blocks.popitem(last=False)
        return entry

    @staticmethod
    def _convert(timeline: Timeline, a: int, b: int) -> list[dict[str, Any]]:
        """Rows ``a`` to ``b`` of the timeline (of its tail, when bounds-only) as dicts."""
        table = timeline.tail if timeline.bounds_only else timeline.rows
        offset = timeline.tail_start if timeline.bounds_only else 0
        assert table is not None
        return table_rows(table.slice(a - offset, b - a), table.column_names)


_NUMPY_OPS: dict[str, Callable[[Any, Any], Any]] = {
    "==": np.equal,
    "!=": np.not_equal,
    "<": np.less,
    "<=": np.less_equal,
    ">": np.greater,
    ">=": np.greater_equal,
}


class Mask(Visitor[np.ndarray]):
    """A predicate over rows ``lo:hi`` of a timeline as a boolean array (SQL semantics: NULL compares
    false); what it cannot evaluate raises :class:`UncachedQuery`."""

    def __init__(self, timeline: Timeline, lo: int, hi: int) -> None:
        self.t, self.lo, self.n = timeline, lo, hi - lo

    def const(self, p: Const) -> np.ndarray:
        return np.full(self.n, bool(p.value))

    def all_of(self, p: AllOf) -> np.ndarray:
        out = np.ones(self.n, dtype=bool)
        for term in p.terms:
            out &= term.accept(self)
        return out

    def any_of(self, p: AnyOf) -> np.ndarray:
        out = np.zeros(self.n, dtype=bool)
        for term in p.terms:
            out |= term.accept(self)
        return out

    def term(self, p: Term) -> np.ndarray:
        if p.column in BOUNDS and p.op in _NUMPY_OPS and _is_int(p.value):
            arr = (self.t.start if p.column == "start_ns" else self.t.end)[self.lo : self.lo + self.n]
            return np.asarray(_NUMPY_OPS[p.op](arr, p.value))
        if self.t.bounds_only or self.t.rows is None or self.t.rows.schema.get_field_index(p.column) < 0:
            raise UncachedQuery(f"{p!r}")
        col = self.t.rows.column(p.column).slice(self.lo, self.n)
        if p.op in ("==", "!="):
            got = pc.equal(col, p.value) if p.op == "==" else pc.not_equal(col, p.value)
        elif p.op == "isin":
            got = pc.is_in(col, value_set=pa.array(list(p.value), col.type))
        elif p.op == "isnull":
            return np.asarray(pc.is_null(col).to_numpy(zero_copy_only=False), dtype=bool)
        else:
            raise UncachedQuery(f"{p!r}")
        return np.asarray(pc.fill_null(got, False).to_numpy(zero_copy_only=False), dtype=bool)

    def subquery(self, p: InSubquery) -> np.ndarray:
        raise UncachedQuery(f"{p!r}")


def int64(col: pa.ChunkedArray | pa.Array) -> np.ndarray:
    return np.asarray(col.to_numpy(), dtype=np.int64)
