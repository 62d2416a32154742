"""Planning a VAST query: what the server evaluates, in how many requests, and what stays client-side.

Pure functions (no cluster): the engine runs the plan through the SDK, and tests check it with the SDK's own
request serializer.

* :func:`plan_query` splits the filters with :func:`tams_analytics.predicates.split`, keeps in the pushdown
  only what the vastdb SDK can serialise (an AND of single-column ORs of comparisons with literals), and
  turns the rest into the residual that :mod:`~tams_analytics.engines.vast.residual` evaluates on the Arrow
  result.
* :func:`split_requests` keeps every request under the SDK's size limit: one large value list (``isin``,
  or an OR of equalities on one column) is cut into disjoint chunks, one request each, whose results are
  simply concatenated (a row has one value in that column, so it matches exactly one chunk); other
  conjuncts that would not fit go to the residual.
* :func:`request_deferred` builds the ``ibis._`` predicate handed to ``Table.select`` as a balanced tree,
  so that thousands of terms neither overflow ibis' recursion nor the SDK's.

>>> import pyarrow as pa
>>> from tams_analytics import predicates as P
>>> schema = pa.schema([("flow_id", pa.string()), ("start_ns", pa.int64()), ("label", pa.string())])
>>> p = plan_query("t", [P.eq("flow_id", "f"), P.AnyOf((P.eq("label", "a"), P.eq("start_ns", 1)))], schema=schema)
>>> len(p.requests), [type(r).__name__ for r in p.residual], p.fetch
(1, ['AnyOf'], ('flow_id', 'start_ns', 'label'))
"""

from __future__ import annotations

import datetime as dt
import functools
import operator
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from ibis import _

from tams_analytics import predicates as P
from tams_analytics.exceptions import TamsError
from tams_analytics.predicates import AnyOf, Const, InSubquery, Predicate, Term

if TYPE_CHECKING:
    from ibis.common.deferred import Deferred

    from tams_analytics.engines.base import OrderBy

__all__ = [
    "MAX_PUSHED_NOT_EQUAL",
    "ROW_ID",
    "QueryPlan",
    "RequestSizer",
    "ValueSet",
    "default_max_request_bytes",
    "plan_query",
    "request_deferred",
    "sdk_pushable",
    "split_requests",
    "topk_bound",
    "topk_prefetch",
    "value_set",
]

#: The SDK's virtual column of internal row ids (used to update and delete).
ROW_ID: Final = "$row_id"
#: More ``!=`` terms than this on one column (a resolved ``NOT IN`` subquery) prune too little to be worth
#: sending: they are evaluated client-side instead.
MAX_PUSHED_NOT_EQUAL: Final = 256
#: Share of the SDK's request size limit the planner fills (its sizes are estimates).
SIZE_MARGIN: Final = 0.9

_COMPARISONS: Final = frozenset({"==", "!=", "<", "<=", ">", ">="})
_STRING_ONLY: Final = frozenset({"startswith", "contains"})


@dataclass(frozen=True)
class QueryPlan:
    """How one query runs on VAST.

    ``requests`` are the pushdown predicates of the ``Table.select`` calls to make (each an AND of conjuncts;
    an empty tuple is an unfiltered select); no requests at all means the result is known to be empty.
    ``fetch`` are the columns to read, ``columns`` those to return; ``residual`` is applied to the union of
    the requests' results before ``order_by`` and ``limit``.
    """

    table: str
    requests: tuple[tuple[Predicate, ...], ...]
    residual: tuple[Predicate, ...]
    fetch: tuple[str, ...]
    columns: tuple[str, ...]
    order_by: tuple[tuple[str, bool], ...] = ()
    limit: int | None = None
    row_ids: bool = False

    @property
    def is_empty(self) -> bool:
        """True when no row can match: nothing to ask the server."""
        return not self.requests

    @property
    def limit_rows(self) -> int | None:
        """A row limit the server may apply itself (only when nothing reorders or filters after it)."""
        if self.limit is None or self.limit <= 0 or self.residual or self.order_by:
            return None
        return self.limit


# -- what the SDK can serialise ----------------------------------------------------------------------------
def _type_ok(field_type: pa.DataType) -> bool:
    return (
        pa.types.is_string(field_type)
        or pa.types.is_large_string(field_type)
        or pa.types.is_integer(field_type)
        or pa.types.is_boolean(field_type)
        or pa.types.is_timestamp(field_type)
    )


