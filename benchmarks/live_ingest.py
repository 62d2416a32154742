"""Live ingest, as a recorder drives a TAMS server: many flows, each receiving ONE segment per request.

``writers`` keep-alive connections each post single abutting segments, in time order, to their share of
``flows`` flows (round robin, one request in flight per connection), while ``readers`` connections follow
the newest segment of random flows (``GET /flows/{id}/segments?reverse_order=true&limit=1``). Every
request's latency is recorded. ``GET /`` of the same server, measured right before, is the yardstick.
Afterwards every acknowledged segment must be stored, and no two segments of a flow may overlap.
"""

from __future__ import annotations

import asyncio
import json
import random
import statistics
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

from benchmarks.loadgen import HttpError, load
from benchmarks.stores import video_flow
from tams_analytics.timerange import NS_PER_SECOND, TimeRange

#: live-ingest timeline: far after the demo epoch, so no live segment meets a demo one
LIVE_EPOCH_NS = 1_950_000_000 * NS_PER_SECOND


@dataclass
class Latencies:
    """Seconds per request of one kind."""

    samples: list[float] = field(default_factory=list)

    def ms(self, q: float) -> float:
        if not self.samples:
            return 0.0
        ordered = sorted(self.samples)
        return 1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    @property
    def p50_ms(self) -> float:
        return 1000 * statistics.median(self.samples) if self.samples else 0.0

    @property
    def p99_ms(self) -> float:
        return self.ms(0.99)


@dataclass
class LiveIngestResult:
    posts: int
    seconds: float
    post: Latencies
    edge: Latencies
    trivial_rps: float
    failed_posts: int
    lost: int = -1
    overlaps: int = -1

    @property
    def posts_per_s(self) -> float:
        return self.posts / self.seconds if self.seconds else 0.0

    @property
    def ratio(self) -> float:
        return self.posts_per_s / self.trivial_rps if self.trivial_rps else 0.0


