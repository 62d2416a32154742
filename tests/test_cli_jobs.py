"""``tams-analytics integrity`` and ``tams-analytics report`` on real DuckDB stores, local and S3 storage:
exit codes, table/JSON/CSV output, and progress only on a terminal."""

from __future__ import annotations

import csv
import fcntl
import io
import json
import os
import pty
import select
import struct
import subprocess
import sys
import termios
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tams_analytics.analytics.integrity import FINDING_SCHEMA, Check
from tams_analytics.catalog import connect
from tams_analytics.cli.__main__ import main
from tams_analytics.storage.base import object_key
from tests.analytics import Faults, demo_with_media, inject_faults, key_of, local_store


@pytest.fixture
def clean_store(tmp_path: Path) -> tuple[str, Path]:
    """A DuckDB demo store with its media in a local object directory: ``(url, objects dir)``."""
    url = f"duckdb:///{tmp_path / 'tams.duckdb'}"
    root = tmp_path / "objects"
    with connect(url, create=True) as cat:
        demo_with_media(cat, local_store(root))
    return url, root


@pytest.fixture
def faulty_store(clean_store: tuple[str, Path]) -> tuple[str, Path, Faults]:
    url, root = clean_store
    with connect(url) as cat:
        faults = inject_faults(cat, local_store(root))
    return url, root, faults


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


# -- integrity -------------------------------------------------------------------------------------------------
def test_integrity_clean_store_exits_0(capsys: pytest.CaptureFixture[str], clean_store: tuple[str, Path]) -> None:
    url, root = clean_store
    code, out, err = run(capsys, "integrity", "--store", url, "--storage", f"local:{root}")
    assert code == 0, err
    assert out.startswith("no findings (checked ") and "120 storage keys" in out
    assert err == ""  # not a terminal: no progress bar


def test_integrity_findings_exit_1_as_a_table(
    capsys: pytest.CaptureFixture[str], faulty_store: tuple[str, Path, Faults]
) -> None:
    url, root, faults = faulty_store
    code, out, err = run(capsys, "integrity", "--store", url, "--storage", f"local:{root}", "--details")
    assert code == 1, err
    assert out.startswith("overlapping_segments: 1 finding on 1 flow\n")  # the summary first, then the findings
    header = out.split("\n4 findings listed:\n\n", 1)[1].splitlines()[0].split()
    assert header[0] == "check" and "source_id" not in header  # columns empty for every finding are left out
    for text in (
        "overlapping_segments",
        "orphan_segments",
        "missing_from_storage",
        "dangling_collections",
        faults.overlap_flow,
        faults.orphan_flow,
        faults.missing_object,
        faults.missing_member,
    ):
        assert text in out
    assert (
        "4 findings (overlapping_segments 1, orphan_segments 1, missing_from_storage 1, dangling_collections 1)" in out
    )


def test_integrity_json_is_complete_and_stable(
    capsys: pytest.CaptureFixture[str], faulty_store: tuple[str, Path, Faults]
) -> None:
    url, root, faults = faulty_store
    args = ("integrity", "--store", url, "--storage", f"local:{root}", "--format", "json")
    code, out, _ = run(capsys, *args)
    assert code == 1
    doc = json.loads(out)
    assert doc["clean"] is False and list(doc["totals"]) == [str(c) for c in Check]
    assert doc["totals"]["missing_from_storage"] == 1 and doc["skipped"] == {}
    (missing,) = [f for f in doc["findings"] if f["check"] == "missing_from_storage"]
    key = object_key(faults.missing_object, "video/mp2t")  # an object of a video flow
    assert (missing["object_id"], missing["other_id"]) == (faults.missing_object, key)
    assert run(capsys, *args)[1] == out  # the same document every time


def test_integrity_csv(capsys: pytest.CaptureFixture[str], faulty_store: tuple[str, Path, Faults]) -> None:
    url, _, faults = faulty_store
    code, out, _ = run(capsys, "integrity", "--store", url, "--format", "csv")
    assert code == 1
    rows = list(csv.DictReader(io.StringIO(out)))
    assert list(rows[0]) == FINDING_SCHEMA.names
    assert [r["check"] for r in rows] == ["overlapping_segments", "orphan_segments", "dangling_collections"]
    assert rows[1]["flow_id"] == faults.orphan_flow and rows[1]["count"] == "1"


def test_integrity_skips_storage_without_storage_option(
    capsys: pytest.CaptureFixture[str], clean_store: tuple[str, Path]
) -> None:
    code, out, _ = run(capsys, "integrity", "--store", clean_store[0])
    # a partial audit (exit 3), not a clean one: the storage checks did not run
    assert code == 3 and "skipped missing_from_storage: no object store given" in out


