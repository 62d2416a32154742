"""The keys that sign local storage URLs: :class:`SigningKeys`, kept in a file so they outlive a process.

A URL handed out by one server process must still work after a restart (a player holds it for its whole
lifetime), so unless a key is configured the server generates one once into its data dir
(``signing-keys.json``, mode 0600) and reuses it. :func:`rotate` makes a new current key and keeps the
previous one *accepted* (never used to sign) for ``grace_s`` after the rotation, the longest lifetime of
a URL it signed, after which it is forgotten. Only the previous key is kept: a second rotation within one
URL lifetime cuts the oldest URLs short.

The file: ``{"version": 1, "keys": [{"secret": hex, "created": t}, {"secret": hex, "created": t,
"retired": t}]}`` (times in seconds since the epoch); the key without ``retired`` is the current one. A
running server notices a rotation made by another process (``tams-analytics keys rotate``) within a second.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import logging
import os
import secrets
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tams_analytics.exceptions import TamsError

__all__ = ["KEY_FILE", "SigningKeys", "rotate"]

logger = logging.getLogger(__name__)

#: the key file's name in a data dir
KEY_FILE = "signing-keys.json"
#: how often (seconds) a file-backed key ring looks whether the file changed
RELOAD_S = 1.0

Clock = Callable[[], float]


class SigningKeys:
    """The current signing key and the keys still accepted, as keyed HMAC-SHA256 objects to ``copy()``."""

    def __init__(
        self,
        keys: list[dict[str, Any]],
        *,
        grace_s: float = 0.0,
        path: Path | None = None,
        clock: Clock = time.time,
    ) -> None:
        self.grace_s = grace_s
        self.path = path
        self.clock = clock
        self._lock = threading.Lock()
        self._stamp = _stamp(path) if path else None
        self._checked = time.monotonic()
        self._set(keys)

    @classmethod
    def fixed(cls, secret: bytes, *, clock: Clock = time.time) -> SigningKeys:
        """One configured key, never rotated (``TAMS_LOCAL_SIGNING_KEY``)."""
        if not secret:
            raise ValueError("a non-empty signing secret is required")
        return cls([{"secret": secret.hex(), "created": 0.0}], clock=clock)

    @classmethod
    def in_dir(cls, data_dir: Path, *, grace_s: float, clock: Clock = time.time) -> SigningKeys:
        """The keys of ``data_dir``'s key file, created with a new key if there is none."""
        path = data_dir / KEY_FILE
        if not path.exists():
            _create(path, [{"secret": secrets.token_hex(32), "created": clock()}])
        return cls(_load(path), grace_s=grace_s, path=path, clock=clock)

    def _set(self, keys: list[dict[str, Any]]) -> None:
        current = [k for k in keys if k.get("retired") is None]
        if len(current) != 1:
            raise TamsError(f"the signing key file {self.path} must have exactly one current key")
        retired = [k for k in keys if k.get("retired") is not None]
        self._signer = _keyed(current[0]["secret"])
        #: (accepted until, keyed hmac) of the retired keys
        self._retired = [(float(k["retired"]) + self.grace_s, _keyed(k["secret"])) for k in retired]

    def _refresh(self) -> None:
        """Reload the file if another process rotated it (at most every :data:`RELOAD_S`)."""
        if self.path is None or time.monotonic() - self._checked < RELOAD_S:
            return
        with self._lock:
            self._checked = time.monotonic()
            stamp = _stamp(self.path)
            if stamp == self._stamp:
                return
            try:
                self._set(_load(self.path))
            except (OSError, ValueError, TamsError):
                logger.exception("could not reload the signing keys from %s; keeping the ones in use", self.path)
                return
            self._stamp = stamp
            logger.info("signing keys reloaded from %s", self.path)

    def signer(self) -> hmac.HMAC:
        """A copy of the current key's keyed HMAC, to sign with."""
        self._refresh()
        return self._signer.copy()

    def verifiers(self) -> list[hmac.HMAC]:
        """Copies of the keyed HMACs accepted now: the current key's first."""
        self._refresh()
        now = self.clock()
        return [self._signer.copy()] + [mac.copy() for until, mac in self._retired if now <= until]


def rotate(data_dir: Path, *, clock: Clock = time.time) -> None:
    """Make a new current key in ``data_dir``'s key file; the current one becomes the previous (retired
    now), and any older key is forgotten."""
    path = data_dir / KEY_FILE
    now = clock()
    keys = _load(path) if path.exists() else []
    previous = [dict(k, retired=now) for k in keys if k.get("retired") is None]
    _replace(path, [*previous, {"secret": secrets.token_hex(32), "created": now}])
    logger.info("rotated the signing key in %s", path)


def _keyed(secret_hex: str) -> hmac.HMAC:
    return hmac.new(bytes.fromhex(secret_hex), digestmod=hashlib.sha256)


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return st.st_mtime_ns, st.st_ino


def _load(path: Path) -> list[dict[str, Any]]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        keys = doc["keys"]
        for k in keys:
            bytes.fromhex(k["secret"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise TamsError(f"cannot read the signing keys in {path}: {type(exc).__name__}: {exc}") from exc
    if path.stat().st_mode & 0o077:
        logger.warning("the signing key file %s is readable by others: chmod 600 it", path)
    return list(keys)


def _write_tmp(path: Path, keys: list[dict[str, Any]]) -> str:
    """A new file beside ``path`` (mode 0600) holding ``keys``, synced; returns its name."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".signing-keys-")  # mkstemp creates it 0600
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump({"version": 1, "keys": keys}, f)
        f.flush()
        os.fsync(f.fileno())
    return tmp


def _create(path: Path, keys: list[dict[str, Any]]) -> None:
    """Create the key file unless another process just did (then theirs is used)."""
    tmp = _write_tmp(path, keys)
    try:
        os.link(tmp, path)
        logger.info("generated a signing key for local storage URLs in %s", path)
    except FileExistsError:
        pass
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def _replace(path: Path, keys: list[dict[str, Any]]) -> None:
    os.replace(_write_tmp(path, keys), path)
