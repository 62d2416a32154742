"""Every view of ``sql/trino/views`` created and queried on a real Trino, row for row equal to the DuckDB views
(``tams_analytics.views``) on the same data, the edge cases included.

Two placements, as deployments have them: the committed files run as they are, with the session's catalog and
schema those of the Hive tables over the store's Parquet export; and generated with qualified names (the
``python -m tams_analytics.views --write DIR --table-catalog vast --table-schema 'media/tams'
--view-catalog hive --view-schema S``, then ``trino -f DIR/<view>.sql``, as docs/sql/own-trino.md gives it),
reading the VAST stand-in's tables from views kept in a Hive schema (VAST's connector, like the stand-in, has no
views). In both, every view gives the same rows to clients in any session time zone (the Python client and the
official CLI, ``--timezone``).
"""

from __future__ import annotations

import contextlib
import io
import json
import shlex
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import trino

from tams_analytics import trino_views, views
from tams_analytics.catalog import Catalog
from tams_analytics.engines.trino import Engine as TrinoEngine
from tams_analytics.engines.trino import statements
from tests.docs import block
from tests.engines.trino.edge_cases import HIGHEST, LEAP_TAI_S, LOWEST, S
from tests.fixtures.trino import VAST_SCHEMA, CliUnavailable, TrinoCli, TrinoStore
from tests.test_views_sql import SQL_DIR

NAMES = sorted(views.VIEWS)
#: a session time zone far from UTC, half an hour off the hour: what moved the ingest buckets
ZONE = "Asia/Kolkata"


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


def _schemas(engine: TrinoEngine, catalog: str) -> set[str]:
    return set(engine.sql(f'SHOW SCHEMAS FROM "{catalog}"').column("Schema").to_pylist())


@dataclass(frozen=True)
class GeneratedViews:
    """The views over the VAST stand-in's tables, made as docs/sql/own-trino.md says."""

    cat: Catalog
    schema: str
    #: the files the generator wrote, in the order it listed (and they ran)
    files: list[Path]
    #: whether the views' schema was there before the first file ran
    schema_existed: bool


#: the page whose fallback for connectors without views the fixture below runs
DOCS_PAGE = "docs/sql/own-trino.md"


@pytest.fixture(scope="module")
def vast_views(
    trino_vast_store: TrinoStore, trino_cli: TrinoCli, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GeneratedViews]:
    """The views generated over the VAST stand-in's tables into a Hive schema that is not there yet, by the
    generator's command (``python -m tams_analytics.views``, its ``main``); the files run in order, the first by
    the official CLI (``trino -f FILE``, where it can be had) and the others by the Python client."""
    cat = trino_vast_store.connect("hive")
    engine = cat.engine
    assert isinstance(engine, TrinoEngine)
    schema = f"{trino_vast_store.hive_schema}_on_vast"
    out = tmp_path_factory.mktemp("vast-views")
    # the documented command (docs/sql/own-trino.md), into this test's folder and schema
    documented = shlex.split(block(DOCS_PAGE, "On VAST", "python -m tams_analytics.views").commands()[0])[3:]
    command = [
        str(out) if prev == "--write" else schema if prev == "--view-schema" else arg
        for prev, arg in zip(["", *documented[:-1]], documented, strict=True)
    ]
    assert command[::2] == ["--write", "--table-catalog", "--table-schema", "--view-catalog", "--view-schema"]
    assert command[5] == VAST_SCHEMA
    listing = io.StringIO()
    with contextlib.redirect_stdout(listing):
        assert trino_views.main(command) == 0
    files = [Path(line) for line in listing.getvalue().splitlines()]
    existed = schema in _schemas(engine, "hive")
    try:
        trino_cli.run("-f", str(files[0]))  # as pasted
    except CliUnavailable:
        engine.script(files[0].read_text())
    for path in files[1:]:
        engine.script(path.read_text())
    yield GeneratedViews(cat, schema, files, existed)
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
    trino_vast_store: TrinoStore, vast_views: GeneratedViews, name: str
) -> None:
    got = vast_views.cat.engine.sql(f'SELECT * FROM hive."{vast_views.schema}"."{name}"')  # type: ignore[attr-defined]
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


def test_the_generated_views_create_their_schema(vast_views: GeneratedViews) -> None:
    """docs/sql/own-trino.md's way for connectors without views, as pasted: each file generated with
    ``--view-schema`` creates the schema it needs, so ``trino -f DIR/<view>.sql`` runs on a Trino without it."""
    assert not vast_views.schema_existed, "the schema was there already: the files' own CREATE SCHEMA is untested"
    assert [p.stem for p in vast_views.files] == list(views.VIEWS)
    for path in vast_views.files:
        assert statements(path.read_text())[0] == f'CREATE SCHEMA IF NOT EXISTS "hive"."{vast_views.schema}"'
    gaps = vast_views.cat.engine.sql(f'SELECT count(*) AS n FROM hive."{vast_views.schema}"."segment_gaps"')  # type: ignore[attr-defined]
    assert gaps.column("n")[0].as_py() > 0


