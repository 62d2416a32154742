"""Restoring a backup into a store: the backup's files checked against its manifest, then copied in.

A restore is a :func:`~tams_analytics.backup.copy.copy_store` from the backup opened as a read-only store
(:mod:`~tams_analytics.backup.reader`), after every file's size and SHA-256 matched the manifest (a damaged
backup is refused before anything is written), and checked afterwards against the manifest's row counts.

A DuckDB store is a file: the backup is restored into a new file beside it (``<store>.restoring``), which
replaces the store only once complete, so the store's path never holds half a restore, and a restore cut short
continues where it stopped when run again. A store already there is refused unless ``force``; with it, the old
file is kept beside, as ``<store>.before-restore`` (replacing an older one). Stores of other engines (VAST) are
filled in place, emptied first with ``force``.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Unpack
from urllib.parse import urlsplit

import duckdb

from tams_analytics.backup.copy import CopySummary, copy_store
from tams_analytics.backup.manifest import Manifest
from tams_analytics.backup.reader import open_parquet_folder
from tams_analytics.backup.repository import BackupRef, locate
from tams_analytics.backup.verify import check_files
from tams_analytics.catalog import Catalog, connect
from tams_analytics.engines import redacted
from tams_analytics.engines.duckdb.held import StoreInUseError, explain_held_store
from tams_analytics.engines.duckdb.journaled import journal_folder
from tams_analytics.exceptions import TamsError
from tams_analytics.export.destinations import S3Options

__all__ = ["BackupDamagedError", "RestoreResult", "restore_backup", "restore_into"]

logger = logging.getLogger(__name__)

#: beside a DuckDB store: the file a restore fills, and the store a forced restore replaced
RESTORING: Final = ".restoring"
BEFORE_RESTORE: Final = ".before-restore"


class BackupDamagedError(TamsError):
    """The backup's files are not as its manifest says: nothing was restored."""

    def __init__(self, backup: str, problems: list[str]) -> None:
        shown = "; ".join(problems[:5]) + (f"; and {len(problems) - 5} more" if len(problems) > 5 else "")
        super().__init__(f"backup {backup} is damaged, nothing was restored: {shown}")
        self.problems = problems


@dataclass(frozen=True)
class RestoreResult:
    manifest: Manifest
    location: str
    store: str
    copy: CopySummary
    #: where a forced restore put the store it replaced (a DuckDB file), if there was one
    replaced: str | None
    seconds: float

    def to_json(self) -> dict[str, object]:
        return {
            "backup": self.manifest.id,
            "location": self.location,
            "created": self.manifest.to_json()["created"],
            "store": self.store,
            "rows": self.copy.rows,
            "resumed": self.copy.resumed,
            "replaced": self.replaced,
            "seconds": round(self.seconds, 3),
            "tables": {t.table: t.rows for t in self.copy.tables},
        }


def restore_into(
    folder: Path,
    manifest: Manifest,
    target: Catalog,
    *,
    force: bool = False,
    progress: bool | Callable[[str], None] = False,
    target_name: str | None = None,
    check: bool = True,
) -> CopySummary:
    """Restore the backup whose files are in ``folder`` into ``target`` (any engine that writes): its files
    checked (unless ``check`` is False: the caller did), then copied in (resuming an interrupted restore of the same
    backup; refusing a target that holds anything else unless ``force``), then its rows counted against the
    manifest."""
    if check:
        _check(folder, manifest)
    source = open_parquet_folder(folder)
    try:
        summary = copy_store(
            source,
            target,
            force=force,
            progress=progress,
            source_name=f"backup {manifest.id} of {manifest.store}",
            target_name=target_name,
        )
    finally:
        source.close()
    wrong = [
        f"{t.table} {t.rows:,} (backup: {manifest.tables[t.table].rows:,})"
        for t in summary.tables
        if t.table in manifest.tables and t.rows != manifest.tables[t.table].rows
    ]
    if wrong:
        raise TamsError(f"the restored store's rows are not the backup's: {', '.join(wrong)}")
    return summary


def _check(folder: Path, manifest: Manifest) -> None:
    problems = check_files(folder, manifest)
    if problems:
        raise BackupDamagedError(manifest.id, problems)


