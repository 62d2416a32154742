"""Assembly of the TAMS server: the app, its routers and middleware; at start-up its services
(:func:`server.services.build_services`: the engine stack, the catalog, storage, events) and background workers."""

from __future__ import annotations

import contextlib
import gc as python_gc  # server.gc is the objects' garbage collection
import logging
import re
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import Depends, FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server import console, errors, gc, hot_routes, monitor, openapi, storage_watch
from server.auth import Authorizer, idp_watch
from server.config import Settings
from server.delete_requests import worker as delete_worker
from server.health import Health
from server.observability.access import AccessLog
from server.observability.assembly import install as install_observability
from server.routes import (
    backup,
    coverage,
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
from server.services import Services, Stop, build_services, services_of
from server.stores import Stores
from server.volumes import Stage
from server.webhooks import delivery
from tams_analytics import __version__
from tams_analytics.engines.base import Engine
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
    coverage.router,
    storage.router,
    objects.router,
    delete_requests.router,
)

#: background workers, each ``start(services) -> stop``
WORKERS = (monitor.start, storage_watch.start, idp_watch.start, delivery.start, delete_worker.start, gc.start)


def create_app(
    settings: Settings | None = None,
    *,
    engine: Engine | None = None,
    stores: Stores | None = None,
    workers: bool = True,
    owns_engine: bool = False,
    freeze_gc: bool = False,
    observe_requests: bool = True,
    access_log: AccessLog | None = None,
) -> FastAPI:
    """The FastAPI application. ``engine`` (the store's engine) and ``stores`` may be given (tests, ``serve``);
    else opened from ``settings`` when the app starts. A given engine is closed at shutdown only when
    ``owns_engine`` (so a SIGTERM to ``serve`` still checkpoints the store). With ``freeze_gc`` (a served app's,
    :attr:`Settings.gc_freeze`), the objects alive once it has started are frozen out of the garbage collector's
    full collections (:func:`freeze_startup_objects`). Without ``observe_requests`` (the store process's app:
    :mod:`server.processes`) requests are not counted in the metrics nor given ids here. ``access_log``: ``serve``'s
    access log (:mod:`server.observability.access`, started and closed by :class:`server.serving.Server`), which the
    request middleware feeds."""
    settings = settings or Settings()
    # the parts' condition: the authorizer reports the identity provider's, the services the others'
    health = Health()
    authorizer = Authorizer(settings, catalog_of=lambda request: services_of(request.app).catalog, health=health)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        services = build_services(settings, authorizer, engine=engine, stores=stores, health=health)
        app.state.services = services
        backup.remove_leftover_copies(settings.data_dir)  # a copy a server stopped mid-backup left
        stops: list[Stop] = [start(services) for start in WORKERS] if workers else []
        if freeze_gc:
            freeze_startup_objects()
        try:
            yield
        finally:
            for stop in reversed(stops):
                await stop()
            services.close(catalog=engine is None or owns_engine)

    app = FastAPI(
        title="TAMS (tams-analytics)",
        version="8.2",
        summary=f"Time-addressable Media Store API 8.2, served by tams-analytics {__version__}",
        lifespan=lifespan,
        docs_url=None,  # the offline API reference: server.openapi
        redoc_url=None,
        # tracing is server.observability.tracing's (TAMS_OTEL); FastAPI's own would add a second span to each
        # request, and with opentelemetry installed it looks up its providers on every request (5 % of the event
        # loop's time at 400 POSTs/s)
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    redact_access_logs()
    errors.install(app)
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    app.include_router(
        media.make_router(lambda: _local_store(services_of(app)), admit_upload=lambda: _admit_upload(services_of(app)))
    )
    for router in ROUTERS:
        app.include_router(router, dependencies=[Depends(authorizer)])
    hot_routes.install(app, authorizer)
    app.include_router(backup.router)  # outside the API: asks the API's credentials itself (and the admin scope)
    install_observability(app, settings, observe_requests=observe_requests, access_log=access_log)
    openapi.install(app)
    console.install(app)
    return app


def freeze_startup_objects() -> None:
    """Collect garbage once, then move every object alive into the garbage collector's permanent generation
    (``gc.freeze``): a full collection then traverses only the objects made since, not the imports' and the
    caches' (see :attr:`Settings.gc_freeze`). Objects frozen are still freed when their references go; only a
    reference cycle among them would stay."""
    started = time.perf_counter()
    python_gc.collect()
    python_gc.freeze()
    logger.info("gc: %s objects frozen in %.2f s", python_gc.get_freeze_count(), time.perf_counter() - started)


def _local_store(services: Services) -> LocalObjectStore:
    local = services.stores.local()
    if local is None:
        raise errors.not_found("this server has no local object storage")
    return local


def _admit_upload(services: Services) -> None:
    """Uploads to local storage stop at the high watermark (:mod:`server.volumes`): they fill a volume fastest."""
    if services.volumes is not None:
        services.volumes.admit(Stage.HIGH, "an upload to local storage")


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


class BodyLimit:
    """Refuse request bodies over ``max_bytes`` with 413 (by Content-Length, and while streaming)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith("/_media"):
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length" and value.isdigit() and int(value) > self.max_bytes:
                await _send_error(send, 413, f"request body over {self.max_bytes} bytes")
                return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise errors.ApiError(413, f"request body over {self.max_bytes} bytes")
            return message

        await self.app(scope, limited, send)


async def _send_error(send: Any, status: int, summary: str) -> None:
    import json

    body = json.dumps(errors.error_body(errors.error_type(status), summary)).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})
