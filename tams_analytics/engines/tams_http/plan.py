"""Planning a read over the TAMS API: which documents to GET, with which query parameters, and the residual.

Pure functions of the predicate tree (no HTTP). A :class:`RestPlan` names the ids to read one by one
(``GET /flows/{id}``, the flows whose segments to list, ``GET /objects/{id}``) or the listing's query
parameters, and the ``residual`` to apply to the rows that come back. Every term is also kept in the
residual (the rows are filtered again client-side, so a parameter only has to select a superset);
the semi-joins the API answers itself are not: tag filters (``tag.{name}``, ``tag_exists.{name}``),
``collected_by_ids`` and the flows' ``timerange`` (flows with content there), as the specification defines
them.

A segments window becomes the ``timerange`` parameter of ``/flows/{id}/segments``: any bound on
``start_ns``/``end_ns`` (a segment ``[s, e)`` has ``s < e``) implies that the segment overlaps a window
``[lo, hi)``, written one nanosecond wider on each side so that a server's clusivity edge cases can only add
rows, which the residual removes.

>>> from tams_analytics import predicates as P
>>> p = plan("segments", [P.eq("flow_id", "f1"), *P.flatten([P.overlaps("[10:0_20:0)")])])
>>> p.ids, p.params
(('f1',), {'timerange': '[9:999999999_20:1)'})
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from tams_analytics import predicates as P
from tams_analytics.predicates import AllOf, Const, InSubquery, Predicate, Term
from tams_analytics.schema import TagEntity
from tams_analytics.timerange import END_UNBOUNDED, MAX_NS, START_UNBOUNDED, TimeRange

__all__ = ["MAX_IDS", "RestPlan", "flow_terms", "narrows", "plan"]

#: more ids than this are read through the listing (and filtered) instead of one GET each
MAX_IDS: Final = 64
#: the query parameters that filter one column with one value (``GET /flows``, ``GET /sources``)
_PARAMS: Final[dict[str, tuple[str, ...]]] = {
    "flows": ("source_id", "format", "codec", "label", "profile_id", "status", "frame_width", "frame_height"),
    "sources": ("format", "label"),
}
_ENTITY: Final = {"flows": TagEntity.FLOW, "sources": TagEntity.SOURCE}
#: the column whose values name the documents to GET one by one
_ID_COLUMN: Final = {
    "flows": "id",
    "sources": "id",
    "segments": "flow_id",
    "objects": "id",
    "object_instances": "object_id",
    "collections": "flow_id",
}


@dataclass(frozen=True)
class RestPlan:
    """How to read ``table`` over the API: ``ids`` to read one by one (None: the listing with ``params``),
    then ``residual`` on the rows. ``empty`` when nothing can match."""

    table: str
    ids: tuple[str, ...] | None = None
    params: dict[str, str] = field(default_factory=dict)
    residual: tuple[Predicate, ...] = ()
    empty: bool = False


def _pinned_ids(table: str, conjuncts: Sequence[Predicate]) -> tuple[str, ...] | None:
    """The ids the conjuncts allow in the table's id column (the intersection of its ``==``/``isin`` terms)."""
    column = _ID_COLUMN.get(table)
    if column is None:
        return None
    allowed: set[Any] | None = None
    for p in conjuncts:
        values = P.pinned([p], column)
        if values is not None:
            allowed = set(values) if allowed is None else allowed & set(values)
    if allowed is None:
        return None
    return tuple(sorted(v for v in allowed if isinstance(v, str)))


def _text(value: Any) -> str | None:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | str):
        return str(value)
    return None


def _tag_param(entity: str, p: InSubquery) -> tuple[str, str] | None:
    """``tag.{name}=v1,v2`` or ``tag_exists.{name}=true|false`` for a tag filter on ``entity`` (see
    :func:`tams_analytics.predicates.TagFilter`)."""
    if (p.column, p.table, p.value_column) != ("id", "tags", "entity_id"):
        return None
    terms = list(P.conjuncts([p.where]))
    if not all(isinstance(t, Term) for t in terms):
        return None
    by = {(t.column, t.op): t.value for t in terms if isinstance(t, Term)}
    name = by.get(("name", "=="))
    if by.get(("entity_type", "==")) != entity or not isinstance(name, str):
        return None
    values = by.get(("value", "isin"), (by[("value", "==")],) if ("value", "==") in by else None)
    if values is None:
        return (f"tag_exists.{name}", "false" if p.negate else "true") if len(terms) == 2 else None
    if p.negate or len(terms) != 4 or by.get(("position", ">=")) != 0 or any("," in v for v in values):
        return None
    return f"tag.{name}", ",".join(values)


def _collected_by(table: str, p: InSubquery) -> str | None:
    """``collected_by_ids`` for a collection filter (see :func:`tams_analytics.filters.build`)."""
    inner = {"flows": ("collections", "flow_id"), "sources": ("source_collections", "source_id")}.get(table)
    if inner is None or (p.column, p.table, p.value_column) != ("id", inner[0], "member_id"):
        return None
    where = p.where
    if p.negate:
        return "" if isinstance(where, AllOf) and not where.terms else None
    if isinstance(where, Term) and where.column == inner[1] and where.op in ("==", "isin"):
        values = where.value if where.op == "isin" else (where.value,)
        return ",".join(values) if values and all(isinstance(v, str) and "," not in v for v in values) else None
    return None


