"""Coverage (runs, gaps, per-flow statistics) computed in the engine, checked against exact expectations and
against a plain-Python interval union on random, overlapping data."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import ibis
import numpy as np
import pytest
import sqlglot

from tams_analytics import TimeRange
from tams_analytics.analytics import coverage
from tams_analytics.catalog import Catalog
from tams_analytics.schema import SCHEMAS
from tests.analytics import ENGINES, S, add, catalog_on, put_flow, raw_segments
from tests.engines.catalogs import open_catalog


@pytest.fixture(params=ENGINES)
def cat(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Catalog]:
    yield from catalog_on(request.param, tmp_path, request)


@pytest.fixture
def store(cat: Catalog) -> Catalog:
    """Flow ``a``: runs [0,3) [5,7) [10,11) s, with clusivity written several ways; ``b``: one run; ``c``: none."""
    for f in ("a", "b", "c"):
        put_flow(cat, f)
    # "[2:0_2:999999999]" is [2:0_3:0) half-open, so it abuts "[3:0_..." exactly
    add(cat, "a", ["[0:0_1:0)", "[1:0_2:0)", "[2:0_2:999999999]", "[5:0_6:0)", "[6:0_7:0)", "[10:0_11:0)"])
    add(cat, "b", ["[0:0_2:0)", "[2:0_4:0)"])
    return cat


def _texts(trs: list[TimeRange]) -> list[str]:
    return [str(t) for t in trs]


def test_runs_and_gaps_of_one_flow(store: Catalog) -> None:
    assert _texts(coverage.flow_runs(store, "a")) == ["[0:0_3:0)", "[5:0_7:0)", "[10:0_11:0)"]
    assert _texts(coverage.flow_gaps(store, "a")) == ["[3:0_5:0)", "[7:0_10:0)"]
    assert _texts(coverage.flow_runs(store, "b")) == ["[0:0_4:0)"]
    assert coverage.flow_gaps(store, "b") == []
    assert coverage.flow_runs(store, "c") == [] and coverage.flow_coverage(store, "c") is None


def test_runs_table_counts_segments_and_durations(store: Catalog) -> None:
    rows = coverage.runs(store, "a").to_pyarrow().to_pylist()
    assert [(r["segments"], r["duration_ns"]) for r in rows] == [(3, 3 * S), (2, 2 * S), (1, S)]


def test_a_one_nanosecond_hole_is_a_gap(cat: Catalog) -> None:
    put_flow(cat, "f")
    # "(1:0_2:0)" starts 1 ns after 1:0, where "[0:0_1:0)" ends: a hole of exactly one nanosecond
    add(cat, "f", ["[0:0_1:0)", "(1:0_2:0)"])
    assert _texts(coverage.flow_gaps(cat, "f")) == ["[1:0_1:1)"]
    put_flow(cat, "g")
    add(cat, "g", ["[0:0_1:0]", "(1:0_2:0)"])  # inclusive end and exclusive start meet exactly
    assert coverage.flow_gaps(cat, "g") == [] and len(coverage.flow_runs(cat, "g")) == 1


def test_many_flows_at_once_equal_one_at_a_time(store: Catalog) -> None:
    together = coverage.runs(store).to_pyarrow().to_pylist()
    assert [r["flow_id"] for r in together] == ["a", "a", "a", "b"]
    for flow in ("a", "b"):
        mine = [(r["start_ns"], r["end_ns"]) for r in together if r["flow_id"] == flow]
        assert mine == [(t.start_ns, t.end_ns) for t in coverage.flow_runs(store, flow)]
    both = coverage.gaps(store, ["a", "b"]).to_pyarrow()
    assert both.column("flow_id").to_pylist() == ["a", "a"]


def test_within_clips_runs_and_adds_edge_gaps(store: Catalog) -> None:
    window = "[2:500000000_12:0)"
    assert _texts(coverage.flow_runs(store, "a", window)) == ["[2:500000000_3:0)", "[5:0_7:0)", "[10:0_11:0)"]
    assert _texts(coverage.flow_gaps(store, "a", window)) == ["[3:0_5:0)", "[7:0_10:0)", "[11:0_12:0)"]
    # a leading edge gap, and an unbounded end adds none
    assert _texts(coverage.flow_gaps(store, "a", "[4:0_")) == ["[4:0_5:0)", "[7:0_10:0)"]
    s = coverage.summary(store, "a", within=window).to_pyarrow().to_pylist()[0]
    assert s["covered_ns"] == S // 2 + 2 * S + S and s["gap_ns"] == 2 * S + 3 * S + S and s["gaps"] == 3


def test_summary_statistics(store: Catalog) -> None:
    rows = {r["flow_id"]: r for r in coverage.summary(store).to_pyarrow().to_pylist()}
    assert set(rows) == {"a", "b"}
    a = rows["a"]
    assert (a["segments"], a["runs"], a["gaps"]) == (6, 3, 2)
    assert (a["first_start_ns"], a["last_end_ns"]) == (0, 11 * S)
    assert a["first_timerange"] == "[0:0_1:0)" and a["last_timerange"] == "[10:0_11:0)"
    assert (a["covered_ns"], a["gap_ns"]) == (6 * S, 5 * S)
    assert (a["seg_min_ns"], a["seg_max_ns"], a["seg_mean_ns"]) == (S, S, float(S))
    assert a["seg_median_ns"] == pytest.approx(S)
    b = rows["b"]
    assert (b["segments"], b["runs"], b["gaps"], b["covered_ns"], b["seg_max_ns"]) == (2, 1, 0, 4 * S, 2 * S)
    fc = coverage.flow_coverage(store, "a")
    assert fc is not None and not fc.contiguous
    assert str(fc.timerange) == "[0:0_11:0)" and _texts(fc.gaps) == ["[3:0_5:0)", "[7:0_10:0)"]


def test_overlapping_segments_merge_into_one_run(store: Catalog) -> None:
    # a damaged store: [4:0_5:500000000) overlaps [5:0_6:0) and bridges the gap before it only partly
    store.engine.insert("segments", raw_segments("a", [(4 * S, 5 * S + S // 2), (0, 10 * S)]))
    assert _texts(coverage.flow_runs(store, "a")) == ["[0:0_11:0)"]
    s = coverage.summary(store, "a").to_pyarrow().to_pylist()[0]
    assert (s["segments"], s["runs"], s["gaps"], s["covered_ns"]) == (8, 1, 0, 11 * S)


def test_accepts_an_ibis_table_the_analyst_filtered(store: Catalog) -> None:
    seg = store.segments()
    early = seg.filter(seg.start_ns < 6 * S)
    assert _texts(coverage.to_timeranges(coverage.runs(early, "a"))) == ["[0:0_3:0)", "[5:0_6:0)"]


#: the random stores (seed 4 has duplicate segments): DuckDB and VAST's reference run all six, Trino the first and the
#: duplicates. It compiles the same expressions whatever the data, and each of its reads is a query of a quarter to
#: half a second on a quiet machine (planning, mostly)
SEEDS = range(6)
TRINO_SEEDS = (0, 4)


@pytest.mark.parametrize(
    ("cat", "seed"),
    [
        pytest.param(engine.values[0], seed, id=f"{engine.id}-{seed}", marks=engine.marks)
        for engine in ENGINES
        for seed in SEEDS
        if engine.id != "trino" or seed in TRINO_SEEDS
    ],
    indirect=["cat"],
)
def test_random_segments_match_a_python_interval_union(cat: Catalog, seed: int) -> None:
    """Seed 4 has duplicate segments (a damaged store): both windows of the run computation must order them
    the same way on every engine."""
    rng = np.random.default_rng(seed)
    truth: dict[str, list[tuple[int, int]]] = {}
    for f in range(4):
        flow = f"flow{f}"
        put_flow(cat, flow)
        n = int(rng.integers(1, 300))
        starts = np.sort(rng.integers(0, 2_000, n)) * 1_000_000
        lengths = rng.choice([1, 2, 3, 5, 40], n) * 1_000_000  # mostly short: gaps, abutting and overlaps
        bounds = [(int(s), int(s + d)) for s, d in zip(starts, lengths, strict=True)]
        cat.engine.insert("segments", raw_segments(flow, bounds))
        merged: list[list[int]] = []
        for lo, hi in sorted(bounds):
            if merged and lo <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], hi)
            else:
                merged.append([lo, hi])
        truth[flow] = [(lo, hi) for lo, hi in merged]
    # the whole timeline, then a random window (runs clipped to it, its uncovered edges are gaps)
    lo_w, hi_w = sorted(int(x) * 1_000_000 for x in rng.integers(0, 2_100, 2))
    for window in (None, TimeRange.from_ns(lo_w, hi_w + 1)):
        expected = {}
        for flow, merged in truth.items():
            if window is None:
                expected[flow] = (merged, [(a[1], b[0]) for a, b in itertools.pairwise(merged)])
                continue
            w_lo, w_hi = window.storage_bounds()
            clipped = [(max(lo, w_lo), min(hi, w_hi)) for lo, hi in merged if lo < w_hi and hi > w_lo]
            if not clipped:
                continue
            edges = [w_lo, *[x for run in clipped for x in run], w_hi]
            holes = [(a, b) for a, b in zip(edges[::2], edges[1::2], strict=True) if a < b]
            expected[flow] = (clipped, holes)
        runs = coverage.runs(cat, within=window).to_pyarrow().to_pylist()
        gaps = coverage.gaps(cat, within=window).to_pyarrow().to_pylist()
        summary = {r["flow_id"]: r for r in coverage.summary(cat, within=window).to_pyarrow().to_pylist()}
        assert set(summary) == set(expected)
        for flow, (merged, holes) in expected.items():
            assert [(r["start_ns"], r["end_ns"]) for r in runs if r["flow_id"] == flow] == merged
            assert [(g["start_ns"], g["end_ns"]) for g in gaps if g["flow_id"] == flow] == holes
            assert summary[flow]["runs"] == len(merged) and summary[flow]["gaps"] == len(holes)
            assert summary[flow]["covered_ns"] == sum(hi - lo for lo, hi in merged)
            assert summary[flow]["gap_ns"] == sum(hi - lo for lo, hi in holes)


def test_with_timerange_text_is_canonical() -> None:
    import pyarrow as pa

    t = coverage.with_timerange_text(pa.table({"start_ns": [0, -S], "end_ns": [S + 1, 0]}))
    assert t.column("timerange").to_pylist() == ["[0:0_1:1)", "[-1:0_0:0)"]


@pytest.mark.parametrize("query", [coverage.runs, coverage.gaps, coverage.summary])
def test_expressions_compile_for_trino(query: object) -> None:
    """The same expressions are valid Trino SQL (the federation engine), with the window frames intact."""
    segments = ibis.table(ibis.schema(SCHEMAS["segments"]), name="segments")
    sql = str(ibis.to_sql(query(segments, ["a", "b"], within="[0:0_100:0)"), dialect="trino"))  # type: ignore[operator]
    sqlglot.parse_one(sql, read="trino")
    assert "ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING" in sql.upper()
    assert "duckdb" not in sql.lower()


# -- one flow's analytics name a flow the store has -----------------------------------------------------------
def test_the_start_of_a_flow_id_names_the_flows_whose_id_starts_with_it(tmp_path: Path) -> None:
    """The first hex digits of an id (copied from a table) are said to be the start of one, with the flows whose id
    starts with them, in the library's words; text that starts no id is pointed to ``cat.flows(label=...)``."""
    from tams_analytics.exceptions import NotFoundError, TamsError

    ids = ["adb8d058-9a82-4575-9b1e-0c3a3d6f0e11", "adb8d058-0000-4000-8000-000000000001"]
    with open_catalog("duckdb", tmp_path) as store:
        put_flow(store, ids[0], label="Evening News")
        put_flow(store, ids[1], label="Radio")
        with pytest.raises(TamsError, match="is the start of a flow id, not a whole one: flows whose id starts") as one:
            coverage.flow_coverage(store, "adb8d058")
        assert f"{ids[1]} (Radio), {ids[0]} (Evening News); give its whole id" in str(one.value)
        with pytest.raises(TamsError, match="the flow whose id starts with it is " + ids[0]):
            store.flow_timerange("adb8d058-9a")
        with pytest.raises(TamsError, match=r"no flow's id here starts with it .*cat\.flows\(label=\.\.\.\)"):
            coverage.flow_runs(store, "ffffffff")
        with pytest.raises(NotFoundError, match="no flow ffffffff-0000-4000-8000-000000000000 in this store"):
            coverage.flow_gaps(store, "ffffffff-0000-4000-8000-000000000000")


