"""The read cache's merges of the known ids on an archive's store: one sorted level or two, side by side in one run.

Every :data:`~tams_analytics.cache.known.MERGE_AT` registrations the store process merges the recent ids' hashes
into sorted arrays, on a thread of its own beside the writer (:mod:`tams_analytics.cache.known`). In one level, each
merge copies every id known: 16 bytes an id, 128 MiB on a store of 8 M objects. In two (:class:`~tams_analytics.cache
.known.Levels`), a merge copies the ids merged since the last fold, and the fold copies every id once the young level
has outgrown its bound.

``python -m benchmarks.known_merges [--ids N] [--merges N]`` makes ``--ids`` random hashes (the store's objects,
as the load leaves them), then merges ``--merges`` batches of ``MERGE_AT`` new ones into each layout, the two taking
turns, the same hashes for both. It prints, per layout, each merge's wall time (median, slowest, merges over 50 ms,
all of them together), the CPU they took, and the MiB each merge made on average, then the ratios. Both layouts
merge with the same :func:`~tams_analytics.cache.known._merged`, so one level here is the former layout with today's
merge (its places worked out once), a little faster than the former tree's.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np

from tams_analytics.cache.known import _NONE_HELD, MERGE_AT, Held, Levels, _merged

T = TypeVar("T")


@dataclass
class Side:
    """One layout's merges: their wall and CPU seconds, and the bytes of the arrays each made."""

    name: str
    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    written: list[int] = field(default_factory=list)


def _timed(side: Side, merge: Callable[..., T], *args: Any) -> T:
    """``merge(*args)``, its wall and CPU time (the process's: the kernel's zeroing of new pages counts) in ``side``."""
    wall, cpu = time.perf_counter(), time.process_time()
    out = merge(*args)
    side.wall.append(time.perf_counter() - wall)
    side.cpu.append(time.process_time() - cpu)
    return out


def run(ids: int, merges: int, seed: int = 1) -> tuple[Side, Side]:
    """Merges into one level and into two, taking turns (see the module docstring)."""
    rng = np.random.default_rng(seed)
    second = 1_795_791_600
    hashes = np.unique(rng.integers(0, 2**64 - 1, ids, dtype=np.uint64))
    stored = Held(hashes, np.full(len(hashes), second, np.uint32), np.full(len(hashes), second, np.uint32))
    one, two = Side("one level"), Side("two levels")
    held, levels = stored, Levels(stored, _NONE_HELD)
    for k in range(merges):
        new = np.unique(rng.integers(0, 2**64 - 1, MERGE_AT, dtype=np.uint64))
        spans = np.full((len(new), 2), second + 1 + k, np.uint32)
        before_one, before_two = held, levels
        held = _timed(one, _merged, before_one, new, spans)
        one.written.append(_made(before_one, held))
        levels = _timed(two, before_two.merged, new, spans)
        two.written.append(_made([*before_two.old, *before_two.young], [*levels.old, *levels.young]))
    if not np.array_equal(held.hashes, np.union1d(levels.old.hashes, levels.young.hashes)):
        raise AssertionError("the two layouts hold different ids")
    return one, two


def _made(before: Iterable[np.ndarray], after: Iterable[np.ndarray]) -> int:
    """The bytes of the arrays of ``after`` that are not among ``before`` (what a merge made)."""
    kept = {id(a) for a in before}
    return sum(int(a.nbytes) for a in after if id(a) not in kept)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.known_merges", description=__doc__.split("\n\n")[0])
    p.add_argument("--ids", type=int, default=8_000_000, help="the ids the store holds at start (default 8,000,000)")
    p.add_argument("--merges", type=int, default=24, help=f"merges of {MERGE_AT:,} new ids each (default 24)")
    args = p.parse_args(argv)
    one, two = run(args.ids, args.merges)
    print(f"{args.merges} merges of {MERGE_AT:,} new ids into {args.ids:,} known ids, the layouts taking turns")
    heads = f"{'median ms':>11}{'slowest ms':>12}{'over 50 ms':>12}{'all s':>8}{'CPU s':>8}{'MiB/merge':>11}"
    print(f"{'layout':<12}{heads}")
    for side in (one, two):
        print(
            f"{side.name:<12}{statistics.median(side.wall) * 1e3:>11.1f}{max(side.wall) * 1e3:>12.1f}"
            f"{sum(w > 0.05 for w in side.wall):>12}{sum(side.wall):>8.2f}{sum(side.cpu):>8.2f}"
            f"{statistics.mean(side.written) / 2**20:>11.1f}"
        )
    print(
        f"two levels / one: median x{statistics.median(two.wall) / statistics.median(one.wall):.3f}, "
        f"all x{sum(two.wall) / sum(one.wall):.3f}, CPU x{sum(two.cpu) / max(sum(one.cpu), 1e-9):.3f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
