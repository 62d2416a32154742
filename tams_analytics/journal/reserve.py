"""Room on the store's volume kept for applying what the journal acknowledged: :class:`Reserve`.

A journaled write is acknowledged once its record is synced in the journal; the store (DuckDB) takes it later. On a
volume that fills, the journal's appends fail first (a 507, nothing acknowledged), but the records acknowledged just
before still need room in the store's WAL, and a server started again after a crash needs room for DuckDB's replay
and checkpoint and for the journal's own replay. Without it, reads of those flows would wait (and be refused) until
an operator frees space, and a restart would fail.

The reserve is a file of ``size`` bytes in the journal's folder, allocated for real (``posix_fallocate``: not a
sparse file, whose blocks a full volume would not have). It is released (deleted) the moment the volume is found
full, by a journal append or by the applier that meets ``ENOSPC``, and every time before the store is opened for
writes. While it is released the journal acknowledges nothing (a 507), so the room it gave is the applier's; it is
made again once the volume has room for it twice over.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import shutil
import threading
from pathlib import Path
from typing import Final

__all__ = ["DEFAULT_BYTES", "NAME", "Reserve"]

logger = logging.getLogger(__name__)

#: the reserve's file in the journal's folder
NAME: Final = "reserve"
#: the reserve's size unless told otherwise: room for DuckDB to apply thousands of records and checkpoint them
DEFAULT_BYTES: Final = 64 << 20
#: the largest share of the volume's size a reserve takes (a small volume gets a smaller reserve)
MAX_SHARE: Final = 0.2


class Reserve:
    """``size`` bytes kept in ``folder`` (at most :data:`MAX_SHARE` of its volume) for applying acknowledged writes."""

    def __init__(self, folder: Path, size: int = DEFAULT_BYTES) -> None:
        self.path = folder / NAME
        self._lock = threading.Lock()
        try:
            total = shutil.disk_usage(folder if folder.exists() else folder.parent).total
        except OSError:
            total = size
        self.size = max(0, min(size, int(total * MAX_SHARE)))
        #: why the reserve was last released for a full volume (None: it was not, or it is made again since)
        self._released_for: str | None = None

    @property
    def held(self) -> bool:
        """Whether the reserve is in place (a reserve of 0 bytes always is)."""
        return self.size == 0 or self.path.is_file()

    def free_bytes(self) -> int:
        """The bytes free on the reserve's volume."""
        return shutil.disk_usage(self.path.parent).free

    def release(self, why: str | None) -> bool:
        """Delete the reserve, giving its room to the store, and say ``why`` in the log (None: the store is being
        opened, as every time: nothing to say); whether there was one to release. A volume that takes no change (its
        device failed, it is read-only) keeps the reserve, which is said in the log: ``False``, not an error."""
        with self._lock:
            if self.size == 0 or not self.path.is_file():
                return False
            try:
                self.path.unlink(missing_ok=True)
            except OSError as exc:
                # a volume that takes no change at all (read-only, or its device failed): no room can be had here,
                # and what the caller met (the full volume) is the error to give, not this one
                logger.error(
                    "the journal %s could not release its reserve (%s): %s",
                    self.path.parent,
                    why or "the store is being opened",
                    exc.strerror or exc,
                )
                return False
        if why is None:
            return True
        self._released_for = why
        logger.warning(
            "the journal %s released its reserve of %.1f MiB (%s): the store applies the writes already "
            "acknowledged in that room; new writes are refused until the volume has room again",
            self.path.parent,
            self.size / 2**20,
            why,
        )
        return True

    def restore(self) -> bool:
        """Make the reserve if it is not in place and the volume has room for it twice over; whether it is held."""
        if self.held:
            return True
        with self._lock:
            if self.path.is_file():
                return True
            try:
                if self.free_bytes() < 2 * self.size:
                    return False
                self._allocate()
            except OSError as exc:
                if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
                    logger.warning("the journal %s could not make its reserve: %s", self.path.parent, exc)
                return False
        if self._released_for is not None:
            logger.warning(
                "the journal %s holds its reserve of %.1f MiB again (released when %s): writes are taken again",
                self.path.parent,
                self.size / 2**20,
                self._released_for,
            )
            self._released_for = None
        return True

    def _allocate(self) -> None:
        """Write the reserve under a temporary name and rename it, so that a partial one is never taken for it."""
        partial = self.path.with_name(f"{NAME}.partial")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                os.posix_fallocate(fd, 0, self.size)
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(partial, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                partial.unlink()
            raise

    def remove(self) -> None:
        """Delete the reserve: the store is closed with every record applied (an open releases it first anyway)."""
        with self._lock:
            self.path.unlink(missing_ok=True)
            self.path.with_name(f"{NAME}.partial").unlink(missing_ok=True)
