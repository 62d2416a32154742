"""The store's file: which file a ``duckdb://`` URL names, and opening it (attached to an in-memory database)."""

from __future__ import annotations

import contextlib
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final
from urllib.parse import SplitResult

import duckdb

from tams_analytics.engines.sql import quote
from tams_analytics.exceptions import StoreNotFoundError, TamsError

__all__ = ["ROW_GROUP_ROWS", "open_database", "release", "store_path"]

#: rows per row group in what a store writes (DuckDB's default is 122,880). A page of one flow reads the row groups
#: its window on ``start_ns`` falls in (zone maps skip the others) and filters every row of them by flow: an uncached
#: page of 100 took 1.02 ms of DuckDB with the default, 0.61 with 16,384 rows, 0.55 with this, 0.56 with 4,096
#: (measured); a full aggregate over the segments was no slower, the file no larger (with 4,096, 18 % larger)
ROW_GROUP_ROWS: Final = 8_192
#: database names DuckDB keeps for itself: a store file named so is attached under another name
_RESERVED = frozenset({"memory", "main", "temp", "system"})


@dataclass
class _Attached:
    """A store file attached in this process: the in-memory database it is attached to, its name there, and how many
    engines use it."""

    host: duckdb.DuckDBPyConnection
    name: str
    read_only: bool
    users: int = 1


#: every store file attached in this process, by its real path: DuckDB 1.5 and later refuse to attach one file to two
#: databases of one process ("Unique file handle conflict"), so engines of one store share one
_attached: dict[str, _Attached] = {}
_attached_lock = threading.Lock()


def open_database(
    path: str, *, read_only: bool, config: dict[str, Any], fresh: bool = False
) -> tuple[duckdb.DuckDBPyConnection, str | None]:
    """A connection to the store at ``path``, and the name of its database (None: in memory); give it back with
    :func:`release`.

    A file is attached to an in-memory database with ``ROW_GROUP_SIZE`` :data:`ROW_GROUP_ROWS`: the row group size
    of what a connection writes is an option of ``ATTACH`` only (DuckDB 1.3 neither keeps it in the file nor takes
    it from ``connect``), so every connection then uses the attached database (:meth:`Engine._new_cursor`). Row
    groups written before keep their size. Engines of one store in one process share that database (its first
    engine's ``config``); a store attached for reads only cannot be opened for writes beside it. ``fresh``: attach
    the file anew (after a storage fault: DuckDB's memory of the database is not to be trusted), closing the
    database every engine of the store used."""
    if path == ":memory:":
        return duckdb.connect(path, config=config), None
    key = os.path.realpath(path)
    with _attached_lock:
        shared = _attached.get(key)
        if shared is not None and fresh:
            del _attached[key]
            with contextlib.suppress(Exception):
                shared.host.close()
            shared = None
        if shared is not None:
            if shared.read_only and not read_only:
                raise TamsError(
                    f"the store {path} is open for reads only in this process: close that catalog to open it for writes"
                )
            shared.users += 1
            return _use(shared.host.cursor(), shared.name), shared.name
        host, name = _attach(path, read_only=read_only, config=config)
        _attached[key] = _Attached(host, name, read_only)
        return _use(host.cursor(), name), name


def release(path: str, con: duckdb.DuckDBPyConnection) -> None:
    """Give back a connection :func:`open_database` gave: close it, and the store's database once no engine uses it."""
    with contextlib.suppress(Exception):
        con.close()
    if path == ":memory:":
        return
    key = os.path.realpath(path)
    with _attached_lock:
        shared = _attached.get(key)
        if shared is None:
            return
        shared.users -= 1
        if shared.users <= 0:
            del _attached[key]
            with contextlib.suppress(Exception):
                shared.host.close()


def _use(con: duckdb.DuckDBPyConnection, name: str) -> duckdb.DuckDBPyConnection:
    try:
        con.execute(f"USE {quote(name)}")
    except BaseException:
        con.close()
        raise
    return con


