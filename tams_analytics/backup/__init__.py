"""Backups you can restore, and stores you can move: what ``tams-analytics backup|restore|verify|copy`` run.

* :func:`backup_store` (:mod:`.take`): one consistent copy of a store, live or not, into a repository (a folder or
  ``s3://bucket/prefix``) with a manifest (:mod:`.manifest`), then retention (:mod:`.repository`);
  :func:`backup_engine` the same for an engine already open. The copy of a
  DuckDB store is :func:`snapshot_duckdb` (:mod:`.snapshot`), made by the server that holds it when one does
  (:mod:`.remote`, :mod:`.transfer`).
* :func:`restore_backup` (:mod:`.restore`): a backup into a new store, checked before and after.
* :func:`verify_folder` (:mod:`.verify`): a backup checked without its store.
* :func:`copy_store` (:mod:`.copy`): every table of one store into another, any engines, resumable; a backup or an
  export opened as a read-only store (:func:`open_parquet_folder`, :mod:`.reader`) is a source like any other.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tams_analytics.lazy import lazy_exports

if TYPE_CHECKING:
    from tams_analytics.backup.copy import CopySummary, copy_store
    from tams_analytics.backup.manifest import MANIFEST, Manifest
    from tams_analytics.backup.reader import open_parquet_folder
    from tams_analytics.backup.repository import BackupRef, Repository, locate
    from tams_analytics.backup.restore import BackupDamagedError, RestoreResult, restore_backup, restore_into
    from tams_analytics.backup.snapshot import Snapshot, snapshot_duckdb
    from tams_analytics.backup.take import BackupResult, backup_engine, backup_store
    from tams_analytics.backup.verify import VerifyReport, verify_folder

__all__ = [
    "MANIFEST",
    "BackupDamagedError",
    "BackupRef",
    "BackupResult",
    "CopySummary",
    "Manifest",
    "Repository",
    "RestoreResult",
    "Snapshot",
    "VerifyReport",
    "backup_engine",
    "backup_store",
    "copy_store",
    "locate",
    "open_parquet_folder",
    "restore_backup",
    "restore_into",
    "snapshot_duckdb",
    "verify_folder",
]

# each name loads with its module on first use: the server imports parts of this package (the repository, the
# snapshot's transfer) without the copy and the Parquet reader, which import ibis
__getattr__ = lazy_exports(
    __name__,
    {
        "BackupDamagedError": ".restore",
        "BackupRef": ".repository",
        "BackupResult": ".take",
        "CopySummary": ".copy",
        "MANIFEST": ".manifest",
        "Manifest": ".manifest",
        "Repository": ".repository",
        "RestoreResult": ".restore",
        "Snapshot": ".snapshot",
        "VerifyReport": ".verify",
        "backup_engine": ".take",
        "backup_store": ".take",
        "copy_store": ".copy",
        "locate": ".repository",
        "open_parquet_folder": ".reader",
        "restore_backup": ".restore",
        "restore_into": ".restore",
        "snapshot_duckdb": ".snapshot",
        "verify_folder": ".verify",
    },
)
