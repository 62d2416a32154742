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
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final
from urllib.parse import urlsplit, urlunsplit

import duckdb

from tams_analytics.clock import utcnow
from tams_analytics.disk_space import space_of
from tams_analytics.display import mib
from tams_analytics.engines import redacted
from tams_analytics.engines.base import Engine
from tams_analytics.engines.decorator import EngineDecorator
from tams_analytics.engines.duckdb.faults import store_fault
from tams_analytics.engines.sql import quote
from tams_analytics.exceptions import InsufficientStorageError, UnsupportedError
from tams_analytics.schema import TABLES

if TYPE_CHECKING:
    from tams_analytics.engines.duckdb import Engine as DuckDBEngine

__all__ = [
    "FILE_SIZE",
    "NICE",
    "WATCH_S",
    "CopyGuard",
    "Snapshot",
    "duckdb_engine",
    "folder_bytes",
    "snapshot_duckdb",
    "snapshot_niced",
    "store_name",
]

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
#: how often :func:`snapshot_niced` asks its ``watch`` whether the copy must stop, in seconds
WATCH_S: Final = 0.05


@dataclass(frozen=True)
class Snapshot:
    """What :func:`snapshot_duckdb` wrote: rows per table, the instant they show, how long it took."""

    created: dt.datetime
    rows: dict[str, int]
    seconds: float
    #: the store copied, without credentials
    store: str = ""


def store_name(url: str) -> str:
    """A store's URL as a backup records it: without credentials, and a DuckDB file by its absolute path (a relative
    one names another file from another folder).

    >>> store_name("vast://key:secret@10.0.0.1:8070/media/tams"), store_name("duckdb:///srv/tams.duckdb")
    ('vast://10.0.0.1:8070/media/tams', 'duckdb:///srv/tams.duckdb')
    >>> from urllib.parse import urlsplit
    >>> store_name(urlunsplit(urlsplit("duckdb:///srv/tams.duckdb")))  # an engine's URL, put back together
    'duckdb:///srv/tams.duckdb'
    >>> store_name("duckdb://./tams-data/tams.duckdb") == f"duckdb://{os.getcwd()}/tams-data/tams.duckdb"
    True
    """
    parts = urlsplit(url)
    path = f"{parts.netloc}{parts.path}"
    if parts.scheme.lower() != "duckdb" or not path:
        return redacted(url)
    query = f"?{parts.query}" if parts.query else ""
    absolute = "/" + os.path.abspath(path).lstrip("/")  # duckdb:////abs (four slashes) is /abs too
    return f"{parts.scheme}://{absolute}{query}"


def folder_bytes(folder: Path) -> int:
    """The bytes of the files under ``folder`` (0 when it is gone)."""
    total = 0
    for root, _, files in os.walk(folder):
        for name in files:
            try:
                total += os.stat(os.path.join(root, name)).st_size
            except OSError:  # removed meanwhile
                pass
    return total


class CopyGuard:
    """Stops a copy under way from another thread: :meth:`stop` interrupts its DuckDB connection, and the copy then
    raises the reason given (a :class:`~tams_analytics.exceptions.InsufficientStorageError`, say)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._connection: duckdb.DuckDBPyConnection | None = None
        self.reason: BaseException | None = None

    def bind(self, connection: duckdb.DuckDBPyConnection | None) -> None:
        with self._lock:
            self._connection = connection
            if connection is not None and self.reason is not None:
                connection.interrupt()

    def stop(self, reason: BaseException) -> None:
        with self._lock:
            if self.reason is None:
                self.reason = reason
            if self._connection is not None:
                self._connection.interrupt()


def duckdb_engine(engine: Engine) -> DuckDBEngine:
    """The DuckDB engine under ``engine``'s decorators (the read cache, statement timings)."""
    from tams_analytics.engines.duckdb import Engine as DuckDBEngine  # loads with a store, not with this module

    inner = engine
    while isinstance(inner, EngineDecorator):
        inner = inner.inner
    if not isinstance(inner, DuckDBEngine):
        raise UnsupportedError(f"the {engine.name} store is not a DuckDB file: back it up with its own engine")
    return inner


