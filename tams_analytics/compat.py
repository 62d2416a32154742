"""What differs between the two supported dependency sets, in one place (docs/development/dependencies.md).

*current* (``constraints.txt``): ibis 12, DuckDB 2.0, pyarrow 26, pandas 3. *vast* (``constraints-vast.txt``, the
``vast`` extra): vastdb 2.1 with ibis 10.8, DuckDB 1.3.2, pyarrow 23, pandas 2. Callers ask for what they need
(:func:`arrow_table`, :func:`ibis_duckdb`); none of them compares versions.

- DuckDB 1.5 renamed a result's Arrow fetches (``fetch_arrow_table`` → ``to_arrow_table``, ``fetch_record_batch`` →
  ``to_arrow_reader``), 2.0 removed the old names from connections (relations keep both) and warns that Arrow from an
  executed statement's result is an extra copy: :func:`arrow_table` reads through a relation, in every version.
- ibis 12.0.0's DuckDB backend still calls the old names in five methods (fixed upstream by ibis#12001, not yet
  released): :class:`IbisDuckDB` runs those five through relations, which have ``to_arrow_table`` in every
  supported DuckDB. It is used only where the old names are gone; remove it with the ibis release that has the fix.
- ibis 10.8's DuckDB backend cannot run on DuckDB 1.4 or later (it imports ``duckdb.functional``): that pairing is
  refused with the command that mends it (:func:`check_pairing`).
- The storage format: DuckDB 2.0 writes new files in its v2 format (indexes checkpointed incrementally), reads the
  older one and keeps a file in the format it was made in; DuckDB 1.3 reads only the older one
  (:data:`STORAGE_VERSION`, :mod:`tams_analytics.engines.duckdb.upkeep`).
- The filters DuckDB hands a Python ``pyarrow.dataset.Dataset``'s scan (the remote engines' lazy tables,
  :mod:`tams_analytics.engines.remote`): 2.0 sends an ``IN`` list as ``if_else(is_valid(x), is_in(x, ...), null)``
  (1.3: nested ORs), also sends ``IS NULL``, ``IS NOT NULL``, ``NOT IN`` and ORs across columns, and no longer a
  prefix ``LIKE`` (1.3: a range) nor a join's keys (1.3: an ``IN`` list of them and their bounds). The lazy tables
  read every form without asking which DuckDB sent it; :data:`SCAN_PUSHDOWN` says what reaches a scan here, for the
  tests and pages that say what each set pushes.
- pyarrow 26 converts a column to Python values without a scalar per value (apache/arrow#50327): its ``to_pylist`` is
  then as fast as NumPy's ``tolist``; in pyarrow 23 it is 20 times slower on 1,000 values
  (:data:`PYLIST_WITHOUT_SCALARS`, :func:`tams_analytics.pyrows.column_values`).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Final

import duckdb
import pyarrow as pa

__all__ = [
    "DUCKDB_VERSION",
    "IBIS_VERSION",
    "PYLIST_WITHOUT_SCALARS",
    "SCAN_PUSHDOWN",
    "STORAGE_VERSION",
    "ScanPushdown",
    "arrow_table",
    "check_pairing",
    "ibis_duckdb",
    "ibis_duckdb_backend",
]


def _version(text: str) -> tuple[int, int, int]:
    """``(major, minor, patch)`` of a version string such as ``2.0.1`` or ``1.5.0.dev254``."""
    major, minor, patch = [*(int(p) for p in re.findall(r"\d+", text)[:3]), 0, 0, 0][:3]
    return major, minor, patch


DUCKDB_VERSION: Final = _version(duckdb.__version__)


def _ibis_version() -> tuple[int, int, int]:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return _version(version("ibis-framework"))
    except PackageNotFoundError:  # pragma: no cover - ibis is a dependency
        return (0, 0, 0)


IBIS_VERSION: Final = _ibis_version()

#: ``to_pylist`` converts without a scalar per value (pyarrow 26 and later; the ``vast`` set pins pyarrow 23)
PYLIST_WITHOUT_SCALARS: Final = _version(pa.__version__) >= (26, 0, 0)

#: the storage format DuckDB writes new store files in (what ``duckdb_databases().tags['storage_version']`` shows):
#: DuckDB 2.0 and later write ``v2.0.0+`` by default (incremental index checkpoints); earlier ones ``v1.0.0+``
STORAGE_VERSION: Final = "v2.0.0+" if DUCKDB_VERSION >= (2, 0, 0) else "v1.0.0+"


@dataclass(frozen=True)
class ScanPushdown:
    """Which filters DuckDB pushes into a Python ``pyarrow.dataset.Dataset``'s scan, besides comparisons of a
    column with a constant and ``IN`` lists (measured on DuckDB 1.3.2 and 2.0.1)."""

    #: ``IS NULL``, ``IS NOT NULL``
    null_checks: bool
    #: ``NOT IN``, and ORs of comparisons on different columns
    negated_lists_and_cross_column_ors: bool
    #: ``LIKE 'abc%'``, as ``>= 'abc' AND < 'abd'``
    prefix_like: bool
    #: a hash join's keys, from the side it builds its table on (an ``IN`` list of them and their bounds)
    join_keys: bool


SCAN_PUSHDOWN: Final = (
    ScanPushdown(null_checks=True, negated_lists_and_cross_column_ors=True, prefix_like=False, join_keys=False)
    if DUCKDB_VERSION >= (2, 0, 0)
    else ScanPushdown(null_checks=False, negated_lists_and_cross_column_ors=False, prefix_like=True, join_keys=True)
)

#: DuckDB's connections lost ``fetch_arrow_table`` (2.0; deprecated in 1.5)
_NEW_ARROW_NAMES: Final = not hasattr(duckdb.DuckDBPyConnection, "fetch_arrow_table")


def check_pairing() -> None:
    """Refuse ibis 10 beside DuckDB 1.4 or later (its DuckDB backend cannot run there), and DuckDB 1.4.x (on a full
    volume a table then reads as empty in the session that met it: spiceai#13985), saying how to mend the
    environment."""
    if (1, 4, 0) <= DUCKDB_VERSION < (1, 5, 0):
        raise ImportError(
            f"DuckDB {duckdb.__version__} is not supported (on a full volume a table then reads as empty): "
            'pip install "duckdb>=2.0,<2.1" (or, with vastdb, "duckdb==1.3.2")'
        )
    if IBIS_VERSION < (11, 0, 0) and DUCKDB_VERSION >= (1, 4, 0):
        raise ImportError(
            f"ibis-framework {'.'.join(map(str, IBIS_VERSION))} cannot run on DuckDB {duckdb.__version__}: install "
            'the current set (pip install "ibis-framework>=12,<13") or VAST\'s (pip install -e ".[vast]" -c '
            "constraints-vast.txt)"
        )


def arrow_table(con: duckdb.DuckDBPyConnection, sql: str, params: Sequence[Any] = ()) -> pa.Table:
    """The result of ``sql`` (with ``params`` bound) on ``con``, as an Arrow table: through a relation, which every
    supported DuckDB turns into Arrow without a copy (DuckDB 2.0 warns that an executed statement's result makes an
    extra one, and 1.5 renamed its fetch). A statement that returns no rows gives an empty table."""
    relation = con.sql(sql, params=list(params) if params else None)
    return relation.to_arrow_table() if relation is not None else pa.table({})


def _ibis_backend_base() -> type:
    from ibis.backends.duckdb import Backend

    return Backend  # type: ignore[no-any-return]


@functools.cache
def _shimmed_backend() -> type:
    """ibis 12.0.0's DuckDB backend with its five uses of DuckDB's old Arrow names run through relations."""
    import sqlglot.expressions as sge

    base = _ibis_backend_base()

    class IbisDuckDB(base):  # type: ignore[misc, valid-type]  # ibis ships no type information
        """ibis's DuckDB backend on a DuckDB without ``fetch_arrow_table`` (see the module docstring)."""

        def _arrow(self, query: str | sge.Expression) -> pa.Table:
            sql = query if isinstance(query, str) else query.sql(self.dialect)
            return self.con.sql(sql).to_arrow_table()

        def list_catalogs(self, *, like: str | None = None) -> list[str]:
            query = sge.select(sge.Distinct(expressions=[sge.column("catalog_name")])).from_(
                sge.table_("schemata", db="information_schema")
            )
            return self._filter_with_like(self._arrow(query)["catalog_name"].to_pylist(), like)  # type: ignore[no-any-return]

        def list_databases(self, *, like: str | None = None, catalog: str | None = None) -> list[str]:
            query = sge.select(sge.Distinct(expressions=[sge.column("schema_name")])).from_(
                sge.table_("schemata", db="information_schema")
            )
            if catalog is not None:
                query = query.where(sge.column("catalog_name").eq(sge.convert(catalog)))
            return self._filter_with_like(self._arrow(query)["schema_name"].to_pylist(), like)  # type: ignore[no-any-return]

        def list_tables(self, *, like: str | None = None, database: tuple[str, str] | str | None = None) -> list[str]:
            table_loc = self._to_sqlglot_table(database)
            catalog = table_loc.catalog or self.current_catalog
            schema = table_loc.db or self.current_database
            query = (
                sge.select("table_name")
                .from_(sge.table_("tables", db="information_schema"))
                .distinct()
                .where(
                    sge.column("table_catalog").isin(sge.convert(catalog), sge.convert("temp")),
                    sge.column("table_schema").eq(sge.convert(schema)),
                )
            )
            return self._filter_with_like(self._arrow(query)["table_name"].to_pylist(), like)  # type: ignore[no-any-return]

        def to_pyarrow_batches(
            self,
            expr: Any,
            /,
            *,
            params: Any = None,
            limit: int | str | None = None,
            chunk_size: int = 1_000_000,
            **_: Any,
        ) -> pa.RecordBatchReader:
            self._run_pre_execute_hooks(expr)
            table = expr.as_table()
            sql = self.compile(table, limit=limit, params=params)
            reader = self.con.sql(sql).to_arrow_reader(chunk_size)

            def batches() -> Iterator[pa.RecordBatch]:
                yield from reader

            return pa.RecordBatchReader.from_batches(table.schema().to_pyarrow(), batches())

        def _get_schema_using_query(self, query: str) -> Any:
            import ibis

            rows = self._arrow(f"DESCRIBE {query}").to_pydict()
            type_mapper = self.compiler.type_mapper
            return ibis.schema(
                {
                    name: type_mapper.from_string(typ, nullable=null == "YES")
                    for name, typ, null in zip(rows["column_name"], rows["column_type"], rows["null"], strict=True)
                }
            )

    return IbisDuckDB


def ibis_duckdb_backend() -> Any:
    """The class of ibis's DuckDB backend to build on (subclass, or ``from_connection``)."""
    return _shimmed_backend() if _NEW_ARROW_NAMES and IBIS_VERSION < (12, 1, 0) else _ibis_backend_base()


def ibis_duckdb(con: duckdb.DuckDBPyConnection) -> Any:
    """ibis's DuckDB backend over ``con``."""
    return ibis_duckdb_backend().from_connection(con)


check_pairing()
