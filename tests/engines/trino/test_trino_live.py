"""The Trino engine.

Offline: URL settings, read-only behaviour, and the catalog's read queries compiled to the exact Trino SQL the
engine sends, transpiled to DuckDB and run on a real DuckDB demo store, giving the rows the DuckDB engine gives.
Live: reads and every view against a real server, ``TAMS_TRINO_URL``'s store or the test Trino's demo store
(see ``conftest.py``; ``test_trino_server.py`` compares that one with DuckDB row for row).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

import pyarrow as pa
import pytest
import sqlglot

from tams_analytics import filters as F
from tams_analytics import predicates as P
from tams_analytics import views
from tams_analytics.catalog import Catalog, connect, flows_with_content
from tams_analytics.engines.trino import Engine as TrinoEngine
from tams_analytics.engines.trino.url import PASSWORD_ENV, parse_url
from tams_analytics.exceptions import TamsError, UnsupportedError
from tams_analytics.schema import PRIMARY_KEYS, SCHEMAS
from tests.engines.trino.conftest import EngineConf
from tests.test_views_sql import SQL_DIR

ENTITIES = ("sources", "flows", "segments", "objects")


def _sorted(table: pa.Table, keys: Sequence[str] | None = None) -> list[dict[str, Any]]:
    keys = list(keys or table.column_names)
    return table.sort_by([(k, "ascending") for k in keys]).to_pylist()


# -- settings from the URL ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("url", "env", "expected"),
    [
        (
            "trino://analyst@trino.example:8080/vast/media/tams",
            {},
            ("trino.example", 8080, "analyst", "vast", "media/tams", "http", None),
        ),
        ("trino://h/hive/export", {}, ("h", 8080, "tams", "hive", "export", "http", None)),
        ("trino://a@h/vast/b%7Ctams?http_scheme=https", {}, ("h", 443, "a", "vast", "b|tams", "https", None)),
        ("trino://a:s%40cret@h:8443/vast/t", {}, ("h", 8443, "a", "vast", "t", "https", "s@cret")),
        ("trino://a@h/vast/t", {PASSWORD_ENV: "envpw"}, ("h", 443, "a", "vast", "t", "https", "envpw")),
    ],
)
def test_url_settings(url: str, env: dict[str, str], expected: tuple[Any, ...]) -> None:
    s = parse_url(urlsplit(url), environ=env)
    assert (s.host, s.port, s.user, s.catalog, s.schema, s.http_scheme, s.password) == expected


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("trino:///vast/t", "needs a host"),
        ("trino://h/vast", "needs /catalog/schema"),
        ("trino://a:pw@h/vast/t?http_scheme=http", "only over https"),
        ("trino://h/vast/t?http_scheme=ftp", "http or https"),
        ("trino://h/vast/t?catalog=x", "unknown trino URL parameter"),
    ],
)
def test_bad_urls_are_refused_with_a_reason(url: str, message: str) -> None:
    with pytest.raises(TamsError, match=message):
        parse_url(urlsplit(url), environ={})


def test_the_password_stays_out_of_repr_and_messages() -> None:
    cat = connect("trino://analyst:hunter2@127.0.0.1:9/vast/tams")
    engine = cat.engine
    assert isinstance(engine, TrinoEngine)
    assert "hunter2" not in repr(engine.settings) and "hunter2" not in engine.settings.display
    with pytest.raises(TamsError, match="cannot reach Trino") as err:
        cat.rows("flows", limit=1)
    assert "hunter2" not in str(err.value)


def test_capabilities_say_read_only_and_writes_raise() -> None:
    engine = connect("trino://u@127.0.0.1:9/vast/tams").engine
    assert (engine.capabilities.writes, engine.capabilities.transactions) == (
        EngineConf.supports_write,
        False,
    )
    rows = pa.table({"id": ["s"], "format": ["urn:x-nmos:format:video"]})
    with pytest.raises(UnsupportedError, match="read-only"):
        engine.insert("sources", rows)
    with pytest.raises(UnsupportedError):
        engine.delete("sources", [P.eq("id", "s")])
    with pytest.raises(UnsupportedError):
        engine.update("sources", [P.eq("id", "s")], {"label": "x"})


def test_tables_have_the_declared_schemas_without_a_server() -> None:
    cat = connect("trino://u@127.0.0.1:9/vast/tams")
    for name in SCHEMAS:
        schema = cat.table(name).schema().to_pyarrow()
        assert [(f.name, f.type) for f in schema] == [(f.name, f.type) for f in SCHEMAS[name]]
    sql = cat.engine.compile(cat.segments(flow_id="f", timerange="[0:0_10:0)"))  # type: ignore[attr-defined]
    assert '"vast"."tams"."segments"' in sql and '"start_ns" < 10000000000' in sql


# -- offline: the exact SQL the engine sends, run on DuckDB ---------------------------------------------------
Query = tuple[str, list[P.Predicate], dict[str, Any]]


def _queries(store: dict[str, Any]) -> list[Query]:
    cat: Catalog = store["catalog"]
    flows = cat.rows("flows", order_by=[("id", False)]).to_pylist()
    multi = next(f for f in flows if f["format"] == "urn:x-nmos:format:multi")
    gap_flow = store["gap_flow"]
    start, end = store["gap"]
    window = f"[{(start - 20 * 10**9) // 10**9}:0_{(end + 20 * 10**9) // 10**9}:0)"
    return [
        ("sources", [], {}),
        ("flows", F.build("flows", format="urn:x-nmos:format:video"), {"order_by": [("id", False)]}),
        ("flows", F.build("flows", tags={"genre": ["news", "sport"]}), {}),
        ("flows", F.build("flows", tags_exist={"quality": False}), {}),
        ("flows", F.build("flows", collected_by_ids=multi["id"]), {}),
        ("flows", F.build("flows", collected_by_ids=""), {}),
        ("flows", [flows_with_content(window)], {}),
        ("flows", [flows_with_content("()")], {}),
        ("sources", F.build("sources", collected_by_ids=multi["source_id"]), {}),
        (
            "segments",
            F.build("segments", flow_id=gap_flow, timerange=window),
            {"columns": ["timerange", "start_ns", "object_id"], "order_by": [("start_ns", True)], "limit": 7},
        ),
        ("segments", F.build("segments", flow_id=gap_flow, covered_by=window), {}),
        ("segments", F.build("segments", timerange="()"), {}),
        ("objects", F.build("objects", registered=True), {"order_by": [("id", False)], "limit": 25}),
    ]


@pytest.fixture(scope="module")
def queries(duckdb_store: dict[str, Any]) -> list[Query]:
    return _queries(duckdb_store)


def _run_as_duckdb(store: dict[str, Any], trino_sql: str) -> pa.Table:
    (duck_sql,) = sqlglot.transpile(trino_sql, read="trino", write="duckdb")
    return store["catalog"].engine.sql(duck_sql)


@pytest.mark.parametrize("index", range(13))
def test_query_sql_gives_the_duckdb_engine_rows(
    duckdb_store: dict[str, Any], offline_trino: Catalog, queries: list[Query], index: int
) -> None:
    name, where, options = queries[index]
    engine = offline_trino.engine
    assert isinstance(engine, TrinoEngine)
    trino_sql = engine.compile(engine.expression(name, where, **options))
    got = _run_as_duckdb(duckdb_store, trino_sql)
    expected = duckdb_store["catalog"].rows(name, where, **options)
    assert got.column_names == expected.column_names
    got = got.cast(expected.schema)
    if options.get("order_by"):
        assert got.to_pylist() == expected.to_pylist()
    else:
        assert _sorted(got, PRIMARY_KEYS[name]) == _sorted(expected, PRIMARY_KEYS[name])
    count_sql = engine.compile(engine.expression(name, where).count())
    assert _run_as_duckdb(duckdb_store, count_sql).column(0)[0].as_py() == duckdb_store["catalog"].count(name, where)


def test_the_queries_are_not_trivial(duckdb_store: dict[str, Any], queries: list[Query]) -> None:
    """Most queries return some rows and fewer than the whole table, so the comparisons above can fail."""
    cat: Catalog = duckdb_store["catalog"]
    sizes = [cat.count(name, where) for name, where, _ in queries]
    partial = [0 < n < cat.count(name) for n, (name, _, _) in zip(sizes, queries, strict=True)]
    assert len(queries) == 13 and sum(partial) >= 8, sizes


# -- live -------------------------------------------------------------------------------------------------
def test_live_reads_have_the_declared_types(trino_catalog: Catalog) -> None:
    for name in ENTITIES:
        rows = trino_catalog.rows(name, limit=5)
        assert rows.schema.names == SCHEMAS[name].names
        assert [f.type for f in rows.schema] == [f.type for f in SCHEMAS[name]]


def test_live_counts_agree(trino_catalog: Catalog) -> None:
    for name in ENTITIES:
        assert trino_catalog.count(name) == trino_catalog.table(name).count().to_pyarrow().as_py()


def test_live_segment_window_of_one_flow(trino_catalog: Catalog) -> None:
    first = trino_catalog.rows("segments", columns=["flow_id", "start_ns", "end_ns"], limit=1).to_pylist()
    if not first:
        pytest.skip("the Trino store has no segments")
    f, lo = first[0]["flow_id"], first[0]["start_ns"]
    window = f"[{lo // 10**9}:0_{lo // 10**9 + 60}:0)"
    rows = trino_catalog.segment_rows(f, timerange=window).to_pylist()
    assert rows and all(
        r["start_ns"] < (lo // 10**9 + 60) * 10**9 and r["end_ns"] > (lo // 10**9) * 10**9 for r in rows
    )
    assert [r["start_ns"] for r in rows] == sorted(r["start_ns"] for r in rows)
    lazy = trino_catalog.segments(flow_id=f, timerange=window).count().to_pyarrow().as_py()
    assert lazy == len(rows)


def test_live_tag_filter_uses_a_subquery(trino_catalog: Catalog) -> None:
    tags = trino_catalog.rows("tags", [P.eq("entity_type", "flow")], limit=1).to_pylist()
    if not tags:
        pytest.skip("the Trino store has no flow tags")
    t = tags[0]
    flows = trino_catalog.rows("flows", F.build("flows", tags={t["name"]: t["value"]})).column("id").to_pylist()
    assert t["entity_id"] in flows


@pytest.mark.parametrize("name", sorted(views.VIEWS))
def test_live_views_match_their_committed_sql(trino_catalog: Catalog, name: str) -> None:
    engine = trino_catalog.engine
    assert isinstance(engine, TrinoEngine)
    from_ibis = views.VIEWS[name](trino_catalog).to_pyarrow()
    select = sqlglot.parse_one((SQL_DIR / f"{name}.sql").read_text(), read="trino").expression.sql("trino")
    from_sql = engine.sql(select)  # unqualified names resolve in the URL's catalog and schema
    assert from_sql.num_rows == from_ibis.num_rows
    if from_ibis.num_rows:
        assert _sorted(from_sql.cast(from_ibis.schema)) == _sorted(from_ibis)


def test_live_writes_are_refused(trino_catalog: Catalog) -> None:
    with pytest.raises(UnsupportedError):
        trino_catalog.engine.insert("service", pa.table({"key": ["k"], "value": ["v"]}))
