"""What a DuckDB error says about the store: a fault of the storage under it, or an ordinary error.

DuckDB 1.3 does not survive a failed write in memory: after a commit whose WAL write failed (``TransactionContext
Error: Failed to commit: Could not write file ".../x.wal": No space left on device``) it rolls the transaction back
and truncates the WAL, but the table it appended to is left inconsistent in memory: the next acknowledged insert went
missing while a rolled-back row stayed visible, and an ordered scan crashed the process (measured on a filled tmpfs,
``tests/reliability/test_full_disk.py``). A failed checkpoint (``FatalException``) invalidates the database outright
("database has been invalidated because of a previous fatal error"). Reopening the file (WAL replay, which truncates a
torn tail) gives exactly what was durably committed. So every :class:`StoreFault` is handled as fatal: the engine
reopens the database before it answers anything else (:meth:`tams_analytics.engines.duckdb.Engine.recover`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import duckdb

from tams_analytics.exceptions import STORE_VOLUME_FULL

__all__ = ["StoreFault", "store_fault", "unsettled_wal"]

#: what DuckDB's I/O errors say (its messages carry ``strerror``; the errno is not exposed to Python)
_IO = re.compile(
    r"Could not (?:write|read|fsync|truncate|open|create|set lock on|extend)|Failed to commit|"
    r"Failed to create checkpoint|has been invalidated|No space left on device|Disk quota exceeded|"
    r"Input/output error|Read-only file system"
)
#: ``file "/x"``, or ``file \"/x\"`` in the JSON document DuckDB 2's asynchronous writes put in their message
_FILE = re.compile(r'file (\\?)"(.+?)\1"')
#: the reasons of a full volume (ENOSPC, EDQUOT)
_NO_SPACE = ("No space left on device", "Disk quota exceeded")


@dataclass(frozen=True)
class StoreFault:
    """A failure of the storage under the store: ``cause`` in words (first line of DuckDB's message), the file it
        names (if any), whether the volume was full (``no_space``), and whether DuckDB invalidated the database
        (``invalidated``: a failed checkpoint; a commit it interrupted may have been stored). ``readable``: the database
    was reopened and may be read, but not written until a checkpoint succeeds (see :func:`unsettled_wal`)."""

    cause: str
    file: str | None
    no_space: bool
    invalidated: bool
    readable: bool = False

    @classmethod
    def of(cls, exc: BaseException) -> StoreFault:
        text = str(exc)
        first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
        found = _FILE.search(text)
        return cls(
            cause=first,
            file=found.group(2) if found else None,
            no_space=any(reason in text for reason in _NO_SPACE),
            invalidated=isinstance(exc, duckdb.FatalException) or "invalidated" in text,
        )

    @property
    def key(self) -> str:
        """What makes two faults the same cause (for logging once per cause)."""
        return "no space" if self.no_space else ("invalidated" if self.invalidated else self.cause[:80])


def unsettled_wal(exc: BaseException) -> StoreFault:
    """The fault of a WAL that was replayed at open but could not be checkpointed (``exc``): the database may be
    read, not written. DuckDB 1.3 keeps a wrong size for a replayed WAL (the offset within its last read buffer, not
    the file: fixed in DuckDB 1.4, "Use correct offset for setting the successful WAL offset"), and the first commit
    after the replay truncates the WAL to that size, when it fails (its revert) or when the WAL's tail was torn:
    everything since the last checkpoint would go. So a replayed WAL is checkpointed before anything is written."""
    fault = StoreFault.of(exc)
    full = f"{STORE_VOLUME_FULL}: " if fault.no_space else ""  # what an operator must fix, said first
    return StoreFault(
        cause=f"{full}the WAL replayed at open could not be checkpointed ({fault.cause}): writes wait for a checkpoint",
        file=fault.file,
        no_space=fault.no_space,
        invalidated=fault.invalidated,
        readable=True,
    )


def store_fault(exc: BaseException, *, committing: bool = False) -> StoreFault | None:
    """The storage fault ``exc`` reports, or None when it is an ordinary error (a constraint, bad SQL). A commit
    that fails (``committing``) is always a fault: with one writer there is nothing else it could be."""
    if not isinstance(exc, duckdb.Error):
        return None
    if committing or isinstance(exc, duckdb.FatalException | duckdb.IOException) or _IO.search(str(exc)):
        return StoreFault.of(exc)
    return None
