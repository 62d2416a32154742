"""``tams-analytics demo``: build a realistic demo store."""

from __future__ import annotations

import argparse
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
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    with connect(args.store, create=True) as catalog:
        summary = build_demo(
            catalog,
            args.segments,
            seed=args.seed,
            programmes=args.programmes,
            progress=not args.no_progress and sys.stderr.isatty(),
        )
    print(
        f"built {summary.segments} segments in {summary.flows} flows of {summary.sources} sources "
        f"in {summary.seconds:.1f} s -> {args.store}"
    )
    return 0
