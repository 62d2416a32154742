"""The DuckDB engine's connections, and their recovery after a storage fault (see :mod:`.faults`).

A write the storage under the store fails (a full volume, an I/O error, a failed checkpoint) is fatal to DuckDB's
memory of the database: the engine reopens the file before it answers anything else, so that what it then reads and
acknowledges is what was durably committed, and refuses the write with
:class:`~tams_analytics.exceptions.InsufficientStorageError` (a full volume) or
:class:`~tams_analytics.exceptions.StoreUnavailableError`. Reads wait for a reopen under way (:mod:`.readers`); if
the file cannot be opened again (the volume still full, say), the store stays failed, every call says why, and
:meth:`Connections.recover` tries again.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb

from tams_analytics.engines.base import Engine as BaseEngine
from tams_analytics.engines.duckdb.faults import StoreFault, store_fault, unsettled_wal
from tams_analytics.engines.duckdb.files import open_database
from tams_analytics.engines.duckdb.readers import Readers
from tams_analytics.engines.duckdb.upkeep import CHECKPOINT_MARGIN_BYTES
from tams_analytics.engines.sql import quote
from tams_analytics.engines.windows import FlowExtents
from tams_analytics.exceptions import STORE_VOLUME_FULL, InsufficientStorageError, StoreUnavailableError
from tams_analytics.ratelog import RepeatedLog

__all__ = ["Connections"]

logger = logging.getLogger("tams_analytics.engines.duckdb")

#: storage faults: one record per cause a minute, with a count (a full volume fails every write)
faults_log = RepeatedLog(logger)


class Connections(BaseEngine):
    """The DuckDB engine's connections to its database: a cursor per thread, the writer's, reads held back while the
    database is reopened after a storage fault (see the module docstring)."""

    path: str
    read_only: bool
    reopens: int
    _config: dict[str, Any]
    _con: duckdb.DuckDBPyConnection
    _database: str | None
    _writer: duckdb.DuckDBPyConnection
    _cursors: list[duckdb.DuckDBPyConnection]
    _generation: int
    _readers: Readers
    #: :meth:`close` began: nothing reads or writes the database any more, nor reopens it
    _closed: bool
    #: this thread's cursor, its generation and its transaction depth
    _local: threading.local
    _write_lock: threading.RLock
    _fault: StoreFault | None
    _next_recovery: float
    _tables_pending: bool
    _ibis: Any
    _extents: FlowExtents

    def _cursor(self) -> duckdb.DuckDBPyConnection:
        """This thread's cursor: the writer inside a transaction, else a per-thread read cursor (made anew after a
        reopen)."""
        if getattr(self._local, "depth", 0):
            return self._writer
        cur = getattr(self._local, "cursor", None)
        if cur is None or self._local.generation != self._generation:
            cur = self._local.cursor = self._new_cursor()
            self._local.generation = self._generation
            self._cursors.append(cur)
        return cur

    @contextlib.contextmanager
    def _reading(self) -> Iterator[None]:
        """A read outside a write transaction: it waits for a reopen under way, is refused while the store is
        failed, and a storage fault it meets leaves the store to be reopened (the next write, or :meth:`recover`)."""
        if getattr(self._local, "depth", 0):  # the writer's own reads: its transaction handles faults
            yield
            return
        self._readers.enter()
        try:
            yield
        except duckdb.Error as exc:
            fault = store_fault(exc)
            if fault is None:
                raise
            self._failed(fault, "a read")
            raise StoreUnavailableError(f"the store failed a read ({fault.cause}); it is being reopened") from exc
        finally:
            self._readers.leave()

    def _new_cursor(self) -> duckdb.DuckDBPyConnection:
        """A new connection to the store's database (every connection starts in the in-memory one: see
        :func:`_open`)."""
        cursor = self._con.cursor()
        if self._database is not None:
            cursor.execute(f"USE {quote(self._database)}")
        return cursor

    def connection(self) -> duckdb.DuckDBPyConnection:
        """A new connection to the store's database, beside the engine's own (closed with the engine): for work
        that must not share their transactions, e.g. a backup's read transaction (:mod:`tams_analytics.backup`)."""
        cursor = self._new_cursor()
        self._cursors.append(cursor)
        return cursor

    # -- faults --------------------------------------------------------------------------------------------------
    def store_fault(self) -> StoreFault | None:
        """The storage fault that left the store to be reopened (None: it is usable)."""
        return self._fault

    def store_failure(self) -> str | None:
        fault = self._fault
        return None if fault is None else fault.cause

    def recover(self) -> bool:
        """Make the store usable again (:meth:`reopen_if_failed`; the engine adds its journal's reserve)."""
        return self.reopen_if_failed()

    def reopen_if_failed(self) -> bool:
        """Reopen the database if a storage fault left it to be reopened; True when it is usable."""
        if self._fault is None:
            return True
        with self._write_lock:
            if self._fault is not None:
                self._reopen()
        return self._fault is None

    def _room_to_recover(self) -> bool:
        """Whether a full volume has room again for what recovering writes: a checkpoint of the WAL (about twice
        its size, and a margin). Statting is cheap; reopening and checkpointing for nothing is not."""
        fault = self._fault
        if fault is None or not fault.no_space:
            return True
        wal = Path(f"{self.path}.wal")
        needed = 2 * (wal.stat().st_size if wal.is_file() else 0) + CHECKPOINT_MARGIN_BYTES
        return shutil.disk_usage(Path(self.path).parent).free >= needed

    def _failed(self, fault: StoreFault, during: str) -> None:
        """Record ``fault``: nothing reads or writes the database until it is reopened."""
        faults_log.log(
            logging.ERROR, fault.key, "the store %s failed %s: %s; reopening it", self.path, during, fault.cause
        )
        self._fault = fault
        self._readers.failure = fault.cause

    def _refused(self, fault: StoreFault, during: str, *, uncertain: bool = False) -> StoreUnavailableError:
        """Reopen the database after ``fault`` (met ``during`` a write) and return the refusal of that write."""
        if self.path != ":memory:":  # a database in memory has nothing durable to go back to
            with self._write_lock:
                self._failed(fault, during)
                self._reopen()
        where = fault.file or self.path
        outcome = "it may have been stored (read it back)" if uncertain else "nothing of it was stored"
        state = "reopened" if self._fault is None else "to be reopened"
        if fault.no_space:
            error: StoreUnavailableError = InsufficientStorageError(
                f"{STORE_VOLUME_FULL} (no space left on device writing {where}): the write was refused "
                f"and {outcome}; the store was {state}"
            )
        else:
            error = StoreUnavailableError(
                f"the store failed {during} ({fault.cause}): the write was refused and {outcome}; the store was {state}"
            )
        error.uncertain = uncertain
        return error

    def _reopen(self) -> None:
        """Close every connection and open the file again (DuckDB replays its WAL up to the last durable commit),
        holding reads back meanwhile; on success the store is usable and every listener forgets what it kept (the
        read cache). Called with the write lock held; never once the store is closed (it would open the file again
        behind the close)."""
        if self._closed:
            return
        with self._readers.closed():
            for cur in [*self._cursors, self._writer]:
                with contextlib.suppress(Exception):
                    cur.close()
            with contextlib.suppress(Exception):
                self._con.close()
            self._cursors = []
            self._ibis = None
            self._generation += 1
            try:
                if not Path(self.path).is_file():  # never a new, empty store in its place
                    raise FileNotFoundError(f"{self.path} is gone")
                self._con, self._database = open_database(
                    self.path, read_only=self.read_only, config=self._config, fresh=True
                )
                self._writer = self._new_cursor()
                self._writer.execute("SELECT count(*) FROM service").fetchall()
                unsettled = self._settle_wal()
            except Exception as exc:  # the file cannot be opened yet (still no space, say): stay failed
                faults_log.log(
                    logging.ERROR,
                    f"reopen {type(exc).__name__}",
                    "the store %s could not be reopened: %s",
                    self.path,
                    " ".join(str(exc).split())[:300],
                )
                return
            self._fault = unsettled
            self._readers.failure = None
            self._extents = FlowExtents()
        self.reopens += 1
        if unsettled is None:
            logger.warning(
                "the store %s was reopened after a failed write: it holds what was durably committed", self.path
            )
        self._forget_everything()

    def _settle_wal(self) -> StoreFault | None:
        """Checkpoint a WAL DuckDB replayed when it opened the file (see :func:`.faults.unsettled_wal` for why no
        write may come first); when that fails (no space for it, say), open the file again for reads only and return
        the fault that keeps writes refused until :meth:`recover` checkpoints it."""
        wal = Path(f"{self.path}.wal")
        if self.read_only or self._database is None or not wal.is_file() or wal.stat().st_size == 0:
            return None
        try:
            self._writer.execute("CHECKPOINT")
        except duckdb.Error as exc:
            fault = unsettled_wal(exc)
            faults_log.log(logging.ERROR, fault.key, "the store %s: %s", self.path, fault.cause)
            for cur in [*self._cursors, self._writer]:  # a failed checkpoint invalidates the database: read it anew
                with contextlib.suppress(Exception):
                    cur.close()
            with contextlib.suppress(Exception):
                self._con.close()
            self._cursors = []
            self._generation += 1
            self._con, self._database = open_database(
                self.path, read_only=self.read_only, config=self._config, fresh=True
            )
            self._writer = self._new_cursor()
            return fault
        return None
