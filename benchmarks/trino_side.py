"""``bench --only trino``: the same library calls through Trino and through DuckDB, on the same data.

A demo store of ``trino_segments`` segments (1M) is built in DuckDB and exported to Parquet
(``tams-analytics export``: segments in 16 flow buckets, sorted by flow and start), and the export is exposed
to a real Trino as external Hive tables (``hive_ddl``), the deployment a Trino user without VAST has. Then:

* **window**: one flow's hour, the server's page (``catalog.segment_rows(flow, timerange=hour, limit=1000)``);
* **coverage**: ``coverage.summary`` of every flow (runs, gaps and statistics by window functions over the whole
  segments table);

each through ``ta.connect("trino://...")`` and ``ta.connect("duckdb:///...")``, checked to answer the same rows,
then timed interleaved (medians after warm-up). Trino's own account of each query (analysis, planning and
execution time, from ``system.runtime.queries``) says what part of Trino's time is planning. The server comes
from :func:`benchmarks.trino_server.acquire` (``TAMS_TRINO_SERVER``, a running ``scripts/trino.sh``, or one
started for the run); without one the scenario is skipped with the reason.
"""

from __future__ import annotations

import secrets
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import pyarrow as pa

from benchmarks.measure import interleaved
from benchmarks.stores import build_store
from benchmarks.trino_server import Server, TrinoUnavailable, acquire

#: the compared library calls
QUERIES: Final = ("window", "coverage")
#: what each source tag names in Trino's query history
_SOURCE: Final = "tams-bench-{}"
#: rows of the window query: the server's largest page
WINDOW_LIMIT: Final = 1000
#: approximate columns (no exact median in Trino) left out of the answer check
_APPROXIMATE: Final = ("seg_median_ns", "seg_median_s")


@dataclass
class TrinoResult:
    """What ``bench --only trino`` measured (or why it could not)."""

    skipped: str | None = None
    setup: dict[str, Any] = field(default_factory=dict)
    #: query -> {"trino": median seconds, "duckdb": median seconds}
    medians: dict[str, dict[str, float]] = field(default_factory=dict)
    #: query -> Trino's median analysis, planning and execution milliseconds
    trino_phases_ms: dict[str, dict[str, float]] = field(default_factory=dict)
    seconds: float = 0.0


def _same(a: pa.Table, b: pa.Table) -> bool:
    a = a.drop_columns([c for c in _APPROXIMATE if c in a.column_names])
    b = b.drop_columns([c for c in _APPROXIMATE if c in b.column_names])
    if a.column_names != b.column_names or a.num_rows != b.num_rows:
        return False
    keys = [(c, "ascending") for c in b.column_names if not pa.types.is_nested(b.schema.field(c).type)]
    return bool(a.cast(b.schema).sort_by(keys).to_pylist() == b.sort_by(keys).to_pylist())


def _phases(server: Server, source: str) -> dict[str, float]:
    """Median analysis, planning and elapsed milliseconds of the finished queries tagged ``source``."""
    rows = server.execute(
        "SELECT analysis_time_ms, planning_time_ms, date_diff('millisecond', started, \"end\") "
        f"FROM system.runtime.queries WHERE source = '{source}' AND state = 'FINISHED'"
    )
    if not rows:
        return {}
    cols = list(zip(*rows, strict=True))
    return {
        name: float(statistics.median(c)) for name, c in zip(("analysis", "planning", "elapsed"), cols, strict=True)
    }


