"""Continuous capacity runs (``bench --only capacity --capacity-continuous 400:10``): one rate held for minutes, on a
young store and on aged ones (``--capacity-store young,8M``), the server as a user starts it.

Each line is one store at one rate: a fresh store (``young``: 1,600 flows with ``history`` segments each, built new;
an aged one: a copy of the cached store, :mod:`benchmarks.aged`), ``tams-analytics serve`` on it with its default
settings (the access log on, written to a file beside the store), a warm-up round (every flow once), then the rate for
the minutes asked, open loop (:mod:`benchmarks.openloop`: scheduled in 5-s parts back to back, latencies from the
scheduled times). Meanwhile a sampler scrapes the server's ``/metrics`` and reads the resident set size of each of its
processes (supervisor, store process, HTTP processes) every few seconds. Then the restart cases that resume the
capacity store's flows (``--capacity-resume RATE``), and the store check: every acknowledged segment in the store, no
two segments of a flow overlapping.

A line reports POSTs offered and achieved, POST p50/p99/max and how many took over 250 ms, edge-read p50/p99/max, the
slowest 5-s windows (their POST p99, when, and each server process's CPU around them), the DuckDB checkpoints seen
(``tams_store_checkpoint_seconds``: when, how long each held the writer, and what the store process wrote to disk in
the sample that saw it), the journal's syncs over 50 and 250 ms (``tams_journal_sync_seconds``: when), its applier's
rounds (``tams_journal_apply_seconds``: how many, how long on average, the share of the line), what the store process
wrote a minute (``write_bytes``: journal, WAL and checkpoints; what ingest costs the disk), each process's CPU and its
RSS at the start, at minute 5 (or halfway, for a run under ten minutes) and at the end, and the machine's load.
Before the line and after it, the disk alone at the line's rate (:mod:`benchmarks.disk_floor`): the journal's write and
sync with no server, the floor the volume sets under every journaled POST (a shared disk's changes from minute to
minute). A line is *held*
when at least 97 % of the offered rate is achieved, POST p99 <= 50 ms, no POST over 250 ms, edge p99 <= 20 ms and
nothing is lost or overlaps.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from benchmarks import disk_floor, live_ingest, trace
from benchmarks.disk_floor import DiskFloor
from benchmarks.live import LiveServer, server_role
from benchmarks.openloop import POST, READ, OpenLoop, Record
from benchmarks.profile_summary import gil_shares, parse

if TYPE_CHECKING:
    from benchmarks.capacity import CapacityConfig, Progress, ResumeResult

#: a POST slower than this is counted (the issue's line: none over 250 ms)
SLOW_POST_MS = 250.0
#: the slowest windows a line reports
SLOW_WINDOWS = 5
#: the RSS mark after the start: minute 5 (or halfway through a shorter run)
RSS_MARK_S = 300.0


@dataclass
class Checkpoint:
    """A DuckDB checkpoint the store process timed (``tams_store_checkpoint_seconds``), seen between two scrapes."""

    #: seconds from the line's start to the scrape that saw it
    at_s: float
    ms: float
    #: checkpoints between the two scrapes (ms is their mean when more than one)
    count: int = 1
    #: MiB the store process wrote between the two scrapes (the checkpoint's writes and the ingest's of those seconds)
    written_mb: float = math.nan


@dataclass
class SlowSyncs:
    """The journal's records that took long to write and sync (``tams_journal_sync_seconds``), seen between two
    scrapes."""

    #: seconds from the line's start to the scrape that saw them
    at_s: float
    over_50ms: int
    over_250ms: int
    #: MiB the store process wrote between the two scrapes
    written_mb: float = math.nan


@dataclass
class Window:
    """One of a line's slowest 5-s windows (by scheduled time): its POSTs' p99 and max, how many took over 250 ms,
    and each server process's CPU around it (a share of one core, over the samples that span it)."""

    at_s: float
    p99_ms: float
    max_ms: float
    slow_posts: int
    cpu: dict[str, float] = field(default_factory=dict)
    #: milliseconds each server process spent in Python's garbage collector around it (``store``, ``http``: all the
    #: HTTP processes together), every thread of that process waiting
    gc_ms: dict[str, float] = field(default_factory=dict)


@dataclass
class GcPauses:
    """The pauses of Python's garbage collector in one of the server's processes (``tams_python_gc_pause_seconds``):
    since it started in a sample, over a line or a window once :meth:`since` an earlier one."""

    collections: int
    ms: float
    over_10ms: int
    over_25ms: int

    def since(self, earlier: GcPauses) -> GcPauses:
        """The pauses between ``earlier`` and these."""
        return GcPauses(
            self.collections - earlier.collections,
            self.ms - earlier.ms,
            self.over_10ms - earlier.over_10ms,
            self.over_25ms - earlier.over_25ms,
        )


