"""``tams-analytics demo``: build a realistic demo store, with real media when given object storage.

All or nothing: the demo is written in one transaction, so a demo that fails (a store already holding this
seed's demo, storage that refuses a write, Ctrl-C) leaves the store as it found it, and a store it was
creating is removed.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from tams_analytics.catalog import connect
from tams_analytics.cli.common import S3_REGION_HELP, HelpFormatter
from tams_analytics.demo import build_demo
from tams_analytics.exceptions import TamsError


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "demo",
        help="build a realistic demo store (sources, flows, segments with gaps, tags)",
        description="Build a demo store: programmes of sources and video, audio and data flows, with segments, "
        "gaps and tags. The store is created when it does not exist (its folder must exist); a store that "
        "exists gets the demo added, or, if it already holds the demo of this --seed, is refused. All or "
        "nothing: a demo that fails leaves the store as it was and removes a store it was creating.",
        epilog="examples:\n"
        "  tams-analytics demo --store duckdb:///tmp/tams.duckdb --segments 20000\n"
        "  mkdir -p tams-data/objects && tams-analytics demo --store duckdb://./tams-data/tams.duckdb "
        "--segments 2000 --storage local:tams-data/objects",
        formatter_class=HelpFormatter,
    )
    p.add_argument(
        "--store",
        required=True,
        help="store URL, e.g. duckdb:///tmp/tams.duckdb (three slashes before an absolute path), "
        "duckdb://./tams.duckdb (a relative one); never $TAMS_STORE: the demo writes, so name the store",
    )
    p.add_argument("--segments", type=int, default=100_000, help="about how many segments")
    p.add_argument("--programmes", type=int, default=4, help="programmes (each: 4 sources, 5 flows)")
    p.add_argument("--seed", type=int, default=2026, help="random seed (the same seed builds the same store)")
    p.add_argument(
        "--storage",
        metavar="local:DIR|s3://BUCKET[/PREFIX]",
        help="also write every object's media (H.264/AAC in MPEG-TS, WebVTT) there (e.g. <data-dir>/objects; "
        "the directory or bucket must exist); needs PyAV (the media extra)",
    )
    p.add_argument(
        "--storage-id",
        help="the storage backend id of the instances (default: the id `serve` uses, so it serves them)",
    )
    p.add_argument(
        "--s3-endpoint",
        default=os.environ.get("TAMS_S3_ENDPOINT"),
        help="S3 endpoint URL (default: $TAMS_S3_ENDPOINT, else AWS)",
    )
    p.add_argument("--s3-region", default=os.environ.get("TAMS_S3_REGION", "us-east-1"), help=S3_REGION_HELP)
    p.add_argument("--no-progress", action="store_true", help="no progress bar (it is off anyway when piped)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.segments < 1 or args.programmes < 1:
        raise TamsError("--segments and --programmes take a number of 1 or more")
    media: dict[str, Any] = {}
    if args.storage:
        from tams_analytics.media.pyav import require_av
        from tams_analytics.storage.base import DEFAULT_STORAGE_ID, object_key
        from tams_analytics.storage.spec import open_storage

        require_av()  # before anything is created: a demo with media cannot start without PyAV
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
    catalog = connect(args.store, create=True)
    try:
        with catalog.transaction():
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
    except BaseException as exc:
        catalog.discard()  # a store this command was creating goes; one that existed is as it was
        from tams_analytics.storage.base import StorageError

        if isinstance(exc, StorageError):
            raise TamsError(f"cannot write the demo's media to {args.storage}: {exc}") from None
        raise
    catalog.close()
    print(
        f"built {summary.segments} segments in {summary.flows} flows of {summary.sources} sources "
        f"in {summary.seconds:.1f} s -> {args.store}" + (f" (media in {args.storage})" if media else "")
    )
    return 0
