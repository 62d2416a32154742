"""The health monitor: every ``TAMS_HEALTH_CHECK_S`` (1 s) it reads the volumes against the disk watermarks
(:mod:`server.volumes`) and the store's condition into the server's health object (:mod:`server.health`), and
recovers a store that a storage fault left to be reopened (:meth:`~tams_analytics.engines.base.Engine.recover`), so
that writes resume by themselves once space returns."""

from __future__ import annotations

from server.background import PeriodicWorker
from server.health import Part
from server.services import Services, Stop

__all__ = ["check_once", "read_store", "read_volumes", "start"]


def start(services: Services) -> Stop:
    worker = PeriodicWorker("tams-health-monitor", lambda: check_once(services), services.settings.health_check_s)
    worker.start(at_once=True)
    return worker.stop


def check_once(services: Services) -> None:
    """Read the volumes and the store's condition once into ``services.health``, recovering a failed store."""
    read_volumes(services)
    engine = services.catalog.engine
    if engine.store_failure() is not None:
        engine.recover()
    read_store(services)


def read_store(services: Services) -> None:
    """Read whether the store takes writes into ``services.health`` (``/ready`` does too: a store that began refusing
    them since the monitor's last look, its journal's reserve released on a full volume say, is seen now)."""
    failure = services.catalog.engine.store_failure()
    if failure is None:
        services.health.ok(Part.STORE, "the store answers")
    else:
        # whether it can still be read is /ready's count to find out: a store reopened for reads serves them
        services.health.report(Part.STORE, "failed", f"writes refused until it recovers: {failure}", ready=True)


def read_volumes(services: Services, *, fresh_s: float = 0.0) -> None:
    """Read the volumes against the watermarks into ``services.health`` (``/ready`` does too, so that it never
    answers with a reading older than ``fresh_s``)."""
    volumes = services.volumes
    if volumes is None:
        return
    worst = volumes.worst(fresh_s=fresh_s)
    if worst is not None:
        # ready in every stage: reads go on at the flood stage (/ready says writes are refused)
        services.health.report(Part.VOLUME, worst.stage.state, worst.describe(volumes.flood), ready=True)
