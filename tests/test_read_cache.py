"""The read cache answers exactly what the store answers, whatever the writes, rollbacks and races.

Every check compares a catalog with the cache on (its engine wrapped in a ``CachingEngine``) against a
second catalog over the *same* DuckDB engine without the wrapper (it reads the store on every call).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import gc
import itertools
import random
import threading
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import pyarrow as pa
import pytest

from server.delete_requests import records as delete_records
from tams_analytics.cache import CacheConfig, CachingEngine
from tams_analytics.cache.keyed import EVERYTHING, KeyedCache, changed_keys
from tams_analytics.cache.timeline import RowBlocks, Timeline, UncachedQuery
from tams_analytics.catalog import Catalog, cached, connect, segment_page_where, utcnow
from tams_analytics.engines.base import Change, Engine
from tams_analytics.exceptions import ConflictError, UnsupportedError
from tams_analytics.nonblocking import WouldBlock, memory_only
from tams_analytics.predicates import Term, isin
from tams_analytics.pyrows import column_values, table_rows
from tams_analytics.schema import SCHEMAS
from tests.engines.contract.test_catalog_flows import flow

STORAGE = "5d0c8a3e-7f41-4b6a-9c2e-1a3b5c7d9e0f"
COLUMNS = ("object_id", "timerange", "start_ns", "ts_offset", "init_object_id")


class Boom(Exception):
    pass


@pytest.fixture
def pair(tmp_path: Path) -> tuple[Catalog, Catalog]:
    """(cached, plain) catalogs over one DuckDB engine; small limits so that eviction and the
    oversized-flow path are exercised too."""
    config = CacheConfig(segment_rows=400, flow_rows=150, objects=60, row_blocks=4, tail_rows=20)
    cached = connect(f"duckdb:///{tmp_path / 'tams.duckdb'}", create=True, cache_reads=config)
    assert cached.caches_reads
    assert isinstance(cached.engine, CachingEngine)
    plain = Catalog(cached.engine.inner)
    yield cached, plain
    cached.close()


def _tr(a: int, b: int) -> str:
    return f"[{a}:0_{b}:0)"


def _same_pages(cached: Catalog, plain: Catalog, flow_id: str, rng: random.Random) -> None:
    for _ in range(6):
        lo = rng.randint(-5, 400)
        kwargs: dict[str, Any] = {
            "timerange": rng.choice([None, _tr(lo, lo + rng.randint(0, 60)), f"({lo}:0_{lo + 5}:0]", "()", "_"]),
            "reverse": rng.random() < 0.3,
            "limit": rng.choice([None, 1, 7, 100]),
            "after_start_ns": rng.choice([None, rng.randint(0, 400) * 10**9]),
        }
        if rng.random() < 0.1:
            kwargs["object_id"] = f"o{rng.randint(0, 60)}"
        want = plain.segment_rows(flow_id, **kwargs)
        got = cached.segment_rows(flow_id, **kwargs)
        assert got.to_pylist() == want.to_pylist(), kwargs
        assert got.schema.names == want.schema.names
        assert _page(cached, flow_id, **kwargs) == table_rows(want, COLUMNS), kwargs
        within = kwargs["timerange"]
        assert cached.flow_timerange(flow_id, within) == plain.flow_timerange(flow_id, within), within


def _page(cat: Catalog, flow_id: str, **kwargs: Any) -> list[dict[str, Any]]:
    """A page as the server reads it: dicts of COLUMNS (a cache may share dicts with more keys)."""
    where = segment_page_where(
        flow_id, kwargs.get("timerange"), kwargs.get("object_id"), kwargs.get("after_start_ns"), kwargs["reverse"]
    )
    order = [("start_ns", kwargs["reverse"])]
    rows = cat.records("segments", where, columns=COLUMNS, order_by=order, limit=kwargs.get("limit"))
    return [{c: r[c] for c in COLUMNS} for r in rows]


def _instances(cat: Catalog, ids: list[str]) -> dict[str, list[dict[str, Any]]]:
    keys = ("object_id", "storage_id", "storage_key", "url", "label", "controlled", "position")
    return {oid: [{k: r[k] for k in keys} for r in rows] for oid, rows in cat.object_instances(ids).items()}


def _same_keyed_rows(cached: Catalog, plain: Catalog, flows: list[str], rng: random.Random) -> None:
    """Flow rows by id, pending delete requests by flow, and segments of several flows at once (how a
    registration batch reads them) answer as the store does."""
    for f in [*flows, "no-such-flow"]:
        assert cached.row("flows", [Term("id", "==", f)]) == plain.row("flows", [Term("id", "==", f)])
    pending = [isin("flow_id", flows), Term("delete_flow", "==", True), Term("status", "isin", ("created", "started"))]
    assert cached.rows("delete_requests", pending).to_pylist() == plain.rows("delete_requests", pending).to_pylist()
    lo = rng.randint(0, 300) * 10**9
    several = [isin("flow_id", flows), Term("start_ns", "<", lo + 60 * 10**9), Term("end_ns", ">", lo)]
    cols = ["flow_id", "start_ns", "end_ns"]
    want = plain.rows("segments", several, columns=cols, order_by=[("start_ns", False)])
    got = cached.rows("segments", several, columns=cols, order_by=[("start_ns", False)])
    key = ("start_ns", "flow_id")
    assert sorted(got.to_pylist(), key=lambda r: [r[k] for k in key]) == sorted(
        want.to_pylist(), key=lambda r: [r[k] for k in key]
    )


def _same_instances(cached: Catalog, plain: Catalog, ids: list[str]) -> None:
    assert _instances(cached, ids) == _instances(plain, ids)


def test_pages_and_instances_equal_the_store_through_random_writes(pair: tuple[Catalog, Catalog]) -> None:
    cached, plain = pair
    rng = random.Random(2026)
    flows = [flow()["id"] for _ in range(3)]
    for fid in flows:
        cached.put_flow({**flow(), "id": fid})
    ends = dict.fromkeys(flows, 0)
    for step in range(250):
        fid = rng.choice(flows)
        op = rng.random()
        with contextlib.suppress(ConflictError):  # a flow with a pending delete request refuses writes
            _random_write(cached, flows, ends, fid, op, step, rng)
        for f in flows:
            _same_pages(cached, plain, f, rng)
        _same_instances(cached, plain, [f"o{i}" for i in rng.sample(range(61), 20)] + ["init", "missing"])
        _same_keyed_rows(cached, plain, flows, rng)
    cache = cached.engine
    assert isinstance(cache, CachingEngine)
    assert cache.timelines.hits > 500 and cache.instances.hits > 500, "the cache must have been used"
    assert cache.timelines.weight <= 400


def _random_write(
    cached: Catalog, flows: list[str], ends: dict[str, int], fid: str, op: float, step: int, rng: random.Random
) -> None:
    if op < 0.35:  # the live edge: appends
        n = rng.randint(1, 12)
        segs = [
            {"object_id": f"o{rng.randint(0, 60)}", "timerange": _tr(ends[fid] + i, ends[fid] + i + 1)}
            for i in range(n)
        ]
        if rng.random() < 0.3:
            segs[0]["init_object_id"] = "init"
        cached.add_segments(fid, segs)
        ends[fid] += n
    elif op < 0.5:  # back-filling gaps, overlaps (refused), out of order
        a = rng.randint(0, max(1, ends[fid] + 20))
        cached.add_segments(fid, [{"object_id": f"o{rng.randint(0, 60)}", "timerange": _tr(a, a + 1)}])
    elif op < 0.6:
        a = rng.randint(0, max(1, ends[fid]))
        cached.delete_segments(fid, _tr(a, a + rng.randint(1, 30)))
    elif op < 0.7:  # a rolled back write leaves the store, and so the cache, as it was
        with pytest.raises(Boom), cached.transaction():
            cached.add_segments(fid, [{"object_id": "rolled", "timerange": _tr(ends[fid], ends[fid] + 1)}])
            cached.delete_segments(fid, "_")
            raise Boom
    elif op < 0.85:
        oid = f"o{rng.randint(0, 60)}"
        if cached.row("objects", [Term("id", "==", oid)]) is not None:
            if rng.random() < 0.6:
                try:
                    cached.add_controlled_instance(oid, STORAGE, f"key-{step}")
                except ConflictError:  # it already has one on this storage
                    cached.add_uncontrolled_instances({(oid, f"label-{step}"): f"https://cdn.example/{step}"})
            else:
                inst = cached.object_instances([oid]).get(oid, [])
                if len(inst) > 1:
                    victim = inst[-1]
                    if victim["controlled"]:
                        cached.delete_instance(oid, storage_id=victim["storage_id"])
                    else:
                        cached.delete_instance(oid, label=victim["label"])
    elif op < 0.87:  # a flow delete request made, or finished (refuses writes while pending)
        pending = [Term("flow_id", "==", fid), Term("status", "==", "created")]
        if cached.exists("delete_requests", pending):
            cached.engine.update("delete_requests", pending, {"status": "done"})
        else:
            delete_records.create_delete_request(cached, fid, "_", delete_flow=True)
    elif op < 0.9 and len(flows) > 1:
        cached.delete_flow(fid)
        flows.remove(fid)
        new = flow()
        cached.put_flow(new)
        flows.append(new["id"])
        ends[new["id"]] = 0


def test_a_reader_never_misses_a_committed_append(tmp_path: Path) -> None:
    """Writers append batches while readers page; a batch committed before a read began is in it."""
    cat = connect(f"duckdb:///{tmp_path / 'tams.duckdb'}", create=True, cache_reads=True)
    fid = flow()["id"]
    cat.put_flow({**flow(), "id": fid})
    committed = [0]
    failures: list[str] = []
    stop = threading.Event()

    def writer() -> None:
        for b in range(1, 61):
            segs = [{"object_id": f"b{b}-{i}", "timerange": _tr(b * 10 + i, b * 10 + i + 1)} for i in range(10)]
            assert cat.add_segments(fid, segs).all_accepted
            committed[0] = b
        stop.set()

    def reader() -> None:
        while not stop.is_set():
            b = committed[0]
            if not b:
                continue
            rows = _page(cat, fid, timerange=_tr(b * 10, b * 10 + 10), reverse=False)
            if [r["object_id"] for r in rows] != [f"b{b}-{i}" for i in range(10)]:
                failures.append(f"batch {b}: {[r['object_id'] for r in rows]}")
            inst = cat.object_instances([f"b{b}-0"])
            if f"b{b}-0" in inst:
                failures.append(f"object b{b}-0 has instances it never had: {inst}")

    threads = [threading.Thread(target=writer), *(threading.Thread(target=reader) for _ in range(3))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not failures, failures[:5]
    assert cat.segment_rows(fid).num_rows == 600
    assert isinstance(cat.engine, CachingEngine)
    assert cat.engine.timelines.hits + cat.engine.bound_timelines.hits > 0, "pages were answered from memory"
    cat.close()


def test_a_load_that_raced_a_write_is_not_kept() -> None:
    cache: KeyedCache[str] = KeyedCache(10)
    token = cache.begin_load(["f"])
    assert token is not None
    cache.unsettle(frozenset({"f"}))  # a write began while the value was being read
    assert cache.begin_load(["f"]) is None, "no load while a write on the key is in flight"
    cache.end_load(token, {"f": "old"})
    assert cache.get("f") == (False, None)
    cache.settle(frozenset({"f"}), lambda _k, _v: None)
    token = cache.begin_load(["f", "g"])
    assert token is not None
    cache.unsettle(EVERYTHING)
    cache.settle(EVERYTHING, lambda _k, _v: None)
    cache.end_load(token, {"f": "x", "g": "y"})
    assert len(cache) == 0, "a change to every key since the load began"
    token = cache.begin_load(["f"])
    assert token is not None
    cache.unsettle(frozenset({"other"}))
    cache.end_load(token, {"f": "new"})
    assert cache.get("f") == (True, "new"), "a change to another key does not matter"


def test_a_committed_change_updates_or_drops_the_entry_and_a_rollback_keeps_it() -> None:
    cache: KeyedCache[int] = KeyedCache(10)
    token = cache.begin_load(["a", "b"])
    assert token is not None
    cache.end_load(token, {"a": 1, "b": 2})
    cache.unsettle(frozenset({"a", "b"}))
    cache.settle(frozenset({"a", "b"}))  # rolled back
    assert cache.get("a") == (True, 1) and cache.get("b") == (True, 2)
    cache.unsettle(frozenset({"a"}))
    cache.settle(frozenset({"a"}), lambda _k, v: v + 10)
    assert cache.get("a") == (True, 11)
    cache.unsettle(EVERYTHING)
    cache.settle(EVERYTHING, lambda _k, v: v)
    assert len(cache) == 0


def _load(cache: KeyedCache[str], key: str, value: str) -> None:
    token = cache.begin_load([key])
    assert token is not None
    cache.end_load(token, {key: value})


def test_entries_are_bounded_by_weight_least_recently_used_out() -> None:
    cache: KeyedCache[str] = KeyedCache(5, weigh=len)
    for k in ("aa", "bb", "cc"):
        _load(cache, k, k)
    assert cache.weight == 4 and "aa" not in cache.get_many(["aa"])
    _load(cache, "big", "x" * 6)
    assert cache.get("big") == (False, None), "larger than the whole cache: not kept"


@pytest.mark.parametrize("weighed", [False, True], ids=["unweighed", "weighed"])
def test_keeping_an_entry_makes_nothing_the_garbage_collector_follows(weighed: bool) -> None:
    """Live ingest keeps an entry for each segment (its new object's instances), a read cache's bound of them in turn:
    each one a container Python's collector follows would pile up between its collections, walked at once (tens of
    ms, every write waiting)."""
    cache: KeyedCache[tuple[()]] = KeyedCache(5_000, weigh=(lambda _v: 1) if weighed else None)
    keys = [f"object-{i}" for i in range(20_000)]  # made before: a str is never followed
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        gc.collect()
        before = len(gc.get_objects(generation=0))
        cache.fill(dict.fromkeys(keys[:10_000], ()))  # a write's new objects: no instances yet
        for key in keys[10_000:]:  # loaded and read again: promoted, demoted, evicted in turn
            _load(cache, key, ())
            assert cache.get(key) == (True, ())
        made = len(gc.get_objects(generation=0)) - before
    finally:
        if was_enabled:
            gc.enable()
    assert len(cache) == cache.weight == 5_000
    assert made < 100, f"{made} objects followed for 20,000 entries kept"


def test_entries_read_again_survive_a_scan_of_entries_read_once() -> None:
    """A reader streaming a long flow once must not push out what the live edge's readers re-read."""
    cache: KeyedCache[str] = KeyedCache(10)
    for k in ("edge1", "edge2"):
        _load(cache, k, k)
        assert cache.get(k) == (True, k)  # read again: protected
    for i in range(100):  # a scan: each entry loaded once, never read again
        _load(cache, f"scan{i}", "s")
    assert cache.get_many(["edge1", "edge2"]) == {"edge1": "edge1", "edge2": "edge2"}
    assert len(cache) == 10 and "scan99" in cache.get_many(["scan99"]) and not cache.get_many(["scan0"])


