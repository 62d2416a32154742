"""What the jobs report, as a scheduler and a person read it (the commands in a subprocess): which reports have
findings (exit 1) and which only describe, integrity's check names and sentences, one duration format in the
tables, a label for every source."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

from tams_analytics.analytics import integrity
from tams_analytics.analytics.findings import Check
from tams_analytics.catalog import connect
from tams_analytics.demo import build_demo
from tams_analytics.predicates import Term
from tests.analytics import add, put_flow

#: the check names the README documents, in audit order: each is the function (or view) that finds them
CHECKS = [
    "overlapping_segments",
    "orphan_segments",
    "orphan_flows",
    "unreferenced_objects",
    "missing_objects",
    "missing_from_storage",
    "size_mismatches",
    "stale_segments_updated",
    "dangling_collections",
]
GAPPY, WHOLE = "00000000-0000-4000-8000-0000000000a1", "00000000-0000-4000-8000-0000000000b2"


def cli(*argv: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAMS_")}
    return subprocess.run(
        [sys.executable, "-m", "tams_analytics.cli", *argv],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )


@pytest.fixture(scope="module")
def gappy(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Flow GAPPY: [0:0_10:0) and [70:0_200:0) (a 60 s gap, runs over a minute); WHOLE: [0:0_200:0) in one run.
    Then one segment's object record is removed (a missing object), an integrity finding."""
    url = f"duckdb:///{tmp_path_factory.mktemp('findings') / 'tams.duckdb'}"
    with connect(url, create=True) as cat:
        put_flow(cat, GAPPY, label="Gappy")
        put_flow(cat, WHOLE, label="Whole")
        add(cat, GAPPY, ["[0:0_10:0)", "[70:0_200:0)"])
        add(cat, WHOLE, ["[0:0_100:0)", "[100:0_200:0)"])
        gone = cat.segment_rows(GAPPY, limit=1).column("object_id")[0].as_py()
        cat.engine.delete("objects", [Term("id", "==", gone)])
    return url


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"duckdb:///{tmp_path_factory.mktemp('findings-demo') / 'demo.duckdb'}"
    with connect(url, create=True) as cat:
        build_demo(cat, 2000, programmes=2, progress=False)
    return url


# -- exit codes: what a finding is for each report --------------------------------------------------------------------
@pytest.mark.parametrize(
    ("argv", "code"),
    [
        (["report", "coverage"], 1),  # a flow has a gap
        (["report", "coverage", "--gaps"], 1),
        (["report", "coverage", "--flow", WHOLE], 0),  # that flow is whole
        (["report", "coverage", "--flow", WHOLE, "--within", "[150:0_300:0)"], 1),  # the window's end is not covered
        (["report", "storage"], 0),  # describes: no findings, even on a store integrity finds faults in
        (["report", "flows", "--by", "codec"], 0),
        (["report", "ingest"], 0),
        (["integrity"], 1),
    ],
    ids=lambda v: "-".join(v) if isinstance(v, list) else str(v),
)
def test_reports_exit_1_on_their_findings_only(gappy: str, argv: list[str], code: int) -> None:
    done = cli(*argv, "--store", gappy)
    assert done.returncode == code, done.stdout + done.stderr
    assert done.stderr == ""


# -- integrity: names and sentences ------------------------------------------------------------------------------
def test_check_names_are_the_functions_that_find_them(gappy: str) -> None:
    assert [str(c) for c in Check] == CHECKS
    assert all(callable(getattr(integrity, c)) for c in CHECKS if c not in ("missing_from_storage", "size_mismatches"))
    doc = json.loads(cli("integrity", "--store", gappy, "--format", "json").stdout)
    assert list(doc["totals"]) == CHECKS
    assert set(doc["skipped"]) == {"missing_from_storage", "size_mismatches"}


def test_one_segment_references_an_object(gappy: str) -> None:
    doc = json.loads(cli("integrity", "--store", gappy, "--format", "json").stdout)
    (missing,) = [f for f in doc["findings"] if f["check"] == "missing_objects"]
    assert missing["count"] == 1
    assert re.search(
        rf"^1 segment of flow {GAPPY} in \S+ references object \S+, which has no record$", missing["detail"]
    )


# -- tables for people ----------------------------------------------------------------------------------------------
def test_durations_read_one_way_in_a_column(gappy: str, demo: str) -> None:
    """58 s and 0:02:10 do not share a column: every duration is H:MM:SS (with a fraction when it has one)."""
    for store in (gappy, demo):
        out = cli("report", "coverage", "--store", store, "--wide").stdout.splitlines()
        head = out[0].split()
        cols = [i for i, name in enumerate(head) if name.endswith("_s")]
        assert cols, out[0]
        for line in out[2:-1]:
            cells = line.split()
            if len(cells) != len(head):  # a wrapped label
                continue
            for i in cols:
                assert re.fullmatch(r"\d+:\d\d:\d\d(\.\d+)?", cells[i]), (head[i], cells[i])
    table = cli("report", "coverage", "--store", gappy, "--flow", GAPPY).stdout
    assert "0:02:20" in table and "0:01:00" in table  # covered 140 s (10 + 130), the gap 60 s


def test_every_source_has_a_label(demo: str) -> None:
    doc = json.loads(cli("report", "storage", "--store", demo, "--by", "source", "--format", "json").stdout)
    assert doc["rows"] and all(r["label"] for r in doc["rows"])
    # sources of the demo have no label of their own: they read as their flows' (video and proxy share one)
    assert any(r["label"] == "Evening News (proxy), Evening News (video)" for r in doc["rows"])
    table = cli("report", "storage", "--store", demo, "--by", "source").stdout
    assert "Evening News (proxy)," in table