def test_a_flow_the_store_does_not_have_is_an_error_not_no_segments(tmp_path: Path) -> None:
    """Unknown ids are errors (NotFoundError), text that is not a flow id says so (a label given for an id),
    a flow with no segments is still just empty. (The check is one query through the catalog's rows, the same
    on every engine: DuckDB here; the VAST pushdown suite runs that query shape too.)"""
    from tams_analytics.exceptions import NotFoundError, TamsError
    from tams_analytics.plots import plot_coverage

    with open_catalog("duckdb", tmp_path) as store:
        for f in ("a", "b", "c"):
            put_flow(store, f)
        add(store, "a", ["[0:0_1:0)", "[5:0_6:0)"])
        add(store, "b", ["[0:0_2:0)", "[2:0_4:0)"])
        unknown = "0b7c0d53-45f6-4d2c-9b0e-2f0e9b7a1c11"
        for call in (
            lambda f: coverage.flow_coverage(store, f),
            lambda f: coverage.flow_runs(store, f),
            lambda f: coverage.flow_gaps(store, f),
            lambda f: store.flow_timerange(f),
        ):
            with pytest.raises(NotFoundError, match=f"no flow {unknown} in this store"):
                call(unknown)
            with pytest.raises(TamsError, match="names one flow: a string"):
                call(["a", "b"])
        # text that is not a flow id (a label given for one) is said so: the same guard answers every call above
        with pytest.raises(TamsError, match=r"'Evening News' is not a flow id: flow ids are UUIDs .*label="):
            store.flow_timerange("Evening News")
        # a plot names one flow or several: each must exist (a lane for one that does not would read as "no media")
        with pytest.raises(NotFoundError, match=f"no flow {unknown}"):
            plot_coverage(store, ["a", unknown])
        # the flow exists, without segments: empty answers, as before
        assert coverage.flow_coverage(store, "c") is None and coverage.flow_runs(store, "c") == []
        assert store.flow_timerange("c").is_empty
        assert coverage.flow_gaps(store, "b") == []  # contiguous: no gaps, and no error
