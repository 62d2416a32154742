"""Operations: health and readiness probes, Prometheus metrics, request ids and JSON logs, tracing.

:func:`install` adds them to an app: the request middleware (:mod:`.middleware`), the ``/health``,
``/ready`` and ``/metrics`` routes (:mod:`.routes`), the app's scrape-time collector (:mod:`.metrics`)
and, with ``TAMS_OTEL=true``, OpenTelemetry (:mod:`.tracing`). :func:`instrument_catalog` times a
catalog's operations and statements (called when the app opens its catalog).
"""

from __future__ import annotations

import threading
from typing import Any

from server.observability import tracing
from server.observability.metrics import app_registry, instrument_catalog, observe_batch
from server.observability.middleware import RequestObserver
from server.observability.routes import router

__all__ = ["install", "instrument_catalog", "observe_batch"]


def install(app: Any) -> None:
    """Add the probes, metrics and request ids (and tracing, when configured) to ``app``; call it last,
    so the request middleware is the outermost and sees every answer."""
    settings = app.state.settings
    app.state.metrics_registry = app_registry(app)
    app.state.ready_probe = threading.Lock()
    app.include_router(router)
    tracing.instrument(app, settings.otel)
    app.add_middleware(RequestObserver)
