"""The PostgreSQL peer benchmark (``tams-analytics bench --peer postgres``) on a tiny store.

Runs a real throwaway PostgreSQL cluster (Debian's ``postgresql`` package; ``.ci/run`` installs it) and
real DuckDB files. No timing asserts: both sides must produce numbers, refuse the racing overlaps and
store none, and the two PostgreSQL variants' SQL must answer exactly what the definitions say.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from benchmarks import peer_report, perf_data, postgres_peer
from benchmarks.perf_scenarios import SIDES, PeerConfig, PeerResult, run_peer
from benchmarks.postgres_side import VARIANTS, PostgresSide
from tams_analytics.cli.__main__ import main
from tams_analytics.timerange import NS_PER_SECOND, TimeRange


def _unavailable() -> str | None:
    try:
        postgres_peer.check_driver()
        postgres_peer.bin_dir()
    except postgres_peer.PeerUnavailable as exc:
        return str(exc)
    return None


needs_postgres = pytest.mark.skipif(_unavailable() is not None, reason=f"peer benchmark: {_unavailable()}")


@needs_postgres
def test_bench_peer_reports_every_scenario_on_every_side(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "bench.json"
    args = ["bench", "--peer", "postgres", "--only", "peer", "--peer-size", "smoke"]
    assert main([*args, "--work-dir", str(tmp_path / "work"), "--json", str(out)]) == 0
    peer = json.loads(out.read_text())["peer"]
    assert peer["skipped"] is None and peer["setup"]["fsync"] == "on" and peer["setup"]["synchronous_commit"] == "on"
    assert set(peer["metrics"]) == {*peer_report.ROWS, *peer_report.COUNTS}
    for metric, values in peer["metrics"].items():
        assert set(values) == set(SIDES), metric
        assert all(math.isfinite(v) and v >= 0 for v in values.values()), metric
        if metric in peer_report.ROWS:
            assert all(v > 0 for v in values.values()), metric
    # the race: every side refused colliding attempts and stored no overlap
    assert all(v == 0 for v in peer["metrics"]["perf06_overlaps"].values())
    assert all(v > 0 for v in peer["metrics"]["perf06_refused"].values())
    assert all(v > 0 for v in peer["metrics"]["perf06_accepted"].values())
    assert set(peer["speed_vs"]) == {"postgres_opentams", "postgres_index_matched"}
    printed = capsys.readouterr().out
    assert "PERF-01 single insert" in printed and "vs PG index-matched" in printed and "in budget" in printed
    # the throwaway cluster is stopped and gone
    assert peer["setup"]["cluster_dir"] and not Path(peer["setup"]["cluster_dir"]).exists()


def test_peer_is_skipped_with_a_one_line_reason(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(postgres_peer.BINDIR_ENV, str(tmp_path / "no-postgres-here"))
    result = run_peer(PeerConfig.tiny(), tmp_path)
    assert result.skipped is not None and postgres_peer.BINDIR_ENV in result.skipped
    text = peer_report.format_peer(result)
    assert text.startswith("PostgreSQL peer: skipped: ") and "\n" not in text
    assert peer_report.peer_json(result) == {"skipped": result.skipped}
    assert peer_report.missed(result) == []


def test_only_peer_without_a_peer_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "--only", "peer"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "bench: --only peer needs --peer postgres"


def test_targets_are_judged_on_budgets_and_the_index_matched_peer() -> None:
    result = PeerResult()
    p99s = {"ours": 20.0, "ours_cached": 1.0, "postgres_opentams": 60.0, "postgres_index_matched": 3.0}
    for side, p99 in p99s.items():
        result.put("perf01_insert_p99_ms", side, p99)
    result.put("perf02_segments_per_s", "ours", 150.0)
    result.put("perf02_segments_per_s", "postgres_index_matched", 100.0)
    assert peer_report.missed(result) == [
        "perf01_insert_p99_ms (vs postgres_index_matched)",
        "perf02_segments_per_s (budget)",
    ]
    assert peer_report.missed(result, "ours_cached") == []
    assert peer_report.speed("perf01_insert_p99_ms", 20.0, 60.0) == 3.0


# -- the SQL of both variants, against the definitions -----------------------------------------------------
S = NS_PER_SECOND
Peer = tuple[perf_data.PeerData, postgres_peer.Cluster, dict[str, PostgresSide]]


@pytest.fixture(scope="module")
def pg_sides() -> Iterator[Peer]:
    if _unavailable() is not None:
        pytest.skip(f"peer benchmark: {_unavailable()}")
    # gaps and a short segment, so "the last segment starting before" is not always the neighbour
    flow = perf_data.make_flow(0, 300, "sql test")
    starts, ends = flow.starts.copy(), flow.ends.copy()
    starts[150:] += 7 * S  # a 7 s gap after segment 149
    ends[150:] += 7 * S
    ends[200] = starts[200] + S  # segment 200 lasts 1 s: a 1 s gap after it
    data = perf_data.PeerData((perf_data.PeerFlow(flow.id, flow.source_id, flow.label, starts, ends, flow.object_ids),))
    with postgres_peer.cluster() as pg:
        root, pid = pg.root, int((pg.data / "postmaster.pid").read_text().split()[0])
        pg.load("sql_base", data)
        sides = {}
        for v in VARIANTS:
            pg.clone("sql_base", v)
            sides[v] = PostgresSide(pg.conninfo(v), v)
        try:
            yield data, pg, sides
        finally:
            for side in sides.values():
                side.close()
    # the throwaway cluster is stopped and removed (the postmaster deletes its pid file, which pg_ctl waits
    # for, just before it exits: give it a moment)
    assert root is not None and not root.exists()
    deadline = time.monotonic() + 10
    while _running(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _running(pid)


def _running(pid: int) -> bool:
    """Whether process ``pid`` exists and has not exited (a zombie waiting to be reaped has)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"