def snapshot_duckdb(
    engine: Engine, folder: Path, tables: Sequence[str] = TABLES, *, guard: CopyGuard | None = None
) -> Snapshot:
    """Write ``tables`` of the DuckDB store under ``engine`` to ``folder/<table>/data_<n>.parquet``, all as of
    one instant, while the engine's own connections go on writing (see the module docstring).

    ``folder`` must not hold those tables' folders yet. A full volume under it stops the copy with an
    :class:`~tams_analytics.exceptions.InsufficientStorageError` naming the folder, what the copy had written and the
    volume's free space; ``guard`` may stop it from another thread (:class:`CopyGuard`).

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
    if guard is not None:
        guard.bind(connection)
    try:
        connection.execute("BEGIN TRANSACTION")
        created = utcnow()  # the snapshot is taken at the first read below
        for name in tables:
            target = "'" + str(folder / name).replace("'", "''") + "'"
            options = f"FORMAT parquet, COMPRESSION zstd, FILE_SIZE_BYTES '{FILE_SIZE}'"
            found = connection.execute(f"COPY {quote(name)} TO {target} ({options})").fetchall()
            rows[name] = int(found[0][0]) if found else 0
        connection.execute("COMMIT")  # it only read: nothing to write
    except duckdb.Error as exc:
        if guard is not None and guard.reason is not None:
            raise guard.reason from exc
        fault = store_fault(exc)
        if fault is None or not fault.no_space:
            raise
        logger.debug("backup: the copy in %s met a full volume: %s", folder, fault.cause)
        raise _no_space(folder, fault.file) from None  # said whole: the file, what was written, the free space
    finally:
        if guard is not None:
            guard.bind(None)
        connection.close()
    took = time.perf_counter() - started
    logger.info("snapshot of %s rows of %s tables in %.2f s", sum(rows.values()), len(rows), took)
    return Snapshot(created, rows, took, store_name(urlunsplit(duck.url)))


def _no_space(folder: Path, file: str | None) -> InsufficientStorageError:
    where = folder.absolute()
    total, free = space_of(where)
    met = os.path.abspath(file) if file else where
    return InsufficientStorageError(
        f"no space left on device writing {met}: the copy in {where} had {mib(folder_bytes(folder))} written, and "
        f"the volume has {mib(free)} free of {mib(total)}"
    )


def snapshot_niced(
    engine: Engine,
    folder: Path,
    tables: Sequence[str] = TABLES,
    nice: int = NICE,
    *,
    watch: Callable[[], BaseException | None] | None = None,
) -> Snapshot:
    """:func:`snapshot_duckdb` in a thread of its own whose CPU priority is ``nice`` lower (DuckDB runs a copy on
    the calling thread at one thread, the server's setting), so a busy server's writer is slowed least; waits for
    it. A thread's priority cannot be raised again without privileges, hence a new thread, not a pooled one.

    ``watch`` is asked every :data:`WATCH_S` while the copy runs; the first exception it returns stops the copy,
    which raises it (a server stops a copy that takes its volume to the high watermark)."""
    result: list[Snapshot] = []
    failure: list[BaseException] = []
    guard = CopyGuard()

    def copy() -> None:
        if nice and hasattr(os, "setpriority"):
            try:
                os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), os.getpriority(os.PRIO_PROCESS, 0) + nice)
            except OSError as exc:  # not allowed here: copy at the same priority
                logger.debug("backup: priority not lowered: %s", exc)
        try:
            result.append(snapshot_duckdb(engine, folder, tables, guard=guard))
        except BaseException as exc:
            failure.append(exc)

    thread = threading.Thread(target=copy, name="tams-backup", daemon=True)
    thread.start()
    while thread.is_alive():
        thread.join(WATCH_S if watch is not None else None)
        reason = watch() if watch is not None and thread.is_alive() else None
        if reason is not None:
            guard.stop(reason)
    if failure:
        raise failure[0]
    return result[0]
