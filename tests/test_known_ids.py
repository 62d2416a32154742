"""The read cache's known object ids (tams_analytics.cache.known): an id is said absent only when it is not stored,
and a registration of new objects (a live recorder's every segment) reads nothing of them from the store.

Real DuckDB files; the store's reads are counted by the statement-timing decorator beneath the cache, as the server
counts them (``TimedEngine``)."""

from __future__ import annotations

import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from tams_analytics.cache import CachingEngine, id_ranges
from tams_analytics.cache.known import MERGE_AT, KnownIds, hash_ids
from tams_analytics.catalog import Catalog, connect
from tams_analytics.catalog.registration import Registration, register_batch
from tams_analytics.engines.timed import TimedEngine
from tests.server.conftest import video_flow


def test_the_hash_is_the_same_one_by_one_and_in_bulk_for_any_length() -> None:
    ids = ["", "a", "é", "x" * 7, "y" * 8, "z" * 9, str(uuid.uuid4()), "obj-" + "9" * 61]
    ids += [str(uuid.uuid4())[: i % 40] for i in range(500)]
    bulk = hash_ids(pa.array(ids)).tolist()
    assert bulk == [hash_ids([i]).tolist()[0] for i in ids]
    assert bulk == hash_ids(pa.chunked_array([pa.array(ids[:100]), pa.array(ids[100:])])).tolist()
    assert bulk[100:] == hash_ids(pa.array(ids).slice(100)).tolist()
    distinct = set(ids)
    assert len({h for i, h in zip(ids, bulk, strict=True)}) == len(distinct)


def test_an_id_is_absent_only_when_it_was_never_added() -> None:
    known = KnownIds("objects")
    stored = [str(uuid.uuid4()) for _ in range(1000)]
    assert known.maybe(["anything"]) == [True]  # nothing is said absent before the store's ids are read
    known.load(lambda: [pa.array(stored[:600])])
    known.add(stored[600:])
    new = [str(uuid.uuid4()) for _ in range(1000)]
    assert all(known.maybe(stored))
    assert not any(known.maybe(new))


def test_ids_added_in_their_thousands_are_merged_and_still_known() -> None:
    known = KnownIds("objects")
    known.load(lambda: [])
    added = [str(uuid.uuid4()) for _ in range(MERGE_AT + 10)]
    for at in range(0, len(added), 1000):
        known.add(added[at : at + 1000])
    deadline = time.monotonic() + 10
    while len(known._recent) >= MERGE_AT and time.monotonic() < deadline:
        time.sleep(0.01)  # (merged by a thread of its own)
    assert len(known._recent) < MERGE_AT
    assert all(known.maybe(added))
    assert np.all(np.diff(known._sorted.astype(np.float64)) >= 0)


@pytest.fixture
def counted(tmp_path: Path) -> tuple[Catalog, Counter[str]]:
    reads: Counter[str] = Counter()
    plain = connect(f"duckdb:///{tmp_path / 'tams.duckdb'}", create=True)
    timed = TimedEngine(plain.engine, lambda operation, table, seconds: reads.update([f"{operation} {table}"]))
    catalog = Catalog(CachingEngine(timed))
    yield catalog, reads
    catalog.close()


def _register(catalog: Catalog, flow_id: str, second: int, object_id: str) -> None:
    request = Registration.of(flow_id, [{"object_id": object_id, "timerange": f"[{second}:0_{second + 1}:0)"}])
    (outcome,) = register_batch(catalog, [request])
    assert not isinstance(outcome, Exception) and outcome.accepted == [0], outcome


def test_a_registration_of_new_objects_reads_no_object_from_the_store(counted: tuple[Catalog, Counter[str]]) -> None:
    catalog, reads = counted
    flow = video_flow()
    catalog.put_flow(flow)
    engine = catalog.engine
    assert isinstance(engine, CachingEngine)
    deadline = time.monotonic() + 10
    while not engine.object_ids.loaded and time.monotonic() < deadline:
        time.sleep(0.01)
    reused = str(uuid.uuid4())  # known absent: neither read nor kept in memory when it is registered
    _register(catalog, flow["id"], 0, reused)  # the flow's row and timeline are read once here
    reads.clear()
    for second in range(1, 30):
        _register(catalog, flow["id"], second, str(uuid.uuid4()))
    assert not [k for k in reads if k.endswith(" objects") and not k.startswith("insert")], reads
    reads.clear()
    other = video_flow()
    catalog.put_flow(other)
    _register(catalog, other["id"], 0, reused)  # a stored object re-used: read from the store, and accepted
    assert any(k.endswith(" objects") and not k.startswith("insert") for k in reads), reads


def test_the_known_ids_are_read_beside_writes_and_miss_none(tmp_path: Path) -> None:
    url = f"duckdb:///{tmp_path / 'tams.duckdb'}"
    store = connect(url, create=True)
    flow = video_flow()
    store.put_flow(flow)
    before = [str(uuid.uuid4()) for _ in range(200_000)]
    store.engine.insert("objects", pa.table({"id": before}))
    store.close()
    catalog = Catalog(CachingEngine(connect(url).engine))  # its ids are read in the background from now on
    engine = catalog.engine
    assert isinstance(engine, CachingEngine)
    written: list[str] = []
    for second in range(100):  # registered while they are read
        oid = str(uuid.uuid4())
        _register(catalog, flow["id"], second, oid)
        written.append(oid)
    deadline = time.monotonic() + 30
    while not engine.object_ids.loaded and time.monotonic() < deadline:
        time.sleep(0.01)
    try:
        assert engine.object_ids.loaded
        assert all(engine.object_ids.maybe(before)) and all(engine.object_ids.maybe(written))
        assert not any(engine.object_ids.maybe([str(uuid.uuid4()) for _ in range(1000)]))
    finally:
        catalog.close()


def test_id_ranges_put_every_string_in_exactly_one() -> None:
    samples = [str(uuid.uuid4()) for _ in range(2000)] + ["", "0", "ff", "plain", "Z", "~", "00", "3f", "40", "é"]
    for count in (1, 3_000_000, 20_000_000, 10**9):
        ranges = id_ranges(count, 2_000_000)
        assert len(ranges) == min(256, max(1, 2 ** int(np.ceil(np.log2(max(1, count / 2_000_000))))))
        for sid in samples:
            inside = [all(_holds(t, sid) for t in where) for where in ranges]
            assert inside.count(True) == 1, (count, sid)


def _holds(term: Any, value: str) -> bool:
    return bool(value >= term.value if term.op == ">=" else value < term.value)


def test_the_known_ids_are_read_range_by_range_and_miss_none(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Ids read a range at a time (16 ranges here), unordered; ids that are not UUIDs land in the outer ranges."""
    import tams_analytics.cache as cache

    monkeypatch.setattr(cache, "ID_PAGE", 2_000)
    url = f"duckdb:///{tmp_path / 'tams.duckdb'}"
    store = connect(url, create=True)
    ids = [str(uuid.uuid4()) for _ in range(30_000)] + ["plain", "Z-upper", "", "~tilde", "0", "ffff-last"]
    store.engine.insert("objects", pa.table({"id": ids}))
    store.close()
    engine = CachingEngine(connect(url).engine)
    try:
        pages = list(engine._stored_object_ids())
        assert len(pages) == 16
        assert sorted(i for page in pages for i in page.to_pylist()) == sorted(ids)
        deadline = time.monotonic() + 30
        while not engine.object_ids.loaded and time.monotonic() < deadline:
            time.sleep(0.01)
        assert all(engine.object_ids.maybe(ids))
        assert len(engine.object_ids) == len(ids)
    finally:
        engine.close()
