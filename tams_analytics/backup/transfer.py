"""How a server hands the copy it made to the ``backup`` command: ``POST /_admin/backup`` and its answer.

The answer is a POSIX tar (pax headers) of the copy's folder, written a chunk at a time as it is sent (nothing of
the size of the copy is held in memory) and read the same way; only regular files with relative paths inside the
folder are ever written out of it. Its first member, :data:`SNAPSHOT_MEMBER`, is a :class:`SnapshotInfo`: what
was copied, as of when, by which version of the protocol (:data:`PROTOCOL`: a client refuses another).
"""

from __future__ import annotations

import datetime as dt
import json
import tarfile
from collections.abc import Generator, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Any, Final

from tams_analytics.exceptions import TamsError

__all__ = ["ADMIN_BACKUP_PATH", "PROTOCOL", "SNAPSHOT_MEMBER", "IterStream", "SnapshotInfo", "tar_chunks", "untar"]

#: the server's endpoint (outside the TAMS API) that makes a copy of the store it holds
ADMIN_BACKUP_PATH: Final = "/_admin/backup"
#: the version of what that endpoint answers
PROTOCOL: Final = 1
#: the first member of the answer: a :class:`SnapshotInfo`
SNAPSHOT_MEMBER: Final = "snapshot.json"

_BLOCK: Final = 512
_CHUNK: Final = 1 << 20


@dataclass(frozen=True)
class SnapshotInfo:
    """What a server's copy holds: the store (redacted), its engine, the instant the copy shows, its rows."""

    store: str
    engine: str
    created: dt.datetime
    rows: Mapping[str, int]
    seconds: float
    tool: str
    protocol: int = PROTOCOL
    #: how long the server keeps the bytes of objects nothing references any more (``TAMS_OBJECT_GRACE_S``)
    object_grace_s: int | None = None

    def dumps(self) -> bytes:
        doc = {
            "protocol": self.protocol,
            "store": self.store,
            "engine": self.engine,
            "created": self.created.astimezone(dt.UTC).isoformat(),
            "rows": dict(self.rows),
            "seconds": self.seconds,
            "tool": self.tool,
            "object_grace_s": self.object_grace_s,
        }
        return json.dumps(doc, sort_keys=True).encode()

    @classmethod
    def loads(cls, data: bytes) -> SnapshotInfo:
        try:
            doc: Any = json.loads(data)
            protocol = int(doc.get("protocol", 0))
        except (ValueError, TypeError, AttributeError) as exc:
            raise TamsError(f"the server's backup answer does not describe a copy: {exc}") from None
        if protocol != PROTOCOL:
            raise TamsError(
                f"the server answers backups in protocol {protocol}, this tams-analytics reads {PROTOCOL}: use the "
                "same version of tams-analytics as the server"
            )
        try:
            return cls(
                store=str(doc["store"]),
                engine=str(doc["engine"]),
                created=dt.datetime.fromisoformat(str(doc["created"])),
                rows={str(k): int(v) for k, v in doc["rows"].items()},
                seconds=float(doc["seconds"]),
                tool=str(doc["tool"]),
                object_grace_s=None if doc.get("object_grace_s") is None else int(doc["object_grace_s"]),
            )
        except (KeyError, ValueError, TypeError, AttributeError) as exc:
            raise TamsError(f"the server's backup answer does not describe a copy: {exc!r}") from None


def tar_chunks(folder: Path, names: Iterable[str]) -> Generator[bytes, None, None]:
    """The files ``names`` (POSIX paths relative to ``folder``) as a tar stream, chunk by chunk."""
    for name in names:
        path = folder / name
        info = tarfile.TarInfo(name)
        info.size = path.stat().st_size
        info.mtime = int(path.stat().st_mtime)
        info.mode = 0o644
        yield info.tobuf(format=tarfile.PAX_FORMAT)
        with path.open("rb") as f:
            while chunk := f.read(_CHUNK):
                yield chunk
        if info.size % _BLOCK:
            yield b"\0" * (_BLOCK - info.size % _BLOCK)
    yield b"\0" * (2 * _BLOCK)


class IterStream:
    """A readable binary stream over an iterator of byte chunks (an HTTP response's body)."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._buffer = b""

    def read(self, size: int = -1) -> bytes:
        while size < 0 or len(self._buffer) < size:
            chunk = next(self._chunks, None)
            if chunk is None:
                break
            self._buffer += chunk
        if size < 0:
            out, self._buffer = self._buffer, b""
        else:
            out, self._buffer = self._buffer[:size], self._buffer[size:]
        return out


def untar(stream: IO[bytes] | IterStream, into: Path) -> list[str]:
    """Write the regular files of the tar ``stream`` under ``into``; returns their names. A member that is not a
    regular file or whose path leaves ``into`` is refused (a :class:`TamsError`), as is a stream that ends before
    its last file does (the server stopped mid-copy) or is not a tar at all."""
    try:
        return _untar(stream, into)
    except (tarfile.TarError, EOFError) as exc:
        raise TamsError(f"the copy is incomplete: the backup stream broke off or is not a backup's ({exc})") from exc


def _untar(stream: IO[bytes] | IterStream, into: Path) -> list[str]:
    written = []
    with tarfile.open(fileobj=stream, mode="r|") as archive:  # type: ignore[call-overload]
        for member in archive:
            path = PurePosixPath(member.name)
            if not member.isfile() or path.is_absolute() or ".." in path.parts or not path.parts:
                raise TamsError(f"the backup stream holds {member.name!r}, which is not a file of a backup")
            target = into.joinpath(*path.parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            source = archive.extractfile(member)
            assert source is not None
            with target.open("wb") as out:
                while chunk := source.read(_CHUNK):
                    out.write(chunk)
            written.append(path.as_posix())
    return written