#: the fields of a line its JSON gives as lists or objects of their own
_LISTED = (
    "checkpoints",
    "slow_syncs",
    "slow_windows",
    "resumes",
    "rss_mb",
    "held_mb",
    "cache_entries",
    "gc",
    "disk_floor",
    "disk_floor_after",
)


@dataclass
class ContinuousLine:
    store: str
    rate: float
    minutes: float
    #: segments in the store when the line started, and the seconds it took to make (a copy, or a build)
    store_segments: int
    store_s: float
    offered: int
    posts: int
    ok: int
    errors: int
    achieved: float
    post_p50_ms: float
    post_p99_ms: float
    post_max_ms: float
    slow_posts: int
    reads: int
    read_errors: int
    edge_p50_ms: float
    edge_p99_ms: float
    edge_max_ms: float
    #: the 5-s window (by scheduled time) with the highest POST p99: that p99, its max, and its start from the line's
    slowest_window_p99_ms: float
    slowest_window_max_ms: float
    slowest_window_at_s: float
    #: the generator's lateness (p99, max) and CPU (share of one core): it must not be what is measured
    lag_p99_ms: float
    lag_max_ms: float
    client_cpu: float
    checkpoints: list[Checkpoint] = field(default_factory=list)
    #: records the journal wrote and synced over the line (0: no journal), and the samples that saw slow ones
    journal_syncs: int = 0
    slow_syncs: list[SlowSyncs] = field(default_factory=list)
    #: rounds of the journal's applier over the line, and the share of the line it spent applying them (the writes
    #: share the cores with it: on two cores a batch beside a round took about twice as long)
    journal_applies: int = 0
    journal_apply_share: float = math.nan
    journal_apply_mean_ms: float = math.nan
    #: the slowest windows, slowest first, and each server process's CPU over the line (a share of one core)
    slow_windows: list[Window] = field(default_factory=list)
    cpu: dict[str, float] = field(default_factory=dict)
    #: the journal's write and sync alone at the line's rate, just before it and just after it (None: not measured)
    disk_floor: DiskFloor | None = None
    disk_floor_after: DiskFloor | None = None
    #: process -> RSS MiB at the start, at the mark (``rss_mark_s``) and at the end
    rss_mb: dict[str, tuple[float, float, float]] = field(default_factory=dict)
    rss_mark_s: float = 0.0
    #: what the store process holds beside the interpreter (``duckdb``: DuckDB's memory, all tags; ``arrow``: Arrow's
    #: live buffers; ``known ids``: the read cache's sets of stored ids), MiB at the start, the mark and the end, as
    #: its ``/metrics`` said
    held_mb: dict[str, tuple[float, float, float]] = field(default_factory=dict)
    #: the read cache's entries by part (``tams_read_cache_entries``), at the same three samples: its bounds are
    #: entries, not bytes, and a cache that fills is growth that stops
    cache_entries: dict[str, tuple[float, float, float]] = field(default_factory=dict)
    #: each server process's pauses for Python's garbage collector over the line (``store``, ``http``)
    gc: dict[str, GcPauses] = field(default_factory=dict)
    #: with ``--capacity-profile``: each thread's share of the line it held Python's GIL, by process role and thread
    #: name (``store: tams-segment-writer``), most first (:func:`benchmarks.profile_summary.gil_shares`)
    gil_share: dict[str, float] = field(default_factory=dict)
    #: MiB the store process wrote to disk a minute over the line (``/proc/PID/io`` ``write_bytes``)
    store_written_mb_per_min: float = math.nan
    #: 1-minute load average at the start and at the end
    load_start: float = math.nan
    load_end: float = math.nan
    resumes: list[ResumeResult] = field(default_factory=list)
    lost: int = -1
    overlaps: int = -1
    held: bool = False

    @property
    def rss_growth(self) -> dict[str, float]:
        """Each process's RSS growth from the mark to the end, a share (0.05: 5 %)."""
        return {p: (end - mark) / mark if mark else math.nan for p, (_s, mark, end) in self.rss_mb.items()}

    @property
    def checkpoint_max_ms(self) -> float:
        return max((c.ms for c in self.checkpoints), default=0.0)

    def json(self) -> dict[str, Any]:
        out = {k: v for k, v in vars(self).items() if k not in _LISTED}
        out["checkpoints"] = [vars(c) for c in self.checkpoints]
        out["slow_syncs"] = [vars(c) for c in self.slow_syncs]
        out["slow_windows"] = [vars(w) for w in self.slow_windows]
        for name in ("disk_floor", "disk_floor_after"):
            floor = getattr(self, name)
            out[name] = floor.json() if floor is not None else None
        out["checkpoint_count"] = sum(c.count for c in self.checkpoints)
        out["rss_mb"] = {p: {"start": s, "mark": m, "end": e} for p, (s, m, e) in self.rss_mb.items()}
        out["rss_growth_pct"] = {p: 100 * g for p, g in self.rss_growth.items()}
        out["held_mb"] = {p: {"start": s, "mark": m, "end": e} for p, (s, m, e) in self.held_mb.items()}
        out["cache_entries"] = {p: {"start": s, "mark": m, "end": e} for p, (s, m, e) in self.cache_entries.items()}
        out["resume"] = [vars(r) for r in self.resumes]
        out["gc"] = {p: vars(g) for p, g in self.gc.items()}
        return out


