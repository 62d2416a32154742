"""``tams-analytics restore``: a backup into a new store, checked before and after.

``--from`` is a backup repository (its newest complete backup, or ``--backup ID``) or one backup's folder. Every
file is checked against the backup's manifest first (size and SHA-256): a damaged backup is refused before
anything is written. The rows are then copied into the store and counted against the manifest.

A DuckDB store is restored into a new file beside it (``<store>.restoring``) that replaces it once complete; a
restore cut short continues where it stopped when run again. A store that exists is refused unless ``--force``,
which keeps it beside as ``<store>.before-restore``; a store a running server holds is always refused (stop the
server first). Other engines (VAST) are filled in place (emptied first with ``--force``).

Exit codes: 0 restored; 1 the backup is damaged (nothing restored; ``verify`` says more); 2 usage, configuration,
connection or I/O errors (a full disk: the restore continues when run again), said in one line.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from tams_analytics.cli.common import EXIT_FINDINGS, EXIT_OK, HelpFormatter, add_s3_options
from tams_analytics.cli.output import clock, progress_for


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "restore",
        help="restore a backup into a new store (never over one without --force)",
        description=__doc__,
        epilog="examples:\n"
        "  tams-analytics restore --from /backups/tams --store duckdb:///srv/tams/tams.duckdb\n"
        "  tams-analytics restore --from s3://backups/tams --backup 20261122T101500Z --store duckdb:///srv/tams/t.duckdb"
        "\n  tams-analytics restore --from /backups/tams --store duckdb:///srv/tams/tams.duckdb --force",
        formatter_class=HelpFormatter,
    )
    p.add_argument(
        "--from", dest="source", required=True, metavar="DIR|s3://BUCKET/PREFIX", help="a backup repository or backup"
    )
    p.add_argument("--backup", metavar="ID", help="which backup of the repository (default: the newest complete one)")
    p.add_argument(
        "--store",
        required=True,
        metavar="URL",
        help="the store to restore into: duckdb:///ABSOLUTE/PATH, duckdb://./RELATIVE/PATH, vast://... (never "
        "$TAMS_STORE: a restore writes, so name the store)",
    )
    p.add_argument("--force", action="store_true", help="replace a store that exists (a DuckDB file is kept beside)")
    p.add_argument("--format", choices=("table", "json"), default="table", help="output: one line, or JSON")
    p.add_argument("--no-progress", action="store_true", help="no progress (a bar on a terminal, else lines on stderr)")
    add_s3_options(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from tams_analytics.backup import BackupDamagedError, restore_backup

    try:
        result = restore_backup(
            args.source,
            args.store,
            backup_id=args.backup,
            force=args.force,
            progress=progress_for("restore", args.no_progress),
            endpoint=args.s3_endpoint,
            region=args.s3_region,
        )
    except BackupDamagedError as exc:
        print(f"tams-analytics restore: {exc}", file=sys.stderr)
        return EXIT_FINDINGS
    if args.format == "json":
        print(json.dumps(result.to_json(), indent=2))
        return EXIT_OK
    m = result.manifest
    created = m.to_json()["created"]
    aside = f"; the store it replaced is {result.replaced}" if result.replaced else ""
    resumed = " (resumed)" if result.copy.resumed else ""
    print(
        f"restored backup {m.id} of {m.store} (as of {created}) into {result.store}{resumed}: "
        f"{result.copy.rows:,} rows in {clock(result.seconds)}{aside}"
    )
    return EXIT_OK