def _literal_ok(field_type: pa.DataType, value: Any) -> bool:
    if value is None:
        return False
    if pa.types.is_string(field_type) or pa.types.is_large_string(field_type):
        return isinstance(value, str)
    if pa.types.is_boolean(field_type):
        return isinstance(value, bool)
    if pa.types.is_integer(field_type):
        return isinstance(value, int | np.integer) and not isinstance(value, bool)
    if pa.types.is_timestamp(field_type):
        return isinstance(value, dt.datetime)
    return False


def _term_ok(term: Term, schema: pa.Schema) -> bool:
    if term.column not in schema.names:
        return False
    field_type = schema.field(term.column).type
    if not _type_ok(field_type):
        return False
    op, value = term.op, term.value
    if op in ("isnull", "notnull"):
        return True
    if op in _COMPARISONS:
        return _literal_ok(field_type, value)
    if op == "isin":
        return bool(value) and all(_literal_ok(field_type, v) for v in value)
    if op == "between":
        return all(_literal_ok(field_type, v) for v in value)
    if op in _STRING_ONLY:
        return isinstance(value, str) and (pa.types.is_string(field_type) or pa.types.is_large_string(field_type))
    return False


def sdk_pushable(predicate: Predicate, schema: pa.Schema) -> bool:
    """Whether the vastdb SDK can serialise ``predicate`` as one conjunct of a request on ``schema``.

    Stricter than :attr:`Predicate.pushable`: the column must exist with a type the SDK sends as a literal,
    literals must match it and not be null (SQL's ``= NULL`` is never true; ibis would turn it into
    ``IS NULL``).

    >>> import pyarrow as pa
    >>> s = pa.schema([("n", pa.int64()), ("s", pa.string())])
    >>> sdk_pushable(P.Term("n", "<", 3), s), sdk_pushable(P.Term("n", "==", None), s), sdk_pushable(P.eq("s", 1), s)
    (True, False, False)
    """
    if isinstance(predicate, Term):
        return _term_ok(predicate, schema)
    if isinstance(predicate, AnyOf):
        return predicate.pushable and all(isinstance(t, Term) and _term_ok(t, schema) for t in predicate.terms)
    return False


# -- the ibis predicate handed to Table.select ---------------------------------------------------------------
def _balanced(items: Sequence[Any], combine: Callable[[Any, Any], Any]) -> Any:
    if len(items) == 1:
        return items[0]
    mid = len(items) // 2
    return combine(_balanced(items[:mid], combine), _balanced(items[mid:], combine))


def _term_deferred(term: Term) -> Deferred:
    col = _[term.column]
    if term.op == "notnull":
        return ~col.isnull()  # the SDK serialises Not(IsNull), not ibis' NotNull
    if term.op == "isin":
        return col.isin(list(term.value))
    return term.deferred


def _conjunct_deferred(predicate: Predicate) -> Deferred:
    if isinstance(predicate, Term):
        return _term_deferred(predicate)
    if isinstance(predicate, AnyOf):
        return _balanced([_term_deferred(t) for t in predicate.terms], operator.or_)  # type: ignore[arg-type]
    raise TamsError(f"{predicate!r} cannot be pushed down to VAST")


