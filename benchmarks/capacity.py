"""Capacity (``bench --only capacity``): the highest rate of single-segment POSTs the server holds, open
loop, as live recorders drive it; and how fast every flow resumes after a restart.

A real ``tams-analytics serve`` on 127.0.0.1 (a child process) serves a store of ``flows`` flows with
``history`` segments each; the load generator (:mod:`benchmarks.openloop`, asyncio, in this process)
schedules each flow's next POST on the clock, edge readers at a quarter of that rate. After a warm-up
round (every flow once), the offered rate goes up in steps; every step is drained (all its answers in)
before the next. A step is *held* when the achieved rate is at least 97 % of the offered one, POST p99 is
at most 50 ms and edge p99 at most 20 ms, all counted from the scheduled times; the capacity is the highest
held step. For each step the report also shows the generator's own lateness and CPU (it must not be the
bottleneck), the server's CPU (event loop, group-commit writer, the rest) and, from its ``/metrics``,
the group commit's batches and the store statements per batch.

Then the restart cases: under load, the server is stopped (SIGTERM, then in a second round SIGKILL),
started again on the same store and port, and every flow's POSTs resume at once on the clock: the first
POST of each flow is timed from its scheduled time (the report shows the generator's own lateness there too).
Afterwards every acknowledged segment must be in the store (those acknowledged before the SIGKILL too) and no two
segments of a flow may overlap.

With ``continuous`` (``--capacity-continuous 400:10``) the steps give way to lines of one rate held for minutes, on a
young store and on aged ones (``--capacity-store young,8M``): :mod:`benchmarks.continuous`. The server is always
``tams-analytics serve`` as a user starts it: its default settings (the access log on, to a file beside the store),
plus ``--capacity-env`` settings when asked.
"""

from __future__ import annotations

import asyncio
import math
import re
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from benchmarks import live_ingest
from benchmarks.live import LiveServer, server_role
from benchmarks.openloop import POST, READ, OpenLoop, Record
from benchmarks.profile_summary import SAMPLES_PER_S
from benchmarks.text_table import text_table

if TYPE_CHECKING:
    from benchmarks.continuous import ContinuousLine

Progress = Callable[[str], None]
#: each flow's acknowledged ``(object_id, timerange)``
Acknowledged = dict[str, list[tuple[str, str]]]


@dataclass(frozen=True)
class ResumeCase:
    """Flows (with ``history`` segments each) resuming at ``rate`` POSTs/s after a restart; ``history`` None:
    the capacity store itself, after its steps."""

    flows: int
    rate: float
    history: int | None = None

    @property
    def name(self) -> str:
        store = "the capacity store" if self.history is None else f"{self.flows} flows x {self.history}"
        return f"{store}, {self.rate:g}/s"


@dataclass(frozen=True)
class CapacityConfig:
    #: the issue's live workload: 1,600 flows at 2-s segments is 800 POSTs/s
    flows: int = 1600
    history: int = 100
    #: offered POSTs per second, in order
    steps: tuple[float, ...] = (200, 400, 600, 800, 1000)
    step_seconds: float = 10.0
    #: the warm-up before the steps: every flow once, at this rate
    warmup_rate: float = 100.0
    connections: int = 64
    reader_connections: int = 16
    #: edge reads per POST
    read_share: float = 0.25
    segment_s: float = 2.0
    #: how long a step's last answers are waited for; a step not drained by then ends the steps
    drain_s: float = 60.0
    #: "held": achieved >= this share of offered, POST and edge p99 within these
    held_share: float = 0.97
    post_p99_ms: float = 50.0
    edge_p99_ms: float = 20.0
    #: restart-and-resume cases (each with SIGTERM, then SIGKILL); empty: none
    resume: tuple[ResumeCase, ...] = (ResumeCase(1600, 800.0), ResumeCase(50, 100.0, history=100))
    #: seconds of load before each stop, and rounds of every flow after the restart
    resume_warm_s: float = 4.0
    resume_rounds: int = 2
    resume_p99_ms: float = 100.0
    #: extra environment of the server (``TAMS_*`` settings), e.g. for A/B runs
    server_env: tuple[tuple[str, str], ...] = ()
    #: py-spy profiles of the server, one per step (``py-spy record --threads --idle``, raw), here
    profile_dir: Path | None = None
    #: the cores the server's processes may run on (``taskset -c``, e.g. ``0`` or ``0,1``; None: any)
    server_cpus: str | None = None
    #: continuous lines, (POSTs/s, minutes, store or None: each of ``stores``) each, instead of the steps
    #: (:mod:`benchmarks.continuous`)
    continuous: tuple[tuple[float, float, str | None], ...] = ()
    #: the stores the continuous lines run on, side by side: ``young`` (``flows`` x ``history``, built new) or an aged
    #: store's size (``8M``, ``32M``: built once and cached, :mod:`benchmarks.aged`); the steps take the first
    stores: tuple[str, ...] = ("young",)
    #: where aged stores are cached (None: :func:`benchmarks.aged.cache_dir`)
    store_cache: Path | None = None
    #: seconds between the samples of the server's RSS and ``/metrics`` in a continuous line, and the windows whose
    #: POST p99 is compared (the slowest is reported)
    sample_s: float = 5.0
    window_s: float = 5.0
    #: seconds of the journal's write and sync alone at a continuous line's rate, just before it and just after it,
    #: on its store's volume (:mod:`benchmarks.disk_floor`; 0: not measured)
    disk_floor_s: float = 60.0
    #: each continuous line's requests and a 50-ms sample of the server's threads and the machine, here
    #: (:mod:`benchmarks.trace`; None: not traced)
    trace_dir: Path | None = None

    @classmethod
    def smoke(cls) -> CapacityConfig:
        """A few flows and short steps: checks the code path, not the speed."""
        return cls(
            flows=6,
            history=20,
            steps=(20.0, 40.0),
            step_seconds=0.6,
            warmup_rate=30.0,
            connections=4,
            reader_connections=2,
            resume=(ResumeCase(6, 20.0), ResumeCase(4, 20.0, history=10)),
            resume_warm_s=0.5,
            resume_rounds=1,
            sample_s=0.5,
            window_s=0.5,
            disk_floor_s=0.5,
        )


