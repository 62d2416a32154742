"""The read cache's known object ids (tams_analytics.cache.known): an id is said absent only when it is not stored,
and a registration of new objects (a live recorder's every segment) reads nothing of them from the store.

Real DuckDB files; the store's reads are counted by the statement-timing decorator beneath the cache, as the server
counts them (``TimedEngine``)."""

from __future__ import annotations

import datetime as dt
import gc
import threading
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
from tams_analytics.predicates import Term, isin
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


@pytest.mark.parametrize("count", [1, 2, 3, 1000, 70_000])
def test_a_loads_hashes_are_held_sorted_once_each_with_their_rows_times(count: int) -> None:
    """The load's sort keys each row's index in its hash's low bits: rows whose hashes share the high bits (here many,
    on purpose, in falling order) and hashes that repeat (an id with several rows) come out as a plain sort would."""
    from tams_analytics.cache.known import _held_of

    rng = np.random.default_rng(count)
    hashes = rng.integers(0, 2**64 - 1, count, dtype=np.uint64, endpoint=True)
    shared = np.uint64(0xDEADBEEF) << np.uint64(32)  # the same high bits, low bits falling with the row
    hashes[: count // 3] = shared | np.arange(count // 3, 0, -1, dtype=np.uint64)
    hashes[count // 3 : count // 2] = hashes[: count // 2 - count // 3]  # rows of ids stored already
    hashes[-1:] = np.uint64(2**64 - 1)
    first = rng.integers(1, 2**32 - 1, count, dtype=np.uint32)
    last = first + rng.integers(0, 2, count, dtype=np.uint32)
    expected: dict[int, tuple[int, int]] = {}
    for h, f, la in zip(hashes.tolist(), first.tolist(), last.tolist(), strict=True):
        was = expected.get(h, (f, la))
        expected[h] = (min(was[0], f), max(was[1], la))
    for lasts in (last, first):  # (a load passes one time a row as both)
        held = _held_of(hashes, first, lasts)
        want = sorted(expected.items()) if lasts is last else sorted(_one_time(hashes, first).items())
        assert held.hashes.tolist() == [h for h, _ in want]
        assert list(zip(held.first.tolist(), held.last.tolist(), strict=True)) == [span for _, span in want]


def test_a_second_tables_scan_begins_when_the_firsts_ends_beside_its_sort(monkeypatch: pytest.MonkeyPatch) -> None:
    """The read cache's two loads read the store one after the other, but the second's scan does not wait for the
    first's sort and join, which read nothing: it begins as the first's scan ends (the first's sort waits here until
    it has). A first load that fails lets the second read all the same."""
    import tams_analytics.cache.known as known_module

    real = known_module._held_of
    order: list[str] = []
    second_reads = threading.Event()

    def held_of(*arrays: np.ndarray) -> Any:
        order.append(f"sort, the second reading: {second_reads.wait(10)}")
        return real(*arrays)

    monkeypatch.setattr(known_module, "_held_of", held_of)
    ids = [str(uuid.uuid4()) for _ in range(100)]

    def first_read() -> Any:
        order.append("first scan")
        yield pa.array(ids[:50])
        assert not second_reads.is_set()  # one scan at a time
        order.append("first scan ended")

    def second_read() -> Any:
        order.append("second scan")
        second_reads.set()
        yield pa.array(ids[50:])

    first, second = KnownIds("objects"), KnownIds("object_instances")
    threads = [first.load_in_background(first_read), second.load_in_background(second_read, after=first)]
    for thread in threads:
        thread.join(30)
    assert first.wait(0) and second.wait(0)
    assert order[:4] == ["first scan", "first scan ended", "second scan", "sort, the second reading: True"]
    assert all(first.maybe(ids[:50])) and not any(first.maybe(ids[50:])) and all(second.maybe(ids[50:]))

    def failing_read() -> Any:
        raise OSError("the store's volume is gone")
        yield  # (a generator)

    first, second = KnownIds("objects"), KnownIds("object_instances")
    first.load_in_background(failing_read)
    second.load_in_background(lambda: [pa.array(ids)], after=first).join(30)
    assert not first.wait(10) and second.wait(0)


def _one_time(hashes: np.ndarray, times: np.ndarray) -> dict[int, tuple[int, int]]:
    """Each hash's earliest and latest of ``times``, worked out one row at a time."""
    spans: dict[int, tuple[int, int]] = {}
    for h, t in zip(hashes.tolist(), times.tolist(), strict=True):
        was = spans.get(h, (t, t))
        spans[h] = (min(was[0], t), max(was[1], t))
    return spans


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


def test_the_writer_is_answered_while_a_load_joins_the_ids_it_read(monkeypatch: pytest.MonkeyPatch) -> None:
    """A load ends by sorting every id it read together with those merged while it read (0.23 s for 8 M ids): the
    writer's lookups and adds go on meanwhile (under the lock, that sort held them all)."""
    import tams_analytics.cache.known as known_module

    known = KnownIds("objects")
    stored = [str(uuid.uuid4()) for _ in range(2000)]
    merged = [str(uuid.uuid4()) for _ in range(500)]
    asked = [str(uuid.uuid4())]

    def read() -> Any:
        yield pa.array(stored[:1000])
        known.add(merged)  # written while the store's ids are read, and merged before the load ends
        known._merge()
        yield pa.array(stored[1000:])

    answered: list[list[bool]] = []
    #: whether the registration was answered while the join waited for it (held by the lock, it is not)
    in_time: list[bool] = []
    real = known_module._held_of

    def writer_beside(hashes: np.ndarray, first: np.ndarray, last: np.ndarray) -> known_module.Held:
        if len(hashes) == len(stored) + len(merged):  # the join: a registration comes meanwhile
            writer = threading.Thread(target=lambda: (known.add(asked), answered.append(known.maybe(asked))))
            writer.start()
            writer.join(10)
            in_time.append(not writer.is_alive())
        return real(hashes, first, last)

    monkeypatch.setattr(known_module, "_held_of", writer_beside)
    known.load(read)
    assert in_time == [True] and answered == [[True]]
    assert known.loaded and all(known.maybe(stored + merged + asked))
    assert not any(known.maybe([str(uuid.uuid4()) for _ in range(100)]))


def test_the_writer_is_answered_while_a_merge_puts_the_recent_ids_in_place(monkeypatch: pytest.MonkeyPatch) -> None:
    """A merge takes the recent ids whole and puts them among the sorted ones outside the lock: meanwhile the writer's
    adds and lookups are answered, the taken ids are still known with their exact times, and an id added then stays
    recent, to be merged next time (the former merge took each merged id out of the recent ones under the lock: a
    stall of the POSTs every 65,536 of them)."""
    import tams_analytics.cache.known as known_module

    known = KnownIds("objects")
    known.load(lambda: [])
    taken = [str(uuid.uuid4()) for _ in range(1000)]
    known.add(taken, _times([1_795_791_600_123_456 + i for i in range(1000)]))
    during = [str(uuid.uuid4()) for _ in range(10)]
    seen: list[tuple[list[bool], tuple[int, int] | None, list[bool]]] = []
    in_time: list[bool] = []
    real = known_module._merged

    def writer_beside(held: known_module.Held, hashes: np.ndarray, spans: np.ndarray) -> known_module.Held:
        def register() -> None:
            known.add(during, _times([1_795_791_700_000_000] * len(during)))
            seen.append((known.maybe(taken[:5]), known.written(taken[7:8]), known.maybe(during)))

        writer = threading.Thread(target=register)
        writer.start()
        writer.join(10)
        in_time.append(not writer.is_alive())
        return real(held, hashes, spans)

    monkeypatch.setattr(known_module, "_merged", writer_beside)
    known._merge()
    assert in_time == [True]
    assert seen == [([True] * 5, (1_795_791_600_123_463, 1_795_791_600_123_463), [True] * len(during))]
    assert len(known._sorted) == 1000 and not known._taken and set(known._recent) == set(hash_ids(during).tolist())
    assert known.written(taken[7:8]) == (1_795_791_600_000_000, 1_795_791_600_999_999)  # merged: to the second
    assert all(known.maybe(taken + during)) and not any(known.maybe([str(uuid.uuid4()) for _ in range(100)]))


def test_a_merge_copies_the_young_level_not_every_id_known(monkeypatch: pytest.MonkeyPatch) -> None:
    """The ids merged since the last fold lie in a level of their own, so a merge copies those, not every id the store
    held at start (one level: 128 MiB copied every 65,536 registrations on a store of 8 M objects); once the young
    level outgrows its bound it is folded into the old. An id written again, in both levels, keeps the times of both.
    A load of ids with a row each holds their one time once (12 bytes an id) until the fold widens some."""
    import tams_analytics.cache.known as known_module

    monkeypatch.setattr(known_module, "FOLD_AT", 3_500)
    known = KnownIds("object_instances")
    stored = [str(uuid.uuid4()) for _ in range(32_000)]
    second = 1_795_791_600
    known.load(lambda: [pa.table({"object_id": stored, "created": _times([second * 1_000_000] * len(stored))})])
    old = known._levels.old
    assert old.first is old.last and known.nbytes == 12 * 32_000  # a row each: its one time held once
    added: list[str] = []
    for merge in range(1, 4):  # 3 merges of 1,000: the young level holds 3,000 hashes, not past max(3,500, 2,000)
        batch = [str(uuid.uuid4()) for _ in range(1000)]
        known.add(batch, _times([(second + merge) * 1_000_000] * len(batch)))
        known._merge()
        added += batch
        assert known._levels.old is old and len(known._levels.young.hashes) == 1000 * merge  # the old not copied
    again = stored[:5]  # written again: the old level has them, the young one too
    known.add(again, _times([(second + 9) * 1_000_000] * 5))
    known._merge()
    assert known._levels.old is old and len(known._levels.young.hashes) == 3005
    assert known.written(again[:1]) == (second * 1_000_000, (second + 9) * 1_000_000 + 999_999)
    assert all(known.maybe(stored + added)) and not any(known.maybe([str(uuid.uuid4()) for _ in range(1000)]))
    fourth = [str(uuid.uuid4()) for _ in range(1000)]
    known.add(fourth, _times([(second + 4) * 1_000_000] * 1000))
    known._merge()  # 4,005 young: past max(3,500, 32,000 // 16): folded into the old level
    folded = known._levels
    assert len(folded.young.hashes) == 0 and len(folded.old.hashes) == 32_000 + 4_000 == len(known._sorted)
    assert np.all(folded.old.hashes[1:] > folded.old.hashes[:-1])  # sorted, each once
    assert known.written(again[:1]) == (second * 1_000_000, (second + 9) * 1_000_000 + 999_999)
    assert known.written(fourth[:1]) == ((second + 4) * 1_000_000, (second + 4) * 1_000_000 + 999_999)
    assert known.written(stored[5:6]) == (second * 1_000_000, second * 1_000_000 + 999_999)  # not widened with them
    assert all(known.maybe(stored + added + fourth)) and not any(known.maybe([str(uuid.uuid4()) for _ in range(1000)]))
    assert known.nbytes == 16 * 36_000


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


def _bulk(first_second: int, ids: list[str]) -> pa.Table:
    """Rows for ``load_segments``: a 1-second segment for each of ``ids`` from ``first_second`` on."""
    starts = (first_second + np.arange(len(ids), dtype=np.int64)) * 1_000_000_000
    return pa.table(
        {
            "object_id": ids,
            "timerange": [f"[{s // 10**9}:0_{s // 10**9 + 1}:0)" for s in starts.tolist()],
            "start_ns": starts,
            "end_ns": starts + 1_000_000_000,
        }
    )


def test_a_bulk_load_proves_its_objects_new_without_reading_the_objects(tmp_path: Path) -> None:
    """``load_segments`` proves that none of its object ids is stored (``Engine.count_in``). Under the read cache,
    once the ids are known, new ids are proved new from memory with no read of the objects (without the cache, a scan
    of every object's id per call), and an id stored, before the cache began or since, is still found and refused."""
    from tams_analytics.catalog.bulk import load_segments
    from tams_analytics.exceptions import ConflictError

    url = f"duckdb:///{tmp_path / 'tams.duckdb'}"
    flow = video_flow()
    with connect(url, create=True) as store:
        store.put_flow(flow)
        before = [str(uuid.uuid4()) for _ in range(3000)]
        load_segments(store, flow["id"], _bulk(0, before))
    reads: Counter[str] = Counter()
    timed = TimedEngine(connect(url).engine, lambda operation, table, seconds: reads.update([f"{operation} {table}"]))
    catalog = Catalog(CachingEngine(timed))
    try:
        engine = catalog.engine
        assert isinstance(engine, CachingEngine) and engine.ids_known(30)
        since = [str(uuid.uuid4()) for _ in range(3000)]
        reads.clear()
        assert load_segments(catalog, flow["id"], _bulk(10_000, since)) == 3000
        assert reads["count objects"] == 0, reads  # the overlap check counts segments, nothing counts objects
        for second, taken in ((20_000, before[1234]), (30_000, since[2345])):
            reads.clear()
            ids = [str(uuid.uuid4()) for _ in range(2999)] + [taken]
            with pytest.raises(ConflictError, match="1 of the object ids already exist"):
                load_segments(catalog, flow["id"], _bulk(second, ids))
            assert reads["count objects"] == 1, reads
        assert catalog.count("objects") == 6000 and catalog.count("segments") == 6000
    finally:
        catalog.close()


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
        pages = list(engine._stored_ids("objects"))
        assert len(pages) == 16
        assert sorted(i for page in pages for i in page.column("id").to_pylist()) == sorted(ids)
        deadline = time.monotonic() + 30
        while not engine.object_ids.loaded and time.monotonic() < deadline:
            time.sleep(0.01)
        assert all(engine.object_ids.maybe(ids))
        assert len(engine.object_ids) == len(ids)
    finally:
        engine.close()


def _times(micros: list[int | None]) -> pa.Array:
    return pa.array(micros, pa.timestamp("us", "UTC"))


def test_the_times_of_an_id_hold_every_row_of_it_loaded_added_and_merged() -> None:
    """Random ids with rows at random times (some ids with several rows, as objects with several instances), some
    read at the start and some added after, merged or not: an id's times hold the first and last of its rows', exactly
    while it is recent and to the second once merged (16 bytes an id), a set's span all of theirs, and a row whose time
    is not known makes its id's unknown."""
    rng = np.random.default_rng(7)
    known = KnownIds("object_instances")
    ids = [str(uuid.uuid4()) for _ in range(3000)]
    rows: dict[str, list[int]] = {}
    loaded_ids, loaded_at = [], []
    span = (1_600_000_000_000_000, 1_800_000_000_000_000)
    for oid in ids[:2000]:
        for _ in range(int(rng.integers(1, 4))):
            at = int(rng.integers(*span))
            rows.setdefault(oid, []).append(at)
            loaded_ids.append(oid)
            loaded_at.append(at)
    assert known.written(ids[:1]) is None  # nothing is said before the store's ids are read
    known.load(lambda: [pa.table({"object_id": loaded_ids, "created": _times(loaded_at)})])
    assert known.nbytes == 16 * len(known) == 16 * 2000
    for start in range(1000, 3000, 250):  # ids new and old written again, in batches
        batch = ids[start : start + 250]
        times = [int(t) for t in rng.integers(*span, len(batch))]
        known.add(batch, _times(times))
        for oid, at in zip(batch, times, strict=True):
            rows.setdefault(oid, []).append(at)
        if start == 2000:
            known._merge()  # some of them merged into the sorted arrays, the rest still recent
    assert len(known._recent) == 750
    recent = set(ids[2250:])
    for oid in rng.choice(ids, 300).tolist():
        assert _spans(known.written([oid]), min(rows[oid]), max(rows[oid]), exact=oid in recent)
    some = rng.choice(ids, 40).tolist()
    spans = [_span(min(rows[i]), max(rows[i]), exact=i in recent) for i in some]
    assert known.written(some) == (min(f for f, _ in spans), max(last for _, last in spans))
    absent = str(uuid.uuid4())
    assert known.written([absent]) is None and known.written([absent, ids[0]]) == known.written([ids[0]])
    known.add([ids[5]], _times([None]))  # a row of unknown time: the id's rows can be anywhere
    assert known.written([ids[5]]) is None and known.written([ids[5], ids[6]]) is None
    known._merge()
    assert known.written([ids[5]]) is None and _spans(known.written([ids[6]]), min(rows[ids[6]]), max(rows[ids[6]]))
    nanos = pa.array([rows[ids[7]][0] * 1000 + 999], pa.timestamp("ns", "UTC"))  # a finer unit: rounded down
    known.add([ids[7]], nanos)
    assert _spans(known.written([ids[7]]), min(rows[ids[7]]), max(rows[ids[7]]))
    known.forget_times()
    assert known.written([ids[6]]) is None and known.maybe([ids[6]]) == [True]


def _spans(written: tuple[int, int] | None, first: int, last: int, *, exact: bool = False) -> bool:
    """Whether ``written`` is ``first`` to ``last`` (microseconds), exactly or to the second (:func:`_span`)."""
    return written == _span(first, last, exact=exact)


def _span(first: int, last: int, *, exact: bool = False) -> tuple[int, int]:
    """``first`` to ``last`` (microseconds), or to the second: from the start of ``first``'s second to the end of
    ``last``'s."""
    return (first, last) if exact else (first // 1_000_000 * 1_000_000, last // 1_000_000 * 1_000_000 + 999_999)


def _stamp(day: int, second: int = 0) -> dt.datetime:
    return dt.datetime(2026, 1, 1, tzinfo=dt.UTC) + dt.timedelta(days=day, seconds=second)


def test_lookups_and_writes_by_id_are_bounded_by_their_times_and_exact(tmp_path: Path) -> None:
    """A store of objects written over 20 days, each with an instance written with it, some with a second one days
    later and some of unknown time: what the read cache asks the store for (its reads, deletes and updates by id) is
    bounded by the times the ids' rows were written at, tightly, and answers exactly what the same statement without
    the bound does."""
    url = f"duckdb:///{tmp_path / 'tams.duckdb'}"
    plain = connect(url, create=True).engine
    ids = [str(uuid.uuid4()) for _ in range(2000)]
    days = {oid: i % 20 for i, oid in enumerate(ids)}
    created = [None if i % 97 == 0 else _stamp(days[oid], i) for i, oid in enumerate(ids)]
    plain.insert("objects", pa.table({"id": ids, "created": pa.array(created, pa.timestamp("us", "UTC"))}))
    later = ids[::7]
    instances = pa.table(
        {
            "object_id": ids + later,
            "storage_id": ["s"] * (len(ids) + len(later)),
            "created": pa.array(created + [_stamp(days[o] + 3) for o in later], pa.timestamp("us", "UTC")),
        }
    )
    plain.insert("object_instances", instances)
    assert plain.sql("SELECT count(*) FROM duckdb_indexes()").column(0).to_pylist() == [0]
    plain.close()
    engine = CachingEngine(connect(url).engine)
    try:
        deadline = time.monotonic() + 30
        while not engine.instance_objects.loaded and time.monotonic() < deadline:
            time.sleep(0.01)
        assert engine.object_ids.loaded and engine.instance_objects.loaded
        inner = engine.inner
        one_day = [oid for oid in ids if days[oid] == 4 and oid not in later and created[ids.index(oid)]][:30]
        bounded = engine._bounded("object_instances", [isin("object_id", one_day)])
        first, last = (t.value for t in bounded[1:])
        assert _stamp(4) <= first and last <= _stamp(5)  # one day's rows, not twenty
        rng = np.random.default_rng(3)
        for table, column in (("objects", "id"), ("object_instances", "object_id")):
            for size in (1, 5, 64, 65, 300):
                chosen = rng.choice(ids, size, replace=False).tolist()
                where = [isin(column, chosen)]
                got = inner.query(table, engine._bounded(table, where)).sort_by([(column, "ascending")])
                assert got.equals(inner.query(table, where).sort_by([(column, "ascending")]))
                assert len(engine._bounded(table, where)) == (
                    1 if any(created[ids.index(c)] is None for c in chosen) else 3
                )
        doomed = rng.choice(later, 20, replace=False).tolist()  # objects with two instances days apart
        assert engine.delete("object_instances", [isin("object_id", doomed)]) == 40
        assert engine.update("objects", [isin("id", doomed)], {"size_bytes": 7}) == 20
        assert inner.count("object_instances") == len(ids) + len(later) - 40
        assert inner.count("objects", [Term("size_bytes", "==", 7)]) == 20
        assert engine.query("object_instances", [isin("object_id", doomed)]).num_rows == 0
    finally:
        engine.close()


def test_a_store_made_with_the_former_indexes_has_none_once_opened(tmp_path: Path) -> None:
    import duckdb

    from tams_analytics.engines.duckdb.ddl import FORMER_INDEXES, LOOKUP_KEYS, index_name

    path = tmp_path / "tams.duckdb"
    connect(f"duckdb:///{path}", create=True).close()
    with duckdb.connect(str(path)) as con:
        for name in FORMER_INDEXES:
            con.execute(f'CREATE INDEX "{index_name(name)}" ON "{name}" ("{LOOKUP_KEYS[name][0]}")')
        assert con.execute("SELECT count(*) FROM duckdb_indexes()").fetchall() == [(2,)]
    connect(f"duckdb:///{path}").close()
    with duckdb.connect(str(path), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM duckdb_indexes()").fetchall() == [(0,)]


def test_a_bulk_loads_objects_are_found_among_few_rows(tmp_path: Path) -> None:
    """Rows of one bulk write are a microsecond apart (tams_analytics.clock.written_at): the instances of a page of a
    bulk-loaded flow are looked up among about as many rows as the page has, not among the whole write's."""
    from tams_analytics.catalog.bulk import load_segments

    url = f"duckdb:///{tmp_path / 'tams.duckdb'}"
    catalog = Catalog(CachingEngine(connect(url, create=True).engine))
    try:
        flow = video_flow()
        catalog.put_flow(flow)
        n = 5000
        ids = [str(uuid.uuid4()) for _ in range(n)]
        starts = np.arange(n, dtype=np.int64) * 2_000_000_000
        table = pa.table(
            {
                "object_id": ids,
                "timerange": [f"[{s // 10**9}:0_{s // 10**9 + 2}:0)" for s in starts.tolist()],
                "start_ns": starts,
                "end_ns": starts + 2_000_000_000,
            }
        )
        assert load_segments(catalog, flow["id"], table, storage_id="s", storage_keys=pa.array(ids)) == n
        engine = catalog.engine
        assert isinstance(engine, CachingEngine) and engine.ids_known(30)
        page = ids[2000:2100]
        for table_name, column in (("objects", "id"), ("object_instances", "object_id")):
            bounded = engine._bounded(table_name, [isin(column, page)])
            within = engine.inner.count(table_name, bounded[1:])
            assert within == 100, (table_name, within)  # the page's rows, of the write's 5,000
            assert engine.query(table_name, [isin(column, page)]).num_rows == 100
    finally:
        catalog.close()


def test_the_recent_ids_are_kept_where_the_garbage_collector_never_walks() -> None:
    """Up to ``MERGE_AT`` recent ids and their times, in the store process for good: held in containers Python's
    collector follows, every full collection walked them all, every write waiting (tens of ms under live ingest)."""
    known = KnownIds("objects")
    known.load(lambda: [])
    added = [str(uuid.uuid4()) for _ in range(2000)]
    known.add(added, _times([1_795_791_600_000_000 + i for i in range(2000)]))
    known.add(added[:10], _times([1_795_791_700_000_000] * 10))  # written again: its span widened
    assert len(known._recent) == 2000
    assert not any(gc.is_tracked(d) for d in (known._recent.first, known._recent.last))
    assert known.written(added[:1]) == (1_795_791_600_000_000, 1_795_791_700_000_000)


@pytest.mark.parametrize("unit", ["s", "ms", "us", "ns"])
def test_a_few_times_are_read_as_many_are(unit: str) -> None:
    """A live batch's few times take a path of their own (no compute kernels): the same microseconds as the path of
    many, nulls and times before 1970 included, in every unit, chunked or not."""
    from tams_analytics.cache.known import _FEW, micros_of

    now = {"s": 1_795_791_600, "ms": 1_795_791_600_999, "us": 1_795_791_600_999_999, "ns": 1_795_791_600_999_999_999}
    values = [now[unit], None, -1_999, 0, 1, 999, 1_000, 1_999, 86_400_000_001]
    few = pa.array(values, pa.timestamp(unit, "UTC"))
    many = pa.array(values * (_FEW // len(values) + 1), pa.timestamp(unit, "UTC"))
    assert len(few) <= _FEW < len(many)
    expected = micros_of(many, len(many)).tolist()[: len(values)]
    assert micros_of(few, len(few)).tolist() == expected
    assert micros_of(pa.chunked_array([few[:4], few[4:]]), len(few)).tolist() == expected
    assert expected[1] == 0 and expected[2] == 0  # not known: a null, a time before 1970
