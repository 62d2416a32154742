"""A backup repository: a local folder or ``s3://bucket/prefix`` holding backups, one folder each.

::

    <repository>/20261122T101500Z/backup.json             the manifest, written last
    <repository>/20261122T101500Z/segments/data_0.parquet  one folder per table
    <repository>/20261123T101500Z/...

A backup's id is the UTC time it began (``YYYYMMDDTHHMMSSZ``, ``-2`` and so on when two begin in one second), so
ids sort in time order. A folder without ``backup.json`` is a backup that did not finish (or one being written):
restore and verify never take it, and :meth:`Repository.expire` removes those older than the newest complete one.

S3 goes through pyarrow's file system (:mod:`tams_analytics.export.destinations`: ``TAMS_S3_ENDPOINT``,
``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``, ``TAMS_S3_REGION``); a backup to S3 is written to a local
staging folder first, then uploaded, its manifest last.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import hashlib
import logging
import re
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Unpack

import pyarrow.fs as pafs

from tams_analytics.backup.manifest import MANIFEST, FileEntry, Manifest
from tams_analytics.clock import utcnow
from tams_analytics.exceptions import NotFoundError, TamsError, said_on_cli
from tams_analytics.export.destinations import Destination, S3Options, destination

__all__ = ["BackupRef", "Repository", "file_sha256", "local_files", "locate", "locate_tables"]

logger = logging.getLogger(__name__)

_ID: Final = re.compile(r"^\d{8}T\d{6}Z(-\d+)?$")
_CHUNK: Final = 1 << 20


@dataclass(frozen=True)
class BackupRef:
    """A backup in a repository: its id and, when it finished, its manifest (or why that cannot be read)."""

    id: str
    url: str
    manifest: Manifest | None
    #: the manifest is there but cannot be read (None: it reads, or there is none)
    damaged: str | None = None

    @property
    def complete(self) -> bool:
        return self.manifest is not None

    @property
    def finished(self) -> bool:
        """Its manifest was written (it may since have been damaged)."""
        return self.manifest is not None or self.damaged is not None


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def local_files(folder: Path) -> list[str]:
    """The files under ``folder`` (its manifest left out) as sorted POSIX paths relative to it."""
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file() and p.name != MANIFEST)


def _order(backup_id: str) -> tuple[str, int]:
    """Backups in the order they began: by time, then by the number of those begun in one second.

    >>> sorted(["20261122T101500Z-10", "20261122T101500Z-2", "20261122T101500Z"], key=_order)[-1]
    '20261122T101500Z-10'
    """
    when, _, n = backup_id.partition("-")
    return when, int(n or 1)


class Repository:
    """Backups under one :class:`~tams_analytics.export.destinations.Destination`."""

    def __init__(self, dest: Destination) -> None:
        self.dest = dest

    @classmethod
    def open(cls, url: str, **s3: Unpack[S3Options]) -> Repository:
        """The repository at ``url`` (a folder or ``s3://bucket/prefix``)."""
        return cls(destination(url, **s3))

    @property
    def url(self) -> str:
        return self.dest.url

    @property
    def local(self) -> bool:
        return isinstance(self.dest.filesystem, pafs.LocalFileSystem)

    def _info(self, path: str) -> pafs.FileInfo:
        try:
            return self.dest.filesystem.get_file_info(path)
        except OSError as exc:
            raise TamsError(f"cannot read the backup repository {self.url}: {said_on_cli(exc)}") from exc

    def _read(self, path: str) -> bytes:
        with self.dest.filesystem.open_input_stream(path) as f:
            return bytes(f.read())

    def ref(self, backup_id: str) -> BackupRef:
        """Backup ``backup_id`` with its manifest (None: it did not finish; ``damaged`` says why one does not read)."""
        url = f"{self.url}/{backup_id}"
        path = self.dest.path(backup_id, MANIFEST)
        if self._info(path).type != pafs.FileType.File:
            return BackupRef(backup_id, url, None)
        try:
            return BackupRef(backup_id, url, Manifest.loads(self._read(path), f"{url}/{MANIFEST}"))
        except (TamsError, OSError) as exc:
            return BackupRef(backup_id, url, None, damaged=said_on_cli(exc))

    def backups(self) -> list[BackupRef]:
        """Every backup folder, oldest first (complete or not)."""
        info = self._info(self.dest.root)
        if info.type == pafs.FileType.NotFound:
            return []
        if info.type != pafs.FileType.Directory:
            raise TamsError(f"{self.url} is not a folder: a backup repository is one")
        try:
            entries = self.dest.filesystem.get_file_info(pafs.FileSelector(self.dest.root, recursive=False))
        except OSError as exc:
            raise TamsError(f"cannot list the backup repository {self.url}: {said_on_cli(exc)}") from exc
        ids = sorted(
            (e.base_name for e in entries if e.type == pafs.FileType.Directory and _ID.match(e.base_name)), key=_order
        )
        return [self.ref(i) for i in ids]

    def locate(self, backup_id: str | None = None) -> BackupRef:
        """Backup ``backup_id``, or the newest that finished (its manifest may be damaged: the caller says so)."""
        if backup_id is not None:
            found = self.ref(backup_id)
            if not found.finished:
                held = [b.id for b in self.backups() if b.finished]
                raise NotFoundError(f"no backup {backup_id} in {self.url} (backups: {', '.join(held) or 'none'})")
            return found
        finished = [b for b in self.backups() if b.finished]
        if not finished:
            raise NotFoundError(f"no backup in {self.url}")
        return finished[-1]

    # -- writing a backup ------------------------------------------------------------------------------------
    def new_id(self, now: dt.datetime | None = None) -> str:
        """An id for a backup beginning ``now`` that no folder of the repository has."""
        base = (now or utcnow()).astimezone(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
        taken = {b.id for b in self.backups()}
        candidate, n = base, 1
        while candidate in taken:
            n += 1
            candidate = f"{base}-{n}"
        return candidate

    @contextlib.contextmanager
    def staging(self, backup_id: str) -> Iterator[Path]:
        """A local folder to write backup ``backup_id`` into: its own folder in a local repository (so nothing is
        copied twice), else a temporary folder removed afterwards (:meth:`publish` uploads it)."""
        if self.local:
            folder = Path(self.dest.path(backup_id))
            # the owner's alone: a backup holds every column, webhook API keys included
            folder.mkdir(mode=0o700, parents=True, exist_ok=False)
            yield folder
            return
        temp = Path(tempfile.mkdtemp(prefix=f"tams-backup-{backup_id}-"))
        try:
            yield temp
        finally:
            shutil.rmtree(temp, ignore_errors=True)

    def publish(self, backup_id: str, staged: Path, manifest: Manifest) -> Manifest:
        """Put the files of ``staged`` in the repository as backup ``backup_id`` with their sizes and checksums,
        then its manifest (``manifest`` with ``files`` filled in); returns that manifest."""
        files: dict[str, FileEntry] = {}
        for rel in local_files(staged):
            path = staged / rel
            files[rel] = FileEntry(path.stat().st_size, file_sha256(path))
            if not self.local:
                self._upload(path, self.dest.path(backup_id, *rel.split("/")))
        done = dataclasses.replace(manifest, files=files)
        self._write(self.dest.path(backup_id, MANIFEST), done.dumps())
        logger.info("backup %s: %s files, %s bytes, in %s", backup_id, len(files), done.size_bytes, self.url)
        return done

    def _upload(self, path: Path, target: str) -> None:
        with path.open("rb") as src, self.dest.filesystem.open_output_stream(target) as out:
            while chunk := src.read(_CHUNK):
                out.write(chunk)

    def _write(self, target: str, data: bytes) -> None:
        with self.dest.filesystem.open_output_stream(target) as out:
            out.write(data)

    # -- retention -------------------------------------------------------------------------------------------
    def expire(self, keep: int) -> list[BackupRef]:
        """Remove all but the ``keep`` newest complete backups, and unfinished ones older than the newest complete
        one (a backup being written now is newer and stays); returns what was removed, oldest first. A backup whose
        manifest is damaged is left for people to look at."""
        if keep < 1:
            raise TamsError("keep at least one backup", cli="--keep must be 1 or more")
        backups = self.backups()
        complete = [b for b in backups if b.complete]
        kept = {b.id for b in complete[-keep:]}
        newest = complete[-1].id if complete else None
        unfinished = [b for b in backups if not b.finished and newest is not None and _order(b.id) < _order(newest)]
        gone = sorted([b for b in complete if b.id not in kept] + unfinished, key=lambda b: _order(b.id))
        for b in gone:
            self.remove(b.id)
        return gone

    def remove(self, backup_id: str) -> None:
        """Remove a backup: its manifest first, so that a removal cut short leaves an unfinished backup, never a
        complete-looking one with files missing."""
        fs = self.dest.filesystem
        manifest = self.dest.path(backup_id, MANIFEST)
        if self._info(manifest).type == pafs.FileType.File:
            fs.delete_file(manifest)
        fs.delete_dir(self.dest.path(backup_id))
        logger.info("removed backup %s from %s", backup_id, self.url)

    # -- reading a backup ------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def fetched(self, ref: BackupRef) -> Iterator[Path]:
        """The backup's files in a local folder: its own in a local repository, else downloaded into a temporary
        folder (removed afterwards)."""
        if self.local:
            yield Path(self.dest.path(ref.id))
            return
        temp = Path(tempfile.mkdtemp(prefix=f"tams-restore-{ref.id}-"))
        try:
            root = self.dest.path(ref.id)
            selector = pafs.FileSelector(root, recursive=True)
            for entry in self.dest.filesystem.get_file_info(selector):
                if entry.type != pafs.FileType.File:
                    continue
                rel = entry.path[len(root) :].lstrip("/")
                target = temp / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                with self.dest.filesystem.open_input_stream(entry.path) as src, target.open("wb") as out:
                    while chunk := src.read(_CHUNK):
                        out.write(chunk)
            yield temp
        finally:
            shutil.rmtree(temp, ignore_errors=True)


def locate(url: str, backup_id: str | None = None, **s3: Unpack[S3Options]) -> tuple[Repository, BackupRef]:
    """The backup ``url`` names: a backup's own folder (it holds ``backup.json``), or a repository (then backup
    ``backup_id``, or its newest complete one)."""
    repo = Repository.open(url, **s3)
    own = repo.dest.path(MANIFEST)
    if backup_id is None and repo._info(own).type == pafs.FileType.File:
        parent, _, name = repo.dest.root.rstrip("/").rpartition("/")
        holder = Repository(Destination(repo.dest.filesystem, parent, repo.url.rpartition("/")[0]))
        return holder, holder.ref(name)
    return repo, repo.locate(backup_id)


def locate_tables(url: str, **s3: Unpack[S3Options]) -> tuple[Repository, BackupRef, str]:
    """The folder of Parquet tables ``url`` names, and what it is, in words: one backup's folder or an export's (it
    holds ``sources/`` and the other tables), or a backup repository (then its newest backup)."""
    repo = Repository.open(url, **s3)
    if repo._info(repo.dest.path("sources")).type == pafs.FileType.Directory:
        parent, _, name = repo.dest.root.rstrip("/").rpartition("/")
        holder = Repository(Destination(repo.dest.filesystem, parent, repo.url.rpartition("/")[0]))
        ref = holder.ref(name)
        return holder, ref, f"backup {ref.id} of {ref.manifest.store}" if ref.manifest else f"export {repo.url}"
    ref = repo.locate()
    return repo, ref, f"backup {ref.id} of {ref.manifest.store}" if ref.manifest else f"backup {ref.url}"
