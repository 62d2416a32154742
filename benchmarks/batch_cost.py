"""What one batch of the server's segment writer costs in CPU, by the number of POSTs it holds: the part every batch
pays whatever it holds, and the part each POST adds.

Live ingest at 400 POSTs/s comes to the writer thread as about 200 batches a second of one to three single-segment
POSTs each, so what a batch costs however small it is decides how much of a core the writer needs. The capacity
lines (``tams-analytics bench --only capacity``) measure it mixed with everything else the server's processes do, on a
busy machine; this measures it alone, in one thread, in about 20 s.

``python -m benchmarks.batch_cost [--sizes 1,2,4,8,16] [--posts 2000] [--flows 400]`` starts the server's app
(``create_app`` with its default settings, its background workers off: a DuckDB file in a new folder, its journal and
the read cache), creates ``--flows`` video flows, warms every flow up with a few POSTs, then for each size registers
``--posts`` single-segment POSTs (each on the next flow, abutting that flow's last segment, a new object) in batches
of that size through :meth:`server.ingest.SegmentWriter.apply` (the writer thread's work on a batch) and times each
batch's CPU on this thread (``time.thread_time``: the journal's applier and fsync waits are not counted) and its
wall time (with the journal's fsync). It prints the medians, the CPU a POST, the least-squares line through the
medians (CPU a batch = fixed + per POST x size), and the share of a core the writer's batches need at ``--rate``
POSTs/s for each size.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa

import tams_analytics
from benchmarks.stores import video_flow
from benchmarks.text_table import text_table
from server.app import create_app
from server.config import Settings
from tams_analytics.catalog import AddResult
from tams_analytics.catalog.registration import Registration

#: POSTs each flow gets before any batch is timed (the read cache then holds every flow's timeline)
WARM_POSTS = 2
#: a segment's duration, seconds (the capacity lines' live recorders post 2-s segments)
SEGMENT_S = 2


@dataclass
class Sized:
    """The batches of one size: each one's CPU and wall time, µs."""

    size: int
    cpu_us: list[float]
    wall_us: list[float]

    @property
    def cpu_median(self) -> float:
        return statistics.median(self.cpu_us)


class Posts:
    """Single-segment POSTs to ``flow_ids`` in turn, each abutting the last one of its flow, each a new object."""

    def __init__(self, flow_ids: Sequence[str]) -> None:
        self.flow_ids = list(flow_ids)
        self._next_s = dict.fromkeys(self.flow_ids, 0)
        self._turn = 0

    def batch(self, size: int) -> list[Registration]:
        out = []
        for _ in range(size):
            flow_id = self.flow_ids[self._turn % len(self.flow_ids)]
            self._turn += 1
            start = self._next_s[flow_id]
            self._next_s[flow_id] = start + SEGMENT_S
            doc = {"object_id": str(uuid.uuid4()), "timerange": f"[{start}:0_{start + SEGMENT_S}:0)"}
            out.append(Registration.of(flow_id, [doc]))
        return out


def apply(writer: Any, batch: Sequence[Registration]) -> tuple[float, float]:
    """Register ``batch`` with ``writer`` (the app's :class:`server.ingest.SegmentWriter`); its CPU and wall time, µs.
    Raises unless every segment was accepted."""
    wall, cpu = time.perf_counter(), time.thread_time()
    outcomes = writer.apply(batch)
    cpu, wall = time.thread_time() - cpu, time.perf_counter() - wall
    refused = [o for o in outcomes if not isinstance(o, AddResult) or o.failed]
    if refused:
        raise RuntimeError(f"the benchmark's segments were refused: {refused[0]}")
    return cpu * 1e6, wall * 1e6


