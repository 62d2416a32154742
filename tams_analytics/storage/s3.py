"""S3 (or S3-compatible: SeaweedFS, MinIO, ...) media object storage via boto3."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, BinaryIO, cast

import boto3
from boto3.exceptions import S3UploadFailedError
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from tams_analytics.storage.base import (
    ObjectStream,
    PutUrl,
    ReadableStore,
    RecentUrls,
    StorageBackendInfo,
    StorageError,
)

logger = logging.getLogger(__name__)

_HEAD_WORKERS = 16
_DELETE_BATCH = 1000  # the S3 DeleteObjects limit
_MISSING_CODES = frozenset({"404", "NoSuchKey", "NotFound"})
_MISSING_BUCKET_CODES = frozenset({"404", "NoSuchBucket", "NotFound"})


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


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
            self._client.head_bucket(Bucket=self.bucket)
            return
        except ClientError as exc:
            if _error_code(exc) not in _MISSING_BUCKET_CODES:
                raise StorageError(f"cannot check bucket {self.bucket}: {exc}") from exc
        params: dict[str, Any] = {"Bucket": self.bucket}
        if self.region != "us-east-1":
            params["CreateBucketConfiguration"] = {"LocationConstraint": self.region}
        try:
            self._client.create_bucket(**params)
            logger.info("created S3 bucket %s", self.bucket)
        except ClientError as exc:
            if _error_code(exc) != "BucketAlreadyOwnedByYou":
                raise StorageError(f"cannot create bucket {self.bucket}: {exc}") from exc

    def _full_key(self, key: str) -> str:
        if not key:
            raise ValueError("an object key must not be empty")
        return self.prefix + key

    def put_url(self, key: str, content_type: str, expires_s: int) -> PutUrl:
        url = self._client.generate_presigned_url(
            "put_object",
            Params={"Bucket": self.bucket, "Key": self._full_key(key), "ContentType": content_type},
            ExpiresIn=expires_s,
        )
        # Content-Type is a signed header in the URL, so the client must send exactly this value.
        return PutUrl(url=url, content_type=content_type, headers={"Content-Type": content_type})

    def get_url(self, key: str, expires_s: int) -> str:
        return self._recent_get_urls(key, expires_s)

    def playable_url(self, url: str, extension: str) -> str:
        return url  # the path is the key: an object stored under a bare key keeps a bare URL

    def _presign_get(self, key: str, expires_s: int) -> str:
        return cast(
            str,
            self._client.generate_presigned_url(
                "get_object",
                Params={"Bucket": self.bucket, "Key": self._full_key(key)},
                ExpiresIn=expires_s,
            ),
        )

    def _head_one(self, key: str) -> int | None:
        try:
            response = self._client.head_object(Bucket=self.bucket, Key=self._full_key(key))
        except ClientError as exc:
            if _error_code(exc) in _MISSING_CODES:
                return None
            raise StorageError(f"HEAD {key!r} failed: {exc}") from exc
        except BotoCoreError as exc:
            raise StorageError(f"HEAD {key!r} failed: {exc}") from exc
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
            raise StorageError(f"PUT {key!r} failed: {exc}") from exc

    def open_read(self, key: str) -> ObjectStream:
        try:
            response = self._client.get_object(Bucket=self.bucket, Key=self._full_key(key))
        except ClientError as exc:
            if _error_code(exc) in _MISSING_CODES:
                raise KeyError(key) from exc
            raise StorageError(f"GET {key!r} failed: {exc}") from exc
        except BotoCoreError as exc:
            raise StorageError(f"GET {key!r} failed: {exc}") from exc
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
                raise StorageError(f"deleting {len(batch)} objects failed: {exc}") from exc
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
            except (ClientError, BotoCoreError, S3UploadFailedError) as exc:
                raise StorageError(f"copying {key!r} into bucket {self.bucket} failed: {exc}") from exc
        logger.debug("copied %s into %s", key, self.info.label)
