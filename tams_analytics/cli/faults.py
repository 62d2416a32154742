"""What stops a command, said in one line: the library's own errors in their words, and every I/O failure (an
``OSError``, pyarrow's, a DuckDB ``IOException`` and the failed commits that wrap one) as its reason and the path it
met, with the free space of that path's volume when the volume is full (``ENOSPC``, ``EDQUOT``). The command line's
``main`` prints it and exits 2; anything else is a bug and keeps its traceback.

>>> said_of(FileNotFoundError(2, "No such file or directory", "/backups/x"))
'no such file or directory: /backups/x'
>>> said_of(ValueError("a bug")) is None
True
"""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from tams_analytics.disk_space import usable_size
from tams_analytics.display import mib
from tams_analytics.exceptions import TamsError, said_on_cli

__all__ = ["IOFailure", "io_failure", "said_of", "volume_of"]

#: the reasons of a full volume
NO_SPACE: Final = frozenset({errno.ENOSPC, errno.EDQUOT})
#: the reasons DuckDB says in words (its messages carry ``strerror``, not the errno), most telling first
_REASONS: Final = tuple(
    (code, os.strerror(code))
    for code in (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EIO, errno.ENOENT)
)


@dataclass(frozen=True)
class IOFailure:
    """An I/O failure: its errno (None: not known), its reason in words, the path it met (None: not said), and
    whether it met it writing."""

    errno: int | None
    reason: str
    path: str | None
    writing: bool = False

    @property
    def no_space(self) -> bool:
        return self.errno in NO_SPACE

    def said(self) -> str:
        """``no space left on device writing /backups/x/segments/data_0.parquet``."""
        reason = self.reason[:1].lower() + self.reason[1:]
        if self.path is None:
            return reason
        return f"{reason} writing {self.path}" if self.writing else f"{reason}: {self.path}"


def _duckdb_failure(exc: BaseException) -> IOFailure | None:
    """The I/O failure a DuckDB error reports (:func:`~tams_analytics.engines.duckdb.faults.store_fault`), else
    None."""
    from tams_analytics.engines.duckdb.faults import store_fault

    fault = store_fault(exc)
    if fault is None:
        return None
    text = str(exc)
    code = next((c for c, reason in _REASONS if reason in text), None)
    path = os.path.abspath(fault.file) if fault.file else None
    if code is None:
        return IOFailure(None, fault.cause.removeprefix("IO Error: "), None)
    writing = any(w in text for w in ("Could not write", "Could not extend", "Could not fsync", "Failed to commit"))
    return IOFailure(code, os.strerror(code), path, writing=writing)


def _failure(exc: BaseException) -> IOFailure | None:
    if isinstance(exc, OSError):
        if exc.errno is None and not exc.strerror:  # pyarrow's, say: its message in one line
            text = " ".join(str(exc).split())
            return IOFailure(None, text or type(exc).__name__, None)
        reason = os.strerror(exc.errno) if exc.errno else str(exc.strerror)
        return IOFailure(exc.errno, reason, os.fspath(exc.filename) if exc.filename else None)
    return _duckdb_failure(exc)


def io_failure(exc: BaseException) -> IOFailure | None:
    """The I/O failure behind ``exc``: ``exc`` itself, or what it was raised from (its cause, or the exception it
    was raised while handling, unless that was suppressed: ``raise ... from None``), the first found; else None."""
    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    while todo:
        current = todo.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        found = _failure(current)
        if found is not None:
            return found
        if current.__cause__ is not None:
            todo.append(current.__cause__)
        elif current.__context__ is not None and not current.__suppress_context__:
            todo.append(current.__context__)
    return None


def volume_of(path: str) -> str:
    """The free space of the volume holding ``path`` (or its nearest existing folder), in words.

    >>> volume_of("/").startswith("the volume at / has ")
    True
    """
    where = Path(path)
    while not where.exists() and where != where.parent:
        where = where.parent
    mount = where if where.is_dir() else where.parent
    while not os.path.ismount(mount) and mount != mount.parent:
        mount = mount.parent
    size, free = usable_size(os.statvfs(mount))
    return f"the volume at {mount} has {mib(free)} free of {mib(size)}"


def said_of(exc: BaseException) -> str | None:
    """``exc`` in one line for the command line (see the module docstring); None when it is neither the library's
    error nor an I/O failure."""
    failure = io_failure(exc)
    if isinstance(exc, TamsError):
        line = " ".join(said_on_cli(exc).split())
    elif failure is not None:
        line = failure.said()
    else:
        return None
    if failure is not None and failure.no_space and failure.path is not None:
        try:
            line += f" ({volume_of(failure.path)})"
        except OSError:  # the volume cannot be read either: the reason is said
            pass
    return line
