"""The analyst views: ibis expressions checked against independent computations, and the committed Trino
SQL files checked to parse, to be up to date, and to return the same rows (transpiled to DuckDB) as the
ibis expressions on a real DuckDB demo store with deliberate gaps and orphans."""

from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
import sqlglot
import sqlglot.expressions as sge

from tams_analytics import trino_views, views
from tams_analytics.catalog import Catalog, connect
from tams_analytics.demo import build_demo
from tams_analytics.predicates import Term
from tams_analytics.timerange_vector import format_timeranges

ROOT = Path(__file__).resolve().parents[1]
SQL_DIR = ROOT / views.SQL_DIR
SQL_FILES = sorted(SQL_DIR.glob("*.sql"))

ORPHAN_FLOW_OF_SEGMENT = "00000000-0000-4000-8000-00000000dead"
MISSING_SOURCE = "00000000-0000-4000-8000-00000000beef"
LONELY_OBJECT = "lonely-object"
INIT_OBJECT = "init-object"


def build_demo_store(path: Path, segments: int = 5_000) -> dict[str, Any]:
    """A DuckDB demo store with ~``segments`` segments plus deliberate gaps, orphans, sizes and ingest times.

    Returns what was planted, for tests to check against.
    """
    cat = connect(f"duckdb:///{path}", create=True)
    build_demo(cat, segments, progress=False)
    eng = cat.engine
    flows = cat.rows("flows", order_by=[("label", False)]).to_pylist()
    video = next(f for f in flows if f["format"] == "urn:x-nmos:format:video")
    # a deliberate gap: remove three segments from the middle of a video flow
    seg = cat.segment_rows(video["id"], limit=40).to_pylist()
    cut = format_timeranges(np.array([seg[20]["start_ns"]]), np.array([seg[22]["end_ns"]]))[0].as_py()
    deleted = cat.delete_segments(video["id"], cut)
    assert deleted.deleted == 3
    # sizes (some unknown) and ingest times spread over three days
    eng.sql("UPDATE objects SET size_bytes = CASE WHEN id < '1' THEN NULL ELSE 1000 + hash(id) % 100000 END")
    eng.sql("UPDATE segments SET created = created - to_hours(CAST(hash(object_id) % 72 AS BIGINT))")
    # orphans: a segment of a flow that does not exist, a flow of a source that does not exist, an object
    # no segment references, and an init object that is referenced only as init_object_id
    now = dt.datetime.now(dt.UTC)
    eng.insert(
        "segments",
        pa.table(
            {
                "flow_id": [ORPHAN_FLOW_OF_SEGMENT],
                "object_id": ["orphan-segment-object"],
                "timerange": ["[10:0_12:0)"],
                "start_ns": [10 * 10**9],
                "end_ns": [12 * 10**9],
                "created": [now],
            }
        ),
    )
    orphan_flow = str(uuid.uuid4())
    eng.insert(
        "flows",
        pa.table(
            {"id": [orphan_flow], "source_id": [MISSING_SOURCE], "format": ["urn:x-nmos:format:data"], "label": ["x"]}
        ),
    )
    eng.insert(
        "objects",
        pa.table({"id": [LONELY_OBJECT, INIT_OBJECT], "size_bytes": [7, 11], "registered": [True, True]}),
    )
    eng.update("segments", [Term("object_id", "==", seg[0]["object_id"])], {"init_object_id": INIT_OBJECT})
    return {
        "catalog": cat,
        "gap_flow": video["id"],
        "gap": (seg[20]["start_ns"], seg[22]["end_ns"]),
        "orphan_flow": orphan_flow,
        "deleted_objects": [s["object_id"] for s in seg[20:23]],
    }


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Any:
    planted = build_demo_store(tmp_path_factory.mktemp("views") / "demo.duckdb")
    yield planted
    planted["catalog"].close()


def _counts(values: pa.ChunkedArray) -> dict[str, int]:
    counted = pc.value_counts(values)
    return dict(zip(counted.field("values").to_pylist(), counted.field("counts").to_pylist(), strict=True))


def _rows(table: pa.Table) -> list[dict[str, Any]]:
    return table.sort_by([(c, "ascending") for c in table.column_names]).to_pylist()


