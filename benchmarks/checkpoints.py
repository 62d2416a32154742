"""What a DuckDB checkpoint costs the segment writer as a store's objects grow, with the objects' indexes and without,
side by side in one run.

DuckDB checkpoints a store when its WAL passes ``checkpoint_threshold`` (16 MiB), in the commit that crossed it: the
segment writer's, so every POST waits behind it. A checkpoint of DuckDB 1.3 writes every ART index of a table changed
since the last one again, whole (upstream duckdb/duckdb#24848), and the two indexes the server had until 2026-11-27
(``objects(id)`` and ``object_instances(object_id)``, :data:`tams_analytics.engines.duckdb.ddl.FORMER_INDEXES`) are on
random ids that every registration adds to (in DuckDB 2.0's format too: each block of them holds new keys). So a
checkpoint's cost grew with every object the store had ever kept, not with what was written since the last one; the
stores have no index since.

``python -m benchmarks.checkpoints [--objects 16000,160000,1600000] [--appended 1000] [--batch 8] [--repeat 3]``
builds, for each size, a store of the server's tables (as ``create_tables`` makes them) holding that many objects with
an instance each, then ``--repeat`` times appends ``--appended`` registrations (a segment, its new object and the
object's instance, in transactions of ``--batch``, as the writer's batches come) and times the ``CHECKPOINT`` that
follows. Then it drops the two indexes and does the same. It prints medians, the ratio, and the WAL one registration
adds, from which the interval between checkpoints at a rate follows.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import duckdb

from benchmarks.text_table import text_table
from tams_analytics.engines import open_engine
from tams_analytics.engines.duckdb.ddl import FORMER_INDEXES, LOOKUP_KEYS, index_name

#: DuckDB's default ``checkpoint_threshold``, which the server keeps
THRESHOLD_BYTES = 16 << 20


@dataclass
class Timing:
    """A size's checkpoints, ms, with the indexes and without; the WAL bytes a registration added."""

    objects: int
    indexed_ms: list[float]
    bare_ms: list[float]
    wal_bytes: float


def build(path: Path, objects: int) -> duckdb.DuckDBPyConnection:
    """A store of the server's tables at ``path`` holding ``objects`` objects with an instance each, checkpointed."""
    engine = open_engine(f"duckdb:///{path}", create=True)  # the server's tables, as it makes them
    engine.create_tables()
    engine.close()
    con = duckdb.connect(str(path))
    for name in FORMER_INDEXES:  # and the indexes it had until 2026-11-27, to measure them
        on = ", ".join(f'"{c}"' for c in LOOKUP_KEYS[name])
        con.execute(f'CREATE INDEX "{index_name(name)}" ON "{name}" ({on})')
    con.execute(f"CREATE TEMP TABLE ids AS SELECT uuid()::VARCHAR AS id FROM range({objects})")
    con.execute("INSERT INTO objects (id, registered) SELECT id, true FROM ids")
    con.execute("INSERT INTO object_instances (object_id, storage_id, controlled) SELECT id, 's3', true FROM ids")
    con.execute("DROP TABLE ids")
    con.execute("CHECKPOINT")
    return con


def append(con: duckdb.DuckDBPyConnection, registrations: int, batch: int, offset: int) -> int:
    """Append ``registrations`` (segment, new object, its instance) in transactions of ``batch``; returns the next
    offset on the timeline."""
    done = 0
    while done < registrations:
        n = min(batch, registrations - done)
        ids = [str(uuid.uuid4()) for _ in range(n)]
        starts = [(offset + k) * 2_000_000_000 for k in range(n)]
        con.execute("BEGIN")
        con.execute("INSERT INTO objects (id, registered) SELECT UNNEST(?::VARCHAR[]), true", [ids])
        con.execute(
            "INSERT INTO object_instances (object_id, storage_id, controlled) SELECT UNNEST(?::VARCHAR[]), 's3', true",
            [ids],
        )
        con.execute(
            "INSERT INTO segments (flow_id, object_id, timerange, start_ns, end_ns) "
            "SELECT 'flow', UNNEST(?::VARCHAR[]), UNNEST(?::VARCHAR[]), UNNEST(?::BIGINT[]), UNNEST(?::BIGINT[])",
            [
                ids,
                [f"[{s // 10**9}:0_{s // 10**9 + 2}:0)" for s in starts],
                starts,
                [s + 2_000_000_000 for s in starts],
            ],
        )
        con.execute("COMMIT")
        done += n
        offset += n
    return offset


