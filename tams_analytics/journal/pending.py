"""Which rows journaled records not yet applied may change, and waiting for them: :class:`Pending`.

Each record's changes are noted by table and, for tables read by a key, by the key values they touch (a flow's
segments by ``flow_id``, an object by ``id``, ...). A read names its table and predicates; it waits only for the
records that may change what it reads: those touching the keys it is pinned to, or, unpinned, any record of its table.
A live recorder's flow is written every few seconds and read (pages, the live edge) as often: the read of another
flow, or of a table the records do not touch, never waits.

A flow's segments are noted with their span too (the first start and the last end of those a record inserts), and a
read of a flow's segments bounded in time (``start_ns < hi``, ``end_ns > lo``: a registration's overlap check) waits
only for the records whose segments may fall in its bounds, or that deleted or updated the flow's segments. A live
recorder's next segment begins where its last one ended: its check waits for no record, even while the store
checkpoints and applies none (a registration of a flow the read cache does not hold yet reads the store).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable, Sequence
from numbers import Integral
from typing import Final

import pyarrow as pa

from tams_analytics.engines.base import Change
from tams_analytics.exceptions import StoreUnavailableError
from tams_analytics.predicates import Predicate, Term, conjuncts, pinned
from tams_analytics.pyrows import SMALL, column_values, distinct_values

__all__ = ["KEYS", "Pending"]

#: how often a waiting read looks again whether the store failed
_RECHECK_S: Final = 0.05

#: the key column reads of each table are pinned to (a change of rows with other keys cannot change them)
KEYS: Final[dict[str, str]] = {
    "segments": "flow_id",
    "flows": "id",
    "objects": "id",
    "object_instances": "object_id",
    "delete_requests": "flow_id",
}
#: the table whose rows are noted with their span in time, by key (:data:`KEYS`)
SPANNED: Final = "segments"
#: a span: rows of it start at or after its first value and end at or before its second (nanoseconds)
Span = tuple[int, int]


class Pending:
    """The records journaled (up to :attr:`last`) and applied (up to :attr:`applied`), and what each may change."""

    def __init__(self, applied: int = 0) -> None:
        self.applied = applied
        self.last = applied
        self._changed = threading.Condition()
        #: by table: the last record that changed it (any of its rows)
        self._tables: dict[str, int] = {}
        #: by table: the last record that changed rows it cannot name by key (a whole-table change)
        self._unkeyed: dict[str, int] = {}
        #: by keyed table, by key: the last record that changed the key's rows
        self._keys: dict[str, dict[Hashable, int]] = {t: {} for t in KEYS}
        #: by record: the keys it noted, to forget once it is applied
        self._noted: dict[int, list[tuple[str, Hashable]]] = {}
        #: by key of :data:`SPANNED`: the records that inserted its rows, with their span, in record order
        self._inserted: dict[Hashable, list[tuple[int, Span]]] = {}
        #: by key of :data:`SPANNED`: the last record that deleted or updated its rows (or inserted rows of no span)
        self._reshaped: dict[Hashable, int] = {}

    def note(self, seq: int, changes: Sequence[Change]) -> None:
        """Record ``seq`` (journaled, not yet applied) makes ``changes``."""
        noted: list[tuple[str, Hashable]] = []
        with self._changed:
            for change in changes:
                table = change.table
                self._tables[table] = seq
                keys = _keys_of(change)
                if keys is None:
                    self._unkeyed[table] = seq
                    continue
                by_key = self._keys[table]
                for key in keys:
                    by_key[key] = seq
                    noted.append((table, key))
                if table == SPANNED:
                    self._note_spans(seq, change, keys)
            self._noted[seq] = noted
            self.last = max(self.last, seq)

    def applied_through(self, seq: int) -> None:
        """Every record up to ``seq`` is applied: reads waiting for them go on."""
        with self._changed:
            for done in [s for s in self._noted if s <= seq]:
                for table, key in self._noted.pop(done):
                    by_key = self._keys[table]
                    if by_key.get(key) == done:
                        del by_key[key]
                    if table == SPANNED:
                        self._forget_spans(key, done)
            self.applied = max(self.applied, seq)
            self._changed.notify_all()

    def needed(self, table: str, where: Sequence[Predicate] = ()) -> int:
        """The last record a read of ``table`` restricted by ``where`` must see applied (0: none)."""
        with self._changed:
            if self.last <= self.applied:
                return 0
            column = KEYS.get(table)
            keys = pinned(where, column) if column is not None else None
            if keys is None:
                return self._tables.get(table, 0)
            by_key = self._keys[table]
            bounds = _bounds(where) if table == SPANNED else None
            if bounds is None:
                return max([self._unkeyed.get(table, 0), *(by_key.get(k, 0) for k in keys)])
            return max([self._unkeyed.get(table, 0), *(self._in_bounds(k, bounds) for k in keys if k in by_key)])

    def _note_spans(self, seq: int, change: Change, keys: list[Hashable]) -> None:
        spans = _spans_of(change.rows) if change.rows is not None and not change.where else None
        if spans is None:
            for key in keys:
                self._reshaped[key] = seq
            return
        for key, span in spans.items():
            if key is not None:  # (as _keys_of: a row of no key is noted under none)
                self._inserted.setdefault(key, []).append((seq, span))

    def _forget_spans(self, key: Hashable, done: int) -> None:
        inserted = self._inserted.get(key)
        if inserted is not None:
            while inserted and inserted[0][0] <= done:
                del inserted[0]
            if not inserted:
                del self._inserted[key]
        if self._reshaped.get(key, done + 1) <= done:
            del self._reshaped[key]

    def _in_bounds(self, key: Hashable, bounds: Span) -> int:
        """The last record that may change the rows of ``key`` starting before ``bounds[1]`` and ending after
        ``bounds[0]``."""
        lo, hi = bounds
        last = self._reshaped.get(key, 0)
        for seq, (first, end) in reversed(self._inserted.get(key, ())):
            if seq <= last:
                break
            if first < hi and end > lo:
                return seq
        return last

    def wait(self, seq: int, timeout_s: float, failed: Callable[[], Exception | None] = lambda: None) -> None:
        """Wait until record ``seq`` is applied: :class:`~tams_analytics.exceptions.StoreUnavailableError` after
        ``timeout_s``, and at once what ``failed`` returns when the store cannot apply records now (it failed)."""
        if seq <= self.applied:
            return
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while self.applied < seq:
                refusal = failed()
                if refusal is not None:
                    raise refusal
                left = deadline - time.monotonic()
                if left <= 0:
                    raise StoreUnavailableError(
                        f"the store has not applied the writes this read must see within {timeout_s:g} s; they are "
                        "kept in its journal and applied as soon as it can"
                    )
                self._changed.wait(min(left, _RECHECK_S))

    def wait_all(self, timeout_s: float, failed: Callable[[], Exception | None] = lambda: None) -> None:
        """Wait until every record journaled so far is applied (see :meth:`wait`)."""
        self.wait(self.last, timeout_s, failed)

    @property
    def behind(self) -> int:
        """How many records are journaled and not yet applied."""
        return self.last - self.applied


def _spans_of(rows: pa.Table) -> dict[Hashable, Span] | None:
    """The span of each key's rows in ``rows`` (of :data:`SPANNED`), or None (a column missing, or a null)."""
    schema = rows.schema
    if min(schema.get_field_index(c) for c in (KEYS[SPANNED], "start_ns", "end_ns")) < 0:
        return None
    key_col, start_col, end_col = (rows.column(c) for c in (KEYS[SPANNED], "start_ns", "end_ns"))
    if start_col.null_count or end_col.null_count:
        return None
    if rows.num_rows > SMALL:
        spans = rows.group_by(KEYS[SPANNED]).aggregate([("start_ns", "min"), ("end_ns", "max")])
        firsts, ends = column_values(spans.column("start_ns_min")), column_values(spans.column("end_ns_max"))
        return dict(zip(column_values(spans.column(KEYS[SPANNED])), zip(firsts, ends, strict=True), strict=True))
    out: dict[Hashable, Span] = {}
    for key, start, end in zip(column_values(key_col), column_values(start_col), column_values(end_col), strict=True):
        had = out.get(key)
        out[key] = (start, end) if had is None else (min(had[0], start), max(had[1], end))
    return out


