"""What the jobs report, as a scheduler and a person read it (the commands in a subprocess): which reports have
findings (exit 1) and which only describe, integrity's check names and sentences, one duration format in the
tables, a label for every source."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from server.app import create_app
from server.config import Settings
from tams_analytics.analytics import integrity
from tams_analytics.analytics.findings import Check
from tams_analytics.catalog import connect
from tams_analytics.demo import build_demo
from tams_analytics.predicates import Term
from tams_analytics.timerange import TimeRange
from tests.analytics import add, demo_with_media, inject_faults, local_store, put_flow
from tests.fixtures.live import serve
from tests.server.conftest import video_flow

#: the check names the README documents, in audit order: each is the function (or view) that finds them
CHECKS = [
    "overlapping_segments",
    "orphan_segments",
    "orphan_flows",
    "unreferenced_objects",
    "missing_objects",
    "objects_without_instances",
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
    # the demo's sources have labels of their own, saying what they hold (video and proxy share one source); a
    # source without one reads as its flows' labels (tests/analytics/test_reports.py)
    assert any(r["label"] == "Evening News (video: HD and proxy)" for r in doc["rows"])
    table = cli("report", "storage", "--store", demo, "--by", "source").stdout
    assert "Evening News (video: HD and proxy)" in table


# -- integrity sees what clients see --------------------------------------------------------------------------------
def _ingest(api: httpx.Client, flow_id: str) -> None:
    """A flow of two segments: [0:0_1:0) with its media uploaded, [1:0_2:0) naming object ``never-stored``,
    which no storage holds (the spec lets a segment be registered before its media is stored)."""
    body = video_flow(flow_id)
    assert api.put(f"/flows/{flow_id}", json=body).status_code == 201
    (media,) = api.post(f"/flows/{flow_id}/storage", json={"limit": 1}).json()["media_objects"]
    put = media["put_url"]
    with httpx.Client(trust_env=False) as plain:
        assert plain.put(put["url"], content=b"media", headers={"content-type": put["content-type"]}).status_code == 200
    segments = [
        {"object_id": media["object_id"], "timerange": "[0:0_1:0)"},
        {"object_id": "never-stored", "timerange": "[1:0_2:0)"},
    ]
    assert api.post(f"/flows/{flow_id}/segments", json=segments).status_code == 201


def _unplayable(doc: dict[str, Any]) -> list[tuple[str, str, str]]:
    return [
        (f["flow_id"], f["object_id"], f["timerange"])
        for f in doc["findings"]
        if f["check"] == "objects_without_instances"
    ]


def test_a_segment_whose_object_no_storage_holds_is_a_finding_as_download_fails(tmp_path: Path) -> None:
    """What ``download`` cannot read (the server gives no get_urls for the object), the audit names: through
    the server's API and on the store with its storage, exit 1 either way."""
    data, flow_id = tmp_path / "data", str(uuid.uuid4())
    with serve(create_app(Settings(data_dir=data))) as api:
        _ingest(api, flow_id)
        base = str(api.base_url).rstrip("/")
        got = cli(
            "download", "--server", base, "--flow", flow_id, "--timerange", "[0:0_2:0)", "--out", str(tmp_path / "a.ts")
        )
        assert got.returncode == 1 and "never-stored" in got.stderr and "no get_urls" in got.stderr, got.stderr
        through_api = cli("integrity", "--store", f"tams+{base}", "--format", "json")
        assert through_api.returncode == 1, through_api.stderr
        doc = json.loads(through_api.stdout)
        assert doc["verdict"] == "findings" and doc["clean"] is False
        assert _unplayable(doc) == [(flow_id, "never-stored", "[1:0_2:0)")]
    # the server is stopped: its store and its object directory, read directly
    store, objects = f"duckdb:///{data / 'tams.duckdb'}", f"local:{data / 'objects'}"
    got = cli("download", "--store", store, "--storage", objects, "--flow", flow_id, "--out", str(tmp_path / "b.ts"))
    assert got.returncode == 1 and "never-stored" in got.stderr, got.stderr
    direct = cli("integrity", "--store", store, "--storage", objects, "--format", "json")
    assert direct.returncode == 1, direct.stderr
    doc = json.loads(direct.stdout)
    assert doc["skipped"] == {} and doc["totals"]["objects_without_instances"] == 1
    assert doc["totals"]["missing_from_storage"] == 0 and sum(doc["totals"].values()) == 1
    assert _unplayable(doc) == [(flow_id, "never-stored", "[1:0_2:0)")]
    (finding,) = [f for f in doc["findings"] if f["check"] == "objects_without_instances"]
    assert "no get_urls" in finding["detail"] and finding["count"] == 1
    table = cli("integrity", "--store", store, "--storage", objects)
    assert table.returncode == 1 and "objects_without_instances" in table.stdout and "never-stored" in table.stdout