def _post_bytes(host: str, port: int, flow_id: str, body: bytes) -> bytes:
    head = (
        f"POST /flows/{flow_id}/segments HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """An HTTP/1.1 answer's status and body (by its Content-Length) from ``reader``."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    body = await reader.readexactly(length) if length else b""
    return status, body


class _Run:
    def __init__(self, host: str, port: int, flows: Sequence[str], duration_ns: int) -> None:
        self.host, self.port = host, port
        self.flows = list(flows)
        self.duration_ns = duration_ns
        self.next_start = dict.fromkeys(self.flows, LIVE_EPOCH_NS)
        self.acknowledged: dict[str, list[tuple[str, str]]] = {f: [] for f in self.flows}
        self.post = Latencies()
        self.edge = Latencies()
        self.failed = 0

    async def writer(self, flows: Sequence[str], deadline: float) -> None:
        reader, writer = await asyncio.open_connection(self.host, self.port)
        try:
            i = 0
            while time.perf_counter() < deadline:
                fid = flows[i % len(flows)]
                i += 1
                start = self.next_start[fid]
                tr = str(TimeRange.from_ns(start, start + self.duration_ns))
                oid = str(uuid.uuid4())
                body = json.dumps({"object_id": oid, "timerange": tr}).encode()
                t0 = time.perf_counter()
                writer.write(_post_bytes(self.host, self.port, fid, body))
                status, answer = await read_response(reader)
                self.post.samples.append(time.perf_counter() - t0)
                if status == 201:
                    self.next_start[fid] = start + self.duration_ns
                    self.acknowledged[fid].append((oid, tr))
                else:
                    self.failed += 1
                    raise HttpError(f"POST {fid}: {status} {answer[:200]!r}")
        finally:
            writer.close()
            await writer.wait_closed()

    async def reader(self, deadline: float, seed: int) -> None:
        rng = random.Random(seed)
        reader, writer = await asyncio.open_connection(self.host, self.port)
        try:
            while time.perf_counter() < deadline:
                fid = rng.choice(self.flows)
                req = (
                    f"GET /flows/{fid}/segments?reverse_order=true&limit=1 HTTP/1.1\r\n"
                    f"Host: {self.host}:{self.port}\r\nAccept: application/json\r\n\r\n"
                ).encode()
                t0 = time.perf_counter()
                writer.write(req)
                status, _ = await read_response(reader)
                self.edge.samples.append(time.perf_counter() - t0)
                if status != 200:
                    raise HttpError(f"live edge of {fid}: {status}")
        finally:
            writer.close()
            await writer.wait_closed()

    async def run(self, writers: int, readers: int, seconds: float) -> float:
        started = time.perf_counter()
        deadline = started + seconds
        shares = [self.flows[k::writers] for k in range(writers)]
        tasks = [self.writer(share, deadline) for share in shares if share]
        tasks += [self.reader(deadline, seed) for seed in range(readers)]
        await asyncio.gather(*tasks)
        return time.perf_counter() - started


def live_ingest(
    host: str,
    port: int,
    flows: Sequence[str],
    *,
    writers: int = 16,
    readers: int = 4,
    seconds: float = 10.0,
    segment_s: float = 2.0,
    trivial_seconds: float = 3.0,
) -> tuple[LiveIngestResult, dict[str, list[tuple[str, str]]]]:
    """Run the live-ingest load; returns the result and the acknowledged ``(object_id, timerange)`` per flow."""
    trivial = load(host, port, ["/"], concurrency=writers, seconds=trivial_seconds).per_second
    run = _Run(host, port, flows, int(segment_s * NS_PER_SECOND))
    elapsed = asyncio.run(run.run(writers, readers, seconds))
    posts = sum(len(v) for v in run.acknowledged.values())
    result = LiveIngestResult(posts, elapsed, run.post, run.edge, trivial, run.failed)
    return result, run.acknowledged


def create_flows(base_url: str, n: int) -> list[str]:
    """``n`` new H.264 video flows (each with its own source) through the API."""
    import httpx

    flows = []
    with httpx.Client(base_url=base_url, timeout=30.0) as client:
        for _ in range(n):
            body = video_flow()
            fid = body["id"]
            r = client.put(f"/flows/{fid}", json=body)
            if r.status_code not in (200, 201, 204):
                raise HttpError(f"PUT /flows/{fid}: {r.status_code} {r.text[:200]}")
            flows.append(fid)
    return flows


def preload(store_url: str, flows: Sequence[str], segments: int, segment_s: float = 2.0) -> None:
    """Give each flow ``segments`` abutting segments before :data:`LIVE_EPOCH_NS` (the live edge follows them),
    written interleaved in time across the flows, as live recorders would have left them."""
    import numpy as np
    import pyarrow as pa

    from tams_analytics.catalog import connect
    from tams_analytics.catalog.bulk import load_segments
    from tams_analytics.timerange_vector import format_timeranges

    step = int(segment_s * NS_PER_SECOND)
    first = LIVE_EPOCH_NS - segments * step
    chunk = 5_000
    with connect(store_url) as cat:
        for lo in range(0, segments, chunk):
            n = min(chunk, segments - lo)
            starts = first + (lo + np.arange(n, dtype=np.int64)) * step
            for fid in flows:
                s, e = pa.array(starts, pa.int64()), pa.array(starts + step, pa.int64())
                rows = pa.table(
                    {
                        "object_id": pa.array([str(uuid.uuid4()) for _ in range(n)]),
                        "timerange": format_timeranges(s, e),
                        "start_ns": s,
                        "end_ns": e,
                    }
                )
                load_segments(cat, fid, rows)


def verify(store_url: str, acknowledged: dict[str, list[tuple[str, str]]]) -> tuple[int, int]:
    """``(lost, overlaps)``: acknowledged segments missing from the store, and pairs of overlapping segments."""
    from tams_analytics.analytics.integrity import overlapping_segments
    from tams_analytics.catalog import connect
    from tams_analytics.predicates import Term

    with connect(store_url) as cat:
        lost = 0
        for fid, items in acknowledged.items():
            t = cat.rows("segments", [Term("flow_id", "==", fid)], columns=["object_id"])
            have = set(t.column(0).to_pylist())
            lost += sum(1 for oid, _ in items if oid not in have)
        overlaps = int(overlapping_segments(cat).count().to_pyarrow().as_py())
    return lost, overlaps