# -- the ibis expressions against independent computations ------------------------------------------------
def test_gaps_match_a_numpy_computation(store: dict[str, Any]) -> None:
    cat: Catalog = store["catalog"]
    seg = cat.rows("segments", columns=["flow_id", "start_ns", "end_ns"]).sort_by(
        [("flow_id", "ascending"), ("start_ns", "ascending")]
    )
    flow = seg.column("flow_id").to_numpy(zero_copy_only=False)
    start, end = seg.column("start_ns").to_numpy(), seg.column("end_ns").to_numpy()
    same = flow[1:] == flow[:-1]
    is_gap = same & (start[1:] > end[:-1])
    expected = sorted(zip(flow[1:][is_gap], end[:-1][is_gap], start[1:][is_gap], strict=True))
    got = views.segment_gaps(cat).to_pyarrow()
    assert sorted(
        zip(*(got.column(c).to_pylist() for c in ("flow_id", "gap_start_ns", "gap_end_ns")), strict=True)
    ) == [(str(f), int(a), int(b)) for f, a, b in expected]
    assert (store["gap_flow"], *store["gap"]) in {
        (r["flow_id"], r["gap_start_ns"], r["gap_end_ns"]) for r in got.to_pylist()
    }
    assert len(expected) >= 2  # the planted gap and the demo's own


def test_gap_and_run_timeranges_are_tams_text(store: dict[str, Any]) -> None:
    from tams_analytics import TimeRange

    gap = views.segment_gaps(store["catalog"]).to_pyarrow().to_pylist()
    for row in gap:
        assert TimeRange.from_str(row["timerange"]).storage_bounds() == (row["gap_start_ns"], row["gap_end_ns"])
    runs = views.segment_runs(store["catalog"]).to_pyarrow().to_pylist()
    for row in runs:
        assert TimeRange.from_str(row["timerange"]).storage_bounds() == (row["start_ns"], row["end_ns"])


def test_coverage_adds_up(store: dict[str, Any]) -> None:
    cat: Catalog = store["catalog"]
    cov = views.flow_coverage(cat).to_pyarrow().to_pylist()
    assert len(cov) == cat.count("flows")
    runs = views.segment_runs(cat).to_pyarrow()
    runs_per_flow = _counts(runs.column("flow_id"))
    per_flow = _counts(cat.rows("segments", columns=["flow_id"]).column("flow_id"))
    for row in cov:
        assert row["segments"] == per_flow.get(row["flow_id"], 0)
        if row["segments"]:
            span = row["last_end_ns"] - row["first_start_ns"]
            assert row["covered_ns"] + row["gap_ns"] == span
            assert row["runs"] == row["gaps"] + 1 == runs_per_flow[row["flow_id"]]
        else:
            assert (row["runs"], row["timerange"]) == (0, "()")
    planted = next(r for r in cov if r["flow_id"] == store["gap_flow"])
    assert planted["gaps"] >= 1 and planted["gap_ns"] >= store["gap"][1] - store["gap"][0]


def test_storage_per_source_counts_each_object_once(store: dict[str, Any]) -> None:
    cat: Catalog = store["catalog"]
    flows = cat.rows("flows", columns=["id", "source_id"])
    seg = cat.rows("segments", columns=["flow_id", "object_id"])
    obj = cat.rows("objects", columns=["id", "size_bytes"])
    joined = seg.join(flows, "flow_id", "id", join_type="inner")
    pairs = (
        joined.group_by(["source_id", "object_id"]).aggregate([]).join(obj, "object_id", "id", join_type="left outer")
    )
    expected = {
        r["source_id"]: (r["object_id_count"], r["size_bytes_sum"] or 0)
        for r in pairs.group_by("source_id").aggregate([("object_id", "count"), ("size_bytes", "sum")]).to_pylist()
    }
    got = views.storage_per_source(cat).to_pyarrow().to_pylist()
    assert len(got) == cat.count("sources")
    for row in got:
        assert (row["objects"], row["bytes"]) == expected.get(row["source_id"], (0, 0))
    assert sum(r["segments"] for r in got) == joined.num_rows  # the orphan segment belongs to no source
    assert sum(r["objects_without_size"] for r in got) > 0


def test_ingest_buckets_are_utc_and_complete(store: dict[str, Any]) -> None:
    cat: Catalog = store["catalog"]
    created = cat.rows("segments", columns=["created"]).column("created")
    epoch_s = pc.divide(pc.cast(created, pa.int64()), 1_000_000).to_numpy()  # us -> s (non-negative: floor)
    for fn, step in ((views.ingest_hourly, 3600), (views.ingest_daily, 86400)):
        got = fn(cat).to_pyarrow().to_pylist()
        buckets, counts = np.unique(epoch_s - epoch_s % step, return_counts=True)
        assert {r["bucket_start_s"]: r["segments"] for r in got} == dict(
            zip(buckets.tolist(), counts.tolist(), strict=True)
        )
    assert len(views.ingest_hourly(cat).to_pyarrow()) > 24  # spread over three days


def test_orphans_are_exactly_the_planted_ones(store: dict[str, Any]) -> None:
    cat: Catalog = store["catalog"]
    got = {
        (r["kind"], r["flow_id"] if r["kind"] != "object_without_segment" else r["object_id"])
        for r in views.orphans(cat).to_pyarrow().to_pylist()
    }
    expected = {
        ("segment_without_flow", ORPHAN_FLOW_OF_SEGMENT),
        ("flow_without_source", store["orphan_flow"]),
        ("object_without_segment", LONELY_OBJECT),
    }
    # the init object is referenced (as init_object_id); the objects of deleted segments await garbage
    # collection (unreferenced_since is set): neither is an orphan, as the integrity audit says
    assert got == expected
    assert views.orphan_segments(cat).count().execute() == 1
    assert views.orphan_flows(cat).select("source_id").to_pyarrow().to_pylist() == [{"source_id": MISSING_SOURCE}]


