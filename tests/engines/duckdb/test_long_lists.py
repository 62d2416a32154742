"""Long value lists on DuckDB: bound as Arrow tables (``IN (SELECT v FROM ...)``), answering exactly what
the same filter answers with the values inline, for every statement kind, and leaving nothing registered."""

from __future__ import annotations

import pyarrow as pa
import pytest

from tams_analytics.engines.duckdb import Engine
from tams_analytics.engines.sql import LONG_LIST, Params, where_sql
from tams_analytics.predicates import Term, isin


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
