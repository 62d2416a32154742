"""What a backup holds, said beside it: ``backup.json``.

A backup is a folder of Parquet files, one folder per table (``<table>/part-0.parquet``, or several files), and
this manifest, written last: a folder without it is a backup that did not finish. The manifest says what was
backed up (the store, redacted; its engine; how), when (the point in time the copy shows, UTC), how many rows each
table had and which columns, and every file with its size and SHA-256, so that ``verify`` can tell a damaged or
incomplete backup from a good one without the store.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Final

import pyarrow as pa

from tams_analytics.exceptions import TamsError

__all__ = ["FORMAT", "MANIFEST", "FileEntry", "Manifest", "TableEntry", "columns_of"]

#: the manifest's name in a backup's folder
MANIFEST: Final = "backup.json"
#: the format this version writes and reads; a manifest of another major format is refused
FORMAT: Final = "tams-analytics-backup/1"


@dataclass(frozen=True)
class TableEntry:
    """A table as backed up: its rows, and its columns as ``(name, Arrow type)``."""

    rows: int
    columns: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class FileEntry:
    bytes: int
    sha256: str


@dataclass(frozen=True)
class Manifest:
    """A backup's ``backup.json``."""

    id: str
    #: the point in time the backup shows (when its read transaction began), UTC
    created: dt.datetime
    #: the store backed up, without credentials
    store: str
    engine: str
    #: ``server`` (the server holding the store made the copy) or ``direct``
    method: str
    tables: Mapping[str, TableEntry]
    #: path relative to the backup's folder -> size and checksum
    files: Mapping[str, FileEntry]
    tool: str = ""
    seconds: float = 0.0
    #: the server that made the copy (``method == "server"``)
    server: str | None = None
    #: how long the store's server keeps the bytes of objects nothing references any more (``TAMS_OBJECT_GRACE_S``)
    #: when the backup was made; None: not known. Objects deleted after the backup are in storage for that long only
    object_grace_s: int | None = None
    format: str = FORMAT
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def rows(self) -> int:
        return sum(t.rows for t in self.tables.values())

    @property
    def size_bytes(self) -> int:
        return sum(f.bytes for f in self.files.values())

    def to_json(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["created"] = self.created.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
        doc["tables"] = {
            name: {"rows": t.rows, "columns": [list(c) for c in t.columns]} for name, t in self.tables.items()
        }
        doc["rows"], doc["bytes"] = self.rows, self.size_bytes
        return doc

    def dumps(self) -> bytes:
        return (json.dumps(self.to_json(), indent=2, sort_keys=True) + "\n").encode()

    @classmethod
    def loads(cls, data: bytes | str, where: str = MANIFEST) -> Manifest:
        """The manifest in ``data`` (a :class:`TamsError` naming ``where`` when it is not one)."""
        try:
            doc = json.loads(data)
            fmt = str(doc.get("format", ""))
            if fmt.partition("/")[0] != FORMAT.partition("/")[0]:
                raise TamsError(f"{where} is not a tams-analytics backup manifest (format {fmt!r})")
            if fmt != FORMAT:
                raise TamsError(f"{where} is of format {fmt}; this version reads {FORMAT}: use a newer tams-analytics")
            return cls(
                id=str(doc["id"]),
                created=dt.datetime.fromisoformat(str(doc["created"]).replace("Z", "+00:00")),
                store=str(doc["store"]),
                engine=str(doc["engine"]),
                method=str(doc["method"]),
                tables={
                    str(name): TableEntry(int(t["rows"]), tuple((str(c), str(ty)) for c, ty in t["columns"]))
                    for name, t in doc["tables"].items()
                },
                files={str(p): FileEntry(int(f["bytes"]), str(f["sha256"])) for p, f in doc["files"].items()},
                tool=str(doc.get("tool", "")),
                seconds=float(doc.get("seconds", 0.0)),
                server=doc.get("server"),
                object_grace_s=None if doc.get("object_grace_s") is None else int(doc["object_grace_s"]),
                format=fmt,
                extra=dict(doc.get("extra") or {}),
            )
        except TamsError:
            raise
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise TamsError(f"{where} is not a readable backup manifest: {exc}") from None


def columns_of(schema: pa.Schema) -> tuple[tuple[str, str], ...]:
    """A schema's columns as the manifest lists them.

    >>> columns_of(pa.schema([("id", pa.string()), ("n", pa.int64())]))
    (('id', 'string'), ('n', 'int64'))
    """
    return tuple((f.name, str(f.type)) for f in schema)
