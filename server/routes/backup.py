"""``POST /_admin/backup``: a copy of the store this server holds, made while it serves, then sent.

Not part of the TAMS API (not in ``/docs``): the ``tams-analytics backup`` command calls it when the server holds
the DuckDB store it is asked to back up. It asks the API's credentials and, with JWTs, the ``admin`` scope. The
library makes the copy (:func:`tams_analytics.backup.snapshot.snapshot_niced`: every table as Parquet in one read
transaction, beside the writer, at a CPU priority ``TAMS_BACKUP_NICE`` lower) into a folder of its own under
``<data dir>/.backup-staging/``, which the answer then streams as a tar (:mod:`tams_analytics.backup.transfer`): so a
backup needs about its own size free on that volume (the store's, usually) while it is made and sent. With the disk
watermarks on, a backup is refused (507) while that volume is at its high watermark, and a copy that takes it there
is stopped (507): the copy never pushes the store's volume towards its flood stage; a volume that fills anyway is a
507 naming the file, what was written and the free space. The copy goes once sent, and ``.backup-staging/`` with it;
what a server killed mid-copy left is removed when it starts again (:func:`remove_leftover_copies`) and by the next
backup. One backup at a time: a second answers 409.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import uuid
import weakref
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Final

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from server.auth.principal import ADMIN
from server.errors import ApiError
from server.responses import ClosingStreamingResponse
from server.services import Services, services_of
from server.volumes import Stage, Volumes
from tams_analytics import __version__
from tams_analytics.backup.repository import local_files
from tams_analytics.backup.snapshot import folder_bytes, snapshot_niced
from tams_analytics.backup.transfer import ADMIN_BACKUP_PATH, SNAPSHOT_MEMBER, SnapshotInfo, tar_chunks
from tams_analytics.display import mib
from tams_analytics.exceptions import InsufficientStorageError

__all__ = ["STAGING", "BackupStopped", "remove_leftover_copies", "router"]

logger = logging.getLogger(__name__)

router = APIRouter(include_in_schema=False)

#: under the data dir: the copies being sent
STAGING: Final = ".backup-staging"


def _require_admin(services: Services, scopes: frozenset[str] | None) -> None:
    """With JWTs, the ``admin`` scope (static credentials carry every scope; without auth, the API is open too)."""
    settings = services.settings
    if settings.auth != "jwt" or (scopes is not None and ADMIN in scopes):
        return
    needed = settings.jwt_scope_prefix + ADMIN
    raise ApiError(
        403,
        f"a backup needs the scope {needed}",
        {"WWW-Authenticate": f'Bearer realm="tams", error="insufficient_scope", scope="{needed}"'},
    )


class _OneAtATime:
    """Whether a backup is being made or sent (decided on the event loop: no lock needed).

    While it is sent, the sending generator holds it, through a weak reference: a client gone before the first
    byte leaves a generator that never runs (its ``finally`` neither), one gone mid-copy a generator cancelled in
    its ``finally``; either way the generator is dropped with its response, and the next backup may begin."""

    def __init__(self) -> None:
        self.copying = False
        self.sending: weakref.ref[AsyncIterator[bytes]] | None = None

    @property
    def busy(self) -> bool:
        return self.copying or (self.sending is not None and self.sending() is not None)


def _state(app: FastAPI) -> _OneAtATime:
    state = getattr(app.state, "backups", None)
    if not isinstance(state, _OneAtATime):
        state = app.state.backups = _OneAtATime()
    return state


@router.post(ADMIN_BACKUP_PATH)
async def make_backup(request: Request) -> Response:
    services = services_of(request.app)
    principal = await services.authorizer.identify(request)
    _require_admin(services, principal.scopes)
    state = _state(request.app)
    if state.busy:
        raise ApiError(409, "a backup of this store is being made: try again when it is done")
    state.copying = True
    staging = (services.settings.data_dir / STAGING).absolute()
    folder = staging / uuid.uuid4().hex
    try:
        info = await run_in_threadpool(_copy, services, staging, folder)
    except BaseException:
        _remove(folder)
        raise
    finally:
        state.copying = False
    names = [SNAPSHOT_MEMBER, *(n for n in local_files(folder) if n != SNAPSHOT_MEMBER)]
    logger.info(
        "backup: copied %s rows as of %s in %.2f s; sending %s files",
        sum(info.rows.values()),
        info.created.isoformat(),
        info.seconds,
        len(names),
    )
    body = _send(folder, names, state)
    state.sending = weakref.ref(body)
    weakref.finalize(body, _remove, folder)  # sent, abandoned or never begun: the copy goes
    return ClosingStreamingResponse(
        body,
        media_type="application/x-tar",
        headers={"Content-Disposition": f'attachment; filename="tams-backup-{info.created:%Y%m%dT%H%M%SZ}.tar"'},
    )


def _copy(services: Services, staging: Path, folder: Path) -> SnapshotInfo:
    """Remove what earlier backups left, copy the store into ``folder`` (refused, or stopped, at the high watermark of
    its volume) and describe the copy beside it."""
    shutil.rmtree(staging, ignore_errors=True)
    volumes = services.volumes
    if volumes is not None and (refused := _at_high_watermark(volumes, staging, None)) is not None:
        raise refused
    _make(folder)
    watch = None if volumes is None else (lambda: _at_high_watermark(volumes, staging, folder))
    try:
        snap = snapshot_niced(services.catalog.engine, folder, nice=services.settings.backup_nice, watch=watch)
    except BackupStopped:
        raise
    except InsufficientStorageError as exc:  # the volume filled anyway (the watermarks are off, or another writer)
        raise InsufficientStorageError(f"the backup failed: {exc}; {_needs(staging)}") from None
    if volumes is not None and (past := _at_high_watermark(volumes, staging, folder)) is not None:
        raise past  # it finished between two looks, past the high watermark: not kept there while it is sent
    info = SnapshotInfo(
        store=snap.store,
        engine=services.catalog.engine.name,
        created=snap.created,
        rows=snap.rows,
        seconds=snap.seconds,
        tool=f"tams-analytics {__version__}",
        object_grace_s=services.settings.object_grace_s,
    )
    (folder / SNAPSHOT_MEMBER).write_bytes(info.dumps())
    return info


class BackupStopped(InsufficientStorageError):
    """A backup refused, or stopped, at the high watermark of its copy's volume (507)."""


