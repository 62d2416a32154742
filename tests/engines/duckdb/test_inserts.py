"""Inserts on DuckDB: a few rows bound as one list parameter a column (``UNNEST``), more as an Arrow table's scan;
both store exactly the rows given, every type and null, in one column order."""

from __future__ import annotations

import datetime as dt
from typing import Any

import duckdb
import pyarrow as pa
import pytest

from tams_analytics.engines.duckdb import Engine
from tams_analytics.engines.duckdb.writes import LIST_ROWS
from tams_analytics.predicates import Term
from tams_analytics.schema import SCHEMAS

_UTC = dt.UTC
_ODD_TEXT = ["it's", 'say "hi"', "", "über ✓", "a;b) --", "[0:0_1:0)"]


def _segment(i: int) -> dict[str, Any]:
    """A segment row of the test's flow; every optional column null on some rows, odd text and extremes on others."""
    nullable = i % 3 == 0
    return {
        "flow_id": "flow-under-test",
        "object_id": f"{_ODD_TEXT[i % len(_ODD_TEXT)]}#{i}",
        "timerange": f"[{i}:0_{i + 1}:0)",
        "start_ns": i * 1_000_000_000,
        "end_ns": (i + 1) * 1_000_000_000,
        "ts_offset": None if nullable else (-(2**63) if i % 2 else 2**63 - 1),
        "last_duration": None if nullable else i,
        "object_timerange": None if nullable else _ODD_TEXT[i % len(_ODD_TEXT)],
        "sample_offset": None if nullable else 0,
        "sample_count": None if nullable else -1,
        "key_frame_count": None,
        "init_object_id": None if nullable else f"init-{i}",
        "created": None if nullable else dt.datetime(2026, 11, 25, 12, 0, i % 60, 123_456, tzinfo=_UTC),
    }


def _stored(engine: Engine) -> list[dict[str, Any]]:
    got = engine.query("segments", [Term("flow_id", "==", "flow-under-test")]).sort_by("start_ns").to_pylist()
    return [{k: row[k] for k in SCHEMAS["segments"].names} for row in got]


@pytest.mark.parametrize("rows", [1, 2, LIST_ROWS, LIST_ROWS + 1], ids=lambda n: f"{n}-rows")
def test_an_insert_stores_exactly_the_rows_given(engine: Engine, rows: int) -> None:
    given = [_segment(i) for i in range(rows)]
    # the columns in another order than the table's, one left out (stored as null)
    table = pa.Table.from_pylist([{k: r[k] for k in reversed(list(r)) if k != "key_frame_count"} for r in given])
    engine.insert("segments", table)
    assert _stored(engine) == given


def test_list_inserts_and_arrow_inserts_store_the_same_rows(engine: Engine) -> None:
    """Rows inserted a few at a time (lists) and many at once (Arrow) read back alike, in one transaction too."""
    few = [_segment(i) for i in range(7)]
    many = [_segment(i) for i in range(7, 7 + LIST_ROWS + 5)]
    with engine.transaction():
        engine.insert("segments", pa.Table.from_pylist(few))
        engine.insert("segments", pa.Table.from_pylist(many))
    assert _stored(engine) == few + many


def test_a_refused_list_insert_stores_none_of_its_rows(engine: Engine) -> None:
    """A row breaking a constraint (NOT NULL) refuses the whole insert: no other row of it is stored."""
    rows = [_segment(i) for i in range(5)]
    rows[3]["timerange"] = None
    with pytest.raises(duckdb.ConstraintException, match="NOT NULL"):
        engine.insert("segments", pa.Table.from_pylist(rows))
    assert _stored(engine) == []