def measure(sizes: Sequence[int], posts: int, flows: int, work: Path) -> list[Sized]:
    """Each size's batches, timed on the services of an app started on a new store in ``work`` (its lifespan run,
    its background workers off: nothing but the journal's applier runs beside the batches)."""
    app = create_app(Settings(data_dir=work), workers=False)

    async def started() -> list[Sized]:
        async with app.router.lifespan_context(app):
            return _measure(app.state.services, sizes, posts, flows)

    return asyncio.run(started())


def _measure(services: Any, sizes: Sequence[int], posts: int, flows: int) -> list[Sized]:
    flow_ids = []
    for _ in range(flows):
        flow = video_flow()
        services.catalog.put_flow(flow)
        flow_ids.append(flow["id"])
    source = Posts(flow_ids)
    for _ in range(WARM_POSTS * flows // 4):
        apply(services.segments, source.batch(4))
    measured = []
    for size in sizes:
        timed = [apply(services.segments, source.batch(size)) for _ in range(max(1, posts // size))]
        measured.append(Sized(size, [c for c, _ in timed], [w for _, w in timed]))
    return measured


def fit(measured: Sequence[Sized]) -> tuple[float, float]:
    """The least-squares line through the median CPU of two sizes or more: (µs every batch pays, µs each POST adds).

    >>> fit([Sized(1, [2.5], []), Sized(3, [3.5], []), Sized(5, [4.5], [])])
    (2.0, 0.5)
    """
    slope, intercept = np.polyfit([m.size for m in measured], [m.cpu_median for m in measured], 1)
    return round(float(intercept), 6), round(float(slope), 6)


def report(measured: Sequence[Sized], rate: float) -> list[str]:
    """The table: per size, the batches timed, median and p99 CPU µs, median wall µs, CPU µs a POST, and the share
    of a core the writer's batches need at ``rate`` POSTs/s; then the fitted line.

    >>> lines = report([Sized(2, [1000.0, 1200.0, 1100.0], [1500.0, 1700.0, 1600.0])], 400.0)
    >>> lines[2].split()
    ['2', '3', '1,100', '1,198', '1,600', '550', '22', '%']
    """
    rows = [
        (
            f"{m.size}",
            f"{len(m.cpu_us):,}",
            f"{m.cpu_median:,.0f}",
            f"{float(np.percentile(m.cpu_us, 99)):,.0f}",
            f"{statistics.median(m.wall_us):,.0f}",
            f"{m.cpu_median / m.size:,.0f}",
            f"{100 * rate / m.size * m.cpu_median / 1e6:.0f} %",
        )
        for m in measured
    ]
    head = ("POSTs a batch", "batches", "CPU µs", "p99", "wall µs", "CPU µs a POST", f"a core at {rate:g}/s")
    lines = text_table([head, *rows]).splitlines()
    if len(measured) > 1:
        fixed, per_post = fit(measured)
        lines.append(f"CPU a batch = {fixed:,.0f} µs + {per_post:,.0f} µs a POST (least squares through the medians)")
    return lines


def _sizes(text: str) -> list[int]:
    sizes = [int(part) for part in text.split(",") if part.strip()]
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"sizes must be positive integers, not {text!r}")
    return sizes


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.batch_cost", description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=_sizes, default=[1, 2, 4, 8, 16], help="POSTs a batch (1,2,4,8,16)")
    parser.add_argument("--posts", type=int, default=2000, help="POSTs timed at each size (default 2000)")
    parser.add_argument("--flows", type=int, default=400, help="flows posted to in turn (default 400)")
    parser.add_argument("--rate", type=float, default=400.0, help="POSTs/s for the share of a core (default 400)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="tams-batch-cost-") as work:
        measured = measure(args.sizes, args.posts, args.flows, Path(work))
    print(
        f"tams-analytics {tams_analytics.__version__}, DuckDB {duckdb.__version__}, pyarrow {pa.__version__}: the "
        f"segment writer's CPU a batch of single-segment POSTs to {args.flows} flows (a new store, its journal and "
        "read cache, as the server opens it)"
    )
    print("\n".join(report(measured, args.rate)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
