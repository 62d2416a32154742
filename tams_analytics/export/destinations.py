"""Where an export is written: a local directory or ``s3://bucket/prefix``, through pyarrow's file systems.

S3 settings come from arguments or the environment: ``TAMS_S3_ENDPOINT`` (e.g. ``http://127.0.0.1:8333``;
AWS when unset), ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY`` (else pyarrow's default AWS credential
chain) and ``TAMS_S3_REGION``/``AWS_REGION`` (default ``us-east-1``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict
from urllib.parse import urlsplit

import pyarrow.fs as pafs

from tams_analytics.exceptions import TamsError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Destination:
    """A filesystem and the root path under it; ``url`` is for messages."""

    filesystem: pafs.FileSystem
    root: str
    url: str

    def path(self, *parts: str) -> str:
        return "/".join([self.root.rstrip("/"), *parts])


class S3Options(TypedDict, total=False):
    """The options of an ``s3://`` :func:`destination` (None: from the environment or the default)."""

    endpoint: str | None
    region: str | None
    access_key: str | None
    secret_key: str | None


def destination(
    to: str,
    *,
    endpoint: str | None = None,
    region: str | None = None,
    access_key: str | None = None,
    secret_key: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> Destination:
    """Where ``to`` (a local path, ``file://`` URL or ``s3://bucket/prefix``) points.

    >>> d = destination("/tmp/tams-export")
    >>> type(d.filesystem).__name__, d.root
    ('LocalFileSystem', '/tmp/tams-export')
    """
    env = os.environ if environ is None else environ
    parts = urlsplit(to)
    scheme = parts.scheme.lower()
    if scheme in ("", "file") or (len(scheme) == 1 and to[1:3] in (":\\", ":/")):  # C:\ is a path
        local = Path(parts.path if scheme == "file" else to).expanduser().resolve()
        return Destination(pafs.LocalFileSystem(), local.as_posix(), local.as_posix())
    if scheme != "s3":
        raise TamsError(f"cannot export to {to!r}: expected a directory or s3://bucket/prefix")
    if not parts.netloc:
        raise TamsError(f"an S3 destination needs a bucket: s3://bucket/prefix, got {to!r}")
    options: dict[str, Any] = {
        "region": region or env.get("TAMS_S3_REGION") or env.get("AWS_REGION") or "us-east-1",
        "allow_bucket_creation": False,
    }
    endpoint = endpoint or env.get("TAMS_S3_ENDPOINT")
    if endpoint:
        ep = urlsplit(endpoint if "://" in endpoint else f"https://{endpoint}")
        options["endpoint_override"] = ep.netloc
        options["scheme"] = ep.scheme
    access_key = access_key or env.get("AWS_ACCESS_KEY_ID")
    secret_key = secret_key or env.get("AWS_SECRET_ACCESS_KEY")
    if access_key and secret_key:
        options["access_key"], options["secret_key"] = access_key, secret_key
    root = f"{parts.netloc}/{parts.path.strip('/')}".rstrip("/")
    logger.info("exporting to s3://%s via %s", root, endpoint or "AWS")
    return Destination(pafs.S3FileSystem(**options), root, f"s3://{root}")


def holds_table(dest: Destination, table: str) -> bool:
    """True when the table's directory holds anything (a file in its place counts)."""
    path = dest.path(table)
    info = dest.filesystem.get_file_info(path)
    if info.type == pafs.FileType.File:
        return True
    if info.type != pafs.FileType.Directory:
        return False
    return bool(dest.filesystem.get_file_info(pafs.FileSelector(path, allow_not_found=True, recursive=False)))


def clear_table(dest: Destination, table: str) -> None:
    path = dest.path(table)
    info = dest.filesystem.get_file_info(path)
    if info.type == pafs.FileType.File:
        dest.filesystem.delete_file(path)
    elif info.type == pafs.FileType.Directory:
        dest.filesystem.delete_dir_contents(path, missing_dir_ok=True)
