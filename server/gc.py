"""Object garbage collection: media bytes nobody can reach any more leave storage, and are never forgotten.

A pass does two things, in the one replica holding the ``object-gc`` lease (:mod:`server.leases`):

1. **Collect.** Collectable objects (``catalog.collectable_objects``) are those allocated but never registered, and
   those no segment references any more, for longer than the service's ``min_object_timeout``. The catalog
   forgets them and, in the same transaction, queues the bytes of their controlled instances for deletion
   (:mod:`tams_analytics.catalog.object_deletions`), due once ``TAMS_OBJECT_GRACE_S`` has passed. Uncontrolled
   instances are URLs the service does not own: only their records go.
2. **Delete.** The queue's due rows (those collected, and instances clients removed) have their bytes deleted,
   then the rows. A failure is recorded on its rows and tried again with exponential back-off (:data:`BACKOFF`),
   never dropped: the queue is in the store, so it outlives restarts and crashes, and another replica takes it
   over. While object storage is known to be unavailable (:mod:`server.storage_watch`) no deletion is tried; a
   deletion that finds it unavailable says so there.

Failures are logged once per pass and cause, with a count, never once per object.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import Counter, defaultdict
from dataclasses import dataclass

from server.background import PeriodicWorker
from server.leases import Hold
from server.observability.metrics import observe_deletions, observe_gc
from server.services import Services, Stop
from server.storage_watch import ready, report_unavailable
from tams_analytics.catalog import Catalog, utcnow
from tams_analytics.catalog import object_deletions as queue
from tams_analytics.catalog.conflicts import Attempts
from tams_analytics.catalog.references import any_collectable, collectable_objects, purge_objects
from tams_analytics.rows import ObjectDeletionRow
from tams_analytics.storage.base import ObjectStorageUnavailable, StorageError

logger = logging.getLogger(__name__)

#: seconds between collections, unless ``settings.gc_interval_s`` says otherwise
DEFAULT_INTERVAL_S = 300.0
#: the lease a replica holds while it collects
LEASE = "object-gc"
#: the waits between attempts to delete the bytes of one queued instance: a minute, doubling, at most an hour
BACKOFF = queue.Backoff(base_s=60.0, max_s=3600.0)
#: queued deletions claimed at once (S3 deletes up to 1000 keys in one request)
BATCH = 1000


def start(services: Services) -> Stop:
    interval = float(getattr(services.settings, "gc_interval_s", DEFAULT_INTERVAL_S))
    worker = PeriodicWorker("tams-object-gc", lambda: collect_once(services), interval)
    worker.start(at_once=False)
    return worker.stop


def claim_collectable_objects(catalog: Catalog, older_than: dt.datetime, *, grace_s: float) -> list[str]:
    """Forget the collectable objects, atomically with the check that no segment references them, and queue the
    bytes of their controlled instances for deletion after ``grace_s``; returns the ids forgotten.

    Forgetting first, in one transaction with the reference check, means bytes are only ever queued for objects
    no segment references: a segment registered concurrently either keeps its object or finds it gone."""
    gone: list[str] = []
    for attempt in Attempts(catalog, what="object collection"):
        with attempt:
            ids = sorted(set(collectable_objects(catalog, older_than).column("id").to_pylist()))
            gone = purge_objects(catalog, ids, grace_s=grace_s) if ids else []
    return gone


@dataclass
class Deletions:
    """What one pass of the deleter did: bytes deleted, attempts failed, rows dropped because their key is in use
    again, and whether it waited for object storage to answer again."""

    deleted: int = 0
    failed: int = 0
    in_use: int = 0
    waited: bool = False


def collect_once(services: Services, now: dt.datetime | None = None) -> int:
    """One pass (see the module docstring); returns how many objects were collected (forgotten).

    ``now`` defaults to the current time (tests pass a later one instead of waiting for the timeout and the
    grace).

    A pass looks first, with reads alone, and one that would find nothing (what live ingest meets every time) takes
    no lease and opens no transaction. Each of those (four a pass) is a direct transaction, which on a store with a
    journal holds every acknowledgement while the journal is applied and the transaction commits. (Side by side at a
    pass every 15 s, two minutes at 400/s each, the lines differed no more than the host's noise: a principle more
    than a measured gain.)"""
    now = now or utcnow()
    if not _work_found(services, now):
        observe_gc(0)
        return 0
    with services.leases.holding(LEASE) as hold:
        if hold is None:
            return 0  # another replica collects now
        collected = _collect(services, now)
        delete_due(services, now, hold)
        return collected


def _work_found(services: Services, now: dt.datetime) -> bool:
    """Whether a pass at ``now`` has objects to collect or deletions due (reads: see :func:`collect_once`)."""
    return any_collectable(services.catalog, _cutoff(services, now)) or queue.any_due(services.catalog, now)


def _cutoff(services: Services, now: dt.datetime) -> dt.datetime:
    """Objects unreferenced, or allocated and never registered, before this are collectable at ``now``."""
    return now - dt.timedelta(seconds=services.settings.min_object_timeout_s)


def _collect(services: Services, now: dt.datetime) -> int:
    settings = services.settings
    gone = claim_collectable_objects(services.catalog, _cutoff(services, now), grace_s=settings.object_grace_s)
    if gone:
        logger.info("gc: collected %d objects, their bytes queued for deletion", len(gone))
    observe_gc(len(gone))
    return len(gone)


def delete_due(services: Services, now: dt.datetime | None = None, hold: Hold | None = None) -> Deletions:
    """Delete the bytes of the queued instances that are due, batch by batch, while the lease is held; then
    their rows. Failures stay queued, with their cause, for the back-off's next attempt."""
    done = Deletions()
    if not ready(services.health):
        done.waited = True  # the storage watch says when it answers again
        return done
    catalog, now = services.catalog, now or utcnow()
    causes: Counter[str] = Counter()
    while True:
        claimed = queue.claim(catalog, now, limit=BATCH, backoff=BACKOFF)
        done.in_use += claimed.in_use
        by_store: dict[str, list[ObjectDeletionRow]] = defaultdict(list)
        for row in claimed.rows:
            by_store[row["storage_id"]].append(row)
        unavailable = False
        for storage_id, rows in by_store.items():
            error = _delete_bytes(services, storage_id, rows)
            if error is None:
                queue.deleted(catalog, rows)
                done.deleted += len(rows)
                continue
            queue.failed(catalog, rows, error)
            done.failed += len(rows)
            causes[error] += len(rows)
            unavailable = unavailable or not ready(services.health)
        if len(claimed.rows) + claimed.in_use < BATCH or unavailable or (hold is not None and not hold.keep()):
            break
    for cause, count in causes.items():
        logger.warning("gc: deleting the bytes of %d objects failed, tried again later: %s", count, cause)
    if done.in_use:
        logger.info("gc: %d queued deletions dropped: their keys hold an object's bytes again", done.in_use)
    if done.deleted:
        logger.info("gc: deleted the bytes of %d objects", done.deleted)
    observe_deletions(done.deleted, done.failed)
    return done


def _delete_bytes(services: Services, storage_id: str, rows: list[ObjectDeletionRow]) -> str | None:
    """Delete the bytes of ``rows`` from ``storage_id``: None when done, else why not."""
    store = services.stores.by_id.get(storage_id)
    if store is None:
        return f"storage backend {storage_id} is not configured on this server"
    try:
        store.delete([r["storage_key"] for r in rows])
    except ObjectStorageUnavailable as exc:
        report_unavailable(services.health, exc)
        return str(exc)
    except (StorageError, OSError) as exc:
        return f"storage {store.info.label}: {exc}"
    return None
