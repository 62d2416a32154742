"""Early writeback (:mod:`tams_analytics.engines.duckdb.writeback`): while the journal's applier checkpoints, the
store file's dirty pages go to the disk as they are made, read from the disk's own counters: an ext4 volume on a loop
device the test mounts, so that nothing else writes to it."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from tams_analytics.engines.duckdb.writeback import early_writeback
from tests.fixtures.volume import ext4_volume

MIB = 1 << 20


def sectors_written(path: Path) -> int:
    """The 512-byte sectors the block device under ``path`` has written (``/sys/dev/block/M:m/stat``, field 7)."""
    dev = os.stat(path).st_dev
    stat = Path(f"/sys/dev/block/{os.major(dev)}:{os.minor(dev)}/stat").read_text().split()
    return int(stat[6])


def test_early_writeback_sends_a_files_dirty_pages_to_its_disk_while_it_runs(tmp_path: Path) -> None:
    with ext4_volume(tmp_path / "ext4", 256 * MIB, reserved_percent=0) as volume:
        store = volume.path / "tams.duckdb"
        with store.open("wb") as f:
            f.write(os.urandom(32 * MIB))  # dirty in the page cache: the kernel writes it in 30 s, or at an fsync
        before = sectors_written(volume.path)
        time.sleep(0.3)
        left_alone = (sectors_written(volume.path) - before) * 512
        if left_alone > 16 * MIB:
            pytest.skip(f"the kernel wrote {left_alone / MIB:.0f} MiB back on its own (memory under pressure)")
        before = sectors_written(volume.path)
        with early_writeback(store):
            time.sleep(0.3)
        sent = (sectors_written(volume.path) - before) * 512
        assert sent >= 30 * MIB, f"{sent / MIB:.1f} MiB written with early writeback, {left_alone / MIB:.1f} without"
