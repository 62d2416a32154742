"""An append-only, synced log of records, each numbered: what a journaled write is durable in before it is
acknowledged (see :mod:`tams_analytics.journal`).

The log is a folder of segment files, each named by the number of its first record. A file begins with a header (the
format and the identity of the store the log belongs to); each record is ``length`` (4 bytes), ``crc32`` of the rest
(4 bytes), its number (8 bytes) and its payload, written with one ``write`` and made durable with ``fdatasync`` before
:meth:`Log.append` returns. Opening the log reads every record back; a torn or corrupt tail (a write cut short by a
crash or a full volume) is cut off, as it was never acknowledged. :meth:`Log.forget_through` removes the files whose
records are all applied elsewhere.

A write that fails (``ENOSPC``, ``EIO``) is cut back off the file before the error is raised, so a refused record is
never read back; when even that fails, the log refuses every write until it is opened again.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import logging
import os
import struct
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from tams_analytics.exceptions import (
    STORE_VOLUME_FULL,
    InsufficientStorageError,
    StoreUnavailableError,
    TamsError,
)

__all__ = ["Log", "LogError", "Record"]

logger = logging.getLogger(__name__)

_MAGIC: Final = b"TAMSJNL1"
_HEADER: Final = struct.Struct("<8s36s")
_RECORD: Final = struct.Struct("<IIQ")
#: a segment file is closed and the next begun once it holds this many bytes
SEGMENT_BYTES: Final = 64 << 20
#: the largest record the log takes (a registration batch's rows are far below it)
MAX_RECORD_BYTES: Final = 256 << 20
_SUFFIX: Final = ".log"


class LogError(TamsError):
    """The log cannot be used as it is (it belongs to another store, or a record is missing from its middle)."""


@dataclass(frozen=True)
class Record:
    seq: int
    payload: bytes


def _no_space(exc: OSError) -> bool:
    return exc.errno in (errno.ENOSPC, errno.EDQUOT)


class Log:
    """The log in ``folder`` (made if missing) of the store ``store_id`` (a UUID): records numbered from 1 on."""

    def __init__(self, folder: Path, store_id: str) -> None:
        if len(store_id.encode()) != 36:
            raise ValueError(f"a store id is a UUID's 36 characters, not {store_id!r}")
        self.folder = folder
        self.store_id = store_id
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._file: Path | None = None
        self._size = 0
        #: the number of the last record written (0: none yet)
        self.last = 0
        #: why the log refuses writes until it is opened again (None: it takes them)
        self.broken: str | None = None
        #: told how long each record took to write and sync (a new file begun for it included), in seconds (None:
        #: nobody asks): what every write acknowledged from the log waits for, so a slow volume shows (the server's
        #: ``tams_journal_sync_seconds``)
        self.observe_sync: Callable[[float], None] | None = None
        folder.mkdir(parents=True, exist_ok=True)

    # -- reading, at open ----------------------------------------------------------------------------------------
    def files(self) -> list[Path]:
        """The segment files, oldest first."""
        return sorted(self.folder.glob(f"*{_SUFFIX}"), key=lambda p: int(p.stem))

    def replay(self, after: int) -> Iterator[Record]:
        """Every record numbered above ``after``, in order, cutting a torn tail off the newest file; afterwards the
        log appends after the last record read (call once, before :meth:`append`)."""
        files = self.files()
        expected: int | None = None
        for i, path in enumerate(files):
            newest = i == len(files) - 1
            for record in self._read(path, cut_tail=newest):
                if expected is not None and record.seq != expected:
                    raise LogError(f"the journal {self.folder} lacks records {expected} to {record.seq - 1}")
                expected = record.seq + 1
                self.last = record.seq
                if record.seq > after:
                    yield record
        first = int(files[0].stem) if files else None
        if first is not None and first > after + 1 and self.last > after:
            raise LogError(
                f"the journal {self.folder} begins at record {first}, but the store holds only those up to {after}: "
                "it was written by a later copy of this store (restored from a backup since?); move it aside to open "
                "the store without it"
            )
        self.last = max(self.last, after)

    def _read(self, path: Path, *, cut_tail: bool) -> Iterator[Record]:
        with path.open("rb") as f:
            head = f.read(_HEADER.size)
            if len(head) < _HEADER.size:
                if cut_tail:  # made by a crash before its header was durable: no record can be in it
                    path.unlink()
                    return
                raise LogError(f"the journal file {path} has no header")
            magic, store = _HEADER.unpack(head)
            if magic != _MAGIC:
                raise LogError(f"{path} is not a tams-analytics journal file")
            if store.decode() != self.store_id:
                raise LogError(
                    f"the journal {self.folder} belongs to another store ({store.decode()}, not {self.store_id}): "
                    "move it aside to open the store without it"
                )
            good = f.tell()
            while True:
                fixed = f.read(_RECORD.size)
                if not fixed:
                    return
                torn = len(fixed) < _RECORD.size
                if not torn:
                    length, crc, seq = _RECORD.unpack(fixed)
                    payload = f.read(length) if length <= MAX_RECORD_BYTES else b""
                    torn = len(payload) != length or zlib.crc32(payload, zlib.crc32(fixed[8:])) != crc
                if torn:
                    if not cut_tail:
                        raise LogError(f"the journal file {path} is damaged after byte {good}")
                    logger.warning("the journal %s ended in a record cut short at byte %s: cut off", path, good)
                    f.close()
                    with path.open("r+b") as cut:
                        cut.truncate(good)
                        os.fsync(cut.fileno())
                    return
                good = f.tell()
                yield Record(seq, payload)

    # -- writing -------------------------------------------------------------------------------------------------
    def append(self, payload: bytes) -> int:
        """Write ``payload`` as the next record and make it durable; its number. A full volume raises
        :class:`~tams_analytics.exceptions.InsufficientStorageError`, any other failure
        :class:`~tams_analytics.exceptions.StoreUnavailableError`; either way the record is not in the log."""
        if len(payload) > MAX_RECORD_BYTES:
            raise TamsError(f"a journal record of {len(payload)} bytes is over the {MAX_RECORD_BYTES} allowed")
        with self._lock:
            if self.broken is not None:
                raise StoreUnavailableError(f"the journal {self.folder} takes no writes: {self.broken}")
            seq = self.last + 1
            fixed = _RECORD.pack(len(payload), 0, seq)
            crc = zlib.crc32(payload, zlib.crc32(fixed[8:]))
            record = _RECORD.pack(len(payload), crc, seq) + payload
            began = time.perf_counter()
            try:
                fd = self._writable(seq)
                written = os.write(fd, record)
                if written != len(record):
                    raise OSError(errno.ENOSPC, f"wrote {written} of {len(record)} bytes")
                os.fdatasync(fd)
            except OSError as exc:
                self._cut_back()
                where = self._file or self.folder
                if _no_space(exc):
                    raise InsufficientStorageError(
                        f"{STORE_VOLUME_FULL} (no space left on device writing {where}): the write was "
                        "refused and nothing of it was stored"
                    ) from exc
                raise StoreUnavailableError(
                    f"the journal {where} could not be written ({exc.strerror or exc}): the write was refused"
                ) from exc
            self._size += len(record)
            self.last = seq
            took = time.perf_counter() - began
        observe = self.observe_sync
        if observe is not None:
            observe(took)
        return seq

    def _writable(self, seq: int) -> int:
        """The file descriptor to append record ``seq`` to: the newest file, or a new one when it is full."""
        if self._fd is not None and self._size < SEGMENT_BYTES:
            return self._fd
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        files = self.files()
        newest = files[-1] if files else None
        if newest is not None and newest.stat().st_size < SEGMENT_BYTES:
            path = newest
        else:
            path = self.folder / f"{seq:020d}{_SUFFIX}"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            size = os.fstat(fd).st_size
            if size == 0:
                os.write(fd, _HEADER.pack(_MAGIC, self.store_id.encode()))
                os.fsync(fd)
                _sync_folder(self.folder)
                size = _HEADER.size
        except BaseException:
            os.close(fd)
            with contextlib.suppress(OSError):
                if os.stat(path).st_size < _HEADER.size:
                    path.unlink()
            raise
        self._fd, self._file, self._size = fd, path, size
        return fd

    def _cut_back(self) -> None:
        """After a failed append: cut the file back to the records written before (else refuse every write)."""
        fd, size = self._fd, self._size
        if fd is None:
            return
        try:
            os.ftruncate(fd, size)
            os.fsync(fd)
        except OSError as exc:
            self.broken = f"a failed write could not be cut back off {self._file} ({exc.strerror or exc})"
            logger.error("the journal %s: %s; it takes no writes until the store is opened again", self.folder, exc)

    def forget_through(self, seq: int) -> int:
        """Remove the files whose records are all numbered ``seq`` or below (applied elsewhere, durably); how many."""
        with self._lock:
            files = self.files()
            removed = 0
            for path, after in itertools.pairwise(files):
                if int(after.stem) - 1 <= seq and path != self._file:
                    path.unlink(missing_ok=True)
                    removed += 1
            if self._file is not None and self.last <= seq and self._size >= SEGMENT_BYTES:
                self._close_file()
                self._file.unlink(missing_ok=True)
                removed += 1
            return removed

    def clear(self, applied: int) -> None:
        """Remove every file, all of whose records are applied (``applied`` is the last): at a clean close."""
        with self._lock:
            if self.last > applied:
                raise LogError(f"the journal {self.folder} holds records up to {self.last}, applied only to {applied}")
            self._close_file()
            for path in self.files():
                path.unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                self.folder.rmdir()

    def close(self) -> None:
        with self._lock:
            self._close_file()

    def _close_file(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
        self._fd = None

    def size(self) -> int:
        """The bytes the log's files take."""
        return sum(p.stat().st_size for p in self.files() if p.exists())


def _sync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
