"""Embedded media object storage for single-machine runs: files in a directory, served over HTTP.

The TAMS server itself serves the bytes at HMAC-signed, expiring URLs, so clients use exactly
the same pre-signed-URL workflow as with S3 and need no credentials.

Layout under ``root`` is flat, one file per key, named by ``encode_segment(key)`` (never
containing ``/`` and never ``.``/``..``), so no key can address anything outside ``root``.
Names that ``quote`` can never produce (they contain ``+``) are used for everything else:
``<name>+meta.json`` sidecars holding the content type, ``+tmp-*`` files for atomic writes and
``+h<sha256>`` for keys whose encoded name would exceed the file-name length limit.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import hmac
import json
import logging
import math
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tams_analytics.storage.base import (
    ObjectStorageUnavailable,
    ObjectStream,
    PutUrl,
    ReadableStore,
    RecentUrls,
    StorageBackendInfo,
    StorageError,
    Unavailable,
    encode_segment,
)
from tams_analytics.storage.extensions import EXTENSIONS
from tams_analytics.storage.keys import SigningKeys

logger = logging.getLogger(__name__)

DEFAULT_MAX_OBJECT_BYTES = 5 * 1024**3
_MAX_NAME_BYTES = 200  # leaves room for the sidecar suffix within the usual 255-byte NAME_MAX
_SIDECAR_SUFFIX = "+meta.json"
_TMP_PREFIX = "+tmp-"
READ_CHUNK = 1024 * 1024
DEFAULT_CONTENT_TYPE = "application/octet-stream"
_BAD_SIGNATURE = "the URL signature is not valid"
#: the extensions a playable URL may add to a bare key (:meth:`LocalObjectStore.playable_url`)
_EXTENSIONS = frozenset(EXTENSIONS.values()) | {"m4s"}


class ObjectTooLarge(StorageError):
    """An object is bigger than the store's ``max_object_bytes``."""


class _PendingWrite:
    """An object being written to a temporary file in root; ``commit`` renames it into place."""

    def __init__(self, store: LocalObjectStore, key: str) -> None:
        self._store = store
        self.path = store.path_for(key)
        self.size = 0
        fd, tmp = tempfile.mkstemp(dir=store.root, prefix=_TMP_PREFIX)
        self._tmp = Path(tmp)
        self._file = os.fdopen(fd, "wb")

    def write(self, data: bytes) -> None:
        self.size += len(data)
        if self.size > self._store.max_object_bytes:
            raise ObjectTooLarge(f"object exceeds the maximum size of {self._store.max_object_bytes} bytes")
        self._file.write(data)

    def commit(self, content_type: str) -> None:
        """Make the object visible (a new one, or replacing what the key held), its content type with it: both are
        written in full first (a full volume fails this before anything is visible), then renamed into place."""
        sidecar = None
        try:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            sidecar = self._store.new_sidecar({"content_type": content_type})
            os.replace(self._tmp, self.path)
            os.replace(sidecar, self._store.sidecar_of(self.path))
        except BaseException:
            self.abort()
            if sidecar is not None:
                sidecar.unlink(missing_ok=True)
            raise

    def abort(self) -> None:
        """Drop what was written (closing may fail again on a full volume: the file goes all the same)."""
        with contextlib.suppress(OSError):
            self._file.close()
        self._tmp.unlink(missing_ok=True)


