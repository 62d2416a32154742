"""One consistent copy of a DuckDB store while it is written: every table as Parquet, in one read transaction.

The copy runs on a connection of its own to the engine's database (the server's, while it serves), beside the
engine's writer: ``BEGIN``, then ``COPY <table> TO '<folder>/<table>' (FORMAT parquet)`` for each table, then
``COMMIT``. DuckDB's MVCC pins the transaction's snapshot at its first read, so every table shows the same
instant, while other connections keep committing: a group commit batch acknowledged before that instant is in
the copy, one after it is not, and none is half in. DuckDB releases the GIL while it copies, so the server's
event loop and writer thread run on.

Measured against the alternatives on DuckDB 1.3.2 (a store of 300,000 to 1,000,000 segments, objects and
instances, one thread, a writer committing beside it; ``benchmarks/backup.py`` measures it through the server):
this was the quickest and the writer's commits were slowed least; sorting the segments first took about twice
as long (a restore sorts them anyway), ``ATTACH`` + ``COPY FROM DATABASE`` took three times as long and wrote a
file three times the size (indexes included), ``EXPORT DATABASE`` twice as long, and reading batches into
Python to write Parquet with pyarrow twice as long, holding the GIL the event loop needs.

DuckDB 1.3 checkpoints with a read transaction open (measured: the WAL went from 10 MB to empty during an open
read transaction, which still read its snapshot), so a backup does not make the WAL grow without bound; what a
checkpoint cannot do while the copy runs is vacuum the old versions of rows deleted or updated since the copy
began (the copy may still read them): they stay in the file until a later checkpoint.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final
from urllib.parse import urlunsplit

from tams_analytics.clock import utcnow
from tams_analytics.engines import redacted
from tams_analytics.engines.base import Engine
from tams_analytics.engines.decorator import EngineDecorator
from tams_analytics.engines.duckdb import Engine as DuckDBEngine
from tams_analytics.engines.sql import quote
from tams_analytics.exceptions import UnsupportedError
from tams_analytics.schema import TABLES

__all__ = ["FILE_SIZE", "NICE", "Snapshot", "duckdb_engine", "snapshot_duckdb", "snapshot_niced"]

logger = logging.getLogger(__name__)

#: how much lower than the server's the CPU priority of a server's copy is (``nice``; Linux, macOS; the server's
#: ``TAMS_BACKUP_NICE``): the copy takes what the writer leaves. Measured on the shared 2-core machine with a writer
#: committing beside the copy (300,000 segments): at the same priority its commits took 24-31 ms (p50) against 16
#: without a backup, at nice 19 14-15 ms, the copy 23-26 s instead of 8-11 (load 13); and through the server
#: (``bench --only backup``, 100,000 segments, 40 POSTs/s, load 3-4): POSTs while the server copied p50 14 ms, p99
#: 58 at nice 10 (17.6 and 64 without a backup), p50 48 ms, p99 89 at nice 0 (17.2 and 75), the copy 1.0 against
#: 1.3 s
NICE: Final = 10
#: a table's Parquet files are cut at about this size (DuckDB's ``FILE_SIZE_BYTES``): no file of many GB
FILE_SIZE: Final = "1GB"


@dataclass(frozen=True)
class Snapshot:
    """What :func:`snapshot_duckdb` wrote: rows per table, the instant they show, how long it took."""

    created: dt.datetime
    rows: dict[str, int]
    seconds: float
    #: the store copied, without credentials
    store: str = ""


def duckdb_engine(engine: Engine) -> DuckDBEngine:
    """The DuckDB engine under ``engine``'s decorators (the read cache, statement timings)."""
    inner = engine
    while isinstance(inner, EngineDecorator):
        inner = inner.inner
    if not isinstance(inner, DuckDBEngine):
        raise UnsupportedError(f"the {engine.name} store is not a DuckDB file: back it up with its own engine")
    return inner


def snapshot_duckdb(engine: Engine, folder: Path, tables: Sequence[str] = TABLES) -> Snapshot:
    """Write ``tables`` of the DuckDB store under ``engine`` to ``folder/<table>/data_<n>.parquet``, all as of
    one instant, while the engine's own connections go on writing (see the module docstring).

    ``folder`` must not hold those tables' folders yet.

    >>> import tempfile, tams_analytics as ta
    >>> out = tempfile.TemporaryDirectory()
    >>> cat = ta.connect("duckdb://")
    >>> _ = cat.put_flow({"id": "f", "source_id": "s", "format": "urn:x-nmos:format:data"})
    >>> snap = snapshot_duckdb(cat.engine, Path(out.name), ["sources", "flows"])
    >>> snap.rows, sorted(p.name for p in Path(out.name).iterdir())
    ({'sources': 1, 'flows': 1}, ['flows', 'sources'])
    >>> out.cleanup()
    """
    duck = duckdb_engine(engine)
    folder.mkdir(parents=True, exist_ok=True)
    connection = duck.connection()
    started = time.perf_counter()
    rows: dict[str, int] = {}
    try:
        connection.execute("BEGIN TRANSACTION")
        created = utcnow()  # the snapshot is taken at the first read below
        for name in tables:
            target = "'" + str(folder / name).replace("'", "''") + "'"
            options = f"FORMAT parquet, COMPRESSION zstd, FILE_SIZE_BYTES '{FILE_SIZE}'"
            found = connection.execute(f"COPY {quote(name)} TO {target} ({options})").fetchall()
            rows[name] = int(found[0][0]) if found else 0
        connection.execute("COMMIT")  # it only read: nothing to write
    finally:
        connection.close()
    took = time.perf_counter() - started
    logger.info("snapshot of %s rows of %s tables in %.2f s", sum(rows.values()), len(rows), took)
    return Snapshot(created, rows, took, redacted(urlunsplit(duck.url)))


def snapshot_niced(engine: Engine, folder: Path, tables: Sequence[str] = TABLES, nice: int = NICE) -> Snapshot:
    """:func:`snapshot_duckdb` in a thread of its own whose CPU priority is ``nice`` lower (DuckDB runs a copy on
    the calling thread at one thread, the server's setting), so a busy server's writer is slowed least; waits for
    it. A thread's priority cannot be raised again without privileges, hence a new thread, not a pooled one."""
    result: list[Snapshot] = []
    failure: list[BaseException] = []

    def copy() -> None:
        if nice and hasattr(os, "setpriority"):
            try:
                os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), os.getpriority(os.PRIO_PROCESS, 0) + nice)
            except OSError as exc:  # not allowed here: copy at the same priority
                logger.debug("backup: priority not lowered: %s", exc)
        try:
            result.append(snapshot_duckdb(engine, folder, tables))
        except BaseException as exc:
            failure.append(exc)

    thread = threading.Thread(target=copy, name="tams-backup", daemon=True)
    thread.start()
    thread.join()
    if failure:
        raise failure[0]
    return result[0]
