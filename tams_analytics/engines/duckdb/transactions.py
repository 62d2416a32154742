"""The DuckDB engine's transactions: direct ones, run on the writer's cursor and committed, and journaled ones,
recorded, made durable in the store's journal and applied behind (:mod:`tams_analytics.journal`,
:mod:`.journaled`).

A direct transaction holds the writer (one at a time; the journal's records wait, and it waits for them to be
applied first); a journaled one holds only the journal, so it never waits for DuckDB: not for the applier's commits,
nor for the checkpoints they trigger. Both tell the engine's listeners (the read cache, the live edges) what they
change as they write it, and that they ended (committed, or not) when the writer is told.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Sequence

import duckdb

from tams_analytics.engines.base import Change
from tams_analytics.engines.duckdb import reads
from tams_analytics.engines.duckdb.coalesce import KeyedUpdate, coalesced
from tams_analytics.engines.duckdb.connections import Connections
from tams_analytics.engines.duckdb.ddl import table_statements
from tams_analytics.engines.duckdb.faults import StoreFault, store_fault
from tams_analytics.engines.duckdb.journaled import STATE_TABLE, Journal, new_store_id
from tams_analytics.engines.duckdb.upkeep import CheckpointObserver, tell, wal_bytes
from tams_analytics.engines.duckdb.writes import LIST_ROWS, list_insert_sql, list_update_sql, refuse_nulls
from tams_analytics.engines.sql import Params, quote, where_sql
from tams_analytics.engines.windows import FlowExtents
from tams_analytics.exceptions import InsufficientStorageError, StoreUnavailableError, TamsError
from tams_analytics.journal.codec import journalable

__all__ = ["Transactions"]


class Transactions(Connections):
    """The engine's transactions (see the module docstring), on the connections of :class:`.Connections`."""

    #: the store's journal (None: transactions are committed as they come)
    _journal: Journal | None
    #: told of every commit that checkpoints the store (:meth:`observe_checkpoints`)
    _checkpoints: CheckpointObserver | None
    #: the open transaction inserted rows (which DuckDB logs in the WAL unless the commit checkpoints)
    _inserted: bool
    _extents: FlowExtents

    @contextlib.contextmanager
    def journaled(self) -> Iterator[None]:
        """Transactions begun inside are journaled, when the store keeps a journal (see :meth:`__init__`): their
        writes are recorded and acknowledged once synced, and applied behind. What they write must not be read back
        in the same transaction, and ``delete``/``update`` give 0 there: the rows they touch are not known until they
        are applied."""
        before = getattr(self._local, "journaled", False)
        self._local.journaled = True
        try:
            yield
        finally:
            self._local.journaled = before

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        if getattr(self._local, "recording", None) is not None:  # joins the journaled transaction in flight
            yield
            return
        journal = self._journal
        if journal is None:
            with self._direct_transaction():
                yield
        elif getattr(self._local, "journaled", False) and not getattr(self._local, "depth", 0):
            with self._journaled_transaction(journal):
                yield
        elif getattr(self._local, "depth", 0):
            with self._direct_transaction():
                yield
        else:
            with journal.exclusive(), self._direct_transaction():
                yield

    def _refuse_if_closed(self) -> None:
        """Refuse a write once :meth:`close` began; checked under the lock the close takes (the journal's gate, the
        writer's lock) as a transaction begins, so a write either ends before the close goes on or is refused, never
        run on a connection being closed (undefined in DuckDB: 1.3.2 answered ``bad_weak_ptr``, then crashed). Not
        in a transaction under way: its nested writes go on, and the close waits for them."""
        if self._closed:
            raise StoreUnavailableError(
                f"the store {self.path} is closed: the write was refused and nothing of it was stored"
            )

    @contextlib.contextmanager
    def _journaled_transaction(self, journal: Journal) -> Iterator[None]:
        """A transaction whose writes are recorded (:meth:`insert`, ...) and, when it ends, made durable as one record
        of the journal, then told to the listeners as a commit."""
        with journal.gate:
            self._refuse_if_closed()
            journal.admit()
            recording: list[Change] = []
            self._local.recording = recording
            try:
                yield
            except BaseException:
                self._ended(False)
                raise
            finally:
                self._local.recording = None
            if recording:
                try:
                    journal.commit(recording)
                except BaseException:
                    self._ended(False)
                    raise
            self._ended(True)

    @contextlib.contextmanager
    def _direct_transaction(self) -> Iterator[None]:
        with self._write_lock:
            depth = getattr(self._local, "depth", 0)
            self._local.depth = depth + 1
            if depth:
                try:
                    yield
                finally:
                    self._local.depth = depth
                return
            try:
                self._refuse_if_closed()
                self._usable()
                self._begin()
                try:
                    yield
                except BaseException as exc:
                    self._rolled_back(exc)
                    raise
                else:
                    self._commit()
            finally:
                self._local.depth = depth

    def _begin(self) -> None:
        self._inserted = False
        try:
            self._writer.execute("BEGIN TRANSACTION")
        except duckdb.Error as exc:
            fault = store_fault(exc)
            if fault is None:
                raise
            raise self._refused(fault, "beginning a transaction") from exc

    def _rolled_back(self, exc: BaseException, *, notify: bool = True) -> None:
        """Roll back after ``exc`` ended the transaction (``notify``: the listeners); a storage fault (``exc``'s or the
        rollback's) reopens the database, and the caller's exception becomes the refusal that says so."""
        fault = store_fault(exc)
        try:
            self._writer.execute("ROLLBACK")
        except duckdb.Error as rollback:
            fault = fault or StoreFault.of(rollback)
        if notify:
            self._ended(False)
        if fault is not None:
            raise self._refused(fault, "a write") from exc

    def _commit(self, *, notify: bool = True) -> None:
        """Commit (``notify``: the listeners); a commit that fails is a storage fault (see :mod:`.faults`): the database
        is reopened and the write refused. A failed checkpoint (the commit that triggered it is committed in memory,
        maybe durably) makes the refusal say the write may have been stored."""
        observe = self._checkpoints
        wal = wal_bytes(self.path) if observe is not None else 0
        started = time.perf_counter()
        try:
            self._writer.execute("COMMIT")
        except duckdb.Error as exc:
            if notify:
                self._ended(False)
            fault = store_fault(exc, committing=True)
            assert fault is not None
            raise self._refused(fault, "a commit", uncertain=fault.invalidated) from exc
        except BaseException:
            if notify:
                self._ended(False)
            raise
        seconds = time.perf_counter() - started
        if notify:
            self._ended(True)
        if observe is not None and self._checkpointed(wal):
            tell(observe, seconds, wal)

    def _usable(self) -> None:
        """Before a write: recover the store if a fault left it to be (at most once a second: a full volume would
        otherwise have every write replay the WAL), else refuse the write saying why."""
        if self._fault is None:
            return
        if time.monotonic() >= self._next_recovery and self._room_to_recover():
            recovered = self.reopen_if_failed()
            self._next_recovery = time.monotonic() + 1.0
            if recovered:
                if self._tables_pending:
                    self._make_pending_tables()
                return
        fault = self._fault
        error = InsufficientStorageError if fault.no_space else StoreUnavailableError
        state = "cannot be written until it is checkpointed" if fault.readable else "could not be reopened"
        raise error(
            f"the store {self.path} {state} after a failed write ({fault.cause}): nothing of this write was stored; "
            "it is tried again by itself"
        )

    def _writing(self, change: Change) -> None:
        if change.rows is not None:
            self._extents.inserted(change.table, change.rows)
        super()._writing(change)

    def in_transaction(self) -> bool:
        return getattr(self._local, "depth", 0) > 0 or getattr(self._local, "recording", None) is not None

    def _write(self, change: Change) -> int:
        """Make ``change`` in the transaction in flight, told to the listeners first: recorded in a journaled one
        (0 rows: not known yet), else run; how many rows an update or delete touched."""
        recording: list[Change] | None = getattr(self._local, "recording", None)
        if recording is not None:
            if not journalable(change.where):
                raise TamsError(
                    f"a journaled transaction cannot hold a write on {change.table} restricted so: {change}"
                )
            refuse_nulls(change)
        self._writing(change)
        if recording is not None:
            recording.append(change)
            return 0
        return self._run_change(change)

    def _run_change(self, change: Change) -> int:
        """Run ``change`` on the writer (a transaction is open); rows touched (an insert: 0)."""
        name = change.table
        if change.rows is not None:
            rows = change.rows
            self._inserted = self._inserted or rows.num_rows > 0
            if rows.num_rows <= LIST_ROWS:
                # a few rows (a live recorder's segments): each column one list parameter
                self._writer.execute(list_insert_sql(name), list(rows.to_pydict().values()))
            else:
                self._writer.from_arrow(rows).insert_into(name)
            return 0
        params = self._params(name)
        if change.values is None:
            sql = f"DELETE FROM {quote(name)}" + where_sql(change.where, params)
        else:
            sets = ", ".join(f"{quote(c)} = ?" for c in change.values)
            values = list(change.values.values())
            sql = f"UPDATE {quote(name)} SET {sets}" + where_sql(change.where, params)
            params[:0] = values
        row = reads.run(self._writer, sql, params, reads.rows)[0]
        return int(row[0]) if row else 0

    def _run_keyed_update(self, update: KeyedUpdate) -> None:
        """Run the updates joined in ``update`` as one statement (:func:`list_update_sql`)."""
        values = (list(c) for c in zip(*update.rows.values(), strict=True))
        self._writer.execute(list_update_sql(update.table, update.key, update.columns), [list(update.rows), *values])

    # -- the journal ---------------------------------------------------------------------------------------------
    def apply_records(self, records: Sequence[tuple[int, Sequence[Change]]]) -> None:
        """Apply journaled ``records`` (``(seq, changes)``, in order) in one transaction that also notes the last one
        applied; the listeners heard of them when they were journaled. Raises (nothing applied) when it fails."""
        with self._write_lock:
            self._usable()
            self._begin()
            try:
                for change in coalesced([c for _, changes in records for c in changes]):
                    if isinstance(change, KeyedUpdate):
                        self._run_keyed_update(change)
                    else:
                        self._run_change(change)
                self._writer.execute(f'UPDATE "{STATE_TABLE}" SET "applied" = ?', [records[-1][0]])
            except BaseException as exc:
                self._rolled_back(exc, notify=False)
                raise
            self._commit(notify=False)

    def journal_state(self) -> tuple[str, int]:
        """The store's identity and the last journaled record it holds applied (made on first use)."""
        with self._write_lock:
            found = self._writer.execute(f'SELECT "store_id", "applied" FROM "{STATE_TABLE}"').fetchall()
            if found:
                return str(found[0][0]), int(found[0][1])
        with self._direct_transaction():
            store_id = new_store_id()
            self._writer.execute(f'INSERT INTO "{STATE_TABLE}" VALUES (?, 0)', [store_id])
        return store_id, 0

    def _make_pending_tables(self) -> None:
        """The tables :meth:`create_tables` did not make at open (the store could not be written then), made in the
        transaction being begun now that it has recovered; a fault here leaves the store failed, the write refused."""
        self._begin()
        try:
            for statement in table_statements():
                self._writer.execute(statement)
        except BaseException as exc:
            self._rolled_back(exc)
            raise
        self._commit()
        self._tables_pending = False

    def observe_checkpoints(self, observe: CheckpointObserver | None) -> None:
        """Have ``observe(seconds, wal_bytes)`` told of every commit that checkpoints the store from now on (None: no
        more): a commit that took the WAL past DuckDB's ``checkpoint_threshold`` (16 MiB) writes the store's file
        before it returns, and every other write waits for it (seen by the WAL's size: :meth:`_checkpointed`);
        ``seconds`` is how long the commit took and ``wal_bytes`` the WAL's size before it. In a store of DuckDB's
        older storage format (:meth:`storage_format`) its cost grows with the objects' indexes, written whole each time
        (``python -m benchmarks.checkpoints``): the server exports it (``tams_store_checkpoint_seconds``) so that a
        store outgrowing live ingest shows."""
        self._checkpoints = observe

    def _checkpointed(self, wal: int) -> bool:
        """Whether the commit just made checkpointed the store, its WAL ``wal`` bytes long before: the WAL is
        shorter now, or it was empty and still is though the transaction inserted rows (a commit that alone passed
        the threshold). An in-memory store has no WAL and never checkpoints."""
        if self.path == ":memory:":
            return False
        after = wal_bytes(self.path)
        return after < wal or (after == 0 and self._inserted)

    def _params(self, name: str) -> Params:
        """Bound values of a statement on table ``name``."""
        return Params(tables=True)
