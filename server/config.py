"""Server settings: one object, from options or ``TAMS_*`` environment variables, checked at startup."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from tams_analytics.cache import CacheConfig
from tams_analytics.storage.base import DEFAULT_STORAGE_ID


class Settings(BaseSettings):
    """Everything the server needs to know about its deployment.

    Defaults give the embedded single-machine run: a DuckDB file and local object storage under
    ``data_dir``. Secrets are ``SecretStr`` so they never show in reprs or logs.
    """

    model_config = SettingsConfigDict(env_prefix="TAMS_", env_file=None, extra="ignore")

    data_dir: Path = Path("./tams-data")
    #: catalog URL; default: ``duckdb:///<data_dir>/tams.duckdb``
    store: str | None = None
    #: externally visible base URL (for Link headers and local storage URLs); default from the request
    public_url: str | None = None

    storage: Literal["local", "s3"] = "local"
    storage_label: str = "default"
    storage_id: str = DEFAULT_STORAGE_ID
    s3_endpoint: str | None = None
    s3_bucket: str = "tams"
    s3_region: str = "us-east-1"
    s3_access_key: SecretStr | None = None
    s3_secret_key: SecretStr | None = None
    s3_prefix: str = ""
    s3_create_bucket: bool = False
    #: lifetime of presigned/signed GET and PUT URLs, seconds (>= 30, <= min_object_timeout)
    presign_get_s: int = Field(600, ge=30)
    presign_put_s: int = Field(600, ge=30)
    #: HMAC key for local storage URLs; random per process when unset
    local_signing_key: SecretStr = Field(default_factory=lambda: SecretStr(secrets.token_hex(32)))

    service_name: str = "tams-analytics"
    service_description: str = "TAMS 8.2 server on the tams-analytics query library"
    #: seconds an allocated object may stay unregistered, and an unreferenced one stays stored
    min_object_timeout_s: int = Field(600, ge=300)
    #: seconds between garbage collection passes over unreferenced objects
    gc_interval_s: float = Field(300, gt=0)

    #: the exact in-process read cache of segment timelines and object instances (engines that are
    #: their store's sole writer, e.g. DuckDB): segment rows over all flows (0: off), the longest flow
    #: kept whole, and objects whose instances are kept; about 230 MB at most with the defaults
    read_cache_rows: int = Field(500_000, ge=0)
    read_cache_flow_rows: int = Field(250_000, ge=1)
    read_cache_objects: int = Field(100_000, ge=1)

    #: paging: default and maximum ``limit`` on every listing
    default_limit: int = Field(100, ge=1)
    max_limit: int = Field(1000, ge=1)
    #: segment DELETE / flow DELETE touching more segments than this answer 202 with a delete request
    delete_sync_max_segments: int = Field(10_000, ge=0)
    #: maximum request body in bytes, and maximum segments in one bulk POST
    max_body_bytes: int = Field(64 * 1024 * 1024, ge=1024)
    max_bulk_segments: int = Field(100_000, ge=1)
    #: HLS playlists (``/flows/{id}/playlist.m3u8``): the most segments a VOD playlist lists (longer ranges are
    #: cut), the segments in a live window, and how recent a flow's last segment must be for it to be live
    playlist_max_segments: int = Field(10_000, ge=1)
    playlist_live_segments: int = Field(6, ge=1)
    playlist_live_edge_s: float = Field(60, gt=0)

    auth: Literal["none", "basic", "bearer"] = "none"
    #: ``user:password`` pairs, comma separated, for basic auth
    basic_users: SecretStr | None = None
    #: accepted bearer / ``access_token`` tokens, comma separated
    bearer_tokens: SecretStr | None = None

    webhooks: bool = True
    #: allow webhook URLs on loopback/private addresses (tests, single-machine setups)
    webhooks_allow_private: bool = False
    webhook_timeout_s: float = 5.0
    webhook_max_attempts: int = Field(5, ge=1)
    webhook_retry_base_s: float = 0.5

    @model_validator(mode="after")
    def _check(self) -> Settings:
        if self.presign_get_s > self.min_object_timeout_s or self.presign_put_s > self.min_object_timeout_s:
            raise ValueError("presigned URL lifetimes must not exceed min_object_timeout_s")
        if self.default_limit > self.max_limit:
            raise ValueError("default_limit must not exceed max_limit")
        if self.auth == "basic" and not self.basic_users:
            raise ValueError("auth=basic needs TAMS_BASIC_USERS")
        if self.auth == "bearer" and not self.bearer_tokens:
            raise ValueError("auth=bearer needs TAMS_BEARER_TOKENS")
        if self.storage == "s3" and not self.s3_bucket:
            raise ValueError("storage=s3 needs TAMS_S3_BUCKET")
        return self

    def read_cache_config(self) -> CacheConfig:
        return CacheConfig(
            segment_rows=self.read_cache_rows, flow_rows=self.read_cache_flow_rows, objects=self.read_cache_objects
        )

    @property
    def store_url(self) -> str:
        return self.store or f"duckdb:///{(self.data_dir / 'tams.duckdb').resolve()}"
