"""``tams-analytics upgrade``: rewrite a DuckDB store in the storage format this DuckDB writes new stores in.

DuckDB 2.0 serves a store DuckDB 1.3 made as it is, in its older format, where every checkpoint rewrites the objects'
indexes whole: checkpoints take longer as the store grows, and every write waits for them. This rewrites the store
in the current format, in place: it backs the store up first (--backup-to: a backup repository, by default the
folder "backups" beside the store), copies it into a new file beside it, checks the copy (every table's columns and
rows, the indexes and views), then swaps it in with one atomic rename. A store a server holds is refused: stop the
server first. Cut short (Ctrl-C, a crash, SIGKILL) the store is the old one or the new one, whole; run the command
again and it goes on from where it stopped. One-way: DuckDB 1.3 (VAST's dependency set) cannot open the upgraded
store; the old file is kept beside it (tams.duckdb.v1-before-upgrade) until you remove it, and the backup restores
with either set. Space: about the store's size again for the new file, plus the backup.

Exit codes: 0 upgraded, or already in the current format (said); 2 usage, configuration or connection errors, a
store a server holds, nothing to upgrade to (DuckDB 1.3), no room for the new file, a copy that did not verify (the
store untouched), each said in one line.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from tams_analytics.cli.common import EXIT_OK, EXIT_USAGE, HelpFormatter, add_s3_options, add_store_option
from tams_analytics.cli.output import clock, mib
from tams_analytics.exceptions import TamsError, said_on_cli

#: the backup repository's default: this folder beside the store
BACKUPS = "backups"


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "upgrade",
        help="rewrite a DuckDB store in the current storage format (one-way; backed up first; resumable)",
        description=__doc__,
        epilog="examples:\n"
        "  tams-analytics upgrade --store duckdb:///srv/tams/tams.duckdb\n"
        "  tams-analytics upgrade --store duckdb:///srv/tams/tams.duckdb --backup-to s3://backups/tams --format json",
        formatter_class=HelpFormatter,
    )
    add_store_option(p)
    p.add_argument(
        "--backup-to",
        metavar="DIR|s3://BUCKET/PREFIX",
        help=f"the backup repository the store is backed up into first (default: {BACKUPS}/ beside the store)",
    )
    p.add_argument("--no-backup", action="store_true", help="take no backup (you have one; the old file is kept)")
    p.add_argument("--format", choices=("table", "json"), default="table", help="output: lines, or JSON")
    add_s3_options(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from tams_analytics.upgrade import Step, store_file, upgrade_store

    def step(_: Step, what: str) -> None:
        print(f"tams-analytics upgrade: {what} ...", file=sys.stderr, flush=True)

    try:
        if not args.store:
            raise TamsError("no store: give --store URL or set TAMS_STORE")
        if args.no_backup and args.backup_to:
            raise TamsError("--no-backup and --backup-to: give one of them")
        result = upgrade_store(
            args.store,
            backup_to=None if args.no_backup else (args.backup_to or str(store_file(args.store).parent / BACKUPS)),
            on_step=step,
            endpoint=args.s3_endpoint,
            region=args.s3_region,
        )
    except (TamsError, OSError) as exc:
        print(f"tams-analytics upgrade: {said_on_cli(exc)}", file=sys.stderr)
        return EXIT_USAGE
    if args.format == "json":
        print(json.dumps(result.to_json(), indent=2))
        return EXIT_OK
    if not result.upgraded:
        print(f"{result.store} is in storage format {result.version}, the current one: nothing to upgrade")
        if result.kept:
            print(f"the file it was upgraded from is kept as {result.kept}: remove it once you no longer need it")
        return EXIT_OK
    resumed = " (went on from an interrupted run)" if result.resumed else ""
    print(
        f"upgraded {result.store} from storage format {result.version_before} to {result.version}{resumed}: "
        f"{sum(result.rows.values()):,} rows of {len(result.rows)} tables in {clock(result.seconds)} "
        f"(the copy {clock(result.copy_seconds)}; {mib(result.bytes_before)} before, {mib(result.bytes_after)} after)"
    )
    if result.backup:
        print(f"backed up first: backup {result.backup_id} at {result.backup}")
    print(
        f"the old file is kept as {result.kept}: one-way, DuckDB 1.3 cannot open the upgraded store; remove the old "
        "file once the server runs well on the new one"
    )
    return EXIT_OK
