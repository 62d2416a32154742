"""OpenTAMS's PERF-01…06 side by side: our library (read cache off and on) against PostgreSQL (two variants).

The same data (``benchmarks/perf_data.py``) is stored four times: two DuckDB files (one read through the
exact read cache) and two PostgreSQL databases of one throwaway cluster (OpenTAMS's overlap pre-check
as it words it, and an index-matched one: ``benchmarks/postgres_side.py``). Every scenario hands the
four sides the same requests, interleaved (call i goes to every side before call i + 1, the order
rotating), so machine noise falls on all of them alike. See ``benchmarks/README.md``.
"""

from __future__ import annotations

import functools
import shutil
import statistics
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Final, Protocol, TypeVar

import numpy as np

from benchmarks.live_ingest import Latencies
from benchmarks.perf_data import SEGMENT_NS, PeerData, SegmentMaker, count_overlaps, generate, load_library, uuid_text
from benchmarks.stores import remove_store

#: the four columns of the report: key -> label
SIDES: Final[dict[str, str]] = {
    "ours": "ours, cache off",
    "ours_cached": "ours, cache on",
    "postgres_opentams": "PG, OpenTAMS pre-check",
    "postgres_index_matched": "PG, index-matched",
}
OURS: Final = ("ours", "ours_cached")
POSTGRES: Final = ("postgres_opentams", "postgres_index_matched")


T = TypeVar("T")


class CheckFailed(RuntimeError):
    """A side answered wrongly (stored an overlap, lost a segment, paged other rows): no timing counts then."""


class Side(Protocol):
    """What every side answers (``benchmarks/library_side.py``, ``benchmarks/postgres_side.py``)."""

    def insert(self, flow_id: str, doc: dict[str, str]) -> bool: ...
    def insert_batch(self, flow_id: str, docs: Sequence[dict[str, str]]) -> int: ...
    def delete(self, flow_id: str, lo: int, hi: int) -> int: ...
    def add_flow(self, flow_id: str, source_id: str) -> None: ...
    def first_page(self, flow_id: str, limit: int) -> list[dict[str, Any]]: ...
    def window_page(self, flow_id: str, lo: int, hi: int, limit: int) -> list[dict[str, Any]]: ...
    def cursor_at(self, flow_id: str, start_ns: int) -> Any: ...
    def page_after(self, flow_id: str, cursor: Any, limit: int) -> list[dict[str, Any]]: ...
    def bounds(self, flow_id: str) -> tuple[np.ndarray, np.ndarray]: ...
    def warm(self, flow_id: str) -> None: ...
    def worker(self) -> Side: ...
    def release(self) -> None: ...
    def close(self) -> None: ...


@dataclass(frozen=True)
class PeerConfig:
    """Sizes of the peer benchmark (the defaults are OpenTAMS's scenarios)."""

    main_segments: int = 100_000
    other_flows: int = 3
    other_segments: int = 10_000
    #: PERF-01: single inserts into the long flow (after ``warmup`` untimed ones)
    single_inserts: int = 1000
    warmup: int = 10
    #: PERF-02 and PERF-05: (batches, segments per batch), each into a new flow
    small_batches: tuple[int, int] = (50, 100)
    large_batches: tuple[int, int] = (20, 1000)
    #: PERF-03: timed pages of each kind per side, and the page size
    page_repeat: int = 200
    page_limit: int = 100
    #: PERF-04: segments deleted from the middle of the long flow, runs per side (a fresh copy each)
    delete_segments: int = 10_000
    delete_runs: int = 5
    #: PERF-06: threads racing, attempts per thread per round, rounds per side
    race_threads: int = 8
    race_attempts: int = 25
    race_rounds: int = 2

    @classmethod
    def quick(cls, **changes: Any) -> PeerConfig:
        """The same data and scenarios with fewer repetitions (about half the time)."""
        return replace(cls(single_inserts=300, page_repeat=100, delete_runs=3, race_rounds=1), **changes)

    @classmethod
    def tiny(cls, **changes: Any) -> PeerConfig:
        """A store of a few thousand segments and a handful of calls: for the smoke test."""
        base = cls(
            main_segments=2000,
            other_flows=1,
            other_segments=200,
            single_inserts=10,
            warmup=2,
            small_batches=(3, 10),
            large_batches=(2, 50),
            page_repeat=5,
            delete_segments=200,
            delete_runs=1,
            race_threads=4,
            race_attempts=4,
            race_rounds=1,
        )
        return replace(base, **changes)


