"""The demo store: built through the CLI into a real DuckDB file, realistic and valid."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tams_analytics import TimeRange
from tams_analytics.catalog import connect
from tams_analytics.cli.__main__ import main


def test_demo_command_builds_a_valid_store(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"duckdb:///{tmp_path / 'demo.duckdb'}"
    assert main(["demo", "--store", url, "--segments", "20000", "--no-progress"]) == 0
    assert "built 20000 segments" in capsys.readouterr().out
    cat = connect(url)
    assert cat.count("segments") == 20000
    assert cat.count("objects") == 20000
    flows = cat.rows("flows").to_pylist()
    formats = {f["format"] for f in flows}
    assert formats == {
        "urn:x-nmos:format:video",
        "urn:x-nmos:format:audio",
        "urn:x-nmos:format:data",
        "urn:x-nmos:format:multi",
    }
    # no overlaps within any flow, and some gaps: consecutive segments by start
    sql = """
        SELECT flow_id, start_ns, end_ns, lag(end_ns) OVER (PARTITION BY flow_id ORDER BY start_ns) AS prev_end
        FROM segments
    """
    rows = cat.engine.sql(
        f"SELECT count(*) FILTER (WHERE start_ns < prev_end), count(*) FILTER (WHERE start_ns > prev_end) FROM ({sql})"
    ).to_pylist()[0]
    overlaps, gaps = rows.values()
    assert overlaps == 0 and gaps > 0
    one = cat.segment_rows(flows[0]["id"], limit=5).to_pylist()
    for r in one:
        assert TimeRange.from_str(r["timerange"]).storage_bounds() == (r["start_ns"], r["end_ns"])
    assert cat.flows(tags={"genre": "news"}).count().to_pyarrow().as_py() > 0
    multi = [f for f in flows if f["format"] == "urn:x-nmos:format:multi"]
    assert len(cat.get_flow(multi[0]["id"])["flow_collection"]) == 4


def test_the_demo_sources_say_what_they_hold() -> None:
    """Each programme's sources are labelled for what they hold: the source of the HD video and its proxy is the
    video's (not named after the proxy, as a source without a label of its own reads: its flows' labels)."""
    from tams_analytics.demo import build_demo

    cat = connect("duckdb://")
    build_demo(cat, 400, programmes=2, progress=False)
    sources = {r["id"]: r for r in cat.rows("sources").to_pylist()}
    assert sorted(r["label"] for r in sources.values()) == [
        f"{title} ({name})"
        for title in ("Evening News", "Match of the Day")
        for name in ("audio", "captions", "multi", "video: HD and proxy")
    ]
    flows = cat.rows("flows").to_pylist()
    held = {sid: sorted(f["label"] for f in flows if f["source_id"] == sid) for sid in sources}
    by_label = {sources[sid]["label"]: labels for sid, labels in held.items()}
    assert by_label["Evening News (video: HD and proxy)"] == ["Evening News (proxy)", "Evening News (video)"]
    assert by_label["Evening News (audio)"] == ["Evening News (audio)"]
    assert by_label["Evening News (multi)"] == ["Evening News (multi)"]
    video = next(sid for sid, r in sources.items() if r["label"] == "Evening News (video: HD and proxy)")
    assert sources[video]["description"] == "Evening News: its pictures, as an HD video flow and a proxy flow"


def test_demo_refuses_a_bad_store_url(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--store", "nosuch://x", "--segments", "10"]) == 2
    assert "'nosuch://x' names no store engine: store URLs look like duckdb:///" in capsys.readouterr().err


# -- a demo that fails leaves the store as it found it (the command run as people run it) ----------------------
TABLES = ("sources", "flows", "segments", "objects", "object_instances", "tags", "collections", "storage_backends")


def _demo(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAMS_")}
    cmd = [sys.executable, "-m", "tams_analytics.cli", "demo", "--no-progress", *args]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)


def _counts(url: str) -> dict[str, int]:
    with connect(url, read_only=True) as cat:
        return {t: cat.count(t) for t in TABLES}


def _one_line(done: subprocess.CompletedProcess[str], *expected: str) -> None:
    assert done.returncode == 2, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tams-analytics demo: "), done.stderr
    for text in expected:
        assert text in lines[0], lines[0]


@pytest.fixture(scope="module")
def demo_store(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"duckdb:///{tmp_path_factory.mktemp('demo') / 'demo.duckdb'}"
    assert _demo("--store", url, "--segments", "300").returncode == 0
    return url


def test_the_same_demo_again_is_refused_before_anything_is_written(demo_store: str, tmp_path: Path) -> None:
    before = _counts(demo_store)
    objects = tmp_path / "objects"
    objects.mkdir()
    done = _demo("--store", demo_store, "--segments", "300", "--storage", f"local:{objects}")
    _one_line(done, "already holds", "seed 2026", "another seed")
    assert _counts(demo_store) == before
    assert list(objects.iterdir()) == []  # checked before any media was written


def test_a_demo_that_fails_midway_writes_nothing(demo_store: str, tmp_path: Path) -> None:
    """Another seed, media to an S3 endpoint nothing answers: its first flow is written, then the media fails;
    the demo is one transaction, so the store is as it was."""
    before = _counts(demo_store)
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    done = _demo(
        "--store",
        demo_store,
        "--segments",
        "300",
        "--seed",
        "7",
        "--storage",
        "s3://nowhere/media",
        "--s3-endpoint",
        f"http://127.0.0.1:{port}",
    )
    _one_line(done, "cannot write the demo's media to s3://nowhere/media")
    assert _counts(demo_store) == before


def test_a_demo_that_fails_leaves_no_new_store_behind(tmp_path: Path) -> None:
    """Without PyAV a demo with media cannot start: no store file is made on the way (nor on any failure)."""
    objects = tmp_path / "objects"
    objects.mkdir()
    store = tmp_path / "new.duckdb"
    block = "import sys\nsys.modules['av'] = None\nfrom tams_analytics.cli.__main__ import main\nsys.exit(main())"
    done = subprocess.run(
        [sys.executable, "-c", block, "demo", "--store", f"duckdb:///{store}", "--storage", f"local:{objects}"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    _one_line(done, "need PyAV", 'pip install -e ".[media]" -c constraints.txt')
    assert sorted(p.name for p in tmp_path.iterdir()) == ["objects"]
    # and a failure after the store was made removes it: the same demo refused by an S3 endpoint nothing answers
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    done = _demo(
        "--store",
        f"duckdb:///{store}",
        "--segments",
        "50",
        "--storage",
        "s3://nowhere",
        "--s3-endpoint",
        f"http://127.0.0.1:{port}",
    )
    _one_line(done, "cannot write the demo's media")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["objects"]


def test_a_demo_store_goes_in_a_folder_that_exists(tmp_path: Path) -> None:
    done = _demo("--store", f"duckdb:///{tmp_path / 'typo' / 'demo.duckdb'}", "--segments", "10")
    _one_line(done, f"{tmp_path / 'typo'} does not exist", "existing folder")
    assert not (tmp_path / "typo").exists()
