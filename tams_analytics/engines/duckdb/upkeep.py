"""Upkeep of a DuckDB store: its checkpoints (what they cost, told to an observer) and its storage format."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Final

logger = logging.getLogger("tams_analytics.engines.duckdb")

__all__ = ["CHECKPOINT_MARGIN_BYTES", "CheckpointObserver", "tell", "wal_bytes"]

#: ``observe(seconds, wal_bytes)``, told of each commit that checkpointed a store (:meth:`Engine.observe_checkpoints`)
CheckpointObserver = Callable[[float, int], None]

#: free space a checkpoint needs beyond twice the WAL's size (the blocks it rewrites, its metadata), as estimated when
#: deciding whether a full volume has room again (:meth:`Engine._room_to_recover`)
CHECKPOINT_MARGIN_BYTES: Final = 4 << 20


def tell(observe: CheckpointObserver, seconds: float, wal_bytes: int) -> None:
    """Tell ``observe`` of a commit that checkpointed; what it raises is logged, never the write's."""
    try:
        observe(seconds, wal_bytes)
    except Exception:
        logger.exception("the checkpoint observer failed")


def wal_bytes(path: str) -> int:
    """The size of the WAL of the store at ``path`` (0: none, or an in-memory store)."""
    if path == ":memory:":
        return 0
    try:
        return Path(f"{path}.wal").stat().st_size
    except OSError:
        return 0
