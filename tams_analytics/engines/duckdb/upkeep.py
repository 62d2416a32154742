"""Upkeep of a DuckDB store: its checkpoints (what they cost, told to an observer) and its storage format.

DuckDB 2.0 writes new files in storage format ``v2.0.0+``; it opens a file DuckDB 1.3 made (``v1.0.0+``) and keeps it
in that format. :func:`storage_format` says which a store is in and, for the older one, the command that rewrites it
(``tams-analytics upgrade``: :mod:`tams_analytics.upgrade`).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from pathlib import Path
from typing import Final

import duckdb

from tams_analytics.compat import STORAGE_VERSION
from tams_analytics.engines.base import StorageFormat

logger = logging.getLogger("tams_analytics.engines.duckdb")

__all__ = [
    "CHECKPOINT_MARGIN_BYTES",
    "FIRST_FORMAT",
    "CheckpointObserver",
    "older_format",
    "storage_format",
    "storage_version",
    "tell",
    "upgrade_command",
    "wal_bytes",
]

#: ``observe(seconds, wal_bytes)``, told of each commit that checkpointed a store (:meth:`Engine.observe_checkpoints`)
CheckpointObserver = Callable[[float, int], None]

#: free space a checkpoint needs beyond twice the WAL's size (the blocks it rewrites, its metadata), as estimated when
#: deciding whether a full volume has room again (:meth:`Engine._room_to_recover`)
CHECKPOINT_MARGIN_BYTES: Final = 4 << 20
#: the oldest storage format a store of this library can be in (DuckDB 1.3's): a DuckDB writing new stores in it has
#: no newer one to upgrade a store to
FIRST_FORMAT: Final = "v1.0.0+"


def tell(observe: CheckpointObserver, seconds: float, wal_bytes: int) -> None:
    """Tell ``observe`` of a commit that checkpointed; what it raises is logged, never the write's."""
    try:
        observe(seconds, wal_bytes)
    except Exception:
        logger.exception("the checkpoint observer failed")


def wal_bytes(path: str) -> int:
    """The size of the WAL of the store at ``path`` (0: none, or an in-memory store)."""
    if path == ":memory:":
        return 0
    try:
        return Path(f"{path}.wal").stat().st_size
    except OSError:
        return 0


def storage_version(con: duckdb.DuckDBPyConnection, database: str) -> str | None:
    """The storage format of the attached database ``database`` (``v1.0.0+``, ``v2.0.0+``; None: it has none, as a
    database in memory)."""
    sql = "SELECT tags['storage_version'] FROM duckdb_databases() WHERE database_name = ?"
    rows = con.execute(sql, [database]).fetchall()  # whole: a result fetched in part holds the connection (2.0)
    row = rows[0] if rows else None
    return str(row[0]) if row and row[0] else None


def older_format(version: str) -> bool:
    """Whether a store in format ``version`` is in an older format than this DuckDB writes new stores in.

    >>> older_format("v0.10.2"), older_format(STORAGE_VERSION)
    (True, False)
    """
    return _parsed(version) < _parsed(STORAGE_VERSION)


def _parsed(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", version)[:3])


def upgrade_command(path: str) -> str:
    """The command that rewrites the store at ``path`` in the current format.

    >>> upgrade_command("/srv/tams/tams.duckdb")
    'tams-analytics upgrade --store duckdb:///srv/tams/tams.duckdb'
    """
    return f"tams-analytics upgrade --store duckdb://{Path(path).absolute()}"


def storage_format(con: duckdb.DuckDBPyConnection, database: str, path: str) -> StorageFormat | None:
    """The format of the store at ``path`` (attached as ``database``) and, when it is an older one, the command that
    upgrades it."""
    version = storage_version(con, database)
    if version is None:
        return None
    if not older_format(version):
        return StorageFormat(version, STORAGE_VERSION)
    advice = (
        f"the store {path} is in DuckDB's storage format {version}, older than the {STORAGE_VERSION} DuckDB "
        f"{duckdb.__version__} writes: it is read and written as it is, in the format DuckDB 1.3 wrote. To move it to "
        f"the current one, stop the server and run {upgrade_command(path)} (one-way: DuckDB 1.3 cannot open the "
        "result; it backs the store up first)"
    )
    return StorageFormat(version, STORAGE_VERSION, advice)
