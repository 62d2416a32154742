"""Segment pages of flows of 100k, 1M and 10M segments, on a store that grew by interleaved live ingest.

The three flows are written as live recorders leave them: their segments in time order across the flows
(a row group holds the three flows' segments of one stretch of time), never re-clustered. A page (first
page, newest first, at a deep cursor) is read through the library the way the server reads it, with the
read cache on (its flow index at O(log n)) and off (the store's own scan), each timed over repeated runs.
"""

from __future__ import annotations

import functools
import statistics
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from tams_analytics.catalog import Catalog, connect
from tams_analytics.timerange import NS_PER_SECOND
from tams_analytics.timerange_vector import format_timeranges

#: the flows' lengths; each spans the same stretch of time (longer flows have shorter segments)
LENGTHS = (100_000, 1_000_000, 10_000_000)
PAGE = 100
#: rows appended per insert (the store grows in this many steps, interleaved by time)
STEP_ROWS = 1_000_000


@dataclass(frozen=True)
class PageTimes:
    """Median and p99 seconds per page, by flow length and position."""

    times: dict[tuple[int, str], tuple[float, float]]
    index_load_s: dict[int, float]


def build(path: Path, lengths: tuple[int, ...] = LENGTHS, span_s: int = 20_000_000) -> tuple[str, dict[int, str]]:
    """A DuckDB store with one flow per length, all covering ``span_s`` seconds, rows in time order across flows."""
    url = f"duckdb:///{path}"
    flows = {n: str(uuid.uuid4()) for n in lengths}
    with connect(url, create=True) as cat:
        for fid in flows.values():
            cat.put_flow({"id": fid, "source_id": str(uuid.uuid4()), "format": "urn:x-nmos:format:data"} | _CONTAINER)
        step = {n: span_s * NS_PER_SECOND // n for n in lengths}
        total = sum(lengths)
        # merge the flows' segments by start time, and append them in slices of STEP_ROWS
        starts = np.concatenate([np.arange(n, dtype=np.int64) * step[n] for n in lengths])
        which = np.concatenate([np.full(n, i, dtype=np.int8) for i, n in enumerate(lengths)])
        order = np.argsort(starts, kind="stable")
        ids = np.array(list(flows.values()), dtype=object)
        durations = np.array([step[n] for n in lengths], dtype=np.int64)
        for lo in range(0, total, STEP_ROWS):
            part = order[lo : lo + STEP_ROWS]
            s = starts[part]
            e = s + durations[which[part]]
            sa, ea = pa.array(s, pa.int64()), pa.array(e, pa.int64())
            cat.engine.insert(
                "segments",
                pa.table(
                    {
                        "flow_id": pa.array(ids[which[part]], pa.string()),
                        "object_id": pa.array(np.char.add("o", part.astype(str)).astype(object), pa.string()),
                        "timerange": format_timeranges(sa, ea),
                        "start_ns": sa,
                        "end_ns": ea,
                    }
                ),
            )
    return url, flows


_CONTAINER = {"container": "text/plain"}


def _time(fn: Callable[[], object], repeat: int) -> tuple[float, float]:
    fn()  # warm-up
    samples = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t)
    samples.sort()
    return statistics.median(samples), samples[min(len(samples) - 1, int(0.99 * len(samples)))]


def measure(url: str, flows: dict[int, str], *, repeat: int = 51, cached: bool = True) -> PageTimes:
    """Page times for every flow and position, with the read cache on or off."""
    times: dict[tuple[int, str], tuple[float, float]] = {}
    loads: dict[int, float] = {}
    with connect(url, cache_reads=cached) as cat:
        for n, fid in flows.items():
            if cached:
                t = time.perf_counter()
                cat.segment_rows(fid, limit=1)  # loads the flow's index (rows or bounds)
                loads[n] = time.perf_counter() - t
            mid = _middle(cat, fid)
            for name, fn in {
                "first": functools.partial(cat.segment_rows, fid, limit=PAGE),
                "newest": functools.partial(cat.segment_rows, fid, reverse=True, limit=PAGE),
                "deep": functools.partial(cat.segment_rows, fid, after_start_ns=mid, limit=PAGE),
            }.items():
                times[(n, name)] = _time(fn, repeat)
    return PageTimes(times, loads)


def _middle(cat: Catalog, flow_id: str) -> int:
    extent = cat.flow_timerange(flow_id)
    assert extent.start_ns is not None and extent.end_ns is not None
    return (extent.start_ns + extent.end_ns) // 2