def test_integrity_against_s3(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, s3_store: Any, s3_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"duckdb:///{tmp_path / 's3.duckdb'}"
    with connect(url, create=True) as cat:
        demo_with_media(cat, s3_store, segments=40)
        oid = cat.rows("segments", limit=1).column("object_id")[0].as_py()
        key = key_of(cat, oid)
    monkeypatch.setenv("TAMS_S3_ACCESS_KEY", s3_server.access_key)
    monkeypatch.setenv("TAMS_S3_SECRET_KEY", s3_server.secret_key)
    args = (
        "integrity",
        "--store",
        url,
        "--storage",
        f"s3://{s3_store.bucket}",
        "--s3-endpoint",
        s3_server.endpoint_url,
    )
    assert run(capsys, *args)[0] == 0
    s3_store.delete([key])
    code, out, _ = run(capsys, *args, "--format", "json")
    assert code == 1
    assert [(f["check"], f["object_id"]) for f in json.loads(out)["findings"]] == [("missing_from_storage", oid)]
    # a wrong bucket: every key is missing, and the command says what probably went wrong
    code, _, err = run(capsys, *args[:4], "s3://no-such-bucket-here", *args[5:])
    assert code == 1 and "is the directory, bucket or prefix right?" in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--store", "nosuch://user:hunter2@host/x"], "names no store engine"),
        (["--store", "{store}", "--storage", "local:/no/such/dir"], "is not a directory"),
        (["--store", "{store}", "--storage", "ftp://x"], "expected local:DIR or s3://BUCKET"),
        (["--store", "{store}", "--storage", "s3://b", "--s3-endpoint", "http://127.0.0.1:9"], "storage error"),
        (["--store", "{store}", "--limit", "-1"], "--limit"),
        ([], "no store"),
    ],
)
def test_integrity_usage_and_connection_errors_exit_2(
    capsys: pytest.CaptureFixture[str],
    clean_store: tuple[str, Path],
    monkeypatch: pytest.MonkeyPatch,
    argv: list[str],
    message: str,
) -> None:
    monkeypatch.delenv("TAMS_STORE", raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "y")
    code, out, err = run(capsys, "integrity", *[a.replace("{store}", clean_store[0]) for a in argv])
    assert code == 2 and out == ""
    assert message in err and "hunter2" not in err


