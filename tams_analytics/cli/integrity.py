"""``tams-analytics integrity``: audit a store (and optionally its object storage) for broken references.

Exit codes: 0 clean, 1 findings, 2 usage or connection errors. Progress goes to stderr on a terminal only.

Object storage: ``--storage local:DIR`` (the directory of the embedded local store, e.g.
``<data-dir>/objects``) or ``--storage s3://BUCKET[/PREFIX]`` with ``--s3-endpoint``/``--s3-region``;
S3 credentials come from ``TAMS_S3_ACCESS_KEY``/``TAMS_S3_SECRET_KEY`` or boto3's usual sources, never
from the command line. The instances checked are those of ``--storage-id`` (default: the catalog's
default storage backend, or the only backend its controlled instances use).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tams_analytics.cli.__main__ import EXIT_FINDINGS, EXIT_OK, EXIT_USAGE
from tams_analytics.cli.report import FORMATS, UsageError, emit, format_table, open_catalog
from tams_analytics.engines import redacted

if TYPE_CHECKING:
    from tams_analytics.analytics.integrity import IntegrityReport, KeyChecker
    from tams_analytics.catalog import Catalog


def add_parser(sub: Any) -> None:
    p = sub.add_parser("integrity", help="audit a store for overlaps, orphans, dangling references, missing media")
    p.add_argument("--store", default=os.environ.get("TAMS_STORE"), help="catalog URL (default: $TAMS_STORE)")
    p.add_argument("--storage", metavar="local:DIR|s3://BUCKET[/PREFIX]", help="also check objects in this storage")
    p.add_argument("--storage-id", help="the storage backend id whose instances live there (default: see above)")
    p.add_argument("--s3-endpoint", default=os.environ.get("TAMS_S3_ENDPOINT"), help="S3 endpoint URL")
    p.add_argument("--s3-region", default=os.environ.get("TAMS_S3_REGION", "us-east-1"))
    p.add_argument("--limit", type=int, default=1000, help="findings listed per check (default 1000; 0: all)")
    p.add_argument("--format", choices=FORMATS, default="table", help="output format (default table)")
    p.set_defaults(run=run)


def resolve_storage_id(catalog: Catalog, given: str | None) -> str | None:
    """The storage backend whose instances to check: ``given``, else the default backend, else the only one used.

    Returns None when the catalog has no controlled instances at all (nothing to check).
    """
    if given:
        return given
    backends = catalog.table("storage_backends")
    default = backends.filter(backends.default_storage.fill_null(False)).select("id").to_pyarrow()
    if default.num_rows == 1:
        return str(default.column("id")[0].as_py())
    inst = catalog.table("object_instances")
    used = inst.filter(inst.controlled.fill_null(False) & inst.storage_id.notnull()).select("storage_id").distinct()
    ids = sorted(used.limit(11).to_pyarrow().column("storage_id").to_pylist())
    if len(ids) > 1:
        raise UsageError(f"objects live in several storage backends; give --storage-id (one of {', '.join(ids[:10])})")
    return ids[0] if ids else None


def open_storage(spec: str, args: argparse.Namespace) -> KeyChecker:
    """An object store for ``local:DIR`` or ``s3://BUCKET[/PREFIX]`` (only its ``head`` is used)."""
    try:
        from tams_analytics.storage.base import StorageBackendInfo
    except ImportError as exc:  # pragma: no cover - the server extra is part of dev installs
        raise UsageError(
            f"checking storage needs the server extra: pip install 'tams-analytics[server]' ({exc})"
        ) from exc
    # the audit is told which instances to check; this id only labels the store object
    info = StorageBackendInfo(id=str(uuid.uuid4()), label="audit", provider="audit", store_product="audit")
    if spec.startswith("local:"):
        root = Path(spec.removeprefix("local:")).expanduser()
        if not root.is_dir():
            raise UsageError(f"--storage {spec}: {root} is not a directory")
        from tams_analytics.storage.local import LocalObjectStore

        return LocalObjectStore(info, root=root, base_url="http://localhost", secret=secrets.token_bytes(16))
    if spec.startswith("s3://"):
        bucket, _, prefix = spec.removeprefix("s3://").partition("/")
        if not bucket:
            raise UsageError(f"--storage {spec}: no bucket named")
        from tams_analytics.storage.s3 import S3ObjectStore

        return S3ObjectStore(
            info,
            bucket=bucket,
            prefix=f"{prefix.rstrip('/')}/" if prefix else "",
            endpoint_url=args.s3_endpoint,
            region=args.s3_region,
            access_key=os.environ.get("TAMS_S3_ACCESS_KEY"),
            secret_key=os.environ.get("TAMS_S3_SECRET_KEY"),
        )
    raise UsageError(f"--storage {spec!r}: expected local:DIR or s3://BUCKET[/PREFIX]")


def write_report(report: IntegrityReport, fmt: str) -> None:
    """The report on stdout: the findings (table/CSV) or the whole document (JSON)."""
    if fmt == "json":
        sys.stdout.write(json.dumps(report.to_json(), indent=2) + "\n")
        return
    if fmt == "csv":
        emit("integrity", report.to_arrow(), "csv")
        return
    checked = ", ".join(f"{n} {k}" for k, n in sorted(report.checked.items()))
    if report.clean:
        print(f"no findings (checked {checked})")
    else:
        print(format_table(report.to_arrow(), drop_empty=True))
        totals = ", ".join(f"{k} {n}" for k, n in report.totals.items() if n)
        shown = len(report.findings)
        print(f"\n{sum(report.totals.values())} findings ({totals}); {shown} listed; checked {checked}")
    for check, reason in sorted(report.skipped.items()):
        print(f"skipped {check}: {reason}")


def _audit(args: argparse.Namespace) -> IntegrityReport:
    from tams_analytics.analytics.integrity import audit

    if args.limit < 0:
        raise UsageError("--limit must be 0 (all) or more")
    catalog = open_catalog(args.store)
    try:
        store = storage_id = None
        skipped: str | None = None
        if args.storage:
            store = open_storage(args.storage, args)
            storage_id = resolve_storage_id(catalog, args.storage_id)
            if storage_id is None:
                store, skipped = None, "the catalog has no controlled object instances"
        report = audit(catalog, store, storage_id=storage_id, limit=args.limit or None, progress=sys.stderr.isatty())
        if skipped:
            storage_checks = ("missing_from_storage", "size_mismatch")
            report.skipped |= {k: skipped for k in storage_checks if k in report.skipped}
        if not any(report.checked.get(t) for t in ("sources", "flows", "segments", "objects")):
            # opening a store URL that names nothing may have created an empty store
            print(f"warning: the store {redacted(args.store)} is empty: is --store right?", file=sys.stderr)
        keys = report.checked.get("storage_keys", 0)
        if store is not None and keys and report.totals.get("missing_from_storage") == keys:
            print(
                f"warning: none of the {keys} keys is in {args.storage}: is the directory, bucket or prefix right?",
                file=sys.stderr,
            )
        return report
    finally:
        catalog.close()


def run(args: argparse.Namespace) -> int:
    try:
        report = _audit(args)
    except UsageError as exc:
        print(f"tams-analytics integrity: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as exc:
        # storage or engine failures (unreachable S3, a broken store) are connection errors: exit 2
        from tams_analytics.storage.base import StorageError

        if isinstance(exc, StorageError | OSError):
            print(f"tams-analytics integrity: storage error: {exc}", file=sys.stderr)
            return EXIT_USAGE
        raise
    write_report(report, args.format)
    return EXIT_OK if report.clean else EXIT_FINDINGS