def _content(p: InSubquery) -> str | None:
    """The flows' ``timerange`` parameter for "flows with a segment there" (or ``()``: without segments)."""
    if (p.column, p.table, p.value_column) != ("id", "segments", "flow_id"):
        return None
    if p.negate:
        return "()" if isinstance(p.where, AllOf) and not p.where.terms else None
    bounds = {(t.column, t.op): t.value for t in P.conjuncts([p.where]) if isinstance(t, Term)}
    if set(bounds) != {("start_ns", "<"), ("end_ns", ">")} or len(list(P.conjuncts([p.where]))) != 2:
        return None
    return str(TimeRange.from_storage(bounds[("end_ns", ">")], bounds[("start_ns", "<")]))


def _clamp(ns: int) -> int:
    return max(-MAX_NS, min(MAX_NS, ns))


def _window(conjuncts: Sequence[Predicate], widen: int = 1) -> str | None:
    """The ``timerange`` every segment matching the bounds among ``conjuncts`` overlaps (None: no bound)."""
    lo, hi = START_UNBOUNDED, END_UNBOUNDED
    bounded = False
    for t in conjuncts:
        if not isinstance(t, Term) or t.column not in ("start_ns", "end_ns") or isinstance(t.value, bool):
            continue
        values = t.value if t.op in ("isin", "between") else (t.value,)
        if not values or not all(isinstance(v, int) for v in values):
            continue
        low, high = min(values), max(values)
        if t.column == "start_ns":  # s < e: a start at or after x ends after x
            rule = {"<": (None, high), "<=": (None, high + 1), "==": (low, high + 1), "isin": (low, high + 1)}
            rule |= {">": (low, None), ">=": (low, None), "between": (low, high + 1)}
        else:  # an end at or before y starts before y
            rule = {">": (high, None), ">=": (low - 1, None), "==": (low - 1, high), "isin": (low - 1, high)}
            rule |= {"<": (None, high), "<=": (None, high), "between": (low - 1, high)}
        if t.op not in rule:
            continue
        new_lo, new_hi = rule[t.op]
        if new_lo is not None and new_lo > START_UNBOUNDED:
            lo, bounded = max(lo, new_lo), True
        if new_hi is not None and new_hi < END_UNBOUNDED:
            hi, bounded = min(hi, new_hi), True
    if not bounded:
        return None
    if lo >= hi:
        return "()"
    start = START_UNBOUNDED if lo == START_UNBOUNDED else _clamp(lo - widen)
    end = END_UNBOUNDED if hi == END_UNBOUNDED else _clamp(hi + widen)
    return str(TimeRange.from_storage(start, end))


def plan(table: str, where: Sequence[Predicate]) -> RestPlan:
    """Plan reading the rows of ``table`` that match every predicate of ``where``."""
    conjuncts = P.flatten(where)
    if any(isinstance(p, Const) and not p.value for p in conjuncts):
        return RestPlan(table, empty=True)
    params: dict[str, str] = {}
    residual: list[Predicate] = []
    answered = False  # a semi-join the listing answers: reading documents by id would skip it
    for p in conjuncts:
        if isinstance(p, Term) and p.op == "==" and p.column in _PARAMS.get(table, ()):
            text = _text(p.value)
            if text is not None:
                params.setdefault(p.column, text)
        if isinstance(p, Term) and table == "segments" and p.column == "object_id" and p.op == "==":
            params.setdefault("object_id", str(p.value))
        if isinstance(p, InSubquery) and table in _ENTITY:
            pushed = _tag_param(_ENTITY[table], p)
            if pushed is None:
                collected = _collected_by(table, p)
                pushed = ("collected_by_ids", collected) if collected is not None else None
            if pushed is None and table == "flows":
                content = _content(p)
                pushed = ("timerange", content) if content is not None else None
            if pushed is not None and pushed[0] not in params:
                params[pushed[0]] = pushed[1]
                answered = True
                continue
        residual.append(p)
    if table == "segments":
        window = _window(conjuncts)
        if window == "()":
            return RestPlan(table, empty=True)
        if window is not None:
            params["timerange"] = window
    ids = _pinned_ids(table, conjuncts)
    if ids is not None and not ids:
        return RestPlan(table, empty=True)
    if ids is not None and (len(ids) > MAX_IDS or answered) and table != "segments":
        ids = None
    return RestPlan(table, ids, params, tuple(residual))


def flow_terms(p: RestPlan) -> list[Predicate]:
    """The residual's terms on a segment's ``flow_id``, as terms on a flow's ``id``: a segments read without
    named flows lists only the flows that pass them (a prefix, a range, a ``!=``), since the residual would drop
    every segment of the others.

    >>> flow_terms(plan("segments", [P.Term("flow_id", ">=", "ab"), P.Term("flow_id", "<", "ac")]))
    [Term(column='id', op='>=', value='ab'), Term(column='id', op='<', value='ac')]
    """
    if p.table != "segments":
        return []
    return [Term("id", t.op, t.value) for t in p.residual if isinstance(t, Term) and t.column == "flow_id"]


def narrows(table: str, where: Sequence[Predicate]) -> bool:
    """Whether reading the rows of ``table`` that match ``where`` asks the API for less than the whole table: by
    id, with a listing's query parameters, for the segments of some flows only, or not at all.

    >>> narrows("segments", [P.eq("flow_id", "f1")]), narrows("flows", [P.Term("label", ">=", "News")])
    (True, False)
    """
    p = plan(table, where)
    if p.empty or p.ids is not None or p.params:
        return True
    if table == "segments":
        return any(t.op not in ("!=", "notnull") for t in flow_terms(p) if isinstance(t, Term))
    if table == "tags":  # read by name (tag_exists.{name}) or by entity id
        terms = [t for t in p.residual if isinstance(t, Term)]
        return any(t.column == "name" and t.op == "==" for t in terms) or P.pinned(terms, "entity_id") is not None
    return False
