"""What a thread busy on Python's GIL costs the DuckDB statements of a writer's batch, side by side in one run.

The segment writer's batch is six DuckDB calls on one connection (``BEGIN``, the object lookup, the two inserts,
the flows' ``segments_updated``, ``COMMIT``), while the store process's event loop wants the GIL for its own work.
The DuckDB Python client releases the GIL for each statement and takes it back after each of the statement's
execution tasks (``DuckDBPyConnection::CompletePendingQuery`` checks for signals between tasks), so every call
waits, several times, for the other thread to hand the GIL back. A statement of an API that keeps the GIL while
DuckDB runs it (``DuckDBPyRelation.update``) does not wait, and in a call of several statements only the last one
does (DuckDB runs the others itself).

``python -m benchmarks.duckdb_handoffs [--rows N] [--objects N] [--repeat N]`` builds a store of the server's
tables (``objects`` with its index, 1,600 flows) in a temporary folder and times each statement of a batch of
``--rows`` registrations, alone and beside a thread that holds the GIL whenever it can (Python's switch interval
as ``serve`` sets it, 0.1 ms), then the whole batch as six calls against the same batch as three calls (``BEGIN``
with the lookup; the inserts and the update in one call; ``COMMIT``), and the segments' insert as the writer makes
it (one list parameter a column) against a VALUES list of every value and an Arrow table's scan. It prints medians
and the ratios.
"""

from __future__ import annotations

import argparse
import functools
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from server.config import Settings
from tams_analytics.engines import open_engine
from tams_analytics.engines.duckdb.writes import list_insert_sql

#: the switch interval ``serve`` sets by default (``TAMS_SWITCH_INTERVAL_MS``)
SWITCH_INTERVAL_S: float = Settings.model_fields["switch_interval_ms"].default / 1000


def literal(value: object) -> str:
    """``value`` as SQL text (the benchmark's own rows: None, integers and strings only).

    >>> literal(None), literal(7), literal("it's")
    ('NULL', '7', "'it''s'")
    """
    if value is None:
        return "NULL"
    if isinstance(value, int):
        return str(value)
    return "'" + str(value).replace("'", "''") + "'"


class Store:
    """A DuckDB file with the server's tables, ``flows`` flows and ``objects`` stored objects."""

    def __init__(self, path: Path, *, flows: int, objects: int) -> None:
        engine = open_engine(f"duckdb:///{path}", create=True)  # the server's tables and indexes, as it makes them
        engine.create_tables()
        engine.close()
        self.con = duckdb.connect(str(path), config={"threads": 1})
        self.con.execute(
            "INSERT INTO flows (id, source_id, format) "
            f"SELECT uuid()::VARCHAR, uuid()::VARCHAR, 'urn:x-nmos:format:video' FROM range({flows})"
        )
        self.con.execute(f"INSERT INTO objects (id) SELECT uuid()::VARCHAR FROM range({objects})")
        self.con.execute("CHECKPOINT")
        self.flows = [r[0] for r in self.con.execute("SELECT id FROM flows").fetchall()]
        self.columns = [r[0] for r in self.con.execute("SELECT * FROM segments LIMIT 0").description or ()]
        self._next = 0

    def batch(self, rows: int) -> list[dict[str, Any]]:
        """``rows`` new segments, each of another flow, each with a new object."""
        out = []
        for _ in range(rows):
            self._next += 1
            row: dict[str, Any] = dict.fromkeys(self.columns)
            start = self._next * 2_000_000_000
            row.update(
                flow_id=self.flows[self._next % len(self.flows)],
                object_id=str(uuid.uuid4()),
                timerange=f"[{self._next * 2}:0_{self._next * 2 + 2}:0)",
                start_ns=start,
                end_ns=start + 2_000_000_000,
            )
            out.append(row)
        return out

    def statements(self, rows: list[dict[str, Any]]) -> list[tuple[str, Callable[[], object]]]:
        """The batch's six calls, named, in the writer's order and shape (parameters bound; the objects' insert
        binds their ids only, where the writer binds every column)."""
        con, n, ids = self.con, len(rows), [r["object_id"] for r in rows]
        flows = [r["flow_id"] for r in rows]
        return [
            ("BEGIN", lambda: con.execute("BEGIN")),
            ("object lookup", lambda: con.execute(f"SELECT id FROM objects WHERE id IN ({_marks(n)})", ids).fetchall()),
            ("insert objects", lambda: con.execute("INSERT INTO objects (id) SELECT UNNEST(?::VARCHAR[])", [ids])),
            ("insert segments", functools.partial(self.insert_lists, rows)),
            ("update flows", lambda: con.execute(_update_flows(n), flows)),
            ("COMMIT", lambda: con.execute("COMMIT")),
        ]

    def insert_lists(self, rows: list[dict[str, Any]]) -> None:
        """The segments' insert as the writer makes it (its own statement): one list parameter a column."""
        self.con.execute(list_insert_sql("segments"), [[r[c] for r in rows] for c in self.columns])

    def insert_arrow(self, rows: list[dict[str, Any]]) -> None:
        """The segments' insert as a scan of an Arrow table (the writer's above ``LIST_ROWS`` rows)."""
        self.con.from_arrow(pa.Table.from_pylist(rows)).insert_into("segments")

    def insert_values(self, rows: list[dict[str, Any]]) -> None:
        """The segments' insert as a VALUES list, every value a parameter (the writer's before 2026-11-25)."""
        marks = "(" + ", ".join("?" * len(self.columns)) + ")"
        values = [r[c] for r in rows for c in self.columns]
        self.con.execute(f"INSERT INTO segments VALUES {', '.join([marks] * len(rows))}", values)

    def three_calls(self, rows: list[dict[str, Any]]) -> None:
        """The same batch in three calls: in a call of several statements DuckDB runs all but the last itself."""
        ids = [r["object_id"] for r in rows]
        self.con.execute(f"BEGIN; SELECT id FROM objects WHERE id IN ({_marks(len(ids))})", ids).fetchall()
        writes = [
            "INSERT INTO objects (id) VALUES " + ", ".join(f"({literal(i)})" for i in ids),
            "INSERT INTO segments VALUES "
            + ", ".join("(" + ", ".join(literal(r[c]) for c in self.columns) + ")" for r in rows),
        ]
        self.con.execute("; ".join([*writes, _update_flows(len(rows))]), [r["flow_id"] for r in rows])
        self.con.execute("COMMIT")

    def update_kept(self, flows: list[str]) -> None:
        """The flows' update through the relation API, which keeps the GIL while DuckDB runs it."""
        condition = duckdb.ColumnExpression("id").isin(*(duckdb.ConstantExpression(f) for f in flows))
        self.con.table("flows").update({"segments_updated": duckdb.FunctionExpression("now")}, condition=condition)


