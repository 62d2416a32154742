"""A DuckDB store another process holds: who holds it, and the ways in while it does.

DuckDB lets one process at a time open a database file (even ``read_only=True`` fails while another process
has it open for writing) and says only ``IOException: Could not set lock on file "...": Conflicting lock is
held in <exe> (PID n)``. The usual holder is ``tams-analytics serve``, which leaves its public URL beside
the store (``<store>.server.json``, :func:`announce` and :func:`withdraw`) while it runs.
:func:`explain_held_store` turns the lock error into a :class:`StoreInUseError` naming the holder (PID, and
the server's URL when that file names it) and the ways in: the server's own API through ``tams+http://``, a
Parquet export made through it, or stopping it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

import duckdb

from tams_analytics.exceptions import TamsError

__all__ = [
    "SERVER_FILE_SUFFIX",
    "StoreInUseError",
    "announce",
    "explain_held_store",
    "held_store_error",
    "server_file",
    "withdraw",
]

logger = logging.getLogger(__name__)

#: beside ``tams.duckdb``, a running server's ``tams.duckdb.server.json``
SERVER_FILE_SUFFIX: Final = ".server.json"
_LOCK: Final = re.compile(
    r'Could not set lock on file "(?P<file>[^"]*)": Conflicting lock is held in (?P<exe>.*?) \(PID (?P<pid>\d+)\)'
)


class StoreInUseError(TamsError):
    """Another process holds the DuckDB store (see :func:`held_store_error`)."""

    def __init__(self, message: str, *, pid: int, url: str | None) -> None:
        super().__init__(message)
        self.pid = pid
        self.url = url


def server_file(store: str | os.PathLike[str]) -> Path:
    """Where a server serving ``store`` leaves its URL."""
    return Path(f"{os.fspath(store)}{SERVER_FILE_SUFFIX}")


def announce(store: str | os.PathLike[str], url: str, processes: dict[str, Any] | None = None) -> Path:
    """Leave ``url`` (and this process's id, and those of its children: ``processes``, e.g. the server's store process
    that holds the file) beside ``store``: a server serving it has started."""
    path = server_file(store)
    record: dict[str, Any] = {"url": url, "pid": os.getpid(), "started": dt.datetime.now(dt.UTC).isoformat()}
    if processes:
        record["processes"] = processes
    # written beside it, then moved over it: a reader (``backup`` looking for the server, the lock error's advice)
    # finds the old record or the new one whole, never one being rewritten (the supervisor announces again whenever it
    # starts a process anew)
    staged = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    staged.write_text(json.dumps(record) + "\n")
    os.replace(staged, path)
    return path


def withdraw(store: str | os.PathLike[str]) -> None:
    """Remove what :func:`announce` left (the server has stopped cleanly); a file another process left stays."""
    path = server_file(store)
    with contextlib.suppress(OSError, ValueError):
        if json.loads(path.read_text()).get("pid") == os.getpid():
            path.unlink()


def _announced(store: str, pid: int) -> tuple[str, int] | None:
    """The URL the server with ``pid`` (or whose store process has ``pid``) left beside ``store``, and the server's
    own process id (a file left by another process is stale)."""
    try:
        record: Any = json.loads(server_file(store).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or not isinstance(record.get("url"), str):
        return None
    children = record.get("processes")
    holder = children.get("store") if isinstance(children, dict) else None
    server = record.get("pid")
    if pid not in (server, holder) or not isinstance(server, int):
        return None
    return str(record["url"]), server


def held_store_error(store: str, exc: BaseException) -> StoreInUseError | None:
    """The helpful error for DuckDB's lock error ``exc`` on ``store`` (None when ``exc`` is something else)."""
    m = _LOCK.search(str(exc))
    if m is None:
        return None
    pid = int(m.group("pid"))
    found = _announced(store, pid)
    url = found[0] if found is not None else None
    if found is not None:
        url, pid = found  # the server's own process (its store process holds the lock)
        api = f"tams+{url.rstrip('/')}"
        holder = f"the TAMS server at {url} (PID {pid})"
    else:
        api = "tams+http://HOST:PORT"
        holder = f"another process (PID {pid}, {m.group('exe')}), e.g. a TAMS server"
    ways = (
        f'read it through the server\'s API: ta.connect("{api}") or --store {api}; '
        f"or export it to Parquet through the server (tams-analytics export --store {api} --to DIR) and read that; "
        "or stop the server and open the file"
    )
    return StoreInUseError(f"the DuckDB store {store} is in use by {holder}: {ways}", pid=pid, url=url)


@contextlib.contextmanager
def explain_held_store(store: str) -> Iterator[None]:
    """Turn DuckDB's lock error on ``store`` raised in the block into a :class:`StoreInUseError`."""
    try:
        yield
    except duckdb.IOException as exc:
        error = held_store_error(store, exc)
        if error is None:
            raise
        raise error from exc
