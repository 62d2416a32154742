"""``tams-analytics doctor --store URL [--format table|json]``: what a deployment may rely on (see
:mod:`tams_analytics.doctor`). Exit 0 all good, 1 a property is missing, 2 the store cannot be reached."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from tams_analytics.cli.common import EXIT_USAGE, HelpFormatter, add_store_option
from tams_analytics.doctor import Diagnosis, diagnose


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "doctor",
        help="check a store: connectivity, tables and sorting keys, query shapes, isolation, projections and "
        "snapshots (VAST), the storage format (DuckDB)",
        description=(
            "Check what servers and jobs rely on before pointing them at a store: that it opens and answers, has "
            "every table with its columns (on VAST, its sorting keys), accepts every query shape the library "
            "sends and (VAST) lets exactly one of two concurrent transactions on one row commit and has the "
            "projections lookups by object read; it lists the bucket's snapshots with the newest change each holds "
            "(vast://...?snapshot=NAME checks a snapshot, read-only); and (DuckDB) it says the store's storage format, "
            "warning of an older one with what an upgrade buys. Opens the store read-only (the isolation "
            "probe on VAST writes and removes one scratch row of the service table). "
            "Exit 0: all good (warnings included); 1: a property is missing (said with what it means); 2: cannot "
            "connect."
        ),
        epilog="examples:\n"
        "  tams-analytics doctor --store vast://10.0.0.1:8070/media/tams\n"
        "  tams-analytics doctor --store duckdb:///srv/tams/tams.duckdb --format json",
        formatter_class=HelpFormatter,
    )
    add_store_option(p)
    p.add_argument(
        "--format",
        choices=["table", "json"],
        default="table",
        help="table: one line per check, for people; json: every check with its status, detail and meaning, "
        "and the exit code",
    )
    p.set_defaults(run=run)


def render_table(diagnosis: Diagnosis) -> str:
    lines = [f"store {diagnosis.store} ({diagnosis.engine or 'not opened'})"]
    width = max(len(c.name) for c in diagnosis.checks)
    for c in diagnosis.checks:
        lines.append(f"{c.status.upper():4}  {c.name:{width}}  {c.detail}")
        if c.meaning:
            label = "advice" if c.status == "warn" else "meaning"
            lines.append(f"{'':4}  {'':{width}}  {label}: {c.meaning}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    if not args.store:
        print("tams-analytics doctor: no store: give --store URL or set TAMS_STORE", file=sys.stderr)
        return EXIT_USAGE
    diagnosis = diagnose(args.store)
    print(json.dumps(diagnosis.to_json(), indent=2) if args.format == "json" else render_table(diagnosis))
    return diagnosis.exit_code
