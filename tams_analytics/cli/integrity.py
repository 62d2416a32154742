"""``tams-analytics integrity``: audit a store (and optionally its object storage) for broken references.

Exit codes: 0 clean (every check ran and found nothing), 1 findings, 2 usage or connection errors, 3 partial: no
findings among the checks that ran, but some were skipped (the storage checks without --storage; over a TAMS
API, the checks it cannot answer), so the store is not known to be clean. Progress goes to stderr on a
terminal only.

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

from tams_analytics.analytics.findings import Verdict, checked_text
from tams_analytics.cli.common import (
    EXIT_FINDINGS,
    EXIT_OK,
    EXIT_PARTIAL,
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

    if fmt == "json":
        sys.stdout.write(json.dumps(report.to_json(), indent=2) + "\n")
        return
    if fmt == "csv":
        emit("integrity", report.to_arrow(), "csv")
        return
    checked = checked_text(report.checked)
    skipped = plural(len(report.skipped), "check")
    if report.verdict is Verdict.CLEAN:
        print(_fill(f"no findings (checked {checked})"))
    elif report.verdict is Verdict.PARTIAL:
        print(_fill(f"partial: no findings among the checks that ran (checked {checked}), but {skipped} skipped"))
    else:
        table = pa.Table.from_pandas(report.to_pandas(), preserve_index=False)
        print(format_table(table, drop_empty=True, columns=None if wide else SHOWN, width=None if wide else WIDTH))
        totals = ", ".join(f"{k} {n}" for k, n in report.totals.items() if n)
        shown = len(report.findings)
        said = f"{plural(sum(report.totals.values()), 'finding')} ({totals}); {shown} listed; checked {checked}"
        print("\n" + _fill(said + (f"; {skipped} skipped" if report.skipped else "")))
    for check, reason in sorted(report.skipped.items()):
        print(f"skipped {check}: {reason}")
    if report.verdict is Verdict.PARTIAL:
        print(_fill("the store is not known to be clean: the skipped checks did not run (exit code 3)"))


def _fill(text: str) -> str:
    """``text`` wrapped to the table's width at spaces only (an id or a name stays whole)."""
    return textwrap.fill(text, WIDTH, break_long_words=False, break_on_hyphens=False)


def exit_code(report: IntegrityReport) -> int:
    """0 clean, 1 findings, 3 partial (nothing found, but some checks were skipped)."""
    return {Verdict.CLEAN: EXIT_OK, Verdict.FINDINGS: EXIT_FINDINGS, Verdict.PARTIAL: EXIT_PARTIAL}[report.verdict]


def _audit(args: argparse.Namespace) -> IntegrityReport:
    from tams_analytics.analytics.integrity import audit

    if args.limit < 0:
        raise UsageError("--limit must be 0 (all) or more")
    catalog = open_catalog(args.store)
    try:
        store = storage_id = None
        if args.storage:
            store = open_storage(args.storage, args)
            # None: the catalog has no controlled instances, so none is looked for in storage (0 keys checked)
            storage_id = resolve_storage_id(catalog, args.storage_id)
        report = audit(catalog, store, storage_id=storage_id, limit=args.limit or None, progress=sys.stderr.isatty())
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
    return exit_code(report)
