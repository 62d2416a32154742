"""``tams-analytics report``: coverage, storage, ingest and flow reports as a table, JSON or CSV.

The output helpers here (:func:`emit`, :func:`open_catalog`) are shared with ``tams-analytics integrity``.
JSON is one document ``{"report": name, "columns": [...], "rows": [{column: value}]}`` with every column
present in every row, integers exact, timestamps in ISO 8601 UTC; CSV has a header row and the same
columns; the table is for people.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import io
import json
import re
import sys
from collections.abc import Sequence
from typing import IO, TYPE_CHECKING, Any, Final

import pyarrow as pa

from tams_analytics.cli.__main__ import EXIT_OK, EXIT_USAGE
from tams_analytics.engines import redacted

if TYPE_CHECKING:
    from tams_analytics.catalog import Catalog

FORMATS: Final = ("table", "json", "csv")
_RELATIVE: Final = re.compile(r"^(\d+)([mhdw])$")
_UNITS: Final = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


class UsageError(Exception):
    """A bad option value or an unreachable store: exit code 2."""


# -- shared helpers -----------------------------------------------------------------------------------------
def open_catalog(url: str | None, **options: Any) -> Catalog:
    """Connect to an existing store, turning any failure into :class:`UsageError` (exit code 2)."""
    from tams_analytics.catalog import connect

    if not url:
        raise UsageError("no store: give --store URL or set TAMS_STORE")
    try:
        return connect(url, **options)
    except Exception as exc:
        # engines may quote the URL in their message: never echo credentials
        reason = str(exc).replace(url, redacted(url))
        raise UsageError(f"cannot open store {redacted(url)}: {reason}") from None


def parse_since(text: str, now: dt.datetime | None = None) -> dt.datetime:
    """``7d``, ``24h``, ``30m``, ``2w`` before ``now``, or an ISO 8601 date or date-time (UTC unless given).

    >>> parse_since("2024-01-02").isoformat()
    '2024-01-02T00:00:00+00:00'
    >>> parse_since("2h", dt.datetime(2024, 1, 2, 12, tzinfo=dt.UTC)).isoformat()
    '2024-01-02T10:00:00+00:00'
    """
    m = _RELATIVE.match(text.strip())
    if m:
        now = now or dt.datetime.now(dt.UTC)
        return now - dt.timedelta(**{_UNITS[m.group(2)]: int(m.group(1))})
    try:
        value = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise UsageError(f"--since {text!r}: expected an ISO date/time or a span like 24h, 7d, 30m, 2w") from None
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def _json_value(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, float) and value != value:  # NaN
        return None
    return value


def _text(value: Any) -> str:
    value = _json_value(value)
    if value is None:
        return ""
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else f"{value:.3f}"
    if isinstance(value, list):
        return " ".join(map(str, value))
    return str(value)


def records(table: pa.Table) -> list[dict[str, Any]]:
    """Rows with JSON-able values, in column order."""
    return [{k: _json_value(v) for k, v in row.items()} for row in table.to_pylist()]


def format_table(table: pa.Table, *, drop_empty: bool = False) -> str:
    """A plain text table (columns padded, numbers right-aligned)."""
    columns = list(table.column_names)
    cells = {c: [_text(v) for v in table.column(c).to_pylist()] for c in columns}
    if drop_empty:
        columns = [c for c in columns if any(cells[c])]
    numeric = {
        c
        for c in columns
        if pa.types.is_integer(table.schema.field(c).type) or pa.types.is_floating(table.schema.field(c).type)
    }
    widths = {c: max([len(c), *(len(v) for v in cells[c])]) for c in columns}

    def line(values: Sequence[str]) -> str:
        parts = [
            v.rjust(widths[c]) if c in numeric else v.ljust(widths[c]) for c, v in zip(columns, values, strict=True)
        ]
        return "  ".join(parts).rstrip()

    out = [line(columns), line(["-" * widths[c] for c in columns])]
    out += [line([cells[c][i] for c in columns]) for i in range(table.num_rows)]
    return "\n".join(out)


def emit(name: str, table: pa.Table, fmt: str, out: IO[str] | None = None) -> None:
    """Write a report ``table`` to ``out`` (stdout) as ``table``, ``json`` or ``csv``."""
    out = out or sys.stdout
    if fmt == "json":
        doc = {"report": name, "columns": table.column_names, "rows": records(table)}
        out.write(json.dumps(doc, indent=2) + "\n")
    elif fmt == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(table.column_names)
        for row in table.to_pylist():
            writer.writerow([_text(v) for v in row.values()])
        out.write(buf.getvalue())
    else:
        out.write(format_table(table) + "\n")
        out.write(f"({table.num_rows} rows)\n")


def common_options(p: argparse.ArgumentParser) -> None:
    import os

    p.add_argument("--store", default=os.environ.get("TAMS_STORE"), help="catalog URL (default: $TAMS_STORE)")
    p.add_argument("--format", choices=FORMATS, default="table", help="output format (default table)")


# -- the command ----------------------------------------------------------------------------------------------
def add_parser(sub: Any) -> None:
    p = sub.add_parser("report", help="coverage, storage, ingest and flow reports (table, JSON or CSV)")
    kinds = p.add_subparsers(dest="report", required=True, metavar="REPORT")
    cov = kinds.add_parser("coverage", help="per flow: segments, runs, gaps, covered time, segment durations")
    common_options(cov)
    cov.add_argument("--flow", action="append", dest="flows", metavar="FLOW_ID", help="only these flows")
    cov.add_argument("--within", metavar="TIMERANGE", help="only this TAMS timerange, e.g. [1700000000:0_1700003600:0)")
    show = cov.add_mutually_exclusive_group()
    show.add_argument("--gaps", action="store_const", const="gaps", dest="show", help="list the gaps instead")
    show.add_argument("--runs", action="store_const", const="runs", dest="show", help="list the contiguous runs")
    st = kinds.add_parser("storage", help="bytes and objects per flow, source or format")
    common_options(st)
    st.add_argument("--by", choices=("flow", "source", "format"), default="flow")
    ing = kinds.add_parser("ingest", help="segments and bytes registered per hour or day")
    common_options(ing)
    ing.add_argument("--since", help="only since this time: ISO date/time, or 24h, 7d, 30m, 2w ago")
    ing.add_argument("--every", choices=("hour", "day"), default="hour")
    fl = kinds.add_parser("flows", help="flows per codec, format, container or tag")
    common_options(fl)
    fl.add_argument("--by", default="format", help="codec, format, container, tag:NAME, or tags (every tag)")
    p.set_defaults(run=run)


def _coverage(catalog: Catalog, args: argparse.Namespace) -> pa.Table:
    from tams_analytics.analytics import coverage

    flows = args.flows or None
    if args.show in ("gaps", "runs"):
        query = coverage.gaps if args.show == "gaps" else coverage.runs
        rows = query(catalog, flows, within=args.within).to_pyarrow()
        table = coverage.with_timerange_text(rows)
        keep = ["flow_id", "timerange", "duration_ns"] + (["segments"] if args.show == "runs" else [])
        return table.select(keep)
    summary = coverage.summary(catalog, flows, within=args.within)
    labels = catalog.table("flows").select(lid="id", label="label")
    j = summary.left_join(labels, summary.flow_id == labels.lid)
    rows = (
        j.select(
            "flow_id",
            "label",
            "segments",
            "runs",
            "gaps",
            "first_start_ns",
            "last_end_ns",
            "covered_ns",
            "gap_ns",
            "seg_min_ns",
            "seg_max_ns",
            "seg_mean_ns",
        )
        .order_by("flow_id")
        .to_pyarrow()
    )
    hull = pa.table({"start_ns": rows.column("first_start_ns"), "end_ns": rows.column("last_end_ns")})
    rows = rows.add_column(5, "timerange", coverage.with_timerange_text(hull).column("timerange"))
    return rows.drop_columns(["first_start_ns", "last_end_ns"])


def _flows(catalog: Catalog, by: str) -> pa.Table:
    from tams_analytics.analytics import reports

    if by == "tags":
        return reports.flows_by_tag(catalog).to_pyarrow()
    if by.startswith("tag:") and len(by) > 4:
        return reports.flows_by_tag(catalog, by[4:]).to_pyarrow()
    if by not in reports.FLOW_GROUPS:
        raise UsageError(f"--by {by!r}: expected codec, format, container, tag:NAME or tags")
    return reports.flows_by(catalog, by).to_pyarrow()


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
    from tams_analytics.exceptions import TamsError

    try:
        catalog = open_catalog(args.store)
    except UsageError as exc:
        print(f"tams-analytics report: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        table = build(catalog, args)
    except (UsageError, TamsError) as exc:
        print(f"tams-analytics report {args.report}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    finally:
        catalog.close()
    emit(args.report, table, args.format)
    return EXIT_OK
