"""Object storage named on a command line or in a notebook: ``local:DIR`` (the directory of the embedded
local store, e.g. ``<data-dir>/objects``) or ``s3://BUCKET[/PREFIX]``, and the S3 settings the commands read.

S3 settings (:func:`s3_settings`): the endpoint from ``TAMS_S3_ENDPOINT`` (AWS when unset), the region from
``TAMS_S3_REGION`` (else ``AWS_REGION``, else ``us-east-1``), credentials from ``TAMS_S3_ACCESS_KEY``/
``TAMS_S3_SECRET_KEY``, else ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``, else the AWS SDK's usual sources
(``~/.aws``, an instance role); the server's settings use the same ``TAMS_S3_*`` names. Credentials never come
from a spec or a command line.
"""

from __future__ import annotations

import os
import secrets
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from tams_analytics.exceptions import TamsError
from tams_analytics.extras import install_hint
from tams_analytics.storage.base import ObjectStore, StorageBackendInfo

#: the environment variables of S3 credentials, in the order they are looked for (access key, secret key)
CREDENTIAL_VARIABLES: Final = (
    ("TAMS_S3_ACCESS_KEY", "TAMS_S3_SECRET_KEY"),
    ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"),
)
DEFAULT_REGION: Final = "us-east-1"


@dataclass(frozen=True)
class S3Settings:
    """Where S3 is and the credentials to use there (None: the AWS SDK's own sources)."""

    endpoint: str | None
    region: str
    access_key: str | None = field(default=None, repr=False)
    secret_key: str | None = field(default=None, repr=False)
    #: where the credentials came from, for messages: ``TAMS_S3_ACCESS_KEY/TAMS_S3_SECRET_KEY``, ... (None: none)
    credentials_from: str | None = None

    @property
    def where(self) -> str:
        """The endpoint, for messages."""
        return self.endpoint or f"AWS S3 ({self.region})"


def s3_settings(
    *,
    endpoint: str | None = None,
    region: str | None = None,
    access_key: str | None = None,
    secret_key: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> S3Settings:
    """The S3 settings: the arguments given, else the environment (module docstring). A credential pair set by
    half is an error, said by the variable's name.

    >>> s = s3_settings(environ={"TAMS_S3_ENDPOINT": "http://127.0.0.1:8333", "TAMS_S3_ACCESS_KEY": "k",
    ...                          "TAMS_S3_SECRET_KEY": "s", "AWS_ACCESS_KEY_ID": "other"})
    >>> s.endpoint, s.region, s.access_key, s.credentials_from
    ('http://127.0.0.1:8333', 'us-east-1', 'k', 'TAMS_S3_ACCESS_KEY/TAMS_S3_SECRET_KEY')
    """
    env = os.environ if environ is None else environ
    endpoint = endpoint or env.get("TAMS_S3_ENDPOINT") or None
    region = region or env.get("TAMS_S3_REGION") or env.get("AWS_REGION") or DEFAULT_REGION
    if access_key or secret_key:
        if not (access_key and secret_key):
            raise TamsError("S3 credentials need both an access key and a secret key")
        return S3Settings(endpoint, region, access_key, secret_key, "the access key and secret key given")
    for key_var, secret_var in CREDENTIAL_VARIABLES:
        key, secret = env.get(key_var), env.get(secret_var)
        if key and secret:
            return S3Settings(endpoint, region, key, secret, f"{key_var}/{secret_var}")
        if key or secret:
            given, missing = (key_var, secret_var) if key else (secret_var, key_var)
            raise TamsError(f"{given} is set but {missing} is not: S3 credentials need both")
    return S3Settings(endpoint, region)


def open_storage(
    spec: str, *, s3_endpoint: str | None = None, s3_region: str | None = None, storage_id: str | None = None
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
        settings = s3_settings(endpoint=s3_endpoint, region=s3_region)
        return S3ObjectStore(
            info,
            bucket=bucket,
            prefix=f"{prefix.rstrip('/')}/" if prefix else "",
            endpoint_url=settings.endpoint,
            region=settings.region,
            access_key=settings.access_key,
            secret_key=settings.secret_key,
        )
    raise TamsError(f"storage {spec!r}: expected local:DIR or s3://BUCKET[/PREFIX]")
