"""A page of a flow's segments as predicates: what the catalog, the server's routes and its store process read."""

from __future__ import annotations

from tams_analytics import predicates as P
from tams_analytics.predicates import Predicate, Term
from tams_analytics.timerange import TimeRange

__all__ = ["segment_page_where"]


def segment_page_where(
    flow_id: str,
    timerange: TimeRange | str | None = None,
    object_id: str | None = None,
    after_start_ns: int | None = None,
    reverse: bool = False,
) -> list[Predicate]:
    """The predicates of one page of a flow's segments, keyed on ``start_ns`` (after ``after_start_ns``,
    or before it when ``reverse``)."""
    where: list[Predicate] = [Term("flow_id", "==", flow_id)]
    if timerange is not None:
        where += P.flatten([P.overlaps(timerange)])
    if object_id is not None:
        where.append(Term("object_id", "==", object_id))
    if after_start_ns is not None:
        where.append(Term("start_ns", "<" if reverse else ">", after_start_ns))
    return where