@dataclass
class StepResult:
    offered: float
    seconds: float
    posts: int
    ok: int
    errors: int
    reads: int
    read_errors: int
    achieved: float
    post_p50_ms: float
    post_p99_ms: float
    post_max_ms: float
    edge_p50_ms: float
    edge_p99_ms: float
    #: how late the generator handed requests to a connection (p99, max), and its CPU (share of one core)
    lag_p99_ms: float
    lag_max_ms: float
    client_cpu: float
    #: server CPU (shares of one core): all its processes' threads; the HTTP side (the HTTP processes, or in one
    #: process its event loop, the main thread) and the store side (the store process, or in one process the
    #: group-commit writer thread)
    server_cpu: float = math.nan
    loop_cpu: float = math.nan
    writer_cpu: float = math.nan
    #: server CPU ms (all threads) per acknowledged POST (edge reads included): efficiency, less noisy than latency
    cpu_ms_per_post: float = math.nan
    #: the store's write-ahead log at the end of the step (a drop since the step before: DuckDB checkpointed; the
    #: checkpoints themselves are in :attr:`writer`)
    wal_mb: float = math.nan
    writer: WriterStats | None = None
    drained: bool = True
    held: bool = False


@dataclass
class WriterStats:
    """The group commit over one step, from the server's ``/metrics``."""

    batches: int
    requests: int
    #: mean wall ms of a batch (``register_batch``)
    batch_ms: float
    #: ``statement table`` -> (statements per batch, mean ms each), statements that reached the store
    statements: dict[str, tuple[float, float]] = field(default_factory=dict)
    #: share of batches of at most 1, 2, 4, 8, ... requests
    size_buckets: dict[str, float] = field(default_factory=dict)
    #: commits that checkpointed the store (every POST waited for them), and their mean wall ms
    checkpoints: int = 0
    checkpoint_ms: float = 0.0

    @property
    def mean_size(self) -> float:
        return self.requests / self.batches if self.batches else 0.0


@dataclass
class ResumeResult:
    case: str
    how: str
    flows: int
    rate: float
    #: seconds from the signal to the old process's exit, and from then until the new one answered
    stop_s: float
    start_s: float
    first_p50_ms: float
    first_p99_ms: float
    first_max_ms: float
    all_p50_ms: float
    all_p99_ms: float
    errors: int
    #: POSTs cut short by the stop (in flight, or sent to the stopping server)
    cut: int = 0
    #: the generator's own lateness in scheduling the resume's requests, at worst (it must not be what is measured)
    lag_max_ms: float = 0.0
    #: segments acknowledged before the stop and missing afterwards (checked in the store at the end)
    lost: int = -1


