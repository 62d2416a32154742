"""Client-side evaluation of what a remote store does not: the residual filter, ordering and limit, on Arrow.

The VAST engine runs what ``Table.select`` cannot evaluate here, and the ``tams+http`` engine what the TAMS
API's query parameters cannot express.

The residual runs on an in-memory DuckDB over the Arrow result of the pushdown (zero copy); ordering and
limit without a residual are a plain Arrow sort. DuckDB rather
than ``pyarrow.compute`` because it gives the residual exactly the semantics of the reference engine:
SQL's three-valued logic with NULLs, ``ORDER BY`` with NULLs last, ``starts_with``/``contains``, and the
same rendering of the predicate tree as :class:`tams_analytics.engines.sql.SqlRenderer`. Two things are
rendered differently here, because DuckDB 1.3 fails on them: value lists are bound as *one* list
parameter (``col IN (SELECT unnest(?))``; thousands of ``?`` placeholders crash it), and long AND/OR
chains become balanced trees, with ``!=`` terms on one column folded into ``NOT IN`` (a resolved
``NOT IN`` subquery is thousands of them).

>>> import pyarrow as pa
>>> from tams_analytics import predicates as P
>>> t = pa.table({"a": [1, 2, None, 4], "b": ["x", "y", "z", None]})
>>> evaluate(t, [P.AnyOf((P.Term("a", ">", 3), P.eq("b", "x")))], order_by=[("a", True)]).to_pydict()
{'a': [4, 1], 'b': [None, 'x']}
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any, Final

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from tams_analytics.compat import arrow_table
from tams_analytics.engines.base import OrderBy
from tams_analytics.engines.memory import memory_connection
from tams_analytics.engines.sql import SqlRenderer, quote
from tams_analytics.predicates import AllOf, AnyOf, InSubquery, Predicate, Term, Visitor

__all__ = ["ResidualRenderer", "conform", "evaluate", "residual_sql", "union"]

#: AND/OR chains longer than this are rendered as balanced trees (DuckDB's parser recurses per operand).
_FLAT_CHAIN: Final = 32
_VIEW: Final = "_tams_rows"
_local = threading.local()


def _join(parts: Sequence[str], op: str) -> str:
    if len(parts) <= _FLAT_CHAIN:
        return "(" + f" {op} ".join(parts) + ")"
    mid = len(parts) // 2
    return f"({_join(parts[:mid], op)} {op} {_join(parts[mid:], op)})"


class ResidualRenderer(SqlRenderer):
    """:class:`SqlRenderer` for the residual: value lists bound as one list parameter, long chains as
    balanced trees, and same-column ``!=`` (in an AND) or ``==``/``isin`` (in an OR) folded into lists."""

    def _value_list(self, column: str, values: Sequence[Any], negate: bool) -> str:
        if not values:
            return "TRUE" if negate else "FALSE"
        self.params.append(list(values))
        return f"{quote(column)} {'NOT IN' if negate else 'IN'} (SELECT unnest(?))"

    def _group(self, terms: Sequence[Predicate], any_of: bool) -> list[str]:
        folded: dict[str, list[Any]] = {}
        rest: list[Predicate] = []
        for t in terms:
            if isinstance(t, Term) and not any_of and t.op == "!=":
                folded.setdefault(t.column, []).append(t.value)
            elif isinstance(t, Term) and any_of and t.op in ("==", "isin"):
                folded.setdefault(t.column, []).extend(t.value if t.op == "isin" else (t.value,))
            else:
                rest.append(t)
        parts = [self._value_list(c, list(dict.fromkeys(v)), not any_of) for c, v in folded.items()]
        return parts + [t.accept(self) for t in rest]

    def all_of(self, p: AllOf) -> str:
        return _join(self._group(p.terms, False), "AND") if p.terms else "TRUE"

    def any_of(self, p: AnyOf) -> str:
        return _join(self._group(p.terms, True), "OR") if p.terms else "FALSE"

    def term(self, p: Term) -> str:
        if p.op == "isin":
            return self._value_list(p.column, list(p.value), False)
        return super().term(p)

    def subquery(self, p: InSubquery) -> str:
        return Visitor.subquery(self, p)  # resolved into values before the residual runs


def residual_sql(predicate: Predicate, params: list[Any]) -> str:
    """DuckDB SQL for ``predicate`` with ``?`` placeholders appended to ``params``.

    >>> from tams_analytics import predicates as P
    >>> params = []
    >>> residual_sql(P.AllOf((P.Term("a", "!=", 1), P.Term("a", "!=", 2), P.eq("b", "x"))), params), params
    ('("a" NOT IN (SELECT unnest(?)) AND "b" = ?)', [[1, 2], 'x'])
    """
    return predicate.accept(ResidualRenderer(params))


def _connection() -> duckdb.DuckDBPyConnection:
    con: duckdb.DuckDBPyConnection | None = getattr(_local, "con", None)
    if con is None:
        con = memory_connection()
        _local.con = con
    return con


def evaluate(
    rows: pa.Table,
    where: Sequence[Predicate] = (),
    *,
    columns: Sequence[str] | None = None,
    order_by: OrderBy = (),
    limit: int | None = None,
) -> pa.Table:
    """``SELECT columns FROM rows WHERE AND(where) ORDER BY ... LIMIT ...`` on an Arrow table."""
    out = list(rows.column_names if columns is None else columns)
    if not where:  # ordering alone: Arrow sorts NULLs last and strings by bytes, as DuckDB does
        if order_by:
            keys = [(c, "descending" if d else "ascending") for c, d in order_by]
            rows = rows.take(pc.sort_indices(rows, sort_keys=keys, null_placement="at_end"))
        return rows.select(out) if limit is None else rows.slice(0, max(0, int(limit))).select(out)
    params: list[Any] = []
    sql = f"SELECT {', '.join(quote(c) for c in out)} FROM {_VIEW}"
    if where:
        sql += " WHERE " + _join([residual_sql(p, params) for p in where], "AND")
    if order_by:
        sql += " ORDER BY " + ", ".join(f"{quote(c)} {'DESC' if d else 'ASC'}" for c, d in order_by)
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    con = _connection()
    con.register(_VIEW, rows)
    try:
        result = arrow_table(con, sql, params)
    finally:
        con.unregister(_VIEW)
    return conform(result, rows.schema)


def conform(rows: pa.Table, schema: pa.Schema) -> pa.Table:
    """``rows`` with each column cast to its type in ``schema`` (columns ``schema`` lacks are kept)."""
    arrays = []
    fields = []
    for name, col in zip(rows.column_names, rows.columns, strict=True):
        want = schema.field(name).type if name in schema.names else col.type
        arrays.append(col if col.type == want else col.cast(want))
        fields.append(pa.field(name, want))
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


def union(parts: Sequence[pa.Table], schema: pa.Schema) -> pa.Table:
    """Concatenate the results of disjoint requests (an empty table of ``schema`` when there are none)."""
    if not parts:
        return schema.empty_table()
    if len(parts) == 1:
        return parts[0]
    return pa.concat_tables([conform(p, parts[0].schema) for p in parts])
