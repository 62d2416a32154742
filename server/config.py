"""Server settings: one object, from options or ``TAMS_*`` environment variables, checked at startup."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from server.volumes import Watermark, parse_watermark
from tams_analytics.cache import CacheConfig
from tams_analytics.catalog.conflicts import RetryPolicy
from tams_analytics.catalog.object_deletions import DEFAULT_GRACE_S
from tams_analytics.storage.base import DEFAULT_STORAGE_ID

#: JWT signature algorithms with a public verification key (``none`` and ``HS*`` are never accepted)
ASYMMETRIC_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")


class Settings(BaseSettings):
    """Everything the server needs to know about its deployment.

    Defaults give the embedded single-machine run: a DuckDB file and local object storage under
    ``data_dir``. Secrets are ``SecretStr`` so they never show in reprs or logs.
    """

    model_config = SettingsConfigDict(env_prefix="TAMS_", env_file=None, extra="ignore")

    data_dir: Path = Path("./tams-data")
    #: catalog URL; default: ``duckdb:///<absolute data_dir>/tams.duckdb``
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
    #: HMAC key for local storage URLs; when unset, keys generated once into ``<data_dir>/signing-keys.json``
    #: (kept across restarts, rotated with ``serve --rotate-signing-key`` or ``tams-analytics keys rotate``)
    local_signing_key: SecretStr | None = None

    service_name: str = "tams-analytics"
    service_description: str = "TAMS 8.2 server on the tams-analytics query library"
    #: seconds an allocated object may stay unregistered, and an unreferenced one stays stored
    min_object_timeout_s: int = Field(600, ge=300)
    #: seconds between garbage collection passes over unreferenced objects
    gc_interval_s: float = Field(300, gt=0)
    #: seconds the stored bytes of an object the catalog forgot (collected, or an instance removed) are kept
    #: before they are deleted (a week; 0: at the next pass). Keep it at least as long as the store's backups are
    #: kept: a store restored from a backup taken within the grace finds every object's bytes. Another promise than
    #: ``min_object_timeout_s`` (how long an object nothing references stays in the catalog)
    object_grace_s: int = Field(DEFAULT_GRACE_S, ge=0)
    #: seconds between light checks that object storage answers (a one-key listing of the S3 bucket, a file
    #: written in the local folder): ``/ready`` and storage allocations say so while it does not
    storage_probe_s: float = Field(10, gt=0)

    #: the exact in-process read cache of segment timelines and object instances (engines that are
    #: their store's sole writer, e.g. DuckDB): segment rows over all flows (0: off), the longest flow
    #: kept whole, and objects whose instances are kept; about 230 MB of rows at most with the defaults (and Arrow's
    #: bookkeeping besides: see the operators' page)
    read_cache_rows: int = Field(500_000, ge=0)
    read_cache_flow_rows: int = Field(250_000, ge=1)
    read_cache_objects: int = Field(100_000, ge=1)
    #: segments kept as bounds only (16 bytes each), over flows longer than ``read_cache_flow_rows`` and the flows
    #: registrations check (every live flow of an archive: 1,600 flows of 20,000 segments and their tails take 37 M)
    read_cache_bound_segments: int = Field(48_000_000, ge=0)
    #: rows of its newest segments a bounds-only flow keeps (the live edge's pages)
    read_cache_tail_rows: int = Field(128, ge=0)

    #: rendered segment pages kept, in MiB, and answered again while nothing they show has changed (the flow's
    #: segments, its objects' instances, the URLs' reuse window: ``server.page_cache``); needs the read cache
    #: (0: off)
    page_cache_mb: int = Field(32, ge=0)
    #: how long a thread may hold Python's GIL while another waits for it (``sys.setswitchinterval``), in
    #: ms. The group commit's writer hands the GIL back after every store statement (DuckDB releases it) and
    #: must win it back from the request thread: at Python's default (5 ms) that wait dominates a batch
    switch_interval_ms: float = Field(0.1, gt=0, le=100)
    #: DuckDB's threads for a DuckDB store (other engines ignore it; 0: DuckDB's default, one per core). One by
    #: default: the server's statements are small (a registration's inserts, a page's window), and each one
    #: on more threads pays for waking DuckDB's workers (measured under open-loop live ingest on 2 cores: a
    #: batch 7.7 -> 6.6 ms, 800 POSTs/s held against 600; a cold page 1.54 -> 1.33 ms; benchmarks/README.md)
    duckdb_threads: int = Field(1, ge=0)
    #: acknowledge POSTed segments once they are synced in the DuckDB store's journal, and apply them to the store
    #: behind (tams_analytics.journal): a registration never waits for the store's checkpoints or commits; reads
    #: still show every acknowledged write. Off: each batch is acknowledged when its DuckDB commit returns, and waits
    #: for any checkpoint under way (side by side on 2026-11-28, 400 POSTs/s for 5 min, POST p99 on a young store
    #: 123 ms with it and 2.9 s without, on an 8M store 78 and 104 ms: benchmarks/README.md)
    journal: bool = True
    #: the room, in MiB, the journal keeps on the store's volume for applying what it acknowledged when the volume
    #: fills (and for a restart on a full volume): released then, made again once there is room (at most a fifth of
    #: the volume; 0: none, and reads of flows whose writes wait on a full volume are refused until space returns)
    journal_reserve_mb: float = Field(64, ge=0)
    #: the size the DuckDB store's WAL may reach, in MiB, before the journal's applier checkpoints the store (off every
    #: write's path). Larger: rarer checkpoints and a longer replay after a crash. With the journal off, DuckDB
    #: checkpoints at its own 16 MiB, in the commit that passes it
    checkpoint_wal_mb: float = Field(16, gt=0)
    #: more of DuckDB's own settings for a DuckDB store, as JSON (e.g. ``{"memory_limit": "4GB"}``: DuckDB's
    #: configuration page lists them)
    duckdb_config: dict[str, str | int | float | bool] = Field(default_factory=dict)
    #: how long the group commit's writer, under load, waits for more POSTed segments before it registers the
    #: batch, in µs (0: never, a batch is then what queued while the one before committed). At live ingest's rates a
    #: batch then holds more POSTs for the same fixed cost: 1 ms took the store process from 97 % to 86 % of a core at
    #: 800 POSTs/s and from 95 % to 82 % at 400/s (benchmarks/README.md, 2026-11-29); 2 and 3 ms cost more latency
    #: than they saved (2026-11-30, late night). A POST after a quiet spell is registered at once
    #: (:class:`~tams_analytics.catalog.group_commit.GroupCommit`)
    group_commit_linger_us: int = Field(1000, ge=0, le=100_000)
    #: the most POSTs the group commit's writer registers in one batch. What a stall (the host's, a checkpoint's)
    #: leaves queued is registered in batches of at most this many, so the POSTs that waited longest are answered
    #: once their share is registered rather than once the whole backlog is; each batch costs its fixed share again
    group_commit_max_batch: int = Field(256, ge=1, le=4096)
    #: at startup, before answering, the read cache loads the timelines (bounds and tail), rows and delete requests
    #: of the flows whose segments changed within this many seconds of the store's newest change (the live ones when
    #: it stopped, however long it was down), in a few statements for all of them:
    #: recorders resuming after a restart find them in memory instead of queueing their loads on the writer thread
    #: (0: none)
    preload_live_s: float = Field(600, ge=0)
    #: HTTP processes in front of the store process (:mod:`server.processes`): the store's writer, its read cache
    #: and the background workers run in a process of their own, parsing, validation, authentication and rendering
    #: in these, so they no longer share one GIL. -1: one per core beyond the first (at least 1, at most 8); 0: one
    #: process does everything (as before). Only for a store this process is the sole writer of (DuckDB); other
    #: stores run in one process (run several replicas instead)
    http_processes: int = Field(-1, ge=-1, le=64)
    #: uvicorn's event loop and HTTP/1.1 parser; ``auto`` takes uvloop and httptools (both installed with the
    #: server): measured under open-loop live ingest, they cut the HTTP layer's own cost per request
    uvicorn_loop: Literal["auto", "asyncio", "uvloop"] = "auto"
    uvicorn_http: Literal["auto", "h11", "httptools"] = "auto"
    #: ``serve``: once started (services built, live flows preloaded), each process (the store process and every
    #: HTTP process) collects garbage once and freezes every object alive then (the imports' and the preload's,
    #: about 200,000) out of the garbage collector's sight (``gc.freeze``): each full collection traversed them all,
    #: 110-200 ms with every request of that process waiting, every few seconds under live ingest; afterwards it
    #: traverses only what is new
    gc_freeze: bool = True
    #: ``serve``: the garbage collector's first threshold in each process (``gc.set_threshold``; Python's is 700): a
    #: young collection comes once this many more objects the collector follows were made than freed. At Python's
    #: value, under live ingest at 800 POSTs/s, the store process made about 10 collections a second and the HTTP
    #: process 16 (8 s in 5 minutes between them); at 20,000, 18 and 2 in those 5 minutes (0.4 s)
    gc_young_threshold: int = Field(20_000, ge=1, le=1_000_000)

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

    #: ``jwt``: OAuth2 JWTs from an identity provider (production); ``basic``/``bearer``: static
    #: credentials for single-machine use (all scopes, no auth classes)
    auth: Literal["none", "basic", "bearer", "jwt"] = "none"
    #: ``user:password`` pairs, comma separated, for basic auth
    basic_users: SecretStr | None = None
    #: accepted bearer / ``access_token`` tokens, comma separated
    bearer_tokens: SecretStr | None = None
    #: the identity provider's issuer URL (checked against ``iss``; its OpenID discovery document
    #: names the JWKS unless ``jwt_jwks_url`` is given) and the audience this service is (``aud``)
    jwt_issuer: str | None = None
    jwt_jwks_url: str | None = None
    jwt_audience: str | None = None
    #: accepted signature algorithms, comma separated (asymmetric only: never ``none`` nor HMAC)
    jwt_algorithms: str = "RS256,RS384,RS512,PS256,PS384,PS512,ES256,ES384,ES512,EdDSA"
    #: clock skew allowed on ``exp``/``nbf``/``iat``, seconds
    jwt_leeway_s: float = Field(30, ge=0, le=300)
    #: the JWKS is fetched again after this long, and at most once per ``jwt_jwks_min_refresh_s`` when a
    #: token names an unknown key (rotation needs no restart; a flood of made-up key ids costs one fetch)
    jwt_jwks_ttl_s: float = Field(3600, gt=0)
    jwt_jwks_min_refresh_s: float = Field(30, ge=0)
    jwt_http_timeout_s: float = Field(5, gt=0)
    #: the claim listing the caller's groups (matched against ``auth_classes`` tags)
    jwt_groups_claim: str = "groups"
    #: the prefix of the AppNote 0016 scopes: ``<prefix>read``, ``write``, ``delete``, ``admin``
    jwt_scope_prefix: str = "tams-api/"
    #: per-content permissions from ``auth_classes`` tags (AppNote 0016), with ``auth=jwt``
    auth_classes: bool = False

    webhooks: bool = True
    #: allow webhook URLs on loopback/private addresses (tests, single-machine setups)
    webhooks_allow_private: bool = False
    webhook_timeout_s: float = 5.0
    #: attempts to deliver one event before the webhook goes to ``error`` (the outbox keeps them across
    #: restarts; with the default back-off, 10 attempts span about three minutes)
    webhook_max_attempts: int = Field(10, ge=1)
    webhook_retry_base_s: float = 0.5

    #: several replicas on one shared store (VAST): a write refused because another replica wrote the same
    #: rows first is tried again after jittered pauses growing from ``write_retry_base_s`` up to
    #: ``write_retry_max_s``, at least ``RetryPolicy.min_attempts`` (12) times and then until
    #: ``write_retry_deadline_s`` has passed since its first try (at most ``write_retry_attempts`` tries in all);
    #: then the request answers 503 with ``Retry-After``
    write_retry_attempts: int = Field(64, ge=1)
    write_retry_base_s: float = Field(0.005, ge=0)
    write_retry_max_s: float = Field(0.25, ge=0)
    write_retry_deadline_s: float = Field(10.0, gt=0)
    #: background work (flow delete requests, webhook deliveries, object collection) is claimed for this
    #: long and renewed while it runs: a replica that dies leaves its work to the others after at most this
    lease_s: float = Field(30, ge=1)
    #: this process's name in leases (default: host name, process id and a random suffix)
    replica_id: str | None = None
    #: seconds between looks for webhook events other replicas wrote, or whose retry is due
    webhook_poll_s: float = Field(1.0, gt=0)

    #: disk watermarks over the volumes of the store and of local object storage (``server.volumes``): each a share
    #: of the volume in use (``85%``) or the free space left (``500MiB``). Low: said; high: storage allocations for
    #: local storage and uploads to it refused (507); flood stage: every write refused (507), reads go on. The flood
    #: stage also keeps the headroom a DuckDB checkpoint needs. ``disk_watermarks=false`` turns them off
    disk_watermarks: bool = True
    disk_watermark_low: str = "85%"
    disk_watermark_high: str = "90%"
    disk_watermark_flood: str = "95%"
    #: seconds between the health monitor's looks at the volumes and the store (a failed store is recovered then)
    health_check_s: float = Field(1.0, gt=0)

    #: ``/metrics`` asks the API's credentials (``same``) or none (``none``); /health and /ready are open
    metrics_auth: Literal["same", "none"] = "same"
    #: seconds ``/ready`` waits for the store before answering 503
    ready_timeout_s: float = Field(2.0, gt=0)
    #: log lines as uvicorn's text (``text``) or one JSON object per line with the request id (``json``)
    log_format: Literal["text", "json"] = "text"
    #: the access log, a line per request written off the request path (:mod:`server.observability.access`): ``on``,
    #: ``off``, ``errors`` (answers of 400 or more) or ``sample:N`` (one request in N, and every error)
    access_log: str = Field("on", pattern=r"^(on|off|errors|sample:[1-9][0-9]*)$")
    #: OpenTelemetry tracing (needs the ``otel`` extra)
    otel: bool = False
    #: how much lower the CPU priority of a backup's copy is than the server's (``nice``, 0-19: the copy takes what
    #: the writer leaves; ``POST /_admin/backup``, :mod:`tams_analytics.backup.snapshot`)
    backup_nice: int = Field(10, ge=0, le=19)

    @model_validator(mode="after")
    def _check(self) -> Settings:
        # messages name the environment variables: serve prints them as they are
        for name in ("presign_get_s", "presign_put_s"):
            if getattr(self, name) > self.min_object_timeout_s:
                raise ValueError(
                    f"TAMS_{name.upper()} ({getattr(self, name)}) is above TAMS_MIN_OBJECT_TIMEOUT_S "
                    f"({self.min_object_timeout_s}): a URL must not outlive an unreferenced object"
                )
        if self.default_limit > self.max_limit:
            raise ValueError(f"TAMS_DEFAULT_LIMIT ({self.default_limit}) is above TAMS_MAX_LIMIT ({self.max_limit})")
        if self.auth == "basic" and not self.basic_users:
            raise ValueError("TAMS_AUTH=basic needs TAMS_BASIC_USERS")
        if self.auth == "bearer" and not self.bearer_tokens:
            raise ValueError("TAMS_AUTH=bearer needs TAMS_BEARER_TOKENS")
        if self.auth == "jwt" and not (self.jwt_issuer and self.jwt_audience):
            raise ValueError("TAMS_AUTH=jwt needs TAMS_JWT_ISSUER and TAMS_JWT_AUDIENCE (checked in every token)")
        if self.auth == "jwt":
            self.jwt_algorithm_list()  # refuses none and HMAC
        if self.auth_classes and self.auth != "jwt":
            raise ValueError("TAMS_AUTH_CLASSES needs TAMS_AUTH=jwt (groups come from the tokens)")
        if self.disk_watermarks:
            self.watermarks()  # each one readable, in order
        if self.storage == "s3" and not self.s3_bucket:
            raise ValueError("TAMS_STORAGE=s3 needs TAMS_S3_BUCKET")
        return self

    @property
    def url_lifetime_s(self) -> int:
        """The longest lifetime of a signed URL: how long a rotated-out signing key stays accepted."""
        return max(self.presign_get_s, self.presign_put_s)

    def jwt_algorithm_list(self) -> list[str]:
        """The accepted JWT algorithms; ValueError for ``none``, HMAC or unknown names."""
        algorithms = [a.strip() for a in self.jwt_algorithms.split(",") if a.strip()]
        refused = [a for a in algorithms if a not in ASYMMETRIC_ALGORITHMS]
        if refused or not algorithms:
            raise ValueError(
                f"TAMS_JWT_ALGORITHMS: {', '.join(refused) or 'nothing'} refused; "
                f"accepted are {', '.join(ASYMMETRIC_ALGORITHMS)} (never none, never HMAC with a public key)"
            )
        return algorithms

    def watermarks(self) -> tuple[Watermark, Watermark, Watermark]:
        """The low, high and flood-stage watermarks; ValueError naming a setting that is not one, or out of order."""
        marks = []
        for name in ("low", "high", "flood"):
            text = getattr(self, f"disk_watermark_{name}")
            try:
                marks.append(parse_watermark(text))
            except ValueError as exc:
                raise ValueError(f"TAMS_DISK_WATERMARK_{name.upper()}: {exc}") from None
        kinds = {m.used_fraction is None for m in marks}
        if len(kinds) == 1:  # comparable: all shares or all free spaces
            keys = [m.used_fraction if m.used_fraction is not None else -(m.free_bytes or 0) for m in marks]
            if keys != sorted(keys):
                raise ValueError(
                    "TAMS_DISK_WATERMARK_LOW, _HIGH and _FLOOD must be in order (low first): "
                    f"{self.disk_watermark_low}, {self.disk_watermark_high}, {self.disk_watermark_flood}"
                )
        low, high, flood = marks
        return low, high, flood

    def http_process_count(self) -> int:
        """How many HTTP processes to start (0: one process does everything)."""
        if self.http_processes >= 0:
            return self.http_processes
        return max(1, min(8, (os.cpu_count() or 2) - 1))

    def retry_policy(self) -> RetryPolicy:
        return RetryPolicy(
            attempts=self.write_retry_attempts,
            base_pause_s=self.write_retry_base_s,
            max_pause_s=self.write_retry_max_s,
            deadline_s=self.write_retry_deadline_s,
        )

    def read_cache_config(self) -> CacheConfig:
        return CacheConfig(
            segment_rows=self.read_cache_rows,
            flow_rows=self.read_cache_flow_rows,
            bound_segments=self.read_cache_bound_segments,
            objects=self.read_cache_objects,
            tail_rows=self.read_cache_tail_rows,
        )

    def store_options(self) -> dict[str, Any]:
        """What the store's engine is opened with besides its URL (``open_engine``): DuckDB's threads, journal,
        checkpoints and settings."""
        if not self.store_url.lower().startswith("duckdb:"):
            return {}
        options: dict[str, Any] = {
            "journal": self.journal,
            "checkpoint_wal_bytes": int(self.checkpoint_wal_mb * 2**20),
            "journal_reserve_bytes": int(self.journal_reserve_mb * 2**20),
            "duckdb_config": dict(self.duckdb_config),
        }
        return options | ({"threads": self.duckdb_threads} if self.duckdb_threads else {})

    @property
    def store_url(self) -> str:
        """``store``, or the DuckDB file in the data dir: ``duckdb:///`` and its absolute path (three slashes)."""
        return self.store or f"duckdb://{(self.data_dir / 'tams.duckdb').resolve().as_posix()}"
