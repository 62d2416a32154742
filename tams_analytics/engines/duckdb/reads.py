"""How the engine runs a read: bound values and tables, and rows fetched as Python tuples where that is cheaper."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import duckdb
import pyarrow as pa

from tams_analytics.engines.duckdb.ddl import LOOKUP_KEYS
from tams_analytics.engines.sql import Params
from tams_analytics.predicates import Predicate, pinned
from tams_analytics.schema import SCHEMAS

__all__ = ["FEW_IDS", "PAGE_ROWS", "as_records", "few_ids", "rows", "run"]

#: up to this many ids, a lookup by a lookup key is fetched as Python tuples (:meth:`Engine.records`)
FEW_IDS = 64
#: segment pages up to this many rows are fetched as Python tuples (:meth:`Engine.records`)
PAGE_ROWS = 1001
#: each table's timestamp columns, and the time zone Arrow gives their values (fetched tuples are made the same)
_TIMESTAMPS = {name: {f.name for f in schema if pa.types.is_timestamp(f.type)} for name, schema in SCHEMAS.items()}
_UTC = pa.scalar(0, pa.timestamp("us", tz="UTC")).as_py().tzinfo


def few_ids(name: str, where: Sequence[Predicate]) -> bool:
    """Whether ``where`` pins a lookup key of table ``name`` (:data:`LOOKUP_KEYS`) to at most :data:`FEW_IDS` values."""
    for column in LOOKUP_KEYS.get(name, ()):
        values = pinned(where, column)
        if values is not None and len(values) <= FEW_IDS:
            return True
    return False


T = TypeVar("T")
#: how :func:`run` fetches a statement's result: ``fetch(cursor, sql, values)``
Fetch = Callable[[duckdb.DuckDBPyConnection, str, list[Any]], T]


def run(cursor: duckdb.DuckDBPyConnection, sql: str, params: Params, fetch: Fetch[T]) -> T:
    """``fetch(cursor, sql, values)``: ``sql`` run on ``cursor`` with its bound values and tables (registered on the
    cursor until it is fetched): :func:`rows` or :func:`~tams_analytics.compat.arrow_table`."""
    tables = params.tables or {}
    for table_name, table in tables.items():
        cursor.register(table_name, table)
    try:
        return fetch(cursor, sql, list(params))
    finally:
        for table_name in tables:
            cursor.unregister(table_name)


def rows(cursor: duckdb.DuckDBPyConnection, sql: str, values: Sequence[Any]) -> list[tuple[Any, ...]]:
    """The rows of ``sql``, with ``values`` bound, as tuples."""
    return cursor.execute(sql, list(values)).fetchall()


def as_records(name: str, columns: Sequence[str], found: Sequence[tuple[Any, ...]]) -> list[dict[str, Any]]:
    """Fetched tuples of table ``name`` as dicts by ``columns``, timestamps in UTC (as Arrow gives them; DuckDB gives
    them in the session's time zone)."""
    stamps = [c for c in columns if c in _TIMESTAMPS[name]]
    rows = [dict(zip(columns, row, strict=True)) for row in found]
    for row in rows if stamps else ():
        for c in stamps:
            value = row[c]
            if value is not None:
                row[c] = value.astimezone(_UTC)
    return rows
