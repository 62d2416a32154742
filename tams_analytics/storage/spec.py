"""Object storage named on a command line or in a notebook: ``local:DIR`` (the directory of the embedded
local store, e.g. ``<data-dir>/objects``) or ``s3://BUCKET[/PREFIX]``.

S3 credentials come from ``TAMS_S3_ACCESS_KEY``/``TAMS_S3_SECRET_KEY`` or boto3's usual sources, never
from the spec.
"""

from __future__ import annotations

import os
import secrets
import uuid
from pathlib import Path

from tams_analytics.exceptions import TamsError
from tams_analytics.extras import install_hint
from tams_analytics.storage.base import ObjectStore, StorageBackendInfo


def open_storage(
    spec: str, *, s3_endpoint: str | None = None, s3_region: str = "us-east-1", storage_id: str | None = None
) -> ObjectStore:
    """The store ``spec`` names (raises :class:`TamsError` for a bad spec). ``storage_id`` labels the store
    (default: a new id): readers say which instances it holds."""
    info = StorageBackendInfo(
        id=storage_id or str(uuid.uuid4()),
        label="local" if spec.startswith("local:") else "s3",
        provider="cli",
        store_product="cli",
    )
    if spec.startswith("local:"):
        root = Path(spec.removeprefix("local:")).expanduser()
        if not root.is_dir():
            raise TamsError(f"storage {spec}: {root} is not a directory")
        from tams_analytics.storage.local import LocalObjectStore

        return LocalObjectStore(info, root=root, base_url="http://localhost", secret=secrets.token_bytes(16))
    if spec.startswith("s3://"):
        bucket, _, prefix = spec.removeprefix("s3://").partition("/")
        if not bucket:
            raise TamsError(f"storage {spec}: no bucket named")
        try:
            from tams_analytics.storage.s3 import S3ObjectStore
        except ImportError as exc:  # pragma: no cover - the s3 extra is part of dev and server installs
            raise TamsError(f"S3 storage needs boto3 ({exc}): {install_hint('s3')}") from exc
        return S3ObjectStore(
            info,
            bucket=bucket,
            prefix=f"{prefix.rstrip('/')}/" if prefix else "",
            endpoint_url=s3_endpoint,
            region=s3_region,
            access_key=os.environ.get("TAMS_S3_ACCESS_KEY"),
            secret_key=os.environ.get("TAMS_S3_SECRET_KEY"),
        )
    raise TamsError(f"storage {spec!r}: expected local:DIR or s3://BUCKET[/PREFIX]")
