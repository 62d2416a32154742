"""The ``trino://`` engine on a real Trino 476, against DuckDB on the same data.

One demo store with edge cases (``edge_cases.py``) is read directly (DuckDB) and through Trino in both layouts
a deployment meets: ``hive``, the store's Parquet export as external Hive tables (what
``sql/trino/export/hive_tables.sql`` creates), and ``vast``, the tables the server writes on VAST, under a
``bucket/schema`` name, in a catalog that takes filters into the store as VAST's connector does. Every query
shape of the notebooks, analytics, views, reports, the integrity audit and the widgets, every named filter,
and the eternity, half-bounded, leap-second and int64-extreme windows give DuckDB's answer.
"""

from __future__ import annotations

import re
from typing import Any

import pyarrow as pa
import pytest

from tams_analytics import filters as F
from tams_analytics.catalog import Catalog, flows_with_content
from tams_analytics.engines.trino import Engine as TrinoEngine
from tams_analytics.exceptions import TamsError, UnsupportedError
from tams_analytics.export.layout import flow_bucket
from tams_analytics.schema import PRIMARY_KEYS, SCHEMAS
from tests.engines.remote.shapes import SHAPES, Context, run, same
from tests.engines.trino.edge_cases import WINDOWS
from tests.engines.trino.test_trino_live import _queries
from tests.fixtures.trino import TrinoStore

LAYOUTS = ("hive", "vast")
#: columns the engines compute approximately (no exact median in Trino): checked to lie within the range
APPROXIMATE = ("seg_median_ns", "seg_median_s")


@pytest.fixture(scope="module", params=LAYOUTS)
def layout(request: pytest.FixtureRequest, trino_store: TrinoStore) -> tuple[str, TrinoStore, Catalog]:
    store = request.getfixturevalue("trino_vast_store") if request.param == "vast" else trino_store
    cat = store.connect(request.param)
    yield request.param, store, cat
    cat.close()


@pytest.fixture(scope="module")
def context(trino_store: TrinoStore) -> Context:
    return Context.of(trino_store.duckdb)


def _exact(result: Any) -> Any:
    """``result`` without its approximate columns, after checking them against the exact ones beside them."""
    if isinstance(result, pa.Table) and "seg_median_ns" in result.column_names:
        for row in result.to_pylist():
            assert row["seg_min_ns"] <= row["seg_median_ns"] <= row["seg_max_ns"], row
        return result.drop_columns([c for c in APPROXIMATE if c in result.column_names])
    if isinstance(result, tuple | list):
        return type(result)(_exact(r) for r in result)
    return result


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_every_query_shape_gives_duckdbs_answer(
    layout: tuple[str, TrinoStore, Catalog], context: Context, shape: str
) -> None:
    _, store, cat = layout
    assert same(_exact(run(shape, cat, context)), _exact(run(shape, store.duckdb, context)))


def test_the_shapes_meet_the_edge_cases(layout: tuple[str, TrinoStore, Catalog], context: Context) -> None:
    """The compared answers hold the edge flows: the comparisons above are about them too."""
    _, store, cat = layout
    summary = {r["flow_id"]: r for r in run("coverage: summary of all", cat, context).to_pylist()}
    leap = summary[store.edges.leap]
    assert (leap["gaps"], leap["gap_ns"], leap["runs"]) == (1, 10**9, 2)
    assert str(leap["first_start_utc"]) == "2016-12-31 23:59:53+00:00"
    low, high = summary[store.edges.low], summary[store.edges.high]
    # the clock times of the lowest and highest timestamps, to the microsecond (Trino's default is the ms)
    assert str(low["first_start_utc"]) == "1677-09-21 00:12:43.145224+00:00"
    assert str(high["last_end_utc"]) == "2262-04-11 23:46:39.854775+00:00"
    assert store.edges.empty not in summary
    tags = run("reports: every tag", cat, context).to_pylist()
    assert {"tag": "note", "value": "Ünïcødé ✓ 東京", "flows": 1} in [
        {k: r[k] for k in ("tag", "value", "flows")} for r in tags
    ]


@pytest.mark.parametrize("index", range(13))
def test_catalog_queries_give_duckdbs_rows(layout: tuple[str, TrinoStore, Catalog], index: int) -> None:
    """The named-filter queries of the offline SQL test, on the server."""
    _, store, cat = layout
    name, where, options = _queries(store.planted)[index]
    got, expected = cat.rows(name, where, **options), store.duckdb.rows(name, where, **options)
    assert got.schema.names == expected.schema.names
    got = got.cast(expected.schema)  # the same types; DuckDB names UTC "Etc/UTC"
    if options.get("order_by"):
        assert got.to_pylist() == expected.to_pylist()
    else:
        key = [(k, "ascending") for k in PRIMARY_KEYS[name]]
        assert got.sort_by(key).to_pylist() == expected.sort_by(key).to_pylist()
    assert cat.count(name, where) == store.duckdb.count(name, where)


@pytest.mark.parametrize("window", WINDOWS)
def test_edge_windows_give_duckdbs_segments_and_flows(layout: tuple[str, TrinoStore, Catalog], window: str) -> None:
    _, store, cat = layout
    e = store.edges
    found = 0
    for flow in (e.leap, e.low, e.high, e.empty, store.planted["gap_flow"], None):
        where = F.build("segments", timerange=window, **({"flow_id": flow} if flow else {}))
        got, expected = cat.rows("segments", where), store.duckdb.rows("segments", where)
        key = [("flow_id", "ascending"), ("start_ns", "ascending")]
        assert got.sort_by(key).to_pylist() == expected.sort_by(key).to_pylist(), (window, flow)
        found += got.num_rows
    flows = cat.rows("flows", [flows_with_content(window)]).column("id").to_pylist()
    assert sorted(flows) == sorted(store.duckdb.rows("flows", [flows_with_content(window)]).column("id").to_pylist())
    # nothing in the empty range, nor in the leap second: the leap flow misses exactly that second
    assert (found == 0) == (window in ("()", "[1483228836:0_1483228837:0)")), found


