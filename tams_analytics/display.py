"""What Jupyter shows of the library's objects: small, escaped HTML summaries and tables, with counts said in
words ("1 flow", "2 flows") and times in UTC.

>>> print(html_summary("Catalog", {"engine": "duckdb"}).replace(_CELL, ""))
<div class="tams"><strong>Catalog</strong><table><tr><th>engine</th><td>duckdb</td></tr></table></div>
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from tams_analytics.catalog import Catalog

__all__ = [
    "ScrollBox",
    "catalog_html",
    "duration",
    "excerpt",
    "html_summary",
    "html_table",
    "install_formatters",
    "mib",
    "plural",
    "scroll_box",
]

_CELL = ' style="text-align:left"'


def plural(n: int, noun: str, nouns: str | None = None) -> str:
    """``1 flow``, ``2 flows`` (``nouns`` for irregular plurals).

    >>> plural(1, "row"), plural(2, "row"), plural(0, "entity", "entities")
    ('1 row', '2 rows', '0 entities')
    """
    return f"{n} {noun if n == 1 else (nouns or noun + 's')}"


def mib(size: int) -> str:
    """A size in bytes as people read it in one line.

    >>> mib(512), mib(3 * 2**20 + 2**19), mib(5 * 2**30)
    ('512 bytes', '3.5 MiB', '5,120.0 MiB')
    """
    return f"{size:,} bytes" if size < 2**20 else f"{size / 2**20:,.1f} MiB"


def duration(ns: float | None) -> str:
    """A length of time for people: ``2.5 s``, ``1:00:01``, ``2 d 03:00:00`` (exact values stay in the ns columns).

    >>> duration(2_500_000_000), duration(3_601 * 10**9), duration(2 * 86_400 * 10**9 + 10_800 * 10**9)
    ('2.5 s', '1:00:01', '2 d 03:00:00')
    """
    if ns is None or ns != ns:  # None or NaN
        return ""
    seconds = ns / 1e9
    if abs(seconds) < 60:
        return f"{seconds:.3f}".rstrip("0").rstrip(".") + " s"
    days, rest = divmod(round(seconds), 86_400)
    hours, rest = divmod(rest, 3600)
    text = f"{hours}:{rest // 60:02d}:{rest % 60:02d}"
    return f"{days} d {hours:02d}:{rest // 60:02d}:{rest % 60:02d}" if days else text


def html_summary(title: str, items: Mapping[str, Any]) -> str:
    """A titled two-column table of ``name: value``."""
    rows = "".join(
        f"<tr><th{_CELL}>{html.escape(str(k))}</th><td{_CELL}>{html.escape(str(v))}</td></tr>" for k, v in items.items()
    )
    return f'<div class="tams"><strong>{html.escape(title)}</strong><table>{rows}</table></div>'


def html_table(df: pd.DataFrame, max_rows: int = 50) -> str:
    """A DataFrame as an HTML table (escaped; at most ``max_rows`` rows, saying how many there are)."""
    shown: str = df.head(max_rows).to_html(index=False, na_rep="", escape=True, border=0)
    more = f"<p>{len(df) - max_rows} more rows not shown</p>" if len(df) > max_rows else ""
    return shown + more


class ScrollBox:
    """A table shown in a box of its own that scrolls, down and across, where a notebook would show it whole: as tall
    as all its rows (a 50-row table is 3,000 pixels of notebook) and as wide as its columns (past the notebook's
    edge). The table is :attr:`frame`; its text form (a terminal, ``print``) is the DataFrame's."""

    def __init__(self, frame: pd.DataFrame, height: str = "24em") -> None:
        self.frame = frame
        self.height = height

    def _repr_html_(self) -> str:
        table: str = self.frame.to_html(max_rows=None, max_cols=None, notebook=True, border=0)
        style = f"max-height:{html.escape(self.height)};max-width:100%;overflow:auto"
        return f'<div class="tams-scroll" style="{style}">{table}</div>'

    def __repr__(self) -> str:
        return repr(self.frame)


def scroll_box(frame: pd.DataFrame, height: str = "24em") -> ScrollBox:
    """``frame`` shown in a box that scrolls, at most ``height`` tall (a CSS length) and as wide as the notebook.

    >>> import pandas as pd
    >>> box = scroll_box(pd.DataFrame({"flow": ["a", "b"]}), height="10em")
    >>> box._repr_html_().startswith('<div class="tams-scroll" style="max-height:10em;max-width:100%;overflow:auto">')
    True
    >>> box.frame.shape
    (2, 1)
    """
    return ScrollBox(frame, height)


def excerpt(text: str, *marks: str, head: int = 10, context: int = 3) -> str:
    """The first ``head`` lines of ``text``, and the lines around each line holding one of ``marks`` (``context``
    before and after), with one line saying how many lines each gap leaves out (a gap of one line is shown): a long
    SQL statement shown by what matters in it (``print`` the text for all of it).

    >>> print(excerpt("\\n".join(f"line {i}" for i in range(1, 21)), "line 15", head=2, context=1))
    line 1
    line 2
    … 11 lines …
    line 14
    line 15
    line 16
    … 4 lines …
    """
    lines = text.splitlines()
    keep = set(range(min(head, len(lines))))
    for i, line in enumerate(lines):
        if any(mark in line for mark in marks):
            keep.update(range(max(0, i - context), min(len(lines), i + context + 1)))
    keep.update(i for i in range(1, len(lines) - 1) if i - 1 in keep and i + 1 in keep)  # no gap of one line
    out: list[str] = []
    skipped = 0
    for i, line in enumerate(lines):
        if i in keep:
            if skipped:
                out.append(f"… {plural(skipped, 'line')} …")
                skipped = 0
            out.append(line)
        else:
            skipped += 1
    if skipped:
        out.append(f"… {plural(skipped, 'line')} …")
    return "\n".join(out)


def catalog_html(catalog: Catalog) -> str:
    """A catalog's summary (:meth:`~tams_analytics.catalog.Catalog.summary`) as HTML."""
    return html_summary("TAMS catalog", catalog.summary())


def install_formatters(shell: Any = None) -> bool:
    """Show catalogs as HTML in IPython and Jupyter: registered with the shell's HTML formatter (the running one
    by default), so the catalog itself knows nothing of display. Returns whether a shell was there."""
    if shell is None:
        import sys

        if "IPython" not in sys.modules:  # no shell can be running; importing IPython here would cost 0.3 s
            return False
        from IPython import get_ipython

        shell = get_ipython()
        if shell is None:
            return False
    formatter = shell.display_formatter.formatters["text/html"]
    formatter.for_type_by_name("tams_analytics.catalog.facade", "Catalog", catalog_html)
    return True
