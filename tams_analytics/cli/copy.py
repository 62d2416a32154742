"""``tams-analytics copy``: every table of one store into another: DuckDB to DuckDB, DuckDB to VAST, a backup or
an export (``tams-analytics export``'s folder) to a store.

``--from`` is a store URL (opened read-only: a DuckDB file no server holds, a VAST store or snapshot) or a folder
of Parquet tables (a backup, a backup repository's newest backup, an export; a directory or
``s3://bucket/prefix``). ``--to`` is a store URL; a DuckDB file is created. Rows are copied in primary-key order in
batches, each committed on its own: a copy cut short (Ctrl-C, a crash) continues where it stopped when run
again with the same arguments, and the result equals a copy never interrupted. A target holding anything else
is refused unless ``--force``, which empties it first. Progress: a bar on a terminal, else a line on stderr
every few seconds.

Exit codes: 0 copied; 2 usage, configuration, connection or I/O errors (a full disk: the copy continues when run
again), said in one line.
"""

from __future__ import annotations

import argparse
import contextlib
import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from tams_analytics.cli.common import EXIT_OK, HelpFormatter, add_s3_options
from tams_analytics.cli.output import clock, progress_for
from tams_analytics.exceptions import TamsError

if TYPE_CHECKING:
    from tams_analytics.catalog import Catalog


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "copy",
        help="copy every table of a store (or a backup, or an export) into another store; resumable",
        description=__doc__,
        epilog="examples:\n"
        "  tams-analytics copy --from duckdb:///srv/tams/tams.duckdb --to vast://10.0.0.1:8070/media/tams\n"
        "  tams-analytics copy --from /exports/tams --to duckdb:///srv/tams/new.duckdb\n"
        "  tams-analytics copy --from 'vast://10.0.0.1:8070/media/tams?snapshot=nightly' "
        "--to vast://10.0.0.1:8070/media/tams --force",
        formatter_class=HelpFormatter,
    )
    p.add_argument("--from", dest="source", required=True, metavar="URL|DIR|s3://BUCKET/PREFIX", help="what to copy")
    p.add_argument("--to", dest="target", required=True, metavar="URL", help="the store to copy into")
    p.add_argument("--force", action="store_true", help="empty a target that holds anything first")
    p.add_argument("--batch-rows", type=int, default=50_000, help="rows per committed batch")
    p.add_argument("--format", choices=("table", "json"), default="table", help="output: one line, or JSON")
    p.add_argument("--no-progress", action="store_true", help="no progress (a bar on a terminal, else lines on stderr)")
    add_s3_options(p)
    p.set_defaults(run=run)


def _is_store_url(text: str) -> bool:
    from tams_analytics.engines import ENGINES

    return urlsplit(text).scheme.lower() in ENGINES


@contextlib.contextmanager
def _source(args: argparse.Namespace) -> Iterator[tuple[Catalog, str]]:
    """The source as a read-only catalog, and its name for messages."""
    from tams_analytics.backup import open_parquet_folder
    from tams_analytics.backup.repository import locate_tables
    from tams_analytics.backup.take import read_only
    from tams_analytics.catalog import connect
    from tams_analytics.engines import redacted

    if _is_store_url(args.source):  # only read: no server can hold a DuckDB file meanwhile
        with connect(args.source, **read_only(args.source)) as catalog:
            yield catalog, redacted(args.source)
        return
    holder, ref, shown = locate_tables(args.source, endpoint=args.s3_endpoint, region=args.s3_region)
    with holder.fetched(ref) as local, open_parquet_folder(local) as catalog:
        yield catalog, shown


def run(args: argparse.Namespace) -> int:
    from tams_analytics.backup import copy_store
    from tams_analytics.catalog import connect
    from tams_analytics.engines import redacted

    if not _is_store_url(args.target):
        raise TamsError(f"--to {args.target!r} names no store: duckdb:///PATH, vast://..., ...")
    with _source(args) as (source, shown), connect(args.target, create=True) as target:
        summary = copy_store(
            source,
            target,
            force=args.force,
            batch_rows=args.batch_rows,
            progress=progress_for("copy", args.no_progress),
            source_name=shown,
            target_name=redacted(args.target),
        )
    if args.format == "json":
        print(json.dumps(summary.to_json(), indent=2))
        return EXIT_OK
    resumed = " (resumed an interrupted copy)" if summary.resumed else ""
    print(
        f"copied {summary.source} into {summary.target}{resumed}: {summary.rows:,} rows of "
        f"{len(summary.tables)} tables in {clock(summary.seconds)}"
    )
    return EXIT_OK
