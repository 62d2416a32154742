"""How the engine writes rows: few rows as one list parameter a column, more as an Arrow scan."""

from __future__ import annotations

import functools

import duckdb
import pyarrow as pa

from tams_analytics.engines.base import Change
from tams_analytics.engines.duckdb.ddl import DUCKDB_TYPES
from tams_analytics.engines.sql import quote
from tams_analytics.schema import SCHEMAS

__all__ = ["INSERTED", "LIST_ROWS", "conform", "list_insert_sql", "list_update_sql", "refuse_nulls"]

#: up to this many rows an insert binds each column as one list parameter, unnested (:func:`list_insert_sql`): one
#: DuckDB call, where an Arrow table's scan takes two (each hands the GIL over), and a plan of one expression a
#: column whatever the rows, where a VALUES list's grows with them. ``python -m benchmarks.duckdb_handoffs``,
#: segment rows, median ms alone / beside a thread busy on the GIL (the server's switch interval, 0.1 ms): 9 rows
#: lists 0.73 / 2.38, VALUES 0.86 / 2.90, Arrow 1.67 / 5.58; 40 rows 1.05 / 2.94, 2.41 / 5.26, 1.77 / 5.62; 100 rows
#: 1.71 / 3.90, 5.46 / 9.60, 1.96 / 5.89 (benchmarks/README.md, 2026-11-25, night)
LIST_ROWS = 100


#: each table's schema as inserts hand rows to DuckDB (every column nullable: NOT NULL is DuckDB's to check)
INSERTED = {name: pa.schema([f.with_nullable(True) for f in schema]) for name, schema in SCHEMAS.items()}


@functools.cache
def list_insert_sql(name: str) -> str:
    """The insert of rows given as one list parameter a column, in :data:`INSERTED` order (several ``UNNEST`` in
    one select list unnest side by side: row ``i`` takes every list's ``i``-th value)."""
    columns = ", ".join(quote(f.name) for f in INSERTED[name])
    lists = ", ".join(f"UNNEST(?::{DUCKDB_TYPES[str(f.type)]}[])" for f in INSERTED[name])
    return f"INSERT INTO {quote(name)} ({columns}) SELECT {lists}"


@functools.cache
def list_update_sql(name: str, key: str, columns: tuple[str, ...]) -> str:
    """The update of rows named by ``key``, given as one list parameter a column (the keys', then each of
    ``columns``'), typed as :func:`list_insert_sql` types them: row ``i`` of the lists sets ``columns`` on the rows
    whose ``key`` is the ``i``-th key."""
    types = {f.name: DUCKDB_TYPES[str(f.type)] for f in INSERTED[name]}
    lists = ", ".join(f"UNNEST(?::{types[c]}[]) AS {quote(c)}" for c in (key, *columns))
    sets = ", ".join(f"{quote(c)} = u.{quote(c)}" for c in columns)
    table = quote(name)
    return f"UPDATE {table} SET {sets} FROM (SELECT {lists}) AS u WHERE {table}.{quote(key)} = u.{quote(key)}"


def conform(name: str, rows: pa.Table) -> pa.Table:
    """Cast ``rows`` to the table's types, keeping only its columns (missing ones become null)."""
    target = INSERTED[name]
    if rows.schema.equals(target):
        return rows
    present = dict(zip(rows.column_names, rows.columns, strict=True))
    arrays = []
    for f in target:
        col = present.get(f.name)
        if col is None:
            arrays.append(pa.nulls(rows.num_rows, f.type))
        else:
            arrays.append(col if col.type == f.type else col.cast(f.type))
    return pa.Table.from_arrays(arrays, schema=target)


#: each table's columns DuckDB declares ``NOT NULL``
_REQUIRED = {name: [f.name for f in schema if not f.nullable] for name, schema in SCHEMAS.items()}


def refuse_nulls(change: Change) -> None:
    """Refuse ``change`` if it would put a null into a column the table declares ``NOT NULL``, as DuckDB would, with
    DuckDB's exception (a journaled write is checked when it is made: once acknowledged, it must apply; the store's
    other constraints are its types, which :func:`conform` casts to)."""
    required = _REQUIRED.get(change.table, ())
    if change.rows is not None:
        names = set(change.rows.column_names)  # (a new list at each call of column_names)
        nulls = [c for c in required if c in names and change.rows.column(c).null_count]
        nulls += [c for c in required if c not in names]
    else:
        nulls = [c for c in required if c in (change.values or {}) and (change.values or {})[c] is None]
    if nulls:
        raise duckdb.ConstraintException(f"Constraint Error: NOT NULL constraint failed: {change.table}.{nulls[0]}")