# -- the same rows in every session time zone ----------------------------------------------------------------------
Canonical = tuple[tuple[str, ...], list[tuple[Any, ...]]]


def _canonical(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> Canonical:
    """Column names and rows in a comparable order (nulls first)."""
    return tuple(columns), sorted((tuple(r) for r in rows), key=lambda r: [(v is not None, v) for v in r])


@pytest.fixture(scope="module")
def duckdb_in_zone(trino_store: TrinoStore) -> dict[str, Canonical]:
    """Every view on DuckDB with its session in :data:`ZONE` (ibis pins it to UTC otherwise), checked to be the
    rows of its UTC session: the rows the Trino views give in a UTC session (the tests above)."""
    settings = trino_store.duckdb.engine.ibis.settings
    settings["timezone"] = ZONE
    try:
        tables = {name: views.VIEWS[name](trino_store.duckdb).to_pyarrow() for name in NAMES}
    finally:
        settings["timezone"] = "UTC"
    out = {}
    for name, table in tables.items():
        assert table.num_rows > 0, f"{name} is empty: the comparison would prove little"
        assert _rows(table) == _rows(_duckdb(trino_store, name)), f"{name} on DuckDB moves with its session zone"
        out[name] = _canonical(table.column_names, [tuple(r.values()) for r in table.to_pylist()])
    return out


def _placements(request: pytest.FixtureRequest, store: TrinoStore) -> dict[str, str]:
    """Where the views are: the export's Hive schema, and the schema of the views over the VAST stand-in."""
    request.getfixturevalue("hive_views")
    over_vast: GeneratedViews = request.getfixturevalue("vast_views")
    return {"export": f'hive."{store.hive_schema}"', "vast": f'hive."{over_vast.schema}"'}


def test_every_view_gives_the_utc_sessions_rows_in_an_asia_kolkata_session(
    request: pytest.FixtureRequest, trino_store: TrinoStore, duckdb_in_zone: dict[str, Canonical]
) -> None:
    """The Python client in an Asia/Kolkata session gets from every view, on the export and over the VAST
    stand-in, the rows of a UTC session (the tests above: DuckDB's, which do not move with DuckDB's own zone).
    Before the views read timestamps as UTC, the ingest buckets moved with the session: segments created at
    14:37 UTC counted in the 09:00 UTC bucket in Kolkata."""
    server = trino_store.server
    placements = _placements(request, trino_store)
    con = trino.dbapi.connect(host=server.host, port=server.port, user="tests", timezone=ZONE)
    try:
        cur = con.cursor()
        cur.execute("SELECT current_timezone()")
        assert cur.fetchall() == [[ZONE]]
        for placement, schema in placements.items():
            for name in NAMES:
                cur.execute(f'SELECT * FROM {schema}."{name}"')
                rows = cur.fetchall()
                got = _canonical([d[0] for d in cur.description], rows)
                assert got == duckdb_in_zone[name], f"{name} on the {placement} in a {ZONE} session"
    finally:
        con.close()


def test_the_official_cli_in_asia_kolkata_gets_the_utc_ingest_buckets(
    request: pytest.FixtureRequest,
    trino_store: TrinoStore,
    trino_cli: TrinoCli,
    duckdb_in_zone: dict[str, Canonical],
    tmp_path: Path,
) -> None:
    """What was reported, with the client it was reported with: ``trino --timezone=Asia/Kolkata`` reads the
    ingest views of both placements (in one run of the CLI: a marker row before each view's rows) and gets the
    UTC buckets."""
    placements = _placements(request, trino_store)
    ingest = ("ingest_hourly", "ingest_daily")
    script = tmp_path / "ingest.sql"
    script.write_text(
        "".join(
            f'SELECT \'{placement} {name}\' AS "__view__";\nSELECT * FROM {schema}."{name}";\n'
            for placement, schema in placements.items()
            for name in ingest
        )
    )
    try:
        out = trino_cli.run(f"--timezone={ZONE}", "--output-format", "JSON", "-f", str(script))
    except CliUnavailable as exc:
        pytest.skip(f"no Trino CLI: {exc}")
    got: dict[str, list[dict[str, Any]]] = {}
    current: list[dict[str, Any]] = []
    for row in map(json.loads, out.splitlines()):
        if "__view__" in row:
            current = got.setdefault(row["__view__"], [])
        else:
            current.append(row)
    assert sorted(got) == sorted(f"{p} {n}" for p in placements for n in ingest)
    for key, rows in got.items():
        columns, expected = duckdb_in_zone[key.split()[1]]
        assert all(tuple(r) == columns for r in rows), key
        assert _canonical(columns, [tuple(r.values()) for r in rows]) == (columns, expected), f"{key} in {ZONE}"
