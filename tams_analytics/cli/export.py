"""``tams-analytics export``: write a store's entity tables as Parquet to a directory or S3."""

from __future__ import annotations

import argparse
import sys
from typing import Any
from urllib.parse import urlsplit

from tams_analytics.cli.common import HelpFormatter, add_store_option
from tams_analytics.cli.output import progress_for
from tams_analytics.schema import SCHEMAS

EXIT_OK, EXIT_USAGE = 0, 2


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "export",
        help="write every entity table as Parquet (segments partitioned by flow bucket) to a directory or S3",
        description=(
            "Write the store's tables as Parquet under DIR_OR_S3_URL/<table>/ with a _tams_export.json manifest. "
            "S3: s3://bucket/prefix, endpoint from --s3-endpoint or TAMS_S3_ENDPOINT, region from --s3-region or "
            "TAMS_S3_REGION, credentials from TAMS_S3_ACCESS_KEY/TAMS_S3_SECRET_KEY (as serve and integrity) or "
            "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY. What stops an S3 export (no credentials, credentials refused, "
            "no such bucket, endpoint unreachable) is said in one line before anything is written; exit 2."
        ),
        epilog="examples:\n"
        "  tams-analytics export --store duckdb:///data/tams.duckdb --to /data/export\n"
        "  tams-analytics export --store duckdb:///data/tams.duckdb --to s3://bucket/tams --tables segments,flows\n"
        "  tams-analytics export --store tams+http://127.0.0.1:8000 --to export  # a store a server holds, via its API",
        formatter_class=HelpFormatter,
    )
    add_store_option(p)
    p.add_argument("--to", required=True, metavar="DIR_OR_S3_URL", help="a directory or s3://bucket/prefix")
    p.add_argument(
        "--tables",
        nargs="+",
        metavar="TABLE",
        help=f"only these tables (space or comma separated; default: all of {', '.join(SCHEMAS)})",
    )
    p.add_argument("--overwrite", action="store_true", help="replace table directories that are not empty")
    p.add_argument("--batch-rows", type=int, default=100_000, help="rows per streamed batch")
    p.add_argument(
        "--flow-bucket-chars",
        type=int,
        default=1,
        help="segments partition = first N hex digits of flow_id: 1 -> 16 buckets, 2 -> 256",
    )
    p.add_argument(
        "--no-sort",
        action="store_true",
        help="do not ask the store to sort rows by flow_id, start_ns (less engine memory, less pruning)",
    )
    p.add_argument("--s3-endpoint", help="S3 endpoint URL (default: TAMS_S3_ENDPOINT, else AWS)")
    p.add_argument("--s3-region", help="S3 region (default: TAMS_S3_REGION, AWS_REGION or us-east-1)")
    p.add_argument(
        "--no-progress",
        action="store_true",
        help="no progress (a bar on a terminal; else a line on stderr every few seconds)",
    )
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from tams_analytics.cli.common import UsageError, open_catalog
    from tams_analytics.export import export_catalog

    tables = [t for item in args.tables or () for t in item.split(",") if t] or None
    # a DuckDB file is opened read-only: exporting never writes to the store
    options = {"read_only": True} if urlsplit(args.store or "").scheme.lower() == "duckdb" else {}
    try:
        catalog = open_catalog(args.store, **options)
    except UsageError as exc:
        print(f"tams-analytics export: {exc}", file=sys.stderr)
        return EXIT_USAGE
    with catalog:
        summary = export_catalog(
            catalog,
            args.to,
            tables=tables,
            overwrite=args.overwrite,
            batch_rows=args.batch_rows,
            flow_bucket_chars=args.flow_bucket_chars,
            sort=not args.no_sort,
            progress=progress_for("export", args.no_progress),
            endpoint=args.s3_endpoint,
            region=args.s3_region,
        )
    for t in summary.tables:
        print(f"{t.table}: {t.rows} rows, {t.files} files, {t.bytes} bytes")
    took = f"{summary.seconds:.1f} s"
    print(f"exported {summary.rows} rows of {len(summary.tables)} tables to {summary.destination} in {took}")
    return EXIT_OK
