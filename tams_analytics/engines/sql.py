"""The predicate tree as standard SQL with ``?`` placeholders, for SQL engines' hot paths.

A segment query on DuckDB does not pay for an ibis compile: :class:`SqlRenderer` renders the tree
straight to parameterised SQL. The VAST engine's client-side residual renders through a subclass
(:class:`tams_analytics.engines.remote.residual.ResidualRenderer`).

>>> from tams_analytics import predicates as P
>>> params = []
>>> select_sql("segments", [P.eq("flow_id", "f"), P.overlaps("[0:0_10:0)")], params, limit=1)
'SELECT * FROM "segments" WHERE "flow_id" = ? AND ("start_ns" < ? AND "end_ns" > ?) LIMIT 1'
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from tams_analytics.exceptions import UnsupportedError
from tams_analytics.predicates import AllOf, AnyOf, Const, InSubquery, Predicate, Term, Visitor

if TYPE_CHECKING:
    from tams_analytics.engines.base import OrderBy

__all__ = ["Params", "SqlRenderer", "quote", "render_sql", "select_sql", "where_sql"]

_COMPARISON = {"==": "=", "!=": "<>", "<": "<", "<=": "<=", ">": ">", ">=": ">="}
#: value lists longer than this are bound as one list parameter (``IN (SELECT unnest(?))``), or as a table
LONG_LIST = 64


class Params(list[Any]):
    """Bound values of a statement, and (for an engine that can bind tables, such as DuckDB) the long value
    lists bound as one-column Arrow tables by name (``IN (SELECT v FROM name)``): binding 10,000 ids as a
    Python list parameter costs DuckDB about as much as the query itself."""

    def __init__(self, *, tables: bool = False) -> None:
        super().__init__()
        self.tables: dict[str, pa.Table] | None = {} if tables else None

    def inline(self, column: str, count: int) -> bool:
        """Whether ``count`` values of an ``isin`` on ``column`` are bound as placeholders (``IN (?, ?, ...)``)."""
        return count <= LONG_LIST

    def long_list(self, values: Sequence[Any]) -> str:
        """The SQL of a subquery giving ``values``, binding them."""
        if self.tables is not None:
            try:
                array = pa.array(values)
            except (pa.ArrowException, TypeError, ValueError):  # mixed types: a list parameter
                array = None
            if array is not None and array.null_count == 0:
                return self.bind_table(array)
        self.append(list(values))
        return "SELECT unnest(?)"

    def bind_table(self, values: pa.Array) -> str:
        """The SQL of a subquery giving ``values`` (non-null), bound as a table."""
        assert self.tables is not None, "this engine binds no tables"
        name = f"_tams_values_{len(self.tables)}"
        self.tables[name] = pa.table({"v": values})
        return f'SELECT v FROM "{name}"'


def quote(identifier: str) -> str:
    """A double-quoted SQL identifier."""
    return '"' + identifier.replace('"', '""') + '"'


class SqlRenderer(Visitor[str]):
    """Renders a predicate as SQL, appending the bound values to ``params``."""

    def __init__(self, params: list[Any]) -> None:
        self.params = params

    def const(self, p: Const) -> str:
        return "TRUE" if p.value else "FALSE"

    def all_of(self, p: AllOf) -> str:
        if not p.terms:
            return "TRUE"
        return "(" + " AND ".join(t.accept(self) for t in p.terms) + ")"

    def any_of(self, p: AnyOf) -> str:
        if not p.terms:
            return "FALSE"
        return "(" + " OR ".join(t.accept(self) for t in p.terms) + ")"

    def subquery(self, p: InSubquery) -> str:
        inner = p.where.accept(self)
        sub = f"SELECT {quote(p.value_column)} FROM {quote(p.table)} WHERE {inner}"
        # NOT IN with a NULL in the subquery is never true: the inner columns are non-null ids
        return f"{quote(p.column)} {'NOT IN' if p.negate else 'IN'} ({sub})"

    def term(self, p: Term) -> str:
        col = quote(p.column)
        op, v = p.op, p.value
        if op in _COMPARISON:
            self.params.append(v)
            return f"{col} {_COMPARISON[op]} ?"
        if op == "isin":
            if not v:
                return "FALSE"
            if isinstance(self.params, Params):
                if not self.params.inline(p.column, len(v)):  # planning placeholders costs ~30 µs each
                    return f"{col} IN ({self.params.long_list(v)})"
            elif len(v) > LONG_LIST:
                self.params.append(list(v))
                return f"{col} IN (SELECT unnest(?))"
            self.params.extend(v)
            return f"{col} IN ({', '.join('?' * len(v))})"
        if op == "isnull":
            return f"{col} IS NULL"
        if op == "notnull":
            return f"{col} IS NOT NULL"
        if op in ("startswith", "contains"):
            self.params.append(v)
            return f"{'starts_with' if op == 'startswith' else 'contains'}({col}, ?)"
        if op == "between":
            self.params.extend(v)
            return f"{col} BETWEEN ? AND ?"
        raise UnsupportedError(f"cannot render {p!r} as SQL")


def render_sql(predicate: Predicate, params: list[Any]) -> str:
    """``predicate`` as standard SQL with ``?`` placeholders appended to ``params``."""
    return predicate.accept(SqlRenderer(params))


def where_sql(where: Sequence[Predicate], params: list[Any]) -> str:
    """`` WHERE a AND b ...`` for the conjuncts ``where`` (empty when there are none)."""
    if not where:
        return ""
    renderer = SqlRenderer(params)
    return " WHERE " + " AND ".join(p.accept(renderer) for p in where)


def select_sql(
    name: str,
    where: Sequence[Predicate],
    params: list[Any],
    *,
    columns: Sequence[str] | None = None,
    order_by: OrderBy = (),
    limit: int | None = None,
) -> str:
    """``SELECT ... FROM name WHERE ... ORDER BY ... LIMIT ...`` with placeholders."""
    cols = ", ".join(quote(c) for c in columns) if columns else "*"
    sql = f"SELECT {cols} FROM {quote(name)}" + where_sql(where, params)
    if order_by:
        sql += " ORDER BY " + ", ".join(f"{quote(c)} {'DESC' if d else 'ASC'}" for c, d in order_by)
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    return sql
