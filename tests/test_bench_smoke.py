"""The benchmark code paths on a tiny store: every metric comes out as a finite number (no timing asserts).

The command builds real DuckDB stores, runs a live server (uvicorn in a subprocess) and drives it over
HTTP, so this also checks that the compared queries agree and that the load generator refuses a
broken endpoint rather than reporting it fast.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import math
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from benchmarks import (
    aged,
    batch_cost,
    capacity,
    checkpoints,
    disk_floor,
    duckdb_handoffs,
    known_merges,
    loadgen,
    openloop,
    profile_summary,
    record,
    suite,
)
from benchmarks.live import LiveServer, PeakRss
from benchmarks.query import QueryBench
from benchmarks.stores import build_store
from tams_analytics.cli.__main__ import main
from tests.docs import block

pytest.importorskip("psutil")


def test_bench_command_reports_exactly_the_metrics(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "bench.json"
    args = ["bench", "--sizes", "1000,2000", "--list-segments", "2000", "--repeat", "1", "--seconds", "0.3"]
    args += ["--ingest-batches", "1", "--work-dir", str(tmp_path / "work"), "--json", str(out)]
    args += ["--live-flows", "4", "--live-preload", "20", "--live-seconds", "1", "--page-flows", "1000,3000"]
    assert main(args) == 0
    data = json.loads(out.read_text())
    run = data.pop("run")
    assert list(data) == list(suite.KEYS)
    assert run["date"].endswith("Z") and run["machine"]["cores"] and run["tree"] and run["seconds"] > 0
    for key, value in data.items():
        assert isinstance(value, int | float) and not isinstance(value, bool), key
        assert math.isfinite(value), key
    assert data["list_1m_peak_rss_mb"] > 10
    assert data["live_posts_per_s"] > 0 and data["live_lost"] == 0 and data["live_overlaps"] == 0
    printed = capsys.readouterr().out
    assert "metric" in printed and "target" in printed
    for key in suite.KEYS:
        assert key in printed


def test_compared_queries_answer_the_same_rows(tmp_path: Path) -> None:
    store = build_store(tmp_path / "s.duckdb", 3000)
    with QueryBench(store, limit=50) as bench:
        rows = bench.check_same_rows()
        assert rows == 50
        assert bench.string_parse().column("timerange").to_pylist() == bench.library().column("timerange").to_pylist()


def test_load_generator_counts_answers_and_refuses_errors(tmp_path: Path) -> None:
    store = build_store(tmp_path / "s.duckdb", 500)
    (tmp_path / "srv").mkdir()
    with LiveServer(store.url, tmp_path / "srv") as server, PeakRss(server.pid) as rss:
        ok = loadgen.load(server.host, server.port, ["/", "/flows"], concurrency=2, seconds=0.3)
        assert ok.requests > 0 and ok.errors == 0 and ok.per_second > 0
        with pytest.raises(loadgen.HttpError, match="not 200"):
            loadgen.load(server.host, server.port, ["/flows/not-a-uuid"], concurrency=1, seconds=0.2)
    assert rss.peak_mb >= rss.start_mb > 0


def test_targets_are_judged_in_their_direction() -> None:
    assert suite.met("rest_page_vs_trivial", 0.5) is True
    assert suite.met("query_growth_100k_to_10m", 2.5) is False
    assert suite.met("ingest_vs_raw_append", 0.01) is None
    report = suite.Report(metrics={k: 1.0 for k in suite.KEYS})
    assert report.missed() == ["query_speedup_vs_string_parse", "ingest_segments_per_s", "live_lost", "live_overlaps"]
    table = suite.format_table(report)
    assert table.splitlines()[0].split() == ["metric", "value", "target", "met?"]
    assert table.count(" NO") == 4


def _capacity_readme_commands(module: str, count: int) -> list[list[str]]:
    """The arguments of each ``python -m MODULE`` command of benchmarks/README.md's capacity block for ``module``
    (there must be ``count``)."""
    section = "Capacity (`--only capacity`): open-loop live ingest in rising steps, then restarts"
    commands = block("benchmarks/README.md", section, f"python -m {module}").commands()
    assert len(commands) == count
    out = []
    for command in commands:
        argv = shlex.split(command)
        assert argv[:3] == ["python", "-m", module]
        out.append(argv[3:])
    return out


def test_duckdb_handoffs_times_every_call_alone_and_beside_a_busy_thread(capsys: pytest.CaptureFixture[str]) -> None:
    """The commands of benchmarks/README.md's ``python -m benchmarks.duckdb_handoffs`` block, on a tiny store: a row
    for each call and batch, each timed both ways."""
    for argv in _capacity_readme_commands("benchmarks.duckdb_handoffs", 2):
        assert duckdb_handoffs.main([*argv, "--objects", "500", "--repeat", "2"]) == 0
        printed = capsys.readouterr().out.splitlines()
        rows = {line[:24].strip(): line[24:].split() for line in printed[3:]}
        names = ["BEGIN", "object lookup", "insert objects", "insert segments", "update flows", "COMMIT"]
        names += ["batch in six calls", "batch in three calls"]
        names += ["insert segments, lists", "insert segments, VALUES", "insert segments, Arrow"]
        names += ["update flows, execute", "update flows, relation"]
        assert list(rows) == names
        for alone, busy, ratio in rows.values():
            assert float(alone) > 0 and float(busy) > 0 and math.isfinite(float(ratio.removeprefix("x")))


def test_known_merges_times_one_level_and_two_side_by_side(capsys: pytest.CaptureFixture[str]) -> None:
    """The command of benchmarks/README.md's ``python -m benchmarks.known_merges`` block, on a small store: both layouts
    merge the same ids (the run checks they end up holding the same), each merge timed."""
    section = (
        "2026-11-30, evening: the known ids' merges copy a young level, not the archive's every id; the read cache's "
        "inserts grouped by key (trees 26b873f, 1f7ab41)"
    )
    (command,) = block("benchmarks/README.md", section, "python -m benchmarks.known_merges").commands()
    argv = shlex.split(command)
    assert argv[:3] == ["python", "-m", "benchmarks.known_merges"]
    assert known_merges.main([*argv[3:], "--ids", "50000", "--merges", "3"]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == "3 merges of 65,536 new ids into 50,000 known ids, the layouts taking turns"
    rows = {line[:12].strip(): line[12:].split() for line in printed[2:4]}
    assert list(rows) == ["one level", "two levels"]
    for values in rows.values():
        assert len(values) == 6 and all(float(v) >= 0 for v in values) and float(values[0]) > 0
    assert printed[4].startswith("two levels / one: median x")


def test_checkpoints_times_each_size_with_and_without_the_indexes(capsys: pytest.CaptureFixture[str]) -> None:
    """The commands of benchmarks/README.md's ``python -m benchmarks.checkpoints`` block, on tiny stores: a row for
    each size, both ways timed, and the WAL a registration adds measured (not zero: the appends went to the WAL)."""
    for argv in _capacity_readme_commands("benchmarks.checkpoints", 2):
        argv = [a for a in argv if not a.isdigit() and a != "--objects"]
        assert checkpoints.main([*argv, "--objects", "300,900", "--appended", "40", "--repeat", "2"]) == 0
        printed = capsys.readouterr().out.splitlines()
        assert "objects(id), object_instances(object_id)" in printed[0]
        rows = [line.split() for line in printed[3:]]
        assert [r[0] for r in rows] == ["300", "900"]
        for row in rows:
            indexed, bare = float(row[1].replace(",", "")), float(row[3].replace(",", ""))
            assert indexed > 0 and bare > 0 and row[5].startswith("x")
            assert float(row[6].replace(",", "")) > 100  # bytes of WAL a registration (segment, object, instance)


def test_batch_cost_times_the_writers_batches_of_each_size(capsys: pytest.CaptureFixture[str]) -> None:
    """The command of benchmarks/README.md's ``python -m benchmarks.batch_cost`` block, on a few flows: a row for each
    size with its batches timed (CPU spent, not zero), and the line fitted through them."""
    for argv in _capacity_readme_commands("benchmarks.batch_cost", 1):
        assert batch_cost.main([*argv, "--sizes", "1,3", "--posts", "12", "--flows", "6"]) == 0
        printed = capsys.readouterr().out.splitlines()
        assert "segment writer's CPU a batch" in printed[0]
        rows = [line.split() for line in printed[3:5]]
        assert [(r[0], r[1]) for r in rows] == [("1", "12"), ("3", "4")]
        assert all(float(r[2].replace(",", "")) > 0 for r in rows)
        assert printed[5].startswith("CPU a batch = ")


def test_a_steps_checkpoints_come_from_the_servers_metrics() -> None:
    """Two scrapes of ``/metrics`` a step apart: the commits that checkpointed between them, and their mean time."""
    scrape = (
        "tams_group_commit_batch_size_count {batches}\ntams_group_commit_batch_size_sum {requests}\n"
        "tams_store_checkpoint_seconds_count {n}\ntams_store_checkpoint_seconds_sum {s}\n"
    )
    before = capacity.parse_metrics(scrape.format(batches=10, requests=30, n=1, s=0.5))
    after = capacity.parse_metrics(scrape.format(batches=110, requests=830, n=3, s=0.8))
    stats = capacity.writer_stats(before, after)
    assert (stats.batches, stats.mean_size, stats.checkpoints) == (100, 8.0, 2)
    assert stats.checkpoint_ms == pytest.approx(150.0)


def test_only_the_chosen_scenarios_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "bench.json"
    args = ["bench", "--only", "pages", "--page-flows", "1000,3000", "--repeat", "1", "--json", str(out)]
    assert main(args) == 0
    assert list(json.loads(out.read_text())) == ["page_growth_100k_to_10m", "page_p99_ms", "run"]
    assert "building a demo store" not in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        main(["bench", "--only", "pages,nonsense"])
    assert exit_.value.code == 2


def test_capacity_steps_and_restarts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``bench --only capacity`` on a few flows: every step and restart case reported, the store checked."""
    out = tmp_path / "bench.json"
    args = ["bench", "--only", "capacity", "--capacity-size", "smoke", "--capacity-resume", "20"]
    args += ["--work-dir", str(tmp_path / "work"), "--json", str(out)]
    assert main(args) == 0
    data = json.loads(out.read_text())
    assert list(data) == [*suite.CAPACITY_KEYS, "run", "capacity"]
    assert data["capacity_lost"] == 0 and data["capacity_overlaps"] == 0
    steps = data["capacity"]["steps"]
    assert [s["offered"] for s in steps] == [20, 40]
    for s in steps:
        assert s["posts"] == round(s["offered"] * 0.6) and s["ok"] == s["posts"] and s["errors"] == 0
        assert s["reads"] > 0 and s["read_errors"] == 0 and s["drained"]
        assert 0 < s["post_p50_ms"] <= s["post_p99_ms"] <= s["post_max_ms"]
        assert s["batches"] > 0 and s["batch_mean_size"] >= 1 and "insert segments" in s["statements_per_batch"]
        assert s["checkpoints"] == 0 and s["checkpoint_ms"] == 0  # a few KB of WAL: far from DuckDB's 16 MiB
        assert s["server_cpu"] > 0 and s["client_cpu"] >= 0
    resumes = data["capacity"]["resume"]
    assert [(r["flows"], r["how"]) for r in resumes] == [(6, "SIGTERM"), (6, "SIGKILL")]
    for r in resumes:
        assert r["lost"] == 0 and r["errors"] == 0 and r["first_p50_ms"] > 0 and r["start_s"] > 0
    printed = capsys.readouterr().out
    assert "offered/s" in printed and "SIGKILL" in printed and "capacity_posts_per_s" in printed


