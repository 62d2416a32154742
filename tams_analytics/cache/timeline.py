"""One flow's segments in memory: sorted by ``start_ns``, searched with binary searches, rows as dicts.

A :class:`Timeline` answers a query on one flow's segments (the predicates of a page, an overlap
check, a flow's extent) as the store would: the integer bounds on ``start_ns``/``end_ns`` narrow the
search to a slice by binary search, then every predicate is evaluated exactly on that slice
(:class:`Mask`, SQL semantics: a NULL compares false). A predicate it cannot evaluate raises
:class:`UncachedQuery` and the caller asks the store.
"""

from __future__ import annotations

import itertools
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from tams_analytics.predicates import AllOf, AnyOf, Const, InSubquery, Predicate, Term, Visitor, conjuncts
from tams_analytics.pyrows import table_rows

if TYPE_CHECKING:
    from tams_analytics.engines.base import OrderBy

__all__ = ["Mask", "RowBlocks", "Timeline", "UncachedQuery"]

_serials = itertools.count()


class UncachedQuery(Exception):
    """A query a timeline cannot answer exactly: the caller asks the store."""


@dataclass(frozen=True)
class Timeline:
    """One flow's segments in ``start_ns`` order, with the arrays binary searches need."""

    rows: pa.Table
    start: np.ndarray
    end: np.ndarray
    #: running maximum of ``end``: the first index whose end can pass a lower bound
    end_max: np.ndarray
    #: unique per timeline (a grown timeline is a new one): keys its rows in :class:`RowBlocks`
    serial: int = field(default_factory=lambda: next(_serials))

    @classmethod
    def of(cls, rows: pa.Table) -> Timeline:
        """From a flow's rows in any order."""
        if rows.num_rows:
            rows = rows.take(pc.sort_indices(rows, [("start_ns", "ascending")]))
        rows = rows.combine_chunks()
        start = _int64(rows.column("start_ns"))
        end = _int64(rows.column("end_ns"))
        return cls(rows, start, end, np.maximum.accumulate(end) if len(end) else end)

    def appended(self, new: pa.Table) -> Timeline | None:
        """This timeline with ``new`` rows added, when they all start after its last segment (the
        live edge); None otherwise (the caller drops the entry)."""
        if not new.num_rows:
            return self
        tail = Timeline.of(new.select(self.rows.column_names).cast(self.rows.schema))
        if len(self.start) and tail.start[0] <= self.start[-1]:
            return None
        rows = pa.concat_tables([self.rows, tail.rows])
        if rows.column(0).num_chunks > 32:
            rows = rows.combine_chunks()
        top = self.end_max[-1] if len(self.end_max) else np.iinfo(np.int64).min
        return Timeline(
            rows,
            np.concatenate([self.start, tail.start]),
            np.concatenate([self.end, tail.end]),
            np.concatenate([self.end_max, np.maximum(tail.end_max, top)]),
        )

    @property
    def size(self) -> int:
        return self.rows.num_rows

    def indices(self, where: Sequence[Predicate], *, order_by: OrderBy = (), limit: int | None = None) -> np.ndarray:
        """Positions of the rows matching every predicate (on this flow's columns), in the order of
        ``order_by`` (``start_ns`` or ``end_ns``, either way; ties in ``start_ns`` order), at most
        ``limit``: the store's ``ORDER BY ... LIMIT`` answer."""
        lo, hi = 0, len(self.start)
        for term in conjuncts(where):
            if not isinstance(term, Term) or not isinstance(term.value, int) or isinstance(term.value, bool):
                continue
            if term.column == "start_ns":
                side = "left" if term.op in ("<", ">=") else "right"
                cut = int(np.searchsorted(self.start, term.value, side=side))
                if term.op in ("<", "<="):
                    hi = min(hi, cut)
                elif term.op in (">", ">="):
                    lo = max(lo, cut)
            elif term.column == "end_ns" and term.op in (">", ">="):
                side = "right" if term.op == ">" else "left"
                lo = max(lo, int(np.searchsorted(self.end_max, term.value, side=side)))
        if lo >= hi:
            return np.empty(0, dtype=np.int64)
        # the bounds only narrow the search: every predicate is still evaluated exactly on what is left
        idx = np.flatnonzero(AllOf(tuple(where)).accept(Mask(self, lo, hi))) + lo
        idx = self._ordered(idx, order_by)
        return idx if limit is None else idx[: max(0, int(limit))]

    def _ordered(self, idx: np.ndarray, order_by: OrderBy) -> np.ndarray:
        if not order_by:
            return idx
        (column, descending), *rest = order_by
        if rest or column not in ("start_ns", "end_ns"):
            raise UncachedQuery(f"order by {order_by!r}")
        if column == "end_ns":
            idx = idx[np.argsort(self.end[idx], kind="stable")]
        return idx[::-1] if descending else idx

    def select(self, idx: np.ndarray, columns: Sequence[str] | None = None) -> pa.Table:
        """The rows at ``idx`` as Arrow."""
        rows = self.rows if columns is None else self.rows.select(list(columns))
        if len(idx) and idx[-1] - idx[0] == len(idx) - 1:
            return rows.slice(int(idx[0]), len(idx))
        return rows.take(pa.array(idx, pa.int64()))


class RowBlocks:
    """Timeline rows as Python dicts, converted a block at a time and kept, least recently used out.

    A page of a cached timeline is then built without any Arrow call: on a threaded server every
    such call releases the GIL, and the hand-overs cost more than the conversion itself. The dicts
    are shared by every reader: nobody may modify them.
    """

    SIZE = 256

    def __init__(self, capacity: int = 128) -> None:
        self.capacity = capacity
        self._blocks: OrderedDict[tuple[int, int], list[dict[str, Any]]] = OrderedDict()
        self._lock = threading.Lock()

    def rows(self, timeline: Timeline, idx: Sequence[int]) -> list[dict[str, Any]]:
        """The rows at positions ``idx`` of ``timeline`` as (shared, read-only) dicts of every column."""
        out: list[dict[str, Any]] = []
        block_no, block = -1, []
        for i in idx:
            if i // self.SIZE != block_no:
                block_no = int(i) // self.SIZE
                block = self._block(timeline, block_no)
            out.append(block[i - block_no * self.SIZE])
        return out

    def _block(self, timeline: Timeline, block_no: int) -> list[dict[str, Any]]:
        key = (timeline.serial, block_no)
        with self._lock:
            block = self._blocks.get(key)
            if block is not None:
                self._blocks.move_to_end(key)
                return block
        block = table_rows(timeline.rows.slice(block_no * self.SIZE, self.SIZE), timeline.rows.column_names)
        with self._lock:
            self._blocks[key] = block
            while len(self._blocks) > self.capacity:
                self._blocks.popitem(last=False)
        return block


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
        if p.column in ("start_ns", "end_ns") and p.op in _NUMPY_OPS and isinstance(p.value, int):
            arr = (self.t.start if p.column == "start_ns" else self.t.end)[self.lo : self.lo + self.n]
            return np.asarray(_NUMPY_OPS[p.op](arr, p.value))
        if p.column not in self.t.rows.column_names:
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


def _int64(col: pa.ChunkedArray) -> np.ndarray:
    return np.asarray(col.to_numpy(), dtype=np.int64)
