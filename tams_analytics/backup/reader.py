"""A folder of Parquet tables (a backup, or ``tams-analytics export``'s output) opened as a read-only catalog.

Each table of :mod:`tams_analytics.schema` becomes a view of an in-memory DuckDB database over the table's files
(``<table>/**/*.parquet``, read where they are, never loaded): its declared columns, in order, with their
declared types; a column the files lack is null (an export leaves webhook API keys out). So a backup is a store
like any other to the catalog, the integrity audit and :func:`~tams_analytics.backup.copy.copy_store`: a restore
is a copy from it, and an export is a portable backup too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final
from urllib.parse import urlsplit

import ibis
import pyarrow.parquet as pq

from tams_analytics.catalog import Catalog
from tams_analytics.engines.duckdb import Engine as DuckDBEngine
from tams_analytics.engines.ibis_query import DERIVED, declared_schema
from tams_analytics.engines.sql import quote
from tams_analytics.exceptions import TamsError
from tams_analytics.schema import SCHEMAS

__all__ = ["open_parquet_folder", "table_files"]

_TYPES: Final = {"string": "VARCHAR", "int64": "BIGINT", "bool": "BOOLEAN", "timestamp[us, tz=UTC]": "TIMESTAMPTZ"}


def table_files(folder: Path, table: str) -> list[Path]:
    """The Parquet files of ``table`` under ``folder`` (Hive partitions included), in path order."""
    return sorted((folder / table).rglob("*.parquet")) if (folder / table).is_dir() else []


def _literal(path: Path) -> str:
    return "'" + str(path).replace("'", "''") + "'"


def _view(name: str, files: list[Path]) -> str:
    schema = SCHEMAS[name]
    present = set(pq.read_schema(files[0]).names) if files else set()
    columns = []
    for f in schema:
        kind = _TYPES[str(f.type)]
        value = f"CAST({quote(f.name)} AS {kind})" if f.name in present else f"CAST(NULL AS {kind})"
        columns.append(f"{value} AS {quote(f.name)}")
    if not files:
        return f"CREATE VIEW {quote(name)} AS SELECT {', '.join(columns)} WHERE false"
    paths = ", ".join(_literal(p) for p in files)
    source = f"read_parquet([{paths}], hive_partitioning = false, union_by_name = true)"
    return f"CREATE VIEW {quote(name)} AS SELECT {', '.join(columns)} FROM {source}"


def open_parquet_folder(folder: Path, *, require: bool = True) -> Catalog:
    """A read-only catalog over the Parquet tables under ``folder``; with ``require``, a folder holding none of
    them is a :class:`TamsError` (a mistyped path reads as an empty store otherwise).

    >>> import tempfile, tams_analytics as ta
    >>> from tams_analytics.export import export_catalog
    >>> from tams_analytics.views import example_catalog
    >>> out = tempfile.TemporaryDirectory()
    >>> _ = export_catalog(example_catalog(), out.name)
    >>> open_parquet_folder(Path(out.name)).count("segments")
    3
    >>> out.cleanup()
    """
    found = {name: table_files(folder, name) for name in SCHEMAS}
    if require and not any(found.values()):
        raise TamsError(f"{folder} holds no Parquet tables (sources/, flows/, segments/, ...): is the path right?")
    engine = DuckDBEngine(urlsplit("duckdb://"), read_only=True)
    connection = engine.connection()
    try:
        for name, files in found.items():
            connection.execute(_view(name, files))
        for view, build in DERIVED.items():  # derived tables, as a DuckDB store has them
            expr = build(lambda n: ibis.table(declared_schema(n), name=n))
            connection.execute(f"CREATE VIEW {quote(view)} AS {ibis.to_sql(expr, dialect='duckdb')}")
    except Exception as exc:
        engine.close()
        raise TamsError(f"cannot read the Parquet tables under {folder}: {exc}") from exc
    finally:
        connection.close()
    return Catalog(engine)