# -- the sampler ----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Sample:
    """One reading of the server: counters as they stood at ``at`` (a ``perf_counter`` time)."""

    at: float
    #: RSS MiB and CPU seconds used, by process
    rss: dict[str, float]
    cpu: dict[str, float]
    #: MiB the store process has written to disk
    written_mb: float
    #: checkpoints so far, and the seconds they took (NaN: not read)
    checkpoints: float
    checkpoint_s: float
    #: journal records synced so far, and of them those over 50 ms and over 250 ms
    syncs: float
    syncs_over_50ms: float
    syncs_over_250ms: float
    #: rounds of the journal's applier so far, and the seconds they took (0: no journal, or not told)
    applies: float = 0.0
    apply_s: float = 0.0
    #: MiB the store process holds beside the interpreter, by part (``duckdb``, ``arrow``, ``known ids``; absent: not
    #: told)
    held: dict[str, float] = field(default_factory=dict)
    #: the read cache's entries by part
    entries: dict[str, float] = field(default_factory=dict)
    #: by process (``store``, ``http``): its garbage collector's pauses so far (:func:`gc_pauses`)
    gc: dict[str, GcPauses] = field(default_factory=dict)


class Sampler:
    """Every ``every_s`` in a thread: the RSS and CPU of each of the server's processes, the bytes its store process
    has written to disk, its checkpoint counter and its journal's syncs (all, over 50 ms, over 250 ms)."""

    def __init__(self, server: LiveServer, every_s: float) -> None:
        self.server = server
        self.every_s = every_s
        self.samples: list[Sample] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-sampler", daemon=True)

    def __enter__(self) -> Sampler:
        self.sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            self.sample()

    def sample(self) -> None:
        from benchmarks.capacity import parse_metrics

        rss, written, cpu = process_stats(self.server.pid)
        try:
            metrics = parse_metrics(httpx.get(f"{self.server.base_url}/metrics", timeout=10.0).text)
        except httpx.HTTPError:
            metrics = {}
        syncs = metrics.get(("tams_journal_sync_seconds_count", ()), 0.0)
        within = [metrics.get(("tams_journal_sync_seconds_bucket", (("le", le),)), syncs) for le in ("0.05", "0.25")]
        self.samples.append(
            Sample(
                at=time.perf_counter(),
                rss=rss,
                cpu=cpu,
                written_mb=written,
                checkpoints=metrics.get(("tams_store_checkpoint_seconds_count", ()), math.nan),
                checkpoint_s=metrics.get(("tams_store_checkpoint_seconds_sum", ()), math.nan),
                syncs=syncs,
                syncs_over_50ms=syncs - within[0],
                syncs_over_250ms=syncs - within[1],
                applies=metrics.get(("tams_journal_apply_seconds_count", ()), 0.0),
                apply_s=metrics.get(("tams_journal_apply_seconds_sum", ()), 0.0),
                held=held_memory(metrics),
                entries={
                    dict(labels)["cache"]: v for (n, labels), v in metrics.items() if n == "tams_read_cache_entries"
                },
                gc=gc_pauses(metrics),
            )
        )

    def _pairs(self, start: float) -> list[tuple[Sample, Sample]]:
        """Consecutive samples, the later one taken from ``start`` (a ``perf_counter`` time) on."""
        return [(a, b) for a, b in zip(self.samples, self.samples[1:], strict=False) if b.at >= start]

    def _since(self, start: float) -> list[Sample]:
        """The samples from the last one before ``start`` (one period before it at most) to the end."""
        return [s for s in self.samples if s.at >= start - self.every_s]

    def journal(self, start: float) -> tuple[int, list[SlowSyncs]]:
        """The journal's syncs from ``start`` (a ``perf_counter`` time), and the samples that saw slow ones."""
        slow = [
            SlowSyncs(
                round(b.at - start, 1),
                round(b.syncs_over_50ms - a.syncs_over_50ms),
                round(b.syncs_over_250ms - a.syncs_over_250ms),
                b.written_mb - a.written_mb,
            )
            for a, b in self._pairs(start)
            if b.syncs_over_50ms > a.syncs_over_50ms
        ]
        after = self._since(start)
        return (round(after[-1].syncs - after[0].syncs) if len(after) > 1 else 0), slow

    def checkpoints(self, start: float) -> list[Checkpoint]:
        """The checkpoints between consecutive samples (from ``start``, a ``perf_counter`` time)."""
        out = []
        for a, b in self._pairs(start):
            n = round(b.checkpoints - a.checkpoints) if math.isfinite(b.checkpoints - a.checkpoints) else 0
            if n > 0:
                ms = 1000 * (b.checkpoint_s - a.checkpoint_s) / n
                out.append(Checkpoint(round(b.at - start, 1), ms, n, b.written_mb - a.written_mb))
        return out

    def cpu_around(self, start: float, at_s: float, length_s: float) -> dict[str, float]:
        """Each process's CPU (a share of one core) over the samples around ``at_s`` .. ``at_s + length_s`` from
        ``start``: from the last sample before it to the first after."""
        first, last = self._around(start, at_s, length_s)
        if first is None or last is None:
            return {}
        seconds = last.at - first.at
        return {p: (last.cpu[p] - first.cpu[p]) / seconds for p in last.cpu if p in first.cpu}

    def _around(self, start: float, at_s: float, length_s: float) -> tuple[Sample | None, Sample | None]:
        """The last sample before ``at_s`` from ``start`` and the first after ``at_s + length_s`` (None, None: no
        two such samples)."""
        times = [s.at - start for s in self.samples]
        before = max((i for i, t in enumerate(times) if t <= at_s), default=0)
        after = min((i for i, t in enumerate(times) if t >= at_s + length_s), default=len(times) - 1)
        if after <= before:
            return None, None
        return self.samples[before], self.samples[after]

    def gc_around(self, start: float, at_s: float, length_s: float) -> dict[str, float]:
        """Each process's milliseconds in Python's garbage collector over the samples around ``at_s`` ..
        ``at_s + length_s`` from ``start`` (as :meth:`cpu_around`)."""
        first, last = self._around(start, at_s, length_s)
        if first is None or last is None:
            return {}
        return {p: last.gc[p].since(first.gc[p]).ms for p in _processes(last.gc) if p in first.gc}

    def gc_over(self, start: float) -> dict[str, GcPauses]:
        """Each process's garbage collector's pauses from ``start`` (a ``perf_counter`` time) to the last sample."""
        after = self._since(start)
        if len(after) < 2:
            return {}
        first, last = after[0].gc, after[-1].gc
        return {p: last[p].since(first[p]) for p in _processes(last) if p in first}

    def applier(self, start: float) -> tuple[int, float, float]:
        """The journal's applier from ``start`` (a ``perf_counter`` time) to the last sample: its rounds, the share of
        that time it spent applying them, and a round's mean milliseconds."""
        after = self._since(start)
        if len(after) < 2 or after[-1].at <= after[0].at:
            return 0, math.nan, math.nan
        first, last = after[0], after[-1]
        rounds, seconds = last.applies - first.applies, last.apply_s - first.apply_s
        return round(rounds), seconds / (last.at - first.at), 1e3 * seconds / rounds if rounds else math.nan

    def written_per_min(self, start: float) -> float:
        """MiB the store process wrote a minute from ``start`` to the last sample (NaN when it could not be read)."""
        after = self._since(start)
        if len(after) < 2 or after[-1].at <= after[0].at:
            return math.nan
        return 60 * (after[-1].written_mb - after[0].written_mb) / (after[-1].at - after[0].at)

    def rss(self, start: float, mark_s: float) -> tuple[dict[str, tuple[float, float, float]], float]:
        """Each process's RSS at ``start``, at ``mark_s`` after it (the sample nearest) and at the end; and the mark's
        actual offset."""
        return self.at_marks(start, mark_s, "rss"), self._marks(start, mark_s)[1].at - start

    def at_marks(self, start: float, mark_s: float, reading: str) -> dict[str, tuple[float, float, float]]:
        """One of the samples' readings by part (``rss``, ``held``: :func:`held_memory`, ``entries``: the read
        cache's), at ``start``, at ``mark_s`` after it (the sample nearest) and at the end; the parts all three have."""
        first, mark, last = (getattr(s, reading) for s in self._marks(start, mark_s))
        return {p: (first[p], mark[p], last[p]) for p in first if p in mark and p in last}

    def _marks(self, start: float, mark_s: float) -> tuple[Sample, Sample, Sample]:
        after = self._since(start) or self.samples
        return after[0], min(after, key=lambda s: abs(s.at - start - mark_s)), after[-1]


