"""S3 (or S3-compatible: SeaweedFS, MinIO, ...) media object storage via boto3."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, BinaryIO, cast
from urllib.parse import urlsplit, urlunsplit

import boto3
from boto3.exceptions import S3UploadFailedError
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    HTTPClientError,
    NoCredentialsError,
    PartialCredentialsError,
)
from botocore.exceptions import ConnectionError as EndpointUnreachable
from botocore.parsers import ResponseParserError

from tams_analytics.storage.base import (
    ObjectStorageUnavailable,
    ObjectStream,
    PutUrl,
    ReadableStore,
    RecentUrls,
    StorageBackendInfo,
    StorageError,
    Unavailable,
)

logger = logging.getLogger(__name__)

_HEAD_WORKERS = 16
_DELETE_BATCH = 1000  # the S3 DeleteObjects limit
_MISSING_CODES = frozenset({"404", "NoSuchKey", "NotFound"})
#: error codes of credentials the endpoint refuses (403 without a body: a HEAD's)
_REFUSED_CODES = frozenset(
    {"InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "InvalidToken", "ExpiredToken", "403"}
)
#: what a refusal's code means, in words
_REFUSALS = {
    "InvalidAccessKeyId": "the access key is not known there",
    "SignatureDoesNotMatch": "the secret key does not match the access key",
    "AccessDenied": "access denied to these credentials",
}
#: how an endpoint was unreachable, by botocore's exception
_UNREACHABLE = {
    "EndpointConnectionError": "could not connect",
    "ConnectTimeoutError": "connecting timed out",
    "ReadTimeoutError": "no answer in time",
    "ConnectionClosedError": "the connection was closed",
}
#: the light check's client: one attempt, short timeouts (the store's own client retries, for real operations)
_CHECK_CONFIG = {"connect_timeout": 3, "read_timeout": 5, "retries": {"max_attempts": 1}}


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _status(exc: ClientError) -> int:
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)


def _shown(url: str) -> str:
    """``url`` without a user name or password (an endpoint should carry none; a message never shows one)."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    netloc = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def unavailable(exc: BaseException, *, checking: bool = False) -> tuple[Unavailable, str] | None:
    """Why ``exc`` (from boto3) means object storage cannot serve at all, in words, or None for a failure of
    one operation (a missing key, a refused write). ``checking``: ``exc`` answered :meth:`S3ObjectStore.check`'s
    listing, so an answer that is not an S3 error document (a bare HTTP status) means the endpoint is not S3."""
    if isinstance(exc, NoCredentialsError | PartialCredentialsError):
        return Unavailable.NO_CREDENTIALS, "no credentials (none given, none found in the environment)"
    if isinstance(exc, HTTPClientError | EndpointUnreachable):  # connection refused or reset, timeouts, DNS
        how = _UNREACHABLE.get(type(exc).__name__, type(exc).__name__)
        return Unavailable.UNREACHABLE, f"the endpoint is unreachable ({how})"
    if isinstance(exc, ResponseParserError):
        return Unavailable.UNREACHABLE, "the endpoint does not answer as S3 does (an answer S3 clients cannot read)"
    if not isinstance(exc, ClientError):
        return None
    code, status = _error_code(exc), _status(exc)
    if code in _REFUSED_CODES:
        meaning = _REFUSALS.get(code, "HTTP 403" if code == "403" else code)
        shown = f"{code}: {meaning}" if code in _REFUSALS else meaning
        return Unavailable.CREDENTIALS_REFUSED, f"credentials refused ({shown})"
    if code == "NoSuchBucket":
        return Unavailable.NO_SUCH_BUCKET, "no such bucket"
    if status >= 500:
        return Unavailable.UNREACHABLE, f"the endpoint fails (HTTP {status} {code})"
    if checking:
        return Unavailable.UNREACHABLE, f"the endpoint does not answer as S3 does (HTTP {status or code})"
    return None


