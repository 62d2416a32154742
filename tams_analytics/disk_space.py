"""A volume's size and free space as ``df`` counts them, for every message and watermark that names them.

The blocks a filesystem keeps for root (ext4's 5 % by default; some hosts keep far more) are neither free to the
server nor part of the size ``df`` gives its ``Use%`` against. Counting them as used, as ``f_blocks`` with
``f_bavail`` would, calls a volume with 160 GiB kept back and 40 GiB free "84 % used" when ``df`` says 57 %, and a
message that gives ``f_blocks`` as the size names a disk of 252 GiB where the watermarks say 92 GiB.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["nearest_existing", "space_of", "usable_size"]


def usable_size(st: os.statvfs_result) -> tuple[int, int]:
    """``(size, free)`` of the volume ``st`` was read from, in bytes: used (``f_blocks - f_bfree``) plus free to
    the server (``f_bavail``), and the latter."""
    free = st.f_bavail * st.f_frsize
    return (st.f_blocks - st.f_bfree) * st.f_frsize + free, free


def space_of(path: Path) -> tuple[int, int]:
    """``(size, free)`` of the volume holding ``path`` (:func:`usable_size`)."""
    return usable_size(os.statvfs(nearest_existing(path.absolute())))


def nearest_existing(path: Path) -> Path:
    """``path``, or its nearest existing parent (a file not made yet lives on its folder's volume)."""
    while not path.exists() and path != path.parent:
        path = path.parent
    return path
