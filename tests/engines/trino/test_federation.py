"""Federation for real: an archive's programme schedule in PostgreSQL (broadcast times in UTC) joined by Trino with
the TAMS segments in one query, answering which programmes have gaps in their recordings and how much is missing.

The answer is checked three ways: against the same function on DuckDB (the schedule as a table there), against a
plain Python computation from the segments (UTC to TAI with :mod:`tams_analytics.leapseconds`), and against what
was planted: the gap of the demo store, the leap second the leap flow lacks, a flow without segments, a flow TAMS
does not have.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import ibis
import pyarrow as pa
import pytest

from tams_analytics.analytics import schedule
from tams_analytics.catalog import Catalog
from tams_analytics.engines.trino import Engine as TrinoEngine
from tams_analytics.exceptions import TamsError
from tams_analytics.leapseconds import NS_PER_SECOND, utc_to_tai_ns
from tests.engines.trino.edge_cases import S
from tests.fixtures.trino import Schedule, TrinoStore


@pytest.fixture(scope="module")
def trino(trino_store: TrinoStore) -> Iterator[Catalog]:
    cat = trino_store.connect("hive")
    yield cat
    cat.close()


def _on_trino(cat: Catalog, sched: Schedule) -> Any:
    engine = cat.engine
    assert isinstance(engine, TrinoEngine)
    return engine.foreign_table(sched.table, catalog=sched.catalog, schema=sched.schema)


def _tai(value: Any) -> int:
    return utc_to_tai_ns(int(value.timestamp()) * NS_PER_SECOND + value.microsecond * 1000)


def _expected(store: TrinoStore, row: dict[str, Any]) -> tuple[int, int, int]:
    """(scheduled, recorded, gaps) from the flow's segment rows, in Python."""
    lo, hi = _tai(row["start_utc"]), _tai(row["end_utc"])
    seg = store.duckdb.rows("segments", columns=["flow_id", "start_ns", "end_ns"]).to_pylist()
    parts = sorted((max(s["start_ns"], lo), min(s["end_ns"], hi)) for s in seg if s["flow_id"] == row["flow_id"])
    parts = [(a, b) for a, b in parts if a < b]
    recorded, gaps, reach = 0, 0, lo
    for a, b in parts:
        if a > reach:
            gaps += 1
        recorded += max(0, b - max(a, reach))
        reach = max(reach, b)
    if reach < hi:
        gaps += 1
    return hi - lo, recorded, gaps


def test_programme_coverage_through_trino(trino_store: TrinoStore, trino_schedule: Schedule, trino: Catalog) -> None:
    got = schedule.programme_coverage(trino, _on_trino(trino, trino_schedule)).to_pyarrow().to_pylist()
    assert [r["programme_id"] for r in got] == [
        r["programme_id"] for r in sorted(trino_schedule.rows, key=lambda r: (_tai(r["start_utc"]), r["programme_id"]))
    ]
    for row in got:
        source = next(r for r in trino_schedule.rows if r["programme_id"] == row["programme_id"])
        scheduled, recorded, gaps = _expected(trino_store, source)
        assert (row["scheduled_ns"], row["recorded_ns"], row["gaps"]) == (scheduled, recorded, gaps), row
        assert row["missing_ns"] == scheduled - recorded and row["missing_s"] == (scheduled - recorded) / 1e9
        assert row["title"] == source["title"] and row["start_utc"] == source["start_utc"]
    by_id = {r["programme_id"]: r for r in got}
    # the planted answers: the demo gap, the leap second (an 11 s programme on the TAMS timeline, 10 s of POSIX
    # time: TAI counts the leap second), nothing on the empty or unknown flows, all of the whole one
    gap_start, gap_end = trino_store.planted["gap"]
    assert by_id["p-gap"]["missing_ns"] >= gap_end - gap_start and by_id["p-gap"]["gaps"] >= 1
    assert (by_id["p-leap"]["scheduled_ns"], by_id["p-leap"]["missing_ns"], by_id["p-leap"]["gaps"]) == (11 * S, S, 1)
    assert by_id["p-leap"]["timerange"] == "[1483228831:0_1483228842:0)"
    assert by_id["p-empty"]["recorded_ns"] == 0 and by_id["p-empty"]["missing_s"] == 3600.0
    assert by_id["p-unknown"]["recorded_ns"] == 0 and by_id["p-unknown"]["gaps"] == 1
    assert (by_id["p-whole"]["missing_ns"], by_id["p-whole"]["gaps"]) == (0, 0)


def test_trino_and_duckdb_agree(trino_store: TrinoStore, trino_schedule: Schedule, trino: Catalog) -> None:
    on_trino = schedule.programmes_with_gaps(trino, _on_trino(trino, trino_schedule)).to_pyarrow()
    local = ibis.memtable(pa.Table.from_pylist(trino_schedule.rows))
    on_duckdb = schedule.programmes_with_gaps(trino_store.duckdb, local).to_pyarrow()
    assert on_trino.column_names == on_duckdb.column_names
    assert on_trino.cast(on_duckdb.schema).to_pylist() == on_duckdb.to_pylist()
    assert [r["programme_id"] for r in on_trino.to_pylist()][-1] == "p-leap"  # least missing last
    assert "p-whole" not in on_trino.column("programme_id").to_pylist()


def test_one_trino_query_reads_both_catalogs(trino_schedule: Schedule, trino: Catalog) -> None:
    engine = trino.engine
    assert isinstance(engine, TrinoEngine)
    sql = engine.compile(schedule.programme_coverage(trino, _on_trino(trino, trino_schedule)))
    assert '"archive"."public"."schedule"' in sql and '"segments"' in sql
    plan = engine.sql(f"EXPLAIN (TYPE IO, FORMAT JSON) {sql}").column(0)[0].as_py()
    assert '"catalog" : "archive"' in plan and '"catalog" : "hive"' in plan


def test_a_schedule_without_the_columns_is_refused(trino_schedule: Schedule, trino: Catalog) -> None:
    with pytest.raises(TamsError, match="no column 'starts'"):
        schedule.programme_coverage(trino, _on_trino(trino, trino_schedule), start="starts")