@dataclass
class CapacityResult:
    config: CapacityConfig
    steps: list[StepResult]
    resumes: list[ResumeResult]
    lost: int
    overlaps: int
    setup_s: float
    errors: list[str] = field(default_factory=list)
    continuous: list[ContinuousLine] = field(default_factory=list)
    #: the steps' store, as the report names it
    store: str = ""

    @property
    def capacity(self) -> float:
        """The highest held step (0 when none was held)."""
        return max((s.offered for s in self.steps if s.held), default=0.0)

    @property
    def all_resumes(self) -> list[ResumeResult]:
        """The restart cases of the steps and of every continuous line."""
        return self.resumes + [r for line in self.continuous for r in line.resumes]

    @property
    def resume_p99_ms(self) -> float:
        """The worst first-POST p99 over the restart cases."""
        return max((r.first_p99_ms for r in self.all_resumes), default=0.0)

    def json(self) -> dict[str, Any]:
        c = self.config
        return {
            "server": server_description(c),
            "flows": c.flows,
            "steps": [{k: v for k, v in vars(s).items() if k != "writer"} | _writer_json(s.writer) for s in self.steps],
            "resume": [vars(r) for r in self.resumes],
            "continuous": [line.json() for line in self.continuous],
        }


def server_description(config: CapacityConfig) -> str:
    """How the server under test was started, for the report."""
    settings = ", ".join(f"{k}={v}" for k, v in config.server_env) or "none"
    pinned = f"; on cores {config.server_cpus}" if config.server_cpus else ""
    return (
        "tams-analytics serve as a user starts it: default settings and log level (the access log on, to a file "
        f"beside the store){pinned}; settings changed: {settings}"
    )


def _writer_json(w: WriterStats | None) -> dict[str, Any]:
    if w is None:
        return {}
    return {
        "batches": w.batches,
        "batch_mean_size": w.mean_size,
        "batch_ms": w.batch_ms,
        "statements_per_batch": {k: v[0] for k, v in w.statements.items()},
        "statement_ms": {k: v[1] for k, v in w.statements.items()},
        "checkpoints": w.checkpoints,
        "checkpoint_ms": w.checkpoint_ms,
    }


# -- the run ------------------------------------------------------------------------------------------------
def run_capacity(
    config: CapacityConfig,
    work: Path,
    progress: Progress = lambda _m: None,
    continuous: Callable[[CapacityConfig, Path, Progress], list[ContinuousLine]] | None = None,
) -> CapacityResult:
    """Build the stores, run the steps and the restart cases, check the store; see the module docstring. With
    ``config.continuous``, the continuous lines instead of the steps, run by ``continuous`` (the caller's
    :func:`benchmarks.continuous.run_continuous`: that module builds on this one), each followed by the restart cases
    that resume its store's flows."""
    started = time.perf_counter()
    result = CapacityResult(config, [], [], 0, 0, 0.0)
    if config.continuous:
        if continuous is None:
            raise ValueError("continuous capacity lines are run by benchmarks.continuous.run_continuous: pass it")
        result.continuous = continuous(config, work, progress)
        result.lost = sum(line.lost for line in result.continuous)
        result.overlaps = sum(line.overlaps for line in result.continuous)
    else:
        _steps_store(config, work, result, progress)
    result.setup_s = result.setup_s or time.perf_counter() - started
    for case in config.resume:
        if case.history is None:
            continue
        small_dir = work / f"resume-{case.flows}x{case.history}"
        small_url, small_flows = _store(small_dir, case.flows, case.history, progress)
        server = _serve(config, small_url, small_dir)
        try:
            server, ack, before, more_errors = asyncio.run(
                _resume_only(config, case, server, small_url, small_dir, small_flows, result.resumes, progress)
            )
            result.errors += more_errors
        finally:
            server.stop()
        small_lost, small_overlaps = live_ingest.verify(small_url, ack)
        result.lost += small_lost
        result.overlaps += small_overlaps
        _lost_before(small_url, result.resumes, before)
    return result


def _serve(config: CapacityConfig, url: str, data_dir: Path, port: int | None = None) -> LiveServer:
    """``serve`` on ``url`` as the configuration says (its settings, its cores; on ``port``, a restart's)."""
    return LiveServer(url, data_dir, env=dict(config.server_env), cpus=config.server_cpus, port=port)