class S3ObjectStore:
    """An ``ObjectStore`` on one S3 bucket, optionally under a key prefix.

    Clients upload and download through pre-signed SigV4 URLs, so the credentials given here
    never leave the server. ``addressing_style="path"`` is the default because S3-compatible
    servers on a bare host:port (no wildcard DNS) only support path-style URLs.
    """

    def __init__(
        self,
        info: StorageBackendInfo,
        *,
        bucket: str,
        endpoint_url: str | None = None,
        region: str = "us-east-1",
        access_key: str | None = None,
        secret_key: str | None = None,
        prefix: str = "",
        addressing_style: str = "path",
        create_bucket: bool = False,
    ) -> None:
        self.info = info
        self.bucket = bucket
        self.prefix = prefix
        self.endpoint_url = endpoint_url
        self.region = region
        config = Config(
            signature_version="s3v4",
            s3={"addressing_style": addressing_style},
            retries={"max_attempts": 5, "mode": "standard"},
            # head() runs _HEAD_WORKERS requests at once; the default pool (10) would serialise them.
            max_pool_connections=_HEAD_WORKERS * 2,
        )
        self._client: Any = boto3.client(
            "s3",
            endpoint_url=endpoint_url,
            region_name=region,
            aws_access_key_id=access_key,
            aws_secret_access_key=secret_key,
            config=config,
        )
        self._check_client: Any = boto3.client(
            "s3",
            endpoint_url=endpoint_url,
            region_name=region,
            aws_access_key_id=access_key,
            aws_secret_access_key=secret_key,
            config=config.merge(Config(**_CHECK_CONFIG)),
        )
        #: where this store is, as messages name it (never a credential)
        self.where = f"S3 bucket {bucket} at {_shown(endpoint_url) if endpoint_url else 'the AWS default endpoint'}"
        logger.info(
            "S3 object store %s: bucket %s prefix %r at %s",
            info.label,
            bucket,
            prefix,
            endpoint_url or "the AWS default endpoint",
        )
        self._recent_get_urls = RecentUrls(self._presign_get, slow=True)  # botocore: about 100 µs a URL
        if create_bucket:
            self._ensure_bucket()

    def _ensure_bucket(self) -> None:
        try:
            self.check()
            return
        except ObjectStorageUnavailable as exc:
            if exc.cause != Unavailable.NO_SUCH_BUCKET:
                raise
        params: dict[str, Any] = {"Bucket": self.bucket}
        if self.region != "us-east-1":
            params["CreateBucketConfiguration"] = {"LocationConstraint": self.region}
        try:
            self._check_client.create_bucket(**params)
            logger.info("created S3 bucket %s", self.bucket)
        except (ClientError, BotoCoreError) as exc:
            if isinstance(exc, ClientError) and _error_code(exc) == "BucketAlreadyOwnedByYou":
                return
            raise self._failure(exc, "creating the bucket", checking=True) from exc

    def check(self) -> str:
        """List at most one key of the bucket (under the prefix), once, with short timeouts: a missing bucket,
        refused or missing credentials, an endpoint that does not answer or is not S3 are each an
        :class:`ObjectStorageUnavailable` naming the cause."""
        try:
            self._check_client.list_objects_v2(Bucket=self.bucket, MaxKeys=1, Prefix=self.prefix)
        except (ClientError, BotoCoreError, ResponseParserError) as exc:
            raise self._failure(exc, "listing the bucket", checking=True) from exc
        return f"{self.where} answers"

    def _failure(self, exc: BaseException, doing: str, *, checking: bool = False) -> StorageError:
        """``exc`` as this store's error: :class:`ObjectStorageUnavailable` when the storage cannot serve at all
        (:func:`unavailable`), else a :class:`StorageError` of this one operation."""
        found = unavailable(exc, checking=checking)
        if found is not None:
            return ObjectStorageUnavailable(self.where, *found)
        return StorageError(f"{doing} failed: {exc}")

    def _full_key(self, key: str) -> str:
        if not key:
            raise ValueError("an object key must not be empty")
        return self.prefix + key

    def put_url(self, key: str, content_type: str, expires_s: int) -> PutUrl:
        try:
            url = self._client.generate_presigned_url(
                "put_object",
                Params={"Bucket": self.bucket, "Key": self._full_key(key), "ContentType": content_type},
                ExpiresIn=expires_s,
            )
        except BotoCoreError as exc:  # no credentials to sign with
            raise self._failure(exc, f"signing a PUT URL for {key!r}") from exc
        # Content-Type is a signed header in the URL, so the client must send exactly this value.
        return PutUrl(url=url, content_type=content_type, headers={"Content-Type": content_type})

    def get_url(self, key: str, expires_s: int) -> str:
        return self._recent_get_urls(key, expires_s)

    def playable_url(self, url: str, extension: str) -> str:
        return url  # the path is the key: an object stored under a bare key keeps a bare URL

    def _presign_get(self, key: str, expires_s: int) -> str:
        try:
            url = self._client.generate_presigned_url(
                "get_object", Params={"Bucket": self.bucket, "Key": self._full_key(key)}, ExpiresIn=expires_s
            )
        except BotoCoreError as exc:  # no credentials to sign with
            raise self._failure(exc, f"signing a GET URL for {key!r}") from exc
        return cast(str, url)

    def _head_one(self, key: str) -> int | None:
        try:
            response = self._client.head_object(Bucket=self.bucket, Key=self._full_key(key))
        except ClientError as exc:
            if _error_code(exc) in _MISSING_CODES:
                return None
            raise self._failure(exc, f"HEAD {key!r}") from exc
        except BotoCoreError as exc:
            raise self._failure(exc, f"HEAD {key!r}") from exc
        return int(response["ContentLength"])

    def head(self, keys: Sequence[str]) -> dict[str, int | None]:
        # Keys are arbitrary, so one prefix listing cannot answer this; parallel HEADs can.
        unique = list(dict.fromkeys(keys))
        if len(unique) <= 1:
            return {key: self._head_one(key) for key in unique}
        with ThreadPoolExecutor(max_workers=min(_HEAD_WORKERS, len(unique))) as pool:
            sizes = list(pool.map(self._head_one, unique))
        return dict(zip(unique, sizes, strict=True))

    def put_bytes(self, key: str, data: bytes, content_type: str) -> None:
        try:
            self._client.put_object(Bucket=self.bucket, Key=self._full_key(key), Body=data, ContentType=content_type)
        except (ClientError, BotoCoreError) as exc:
            raise self._failure(exc, f"PUT {key!r}") from exc

    def open_read(self, key: str) -> ObjectStream:
        try:
            response = self._client.get_object(Bucket=self.bucket, Key=self._full_key(key))
        except ClientError as exc:
            if _error_code(exc) in _MISSING_CODES:
                raise KeyError(key) from exc
            raise self._failure(exc, f"GET {key!r}") from exc
        except BotoCoreError as exc:
            raise self._failure(exc, f"GET {key!r}") from exc
        return ObjectStream(
            body=cast(BinaryIO, response["Body"]),
            size=int(response["ContentLength"]),
            content_type=str(response.get("ContentType") or "application/octet-stream"),
        )

    def get_bytes(self, key: str) -> bytes:
        with self.open_read(key) as stream:
            return stream.body.read()

    def delete(self, keys: Sequence[str]) -> None:
        unique = list(dict.fromkeys(keys))
        for start in range(0, len(unique), _DELETE_BATCH):
            batch = unique[start : start + _DELETE_BATCH]
            try:
                response = self._client.delete_objects(
                    Bucket=self.bucket,
                    Delete={"Objects": [{"Key": self._full_key(k)} for k in batch], "Quiet": True},
                )
            except (ClientError, BotoCoreError) as exc:
                raise self._failure(exc, f"deleting {len(batch)} objects") from exc
            errors = [e for e in response.get("Errors", []) if e.get("Code") not in _MISSING_CODES]
            if errors:
                raise StorageError(f"deleting {len(errors)} of {len(batch)} objects failed: {errors[:5]}")

    def copy_from(self, source: ReadableStore, key: str) -> None:
        with source.open_read(key) as stream:
            try:
                # upload_fileobj switches to multipart above the threshold, so large objects are
                # streamed through in parts rather than held in memory.
                self._client.upload_fileobj(
                    stream.body,
                    self.bucket,
                    self._full_key(key),
                    ExtraArgs={"ContentType": stream.content_type},
                    Config=TransferConfig(multipart_threshold=64 * 1024 * 1024, use_threads=False),
                )
            except (ClientError, BotoCoreError) as exc:
                raise self._failure(exc, f"copying {key!r} into bucket {self.bucket}") from exc
            except S3UploadFailedError as exc:
                cause = exc.__context__ if isinstance(exc.__context__, ClientError | BotoCoreError) else exc
                raise self._failure(cause, f"copying {key!r} into bucket {self.bucket}") from exc
        logger.debug("copied %s into %s", key, self.info.label)