def gc_pauses(
    metrics: dict[tuple[str, tuple[tuple[str, str], ...]], float],
) -> dict[str, GcPauses]:
    """By process (``store``, ``http``, ``server``): its garbage collector's pauses so far, every generation together
    (``tams_python_gc_pause_seconds``)."""
    out: dict[str, list[float]] = {}
    for (name, labels), value in metrics.items():
        if not name.startswith("tams_python_gc_pause_seconds_"):
            continue
        told = dict(labels)
        totals = out.setdefault(told.get("process", "?"), [0.0, 0.0, 0.0, 0.0])
        if name.endswith("_count"):
            totals[0] += value
            totals[2] += value  # less those within 10 ms, below
            totals[3] += value
        elif name.endswith("_sum"):
            totals[1] += value
        elif name.endswith("_bucket") and told.get("le") == "0.01":
            totals[2] -= value
        elif name.endswith("_bucket") and told.get("le") == "0.025":
            totals[3] -= value
    return {p: GcPauses(round(t[0]), 1000 * t[1], round(t[2]), round(t[3])) for p, t in out.items()}


def held_memory(metrics: dict[tuple[str, tuple[tuple[str, str], ...]], float]) -> dict[str, float]:
    """MiB the store process said it holds beside the interpreter: DuckDB's memory (``tams_store_memory_bytes``, all
    its tags), Arrow's live buffers (``tams_arrow_memory_bytes``) and the read cache's sets of known ids
    (``tams_read_cache_ids_bytes``); a part it did not tell is left out.

    >>> held_memory({("tams_store_memory_bytes", (("part", "base_table"),)): 3 * 2**20,
    ...              ("tams_store_memory_bytes", (("part", "metadata"),)): 2**20,
    ...              ("tams_read_cache_ids_bytes", (("table", "objects"),)): 2**19})
    {'duckdb': 4.0, 'known ids': 0.5}
    """
    out: dict[str, float] = {}
    parts = (("duckdb", "tams_store_memory_bytes"), ("arrow", "tams_arrow_memory_bytes"))
    for part, name in (*parts, ("known ids", "tams_read_cache_ids_bytes")):
        told = [v for (n, _labels), v in metrics.items() if n == name]
        if told:
            out[part] = sum(told) / 2**20
    return out


