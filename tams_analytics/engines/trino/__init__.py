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
from tams_analytics.engines.trino.url import TrinoSettings, parse_url
from tams_analytics.exceptions import TamsError, UnsupportedError
from tams_analytics.predicates import Predicate
from tams_analytics.schema import SCHEMAS

if TYPE_CHECKING:
    import ibis.expr.types as ir

__all__ = ["Engine", "TrinoSettings", "parse_url"]

logger = logging.getLogger(__name__)


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
        self._tables: dict[str, ir.Table] = {}
        logger.info("trino engine on %s", s.display)

    # -- analyst view --------------------------------------------------------------------------------
    def table(self, name: str) -> ir.Table:
        """The lazy ibis table ``name`` in the URL's catalog and schema, with its declared schema."""
        if name not in self._tables:
            if name in DERIVED:
                self._tables[name] = DERIVED[name](self.table)
            elif name in SCHEMAS:
                self._tables[name] = ops.DatabaseTable(
                    name,
                    schema=declared_schema(name),
                    source=self.ibis,
                    namespace=ops.Namespace(catalog=self.settings.catalog, database=self.settings.schema),
                ).to_expr()
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
        """Run raw Trino SQL and return Arrow (for views and tests)."""

        def run() -> pa.Table:
            cur = self.ibis.raw_sql(query)
            try:
                rows = cur.fetchall()
                names = [d[0] for d in cur.description]
            finally:
                cur.close()
            return pa.Table.from_pylist([dict(zip(names, r, strict=True)) for r in rows])

        table: pa.Table = self._run(run)
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
