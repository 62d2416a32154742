"""The console's player library: hls.js, pinned in ``server/console/package.json`` and ``package-lock.json`` (its
tarball's integrity) and installed from the npm registry by ``scripts/console-vendor.sh`` (which ``scripts/dev.sh``
runs) into ``static/vendor/``, with its licence. Nothing of it is committed: it is made, reproducibly, where the
server is set up; a server without it serves the console without playback, and says so."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Final

__all__ = ["LOCK", "PLAYER", "VENDOR_DIR", "installed", "pinned"]

VENDOR_DIR: Final = Path(__file__).parent / "static" / "vendor"
LOCK: Final = Path(__file__).parent / "package-lock.json"
#: the player's file, as the page loads it (``/console/assets/vendor/hls.min.js``)
PLAYER: Final = "hls.min.js"


def pinned() -> str:
    """The hls.js version the lock file pins."""
    lock = json.loads(LOCK.read_text(encoding="utf-8"))
    return str(lock["packages"]["node_modules/hls.js"]["version"])


def installed() -> str | None:
    """The version of hls.js installed for the page, or None when it is not (or not the pinned one)."""
    try:
        version = json.loads((VENDOR_DIR / "vendor.json").read_text(encoding="utf-8"))["hls.js"]
    except (OSError, ValueError, KeyError):
        return None
    if not (VENDOR_DIR / PLAYER).is_file() or version != pinned():
        return None
    return str(version)
