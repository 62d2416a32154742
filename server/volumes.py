"""Disk watermarks: the free space of the volumes the server writes to, and what it refuses as they fill.

As Elasticsearch keeps its nodes safe, three watermarks, each a share of the volume in use (``85%``, as ``df``'s
``Use%`` counts it: :func:`~tams_analytics.disk_space.usable_size`) or the free space left (``500MiB``):

* **low** (``TAMS_DISK_WATERMARK_LOW``, 85 %): said (``/ready``'s checks, ``/metrics``, one log line), nothing refused;
* **high** (``TAMS_DISK_WATERMARK_HIGH``, 90 %): what fills a volume fastest is refused with 507: new storage
  allocations (``POST /flows/{id}/storage``) and uploads to local storage; registrations go on;
* **flood stage** (``TAMS_DISK_WATERMARK_FLOOD``, 95 %): every write to the store is refused with 507; reads go on.

The flood stage also keeps the headroom a DuckDB checkpoint needs (about twice the WAL's size and a margin:
:data:`~tams_analytics.engines.duckdb.CHECKPOINT_MARGIN_BYTES`), whatever the setting says: a checkpoint that runs out
of space invalidates the database (:mod:`tams_analytics.engines.duckdb.faults`). Writes resume by themselves once space
returns. The volumes are those of the store's file and of local object storage, read with ``statvfs`` (about 40 µs
for both): anew for every gated write (once per group commit batch), and by the server's health monitor every second.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path

from tams_analytics.disk_space import nearest_existing, usable_size
from tams_analytics.engines.duckdb.upkeep import CHECKPOINT_MARGIN_BYTES
from tams_analytics.exceptions import InsufficientStorageError

__all__ = ["FRESH_S", "Stage", "VolumeReading", "Volumes", "Watermark", "parse_watermark", "usable_size"]

#: a reading younger than this answers ``/ready`` (the write gate reads the volumes anew: :meth:`Volumes.admit`)
FRESH_S = 0.05

_UNITS = {"": 1, "b": 1, "k": 10**3, "kb": 10**3, "kib": 1 << 10, "m": 10**6, "mb": 10**6, "mib": 1 << 20}
_UNITS |= {"g": 10**9, "gb": 10**9, "gib": 1 << 30, "t": 10**12, "tb": 10**12, "tib": 1 << 40}
_AMOUNT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*|%)\s*$")


class Stage(IntEnum):
    """How full a volume is, in order."""

    OK = 0
    LOW = 1
    HIGH = 2
    FLOOD = 3

    @property
    def state(self) -> str:
        """The name ``/ready`` and ``/metrics`` give it."""
        return ("ok", "low_watermark", "high_watermark", "flood_stage")[self]


@dataclass(frozen=True)
class Watermark:
    """A share of the volume in use (``used_fraction``) or free space left (``free_bytes``): one of the two."""

    used_fraction: float | None = None
    free_bytes: int | None = None

    def reached(self, total: int, free: int) -> bool:
        if self.used_fraction is not None:
            return total > 0 and (total - free) >= self.used_fraction * total
        assert self.free_bytes is not None
        return free <= self.free_bytes

    def free_at(self, total: int) -> int:
        """The free space at which it is reached, on a volume of ``total`` bytes."""
        if self.used_fraction is not None:
            return int(total * (1 - self.used_fraction))
        assert self.free_bytes is not None
        return self.free_bytes

    def __str__(self) -> str:
        if self.used_fraction is not None:
            return f"{self.used_fraction * 100:g}% used"
        assert self.free_bytes is not None
        return f"{_size(self.free_bytes)} free"


def parse_watermark(text: str) -> Watermark:
    """``85%`` (share in use) or a free space (``500MiB``, ``2GB``, ``1048576``); ValueError saying how to write it."""
    found = _AMOUNT.match(text)
    if found is not None:
        number, unit = float(found.group(1)), found.group(2).lower()
        if unit == "%" and 0 < number <= 100:
            return Watermark(used_fraction=number / 100)
        if unit in _UNITS:
            return Watermark(free_bytes=int(number * _UNITS[unit]))
    raise ValueError(f"{text!r} is not a watermark: give a share of the volume in use (85%) or free space (500MiB)")


@dataclass(frozen=True)
class VolumeReading:
    """One volume: what the server keeps there (``holds``: ``{"store": path, ...}``), its size and free space, the
    free space a checkpoint needs there (``reserve``), and its stage."""

    path: str
    holds: Mapping[str, str]
    total: int
    free: int
    reserve: int
    stage: Stage

    def describe(self, flood: Watermark) -> str:
        """In words, for ``/ready``, the log and a 507's summary."""
        used = 100 * (self.total - self.free) / self.total if self.total else 100.0
        what = ", ".join(f"{name} {where}" for name, where in self.holds.items())
        text = f"the volume of {what} has {_size(self.free)} free of {_size(self.total)} ({used:.0f}% used)"
        if self.stage >= Stage.LOW:
            text += f"; flood stage at {flood}" + (f" or {_size(self.reserve)} free" if self.reserve else "")
        return text


