"""Analytics over a TAMS catalog: pure functions from a :class:`~tams_analytics.catalog.Catalog` to ibis
expressions, so the engine (DuckDB, VAST DB, Trino) does the work and results come back as Arrow or pandas.

* :mod:`~tams_analytics.analytics.coverage`: contiguous runs, gaps and per-flow statistics;
* :mod:`~tams_analytics.analytics.integrity`: the store audit (overlaps, orphans, dangling references,
  missing media);
* :mod:`~tams_analytics.analytics.reports`: storage use, ingest over time, flows by codec/format/tag;
* :mod:`~tams_analytics.analytics.schedule`: a broadcast schedule (UTC) against coverage: programmes with gaps
  in their recordings and how much is missing.

>>> import tams_analytics as ta
>>> from tams_analytics.analytics import coverage
>>> coverage.summary(ta.connect("duckdb://")).count().execute()
0
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tams_analytics.lazy import lazy_exports

if TYPE_CHECKING:
    from tams_analytics.analytics import coverage, integrity, reports, schedule

__all__ = ["coverage", "integrity", "reports", "schedule"]

# the modules load on first use: the command line imports this package's findings without the ibis they build on
__getattr__ = lazy_exports(__name__, {name: f".{name}" for name in __all__})
