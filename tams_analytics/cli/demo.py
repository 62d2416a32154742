"""``tams-analytics demo``: build a realistic demo store, with real media when given object storage."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from tams_analytics.catalog import connect
from tams_analytics.cli.__main__ import HelpFormatter
from tams_analytics.demo import build_demo


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "demo",
        help="build a realistic demo store (sources, flows, segments with gaps, tags)",
        description="Build a demo store: programmes of sources and video, audio and data flows, with segments, "
        "gaps and tags. The store is created (folders too) when it does not exist.",
        epilog="example:\n  tams-analytics demo --store duckdb:///tmp/tams.duckdb --segments 20000",
        formatter_class=HelpFormatter,
    )
    p.add_argument("--store", required=True, help="store URL, e.g. duckdb:///tmp/tams.duckdb (three slashes)")
    p.add_argument("--segments", type=int, default=100_000, help="about how many segments")
    p.add_argument("--programmes", type=int, default=4, help="programmes (each: 4 sources, 5 flows)")
    p.add_argument("--seed", type=int, default=2026, help="random seed (the same seed builds the same store)")
    p.add_argument(
        "--storage",
        metavar="local:DIR|s3://BUCKET[/PREFIX]",
        help="also write every object's media (H.264/AAC in MPEG-TS, WebVTT) there (e.g. <data-dir>/objects)",
    )
    p.add_argument(
        "--storage-id",
        help="the storage backend id of the instances (default: the id `serve` uses, so it serves them)",
    )
    p.add_argument("--s3-endpoint", default=os.environ.get("TAMS_S3_ENDPOINT"), help="S3 endpoint URL")
    p.add_argument("--s3-region", default=os.environ.get("TAMS_S3_REGION", "us-east-1"))
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    media: dict[str, Any] = {}
    if args.storage:
        from tams_analytics.storage.base import DEFAULT_STORAGE_ID, object_key
        from tams_analytics.storage.spec import open_storage

        store = open_storage(
            args.storage,
            s3_endpoint=args.s3_endpoint,
            s3_region=args.s3_region,
            storage_id=args.storage_id or DEFAULT_STORAGE_ID,
        )
        media = {
            "storage_id": store.info.id,
            "storage_key": object_key,
            "put_media": lambda oid, data, ctype: store.put_bytes(object_key(oid, ctype), data, ctype),
        }
    with connect(args.store, create=True) as catalog:
        if media:
            catalog.register_storage_backend(store.info.to_json() | {"default_storage": True, "label": "demo"})
        summary = build_demo(
            catalog,
            args.segments,
            seed=args.seed,
            programmes=args.programmes,
            progress=not args.no_progress and sys.stderr.isatty(),
            **media,
        )
    print(
        f"built {summary.segments} segments in {summary.flows} flows of {summary.sources} sources "
        f"in {summary.seconds:.1f} s -> {args.store}" + (f" (media in {args.storage})" if media else "")
    )
    return 0
