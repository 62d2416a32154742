"""Moving a store: ``tams-analytics copy`` and :func:`tams_analytics.backup.copy_store`.

DuckDB to DuckDB, an export to a store and a backup to a store through the runbook's own commands; a copy
SIGKILLed halfway continues when run again and equals a copy never interrupted (and a source changed meanwhile is
not continued); a target holding anything else is refused unless ``--force``; DuckDB to VAST (the VAST engine over
its stand-in store, behind ``store=``), after which the API answers every document as it did on DuckDB; a backup
restored into VAST.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

import tams_analytics as ta
from server.app import create_app
from server.config import Settings
from tams_analytics.backup import backup_engine, backup_store, copy_store, locate, restore_into
from tams_analytics.catalog import Catalog
from tams_analytics.cli.__main__ import main
from tests.backup.documents import documents
from tests.backup.runbook import blocks_for, environment, shell
from tests.backup.stores import SECRET, differences, rich_store

RUNBOOK = "tests/backup/test_copy.py::test_the_runbook_moves_a_store_and_an_export"


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A stopped server's store: a demo of 3,000 segments, a webhook with a secret, a flow delete request."""
    return rich_store(tmp_path_factory.mktemp("copy") / "tams-data", 3000)


def _open(path: Path) -> Catalog:
    return ta.connect(f"duckdb:///{path}", read_only=True)


def test_the_runbook_moves_a_store_and_an_export(source: Path, tmp_path: Path) -> None:
    shutil.copytree(source.parent, tmp_path / "tams-data")
    backup_store(str(tmp_path / "backups"), store=f"duckdb:///{tmp_path / 'tams-data' / 'tams.duckdb'}")
    (commands,) = blocks_for(RUNBOOK)
    with shell(tmp_path) as sh:
        for command in commands:
            sh.run(command)
    with _open(source) as original:
        for name in ("moved.duckdb", "from-backup.duckdb"):
            with _open(tmp_path / name) as copied:
                assert differences(original, copied) == {}, name
        with _open(tmp_path / "from-export.duckdb") as copied:
            # an export never holds webhook secrets: everything else is there
            assert differences(original, copied, {"webhooks": ("api_key_value",)}) == {}
            assert copied.rows("webhooks").column("api_key_value").to_pylist() == [None]


def _copy_command(source: Path, target: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "tams_analytics.cli",
        "-vv",
        "copy",
        "--from",
        f"duckdb:///{source}",
        "--to",
        f"duckdb:///{target}",
        "--batch-rows",
        "250",
        "--no-progress",
    ]


def _kill_halfway(source: Path, target: Path, after_rows: int) -> None:
    """Start a copy and SIGKILL it once it has committed ``after_rows`` segments (it says so at -vv)."""
    process = subprocess.Popen(
        _copy_command(source, target), stderr=subprocess.PIPE, text=True, env=environment(), start_new_session=True
    )
    assert process.stderr is not None
    seen = []
    for line in process.stderr:
        seen.append(line)
        if "copy segments: " in line and int(line.split("copy segments: ")[1].split()[0]) >= after_rows:
            os.killpg(process.pid, signal.SIGKILL)
            break
    process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL, "".join(seen[-20:])