@pytest.mark.parametrize(
    "filters",
    [
        {"tags": {"genre": "news"}},
        {"tags": {"genre": ["news", "sport"]}},
        {"tags": {"channel": ""}},
        {"tags": {"note": "Ünïcødé ✓ 東京"}},
        {"tags_exist": {"genre": False}},
        {"tags_exist": {"channel": True}},
        {"label": ""},
        {"format": "urn:x-nmos:format:data", "tags_exist": {"quality": True}},
    ],
    ids=lambda f: repr(f),
)
def test_tag_and_label_filters_give_duckdbs_flows(layout: tuple[str, TrinoStore, Catalog], filters: Any) -> None:
    _, store, cat = layout
    where = F.build("flows", **filters)
    got = sorted(cat.rows("flows", where).column("id").to_pylist())
    assert got and got == sorted(store.duckdb.rows("flows", where).column("id").to_pylist())


def test_reads_have_the_declared_types(layout: tuple[str, TrinoStore, Catalog]) -> None:
    """Whatever types the connector maps the columns to (the Hive export has one column more)."""
    _, _, cat = layout
    for name in ("sources", "flows", "segments", "objects", "tags"):
        assert cat.rows(name, limit=3).schema == SCHEMAS[name]


# -- pushdown -------------------------------------------------------------------------------------------------
def _window_query(store: TrinoStore, cat: Catalog) -> tuple[str, int]:
    engine = cat.engine
    assert isinstance(engine, TrinoEngine)
    flow = store.planted["gap_flow"]
    lo, _ = store.planted["gap"]
    window = f"[{lo // 10**9 - 60}:0_{lo // 10**9 + 60}:0)"
    where = F.build("segments", flow_id=flow, timerange=window)
    expr = engine.expression("segments", where, order_by=[("start_ns", False)])
    return engine.compile(expr), store.duckdb.count("segments", where)


def test_a_one_flow_window_reaches_the_vast_scan_as_a_constraint(trino_vast_store: TrinoStore) -> None:
    """VAST's connector takes comparisons with literals into the store; so does the stand-in: the plan has no
    filter after the scan, the scan itself holds the flow and both bounds."""
    cat = trino_vast_store.connect("vast")
    sql, rows = _window_query(trino_vast_store, cat)
    plan = cat.engine.sql(f"EXPLAIN {sql}").column(0)[0].as_py()  # type: ignore[attr-defined]
    scan = next(line for line in plan.splitlines() if "TableScan[" in line or "ScanFilter" in line)
    assert "TableScan[table = vast:media/tams.segments" in scan, plan
    assert re.search(r"constraint on \[(?=.*flow_id)(?=.*start_ns)(?=.*end_ns)", scan), scan
    assert "filterPredicate" not in plan and "ScanFilter" not in plan, plan
    assert rows > 10 and cat.engine.sql(sql).num_rows == rows  # type: ignore[attr-defined]


def test_a_one_flow_window_prunes_the_hive_scan(trino_store: TrinoStore) -> None:
    """On the Parquet export the bounds reach the reader (partitions, row groups and pages outside the window are
    skipped): the scan reads at most the flow's partition (its bucket of flows, whose ids share a first character),
    not the whole table and a filter after. (The bucket's other flows are the demo's random ids: a bound of a quarter
    of the table failed when two large flows shared the window's bucket.)"""
    cat = trino_store.connect("hive")
    sql, rows = _window_query(trino_store, cat)
    plan = cat.engine.sql(f"EXPLAIN ANALYZE {sql}").column(0)[0].as_py()  # type: ignore[attr-defined]
    scan = plan[plan.index("ScanFilter[table = hive:") :]
    read = int(re.search(r"Input: ([\d,]+) rows", scan).group(1).replace(",", ""))  # type: ignore[union-attr]
    flows = trino_store.duckdb.rows("segments", columns=["flow_id"]).column("flow_id")
    buckets = flow_bucket(flows).to_pylist()
    bucket = flow_bucket(pa.array([trino_store.planted["gap_flow"]])).to_pylist()[0]
    in_bucket = buckets.count(bucket)
    assert rows <= read <= in_bucket < len(buckets), (read, rows, in_bucket, len(buckets))


# -- read-only --------------------------------------------------------------------------------------------------
def test_writes_are_a_clear_error(layout: tuple[str, TrinoStore, Catalog]) -> None:
    _, store, cat = layout
    with pytest.raises(UnsupportedError, match="read-only"):
        cat.put_flow({"id": store.edges.empty, "source_id": "s", "format": "urn:x-nmos:format:data"})
    with pytest.raises(UnsupportedError):
        cat.engine.insert("service", pa.table({"key": ["k"], "value": ["v"]}))
    with pytest.raises(UnsupportedError):
        cat.engine.delete("segments", F.build("segments", flow_id=store.edges.leap))
    assert cat.count("segments", F.build("segments", flow_id=store.edges.leap)) == 16  # nothing changed


def test_a_missing_schema_is_one_clear_error(trino_server: Any) -> None:
    from tams_analytics.catalog import connect

    with connect(trino_server.url("hive", "no_such_schema")) as missing:
        with pytest.raises(TamsError, match=r"Trino refused the query \(SCHEMA_NOT_FOUND\)"):
            missing.count("flows")