def process_stats(pid: int) -> tuple[dict[str, float], float, dict[str, float]]:
    """RSS MiB of ``serve`` (``supervisor``, or ``server`` when it serves alone) and each child: ``store``,
    ``http-1``, ``http-2``, ... (by process id); the MiB the process that holds the store (the store process, or
    the lone server) has written to disk since it started (NaN if unreadable); and the CPU seconds each has used."""
    import psutil

    out: dict[str, float] = {}
    cpu: dict[str, float] = {}
    written = math.nan

    def used(process: psutil.Process) -> float:
        times = process.cpu_times()
        return float(times.user + times.system)

    try:
        top = psutil.Process(pid)
        children = sorted(top.children(recursive=True), key=lambda p: p.pid)
        name = "supervisor" if children else "server"
        out[name], cpu[name] = top.memory_info().rss / 2**20, used(top)
        if not children:
            written = top.io_counters().write_bytes / 2**20
        http = 0
        for child in children:
            role = server_role(" ".join(child.cmdline()))
            if role == "store":
                out["store"], cpu["store"] = child.memory_info().rss / 2**20, used(child)
                written = child.io_counters().write_bytes / 2**20
            elif role == "http":
                http += 1
                out[f"http-{http}"], cpu[f"http-{http}"] = child.memory_info().rss / 2**20, used(child)
    except psutil.Error:
        pass
    return out, written, cpu


def run_continuous(config: CapacityConfig, work: Path, progress: Progress) -> list[ContinuousLine]:
    """Every line of ``config.continuous`` (rate, minutes, store) on its store, or on every store of
    ``config.stores`` side by side, in order."""
    lines = []
    for n, (rate, minutes, named) in enumerate(config.continuous):
        for store in (named,) if named else config.stores:
            data_dir = work / f"continuous-{n}-{store}-{rate:g}"
            lines.append(_line(config, store, rate, minutes, data_dir, progress))
    return lines


def _prepare(
    config: CapacityConfig, store: str, data_dir: Path, progress: Progress
) -> tuple[str, list[str], int, float]:
    """The line's store: its URL, flows, segments and the seconds it took to make."""
    from benchmarks import aged
    from benchmarks.capacity import _store

    started = time.perf_counter()
    if store == "young":
        url, flows = _store(data_dir, config.flows, config.history, progress)
        return url, flows, config.flows * config.history, time.perf_counter() - started
    cached = aged.cached(store, flows=config.flows, directory=config.store_cache, progress=progress)
    progress(f"capacity: copying the aged store {store} ({cached.path.stat().st_size / 2**30:.2f} GiB) ...")
    url, copy_s = cached.copy_to(data_dir)
    return url, cached.flows, cached.segments, copy_s


