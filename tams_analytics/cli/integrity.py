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
import sys
import textwrap
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from tams_analytics.cli.common import (
    EXIT_FINDINGS,
    EXIT_OK,
    EXIT_USAGE,
    S3_REGION_HELP,
    HelpFormatter,
    UsageError,
    add_store_option,
    open_catalog,
)
from tams_analytics.cli.output import FORMATS_OUT, WIDTH, emit, format_table
from tams_analytics.display import plural
from tams_analytics.engines import redacted

#: the columns of a finding people see in the terminal (``--wide``: all of them)
SHOWN = ("check", "flow_id", "flow_label", "detail")

if TYPE_CHECKING:
    from tams_analytics.analytics.integrity import IntegrityReport, KeyChecker
    from tams_analytics.catalog import Catalog


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "integrity",
        help="audit a store for overlaps, orphans, dangling references, missing media",
        description=__doc__,
        epilog="examples:\n"
        "  tams-analytics integrity --store duckdb:///srv/tams/tams.duckdb\n"
        "  tams-analytics integrity --store duckdb://./tams-data/tams.duckdb --storage local:tams-data/objects "
        "--format json",
        formatter_class=HelpFormatter,
    )
    add_store_option(p)
    p.add_argument("--storage", metavar="local:DIR|s3://BUCKET[/PREFIX]", help="also check objects in this storage")
    p.add_argument("--storage-id", help="the storage backend id whose instances live there (default: see above)")
    p.add_argument(
        "--s3-endpoint", default=os.environ.get("TAMS_S3_ENDPOINT"), help="S3 endpoint URL (default: $TAMS_S3_ENDPOINT)"
    )
    p.add_argument("--s3-region", default=os.environ.get("TAMS_S3_REGION", "us-east-1"), help=S3_REGION_HELP)
    p.add_argument("--limit", type=int, default=1000, help="findings listed per check (0: all)")
    p.add_argument("--format", choices=FORMATS_OUT, default="table", help="output format")
    p.add_argument("--wide", action="store_true", help="table: every column, as wide as it takes (default: fit 120)")
    p.set_defaults(run=run)


def resolve_storage_id(catalog: Catalog, given: str | None) -> str | None:
    """The storage backend whose instances to check (see
    :func:`~tams_analytics.media.source.resolve_storage_id`); UsageError when it is ambiguous."""
    from tams_analytics.exceptions import TamsError
    from tams_analytics.media.source import resolve_storage_id as resolve

    try:
        return resolve(catalog, given)
    except TamsError as exc:
        raise UsageError(f"{exc}: give --storage-id") from None


def open_storage(spec: str, args: argparse.Namespace) -> KeyChecker:
    """An object store for ``local:DIR`` or ``s3://BUCKET[/PREFIX]`` (only its ``head`` is used)."""
    from tams_analytics.exceptions import TamsError
    from tams_analytics.storage.spec import open_storage as open_spec

    try:
        # the audit is told which instances to check; the store's own id only labels it
        return open_spec(spec, s3_endpoint=args.s3_endpoint, s3_region=args.s3_region)
    except TamsError as exc:
        raise UsageError(f"--{exc}") from None


def write_report(report: IntegrityReport, fmt: str, *, wide: bool = False) -> None:
    """The report on stdout: the findings (table/CSV) or the whole document (JSON)."""
    from tams_analytics.analytics.findings import checked_text

    if fmt == "json":
        sys.stdout.write(json.dumps(report.to_json(), indent=2) + "\n")
        return
    if fmt == "csv":
        emit("integrity", report.to_arrow(), "csv")
        return
    checked = checked_text(report.checked)
    if report.clean:
        print(textwrap.fill(f"no findings (checked {checked})", WIDTH))
    else:
        table = pa.Table.from_pandas(report.to_pandas(), preserve_index=False)
        print(format_table(table, drop_empty=True, columns=None if wide else SHOWN, width=None if wide else WIDTH))
        totals = ", ".join(f"{k} {n}" for k, n in report.totals.items() if n)
        shown = len(report.findings)
        said = f"{plural(sum(report.totals.values()), 'finding')} ({totals}); {shown} listed; checked {checked}"
        print("\n" + textwrap.fill(said, WIDTH))
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
            storage_checks = ("missing_from_storage", "size_mismatches")
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
    write_report(report, args.format, wide=args.wide)
    return EXIT_OK if report.clean else EXIT_FINDINGS