class LocalObjectStore:
    """An ``ObjectStore`` keeping objects as files under ``root``, served by ``make_router``."""

    def __init__(
        self,
        info: StorageBackendInfo,
        *,
        root: Path,
        base_url: str,
        secret: bytes | None = None,
        keys: SigningKeys | None = None,
        route_prefix: str = "/_media",
        max_object_bytes: int = DEFAULT_MAX_OBJECT_BYTES,
    ) -> None:
        """URLs are signed with ``keys`` (:class:`~tams_analytics.storage.keys.SigningKeys`: a key file that
        outlives the process, with rotation), or with the one key ``secret``."""
        if keys is None:
            if not secret:
                raise ValueError("a non-empty signing secret is required")
            keys = SigningKeys.fixed(secret)
        if not route_prefix.startswith("/") or route_prefix.endswith("/"):
            raise ValueError(f"route_prefix must start and not end with '/': {route_prefix!r}")
        self.info = info
        root.mkdir(parents=True, exist_ok=True)
        self.root = root.resolve()
        self.route_prefix = route_prefix
        self.max_object_bytes = max_object_bytes
        #: the signing keys: keyed HMACs, copied for each signature (keying costs as much as signing)
        self.keys = keys
        self.set_base_url(base_url)

    @property
    def base_url(self) -> str:
        return self._base_url

    def set_base_url(self, url: str) -> None:
        """Change the externally visible server URL (often only known once the server is up)."""
        self._base_url = url.rstrip("/")
        # URLs minted for the old base are not handed out again
        self._recent_get_urls = RecentUrls(lambda key, expires_s: self.signed_url("GET", key, expires_s))
        logger.info("local object store %s serves media at %s%s", self.info.label, self._base_url, self.route_prefix)

    # -- paths -----------------------------------------------------------------------------

    def path_for(self, key: str) -> Path:
        """The file holding ``key``; raises ``StorageError`` if it would resolve outside root."""
        name = encode_segment(key)
        if len(name.encode()) > _MAX_NAME_BYTES:
            name = "+h" + hashlib.sha256(key.encode()).hexdigest()
        path = self.root / name
        # Defence in depth: the name cannot contain separators, but a symlink planted in root could
        # still point elsewhere.
        if path.resolve().parent != self.root:
            raise StorageError(f"key {key!r} resolves outside the storage root")
        return path

    @staticmethod
    def _sidecar(path: Path) -> Path:
        return path.with_name(path.name + _SIDECAR_SUFFIX)

    def sidecar_of(self, path: Path) -> Path:
        return self._sidecar(path)

    def new_sidecar(self, meta: dict[str, Any]) -> Path:
        """``meta`` written in full to a temporary file in root, for a commit to rename into place."""
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=_TMP_PREFIX)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(meta, f)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return Path(tmp)

    def _content_type(self, path: Path) -> str:
        try:
            meta = json.loads(self._sidecar(path).read_text(encoding="utf-8"))
        except (FileNotFoundError, ValueError):
            return DEFAULT_CONTENT_TYPE
        return str(meta.get("content_type") or DEFAULT_CONTENT_TYPE)

    # -- signing ---------------------------------------------------------------------------

    @staticmethod
    def _signature(mac: hmac.HMAC, method: str, key: str, expires: int) -> str:
        mac.update(f"{method}\n{key}\n{expires}".encode())
        return mac.hexdigest()

    def signed_url(self, method: str, key: str, expires_s: int) -> str:
        expires = math.ceil(self.keys.clock()) + expires_s
        sig = self._signature(self.keys.signer(), method, key, expires)
        segment = encode_segment(key)
        return f"{self._base_url}{self.route_prefix}/{segment}?method={method}&expires={expires}&sig={sig}"

    def check_signature(self, method: str, key: str, params: dict[str, str]) -> str | None:
        """None when ``params`` authorise ``method`` on ``key`` now, else the reason they do not."""
        if params.get("method") != method:
            return f"the URL is not signed for {method}"
        expires_text = params.get("expires", "")
        if not expires_text.isascii() or not expires_text.isdigit():
            return "the URL has no valid expiry"
        expires = int(expires_text)
        given = params.get("sig", "").encode()
        valid = False
        for mac in self.keys.verifiers():  # the current key, then a rotated-out one still accepted
            valid |= hmac.compare_digest(given, self._signature(mac, method, key, expires).encode())
        if not valid:
            return _BAD_SIGNATURE
        if self.keys.clock() > expires:
            return "the URL has expired"
        return None

    # -- ObjectStore -----------------------------------------------------------------------

    def put_url(self, key: str, content_type: str, expires_s: int) -> PutUrl:
        self.path_for(key)  # reject unusable keys now rather than at upload time
        url = self.signed_url("PUT", key, expires_s)
        return PutUrl(url=url, content_type=content_type, headers={"Content-Type": content_type})

    def get_url(self, key: str, expires_s: int) -> str:
        # asked for every segment of every page: no filesystem access here (serving checks the path),
        # and signing is a local HMAC, cheap enough never to count as blocking
        return self._recent_get_urls(key, expires_s)

    def playable_url(self, url: str, extension: str) -> str:
        """``url`` with ``.extension`` after its key when the key does not end in it (the object was stored
        under a bare key, before keys had extensions): GET URLs of the form ``<prefix>/<key>.<extension>?...``
        carry the signature of ``<key>``, and :meth:`signed_key` finds that key again."""
        prefix = f"{self._base_url}{self.route_prefix}/"
        path, sep, query = url.partition("?")
        if not path.startswith(prefix) or "/" in path[len(prefix) :] or path.endswith(f".{extension}"):
            return url
        return f"{path}.{extension}{sep}{query}"

    def signed_key(self, method: str, key: str, params: dict[str, str]) -> tuple[str, str | None]:
        """The key a request for ``key`` with query ``params`` may have, and None, or the reason it may have none:
        ``key`` itself, else (a GET URL made playable by :meth:`playable_url`) ``key`` without its extension,
        whichever the signature names. A valid signature names one key, so this never serves another."""
        reason = self.check_signature(method, key, params)
        if reason != _BAD_SIGNATURE or method != "GET":
            return key, reason
        bare, dot, extension = key.rpartition(".")
        if dot and bare and extension in _EXTENSIONS:
            bare_reason = self.check_signature(method, bare, params)
            if bare_reason != _BAD_SIGNATURE:  # signed for the bare key: served, or refused as expired
                return bare, bare_reason
        return key, reason

    def check(self) -> str:
        """Write a small file into the folder, flush it to disk and remove it: a folder that cannot be written
        (read-only, gone, not ours) is an :class:`ObjectStorageUnavailable` naming it. A full volume is not: the folder
        is usable and takes uploads again once space is freed; the disk watermarks refuse writes meanwhile and say why
        (:mod:`server.volumes`), where a broken storage would stop a server from starting at all."""
        try:
            fd, tmp = tempfile.mkstemp(dir=self.root, prefix=_TMP_PREFIX)
            try:
                os.write(fd, b"check")
                os.fsync(fd)
            finally:
                os.close(fd)
                os.unlink(tmp)
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                return f"local object storage {self.root} is writable (its volume is full now)"
            reason = os.strerror(exc.errno) if exc.errno else str(exc)
            raise ObjectStorageUnavailable(
                f"local object storage {self.root}", Unavailable.NOT_WRITABLE, f"cannot be written ({reason.lower()})"
            ) from exc
        return f"local object storage {self.root} is writable"

    def head(self, keys: Sequence[str]) -> dict[str, int | None]:
        sizes: dict[str, int | None] = {}
        for key in keys:
            try:
                sizes[key] = self.path_for(key).stat().st_size
            except FileNotFoundError:
                sizes[key] = None
        return sizes

    def begin_write(self, key: str) -> _PendingWrite:
        return _PendingWrite(self, key)

    def put_bytes(self, key: str, data: bytes, content_type: str) -> None:
        pending = self.begin_write(key)
        try:
            pending.write(data)
        except BaseException:
            pending.abort()
            raise
        pending.commit(content_type)

    def open_read(self, key: str) -> ObjectStream:
        path = self.path_for(key)
        try:
            f = path.open("rb")
        except FileNotFoundError:
            raise KeyError(key) from None
        return ObjectStream(body=f, size=os.fstat(f.fileno()).st_size, content_type=self._content_type(path))

    def get_bytes(self, key: str) -> bytes:
        with self.open_read(key) as stream:
            return stream.body.read()

    def delete(self, keys: Sequence[str]) -> None:
        for key in keys:
            path = self.path_for(key)
            path.unlink(missing_ok=True)
            self._sidecar(path).unlink(missing_ok=True)

    def copy_from(self, source: ReadableStore, key: str) -> None:
        with source.open_read(key) as stream:
            pending = self.begin_write(key)
            try:
                while chunk := stream.body.read(READ_CHUNK):
                    pending.write(chunk)
            except BaseException:
                pending.abort()
                raise
            pending.commit(stream.content_type)
