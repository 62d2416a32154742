"""``tams-analytics upgrade``: a DuckDB store rewritten in the storage format this DuckDB writes new stores in.

DuckDB 2.0 opens a store DuckDB 1.3 made and keeps it in that format (``v1.0.0+``), whose checkpoints write the
objects' indexes whole (:mod:`tams_analytics.engines.duckdb.upkeep`). :func:`upgrade_store` rewrites it, one way
(DuckDB 1.3 cannot open the result), in steps that a SIGKILL at any moment leaves either with the old store whole
under its name or with the new one complete there:

1. the store is opened read-only, which it stays until the end: a server cannot open it meanwhile, and one that
   holds it is named and the upgrade refused (a WAL a crash left beside it is checkpointed first, as a server does
   when it opens the store);
2. ``backup``: the store is backed up into a backup repository (:func:`~tams_analytics.backup.backup_engine`);
3. ``copy``, ``checkpoint``: ``COPY FROM DATABASE`` copies its tables, indexes and views into a new file beside it
   (``tams.duckdb.upgrading``, in the current format, with the store's row group size), which is checkpointed,
   closed and renamed ``tams.duckdb.upgraded`` once complete;
4. ``verify``: the new file, opened read-only, has every table with the store's columns and rows, its indexes and
   views (each of which reads), in the current format; it is given the store's permissions (and owner, as root);
5. ``keep``: the old file gets a second name, ``tams.duckdb.v1-before-upgrade`` (a hard link: no copy), kept until
   the operator removes it;
6. ``swap``: the new file is renamed over ``tams.duckdb`` (one atomic rename).

What a run has done is written beside the store (``tams.duckdb.upgrade.json``: the old file's identity, the backup
taken, whether the new file is complete). A run that finds it, the old file unchanged, goes on from there (no
second backup; a complete new file verified again, not copied again); a partial new file is removed and copied
anew. Once the store is in the current format, a run says so and removes what an interrupted run left.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Unpack
from urllib.parse import urlsplit

import duckdb

from tams_analytics.compat import STORAGE_VERSION
from tams_analytics.engines import open_engine, redacted
from tams_analytics.engines.duckdb import Engine as DuckDBEngine
from tams_analytics.engines.duckdb.files import open_database, release
from tams_analytics.engines.duckdb.held import StoreInUseError, server_file
from tams_analytics.engines.duckdb.upkeep import FIRST_FORMAT, older_format
from tams_analytics.engines.sql import quote
from tams_analytics.exceptions import TamsError
from tams_analytics.export.destinations import S3Options
from tams_analytics.upgrade.files import Step, UpgradeFiles, fsync, keep, same_owner
from tams_analytics.upgrade.rewrite import copy_into, current_database, verify

__all__ = ["STATE_FORMAT", "Step", "UpgradeFiles", "UpgradeResult", "store_file", "upgrade_store"]

#: the format of what a run leaves beside the store (``tams.duckdb.upgrade.json``)
STATE_FORMAT: Final = "tams-analytics-upgrade/1"
#: what a store in use takes first
_STOP_FIRST: Final = "stop it (a server holds its store while it runs), then run the upgrade again"
#: free space wanted beyond the store's size for the new file (its metadata, a checkpoint's blocks)
_MARGIN: Final = 64 << 20


@dataclass(frozen=True)
class UpgradeResult:
    """What :func:`upgrade_store` did."""

    #: the store's file
    store: str
    #: its storage format before, and now
    version_before: str
    version: str
    #: False: the store was in the current format already
    upgraded: bool
    #: the old file, kept under this name until the operator removes it (None: none is kept)
    kept: str | None = None
    #: the backup taken first: its id and where it is (None: no backup, or none taken by this upgrade)
    backup_id: str | None = None
    backup: str | None = None
    #: the rows of each table, as the new file holds them
    rows: dict[str, int] = field(default_factory=dict)
    #: the whole run, and its copy (``COPY FROM DATABASE`` and the checkpoint)
    seconds: float = 0.0
    copy_seconds: float = 0.0
    bytes_before: int = 0
    bytes_after: int = 0
    #: an earlier run was interrupted: this one went on from where it stopped
    resumed: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "store": self.store,
            "upgraded": self.upgraded,
            "from": self.version_before,
            "to": self.version,
            "kept": self.kept,
            "backup": None if self.backup is None else {"id": self.backup_id, "location": self.backup},
            "rows": sum(self.rows.values()),
            "tables": self.rows,
            "seconds": round(self.seconds, 3),
            "copy_seconds": round(self.copy_seconds, 3),
            "bytes_before": self.bytes_before,
            "bytes_after": self.bytes_after,
            "resumed": self.resumed,
        }


@dataclass
class _State:
    """What a run has done, kept beside the store (``tams.duckdb.upgrade.json``)."""

    #: the old file's inode, size and modification time (ns) when the run began: a run finding others starts anew
    identity: list[int]
    version: str
    backup_id: str | None = None
    backup: str | None = None
    #: the new file is complete (``tams.duckdb.upgraded``)
    copied: bool = False
    copy_seconds: float = 0.0
    #: the old file has its kept name
    kept: bool = False

    @classmethod
    def load(cls, path: Path) -> _State | None:
        try:
            doc = json.loads(path.read_text())
            if doc.pop("format", None) != STATE_FORMAT:
                return None
            return cls(**doc)
        except (OSError, ValueError, TypeError):
            return None

    def save(self, path: Path) -> None:
        staged = path.with_name(f"{path.name}.tmp")
        staged.write_text(json.dumps({"format": STATE_FORMAT, **self.__dict__}) + "\n")
        fsync(staged)
        os.replace(staged, path)
        fsync(path.parent)


def upgrade_store(
    url: str,
    *,
    backup_to: str | None,
    on_step: Callable[[Step, str], None] | None = None,
    **s3: Unpack[S3Options],
) -> UpgradeResult:
    """Rewrite the DuckDB store at ``url`` in the storage format this DuckDB writes new stores in (see the module
    docstring), having backed it up into the repository ``backup_to`` (a folder or ``s3://bucket/prefix``; None:
    no backup). ``on_step(step, what)`` is told as each step begins.

    A store in the current format is left as it is (``upgraded`` False). Raises :class:`TamsError` (one line) when
    there is nothing to upgrade to (DuckDB 1.3), for a store that is not a DuckDB file, one another process holds,
    a volume without room for the new file, or a new file that does not verify (the store then is as it was)."""
    started = time.perf_counter()
    path = store_file(url)
    files = UpgradeFiles(path)
    tell = on_step or (lambda step, what: None)
    with contextlib.ExitStack() as stack:
        engine = stack.enter_context(_opened(url, path))
        version = _version(engine)
        if not older_format(version):
            for leftover in (*files.leftovers(), *files.staged(), files.state):
                leftover.unlink(missing_ok=True)
            kept = files.kept_found()
            size = path.stat().st_size
            return UpgradeResult(
                str(path),
                version,
                version,
                False,
                kept=None if kept is None else str(kept),
                seconds=_since(started),
                bytes_before=size,
                bytes_after=size,
            )
        if files.wal.is_file() and files.wal.stat().st_size > 0:
            stack.close()
            _settle_wal(path)
            engine = stack.enter_context(_opened(url, path))
        return _upgrade(engine, url, files, backup_to, tell, started, s3)
    raise AssertionError("unreachable")  # pragma: no cover


def _upgrade(
    engine: DuckDBEngine,
    url: str,
    files: UpgradeFiles,
    backup_to: str | None,
    tell: Callable[[Step, str], None],
    started: float,
    s3: S3Options,
) -> UpgradeResult:
    """The steps, on the store opened read-only (``engine``)."""
    version = _version(engine)
    kept = files.kept(version)
    identity = _identity(files.store)
    state = _State.load(files.state)
    resumed = state is not None and state.identity == identity
    if state is None or not resumed:
        for leftover in files.leftovers():
            leftover.unlink(missing_ok=True)
        state = _State(identity, version)
        state.save(files.state)
    if kept.exists() and not (state.kept or os.path.samefile(kept, files.store)):
        raise TamsError(
            f"{kept} is in the way (an old file an earlier upgrade kept?): move or remove it, then run again"
        )
    if state.backup is None and backup_to is not None:
        from tams_analytics.backup import backup_engine

        tell(Step.BACKUP, f"backing the store up into {backup_to}")
        backup = backup_engine(engine, backup_to, store=redacted(url), **s3)
        state.backup_id, state.backup = backup.manifest.id, backup.location
        state.save(files.state)
    con = engine.connection()
    database = current_database(con)
    if not (state.copied and files.ready.is_file()):
        for leftover in files.leftovers():
            leftover.unlink(missing_ok=True)
        _room_for(files)
        copy_started = time.perf_counter()
        copy_into(con, database, files, tell)
        state.copied, state.copy_seconds = True, time.perf_counter() - copy_started
        state.save(files.state)
    tell(Step.VERIFY, f"checking {files.ready} against the store")
    rows = verify(con, database, files.ready)
    same_owner(files.store, files.ready)
    tell(Step.KEEP, f"keeping the old file as {kept}")
    if not kept.exists():
        keep(files.store, kept)
    state.kept = True
    state.save(files.state)
    tell(Step.SWAP, f"moving the new file to {files.store}")
    os.replace(files.ready, files.store)
    fsync(files.store.parent)
    files.state.unlink(missing_ok=True)
    return UpgradeResult(
        str(files.store),
        version,
        STORAGE_VERSION,
        True,
        kept=str(kept),
        backup_id=state.backup_id,
        backup=state.backup,
        rows=rows,
        seconds=_since(started),
        copy_seconds=state.copy_seconds,
        bytes_before=kept.stat().st_size,
        bytes_after=files.store.stat().st_size,
        resumed=resumed,
    )


def store_file(url: str) -> Path:
    """The DuckDB file ``url`` names, which must exist; refused where this DuckDB writes no newer format."""
    parts = urlsplit(url)
    if parts.scheme.lower() != "duckdb":
        raise TamsError(f"{redacted(url)} is not a DuckDB store: upgrade rewrites a DuckDB file (duckdb:///PATH)")
    if not older_format(FIRST_FORMAT):
        raise TamsError(
            f"nothing to upgrade to: DuckDB {duckdb.__version__} writes stores in storage format {STORAGE_VERSION}, "
            "the oldest there is; the upgrade runs with the current dependency set (DuckDB 2.0: constraints.txt)"
        )
    from tams_analytics.engines.duckdb.files import store_path

    found = store_path(parts, create=False)
    if found == ":memory:":
        raise TamsError("an in-memory store has no file to upgrade: name the store's file (duckdb:///PATH)")
    return Path(found).absolute()


@contextlib.contextmanager
def _opened(url: str, path: Path) -> Iterator[DuckDBEngine]:
    """The store opened read-only (no other process may write it meanwhile), or a refusal naming who holds it: the
    process holding its lock, or a server that announced itself beside it and runs (between two of its store processes
    the lock is free a moment)."""
    announced = _running_server(path)
    if announced is not None:
        url_, pid = announced
        raise TamsError(f"the store {path} is in use by the TAMS server at {url_} (PID {pid}): {_STOP_FIRST}")
    try:
        engine = open_engine(url, read_only=True)
    except StoreInUseError as exc:
        holder = f"the TAMS server at {exc.url} (PID {exc.pid})" if exc.url else f"another process (PID {exc.pid})"
        raise TamsError(f"the store {path} is in use by {holder}: {_STOP_FIRST}") from None
    try:
        assert isinstance(engine, DuckDBEngine)
        yield engine
    finally:
        engine.close()


def _running_server(path: Path) -> tuple[str, int] | None:
    """The URL and process id a running server left beside the store (None: none, or the file is stale)."""
    try:
        record = json.loads(server_file(path).read_text())
        url, pid = str(record["url"]), int(record["pid"])
    except (OSError, ValueError, TypeError, KeyError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:  # another user's process: alive
        pass
    return url, pid


def _version(engine: DuckDBEngine) -> str:
    found = engine.storage_format()
    assert found is not None  # a file's database has a format
    return found.version


def _settle_wal(path: Path) -> None:
    """Checkpoint the WAL beside the store (a server that stopped without closing it left it), as a server opening
    it does: no WAL may be left beside the store when the new file takes its name."""
    try:
        con, database = open_database(str(path), read_only=False, config={})
    except duckdb.IOException as exc:
        from tams_analytics.engines.duckdb.held import held_store_error

        held = held_store_error(str(path), exc)
        if held is None:
            raise
        raise TamsError(f"the store {path} is in use by another process (PID {held.pid}): {_STOP_FIRST}") from None
    try:
        con.execute(f"CHECKPOINT {quote(str(database))}")
    except duckdb.Error as exc:
        raise TamsError(f"the WAL beside {path} could not be checkpointed: {' '.join(str(exc).split())}") from exc
    finally:
        release(str(path), con)


def _identity(path: Path) -> list[int]:
    st = path.stat()
    return [st.st_ino, st.st_size, st.st_mtime_ns]


def _room_for(files: UpgradeFiles) -> None:
    """Refuse, before writing it, a new file the store's volume has no room for (about the store's size)."""
    need = files.store.stat().st_size + _MARGIN
    free = shutil.disk_usage(files.store.parent).free
    if free < need:
        raise TamsError(
            f"the new file needs about {need >> 20:,} MiB beside the store, and {files.store.parent} has "
            f"{free >> 20:,} MiB free: "
            "make room (the old file is kept until you remove it, so the volume holds both), then run again"
        )


def _since(started: float) -> float:
    return time.perf_counter() - started
