"""Planning a VAST query: what the server evaluates, in how many requests, and what stays client-side.

Pure functions (no cluster): the engine runs the plan through the SDK, and tests check it with the SDK's own
request serializer.

* :func:`split` divides the conjuncts of a filter into a pushdown (an AND of single-column ORs of
  comparisons with literals, the shape VAST evaluates) and a residual (tag and collection filters, which
  need another table, ORs across columns, ...); :func:`plan` does so for the catalog's named filters.
* :func:`plan_query` keeps in the pushdown only what the vastdb SDK can serialise on the table's schema,
  cuts it into requests under the SDK's size limit (:mod:`~tams_analytics.engines.vast.requests`) and turns
  the rest into the residual that :mod:`~tams_analytics.engines.remote.residual` evaluates on the Arrow
  result.

>>> import pyarrow as pa
>>> from tams_analytics import predicates as P
>>> schema = pa.schema([("flow_id", pa.string()), ("start_ns", pa.int64()), ("label", pa.string())])
>>> p = plan_query("t", [P.eq("flow_id", "f"), P.AnyOf((P.eq("label", "a"), P.eq("start_ns", 1)))], schema=schema)
>>> len(p.requests), [type(r).__name__ for r in p.residual], p.fetch
(1, ['AnyOf'], ('flow_id', 'start_ns', 'label'))
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import pyarrow as pa

from tams_analytics import filters as F
from tams_analytics import predicates as P
from tams_analytics.engines.vast.requests import ROW_ID, request_deferred, split_requests
from tams_analytics.exceptions import TamsError
from tams_analytics.predicates import AllOf, AnyOf, Const, InSubquery, Predicate, Term, Visitor
from tams_analytics.schema import SCHEMAS

if TYPE_CHECKING:
    from ibis.common.deferred import Deferred

    from tams_analytics.engines.base import OrderBy

__all__ = [
    "MAX_PUSHED_NOT_EQUAL",
    "ROW_ID",
    "Plan",
    "QueryPlan",
    "narrows",
    "plan",
    "plan_query",
    "pushable",
    "sdk_pushable",
    "split",
    "topk_bound",
    "topk_prefetch",
]

#: More ``!=`` terms than this on one column (a resolved ``NOT IN`` subquery) prune too little to be worth
#: sending: they are evaluated client-side instead.
MAX_PUSHED_NOT_EQUAL: Final = 256

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
    return bool(
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


class _Pushable(Visitor[bool]):
    """Whether a conjunct has the shape VAST evaluates: a comparison, or an OR of comparisons on one column;
    with a ``schema``, also whether the SDK can serialise it there (the column exists with a type the SDK
    sends as a literal, and literals match it and are not null: SQL's ``= NULL`` is never true, and ibis
    would turn it into ``IS NULL``)."""

    def __init__(self, schema: pa.Schema | None = None) -> None:
        self.schema = schema

    def term(self, p: Term) -> bool:
        return self.schema is None or _term_ok(p, self.schema)

    def const(self, p: Const) -> bool:
        return False

    def any_of(self, p: AnyOf) -> bool:
        columns = {c for t in p.terms for c in t.columns()}
        return len(columns) == 1 and all(isinstance(t, Term) and t.accept(self) for t in p.terms)

    def all_of(self, p: AllOf) -> bool:
        return self.schema is None and all(t.accept(self) for t in p.terms)

    def subquery(self, p: InSubquery) -> bool:
        return False


_SHAPE = _Pushable()


def pushable(predicate: Predicate) -> bool:
    """Whether VAST can evaluate ``predicate`` server-side (its shape; see :func:`sdk_pushable` for a schema).

    >>> pushable(P.AnyOf((P.eq("a", 1), P.eq("a", 2)))), pushable(P.AnyOf((P.eq("a", 1), P.eq("b", 2))))
    (True, False)
    """
    return predicate.accept(_SHAPE)


def sdk_pushable(predicate: Predicate, schema: pa.Schema) -> bool:
    """Whether the vastdb SDK can serialise ``predicate`` as one conjunct of a request on ``schema``.

    >>> import pyarrow as pa
    >>> s = pa.schema([("n", pa.int64()), ("s", pa.string())])
    >>> sdk_pushable(P.Term("n", "<", 3), s), sdk_pushable(P.Term("n", "isin", (1, None)), s)
    (True, False)
    >>> sdk_pushable(P.eq("s", 1), s), sdk_pushable(P.eq("x", 1), s)  # a literal of another type; no such column
    (False, False)
    """
    return predicate.accept(_Pushable(schema))


def narrows(table: str, where: Sequence[Predicate]) -> bool:
    """Whether a select of ``table`` with ``where`` asks VAST for less than the whole table: a conjunct it
    evaluates server-side (a subquery is resolved into an ``isin`` first), or one that nothing matches.

    >>> across = P.AnyOf((P.eq("flow_id", "f"), P.eq("start_ns", 1)))  # an OR across columns: client-side
    >>> narrows("segments", [P.eq("flow_id", "f")]), narrows("segments", [across])
    (True, False)
    """
    schema = SCHEMAS.get(table)
    for p in map(_normalise, P.flatten(where)):
        if isinstance(p, InSubquery) or (isinstance(p, Const) and not p.value):
            return True
        if schema is not None and pushable(p) and sdk_pushable(p, schema):
            return True
    return False


# -- splitting a filter --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Plan:
    """The filters of one query, split for VAST.

    ``pushdown`` is an AND of pushable conjuncts (each a single-column OR of comparisons with literals);
    ``residual`` must be evaluated client-side on what the pushdown returns (or, for
    :class:`~tams_analytics.predicates.InSubquery`, resolved into a pushable ``isin`` first).
    """

    entity: str
    pushdown: tuple[Predicate, ...]
    residual: tuple[Predicate, ...]

    @property
    def is_empty_result(self) -> bool:
        """True when a conjunct is constant false: no need to ask any engine."""
        return any(isinstance(p, Const) and not p.value for p in (*self.pushdown, *self.residual))

    @property
    def predicate(self) -> AllOf:
        """The whole filter as one predicate."""
        return AllOf((*self.pushdown, *self.residual))

    def pushdown_deferred(self) -> Deferred | None:
        """The pushdown part as one ``ibis._`` deferred (``None`` when nothing is pushed)."""
        return request_deferred(self.pushdown)


def split(entity: str, predicates: Iterable[Predicate]) -> Plan:
    """Split conjuncts into pushdown and residual."""
    push: list[Predicate] = []
    rest: list[Predicate] = []
    for p in P.flatten(predicates):
        (push if pushable(p) else rest).append(p)
    return Plan(entity, tuple(push), tuple(rest))


def plan(entity: str, **filters: Any) -> Plan:
    """Build (:func:`tams_analytics.predicates.build`) and split the named filters of one query on ``entity``.

    >>> p = plan("segments", flow_id="f1", timerange="[0:0_10:0)")
    >>> [type(t).__name__ for t in p.pushdown], p.residual
    (['Term', 'Term', 'Term'], ())
    """
    return split(entity, F.build(entity, **filters))


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
    parts = split(table, flat)
    push: list[Predicate] = []
    residual: list[Predicate] = list(parts.residual)
    for p in map(_normalise, parts.pushdown):
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
