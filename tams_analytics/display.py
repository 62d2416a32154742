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

__all__ = ["catalog_html", "catalog_repr", "duration", "html_summary", "html_table", "plural"]

#: what a catalog's summary counts
COUNTED = ("sources", "flows", "segments", "objects")

_CELL = ' style="text-align:left"'


def plural(n: int, noun: str, nouns: str | None = None) -> str:
    """``1 flow``, ``2 flows`` (``nouns`` for irregular plurals).

    >>> plural(1, "row"), plural(2, "row"), plural(0, "entity", "entities")
    ('1 row', '2 rows', '0 entities')
    """
    return f"{n} {noun if n == 1 else (nouns or noun + 's')}"


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
    shown = df.head(max_rows).to_html(index=False, na_rep="", escape=True, border=0)
    more = f"<p>{len(df) - max_rows} more rows not shown</p>" if len(df) > max_rows else ""
    return shown + more


def store_of(catalog: Catalog) -> str:
    """The store a catalog is open on, without credentials: a path, a URL, or ``memory``."""
    from tams_analytics.engines import redacted

    path = getattr(catalog.engine, "path", None)  # a file engine (DuckDB) names its file
    if isinstance(path, str):
        if path == ":memory:":
            return "memory"
        return "/" + path.lstrip("/") if path.startswith("/") else path
    url = catalog.engine.url
    if not (url.netloc or url.path):
        return "memory"
    return redacted(url.geturl())


def _counts(catalog: Catalog) -> dict[str, Any]:
    try:
        return {name: catalog.count(name) for name in COUNTED}
    except Exception as exc:  # a summary must never fail: say why there are no counts
        return {"counts": f"unavailable ({type(exc).__name__}: {exc})"}


def catalog_repr(catalog: Catalog) -> str:
    """``Catalog(engine='duckdb', store='/data/tams.duckdb', sources=4, flows=5, segments=1200, objects=1200)``."""
    counts = ", ".join(f"{k}={v}" if isinstance(v, int) else f"{k}={v!r}" for k, v in _counts(catalog).items())
    return f"Catalog(engine={catalog.name!r}, store={store_of(catalog)!r}, {counts})"


def catalog_html(catalog: Catalog) -> str:
    items: dict[str, Any] = {"engine": catalog.name, "store": store_of(catalog)}
    if catalog.caches_reads:
        items["read cache"] = "on"
    return html_summary("TAMS catalog", items | _counts(catalog))