def test_integrity_warns_about_an_empty_store(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    url = f"duckdb:///{tmp_path / 'empty.duckdb'}"
    connect(url, create=True).close()
    code, out, err = run(capsys, "integrity", "--store", url)
    assert code == 3 and out.startswith("partial: no findings") and "is empty: is --store right?" in err


def test_integrity_store_from_environment(
    capsys: pytest.CaptureFixture[str], clean_store: tuple[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TAMS_STORE", clean_store[0])
    assert run(capsys, "integrity", "--storage", f"local:{clean_store[1]}")[0] == 0


def _run_with_terminal_stderr(argv: list[str]) -> tuple[int, str]:
    """Run the command in a subprocess whose stderr is a pseudo-terminal; return its exit code and stderr."""
    leader, follower = pty.openpty()
    # a fresh pseudo-terminal is 0 columns wide, which leaves a progress bar no room: make it 120 x 24
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))
    proc = subprocess.Popen(
        [sys.executable, "-m", "tams_analytics.cli", *argv],
        stdout=subprocess.DEVNULL,
        stderr=follower,
        cwd=Path(__file__).resolve().parents[1],
    )
    os.close(follower)
    chunks = []
    while True:
        ready, _, _ = select.select([leader], [], [], 60)
        if not ready:
            proc.kill()
            break
        try:
            data = os.read(leader, 4096)
        except OSError:  # the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(leader)
    return proc.wait(timeout=60), b"".join(chunks).decode(errors="replace")


def test_progress_is_shown_on_a_terminal_only(clean_store: tuple[str, Path]) -> None:
    url, root = clean_store
    code, err = _run_with_terminal_stderr(["integrity", "--store", url, "--storage", f"local:{root}"])
    assert code == 0
    assert "integrity" in err and "storage" in err and "120/120" in err
    piped = subprocess.run(
        [sys.executable, "-m", "tams_analytics.cli", "integrity", "--store", url, "--storage", f"local:{root}"],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[1],
        check=False,
    )
    assert piped.returncode == 0 and piped.stderr == ""


# -- reports -----------------------------------------------------------------------------------------------------
def test_report_coverage_formats(capsys: pytest.CaptureFixture[str], clean_store: tuple[str, Path]) -> None:
    url = clean_store[0]
    code, out, _ = run(capsys, "report", "coverage", "--store", url, "--format", "json")
    assert code == 0
    doc = json.loads(out)
    assert doc["report"] == "coverage" and doc["columns"][:6] == [
        "flow_id",
        "label",
        "segments",
        "runs",
        "gaps",
        "timerange",
    ]
    assert sum(r["segments"] for r in doc["rows"]) == 120
    assert all(r["timerange"].startswith("[1700000000:0_") for r in doc["rows"])
    code, out, _ = run(capsys, "report", "coverage", "--store", url, "--format", "csv")
    assert [r["flow_id"] for r in csv.DictReader(io.StringIO(out))] == [r["flow_id"] for r in doc["rows"]]
    code, out, _ = run(capsys, "report", "coverage", "--store", url)
    assert out.splitlines()[0].split()[:3] == ["flow_id", "label", "segments"] and f"({len(doc['rows'])} rows)" in out


def test_report_coverage_gaps_and_runs(capsys: pytest.CaptureFixture[str], clean_store: tuple[str, Path]) -> None:
    url = clean_store[0]
    summary = json.loads(run(capsys, "report", "coverage", "--store", url, "--format", "json")[1])["rows"]
    gaps = json.loads(run(capsys, "report", "coverage", "--store", url, "--gaps", "--format", "json")[1])
    assert gaps["columns"] == ["flow_id", "label", "timerange", "start_utc", "end_utc", "duration_ns", "duration_s"]
    assert len(gaps["rows"]) == sum(r["gaps"] for r in summary)
    runs = json.loads(run(capsys, "report", "coverage", "--store", url, "--runs", "--format", "json")[1])["rows"]
    assert len(runs) == sum(r["runs"] for r in summary)
    one = summary[0]["flow_id"]
    only = json.loads(run(capsys, "report", "coverage", "--store", url, "--flow", one, "--format", "json")[1])
    assert [r["flow_id"] for r in only["rows"]] == [one]


def test_report_storage_ingest_and_flows(capsys: pytest.CaptureFixture[str], clean_store: tuple[str, Path]) -> None:
    url = clean_store[0]
    storage = json.loads(run(capsys, "report", "storage", "--store", url, "--by", "format", "--format", "json")[1])
    assert sum(r["objects"] for r in storage["rows"]) == 120 and all(r["objects_unsized"] == 0 for r in storage["rows"])
    assert sum(r["bytes"] for r in storage["rows"]) > 0
    ingest = json.loads(run(capsys, "report", "ingest", "--store", url, "--since", "1h", "--format", "json")[1])
    assert sum(r["segments"] for r in ingest["rows"]) == 120 and ingest["rows"][0]["period"].endswith(":00:00Z")
    future = json.loads(run(capsys, "report", "ingest", "--store", url, "--since", "2999-01-01", "--format", "json")[1])
    assert future["rows"] == []
    tags = json.loads(run(capsys, "report", "flows", "--store", url, "--by", "tag:genre", "--format", "json")[1])
    assert {r["value"] for r in tags["rows"]} == {"news", "sport"}
    code, out, _ = run(capsys, "report", "flows", "--store", url, "--by", "codec")
    assert code == 0 and "video/h264" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["ingest", "--since", "yesterday"], "--since 'yesterday'"),
        (["coverage", "--within", "1:0_2:0_3:0"], "invalid timerange"),
        (["flows", "--by", "colour"], "--by 'colour'"),
        (["coverage", "--store", "nosuch://x"], "names no store engine"),
    ],
)
def test_report_errors_exit_2(
    capsys: pytest.CaptureFixture[str], clean_store: tuple[str, Path], argv: list[str], message: str
) -> None:
    store = [] if "--store" in argv else ["--store", clean_store[0]]
    code, out, err = run(capsys, "report", *argv, *store)
    assert code == 2 and out == "" and message in err


@pytest.fixture(autouse=True)
def _no_store_from_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("TAMS_STORE", raising=False)
    yield


def test_tables_fit_120_columns_unless_wide(
    capsys: pytest.CaptureFixture[str], faulty_store: tuple[str, Path, Faults]
) -> None:
    url, root, _ = faulty_store
    for argv in (
        ["report", "coverage"],
        ["report", "coverage", "--runs"],
        ["report", "storage"],
        ["report", "flows", "--by", "tags"],
        ["integrity", "--storage", f"local:{root}"],
    ):
        code, out, _ = run(capsys, *argv, "--store", url)
        assert code in (0, 1)
        assert max(len(line) for line in out.splitlines()) <= 120, (argv, out)
    _, wide, _ = run(capsys, "report", "coverage", "--store", url, "--wide")
    header = wide.splitlines()[0].split()
    assert {"timerange", "covered_ns", "seg_mean_s", "end_utc"} <= set(header)
    assert max(len(line) for line in wide.splitlines()) > 120


def test_one_row_is_one_row(capsys: pytest.CaptureFixture[str], clean_store: tuple[str, Path]) -> None:
    code, out, _ = run(capsys, "report", "storage", "--by", "format", "--store", clean_store[0])
    rows = json.loads(
        run(capsys, "report", "storage", "--by", "format", "--store", clean_store[0], "--format", "json")[1]
    )
    n = len(rows["rows"])
    assert code == 0 and out.rstrip().endswith(f"({n} row{'' if n == 1 else 's'})")
    _, out, _ = run(capsys, "report", "ingest", "--every", "day", "--store", clean_store[0])
    assert out.rstrip().endswith("(1 row)")
