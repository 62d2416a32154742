"""One predicate language for every engine.

A filter is a small immutable tree (:class:`Term`, :class:`AnyOf`, :class:`AllOf`, :class:`Const`,
:class:`InSubquery`; :func:`TagFilter` builds the last). Every interpreter of the tree is a
:class:`Visitor` (ibis expressions here, SQL in :mod:`tams_analytics.engines.sql`, the VAST pushdown
plan in :mod:`tams_analytics.engines.vast.plan`, the read cache's masks in
:mod:`tams_analytics.cache.timeline`); a node is also callable on an ibis table, so analysts write
``segments.filter(overlaps(tr))``.

Timerange relations are plain integer comparisons on the ``start_ns``/``end_ns`` storage bounds (see
:mod:`tams_analytics.timerange`):

* ``overlaps(q)``: ``start_ns < q.end AND end_ns > q.start``
* ``covered_by(q)``: ``start_ns >= q.start AND end_ns <= q.end``

Stored empty ranges are inverted (``start_ns`` = int64 max, ``end_ns`` = int64 min) so that they overlap
nothing and are covered by everything under these same predicates.

>>> import ibis
>>> from tams_analytics import TimeRange
>>> t = ibis.memtable({"start_ns": [0, 10], "end_ns": [10, 20]})
>>> t.filter(overlaps(TimeRange.from_str("[10:0_11:0)"))).count().execute()
0
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, Generic, Literal, TypeVar

from tams_analytics.exceptions import TamsError
from tams_analytics.timerange import END_UNBOUNDED, TimeRange

if TYPE_CHECKING:
    import ibis.expr.types as ir
    from ibis.common.deferred import Deferred

__all__ = [
    "OPS",
    "AllOf",
    "AnyOf",
    "Const",
    "InSubquery",
    "Predicate",
    "TagFilter",
    "Term",
    "Visitor",
    "balanced",
    "conjuncts",
    "covered_by",
    "eq",
    "flatten",
    "isin",
    "overlaps",
    "pinned",
    "resolve_subqueries",
    "tag",
    "tag_exists",
]

Op = Literal["==", "!=", "<", "<=", ">", ">=", "isin", "isnull", "notnull", "startswith", "contains", "between"]
#: the operators of a :class:`Term`
OPS: Final = frozenset(
    {"==", "!=", "<", "<=", ">", ">=", "isin", "isnull", "notnull", "startswith", "contains", "between"}
)

#: Resolves a table name to an ibis table (used by filters that read another table).
TableLookup = Callable[[str], "ir.Table"]
R = TypeVar("R")
T = TypeVar("T")


class Visitor(Generic[R]):
    """An interpreter of the predicate tree: one method per node type (``node.accept(visitor)``)."""

    def term(self, p: Term) -> R:
        raise TamsError(f"{type(self).__name__} cannot evaluate {p!r}")

    def const(self, p: Const) -> R:
        raise TamsError(f"{type(self).__name__} cannot evaluate {p!r}")

    def any_of(self, p: AnyOf) -> R:
        raise TamsError(f"{type(self).__name__} cannot evaluate {p!r}")

    def all_of(self, p: AllOf) -> R:
        raise TamsError(f"{type(self).__name__} cannot evaluate {p!r}")

    def subquery(self, p: InSubquery) -> R:
        raise TamsError(f"{type(self).__name__} cannot evaluate {p!r}: resolve it into values first")


class Predicate:
    """Base of the predicate tree."""

    def accept(self, visitor: Visitor[R]) -> R:
        raise NotImplementedError

    @property
    def deferred(self) -> Deferred:
        """An ``ibis._`` deferred boolean expression (only for nodes that need no other table)."""
        return self.accept(_DEFERRED)

    def to_ibis(self, table: ir.Table, lookup: TableLookup | None = None) -> ir.BooleanValue:
        """The boolean expression on ``table``; ``lookup`` resolves other tables by name."""
        return self.accept(_IbisExpr(table, lookup))

    def __call__(self, table: ir.Table) -> ir.BooleanValue:
        return self.to_ibis(table)

    def __and__(self, other: Predicate) -> AllOf:
        return AllOf((self, other))

    def __or__(self, other: Predicate) -> AnyOf:
        return AnyOf((self, other))

    def columns(self) -> frozenset[str]:
        """The columns of the filtered table this node compares."""
        return frozenset()


@dataclass(frozen=True)
class Term(Predicate):
    """One comparison of one column against literal(s)."""

    column: str
    op: Op
    value: Any = None

    def __post_init__(self) -> None:
        if self.op not in OPS:
            raise TamsError(f"unknown predicate operator {self.op!r}")
        if self.value is None and self.op not in ("isnull", "notnull"):
            # ibis would read `== None` as IS NULL and SQL as never true: say which one is meant
            raise TamsError(f"compare {self.column} with None through isnull/notnull, not {self.op!r}")
        if self.op == "isin":
            object.__setattr__(self, "value", tuple(self.value))
        if self.op == "between":
            lo, hi = self.value
            object.__setattr__(self, "value", (lo, hi))

    def accept(self, visitor: Visitor[R]) -> R:
        return visitor.term(self)

    def columns(self) -> frozenset[str]:
        return frozenset({self.column})


@dataclass(frozen=True)
class Const(Predicate):
    """A constant truth value (``overlaps(())`` is ``Const(False)``)."""

    value: bool

    def accept(self, visitor: Visitor[R]) -> R:
        return visitor.const(self)


def balanced(items: Sequence[T], combine: Callable[[T, T], T]) -> T:
    """Fold ``items`` into a balanced tree (ibis, the vastdb SDK and DuckDB's parser all recurse on deep
    left-leaning chains)."""
    if len(items) == 1:
        return items[0]
    mid = len(items) // 2
    return combine(balanced(items[:mid], combine), balanced(items[mid:], combine))


@dataclass(frozen=True)
class AnyOf(Predicate):
    """OR of predicates."""

    terms: tuple[Predicate, ...]

    def accept(self, visitor: Visitor[R]) -> R:
        return visitor.any_of(self)

    def columns(self) -> frozenset[str]:
        return frozenset(c for t in self.terms for c in t.columns())


@dataclass(frozen=True)
class AllOf(Predicate):
    """AND of predicates."""

    terms: tuple[Predicate, ...]

    def accept(self, visitor: Visitor[R]) -> R:
        return visitor.all_of(self)

    def columns(self) -> frozenset[str]:
        return frozenset(c for t in self.terms for c in t.columns())


@dataclass(frozen=True)
class InSubquery(Predicate):
    """``column IN (SELECT value_column FROM table WHERE where)``: a semi-join on another table.

    Engines that cannot run it server-side resolve it in two steps: run the inner query (whose own filter
    is pushable), then push ``column isin ids`` down.
    """

    column: str
    table: str
    value_column: str
    where: Predicate = field(default_factory=lambda: AllOf(()))
    negate: bool = False

    def accept(self, visitor: Visitor[R]) -> R:
        return visitor.subquery(self)

    def inner(self, lookup: TableLookup) -> ir.Table:
        t = lookup(self.table)
        return t.filter(self.where.to_ibis(t, lookup)).select(self.value_column)

    def with_values(self, values: Iterable[Any]) -> Predicate:
        """The pushable equivalent once the inner query has been run."""
        vals = tuple(dict.fromkeys(values))
        if self.negate:
            return AllOf(tuple(Term(self.column, "!=", v) for v in vals)) if vals else AllOf(())
        return Term(self.column, "isin", vals) if vals else Const(False)

    def columns(self) -> frozenset[str]:
        return frozenset({self.column})


# -- ibis ------------------------------------------------------------------------------------------------
def _compare(col: Any, op: str, v: Any) -> Any:
    """``col op v`` for a deferred or an ibis column."""
    match op:
        case "==":
            return col == v
        case "!=":
            return col != v
        case "<":
            return col < v
        case "<=":
            return col <= v
        case ">":
            return col > v
        case ">=":
            return col >= v
        case "isin":
            return col.isin(list(v))
        case "isnull":
            return col.isnull()
        case "notnull":
            return ~col.isnull()  # the vastdb serializer accepts NOT(IS NULL), not NotNull
        case "startswith":
            return col.startswith(v)
        case "contains":
            return col.contains(v)
        case "between":
            return col.between(v[0], v[1])
    raise AssertionError(op)


class _Deferred(Visitor[Any]):
    """The tree as an ``ibis._`` deferred: no table needed, so no subqueries. (ibis is imported here, when an
    expression is built, not with this module: the server's processes and the command line use predicates without
    ibis, and importing it costs about a second of every start.)"""

    def term(self, p: Term) -> Any:
        from ibis import _

        return _compare(_[p.column], p.op, p.value)

    def const(self, p: Const) -> Any:
        import ibis

        return ibis.literal(p.value)  # engines fold it; VAST never receives it

    def any_of(self, p: AnyOf) -> Any:
        if not p.terms:
            import ibis

            return ibis.literal(False)
        return balanced([t.accept(self) for t in p.terms], lambda a, b: a | b)

    def all_of(self, p: AllOf) -> Any:
        if not p.terms:
            import ibis

            return ibis.literal(True)
        return balanced([t.accept(self) for t in p.terms], lambda a, b: a & b)

    def subquery(self, p: InSubquery) -> Any:
        raise TamsError(f"{p!r} reads another table: resolve it with to_ibis(table, lookup)")


_DEFERRED = _Deferred()


class _IbisExpr(_Deferred):
    """The tree as a boolean expression on one ibis table; subqueries read other tables through ``lookup``."""

    def __init__(self, table: ir.Table, lookup: TableLookup | None) -> None:
        self.table = table
        self.lookup = lookup

    def term(self, p: Term) -> Any:
        return _compare(self.table[p.column], p.op, p.value)

    def subquery(self, p: InSubquery) -> Any:
        if self.lookup is None:
            raise TamsError(f"filter on {p.table} needs a table lookup")
        expr = self.table[p.column].isin(p.inner(self.lookup)[p.value_column])
        return ~expr if p.negate else expr


def TagFilter(entity_type: str, name: str, values: Sequence[str] | None = None, *, exists: bool = True) -> InSubquery:
    """Entities whose tag ``name`` equals any of ``values`` (array tags: any element), or that have
    (``exists=True``) / lack (``exists=False``) the tag when ``values`` is None."""
    where: list[Predicate] = [Term("entity_type", "==", entity_type), Term("name", "==", name)]
    if values is not None:
        # position >= 0 skips the marker row that keeps an empty array tag alive
        where += [isin("value", values), Term("position", ">=", 0)]
        exists = True
    return InSubquery("id", "tags", "entity_id", AllOf(tuple(where)), negate=not exists)


# -- builders ------------------------------------------------------------------------------------------
def eq(column: str, value: Any) -> Term:
    """``column == value``."""
    return Term(column, "==", value)


def isin(column: str, values: Iterable[Any]) -> Predicate:
    """``column`` equals one of ``values`` (an empty list matches nothing)."""
    vals = tuple(dict.fromkeys(values))
    if not vals:
        return Const(False)
    return Term(column, "==", vals[0]) if len(vals) == 1 else Term(column, "isin", vals)


def overlaps(timerange: TimeRange | str, start: str = "start_ns", end: str = "end_ns") -> Predicate:
    """Rows whose ``[start, end)`` storage bounds share at least one nanosecond with ``timerange``."""
    tr = TimeRange.coerce(timerange, "timerange")
    if tr.is_empty:
        return Const(False)
    lo, hi = tr.storage_bounds()
    # Both terms always: they also exclude stored empty ranges (start = int64 max), even for eternity.
    return AllOf((Term(start, "<", hi), Term(end, ">", lo)))


def covered_by(timerange: TimeRange | str, start: str = "start_ns", end: str = "end_ns") -> Predicate:
    """Rows whose range lies entirely within ``timerange`` (stored empty ranges always do)."""
    tr = TimeRange.coerce(timerange, "covered_by")
    if tr.is_empty:
        return Term(start, "==", END_UNBOUNDED)  # only stored empty ranges
    lo, hi = tr.storage_bounds()
    terms: list[Predicate] = []
    if tr.start_ns is not None:
        terms.append(Term(start, ">=", lo))
    if tr.end_ns is not None:
        terms.append(Term(end, "<=", hi))
    return AllOf(tuple(terms))


def tag(entity_type: str, name: str, values: str | Sequence[str]) -> InSubquery:
    """``tag.{name}=v1,v2``: the tag equals any value (array tags: any element equals any value)."""
    return TagFilter(entity_type, name, [values] if isinstance(values, str) else list(values))


def tag_exists(entity_type: str, name: str, exists: bool = True) -> InSubquery:
    """``tag_exists.{name}=true|false``."""
    return TagFilter(entity_type, name, None, exists=exists)


class _ResolveSubqueries(Visitor[Predicate]):
    """The tree with every :class:`InSubquery` replaced by ``resolve(node)``, at any depth."""

    def __init__(self, resolve: Callable[[InSubquery], Predicate]) -> None:
        self.resolve = resolve

    def term(self, p: Term) -> Predicate:
        return p

    def const(self, p: Const) -> Predicate:
        return p

    def any_of(self, p: AnyOf) -> Predicate:
        return AnyOf(tuple(t.accept(self) for t in p.terms))

    def all_of(self, p: AllOf) -> Predicate:
        return AllOf(tuple(t.accept(self) for t in p.terms))

    def subquery(self, p: InSubquery) -> Predicate:
        return self.resolve(p)


def resolve_subqueries(predicate: Predicate, resolve: Callable[[InSubquery], Predicate]) -> Predicate:
    """``predicate`` with its subqueries (also those inside ORs) replaced by ``resolve(subquery)``:
    for engines that cannot run them, which push down the values instead."""
    return predicate.accept(_ResolveSubqueries(resolve))


def flatten(predicates: Iterable[Predicate]) -> list[Predicate]:
    """AND-conjuncts of the given predicates, nested ANDs flattened and true constants dropped."""
    out: list[Predicate] = []
    for p in predicates:
        if isinstance(p, AllOf):
            out.extend(flatten(p.terms))
        elif isinstance(p, Const) and p.value:
            continue
        else:
            out.append(p)
    return out


def conjuncts(where: Iterable[Predicate]) -> Iterable[Predicate]:
    """The AND-ed members of ``where``, nested ANDs opened (constants kept)."""
    for p in where:
        if isinstance(p, AllOf):
            yield from conjuncts(p.terms)
        else:
            yield p


def pinned(where: Iterable[Predicate], column: str) -> tuple[Any, ...] | None:
    """The values ``where`` allows in ``column`` (a ``==`` or ``isin`` among its conjuncts), or None."""
    for term in conjuncts(where):
        if isinstance(term, Term) and term.column == column:
            if term.op == "==":
                return (term.value,)
            if term.op == "isin":
                return tuple(term.value)
    return None