def checkpoints(
    con: duckdb.DuckDBPyConnection, wal: Path, appended: int, batch: int, repeat: int
) -> tuple[list[float], float]:
    """``repeat`` rounds of appending and checkpointing: each checkpoint's ms, and the WAL bytes a registration
    added (the largest round's)."""
    times, wal_bytes, offset = [], 0.0, 0
    for _ in range(repeat):
        offset = append(con, appended, batch, offset)
        wal_bytes = max(wal_bytes, (wal.stat().st_size if wal.exists() else 0) / appended)
        t0 = time.perf_counter()
        con.execute("CHECKPOINT")
        times.append((time.perf_counter() - t0) * 1000)
    return times, wal_bytes


def measure(objects: int, appended: int, batch: int, repeat: int) -> Timing:
    with tempfile.TemporaryDirectory() as work:
        path = Path(work) / "store.duckdb"
        con = build(path, objects)
        wal = Path(f"{path}.wal")
        indexed, wal_bytes = checkpoints(con, wal, appended, batch, repeat)
        for name in FORMER_INDEXES:
            con.execute(f'DROP INDEX "{index_name(name)}"')
        con.execute("CHECKPOINT")
        bare, _ = checkpoints(con, wal, appended, batch, repeat)
        con.close()
    return Timing(objects, indexed, bare, wal_bytes)


def interval_s(wal_bytes: float, rate: float) -> float:
    """Seconds between checkpoints at ``rate`` registrations a second, each adding ``wal_bytes`` to the WAL.

    >>> round(interval_s(4096.0, 800.0), 1)
    5.1
    """
    return THRESHOLD_BYTES / (wal_bytes * rate)


def report(timings: Sequence[Timing], rate: float) -> list[str]:
    """The table: per size, median (max) ms with the indexes and without, their ratio, the WAL per registration and
    the interval between checkpoints at ``rate``.

    >>> print(report([Timing(1000, [30.0, 34.0, 40.0], [10.0, 12.0, 11.0], 4096.0)], 800.0)[2].split())
    ['1,000', '34.0', '(40.0)', '11.0', '(12.0)', 'x3.1', '4,096', '5', 's']
    """
    rows: list[tuple[str, ...]] = [
        (
            f"{t.objects:,}",
            f"{statistics.median(t.indexed_ms):,.1f} ({max(t.indexed_ms):,.1f})",
            f"{statistics.median(t.bare_ms):,.1f} ({max(t.bare_ms):,.1f})",
            f"x{statistics.median(t.indexed_ms) / max(statistics.median(t.bare_ms), 1e-9):.1f}",
            f"{t.wal_bytes:,.0f}",
            f"{interval_s(t.wal_bytes, rate):,.0f} s",
        )
        for t in timings
    ]
    head = ("objects", "indexed ms", "no indexes", "ratio", "WAL B/registration", f"checkpoint every at {rate:g}/s")
    return text_table([head, *rows]).splitlines()


def _sizes(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part.strip()]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.checkpoints", description=__doc__.split("\n")[0])
    parser.add_argument("--objects", type=_sizes, default=[16_000, 160_000, 1_600_000], help="store sizes, objects")
    parser.add_argument("--appended", type=int, default=1000, help="registrations before each checkpoint (1000)")
    parser.add_argument("--batch", type=int, default=8, help="registrations a transaction (default 8)")
    parser.add_argument("--repeat", type=int, default=3, help="checkpoints timed each way (default 3)")
    parser.add_argument("--rate", type=float, default=800.0, help="POSTs/s for the interval column (default 800)")
    args = parser.parse_args(argv)
    timings = [measure(n, args.appended, args.batch, args.repeat) for n in args.objects]
    print(
        f"DuckDB {duckdb.__version__}: a CHECKPOINT after {args.appended} registrations (segment, object, instance) "
        f"in transactions of {args.batch}, {args.repeat} each way; the indexes: "
        + ", ".join(f"{name}({', '.join(LOOKUP_KEYS[name])})" for name in FORMER_INDEXES)
    )
    print("\n".join(report(timings, args.rate)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