# -- the committed Trino SQL ------------------------------------------------------------------------------
def test_every_view_has_a_committed_file() -> None:
    assert [p.stem for p in SQL_FILES] == sorted(views.VIEWS)


@pytest.mark.parametrize("path", SQL_FILES, ids=lambda p: p.stem)
def test_sql_file_parses_as_trino_and_is_up_to_date(path: Path) -> None:
    text = path.read_text()
    tree = sqlglot.parse_one(text, read="trino")
    assert isinstance(tree, sge.Create) and tree.kind == "VIEW" and tree.args.get("replace")
    assert tree.this.name == path.stem
    # constructs sqlglot accepts but Trino has not
    kinds = {(j.args.get("kind") or "").upper() for j in tree.find_all(sge.Join)}
    assert not kinds & {"ANTI", "SEMI"}, f"Trino has no {kinds & {'ANTI', 'SEMI'}} JOIN"
    assert _canonical(text) == _canonical(trino_views.view_sql(path.stem)), (
        f"{path} is stale: run python -m tams_analytics.views --write {SQL_DIR}"
    )


def _canonical(sql: str) -> str:
    """``sql`` as the installed sqlglot writes it: the files are generated with the current dependency set's sqlglot,
    whose spelling of some functions differs from VAST's set's (``SUBSTRING`` and ``SUBSTR``), not their meaning."""
    return sqlglot.parse_one(sql, read="trino").sql("trino", pretty=True)


def test_generator_command_writes_the_committed_files(tmp_path: Path) -> None:
    assert trino_views.main(["--write", str(tmp_path)]) == 0
    written = {p.name: _canonical(p.read_text()) for p in tmp_path.iterdir()}
    assert written == {p.name: _canonical(p.read_text()) for p in SQL_FILES}


def test_generator_qualifies_names_when_asked() -> None:
    sql = trino_views.view_sql(
        "orphan_flows", table_catalog="vast", table_schema="b|tams", view_catalog="hive", view_schema="v"
    )
    tree = sqlglot.parse_one(sql, read="trino")
    assert tree.this.sql("trino") == '"hive"."v"."orphan_flows"'
    tables = {(t.catalog, t.db, t.name) for t in tree.expression.find_all(sge.Table)}
    assert tables == {("vast", "b|tams", "flows"), ("vast", "b|tams", "sources")}


@pytest.mark.parametrize("name", sorted(views.VIEWS))
def test_sql_transpiled_to_duckdb_returns_the_ibis_rows(store: dict[str, Any], name: str) -> None:
    cat: Catalog = store["catalog"]
    text = (SQL_DIR / f"{name}.sql").read_text()
    # Trino's with_timezone(timestamp, zone), which the views read timestamps with (trino_views.read_as_utc), in
    # DuckDB's words; Trino's CAST of a zoned timestamp keeps the value's own zone (UTC), DuckDB's takes the
    # session's
    cat.engine.sql("SET TimeZone = 'UTC'")
    cat.engine.sql("CREATE OR REPLACE TEMP MACRO with_timezone(ts, zone) AS timezone(zone, ts)")
    for statement in sqlglot.transpile(text, read="trino", write="duckdb"):
        cat.engine.sql(statement)  # CREATE OR REPLACE VIEW in the DuckDB store
    from_sql = cat.engine.sql(f'SELECT * FROM "{name}"')
    from_ibis = views.VIEWS[name](cat).to_pyarrow()
    assert from_ibis.num_rows > 0, f"{name} is empty on the demo store: the comparison would prove little"
    assert from_sql.column_names == from_ibis.column_names
    assert _rows(from_sql.cast(from_ibis.schema)) == _rows(from_ibis)


@pytest.mark.parametrize(
    "path", sorted((ROOT / "sql" / "trino" / "catalogs").glob("*.properties")), ids=lambda p: p.stem
)
def test_catalog_property_examples_are_well_formed(path: Path) -> None:
    pairs = [
        line.split("=", 1)
        for line in path.read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    assert all(len(p) == 2 and p[0].strip() == p[0] and p[0] for p in pairs), "key=value lines only"
    keys = [k for k, _ in pairs]
    assert len(keys) == len(set(keys)), "no key twice"
    assert dict(pairs)["connector.name"] in {"vast", "hive", "iceberg"}
    assert not any("secret" in k and not v.startswith("${ENV:") for k, v in pairs), "secrets come from the environment"
