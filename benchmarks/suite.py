"""The benchmark suite behind ``tams-analytics bench``: build the stores, measure, report.

Every comparison is measured side by side in the same run (interleaved, medians over repeated runs,
after warm-up). The JSON report holds exactly :data:`KEYS`; :func:`format_table` prints them against
:data:`TARGETS`.
"""

from __future__ import annotations

import json
import math
import os
import platform
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Final

from benchmarks import live_ingest, pages, query, rest
from benchmarks.backup import BackupConfig, BackupResult, format_backup, run_backup
from benchmarks.capacity import CapacityConfig, CapacityResult, format_capacity, run_capacity
from benchmarks.console import ConsoleConfig, ConsoleResult, format_console, run_console
from benchmarks.continuous import format_continuous, run_continuous
from benchmarks.live import STORAGE_ID, LiveServer
from benchmarks.measure import ratio
from benchmarks.peer_report import format_peer, peer_json
from benchmarks.peer_report import missed as peer_missed
from benchmarks.perf_scenarios import PeerConfig, PeerResult, run_peer
from benchmarks.stores import Store, add_long_flow, build_store
from benchmarks.text_table import text_table
from benchmarks.trino_side import TrinoResult, format_trino, run_trino, trino_json

KEYS: Final = (
    "query_vs_raw_duckdb",
    "query_speedup_vs_string_parse",
    "query_growth_100k_to_10m",
    "rest_page_vs_trivial",
    "ingest_segments_per_s",
    "ingest_vs_raw_append",
    "list_1m_peak_rss_mb",
    "live_posts_vs_trivial",
    "live_posts_per_s",
    "live_post_p50_ms",
    "live_post_p99_ms",
    "live_edge_p99_ms",
    "live_lost",
    "live_overlaps",
    "page_growth_100k_to_10m",
    "page_p99_ms",
)

#: the capacity scenario's keys (``--only capacity``: not part of a default run)
CAPACITY_KEYS: Final = (
    "capacity_posts_per_s",
    "capacity_resume_p99_ms",
    "capacity_lost",
    "capacity_overlaps",
)

#: the continuous capacity lines' keys (``--only capacity --capacity-continuous ...``: instead of
#: ``capacity_posts_per_s``), each the worst over the lines
CONTINUOUS_KEYS: Final = (
    "capacity_continuous_achieved_share",
    "capacity_continuous_post_p99_ms",
    "capacity_continuous_post_max_ms",
    "capacity_continuous_edge_p99_ms",
    "capacity_continuous_rss_growth_pct",
)

#: the backup scenario's keys (``--only backup``: not part of a default run)
BACKUP_KEYS: Final = (
    "backup_s",
    "backup_mib",
    "backup_post_p99_baseline_ms",
    "backup_post_p99_ms",
    "backup_post_p99_copy_ms",
    "backup_lost",
)

#: the console scenario's keys (``--only console``: not part of a default run)
CONSOLE_KEYS: Final = (
    "console_flow_list_p99_ms",
    "console_timeline_p99_ms",
    "console_flow_list_vs_api",
    "console_timeline_vs_api",
)

#: every key a report may hold
ALL_KEYS: Final = KEYS + CAPACITY_KEYS + CONTINUOUS_KEYS + BACKUP_KEYS + CONSOLE_KEYS