def request_deferred(conjuncts: Sequence[Predicate]) -> Deferred | None:
    """The ``ibis._`` predicate of one request (``None`` for an unfiltered select), as a balanced tree.

    >>> request_deferred([P.eq("a", 1), P.Term("b", "notnull")])
    ((_['a'] == 1) & ~_['b'].isnull())
    """
    if not conjuncts:
        return None
    return _balanced([_conjunct_deferred(p) for p in conjuncts], operator.and_)


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

    >>> value_set(P.AnyOf((P.eq("c", "b"), P.Term("c", "isin", ("a", "b")), P.Term("c", "isnull"))))
    ValueSet(column='c', values=('a', 'b'), with_null=True)
    """
    terms = predicate.terms if isinstance(predicate, AnyOf) else (predicate,)
    if not terms or not all(isinstance(t, Term) for t in terms):
        return None
    columns = {t.column for t in terms}  # type: ignore[attr-defined]
    if len(columns) != 1:
        return None
    values: list[Any] = []
    with_null = False
    for t in terms:
        assert isinstance(t, Term)
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


def _align4(n: np.ndarray | int) -> Any:
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
        lengths = pc.binary_length(pa.array(values, pa.string())).to_numpy(zero_copy_only=False)
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


# -- the plan ----------------------------------------------------------------------------------------------------
def _normalise(predicate: Predicate) -> Predicate:
    if isinstance(predicate, Term) and predicate.op == "isin":
        if not predicate.value:
            return Const(False)
        if len(predicate.value) == 1 and predicate.value[0] is not None:
            return Term(predicate.column, "==", predicate.value[0])
    return predicate


def _empty_plan(table: str, fetch: tuple[str, ...], columns: tuple[str, ...], row_ids: bool) -> QueryPlan:
    return QueryPlan(table, (), (), fetch, columns, row_ids=row_ids)


def plan_query(
    table: str,
    where: Sequence[Predicate],
    *,
    schema: pa.Schema,
    columns: Sequence[str] | None = None,
    order_by: OrderBy = (),
    limit: int | None = None,
    row_ids: bool = False,
    max_bytes: int | None = None,
) -> QueryPlan:
    """Plan ``SELECT columns FROM table WHERE AND(where) ORDER BY ... LIMIT ...`` on VAST.

    ``where`` must not hold :class:`~tams_analytics.predicates.InSubquery` (resolve it into values first).
    With ``row_ids``, ``columns`` may name :data:`ROW_ID`.
    """
    flat = P.flatten(where)
    for p in flat:
        if isinstance(p, InSubquery):
            raise TamsError(f"resolve {p!r} into values before planning a VAST query")
    out = tuple(schema.names if columns is None else columns)
    unknown = [c for c in out if c not in schema.names and not (row_ids and c == ROW_ID)]
    unknown += [c for c, _ in order_by if c not in schema.names]
    if unknown:
        raise TamsError(f"unknown column(s) {', '.join(unknown)} of {table}")
    plan = P.split(table, flat)
    push: list[Predicate] = []
    residual: list[Predicate] = list(plan.residual)
    for p in map(_normalise, plan.pushdown):
        (push if not isinstance(p, Const) and sdk_pushable(p, schema) else residual).append(p)
    if any(isinstance(p, Const) and not p.value for p in residual) or (limit is not None and limit <= 0):
        return _empty_plan(table, tuple(c for c in out if c != ROW_ID), out, row_ids)
    residual = [p for p in residual if not (isinstance(p, Const) and p.value)]
    not_equal = Counter(p.column for p in push if isinstance(p, Term) and p.op == "!=")
    crowded = {c for c, n in not_equal.items() if n > MAX_PUSHED_NOT_EQUAL}
    if crowded:
        residual += [p for p in push if isinstance(p, Term) and p.op == "!=" and p.column in crowded]
        push = [p for p in push if not (isinstance(p, Term) and p.op == "!=" and p.column in crowded)]
    requests, moved = split_requests(push, schema, max_bytes)
    residual += moved
    needed = set(out) | {c for c, _ in order_by} | {c for p in residual for c in p.columns()}
    fetch = tuple(c for c in schema.names if c in needed)
    if not fetch:  # a row-id select still reads one real column
        fetch = (schema.names[0],)
    return QueryPlan(
        table,
        requests,
        tuple(residual),
        fetch,
        out,
        tuple((c, bool(d)) for c, d in order_by),
        limit,
        row_ids,
    )


# -- ordered limits in two steps ------------------------------------------------------------------------------
def topk_prefetch(plan: QueryPlan) -> QueryPlan | None:
    """For ``ORDER BY ... LIMIT k`` reading wide rows: a first plan that reads only the ordering (and residual)
    columns, so that :func:`topk_bound` can narrow the real read to the first ``k`` rows; None when it saves
    nothing.
    """
    if plan.limit is None or not plan.order_by or plan.row_ids or plan.is_empty:
        return None
    keys = tuple(dict.fromkeys(c for c, _ in plan.order_by))
    need = set(keys) | {c for p in plan.residual for c in p.columns()}
    if set(plan.fetch) <= need:
        return None
    return replace(plan, fetch=tuple(c for c in plan.fetch if c in need), columns=keys)


def topk_bound(head: pa.Table, plan: QueryPlan) -> Term | None:
    """The pushable bound on the first ordering column that keeps the first ``limit`` rows (and ties).

    ``head`` is the prefetch result: the first ``limit`` rows' ordering columns, in order.
    """
    if plan.limit is None or not plan.order_by or head.num_rows < plan.limit:
        return None
    column, descending = plan.order_by[0]
    cutoff = head.column(column)[head.num_rows - 1].as_py()
    if cutoff is None:
        return None
    return Term(column, ">=" if descending else "<=", cutoff)
