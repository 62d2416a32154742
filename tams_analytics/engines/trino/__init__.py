"""Trino: a read-only catalog over a federation of stores (VAST DB, Hive/Iceberg Parquet exports, ...).

``trino://user@host:port/catalog/schema`` (see :mod:`tams_analytics.engines.trino.url`). Tables are the
entity tables of :mod:`tams_analytics.schema`, looked up in the URL's catalog and schema. Every read goes
through ibis' Trino backend: the catalog's predicate tree becomes an ibis filter
(:meth:`~tams_analytics.predicates.Predicate.to_ibis`) and runs to Arrow, so a notebook moves from DuckDB
to Trino by changing the URL. Writes raise :class:`~tams_analytics.exceptions.UnsupportedError`.

Tables carry their declared schema rather than one fetched from the server: no round trip per table,
results have exactly the catalog's Arrow types whatever the connector maps them to, and the SQL sent can
be compiled (:meth:`Engine.compile`) without a server.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import SplitResult

import ibis
import ibis.expr.operations as ops
import pyarrow as pa
import trino  # the driver: importing it here makes a missing one an install hint in open_engine

from tams_analytics.engines.base import Capabilities, OrderBy
from tams_analytics.engines.base import Engine as BaseEngine
from tams_analytics.engines.ibis_query import DERIVED, declared_schema, select
from tams_analytics.engines.trino.compiler import compiler
from tams_analytics.engines.trino.url import TrinoSettings, parse_url
from tams_analytics.exceptions import TamsError, UnsupportedError
from tams_analytics.predicates import Predicate
from tams_analytics.schema import SCHEMAS

if TYPE_CHECKING:
    import ibis.expr.types as ir

__all__ = ["Engine", "TrinoSettings", "parse_url", "statements"]

logger = logging.getLogger(__name__)


def statements(text: str) -> list[str]:
    r"""The statements of a SQL script (``;``-separated, comments and strings respected), each without its ``;``:
    what the Trino client takes, one at a time.

    >>> statements("-- two\nCREATE SCHEMA s; SELECT ';' AS x;\n")
    ['CREATE SCHEMA s', "SELECT ';' AS x"]
    """
    from sqlglot import Tokenizer, TokenType

    out: list[str] = []
    start: int | None = None
    for token in Tokenizer(dialect="trino").tokenize(text):
        if token.token_type == TokenType.SEMICOLON:
            if start is not None:
                out.append(text[start : token.start].strip())
            start = None
        elif start is None:
            start = token.start
    if start is not None and text[start:].strip():
        out.append(text[start:].strip())
    return out


class Engine(BaseEngine):
    """Trino, read-only, through ibis."""

    name: ClassVar[str] = "trino"
    capabilities: ClassVar[Capabilities] = Capabilities(writes=False, subqueries=True, transactions=False)

    def __init__(
        self,
        url: SplitResult,
        *,
        password: str | None = None,
        http_scheme: str | None = None,
        verify: bool | None = None,
        request_timeout: float = 300.0,
        create: bool = False,
    ) -> None:
        if create:
            raise UnsupportedError("the trino engine is read-only: it cannot create or fill a store")
        super().__init__(url)
        self.settings = parse_url(url, password=password, http_scheme=http_scheme, verify=verify)
        s = self.settings
        auth = trino.auth.BasicAuthentication(s.user, s.password) if s.password else None
        # the driver connects lazily: nothing goes over the network before the first query
        self.ibis: Any = ibis.trino.connect(
            user=s.user,
            host=s.host,
            port=s.port,
            database=s.catalog,
            schema=s.schema,
            source=s.source,
            auth=auth,
            http_scheme=s.http_scheme,
            verify=s.verify,
            request_timeout=request_timeout,
        )
        self.ibis.compiler = compiler  # exact sub-second clock time (see .compiler)
        self._tables: dict[str, ir.Table] = {}
        logger.info("trino engine on %s", s.display)

    # -- analyst view --------------------------------------------------------------------------------
    def table(self, name: str) -> ir.Table:
        """The lazy ibis table ``name`` in the URL's catalog and schema, with its declared schema."""
        if name not in self._tables:
            if name in DERIVED:
                self._tables[name] = DERIVED[name](self.table)
            elif name in SCHEMAS:
                stored = ops.DatabaseTable(
                    name,
                    schema=declared_schema(name),
                    source=self.ibis,
                    namespace=ops.Namespace(catalog=self.settings.catalog, database=self.settings.schema),
                ).to_expr()
                # the declared columns by name, never SELECT *: a table may hold more (an export's partition
                # column, a column a later release added)
                self._tables[name] = stored.select(*stored.columns)
            else:
                raise TamsError(f"unknown table {name!r}; expected one of {sorted(SCHEMAS)}")
        return self._tables[name]

    def expression(
        self,
        name: str,
        where: Sequence[Predicate] = (),
        *,
        columns: Sequence[str] | None = None,
        order_by: OrderBy = (),
        limit: int | None = None,
    ) -> ir.Table:
        """The ibis expression :meth:`query` runs."""
        return select(self.table(name), where, lookup=self.table, columns=columns, order_by=order_by, limit=limit)

    def compile(self, expr: ir.Expr) -> str:
        """The Trino SQL this engine sends for ``expr`` (no server needed)."""
        return str(self.ibis.compile(expr))

    # -- reads -------------------------------------------------------------------------------------------
    def query(
        self,
        name: str,
        where: Sequence[Predicate] = (),
        *,
        columns: Sequence[str] | None = None,
        order_by: OrderBy = (),
        limit: int | None = None,
    ) -> pa.Table:
        expr = self.expression(name, where, columns=columns, order_by=order_by, limit=limit)
        result: pa.Table = self._run(lambda: self.ibis.to_pyarrow(expr))
        return result

    def count(self, name: str, where: Sequence[Predicate] = ()) -> int:
        expr = self.expression(name, where).count()
        return int(self._run(lambda: self.ibis.to_pyarrow(expr)).as_py())

    def sql(self, query: str) -> pa.Table:
        """Run one raw Trino statement and return its rows as Arrow (empty for DDL)."""

        def run() -> pa.Table:
            cur = self.ibis.raw_sql(query)
            try:
                rows = cur.fetchall()
                names = [d[0] for d in cur.description or ()]
            finally:
                cur.close()
            if not names:
                return pa.table({})
            return pa.Table.from_pylist([dict(zip(names, r, strict=True)) for r in rows])

        table: pa.Table = self._run(run)
        return table

    def script(self, text: str) -> None:
        """Run every statement of a SQL script, in order: a file of ``sql/trino`` (views, the Hive tables of an
        export), as ``trino -f FILE`` would; unqualified names resolve in the URL's catalog and schema."""
        for statement in statements(text):
            self.sql(statement)

    def foreign_table(self, name: str, *, catalog: str, schema: str) -> ir.Table:
        """Table ``catalog.schema.name`` of any catalog of this Trino (a schedule in PostgreSQL, say), as a lazy
        ibis table that joins with the TAMS tables in one Trino query."""
        table: ir.Table = self._run(lambda: self.ibis.table(name, database=(catalog, schema)))
        return table

    def _run(self, fn: Any) -> Any:
        try:
            return fn()
        except trino.exceptions.TrinoConnectionError as exc:
            raise TamsError(f"cannot reach Trino at {self.settings.display}: {exc}") from exc
        except trino.exceptions.TrinoUserError as exc:
            raise TamsError(f"Trino refused the query ({exc.error_name}): {exc.message}") from exc

    def close(self) -> None:
        con = getattr(self.ibis, "con", None)
        if con is not None:
            con.close()