def run_trino(
    *,
    segments: int,
    repeat: int,
    slow_repeat: int,
    work: Path,
    progress: Callable[[str], None] = lambda _m: None,
) -> TrinoResult:
    """Build, export, expose, check and time (see the module docstring)."""
    import tams_analytics as ta
    from tams_analytics.analytics import coverage
    from tams_analytics.export import export_catalog, hive_ddl

    started = time.perf_counter()
    result = TrinoResult()
    work.mkdir(parents=True, exist_ok=True)
    progress("trino: starting or finding a Trino server ...")
    try:
        server = acquire(work / "trino-home")
    except TrinoUnavailable as exc:
        result.skipped = str(exc).splitlines()[0]
        return result
    schema = f"bench_{secrets.token_hex(4)}"
    try:
        progress(f"trino: building a demo store of {segments:,} segments ...")
        store = build_store(work / "trino-store.duckdb", segments)
        export_dir = work / "trino-export"
        progress("trino: exporting it to Parquet and exposing the export to Trino as Hive tables ...")
        duck = ta.connect(store.url)
        t0 = time.perf_counter()
        summary = export_catalog(duck, str(export_dir), overwrite=True)
        export_s = time.perf_counter() - t0
        server.script(hive_ddl(f"local://{export_dir}", schema=schema))
        version = server.execute("SELECT node_version FROM system.runtime.nodes")[0][0]
        trino = {q: ta.connect(server.url("hive", schema, source=_SOURCE.format(q))) for q in QUERIES}
        calls: dict[str, dict[str, Callable[[], pa.Table]]] = {
            "window": {
                "trino": lambda: trino["window"].segment_rows(
                    store.flow_id, timerange=store.window, limit=WINDOW_LIMIT
                ),
                "duckdb": lambda: duck.segment_rows(store.flow_id, timerange=store.window, limit=WINDOW_LIMIT),
            },
            "coverage": {
                "trino": lambda: coverage.summary(trino["coverage"]).to_pyarrow(),
                "duckdb": lambda: coverage.summary(duck).to_pyarrow(),
            },
        }
        rows = {}
        for query, sides in calls.items():
            progress(f"trino: checking that both sides answer the {query} query alike ...")
            got, expected = sides["trino"](), sides["duckdb"]()
            if not _same(got, expected):
                raise RuntimeError(f"Trino and DuckDB answer the {query} query differently")
            rows[query] = expected.num_rows
        progress(f"trino: timing the window query ({repeat} runs a side) and the coverage summary ({slow_repeat}) ...")
        result.medians["window"] = interleaved(calls["window"], repeat=repeat, warmup=max(3, repeat // 4))
        result.medians["coverage"] = interleaved(calls["coverage"], repeat=slow_repeat, warmup=1)
        for query in QUERIES:
            result.trino_phases_ms[query] = _phases(server, _SOURCE.format(query))
        result.setup = {
            "trino": str(version),
            "server": server.http_url,
            "start_s": None if server.start_s is None else round(server.start_s, 1),
            "segments": store.segments,
            "flow_segments": store.flow_segments,
            "window_rows": rows["window"],
            "coverage_rows": rows["coverage"],
            "export_mb": round(sum(t.bytes for t in summary.tables) / 2**20, 1),
            "export_s": round(export_s, 1),
            "layout": "Parquet export (16 flow buckets, sorted by flow_id, start_ns) as external Hive tables",
        }
        for cat in (*trino.values(), duck):
            cat.close()
    finally:
        try:
            server.execute(f'DROP SCHEMA IF EXISTS hive."{schema}" CASCADE')
        except Exception:  # the schema goes with a server started for this run anyway
            pass
        server.stop()
    result.seconds = time.perf_counter() - started
    return result


def format_trino(result: TrinoResult) -> str:
    """Medians side by side, and Trino's planning time."""
    if result.skipped is not None:
        return f"Trino: skipped: {result.skipped}"
    s = result.setup
    start = f"started in {s['start_s']} s" if s.get("start_s") is not None else "already running"
    lines = [
        f"Trino {s['trino']} ({start}) vs DuckDB on the same {s['segments']:,} segments: {s['layout']}, "
        f"{s['export_mb']} MB, exported in {s['export_s']} s; {result.seconds:.0f} s in all",
        f"window: one flow of {s['flow_segments']:,} segments, one hour, {s['window_rows']} rows "
        f"(limit {WINDOW_LIMIT}); coverage: coverage.summary of {s['coverage_rows']} flows",
        "",
    ]
    from benchmarks.text_table import text_table

    head = ("query", "Trino median", "DuckDB median", "Trino / DuckDB", "in Trino", "of which analysis", "planning")
    table = [head]
    for query in QUERIES:
        m, p = result.medians[query], result.trino_phases_ms.get(query, {})
        table.append(
            (
                query,
                f"{m['trino'] * 1e3:,.1f} ms",
                f"{m['duckdb'] * 1e3:,.1f} ms",
                f"{m['trino'] / m['duckdb']:,.1f}",
                f"{p.get('elapsed', float('nan')):,.0f} ms",
                f"{p.get('analysis', float('nan')):,.0f} ms",
                f"{p.get('planning', float('nan')):,.0f} ms",
            )
        )
    note = "in Trino: the server's own elapsed time (median over every run, warm-up included); the rest is the client"
    return "\n".join([*lines, text_table(table), note])


def trino_json(result: TrinoResult) -> dict[str, Any]:
    """The ``trino`` object of ``--json``."""
    if result.skipped is not None:
        return {"skipped": result.skipped}
    return {
        "skipped": None,
        "setup": dict(result.setup),
        "median_ms": {q: {k: v * 1e3 for k, v in m.items()} for q, m in result.medians.items()},
        "trino_phases_ms": result.trino_phases_ms,
        "seconds": result.seconds,
    }