#: metric -> (comparison, target); None: reported without a target
TARGETS: Final[dict[str, tuple[str, float] | None]] = {
    "query_vs_raw_duckdb": ("<=", 1.3),
    "query_speedup_vs_string_parse": (">=", 100.0),
    "query_growth_100k_to_10m": ("<=", 2.0),
    "rest_page_vs_trivial": (">=", 0.4),
    "ingest_segments_per_s": (">=", 6000.0),
    "ingest_vs_raw_append": None,
    "list_1m_peak_rss_mb": None,
    "live_posts_vs_trivial": (">=", 0.25),
    "live_posts_per_s": None,
    "live_post_p50_ms": None,
    "live_post_p99_ms": ("<=", 50.0),
    "live_edge_p99_ms": ("<=", 10.0),
    "live_lost": ("<=", 0.0),
    "live_overlaps": ("<=", 0.0),
    "page_growth_100k_to_10m": ("<=", 2.0),
    "page_p99_ms": ("<=", 10.0),
    "capacity_posts_per_s": (">=", 800.0),  # issue 36: 1,600 live flows at 2-s segments
    "capacity_resume_p99_ms": ("<=", 100.0),
    "capacity_lost": ("<=", 0.0),
    "capacity_overlaps": ("<=", 0.0),
    # issue 52: 1,600 flows at 2-s segments, minutes at a rate, young and aged stores
    "capacity_continuous_achieved_share": (">=", 0.97),
    "capacity_continuous_post_p99_ms": ("<=", 50.0),
    "capacity_continuous_post_max_ms": ("<=", 250.0),
    "capacity_continuous_edge_p99_ms": ("<=", 20.0),
    "capacity_continuous_rss_growth_pct": ("<=", 10.0),
    "backup_s": None,
    "backup_mib": None,
    "backup_post_p99_baseline_ms": None,
    "backup_post_p99_ms": None,
    "backup_post_p99_copy_ms": None,
    "backup_lost": ("<=", 0.0),
    # issue 54: on 10 M segments over 2,000 flows, the flow list and a flow's timeline each on screen within a second
    "console_flow_list_p99_ms": ("<=", 1000.0),
    "console_timeline_p99_ms": ("<=", 1000.0),
    "console_flow_list_vs_api": None,
    "console_timeline_vs_api": None,
}


@dataclass(frozen=True)
class BenchConfig:
    """What to build and how long to measure."""

    #: demo store sizes, smallest first; growth is largest / smallest
    sizes: tuple[int, ...] = (100_000, 1_000_000, 10_000_000)
    #: segments of the one long flow streamed through the API
    list_segments: int = 1_000_000
    #: runs of each fast query (after warm-up), and of the slow string-parsing one
    repeat: int = 31
    slow_repeat: int = 3
    #: HTTP load runs per endpoint, seconds each, and connections
    http_repeat: int = 5
    http_seconds: float = 3.0
    concurrency: int = 8
    #: timed bulk POSTs of :data:`rest.INGEST_BATCH` segments (after :data:`rest.WARMUP_BATCHES` untimed ones)
    ingest_batches: int = 40
    #: live ingest: flows, segments preloaded per flow, recorders (connections), live-edge readers, seconds
    live_flows: int = 32
    live_preload: int = 20_000
    live_writers: int = 16
    live_readers: int = 4
    live_seconds: float = 15.0
    #: lengths of the flows whose pages are timed (first page, newest first, deep cursor)
    page_flows: tuple[int, ...] = (100_000, 1_000_000, 10_000_000)
    #: where stores go (a temporary directory, removed afterwards, when None)
    work_dir: Path | None = None
    #: the scenarios to run (:data:`SCENARIOS`); the metrics of the others are left out
    only: tuple[str, ...] = ()
    #: ``"postgres"``: also run OpenTAMS's PERF-01…06 side by side with PostgreSQL (``perf_scenarios.py``)
    peer: str | None = None
    peer_config: PeerConfig = field(default_factory=PeerConfig)
    #: segments of the store queried through Trino and DuckDB (``--only trino``, ``trino_side.py``)
    trino_segments: int = 1_000_000
    #: the open-loop capacity scenario (run only when ``only`` names it)
    capacity: CapacityConfig = field(default_factory=CapacityConfig)
    #: the backup of a live store (run only when ``only`` names it)
    backup: BackupConfig = field(default_factory=BackupConfig)
    #: the console on an archive (run only when ``only`` names it)
    console: ConsoleConfig = field(default_factory=ConsoleConfig)
    #: a few words kept with the run (``--label``)
    label: str = ""

    @classmethod
    def full(cls, **changes: Any) -> BenchConfig:
        """The full run, with ``changes`` to its fields (as :func:`dataclasses.replace` takes them)."""
        return replace(cls(), **changes)

    @classmethod
    def quick(cls, **changes: Any) -> BenchConfig:
        """100k and 1M only, shorter runs: under five minutes on a 2-core machine."""
        base = cls(sizes=(100_000, 1_000_000), repeat=21, slow_repeat=2, http_repeat=3, http_seconds=2.0)
        base = replace(base, live_preload=2_000, live_seconds=8.0, page_flows=(10_000, 100_000, 1_000_000))
        base = replace(base, ingest_batches=20, peer_config=PeerConfig.quick())
        return replace(base, **changes)

    @property
    def serve_size(self) -> int:
        """The server runs on the largest store of at most a million segments (else the smallest)."""
        small = [s for s in self.sizes if s <= 1_000_000]
        return max(small) if small else min(self.sizes)