def _marks(n: int) -> str:
    return ", ".join("?" * n)


def _update_flows(n: int) -> str:
    return f"UPDATE flows SET segments_updated = now() WHERE id IN ({_marks(n)})"


@contextmanager
def gil_busy(busy: bool) -> Iterator[None]:
    """A thread running Python (so wanting the GIL) for as long as the block runs, when ``busy``."""
    if not busy:
        yield
        return
    stop = threading.Event()

    def spin() -> None:
        x = 0
        while not stop.is_set():
            for _ in range(1000):
                x += 1

    thread = threading.Thread(target=spin, name="gil-busy", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def measure(store: Store, rows: int, repeat: int, busy: bool) -> dict[str, float]:
    """Median ms of each call of a batch, of the six-call and three-call batches, and of the update both ways."""
    times: dict[str, list[float]] = {}

    def timed(name: str, call: Callable[[], object]) -> None:
        began = time.perf_counter()
        call()
        times.setdefault(name, []).append((time.perf_counter() - began) * 1000)

    with gil_busy(busy):
        for _ in range(repeat):
            calls = store.statements(store.batch(rows))
            began = time.perf_counter()
            for name, call in calls:
                timed(name, call)
            times.setdefault("batch in six calls", []).append((time.perf_counter() - began) * 1000)
            timed("batch in three calls", functools.partial(store.three_calls, store.batch(rows)))
            shapes = (("lists", store.insert_lists), ("VALUES", store.insert_values), ("Arrow", store.insert_arrow))
            for shape, insert in shapes:
                store.con.execute("BEGIN")
                timed(f"insert segments, {shape}", functools.partial(insert, store.batch(rows)))
                store.con.execute("COMMIT")
            flows = [r["flow_id"] for r in store.batch(rows)]
            timed("update flows, execute", functools.partial(store.con.execute, _update_flows(rows), flows))
            timed("update flows, relation", functools.partial(store.update_kept, flows))
    return {name: statistics.median(values) for name, values in times.items()}


def report(alone: dict[str, float], busy: dict[str, float]) -> list[str]:
    """A table: each measurement alone, beside the busy thread, and the ratio.

    >>> report({"BEGIN": 0.2}, {"BEGIN": 0.8})[2]
    'BEGIN                         0.20        0.80   x4.0'
    """
    lines = [f"{'median ms':<24} {'alone':>9} {'GIL busy':>11} {'ratio':>6}", "-" * 53]
    for name, ms in alone.items():
        lines.append(f"{name:<24} {ms:9.2f} {busy[name]:11.2f} {'x' + format(busy[name] / ms, '.1f'):>6}")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.duckdb_handoffs", description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=9, help="registrations a batch (default 9)")
    parser.add_argument("--objects", type=int, default=160_000, help="objects stored before (default 160000)")
    parser.add_argument("--repeat", type=int, default=60, help="batches timed each way (default 60)")
    args = parser.parse_args(argv)
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    with tempfile.TemporaryDirectory() as work:
        store = Store(Path(work) / "store.duckdb", flows=1600, objects=args.objects)
        measure(store, args.rows, 5, busy=False)  # warm-up: plans, caches
        alone = measure(store, args.rows, args.repeat, busy=False)
        busy = measure(store, args.rows, args.repeat, busy=True)
        store.con.close()
    print(
        f"DuckDB {duckdb.__version__}, batches of {args.rows} registrations, {args.objects} objects stored, "
        f"{args.repeat} batches each way, switch interval {SWITCH_INTERVAL_S * 1000:g} ms"
    )
    print("\n".join(report(alone, busy)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
