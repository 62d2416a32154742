"""Today's figures as tables, from one ``tams-analytics bench --json`` run.

``python -m benchmarks.record benchmarks/results/latest.json`` prints the tables (Markdown);
``python -m benchmarks.record benchmarks/results/latest.json --write docs/development/benchmarks.md`` puts them in the
page between its ``<!-- record:start -->`` and ``<!-- record:end -->`` lines. ``tests/test_bench_record.py`` checks
that the committed page says what this makes of the committed JSON, so the two cannot drift: a new run is committed as
its JSON and the page written again from it.

Each metric is one row: its value, its target (``suite.TARGETS``), whether it is met, and the date, machine and tree
(git commit; ``+``: with uncommitted changes) of the run. The continuous capacity lines and the restart cases, when
the run has them, get a table each.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

from benchmarks.suite import ALL_KEYS, TARGETS, met

START = "<!-- record:start (made by python -m benchmarks.record from benchmarks/results/latest.json: edit neither) -->"
END = "<!-- record:end -->"


def _value(v: float) -> str:
    """A value as the tables show it.

    >>> _value(31308.2), _value(0.974), _value(0.0512), _value(0.0)
    ('31,308', '0.97', '0.0512', '0')
    """
    if not math.isfinite(v):
        return str(v)
    if v == 0:
        return "0"
    return f"{v:,.0f}" if abs(v) >= 100 else f"{v:.2f}" if abs(v) >= 0.1 else f"{v:.3g}"


def _machine(m: dict[str, Any]) -> str:
    return f"{m.get('cpu', '?')}, {m.get('cores', '?')} cores"


def render(data: dict[str, Any]) -> str:
    """The Markdown tables of one run's JSON (see the module docstring)."""
    run = data.get("run", {})
    m = run.get("machine", {})
    date = str(run.get("date", "?"))[:10]
    machine = _machine(m)
    tree = f"`{run.get('tree', '?')}`"
    notes = run.get("notes", {})
    out = [
        f"From the run of {run.get('date', '?')} ({run.get('seconds', 0):,.0f} s) on {machine}, "
        f"{m.get('ram', '?')} RAM, Python {m.get('python', '?')}, DuckDB {m.get('duckdb', '?')}, {m.get('os', '?')}; "
        f"load average (1/5/15 min) {m.get('load_start', '?')} at the start, {m.get('load_end', '?')} at the end; "
        f"tree {tree}.",
    ]
    if run.get("label"):
        out[0] += f" **{run['label']}**"
    out += [
        "",
        "| metric | value | target | met? | date | machine | tree |",
        "| --- | ---: | ---: | :---: | --- | --- | --- |",
    ]
    for key in (k for k in ALL_KEYS if k in data):
        value = float(data[key])
        target = TARGETS[key]
        ok = met(key, value)
        name = f"`{key}` ({notes[key]})" if key in notes else f"`{key}`"
        shown = f"{target[0].replace('<=', '≤').replace('>=', '≥')} {_value(target[1])}" if target else "–"
        verdict = "–" if ok is None else "yes" if ok else "**no**"
        out.append(f"| {name} | {_value(value)} | {shown} | {verdict} | {date} | {machine} | {tree} |")
    capacity = data.get("capacity") or {}
    lines = capacity.get("continuous") or []
    if lines:
        out += [
            "",
            f"Continuous capacity lines ({capacity.get('server', 'tams-analytics serve')}); latencies in ms from the "
            "scheduled times, RSS growth from minute 5 (or halfway) to the end, the largest of the processes (and "
            "beside it DuckDB's own memory in the store process then, MiB, where measured); the "
            "disk alone: the journal's write and sync at the line's rate with no server, just before and just after "
            "the line (`benchmarks/disk_floor.py`), its p99; CPU: each process's share of a core over the line:",
            "",
            "| store | rate × minutes | achieved/s | POST p50 / p99 / max | over 250 ms | edge p50 / p99 / max | "
            "slowest window (p99 @ s) | checkpoints (longest ms) | disk alone p99 before / after | CPU store / HTTP | "
            "RSS growth | lost / overlaps | held |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | :---: |",
        ]
        for line in lines:
            longest = max((c["ms"] for c in line.get("checkpoints", [])), default=0.0)
            out.append(
                f"| {line['store']} ({line['store_segments']:,}) | {line['rate']:g} × {line['minutes']:g} | "
                f"{_value(line['achieved'])} | {line['post_p50_ms']:.1f} / {line['post_p99_ms']:.1f} / "
                f"{line['post_max_ms']:.0f} | {line['slow_posts']} | {line['edge_p50_ms']:.1f} / "
                f"{line['edge_p99_ms']:.1f} / {line['edge_max_ms']:.0f} | {line['slowest_window_p99_ms']:.1f} @ "
                f"{line['slowest_window_at_s']:g} | {line['checkpoint_count']} ({longest:.0f}) | {_disk_alone(line)} | "
                f"{_cpu(line)} | {_rss(line)} | {line['lost']} / {line['overlaps']} | "
                f"{'yes' if line['held'] else '**no**'} |"
            )
    resumes = list(capacity.get("resume") or []) + [r for line in lines for r in line.get("resume", [])]
    if resumes:
        out += [
            "",
            "Restarts (first POST of each flow, ms from its scheduled time):",
            "",
            "| case | signal | first POST p50 / p99 / max | errors | lost |",
            "| --- | --- | ---: | ---: | ---: |",
        ]
        for r in resumes:
            out.append(
                f"| {r['case']} | {r['how']} | {r['first_p50_ms']:.1f} / {r['first_p99_ms']:.1f} / "
                f"{r['first_max_ms']:.0f} | {r['errors']} | {r['lost']} |"
            )
    return "\n".join(out) + "\n"


