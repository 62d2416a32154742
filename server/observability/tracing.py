"""Optional OpenTelemetry tracing (the ``otel`` extra), on with ``TAMS_OTEL=true``.

When the extra's packages are installed, the FastAPI app is instrumented (a span per request; ``/health``,
``/ready`` and ``/metrics`` excluded) and, unless the process already configured a tracer provider (e.g.
``opentelemetry-instrument``), spans go to an OTLP/HTTP exporter configured by the standard ``OTEL_*``
variables (``OTEL_EXPORTER_OTLP_ENDPOINT``, ``OTEL_SERVICE_NAME``, ...). Without the packages the server
runs untraced and says so once.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI

from tams_analytics.extras import install_hint

__all__ = ["instrument"]

logger = logging.getLogger(__name__)

EXCLUDED_URLS = "health,ready,metrics"


def instrument(app: FastAPI, enabled: bool) -> bool:
    """Trace ``app`` when ``enabled`` and the ``otel`` extra is installed; returns whether it is traced."""
    if not enabled:
        return False
    try:
        from opentelemetry import trace
        from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
    except ImportError as exc:
        logger.warning("TAMS_OTEL is on but OpenTelemetry is not installed (%s): %s", exc.name, install_hint("otel"))
        return False
    if type(trace.get_tracer_provider()).__name__ in ("ProxyTracerProvider", "NoOpTracerProvider"):
        _export_spans(trace)
    FastAPIInstrumentor.instrument_app(app, excluded_urls=EXCLUDED_URLS)
    logger.info("OpenTelemetry tracing on")
    return True


def _export_spans(trace: Any) -> None:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": "tams-analytics"}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
