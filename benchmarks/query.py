"""One flow, one hour: the library's segment query against hand-written SQL and against string parsing.

The library side is :meth:`Catalog.segment_rows` — the call the server makes for every segments page —
which renders the predicate tree straight to parameterised SQL. The lazy ibis path
(``catalog.segments(...)`` executed) is timed too, for information: it pays an ibis compile per call.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import pyarrow as pa

from benchmarks.measure import interleaved, median_time
from benchmarks.stores import Store
from tams_analytics.catalog import Catalog, connect
from tams_analytics.compat import arrow_table
from tams_analytics.engines.duckdb import Engine as DuckDBEngine
from tams_analytics.schema import SEGMENTS
from tams_analytics.timerange import TimeRange

#: rows per query: the server's maximum page
LIMIT = 1000

_COLUMNS = ", ".join(f'"{f.name}"' for f in SEGMENTS)
RAW_SQL = f"SELECT {_COLUMNS} FROM segments WHERE flow_id = ? AND start_ns < ? AND end_ns > ? ORDER BY start_ns LIMIT ?"
FLOW_SQL = f"SELECT {_COLUMNS} FROM segments WHERE flow_id = ?"


@dataclass(frozen=True)
class QueryTimes:
    """Median seconds per query on one store."""

    segments: int
    flow_segments: int
    rows: int
    library_s: float
    raw_s: float
    ibis_s: float
    string_parse_s: float


def string_parse_query(con: Any, flow_id: str, window: TimeRange, limit: int) -> pa.Table:
    """The approach this library replaces: fetch the flow's rows, then per row in Python parse the
    timerange text (both bounds) and compare it with the window; sort the hits by start, keep ``limit``."""
    rows = arrow_table(con, FLOW_SQL, [flow_id])
    hits: list[tuple[int, int]] = []
    for i, text in enumerate(rows.column("timerange").to_pylist()):
        tr = TimeRange.from_str(text)
        if tr.overlaps(window):
            hits.append((tr.start_ns or 0, i))
    hits.sort()
    return rows.take([i for _, i in hits[:limit]])


class QueryBench:
    """The compared queries on one open store."""

    def __init__(self, store: Store, limit: int = LIMIT) -> None:
        self.store = store
        self.limit = limit
        self.catalog: Catalog = connect(store.url)
        # a second, plain DuckDB connection to the same database (DuckDB 1.5 and later attach a file once a process)
        engine = self.catalog.engine
        assert isinstance(engine, DuckDBEngine)
        self.raw = engine.connection()

    def close(self) -> None:
        self.raw.close()
        self.catalog.close()

    def __enter__(self) -> QueryBench:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def library(self) -> pa.Table:
        return self.catalog.segment_rows(self.store.flow_id, timerange=self.store.window, limit=self.limit)

    def raw_sql(self) -> pa.Table:
        lo, hi = self.store.window.storage_bounds()
        return arrow_table(self.raw, RAW_SQL, [self.store.flow_id, hi, lo, self.limit])

    def ibis(self) -> pa.Table:
        t = self.catalog.segments(self.store.flow_id, timerange=self.store.window)
        return t.order_by("start_ns").limit(self.limit).to_pyarrow()

    def string_parse(self) -> pa.Table:
        return string_parse_query(self.raw, self.store.flow_id, self.store.window, self.limit)

    def check_same_rows(self) -> int:
        """Every side answers the same rows with the same columns; returns how many."""
        expected = self.raw_sql()
        for name, got in (("library", self.library()), ("ibis", self.ibis()), ("string parse", self.string_parse())):
            if not got.cast(expected.schema).equals(expected):
                raise RuntimeError(f"the {name} query does not answer the same rows as the SQL query")
        return cast(int, expected.num_rows)

    def measure(self, repeat: int, slow_repeat: int) -> QueryTimes:
        rows = self.check_same_rows()
        fast = interleaved(
            {"library": self.library, "raw": self.raw_sql, "ibis": self.ibis}, repeat=repeat, warmup=max(3, repeat // 4)
        )
        slow = median_time(self.string_parse, repeat=slow_repeat, warmup=1)
        return QueryTimes(
            segments=self.store.segments,
            flow_segments=self.store.flow_segments,
            rows=rows,
            library_s=fast["library"],
            raw_s=fast["raw"],
            ibis_s=fast["ibis"],
            string_parse_s=slow,
        )


def measure_store(store: Store, *, repeat: int, slow_repeat: int, limit: int = LIMIT) -> QueryTimes:
    """Open ``store``, check the compared queries agree, and time them."""
    with QueryBench(store, limit) as bench:
        return bench.measure(repeat, slow_repeat)


def library_growth(small: Store, large: Store, *, repeat: int, limit: int = LIMIT) -> tuple[float, float]:
    """Median seconds of the library query on ``small`` and on ``large``, both open and interleaved."""
    with QueryBench(small, limit) as a, QueryBench(large, limit) as b:
        times = interleaved({"small": a.library, "large": b.library}, repeat=repeat, warmup=max(3, repeat // 4))
    return times["small"], times["large"]
