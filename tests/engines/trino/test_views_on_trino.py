"""Every view of ``sql/trino/views`` created and queried on a real Trino, row for row equal to the DuckDB views
(``tams_analytics.views``) on the same data, the edge cases included.

Two placements, as deployments have them: the committed files run as they are, with the session's catalog and
schema those of the Hive tables over the store's Parquet export; and generated with qualified names (the
generator's ``--table-catalog vast --table-schema 'media/tams' --view-catalog hive``), reading the VAST
stand-in's tables from views kept in a Hive schema (VAST's connector, like the stand-in, has no views).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pytest

from tams_analytics import views
from tams_analytics.catalog import Catalog
from tams_analytics.engines.trino import Engine as TrinoEngine
from tests.engines.trino.edge_cases import HIGHEST, LEAP_TAI_S, LOWEST, S
from tests.fixtures.trino import VAST_SCHEMA, TrinoStore
from tests.test_views_sql import SQL_DIR

NAMES = sorted(views.VIEWS)


def _rows(table: pa.Table) -> list[dict[str, Any]]:
    return table.sort_by([(c, "ascending") for c in table.column_names]).to_pylist()


@pytest.fixture(scope="module")
def hive_views(trino_store: TrinoStore) -> Iterator[Catalog]:
    """The committed view files, run in the export's Hive schema."""
    cat = trino_store.connect("hive")
    engine = cat.engine
    assert isinstance(engine, TrinoEngine)
    for name in NAMES:
        engine.script((SQL_DIR / f"{name}.sql").read_text())
    yield cat
    cat.close()


@pytest.fixture(scope="module")
def vast_views(trino_vast_store: TrinoStore) -> Iterator[tuple[Catalog, str]]:
    """The views generated over the VAST stand-in's tables, created in a Hive schema of their own."""
    cat = trino_vast_store.connect("hive")
    engine = cat.engine
    assert isinstance(engine, TrinoEngine)
    schema = f"{trino_vast_store.hive_schema}_on_vast"
    engine.sql(f'CREATE SCHEMA IF NOT EXISTS hive."{schema}"')
    for name in NAMES:
        engine.script(
            views.view_sql(
                name, table_catalog="vast", table_schema=VAST_SCHEMA, view_catalog="hive", view_schema=schema
            )
        )
    yield cat, schema
    for name in NAMES:
        engine.sql(f'DROP VIEW IF EXISTS hive."{schema}"."{name}"')
    engine.sql(f'DROP SCHEMA IF EXISTS hive."{schema}"')
    cat.close()


def _duckdb(store: TrinoStore, name: str) -> pa.Table:
    return views.VIEWS[name](store.duckdb).to_pyarrow()


@pytest.mark.parametrize("name", NAMES)
def test_committed_view_on_the_export_equals_duckdb(trino_store: TrinoStore, hive_views: Catalog, name: str) -> None:
    got = hive_views.engine.sql(f'SELECT * FROM "{name}"')  # type: ignore[attr-defined]
    expected = _duckdb(trino_store, name)
    assert expected.num_rows > 0, f"{name} is empty: the comparison would prove little"
    assert got.column_names == expected.column_names
    assert _rows(got.cast(expected.schema)) == _rows(expected)


@pytest.mark.parametrize("name", NAMES)
def test_view_over_the_vast_tables_equals_duckdb(
    trino_vast_store: TrinoStore, vast_views: tuple[Catalog, str], name: str
) -> None:
    cat, schema = vast_views
    got = cat.engine.sql(f'SELECT * FROM hive."{schema}"."{name}"')  # type: ignore[attr-defined]
    expected = _duckdb(trino_vast_store, name)
    assert got.column_names == expected.column_names
    assert _rows(got.cast(expected.schema)) == _rows(expected)


def test_the_views_hold_the_edge_cases(trino_store: TrinoStore, hive_views: Catalog) -> None:
    """What the comparisons above are about: the edge flows, as Trino's views show them."""
    sql = hive_views.engine.sql  # type: ignore[attr-defined]
    e = trino_store.edges
    coverage = {r["flow_id"]: r for r in sql('SELECT * FROM "flow_coverage"').to_pylist()}
    empty = coverage[e.empty]
    assert (empty["segments"], empty["runs"], empty["gaps"], empty["timerange"]) == (0, 0, 0, "()")
    assert empty["first_start_ns"] is None and empty["covered_ns"] == 0
    assert coverage[e.low]["timerange"] == "[-9223372036:854775805_-9223372034:0)"
    assert coverage[e.low]["first_start_ns"] == LOWEST
    assert coverage[e.high]["timerange"] == "[9223372034:0_9223372036:854775805)"
    assert coverage[e.high]["last_end_ns"] == HIGHEST
    assert coverage[e.high]["label"] == "" and coverage[e.low]["label"] is None
    gaps = {r["flow_id"]: r for r in sql('SELECT * FROM "segment_gaps"').to_pylist()}
    assert gaps[e.leap]["timerange"] == f"[{LEAP_TAI_S - 1}:0_{LEAP_TAI_S}:0)"  # 2016-12-31T23:59:60Z
    assert gaps[e.leap]["gap_ns"] == S
    assert gaps[e.high]["gap_ns"] == S // 2 and gaps[e.low]["gap_ns"] == S
    runs = sql(f"SELECT * FROM \"segment_runs\" WHERE flow_id = '{e.leap}' ORDER BY run").to_pylist()
    assert [(r["run"], r["segments"]) for r in runs] == [(1, 7), (2, 9)]