class Volumes:
    """The volumes under ``paths`` (``{"store": Path, "local object storage": Path}``), read and staged against the
    watermarks; ``reserve(path)`` is the free space a DuckDB checkpoint needs on the volume of ``path`` (0 where the
    store is not there)."""

    def __init__(
        self,
        paths: Mapping[str, Path],
        *,
        low: Watermark,
        high: Watermark,
        flood: Watermark,
        reserve: Callable[[], int] = lambda: 0,
        reserve_on: str | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.paths = {name: path for name, path in paths.items()}
        self.low, self.high, self.flood = low, high, flood
        self._reserve = reserve
        self._reserve_on = reserve_on
        self._clock = clock
        self._lock = threading.Lock()
        self._read_at = -1.0
        self._readings: list[VolumeReading] = []

    def read(self) -> list[VolumeReading]:
        """Read every volume now (one reading per device, naming what it holds)."""
        by_device: dict[int, tuple[str, dict[str, str], os.statvfs_result]] = {}
        for name, path in self.paths.items():
            where, device = _device(path)
            if device not in by_device:
                by_device[device] = (str(where), {}, os.statvfs(where))
            by_device[device][1][name] = str(path)
        readings = []
        for mount, holds, st in by_device.values():
            total, free = usable_size(st)
            reserve = self._reserve() + CHECKPOINT_MARGIN_BYTES if self._reserve_on in holds else 0
            readings.append(VolumeReading(mount, holds, total, free, reserve, self._stage(total, free, reserve)))
        with self._lock:
            self._readings, self._read_at = readings, self._clock()
        return readings

    def reading(self, path: Path, holds: str) -> VolumeReading:
        """The volume of ``path`` (where the server keeps ``holds``: its backups' copies, say), read now and staged,
        with the headroom a checkpoint needs when the store is on it too."""
        where, device = _device(path)
        total, free = usable_size(os.statvfs(where))
        named = {holds: str(path)}
        for name, other in self.paths.items():
            if _device(other)[1] == device:
                named[name] = str(other)
        reserve = self._reserve() + CHECKPOINT_MARGIN_BYTES if self._reserve_on in named else 0
        return VolumeReading(str(where), named, total, free, reserve, self._stage(total, free, reserve))

    def readings(self, *, fresh_s: float = FRESH_S) -> list[VolumeReading]:
        """The last readings, read again when older than ``fresh_s``."""
        with self._lock:
            if self._clock() - self._read_at <= fresh_s:
                return self._readings
        return self.read()

    def worst(self, *, fresh_s: float = FRESH_S) -> VolumeReading | None:
        readings = self.readings(fresh_s=fresh_s)
        return max(readings, key=lambda r: (r.stage, -r.free)) if readings else None

    def admit(self, at: Stage, what: str) -> None:
        """Refuse ``what`` (a write) with :class:`InsufficientStorageError` when a volume is at stage ``at`` or
        beyond, naming it and its free space.

        The volumes are read now, never from an earlier reading: a volume can fill within milliseconds (another
        writer on it), and a write admitted on a reading from before would meet the full volume in DuckDB itself (a
        failed commit: the store is reopened, and may have to wait for room to take writes again)."""
        worst = self.worst(fresh_s=0)
        if worst is not None and worst.stage >= at:
            raise InsufficientStorageError(
                f"{what} refused: {worst.describe(self.flood)} ({worst.stage.state.replace('_', ' ')}); writes resume "
                "by themselves once space is freed"
            )

    def _stage(self, total: int, free: int, reserve: int) -> Stage:
        if self.flood.reached(total, free) or free <= reserve:
            return Stage.FLOOD
        if self.high.reached(total, free):
            return Stage.HIGH
        if self.low.reached(total, free):
            return Stage.LOW
        return Stage.OK


def _device(path: Path) -> tuple[Path, int]:
    """``path`` (or its nearest existing parent) and its device, in one ``stat`` where it exists (every gated write
    reads the volumes: a ``stat`` more per path cost the writer's thread 1-2 % of its time)."""
    try:
        return path, os.stat(path).st_dev
    except FileNotFoundError:
        where = nearest_existing(path)
        return where, os.stat(where).st_dev


def _size(n: int) -> str:
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} B"