def test_changed_keys_come_from_rows_or_pinning_predicates() -> None:
    rows = pa.table({"flow_id": ["a", "b", "a"], "x": [1, 2, 3]})
    assert changed_keys(Change("segments", rows=rows), "flow_id") == frozenset({"a", "b"})
    assert changed_keys(Change("segments", where=(Term("flow_id", "==", "a"),)), "flow_id") == frozenset({"a"})
    pinned = Change("object_instances", where=(Term("position", "==", 1), isin("object_id", ["x", "y"])))
    assert changed_keys(pinned, "object_id") == frozenset({"x", "y"})
    assert changed_keys(Change("segments", where=(Term("object_id", "==", "o"),)), "flow_id") is EVERYTHING
    assert changed_keys(Change("segments"), "flow_id") is EVERYTHING


def test_timeline_grows_only_at_the_live_edge() -> None:
    def rows(starts: list[int]) -> pa.Table:
        return pa.table({"start_ns": pa.array(starts, pa.int64()), "end_ns": pa.array([s + 1 for s in starts])})

    t = Timeline.of(rows([30, 10, 20]))
    assert column_values(t.rows.column("start_ns")) == [10, 20, 30]
    grown = t.appended(rows([50, 40]))
    assert grown is not None and column_values(grown.rows.column("start_ns")) == [10, 20, 30, 40, 50]
    assert grown.start.tolist() == [10, 20, 30, 40, 50] and grown.lineage == t.lineage, "grown in place"
    assert t.size == 3 and t.start.tolist() == [10, 20, 30], "an older version keeps its view"
    assert t.appended(rows([60])) is None, "only the newest version grows in place"
    assert grown.start.tolist() == [10, 20, 30, 40, 50], "an older version cannot overwrite a newer one"
    assert t.appended(rows([25])) is None, "a segment before the last one: the caller reloads"
    where = [Term("start_ns", "<", 45), Term("end_ns", ">", 15)]
    assert grown.indices(where).tolist() == [1, 2, 3]  # [10, 11) ends before 15
    assert grown.indices(where, order_by=[("start_ns", True)], limit=2).tolist() == [3, 2]


