"""Where an export is written: a local directory or ``s3://bucket/prefix``, through pyarrow's file systems.

S3 settings are those every command reads (:func:`tams_analytics.storage.spec.s3_settings`): arguments, else
``TAMS_S3_ENDPOINT``, ``TAMS_S3_REGION``, ``TAMS_S3_ACCESS_KEY``/``TAMS_S3_SECRET_KEY`` (else
``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``, else the AWS SDK's own sources). Before anything is written,
:func:`check_destination` asks S3 for the bucket and says in words what stops the export: no credentials,
credentials refused, no such bucket, an endpoint it cannot reach (:class:`S3AccessError`).
"""

from __future__ import annotations

import enum
import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict
from urllib.parse import urlsplit

import pyarrow.fs as pafs

from tams_analytics.exceptions import TamsError
from tams_analytics.storage.spec import CREDENTIAL_VARIABLES, S3Settings, s3_settings

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Destination:
    """A filesystem and the root path under it; ``url`` is for messages; ``s3``: the settings of an S3 one."""

    filesystem: pafs.FileSystem
    root: str
    url: str
    s3: S3Settings | None = None

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
    parts = urlsplit(to)
    scheme = parts.scheme.lower()
    if scheme in ("", "file") or (len(scheme) == 1 and to[1:3] in (":\\", ":/")):  # C:\ is a path
        local = Path(parts.path if scheme == "file" else to).expanduser().resolve()
        return Destination(pafs.LocalFileSystem(), local.as_posix(), local.as_posix())
    if scheme != "s3":
        raise TamsError(f"cannot export to {to!r}: expected a directory or s3://bucket/prefix")
    if not parts.netloc:
        raise TamsError(f"an S3 destination needs a bucket: s3://bucket/prefix, got {to!r}")
    settings = s3_settings(
        endpoint=endpoint,
        region=region,
        access_key=access_key,
        secret_key=secret_key,
        environ=os.environ if environ is None else environ,
    )
    options: dict[str, Any] = {"region": settings.region, "allow_bucket_creation": False}
    if settings.endpoint:
        ep = urlsplit(settings.endpoint if "://" in settings.endpoint else f"https://{settings.endpoint}")
        options["endpoint_override"] = ep.netloc
        options["scheme"] = ep.scheme
    if settings.access_key and settings.secret_key:
        options["access_key"], options["secret_key"] = settings.access_key, settings.secret_key
    root = f"{parts.netloc}/{parts.path.strip('/')}".rstrip("/")
    logger.info("exporting to s3://%s via %s", root, settings.where)
    return Destination(pafs.S3FileSystem(**options), root, f"s3://{root}", settings)


class S3Problem(enum.StrEnum):
    """What stops an export to S3 before it starts."""

    NO_CREDENTIALS = "no credentials"
    CREDENTIALS_REFUSED = "credentials refused"
    NO_SUCH_BUCKET = "no such bucket"
    UNREACHABLE = "endpoint unreachable"


class S3AccessError(TamsError):
    """An S3 destination that cannot be written, and why (:class:`S3Problem`): the message names the endpoint and
    the destination, and where the credentials came from, never the credentials."""

    def __init__(self, problem: S3Problem, message: str) -> None:
        super().__init__(message)
        self.problem = problem


#: AWS SDK error names (as pyarrow words its errors) of requests S3 refused for their credentials
_REFUSED = ("ACCESS_DENIED", "INVALID_ACCESS_KEY_ID", "SIGNATURE_DOES_NOT_MATCH", "HTTP status 403")
#: a curl failure: the SDK never had an answer
_CURL = re.compile(r"curlCode: \d+, ([^;]+)")


def check_destination(dest: Destination) -> None:
    """Raise :class:`S3AccessError` when ``dest`` is on S3 and its bucket cannot be reached or written: asked
    once, before anything is written (otherwise the first write says ``ACCESS_DENIED`` alike for missing
    credentials and a missing bucket). Nothing to check for a directory."""
    settings = dest.s3
    if settings is None:
        return
    bucket = dest.root.split("/", 1)[0]
    where = settings.where
    try:
        found = dest.filesystem.get_file_info(bucket).type != pafs.FileType.NotFound
    except OSError as exc:
        said = str(exc)
        unreachable = _CURL.search(said)
        if "NETWORK_CONNECTION" in said or unreachable:
            reason = unreachable.group(1).strip().lower() if unreachable else said
            raise S3AccessError(S3Problem.UNREACHABLE, f"cannot reach S3 at {where} for {dest.url}: {reason}") from exc
        if any(code in said for code in _REFUSED):
            if settings.credentials_from is None:
                variables = " nor ".join("/".join(pair) for pair in CREDENTIAL_VARIABLES)
                raise S3AccessError(
                    S3Problem.NO_CREDENTIALS,
                    f"no S3 credentials for {dest.url}: S3 at {where} refused access, and neither {variables} is set",
                ) from exc
            raise S3AccessError(
                S3Problem.CREDENTIALS_REFUSED,
                f"S3 at {where} refused the credentials from {settings.credentials_from} for {dest.url}",
            ) from exc
        raise
    if not found:
        raise S3AccessError(
            S3Problem.NO_SUCH_BUCKET, f"no bucket {bucket} at {where} for {dest.url}: create it, or check the name"
        )


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