def _attach(path: str, *, read_only: bool, config: dict[str, Any]) -> tuple[duckdb.DuckDBPyConnection, str]:
    """An in-memory database with the file at ``path`` attached (see :func:`open_database`), and the file's name
    there."""
    con = duckdb.connect(":memory:", config=config)
    stem = Path(path).stem or "store"
    name = stem if stem.lower() not in _RESERVED else f"{stem}_store"
    options = f"ROW_GROUP_SIZE {ROW_GROUP_ROWS}" + (", READ_ONLY" if read_only else "")
    literal = "'" + path.replace("'", "''") + "'"
    try:
        # the engine checkpoints when it closes cleanly (Engine.close); closing after a storage fault must not
        # write DuckDB's memory of the database, which such a fault leaves wrong (see .faults), into the file
        con.execute("PRAGMA disable_checkpoint_on_shutdown")
        con.execute(f"ATTACH {literal} AS {quote(name)} ({options})")
    except BaseException:
        con.close()
        raise
    return con, name


def _path_of(url: SplitResult) -> str:
    """``duckdb:///abs/file.duckdb``, ``duckdb://rel/file.duckdb`` or ``duckdb://`` (in memory)."""
    path = f"{url.netloc}{url.path}"
    return path if path else ":memory:"


def store_path(url: SplitResult, *, create: bool) -> str:
    """The database file ``url`` names. Without ``create`` it must exist: a read path never makes a store
    (a typo would otherwise open a new, empty one); with ``create`` its folder must exist (a mistyped folder
    does not become a new store either)."""
    path = _path_of(url)
    if path == ":memory:":
        return path
    where = "/" + str(Path(path).absolute()).lstrip("/")  # duckdb:////abs (four slashes) is the absolute path too
    if create:
        folder = Path(where).parent
        if not folder.is_dir():
            state = "is not a folder" if folder.exists() else "does not exist"
            raise TamsError(
                f"{folder} {state}: a new DuckDB store ({where}) goes in an existing folder (make it first, or "
                f"correct the path){_two_slashes(url, path)}"
            )
        return path
    if not Path(path).exists():
        raise StoreNotFoundError(f"no DuckDB store at {where}{_relative(url, path)}")
    return path


def _relative(url: SplitResult, path: str) -> str:
    """For a relative path naming no store, a note saying that it was taken from the working directory (named),
    and the absolute form to write instead: a notebook's kernel runs in the notebook's folder, so
    ``TAMS_STORE=duckdb://./tams-data/tams.duckdb`` set at the repository's root names ``notebooks/tams-data/...``
    there. When a folder above the working directory holds the path, that store is named."""
    if Path(path).is_absolute():
        return ""
    cwd = Path.cwd()
    note = f" (a relative path, taken from the working directory {cwd})"
    typo = _two_slashes(url, path)
    if typo:
        return f"{note}{typo}"
    shown = path.removeprefix("./")
    above = next((folder / shown for folder in cwd.parents if (folder / shown).is_file()), None)
    if above is not None:
        return f"{note}; to open {above}, name it by its absolute path: duckdb://{above}"
    return (
        f"{note}; name the store by its absolute path, duckdb:///ABSOLUTE/PATH (three slashes), e.g. "
        f'TAMS_STORE="duckdb://$PWD/{shown}" in a shell at the folder it is relative to'
    )


def _two_slashes(url: SplitResult, path: str) -> str:
    """For ``duckdb://tmp/x.duckdb`` (two slashes: a path relative to the working directory, which is easily
    a typo for an absolute one), a hint saying so."""
    if not url.netloc or url.netloc == ".":  # duckdb://./x.duckdb says "relative" on purpose
        return ""
    return f"; duckdb://{path} is a relative path (two slashes): for /{path} write duckdb:///{path} (three slashes)"
