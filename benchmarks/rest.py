"""The HTTP benchmarks on a live server: a segments page against a trivial endpoint, bulk ingest, and
streaming a long flow's segments page by page."""

from __future__ import annotations

import json
import statistics
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import duckdb
import numpy as np
import pyarrow as pa

from benchmarks.live import LiveServer, PeakRss
from benchmarks.loadgen import load
from benchmarks.measure import ratio
from benchmarks.stores import video_flow
from tams_analytics.schema import SEGMENTS
from tams_analytics.timerange import NS_PER_SECOND, TimeRange
from tams_analytics.timerange_vector import format_timeranges

#: rows per segments page in the page benchmark (the server's default limit)
PAGE_LIMIT = 100
#: segments per bulk POST
INGEST_BATCH = 1000
#: untimed bulk POSTs first: the server loads the objects index and warms its caches
WARMUP_BATCHES = 5
#: ingest timeline: far after the demo epoch, so no ingest segment meets a demo one
INGEST_EPOCH_NS = 1_900_000_000 * NS_PER_SECOND


@dataclass(frozen=True)
class PageResult:
    page_rps: float
    trivial_rps: float

    @property
    def ratio(self) -> float:
        return ratio(self.page_rps, self.trivial_rps)


@dataclass(frozen=True)
class IngestResult:
    segments: int
    api_per_s: float
    raw_per_s: float

    @property
    def ratio(self) -> float:
        return ratio(self.api_per_s, self.raw_per_s)


@dataclass(frozen=True)
class ListResult:
    segments: int
    pages: int
    seconds: float
    start_rss_mb: float
    peak_rss_mb: float


def page_paths(flow_id: str, window: TimeRange, count: int = 8, limit: int = PAGE_LIMIT) -> list[str]:
    """``count`` segment page URLs for one-hour windows, 5 minutes apart from ``window``'s start."""
    assert window.start_ns is not None
    out = []
    for k in range(count):
        lo = window.start_ns + k * 300 * NS_PER_SECOND
        tr = TimeRange.from_ns(lo, lo + 3600 * NS_PER_SECOND)
        out.append(f"/flows/{flow_id}/segments?timerange={quote(str(tr), safe='')}&limit={limit}")
    return out


def page_vs_trivial(
    server: LiveServer, paths: list[str], *, repeat: int, seconds: float, concurrency: int
) -> PageResult:
    """Requests per second of segment pages and of ``GET /``, alternated, medians over ``repeat`` runs."""
    trivial = ["/"]
    load(server.host, server.port, trivial, concurrency=concurrency, seconds=min(1.0, seconds))
    load(server.host, server.port, paths, concurrency=concurrency, seconds=min(1.0, seconds))
    pages: list[float] = []
    trivials: list[float] = []
    for i in range(max(1, repeat)):
        order = ((paths, pages), (trivial, trivials))
        for p, into in order if i % 2 == 0 else reversed(order):
            into.append(load(server.host, server.port, p, concurrency=concurrency, seconds=seconds).per_second)
    return PageResult(statistics.median(pages), statistics.median(trivials))


def ingest_batches(batches: int, size: int = INGEST_BATCH, seed: int = 11) -> list[list[dict[str, str]]]:
    """``batches`` lists of ``size`` abutting two-second segments, each with a new object."""
    rng = np.random.default_rng(seed)
    n = batches * size
    starts = INGEST_EPOCH_NS + np.arange(n, dtype=np.int64) * 2 * NS_PER_SECOND
    texts = format_timeranges(starts, starts + 2 * NS_PER_SECOND).to_pylist()
    ids = [str(uuid.UUID(bytes=bytes(b), version=4)) for b in rng.integers(0, 256, (n, 16), dtype=np.uint8)]
    docs = [{"object_id": i, "timerange": t} for i, t in zip(ids, texts, strict=True)]
    return [docs[k * size : (k + 1) * size] for k in range(batches)]