@dataclass
class Report:
    metrics: dict[str, float]
    #: how each metric was measured (store, sizes, ...), shown in the table
    notes: dict[str, str] = field(default_factory=dict)
    details: list[str] = field(default_factory=list)
    machine: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    #: the PostgreSQL peer benchmark, when it was asked for
    peer: PeerResult | None = None
    #: Trino against DuckDB, when it was asked for
    trino: TrinoResult | None = None
    #: the capacity scenario, when it was asked for
    capacity: CapacityResult | None = None
    #: the backup scenario, when it was asked for
    backup: BackupResult | None = None
    #: the console scenario, when it was asked for
    console: ConsoleResult | None = None
    #: when (UTC, ISO 8601) and on which tree (the git commit, and whether the work tree differed from it) it ran
    started: str = ""
    tree: str = ""
    label: str = ""

    def run_json(self) -> dict[str, Any]:
        """What the run was: its date, the machine, the tree, how long it took, and each metric's note."""
        return {
            "date": self.started,
            "machine": self.machine,
            "tree": self.tree,
            "label": self.label,
            "seconds": round(self.seconds, 1),
            "notes": {k: self.notes[k] for k in ALL_KEYS if k in self.notes},
        }

    def json(self) -> dict[str, Any]:
        out: dict[str, Any] = {k: self.metrics[k] for k in ALL_KEYS if k in self.metrics}
        out["run"] = self.run_json()
        if self.peer is not None:
            out["peer"] = peer_json(self.peer)
        if self.trino is not None:
            out["trino"] = trino_json(self.trino)
        if self.capacity is not None:
            out["capacity"] = self.capacity.json()
        if self.backup is not None:
            out["backup"] = self.backup.json()
        if self.console is not None:
            out["console"] = self.console.json()
        return out

    def missed(self) -> list[str]:
        out: list[str] = [k for k in ALL_KEYS if k in self.metrics and met(k, self.metrics[k]) is False]
        if self.peer is not None:
            out += [f"peer: {m}" for m in peer_missed(self.peer)]
        return out


def met(key: str, value: float) -> bool | None:
    """Whether ``value`` meets ``key``'s target (None when it has none).

    >>> met("query_vs_raw_duckdb", 1.1), met("ingest_segments_per_s", 10.0), met("list_1m_peak_rss_mb", 90.0)
    (True, False, None)
    """
    target = TARGETS[key]
    if target is None:
        return None
    op, bound = target
    return value <= bound if op == "<=" else value >= bound


def _count(n: int) -> str:
    """``100k``, ``1M``, ``2000``.

    >>> _count(100_000), _count(10_000_000), _count(2000), _count(1500)
    ('100k', '10M', '2k', '1500')
    """
    for div, suffix in ((1_000_000, "M"), (1000, "k")):
        if n % div == 0:
            return f"{n // div}{suffix}"
    return str(n)


def machine() -> dict[str, str]:
    """CPU model, cores, RAM, Python and DuckDB versions of this machine."""
    import duckdb

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ram = "?"
    try:
        import psutil

        ram = f"{psutil.virtual_memory().total / 2**30:.1f} GiB"
    except ImportError:
        pass
    return {
        "cpu": cpu,
        "cores": str(os.cpu_count()),
        "ram": ram,
        "python": platform.python_version(),
        "duckdb": duckdb.__version__,
        "os": f"{platform.system()} {platform.release()}",
        "load_start": _load(),
    }


