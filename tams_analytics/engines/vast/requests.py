"""What goes over the wire to VAST: the predicate of one request, and requests cut to fit the SDK's limit.

* :func:`request_deferred` builds the ``ibis._`` predicate handed to ``Table.select`` as a balanced tree.
* :func:`split_requests` keeps every request under the SDK's size limit: one large value list (``isin``,
  or an OR of equalities on one column) is cut into disjoint chunks, one request each, whose results are
  simply concatenated (a row has one value in that column, so it matches exactly one chunk); other
  conjuncts that would not fit go to the residual.
* :class:`RequestSizer` estimates serialised sizes, calibrated once per schema with the SDK's own builder.
"""

from __future__ import annotations

import datetime as dt
import functools
import operator
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, overload

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from ibis import _

from tams_analytics.exceptions import TamsError
from tams_analytics.predicates import AnyOf, Const, Predicate, Term, Visitor, balanced

if TYPE_CHECKING:
    from ibis.common.deferred import Deferred

__all__ = [
    "ROW_ID",
    "SIZE_MARGIN",
    "RequestSizer",
    "ValueSet",
    "default_max_request_bytes",
    "request_deferred",
    "split_requests",
    "value_set",
]

#: The SDK's virtual column of internal row ids (used to update and delete).
ROW_ID: Final = "$row_id"
#: Share of the SDK's request size limit the planner fills (its sizes are estimates).
SIZE_MARGIN: Final = 0.9


# -- the ibis predicate handed to Table.select ---------------------------------------------------------------
class _RequestDeferred(Visitor[Any]):
    """One pushdown conjunct as the ``ibis._`` deferred the SDK serialises."""

    def term(self, p: Term) -> Any:
        col = _[p.column]
        if p.op == "notnull":
            return ~col.isnull()  # the SDK serialises Not(IsNull), not ibis' NotNull
        return p.deferred

    def any_of(self, p: AnyOf) -> Any:
        return balanced([t.accept(self) for t in p.terms], operator.or_)


_REQUEST = _RequestDeferred()


def request_deferred(conjuncts: Sequence[Predicate]) -> Deferred | None:
    """The ``ibis._`` predicate of one request (``None`` for an unfiltered select), as a balanced tree, so
    that thousands of terms neither overflow ibis' recursion nor the SDK's.

    >>> from tams_analytics import predicates as P
    >>> request_deferred([P.eq("a", 1), P.Term("b", "notnull")])
    ((_['a'] == 1) & ~_['b'].isnull())
    """
    if not conjuncts:
        return None
    return balanced([p.accept(_REQUEST) for p in conjuncts], operator.and_)


# -- value sets: the conjuncts that split into disjoint requests ---------------------------------------------
@dataclass(frozen=True)
class ValueSet:
    """A conjunct that is "``column`` is one of ``values`` (or null when ``with_null``)"."""

    column: str
    values: tuple[Any, ...]
    with_null: bool = False

    def chunk(self, values: Sequence[Any], first: bool) -> Predicate:
        """The conjunct for one chunk of the values; the null alternative goes with the first chunk only."""
        parts: list[Predicate] = []
        if len(values) == 1:
            parts.append(Term(self.column, "==", values[0]))
        elif values:
            parts.append(Term(self.column, "isin", tuple(values)))
        if self.with_null and first:
            parts.append(Term(self.column, "isnull"))
        if not parts:
            return Const(False)
        return parts[0] if len(parts) == 1 else AnyOf(tuple(parts))


def _sorted_unique(values: Iterable[Any]) -> tuple[Any, ...]:
    unique = list(dict.fromkeys(values))
    try:
        unique.sort()
    except TypeError:
        pass
    return tuple(unique)