def _steps_store(config: CapacityConfig, work: Path, result: CapacityResult, progress: Progress) -> None:
    """The steps, then the restart cases of the capacity store's flows, on the first of ``config.stores``; the store
    checked."""
    started = time.perf_counter()
    data_dir = work / "capacity"
    store = config.stores[0] if config.stores else "young"
    if store == "young":
        url, flows = _store(data_dir, config.flows, config.history, progress)
    else:
        from benchmarks import aged

        cached = aged.cached(store, flows=config.flows, directory=config.store_cache, progress=progress)
        url, _copy_s = cached.copy_to(data_dir)
        flows = cached.flows
        result.store = f"the aged store {store} ({cached.segments:,} segments over {len(flows)} flows)"
    result.setup_s = time.perf_counter() - started
    server = _serve(config, url, data_dir)
    try:
        server, acknowledged, befores, loop_errors = asyncio.run(
            _capacity_store(config, server, url, data_dir, flows, result.steps, result.resumes, progress)
        )
        result.errors += loop_errors
    finally:
        server.stop()
    progress("capacity: checking the store (every acknowledged segment, no overlaps) ...")
    result.lost, result.overlaps = live_ingest.verify(url, acknowledged)
    _lost_before(url, result.resumes, befores)


def _lost_before(url: str, resumes: list[ResumeResult], befores: dict[int, Acknowledged]) -> None:
    """Fill in, for each restart in ``befores`` (by position in ``resumes``), the segments acknowledged
    before its stop that the store does not hold."""
    for position, acknowledged in befores.items():
        resumes[position].lost = live_ingest.verify(url, acknowledged)[0]


def _store(data_dir: Path, flows: int, history: int, progress: Progress) -> tuple[str, list[str]]:
    """A new store of ``flows`` H.264 video flows with ``history`` segments each (through the library: the
    server then starts on it cold)."""
    from benchmarks.stores import video_flow
    from tams_analytics.catalog import connect

    if data_dir.exists():
        shutil.rmtree(data_dir)
    data_dir.mkdir(parents=True)
    url = f"duckdb:///{data_dir / 'tams.duckdb'}"
    progress(f"capacity: {flows} flows with {history:,} segments each ...")
    ids = []
    with connect(url, create=True) as catalog:
        for _ in range(flows):
            doc = video_flow()
            catalog.put_flow(doc)
            ids.append(doc["id"])
    if history:
        live_ingest.preload(url, ids, history)
    return url, ids


async def _capacity_store(
    config: CapacityConfig,
    server: LiveServer,
    url: str,
    data_dir: Path,
    flows: list[str],
    steps: list[StepResult],
    resumes: list[ResumeResult],
    progress: Progress,
) -> tuple[LiveServer, Acknowledged, dict[int, Acknowledged], list[str]]:
    gen = _generator(config, server, flows)
    await gen.start()
    rate = config.warmup_rate
    progress(f"capacity: warm-up, every flow once at {rate:g} POSTs/s ...")
    await gen.schedule("warmup", rate, len(flows) / rate, read_share=config.read_share)
    await gen.drain(config.drain_s)
    threads = thread_names(server.pid)
    for offered in config.steps:
        progress(f"capacity: {offered:g} POSTs/s offered for {config.step_seconds:g} s ...")
        step = await _step(config, gen, server, data_dir, offered, threads)
        steps.append(step)
        if not step.drained:
            progress(f"capacity: the answers of {offered:g}/s did not all come in {config.drain_s:g} s: steps end here")
            break
    befores: dict[int, Acknowledged] = {}
    for case in config.resume:
        if case.history is not None:
            continue
        for how in ("SIGTERM", "SIGKILL"):
            position = len(resumes)
            server, befores[position] = await _restart(config, gen, server, url, data_dir, case, how, resumes, progress)
    await gen.stop()
    return server, gen.acknowledged, befores, gen.errors


async def _resume_only(
    config: CapacityConfig,
    case: ResumeCase,
    server: LiveServer,
    url: str,
    data_dir: Path,
    flows: list[str],
    resumes: list[ResumeResult],
    progress: Progress,
) -> tuple[LiveServer, Acknowledged, dict[int, Acknowledged], list[str]]:
    gen = _generator(config, server, flows)
    await gen.start()
    befores: dict[int, Acknowledged] = {}
    for how in ("SIGTERM", "SIGKILL"):
        position = len(resumes)
        server, befores[position] = await _restart(config, gen, server, url, data_dir, case, how, resumes, progress)
    await gen.stop()
    return server, gen.acknowledged, befores, gen.errors


def _generator(config: CapacityConfig, server: LiveServer, flows: list[str]) -> OpenLoop:
    return OpenLoop(
        server.host,
        server.port,
        flows,
        connections=config.connections,
        reader_connections=config.reader_connections,
        segment_s=config.segment_s,
    )