def ingest_api(server: LiveServer, batches: list[list[dict[str, str]]], *, warmup: int = WARMUP_BATCHES) -> list[float]:
    """POST each batch to a new flow; the per-batch wall times of the timed batches (after ``warmup``)."""
    import httpx

    flow_id = str(uuid.uuid4())
    flow = video_flow(flow_id, label="benchmark ingest")
    times: list[float] = []
    with httpx.Client(base_url=server.base_url, timeout=300.0) as client:
        r = client.put(f"/flows/{flow_id}", json=flow)
        if r.status_code not in (200, 201, 204):
            raise RuntimeError(f"PUT flow answered {r.status_code}: {r.text}")
        bodies = [json.dumps(b).encode() for b in batches]
        for k, body in enumerate(bodies):
            started = time.perf_counter()
            r = client.post(f"/flows/{flow_id}/segments", content=body, headers={"content-type": "application/json"})
            elapsed = time.perf_counter() - started
            if r.status_code != 201:
                raise RuntimeError(f"bulk POST answered {r.status_code}: {r.text[:500]}")
            if k >= warmup:
                times.append(elapsed)
    return times


def raw_append(path: Path, batches: list[list[dict[str, str]]], *, warmup: int = WARMUP_BATCHES) -> list[float]:
    """Append the same rows straight into the store's ``segments`` table (INSERT from Arrow, one per batch)."""
    flow_id = str(uuid.uuid4())
    schema = pa.schema([f.with_nullable(True) for f in SEGMENTS])
    tables = []
    for batch in batches:
        trs = [TimeRange.from_str(d["timerange"]).storage_bounds() for d in batch]
        n = len(batch)
        cols = {
            "flow_id": pa.array([flow_id] * n, pa.string()),
            "object_id": pa.array([d["object_id"] for d in batch], pa.string()),
            "timerange": pa.array([d["timerange"] for d in batch], pa.string()),
            "start_ns": pa.array([s for s, _ in trs], pa.int64()),
            "end_ns": pa.array([e for _, e in trs], pa.int64()),
            "created": pa.array([time.time_ns() // 1000] * n, pa.int64()).cast(schema.field("created").type),
        }
        tables.append(pa.table({f.name: cols.get(f.name, pa.nulls(n, f.type)) for f in schema}, schema=schema))
    times: list[float] = []
    con = duckdb.connect(str(path))
    try:
        for k, table in enumerate(tables):
            started = time.perf_counter()
            con.register("_bench_batch", table)
            con.execute("INSERT INTO segments SELECT * FROM _bench_batch")
            con.unregister("_bench_batch")
            elapsed = time.perf_counter() - started
            if k >= warmup:
                times.append(elapsed)
        con.execute("DELETE FROM segments WHERE flow_id = ?", [flow_id])
    finally:
        con.close()
    return times


def per_second(size: int, times: list[float]) -> float:
    """Segments per second from per-batch wall times (median batch)."""
    return ratio(size, statistics.median(times))


def stream_flow(server: LiveServer, flow_id: str, limit: int, expected: int) -> ListResult:
    """Fetch every segment of ``flow_id`` following ``Link: rel="next"``, sampling the server's RSS."""
    import httpx

    pages = 0
    seen = 0
    with httpx.Client(timeout=300.0) as client, PeakRss(server.pid) as rss:
        started = time.perf_counter()
        url: str | None = f"{server.base_url}/flows/{flow_id}/segments?limit={limit}"
        while url:
            r = client.get(url)
            if r.status_code != 200:
                raise RuntimeError(f"segments page answered {r.status_code}: {r.text[:500]}")
            pages += 1
            seen += int(r.headers["x-paging-count"])
            url = r.links.get("next", {}).get("url")
        seconds = time.perf_counter() - started
    if seen != expected:
        raise RuntimeError(f"streamed {seen} segments of flow {flow_id}, expected {expected}")
    return ListResult(seen, pages, seconds, rss.start_mb, rss.peak_mb)