@dataclass
class PeerResult:
    """Metric -> side -> value (times in ms, rates in segments/s, counts), or why the peer was skipped."""

    metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    details: list[str] = field(default_factory=list)
    setup: dict[str, str] = field(default_factory=dict)
    skipped: str | None = None
    seconds: float = 0.0

    def put(self, metric: str, side: str, value: float) -> None:
        self.metrics.setdefault(metric, {})[side] = value


def rotation(keys: Sequence[str], i: int) -> list[str]:
    """``keys`` starting at position ``i`` (so every side runs first, second, … equally often).

    >>> rotation(["a", "b", "c"], 4)
    ['b', 'c', 'a']
    """
    k = i % len(keys)
    return [*keys[k:], *keys[:k]]


def timed(fn: Callable[[], T]) -> tuple[float, T]:
    started = time.perf_counter()
    out = fn()
    return time.perf_counter() - started, out


class Scenarios:
    """Runs PERF-01…06 on ``sides`` (all holding ``data``) and fills ``result``."""

    def __init__(
        self,
        config: PeerConfig,
        data: PeerData,
        sides: dict[str, Side],
        fresh: dict[str, Callable[[], AbstractContextManager[Side]]],
        result: PeerResult,
        progress: Callable[[str], None],
    ) -> None:
        self.config, self.data, self.sides, self.fresh = config, data, sides, fresh
        self.result, self.progress = result, progress
        self.keys = list(sides)
        self.main = data.main.id
        self.edge = data.main.end_ns  # the long flow's live edge, moved on by the writes
        self.maker = SegmentMaker()
        self.new_flows = 0

    def run_all(self) -> None:
        for key in self.keys:
            self.sides[key].warm(self.main)
        self.perf03_pages()
        self.perf01_single_inserts()
        self.perf06_race()
        self.batches("perf02", "PERF-02", *self.config.small_batches)
        self.batches("perf05", "PERF-05", *self.config.large_batches)
        self.perf04_delete()
        self.check_flow(self.main, "the long flow at the end")

    # -- PERF-01 ----------------------------------------------------------------------------------------
    def perf01_single_inserts(self) -> None:
        c = self.config
        self.progress(f"peer PERF-01: {c.single_inserts} single inserts into the {c.main_segments:,}-segment flow ...")
        docs = self.maker.docs(self.edge, c.warmup + c.single_inserts)
        self.edge += len(docs) * SEGMENT_NS
        lat = {k: Latencies() for k in self.keys}
        refused = dict.fromkeys(self.keys, 0)
        for i, doc in enumerate(docs):
            for key in rotation(self.keys, i):
                dt, ok = timed(functools.partial(self.sides[key].insert, self.main, doc))
                refused[key] += not ok
                if i >= c.warmup:
                    lat[key].samples.append(dt)
        for key in self.keys:
            self.result.put("perf01_insert_p50_ms", key, lat[key].p50_ms)
            self.result.put("perf01_insert_p99_ms", key, lat[key].p99_ms)
            if refused[key]:
                raise CheckFailed(f"PERF-01: {key} refused {refused[key]} abutting segments")
        self.result.details.append(
            f"PERF-01: {c.single_inserts} timed single-segment registrations (+{c.warmup} warm-up) appended at the "
            f"live edge of the {c.main_segments:,}-segment flow; every side stored all of them; "
            + self.plans(self.main, self.edge)
        )

    # -- PERF-02 / PERF-05 ------------------------------------------------------------------------------
    def batches(self, name: str, label: str, batches: int, size: int) -> None:
        self.progress(f"peer {label}: {batches} batches of {size} segments into a new flow ...")
        flow_id = self.add_flow()
        lat = {k: Latencies() for k in self.keys}
        for b in range(batches):
            docs = self.maker.docs(int(self.data.main.starts[0]) + b * size * SEGMENT_NS, size)
            for key in rotation(self.keys, b):
                dt, stored = timed(functools.partial(self.sides[key].insert_batch, flow_id, docs))
                if stored != size:
                    raise CheckFailed(f"{label}: {key} stored {stored} of {size} abutting segments")
                lat[key].samples.append(dt)
        for key in self.keys:
            self.result.put(f"{name}_segments_per_s", key, size / statistics.median(lat[key].samples))
            self.check_flow(flow_id, label, expect=batches * size, key=key)
        edge = int(self.data.main.starts[0]) + batches * size * SEGMENT_NS
        self.result.details.append(
            f"{label}: {batches} registrations of {size} abutting segments each (one call, one transaction) "
            f"into a new flow; rate = {size} / median time per call; {self.plans(flow_id, edge)}"
        )

    def plans(self, flow_id: str, edge: int) -> str:
        """How PostgreSQL plans each variant's pre-check at the flow's live edge now (the scan nodes)."""
        out = []
        for key in self.keys:
            explain = getattr(self.sides[key], "explain_colliding", None)
            if explain is not None:
                plan = explain(flow_id, edge, edge + SEGMENT_NS)
                scans = [line.split("(cost")[0].strip(" ->") for line in plan.splitlines() if "Scan" in line]
                out.append(f"{SIDES[key]}: {' / '.join(scans) or '?'}")
        return "pre-check plans at the live edge: " + "; ".join(out) if out else ""

    def add_flow(self) -> str:
        self.new_flows += 1
        flow_id = uuid_text(0x20, self.new_flows)
        for key in self.keys:
            self.sides[key].add_flow(flow_id, uuid_text(0x21, self.new_flows))
        return flow_id

    # -- PERF-03 ----------------------------------------------------------------------------------------
    def perf03_pages(self) -> None:
        c, flow = self.config, self.data.main
        n = flow.segments
        self.progress(f"peer PERF-03: pages of {c.page_limit} at three positions, {c.page_repeat} each ...")
        lo = int(flow.starts[n // 2]) + SEGMENT_NS // 2
        hi = lo + 3600 * 10**9
        cursors = {k: self.sides[k].cursor_at(self.main, int(flow.starts[(9 * n) // 10])) for k in self.keys}
        limit = c.page_limit + 1  # the route asks for one more row, to know whether there is a next page
        kinds: dict[str, Callable[[Side, str], list[dict[str, Any]]]] = {
            "first": lambda s, k: s.first_page(self.main, limit),
            "window": lambda s, k: s.window_page(self.main, lo, hi, limit),
            "deep": lambda s, k: s.page_after(self.main, cursors[k], limit),
        }
        for kind, page in kinds.items():
            lat = {k: Latencies() for k in self.keys}
            answers: dict[str, list[str]] = {}
            for i in range(c.page_repeat + 2):
                for key in rotation(self.keys, i):
                    dt, rows = timed(functools.partial(page, self.sides[key], key))
                    if i >= 2:
                        lat[key].samples.append(dt)
                    answers.setdefault(key, [r["timerange"] for r in rows])
            first = answers[self.keys[0]]
            for key, got in answers.items():
                if got != first or len(got) != limit:
                    raise CheckFailed(f"PERF-03 {kind}: {key} answered {len(got)} rows, not those of the others")
            for key in self.keys:
                self.result.put(f"perf03_{kind}_p50_ms", key, lat[key].p50_ms)
                self.result.put(f"perf03_{kind}_p99_ms", key, lat[key].p99_ms)
        self.result.details.append(
            f"PERF-03: {c.page_repeat} timed pages of {c.page_limit} (+1 row, as the route asks) per kind: the first "
            f"page; the page of a one-hour window starting mid-segment at segment {n // 2:,}; the page after the "
            f"cursor of segment {(9 * n) // 10:,}; all sides answered the same rows"
        )

    # -- PERF-04 ----------------------------------------------------------------------------------------
    def perf04_delete(self) -> None:
        c, flow = self.config, self.data.main
        first = (flow.segments - c.delete_segments) // 2
        lo, hi = int(flow.starts[first]), int(flow.ends[first + c.delete_segments - 1])
        self.progress(f"peer PERF-04: delete {c.delete_segments:,} of {flow.segments:,}, {c.delete_runs} runs ...")
        times: dict[str, list[float]] = {k: [] for k in self.keys}
        for run in range(c.delete_runs):
            for key in rotation(self.keys, run):
                with self.fresh[key]() as side:
                    side.warm(self.main)
                    dt, deleted = timed(functools.partial(side.delete, self.main, lo, hi))
                    if deleted != c.delete_segments:
                        raise CheckFailed(f"PERF-04: {key} deleted {deleted}, not {c.delete_segments}")
                    starts, _ = side.bounds(self.main)
                    if len(starts) != flow.segments - c.delete_segments:
                        raise CheckFailed(f"PERF-04: {key} kept {len(starts)} segments")
                times[key].append(dt)
        for key in self.keys:
            self.result.put("perf04_delete_median_ms", key, 1000 * statistics.median(times[key]))
            self.result.put("perf04_delete_worst_ms", key, 1000 * max(times[key]))
        self.result.details.append(
            f"PERF-04: delete by timerange of the {c.delete_segments:,} segments in the middle of the "
            f"{flow.segments:,}-segment flow (covered-only; object references released), {c.delete_runs} runs per "
            "side, each on a fresh copy of the store (DuckDB file copy / CREATE DATABASE … TEMPLATE), warmed first"
        )

    # -- PERF-06 ----------------------------------------------------------------------------------------
    def perf06_race(self) -> None:
        c = self.config
        self.progress(
            f"peer PERF-06: {c.race_threads} threads racing overlapping inserts, {c.race_rounds} round(s) per side ..."
        )
        lat = {k: Latencies() for k in self.keys}
        counts = {k: [0, 0] for k in self.keys}  # accepted, refused
        for r in range(c.race_rounds):
            base = self.edge + SEGMENT_NS
            self.edge = base + (c.race_attempts + 2) * SEGMENT_NS
            # thread t's k-th attempt: slot k, shifted by half a segment on odd threads, so every attempt
            # overlaps the attempts of the other threads for the same slot and a neighbour
            docs = [self.maker.docs(base + (t % 2) * (SEGMENT_NS // 2), c.race_attempts) for t in range(c.race_threads)]
            for key in rotation(self.keys, r):
                samples, accepted = self._race(self.sides[key], docs)
                lat[key].samples += samples
                counts[key][0] += len(accepted)
                counts[key][1] += len(samples) - len(accepted)
                starts, ends = self.sides[key].bounds(self.main)
                inside = (starts >= base) & (starts < self.edge)
                stored = {(int(s), int(e)) for s, e in zip(starts[inside], ends[inside], strict=True)}
                if stored != accepted:
                    raise CheckFailed(
                        f"PERF-06: {key} acknowledged {len(accepted)} segments but stores {len(stored)} "
                        f"({len(accepted - stored)} acknowledged missing)"
                    )
        for key in self.keys:
            self.result.put("perf06_attempt_p50_ms", key, lat[key].p50_ms)
            self.result.put("perf06_attempt_p99_ms", key, lat[key].p99_ms)
            self.result.put("perf06_accepted", key, counts[key][0])
            self.result.put("perf06_refused", key, counts[key][1])
            self.check_flow(self.main, "PERF-06", key=key, metric="perf06_overlaps")
        self.result.details.append(
            f"PERF-06: {c.race_threads} threads (one connection each on PostgreSQL, one shared catalog on ours, as "
            f"the server shares it) released together, each registering {c.race_attempts} single segments at the "
            f"live edge of the long flow, half of them shifted by 1 s so every attempt collides; {c.race_rounds} "
            "round(s) per side; every acknowledged segment checked stored, nothing else stored, 0 overlaps"
        )

    def _race(self, side: Side, docs: list[list[dict[str, str]]]) -> tuple[list[float], set[tuple[int, int]]]:
        from tams_analytics.timerange import TimeRange

        handles = [side.worker() for _ in docs]
        barrier = threading.Barrier(len(docs))
        samples: list[list[float]] = [[] for _ in docs]
        won: list[list[str]] = [[] for _ in docs]
        errors: list[BaseException] = []

        def attempt(t: int) -> None:
            try:
                barrier.wait()
                for doc in docs[t]:
                    dt, ok = timed(functools.partial(handles[t].insert, self.main, doc))
                    samples[t].append(dt)
                    if ok:
                        won[t].append(doc["timerange"])
            except BaseException as exc:  # reported below, in the main thread
                errors.append(exc)
                barrier.abort()

        threads = [threading.Thread(target=attempt, args=(t,)) for t in range(len(docs))]
        try:
            for th in threads:
                th.start()
            for th in threads:
                th.join()
        finally:
            for h in handles:
                h.release()
        if errors:
            raise errors[0]
        accepted = {TimeRange.from_str(tr).storage_bounds() for w in won for tr in w}
        return [s for per in samples for s in per], accepted

    # -- checks -----------------------------------------------------------------------------------------
    def check_flow(
        self, flow_id: str, what: str, *, expect: int | None = None, key: str | None = None, metric: str = ""
    ) -> None:
        """0 overlaps stored (and ``expect`` segments) on ``key``'s side, or on every side."""
        for k in [key] if key else self.keys:
            starts, ends = self.sides[k].bounds(flow_id)
            overlaps = count_overlaps(starts, ends)
            if metric:
                self.result.put(metric, k, overlaps)
            if overlaps or (expect is not None and len(starts) != expect):
                raise CheckFailed(f"{what}: {k} stores {len(starts)} segments with {overlaps} overlaps")


def run_scenarios(
    config: PeerConfig, data: PeerData, work: Path, pg: Any, result: PeerResult, progress: Callable[[str], None]
) -> None:
    """Store ``data`` on the four sides (``pg``: a started :class:`~benchmarks.postgres_peer.Cluster`), run
    every scenario, and close everything."""
    from benchmarks.library_side import LibrarySide
    from benchmarks.postgres_side import PostgresSide

    base = work / "peer-base.duckdb"
    t0 = time.perf_counter()
    load_library(base, data)
    ours_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    pg.load("peer_base", data)
    pg_s = time.perf_counter() - t0
    result.details.append(
        f"stores of {data.segments:,} segments ({len(data.flows)} flows; the long one {data.main.segments:,}): "
        f"DuckDB bulk load {ours_s:.1f} s; PostgreSQL COPY + indexes + VACUUM ANALYZE {pg_s:.1f} s"
    )

    def library(key: str, cached: bool, tag: str) -> LibrarySide:
        path = work / f"peer-{key}{tag}.duckdb"
        copy_store(base, path)
        return LibrarySide(path, cached=cached)

    def postgres(key: str, variant: str, tag: str) -> PostgresSide:
        pg.clone("peer_base", f"{key}{tag}")
        return PostgresSide(pg.conninfo(f"{key}{tag}"), variant)

    makers: dict[str, Callable[[str], Side]] = {
        "ours": lambda tag: library("ours", False, tag),
        "ours_cached": lambda tag: library("ours_cached", True, tag),
        "postgres_opentams": lambda tag: postgres("postgres_opentams", "opentams", tag),
        "postgres_index_matched": lambda tag: postgres("postgres_index_matched", "index_matched", tag),
    }
    runs = {"n": 0}

    def fresh(key: str) -> Callable[[], AbstractContextManager[Side]]:
        @contextmanager
        def opened() -> Iterator[Side]:
            runs["n"] += 1
            tag = f"_del{runs['n']}"
            side = makers[key](tag)
            try:
                yield side
            finally:
                side.close()
                if key in OURS:
                    remove_store(work / f"peer-{key}{tag}.duckdb")
                else:
                    pg.drop(f"{key}{tag}")

        return opened

    sides: dict[str, Side] = {}
    try:
        for key in SIDES:
            sides[key] = makers[key]("")
        Scenarios(config, data, sides, {k: fresh(k) for k in SIDES}, result, progress).run_all()
    finally:
        for side in sides.values():
            side.close()


def copy_store(src: Path, dst: Path) -> None:
    remove_store(dst)
    shutil.copyfile(src, dst)
    wal = src.with_name(src.name + ".wal")
    if wal.exists():
        shutil.copyfile(wal, dst.with_name(dst.name + ".wal"))


def run_peer(config: PeerConfig, work: Path, progress: Callable[[str], None] = lambda _m: None) -> PeerResult:
    """The whole peer benchmark; a :class:`PeerResult` with ``skipped`` set when PostgreSQL is unavailable."""
    from benchmarks import postgres_peer

    started = time.perf_counter()
    result = PeerResult()
    try:
        postgres_peer.check_driver()
        bindir = postgres_peer.bin_dir()
        progress(f"peer: starting a throwaway PostgreSQL cluster ({bindir}) ...")
        with postgres_peer.Cluster(bindir) as pg:
            result.setup["postgres"] = pg.version
            result.setup["cluster_dir"] = str(pg.root)  # removed afterwards
            result.setup.update(pg.settings("fsync", "synchronous_commit", "shared_buffers", "work_mem", "jit"))
            data = generate(config.main_segments, config.other_flows, config.other_segments)
            run_scenarios(config, data, work, pg, result, progress)
    except postgres_peer.PeerUnavailable as exc:
        result.skipped = str(exc)
    result.seconds = time.perf_counter() - started
    return result
