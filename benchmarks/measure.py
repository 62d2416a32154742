"""Timing helpers: medians over repeated runs after warm-up, with the compared sides interleaved.

Interleaving (run A, run B, run A, run B, ...) puts both sides of a comparison under the same machine
noise, so their ratio stays meaningful on a shared, busy machine.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping


def interleaved(fns: Mapping[str, Callable[[], object]], *, repeat: int, warmup: int = 1) -> dict[str, float]:
    """Median wall time in seconds of each function, run in turn ``repeat`` times after ``warmup`` rounds.

    >>> times = interleaved({"a": lambda: sum(range(100)), "b": lambda: None}, repeat=3)
    >>> sorted(times) == ["a", "b"] and all(t >= 0 for t in times.values())
    True
    """
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    samples: dict[str, list[float]] = {name: [] for name in fns}
    order = list(fns)
    for i in range(max(1, repeat)):
        # alternate the order too, so neither side always runs on a cache the other just warmed
        names = order if i % 2 == 0 else order[::-1]
        for name in names:
            started = time.perf_counter()
            fns[name]()
            samples[name].append(time.perf_counter() - started)
    return {name: statistics.median(values) for name, values in samples.items()}


def median_time(fn: Callable[[], object], *, repeat: int, warmup: int = 1) -> float:
    """Median wall time in seconds of ``fn`` over ``repeat`` runs after ``warmup`` runs.

    >>> median_time(lambda: None, repeat=3) >= 0
    True
    """
    return interleaved({"fn": fn}, repeat=repeat, warmup=warmup)["fn"]


def ratio(numerator: float, denominator: float) -> float:
    """``numerator / denominator``, infinite when the denominator is zero.

    >>> ratio(3.0, 2.0), ratio(1.0, 0.0)
    (1.5, inf)
    """
    return numerator / denominator if denominator else float("inf")
