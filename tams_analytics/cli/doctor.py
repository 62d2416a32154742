"""``tams-analytics doctor --store URL [--format table|json]``: what a deployment may rely on (see
:mod:`tams_analytics.doctor`). Exit 0 all good, 1 a property is missing, 2 the store cannot be reached."""

from __future__ import annotations

import argparse
import json
from typing import Any

from tams_analytics.doctor import Diagnosis, diagnose


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "doctor",
        help="check a store: connectivity, tables and sorting keys, query shapes, isolation (VAST)",
        description=(
            "Opens the store read-only (the isolation probe on VAST writes and removes one scratch row of the "
            "service table). Exit 0: all good; 1: a property is missing (said with what it means); 2: cannot connect."
        ),
    )
    p.add_argument("--store", required=True, help="catalog URL, e.g. vast://HOST:PORT/BUCKET/SCHEMA")
    p.add_argument("--format", choices=["table", "json"], default="table")
    p.set_defaults(run=run)


def render_table(diagnosis: Diagnosis) -> str:
    lines = [f"store {diagnosis.store} ({diagnosis.engine or 'not opened'})"]
    width = max(len(c.name) for c in diagnosis.checks)
    for c in diagnosis.checks:
        lines.append(f"{c.status.upper():4}  {c.name:{width}}  {c.detail}")
        if c.meaning:
            lines.append(f"{'':4}  {'':{width}}  meaning: {c.meaning}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    diagnosis = diagnose(args.store)
    print(json.dumps(diagnosis.to_json(), indent=2) if args.format == "json" else render_table(diagnosis))
    return diagnosis.exit_code
