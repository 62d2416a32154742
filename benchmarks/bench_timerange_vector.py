"""Throughput of the vectorised timerange parser and formatters.

Run with ``python -m benchmarks.bench_timerange_vector [rows]`` (default 1,000,000 rows). Prints rows/s
for :func:`parse_timeranges` on a varied mix of valid strings (canonical and not), for
:func:`format_timeranges` on the parsed bounds, and for :func:`format_timestamps`.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

import numpy as np
import pyarrow as pa

from tams_analytics.timerange import MAX_NS
from tams_analytics.timerange_vector import format_timeranges, format_timestamps, parse_timeranges

#: Shapes of timerange text, filled with timestamps ``a`` and ``b``; canonical and non-canonical.
SHAPES = (
    "[{a}_{b})",
    "[{a}_{b})",
    "[{a}_{b})",
    "[{a}_{b}]",
    "({a}_{b})",
    "{a}_{b}",
    "[{a}]",
    "{a}",
    "({a}]",
    "[{a}_",
    "({a}_",
    "_{b})",
    "(_{b}]",
    "[{b}_{a})",
    "_",
    "()",
    "",
)


def _timestamp_texts(ns: np.ndarray) -> list[str]:
    seconds, nanos = np.divmod(np.abs(ns), 1_000_000_000)
    signs = np.where(ns < 0, "-", "")
    return [f"{s}{a}:{b}" for s, a, b in zip(signs.tolist(), seconds.tolist(), nanos.tolist(), strict=True)]


def varied_timeranges(rows: int, seed: int = 0) -> pa.Array:
    """``rows`` valid timerange strings of every shape, around TAI now and around zero."""
    rng = np.random.default_rng(seed)
    near_now = rng.integers(1_600_000_000, 1_800_000_000, rows) * 1_000_000_000
    near_zero = rng.integers(-10_000_000_000, 10_000_000_000, rows)
    start = np.where(rng.random(rows) < 0.8, near_now + rng.integers(0, 1_000_000_000, rows), near_zero)
    end = start + rng.choice([0, 1, 40_000_000, 1_920_000_000, 10_000_000_000], rows)
    shapes = rng.integers(0, len(SHAPES), rows)
    texts = [
        SHAPES[k].format(a=a, b=b)
        for k, a, b in zip(shapes.tolist(), _timestamp_texts(start), _timestamp_texts(end), strict=True)
    ]
    return pa.array(texts, type=pa.string())


def _rate(rows: int, fn: Callable[[], object], repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - started)
    return rows / best


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    rows = int(args[0]) if args else 1_000_000
    texts = varied_timeranges(rows)
    parsed = parse_timeranges(texts)
    bounded = np.where((parsed.start_ns >= -MAX_NS) & (parsed.start_ns <= MAX_NS), parsed.start_ns, 0)
    results = {
        "parse_timeranges": _rate(rows, lambda: parse_timeranges(texts)),
        "format_timeranges": _rate(rows, lambda: format_timeranges(parsed.start_ns, parsed.end_ns)),
        "format_timestamps": _rate(rows, lambda: format_timestamps(bounded)),
    }
    print(f"{rows:,} varied timerange strings (best of 3)")
    for name, rate in results.items():
        print(f"{name:18s} {rate:>14,.0f} rows/s   {rows / rate:.3f} s")


if __name__ == "__main__":
    main()