async def _step(
    config: CapacityConfig, gen: OpenLoop, server: LiveServer, data_dir: Path, offered: float, threads: dict[int, str]
) -> StepResult:
    tag = f"step-{offered:g}"
    before = _snapshot(server, threads)
    profiler = _profile(config.profile_dir, server.pid, tag, config.step_seconds)
    cpu0, t0 = time.process_time(), time.perf_counter()
    start = await gen.schedule(tag, offered, config.step_seconds, read_share=config.read_share)
    cpu1 = time.process_time()
    drained = await gen.drain(config.drain_s)
    elapsed = time.perf_counter() - t0
    if profiler is not None:
        await asyncio.to_thread(profiler.wait)
    after = _snapshot(server, threads)
    posts, reads = gen.tagged(tag, POST), gen.tagged(tag, READ)
    ok = [r for r in posts if r.status == 201]
    last = max((r.done for r in posts), default=start)
    span = max(config.step_seconds, last - start)
    lags = [r.dispatched - r.due for r in posts + reads]
    step = StepResult(
        offered=offered,
        seconds=span,
        posts=len(posts),
        ok=len(ok),
        errors=len(posts) - len(ok),
        reads=len(reads),
        read_errors=sum(1 for r in reads if r.status != 200),
        achieved=len(ok) / span,
        post_p50_ms=_ms(posts, 0.5),
        post_p99_ms=_ms(posts, 0.99),
        post_max_ms=_ms(posts, 1.0),
        edge_p50_ms=_ms(reads, 0.5),
        edge_p99_ms=_ms(reads, 0.99),
        lag_p99_ms=1000 * _quantile(lags, 0.99),
        lag_max_ms=1000 * max(lags, default=0.0),
        client_cpu=(cpu1 - cpu0) / max(1e-9, config.step_seconds),
        drained=drained,
    )
    _server_usage(step, before, after, elapsed)
    wal = data_dir / "tams.duckdb.wal"
    step.wal_mb = wal.stat().st_size / 2**20 if wal.exists() else 0.0
    step.held = (
        drained
        and step.achieved >= config.held_share * offered
        and step.post_p99_ms <= config.post_p99_ms
        and step.edge_p99_ms <= config.edge_p99_ms
    )
    return step


async def _restart(
    config: CapacityConfig,
    gen: OpenLoop,
    server: LiveServer,
    url: str,
    data_dir: Path,
    case: ResumeCase,
    how: str,
    resumes: list[ResumeResult],
    progress: Progress,
) -> tuple[LiveServer, Acknowledged]:
    """Load at the case's rate, stop the server with ``how`` mid-load, start it again on the same store and
    port, and resume every flow at once; returns the new server and what was acknowledged before the stop."""
    flows = len(gen.flows)
    progress(f"capacity: restart ({how}), {flows} flows at {case.rate:g} POSTs/s ...")
    await gen.schedule(f"before-{how}", case.rate, config.resume_warm_s, read_share=config.read_share)
    signalled = time.perf_counter()
    if how == "SIGKILL":
        await asyncio.to_thread(server.kill)
    else:
        await asyncio.to_thread(server.stop)
    exited = time.perf_counter()
    await gen.drain(config.drain_s)  # what was in flight breaks (or, on SIGTERM, may still be answered)
    acknowledged = {f: list(v) for f, v in gen.acknowledged.items()}
    gen.disconnect()
    t0 = time.perf_counter()
    server = await asyncio.to_thread(_serve, config, url, data_dir, server.port)
    try:  # whatever goes wrong from here, the server started here is stopped (the caller stops the one it gave)
        ready = time.perf_counter()
        tag = f"resume-{how}"
        seconds = config.resume_rounds * flows / case.rate
        case_tag = re.sub(r"[^0-9A-Za-z]+", "_", case.name).strip("_")
        profiler = _profile(config.profile_dir, server.pid, f"{tag}-{case_tag}", seconds)
        await gen.schedule(tag, case.rate, seconds, read_share=config.read_share)
        await gen.drain(config.drain_s)
        if profiler is not None:
            await asyncio.to_thread(profiler.wait)
        first = gen.first_posts(tag)
        posts = gen.tagged(tag, POST)
        resumes.append(
            ResumeResult(
                case=case.name,
                how=how,
                flows=flows,
                rate=case.rate,
                stop_s=exited - signalled,
                start_s=ready - t0,
                first_p50_ms=_ms(first, 0.5),
                first_p99_ms=_ms(first, 0.99),
                first_max_ms=_ms(first, 1.0),
                all_p50_ms=_ms(posts, 0.5),
                all_p99_ms=_ms(posts, 0.99),
                errors=sum(1 for r in posts if r.status != 201),
                cut=sum(1 for r in gen.tagged(f"before-{how}", POST) if r.status != 201),
                lag_max_ms=1000 * max((r.dispatched - r.due for r in posts + gen.tagged(tag, READ)), default=0.0),
            )
        )
    except BaseException:
        await asyncio.to_thread(server.stop)
        raise
    return server, acknowledged


