"""Backup repositories on the command line: S3 (a real SeaweedFS), retention, what ``verify`` finds, what
``restore`` refuses.

* A store with its media in S3 is backed up to S3, verified against the media bucket (and found wanting once an
  object is gone: exit 1), and restored from S3 into a new DuckDB file equal to the store.
* ``backup --keep N`` and ``backup expire`` (the runbook's command, as written) keep the N newest backups and
  remove unfinished ones older than the newest; a backup whose manifest does not read is left alone.
* ``verify`` finds each kind of damage (a file changed, missing, unlisted; a manifest that does not read; a table
  of other columns; overlapping segments in the store backed up) with exit 1 and the check named in its JSON, and
  passes a good backup with exit 0; no backup at all is exit 2.
* ``restore`` refuses a damaged backup with exit 1 writing nothing, an existing store without ``--force``, and a
  store another process holds, each in one line.
* What the pages say is what the commands do: the JSON fields of ``backup``, ``backup expire``, ``restore``,
  ``copy`` and ``verify`` (``docs/jobs/output.md``) and the checks ``verify`` runs (the runbook).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import tams_analytics as ta
from tams_analytics.backup import MANIFEST, Repository, backup_store
from tams_analytics.cli.__main__ import main
from tests.backup.runbook import blocks_for, shell
from tests.backup.stores import build_catalog_demo, differences
from tests.fixtures.s3 import S3ServerInfo, _client

EXPIRE = "tests/backup/test_repository.py::test_the_runbook_expires_all_but_the_newest_backups"


def _store(path: Path, segments: int = 300) -> str:
    url = f"duckdb:///{path}"
    with ta.connect(url, create=True) as cat:
        build_catalog_demo(cat, segments)
    return url


def _json(capsys: pytest.CaptureFixture[str]) -> Any:
    return json.loads(capsys.readouterr().out)


# -- S3 ------------------------------------------------------------------------------------------------------
@pytest.fixture
def s3_env(monkeypatch: pytest.MonkeyPatch, s3_server: S3ServerInfo) -> S3ServerInfo:
    for name, value in {
        "TAMS_S3_ENDPOINT": s3_server.endpoint_url,
        "TAMS_S3_REGION": s3_server.region,
        "AWS_ACCESS_KEY_ID": s3_server.access_key,  # the repository (pyarrow)
        "AWS_SECRET_ACCESS_KEY": s3_server.secret_key,
        "TAMS_S3_ACCESS_KEY": s3_server.access_key,  # the media (boto3)
        "TAMS_S3_SECRET_KEY": s3_server.secret_key,
    }.items():
        monkeypatch.setenv(name, value)
    return s3_server


def test_a_store_with_media_in_s3_is_backed_up_verified_and_restored_through_s3(
    s3_env: S3ServerInfo, s3_bucket: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = f"duckdb:///{tmp_path / 'tams.duckdb'}"
    media = f"s3://{s3_bucket}/media"
    args = ["--store", store, "--segments", "16", "--programmes", "1", "--storage", media, "--no-progress"]
    assert main(["demo", *args]) == 0
    capsys.readouterr()
    repo = f"s3://{s3_bucket}/backups/tams"
    assert main(["backup", "--store", store, "--to", repo, "--format", "json"]) == 0
    made = _json(capsys)
    assert made["location"] == f"{repo}/{made['backup']}" and made["tables"]["segments"] == 16

    assert main(["verify", "--from", repo, "--storage", media, "--format", "json"]) == 0
    report = _json(capsys)
    assert report["verdict"] == "ok" and report["backup"] == made["backup"]
    checked = {c["check"]: c["status"] for c in report["checks"]}
    assert checked["checksums"] == checked["missing_from_storage"] == "ok"

    restored = tmp_path / "restored.duckdb"
    assert main(["restore", "--from", repo, "--store", f"duckdb:///{restored}"]) == 0
    assert f"restored backup {made['backup']}" in capsys.readouterr().out
    with ta.connect(store, read_only=True) as original, ta.connect(f"duckdb:///{restored}", read_only=True) as copy:
        assert differences(original, copy) == {}

    s3 = _client(s3_env)
    gone = s3.list_objects_v2(Bucket=s3_bucket, Prefix="media/")["Contents"][0]["Key"]
    s3.delete_object(Bucket=s3_bucket, Key=gone)
    assert main(["verify", "--from", repo, "--storage", media, "--format", "json"]) == 1
    report = _json(capsys)
    assert report["verdict"] == "findings"
    (finding,) = [f for f in report["findings"] if f["check"] == "missing_from_storage"]
    assert finding["other_id"] == gone.removeprefix("media/")


# -- retention -----------------------------------------------------------------------------------------------
def test_the_runbook_expires_all_but_the_newest_backups(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = _store(tmp_path / "tams.duckdb", 50)
    repo = tmp_path / "backups"
    made = [backup_store(str(repo), store=store).manifest.id for _ in range(9)]
    (repo / "20000101T000000Z").mkdir()  # a backup that never finished, older than the newest
    assert main(["backup", "--store", store, "--to", str(repo), "--keep", "9", "--format", "json"]) == 0
    done = _json(capsys)
    assert done["expired"] == ["20000101T000000Z", made[0]]  # oldest first
    made = [*made[1:], done["backup"]]
    (command,) = blocks_for(EXPIRE)[0]
    with shell(tmp_path) as sh:
        said = sh.run(command).stdout
    assert said.splitlines()[:2] == [f"removed backup {made[0]} (complete)", f"removed backup {made[1]} (complete)"]
    assert [b.id for b in Repository.open(str(repo)).backups()] == made[2:]


def test_a_backup_records_the_absolute_url_of_a_store_named_relatively(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``duckdb://./tams-data/tams.duckdb`` names another file from another folder: the manifest names the file."""
    (tmp_path / "tams-data").mkdir()
    _store(tmp_path / "tams-data" / "tams.duckdb", 50)
    monkeypatch.chdir(tmp_path)
    args = ["backup", "--store", "duckdb://./tams-data/tams.duckdb", "--to", "backups", "--format", "json"]
    assert main(args) == 0
    done = _json(capsys)
    absolute = f"duckdb://{tmp_path / 'tams-data' / 'tams.duckdb'}"
    assert done["store"] == absolute and done["method"] == "direct"
    assert json.loads((tmp_path / "backups" / done["backup"] / MANIFEST).read_text())["store"] == absolute