def restore_backup(
    source: str,
    store: str,
    *,
    backup_id: str | None = None,
    force: bool = False,
    progress: bool | Callable[[str], None] = False,
    **s3: Unpack[S3Options],
) -> RestoreResult:
    """Restore backup ``backup_id`` (default: the newest complete one) of the repository ``source``, or the backup
    folder ``source`` names, into the store at URL ``store`` (see the module docstring)."""
    started = time.perf_counter()
    repo, ref = locate(source, backup_id, **s3)
    manifest = _manifest(ref)
    shown = redacted(store)
    with repo.fetched(ref) as folder:
        _check(folder, manifest)  # before anything is written
        if urlsplit(store).scheme.lower() == "duckdb":
            summary, replaced = _restore_duckdb(folder, manifest, store, force=force, progress=progress)
        else:
            target = connect(store, create=True)
            try:
                summary = restore_into(
                    folder, manifest, target, force=force, progress=progress, target_name=shown, check=False
                )
            finally:
                target.close()
            replaced = None
    took = time.perf_counter() - started
    logger.info("restored backup %s (%s rows) into %s in %.1f s", ref.id, summary.rows, shown, took)
    return RestoreResult(manifest, ref.url, shown, summary, replaced, took)


def _manifest(ref: BackupRef) -> Manifest:
    if ref.damaged is not None:
        raise BackupDamagedError(ref.id, [f"its manifest: {ref.damaged}"])
    if ref.manifest is None:
        raise TamsError(f"backup {ref.id} did not finish (it has no manifest): restore another")
    return ref.manifest


def _store_file(store: str) -> Path:
    """The file of the DuckDB store URL ``store`` (``duckdb:///abs`` or ``duckdb://rel``)."""
    parts = urlsplit(store)
    path = f"{parts.netloc}{parts.path}"
    if not path:
        raise TamsError("restore into a DuckDB file, not into memory (duckdb:///PATH)")
    return Path("/" + str(Path(path).absolute()).lstrip("/"))  # duckdb:////abs (four slashes) is /abs too


def _refuse_held(path: Path) -> None:
    """Refuse a store file a server (or any process) holds; a file DuckDB cannot open otherwise (a damaged
    store, what a restore replaces) passes."""
    try:
        with explain_held_store(str(path)):
            duckdb.connect(str(path), read_only=True).close()
    except StoreInUseError as exc:
        holder = f"the TAMS server at {exc.url} (PID {exc.pid})" if exc.url else f"another process (PID {exc.pid})"
        raise StoreInUseError(
            f"{path} is in use by {holder}: stop it first, then restore (a store in use is never restored over)",
            pid=exc.pid,
            url=exc.url,
        ) from None
    except duckdb.Error as exc:
        logger.info("the store %s does not open (%s): it is replaced", path, exc)


def _restore_duckdb(
    folder: Path, manifest: Manifest, store: str, *, force: bool, progress: bool | Callable[[str], None]
) -> tuple[CopySummary, str | None]:
    path = _store_file(store)
    if not path.parent.is_dir():
        raise TamsError(f"{path.parent} does not exist: restore into a store in a folder that exists")
    there = path.exists()
    if there:
        _refuse_held(path)
        if not force:
            raise TamsError(
                f"{path} exists: pass force=True to replace it (it is kept as {path}{BEFORE_RESTORE})",
                cli=f"{path} exists: --force replaces it (it is kept as {path}{BEFORE_RESTORE})",
            )
    work = Path(f"{path}{RESTORING}")
    target = connect(f"duckdb:///{work}", create=True)
    try:
        summary = restore_into(
            folder, manifest, target, force=force, progress=progress, target_name=f"duckdb:///{work}", check=False
        )
    finally:
        target.close()
    replaced = None
    if there:
        aside = Path(f"{path}{BEFORE_RESTORE}")
        _move(path, aside)
        replaced = str(aside)
    else:
        Path(f"{path}.wal").unlink(missing_ok=True)  # a WAL with no store: it belongs to nothing now
        stray = journal_folder(str(path))
        if stray.exists():  # a journal with no store cannot be applied to the one restored: kept, aside
            _replace_folder(stray, Path(f"{stray}{BEFORE_RESTORE}"))
    _move(work, path)
    return summary, replaced


def _move(source: Path, target: Path) -> None:
    """Rename a DuckDB file, its WAL and its journal (replacing what ``target`` names)."""
    wal, target_wal = Path(f"{source}.wal"), Path(f"{target}.wal")
    with contextlib.suppress(FileNotFoundError):
        target_wal.unlink()
    source.replace(target)
    if wal.exists():
        wal.replace(target_wal)
    journal = journal_folder(str(source))
    if journal.exists():
        _replace_folder(journal, journal_folder(str(target)))


def _replace_folder(source: Path, target: Path) -> None:
    """Rename folder ``source`` to ``target``, replacing it."""
    if target.exists():
        shutil.rmtree(target)
    source.replace(target)
