"""Assembly of the TAMS server: settings, catalog, storage, routers, background workers."""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import AsyncIterator
from typing import Any

from fastapi import Depends, FastAPI

from server import errors, observability, openapi
from server.auth import Authorizer
from server.background import deletes, events, gc
from server.config import Settings
from server.deps import Stores
from server.leases import Leases, replica_name
from server.routes import (
    delete_requests,
    flows,
    media,
    objects,
    playlists,
    root,
    segments,
    service,
    sources,
    storage,
    webhooks,
)
from server.webhooks import outbox, publish
from server.webhooks import records as webhook_records
from server.webhooks.events import EventBus
from tams_analytics import __version__
from tams_analytics.catalog import Catalog, connect
from tams_analytics.storage.base import StorageBackendInfo
from tams_analytics.storage.keys import SigningKeys
from tams_analytics.storage.local import LocalObjectStore

logger = logging.getLogger(__name__)

#: the API's routers, in matching order: a request is tried against every route before its own
#: (microseconds each), so the hottest, segment pages, come first (no two routers' paths overlap: the
#: order never changes which route answers)
ROUTERS = (
    segments.router,
    root.router,
    service.router,
    webhooks.router,
    sources.router,
    flows.router,
    playlists.router,
    storage.router,
    objects.router,
    delete_requests.router,
)

#: background workers, each ``start(app) -> stop callable``
WORKERS = (events.start, deletes.start, gc.start)


def build_stores(settings: Settings) -> Stores:
    """The storage backends of this deployment (one, the default)."""
    if settings.storage == "s3":
        from tams_analytics.storage.s3 import S3ObjectStore  # boto3 only where S3 is used

        info = StorageBackendInfo(
            id=settings.storage_id,
            label=settings.storage_label,
            provider="S3-compatible",
            store_product="S3",
            region=settings.s3_region,
            default_storage=True,
        )
        store: Any = S3ObjectStore(
            info,
            bucket=settings.s3_bucket,
            endpoint_url=settings.s3_endpoint,
            region=settings.s3_region,
            access_key=settings.s3_access_key.get_secret_value() if settings.s3_access_key else None,
            secret_key=settings.s3_secret_key.get_secret_value() if settings.s3_secret_key else None,
            prefix=settings.s3_prefix,
            create_bucket=settings.s3_create_bucket,
        )
    else:
        if settings.local_signing_key is not None:
            keys = SigningKeys.fixed(settings.local_signing_key.get_secret_value().encode())
        else:
            keys = SigningKeys.in_dir(settings.data_dir, grace_s=settings.url_lifetime_s)
        info = StorageBackendInfo(
            id=settings.storage_id,
            label=settings.storage_label,
            provider="tams-analytics",
            store_product="local files",
            default_storage=True,
        )
        store = LocalObjectStore(
            info, root=settings.data_dir / "objects", base_url=settings.public_url or "", keys=keys
        )
    return Stores([store])


def create_app(
    settings: Settings | None = None,
    *,
    catalog: Catalog | None = None,
    stores: Stores | None = None,
    workers: bool = True,
    owns_catalog: bool = False,
) -> FastAPI:
    """The FastAPI application. ``catalog``/``stores`` may be given (tests, ``serve``); else built from
    ``settings``. A given catalog is closed at shutdown only when ``owns_catalog`` (so a SIGTERM to
    ``serve`` still checkpoints the store)."""
    settings = settings or Settings()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        app.state.catalog = catalog or connect(settings.store_url, create=True)
        app.state.catalog.retry_policy = settings.retry_policy()
        sole = app.state.catalog.engine.capabilities.sole_writer
        holder = settings.replica_id or replica_name()
        app.state.leases = Leases(app.state.catalog, holder, settings.lease_s, sole_writer=sole)
        wire_events(app)
        observability.instrument_catalog(app.state.catalog)
        app.state.catalog.group_commit.on_batch = observability.observe_batch
        if settings.read_cache_rows and app.state.catalog.cache_reads(settings.read_cache_config()):
            logger.info(
                "read cache on: up to %s segment rows, %s objects",
                settings.read_cache_rows,
                settings.read_cache_objects,
            )
        app.state.stores = stores or build_stores(settings)
        for store in app.state.stores:
            app.state.catalog.register_storage_backend(store.info.to_json() | {"tags": store.info.tags})
        stops = []
        if workers:
            stops.extend(start(app) for start in WORKERS)
        try:
            yield
        finally:
            for stop in reversed(stops):
                await stop()
            if catalog is None or owns_catalog:
                app.state.catalog.close()

    auth = Authorizer(settings)

    app = FastAPI(
        title="TAMS (tams-analytics)",
        version="8.2",
        summary=f"Time-addressable Media Store API 8.2, served by tams-analytics {__version__}",
        lifespan=lifespan,
        docs_url=None,  # the offline API reference: server.openapi
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.authorizer = auth
    app.state.events = EventBus(enabled=settings.webhooks)
    redact_access_logs()
    errors.install(app)
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    app.include_router(media.make_router(lambda: _local_store(app)))
    for router in ROUTERS:
        app.include_router(router, dependencies=[Depends(auth)])
    observability.install(app)
    openapi.install(app)
    return app


def wire_events(app: FastAPI) -> None:
    """Webhook events go to the store's outbox: routed to the active webhooks (their filters, and their
    owners' access with auth classes on), segment registrations' in their batch's transaction."""
    bus: EventBus = app.state.events
    catalog: Catalog = app.state.catalog
    auth_classes = app.state.settings.auth_classes
    bus.webhooks = lambda: webhook_records.active_webhooks(catalog)
    bus.accepts = lambda webhook, event: outbox.accepts(webhook, event, auth_classes=auth_classes)
    bus.sink = lambda routed: outbox.write(catalog, routed)
    if bus.enabled:
        catalog.on_segments_stored = publish.segments_added(app)


class RedactAccessTokens(logging.Filter):
    """Hide ``access_token`` query values (bearer tokens, the spec's url_token_auth) in access logs.

    uvicorn's access log prints every request line, query string included.
    """

    _TOKEN = re.compile(r"((?:^|[?&])access_token=)[^&\s]*")

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and any(isinstance(a, str) and "access_token=" in a for a in record.args):
            record.args = tuple(self._TOKEN.sub(r"\1[redacted]", a) if isinstance(a, str) else a for a in record.args)
        return True


def redact_access_logs() -> None:
    """Install :class:`RedactAccessTokens` on uvicorn's access logger (once)."""
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, RedactAccessTokens) for f in access.filters):
        access.addFilter(RedactAccessTokens())


def _local_store(app: FastAPI) -> LocalObjectStore:
    for store in app.state.stores:
        if isinstance(store, LocalObjectStore):
            return store
    raise errors.not_found("this server has no local object storage")


class BodyLimit:
    """Refuse request bodies over ``max_bytes`` with 413 (by Content-Length, and while streaming)."""

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"].startswith("/_media"):
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length" and value.isdigit() and int(value) > self.max_bytes:
                await _send_error(send, 413, f"request body over {self.max_bytes} bytes")
                return
        seen = 0

        async def limited() -> Any:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise errors.ApiError(413, f"request body over {self.max_bytes} bytes", "PayloadTooLarge")
            return message

        await self.app(scope, limited, send)


async def _send_error(send: Any, status: int, summary: str) -> None:
    import json

    body = json.dumps(errors.error_body("PayloadTooLarge", summary)).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})