def run(config: BenchConfig, progress: Callable[[str], None] = lambda _m: None) -> Report:
    """Build the stores, run every benchmark, and return the report."""
    started = time.perf_counter()
    work = config.work_dir or Path(tempfile.mkdtemp(prefix="tams-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        report = _run(config, work, progress)
    finally:
        if config.work_dir is None:
            shutil.rmtree(work, ignore_errors=True)
    report.seconds = time.perf_counter() - started
    return report


def _run(config: BenchConfig, work: Path, progress: Callable[[str], None]) -> Report:
    report = Report(metrics={}, machine=machine(), started=_now(), tree=tree(), label=config.label)
    chosen = set(config.only or DEFAULT_SCENARIOS)
    if chosen & {"query", "http"}:
        _stores(config, report, work, progress, chosen)
    if "live" in chosen:
        _live(config, report, work / "live", progress)
    if "pages" in chosen:
        _pages(config, report, work / "pages.duckdb", progress)
    if config.peer and "peer" in chosen:
        (work / "peer").mkdir(exist_ok=True)
        report.peer = run_peer(config.peer_config, work / "peer", progress)
    if "trino" in chosen:  # only when asked for: it needs a Trino server (started here if need be)
        report.trino = run_trino(
            segments=config.trino_segments,
            repeat=config.repeat,
            slow_repeat=min(5, config.repeat),
            work=work / "trino",
            progress=progress,
        )
    if "capacity" in chosen:
        _capacity(config, report, work, progress)
    if "backup" in chosen:
        _backup(config, report, work, progress)
    if "console" in chosen:
        _console(config, report, work, progress)
    report.machine["load_end"] = _load()
    return report


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def tree() -> str:
    """The git commit of the repository the benchmarks run from, ``+`` when its work tree has changes (``?``: not
    a git checkout)."""
    import subprocess

    root = Path(__file__).resolve().parents[1]
    try:
        commit = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        changed = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "?"
    return commit + ("+" if changed else "")


def _load() -> str:
    """The 1, 5 and 15 minute load averages (the machine is shared: absolute times move with it)."""
    try:
        return "/".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "?"


#: the scenarios of a run: the one-hour query on demo stores, the HTTP server on one of them (pages, bulk
#: ingest, a long listing), live ingest, pages of long flows on a store grown by interleaved ingest,
#: (with ``--peer postgres`` only) OpenTAMS's PERF scenarios against PostgreSQL, and (with ``--only trino``
#: only) a window and a coverage summary through Trino and through DuckDB, and the open-loop capacity of live
#: ingest with restarts (only when named: it loads both cores for minutes), the backup of a live 1M-segment
#: store with live ingest beside it (only when named), and the console's views in Chromium on a 10M-segment
#: aged store (only when named: the store is built once, minutes)
SCENARIOS: tuple[str, ...] = ("query", "http", "live", "pages", "peer", "trino", "capacity", "backup", "console")
#: what a run without ``--only`` runs
DEFAULT_SCENARIOS: tuple[str, ...] = ("query", "http", "live", "pages", "peer")


def _stores(config: BenchConfig, report: Report, work: Path, progress: Callable[[str], None], chosen: set[str]) -> None:
    """Build the demo stores; time the one-hour query on them (``query``) and serve one (``http``)."""
    sizes = tuple(sorted(config.sizes)) if "query" in chosen else (config.serve_size,)
    stores: dict[int, Store] = {}
    for size in sizes:
        progress(f"building a demo store of {size:,} segments ...")
        t0 = time.perf_counter()
        storage = STORAGE_ID if size == config.serve_size else None
        stores[size] = build_store(work / f"store-{_count(size)}.duckdb", size, storage_id=storage)
        report.details.append(f"store {_count(size)}: built and clustered in {time.perf_counter() - t0:.1f} s")
    if "query" in chosen:
        _query(config, report, stores, progress)
    if "http" in chosen:
        served = stores[config.serve_size]
        progress(f"adding a flow of {config.list_segments:,} segments to the {_count(served.segments)} store ...")
        long_flow = add_long_flow(served.url, config.list_segments, storage_id=STORAGE_ID)
        data_dir = work / "server"
        data_dir.mkdir(exist_ok=True)
        _http(config, report, served, long_flow, data_dir, progress)


def _query(config: BenchConfig, report: Report, stores: dict[int, Store], progress: Callable[[str], None]) -> None:
    """The one-hour query on every store: against hand-written SQL, string parsing, and its growth."""
    sizes = tuple(sorted(stores))
    times: dict[int, query.QueryTimes] = {}
    for size in sizes:
        progress(f"timing the one-hour query on {size:,} segments ...")
        t = times[size] = query.measure_store(stores[size], repeat=config.repeat, slow_repeat=config.slow_repeat)
        report.details.append(
            f"store {_count(size)}: flow of {t.flow_segments:,} segments, {t.rows} rows; medians: "
            f"library {t.library_s * 1e3:.2f} ms, SQL {t.raw_s * 1e3:.2f} ms, ibis lazy {t.ibis_s * 1e3:.2f} ms, "
            f"string parse {t.string_parse_s * 1e3:.0f} ms"
        )
    large = times[sizes[-1]]
    report.metrics["query_vs_raw_duckdb"] = ratio(large.library_s, large.raw_s)
    report.metrics["query_speedup_vs_string_parse"] = ratio(large.string_parse_s, large.library_s)
    progress(f"timing the query on {sizes[0]:,} and {sizes[-1]:,} segments side by side ...")
    small_s, large_s = query.library_growth(stores[sizes[0]], stores[sizes[-1]], repeat=config.repeat)
    report.metrics["query_growth_100k_to_10m"] = ratio(large_s, small_s)
    report.details.append(
        f"growth: library query {small_s * 1e3:.2f} ms on {_count(sizes[0])}, {large_s * 1e3:.2f} ms on "
        f"{_count(sizes[-1])} (both stores open, interleaved)"
    )
    at = f"on {_count(sizes[-1])}"
    report.notes["query_vs_raw_duckdb"] = at
    report.notes["query_speedup_vs_string_parse"] = at
    report.notes["query_growth_100k_to_10m"] = f"{_count(sizes[-1])}/{_count(sizes[0])}" + (
        "" if (sizes[0], sizes[-1]) == (100_000, 10_000_000) else " (not 10M/100k)"
    )


def _pages(config: BenchConfig, report: Report, path: Path, progress: Callable[[str], None]) -> None:
    """Pages of flows of growing length, on a store grown by interleaved ingest, cache on and off."""
    lengths = tuple(sorted(config.page_flows))
    progress(f"pages: building flows of {', '.join(map(_count, lengths))} segments, interleaved in time ...")
    url, flows = pages.build(path, lengths)
    progress("pages: first page, newest first and deep cursor, read cache on and off ...")
    on = pages.measure(url, flows, repeat=config.repeat)
    off = pages.measure(url, flows, repeat=max(3, config.repeat // 3), cached=False)
    small, large = lengths[0], lengths[-1]
    newest = {n: on.times[(n, "newest")][0] for n in lengths}
    report.metrics["page_growth_100k_to_10m"] = ratio(newest[large], newest[small])
    report.notes["page_growth_100k_to_10m"] = f"newest-first page, {_count(large)}/{_count(small)}, cache on"
    report.metrics["page_p99_ms"] = 1000 * max(p99 for (_n, _w), (_m, p99) in on.times.items())
    report.notes["page_p99_ms"] = f"worst p99 of {PAGE_POSITIONS} pages, flows up to {_count(large)}"
    for name, t in (("cache on", on), ("cache off", off)):
        cells = ", ".join(
            f"{_count(n)} {w} {t.times[(n, w)][0] * 1e3:.2f}/{t.times[(n, w)][1] * 1e3:.2f}"
            for n in lengths
            for w in ("first", "newest", "deep")
        )
        report.details.append(f"pages of {pages.PAGE}, {name} (median/p99 ms): {cells}")
    report.details.append(
        "pages: flow index loaded on first use in "
        + ", ".join(f"{_count(n)} {s:.2f} s" for n, s in on.index_load_s.items())
    )


#: the page positions timed for each flow
PAGE_POSITIONS = "first, newest-first and deep-cursor"


def _live(config: BenchConfig, report: Report, data_dir: Path, progress: Callable[[str], None]) -> None:
    """Live ingest: ``live_flows`` flows each receiving one segment per POST, readers on the live edge."""
    data_dir.mkdir(exist_ok=True)
    url = f"duckdb:///{data_dir / 'tams.duckdb'}"
    with LiveServer(url, data_dir) as server:  # serve creates the store
        flows = live_ingest.create_flows(server.base_url, config.live_flows)
    if config.live_preload:
        progress(f"live ingest: preloading {config.live_flows} flows with {config.live_preload:,} segments each ...")
        live_ingest.preload(url, flows, config.live_preload)
    progress(
        f"live ingest: {config.live_writers} recorders posting single segments to {config.live_flows} flows, "
        f"{config.live_readers} live-edge readers, {config.live_seconds:g} s ..."
    )
    with LiveServer(url, data_dir) as server:
        result, acknowledged = live_ingest.live_ingest(
            server.host,
            server.port,
            flows,
            writers=config.live_writers,
            readers=config.live_readers,
            seconds=config.live_seconds,
        )
    lost, overlaps = live_ingest.verify(url, acknowledged)
    m = report.metrics
    m["live_posts_vs_trivial"] = result.ratio
    m["live_posts_per_s"] = result.posts_per_s
    m["live_post_p50_ms"] = result.post.p50_ms
    m["live_post_p99_ms"] = result.post.p99_ms
    m["live_edge_p99_ms"] = result.edge.p99_ms
    m["live_lost"] = float(lost)
    m["live_overlaps"] = float(overlaps)
    setup = f"{config.live_flows} flows, {config.live_writers} recorders, {config.live_readers} readers"
    report.notes["live_posts_vs_trivial"] = setup
    report.details.append(
        f"live ingest ({setup}, {_count(config.live_preload)} segments preloaded per flow, "
        f"{config.live_seconds:g} s): {result.posts:,} single-segment POSTs ({result.posts_per_s:,.0f}/s) against "
        f"GET / {result.trivial_rps:,.0f}/s; POST p50 {result.post.p50_ms:.1f} ms, p99 {result.post.p99_ms:.1f} ms; "
        f"live edge p50 {result.edge.p50_ms:.1f} ms, p99 {result.edge.p99_ms:.1f} ms over {len(result.edge.samples):,} "
        f"reads; {lost} acknowledged segments lost, {overlaps} overlaps"
    )


def _capacity(config: BenchConfig, report: Report, work: Path, progress: Callable[[str], None]) -> None:
    """Open-loop live ingest in rising steps, then restarts (:mod:`benchmarks.capacity`)."""
    result = report.capacity = run_capacity(config.capacity, work, progress, run_continuous)
    m, notes = report.metrics, report.notes
    c = config.capacity
    if result.continuous:
        lines = result.continuous
        which = ", ".join(f"{line.store} {line.rate:g}/s x {line.minutes:g} min" for line in lines)
        m["capacity_continuous_achieved_share"] = min(line.achieved / line.rate for line in lines)
        m["capacity_continuous_post_p99_ms"] = max(line.post_p99_ms for line in lines)
        m["capacity_continuous_post_max_ms"] = max(line.post_max_ms for line in lines)
        m["capacity_continuous_edge_p99_ms"] = max(line.edge_p99_ms for line in lines)
        growth = [g for line in lines for g in line.rss_growth.values() if math.isfinite(g)]
        m["capacity_continuous_rss_growth_pct"] = 100 * max(growth, default=0.0)
        for key in CONTINUOUS_KEYS:
            notes[key] = f"worst of {which}"
        notes["capacity_continuous_rss_growth_pct"] = f"any process, from minute 5 (or halfway) to the end; {which}"
    else:
        m["capacity_posts_per_s"] = result.capacity
        notes["capacity_posts_per_s"] = f"{c.flows} flows, open loop, highest held step"
    if result.all_resumes:
        m["capacity_resume_p99_ms"] = result.resume_p99_ms
        notes["capacity_resume_p99_ms"] = "first POST of each flow after a restart, worst case"
    m["capacity_lost"] = float(result.lost)
    m["capacity_overlaps"] = float(result.overlaps)
    report.details += format_capacity(result, format_continuous)


def _backup(config: BenchConfig, report: Report, work: Path, progress: Callable[[str], None]) -> None:
    """A live store backed up through its server while single-segment POSTs go on (:mod:`benchmarks.backup`)."""
    result = report.backup = run_backup(config.backup, work, progress)
    m = report.metrics
    m["backup_s"] = result.backup_s
    m["backup_mib"] = result.backup_mib
    m["backup_post_p99_baseline_ms"] = result.baseline.p99_ms
    m["backup_post_p99_ms"] = result.during.p99_ms
    m["backup_post_p99_copy_ms"] = result.copying.p99_ms
    m["backup_lost"] = float(result.lost)
    c = config.backup
    report.notes["backup_s"] = f"{_count(c.segments)} segments, through the server"
    report.notes["backup_post_p99_ms"] = f"during the backup command, {c.rate:g}/s open loop"
    report.notes["backup_post_p99_copy_ms"] = "while the server copied the store"
    report.notes["backup_post_p99_baseline_ms"] = f"without a backup, {c.rate:g}/s open loop"
    report.details += format_backup(result)


def _console(config: BenchConfig, report: Report, work: Path, progress: Callable[[str], None]) -> None:
    """The console's flow list and flows' timelines in Chromium on an aged store (:mod:`benchmarks.console`)."""
    result = report.console = run_console(config.console, work, progress)
    m = report.metrics
    m["console_flow_list_p99_ms"] = result.flow_list.p99_ms
    m["console_timeline_p99_ms"] = result.timeline.p99_ms
    m["console_flow_list_vs_api"] = ratio(result.flow_list.p50_ms, result.flow_list_api.p50_ms)
    m["console_timeline_vs_api"] = ratio(result.timeline.p50_ms, result.timeline_api.p50_ms)
    c = config.console
    where = f"aged store {c.store} ({result.segments:,} segments, {c.flows:,} flows), Chromium, {c.repeat} loads"
    report.notes["console_flow_list_p99_ms"] = f"navigation to the first page of flows on screen; {where}"
    report.notes["console_timeline_p99_ms"] = f"navigation to a random flow's whole timeline drawn; {where}"
    report.notes["console_flow_list_vs_api"] = "p50 of the view over p50 of GET /flows?limit=50 alone"
    report.notes["console_timeline_vs_api"] = "p50 of the view over p50 of its coverage request alone"
    report.details += format_console(result)


def _http(
    config: BenchConfig, report: Report, served: Store, long_flow: str, data_dir: Path, progress: Callable[[str], None]
) -> None:
    from server.config import Settings

    max_limit = int(Settings.model_fields["max_limit"].default)
    batches = rest.ingest_batches(config.ingest_batches + rest.WARMUP_BATCHES)
    with LiveServer(served.url, data_dir) as server:
        progress(f"streaming {config.list_segments:,} segments through the API ({max_limit} per page) ...")
        listed = rest.stream_flow(server, long_flow, max_limit, config.list_segments)
        report.metrics["list_1m_peak_rss_mb"] = listed.peak_rss_mb
        report.notes["list_1m_peak_rss_mb"] = f"{_count(listed.segments)} segments"
        report.details.append(
            f"listing: {listed.segments:,} segments in {listed.pages} pages in {listed.seconds:.1f} s "
            f"({listed.segments / listed.seconds:,.0f} segments/s); server RSS {listed.start_rss_mb:.0f} MB "
            f"before, peak {listed.peak_rss_mb:.0f} MB"
        )
        progress("load: segment pages against GET / ...")
        paths = rest.page_paths(served.flow_id, served.window)
        pages = rest.page_vs_trivial(
            server, paths, repeat=config.http_repeat, seconds=config.http_seconds, concurrency=config.concurrency
        )
        report.metrics["rest_page_vs_trivial"] = pages.ratio
        report.notes["rest_page_vs_trivial"] = f"limit={rest.PAGE_LIMIT}, {config.concurrency} connections"
        report.details.append(
            f"HTTP ({config.concurrency} connections, {config.http_repeat} x {config.http_seconds:g} s each): "
            f"segments page {pages.page_rps:,.0f} req/s, GET / {pages.trivial_rps:,.0f} req/s"
        )
        progress(f"ingest: {len(batches)} bulk POSTs of {rest.INGEST_BATCH} segments ...")
        api_times = rest.ingest_api(server, batches)
    progress("load: segment pages against GET /, rendered pages not kept ...")
    with LiveServer(served.url, data_dir, env={"TAMS_PAGE_CACHE_MB": "0"}) as server:
        rendered = rest.page_vs_trivial(
            server,
            paths,
            repeat=min(3, config.http_repeat),
            seconds=config.http_seconds,
            concurrency=config.concurrency,
        )
    report.details.append(
        f"HTTP with rendered pages not kept (every page rendered from the read cache): segments page "
        f"{rendered.page_rps:,.0f} req/s, GET / {rendered.trivial_rps:,.0f} req/s (ratio {rendered.ratio:.3f})"
    )
    progress("load: segment pages against GET /, read cache off ...")
    with LiveServer(served.url, data_dir, env={"TAMS_READ_CACHE_ROWS": "0"}) as server:
        repeat = min(3, config.http_repeat)
        cold = rest.page_vs_trivial(
            server, paths, repeat=repeat, seconds=config.http_seconds, concurrency=config.concurrency
        )
    report.details.append(
        f"HTTP with the read cache off (every page reads DuckDB): segments page {cold.page_rps:,.0f} req/s, "
        f"GET / {cold.trivial_rps:,.0f} req/s (ratio {cold.ratio:.3f})"
    )
    progress("ingest: the same rows appended straight into DuckDB ...")
    raw_times = rest.raw_append(served.path, batches)
    api_rate = rest.per_second(rest.INGEST_BATCH, api_times)
    raw_rate = rest.per_second(rest.INGEST_BATCH, raw_times)
    report.metrics["ingest_segments_per_s"] = api_rate
    report.metrics["ingest_vs_raw_append"] = ratio(api_rate, raw_rate)
    report.notes["ingest_segments_per_s"] = f"POSTs of {rest.INGEST_BATCH}"
    report.details.append(
        f"ingest: median POST of {rest.INGEST_BATCH} segments {rest.INGEST_BATCH / api_rate * 1e3:.0f} ms "
        f"({api_rate:,.0f} segments/s); raw INSERT from Arrow {rest.INGEST_BATCH / raw_rate * 1e3:.1f} ms "
        f"({raw_rate:,.0f} segments/s)"
    )


def _value(v: float) -> str:
    if not math.isfinite(v):
        return str(v)
    return f"{v:,.0f}" if abs(v) >= 100 else f"{v:.2f}" if abs(v) >= 0.1 else f"{v:.3g}"


def format_table(report: Report) -> str:
    """The metrics as a text table: metric, value, target, met?"""
    rows = [("metric", "value", "target", "met?")]
    for k in (k for k in ALL_KEYS if k in report.metrics):
        target = TARGETS[k]
        ok = met(k, report.metrics[k])
        name = f"{k} ({report.notes[k]})" if k in report.notes else k
        rows.append(
            (
                name,
                _value(report.metrics[k]),
                f"{target[0]} {_value(target[1])}" if target else "-",
                "-" if ok is None else "yes" if ok else "NO",
            )
        )
    return text_table(rows)


def format_report(report: Report) -> str:
    m = report.machine
    head = (
        f"machine: {m.get('cpu')}, {m.get('cores')} cores, {m.get('ram')} RAM; Python {m.get('python')}, "
        f"DuckDB {m.get('duckdb')}; {m.get('os')}; load average (1/5/15 min) {m.get('load_start')} at the start, "
        f"{m.get('load_end')} at the end"
    )
    parts = [head, *report.details, f"total {report.seconds:.0f} s"]
    if report.metrics:
        parts += ["", format_table(report)]
    if report.peer is not None:
        parts += ["", format_peer(report.peer)]
    if report.trino is not None:
        parts += ["", format_trino(report.trino)]
    return "\n".join(parts)


def write_json(report: Report, path: Path) -> None:
    """The metrics as JSON: :data:`KEYS` (those measured), ``run`` (date, machine, tree, notes: what
    ``python -m benchmarks.record`` needs), plus ``peer`` with ``--peer``, ``trino`` with ``--only trino``, ``capacity``
    and ``backup`` with theirs."""
    path.write_text(json.dumps(report.json(), indent=2) + "\n")
