"""The commands that write (``backup``, ``restore``, ``copy``, ``export``, ``demo``) on a small real volume (tmpfs)
filled to all but a few KiB, as ``tams-analytics`` runs them (a subprocess): each stops with one line on stderr
naming the path it met and the free space of its volume, exit code 2 (never a traceback, never 1, which means
findings to a scheduler), and loses nothing: the older backup stays, a store restored over stays as it was, a store
the demo was making is not left behind, and the same command run again once space is freed finishes.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import tams_analytics as ta
from tests.backup.stores import build_catalog_demo
from tests.fixtures.volume import SmallVolume, small_volume
from tests.reliability.conftest import REPO

VOLUME_BYTES = 16 << 20
#: what a filled volume has left: a command begins, and runs out of space midway
LEAVE = 64 << 10
#: filled to its last byte (a store file cannot even be begun), or all but :data:`LEAVE`
LEFT = pytest.mark.parametrize("leave", [0, LEAVE], ids=["full", "nearly-full"])
SEGMENTS = 3000


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store of 3,000 segments off the volume (its Parquet copy is about 200 KiB, a DuckDB file of it 3 MB)."""
    path = tmp_path_factory.mktemp("full-volume") / "tams.duckdb"
    with ta.connect(f"duckdb:///{path}", create=True) as cat:
        build_catalog_demo(cat, SEGMENTS)
    return path


@pytest.fixture
def volume(tmp_path: Path) -> Iterator[SmallVolume]:
    with small_volume(tmp_path / "vol", VOLUME_BYTES) as mounted:
        yield mounted


def run(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAMS_")}
    # the dependency set's own warnings (DuckDB 2's Arrow copies) are not the command's lines
    env |= {"PYTHONPATH": str(REPO), "PYTHONWARNINGS": "ignore"}
    command = [sys.executable, "-m", "tams_analytics.cli", *args]
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def one_line(done: subprocess.CompletedProcess[str], command: str, where: Path) -> str:
    """The one line a command that met the full volume said: exit 2, naming a path under ``where`` and the free
    space of the volume."""
    lines = done.stderr.splitlines()
    assert done.returncode == 2 and len(lines) == 1, f"exit {done.returncode}:\n{done.stderr}"
    line = lines[0]
    assert line.startswith(f"tams-analytics {command}: ") and "no space left on device" in line, line
    assert str(where) in line, line
    assert re.search(r"has [\d,.]+ (bytes|MiB) free of 16\.0 MiB", line), line
    return line


def rows(path: Path) -> dict[str, int]:
    with ta.connect(f"duckdb:///{path}", read_only=True) as cat:
        return {t: cat.count(t) for t in ("sources", "flows", "segments", "objects")}


def test_a_backup_to_a_full_volume_says_so_in_a_line_and_keeps_the_older_backup(
    source: Path, volume: SmallVolume, tmp_path: Path
) -> None:
    repo = volume.path / "backups"
    backup = ["backup", "--store", f"duckdb:///{source}", "--to", str(repo)]
    assert run(tmp_path, *backup).returncode == 0
    (older,) = repo.iterdir()
    volume.fill(leave=LEAVE)
    line = one_line(run(tmp_path, *backup), "backup", repo)
    assert "/segments/" in line, "the file it met is named"
    assert list(repo.iterdir()) == [older] and (older / "backup.json").is_file(), "no partial backup, the older kept"
    volume.free()
    again = run(tmp_path, *backup, "--format", "json")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["tables"]["segments"] == SEGMENTS


def test_a_restore_onto_a_full_volume_leaves_the_store_as_it_was_and_continues_once_freed(
    source: Path, volume: SmallVolume, tmp_path: Path
) -> None:
    repo = tmp_path / "backups"
    assert run(tmp_path, "backup", "--store", f"duckdb:///{source}", "--to", str(repo)).returncode == 0
    store = volume.path / "tams.duckdb"
    shutil.copyfile(source, store)  # the store a restore replaces
    before = store.read_bytes()
    volume.fill(leave=LEAVE)
    restore = ["restore", "--from", str(repo), "--store", f"duckdb:///{store}", "--force", "--no-progress"]
    one_line(run(tmp_path, *restore), "restore", volume.path)
    assert store.read_bytes() == before and not Path(f"{store}.before-restore").exists(), "the store is as it was"
    volume.free()
    again = run(tmp_path, *restore, "--format", "json")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["replaced"] == f"{store}.before-restore"
    assert Path(f"{store}.before-restore").read_bytes() == before
    assert rows(store) == rows(source)


@LEFT
def test_a_copy_onto_a_full_volume_says_so_in_a_line_and_finishes_once_freed(
    source: Path, volume: SmallVolume, tmp_path: Path, leave: int
) -> None:
    target = volume.path / "copy.duckdb"
    copy = ["copy", "--from", f"duckdb:///{source}", "--to", f"duckdb:///{target}", "--no-progress"]
    volume.fill(leave=leave)
    one_line(run(tmp_path, *copy), "copy", volume.path)
    volume.free()
    again = run(tmp_path, *copy)
    assert again.returncode == 0, again.stderr
    assert rows(target) == rows(source)


def test_an_export_to_a_full_volume_says_so_in_a_line(source: Path, volume: SmallVolume, tmp_path: Path) -> None:
    export = ["export", "--store", f"duckdb:///{source}", "--to", str(volume.path / "export"), "--no-progress"]
    volume.fill(leave=LEAVE)
    one_line(run(tmp_path, *export), "export", volume.path / "export")
    volume.free()
    again = run(tmp_path, *export, "--overwrite")
    assert again.returncode == 0, again.stderr
    assert f"segments: {SEGMENTS} rows" in again.stdout


@LEFT
def test_a_demo_on_a_full_volume_says_so_in_a_line_and_leaves_no_store_behind(
    volume: SmallVolume, tmp_path: Path, leave: int
) -> None:
    store = volume.path / "demo.duckdb"
    demo = ["demo", "--store", f"duckdb:///{store}", "--segments", str(SEGMENTS), "--no-progress"]
    volume.fill(leave=leave)
    one_line(run(tmp_path, *demo), "demo", volume.path)
    assert sorted(p.name for p in volume.path.iterdir()) == ["ballast"], "a store the demo was making is removed"
    volume.free()
    again = run(tmp_path, *demo)
    assert again.returncode == 0, again.stderr
    assert rows(store)["segments"] == SEGMENTS
