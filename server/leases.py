"""Leases: which server process (replica) does a piece of background work, kept in the store's ``leases`` table.

Several server processes may share one store (VAST). Background work (a flow delete request, the
deliveries to one webhook, a pass of object collection) must be done by one of them at a time, and taken
over when the one doing it dies. A lease is a named row: ``holder`` holds it until ``expires``. A process
claims a lease (:meth:`Leases.claim`) when it is free, expired or already its own (then it is renewed), in
one transaction that reads the row and updates it. Two processes claiming one lease at once both update
that row: on VAST first committer wins and the other is refused (it does not get the lease); on DuckDB
the one writing process serialises the two. The holder renews the lease while it works (a claim again,
well before it expires) and stops working when a renewal fails; a process that dies simply stops
renewing, and its lease is free once it expires.

A lease row is created, free, in a transaction of its own before the first claim. On a store without
unique keys two processes may both create one (two rows of one name): a claim reads and updates every row
of its name, so the two claims still write a row in common and one is refused.

Expiry uses each process's clock: keep replicas' clocks in step (NTP) well within ``duration_s``.

A process that is its store's sole writer (DuckDB locks its file) needs no lease against other live
processes: a lease another holder has there was left by a process that is gone (killed, restarted), so it
is taken at once (``sole_writer``) rather than after it expires.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pyarrow as pa

from tams_analytics.catalog import Catalog
from tams_analytics.clock import utcnow
from tams_analytics.exceptions import TransientStoreError
from tams_analytics.predicates import Term

__all__ = ["Hold", "Leases", "replica_name"]

logger = logging.getLogger(__name__)


def replica_name() -> str:
    """A name for this process that no other process shares: host, process id and a random suffix."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Leases:
    """The leases of one process (``holder``) on ``catalog``'s store, each claimed for ``duration_s``."""

    def __init__(
        self,
        catalog: Catalog,
        holder: str,
        duration_s: float,
        *,
        sole_writer: bool = False,
        clock: Callable[[], dt.datetime] = utcnow,
    ) -> None:
        self.catalog = catalog
        self.holder = holder
        self.duration = dt.timedelta(seconds=duration_s)
        #: no other live process writes the store: leases others hold are left over
        self.sole_writer = sole_writer
        self.clock = clock

    def __repr__(self) -> str:
        return f"Leases(holder={self.holder!r}, duration={self.duration.total_seconds()}s)"

    @property
    def renew_every_s(self) -> float:
        """How often a holder renews: a third of the lease, so one slow renewal never loses it."""
        return self.duration.total_seconds() / 3

    def claim(self, name: str) -> bool:
        """Hold ``name`` for the next ``duration_s`` if it is free, expired or ours; False if another process
        holds it, or claimed it at the same moment."""
        where = [Term("name", "==", name)]
        if not self.catalog.exists("leases", where):
            self._create(name)
        try:
            with self.catalog.transaction():
                now = self.clock()
                if not self.sole_writer and any(self._held_by_other(r, now) for r in self._rows(name)):
                    return False
                values = {"holder": self.holder, "expires": now + self.duration, "acquired": now}
                self.catalog.engine.update("leases", where, values)
        except TransientStoreError as exc:  # another process claimed it at the same moment
            logger.debug("lease %s: claim refused: %s", name, exc)
            return False
        return True

    @contextlib.contextmanager
    def holding(self, name: str) -> Iterator[Hold | None]:
        """Claim ``name`` for a piece of work: the :class:`Hold` while it is ours (None: another process holds
        it), released at the end (forgotten if the work set :attr:`Hold.finished`)."""
        hold = self.hold(name)
        if hold is None:
            yield None
            return
        try:
            yield hold
        finally:
            self.release(name, forget=hold.finished)

    def hold(self, name: str) -> Hold | None:
        """Claim ``name``: its :class:`Hold` (release it when done), or None if another process holds it."""
        return Hold(self, name) if self.claim(name) else None

    def release(self, name: str, *, forget: bool = False) -> None:
        """Give ``name`` up (if ours): free at once for the others; with ``forget`` (the work is finished and
        will not come back) its row goes too."""
        try:
            with self.catalog.transaction():
                if not any(r["holder"] == self.holder for r in self._rows(name)):
                    return
                where = [Term("name", "==", name)]
                if forget:
                    self.catalog.engine.delete("leases", where)
                else:
                    self.catalog.engine.update("leases", where, {"holder": None, "expires": None})
        except TransientStoreError as exc:  # someone took it over meanwhile: it is not ours to give up
            logger.debug("lease %s: release refused: %s", name, exc)

    def holder_of(self, name: str) -> str | None:
        """Who holds ``name`` now (None: free)."""
        now = self.clock()
        for r in self._rows(name):
            if r["holder"] is not None and r["expires"] is not None and r["expires"] > now:
                return str(r["holder"])
        return None

    def _held_by_other(self, row: dict[str, Any], now: dt.datetime) -> bool:
        return row["holder"] not in (None, self.holder) and row["expires"] is not None and row["expires"] > now

    def _rows(self, name: str) -> list[dict[str, Any]]:
        return self.catalog.records("leases", [Term("name", "==", name)], columns=["holder", "expires"])

    def _create(self, name: str) -> None:
        """The lease's row, free, unless one exists (committed on its own, before any claim)."""
        try:
            with self.catalog.transaction():
                if not self.catalog.exists("leases", [Term("name", "==", name)]):
                    row = {"name": name, "holder": None, "expires": None, "acquired": None}
                    self.catalog.engine.insert("leases", pa.Table.from_pylist([row]))
        except TransientStoreError as exc:
            logger.debug("lease %s: creating its row failed: %s", name, exc)


class Hold:
    """A lease this process holds while it works on what it names: call :meth:`keep` between units of work."""

    def __init__(self, leases: Leases, name: str) -> None:
        self.leases = leases
        self.name = name
        #: set when the work is done for good: the lease is then forgotten rather than freed
        self.finished = False
        self._renewed = time.monotonic()

    def keep(self) -> bool:
        """Whether the lease is still ours (renewed when a third of it has passed); stop working when False."""
        if time.monotonic() - self._renewed < self.leases.renew_every_s:
            return True
        if not self.leases.claim(self.name):
            logger.warning("lease %s was lost (taken over, or the store refused its renewal): stopping", self.name)
            return False
        self._renewed = time.monotonic()
        return True