def test_row_blocks_follow_a_growing_timeline_and_its_tail() -> None:
    """Rows handed out as dicts equal the timeline's rows at every version, as it grows at the live edge
    (the edge's block extended in place), for a timeline with rows and for a bounds-only one's cut-back tail."""

    def rows(starts: range) -> pa.Table:
        return pa.table({"start_ns": pa.array(list(starts), pa.int64()), "end_ns": pa.array([s + 1 for s in starts])})

    blocks = RowBlocks(capacity=8)
    with_rows = Timeline.of(rows(range(0, 300)))
    bounds = Timeline.of(rows(range(0, 300)), bounds_only=True).with_tail(rows(range(290, 300)), tail_rows=10)
    for timeline in (with_rows, bounds):
        versions = [timeline]
        for k in range(300, 560):
            grown = versions[-1].appended(rows(range(k, k + 1)))
            assert grown is not None
            versions.append(grown)
            for version in (grown, versions[-2], versions[len(versions) // 2]):
                edge = list(range(max(version.tail_start, version.n - 3) if version.rows is None else 0, version.n))[
                    -3:
                ]
                want = version.select(np.array(edge, dtype=np.int64)).to_pylist()
                assert blocks.rows(version, edge) == want, (k, version.n)
        newest = versions[-1]
        if newest.rows is None:
            assert newest.tail is not None and newest.tail.num_rows <= 20
            with pytest.raises(UncachedQuery):
                blocks.rows(newest, [0])
        else:
            assert blocks.rows(newest, [0, 255, 256, 559]) == newest.select(np.array([0, 255, 256, 559])).to_pylist()


def test_row_blocks_convert_from_the_lowest_row_asked_for() -> None:
    """A live-edge read converts the rows it returns, not its whole block (with more live flows than kept
    blocks, nearly every edge read finds its block gone); a later read lower in the block converts from there,
    and every answer equals the timeline's rows."""

    class Counting(RowBlocks):
        converted = 0

        def _convert(self, timeline: Timeline, a: int, b: int) -> list[dict[str, Any]]:  # type: ignore[override]
            self.converted += b - a
            return RowBlocks._convert(timeline, a, b)

    def rows(starts: range) -> pa.Table:
        return pa.table({"start_ns": pa.array(list(starts), pa.int64()), "end_ns": pa.array([s + 1 for s in starts])})

    def read(timeline: Timeline, idx: list[int]) -> int:
        before = blocks.converted
        assert blocks.rows(timeline, idx) == timeline.select(np.array(idx, dtype=np.int64)).to_pylist()
        return blocks.converted - before

    blocks = Counting(capacity=1)
    t = Timeline.of(rows(range(0, 300)))
    assert read(t, [299]) == 1
    grown = t.appended(rows(range(300, 301)))
    assert grown is not None
    assert read(grown, [300]) == 1, "the kept edge block grows by the appended row"
    assert read(grown, [300, 299]) == 0
    assert read(grown, list(range(300, 289, -1))) == 11, "a page below the kept rows converts from its lowest"
    assert read(grown, [0, 1]) == 256, "a page inside a block converts the rest of the block"
    assert read(grown, [300]) == 1, "the edge block was evicted: only its row again"


@pytest.mark.parametrize("flow_rows", [100, 2], ids=["with-rows", "bounds-only"])
def test_a_loaded_timeline_takes_the_write_types_so_appends_cast_nothing(tmp_path: Path, flow_rows: int) -> None:
    """DuckDB answers ``created`` as ``tz=Etc/UTC``, writes carry ``tz=UTC``: a flow's rows (or a bounds-only
    flow's tail) are cast once when loaded, so that a commit's upkeep appends its rows without a cast per flow;
    the timeline grows in place and still answers what the store does."""
    written = pa.schema([f.with_nullable(True) for f in SCHEMAS["segments"]])
    url = f"duckdb:///{tmp_path / 'tams.duckdb'}"
    f = flow()
    with connect(url, create=True) as before:  # written before: the cache loads the flow from the store
        before.put_flow(f)
        before.add_segments(f["id"], [{"object_id": f"o{k}", "timerange": _tr(k, k + 1)} for k in range(3)])
    cat = connect(url, cache_reads=CacheConfig(flow_rows=flow_rows, tail_rows=2))
    assert isinstance(cat.engine, CachingEngine)
    plain = Catalog(cat.engine.inner)
    _page(cat, f["id"], reverse=False, limit=1)  # the first page (a live edge's would load bounds and a tail)
    loaded = cat.engine.segments.kept(f["id"])
    assert isinstance(loaded, Timeline)
    held = loaded.rows if loaded.rows is not None else loaded.tail
    assert held is not None and held.schema == written, held.schema
    assert (loaded.rows is None) == (flow_rows == 2)
    cat.add_segments(f["id"], [{"object_id": "o3", "timerange": _tr(3, 4)}])
    grown = cat.engine.segments.kept(f["id"])
    assert isinstance(grown, Timeline) and grown.lineage == loaded.lineage and grown.n == 4
    for reverse in (True, False):
        assert _page(cat, f["id"], reverse=reverse, limit=2) == _page(plain, f["id"], reverse=reverse, limit=2)
    cat.close()


def test_memory_only_reads_raise_rather_than_read_the_store(tmp_path: Path) -> None:
    url = f"duckdb:///{tmp_path / 'tams.duckdb'}"
    with connect(url, create=True) as cat:
        f = flow()
        cat.put_flow(f)
        cat.add_segments(f["id"], [{"object_id": "o", "timerange": _tr(0, 1)}])
    cat = connect(url, cache_reads=True)
    with memory_only():
        with pytest.raises(WouldBlock):
            _page(cat, f["id"], reverse=False)
        with pytest.raises(WouldBlock):
            cat.object_instances(["o"])
        with pytest.raises(WouldBlock):
            cat.rows("flows")
    assert [r["object_id"] for r in _page(cat, f["id"], reverse=False)] == ["o"]
    cat.object_instances(["o"])
    with memory_only():
        assert [r["object_id"] for r in _page(cat, f["id"], reverse=False)] == ["o"]
        assert cat.object_instances(["o"]) == {}
        assert cat.count("segments", [Term("flow_id", "==", f["id"])]) == 1
    cat.close()


def test_the_live_edge_of_a_long_flow_is_answered_from_memory(tmp_path: Path) -> None:
    """A flow too long to keep with its rows keeps its bounds and its newest rows (its tail): the pages live
    readers ask for, and the tail grows with each append; a page deeper down reads the store."""
    cat = connect(
        f"duckdb:///{tmp_path / 'tams.duckdb'}", create=True, cache_reads=CacheConfig(flow_rows=50, tail_rows=10)
    )
    f = flow()
    cat.put_flow(f)
    cat.add_segments(f["id"], [{"object_id": f"o{i}", "timerange": _tr(i, i + 1)} for i in range(100)])
    assert [r["object_id"] for r in _page(cat, f["id"], reverse=True, limit=1)] == ["o99"]  # loads the flow
    assert cat.engine.segments.wait_warmed(30)  # (in the background)
    timeline = cat.engine.segments.timeline(f["id"], load=False)
    assert timeline is not None and timeline.bounds_only and timeline.tail is not None
    for i in range(100, 130):
        cat.add_segments(f["id"], [{"object_id": f"o{i}", "timerange": _tr(i, i + 1)}])
        with memory_only():  # never reads the store
            assert [r["object_id"] for r in _page(cat, f["id"], reverse=True, limit=3)] == [
                f"o{i - k}" for k in range(3)
            ]
            edge = cat.segment_rows(f["id"], timerange=_tr(i, i + 1))
            assert edge.column("object_id").to_pylist() == [f"o{i}"]
    with memory_only(), pytest.raises(WouldBlock):
        _page(cat, f["id"], reverse=False, limit=3)
    assert [r["object_id"] for r in _page(cat, f["id"], reverse=False, limit=3)] == ["o0", "o1", "o2"]
    cat.close()


def test_writes_keep_bounds_and_a_tail_and_a_deep_read_keeps_a_short_flows_rows(tmp_path: Path) -> None:
    """A registration's overlap check needs bounds only: the flow is kept as bounds and its newest rows
    (cheap for many flows at once). A page past the tail of a short flow then keeps the flow with its rows."""
    cat = connect(f"duckdb:///{tmp_path / 'tams.duckdb'}", create=True, cache_reads=CacheConfig(tail_rows=5))
    cache = cat.engine
    assert isinstance(cache, CachingEngine)
    f = flow()
    cat.put_flow(f)
    for i in range(20):
        assert cat.add_segments(f["id"], [{"object_id": f"o{i}", "timerange": _tr(i, i + 1)}]).all_accepted
        assert cache.segments.wait_warmed(30)  # a registration's check loads the flow in the background
    kept = cache.kept_timeline(f["id"])
    assert kept is not None and kept.bounds_only and kept.n == 20 and kept.tail is not None
    tail = kept.tail.column("object_id").to_pylist()
    assert 5 <= len(tail) <= 10 and tail == [f"o{i}" for i in range(20 - len(tail), 20)], "the tail keeps the newest"
    with memory_only():
        assert [r["object_id"] for r in _page(cat, f["id"], reverse=True, limit=2)] == ["o19", "o18"]
    assert [r["object_id"] for r in _page(cat, f["id"], reverse=False, limit=2)] == ["o0", "o1"]
    kept = cache.kept_timeline(f["id"])
    assert kept is not None and not kept.bounds_only, "a short flow read past its tail is kept with its rows"
    assert not cache.bound_timelines.peek(f["id"])[0], "and no longer as bounds"
    with memory_only():
        assert [r["object_id"] for r in _page(cat, f["id"], reverse=False, limit=2)] == ["o0", "o1"]
    cat.close()


class _RemoteEngine(Engine):
    """An engine whose store other processes also write (as VAST's): it cannot see every change."""

    name = "remote"

    def table(self, name: str) -> Any:
        raise NotImplementedError

    def query(self, name: str, where: Any = (), **kwargs: Any) -> pa.Table:
        raise NotImplementedError


def test_a_new_objects_instances_are_known_from_its_write_without_a_store_read(
    pair: tuple[Catalog, Catalog],
) -> None:
    """The live edge's newest segment has a new object: its instances (none, or those its registration
    gave) are known when the write commits; an object re-written (allocated, then registered) keeps its
    instances."""
    cached, plain = pair
    f = flow()
    cached.put_flow(f)
    cached.add_segments(f["id"], [{"object_id": "bare", "timerange": _tr(0, 1)}])
    urls = [{"url": "https://cdn.example/u", "label": "cdn"}]
    cached.add_segments(f["id"], [{"object_id": "with-url", "timerange": _tr(1, 2), "get_urls": urls}])
    [allocated] = cached.allocate_objects(f["id"], count=1, storage_id=STORAGE, storage_key=lambda i: f"k/{i}")
    with memory_only():
        got = _instances(cached, ["bare", "with-url", allocated])
    assert got == _instances(plain, ["bare", "with-url", allocated])
    assert got["with-url"][0]["url"] == "https://cdn.example/u" and got[allocated][0]["storage_key"] == f"k/{allocated}"
    assert "bare" not in got
    cached.add_segments(f["id"], [{"object_id": allocated, "timerange": _tr(2, 3)}])  # an upsert of its row
    with memory_only():
        assert _instances(cached, [allocated]) == _instances(plain, [allocated]) != {}
    with pytest.raises(Boom), cached.transaction():  # rolled back: what the registration wrote is not kept
        cached.add_segments(f["id"], [{"object_id": "rolled-back", "timerange": _tr(3, 4), "get_urls": urls}])
        raise Boom
    assert _instances(cached, ["rolled-back"]) == _instances(plain, ["rolled-back"]) == {}
    engine = cached.engine
    assert isinstance(engine, CachingEngine) and engine.ids_known(30)
    assert cached.object_instances(["never-had-one"]) == {}  # (known to have none: kept as none, not read)
    with memory_only():
        assert cached.object_instances(["never-had-one"]) == {}


def test_a_write_of_many_new_objects_keeps_each_its_own_instances(tmp_path: Path) -> None:
    """One registration of 300 new objects, each with its own get_urls (every third two): each object's instances are
    known from the write, with no store read, and are exactly its own (the write's rows are grouped by object once;
    searched among all of them for each object, a bulk load of 2,500 spent three quarters of its time there)."""
    cached = connect(f"duckdb:///{tmp_path / 'tams.duckdb'}", create=True, cache_reads=True)
    try:
        engine = cached.engine
        assert isinstance(engine, CachingEngine) and engine.ids_known(30)
        plain = Catalog(engine.inner)
        f = flow()
        cached.put_flow(f)
        ids = [f"obj-{i}" for i in range(300)]
        docs = [
            {
                "object_id": oid,
                "timerange": _tr(i, i + 1),
                "get_urls": [
                    {"url": f"https://cdn.example/{oid}/{k}", "label": f"cdn-{k}"} for k in range(1 + (i % 3 == 0))
                ],
            }
            for i, oid in enumerate(ids)
        ]
        assert cached.add_segments(f["id"], docs).accepted == list(range(300))
        with memory_only():
            got = _instances(cached, ids)
        assert got == _instances(plain, ids)
        assert [[r["url"] for r in got[oid]] for oid in ids[:4]] == [
            ["https://cdn.example/obj-0/0", "https://cdn.example/obj-0/1"],
            ["https://cdn.example/obj-1/0"],
            ["https://cdn.example/obj-2/0"],
            ["https://cdn.example/obj-3/0", "https://cdn.example/obj-3/1"],
        ]
        assert sum(len(rows) for rows in got.values()) == 400
    finally:
        cached.close()


def test_the_delete_workers_writes_forget_only_their_own_flows_delete_requests(pair: tuple[Catalog, Catalog]) -> None:
    """Every registration reads its flow's pending delete requests. The delete worker's purge of expired requests
    (every 30 s) and its updates of a request name their flows: the other flows' requests stay in memory, and what
    changed reads as the store has it."""
    cached, plain = pair
    a, b, c = flow(), flow(), flow()
    for f in (a, b, c):
        cached.put_flow(f)
    past = utcnow() - dt.timedelta(hours=1)
    expired = delete_records.create_delete_request(cached, a["id"], "_", delete_flow=True)
    delete_records.update_delete_request(cached, expired["id"], flow_id=a["id"], status="done", expiry=past)
    working = delete_records.create_delete_request(cached, b["id"], "_", delete_flow=True)
    ids = [a["id"], b["id"], c["id"]]

    def of(f: str) -> list[dict[str, Any]]:
        return cached.rows("delete_requests", [Term("flow_id", "==", f)]).to_pylist()

    for f in ids:
        of(f)  # read, so kept
    assert delete_records.purge_delete_requests(cached, utcnow()) == 1
    with memory_only():
        assert of(b["id"]) == plain.rows("delete_requests", [Term("flow_id", "==", b["id"])]).to_pylist() != []
        assert of(c["id"]) == []
    assert of(a["id"]) == plain.rows("delete_requests", [Term("flow_id", "==", a["id"])]).to_pylist() == []
    assert delete_records.purge_delete_requests(cached, utcnow()) == 0
    delete_records.update_delete_request(cached, working["id"], flow_id=b["id"], status="started")
    with memory_only():
        assert of(a["id"]) == of(c["id"]) == []
    assert [r["status"] for r in of(b["id"])] == ["started"]


def test_a_flow_too_long_for_the_bounds_budget_is_read_from_the_store_not_reloaded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Bounds and a tail that could outgrow the budget are never loaded: the flow's pages read the store,
    one statement each, the same rows as without the cache (they used to reload the whole flow per page)."""
    url = f"duckdb:///{tmp_path / 'tams.duckdb'}"
    with connect(url, create=True) as first:  # (written before the cache opens: no registration's check loads it)
        f = flow()
        first.put_flow(f)
        first.add_segments(f["id"], [{"object_id": f"o{i}", "timerange": _tr(i, i + 1)} for i in range(30)])
    cat = connect(url, cache_reads=CacheConfig(flow_rows=5, bound_segments=50, tail_rows=2))  # 30 + 2 * 12 * 2 > 50
    plain = Catalog(cat.engine.inner)
    engine = cat.engine
    assert isinstance(engine, CachingEngine) and engine.ids_known(30)  # (its background reads of the ids are done)
    inner = engine.inner
    reads: list[str] = []
    for method in ("query", "records", "count"):
        real = getattr(inner, method)
        monkeypatch.setattr(
            inner, method, lambda name, *a, _real=real, _m=method, **kw: reads.append(_m) or _real(name, *a, **kw)
        )
    for k, reverse in enumerate((True, False, True)):
        reads.clear()
        assert _page(cat, f["id"], reverse=reverse, limit=3) == _page(plain, f["id"], reverse=reverse, limit=3)
        # the page through the cache and through the plain catalog; the first time, the flow's count too
        assert reads == (["count"] if k == 0 else []) + ["records", "records"]
    assert cat.engine.kept_timeline(f["id"]) is None
    cat.close()


def test_only_a_sole_writer_engine_can_cache() -> None:
    engine = _RemoteEngine(urlsplit("remote://cluster"))
    assert cached(engine) is engine and not Catalog(cached(engine)).caches_reads
    with pytest.raises(UnsupportedError):
        CachingEngine(engine)


def test_row_values_convert_exactly() -> None:
    for arr in (
        pa.array([1, None, 2**62 + 1], pa.int64()),
        pa.array(["a", None, "é"]),
        pa.array([None, None], pa.int64()),
        pa.chunked_array([[1, 2], [None, 2**63 - 1]], pa.int64()),
        pa.array([True, None]),
        pa.array([], pa.string()),
    ):
        assert column_values(arr) == arr.to_pylist()


def test_held_bounds_equal_the_stores_segments_overlapping_each_span(pair: tuple[Catalog, Catalog]) -> None:
    """What a registration's overlap check takes from memory (``held_bounds``) is what the store holds: per flow,
    the segments overlapping the span, in start order, through appends at the live edge and a write behind it (which
    drops the flow's timeline: it is loaded again in the background)."""
    cached, plain = pair
    rng = random.Random(7)
    flows = [flow()["id"] for _ in range(4)]
    for fid in flows:
        cached.put_flow({**flow(), "id": fid})
    engine = cached.engine
    for step in range(40):
        fid = rng.choice(flows)
        start = step * 10 if step != 25 else 5  # one write lands behind the live edge
        cached.add_segments(fid, [{"object_id": f"o{step}", "timerange": _tr(start, start + 3)}])
        spans = {f: tuple(sorted((rng.randint(0, 400) * NS_S, rng.randint(0, 400) * NS_S))) for f in flows}
        engine.held_bounds(spans)  # the flows not kept are loaded in the background
        assert engine.segments.wait_warmed(30)
        held = engine.held_bounds(spans)
        assert held, "the cache holds the flows it was written through"
        for f, (lo, hi) in spans.items():
            if f not in held:
                continue
            t = plain.rows(
                "segments",
                [Term("flow_id", "==", f), Term("start_ns", "<", hi), Term("end_ns", ">", lo)],
                columns=["start_ns", "end_ns"],
                order_by=[("start_ns", False)],
            )
            starts, ends = held[f]
            assert starts.tolist() == column_values(t.column("start_ns")), (step, f)
            assert ends.tolist() == column_values(t.column("end_ns")), (step, f)
    assert plain.engine.held_bounds({flows[0]: (0, 1)}) == {}, "an engine without a cache holds none"


NS_S = 1_000_000_000


def test_appended_rows_are_joined_when_read_and_now_and_then_when_not() -> None:
    """Rows appended one at a time read back whole at every version; a timeline nobody reads joins its appended
    rows every so often (it never holds a growing list of the write batches' slices)."""

    def rows(starts: range) -> pa.Table:
        return pa.table({"start_ns": pa.array(list(starts), pa.int64()), "end_ns": pa.array([s + 1 for s in starts])})

    from tams_analytics.cache.timeline import MAX_PENDING

    for timeline in (
        Timeline.of(rows(range(0, 10))),
        Timeline.of(rows(range(0, 10)), bounds_only=True).with_tail(rows(range(5, 10)), tail_rows=400),
    ):
        versions = [timeline]
        for k in range(10, 10 + 3 * MAX_PENDING):
            grown = versions[-1].appended(rows(range(k, k + 1)))
            assert grown is not None
            assert len(grown._pending) < 1.5 * MAX_PENDING
            versions.append(grown)
        last = versions[-1]
        table = last.tail if last.bounds_only else last.rows
        assert table is not None
        first = 0 if not last.bounds_only else last.tail_start
        assert column_values(table.column("start_ns")) == list(range(first, 10 + 3 * MAX_PENDING))
        middle = versions[len(versions) // 2]
        table = middle.tail if middle.bounds_only else middle.rows
        assert table is not None and table.num_rows == middle.n - (middle.tail_start if middle.bounds_only else 0)


def test_a_short_flows_rows_are_one_chunk_after_each_join() -> None:
    """Up to COMBINED_ROWS rows, a join makes one chunk, by a reader or by the timeline's own upkeep: each chunk
    of each column is about 500 bytes of Arrow's bookkeeping, kept as long as the timeline is."""
    from tams_analytics.cache.timeline import COMBINED_ROWS, MAX_PENDING

    def rows(starts: range) -> pa.Table:
        return pa.table({"start_ns": pa.array(list(starts), pa.int64()), "end_ns": pa.array([s + 1 for s in starts])})

    timeline: Timeline | None = Timeline.of(rows(range(0, 100)))
    for k in range(100, 100 + 3 * MAX_PENDING):
        assert timeline is not None
        timeline = timeline.appended(rows(range(k, k + 1)))
        assert timeline is not None
        if not timeline._pending:  # joined by its upkeep
            assert timeline._held is not None and timeline._held.column("start_ns").num_chunks == 1
        if k % 5 == 0:  # joined by a reader
            assert timeline.rows is not None and timeline.rows.column("start_ns").num_chunks == 1
            assert column_values(timeline.rows.column("start_ns")) == list(range(k + 1))
    long = Timeline.of(rows(range(0, COMBINED_ROWS))).appended(rows(range(COMBINED_ROWS, COMBINED_ROWS + 1)))
    assert long is not None and long.rows is not None and long.rows.column("start_ns").num_chunks == 2


def test_joining_appended_rows_leaves_a_long_flows_rows_where_they_are() -> None:
    """A reader at the live edge of a long flow joins the appended rows at every version: the flow's rows stay
    in their chunk (copying them each time was 12 ms per join at 100,000 rows) and the chunks stay few."""

    def rows(starts: range) -> pa.Table:
        return pa.table({"start_ns": pa.array(list(starts), pa.int64()), "end_ns": pa.array([s + 1 for s in starts])})

    from tams_analytics.cache.timeline import MAX_CHUNKS

    timeline: Timeline | None = Timeline.of(rows(range(0, 5000)))
    assert timeline is not None and timeline.rows is not None
    base = timeline.rows.column("start_ns").chunk(0).buffers()[1].address
    for k in range(5000, 6000):
        timeline = timeline.appended(rows(range(k, k + 1)))
        assert timeline is not None and timeline.rows is not None
        assert timeline.rows.column("start_ns").num_chunks <= MAX_CHUNKS, k
    assert timeline.rows is not None
    assert timeline.rows.column("start_ns").chunk(0).buffers()[1].address == base
    assert column_values(timeline.rows.column("start_ns")) == list(range(6000))
    assert column_values(timeline.rows.column("end_ns")) == list(range(1, 6001))


def test_levelled_chunks_halve_in_size_and_keep_every_row_in_order() -> None:
    """Levelling keeps O(log n) chunks, each more than twice the next, and every row in place."""
    from tams_analytics.cache.timeline import levelled

    table = pa.table({"start_ns": pa.array([0], pa.int64())})
    for k in range(1, 3000):
        table = pa.concat_tables([table, pa.table({"start_ns": pa.array([k], pa.int64())})])
        if table.column(0).num_chunks > 16:
            table = levelled(table)
            sizes = [len(c) for c in table.column(0).chunks]
            assert all(a > 2 * b for a, b in itertools.pairwise(sizes)), sizes
            assert len(sizes) <= 14, sizes
    assert column_values(table.column("start_ns")) == list(range(3000))


def _segment_reads(monkeypatch: pytest.MonkeyPatch, engine: Engine) -> list[tuple[str, str, list[str]]]:
    """Every read of ``segments`` ``engine`` answers from now on: (method, thread name, its terms' columns)."""
    reads: list[tuple[str, str, list[str]]] = []
    for method in ("query", "records", "count"):
        real = getattr(engine, method)

        def spy(name: str, *a: Any, _real: Any = real, _m: str = method, **kw: Any) -> Any:
            if name == "segments":
                where = a[0] if a else kw.get("where", ())
                terms = [getattr(p, "column", type(p).__name__) for p in where]
                reads.append((_m, threading.current_thread().name, terms))
            return _real(name, *a, **kw)

        monkeypatch.setattr(engine, method, spy)
    return reads


def test_a_registration_never_loads_a_timeline_the_background_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A registration of a flow whose timeline is not kept (a store just opened, an archive's flow) reads only
    its span from the store, on its own thread, and exactly: an overlap is refused, the rest accepted. The flow's
    timeline is loaded on a background thread, after which registrations read no segment from the store. (A load on
    the writer's thread read every segment of the flow, while every POST of the batch waited.)"""
    url = f"duckdb:///{tmp_path / 'tams.duckdb'}"
    with connect(url, create=True) as first:
        flows = [flow() for _ in range(3)]
        for f in flows:
            first.put_flow(f)
            first.add_segments(f["id"], [{"object_id": f"o{i}", "timerange": _tr(i, i + 1)} for i in range(300)])
    cat = connect(url, cache_reads=CacheConfig(tail_rows=4))
    cache = cat.engine
    assert isinstance(cache, CachingEngine)
    reads = _segment_reads(monkeypatch, cache.inner)
    a, b, c = (f["id"] for f in flows)
    result = cat.add_segments(a, [{"object_id": "x", "timerange": _tr(299, 301)}])  # overlaps o299
    assert not result.all_accepted and [f.index for f in result.failed] == [0]
    assert cat.add_segments(b, [{"object_id": "y", "timerange": _tr(300, 301)}]).all_accepted
    on_writer = [r for r in reads if r[1] != "tams-warm-timelines"]  # (the caller's, or the group commit's)
    assert on_writer and all({"start_ns", "end_ns"} <= set(terms) for _m, _t, terms in on_writer), on_writer
    assert cache.segments.wait_warmed(30)
    assert any(r[1] == "tams-warm-timelines" for r in reads), "the flows are loaded in the background"
    for fid, n in ((a, 300), (b, 301)):
        kept = cache.kept_timeline(fid)
        assert kept is not None and kept.bounds_only and kept.n == n
    assert cache.kept_timeline(c) is None, "a flow nobody registered is not loaded"
    reads.clear()
    assert not cat.add_segments(a, [{"object_id": "x", "timerange": _tr(299, 301)}]).all_accepted
    assert cat.add_segments(a, [{"object_id": "z", "timerange": _tr(300, 302)}]).all_accepted
    assert cat.add_segments(b, [{"object_id": "z", "timerange": _tr(301, 302)}]).all_accepted
    assert reads == [], "kept timelines answer the overlap checks"
    plain = Catalog(cache.inner)
    for fid in (a, b):
        assert _page(cat, fid, reverse=True, limit=3) == _page(plain, fid, reverse=True, limit=3)
    cat.close()


def test_a_live_edge_page_of_a_flow_not_kept_loads_bounds_and_a_tail_not_its_rows(tmp_path: Path) -> None:
    """The live edge's reader of a flow not kept asks for its newest segment: the store answers it, and the flow is
    loaded in the background as bounds and a tail (what the next edge pages read), not with all its rows (readers of
    an archive's live flows would otherwise load every row of each, at once, and push each other out of the rows
    tier without end)."""
    url = f"duckdb:///{tmp_path / 'tams.duckdb'}"
    with connect(url, create=True) as first:
        f = flow()
        first.put_flow(f)
        first.add_segments(f["id"], [{"object_id": f"o{i}", "timerange": _tr(i, i + 1)} for i in range(100)])
    cat = connect(url, cache_reads=CacheConfig(tail_rows=8))
    cache = cat.engine
    assert isinstance(cache, CachingEngine)
    assert [r["object_id"] for r in _page(cat, f["id"], reverse=True, limit=1)] == ["o99"]
    assert cache.segments.wait_warmed(30)
    kept = cache.kept_timeline(f["id"])
    assert kept is not None and kept.bounds_only and kept.tail is not None and kept.tail.num_rows == 8
    assert not cache.timelines.peek(f["id"])[0]
    with memory_only():
        assert [r["object_id"] for r in _page(cat, f["id"], reverse=True, limit=5)] == [
            f"o{i}" for i in range(99, 94, -1)
        ]
    assert [r["object_id"] for r in _page(cat, f["id"], reverse=False, limit=2)] == ["o0", "o1"]
    assert cache.timelines.peek(f["id"])[0], "a page past the tail keeps the short flow's rows, as before"
    cat.close()


def test_a_partial_load_keeps_the_keys_no_write_touched() -> None:
    """A load of many keys (the background loader's) goes on while some are being written; what it read of those
    is never kept, the others are. A plain load refuses to start then."""
    cache: KeyedCache[str] = KeyedCache(100)
    cache.unsettle(frozenset({"b"}))
    assert cache.begin_load(["a", "b", "c"]) is None
    token = cache.begin_load(["a", "b", "c"], partial=True)
    assert token is not None
    cache.unsettle(frozenset({"c"}))
    cache.settle(frozenset({"c"}), lambda _k, v: v)  # c written (and committed) while the load read
    cache.settle(frozenset({"b"}), lambda _k, v: v)  # b's write, in flight when the load began, ends
    cache.end_load(token, {"a": "A", "b": "B", "c": "C"})
    assert cache.peek("a") == (True, "A")
    assert cache.peek("b") == (False, None) and cache.peek("c") == (False, None)
    cache.unsettle(EVERYTHING)
    assert cache.begin_load(["a"], partial=True) is None


def test_timelines_appended_together_join_their_rows_at_different_times() -> None:
    """Live flows loaded together and appended at one rate join their appended rows (and cut their tails back)
    spread over time, not all in the same commit: 1,600 flows at 400 POSTs/s once stalled the writer 7 s each
    time their 64 appends came round together."""
    from tams_analytics.cache.timeline import MAX_PENDING

    def rows(starts: range) -> pa.Table:
        return pa.table({"start_ns": pa.array(list(starts), pa.int64()), "end_ns": pa.array([s + 1 for s in starts])})

    flows = [Timeline.of(rows(range(0, 10))) for _ in range(200)]
    flows += [Timeline.of(rows(range(0, 10)), bounds_only=True).with_tail(rows(range(0, 10)), 40) for _ in range(200)]
    most = 0
    for k in range(10, 10 + 4 * MAX_PENDING):
        grown = [t.appended(rows(range(k, k + 1))) for t in flows]
        assert all(g is not None for g in grown)
        flows = [g for g in grown if g is not None]
        upkept = sum(1 for g in flows if not g._pending)  # joined (or cut back) at this append
        most = max(most, upkept)
    # each joins once every MAX_PENDING appends, at its own phase: about one in MAX_PENDING of them at each append
    assert most <= 2 * len(flows) // MAX_PENDING, f"{most} of {len(flows)} timelines joined at one append"
