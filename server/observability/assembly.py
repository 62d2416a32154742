"""How an app gets the server's operations (see :mod:`server.observability`): the probes' and metrics' routes, the
request middleware and tracing."""

from __future__ import annotations

from fastapi import FastAPI

from server.config import Settings
from server.observability import tracing
from server.observability.access import AccessLog
from server.observability.middleware import RequestObserver
from server.observability.routes import router

__all__ = ["install"]


def install(
    app: FastAPI, settings: Settings, *, observe_requests: bool = True, access_log: AccessLog | None = None
) -> None:
    """Add the probes, metrics and request ids (and tracing, when configured) to ``app``; call it last,
    so the request middleware is the outermost and sees every answer. Without ``observe_requests`` (the store
    process's app, which answers requests an HTTP process observed already) there is no request middleware. The
    middleware hands each answered request to ``access_log`` (``serve``'s, :mod:`.access`), when given."""
    app.include_router(router)
    tracing.instrument(app, settings.otel)
    if observe_requests:
        app.add_middleware(RequestObserver, access=access_log)
