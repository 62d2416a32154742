"""tams-analytics: an exact, fast query layer for the BBC Time-addressable Media Store (TAMS).

>>> import tams_analytics as ta
>>> ta.TimeRange.from_str("[0:0_10:0)").overlaps(ta.TimeRange.from_str("[10:0]"))
False
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tams_analytics import display
from tams_analytics.exceptions import TamsError
from tams_analytics.timerange import TimeRange, Timestamp

if TYPE_CHECKING:
    from tams_analytics.catalog import Catalog

__all__ = ["Catalog", "TamsError", "TimeRange", "Timestamp", "__version__", "connect", "to_pandas"]
__version__ = "0.1.0"


def connect(url: str = "duckdb://", *, create: bool | None = None, **options: Any) -> Catalog:
    """Open a TAMS store by URL; a missing store is an error unless ``create=True``
    (see :func:`tams_analytics.catalog.connect`)."""
    from tams_analytics.catalog import connect as _connect

    return _connect(url, create=create, **options)


display.install_formatters()  # catalogs as HTML in a running IPython or Jupyter


def __getattr__(name: str) -> Any:
    if name == "Catalog":
        from tams_analytics.catalog import Catalog

        return Catalog
    if name == "to_pandas":  # a DataFrame keeping nullable integers integers (tams_analytics.dataframes)
        from tams_analytics.dataframes import to_pandas

        return to_pandas
    if name == "media":  # tams_analytics.media: download a range, look at a frame
        import tams_analytics.media

        return tams_analytics.media
    raise AttributeError(f"module 'tams_analytics' has no attribute {name!r}")