def value_set(predicate: Predicate) -> ValueSet | None:
    """The :class:`ValueSet` a conjunct is, or None (ranges, negations, ...).

    >>> from tams_analytics import predicates as P
    >>> value_set(P.AnyOf((P.eq("c", "b"), P.Term("c", "isin", ("a", "b")), P.Term("c", "isnull"))))
    ValueSet(column='c', values=('a', 'b'), with_null=True)
    """
    alternatives = predicate.terms if isinstance(predicate, AnyOf) else (predicate,)
    terms = [t for t in alternatives if isinstance(t, Term)]
    if not terms or len(terms) != len(alternatives):
        return None
    columns = {t.column for t in terms}
    if len(columns) != 1:
        return None
    values: list[Any] = []
    with_null = False
    for t in terms:
        if t.op == "==" and t.value is not None:
            values.append(t.value)
        elif t.op == "isin" and all(v is not None for v in t.value):
            values.extend(t.value)
        elif t.op == "isnull":
            with_null = True
        else:
            return None
    return ValueSet(columns.pop(), _sorted_unique(values), with_null)


# -- request sizes ---------------------------------------------------------------------------------------------
def default_max_request_bytes() -> int:
    """The SDK's own limit on one serialised QueryData request (``vastdb.util.MAX_QUERY_DATA_REQUEST_SIZE``)."""
    from vastdb import util

    return int(util.MAX_QUERY_DATA_REQUEST_SIZE)


@overload
def _align4(n: int) -> int: ...
@overload
def _align4(n: np.ndarray) -> np.ndarray: ...
def _align4(n: np.ndarray | int) -> np.ndarray | int:
    return (n + 3) // 4 * 4


class RequestSizer:
    """Estimates of serialised request sizes, calibrated once per schema with the SDK's own builder.

    A request is a fixed part (the schema of the queried columns and the projection) plus, per conjunct, an
    OR group whose size grows by a constant per literal (plus the padded UTF-8 bytes of string literals).
    The estimates are upper bounds in practice; the planner fills only :data:`SIZE_MARGIN` of the limit.
    """

    #: room per conjunct for its call nodes, column reference and (if not projected) its schema field
    GROUP_BYTES: Final = 256

    def __init__(self, schema: pa.Schema) -> None:
        self.schema = schema
        self._per_literal: dict[str, int] = {}

    def serialized_size(self, conjuncts: Sequence[Predicate], columns: Sequence[str] | None = None) -> int:
        """The exact size of the request the SDK would build (used to calibrate, and by tests)."""
        import ibis
        from vastdb import _internal

        table = ibis.table(ibis.Schema.from_pyarrow(self.schema), name="t")
        deferred = request_deferred(conjuncts)
        expr = None if deferred is None else deferred.resolve(table)
        fields = list(self.schema.names if columns is None else columns)
        return len(_internal.build_query_data_request(self.schema, expr, fields).serialized)

    @functools.cached_property
    def base_bytes(self) -> int:
        """The request without a predicate, reading every column and the row id (an upper bound)."""
        return self.serialized_size([]) + 64 + 2 * len(ROW_ID)

    def _kind(self, column: str) -> str:
        t = self.schema.field(column).type
        if pa.types.is_string(t) or pa.types.is_large_string(t):
            return "string"
        return str(t)

    def per_literal(self, column: str) -> int:
        """Bytes one more literal adds to an OR group on ``column`` (strings: excluding their characters)."""
        kind = self._kind(column)
        if kind not in self._per_literal:
            t = self.schema.field(column).type
            probe: list[Any]
            if kind == "string":
                probe = ["abc", "abd", "abe"]
            elif pa.types.is_boolean(t):
                probe = [False, True, False]
            elif pa.types.is_timestamp(t):
                probe = [dt.datetime(2000 + i, 1, 1, tzinfo=dt.UTC) for i in range(3)]
            else:
                probe = [1, 2, 3]
            # the marginal literal of an ``isin`` (literals of an OR of ``==`` also repeat the column
            # reference: conjunct_bytes counts that in each term's overhead)
            two = self.serialized_size([Term(column, "isin", tuple(probe[:2]))])
            three = self.serialized_size([Term(column, "isin", tuple(probe))])
            self._per_literal[kind] = three - two - (_align4(len("abc") + 1) if kind == "string" else 0)
        return self._per_literal[kind]

    def value_bytes(self, column: str, values: Sequence[Any]) -> np.ndarray:
        """Bytes each of ``values`` adds as a literal of an OR group on ``column``."""
        fixed = self.per_literal(column)
        if self._kind(column) != "string":
            return np.full(len(values), fixed, dtype=np.int64)
        lengths: np.ndarray = pc.binary_length(pa.array(values, pa.string())).to_numpy(zero_copy_only=False)
        return fixed + _align4(lengths.astype(np.int64) + 1)

    def conjunct_bytes(self, predicate: Predicate) -> int:
        """Estimated bytes one conjunct adds to a request."""
        terms = predicate.terms if isinstance(predicate, AnyOf) else (predicate,)
        total = self.GROUP_BYTES + 2 * len(next(iter(predicate.columns()), ""))
        for t in terms:
            assert isinstance(t, Term)
            if t.op in ("isnull", "notnull"):
                total += self.GROUP_BYTES // 2
                continue
            values = t.value if t.op in ("isin", "between") else (t.value,)
            if t.op == "startswith":
                values = (t.value, t.value)  # sent as a range: two literals
            total += self.GROUP_BYTES // 2 + int(self.value_bytes(t.column, list(values)).sum())
        return total


