"""How the jobs print tables: JSON and CSV for machines (every column, exact values), and for people a table
that fits the terminal.

JSON is one document ``{"report": name, "columns": [...], "rows": [{column: value}]}`` with every column present
in every row, integers exact, timestamps in ISO 8601 UTC; CSV has a header row and the same columns.

The people's table fits :data:`WIDTH` columns: a report names the columns worth reading (``--wide`` shows them
all, unwrapped), durations in seconds (``*_s``) read in one format, ``H:MM:SS`` with the fraction of a second
when there is one (``0:00:02.5``, ``1:00:01``, ``50:00:00``), so a column of them lines up and compares at a
glance; format URNs read by their short names, and the widest text columns wrap onto continuation lines rather
than lose anything, at spaces only: no column is narrower than its longest word, so ids, storage keys and
timeranges stay whole (a table of long ids may then be wider than :data:`WIDTH`).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import sys
import textwrap
from collections.abc import Callable, Sequence
from typing import IO, Any, Final

import pyarrow as pa

from tams_analytics.display import mib, plural
from tams_analytics.filters import FORMATS

__all__ = ["FORMATS_OUT", "WIDTH", "clock", "emit", "format_table", "mib", "progress_for", "records"]

FORMATS_OUT: Final = ("table", "json", "csv")
#: terminal width the people's table fits by default
WIDTH: Final = 120
_GAP: Final = "  "
_MIN_WRAP: Final = 12
_SHORT_FORMAT: Final = {urn: short for short, urn in FORMATS.items()}


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


def _cell(column: str, value: Any) -> str:
    """A value as people read it in the table."""
    if value is None:
        return ""
    if column.endswith("_s") and isinstance(value, int | float):
        return clock(value)
    if column == "format" and isinstance(value, str):
        return _SHORT_FORMAT.get(value, value)
    if isinstance(value, dt.datetime) and value.microsecond:  # 22:13:25.24Z, not 22:13:25.240000Z
        head, _, frac = _text(value).removesuffix("Z").partition(".")
        return f"{head}.{frac.rstrip('0')}Z"
    return _text(value)


def clock(seconds: float) -> str:
    """A duration as ``H:MM:SS``, with milliseconds when it has them: one format for every duration in a table.

    >>> clock(2.5), clock(58), clock(130), clock(3601), clock(180_000), clock(0.0004)
    ('0:00:02.5', '0:00:58', '0:02:10', '1:00:01', '50:00:00', '0:00:00')
    """
    if seconds != seconds:  # NaN
        return ""
    sign = "-" if seconds < 0 else ""
    whole, ms = divmod(round(abs(seconds) * 1000), 1000)
    hours, rest = divmod(whole, 3600)
    text = f"{sign}{hours}:{rest // 60:02d}:{rest % 60:02d}"
    return f"{text}.{ms:03d}".rstrip("0") if ms else text


def records(table: pa.Table) -> list[dict[str, Any]]:
    """Rows with JSON-able values, in column order."""
    return [{k: _json_value(v) for k, v in row.items()} for row in table.to_pylist()]


def _fit(
    widths: dict[str, int], wrappable: Sequence[Sequence[str]], width: int, least: dict[str, int] | None = None
) -> dict[str, int]:
    """Narrow the widest columns of the first group of ``wrappable`` (then the next group) until the row fits
    ``width``, none below :data:`_MIN_WRAP` nor below its ``least`` (its longest word: an id is never cut)."""
    widths = dict(widths)
    floor = {c: max(_MIN_WRAP, (least or {}).get(c, 0)) for c in widths}
    total = sum(widths.values()) + len(_GAP) * (len(widths) - 1)
    for group in wrappable:
        while total > width:
            candidates = [c for c in group if widths[c] > floor[c]]
            if not candidates:
                break
            widest = max(candidates, key=lambda c: widths[c])
            others = [widths[c] for c in candidates if c != widest]
            # down to the next widest (or as far as needed), so the widest columns share the cut
            cut = min(total - width, widths[widest] - max([floor[widest], *others]) or 1)
            widths[widest] -= cut
            total -= cut
    return widths


def _longest_word(values: Sequence[str]) -> int:
    """The length of the longest word (text between spaces) of ``values``: what a column cannot be narrower than
    without breaking an id, a key or a timerange in two."""
    return max((len(w) for v in values for w in v.split()), default=0)


def format_table(
    table: pa.Table, *, drop_empty: bool = False, width: int | None = WIDTH, columns: Sequence[str] | None = None
) -> str:
    """A plain text table: numbers right-aligned, ``columns`` only (when given), fitted to ``width`` by
    wrapping text columns (``None``: as wide as it takes)."""
    names = [c for c in (columns or table.column_names) if c in table.column_names]
    cells = {c: [_cell(c, v) for v in table.column(c).to_pylist()] for c in names}
    if drop_empty:
        names = [c for c in names if any(cells[c])]
    numeric = {c for c in names if pa.types.is_integer(table.schema.field(c).type) or c.endswith("_s")}
    numeric |= {c for c in names if pa.types.is_floating(table.schema.field(c).type)}
    widths = {c: max([len(c), *(len(v) for v in cells[c])]) for c in names}
    if width is not None:
        # prose (labels, details) wraps first; identifiers and times only when nothing else is left
        text = [c for c in names if c not in numeric]
        prose = [c for c in text if any(" " in v for v in cells[c])]
        least = {c: _longest_word([c, *cells[c]]) for c in names}
        widths = _fit(widths, [prose, [c for c in text if c not in prose]], width, least)

    def lines(values: Sequence[str]) -> list[str]:
        wrapped = {c: _wrap(v, widths[c]) if len(v) > widths[c] else [v] for c, v in zip(names, values, strict=True)}
        depth = max(len(w) for w in wrapped.values())
        out = []
        for i in range(depth):
            parts = []
            for c in names:
                v = wrapped[c][i] if i < len(wrapped[c]) else ""
                parts.append(v.rjust(widths[c]) if c in numeric else v.ljust(widths[c]))
            out.append(_GAP.join(parts).rstrip())
        return out

    out = lines(names) + lines(["-" * widths[c] for c in names])
    for i in range(table.num_rows):
        out += lines([cells[c][i] for c in names])
    return "\n".join(out)


def emit(
    name: str,
    table: pa.Table,
    fmt: str,
    out: IO[str] | None = None,
    *,
    columns: Sequence[str] | None = None,
    wide: bool = False,
) -> None:
    """Write a report ``table`` to ``out`` (stdout) as ``table``, ``json`` or ``csv``; the people's table shows
    ``columns`` (every column when ``wide``) and fits :data:`WIDTH` unless ``wide``."""
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
        shown = None if wide else columns
        out.write(format_table(table, columns=shown, width=None if wide else WIDTH) + "\n")
        out.write(f"({plural(table.num_rows, 'row')})\n")


def _wrap(text: str, width: int) -> list[str]:
    """``text`` in lines of at most ``width``, broken at spaces only: an id, a key or a timerange is never cut (not
    at its hyphens either), so it can be found and copied whole; a word longer than a line has a line of its own
    (the table keeps every column at least as wide as its longest word)."""
    return textwrap.wrap(text, width, break_long_words=False, break_on_hyphens=False) or [""]


def progress_for(command: str, off: bool = False) -> bool | Callable[[str], None]:
    """How a long job shows progress: a bar on a terminal; off one (logs, pipes, cron) a line on stderr every few
    seconds, naming ``command``; nothing when ``off``."""
    if off:
        return False
    if sys.stderr.isatty():
        return True
    return lambda line: print(f"tams-analytics {command}: {line}", file=sys.stderr, flush=True)