def _needs(staging: Path) -> str:
    """What a backup through the server needs, and the other way."""
    return (
        f"the server writes the whole copy to {staging} before it sends it, about as much as a backup holds: free "
        "that much on that volume, or stop the server and back the store up directly (tams-analytics backup --store "
        "URL writes to the repository only)"
    )


def _at_high_watermark(volumes: Volumes, staging: Path, folder: Path | None) -> BackupStopped | None:
    """The refusal of a backup (``folder`` None: before its copy; else while it is copied into ``folder``) when the
    volume of ``staging`` is at its high watermark, or beyond; None when it is not."""
    reading = volumes.reading(staging, "backup copies")
    if reading.stage < Stage.HIGH:
        return None
    what = "refused" if folder is None else f"stopped with {mib(folder_bytes(folder))} of its copy written"
    return BackupStopped(
        f"a backup {what}: {reading.describe(volumes.flood)} ({reading.stage.state.replace('_', ' ')}), and backups "
        f"are refused from the high watermark ({volumes.high}) on; {_needs(staging)}"
    )


def _make(folder: Path, tries: int = 10) -> None:
    """Make a copy's folder in the staging folder. An earlier copy's cleanup (:func:`_remove`, from its response's
    finalizer, on any thread) removes the staging folder once it holds no other copy: between making the staging
    folder and the copy's, it can go again; both are made again then (once the copy's is there, it stays)."""
    for _ in range(tries):
        folder.parent.mkdir(parents=True, exist_ok=True)
        try:
            folder.mkdir()
            return
        except FileNotFoundError:
            continue
    folder.mkdir()  # (raises, saying which folder)


def _remove(folder: Path) -> None:
    """Remove a copy's folder, and the staging folder once it holds no other."""
    shutil.rmtree(folder, ignore_errors=True)
    with contextlib.suppress(OSError):  # another backup's copy is there (or it is gone already)
        folder.parent.rmdir()


def remove_leftover_copies(data_dir: Path) -> None:
    """Remove the copies a server stopped mid-backup left under ``data_dir`` (called as the server starts)."""
    staging = data_dir / STAGING
    if staging.exists():
        logger.info("backup: removing what an earlier backup left in %s (%s)", staging, mib(folder_bytes(staging)))
        shutil.rmtree(staging, ignore_errors=True)


async def _send(folder: Path, names: list[str], state: _OneAtATime) -> AsyncIterator[bytes]:
    """The tar of ``folder``'s files, each chunk read in a worker thread; the copy goes once sent (or abandoned:
    then also when the generator is dropped, see :class:`_OneAtATime`)."""
    chunks = tar_chunks(folder, names)
    try:
        while (chunk := await run_in_threadpool(next, chunks, None)) is not None:
            yield chunk
    finally:
        state.sending = None  # first: an await below may be cancelled (a client gone mid-copy)
        with contextlib.suppress(ValueError):  # still being read in a worker thread: it ends with the folder
            chunks.close()
        await asyncio.to_thread(_remove, folder)
