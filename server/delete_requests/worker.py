"""The delete request worker: carries out the deletions ``server.delete_requests.intake`` answered with 202.

Requests are worked in chunks of ``settings.delete_sync_max_segments`` segments (what a synchronous
DELETE may do), earliest first, recording ``timerange_remaining`` after each chunk, so a restart
resumes where the last run stopped: unfinished requests are picked up at startup. A ``delete_flow``
request deletes the flow once its segments are gone. Finished requests stay listed for
:data:`KEEP_FINISHED`, then are forgotten.

Several replicas sharing a store each run this worker: a request is carried out by the one holding its
lease (``delete-request:<id>``, :mod:`server.leases`), renewed between chunks; a replica that dies mid-way
leaves it to another once the lease expires, which resumes from ``timerange_remaining``. A chunk the
store refuses because of concurrent writes is retried (:mod:`tams_analytics.catalog.conflicts`); if it
stays refused the request is left as it is, for the next pass.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import traceback

from server.background import PeriodicWorker
from server.delete_requests import records as delete_records
from server.errors import error_body, error_type, status_of
from server.leases import Hold
from server.services import Services, Stop
from server.webhooks.publish import capture, publish_changes, publish_segments_deleted
from tams_analytics.catalog import Catalog, DeleteResult, utcnow
from tams_analytics.catalog.conflicts import Attempts
from tams_analytics.exceptions import TamsError, TransientStoreError
from tams_analytics.predicates import Term
from tams_analytics.rows import TABLES, DeleteRequestRow
from tams_analytics.statuses import UNFINISHED_DELETE_REQUESTS, DeleteRequestStatus
from tams_analytics.timerange import TimeRange

logger = logging.getLogger(__name__)

#: how often to look for requests made by other server processes sharing the store
POLL_S = 30.0
#: how long finished requests stay visible at /flow-delete-requests (their ``expiry``)
KEEP_FINISHED = dt.timedelta(days=1)


def start(services: Services) -> Stop:
    """Start the worker; ``services.delete_wakeup`` wakes it when a request is made."""
    worker = PeriodicWorker("tams-delete-requests", lambda: None, POLL_S, wakeup=services.delete_wakeup)
    worker.step = lambda: run_pending(services, worker.stopping)
    worker.start()
    return worker.stop


def run_pending(services: Services, stopping: threading.Event | None = None) -> int:
    """Work every unfinished request (oldest first) this process can claim, and forget expired ones;
    returns how many finished."""
    catalog, leases = services.catalog, services.leases
    try:
        delete_records.purge_delete_requests(catalog, utcnow())
    except TransientStoreError:
        pass  # another replica purges at the same moment
    finished = 0
    for row in delete_records.unfinished_delete_requests(catalog):
        if stopping is not None and stopping.is_set():
            break
        with leases.holding(f"delete-request:{row['id']}") as hold:
            if hold is None:
                continue  # another replica carries it out
            current = delete_records.get_delete_request(catalog, row["id"])  # it may have finished meanwhile
            if current is None or current["status"] not in UNFINISHED_DELETE_REQUESTS:
                hold.finished = True
                continue
            hold.finished = run_request(services, current, stopping, hold)
            finished += hold.finished
    return finished


def run_request(
    services: Services, row: DeleteRequestRow, stopping: threading.Event | None = None, hold: Hold | None = None
) -> bool:
    """Carry out one request; False when interrupted by ``stopping``, by the loss of its lease ``hold``, or
    by a store that stays busy (it stays ``started``, for the next pass)."""
    catalog = services.catalog
    rid, flow_id = row["id"], row["flow_id"]
    try:
        delete_records.update_delete_request(catalog, rid, flow_id=flow_id, status=DeleteRequestStatus.STARTED)
        if not _delete_segments(services, row, stopping, hold):
            return False
        if row["delete_flow"]:
            _delete_flow(services, row)
    except TransientStoreError as exc:
        logger.warning("delete request %s for flow %s: the store stayed busy (%s); it goes on later", rid, flow_id, exc)
        return False
    except Exception as exc:
        logger.exception("delete request %s for flow %s failed", rid, flow_id)
        # the type an answer to the request would have had (error.json's one vocabulary: server.errors)
        error = error_body(error_type(status_of(exc) if isinstance(exc, TamsError) else 500), f"deletion failed: {exc}")
        error["traceback"] = traceback.format_exception_only(exc)
        expiry = utcnow() + KEEP_FINISHED
        failed = {"status": DeleteRequestStatus.ERROR, "error": error, "expiry": expiry}
        delete_records.update_delete_request(catalog, rid, flow_id=flow_id, **failed)
        return True
    done = {"status": DeleteRequestStatus.DONE, "timerange_remaining": "()", "expiry": utcnow() + KEEP_FINISHED}
    delete_records.update_delete_request(catalog, rid, flow_id=flow_id, **done)
    logger.info("delete request %s for flow %s done", rid, flow_id)
    return True


def _delete_segments(
    services: Services, row: DeleteRequestRow, stopping: threading.Event | None, hold: Hold | None = None
) -> bool:
    catalog, events = services.catalog, services.events
    chunk = max(1, services.settings.delete_sync_max_segments)
    flow_id = row["flow_id"]
    remaining = TimeRange.from_str(row["timerange_remaining"] or row["timerange_to_delete"])
    context = capture(events, catalog, [flow_id], "flows/segments_deleted").get(flow_id)
    while not remaining.is_empty:
        if (stopping is not None and stopping.is_set()) or (hold is not None and not hold.keep()):
            return False
        result: DeleteResult | None = None
        # the check, the chunk and its event (into the outbox), atomically
        for attempt in Attempts(catalog, what="delete request chunk"):
            with attempt:
                result = None
                if _same_flow(catalog, row):  # else the flow is gone, and its segments with it
                    result = catalog.delete_segments(flow_id, remaining, row["object_id"], limit=chunk, force=True)
                    if result.deleted:
                        publish_segments_deleted(events, context, flow_id, str(result.timerange))
        if result is None:
            break
        if result.complete or result.timerange.end_ns is None:
            remaining = TimeRange.never()
        else:
            # segments never overlap, so every covered segment left starts at or after this chunk's end
            remaining = remaining.split_at(result.timerange.end_ns)[1]
        delete_records.update_delete_request(catalog, row["id"], flow_id=flow_id, timerange_remaining=str(remaining))
    return True


def _same_flow(catalog: Catalog, row: DeleteRequestRow) -> bool:
    """Whether the request's flow exists and is the one it was made for.

    A flow deleted and created again (same id) after the request was made is a new flow: the request
    must not delete it nor its segments. Call inside a transaction with the deletion it guards.
    """
    flow = catalog.row(TABLES.flows, [Term("id", "==", row["flow_id"])])
    if flow is None:
        return False
    flow_created, requested = flow.get("created"), row.get("created")
    return flow_created is None or requested is None or flow_created <= requested


def _delete_flow(services: Services, row: DeleteRequestRow) -> None:
    catalog, events = services.catalog, services.events
    flow_id = row["flow_id"]
    contexts = capture(events, catalog, [flow_id], "flows/deleted", "sources/deleted")
    # the check, the deletion and its events (into the outbox), atomically
    for attempt in Attempts(catalog, what="flow deletion"):
        with attempt:
            if _same_flow(catalog, row):  # a flow re-created since is not ours
                publish_changes(events, catalog, catalog.delete_flow(flow_id, force=True), contexts)
