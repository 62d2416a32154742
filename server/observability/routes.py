"""``/health``, ``/ready`` and ``/metrics``: what load balancers, orchestrators and Prometheus ask.

* ``/health``: the process lives (200, ``{"status": "ok"}``), always open: it says nothing else.
* ``/ready``: every part the server depends on is ready (:mod:`server.health`: the store, its volume, object
  storage, the identity provider) and the store answers a count on its smallest table within
  ``TAMS_READY_TIMEOUT_S``: 200 ``{"status": "ready", "writes": "yes", "checks": {part: condition}}`` (a part may
  be ready but not ``ok``: a volume at its flood stage serves reads and refuses writes, and ``writes`` says why);
  else 503 with ``error.json`` whose summary names each part that is not ready and why. Always open. A probe still
  waiting on the store makes the next ones answer 503 at once, so a hung store never piles up threads.
* ``/metrics``: Prometheus text; with ``TAMS_METRICS_AUTH=same`` (default) it asks the API's own
  credentials (none when ``TAMS_AUTH=none``), with ``none`` it is open.

None of them is part of the TAMS API, so none shows in ``/docs``.
"""

from __future__ import annotations

import asyncio
import logging
import threading

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from server.errors import error_response
from server.monitor import read_store, read_volumes
from server.observability.metrics import CONTENT_TYPE, render
from server.responses import json_response
from server.services import ServiceStarting, services_of
from server.volumes import FRESH_S
from tams_analytics import __version__
from tams_analytics.catalog import Catalog
from tams_analytics.exceptions import TamsError

__all__ = ["router"]

logger = logging.getLogger(__name__)

router = APIRouter(include_in_schema=False)

#: the table ``/ready`` counts: one row per service setting, a handful at most
READY_TABLE = "service"
#: states of a part in which the server is ready (it reads) but refuses writes: ``/ready`` says so under ``writes``
WRITES_REFUSED = frozenset({"flood_stage", "failed"})


@router.api_route("/health", methods=["GET", "HEAD"])
async def health(request: Request) -> Response:
    return json_response({"status": "ok", "version": __version__}, request=request)


def _count(catalog: Catalog, in_flight: threading.Lock) -> int:
    try:
        return int(catalog.count(READY_TABLE))
    finally:
        in_flight.release()


@router.api_route("/ready", methods=["GET", "HEAD"])
async def ready(request: Request) -> Response:
    head = request.method == "HEAD"
    try:
        services = services_of(request.app)
    except ServiceStarting as exc:
        return error_response(503, str(exc), head=head)
    read_volumes(services, fresh_s=FRESH_S)  # a volume filled since the monitor's last look is seen now
    await asyncio.to_thread(read_store, services)  # and a store that has refused writes since (may sync a reserve)
    unready = services.health.unready()
    if unready:
        summary = "; ".join(f"{c.part}: {c.summary}" for c in unready)
        return error_response(503, f"not ready: {summary}", head=head)
    in_flight = services.ready_probe  # held while a check waits on the store
    if not in_flight.acquire(blocking=False):
        summary = "the last readiness check is still waiting for the store"
        return error_response(503, summary, head=head)
    timeout = services.settings.ready_timeout_s
    try:
        await asyncio.wait_for(asyncio.to_thread(_count, services.catalog, in_flight), timeout)
    except TimeoutError:
        logger.warning("readiness: the store did not answer within %.1f s", timeout)
        return error_response(503, f"the store did not answer within {timeout:g} s", head=head)
    except Exception as exc:
        logger.warning("readiness: the store failed: %s: %s", type(exc).__name__, exc)
        why = str(exc) if isinstance(exc, TamsError) else type(exc).__name__
        return error_response(503, f"the store failed: {why}", head=head)
    conditions = services.health.conditions()
    checks = {str(part): c.to_json() for part, c in conditions.items()}
    refusing = [c for c in conditions.values() if c.state in WRITES_REFUSED]
    writable = "yes" if not refusing else "refused: " + "; ".join(f"{c.part}: {c.summary}" for c in refusing)
    return json_response({"status": "ready", "writes": writable, "checks": checks}, request=request)


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    services = services_of(request.app)
    if services.settings.metrics_auth == "same":
        await services.authorizer.identify(request)
    body = await run_in_threadpool(render, services.metrics)
    return Response(body, media_type=CONTENT_TYPE)
