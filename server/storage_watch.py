"""Object storage's condition, kept in the server's health (:mod:`server.health`, part ``object_storage``).

Two things report it: a background worker that checks every object store every ``TAMS_STORAGE_PROBE_S`` seconds
(:meth:`~tams_analytics.storage.base.ObjectStore.check`: a one-key listing of the S3 bucket, a file written in the
local folder), and the operations that find it unavailable (the object collector's deletions:
:func:`report_unavailable`). While it is not ready, ``/ready`` answers 503 naming the store and the cause, and
:func:`require_ready` refuses storage allocations (503 with ``Retry-After``) instead of handing out PUT URLs
nobody can use. The next check that succeeds makes it ready again: nothing needs restarting.
"""

from __future__ import annotations

from server.background import PeriodicWorker
from server.health import Condition, Health, Part
from server.services import Services, Stop
from tams_analytics.exceptions import StoreUnavailableError
from tams_analytics.storage.base import ObjectStorageUnavailable

__all__ = ["probe_once", "ready", "report_unavailable", "require_ready", "start"]


def start(services: Services) -> Stop:
    worker = PeriodicWorker("tams-storage-probe", lambda: probe_once(services), services.settings.storage_probe_s)
    worker.start(at_once=True)
    return worker.stop


def probe_once(services: Services) -> Condition:
    """Check every object store once and report what was found (the first that cannot serve, else ok)."""
    answered = []
    for store in services.stores:
        try:
            answered.append(store.check())
        except ObjectStorageUnavailable as exc:
            return report_unavailable(services.health, exc)
    return services.health.ok(Part.OBJECT_STORAGE, "; ".join(answered) or "no object storage")


def report_unavailable(health: Health, exc: ObjectStorageUnavailable) -> Condition:
    """Object storage was found unable to serve (``exc`` says where and why): not ready until a check succeeds."""
    return health.report(Part.OBJECT_STORAGE, str(exc.cause), str(exc), ready=False)


def ready(health: Health) -> bool:
    """Object storage is not known to be unavailable (nothing reported yet counts as ready)."""
    condition = health.condition(Part.OBJECT_STORAGE)
    return condition is None or condition.ready


def require_ready(health: Health) -> None:
    """A :class:`StoreUnavailableError` (503) naming the store and the cause while object storage is not ready."""
    condition = health.condition(Part.OBJECT_STORAGE)
    if condition is not None and not condition.ready:
        raise StoreUnavailableError(f"object storage is unavailable: {condition.summary}", part=Part.OBJECT_STORAGE)
