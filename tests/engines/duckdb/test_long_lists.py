"""Long value lists on DuckDB: bound as Arrow tables (``IN (SELECT v FROM ...)``), answering exactly what
the same filter answers with the values inline, for every statement kind, and leaving nothing registered."""

from __future__ import annotations

import time
from pathlib import Path

import pyarrow as pa
import pytest

from tams_analytics.engines import open_engine
from tams_analytics.engines.duckdb import Engine
from tams_analytics.engines.duckdb.lists import MAX_INLINE, ROWS_PER_VALUE, ListLimits
from tams_analytics.engines.sql import LONG_LIST, Params, where_sql
from tams_analytics.predicates import InSubquery, Term, isin


@pytest.fixture
def engine(engine: Engine) -> Engine:
    """The DuckDB file with 1,000 objects, every other one registered."""
    rows = [{"id": f"o{i}", "storage_id": None, "registered": i % 2 == 0} for i in range(1000)]
    engine.insert("objects", pa.Table.from_pylist(rows))
    return engine


def _registered(engine: Engine) -> list[str]:
    names = engine.sql("SELECT view_name FROM duckdb_views() WHERE NOT internal").column(0).to_pylist()
    return [n for n in names if n.startswith("_tams_values")]


def test_long_lists_are_bound_as_tables_and_answer_exactly(engine: Engine) -> None:
    wanted = [f"o{i}" for i in range(0, 1000, 3)] + ["missing"]  # 335 values, one absent
    params = Params(tables=True)
    assert "SELECT v FROM" in where_sql([isin("id", wanted)], params) and params.tables
    expected = {f"o{i}" for i in range(0, 1000, 3)}
    got = engine.query("objects", [isin("id", wanted)], columns=["id"])
    assert set(got.column("id").to_pylist()) == expected
    assert engine.count("objects", [isin("id", wanted)]) == len(expected)
    assert engine.count("objects", [isin("id", wanted), Term("registered", "==", True)]) == sum(
        1 for i in range(0, 1000, 3) if i % 2 == 0
    )
    assert engine.update("objects", [isin("id", wanted)], {"registered": False}) == len(expected)
    assert engine.count("objects", [Term("registered", "==", True)]) == sum(
        1 for i in range(1000) if i % 2 == 0 and i % 3 != 0
    )
    assert engine.delete("objects", [isin("id", wanted)]) == len(expected)
    assert engine.count("objects") == 1000 - len(expected)
    assert _registered(engine) == [], "every bound table is unregistered after its statement"


def test_short_lists_inline_and_odd_values_fall_back_to_a_list_parameter(engine: Engine) -> None:
    params = Params(tables=True)
    assert where_sql([isin("id", ["o1", "o2"])], params) == ' WHERE "id" IN (?, ?)' and not params.tables
    mixed = [*[f"o{i}" for i in range(LONG_LIST)], 7]  # not one Arrow type: bound as a list parameter
    params = Params(tables=True)
    assert "unnest(?)" in where_sql([isin("id", mixed)], params) and not params.tables
    with_none = [None, *[f"o{i}" for i in range(LONG_LIST + 1)]]
    params = Params(tables=True)
    assert "unnest(?)" in where_sql([isin("id", with_none)], params) and not params.tables
    assert engine.count("objects", [isin("id", with_none)]) == LONG_LIST + 1


def test_lists_on_a_large_tables_index_go_inline_and_answer_exactly(tmp_path: Path) -> None:
    """Past LONG_LIST, an isin on an indexed column of a large table stays an IN list (DuckDB probes the ART index
    per value; a bound table would be joined by scanning the whole table); a small table's is bound."""
    engine = open_engine(f"duckdb:///{tmp_path / 'big.duckdb'}", create=True)
    assert isinstance(engine, Engine)
    n = ROWS_PER_VALUE * 300
    engine.insert(
        "objects", pa.table({"id": [f"o{i}" for i in range(n)], "registered": [i % 2 == 0 for i in range(n)]})
    )
    engine.insert("object_instances", pa.table({"object_id": ["o1", "o2"], "storage_id": ["s", "s"]}))
    wanted = [f"o{i}" for i in range(0, 2 * 250, 2)] + ["missing"]  # 251 values
    inline = engine._params("objects")
    assert "SELECT v FROM" not in where_sql([isin("id", wanted)], inline) and not inline.tables
    assert len(inline) == len(wanted)
    small = engine._params("object_instances")  # two rows: a bound table scans them faster
    assert "SELECT v FROM" in where_sql([isin("object_id", wanted)], small)
    unindexed = engine._params("objects")
    assert "SELECT v FROM" in where_sql([isin("allocated_flow_id", wanted)], unindexed)
    got = engine.query("objects", [isin("id", wanted)], columns=["id"])
    assert sorted(got.column("id").to_pylist()) == sorted(wanted[:-1])
    assert engine.count("objects", [isin("id", wanted), Term("registered", "==", True)]) == 250
    too_many = [f"o{i}" for i in range(MAX_INLINE + 1)]
    assert "SELECT v FROM" in where_sql([isin("id", too_many)], engine._params("objects"))
    assert engine.count("objects", [isin("id", too_many)]) == MAX_INLINE + 1
    engine.close()


def test_a_subquery_does_not_take_the_statements_inline_limits() -> None:
    """The limits are for the statement's table: a subquery's isin on another table keeps the default."""
    ids = [f"o{i}" for i in range(LONG_LIST + 1)]
    params = Params(tables=True, list_limits={"id": 1000})
    sql = where_sql([isin("id", ids), InSubquery("id", "segments", "object_id", isin("id", ids))], params)
    assert sql.count("SELECT v FROM") == 1 and len(params.tables or {}) == 1
    assert params.list_limits == {"id": 1000}


def test_inline_limits_follow_the_tables_size_and_are_read_again_after_a_while() -> None:
    sizes = {"objects": 100 * ROWS_PER_VALUE, "segments": 10**9}
    reads: list[int] = []

    def estimate() -> dict[str, int]:
        reads.append(1)
        return dict(sizes)

    limits = ListLimits({"objects": ("id",)}, estimate, refresh_s=0.05)
    assert limits.of("objects") == {"id": 100} and limits.of("segments") == {}  # no index on segments
    sizes["objects"] = 10**9
    assert limits.of("objects") == {"id": 100} and len(reads) == 1
    time.sleep(0.06)
    assert limits.of("objects") == {"id": MAX_INLINE} and len(reads) == 2
    sizes["objects"] = 10
    time.sleep(0.06)
    assert limits.of("objects") == {}
