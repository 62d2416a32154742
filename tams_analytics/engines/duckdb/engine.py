"""The DuckDB engine itself (:class:`Engine`): the package's docstring says how its parts fit together."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import SplitResult

import duckdb
import pyarrow as pa

from tams_analytics.compat import arrow_table, ibis_duckdb
from tams_analytics.engines.base import Capabilities, Change, OrderBy, StorageFormat, StoredTable
from tams_analytics.engines.duckdb import reads
from tams_analytics.engines.duckdb.ddl import LOOKUP_KEYS, table_statements
from tams_analytics.engines.duckdb.faults import StoreFault, store_fault
from tams_analytics.engines.duckdb.files import ROW_GROUP_ROWS, open_database, release, store_path
from tams_analytics.engines.duckdb.held import explain_held_store
from tams_analytics.engines.duckdb.journaled import (
    Journal,
    journal_folder,
    refuse_unapplied_journal,
    unapplied_records,
)
from tams_analytics.engines.duckdb.readers import Readers
from tams_analytics.engines.duckdb.reads import PAGE_ROWS, as_records, few_ids
from tams_analytics.engines.duckdb.transactions import Transactions
from tams_analytics.engines.duckdb.upkeep import (
    CHECKPOINT_MARGIN_BYTES,
    CheckpointObserver,
    storage_format,
    tell,
    wal_bytes,
)
from tams_analytics.engines.duckdb.writes import conform
from tams_analytics.engines.sql import Params, quote, select_sql, where_sql
from tams_analytics.engines.windows import FlowExtents
from tams_analytics.journal.reserve import DEFAULT_BYTES as RESERVE_BYTES
from tams_analytics.journal.reserve import Reserve
from tams_analytics.predicates import Predicate
from tams_analytics.schema import SORT_KEYS

if TYPE_CHECKING:
    import ibis.expr.types as ir

__all__ = ["CHECKPOINT_MARGIN_BYTES", "LOOKUP_KEYS", "ROW_GROUP_ROWS", "CheckpointObserver", "Engine"]

logger = logging.getLogger("tams_analytics.engines.duckdb")


class Engine(Transactions):
    """DuckDB, embedded."""

    name: ClassVar[str] = "duckdb"
    #: the sole writer: DuckDB lets one process at a time open a database file for writing
    capabilities: ClassVar[Capabilities] = Capabilities(
        writes=True, subqueries=True, transactions=True, sole_writer=True
    )

    def __init__(
        self,
        url: SplitResult,
        *,
        read_only: bool = False,
        threads: int | None = None,
        create: bool = False,
        journal: bool = False,
        checkpoint_wal_bytes: int = 16 << 20,
        journal_reserve_bytes: int = RESERVE_BYTES,
        duckdb_config: Mapping[str, Any] | None = None,
    ) -> None:
        """Open the store at ``url``, which must exist unless ``create`` (then it is made, in an existing folder).

        ``journal``: acknowledge journaled transactions (:meth:`journaled`) once their record is synced in the
        store's journal, and apply them behind (:mod:`tams_analytics.journal`). Whatever ``journal`` says, a journal
        left beside the store (by a server that stopped before applying it) is applied when the store is opened for
        writes; a store with one is not opened for reads only.
        ``journal_reserve_bytes``: the room the journal keeps on the store's volume for applying what it acknowledged
        (:mod:`tams_analytics.journal.reserve`).

        With a journal the store is checkpointed by the journal's applier (:meth:`upkeep`), once its WAL passes
        ``checkpoint_wal_bytes``, never by a commit; without one DuckDB checkpoints at its own threshold, in the commit
        that passes it. ``duckdb_config``: more of DuckDB's settings (``memory_limit``, ...), for every connection
        to the store in this process."""
        super().__init__(url)
        self.path = store_path(url, create=create and not read_only)
        #: this connection made the database file (a command that fails may remove it: :meth:`discard`)
        self.created = self.path != ":memory:" and not Path(self.path).exists()
        config: dict[str, Any] = dict(duckdb_config or {})
        if threads:
            config["threads"] = threads
        if journal:  # the applier checkpoints, off every write's path (upkeep)
            config.setdefault("checkpoint_threshold", "1TB")
        #: the WAL's size past which the journal's applier checkpoints the store
        self.checkpoint_wal_bytes = checkpoint_wal_bytes
        self._config = config
        #: room on the volume kept for applying the journal's records (see :mod:`tams_analytics.journal.reserve`),
        #: released before the store is opened: DuckDB's replay and the journal's need it most on a full volume
        self._reserve: Reserve | None = None
        if not read_only and self.path != ":memory:" and (journal or journal_folder(self.path).exists()):
            self._reserve = Reserve(journal_folder(self.path), journal_reserve_bytes)
            self._reserve.release(None)  # made again once the journal is applied
        with explain_held_store(self.path):
            try:
                self._con, self._database = open_database(self.path, read_only=read_only, config=config)
            except BaseException:
                if self.created:  # a file it began to make (a full volume, say) is no store: none is left behind
                    for leftover in (Path(self.path), Path(f"{self.path}.wal")):
                        leftover.unlink(missing_ok=True)
                raise
        if read_only and unapplied_records(self.path):  # (not held by a server: the open above says so first)
            release(self.path, self._con)
            self._apply_left_journal()
            self._con, self._database = open_database(self.path, read_only=read_only, config=config)
        self.read_only = read_only
        self._local = threading.local()
        self._write_lock = threading.RLock()
        #: bumped at each reopen: a thread's cursor of an earlier generation is replaced (see :meth:`_cursor`)
        self._generation = 0
        #: reads in flight, held back while the database is reopened
        self._readers = Readers()
        #: :meth:`close` has run (a second call does nothing)
        self._closed = False
        #: how many times the database was reopened after a storage fault
        self.reopens = 0
        #: when a write may next try to recover the store (writes refused meanwhile: see :meth:`_usable`)
        self._next_recovery = 0.0
        self._writer = self._new_cursor()
        #: every cursor handed out, closed with the engine: a cursor left in an idle worker thread's locals keeps
        #: the database alive until interpreter exit, where DuckDB aborts ("terminate called without an
        #: active exception") instead of exiting
        self._cursors: list[duckdb.DuckDBPyConnection] = []
        #: the storage fault that left the database to be reopened (None: usable)
        self._fault: StoreFault | None = self._settle_wal()
        #: told of every commit that checkpoints the store (:meth:`observe_checkpoints`)
        self._checkpoints: CheckpointObserver | None = None
        #: the open transaction inserted rows (which DuckDB logs in the WAL unless the commit checkpoints)
        self._inserted = False
        #: the tables are still to be made (or brought up to date): the store opened with a WAL it could not
        #: checkpoint, so it is read as it is and made ready for writes once it recovers (see :meth:`_usable`)
        self._tables_pending = False
        self._ibis: Any = None
        #: where the pages of each flow lie on ``start_ns`` (see :mod:`~tams_analytics.engines.windows`)
        self._extents = FlowExtents()
        #: the store's journal (None: transactions are committed as they come)
        self._journal: Journal | None = None
        try:
            if read_only:
                pass
            elif self._fault is None:
                self.create_tables()
                self._open_journal(keep=journal)
            else:  # a restart on a full volume, say: reads are served, writes wait for room to checkpoint
                self._tables_pending = True
                refuse_unapplied_journal(self.path)  # (what it holds could not be applied either)
                logger.warning("the store %s is open for reads only until its WAL can be checkpointed", self.path)
        except BaseException:
            self._fault = StoreFault("not opened", None, no_space=False, invalidated=False)  # closed as it is
            self.close()
            raise

    def _apply_left_journal(self) -> None:
        """Before a read-only open: apply what a journal left beside the store holds (by opening it for writes
        once), so that reads show every acknowledged write; refuse to open it when that cannot be done."""
        try:
            Engine(self.url).close()
        except Exception as exc:
            logger.warning("the store %s: its journal could not be applied: %s", self.path, exc)
        refuse_unapplied_journal(self.path)

    def _open_journal(self, *, keep: bool) -> None:
        """Apply a journal left beside the store; ``keep`` it (journaled transactions from now on), or empty it."""
        reserve = self._reserve
        if reserve is None:
            return
        journal = Journal(self, reserve)
        if keep:
            self._journal = journal
        else:  # nothing is journaled from now on: the journal (and its reserve) is removed once applied
            journal.close()

    def observe_journal_syncs(self, observe: Callable[[float], None] | None) -> None:
        """Have ``observe(seconds)`` told how long each journaled transaction's record took to write and sync (None:
        no more); nothing is told of a store that keeps no journal."""
        if self._journal is not None:
            self._journal.log.observe_sync = observe

    def observe_journal_applies(self, observe: Callable[[float], None] | None) -> None:
        """Have ``observe(seconds)`` told how long each round of the journal's applier took (its records applied to the
        store in one transaction; None: no more); nothing is told of a store that keeps no journal."""
        if self._journal is not None:
            self._journal.observe_apply = observe

    def store_failure(self) -> str | None:
        """Why writes are refused: a storage fault, or the journal's reserve released on a full volume."""
        cause = super().store_failure()
        journal = self._journal
        if cause is None and journal is not None:
            cause = journal.refusing()
        return cause

    def recover(self) -> bool:
        """Reopen the database if a storage fault left it to be reopened, and make the journal's reserve again if it
        was released; True when writes are taken."""
        usable = super().recover()
        journal = self._journal
        return usable and (journal is None or journal.refusing() is None)

    @property
    def ibis(self) -> Any:
        """The ibis DuckDB backend over this database (created on first use)."""
        if self._ibis is None:
            cursor = self._new_cursor()
            self._cursors.append(cursor)
            self._ibis = ibis_duckdb(cursor)
        return self._ibis

    def table(self, name: str) -> ir.Table:
        self._caught_up()
        return self.ibis.table(name)

    def connection(self) -> duckdb.DuckDBPyConnection:
        """A new connection to the store's database, beside the engine's own (closed with the engine), once every
        write acknowledged so far is applied: for work that must not share their transactions, e.g. a backup's read
        transaction (:mod:`tams_analytics.backup`)."""
        self._caught_up()
        return super().connection()

    def _caught_up(self, name: str | None = None, where: Sequence[Predicate] = ()) -> None:
        """Before a read of ``name`` (None: of anything): wait until the journaled writes it may show are applied."""
        journal = self._journal
        direct: int = getattr(self._local, "depth", 0)
        if journal is None or direct:  # a direct transaction runs with everything applied
            return
        if name is None:
            journal.settle()
        else:
            journal.wait_for(name, where)

    def sql(self, query: str, params: Sequence[Any] = ()) -> pa.Table:
        """Run raw SQL and return Arrow (for benchmarks, SQL views and tests)."""
        self._caught_up()
        with self._reading():
            return arrow_table(self._cursor(), query, params)

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
        def run(w: Sequence[Predicate]) -> pa.Table:
            return self._select(name, w, columns, order_by, limit)

        self._caught_up(name, where)
        with self._reading():
            page = self._extents.page(name, where, order_by, limit, run, self._flow_extent)
            return page if page is not None else run(where)

    def records(
        self,
        name: str,
        where: Sequence[Predicate] = (),
        *,
        columns: Sequence[str],
        order_by: OrderBy = (),
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        """:meth:`Engine.records`, fetched as Python tuples where that is cheaper than through Arrow: a lookup of a
        few ids on an indexed column (a registration's objects: 0.08 against 0.19 ms, one thread) and a page of one
        flow's segments (101 rows: 0.18 ms less; no dearer at 1,001)."""
        self._caught_up(name, where)
        with self._reading():
            if few_ids(name, where):
                return self._records(name, where, columns, order_by, limit)

            def run(w: Sequence[Predicate]) -> list[dict[str, Any]]:
                return self._records(name, w, columns, order_by, limit)

            page = self._extents.page(name, where, order_by, limit, run, self._flow_extent)
            if page is not None:
                return page
            if name == "segments" and limit is not None and limit <= PAGE_ROWS:
                return run(where)
            return super().records(name, where, columns=columns, order_by=order_by, limit=limit)

    def _records(
        self, name: str, where: Sequence[Predicate], columns: Sequence[str], order_by: OrderBy, limit: int | None
    ) -> list[dict[str, Any]]:
        """The rows of a query, fetched as tuples, as dicts (timestamps in UTC, as Arrow gives them)."""
        params = self._params(name)
        sql = select_sql(name, where, params, columns=columns, order_by=order_by, limit=limit)
        return as_records(name, columns, reads.run(self._cursor(), sql, params, reads.rows))

    def _select(
        self, name: str, where: Sequence[Predicate], columns: Sequence[str] | None, order_by: OrderBy, limit: int | None
    ) -> pa.Table:
        params = self._params(name)
        sql = select_sql(name, where, params, columns=columns, order_by=order_by, limit=limit)
        return reads.run(self._cursor(), sql, params, arrow_table)

    def _flow_extent(self, flow_id: str) -> tuple[int | None, int | None, int]:
        """The lowest and highest start of a flow's segments, and their number (one aggregate)."""
        sql = 'SELECT min("start_ns"), max("start_ns"), count(*) FROM "segments" WHERE "flow_id" = ?'
        lo, hi, n = self._cursor().execute(sql, [flow_id]).fetchall()[0]
        return lo, hi, int(n)

    def count(self, name: str, where: Sequence[Predicate] = ()) -> int:
        params = self._params(name)
        sql = f"SELECT count(*) FROM {quote(name)}" + where_sql(where, params)
        self._caught_up(name, where)
        with self._reading():
            row = reads.run(self._cursor(), sql, params, reads.rows)[0]
        return int(row[0]) if row else 0

    def count_in(self, name: str, column: str, values: pa.Array, chunk: int = 10_000) -> int:
        """A semi-join against the values bound as a table: one query however many values."""
        params = Params(tables=True)
        sql = f"SELECT count(*) FROM {quote(name)} WHERE {quote(column)} IN ({params.bind_table(values)})"
        self._caught_up(name)
        with self._reading():
            row = reads.run(self._cursor(), sql, params, reads.rows)[0]
        return int(row[0]) if row else 0

    # -- writes ------------------------------------------------------------------------------------------
    def insert(self, name: str, rows: pa.Table) -> None:
        if rows.num_rows == 0:
            return
        rows = conform(name, rows)
        with self.transaction():
            self._write(Change(name, rows=rows))

    def delete(self, name: str, where: Sequence[Predicate]) -> int:
        with self.transaction():
            return self._write(Change(name, where=tuple(where)))

    def update(self, name: str, where: Sequence[Predicate], values: dict[str, Any]) -> int:
        if not values:
            return 0
        with self.transaction():
            return self._write(Change(name, where=tuple(where), values=dict(values)))

    def create_tables(self) -> None:
        with self.transaction():
            for statement in table_statements():
                self._writer.execute(statement)

    def describe(self, name: str) -> StoredTable | None:
        """The table's columns as DuckDB holds them (DuckDB has no sorting keys: :meth:`optimize` clusters)."""
        try:
            with self._reading():
                return StoredTable(arrow_table(self._cursor(), f"SELECT * FROM {quote(name)} LIMIT 0").schema)
        except duckdb.CatalogException:
            return None

    def storage_format(self) -> StorageFormat | None:
        """The store's storage format, and what an older one costs (see :mod:`.upkeep`); None in memory."""
        if self._database is None:
            return None
        with self._reading():
            return storage_format(self._cursor(), self._database, self.path)

    def memory(self) -> Mapping[str, int]:
        """DuckDB's memory by tag (``duckdb_memory()``: the buffer pool's table data, the WAL's, indexes, ...), read
        without waiting for the journal (it says what the process holds now, not what the store will)."""
        with self._reading():
            found = arrow_table(self._cursor(), "SELECT tag, memory_usage_bytes FROM duckdb_memory()").to_pylist()
        return {str(r["tag"]).lower(): int(r["memory_usage_bytes"]) for r in found}

    def optimize(self) -> None:
        """Rewrite clustered tables in their sort order so that zone maps prune one flow's window."""
        with self.transaction():
            for name, keys in SORT_KEYS.items():
                order = ", ".join(f'"{k}"' for k in keys)
                self._writer.execute(f'CREATE TEMP TABLE "_sorted" AS SELECT * FROM "{name}" ORDER BY {order}')
                self._writer.execute(f'DELETE FROM "{name}"')
                self._writer.execute(f'INSERT INTO "{name}" SELECT * FROM "_sorted"')
                self._writer.execute('DROP TABLE "_sorted"')
        self._writer.execute("CHECKPOINT")

    def checkpoint(self) -> None:
        """Write everything committed into the store's file (every journaled write applied first)."""
        self._caught_up()
        self._checkpoint()

    def upkeep(self) -> None:
        """Checkpoint the store if its WAL has passed :attr:`checkpoint_wal_bytes` (the journal's applier calls this
        after each batch of records: no acknowledgement waits for it); what it takes is told to the checkpoint
        observer."""
        wal = wal_bytes(self.path)
        if wal < self.checkpoint_wal_bytes:
            return
        logger.debug("the store %s: checkpoint began (a WAL of %.1f MiB)", self.path, wal / 2**20)
        started = time.perf_counter()
        self._checkpoint()
        seconds = time.perf_counter() - started
        logger.debug("the store %s: checkpoint ended in %.3f s", self.path, seconds)
        if self._checkpoints is not None:
            tell(self._checkpoints, seconds, wal)

    def _checkpoint(self) -> None:
        with self._write_lock:
            self._usable()
            try:
                self._writer.execute("CHECKPOINT")
            except duckdb.Error as exc:
                fault = store_fault(exc)
                if fault is None:
                    raise
                raise self._refused(fault, "a checkpoint") from exc

    def discard(self) -> bool:
        self.close()
        if not self.created:
            return False
        for leftover in (Path(self.path), Path(f"{self.path}.wal")):
            leftover.unlink(missing_ok=True)
        return True

    def close(self) -> None:
        """Checkpoint (unless a storage fault left the database to be reopened: its WAL is then what counts) and
        close every connection. A write under way ends first, and those after it are refused; reads likewise (see
        :class:`.Readers`). Once: a second call does nothing (it checkpointed a closed writer, and said so)."""
        if self._closed:
            return
        self._closed = True
        journal, self._journal = self._journal, None
        if journal is not None:
            journal.close()
        if not self._readers.shut("the store is closed"):
            for cur in list(self._cursors):  # a read outlasting the wait: stop it rather than close under it
                with contextlib.suppress(Exception):
                    cur.interrupt()
            if not self._readers.shut("the store is closed", drain_s=5.0):
                logger.warning("the store %s is closed with a read still running", self.path)
        with self._write_lock:  # a write under way ends first; those after it are refused (_refuse_if_closed)
            if self._fault is None and not self.read_only and self._database is not None:
                try:
                    self._writer.execute("CHECKPOINT")
                except Exception as exc:  # the WAL keeps what the checkpoint did not write: replayed at the next open
                    logger.warning(
                        "the store %s was not checkpointed at close: %s", self.path, str(exc).splitlines()[0]
                    )
            for cur in [*self._cursors, self._writer]:
                with contextlib.suppress(Exception):
                    cur.close()
            release(self.path, self._con)