# -- many findings: a summary first, the details on request -------------------------------------------------------
@pytest.fixture(scope="module")
def unplayable(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A demo store built without media: no segment's object has an instance, 20,000 findings on 16 flows."""
    url = f"duckdb:///{tmp_path_factory.mktemp('unplayable') / 'demo.duckdb'}"
    with connect(url, create=True) as cat:
        build_demo(cat, 20_000, progress=False)
    return url


def test_many_findings_are_summed_up_per_check_and_flow(unplayable: str) -> None:
    """The table gives each check's findings per flow (how many, their hull in UTC) and an example of each, in some
    lines a flow, not the findings themselves (eight lines each: 8,000 lines for the first 1,000 of 20,000)."""
    doc = json.loads(cli("integrity", "--store", unplayable, "--format", "json").stdout)
    groups = doc["summary"]
    assert doc["totals"]["objects_without_instances"] == 20_000 and len(groups) == 16
    done = cli("integrity", "--store", unplayable)
    assert done.returncode == 1, done.stderr
    text = done.stdout
    assert text.startswith("objects_without_instances: 20000 findings on 16 flows\n"), text[:300]
    assert len(text.splitlines()) < 16 * 5, f"{len(text.splitlines())} lines"
    lines = text.splitlines()
    for group in groups:
        hull = TimeRange.from_str(group["timerange"]).to_iso8601()
        (row,) = [line for line in lines if group["flow_id"] in line and hull in line]
        # a long label wraps onto a line of its own
        assert group["flow_label"].startswith(row.split("  ")[0]) and f" {group['findings']} " in row, row
        assert group["example"]["object_id"] in text and group["example"]["flow_id"] == group["flow_id"]
    assert "; --details lists them;" in " ".join(text.split())
    assert "findings listed" not in text


def test_the_details_follow_the_summary_on_request(unplayable: str) -> None:
    summary = cli("integrity", "--store", unplayable).stdout
    done = cli("integrity", "--store", unplayable, "--details", "--limit", "3")
    assert done.returncode == 1, done.stderr
    head, listed, rest = done.stdout.partition("\n3 findings listed:\n")
    assert listed and head.rstrip("\n") == summary.rpartition("\n\n20000 findings")[0], done.stdout[:3000]
    doc = json.loads(cli("integrity", "--store", unplayable, "--format", "json", "--limit", "3").stdout)
    assert all(f["object_id"] in rest for f in doc["findings"]) and "; 3 listed;" in " ".join(rest.split())


def test_the_json_stays_complete(unplayable: str) -> None:
    """Every finding (``--limit 0``), and the summary of all of them whatever the limit: counts adding up to the
    totals, hulls covering the findings, and each example a finding of its flow."""
    every = json.loads(cli("integrity", "--store", unplayable, "--format", "json", "--limit", "0").stdout)
    few = json.loads(cli("integrity", "--store", unplayable, "--format", "json", "--limit", "5").stdout)
    assert len(every["findings"]) == 20_000 and len(few["findings"]) == 5
    assert few["summary"] == every["summary"] and few["totals"] == every["totals"]
    per_flow: dict[str, list[dict[str, Any]]] = {}
    for finding in every["findings"]:
        per_flow.setdefault(finding["flow_id"], []).append(finding)
    assert {g["flow_id"] for g in every["summary"]} == set(per_flow)
    for group in every["summary"]:
        mine = per_flow[group["flow_id"]]
        assert group["check"] == "objects_without_instances" and group["findings"] == group["count"] == len(mine)
        spans = [TimeRange.from_str(f["timerange"]) for f in mine]
        hull = TimeRange.from_str(group["timerange"])
        assert (hull.start_ns, hull.end_ns) == (min(t.start_ns for t in spans), max(t.end_ns for t in spans))
        assert group["example"] in mine


# -- a partial audit says so ----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def whole(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    """A store with nothing wrong, its media in a local object directory: ``(url, objects dir)``."""
    tmp = tmp_path_factory.mktemp("whole")
    url, root = f"duckdb:///{tmp / 'tams.duckdb'}", tmp / "objects"
    with connect(url, create=True) as cat:
        demo_with_media(cat, local_store(root), segments=40)
    return url, root


def test_an_audit_of_every_check_is_clean_exit_0(whole: tuple[str, Path]) -> None:
    url, root = whole
    done = cli("integrity", "--store", url, "--storage", f"local:{root}", "--format", "json")
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert (doc["verdict"], doc["clean"], doc["skipped"]) == ("clean", True, {})


def test_an_audit_that_skipped_checks_is_partial_exit_3(whole: tuple[str, Path]) -> None:
    """Without --storage the storage checks do not run: nothing found is not "clean"."""
    done = cli("integrity", "--store", whole[0], "--format", "json")
    assert done.returncode == 3, done.stderr
    doc = json.loads(done.stdout)
    assert (doc["verdict"], doc["clean"], doc["findings"]) == ("partial", False, [])
    assert set(doc["skipped"]) == {"missing_from_storage", "size_mismatches"}
    table = cli("integrity", "--store", whole[0])
    assert table.returncode == 3
    assert table.stdout.startswith("partial: no findings among the checks that ran"), table.stdout
    assert "2 checks skipped" in table.stdout and "skipped missing_from_storage: no object store given" in table.stdout
    assert "not known to be clean" in table.stdout


def test_findings_exit_1_even_when_checks_were_skipped(gappy: str) -> None:
    done = cli("integrity", "--store", gappy, "--format", "json")
    assert done.returncode == 1
    doc = json.loads(done.stdout)
    assert doc["verdict"] == "findings" and doc["skipped"]
    assert "checks skipped" in cli("integrity", "--store", gappy).stdout


def test_an_audit_through_an_api_is_partial_exit_3(tmp_path: Path) -> None:
    """Over a TAMS API the checks that look for rows nothing leads to cannot run: the audit is partial."""
    with serve(create_app(Settings(data_dir=tmp_path / "data"))) as api:
        body = video_flow()
        assert api.put(f"/flows/{body['id']}", json=body).status_code == 201
        done = cli("integrity", "--store", f"tams+{str(api.base_url).rstrip('/')}", "--format", "json")
    assert done.returncode == 3, done.stderr
    doc = json.loads(done.stdout)
    assert doc["verdict"] == "partial" and doc["totals"] == dict.fromkeys(CHECKS, 0)
    assert {"orphan_segments", "missing_objects", "unreferenced_objects"} <= set(doc["skipped"])


def test_the_help_documents_exit_code_3() -> None:
    top = " ".join(cli("--help").stdout.split())
    assert "3 integrity found nothing among the checks it ran but skipped some (partial" in top
    own = " ".join(cli("integrity", "--help").stdout.split())
    assert "1 findings, 2 usage or connection errors, 3 partial: no findings among the checks that ran" in own


# -- tables keep words whole ----------------------------------------------------------------------------------------
def test_ids_keys_and_timeranges_wrap_whole_in_the_table(tmp_path: Path) -> None:
    """A finding's ids, storage key and timeranges each stand whole on one line of the people's table (the detail
    wraps at spaces only), as the JSON has them."""
    url, root = f"duckdb:///{tmp_path / 'tams.duckdb'}", tmp_path / "objects"
    with connect(url, create=True) as cat:
        demo_with_media(cat, local_store(root), segments=40)
        inject_faults(cat, local_store(root))
    args = ("integrity", "--store", url, "--storage", f"local:{root}")
    lines = cli(*args, "--details").stdout.splitlines()
    findings = json.loads(cli(*args, "--format", "json").stdout)["findings"]
    words = {w for f in findings for w in f["detail"].split()}
    words |= {f[k] for f in findings for k in ("flow_id", "object_id", "other_id") if f[k]}
    assert any(w.endswith(".ts") for w in words)  # a storage key: an id with its extension
    broken = [w for w in words if not any(w in line for line in lines)]
    assert broken == [], "\n".join(lines)


def test_storage_with_no_controlled_instances_to_check_is_a_complete_audit(tmp_path: Path) -> None:
    """--storage given, and the catalog names nothing in any storage (no controlled instances): the storage checks
    ran over nothing, they were not skipped."""
    url = f"duckdb:///{tmp_path / 'tams.duckdb'}"
    with connect(url, create=True) as cat:
        put_flow(cat, GAPPY)
        urls = [{"url": "http://media.invalid/a", "label": "mirror"}]
        assert cat.add_segments(GAPPY, [{"object_id": "a", "timerange": "[0:0_1:0)", "get_urls": urls}]).all_accepted
    (tmp_path / "objects").mkdir()
    done = cli("integrity", "--store", url, "--storage", f"local:{tmp_path / 'objects'}", "--format", "json")
    assert done.returncode == 0, done.stdout + done.stderr
    doc = json.loads(done.stdout)
    assert (doc["verdict"], doc["skipped"], doc["checked"]["storage_keys"]) == ("clean", {}, 0)