# -- verify --------------------------------------------------------------------------------------------------
def _change_a_byte(folder: Path) -> str:
    path = next((folder / "segments").glob("*.parquet"))
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    return "checksums"


def _remove_a_file(folder: Path) -> str:
    next((folder / "flows").glob("*.parquet")).unlink()
    return "checksums"


def _add_a_file(folder: Path) -> str:
    (folder / "segments" / "data_9.parquet").write_bytes(b"not a backup's")
    return "checksums"


def _break_the_manifest(folder: Path) -> str:
    (folder / MANIFEST).write_text("{not json")
    return "manifest"


def _drop_a_column(folder: Path) -> str:
    """A table written again without a column, its manifest entry updated to match (only the schema is wrong)."""
    path = next((folder / "tags").glob("*.parquet"))
    pq.write_table(pq.read_table(path).drop_columns(["value"]), path)
    from tams_analytics.backup.repository import file_sha256

    doc = json.loads((folder / MANIFEST).read_text())
    rel = path.relative_to(folder).as_posix()
    doc["files"][rel] = {"bytes": path.stat().st_size, "sha256": file_sha256(path)}
    (folder / MANIFEST).write_text(json.dumps(doc))
    return "columns"


DAMAGE: dict[str, Callable[[Path], str]] = {
    "a file changed": _change_a_byte,
    "a file missing": _remove_a_file,
    "a file not in the manifest": _add_a_file,
    "a manifest that does not read": _break_the_manifest,
    "a table without a declared column": _drop_a_column,
}


