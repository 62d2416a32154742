"""Operations: health and readiness probes, Prometheus metrics, request ids and JSON logs, tracing.

:func:`.assembly.install` adds them to an app: the request middleware (:mod:`.middleware`), the ``/health``,
``/ready`` and ``/metrics`` routes (:mod:`.routes`) and, with ``TAMS_OTEL=true``, OpenTelemetry (:mod:`.tracing`).
The metrics (:mod:`.metrics`) observe through the seams the server's assembly hands out
(:mod:`server.services`): the engine stack's statement timings, the catalog's operations, the segment writer's
batches, and a scrape-time collector over the app's catalog. The package itself imports none of them: the
assembly (:mod:`server.services`) imports the metrics, and the routes import the assembly.
"""