def test_capacity_continuous_on_a_young_and_an_aged_store(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``--capacity-continuous`` on a young store and a small aged one side by side: each line's latencies, slowest
    window, checkpoints, what the store process wrote, each process's RSS, CPU and garbage collector's pauses, and what
    of the store process's is DuckDB's and the read cache's ids; the aged store built once into the cache,
    served from a copy (the cached file untouched), found there the next time; the server started as a user starts
    it. Traced (``--capacity-trace DIR``, in the same run: each bench run here takes a minute of CI), as
    :func:`_check_the_trace` says."""
    out, cache, traced = tmp_path / "bench.json", tmp_path / "cache", tmp_path / "trace"
    args = ["bench", "--only", "capacity", "--capacity-size", "smoke", "--capacity-resume", "20"]
    args += ["--capacity-continuous", "20:0.05", "--capacity-store", "young,1200", "--capacity-store-cache", str(cache)]
    args += ["--capacity-trace", str(traced)]
    assert main([*args, "--work-dir", str(tmp_path / "work"), "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    assert [k for k in data if k.startswith("capacity_")] == [
        "capacity_resume_p99_ms",
        "capacity_lost",
        "capacity_overlaps",
        *suite.CONTINUOUS_KEYS,
    ]
    assert data["capacity_lost"] == 0 and data["capacity_overlaps"] == 0
    assert "default settings" in data["capacity"]["server"] and "access log on" in data["capacity"]["server"]
    lines = data["capacity"]["continuous"]
    assert [(x["store"], x["rate"], x["store_segments"]) for x in lines] == [("young", 20, 120), ("1200", 20, 1200)]
    for x in lines:
        assert x["posts"] == 60 and x["ok"] == 60 and x["errors"] == 0 and x["reads"] > 0
        assert 0 < x["post_p50_ms"] <= x["post_p99_ms"] <= x["post_max_ms"] and x["edge_max_ms"] >= x["edge_p99_ms"]
        assert x["slowest_window_p99_ms"] > 0 and 0 <= x["slowest_window_at_s"] < 3
        assert x["checkpoint_count"] == sum(c["count"] for c in x["checkpoints"])
        assert x["store_written_mb_per_min"] > 0  # its WAL at least, read from the store process's write_bytes
        assert set(x["rss_mb"]) >= {"supervisor", "store", "http-1"}
        assert all(0 < r["start"] and 0 < r["end"] for r in x["rss_mb"].values())
        assert x["held_mb"].keys() == {"duckdb", "arrow", "known ids"}  # what the store process's /metrics told
        assert x["held_mb"]["duckdb"]["end"] > 0
        assert x["cache_entries"].keys() >= {"bound_timelines", "instances", "pages"}
        assert [r["how"] for r in x["resume"]] == ["SIGTERM", "SIGKILL"] and all(r["lost"] == 0 for r in x["resume"])
        assert x["lost"] == 0 and x["overlaps"] == 0 and x["load_start"] >= 0
        assert x["journal_syncs"] > 0  # the default settings keep a journal: each POST's batch is a synced record
        # and its applier applies them behind, in rounds, each of them counted with the time it took
        assert x["journal_applies"] > 0 and 0 < x["journal_apply_share"] < 1 and x["journal_apply_mean_ms"] > 0
        assert x["cpu"]["store"] > 0 and x["slow_windows"][0]["p99_ms"] == x["slowest_window_p99_ms"]
        # each process's garbage collector over the line, from its tams_python_gc_pause_seconds
        assert x["gc"].keys() == {"store", "http"}
        assert all(g["collections"] >= g["over_10ms"] >= g["over_25ms"] >= 0 <= g["ms"] for g in x["gc"].values())
        for floor in (x["disk_floor"], x["disk_floor_after"]):  # the journal's syncs alone, at the line's rate
            assert floor["posts"] == 10 and 1 <= floor["syncs"] <= 10 and 0 < floor["p50_ms"] <= floor["max_ms"]
    (built,) = cache.glob("*.duckdb")
    manifest = json.loads(built.with_suffix(".json").read_text())
    assert manifest["segments"] == 1200 and manifest["flows"] == 6 and len(manifest["flow_ids"]) == 6
    assert built.stat().st_size == manifest["bytes"]  # served from a copy: the cached store as built
    again = aged.cached("1200", flows=6, directory=cache)
    assert again.path == built and again.manifest == manifest
    printed = capsys.readouterr().out
    assert "young (120)" in printed and "1200 (1,200)" in printed and "RSS MiB start/" in printed
    assert "the store process holds, MiB start/" in printed
    assert "MiB a minute" in printed and "slowest windows" in printed
    assert "Python's garbage collector (collections, ms in all, over 10/25 ms): store " in printed
    assert "just before the line" in printed and "just after it" in printed
    assert "the journal's applier: " in printed and "% of the line" in printed
    page = record.render(data)
    assert "| young (120) | 20 × 0.05 |" in page and "`capacity_continuous_post_p99_ms`" in page
    _check_the_trace(traced, ["young", "1200"])


def _check_the_trace(traced: Path, stores: list[str]) -> None:
    """``--capacity-trace DIR``: every request of each continuous line and of its restarts on the wall clock, and
    50-ms samples of the server's threads (its processes as they are replaced by a restart), the bench's and the
    machine's; ``python -m benchmarks.trace report DIR`` finds the stalls among the requests (here: every POST over
    0 ms) and shows the threads that ran beside them."""
    files = sorted(traced.glob("*.requests.jsonl"))
    assert len(files) == len(stores), files
    for requests in files:
        records = [json.loads(line) for line in requests.read_text().splitlines()]
        by_tag = {r["tag"] for r in records}
        (tag,) = {f"continuous-{store}-20" for store in stores} & by_tag
        assert {"warmup", tag, "before-SIGTERM", "resume-SIGTERM", "resume-SIGKILL"} <= by_tag
        line = [r for r in records if r["tag"] == tag and r["kind"] == "post"]
        assert len(line) == 60 and all(r["status"] == 201 for r in line)
        assert all(r["due"] <= r["dispatched"] <= r["sent"] <= r["done"] for r in line)
        assert abs(line[0]["due"] - time.time()) < 600  # the wall clock's, as the samples'
        samples = [json.loads(x) for x in requests.with_name(requests.name.replace("requests", "threads")).open()]
        roles = [{p["role"] for p in s["processes"].values()} for s in samples if "processes" in s]
        assert any({"bench", "sampler", "supervisor", "store", "http"} <= r for r in roles)
        stores_seen = {
            pid for s in samples if "processes" in s for pid, p in s["processes"].items() if p["role"] == "store"
        }
        assert len(stores_seen) == 3  # the line's server, and the one after each restart
        assert samples[-1]["t"] >= max(r["done"] for r in records if r["done"])  # sampled to the end
    shown = subprocess.run(
        [sys.executable, "-m", "benchmarks.trace", "report", str(traced), "--over-ms", "0", "--limit", "5"],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parent.parent,
    ).stdout
    for requests in files:
        assert f"== {requests.name.removesuffix('.requests.jsonl')}: " in shown
    assert "-- stall at +" in shown
    assert re.search(r"answered/outstanding .*\n(.*\n)*.* (store|http)/\S+ \d+", shown), shown


def test_capacity_steps_on_an_aged_store(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``--capacity-store 1200`` without ``--capacity-continuous``: the steps run on a copy of the cached aged store."""
    out = tmp_path / "bench.json"
    args = ["bench", "--only", "capacity", "--capacity-size", "smoke", "--capacity-resume", "none"]
    args += ["--capacity-steps", "20", "--capacity-store", "1200", "--capacity-store-cache", str(tmp_path / "cache")]
    assert main([*args, "--work-dir", str(tmp_path / "work"), "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["capacity_lost"] == 0 and data["capacity_overlaps"] == 0 and "capacity_resume_p99_ms" not in data
    (step,) = data["capacity"]["steps"]
    assert step["ok"] == step["posts"] == 12
    printed = capsys.readouterr().out
    assert "capacity: the aged store 1200 (1,200 segments over 6 flows)" in printed and "no restarts" in printed


def test_capacity_without_readers_sends_posts_only(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``--capacity-read-share 0``: the steps' POSTs and no edge read (what the reads cost the writes, by A/B)."""
    out = tmp_path / "bench.json"
    args = ["bench", "--only", "capacity", "--capacity-size", "smoke", "--capacity-resume", "none"]
    args += ["--capacity-read-share", "0", "--work-dir", str(tmp_path / "work"), "--json", str(out)]
    assert main(args) == 0
    steps = json.loads(out.read_text())["capacity"]["steps"]
    assert [s["offered"] for s in steps] == [20, 40]
    assert all(s["ok"] == s["posts"] > 0 and s["reads"] == 0 for s in steps)
    assert "edge reads at 0 x the POST rate" in capsys.readouterr().out
    for bad in ("-1", "nan", "inf", "some"):
        with pytest.raises(SystemExit) as exit_:
            main(["bench", "--only", "capacity", "--capacity-read-share", bad])
        assert exit_.value.code == 2


def test_backup_of_a_live_store_at_its_smoke_size(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``bench --only backup`` on a small store: the backup made through the server while POSTs go on, restored,
    every acknowledged segment kept, and exactly its keys reported."""
    out = tmp_path / "bench.json"
    args = ["bench", "--only", "backup", "--backup-size", "smoke", "--work-dir", str(tmp_path / "work")]
    assert main([*args, "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    assert set(suite.BACKUP_KEYS) <= set(data) and data["backup_lost"] == 0
    assert data["backup_s"] > 0 and data["backup_mib"] > 0
    assert 0 < data["backup_post_p99_baseline_ms"] and 0 < data["backup_post_p99_ms"]
    printed = capsys.readouterr().out
    assert "backup of a live store of 20,000 segments" in printed and "backup_lost" in printed


async def _stalling_server(stall_s: float) -> tuple[asyncio.Server, int]:
    """An HTTP/1.1 server that answers every request 201 (200 for a GET), the first one after ``stall_s``."""
    answered = 0

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal answered
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    (
                        int(line.split(b":")[1])
                        for line in head.split(b"\r\n")
                        if line.lower().startswith(b"content-length")
                    ),
                    0,
                )
                await reader.readexactly(length)
                answered += 1
                if answered == 1:
                    await asyncio.sleep(stall_s)
                status = b"201 Created" if head.startswith(b"POST") else b"200 OK"
                writer.write(b"HTTP/1.1 " + status + b"\r\nContent-Length: 0\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


def test_open_loop_charges_a_stall_to_every_request_it_delayed() -> None:
    """Latency counts from the scheduled time: requests due while the server stalls carry the stall (a closed
    loop would time only the first); a flow's POSTs go out one after another."""

    async def run() -> list[openloop.Record]:
        server, port = await _stalling_server(0.3)
        async with server:
            gen = openloop.OpenLoop("127.0.0.1", port, ["f1"], connections=2, reader_connections=1)
            await gen.start()
            await gen.schedule("t", 50.0, 0.6, read_share=0.0)
            assert await gen.drain(5.0)
            await gen.stop()
        return gen.tagged("t", openloop.POST)

    posts = asyncio.run(run())
    assert len(posts) == 30 and all(r.status == 201 for r in posts)
    for before, after in itertools.pairwise(posts):
        assert after.sent >= before.done  # one flow: in order, one at a time
    # the first 15 are due within the stall (every 20 ms): each waits for it
    assert sum(1 for r in posts if r.latency > 0.1) >= 10
    assert posts[5].latency > 0.15 and posts[5].done - posts[5].sent < 0.05


def test_the_disk_floor_alone(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``python -m benchmarks.disk_floor FOLDER RATE SECONDS`` (the operators' Monitoring page shows it): POSTs at the
    rate that wait only for their record's write and sync in a journal of their own, which is removed after."""
    folder = tmp_path / "floor"
    assert disk_floor.main([str(folder), "40", "0.5"]) == 0
    said = capsys.readouterr().out
    assert said.startswith("the disk alone (the journal's write and sync at 40/s for 0.5 s") and "over 250 ms" in said
    assert not folder.exists()
    floor = disk_floor.measure(folder, 200, 0.25, record_bytes=100)
    assert floor.posts == 50 and 1 <= floor.syncs <= 50 and 0 < floor.p50_ms <= floor.p99_ms <= floor.max_ms


@pytest.mark.parametrize("rate", ["0", "-5", "nan", "50x100@0"])
def test_a_restart_rate_not_above_zero_is_refused_before_anything_runs(
    rate: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["bench", "--only", "capacity", "--capacity-resume", rate])
    assert exited.value.code == 2
    assert f"--capacity-resume: a rate is above 0 POSTs/s (no restarts: none); not '{rate}'" in capsys.readouterr().err


def _py_spy_attaches() -> str | None:
    """Why py-spy cannot profile a process here (None: it can): not installed, or not allowed to attach."""
    spy = capacity.py_spy()
    if spy is None:
        return "py-spy is not installed (the bench extra has it)"
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        time.sleep(0.3)
        probe = subprocess.run([spy, "dump", "--pid", str(child.pid)], capture_output=True, text=True, timeout=30)
    finally:
        child.kill()
        child.wait()
    return None if probe.returncode == 0 else f"py-spy cannot attach here: {probe.stderr.strip()[:200]}"


def test_a_continuous_line_profiled_says_who_holds_the_gil(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``--capacity-profile`` on a continuous line: where each thread's time goes (py-spy, idle ones too) and which
    threads of which process held Python's GIL, as a share of the line (the store process's writer among them)."""
    why = _py_spy_attaches()
    if why is not None:
        pytest.skip(why)
    out, profiles = tmp_path / "bench.json", tmp_path / "profiles"
    args = ["bench", "--only", "capacity", "--capacity-size", "smoke", "--capacity-resume", "none"]
    args += ["--capacity-continuous", "40:0.05", "--capacity-profile", str(profiles), "--json", str(out)]
    assert main([*args, "--work-dir", str(tmp_path / "work")]) == 0
    (line,) = json.loads(out.read_text())["capacity"]["continuous"]
    assert line["ok"] == line["posts"] == 120
    shares = line["gil_share"]
    assert shares and all(0 < s <= 1 for s in shares.values())
    assert list(shares.values()) == sorted(shares.values(), reverse=True)
    assert "store: tams-segment-writer" in shares  # it judged and wrote 120 registrations in 3 s
    assert any(t.startswith("http") for t in shares)  # the HTTP process parsed and answered them
    wall = profile_summary.parse((profiles / "continuous-young-40.txt").read_text().splitlines())
    assert any("tams-segment-writer" in name for name in wall)  # the wall-clock profile, idle threads too
    assert any(p.waiting for p in wall.values())
    # the report says the shares in the JSON's order (the largest first: which process leads depends on the machine)
    said = "holding Python's GIL (py-spy --gil, share of the line, at least): " + ", ".join(
        f"{thread} {share:.1%}" for thread, share in shares.items()
    )
    assert said in capsys.readouterr().out


@pytest.mark.skipif(
    shutil.which("chromium") is None, reason="needs chromium (.ci/run installs it: apt-get install chromium)"
)
def test_the_console_on_an_aged_store_at_its_smoke_size(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``bench --only console`` on a small aged store: both views timed in Chromium from the page's own marks, their
    API answers alone beside them, and exactly its keys reported against the one-second target."""
    out = tmp_path / "bench.json"
    args = ["bench", "--only", "console", "--console-size", "smoke", "--work-dir", str(tmp_path / "work")]
    args += ["--console-store-cache", str(tmp_path / "stores")]
    assert main([*args, "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    assert set(suite.CONSOLE_KEYS) <= set(data)
    assert 0 < data["console_flow_list_p99_ms"] and 0 < data["console_timeline_p99_ms"]
    assert data["console"]["segments"] == 40_000 and data["console"]["flows"] == 20
    assert data["console_timeline_vs_api"] > 1  # the page's time includes its API answer's
    printed = capsys.readouterr().out
    assert "console on the aged store 40k (40,000 segments over 20 flows)" in printed
    assert "console_timeline_p99_ms" in printed
