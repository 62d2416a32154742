"""``tams-analytics report``: coverage, storage, ingest and flow reports as a table, JSON or CSV.

Exit codes: 1 when ``report coverage`` finds a gap (between a flow's runs, or, with ``--within``, at an edge of
the window the flow does not reach: what ``--gaps`` lists), so a scheduled job can alert on missing media;
storage, ingest and flows describe the store and have no findings (0). 2: usage or connection errors.

JSON and CSV carry every column, exact (integers in nanoseconds and bytes) and in clock time (``*_utc`` in ISO
8601 UTC, durations ``*_s`` in seconds); the table is for people (:mod:`tams_analytics.cli.output`). The
shared helpers here (:func:`open_catalog`, :class:`UsageError`) serve ``tams-analytics integrity`` too.
"""

from __future__ import annotations

import argparse
import re
import sys
from typing import TYPE_CHECKING, Any, Final, cast

import pyarrow as pa

from tams_analytics.cli.common import (
    EXIT_FINDINGS,
    EXIT_OK,
    EXIT_USAGE,
    HelpFormatter,
    UsageError,
    add_store_option,
    open_catalog,
    parse_since,
)
from tams_analytics.cli.output import FORMATS_OUT, emit

if TYPE_CHECKING:
    from tams_analytics.catalog import Catalog

FORMATS: Final = FORMATS_OUT
_RELATIVE: Final = re.compile(r"^(\d+)([mhdw])$")
_UNITS: Final = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
#: the columns of each report people see in the terminal (``--wide``: all of them)
SHOWN: Final = {
    "coverage": ("flow_id", "label", "segments", "runs", "gaps", "start_utc", "covered_s", "gap_s"),
    "gaps": ("flow_id", "label", "start_utc", "end_utc", "duration_s"),
    "runs": ("flow_id", "label", "start_utc", "end_utc", "duration_s"),
}


def common_options(p: argparse.ArgumentParser) -> None:
    add_store_option(p)
    p.add_argument("--format", choices=FORMATS, default="table", help="output format")
    p.add_argument("--wide", action="store_true", help="table: every column, as wide as it takes (default: fit 120)")


def _example(*lines: str) -> str:
    return "examples:\n" + "\n".join(f"  tams-analytics report {line}" for line in lines)


# -- the command ----------------------------------------------------------------------------------------------
def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "report",
        help="coverage, storage, ingest and flow reports (table, JSON or CSV)",
        description="Reports on a store, in the engine. Times are TAMS (TAI) and UTC clock time side by side. "
        "Exit 1: report coverage found a gap (in a flow, or at an edge of --within); storage, ingest and flows "
        "have no findings (0); 2: usage or connection errors.",
        epilog=_example("coverage --store duckdb:///data/tams.duckdb --within 2023-11-14T22:00Z/PT1H"),
        formatter_class=HelpFormatter,
    )
    kinds = p.add_subparsers(dest="report", required=True, metavar="REPORT")
    cov = kinds.add_parser(
        "coverage",
        help="per flow: segments, runs, gaps, covered time, segment durations; exit 1 when there is a gap",
        description="Per flow: segments, contiguous runs, gaps, covered time and segment durations (--gaps or "
        "--runs: one row per gap or run). Exit 1 when a flow has a gap in what is reported (with --within, "
        "an edge of the window the flow does not reach counts), so a scheduled job can alert on missing media.",
        epilog=_example(
            "coverage --store duckdb:///data/tams.duckdb",
            "coverage --store duckdb:///data/tams.duckdb --gaps --within 2023-11-14T22:00Z/2023-11-15T06:00Z",
        ),
        formatter_class=HelpFormatter,
    )
    common_options(cov)
    cov.add_argument("--flow", action="append", dest="flows", metavar="FLOW_ID", help="only this flow (repeatable)")
    cov.add_argument(
        "--within",
        metavar="TIMERANGE",
        help="only this time: an ISO 8601 interval (2023-11-14T22:00Z/PT1H, start/end, ../end) or a TAMS "
        "timerange ([1700000000:0_1700003600:0))",
    )
    show = cov.add_mutually_exclusive_group()
    show.add_argument("--gaps", action="store_const", const="gaps", dest="show", help="list the gaps instead")
    show.add_argument("--runs", action="store_const", const="runs", dest="show", help="list the contiguous runs")
    st = kinds.add_parser(
        "storage",
        help="bytes and objects per flow, source or format",
        description="Bytes and objects per flow, source or format: an object counts towards every flow whose "
        "segments reference it, and once towards a source or format; objects of unknown size are counted in "
        "objects_unsized. A source without a label of its own reads as its flows' labels. No findings (exit 0).",
        epilog=_example("storage --store duckdb:///data/tams.duckdb --by source"),
        formatter_class=HelpFormatter,
    )
    common_options(st)
    st.add_argument("--by", choices=("flow", "source", "format"), default="flow", help="group by")
    ing = kinds.add_parser(
        "ingest",
        help="segments and bytes registered per hour or day",
        description="Segments registered, the flows written and the bytes of their objects, per hour or day "
        "(UTC) of the segments' registration time. No findings (exit 0).",
        epilog=_example("ingest --store duckdb:///data/tams.duckdb --since 7d --every day"),
        formatter_class=HelpFormatter,
    )
    common_options(ing)
    ing.add_argument("--since", help="only since this time: ISO date/time (UTC unless given), or 24h, 7d, 30m, 2w ago")
    ing.add_argument("--every", choices=("hour", "day"), default="hour", help="one row per")
    fl = kinds.add_parser(
        "flows",
        help="flows per codec, format, container or tag",
        description="Flows and their segments per codec, format or container, or per value of a tag "
        "(tag:NAME; tags: every tag). No findings (exit 0).",
        epilog=_example("flows --store duckdb:///data/tams.duckdb --by tag:genre"),
        formatter_class=HelpFormatter,
    )
    common_options(fl)
    fl.add_argument("--by", default="format", help="codec, format, container, tag:NAME, or tags (every tag)")
    p.set_defaults(run=run)