def _bounds(where: Sequence[Predicate]) -> Span | None:
    """``(lo, hi)`` such that a row of :data:`SPANNED` matching ``where`` starts before ``hi`` and ends after ``lo``,
    from the conjuncts of ``where`` that bound ``start_ns`` or ``end_ns`` (a row ends at or after it starts: an upper
    bound of its end bounds its start, a lower bound of its start bounds its end); None when none does."""
    lo: int | None = None
    hi: int | None = None
    for term in conjuncts(where):
        if not isinstance(term, Term) or term.column not in ("start_ns", "end_ns"):
            continue
        if isinstance(term.value, bool) or not isinstance(term.value, Integral):  # (numpy's integers are Integral)
            continue
        v = int(term.value)
        if term.op in ("<", "<=", "=="):  # an upper bound of its start or end: it starts before v (<) or v + 1
            below = v + (term.op != "<")
            hi = below if hi is None else min(hi, below)
        if term.op in (">", ">=", "=="):  # a lower bound of its end or start: it ends after v (>) or v - 1
            above = v - (term.op != ">")
            lo = above if lo is None else max(lo, above)
    if lo is None and hi is None:
        return None
    return (lo if lo is not None else -(2**63), hi if hi is not None else 2**63)


def _keys_of(change: Change) -> list[Hashable] | None:
    """The key values ``change`` touches, or None (every key of its table, or a table not read by key)."""
    column = KEYS.get(change.table)
    if column is None:
        return None
    if change.rows is not None:
        if change.rows.schema.get_field_index(column) < 0:  # (column_names builds a list: 30-50 µs)
            return None
        return [v for v in distinct_values(change.rows.column(column)) if v is not None]
    found = pinned(change.where, column)
    return None if found is None else list(found)
