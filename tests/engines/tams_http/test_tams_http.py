"""The ``tams+http`` engine against this project's server, live on 127.0.0.1, over a demo store.

The same store is read directly (DuckDB) and through the API: every query shape of the notebooks, analytics,
views and widgets gives the same answer (or, where the API cannot answer exactly, a clear
``UnsupportedError``), and the server's own record of requests shows what each query asked for: a one-flow
window is one ``/flows/{id}/segments?timerange=...`` request, listings page by ``Link``, flows are read
concurrently within the bound.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import ibis
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pytest

from tams_analytics import predicates as P
from tams_analytics.analytics import integrity, reports
from tams_analytics.catalog import Catalog
from tams_analytics.exceptions import TamsError, UnsupportedError
from tams_analytics.export import PROGRESS_EVERY_S, default_tables, export_catalog
from tams_analytics.schema import SCHEMAS
from tams_analytics.storage.base import DEFAULT_STORAGE_ID, object_key
from tests.engines.catalogs import expect_notimpl
from tests.engines.remote.shapes import SHAPES, VIDEO, Context, answerable, run, same
from tests.fixtures.live_tams import DEMO_SEGMENTS, MAX_LIMIT, ServedDemo, serving_demo

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def http(served_demo: ServedDemo) -> Iterator[Catalog]:
    cat = served_demo.connect()
    yield cat
    cat.close()


@pytest.fixture(scope="module")
def context(served_demo: ServedDemo) -> Context:
    return Context.of(served_demo.duckdb)


@pytest.fixture
def requests(served_demo: ServedDemo) -> ServedDemo:
    served_demo.server.recorder.clear()
    return served_demo


# -- the same answers ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_every_query_shape_gives_duckdbs_answer(
    served_demo: ServedDemo, http: Catalog, context: Context, shape: str
) -> None:
    if not answerable(shape, http.engine.capabilities):
        with pytest.raises(UnsupportedError, match="tams\\+http engine cannot"):
            run(shape, http, context)
        return
    assert same(run(shape, http, context), run(shape, served_demo.duckdb, context))


def test_rows_and_documents_are_the_stores(served_demo: ServedDemo, http: Catalog, context: Context) -> None:
    duck = served_demo.duckdb
    assert http.get_flow(context.flow_id) == duck.get_flow(context.flow_id)
    source = duck.get_flow(context.flow_id)["source_id"]  # type: ignore[index]
    assert http.get_source(source) == duck.get_source(source)
    columns = ["id", "source_id", "format", "codec", "container", "label", "doc", "created", "metadata_updated"]
    assert same(http.rows("flows", columns=columns), duck.rows("flows", columns=columns))
    wire = [c for c in duck.rows("segments").column_names if c not in ("created", "object_timerange")]
    assert same(http.rows("segments", columns=wire), duck.rows("segments", columns=wire))
    assert same(http.rows("tags"), duck.rows("tags", [ibis_free_tags()]))


def ibis_free_tags() -> object:
    from tams_analytics.predicates import Term

    return Term("entity_type", "isin", ("flow", "source", "storage_backend"))


# -- what the server was asked --------------------------------------------------------------------------------
def test_a_one_flow_window_is_one_segments_request(requests: ServedDemo, http: Catalog, context: Context) -> None:
    s = http.segments(flow_id=context.flow_id, timerange=context.window)
    n = s.aggregate(n=s.count(), first=s.start_ns.min()).to_pyarrow()["n"][0].as_py()
    assert n == requests.duckdb.segments(flow_id=context.flow_id, timerange=context.window).count().execute()
    (request,) = requests.server.recorder.requests
    assert request.path == f"/flows/{context.flow_id}/segments"
    assert request.query["timerange"][0].startswith("[") and request.query["accept_get_urls"] == [""]


def test_a_plain_ibis_filter_lists_one_flow(requests: ServedDemo, http: Catalog, context: Context) -> None:
    s = http.segments()
    out = s.filter(s.flow_id == context.flow_id).group_by("object_id").aggregate(n=ibis._.count()).to_pyarrow()
    assert out.num_rows == requests.duckdb.segments(flow_id=context.flow_id).count().execute()
    paths = {r.path for r in requests.server.recorder.requests}
    assert paths == {f"/flows/{context.flow_id}/segments"}


def test_named_filters_become_query_parameters(requests: ServedDemo, http: Catalog) -> None:
    expr = http.flows(format=VIDEO, tags={"genre": "news"}, codec="video/h264")
    assert (
        expr.count().execute()
        == requests.duckdb.flows(format=VIDEO, tags={"genre": "news"}, codec="video/h264").count().execute()
    )
    (request,) = requests.server.recorder.requests
    assert request.path == "/flows"
    assert request.query["format"] == [VIDEO] and request.query["tag.genre"] == ["news"]
    assert request.query["codec"] == ["video/h264"]


def test_flows_with_content_in_a_window_are_one_request(requests: ServedDemo, http: Catalog, context: Context) -> None:
    got = http.flows(timerange=context.window).select("id").to_pyarrow()
    assert same(got, requests.duckdb.flows(timerange=context.window).select("id").to_pyarrow())
    (request,) = requests.server.recorder.requests
    assert request.path == "/flows" and request.query["timerange"] == [str(context.window)]


def test_long_listings_page_by_link_with_the_servers_maximum(requests: ServedDemo, http: Catalog) -> None:
    flow_id, count = (
        (requests.duckdb.segments().group_by("flow_id").aggregate(n=ibis._.count()).order_by(ibis.desc("n")).limit(1))
        .to_pyarrow()
        .to_pylist()[0]
        .values()
    )
    assert count > MAX_LIMIT
    assert http.segments(flow_id=flow_id).count().execute() == count
    pages = requests.server.recorder.matching(f"/flows/{flow_id}/segments")
    assert len(pages) == -(-count // MAX_LIMIT)
    assert pages[0].query["limit"] == ["10000"] and all("page" in p.query for p in pages[1:])


def test_flows_are_listed_concurrently_within_the_bound(served_demo: ServedDemo) -> None:
    cat = served_demo.connect(concurrency=3)
    try:
        served_demo.server.recorder.clear()
        assert cat.segments().count().execute() == DEMO_SEGMENTS
        assert 1 <= served_demo.server.recorder.most_in_flight <= 3
    finally:
        cat.close()


def test_a_servers_error_json_surfaces(http: Catalog) -> None:
    with pytest.raises(TamsError, match="format='urn:x-nmos:format:nonsense' is not a TAMS format"):
        http.flows(format="urn:x-nmos:format:nonsense").count().execute()  # refused before any request
    client = http.engine.client  # type: ignore[attr-defined]
    with pytest.raises(TamsError, match=r"GET .*/flows answered HTTP 400 \(BadRequestError\): .*limit"):
        client.document("/flows", {"limit": "many"})


def test_an_object_is_one_request_and_one_not_referenced_is_absent(requests: ServedDemo, http: Catalog) -> None:
    oid = requests.duckdb.segments().select("object_id").limit(1).to_pyarrow()["object_id"][0].as_py()
    row = http.objects(id=oid).select("id", "first_referenced_by_flow", "timerange").to_pyarrow().to_pylist()
    assert (
        row
        == requests.duckdb.objects(id=oid)
        .select("id", "first_referenced_by_flow", "timerange")
        .to_pyarrow()
        .to_pylist()
    )
    assert [r.path for r in requests.server.recorder.requests] == [f"/objects/{oid}"]
    assert http.objects(id="no-such-object").count().execute() == 0


@pytest.fixture(scope="module")
def with_instances(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedDemo]:
    """A small demo store whose objects have instances: a controlled one each in the server's own storage,
    and for some a second, uncontrolled one (a mirror's URL)."""

    def mirror_some(catalog: Catalog) -> None:
        some = catalog.segments().select("object_id").limit(50).to_pyarrow()["object_id"].to_pylist()
        catalog.add_uncontrolled_instances({(oid, "mirror"): f"https://mirror.example/{oid}" for oid in some})

    root = tmp_path_factory.mktemp("instances")
    demo = {"programmes": 1, "storage_id": DEFAULT_STORAGE_ID, "storage_key": object_key}
    with serving_demo(root, 400, mirror_some, **demo) as served:
        yield served


def test_an_export_through_the_api_reads_listings_a_page_at_a_time(with_instances: ServedDemo, tmp_path: Path) -> None:
    """Every table the engine reads, object instances too: those come with the segment listings
    (``verbose_storage=true``), a request per page, never a request per object (20,000 of them took 90 s)."""
    duck, http = with_instances.duckdb, with_instances.connect()
    with_instances.server.recorder.clear()
    assert default_tables(http) == [t for t in SCHEMAS if t in (http.engine.capabilities.tables or ())]
    summary = export_catalog(http, str(tmp_path))
    requests = with_instances
    paths = [r.path for r in requests.server.recorder.requests]
    rows = {t.table: t.rows for t in summary.tables}
    assert rows == {t: duck.count(t, [ibis_free_tags()] if t == "tags" else []) for t in default_tables(http)}
    # what the store holds (a controlled instance's label is the one the server gives its URLs: not compared)
    columns = ["object_id", "storage_id", "url", "controlled", "position"]
    exported = ds.dataset(tmp_path / "object_instances").to_table()
    assert exported.num_rows == duck.count("objects") + 50
    assert same(exported.select(columns), duck.rows("object_instances", columns=columns))
    # and exactly what the objects' own documents say (GET /objects/{id}?verbose_storage=true)
    mirrored = sorted(exported.filter(pc.field("label") == "mirror")["object_id"].to_pylist())
    by_id = http.rows("object_instances", [P.isin("object_id", mirrored)])
    assert len(mirrored) == 50 and same(
        exported.filter(pc.field("object_id").isin(mirrored)), by_id.select(exported.column_names)
    )
    http.close()
    assert not [p for p in paths if p.startswith("/objects")]
    per_flow = duck.segments().group_by("flow_id").aggregate(n=ibis._.count()).to_pyarrow()["n"].to_pylist()
    pages = sum(-(-n // MAX_LIMIT) for n in per_flow) + duck.count("flows") - len(per_flow)  # empty flows: one each
    listings = [p for p in paths if p.endswith("/segments")]
    assert len(listings) <= 3 * (pages + len(per_flow))  # segments, objects and instances: a listing each


def test_an_export_off_a_terminal_says_how_it_goes_every_few_seconds(served_demo: ServedDemo, tmp_path: Path) -> None:
    """``tams-analytics export`` with stderr a pipe (a cron job, a CI log): no bar redrawn with carriage
    returns, a line every few seconds, also while the rows are still coming from a slow server."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAMS_")} | {"PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "tams_analytics.cli", "export", "--store", served_demo.url]
    served_demo.server.recorder.delay_s = 1.0  # every request a second late: the segments take ~8 s
    try:
        done = subprocess.run(
            [*command, "--to", str(tmp_path / "out"), "--tables", "segments"],
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
        )
    finally:
        served_demo.server.recorder.delay_s = 0.0
    assert done.returncode == 0, done.stderr
    assert f"segments: {served_demo.duckdb.count('segments')} rows" in done.stdout
    lines = done.stderr.splitlines()
    assert lines and "\r" not in done.stderr
    assert all(line.startswith("tams-analytics export: segments: ") for line in lines), lines
    assert "reading from the store" in lines[0] and lines[0].endswith(f"(export {PROGRESS_EVERY_S:.0f} s)")


def test_writes_are_refused(http: Catalog) -> None:
    with pytest.raises(UnsupportedError, match="read-only"):
        http.put_flow({"id": "f", "source_id": "s", "format": VIDEO})


# -- what the API cannot answer exactly (notimpl: the engine says so) ----------------------------------------------
@pytest.fixture(params=["duckdb", "tams+http"])
def either(request: pytest.FixtureRequest, served_demo: ServedDemo, http: Catalog) -> Catalog:
    """The demo store read directly, or through the API."""
    expect_notimpl(request, request.param)
    return served_demo.duckdb if request.param == "duckdb" else http


@pytest.mark.notimpl(["tams+http"], raises=UnsupportedError, reason="objects are listed only through segments")
def test_objects_no_segment_references_are_found(either: Catalog) -> None:
    assert integrity.unreferenced_objects(either).count().execute() == 0


@pytest.mark.notimpl(["tams+http"], raises=UnsupportedError, reason="segments are listed only through their flows")
def test_segments_of_deleted_flows_are_found(either: Catalog) -> None:
    assert integrity.orphan_segments(either).count().execute() == 0


@pytest.mark.notimpl(["tams+http"], raises=UnsupportedError, reason="the API does not say when segments were added")
def test_ingest_over_time(either: Catalog) -> None:
    assert reports.ingest(either, "day").count().execute() >= 1


@pytest.mark.notimpl(["tams+http"], raises=UnsupportedError, reason="webhooks are not a table of this engine")
def test_webhooks(either: Catalog) -> None:
    assert either.table("webhooks").count().execute() == 0


def test_the_audit_skips_what_the_api_cannot_answer(served_demo: ServedDemo, http: Catalog) -> None:
    report = integrity.audit(http)
    # the demo has no media: no object has an instance, and the API gives no get_urls for any, as the store says
    direct = integrity.audit(served_demo.duckdb)
    unplayable = "objects_without_instances"
    assert {k for k, n in report.totals.items() if n} == {k for k, n in direct.totals.items() if n} == {unplayable}
    assert report.totals[unplayable] == direct.totals[unplayable] > 0
    assert report.verdict == "findings" and not report.clean
    assert set(report.skipped) >= {
        "orphan_segments",
        "missing_objects",
        "unreferenced_objects",
        "stale_segments_updated",
    }
    # each says why in its own words: orphans cannot be listed; objects are known only as segments name them
    assert "segments of a flow that is gone" in report.skipped["orphan_segments"]
    assert "sees none missing" in report.skipped["missing_objects"]
    assert report.skipped["missing_objects"] != report.skipped["orphan_segments"]
    assert report.checked == integrity.audit(served_demo.duckdb).checked


def test_object_sizes_are_unknown_through_the_api(served_demo: ServedDemo, http: Catalog) -> None:
    by_format = reports.storage(http, "format").to_pyarrow().to_pylist()
    direct = {r["format"]: r for r in reports.storage(served_demo.duckdb, "format").to_pyarrow().to_pylist()}
    assert by_format and all(r["bytes"] == 0 and r["objects_unsized"] == r["objects"] for r in by_format)
    assert {r["format"]: r["objects"] for r in by_format} == {k: r["objects"] for k, r in direct.items()}
