"""Taking a backup: one consistent copy of a store into a repository, with its manifest, then retention.

Who makes the copy depends on who holds the store:

* a DuckDB store a server holds (``tams-analytics serve`` locks the file and leaves its URL beside it, or
  ``server`` names it): the server, which copies it in one read transaction while it goes on writing
  (:mod:`~tams_analytics.backup.snapshot`) and sends the copy (:mod:`~tams_analytics.backup.remote`);
* a DuckDB store nobody holds: this process, the same way, with the file opened read-only;
* a store of another engine (VAST): this process, every table read inside one transaction of the engine (one
  snapshot where the engine's transactions give one).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Unpack
from urllib.parse import urlsplit, urlunsplit

import pyarrow.parquet as pq

from tams_analytics import __version__
from tams_analytics.backup.manifest import Manifest, TableEntry, columns_of
from tams_analytics.backup.reader import table_files
from tams_analytics.backup.remote import server_snapshot
from tams_analytics.backup.repository import BackupRef, Repository
from tams_analytics.backup.snapshot import Snapshot, duckdb_engine, snapshot_duckdb, store_name
from tams_analytics.clock import utcnow
from tams_analytics.display import mib
from tams_analytics.engines import open_engine, redacted
from tams_analytics.engines.base import Engine
from tams_analytics.engines.duckdb.held import StoreInUseError
from tams_analytics.exceptions import InsufficientStorageError, TamsError, UnsupportedError
from tams_analytics.export.destinations import S3Options
from tams_analytics.schema import TABLES

__all__ = ["READ_ONLY_SCHEMES", "BackupResult", "backup_engine", "backup_store", "read_only", "snapshot_engine"]

logger = logging.getLogger(__name__)

#: engines that open a store read-only when asked (the others only read, or refuse the option)
READ_ONLY_SCHEMES: Final = ("duckdb", "vast")


def read_only(url: str) -> dict[str, Any]:
    """The options that open the store ``url`` names for reading only (a DuckDB file then cannot be held by a
    server meanwhile), where its engine takes them.

    >>> read_only("duckdb:///srv/tams.duckdb"), read_only("tams+http://127.0.0.1:8000")
    ({'read_only': True}, {})
    """
    return {"read_only": True} if urlsplit(url).scheme.lower() in READ_ONLY_SCHEMES else {}


@dataclass(frozen=True)
class BackupResult:
    manifest: Manifest
    #: where the backup is (its folder in the repository)
    location: str
    #: the whole backup: the copy, checksums, upload
    seconds: float
    #: backups retention removed afterwards
    expired: list[BackupRef] = field(default_factory=list)

    def to_json(self) -> dict[str, object]:
        m = self.manifest
        return {
            "backup": m.id,
            "location": self.location,
            "store": m.store,
            "engine": m.engine,
            "method": m.method,
            "created": m.to_json()["created"],
            "rows": m.rows,
            "bytes": m.size_bytes,
            "seconds": round(self.seconds, 3),
            "copy_seconds": round(m.seconds, 3),
            "tables": {name: t.rows for name, t in m.tables.items()},
            "expired": [b.id for b in self.expired],
        }


def snapshot_engine(engine: Engine, folder: Path) -> Snapshot:
    """Every table of ``engine``'s store into ``folder/<table>/data_0.parquet``, read inside one transaction of
    the engine (for engines other than DuckDB, whose copy :func:`snapshot_duckdb` makes natively)."""
    caps = engine.capabilities
    if caps.tables is not None or not caps.complete_listings:
        raise UnsupportedError(
            f"the {engine.name} engine does not read every row of every table (it reads a service's API): back up "
            "the store itself"
        )
    started = time.perf_counter()
    rows: dict[str, int] = {}
    with engine.transaction() if caps.transactions else contextlib.nullcontext():
        created = utcnow()
        for name in TABLES:
            table = engine.query(name)
            (folder / name).mkdir(parents=True, exist_ok=True)
            pq.write_table(table, folder / name / "data_0.parquet", compression="zstd")
            rows[name] = table.num_rows
    return Snapshot(created, rows, time.perf_counter() - started)


@dataclass(frozen=True)
class _Copy:
    snapshot: Snapshot
    engine: str
    store: str
    method: str
    server: str | None = None
    #: the server's object grace period (a copy made by a server; a direct one reads ``TAMS_OBJECT_GRACE_S``)
    object_grace_s: int | None = field(default_factory=lambda: _grace_from_environment())


def _copy(store: str | None, server: str | None, folder: Path) -> _Copy:
    """Make the copy into ``folder`` (see the module docstring)."""
    if server is not None:
        info = server_snapshot(server, folder)
        snap = Snapshot(info.created, dict(info.rows), info.seconds)
        return _Copy(snap, info.engine, info.store, "server", redacted(server), info.object_grace_s)
    if store is None:
        said = "no store: give --store URL or --server URL"
        raise TamsError("no store: give the store's URL or the server's", cli=said)
    shown = store_name(store)
    if urlsplit(store).scheme.lower() == "duckdb":
        try:
            engine = open_engine(store, read_only=True)
        except StoreInUseError as exc:
            if exc.url is None:
                raise
            logger.info("%s is held by the server at %s: it makes the copy", shown, exc.url)
            info = server_snapshot(exc.url, folder)
            snap = Snapshot(info.created, dict(info.rows), info.seconds)
            return _Copy(snap, info.engine, shown, "server", exc.url, info.object_grace_s)
        try:
            return _Copy(snapshot_duckdb(engine, folder), engine.name, shown, "direct")
        finally:
            engine.close()
    engine = open_engine(store, **read_only(store))
    try:
        return _copy_engine(engine, folder, shown)
    finally:
        engine.close()


def _copy_engine(engine: Engine, folder: Path, shown: str) -> _Copy:
    try:
        duckdb_engine(engine)
    except UnsupportedError:
        return _Copy(snapshot_engine(engine, folder), engine.name, shown, "direct")
    return _Copy(snapshot_duckdb(engine, folder), engine.name, shown, "direct")


def backup_store(
    to: str,
    *,
    store: str | None = None,
    server: str | None = None,
    keep: int | None = None,
    **s3: Unpack[S3Options],
) -> BackupResult:
    """Back ``store`` up into the repository ``to`` (a folder or ``s3://bucket/prefix``): a new backup folder with
    the tables as Parquet and ``backup.json``; then, with ``keep``, remove all but the ``keep`` newest backups.

    ``server`` (the URL of the server holding a DuckDB store) has that server make the copy; without it a DuckDB
    store a server holds is copied by that server too (found by the URL it leaves beside the store).
    """
    return _backup(Repository.open(to, **s3), lambda folder: _copy(store, server, folder), keep)


def backup_engine(
    engine: Engine, to: str, *, store: str | None = None, keep: int | None = None, **s3: Unpack[S3Options]
) -> BackupResult:
    """:func:`backup_store` of the store an engine this process opened holds (``store``: its name in the manifest,
    without credentials; default: the engine's URL, redacted, a DuckDB file by its absolute path)."""
    shown = store or store_name(urlunsplit(engine.url))
    return _backup(Repository.open(to, **s3), lambda folder: _copy_engine(engine, folder, shown), keep)


def _backup(repo: Repository, copy: Callable[[Path], _Copy], keep: int | None) -> BackupResult:
    if keep is not None and keep < 1:
        raise TamsError("keep at least one backup", cli="--keep must be 1 or more")
    started = time.perf_counter()
    backup_id = repo.new_id()
    with repo.staging(backup_id) as staged:
        try:
            made = copy(staged)
            manifest = Manifest(
                id=backup_id,
                created=made.snapshot.created,
                store=made.store,
                engine=made.engine,
                method=made.method,
                server=made.server,
                tables=_tables(staged, made.snapshot.rows),
                files={},
                tool=f"tams-analytics {__version__}",
                seconds=made.snapshot.seconds,
                object_grace_s=made.object_grace_s,
            )
            manifest = repo.publish(backup_id, staged, manifest)
        except BaseException as exc:
            if repo.local:  # a backup that failed leaves no folder behind (on S3: an unfinished one, expire removes it)
                shutil.rmtree(staged, ignore_errors=True)
            if isinstance(exc, InsufficientStorageError):
                raise InsufficientStorageError(f"{exc}{_newest_size(repo)}") from exc
            raise
    took = time.perf_counter() - started
    expired = repo.expire(keep) if keep else []
    location = f"{repo.url}/{backup_id}"
    logger.info("backup %s: %s rows, %s bytes in %.1f s", location, manifest.rows, manifest.size_bytes, took)
    return BackupResult(manifest, location, took, expired)


def _newest_size(repo: Repository) -> str:
    """How large the newest complete backup of ``repo`` is, in words: about what a copy needs ("" when none is)."""
    try:
        newest = next((b for b in reversed(repo.backups()) if b.manifest is not None), None)
    except TamsError:
        return ""
    if newest is None or newest.manifest is None:
        return ""
    return f" (the newest backup in {repo.url}, {newest.id}, holds {mib(newest.manifest.size_bytes)})"


def _tables(folder: Path, rows: dict[str, int]) -> dict[str, TableEntry]:
    """Each table of the copy in ``folder``, checked complete: its files hold the rows the copy counted (a copy
    sent by a server that stopped may end between two files, where its tar looks whole)."""
    out = {}
    for name in TABLES:
        files = table_files(folder, name)
        if not files:
            raise TamsError(f"the copy is incomplete: it holds no {name} table")
        found = sum(pq.read_metadata(f).num_rows for f in files)
        if found != rows.get(name, 0):
            raise TamsError(f"the copy is incomplete: its {name} table holds {found:,} of {rows.get(name, 0):,} rows")
        out[name] = TableEntry(rows.get(name, 0), columns_of(pq.read_schema(files[0])))
    return out


def _grace_from_environment() -> int | None:
    """``TAMS_OBJECT_GRACE_S`` as the server on this machine reads it, for a copy no server made (None when unset or
    not a number: the backup then does not say)."""
    text = os.environ.get("TAMS_OBJECT_GRACE_S", "").strip()
    return int(text) if text.isdigit() else None
