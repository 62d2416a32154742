"""VAST's analyst tables are lazy: what an ibis expression makes the store return, and that every shape the
notebooks, analytics, views and widgets produce gives DuckDB's answer on the same data.

The store is :class:`~tests.engines.vast.reference.RecordingStore`, the offline reference of a VAST cluster (it
evaluates the SDK-serialised requests) recording what each ``Table.select`` asked for and returned, filled with
the 20,000-segment demo (the data of issue 13's measurements). Random chains of plain ibis filters (hypothesis)
give DuckDB's rows.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ibis
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tams_analytics.catalog import Catalog, connect
from tams_analytics.demo import build_demo
from tams_analytics.engines.vast import Engine
from tests.engines.remote.shapes import SHAPES, VIDEO, Context, run, same
from tests.engines.vast.reference import REFERENCE_URL, RecordingStore

SEGMENTS = 20_000
TABLES = ("sources", "flows", "segments", "objects", "object_instances", "tags", "collections", "storage_backends")


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Catalog, Catalog, RecordingStore]]:
    """The demo on DuckDB, the same rows on VAST over the recording store, and that store."""
    path: Path = tmp_path_factory.mktemp("lazy") / "demo.duckdb"
    duck = connect(f"duckdb:///{path}", create=True)
    build_demo(duck, SEGMENTS, progress=False)
    store = RecordingStore()
    vast = Catalog(Engine(REFERENCE_URL, store=store))
    for name in TABLES:
        vast.engine.insert(name, duck.engine.query(name))
    yield duck, vast, store
    vast.close()
    duck.close()


@pytest.fixture
def recorded(demo: tuple[Catalog, Catalog, RecordingStore]) -> tuple[Catalog, Catalog, RecordingStore]:
    demo[2].log.clear()
    return demo


@pytest.fixture(scope="module")
def context(demo: tuple[Catalog, Catalog, RecordingStore]) -> Context:
    return Context.of(demo[0])


# -- what the store returns ------------------------------------------------------------------------------------
def test_a_one_flow_window_reads_its_rows_and_the_columns_used(recorded: Any, context: Context) -> None:
    duck, vast, store = recorded
    needed = duck.segments(flow_id=context.flow_id, timerange=context.window).count().execute()
    s = vast.segments(flow_id=context.flow_id, timerange=context.window)
    out = s.aggregate(n=s.count(), covered=(s.end_ns - s.start_ns).sum()).to_pyarrow().to_pylist()
    assert out[0]["n"] == needed and 0 < needed < SEGMENTS / 20
    (read,) = store.reads("segments")
    assert read.filtered and read.rows == needed  # not 20,000
    assert set(read.columns) <= {"flow_id", "start_ns", "end_ns"}


def test_a_plain_ibis_filter_on_segments_is_pushed_down(recorded: Any, context: Context) -> None:
    duck, vast, store = recorded
    flow_rows = duck.segments(flow_id=context.flow_id).count().execute()
    s = vast.segments()
    out = s.filter(s.flow_id == context.flow_id).group_by("object_id").aggregate(n=ibis._.count()).to_pyarrow()
    assert out.num_rows == flow_rows
    (read,) = store.reads("segments")
    assert read.filtered and read.rows == flow_rows
    assert set(read.columns) == {"flow_id", "object_id"}


def test_a_plain_window_filter_and_a_projection_through_mutate(recorded: Any, context: Context) -> None:
    duck, vast, store = recorded
    lo, hi = context.window.storage_bounds()
    s = vast.segments().mutate(d=ibis._.end_ns - ibis._.start_ns)
    expr = s.filter((s.flow_id == context.flow_id) & (s.start_ns < hi) & (s.end_ns > lo)).select("d")
    assert expr.count().execute() == duck.segments(flow_id=context.flow_id, timerange=context.window).count().execute()
    (read,) = store.reads("segments")
    assert read.filtered and read.rows < 400 and set(read.columns) == {"flow_id", "start_ns", "end_ns"}


def test_the_catalogs_named_filters_are_pushed_down(recorded: Any) -> None:
    duck, vast, store = recorded
    assert vast.flows(format=VIDEO).count().execute() == duck.flows(format=VIDEO).count().execute()
    (read,) = store.reads("flows")
    assert read.filtered and read.rows == duck.flows(format=VIDEO).count().execute()


def test_a_join_hands_the_other_sides_keys_to_the_scan(recorded: Any, context: Context) -> None:
    duck, vast, store = recorded
    s, f = vast.segments(), vast.flows()
    j = s.join(f.filter(f.label == context.label), s.flow_id == f.id)
    assert j.count().execute() == duck.segments(flow_id=context.flow_id).count().execute()
    (read,) = store.reads("segments")
    assert read.filtered and read.rows == duck.segments(flow_id=context.flow_id).count().execute()


def test_filters_duckdb_does_not_push_still_select_exactly(recorded: Any) -> None:
    duck, vast, _ = recorded
    for build in (
        lambda t: t.filter(t.init_object_id.isnull()).count(),
        lambda t: t.filter(t.timerange.startswith("[17000001")).count(),
        lambda t: t.filter((t.start_ns < 1_700_000_100 * 10**9) | (t.object_id == "x")).count(),
        # (start_ns, flow_id) is unique (a flow's segments never overlap): an order with ties could differ
        lambda t: t.order_by(["start_ns", "flow_id"]).limit(3).select("timerange"),
    ):
        a, b = build(vast.segments()).to_pyarrow(), build(duck.segments()).to_pyarrow()
        assert same(a, b) if isinstance(a, pa.Table) else a == b


def test_scans_of_one_execution_share_a_fetch(recorded: Any) -> None:
    _, vast, store = recorded
    s = vast.segments()
    both = s.select("flow_id", "start_ns").union(s.select("flow_id", "start_ns"))
    both.count().execute()
    assert len(store.reads("segments")) == 1


# -- every shape gives DuckDB's answer -------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_every_query_shape_gives_duckdbs_answer(demo: Any, context: Context, shape: str) -> None:
    duck, vast, _ = demo
    assert same(run(shape, vast, context), run(shape, duck, context))


# -- random chains of ibis filters --------------------------------------------------------------------------------
@st.composite
def conditions(draw: st.DrawFn, samples: dict[str, list[Any]]) -> Any:
    """One boolean ibis condition (on ``ibis._``) over the segments' columns, with values from the data."""
    column = draw(st.sampled_from(sorted(samples)))
    value = draw(st.sampled_from(samples[column]))
    c = ibis._[column]
    kind = draw(st.sampled_from(["cmp", "isin", "between", "null", "text", "or", "not"]))
    if kind == "cmp":
        op = draw(st.sampled_from(["==", "!=", "<", "<=", ">", ">="]))
        return {"==": c == value, "!=": c != value, "<": c < value, "<=": c <= value, ">": c > value, ">=": c >= value}[
            op
        ]
    if kind == "isin":
        return c.isin(draw(st.lists(st.sampled_from(samples[column]), min_size=1, max_size=60)))
    if kind == "between":
        lo, hi = sorted([value, draw(st.sampled_from(samples[column]))])
        return c.between(lo, hi)
    if kind == "null":
        return c.isnull() if draw(st.booleans()) else c.notnull()
    if kind == "text" and isinstance(value, str):
        return c.startswith(value[: draw(st.integers(0, len(value)))])
    if kind == "or":
        return draw(conditions(samples)) | draw(conditions(samples))
    return ~draw(conditions(samples))


@pytest.fixture(scope="module")
def samples(demo: Any) -> dict[str, list[Any]]:
    duck = demo[0]
    s = duck.segments().order_by("start_ns").limit(4000).to_pyarrow()
    out: dict[str, list[Any]] = {}
    for column in ("flow_id", "object_id", "timerange", "start_ns", "end_ns", "key_frame_count", "created"):
        values = sorted({v for v in s.column(column).to_pylist() if v is not None})
        out[column] = values[:: max(1, len(values) // 40)]
    return out


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_random_ibis_filter_chains_give_duckdbs_rows(demo: Any, samples: dict[str, list[Any]], data: Any) -> None:
    duck, vast, _ = demo
    chain = data.draw(st.lists(conditions(samples), min_size=1, max_size=3))
    columns = data.draw(st.lists(st.sampled_from(sorted(samples)), min_size=1, max_size=3, unique=True))

    def query(cat: Catalog) -> pa.Table:
        t = cat.segments()
        for condition in chain:
            t = t.filter(condition)
        return t.select(*columns).to_pyarrow()

    assert same(query(vast), query(duck))