def _disk_alone(line: dict[str, Any]) -> str:
    """The p99 of the disk alone before and after a continuous line, in ms ("–" where it was not measured)."""
    floors = [line.get("disk_floor"), line.get("disk_floor_after")]
    return " / ".join("–" if not f else f"{f['p99_ms']:.1f}" for f in floors)


def _cpu(line: dict[str, Any]) -> str:
    """The store process's and the HTTP processes' shares of a core over a continuous line ("–": not measured)."""
    cpu = line.get("cpu") or {}
    http = sum(v for k, v in cpu.items() if k.startswith("http"))
    return f"{100 * cpu['store']:.0f} % / {100 * http:.0f} %" if "store" in cpu else "–"


def _rss(line: dict[str, Any]) -> str:
    """The largest RSS growth of a continuous line's processes and, where the run read it, DuckDB's memory in the
    store process at the mark and at the end (what of the store process's growth is its buffer pool filling)."""
    growth = [g for g in line.get("rss_growth_pct", {}).values() if g is not None and math.isfinite(g)]
    out = f"{max(growth, default=0.0):+.1f} %"
    duckdb = (line.get("held_mb") or {}).get("duckdb")
    return f"{out} (DuckDB {duckdb['mark']:,.0f} → {duckdb['end']:,.0f})" if duckdb else out


def splice(page: str, tables: str) -> str:
    """``page`` with what stands between its :data:`START` and :data:`END` lines replaced by ``tables``."""
    head, found, rest = page.partition(START + "\n")
    _old, found_end, tail = rest.partition(END)
    if not found or not found_end:
        raise ValueError(f"the page has no {START!r} ... {END!r} block")
    return f"{head}{START}\n{tables}{END}{tail}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.record", description=__doc__.split("\n\n")[0])
    p.add_argument("json", type=Path, help="a run's JSON (tams-analytics bench --json FILE)")
    p.add_argument("--write", type=Path, default=None, metavar="PAGE", help="put the tables in PAGE's record block")
    args = p.parse_args(argv)
    tables = render(json.loads(args.json.read_text()))
    if args.write is None:
        sys.stdout.write(tables)
    else:
        args.write.write_text(splice(args.write.read_text(), tables))
    return 0


if __name__ == "__main__":
    sys.exit(main())
