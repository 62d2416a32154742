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

__all__ = ["catalog_html", "duration", "html_summary", "html_table", "install_formatters", "mib", "plural"]

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