def _line(
    config: CapacityConfig, store: str, rate: float, minutes: float, data_dir: Path, progress: Progress
) -> ContinuousLine:
    from benchmarks.capacity import _lost_before, _serve

    url, flows, segments, store_s = _prepare(config, store, data_dir, progress)
    floor = _disk_floor(config, rate, data_dir, progress)
    with contextlib.ExitStack() as traced:
        if config.trace_dir is not None:
            config.trace_dir.mkdir(parents=True, exist_ok=True)
            traced.enter_context(trace.ThreadSampler(config.trace_dir / f"{data_dir.name}.threads.jsonl"))
        server = _serve(config, url, data_dir)
        try:
            line, server, acknowledged, befores = asyncio.run(
                _drive(config, server, url, data_dir, flows, store, rate, minutes, progress)
            )
        finally:
            server.stop()
    line.store_segments, line.store_s, line.disk_floor = segments, store_s, floor
    line.disk_floor_after = _disk_floor(config, rate, data_dir, progress)
    progress(f"capacity: checking the store {store} (every acknowledged segment, no overlaps) ...")
    line.lost, line.overlaps = live_ingest.verify(url, acknowledged)
    _lost_before(url, line.resumes, befores)
    line.held = (
        line.achieved >= config.held_share * rate
        and line.post_p99_ms <= config.post_p99_ms
        and line.post_max_ms <= SLOW_POST_MS
        and line.edge_p99_ms <= config.edge_p99_ms
        and line.lost == 0
        and line.overlaps == 0
        and line.errors == 0
    )
    return line


def _disk_floor(config: CapacityConfig, rate: float, data_dir: Path, progress: Progress) -> DiskFloor | None:
    """The journal's write and sync alone at ``rate`` on the volume of ``data_dir`` (None: not asked for)."""
    if config.disk_floor_s <= 0:
        return None
    progress(f"capacity: the disk alone, the journal's syncs at {rate:g}/s for {config.disk_floor_s:g} s ...")
    return disk_floor.measure(data_dir / "disk-floor.journal", rate, config.disk_floor_s)


async def _drive(
    config: CapacityConfig,
    server: LiveServer,
    url: str,
    data_dir: Path,
    flows: list[str],
    store: str,
    rate: float,
    minutes: float,
    progress: Progress,
) -> tuple[ContinuousLine, LiveServer, dict[str, list[tuple[str, str]]], dict[int, dict[str, list[tuple[str, str]]]]]:
    from benchmarks.capacity import _generator, _profile, _restart, profile_file

    gen = _generator(config, server, flows)
    await gen.start()
    progress(f"capacity: {store}: warm-up, every flow once at {config.warmup_rate:g} POSTs/s ...")
    await gen.schedule("warmup", config.warmup_rate, len(flows) / config.warmup_rate, read_share=config.read_share)
    await gen.drain(config.drain_s)
    seconds = 60.0 * minutes
    tag = f"continuous-{store}-{rate:g}"
    progress(f"capacity: {store}: {rate:g} POSTs/s for {minutes:g} min ...")
    load_start = os.getloadavg()[0]
    part = min(config.window_s, seconds)
    with Sampler(server, config.sample_s) as sampler:
        # with --capacity-profile: where each thread's time goes, and which holds the GIL (one py-spy each)
        profilers = [_profile(config.profile_dir, server.pid, f"{tag}{k}", seconds, gil=bool(k)) for k in ("", "-gil")]
        cpu0 = time.process_time()
        start = due = time.perf_counter()
        while due < start + seconds - 1e-9:
            length = min(part, start + seconds - due)
            await gen.schedule(tag, rate, length, read_share=config.read_share, start=due)
            due += length
        cpu1 = time.process_time()
        await gen.drain(config.drain_s)
        for profiler in profilers:
            if profiler is not None:
                await asyncio.to_thread(profiler.wait)
    line = _measure(gen, tag, store, rate, minutes, start, config.window_s)
    line.client_cpu = (cpu1 - cpu0) / max(1e-9, seconds)
    line.checkpoints = sampler.checkpoints(start)
    line.journal_syncs, line.slow_syncs = sampler.journal(start)
    line.journal_applies, line.journal_apply_share, line.journal_apply_mean_ms = sampler.applier(start)
    line.cpu = sampler.cpu_around(start, 0.0, seconds)
    for window in line.slow_windows:
        window.cpu = sampler.cpu_around(start, window.at_s, config.window_s)
        window.gc_ms = sampler.gc_around(start, window.at_s, config.window_s)
    line.gc = sampler.gc_over(start)
    line.store_written_mb_per_min = sampler.written_per_min(start)
    line.rss_mb, line.rss_mark_s = sampler.rss(start, min(RSS_MARK_S, seconds / 2))
    line.held_mb = sampler.at_marks(start, min(RSS_MARK_S, seconds / 2), "held")
    line.cache_entries = sampler.at_marks(start, min(RSS_MARK_S, seconds / 2), "entries")
    line.load_start, line.load_end = load_start, os.getloadavg()[0]
    held_gil = profile_file(config.profile_dir, f"{tag}-gil") if config.profile_dir is not None else None
    if held_gil is not None and held_gil.is_file():
        with held_gil.open() as f:
            line.gil_share = gil_shares(parse(f), seconds)
    befores: dict[int, dict[str, list[tuple[str, str]]]] = {}
    for case in config.resume:
        if case.history is not None:
            continue
        for how in ("SIGTERM", "SIGKILL"):
            position = len(line.resumes)
            server, befores[position] = await _restart(
                config, gen, server, url, data_dir, case, how, line.resumes, progress
            )
            line.resumes[-1].case = f"{store} after {rate:g}/s x {minutes:g} min: {line.resumes[-1].case}"
    await gen.stop()
    if config.trace_dir is not None:
        trace.write_requests(config.trace_dir / f"{data_dir.name}.requests.jsonl", gen.records)
    return line, server, gen.acknowledged, befores


