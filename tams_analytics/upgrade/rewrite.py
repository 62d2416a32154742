"""The store's database copied into a new file in the current storage format (``COPY FROM DATABASE``), and the copy
checked against it: every table's columns and rows, the indexes, the views (each of which must read), the format."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import duckdb

from tams_analytics.compat import STORAGE_VERSION
from tams_analytics.engines.duckdb import ROW_GROUP_ROWS
from tams_analytics.engines.duckdb.upkeep import storage_version
from tams_analytics.engines.sql import quote
from tams_analytics.exceptions import TamsError
from tams_analytics.upgrade.files import Step, UpgradeFiles, fsync

__all__ = ["copy_into", "current_database", "verify"]

#: the names the new file is attached under while it is written and while it is checked
_NEW: Final = "_tams_upgrade_new"
_CHECK: Final = "_tams_upgrade_check"


def current_database(con: duckdb.DuckDBPyConnection) -> str:
    row = con.execute("SELECT current_database()").fetchall()[0]
    assert row is not None
    return str(row[0])


def _literal(path: Path) -> str:
    return "'" + str(path).replace("'", "''") + "'"


def copy_into(
    con: duckdb.DuckDBPyConnection, database: str, files: UpgradeFiles, tell: Callable[[Step, str], None]
) -> None:
    """Every table, index and view of ``database`` into the new file, checkpointed, closed and renamed complete."""
    tell(Step.COPY, f"copying the store into {files.partial} (format {STORAGE_VERSION})")
    con.execute(f"ATTACH {_literal(files.partial)} AS {_NEW} (ROW_GROUP_SIZE {ROW_GROUP_ROWS})")
    try:
        con.execute(f"COPY FROM DATABASE {quote(database)} TO {_NEW}")
        tell(Step.CHECKPOINT, f"checkpointing {files.partial}")
        con.execute(f"CHECKPOINT {_NEW}")
    except BaseException:
        with contextlib.suppress(duckdb.Error):
            con.execute(f"DETACH {_NEW}")
        for leftover in files.leftovers():
            leftover.unlink(missing_ok=True)
        raise
    con.execute(f"DETACH {_NEW}")
    if files.partial.with_name(f"{files.partial.name}.wal").exists():
        raise TamsError(f"{files.partial} kept a WAL after its checkpoint: run the upgrade again")
    fsync(files.partial)
    os.replace(files.partial, files.ready)
    fsync(files.store.parent)


def _inventory(con: duckdb.DuckDBPyConnection, database: str) -> dict[str, Any]:
    """A database's tables (columns and rows), indexes and views, to compare."""
    tables: dict[str, Any] = {}
    for schema, table in con.execute(
        "SELECT schema_name, table_name FROM duckdb_tables() WHERE database_name = ? AND NOT internal ORDER BY ALL",
        [database],
    ).fetchall():
        columns = con.execute(
            "SELECT column_name, data_type, is_nullable FROM duckdb_columns() "
            "WHERE database_name = ? AND schema_name = ? AND table_name = ? ORDER BY column_index",
            [database, schema, table],
        ).fetchall()
        name = f"{quote(database)}.{quote(schema)}.{quote(table)}"
        ((rows,),) = con.execute(f"SELECT count(*) FROM {name}").fetchall()
        tables[f"{schema}.{table}"] = (tuple(columns), int(rows))
    indexes = con.execute(
        "SELECT schema_name, table_name, index_name, expressions FROM duckdb_indexes() WHERE database_name = ?",
        [database],
    ).fetchall()
    views = con.execute(
        "SELECT schema_name, view_name FROM duckdb_views() WHERE database_name = ? AND NOT internal", [database]
    ).fetchall()
    return {"tables": tables, "indexes": sorted(map(str, indexes)), "views": sorted(f"{s}.{v}" for s, v in views)}


def verify(con: duckdb.DuckDBPyConnection, database: str, ready: Path) -> dict[str, int]:
    """Check the new file against the store (see the module docstring); its tables' rows. A new file that does not
    match is removed, and the upgrade refused with what differed."""
    con.execute(f"ATTACH {_literal(ready)} AS {_CHECK} (READ_ONLY)")
    try:
        want, have = _inventory(con, database), _inventory(con, _CHECK)
        problems = [
            f"{table}: {'missing' if table not in have['tables'] else 'other columns or rows'}"
            for table in want["tables"]
            if have["tables"].get(table) != want["tables"][table]
        ]
        problems += [f"index {i} missing" for i in want["indexes"] if i not in have["indexes"]]
        problems += [f"view {v} missing" for v in want["views"] if v not in have["views"]]
        for view in have["views"]:
            schema, _, name = view.partition(".")
            try:
                con.execute(f"SELECT count(*) FROM {_CHECK}.{quote(schema)}.{quote(name)}").fetchall()
            except duckdb.Error as exc:
                problems.append(f"view {view} does not read: {' '.join(str(exc).split())[:200]}")
        found = storage_version(con, _CHECK)
        if found != STORAGE_VERSION:
            problems.append(f"storage format {found}, not {STORAGE_VERSION}")
    finally:
        con.execute(f"DETACH {_CHECK}")
    if problems:
        ready.unlink(missing_ok=True)
        raise TamsError(
            f"the new file did not match the store ({'; '.join(problems[:5])}): it was removed, and the store is as "
            "it was; run the upgrade again, and report this if it says so again"
        )
    return {table.partition(".")[2]: rows for table, (_, rows) in want["tables"].items()}
