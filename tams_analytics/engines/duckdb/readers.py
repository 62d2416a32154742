"""Reads in flight, and the door a reopen closes: :class:`Readers`.

After a storage fault the DuckDB engine reopens its database (:mod:`.faults`): no read may run on the old connections
while they close (DuckDB's memory after a failed write is not to be trusted, and a cursor closed under a running
query is undefined), and reads that arrive meanwhile wait a moment for the new ones instead of failing.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator

from tams_analytics.exceptions import StoreUnavailableError

__all__ = ["Readers"]


class Readers:
    """Counts reads in flight; :meth:`closed` waits for them to end and holds new ones back while the store is
    reopened. A read that finds the store failed (no reopen under way, or one that outlasts ``wait_s``) raises
    :class:`~tams_analytics.exceptions.StoreUnavailableError` with the failure in words."""

    def __init__(self, wait_s: float = 5.0) -> None:
        self.wait_s = wait_s
        self._cond = threading.Condition()
        self._reading = 0
        self._reopening = False
        #: why reads are refused (None: they are not)
        self.failure: str | None = None

    @property
    def in_flight(self) -> int:
        """How many reads are under way."""
        return self._reading

    def enter(self) -> None:
        deadline = time.monotonic() + self.wait_s
        with self._cond:
            while self._reopening:
                left = deadline - time.monotonic()
                if left <= 0 or not self._cond.wait(left):
                    break
            if self._reopening or self.failure is not None:
                raise StoreUnavailableError(f"the store cannot be read now: {self.failure or 'it is being reopened'}")
            self._reading += 1

    def leave(self) -> None:
        with self._cond:
            self._reading -= 1
            if self._reading == 0:
                self._cond.notify_all()

    def shut(self, reason: str, drain_s: float = 10.0) -> bool:
        """Refuse every read from now on (``reason``: the engine is closing) and wait (up to ``drain_s``) for those
        in flight; whether none is left. A connection closed under a running read is undefined: DuckDB 1.3 corrupted
        its heap and crashed the process when the read cache's loader was still scanning as a test closed its
        store."""
        with self._cond:
            self.failure = reason
            return self._drain(drain_s)

    @contextlib.contextmanager
    def closed(self, drain_s: float = 10.0) -> Iterator[None]:
        """Hold new reads back and wait (up to ``drain_s``) for those in flight; reads resume after the block."""
        with self._cond:
            self._reopening = True
            self._drain(drain_s)
        try:
            yield
        finally:
            with self._cond:
                self._reopening = False
                self._cond.notify_all()

    def _drain(self, drain_s: float) -> bool:
        """Wait (up to ``drain_s``, the condition held) for the reads in flight to end; whether none is left."""
        deadline = time.monotonic() + drain_s
        while self._reading and (left := deadline - time.monotonic()) > 0:
            self._cond.wait(left)
        return self._reading == 0