def _processes(parts: Iterable[str]) -> list[str]:
    """The processes ``parts`` names, the store process first, then the others by name (the order each line's
    report gives them in, whichever process's scrape came first).

    >>> _processes(["http-2", "store", "http-1"])
    ['store', 'http-1', 'http-2']
    """
    return sorted(parts, key=lambda p: (p != "store", p))


def _measure(
    gen: OpenLoop, tag: str, store: str, rate: float, minutes: float, start: float, window_s: float
) -> ContinuousLine:
    from benchmarks.capacity import _ms, _quantile

    posts, reads = gen.tagged(tag, POST), gen.tagged(tag, READ)
    ok = [r for r in posts if r.status == 201]
    seconds = 60.0 * minutes
    last = max((r.done for r in posts), default=start)
    span = max(seconds, last - start)
    lags = [r.dispatched - r.due for r in posts + reads]
    windows: dict[int, list[Record]] = {}
    for r in posts:
        windows.setdefault(int((r.due - start) // window_s), []).append(r)
    ranked = sorted(
        (
            Window(
                w * window_s,
                _ms(records, 0.99),
                _ms(records, 1.0),
                sum(1 for r in records if r.done and 1000 * r.latency > SLOW_POST_MS),
            )
            for w, records in windows.items()
        ),
        key=lambda w: -w.p99_ms,
    )
    worst = ranked[0] if ranked else Window(0.0, 0.0, 0.0, 0)
    line = ContinuousLine(
        store=store,
        rate=rate,
        minutes=minutes,
        store_segments=0,
        store_s=0.0,
        offered=len(posts),
        posts=len(posts),
        ok=len(ok),
        errors=len(posts) - len(ok),
        achieved=len(ok) / span,
        post_p50_ms=_ms(posts, 0.5),
        post_p99_ms=_ms(posts, 0.99),
        post_max_ms=_ms(posts, 1.0),
        slow_posts=sum(1 for r in posts if r.done and 1000 * r.latency > SLOW_POST_MS),
        reads=len(reads),
        read_errors=sum(1 for r in reads if r.status != 200),
        edge_p50_ms=_ms(reads, 0.5),
        edge_p99_ms=_ms(reads, 0.99),
        edge_max_ms=_ms(reads, 1.0),
        slowest_window_p99_ms=worst.p99_ms,
        slowest_window_max_ms=worst.max_ms,
        slowest_window_at_s=worst.at_s,
        lag_p99_ms=1000 * _quantile(lags, 0.99),
        lag_max_ms=1000 * max(lags, default=0.0),
        client_cpu=0.0,
    )
    line.slow_windows = ranked[:SLOW_WINDOWS]
    return line


# -- report -------------------------------------------------------------------------------------------------------
def format_continuous(lines: list[ContinuousLine], window_s: float = 5.0) -> list[str]:
    """The continuous lines: one row each, then each line's checkpoints, RSS and restarts."""
    from benchmarks.capacity import _f
    from benchmarks.text_table import text_table

    if not lines:
        return []
    rows: list[tuple[str, ...]] = [
        (
            "store",
            "rate/s x min",
            "achieved/s",
            "POST p50",
            "p99",
            "max",
            ">250ms",
            "edge p50",
            "p99",
            "max",
            f"slowest {window_s:g} s (p99/max @ s)",
            "checkpoints (max ms)",
            "errors",
            "lost/overlaps",
            "load",
            "held",
        )
    ]
    for line in lines:
        rows.append(
            (
                f"{line.store} ({line.store_segments:,})",
                f"{line.rate:g} x {line.minutes:g}",
                _f(line.achieved),
                _f(line.post_p50_ms),
                _f(line.post_p99_ms),
                _f(line.post_max_ms, 0),
                str(line.slow_posts),
                _f(line.edge_p50_ms),
                _f(line.edge_p99_ms),
                _f(line.edge_max_ms, 0),
                f"{_f(line.slowest_window_p99_ms)}/{_f(line.slowest_window_max_ms, 0)} @ {line.slowest_window_at_s:g}",
                f"{sum(c.count for c in line.checkpoints)} ({_f(line.checkpoint_max_ms, 0)})",
                f"{line.errors}/{line.read_errors}",
                f"{line.lost}/{line.overlaps}",
                f"{line.load_start:.1f}->{line.load_end:.1f}",
                "yes" if line.held else "NO",
            )
        )
    out = [text_table(rows)]
    for line in lines:
        head = f"  {line.store} at {line.rate:g}/s:"
        made = "built" if line.store == "young" else "copied"
        out.append(
            f"{head} store {made} in {line.store_s:.1f} s; client late p99/max {_f(line.lag_p99_ms)}/"
            f"{_f(line.lag_max_ms)} ms, client CPU {line.client_cpu:.0%}"
        )
        if line.checkpoints:
            seen = ", ".join(
                f"{c.ms:.0f} ms @ {c.at_s:g} s"
                + (f" (mean of {c.count})" if c.count > 1 else "")
                + (f", {c.written_mb:,.0f} MiB" if math.isfinite(c.written_mb) else "")
                for c in line.checkpoints
            )
            out.append(f"{head} checkpoints (ms @ s, MiB the store process wrote in that sample): {seen}")
        else:
            out.append(f"{head} no checkpoint")
        if line.slow_syncs:
            seen = ", ".join(
                f"{c.over_50ms}/{c.over_250ms} @ {c.at_s:g} s"
                + (f" ({c.written_mb:,.0f} MiB)" if math.isfinite(c.written_mb) else "")
                for c in line.slow_syncs
            )
            out.append(
                f"{head} journal syncs over 50/250 ms of {line.journal_syncs:,} (@ s, MiB the store process wrote in "
                f"that sample): {seen}"
            )
        elif line.journal_syncs:
            out.append(f"{head} {line.journal_syncs:,} journal syncs, none over 50 ms")
        if line.journal_applies:
            out.append(
                f"{head} the journal's applier: {line.journal_applies:,} rounds, {line.journal_apply_mean_ms:.0f} ms "
                f"each on average, {line.journal_apply_share:.0%} of the line"
            )
        for floor, when in ((line.disk_floor, "just before the line"), (line.disk_floor_after, "just after it")):
            if floor is not None:
                out.append(f"{head} {floor.describe()}, {when}")
        if line.cpu:
            out.append(f"{head} CPU (share of a core): " + ", ".join(f"{p} {c:.0%}" for p, c in line.cpu.items()))
        if line.slow_windows:
            out.append(
                f"{head} slowest windows (p99/max ms, POSTs over 250 ms, CPU around; ms in Python's garbage collector "
                "around): "
                + "; ".join(
                    f"@ {w.at_s:g} s {_f(w.p99_ms)}/{_f(w.max_ms, 0)}, {w.slow_posts} ("
                    + ", ".join(f"{p} {c:.0%}" for p, c in w.cpu.items())
                    + ("; GC " + ", ".join(f"{p} {ms:.0f}" for p, ms in w.gc_ms.items()) if w.gc_ms else "")
                    + ")"
                    for w in line.slow_windows
                )
            )
        if line.gc:
            out.append(
                f"{head} Python's garbage collector (collections, ms in all, over 10/25 ms): "
                + "; ".join(
                    f"{p} {g.collections:,}, {g.ms:,.0f} ms, {g.over_10ms}/{g.over_25ms}" for p, g in line.gc.items()
                )
            )
        if math.isfinite(line.store_written_mb_per_min):
            out.append(f"{head} the store process wrote {line.store_written_mb_per_min:,.0f} MiB a minute")
        mark = f"{line.rss_mark_s / 60:.1f} min" if line.rss_mark_s >= 60 else f"{line.rss_mark_s:.0f} s"
        rss = "; ".join(
            f"{p} {s:.0f}/{m:.0f}/{e:.0f} ({100 * line.rss_growth[p]:+.1f} %)" for p, (s, m, e) in line.rss_mb.items()
        )
        out.append(f"{head} RSS MiB start/{mark}/end (growth from {mark}): {rss}")
        if line.held_mb:
            held = "; ".join(f"{p} {s:.0f}/{m:.0f}/{e:.0f}" for p, (s, m, e) in line.held_mb.items())
            out.append(f"{head} the store process holds, MiB start/{mark}/end: {held}")
        if line.cache_entries:
            kept = "; ".join(f"{p} {s:,.0f}/{m:,.0f}/{e:,.0f}" for p, (s, m, e) in line.cache_entries.items())
            out.append(f"{head} the read cache's entries start/{mark}/end: {kept}")
        if line.gil_share:
            held = ", ".join(f"{t} {share:.1%}" for t, share in line.gil_share.items())
            out.append(f"{head} holding Python's GIL (py-spy --gil, share of the line, at least): {held}")
    return out
