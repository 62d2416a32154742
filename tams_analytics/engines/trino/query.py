"""Engine-independent ibis plumbing: the catalog's row queries as ibis expressions.

Nothing here knows Trino; any ibis backend runs these expressions. They are kept apart from the engine so
that the exact SQL an engine would send can be compiled (and checked) without a server.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import ibis

from tams_analytics.engines.base import OrderBy
from tams_analytics.predicates import Predicate
from tams_analytics.schema import SCHEMAS

if TYPE_CHECKING:
    import ibis.expr.types as ir

__all__ = ["declared_schema", "select", "source_collections"]

Lookup = Callable[[str], "ir.Table"]


def declared_schema(name: str) -> ibis.Schema:
    """The ibis schema of table ``name`` as :mod:`tams_analytics.schema` declares it.

    >>> declared_schema("segments")["start_ns"]
    Int64(nullable=False)
    """
    return ibis.Schema.from_pyarrow(SCHEMAS[name])


def select(
    table: ir.Table,
    where: Sequence[Predicate] = (),
    *,
    lookup: Lookup | None = None,
    columns: Sequence[str] | None = None,
    order_by: OrderBy = (),
    limit: int | None = None,
) -> ir.Table:
    """``SELECT columns FROM table WHERE where ORDER BY order_by LIMIT limit`` as an ibis expression.

    Predicates that read another table (tags, collections) resolve it through ``lookup``.

    >>> from tams_analytics.predicates import overlaps
    >>> t = ibis.memtable({"start_ns": [0, 10, 20], "end_ns": [10, 20, 30]})
    >>> select(t, [overlaps("[0:5_0:15)")], columns=["start_ns"], order_by=[("start_ns", True)]).execute()
       start_ns
    0        10
    1         0
    """
    expr = table
    if where:
        expr = expr.filter(*[p.to_ibis(table, lookup) for p in where])
    if order_by:
        expr = expr.order_by([ibis.desc(c) if desc else ibis.asc(c) for c, desc in order_by])
    if columns:
        expr = expr.select(*columns)
    if limit is not None:
        expr = expr.limit(int(limit))
    return expr


def source_collections(lookup: Lookup) -> ir.Table:
    """The derived ``source_collections`` table (``source_id`` collects ``member_id``) that predicates on
    sources' ``collected_by_ids`` read; the same rows as the DuckDB engine's view of that name."""
    c, f = lookup("collections"), lookup("flows")
    m = f.view()
    joined = c.join(f, c.flow_id == f.id).join(m, c.member_id == m.id)
    return joined.select(source_id=f.source_id, member_id=m.source_id).distinct()