@functools.lru_cache(maxsize=64)
def _sizer(schema: pa.Schema) -> RequestSizer:
    return RequestSizer(schema)


def split_requests(
    conjuncts: Sequence[Predicate], schema: pa.Schema, max_bytes: int | None = None
) -> tuple[tuple[tuple[Predicate, ...], ...], tuple[Predicate, ...]]:
    """Cut a pushdown into requests that each serialise under ``max_bytes``; returns ``(requests, moved)``.

    The largest value-set conjunct (``isin`` or an OR of equalities) is split into disjoint chunks; every
    request carries all other kept conjuncts. Conjuncts that do not fit (largest first) are ``moved`` to
    the residual. ``max_bytes`` defaults to the SDK's limit.
    """
    limit = default_max_request_bytes() if max_bytes is None else max_bytes
    budget = int(limit * SIZE_MARGIN)
    if not conjuncts:
        return ((),), ()
    sizer = _sizer(schema)
    costs = [sizer.conjunct_bytes(p) for p in conjuncts]
    room = budget - sizer.base_bytes
    if sum(costs) <= room:
        return (tuple(conjuncts),), ()
    sets = {i: vs for i, p in enumerate(conjuncts) if (vs := value_set(p)) is not None and len(vs.values) > 1}
    split_at = max(sets, key=lambda i: costs[i]) if sets else None
    value_costs = np.zeros(0, dtype=np.int64)
    reserve = 0
    if split_at is not None:
        vs = sets[split_at]
        value_costs = sizer.value_bytes(vs.column, list(vs.values))
        reserve = 2 * sizer.GROUP_BYTES + int(value_costs.max()) + (sizer.GROUP_BYTES if vs.with_null else 0)
    kept: list[int] = []
    moved: list[int] = []
    used = 0
    for i in sorted((i for i in range(len(conjuncts)) if i != split_at), key=lambda i: costs[i]):
        if used + costs[i] + reserve <= room:
            kept.append(i)
            used += costs[i]
        else:
            moved.append(i)
    kept.sort()
    moved_preds = tuple(conjuncts[i] for i in sorted(moved))
    if split_at is None:
        return (tuple(conjuncts[i] for i in kept),), moved_preds
    vs = sets[split_at]
    per_chunk = room - used - (reserve - int(value_costs.max()))
    if per_chunk < int(value_costs.max()):
        raise TamsError(f"a value of {vs.column} is too large for a VAST request")
    cumulative = np.cumsum(value_costs)
    chunks: list[tuple[Any, ...]] = []
    start = 0
    while start < len(vs.values):
        offset = int(cumulative[start - 1]) if start else 0
        end = int(np.searchsorted(cumulative, offset + per_chunk, side="right"))
        chunks.append(vs.values[start:end])
        start = end
    others = [(i, conjuncts[i]) for i in kept]
    requests = []
    for n, chunk in enumerate(chunks):
        items = [*others, (split_at, vs.chunk(chunk, first=n == 0))]
        requests.append(tuple(p for _, p in sorted(items, key=lambda item: item[0])))
    return tuple(requests), moved_preds
