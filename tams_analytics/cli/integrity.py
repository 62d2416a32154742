"""``tams-analytics integrity``: audit a store (and optionally its object storage) for broken references.

The table sums the findings up first: per check, its findings on each flow (how many, the hull of their times in
UTC) and one example of each; ``--details`` lists the findings themselves after it (up to ``--limit`` per check).
JSON has both, complete: ``summary`` and ``findings``; CSV has the findings.

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
import pyarrow.compute as pc

from tams_analytics.analytics.findings import Check, Verdict, checked_text
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
#: the columns of a check's summary people see in the terminal (``count`` only where it is not ``findings``)
SUMMARY_SHOWN = ("flow_label", "flow_id", "findings", "count", "timerange_utc")

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
    p.add_argument(
        "--details", action="store_true", help="table: after the summary, list the findings (up to --limit per check)"
    )
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


def write_report(report: IntegrityReport, fmt: str, *, wide: bool = False, details: bool = False) -> None:
    """The report on stdout: the whole document (JSON), the findings (CSV), or for people the summary of the findings
    per check and flow, then (``details``) the findings themselves."""

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
        print(summary_text(report, wide=wide))
        if details:
            table = pa.Table.from_pandas(report.to_pandas(), preserve_index=False)
            print(f"\n{plural(len(report.findings), 'finding')} listed:\n")
            print(format_table(table, drop_empty=True, columns=None if wide else SHOWN, width=None if wide else WIDTH))
        totals = ", ".join(f"{k} {n}" for k, n in report.totals.items() if n)
        shown = f"{len(report.findings)} listed" if details else "--details lists them"
        said = f"{plural(sum(report.totals.values()), 'finding')} ({totals}); {shown}; checked {checked}"
        print("\n" + _fill(said + (f"; {skipped} skipped" if report.skipped else "")))
    for check, reason in sorted(report.skipped.items()):
        print(f"skipped {check}: {reason}")
    if report.verdict is Verdict.PARTIAL:
        print(_fill("the store is not known to be clean: the skipped checks did not run (exit code 3)"))


def summary_text(report: IntegrityReport, *, wide: bool = False) -> str:
    """The findings summed up for people: per check, a table of the flows it found something on (how many findings,
    how many segments they stand for where that differs, the hull of their times in UTC), then an example of each
    flow's findings."""
    summary = report.summary()
    hulls = pa.array([_utc(t) for t in summary.column("timerange").to_pylist()], pa.string())
    summary = summary.append_column("timerange_utc", hulls)
    out: list[str] = []
    for check in Check:
        rows = summary.filter(pc.equal(summary.column("check"), str(check)))
        if not rows.num_rows:
            continue
        findings, flows = sum(rows.column("findings").to_pylist()), len(set(rows.column("flow_id").to_pylist()))
        out.append(f"{check}: {plural(findings, 'finding')} on {plural(flows, 'flow')}\n")
        differ = rows.column("count").to_pylist() != rows.column("findings").to_pylist()
        columns = [c for c in SUMMARY_SHOWN if c != "count" or differ]
        shown = None if wide else columns
        out.append(format_table(rows, drop_empty=True, columns=shown, width=None if wide else WIDTH))
        out.append("\nfor example:")
        labels, examples = rows.column("flow_label").to_pylist(), rows.column("example").to_pylist()
        for label, example in zip(labels, examples, strict=True):
            out.append(_fill(f"{label or '(no flow label)'}: {example}", indent="  ", then="    "))
        out.append("")
    return "\n".join(out).rstrip("\n")


def _utc(timerange: str | None) -> str | None:
    if timerange is None:
        return None
    from tams_analytics.timerange import TimeRange

    tr = TimeRange.from_str(timerange)
    return None if tr.is_empty else tr.to_iso8601()


def _fill(text: str, *, indent: str = "", then: str = "") -> str:
    """``text`` wrapped to the table's width at spaces only (an id or a name stays whole), its first line indented by
    ``indent`` and the others by ``then``."""
    return textwrap.fill(
        text, WIDTH, initial_indent=indent, subsequent_indent=then, break_long_words=False, break_on_hyphens=False
    )


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
    write_report(report, args.format, wide=args.wide, details=args.details)
    return exit_code(report)