def test_a_copy_killed_halfway_continues_and_equals_a_clean_copy(source: Path, tmp_path: Path) -> None:
    target = tmp_path / "target.duckdb"
    # killed after its first batch: the copy runs on while the kill is on its way (on a loaded machine it finished
    # the other 2,000 rows before a kill sent at 1,000)
    _kill_halfway(source, target, after_rows=250)
    with _open(target) as half, _open(source) as whole:
        assert 250 <= half.count("segments") < whole.count("segments"), "killed halfway through the segments"
        assert half.count("flows") == whole.count("flows"), "the tables before the segments are copied whole"
        assert half.count("objects") == 0

    # a source that changed since is not continued
    changed = tmp_path / "changed.duckdb"
    shutil.copy(source, changed)
    with ta.connect(f"duckdb:///{changed}") as cat:
        cat.put_flow({"id": "a-new-flow", "source_id": "a-new-source", "format": "urn:x-nmos:format:data"})
    stale = tmp_path / "stale.duckdb"
    shutil.copy(target, stale)
    if Path(f"{target}.wal").exists():
        shutil.copy(f"{target}.wal", f"{stale}.wal")
    refused = subprocess.run(_copy_command(changed, stale), capture_output=True, text=True, env=environment())
    assert refused.returncode == 2
    assert "has changed since: --force starts over" in refused.stderr.splitlines()[-1]

    # the same source: the copy continues where it stopped
    again = subprocess.run(_copy_command(source, target), capture_output=True, text=True, env=environment())
    assert again.returncode == 0, again.stderr
    assert "(resumed an interrupted copy)" in again.stdout
    clean = tmp_path / "clean.duckdb"
    with _open(source) as original, ta.connect(f"duckdb:///{clean}", create=True) as fresh:
        copy_store(original, fresh)
    with _open(target) as resumed, _open(clean) as fresh:
        assert differences(resumed, fresh) == {}
        assert resumed.count("service", []) == fresh.count("service", []), "the marker is gone"


def test_a_target_holding_anything_else_is_refused_unless_force(
    source: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "other.duckdb"
    with ta.connect(f"duckdb:///{target}", create=True) as other:
        other.put_flow({"id": "mine", "source_id": "mine", "format": "urn:x-nmos:format:data"})
    args = ["copy", "--from", f"duckdb:///{source}", "--to", f"duckdb:///{target}", "--no-progress"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is not empty (1 sources, 1 flows" in err[0] and "--force replaces" in err[0]
    assert main([*args, "--force"]) == 0
    with _open(source) as original, _open(target) as copied:
        assert differences(original, copied) == {}


@pytest.fixture
def vast() -> Iterator[Catalog]:
    pytest.importorskip("vastdb", reason="the VAST engine needs the vastdb SDK")
    from tams_analytics.engines.vast import Engine
    from tests.engines.vast.reference import REFERENCE_URL, ReferenceStore

    catalog = Catalog(Engine(REFERENCE_URL, store=ReferenceStore()))
    yield catalog
    catalog.close()


def test_a_duckdb_store_moves_to_vast_and_the_api_answers_as_before(vast: Catalog, tmp_path: Path) -> None:
    # small: every object's document is read through the stand-in, which evaluates each request's filter itself
    source = rich_store(tmp_path / "tams-data", 200)
    with _open(source) as original:
        summary = copy_store(original, vast)
        assert differences(original, vast) == {}
    assert summary.rows > 200
    settings = {"webhooks_allow_private": True, "delete_sync_max_segments": 2}
    duck = create_app(Settings(data_dir=source.parent, **settings), workers=False)
    moved = create_app(Settings(data_dir=tmp_path / "vast", **settings), engine=vast.engine, workers=False)
    with TestClient(duck) as on_duckdb, TestClient(moved) as on_vast:
        assert documents(on_vast) == documents(on_duckdb)
    assert vast.rows("webhooks").column("api_key_value").to_pylist() == [SECRET]


def test_a_backup_restores_into_vast(source: Path, vast: Catalog, tmp_path: Path) -> None:
    done = backup_store(str(tmp_path / "backups"), store=f"duckdb:///{source}")
    repo, ref = locate(str(tmp_path / "backups"))
    assert ref.manifest is not None and ref.id == done.manifest.id
    with repo.fetched(ref) as folder:
        restore_into(folder, ref.manifest, vast)
    with _open(source) as original:
        assert differences(original, vast) == {}


def test_a_vast_store_is_backed_up_and_restored_into_duckdb(source: Path, vast: Catalog, tmp_path: Path) -> None:
    with _open(source) as original:
        copy_store(original, vast)
    done = backup_engine(vast.engine, str(tmp_path / "backups"), store="vast://stand-in/media/tams")
    assert (done.manifest.engine, done.manifest.method, done.manifest.store) == (
        "vast",
        "direct",
        "vast://stand-in/media/tams",
    )
    restored = tmp_path / "restored.duckdb"
    assert main(["restore", "--from", str(tmp_path / "backups"), "--store", f"duckdb:///{restored}"]) == 0
    with _open(restored) as back:
        assert differences(vast, back) == {}