def _labels(catalog: Catalog) -> Any:
    flows = catalog.table("flows")
    return flows.select(lid="id", label="label")


def _coverage(catalog: Catalog, args: argparse.Namespace) -> pa.Table:
    from tams_analytics.analytics import coverage
    from tams_analytics.catalog.flow_guard import known_flow

    flows = args.flows or None
    for flow_id in flows or ():  # a typo or an id cut short is said, not reported as a flow without segments
        known_flow(catalog, flow_id)
    if args.show in ("gaps", "runs"):
        query = coverage.gaps if args.show == "gaps" else coverage.runs
        r = query(catalog, flows, within=args.within)
        labels = _labels(catalog)
        j = r.left_join(labels, r.flow_id == labels.lid)
        rows = coverage.with_timerange_text(j.drop("lid").order_by(["flow_id", "start_ns"]).to_pyarrow())
        keep = ["flow_id", "label", "timerange", "start_utc", "end_utc", "duration_ns", "duration_s"]
        return rows.select(keep + (["segments"] if args.show == "runs" else []))
    rows = coverage.summary(catalog, flows, within=args.within).to_pyarrow()
    hull = pa.table({"start_ns": rows.column("first_start_ns"), "end_ns": rows.column("last_end_ns")})
    rows = rows.append_column("timerange", coverage.with_timerange_text(hull).column("timerange"))
    rows = rows.rename_columns(
        [{"first_start_utc": "start_utc", "last_end_utc": "end_utc"}.get(c, c) for c in rows.column_names]
    )
    keep = ["flow_id", "label", "segments", "runs", "gaps", "timerange", "start_utc", "end_utc"]
    keep += ["covered_ns", "covered_s", "gap_ns", "gap_s", "seg_min_ns", "seg_max_ns", "seg_mean_ns", "seg_mean_s"]
    return rows.select(keep)


def _flows(catalog: Catalog, by: str) -> pa.Table:
    from tams_analytics.analytics import reports

    if by == "tags":
        return reports.flows_by_tag(catalog).to_pyarrow()
    if by.startswith("tag:") and len(by) > 4:
        return reports.flows_by_tag(catalog, by[4:]).to_pyarrow()
    if by not in reports.FLOW_GROUPS:
        raise UsageError(f"--by {by!r}: expected codec, format, container, tag:NAME or tags")
    return reports.flows_by(catalog, by).to_pyarrow()


def gaps_found(catalog: Catalog, args: argparse.Namespace, table: pa.Table) -> bool:
    """Whether ``report coverage`` found a gap (its findings: exit 1)."""
    if args.report != "coverage":
        return False
    if args.show == "gaps":
        return cast(int, table.num_rows) > 0
    if args.show is None:
        return any(n for n in table.column("gaps").to_pylist())
    from tams_analytics.analytics import coverage

    return int(coverage.gaps(catalog, args.flows or None, within=args.within).count().execute()) > 0


def build(catalog: Catalog, args: argparse.Namespace) -> pa.Table:
    """The report ``args.report`` as an Arrow table."""
    from tams_analytics.analytics import reports

    if args.report == "coverage":
        return _coverage(catalog, args)
    if args.report == "storage":
        return reports.storage(catalog, args.by).to_pyarrow()
    if args.report == "ingest":
        since = parse_since(args.since) if args.since else None
        return reports.ingest(catalog, args.every, since).to_pyarrow()
    return _flows(catalog, args.by)


def run(args: argparse.Namespace) -> int:
    from tams_analytics.exceptions import TamsError, said_on_cli

    try:
        catalog = open_catalog(args.store)
    except UsageError as exc:
        print(f"tams-analytics report: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        table = build(catalog, args)
        found = gaps_found(catalog, args, table)
    except (UsageError, TamsError) as exc:
        print(f"tams-analytics report {args.report}: {said_on_cli(exc)}", file=sys.stderr)
        return EXIT_USAGE
    finally:
        catalog.close()
    shown = SHOWN.get(getattr(args, "show", None) or args.report)
    emit(args.report, table, args.format, columns=shown, wide=args.wide)
    return EXIT_FINDINGS if found else EXIT_OK
