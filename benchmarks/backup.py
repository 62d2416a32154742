"""Backup of a live store (``bench --only backup``): how long the server's copy of a 1M-segment DuckDB store takes,
how large it is, and what it does to live ingest meanwhile.

A demo store of ``segments`` segments (built and clustered as the other benchmarks build theirs) is served by a
real ``tams-analytics serve`` on 127.0.0.1 (a child process). The open-loop generator (:mod:`benchmarks.openloop`)
posts single segments to ``flows`` flows at ``rate`` per second, each POST timed from its scheduled time: first
``baseline_s`` seconds without a backup, then for as long as ``tams-analytics backup --server URL`` (a child
process, as cron would run it) takes. POST p50/p99 without and during the backup are the comparison; the backup's
own JSON gives its rows, bytes, the server's copy time and the whole command's time. Afterwards the backup is
restored into a new DuckDB file (timed), every acknowledged segment must be in the store, and none may overlap.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks import live_ingest
from benchmarks.live import STORAGE_ID, LiveServer
from benchmarks.live_ingest import Latencies
from benchmarks.openloop import POST, OpenLoop
from benchmarks.stores import build_store

Progress = Callable[[str], None]


@dataclass(frozen=True)
class BackupConfig:
    segments: int = 1_000_000
    #: live flows taking single-segment POSTs
    flows: int = 50
    #: offered POSTs per second, open loop
    rate: float = 200.0
    #: seconds of load before the backup (the comparison)
    baseline_s: float = 15.0
    connections: int = 32
    #: how long the last answers are waited for
    drain_s: float = 60.0
    #: extra environment of the server (``TAMS_*`` settings), e.g. ``TAMS_BACKUP_NICE=0`` for an A/B run
    server_env: tuple[tuple[str, str], ...] = ()

    @classmethod
    def smoke(cls) -> BackupConfig:
        """A small store and a short load: checks the code path, not the speed."""
        return cls(segments=20_000, flows=8, rate=40.0, baseline_s=2.0, connections=8)


@dataclass
class BackupResult:
    config: BackupConfig
    #: the backup command's JSON (backup, rows, bytes, seconds, copy_seconds, ...)
    backup: dict[str, Any]
    baseline: Latencies
    #: POSTs due while the backup command ran (its start, the server's copy, the transfer, the checksums)
    during: Latencies
    #: POSTs due while the server copied the store (the window the manifest's instant and copy time give)
    copying: Latencies
    posts_baseline: int
    posts_during: int
    errors: int
    restore_s: float
    lost: int
    overlaps: int
    setup_s: float
    notes: list[str] = field(default_factory=list)

    @property
    def backup_s(self) -> float:
        return float(self.backup["seconds"])

    @property
    def backup_mib(self) -> float:
        return float(self.backup["bytes"]) / 2**20

    def json(self) -> dict[str, Any]:
        return {
            "segments": self.config.segments,
            "rate": self.config.rate,
            "flows": self.config.flows,
            "backup_s": round(self.backup_s, 3),
            "copy_s": self.backup.get("copy_seconds"),
            "backup_mib": round(self.backup_mib, 2),
            "rows": self.backup["rows"],
            "post_p50_ms": {
                "without": self.baseline.p50_ms,
                "during": self.during.p50_ms,
                "copying": self.copying.p50_ms,
            },
            "post_p99_ms": {
                "without": self.baseline.p99_ms,
                "during": self.during.p99_ms,
                "copying": self.copying.p99_ms,
            },
            "posts": {"without": self.posts_baseline, "during": self.posts_during, "errors": self.errors},
            "restore_s": round(self.restore_s, 3),
            "lost": self.lost,
            "overlaps": self.overlaps,
        }


def format_backup(result: BackupResult) -> list[str]:
    c = result.config
    b = result.backup
    copy_s = float(b.get("copy_seconds") or 0)
    return [
        f"backup of a live store of {c.segments:,} segments through its server: {b['rows']:,} rows, "
        f"{result.backup_mib:,.1f} MiB in {result.backup_s:.1f} s (the server's copy {copy_s:.1f} s); "
        f"restored into a new DuckDB file in {result.restore_s:.1f} s",
        f"single-segment POSTs at {c.rate:g}/s over {c.flows} flows, open loop: without a backup "
        f"p50 {result.baseline.p50_ms:.1f} ms, p99 {result.baseline.p99_ms:.1f} ms ({result.posts_baseline:,} POSTs); "
        f"during the command p50 {result.during.p50_ms:.1f} ms, p99 {result.during.p99_ms:.1f} ms "
        f"({result.posts_during:,}), of which while the server copied p50 {result.copying.p50_ms:.1f} ms, "
        f"p99 {result.copying.p99_ms:.1f} ms ({len(result.copying.samples):,}); "
        f"{result.errors} errors, {result.lost} acknowledged segments lost, {result.overlaps} overlaps",
    ]


def run_backup(config: BackupConfig, work: Path, progress: Progress = lambda _m: None) -> BackupResult:
    """Build the store, measure ingest without and during a backup, restore it, check the store."""
    started = time.perf_counter()
    data_dir, repo, restored = work / "backup", work / "backup-repository", work / "backup-restored.duckdb"
    for leftover in (data_dir, repo):  # a --work-dir used before
        shutil.rmtree(leftover, ignore_errors=True)
    for leftover in (restored, Path(f"{restored}.wal")):
        leftover.unlink(missing_ok=True)
    data_dir.mkdir(parents=True)
    progress(f"backup: building a demo store of {config.segments:,} segments ...")
    store = build_store(data_dir / "tams.duckdb", config.segments, storage_id=STORAGE_ID)
    setup_s = time.perf_counter() - started
    with LiveServer(store.url, data_dir, env=dict(config.server_env)) as server:
        flows = live_ingest.create_flows(server.base_url, config.flows)
        progress(
            f"backup: {config.rate:g} POSTs/s to {config.flows} flows, {config.baseline_s:g} s without a backup, "
            "then during one ..."
        )
        loop, doc, clock = asyncio.run(_measure(config, server, flows, repo))
    progress("backup: restoring it into a new DuckDB file ...")
    from tams_analytics.backup import restore_backup

    t0 = time.perf_counter()
    restore_backup(str(repo), f"duckdb:///{restored}")
    restore_s = time.perf_counter() - t0
    lost, overlaps = live_ingest.verify(store.url, loop.acknowledged)
    base = [r for r in loop.tagged("baseline", POST)]
    during = [r for r in loop.tagged("backup", POST)]
    # the server's copy began at the manifest's instant (wall clock) and took copy_seconds
    began = dt.datetime.fromisoformat(doc["created"].replace("Z", "+00:00")).timestamp()
    window = (began, began + float(doc["copy_seconds"]))
    copying = [r for r in during if window[0] <= clock(r.due) <= window[1]]
    return BackupResult(
        config,
        doc,
        Latencies([r.latency for r in base if r.status == 201]),
        Latencies([r.latency for r in during if r.status == 201]),
        Latencies([r.latency for r in copying if r.status == 201]),
        len(base),
        len(during),
        sum(1 for r in base + during if r.status != 201),
        restore_s,
        lost,
        overlaps,
        setup_s,
        list(loop.errors),
    )


async def _measure(
    config: BackupConfig, server: LiveServer, flows: list[str], repo: Path
) -> tuple[OpenLoop, dict[str, Any], Callable[[float], float]]:
    """The load, the backup in its midst; returns the generator, the backup's JSON, and ``perf_counter`` to wall
    clock time."""
    wall, perf = time.time(), time.perf_counter()
    loop = OpenLoop(server.host, server.port, flows, connections=config.connections, reader_connections=1)
    await loop.start()
    try:
        await loop.schedule("warmup", config.rate, max(1.0, len(flows) / config.rate), read_share=0)
        await loop.drain(config.drain_s)
        await loop.schedule("baseline", config.rate, config.baseline_s, read_share=0)
        await loop.drain(config.drain_s)
        command = [sys.executable, "-m", "tams_analytics.cli", "backup", "--server", server.base_url]
        backup = await asyncio.create_subprocess_exec(
            *command, "--to", str(repo), "--format", "json", stdout=asyncio.subprocess.PIPE
        )
        out = asyncio.ensure_future(backup.communicate())
        while not out.done():  # load in one-second rounds for as long as the backup takes
            await loop.schedule("backup", config.rate, 1.0, read_share=0)
        stdout, _ = await out
        if backup.returncode != 0:
            raise RuntimeError(f"tams-analytics backup exited {backup.returncode}")
        await loop.drain(config.drain_s)
    finally:
        await loop.stop()
    return loop, json.loads(stdout), lambda t: wall + (t - perf)
