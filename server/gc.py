"""Object garbage collection: media bytes nobody can reach any more leave storage.

Collectable objects (``catalog.collectable_objects``) are those allocated but never registered, and
those no segment references any more, for longer than the service's ``min_object_timeout``. The
catalog forgets them, then their controlled instances are deleted from their storage backends.
Uncontrolled instances are URLs the service does not own: only their records go.

Several replicas sharing a store take turns: a pass runs only in the replica holding the ``object-gc``
lease (:mod:`server.leases`), so no two delete the same bytes at once.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import defaultdict
from typing import Any

from server.background import PeriodicWorker
from server.observability.metrics import observe_gc
from server.services import Services, Stop
from tams_analytics.catalog import Catalog, utcnow
from tams_analytics.catalog.conflicts import Attempts
from tams_analytics.catalog.references import collectable_objects, purge_objects
from tams_analytics.storage.base import StorageError

logger = logging.getLogger(__name__)

#: seconds between collections, unless ``settings.gc_interval_s`` says otherwise
DEFAULT_INTERVAL_S = 300.0
#: the lease a replica holds while it collects
LEASE = "object-gc"


def start(services: Services) -> Stop:
    interval = float(getattr(services.settings, "gc_interval_s", DEFAULT_INTERVAL_S))
    worker = PeriodicWorker("tams-object-gc", lambda: collect_once(services), interval)
    worker.start(at_once=False)
    return worker.stop


def claim_collectable_objects(catalog: Catalog, older_than: dt.datetime) -> dict[str, list[dict[str, Any]]]:
    """Forget the collectable objects, atomically, and return their instances.

    The caller then deletes the stored bytes of the controlled instances. Forgetting first, in one
    transaction with the reference check, means bytes are only ever deleted for objects no segment
    references: a segment registered concurrently either keeps its object or finds it gone.
    """

    claimed: dict[str, list[dict[str, Any]]] = {}
    for attempt in Attempts(catalog, what="object collection"):
        with attempt:
            ids = sorted(set(collectable_objects(catalog, older_than).column("id").to_pylist()))
            instances = catalog.object_instances(ids) if ids else {}
            gone = purge_objects(catalog, ids) if ids else []
            claimed = {i: [dict(r) for r in instances.get(i, [])] for i in gone}
    return claimed


def collect_once(services: Services, now: dt.datetime | None = None) -> int:
    """Forget collectable objects and delete their stored bytes; returns how many objects were collected.

    ``now`` defaults to the current time (tests pass a later one instead of waiting for the timeout).
    The catalog forgets the objects first (atomically with the check that no segment references
    them), so bytes a segment still points at are never deleted; if a backend then fails to delete,
    the bytes are left behind (logged), never a dangling reference.
    """
    with services.leases.holding(LEASE) as hold:
        if hold is None:
            return 0  # another replica collects now
        return _collect(services, now)


def _collect(services: Services, now: dt.datetime | None) -> int:
    catalog = services.catalog
    cutoff = (now or utcnow()) - dt.timedelta(seconds=services.settings.min_object_timeout_s)
    claimed = claim_collectable_objects(catalog, cutoff)
    by_store: dict[str, list[str]] = defaultdict(list)
    for instances in claimed.values():
        for inst in instances:
            if inst.get("controlled") and inst.get("storage_id") and inst.get("storage_key"):
                by_store[inst["storage_id"]].append(inst["storage_key"])
    for storage_id, keys in by_store.items():
        store = services.stores.by_id.get(storage_id)
        if store is None:
            logger.warning("gc: storage backend %s is not configured; %d objects left in it", storage_id, len(keys))
            continue
        try:
            store.delete(keys)
        except (StorageError, OSError):
            logger.exception(
                "gc: deleting %d objects from storage %s failed; they are left behind", len(keys), storage_id
            )
    if claimed:
        logger.info("gc: collected %d objects", len(claimed))
    observe_gc(len(claimed))
    return len(claimed)