def _window(offset_s: float, length_s: float) -> tuple[int, int]:
    lo = perf_data.EPOCH_NS + int(offset_s * S)
    return lo, lo + int(length_s * S)


PROBES = [(0, 2), (1, 2), (-1, 2), (-2, 2), (298, 3), (299, 1), (300, 7), (301, 5), (303, 5), (403, 1), (404, 1)]
PROBES += [(404, 0.5), (405, 1), (550, 60), (605, 2), (607, 2)]


@needs_postgres
def test_both_pre_checks_find_exactly_the_overlaps(pg_sides: Peer) -> None:
    data, _, sides = pg_sides
    flow = data.main
    for offset_s, length_s in PROBES:
        lo, hi = _window(offset_s, length_s)
        want = bool(np.any((flow.starts < hi) & (flow.ends > lo)))
        for variant, side in sides.items():
            found = side.colliding(flow.id, lo, hi)
            side.con.rollback()
            assert (found is not None) == want, (variant, str(TimeRange.from_ns(lo, hi)))


@needs_postgres
def test_both_variants_answer_the_same_window_pages(pg_sides: Peer) -> None:
    data, _, sides = pg_sides
    flow = data.main
    for offset_s, length_s in PROBES:
        lo, hi = _window(offset_s, length_s)
        want = [int(s) for s, e in zip(flow.starts, flow.ends, strict=True) if s < hi and e > lo][:20]
        for variant, side in sides.items():
            got = [r["lower_ns"] for r in side.window_page(flow.id, lo, hi, 20)]
            assert got == want, (variant, offset_s, length_s)


@needs_postgres
@pytest.mark.parametrize("variant", VARIANTS)
def test_both_variants_delete_exactly_the_covered_segments(pg_sides: Peer, variant: str) -> None:
    data, pg, _ = pg_sides
    flow = data.main
    lo, hi = _window(297, 20)  # covers the segments either side of the gap, cuts two
    covered = int(np.count_nonzero((flow.starts >= lo) & (flow.ends <= hi)))
    pg.clone("sql_base", f"del_{variant}")
    side = PostgresSide(pg.conninfo(f"del_{variant}"), variant)
    try:
        assert covered == 6 and side.delete(flow.id, lo, hi) == covered
        starts, ends = side.bounds(flow.id)
        assert len(starts) == flow.segments - covered
        assert not np.any((starts >= lo) & (ends <= hi)) and side.unreferenced_objects() == covered
    finally:
        side.close()
        pg.drop(f"del_{variant}")


@needs_postgres
def test_the_cluster_is_durable_and_listens_on_its_socket_only(pg_sides: Peer) -> None:
    _, pg, _ = pg_sides
    assert pg.settings("listen_addresses", "fsync", "synchronous_commit") == {
        "listen_addresses": "",
        "fsync": "on",
        "synchronous_commit": "on",
    }
    assert (pg.socket_dir / ".s.PGSQL.5432").exists()


@needs_postgres
def test_the_index_matched_pre_check_is_served_by_the_index(pg_sides: Peer) -> None:
    data, _, sides = pg_sides
    lo = data.main.end_ns
    plan = sides["index_matched"].explain_colliding(data.main.id, lo, lo + S)
    assert "Index Scan Backward using segments_flow_lower" in plan and "Seq Scan" not in plan, plan


def test_quick_runs_take_the_peer_size_asked_for() -> None:
    """``bench --quick --peer postgres`` (the quick run's own peer size, or ``--peer-size``) builds its config."""
    from benchmarks.suite import BenchConfig

    tiny = PeerConfig.tiny()
    assert BenchConfig.quick(peer_config=tiny).peer_config == tiny
    assert BenchConfig.quick().peer_config == PeerConfig.quick()
    assert BenchConfig.quick(peer="postgres", ingest_batches=3).ingest_batches == 3