# -- measures ---------------------------------------------------------------------------------------------
def _quantile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile (nearest rank) of ``values``; 0 for none.

    >>> _quantile([3.0, 1.0, 2.0], 0.5), _quantile([1.0] * 98 + [50.0, 60.0], 0.99), _quantile([], 0.9)
    (2.0, 50.0, 0.0)
    """
    if not values:
        return 0.0
    ordered = sorted(values)
    if q >= 1.0:
        return ordered[-1]
    if q == 0.5:
        return statistics.median(ordered)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def _ms(records: Sequence[Record], q: float) -> float:
    """The ``q`` quantile of the latencies of the answered ``records``, from their scheduled times, in ms."""
    return 1000 * _quantile([r.latency for r in records if r.done], q)


@dataclass
class _Snapshot:
    metrics: dict[tuple[str, tuple[tuple[str, str], ...]], float]
    #: CPU seconds by thread id
    threads: dict[int, float]
    #: thread id -> Python thread name, where known
    names: dict[int, str]


def _snapshot(server: LiveServer, names: dict[int, str]) -> _Snapshot:
    """CPU by thread over the server's processes (``serve``, its store and HTTP processes), the store process's
    threads named ``store:`` and the HTTP processes' ``http:`` (see :func:`_server_usage`), and a scrape."""
    import psutil

    cpu: dict[int, float] = {}
    names = dict(names)
    try:
        top = psutil.Process(server.pid)
        for process in [top, *top.children(recursive=True)]:
            role = server_role(" ".join(process.cmdline()))
            role = role if role in ("store", "http") else None
            for t in process.threads():
                cpu[t.id] = t.user_time + t.system_time
                if role:
                    names[t.id] = f"{role}:{names.get(t.id, '')}"
    except psutil.Error:
        pass
    try:
        text = httpx.get(f"{server.base_url}/metrics", timeout=10.0).text
    except httpx.HTTPError:
        text = ""
    return _Snapshot(parse_metrics(text), cpu, names)


