"""One predicate language for every engine.

A filter is a small immutable tree (:class:`Term`, :class:`AnyOf`, :class:`AllOf`, :class:`Const`,
:class:`TagFilter`, :class:`InSubquery`). Each node

* is callable on an ibis table, so analysts write ``segments.filter(overlaps(tr))``;
* turns into an ``ibis._`` deferred (:attr:`Predicate.deferred`) that DuckDB, Trino and VAST accept;
* knows whether VAST can push it down.

:func:`plan` splits the filters of one query into the part VAST can push down, an AND of single-column
ORs of comparisons against literals, and the residual that must run client-side (tag and collection
filters, which need another table, and anything else). Timerange relations are plain integer
comparisons on the ``start_ns``/``end_ns`` storage bounds (see :mod:`tams_analytics.timerange`):

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

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, Literal

import ibis
from ibis import _
from ibis.common.deferred import Deferred

from tams_analytics.exceptions import TamsError
from tams_analytics.timerange import END_UNBOUNDED, TimeRange

if TYPE_CHECKING:
    import ibis.expr.types as ir

__all__ = [
    "AllOf",
    "AnyOf",
    "Const",
    "InSubquery",
    "Plan",
    "Predicate",
    "TagFilter",
    "Term",
    "covered_by",
    "eq",
    "isin",
    "overlaps",
    "plan",
    "tag",
    "tag_exists",
]

Op = Literal["==", "!=", "<", "<=", ">", ">=", "isin", "isnull", "notnull", "startswith", "contains", "between"]
PUSHABLE_OPS: Final = frozenset(
    {"==", "!=", "<", "<=", ">", ">=", "isin", "isnull", "notnull", "startswith", "contains", "between"}
)

#: Resolves a table name to an ibis table (used by filters that read another table).
TableLookup = Callable[[str], "ir.Table"]


class Predicate:
    """Base of the predicate tree."""

    #: True when VAST can evaluate the node server-side.
    pushable: bool = False

    @property
    def deferred(self) -> Deferred:
        """An ``ibis._`` deferred boolean expression (only for nodes that need no other table)."""
        raise TamsError(f"{self!r} reads another table: resolve it with to_ibis(table, lookup)")

    def to_ibis(self, table: ir.Table, lookup: TableLookup | None = None) -> ir.BooleanValue:
        """The boolean expression on ``table``; ``lookup`` resolves other tables by name."""
        return self.deferred.resolve(table)

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
        if self.op not in PUSHABLE_OPS:
            raise TamsError(f"unknown predicate operator {self.op!r}")
        if self.value is None and self.op not in ("isnull", "notnull"):
            # ibis would read `== None` as IS NULL and SQL as never true: say which one is meant
            raise TamsError(f"compare {self.column} with None through isnull/notnull, not {self.op!r}")
        if self.op == "isin":
            object.__setattr__(self, "value", tuple(self.value))
        if self.op == "between":
            lo, hi = self.value
            object.__setattr__(self, "value", (lo, hi))

    @property
    def pushable(self) -> bool:  # type: ignore[override]
        return True

    @property
    def deferred(self) -> Deferred:
        col = _[self.column]
        v = self.value
        match self.op:
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
        raise AssertionError(self.op)

    def columns(self) -> frozenset[str]:
        return frozenset({self.column})


@dataclass(frozen=True)
class Const(Predicate):
    """A constant truth value (``overlaps(())`` is ``Const(False)``)."""

    value: bool

    @property
    def deferred(self) -> Any:
        """A literal, not a column expression: engines fold it, VAST never receives it."""
        return ibis.literal(self.value)

    def to_ibis(self, table: ir.Table, lookup: TableLookup | None = None) -> ir.BooleanValue:
        return ibis.literal(self.value)


def _balanced(items: Sequence[Any], combine: Callable[[Any, Any], Any]) -> Any:
    """Fold ``items`` into a balanced tree (ibis recurses on deep left-leaning chains)."""
    while len(items) > 1:
        items = [combine(items[i], items[i + 1]) if i + 1 < len(items) else items[i] for i in range(0, len(items), 2)]
    return items[0]


@dataclass(frozen=True)
class AnyOf(Predicate):
    """OR of predicates. Pushable when every member is a pushable term on one and the same column."""

    terms: tuple[Predicate, ...]

    @property
    def pushable(self) -> bool:  # type: ignore[override]
        cols = {c for t in self.terms for c in t.columns()}
        return bool(self.terms) and len(cols) == 1 and all(isinstance(t, Term) for t in self.terms)

    @property
    def deferred(self) -> Deferred:
        if not self.terms:
            return ibis.literal(False)
        return _balanced([t.deferred for t in self.terms], lambda a, b: a | b)

    def to_ibis(self, table: ir.Table, lookup: TableLookup | None = None) -> ir.BooleanValue:
        if not self.terms:
            return ibis.literal(False)
        return _balanced([t.to_ibis(table, lookup) for t in self.terms], lambda a, b: a | b)

    def columns(self) -> frozenset[str]:
        return frozenset(c for t in self.terms for c in t.columns())


@dataclass(frozen=True)
class AllOf(Predicate):
    """AND of predicates."""

    terms: tuple[Predicate, ...]

    @property
    def pushable(self) -> bool:  # type: ignore[override]
        return all(t.pushable for t in self.terms)

    @property
    def deferred(self) -> Deferred:
        if not self.terms:
            return ibis.literal(True)
        return _balanced([t.deferred for t in self.terms], lambda a, b: a & b)

    def to_ibis(self, table: ir.Table, lookup: TableLookup | None = None) -> ir.BooleanValue:
        if not self.terms:
            return ibis.literal(True)
        return _balanced([t.to_ibis(table, lookup) for t in self.terms], lambda a, b: a & b)

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

    def inner(self, lookup: TableLookup) -> ir.Table:
        t = lookup(self.table)
        return t.filter(self.where.to_ibis(t, lookup)).select(self.value_column)

    def to_ibis(self, table: ir.Table, lookup: TableLookup | None = None) -> ir.BooleanValue:
        if lookup is None:
            raise TamsError(f"filter on {self.table} needs a table lookup")
        expr = table[self.column].isin(self.inner(lookup)[self.value_column])
        return ~expr if self.negate else expr

    def with_values(self, values: Iterable[Any]) -> Predicate:
        """The pushable equivalent once the inner query has been run."""
        vals = tuple(dict.fromkeys(values))
        if self.negate:
            return AllOf(tuple(Term(self.column, "!=", v) for v in vals)) if vals else AllOf(())
        return Term(self.column, "isin", vals) if vals else Const(False)

    def columns(self) -> frozenset[str]:
        return frozenset({self.column})


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
    tr = TimeRange.from_str(timerange) if isinstance(timerange, str) else timerange
    if tr.is_empty:
        return Const(False)
    lo, hi = tr.storage_bounds()
    # Both terms always: they also exclude stored empty ranges (start = int64 max), even for eternity.
    return AllOf((Term(start, "<", hi), Term(end, ">", lo)))


def covered_by(timerange: TimeRange | str, start: str = "start_ns", end: str = "end_ns") -> Predicate:
    """Rows whose range lies entirely within ``timerange`` (stored empty ranges always do)."""
    tr = TimeRange.from_str(timerange) if isinstance(timerange, str) else timerange
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


# -- planning ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Plan:
    """The filters of one query, split for an engine that pushes predicates down.

    ``pushdown`` is an AND of pushable conjuncts (each a single-column OR of comparisons with literals);
    ``residual`` must be evaluated client-side on what the pushdown returns (or, for
    :class:`InSubquery`, resolved into a pushable ``isin`` first).
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
        terms = [p for p in self.pushdown if not isinstance(p, Const)]
        return AllOf(tuple(terms)).deferred if terms else None


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


