"""The DuckDB engine's journal (see :mod:`tams_analytics.journal`): journaled transactions acknowledged once their
record is synced, and the thread that applies the records to the store behind them, in order.

The store holds, in its ``journal_state`` table, the store's identity (the journal's files carry it too, so that a
journal is never applied to another store) and the number of the last record applied, written in the same
transaction as that record's rows. :class:`Journal` applies every record after it when the store is opened, then the
new ones as they come, many to a transaction (:meth:`Journal._run`: those of :data:`APPLY_ROUND_S`, or at once for a
read that waits for them); a storage fault leaves the records queued and the store is tried again. A direct (not
journaled) transaction first waits for every record to be applied and holds the journal meanwhile
(:meth:`Journal.exclusive`).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Final

from tams_analytics.engines.base import Change
from tams_analytics.exceptions import (
    STORE_VOLUME_FULL,
    InsufficientStorageError,
    StoreUnavailableError,
    TamsError,
)
from tams_analytics.journal import codec
from tams_analytics.journal.log import Log
from tams_analytics.journal.pending import Pending
from tams_analytics.journal.reserve import Reserve
from tams_analytics.predicates import Predicate
from tams_analytics.ratelog import RepeatedLog

if TYPE_CHECKING:
    from tams_analytics.engines.duckdb import Engine

__all__ = [
    "STATE_TABLE",
    "Journal",
    "journal_folder",
    "new_store_id",
    "refuse_unapplied_journal",
    "unapplied_records",
]

logger = logging.getLogger(__name__)
_failures = RepeatedLog(logger)

#: the table that holds the store's identity and the last record applied
STATE_TABLE: Final = "journal_state"
#: records applied in one transaction at most
APPLY_RECORDS: Final = 512
#: how long the applier gathers records for one transaction while no read waits for them, in seconds: each
#: transaction's own cost (its commit, the statements of each table, noting what was applied) is paid a few times a
#: second rather than for every few records (at 400 records/s, 33 transactions/s kept the applier busy all the time)
APPLY_ROUND_S: Final = 0.25
#: records journaled and not yet applied beyond which journaled writes are refused (the store cannot keep up, or has
#: failed): each is a registration batch held in memory until applied
MAX_BEHIND: Final = 20_000
#: how long a read waits for the records it must see to be applied before it is refused
READ_WAIT_S: Final = 30.0


def journal_folder(path: str) -> Path:
    """The folder of the journal of the store file at ``path``."""
    return Path(f"{path}.journal")


class Journal:
    """The journal of ``engine``'s store (a DuckDB file open for writes), with every record it holds applied."""

    def __init__(self, engine: Engine, reserve: Reserve) -> None:
        self.engine = engine
        #: room on the volume kept for applying acknowledged records (released by the store's opening, made here)
        self.reserve = reserve
        store_id, applied = engine.journal_state()
        self.log = Log(journal_folder(engine.path), store_id)
        #: records journaled and not yet applied, in order: ``(seq, changes)``
        self._queue: deque[tuple[int, list[Change]]] = deque()
        self._queued = threading.Condition()
        #: held by a journaled transaction while it records, and by a direct one while it runs
        self.gate = threading.RLock()
        #: why the last attempt to apply failed (None: it did not)
        self.failure: str | None = None
        #: the store failed to apply records and nothing is left to try until it recovers (no reserve to release)
        self._stuck = False
        self._closing = False
        #: reads waiting for records: the applier gathers no more for them (:meth:`_hurried`)
        self._hurry = 0
        #: held while records are applied (and while applying is paused: :meth:`paused`)
        self._applying = threading.Lock()
        #: told how long each round of the applier took to apply its records (one transaction), once it committed
        self.observe_apply: Callable[[float], None] | None = None
        records = [(r.seq, codec.decode(r.payload)) for r in self.log.replay(applied)]
        for at in range(0, len(records), APPLY_RECORDS):
            engine.apply_records(records[at : at + APPLY_RECORDS])
        if records:
            logger.warning(
                "the store %s: applied %s acknowledged writes from its journal (records %s to %s) that it had not "
                "applied when it stopped",
                engine.path,
                len(records),
                records[0][0],
                records[-1][0],
            )
        #: every record of the log is applied now
        self.pending = Pending(self.log.last)
        self.log.forget_through(self.log.last)
        self.reserve.restore()
        self._thread = threading.Thread(target=self._run, name="tams-journal-applier", daemon=True)
        self._thread.start()

    # -- journaled transactions ----------------------------------------------------------------------------------
    def admit(self) -> None:
        """Refuse a journaled write while the store is too far behind (it failed, or cannot keep up)."""
        if self.pending.behind >= MAX_BEHIND:
            why = f" (the store: {self.failure})" if self.failure else ""
            raise StoreUnavailableError(
                f"the store has {self.pending.behind} acknowledged writes still to apply{why}: the write was refused; "
                "try again shortly"
            )

    def commit(self, changes: Sequence[Change]) -> int:
        """Make ``changes`` durable as the next record, note what they change, and queue them; the record's number.
        Raises (nothing recorded) when the log cannot be written."""
        payload = codec.encode(changes)
        self._room_for_records()
        try:
            seq = self.log.append(payload)
        except InsufficientStorageError:
            self.reserve.release("a journal write met a full volume")
            raise
        listed = list(changes)
        self.pending.note(seq, listed)
        with self._queued:
            self._queue.append((seq, listed))
            # the applier waits for the first record, then gathers a round on a timer: woken only to start a round,
            # or when one is full (at every commit it would take the GIL from the writer to go back to waiting)
            if len(self._queue) == 1 or len(self._queue) >= APPLY_RECORDS:
                self._queued.notify()
        return seq

    def refusing(self) -> str | None:
        """Why the journal takes no record now (None: it takes them): its reserve is released and the volume has no
        room to make it again, so what room there is stays the store's, for the records already acknowledged."""
        if self.reserve.held or self.reserve.restore():
            return None
        free = self.reserve.free_bytes()
        return (
            f"{STORE_VOLUME_FULL} ({free / 2**20:.1f} MiB free of the {2 * self.reserve.size / 2**20:.1f} "
            "MiB the journal needs to take writes again; what is left is kept for the store to apply the writes "
            "already acknowledged)"
        )

    def _room_for_records(self) -> None:
        """Refuse a record while the journal takes none (:meth:`refusing`)."""
        why = self.refusing()
        if why is not None:
            raise InsufficientStorageError(f"{why}: the write was refused and nothing of it was stored")

    # -- reads and direct writes ---------------------------------------------------------------------------------
    def wait_for(self, table: str, where: Sequence[Predicate] = ()) -> None:
        """Wait until every record that may change what a read of ``table`` restricted by ``where`` shows is
        applied."""
        needed = self.pending.needed(table, where)
        if needed:
            with self._hurried():
                self.pending.wait(needed, READ_WAIT_S, self._refusal)

    def settle(self, timeout_s: float = READ_WAIT_S) -> None:
        """Wait until every record journaled so far is applied."""
        if self.pending.behind:
            with self._hurried():
                self.pending.wait_all(timeout_s, self._refusal)

    @contextlib.contextmanager
    def _hurried(self) -> Iterator[None]:
        """Have the applier apply what it holds at once, not at the end of its round, while this waits."""
        with self._queued:
            self._hurry += 1
            self._queued.notify_all()
        try:
            yield
        finally:
            with self._queued:
                self._hurry -= 1

    def _refusal(self) -> Exception | None:
        """Why a read that needs records applied is refused now: the store failed, so none is applied until it
        recovers (None: they are being applied)."""
        fault = self.engine.store_fault()
        if fault is None or not self._stuck:  # (a reserve released lets the applier go on: the read waits)
            return None
        state = STORE_VOLUME_FULL if fault.no_space else "the store failed"
        error = InsufficientStorageError if fault.no_space else StoreUnavailableError
        return error(
            f"{state} ({fault.cause}): the writes acknowledged in its last moments, which this needs, are kept in its "
            "journal and applied as soon as it recovers"
        )

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        """Hold the journal (no record is made meanwhile), with every record applied: for a direct transaction."""
        with self.gate:
            self.settle()
            yield

    # -- the applier ---------------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """Apply nothing meanwhile (records are still journaled and acknowledged): for tests of what a store shows,
        and keeps, while its records wait, as they do behind a long checkpoint."""
        with self._applying:
            yield

    def _run(self) -> None:
        pause = 0.05
        while True:
            with self._queued:
                while not self._queue and not self._closing:
                    self._queued.wait()
                if not self._queue:
                    return
                due = time.monotonic() + APPLY_ROUND_S
                while len(self._queue) < APPLY_RECORDS and not (self._hurry or self._closing):
                    left = due - time.monotonic()
                    if left <= 0:
                        break
                    self._queued.wait(left)
                batch = [self._queue[i] for i in range(min(APPLY_RECORDS, len(self._queue)))]
            try:
                with self._applying:
                    began = time.perf_counter()
                    self.engine.apply_records(batch)
                    took = time.perf_counter() - began
            except Exception as exc:
                if isinstance(exc, InsufficientStorageError) and self.reserve.release("the store met a full volume"):
                    self.engine.reopen_if_failed()  # at once: the reserve's room is there now
                    continue
                self._stuck = True
                self.failure = " ".join(str(exc).split())[:300] or type(exc).__name__
                _failures.log(
                    logging.ERROR,
                    type(exc).__name__,
                    "the store %s could not apply %s journaled writes (they stay in its journal): %s",
                    self.engine.path,
                    self.pending.behind,
                    self.failure,
                )
                self._resync()
                if self._closing:  # the store is closing: what is left is applied when it is opened again
                    return
                time.sleep(pause)
                pause = min(pause * 2, 2.0)
                continue
            pause = 0.05
            self._done(batch[-1][0])
            observe = self.observe_apply
            if observe is not None:
                try:
                    observe(took)
                except Exception:  # a listener's failure must never stop the applier
                    logger.exception("observe_apply failed")
            try:
                self.engine.upkeep()
            except Exception as exc:  # (a full volume, say): tried again after the next records
                _failures.log(logging.ERROR, f"upkeep {type(exc).__name__}", "the store %s: %s", self.engine.path, exc)

    def _resync(self) -> None:
        """After a failed apply: drop the records the store holds anyway (its commit went through before the
        failure was seen), if it can be read."""
        try:
            _, applied = self.engine.journal_state()
        except Exception:
            return
        if applied > self.pending.applied:
            self._done(applied)

    def _done(self, seq: int) -> None:
        with self._queued:
            while self._queue and self._queue[0][0] <= seq:
                self._queue.popleft()
        self.failure = None
        self._stuck = False
        self.pending.applied_through(seq)
        try:
            self.log.forget_through(seq)
        except OSError as exc:
            logger.warning("the journal %s: applied files not removed: %s", self.log.folder, exc)

    def close(self) -> None:
        """Apply every record, stop the applier and, when all are applied, remove the journal (and its reserve). Holds
        the gate: the record being made ends first, and the transactions waiting for it are refused (the engine is
        closed), never recorded behind the applier's back."""
        with self.gate:
            with self._queued:
                self._closing = True
                self._queued.notify_all()
            self._thread.join(60.0)
        if self.pending.behind:
            logger.warning(
                "the store %s closed with %s journaled writes not yet applied: they are applied when it is opened "
                "again",
                self.engine.path,
                self.pending.behind,
            )
            self.log.close()
            return
        try:  # the reserve too: a store opened again releases it first anyway, and a closed store needs no room
            self.reserve.remove()
            self.log.clear(self.pending.applied)
        except (OSError, TamsError) as exc:
            logger.warning("the journal %s was not emptied: %s", self.log.folder, exc)


def new_store_id() -> str:
    """A store's identity, written in its ``journal_state`` and in its journal's files."""
    return str(uuid.uuid4())


def unapplied_records(path: str) -> bool:
    """Whether a journal beside the store at ``path`` holds records (written, maybe not applied)."""
    if path == ":memory:":
        return False
    folder = journal_folder(path)
    return folder.is_dir() and any(f.stat().st_size > 0 for f in folder.glob("*.log"))


def refuse_unapplied_journal(path: str) -> None:
    """Refuse to read the store at ``path`` as it is while a journal beside it holds records: acknowledged writes the
    store does not show until it is opened for writes (which applies them)."""
    if unapplied_records(path):
        raise StoreUnavailableError(
            f"the store {path} has acknowledged writes in its journal ({journal_folder(path)}) that are not applied "
            "yet (its server stopped before it applied them), and it cannot be opened for writes here to apply "
            "them: start its server again (or run this where the store can be written)"
        )