@pytest.fixture(scope="module")
def good_backup(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("verify")
    result = backup_store(str(work / "backups"), store=_store(work / "tams.duckdb"))
    return Path(result.location)


def test_a_local_backup_is_its_owners_alone(good_backup: Path) -> None:
    """A backup holds every column, webhook API keys included: its folder is not readable by other users."""
    assert good_backup.stat().st_mode & 0o777 == 0o700


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_verify_finds_a_damaged_backup(
    damage: str, good_backup: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["verify", "--from", str(good_backup), "--format", "json"]) == 0
    assert _json(capsys)["verdict"] == "ok"
    copy = tmp_path / "repo" / good_backup.name
    shutil.copytree(good_backup, copy)
    check = DAMAGE[damage](copy)
    assert main(["verify", "--from", str(tmp_path / "repo"), "--format", "json"]) == 1
    report = _json(capsys)
    assert report["verdict"] == "findings"
    assert {c["check"]: c["status"] for c in report["checks"]}[check] == "findings"
    assert any(f["check"] == check for f in report["findings"])


def test_verify_finds_overlapping_segments_in_the_store_backed_up(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = _store(tmp_path / "tams.duckdb", 100)
    with ta.connect(store) as cat:  # a row the write rules would have refused, written past them
        seg = cat.rows("segments", limit=1).to_pylist()[0]
        late = {**seg, "object_id": "overlapping", "start_ns": seg["start_ns"] + 1, "end_ns": seg["end_ns"] + 1}
        cat.engine.insert("segments", pa.Table.from_pylist([late]))
    backup_store(str(tmp_path / "backups"), store=store)
    assert main(["verify", "--from", str(tmp_path / "backups"), "--format", "table"]) == 1
    out = capsys.readouterr().out
    assert re.search(r"^overlapping_segments +findings ", out, re.M) and out.rstrip().splitlines()[-1].startswith(
        "FINDINGS: backup"
    )


def test_verify_finds_a_backup_kept_longer_than_its_servers_object_grace(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Objects deleted after a backup keep their bytes for ``TAMS_OBJECT_GRACE_S`` only: the manifest records it, and
    verify says when the backup has outlived it (exit 1), as a scheduled drill would be told to alert."""
    monkeypatch.setenv("TAMS_OBJECT_GRACE_S", "3600")
    result = backup_store(str(tmp_path / "backups"), store=_store(tmp_path / "tams.duckdb", 100))
    folder = Path(result.location)
    assert result.manifest.object_grace_s == 3600
    assert main(["verify", "--from", str(folder), "--format", "json"]) == 0
    check = {c["check"]: c for c in _json(capsys)["checks"]}["object_grace"]
    assert check["status"] == "ok" and "1.0 hours after nothing references them" in check["detail"], check
    doc = json.loads((folder / MANIFEST).read_text())
    doc["created"] = "2020-01-01T00:00:00Z"  # the same backup, kept years
    (folder / MANIFEST).write_text(json.dumps(doc))
    assert main(["verify", "--from", str(folder), "--format", "json"]) == 1
    report = _json(capsys)
    assert {c["check"]: c["status"] for c in report["checks"]}["object_grace"] == "findings"
    (finding,) = [f for f in report["findings"] if f["check"] == "object_grace"]
    assert "older than its server's object grace period" in finding["detail"]


def test_verify_of_no_backup_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "empty").mkdir()
    assert main(["verify", "--from", str(tmp_path / "empty")]) == 2
    assert capsys.readouterr().err.strip() == f"tams-analytics verify: no backup in {tmp_path / 'empty'}"


# -- restore refuses ---------------------------------------------------------------------------------------
def test_restore_refuses_a_damaged_backup_and_writes_nothing(
    good_backup: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    copy = tmp_path / "repo" / good_backup.name
    shutil.copytree(good_backup, copy)
    _change_a_byte(copy)
    target = tmp_path / "restored.duckdb"
    assert main(["restore", "--from", str(tmp_path / "repo"), "--store", f"duckdb:///{target}"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"backup {good_backup.name} is damaged, nothing was restored" in err[0]
    assert list(tmp_path.glob("restored*")) == []


def test_restore_refuses_an_existing_store_without_force_and_a_held_store_always(
    good_backup: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "tams.duckdb"
    args = ["restore", "--from", str(good_backup), "--store", f"duckdb:///{target}"]
    assert main(args) == 0
    capsys.readouterr()
    assert main(args) == 2
    assert capsys.readouterr().err.strip() == (
        f"tams-analytics restore: {target} exists: --force replaces it (it is kept as {target}.before-restore)"
    )
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import duckdb, sys, time; c = duckdb.connect({str(target)!r}); print(1, flush=True); sys.stdin.read()",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "1"
        assert main([*args, "--force"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and f"{target} is in use by another process (PID {holder.pid}" in err[0]
        assert "stop it first, then restore" in err[0] and "through the server's API" not in err[0], err
    finally:
        holder.kill()
        holder.wait(timeout=30)
    assert not Path(f"{target}.before-restore").exists()
    assert main([*args, "--force"]) == 0
    assert Path(f"{target}.before-restore").exists() and "restored backup" in capsys.readouterr().out
    assert os.path.getsize(target) > 0


def test_a_backup_made_before_a_table_existed_verifies_and_restores(
    good_backup: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A backup of an older version, which had no ``webhook_events`` table: nothing missing, restored empty."""
    copy = tmp_path / "repo" / good_backup.name
    shutil.copytree(good_backup, copy)
    shutil.rmtree(copy / "webhook_events")
    doc = json.loads((copy / MANIFEST).read_text())
    del doc["tables"]["webhook_events"]
    doc["files"] = {k: v for k, v in doc["files"].items() if not k.startswith("webhook_events/")}
    (copy / MANIFEST).write_text(json.dumps(doc))
    assert main(["verify", "--from", str(copy), "--format", "json"]) == 0, capsys.readouterr().out
    capsys.readouterr()
    target = tmp_path / "restored.duckdb"
    assert main(["restore", "--from", str(copy), "--store", f"duckdb:///{target}"]) == 0
    with ta.connect(f"duckdb:///{target}", read_only=True) as restored:
        assert restored.count("webhook_events") == 0 and restored.count("segments") == 300


# -- the pages say what the commands do -------------------------------------------------------------------------
ROOT = Path(__file__).resolve().parents[2]


def _documented_fields() -> dict[str, set[str]]:
    """The JSON fields ``docs/jobs/output.md`` lists, by command (a row without a command continues the last)."""
    text = (ROOT / "docs/jobs/output.md").read_text()
    table = text[text.index("## JSON of backup, restore, copy and verify") :]
    fields: dict[str, set[str]] = defaultdict(set)
    command = ""
    for line in table.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if not line.startswith("|") or len(cells) != 3 or cells[1] in ("field", "---"):
            continue
        command = cells[0].strip("`") or command
        fields[command] |= set(re.findall(r"`([a-z_]+)`", cells[1]))
    return dict(fields)


def test_the_json_of_each_command_has_the_fields_the_output_page_lists(
    good_backup: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = f"duckdb:///{tmp_path / 'restored.duckdb'}"
    runs = {
        "backup": ["backup", "--store", _store(tmp_path / "tams.duckdb", 50), "--to", str(tmp_path / "b")],
        "backup expire": ["backup", "expire", "--to", str(tmp_path / "b"), "--keep", "1"],
        "restore": ["restore", "--from", str(good_backup), "--store", store, "--no-progress"],
        "copy": ["copy", "--from", str(good_backup), "--to", f"duckdb:///{tmp_path / 'copied.duckdb'}"],
        "verify": ["verify", "--from", str(good_backup)],
    }
    documented = _documented_fields()
    assert set(documented) == set(runs)
    for command, args in runs.items():
        assert main([*args, "--format", "json", *(["--no-progress"] if command == "copy" else [])]) == 0, command
        assert set(_json(capsys)) == documented[command], command


def test_the_runbook_lists_the_checks_verify_runs(good_backup: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = (ROOT / "docs/operators/backup-and-restore.md").read_text()
    said = text[text.index("It takes the newest backup of the repository") : text.index("Exit code 0 when")]
    assert main(["verify", "--from", str(good_backup), "--format", "json"]) == 0
    run = {c["check"] for c in _json(capsys)["checks"]}
    (good_backup / "segments" / "data_9.parquet").write_bytes(b"x")  # damaged: the integrity checks are one, skipped
    try:
        assert main(["verify", "--from", str(good_backup), "--format", "json"]) == 1
    finally:
        (good_backup / "segments" / "data_9.parquet").unlink()
    run |= {c["check"] for c in _json(capsys)["checks"]}
    assert set(re.findall(r"`([a-z_]+)`", said)) == run
