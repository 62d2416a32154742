"""Early writeback: a checkpoint's writes sent to the disk as DuckDB makes them, not all at its closing ``fsync``.

A checkpoint writes the store's file through the page cache and syncs it at its end, so the disk receives its
hundreds of MiB (an aged store's: 730 MiB at 8 M segments) at once. The journal's ``fdatasync``, which every ``201``
waits for, is then a flush of the disk's cache (no FUA on a virtio disk with a write-back cache) queued behind all of
it: 283 ms beside the 8 M store's checkpoint, 2.8 ms alone. While the journal's applier checkpoints,
:func:`early_writeback` asks the kernel every few milliseconds to start writing the file's dirty pages
(``sync_file_range(SYNC_FILE_RANGE_WRITE)``: it starts the writes, waits for none, and changes nothing DuckDB sees:
its own ``fsync`` still decides what is durable), so each flush waits for a few milliseconds of the checkpoint's writes.

Linux only; elsewhere (or if the call is refused) it does nothing.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import logging
import os
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Final

logger = logging.getLogger("tams_analytics.engines.duckdb")

__all__ = ["EVERY_S", "early_writeback"]

#: how often the checkpoint's dirty pages are sent on (each call costs about 30 µs when none are dirty)
EVERY_S: Final = 0.01
_SYNC_FILE_RANGE_WRITE: Final = 2


def _sync_file_range() -> Callable[[int], int] | None:
    """``fd -> 0 or -1``: start writing every dirty page of ``fd``'s file; None where the call does not exist."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        call = libc.sync_file_range
    except (OSError, AttributeError):
        return None
    call.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    call.restype = ctypes.c_int
    return lambda fd: int(call(fd, 0, 0, _SYNC_FILE_RANGE_WRITE))


_CALL: Final = _sync_file_range()


@contextlib.contextmanager
def early_writeback(path: str | Path, every_s: float = EVERY_S) -> Iterator[None]:
    """For the block (a checkpoint of the store at ``path``), start the writes of the file's dirty pages every
    ``every_s`` from a thread of its own (the call releases the GIL)."""
    if _CALL is None:
        yield
        return
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # no file yet: nothing to send on
        yield
        return
    done = threading.Event()

    def run() -> None:
        while not done.is_set():
            if _CALL(fd) != 0:
                logger.debug("early writeback of %s refused (errno %s): left to DuckDB", path, ctypes.get_errno())
                return
            done.wait(every_s)

    thread = threading.Thread(target=run, name="tams-checkpoint-writeback", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()
        os.close(fd)
