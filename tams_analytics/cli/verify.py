"""``tams-analytics verify``: check a backup without its store, for scheduled drills.

Opens the backup read-only (``--from``: a repository's newest backup, or ``--backup ID``, or one backup's folder)
and checks: its manifest; every file's size and SHA-256; every table's columns, types and rows; then the backup
as a store: no overlapping segments, no orphans, no segment naming an object the backup lacks (the integrity
audit's checks); with ``--storage local:DIR|s3://BUCKET[/PREFIX]``, every object a segment references present in
object storage with its size (the instances of ``--storage-id``, as ``integrity`` checks them).

Exit codes: 0 every check passed; 1 findings (the JSON's ``verdict`` is ``findings``); 2 usage, configuration or
connection errors (no backup there, storage unreachable).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import textwrap
from typing import Any

from tams_analytics.cli.common import (
    EXIT_FINDINGS,
    EXIT_OK,
    EXIT_USAGE,
    HelpFormatter,
    UsageError,
    add_s3_options,
)
from tams_analytics.cli.output import WIDTH, format_table
from tams_analytics.exceptions import TamsError, said_on_cli


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "verify",
        help="check a backup: manifest, checksums, tables, overlaps, objects in storage; exit 1 on findings",
        description=__doc__,
        epilog="examples:\n"
        "  tams-analytics verify --from /backups/tams\n"
        "  tams-analytics verify --from s3://backups/tams --storage s3://media --format json",
        formatter_class=HelpFormatter,
    )
    p.add_argument(
        "--from", dest="source", required=True, metavar="DIR|s3://BUCKET/PREFIX", help="a backup repository or backup"
    )
    p.add_argument("--backup", metavar="ID", help="which backup of the repository (default: the newest)")
    p.add_argument("--storage", metavar="local:DIR|s3://BUCKET[/PREFIX]", help="also check objects in this storage")
    p.add_argument("--storage-id", help="the storage backend id whose instances live there (default: the only one)")
    p.add_argument("--limit", type=int, default=1000, help="findings listed per check (0: all)")
    p.add_argument("--format", choices=("table", "json"), default="table", help="output format")
    add_s3_options(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    try:
        report = _verify(args)
    except (UsageError, TamsError, OSError) as exc:
        print(f"tams-analytics verify: {said_on_cli(exc)}", file=sys.stderr)
        return EXIT_USAGE
    if args.format == "json":
        print(json.dumps(report.to_json(), indent=2))
    else:
        print(format_table(report.checks_table(), width=WIDTH))
        for f in report.findings[:20]:
            print(textwrap.fill(f"{f['check']}: {f['detail']}", WIDTH, subsequent_indent="  "))
        if len(report.findings) > 20:
            print(f"... and {len(report.findings) - 20} more findings (--format json lists them)")
        verdict = "ok" if report.ok else "FINDINGS"
        print(f"\n{verdict}: backup {report.backup} of {report.store} at {report.location}")
    return EXIT_OK if report.ok else EXIT_FINDINGS


def _verify(args: argparse.Namespace) -> Any:
    from tams_analytics.backup import VerifyReport, locate, verify_folder
    from tams_analytics.cli.integrity import open_storage

    if args.limit < 0:
        raise UsageError("--limit must be 0 (all) or more")
    repo, ref = locate(args.source, args.backup, endpoint=args.s3_endpoint, region=args.s3_region)
    if ref.manifest is None:  # its manifest does not read: a finding, not a usage error
        report = VerifyReport(ref.id, ref.url, None, "?")
        report.add("manifest", [f"backup.json: {ref.damaged}"], "unreadable")
        return report
    store = None
    if args.storage:
        args.s3_endpoint = args.s3_endpoint or os.environ.get("TAMS_S3_ENDPOINT")
        args.s3_region = args.s3_region or "us-east-1"
        store = open_storage(args.storage, args)
    with repo.fetched(ref) as folder:
        return verify_folder(
            folder, ref.manifest, location=ref.url, storage=store, storage_id=args.storage_id, limit=args.limit or None
        )
