"""Engine-independent ibis plumbing: the catalog's row queries and derived tables as ibis expressions.

Any ibis backend runs these expressions (the Trino engine for every read, the DuckDB engine for its
derived views, the VAST engine for derived tables client-side), so the exact SQL an engine would send
can be compiled (and checked) without a server, and a derived table has one definition everywhere.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import ibis
import pyarrow as pa

from tams_analytics.compat import ibis_duckdb
from tams_analytics.engines.base import OrderBy
from tams_analytics.engines.memory import memory_connection
from tams_analytics.predicates import Predicate
from tams_analytics.schema import SCHEMAS

if TYPE_CHECKING:
    import ibis.expr.types as ir

__all__ = ["DERIVED", "declared_schema", "derived_rows", "derived_schema", "select", "source_collections"]

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
    """The derived ``source_collections`` table that predicates on sources' ``collected_by_ids`` read:
    ``source_id`` collects ``member_id`` when a flow of the first collects a flow of the second (flows of
    one source never make it collect itself).

    >>> import tams_analytics as ta
    >>> source_collections(ta.connect("duckdb://").table).columns
    ('source_id', 'member_id')
    """
    c = lookup("collections").select("flow_id", "member_id")
    flows = lookup("flows")
    collector = flows.select(collector_flow=flows.id, source_id=flows.source_id)
    member = flows.select(member_flow=flows.id, member_source=flows.source_id)
    j = c.join(collector, c.flow_id == collector.collector_flow).join(member, c.member_id == member.member_flow)
    j = j.filter(j.source_id != j.member_source)
    return j.select(source_id=j.source_id, member_id=j.member_source).distinct()


#: derived tables: name -> builder over the stored tables (engines expose them beside the stored ones)
DERIVED: dict[str, Callable[[Lookup], ir.Table]] = {"source_collections": source_collections}


def _derived_expr(name: str) -> ir.Table:
    """The derived table ``name`` over unbound tables with the declared schemas."""
    return DERIVED[name](lambda n: ibis.table(declared_schema(n), name=n))


def derived_schema(name: str) -> pa.Schema:
    """The Arrow schema of derived table ``name``.

    >>> derived_schema("source_collections").names
    ['source_id', 'member_id']
    """
    return _derived_expr(name).schema().to_pyarrow()


def derived_rows(name: str, read: Callable[[str, Sequence[str]], pa.Table]) -> pa.Table:
    """Derived table ``name`` evaluated client-side (by an in-memory DuckDB) on the columns it uses of the
    stored tables it reads; ``read(table, columns)`` returns a stored table's rows (engines whose store has
    no views of its own: VAST, ``tams+http``)."""
    import ibis.expr.operations as ops

    used: dict[str, set[str]] = {}
    for f in _derived_expr(name).op().find(ops.Field):
        if isinstance(f.rel, ops.UnboundTable):
            used.setdefault(f.rel.name, set()).add(f.name)
    reads = {
        table: ibis.memtable(read(table, [c for c in SCHEMAS[table].names if c in cols]))
        for table, cols in used.items()
    }
    con = memory_connection()
    try:
        rows = ibis_duckdb(con).to_pyarrow(DERIVED[name](reads.__getitem__))
    finally:
        con.close()
    return rows.cast(derived_schema(name))