_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)$")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def parse_metrics(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Prometheus text exposition as ``{(name, sorted labels): value}``.

    >>> m = parse_metrics('# HELP x y\\nx_count{a="1",b="q"} 3.0\\nup 1\\n')
    >>> m[("x_count", (("a", "1"), ("b", "q")))], m[("up", ())]
    (3.0, 1.0)
    """
    out: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = _SAMPLE.match(line)
        if m is None:
            continue
        labels = tuple(sorted(_LABEL.findall(m.group(2) or "")))
        try:
            out[(m.group(1), labels)] = float(m.group(3))
        except ValueError:
            continue
    return out


def _server_usage(step: StepResult, before: _Snapshot, after: _Snapshot, seconds: float) -> None:
    """The server's CPU by thread and the group commit's batches over the step."""
    if before.threads and after.threads:
        delta = {t: after.threads[t] - before.threads.get(t, 0.0) for t in after.threads}
        step.server_cpu = sum(delta.values()) / seconds
        step.cpu_ms_per_post = 1000 * sum(delta.values()) / step.ok if step.ok else math.nan
        http = [t for t, n in after.names.items() if n.startswith("http:")]
        store = [t for t, n in after.names.items() if n.startswith("store:")]
        if http or store:  # several processes
            step.loop_cpu = sum(delta.get(t, 0.0) for t in http) / seconds
            step.writer_cpu = sum(delta.get(t, 0.0) for t in store) / seconds
        else:
            main = min(after.threads)  # the main thread's id is the process id, the lowest
            writer = [t for t, n in after.names.items() if n.startswith(("tams-group-commit", "tams-segment-writer"))]
            step.loop_cpu = delta.get(main, 0.0) / seconds
            step.writer_cpu = sum(delta.get(t, 0.0) for t in writer) / seconds if writer else math.nan
    if before.metrics and after.metrics:
        step.writer = writer_stats(before.metrics, after.metrics)


def writer_stats(
    before: dict[tuple[str, tuple[tuple[str, str], ...]], float],
    after: dict[tuple[str, tuple[tuple[str, str], ...]], float],
) -> WriterStats:
    """What the group commit did between two scrapes of ``/metrics``."""

    def d(name: str, labels: tuple[tuple[str, str], ...] = ()) -> float:
        return after.get((name, labels), 0.0) - before.get((name, labels), 0.0)

    batches = round(d("tams_group_commit_batch_size_count"))
    requests = round(d("tams_group_commit_batch_size_sum"))
    op = (("operation", "register_batch"),)
    batch_s = d("tams_catalog_operation_seconds_sum", op)
    statements: dict[str, tuple[float, float]] = {}
    for name, labels in after:
        if name != "tams_store_statement_seconds_count":
            continue
        n = d(name, labels)
        if n <= 0:
            continue
        total = d("tams_store_statement_seconds_sum", labels)
        key = " ".join(v for _k, v in labels)
        statements[key] = (n / batches if batches else math.nan, 1000 * total / n)
    buckets: dict[str, float] = {}
    for name, labels in after:
        if name == "tams_group_commit_batch_size_bucket" and batches:
            le = dict(labels)["le"]
            buckets[le] = d(name, labels) / batches
    checkpoints = round(d("tams_store_checkpoint_seconds_count"))
    checkpoint_ms = 1000 * d("tams_store_checkpoint_seconds_sum") / checkpoints if checkpoints else 0.0
    return WriterStats(
        batches, requests, 1000 * batch_s / batches if batches else 0.0, statements, buckets, checkpoints, checkpoint_ms
    )


def thread_names(pid: int, *, nonblocking: bool = False) -> dict[int, str]:
    """Thread id -> Python thread name of process ``pid``, from ``py-spy dump`` (empty without py-spy); with
    ``nonblocking``, without pausing the process."""
    spy = py_spy()
    if spy is None:
        return {}
    command = [spy, "dump", *(["--nonblocking"] if nonblocking else []), "--pid", str(pid)]
    try:
        out = subprocess.run(command, capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    return {int(m.group(1)): m.group(2) for m in re.finditer(r'^Thread (\d+) \([^)]*\): "([^"]*)"', out, re.M)}


def _profile(
    directory: Path | None, pid: int, tag: str, seconds: float, *, gil: bool = False
) -> subprocess.Popen[bytes] | None:
    """``py-spy record`` of the server and its processes for ``seconds`` into ``directory/TAG.txt`` (raw stacks per
    thread, idle ones too; with ``gil``, only the thread holding the GIL at each sample: who holds it); 100 samples a
    second, without pausing the server. None: no ``directory``, or no py-spy."""
    spy = py_spy()
    if directory is None or spy is None:
        return None
    directory.mkdir(parents=True, exist_ok=True)
    out = profile_file(directory, tag)
    cmd = [spy, "record", "--threads", "--nonblocking", "--subprocesses", "--format", "raw"]
    cmd += ["--gil" if gil else "--idle", "--rate", str(SAMPLES_PER_S)]
    cmd += ["--duration", str(max(1, int(seconds))), "--output", str(out), "--pid", str(pid)]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def profile_file(directory: Path, tag: str) -> Path:
    """Where :func:`_profile` writes the profile ``tag``."""
    return directory / f"{tag}.txt"


def py_spy() -> str | None:
    """py-spy's command: the one installed beside this interpreter (the ``bench`` extra's), else one on the PATH."""
    beside = Path(sys.executable).with_name("py-spy")
    return str(beside) if beside.is_file() else shutil.which("py-spy")


# -- report -----------------------------------------------------------------------------------------------
def _f(v: float, digits: int = 1) -> str:
    return "-" if math.isnan(v) else f"{v:,.{digits}f}"


def format_capacity(
    result: CapacityResult, continuous: Callable[[list[ContinuousLine], float], list[str]] | None = None
) -> list[str]:
    """The report's lines: the steps table, the group commit per step, the restart cases, the checks; continuous
    lines as ``continuous`` (:func:`benchmarks.continuous.format_continuous`) formats them."""
    c = result.config
    if result.continuous:
        if continuous is None:
            raise ValueError("continuous capacity lines are formatted by benchmarks.continuous.format_continuous")
        lines = [
            f"capacity, continuous: {c.flows} flows, {c.connections} POST connections, {c.reader_connections} reader "
            f"connections, edge reads at {c.read_share:g} x the POST rate, latencies from the scheduled times; held: "
            f"achieved >= {c.held_share:.0%} of offered, POST p99 <= {c.post_p99_ms:g} ms, none over 250 ms, edge p99 "
            f"<= {c.edge_p99_ms:g} ms, nothing lost; young: {c.history:,} segments a flow",
            f"  the server: {server_description(c)}",
            *continuous(result.continuous, c.window_s),
        ]
        return lines + _format_resumes(result)
    store = result.store or f"{c.flows} flows with {c.history:,} segments each"
    lines = [
        f"capacity: {store} (setup {result.setup_s:.0f} s), "
        f"{c.connections} POST connections, {c.reader_connections} reader connections, edge reads at "
        f"{c.read_share:g} x the POST rate, {c.step_seconds:g} s a step, latencies from the scheduled times; "
        f"held: achieved >= {c.held_share:.0%} of offered, POST p99 <= {c.post_p99_ms:g} ms, edge p99 <= "
        f"{c.edge_p99_ms:g} ms",
        f"  the server: {server_description(c)}",
    ]
    rows: list[tuple[str, ...]] = [
        (
            "offered/s",
            "achieved/s",
            "POST p50",
            "p99",
            "max",
            "edge p50",
            "p99",
            "errors",
            "client late p99/max",
            "client CPU",
            "server CPU (http/store)",
            "CPU ms/POST",
            "WAL MB",
            "held",
        )
    ]
    for s in result.steps:
        rows.append(
            (
                f"{s.offered:g}",
                _f(s.achieved),
                _f(s.post_p50_ms),
                _f(s.post_p99_ms),
                _f(s.post_max_ms, 0),
                _f(s.edge_p50_ms),
                _f(s.edge_p99_ms),
                f"{s.errors}/{s.read_errors}",
                f"{_f(s.lag_p99_ms)}/{_f(s.lag_max_ms)} ms",
                f"{s.client_cpu:.0%}",
                f"{_f(100 * s.server_cpu, 0)} ({_f(100 * s.loop_cpu, 0)}/{_f(100 * s.writer_cpu, 0)}) %",
                _f(s.cpu_ms_per_post, 2),
                _f(s.wal_mb),
                ("yes" if s.held else "NO") + ("" if s.drained else " (not drained)"),
            )
        )
    lines.append(text_table(rows))
    for s in result.steps:
        w = s.writer
        if w is None or not w.batches:
            continue
        stmts = ", ".join(f"{k} {n:.2f} x {ms:.2f} ms" for k, (n, ms) in sorted(w.statements.items()))
        small = w.size_buckets.get("1.0", 0.0)
        checkpoints = (
            f"{w.checkpoints} checkpoint{'s' * (w.checkpoints != 1)} of {w.checkpoint_ms:.0f} ms (mean) held every POST"
            if w.checkpoints
            else "no checkpoint"
        )
        lines.append(
            f"  {s.offered:g}/s: {w.batches:,} batches of {w.mean_size:.2f} requests (mean; {small:.0%} of one), "
            f"{w.batch_ms:.2f} ms each; {checkpoints}; store statements per batch: {stmts}"
        )
    return lines + _format_resumes(result)


def _format_resumes(result: CapacityResult) -> list[str]:
    """The restart cases' table (those of the steps and the resume-only stores), the checks and the errors."""
    lines: list[str] = []
    resumes = result.all_resumes
    if resumes:
        rows = [
            (
                "restart",
                "signal",
                "cut",
                "stop s",
                "start s",
                "first POST p50",
                "p99",
                "max",
                "all p50",
                "p99",
                "client late max",
                "errors",
            )
        ]
        rows += [
            (
                r.case,
                r.how,
                str(r.cut),
                f"{r.stop_s:.2f}",
                f"{r.start_s:.2f}",
                _f(r.first_p50_ms),
                _f(r.first_p99_ms),
                _f(r.first_max_ms, 0),
                _f(r.all_p50_ms),
                _f(r.all_p99_ms),
                f"{_f(r.lag_max_ms)} ms",
                str(r.errors) + (f"; lost {r.lost}" if r.lost >= 0 else ""),
            )
            for r in resumes
        ]
        lines.append(text_table(rows))
    if result.continuous:
        held = sum(1 for line in result.continuous if line.held)
        verdict = f"{held} of {len(result.continuous)} continuous lines held"
    else:
        verdict = f"{_f(result.capacity, 0)} POSTs/s held"
    resumed = f"resume first-POST p99 {_f(result.resume_p99_ms)} ms" if resumes else "no restarts"
    lines.append(
        f"capacity: {verdict}; {resumed}; {result.lost} acknowledged segments lost, {result.overlaps} overlaps"
    )
    lines += [f"  error: {e}" for e in result.errors]
    return lines
