"""Asking the server that holds a DuckDB store for a copy of it (``POST /_admin/backup``; see
:mod:`~tams_analytics.backup.transfer`).

Credentials are the API's, as the ``tams+http`` engine takes them (``TAMS_HTTP_TOKEN``; ``TAMS_HTTP_USERNAME`` and
``TAMS_HTTP_PASSWORD``; OAuth2 client credentials), and with JWTs the token needs the ``admin`` scope. Nothing is
retried: a copy is made once per request, and a failed one is said in one line.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit

import httpx

from tams_analytics.backup.transfer import ADMIN_BACKUP_PATH, SNAPSHOT_MEMBER, IterStream, SnapshotInfo, untar
from tams_analytics.engines import redacted
from tams_analytics.engines.tams_http.auth import auth_from
from tams_analytics.exceptions import InsufficientStorageError, TamsError

__all__ = ["server_snapshot"]

logger = logging.getLogger(__name__)

#: seconds to wait for the server to make its copy and start sending it (a store of millions of segments takes
#: a while), and then between two chunks
TIMEOUT_S: Final = 3600.0


def _said(response: httpx.Response) -> str:
    try:
        summary = response.json().get("summary")
    except ValueError:
        summary = None
    return str(summary or response.reason_phrase or "")


def server_snapshot(server: str, into: Path, *, timeout_s: float = TIMEOUT_S) -> SnapshotInfo:
    """Have the server at ``server`` copy the store it holds into ``into`` (a new, local folder)."""
    base = server.rstrip("/")
    parts = urlsplit(base)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise TamsError(f"--server {server!r}: expected the server's URL, http(s)://HOST:PORT")
    auth = auth_from(parts)
    headers = dict(auth()) if auth is not None else {}
    clean = redacted(base)
    logger.info("asking %s for a copy of its store", clean)
    try:
        with (
            httpx.Client(timeout=httpx.Timeout(timeout_s, connect=10.0), trust_env=False) as client,
            client.stream("POST", clean + ADMIN_BACKUP_PATH, headers=headers) as response,
        ):
            if response.status_code != 200:
                response.read()
                raise _refused(clean, response)
            names = untar(IterStream(response.iter_bytes()), into)
    except httpx.TransportError as exc:
        reason = str(exc) or type(exc).__name__
        raise TamsError(f"the server at {clean} did not answer the backup request: {reason}") from exc
    if SNAPSHOT_MEMBER not in names:
        raise TamsError(f"the server at {clean} sent no {SNAPSHOT_MEMBER}: is it a tams-analytics server?")
    member = into / SNAPSHOT_MEMBER
    info = SnapshotInfo.loads(member.read_bytes())
    member.unlink()
    return info


def _refused(server: str, response: httpx.Response) -> TamsError:
    status, said = response.status_code, _said(response)
    if status == 401:
        return TamsError(
            f"the server at {server} wants credentials ({said}): set TAMS_HTTP_TOKEN, or TAMS_HTTP_USERNAME and "
            "TAMS_HTTP_PASSWORD, as for its API"
        )
    if status == 403:
        return TamsError(f"the server at {server} refused: {said} (a backup needs the admin scope)")
    if status == 404:
        return TamsError(f"the server at {server} makes no backups (404): is it a tams-analytics server, and as new?")
    if status == 507:  # its volume is short of the copy: the summary names the folder and the free space
        return InsufficientStorageError(f"the server at {server} could not make the backup: {said}")
    return TamsError(f"the server at {server} could not make the backup: {status} {said}")
