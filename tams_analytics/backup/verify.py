"""Checking a backup without its store, as a scheduled drill does: ``tams-analytics verify``.

In order: the manifest (readable, of a known format); every file it lists (there, of its size, of its SHA-256;
nothing unlisted beside them); every table (its columns and types as declared, its rows as the manifest says);
then the backup opened read-only as a store (:mod:`~tams_analytics.backup.reader`) and audited as a live one is
(:func:`~tams_analytics.analytics.integrity.audit`: no overlapping segments, no orphans, no segment naming an
object the backup lacks) and, given the object storage, every object a segment references present there with
its size. The report's verdict is ``ok`` only when every check that ran found nothing.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import pyarrow as pa
import pyarrow.parquet as pq

from tams_analytics.backup.manifest import Manifest
from tams_analytics.backup.reader import open_parquet_folder, table_files
from tams_analytics.backup.repository import file_sha256, local_files
from tams_analytics.clock import utcnow
from tams_analytics.schema import SCHEMAS

if TYPE_CHECKING:
    from tams_analytics.analytics.integrity import KeyChecker

__all__ = ["CheckResult", "VerifyReport", "check_files", "check_tables", "verify_folder"]

logger = logging.getLogger(__name__)

#: the audit's checks that need object storage
_STORAGE_CHECKS: Final = ("missing_from_storage", "size_mismatches")
OK: Final = "ok"
FINDINGS: Final = "findings"
SKIPPED: Final = "skipped"


@dataclass
class CheckResult:
    check: str
    status: str
    findings: int
    detail: str


@dataclass
class VerifyReport:
    """What :func:`verify_folder` found."""

    backup: str
    location: str
    created: dt.datetime | None
    store: str
    checks: list[CheckResult] = field(default_factory=list)
    #: one dict per finding: ``check`` and ``detail``, and for integrity findings the entities they name
    findings: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.status != FINDINGS for c in self.checks)

    def add(self, check: str, problems: list[str], detail: str, *, skipped: bool = False) -> None:
        status = SKIPPED if skipped else FINDINGS if problems else OK
        self.checks.append(CheckResult(check, status, len(problems), detail))
        self.findings += [{"check": check, "detail": p} for p in problems]

    def to_json(self) -> dict[str, Any]:
        return {
            "report": "verify",
            "backup": self.backup,
            "location": self.location,
            "store": self.store,
            "created": None if self.created is None else self.created.isoformat().replace("+00:00", "Z"),
            "verdict": OK if self.ok else FINDINGS,
            "checks": [c.__dict__ for c in self.checks],
            "findings": self.findings,
        }

    def checks_table(self) -> pa.Table:
        return pa.Table.from_pylist([c.__dict__ for c in self.checks])


def check_files(folder: Path, manifest: Manifest) -> list[str]:
    """What is wrong with the files of the backup in ``folder``: missing, of another size or checksum, unlisted."""
    problems = []
    for rel, entry in sorted(manifest.files.items()):
        path = folder / rel
        if not path.is_file():
            problems.append(f"{rel} is missing")
            continue
        size = path.stat().st_size
        if size != entry.bytes:
            problems.append(f"{rel} holds {size} bytes, the manifest says {entry.bytes}")
        elif file_sha256(path) != entry.sha256:
            problems.append(f"{rel} is not as it was written: its SHA-256 differs from the manifest's")
    problems += [f"{rel} is not in the manifest" for rel in local_files(folder) if rel not in manifest.files]
    return problems


def check_tables(folder: Path, manifest: Manifest) -> tuple[list[str], list[str]]:
    """``(column problems, row problems)`` of the tables in ``folder``: every declared table present (unless the
    backup predates it: neither its files nor the manifest name it), with every declared column of its declared
    type, and as many rows as the manifest says."""
    columns: list[str] = []
    rows: list[str] = []
    for name, schema in SCHEMAS.items():
        files = table_files(folder, name)
        expected = manifest.tables.get(name)
        if not files and expected is None:
            continue  # a table this version has and the one that made the backup had not: restored empty
        if not files:
            columns.append(f"table {name} is missing")
            continue
        if expected is None:
            columns.append(f"table {name} is not in the manifest")
        found = 0
        for path in files:
            try:
                meta = pq.read_metadata(path)
            except (OSError, pa.ArrowException) as exc:
                columns.append(f"{path.relative_to(folder).as_posix()} is not a readable Parquet file: {exc}")
                continue
            found += meta.num_rows
            have = {f.name: f.type for f in meta.schema.to_arrow_schema()}
            for f in schema:
                if f.name not in have:
                    columns.append(f"{name}.{f.name} is missing from {path.relative_to(folder).as_posix()}")
                elif have[f.name] != f.type:
                    columns.append(f"{name}.{f.name} is {have[f.name]}, declared {f.type}")
        if expected is not None and found != expected.rows:
            rows.append(f"{name} holds {found:,} rows, the manifest says {expected.rows:,}")
    return columns, rows


def verify_folder(
    folder: Path,
    manifest: Manifest,
    *,
    location: str,
    storage: KeyChecker | None = None,
    storage_id: str | None = None,
    limit: int | None = 1000,
) -> VerifyReport:
    """Check the backup (``manifest``) whose files are in ``folder`` (see the module docstring); ``storage`` and
    ``storage_id``: the object storage and the storage backend whose instances it holds (default: the backup's
    default backend, or the only one its instances use)."""
    from tams_analytics.analytics.integrity import audit
    from tams_analytics.media.source import resolve_storage_id

    report = VerifyReport(manifest.id, location, manifest.created, manifest.store)
    report.add("manifest", [], f"{manifest.format}, {len(manifest.tables)} tables, {len(manifest.files)} files")
    files = check_files(folder, manifest)
    report.add("checksums", files, f"{len(manifest.files)} files, {manifest.size_bytes:,} bytes")
    columns, rows = check_tables(folder, manifest)
    report.add("columns", columns, f"{len(SCHEMAS)} tables as declared")
    report.add("rows", rows, f"{manifest.rows:,} rows")
    _check_grace(report, manifest, utcnow())
    if files or columns:
        skipped = "the backup's files are damaged: checked no further"
        report.add("integrity", [], skipped, skipped=True)
        return report
    catalog = open_parquet_folder(folder)
    try:
        if storage is not None:
            storage_id = resolve_storage_id(catalog, storage_id)
        audited = audit(catalog, storage if storage_id else None, storage_id=storage_id, limit=limit)
    finally:
        catalog.close()
    if storage is not None and not storage_id:
        audited.skipped |= {c: "the backup has no controlled object instances" for c in _STORAGE_CHECKS}
    for name, total in audited.totals.items():
        if name in audited.skipped:
            report.checks.append(CheckResult(name, SKIPPED, 0, audited.skipped[name]))
            continue
        shown = [f for f in audited.findings if str(f.check) == name]
        report.checks.append(CheckResult(name, FINDINGS if total else OK, total, _found(total, len(shown))))
        report.findings += [f.to_dict() for f in shown]
    return report


def _found(total: int, shown: int) -> str:
    if not total:
        return "none found"
    return f"{total:,} found" + (f", {shown:,} listed" if shown < total else "")


def _check_grace(report: VerifyReport, manifest: Manifest, now: dt.datetime) -> None:
    """A backup older than the object grace period its store's server had: objects deleted since it was made may be
    gone from storage (the garbage collector keeps their bytes that long), so restoring it may find segments without
    media. A finding: backups must not be kept longer than ``TAMS_OBJECT_GRACE_S``."""
    grace = manifest.object_grace_s
    if grace is None:
        report.add("object_grace", [], "the backup does not record its server's TAMS_OBJECT_GRACE_S", skipped=True)
        return
    age = (now - manifest.created).total_seconds()
    said = f"made {_days(age)} ago; objects' bytes kept {_days(grace)} after nothing references them"
    problems = []
    if age > grace:
        problems.append(
            f"the backup is older than its server's object grace period ({said}): objects deleted since it was made "
            "may be gone from storage; keep backups no longer than TAMS_OBJECT_GRACE_S, or raise it"
        )
    report.add("object_grace", problems, said)


def _days(seconds: float) -> str:
    """
    >>> _days(604800), _days(5400), _days(30)
    ('7.0 days', '1.5 hours', '30 s')
    """
    if seconds >= 86400:
        return f"{seconds / 86400:.1f} days"
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} hours"
    return f"{seconds:.0f} s"
