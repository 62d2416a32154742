"""The disk's own floor under a continuous line: the journal's write and sync alone, at the line's rate, on the
store's volume (``bench --only capacity --capacity-continuous ...`` runs it before each line; ``python -m
benchmarks.disk_floor FOLDER RATE SECONDS`` alone).

A journaled POST of segments is acknowledged once its record is written and synced (``fdatasync``) in the store's
journal (:class:`~tams_analytics.journal.log.Log`), so no server on this volume answers faster than the volume syncs.
This measures that floor with nothing else running: the same :class:`~tams_analytics.journal.log.Log`, records of
:data:`RECORD_BYTES_PER_POST` a POST, open loop at the rate, and, as the server's group commit does, every POST due
while a sync was under way written with the next record. Each POST's latency is from its scheduled time to the end of
its record's sync. A line's POST latencies next to this show what the server adds and what the disk sets; on a
virtual machine whose disk is shared, its syncs alone can miss the line's bounds.
"""

from __future__ import annotations

import argparse
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.capacity import _quantile
from tams_analytics.journal.log import Log

__all__ = ["RECORD_BYTES_PER_POST", "DiskFloor", "measure"]

#: a live recorder's POST of one segment takes about this much of the journal (measured: 400 POSTs/s grew it by
#: 680 KB/s)
RECORD_BYTES_PER_POST = 1700


@dataclass
class DiskFloor:
    """POSTs at ``rate`` for ``seconds`` that each waited only for their record's write and sync."""

    rate: float
    seconds: float
    posts: int
    syncs: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    #: POSTs whose sync ended more than 250 ms after they were due (the issue's line: none)
    over_250ms: int

    def json(self) -> dict[str, Any]:
        return dict(vars(self))

    def describe(self) -> str:
        return (
            f"the disk alone (the journal's write and sync at {self.rate:g}/s for {self.seconds:g} s, group-committed, "
            f"{self.syncs:,} syncs): p50/p99/max {self.p50_ms:.1f}/{self.p99_ms:.1f}/{self.max_ms:.0f} ms, "
            f"{self.over_250ms} over 250 ms"
        )


def measure(folder: Path, rate: float, seconds: float, record_bytes: int = RECORD_BYTES_PER_POST) -> DiskFloor:
    """POSTs at ``rate`` for ``seconds`` into a journal in ``folder`` (made, and removed after), each waiting for its
    record's write and sync only."""
    log = Log(folder, str(uuid.uuid4()))
    count = max(1, round(rate * seconds))
    post = os.urandom(record_bytes)
    latencies: list[float] = []
    syncs = 0
    start = time.perf_counter()
    try:
        at = 0
        while at < count:
            now = time.perf_counter()
            due = start + at / rate
            if due > now:
                time.sleep(due - now)
                now = time.perf_counter()
            upto = at + 1
            while upto < count and start + upto / rate <= now:  # all due by now: one record, as a group commit
                upto += 1
            log.append(post * (upto - at))
            done = time.perf_counter()
            latencies.extend(done - (start + k / rate) for k in range(at, upto))
            syncs += 1
            at = upto
    finally:
        log.clear(log.last)
    return DiskFloor(  # the quantiles the line's are (nearest rank), so that the two compare
        rate=rate,
        seconds=seconds,
        posts=count,
        syncs=syncs,
        p50_ms=1000 * _quantile(latencies, 0.5),
        p99_ms=1000 * _quantile(latencies, 0.99),
        max_ms=1000 * _quantile(latencies, 1.0),
        over_250ms=sum(1 for x in latencies if x > 0.25),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.disk_floor", description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path, help="a folder on the volume to measure (made, and removed after)")
    parser.add_argument("rate", type=float, help="POSTs a second")
    parser.add_argument("seconds", type=float)
    args = parser.parse_args(argv)
    print(measure(args.folder, args.rate, args.seconds).describe())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