def split(entity: str, predicates: Iterable[Predicate]) -> Plan:
    """Split conjuncts into pushdown and residual."""
    push: list[Predicate] = []
    rest: list[Predicate] = []
    for p in flatten(predicates):
        if isinstance(p, Const):
            rest.append(p)
        elif p.pushable:
            push.append(p)
        else:
            rest.append(p)
    return Plan(entity, tuple(push), tuple(rest))


def _list(value: Any) -> list[Any]:
    if isinstance(value, str):
        return [v for v in value.split(",")] if "," in value else [value]
    if isinstance(value, Iterable):
        return list(value)
    return [value]


def _as_bool(value: Any, name: str) -> bool:
    """A boolean filter value: a bool, or the strings true/false (as query strings arrive)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise TamsError(f"{name} must be true or false, not {value!r}")


def _as_int(value: Any, name: str) -> int:
    if isinstance(value, bool):
        raise TamsError(f"{name} must be an integer, not {value!r}")
    try:
        return int(value)
    except (TypeError, ValueError):
        raise TamsError(f"{name} must be an integer, not {value!r}") from None


def _bool_or_missing(column: str, value: bool) -> Predicate:
    """``column == value``, where ``value=False`` also matches rows where the column is unset."""
    if value:
        return Term(column, "==", True)
    return AnyOf((Term(column, "==", False), Term(column, "isnull")))


def _collected_by(ids: Sequence[str] | str) -> Predicate:
    """``collected_by_ids``: collected by any of ``ids``; an empty value means not collected at all."""
    values = [v for v in _list(ids) if v] if ids != "" else []
    if not values:
        return InSubquery("id", "collections", "member_id", AllOf(()), negate=True)
    return InSubquery("id", "collections", "member_id", Term("flow_id", "isin", tuple(values)))


FilterBuilder = Callable[[Any], Predicate]

#: Named filters per entity: the vocabulary of :func:`plan` and the catalog query methods.
FILTERS: Final[Mapping[str, Mapping[str, FilterBuilder]]] = {
    "sources": {
        "id": lambda v: isin("id", _list(v)),
        "format": lambda v: isin("format", _list(v)),
        "label": lambda v: eq("label", v),
    },
    "flows": {
        "id": lambda v: isin("id", _list(v)),
        "source_id": lambda v: isin("source_id", _list(v)),
        "format": lambda v: isin("format", _list(v)),
        "codec": lambda v: isin("codec", _list(v)),
        "label": lambda v: eq("label", v),
        "profile_id": lambda v: eq("profile_id", v),
        "status": lambda v: isin("status", _list(v)),
        "frame_width": lambda v: eq("frame_width", _as_int(v, "frame_width")),
        "frame_height": lambda v: eq("frame_height", _as_int(v, "frame_height")),
        "init_segments": lambda v: _bool_or_missing("init_segments", _as_bool(v, "init_segments")),
        "read_only": lambda v: _bool_or_missing("read_only", _as_bool(v, "read_only")),
    },
    "segments": {
        "flow_id": lambda v: isin("flow_id", _list(v)),
        "object_id": lambda v: isin("object_id", _list(v)),
        "init_object_id": lambda v: isin("init_object_id", _list(v)),
        "timerange": lambda v: overlaps(v),
        "covered_by": lambda v: covered_by(v),
    },
    "objects": {
        "id": lambda v: isin("id", _list(v)),
        "allocated_flow_id": lambda v: isin("allocated_flow_id", _list(v)),
        "registered": lambda v: eq("registered", _as_bool(v, "registered")),
    },
    "webhooks": {"id": lambda v: isin("id", _list(v)), "status": lambda v: isin("status", _list(v))},
    "delete_requests": {
        "id": lambda v: isin("id", _list(v)),
        "flow_id": lambda v: isin("flow_id", _list(v)),
        "status": lambda v: isin("status", _list(v)),
    },
    "storage_backends": {"id": lambda v: isin("id", _list(v)), "label": lambda v: eq("label", v)},
}

_TAGGED: Final = {
    "sources": "source",
    "flows": "flow",
    "webhooks": "webhook",
    "storage_backends": "storage_backend",
}


def build(entity: str, **filters: Any) -> list[Predicate]:
    """Predicates for named filters on ``entity``; ``None`` values are ignored.

    Besides the names in :data:`FILTERS`, tagged entities take ``tags={name: value_or_values}``,
    ``tags_exist={name: bool}``, and sources/flows take ``collected_by_ids``.
    """
    known = FILTERS.get(entity)
    if known is None:
        raise TamsError(f"unknown entity {entity!r}; expected one of {sorted(FILTERS)}")
    out: list[Predicate] = []
    for name, value in filters.items():
        if value is None:
            continue
        if name == "tags" and entity in _TAGGED:
            out.extend(tag(_TAGGED[entity], k, v) for k, v in value.items())
        elif name == "tags_exist" and entity in _TAGGED:
            out.extend(tag_exists(_TAGGED[entity], k, bool(v)) for k, v in value.items())
        elif name == "collected_by_ids" and entity in ("sources", "flows"):
            out.append(_collected_by(value) if entity == "flows" else _source_collected_by(value))
        elif name in known:
            out.append(known[name](value))
        else:
            raise TamsError(f"unknown filter {name!r} for {entity}; expected one of {sorted(known)}")
    return out


def _source_collected_by(ids: Sequence[str] | str) -> Predicate:
    """Sources collected by any of ``ids`` (source ids), via the derived source collection view."""
    values = [v for v in _list(ids) if v] if ids != "" else []
    if not values:
        return InSubquery("id", "source_collections", "member_id", AllOf(()), negate=True)
    return InSubquery("id", "source_collections", "member_id", Term("source_id", "isin", tuple(values)))


def plan(entity: str, **filters: Any) -> Plan:
    """Build and split the named filters of one query on ``entity``.

    >>> p = plan("segments", flow_id="f1", timerange="[0:0_10:0)")
    >>> [type(t).__name__ for t in p.pushdown], p.residual
    (['Term', 'Term', 'Term'], ())
    """
    return split(entity, build(entity, **filters))
