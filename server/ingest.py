"""POSTed segments: registered in batches, with the webhook events they cause composed into each batch's transaction.

Live recorders post one segment per request to many flows; :class:`SegmentWriter` queues the requests and one
writer thread applies them in batches (:class:`~tams_analytics.catalog.group_commit.GroupCommit`: one
transaction and one durable commit per batch). The server composes each batch's transaction itself, top to
bottom: the registration (:func:`tams_analytics.catalog.registration.register`, which returns the rows it
stored), then, when a webhook wants them, the ``flows/segments_added`` events built from those rows, written to
the outbox in the same transaction. The library is never called back: calls go down, data comes back up.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Sequence
from concurrent.futures import Future

from server.webhooks.events import EventBus
from server.webhooks.publish import capture, segments_added
from tams_analytics.cache import CachingEngine
from tams_analytics.catalog import AddResult, Catalog, Failure
from tams_analytics.catalog.group_commit import BatchObserver, GroupCommit
from tams_analytics.catalog.registration import Registered, Registration, attempts, register
from tams_analytics.clock import utcnow
from tams_analytics.exceptions import StoreUnavailableError
from tams_analytics.predicates import Term

__all__ = ["SegmentWriter", "live_flows", "preload_live_flows"]

logger = logging.getLogger(__name__)

SEGMENTS_ADDED = "flows/segments_added"


class SegmentWriter:
    """The server's segment registrations, applied in batches by one writer thread (see the module docstring);
    ``on_batch`` hears each batch's size and duration (metrics); ``linger_s``: how long a batch waits for more
    requests once one arrives, ``max_batch``: the most requests a batch holds
    (:class:`~tams_analytics.catalog.group_commit.GroupCommit`)."""

    def __init__(
        self,
        catalog: Catalog,
        events: EventBus,
        *,
        on_batch: BatchObserver | None = None,
        linger_s: float = 0.0,
        max_batch: int = 256,
    ) -> None:
        self.catalog = catalog
        self.events = events
        self._group: GroupCommit[Registration, AddResult] = GroupCommit(
            self.apply, name="tams-segment-writer", on_batch=on_batch, linger_s=linger_s, max_batch=max_batch
        )

    def queue(self, registration: Registration) -> Future[AddResult]:
        """Queue ``registration``; the future gets its result once its batch has committed (or the error that
        refused it). An event loop awaits it with ``asyncio.wrap_future``, holding no thread."""
        return self._group.future(registration)

    def close(self) -> None:
        """Apply what is queued, then stop the writer thread."""
        self._group.close()

    def apply(self, requests: Sequence[Registration]) -> list[AddResult | Exception]:
        """Register one batch now, on the calling thread: the writer thread's work on each batch it takes (called
        directly only where nothing is queued: ``python -m benchmarks.batch_cost`` times it)."""
        catalog = self.catalog
        publish = self.events.wants(SEGMENTS_ADDED)
        # what webhook filters need of the flows (collections, auth classes), read before the transaction
        contexts = capture(self.events, catalog, {r.flow_id for r in requests}, SEGMENTS_ADDED) if publish else {}
        done: Registered | None = None
        try:
            # acknowledged once durable in the store's journal, where it keeps one (the DuckDB store: the write never
            # waits for its checkpoints); nothing here reads back what the batch writes
            with catalog.engine.journaled():
                for attempt in attempts(catalog, requests):
                    with attempt:
                        done = register(catalog, requests, attempt)
                        if publish and done.stored is not None:
                            self.events.publish(*segments_added(done.stored, contexts))
        except StoreUnavailableError as exc:
            if not exc.uncertain:
                raise
            return settle_uncertain(catalog, requests, exc)
        assert done is not None
        if publish and done.stored is not None:
            self.events.wakeup.set()  # committed: the delivery worker can send them
        return done.outcomes


def settle_uncertain(
    catalog: Catalog, requests: Sequence[Registration], error: StoreUnavailableError
) -> list[AddResult | Exception]:
    """The outcome of each request of a batch whose commit failed without saying whether it was stored (the store was
    reopened since: :mod:`tams_analytics.engines.duckdb.faults`), read back from the store: a request whose segments
    are stored (same flow, start and object) was registered, one whose segments are not gets ``error``. A client is
    never told "maybe"."""
    outcomes: list[AddResult | Exception] = []
    for request in requests:
        rows = request.rows()
        starts = sorted({int(r["start_ns"]) for r in rows})
        found = (
            catalog.records(
                "segments",
                [Term("flow_id", "==", request.flow_id), Term("start_ns", "isin", starts)],
                columns=["start_ns", "object_id"],
            )
            if starts
            else []
        )
        stored = {(int(r["start_ns"]), r["object_id"]) for r in found}
        accepted = [int(r["index"]) for r in rows if (int(r["start_ns"]), r["object_id"]) in stored]
        if rows and not accepted:
            outcomes.append(error)
            continue
        missing = [
            Failure(int(r["index"]), r["object_id"], r["timerange"], f"not stored: {error}")
            for r in rows
            if (int(r["start_ns"]), r["object_id"]) not in stored
        ]
        failed = sorted([*request.parse_failures, *missing], key=lambda f: f.index)
        outcomes.append(AddResult(accepted=sorted(accepted), failed=failed))
    logger.warning(
        "a batch's commit failed without saying whether it was stored: read back, %s of %s requests were",
        sum(isinstance(o, AddResult) for o in outcomes),
        len(requests),
    )
    return outcomes


#: how long a starting server waits for its read cache to know the stored object ids (see :func:`preload_live_flows`)
IDS_KNOWN_S = 120.0


def preload_live_flows(catalog: Catalog, seconds: float) -> int:
    """Load into the read cache, ahead, what the first registration of each live flow reads (:func:`live_flows`: their
    recorders resume after a restart): the flow's timeline, row and delete requests, a few statements for all of
    them, where each resuming flow's first POST would otherwise load its own (up to five statements on the writer
    thread, every POST behind them waiting). Then wait (up to :data:`IDS_KNOWN_S`) for the cache to know every stored
    object id, read in the background meanwhile: until it does, a registration's check of its objects reads the whole
    table (there is no index on random ids). Nothing without a read cache. Returns how many timelines were loaded."""
    engine = catalog.engine
    if not isinstance(engine, CachingEngine):
        return 0
    started = time.perf_counter()
    live = live_flows(catalog, seconds) if seconds > 0 else []
    loaded = engine.preload(live) if live else 0
    if live:
        took = time.perf_counter() - started
        logger.info("read cache: loaded %s of %s live flows in %.2f s", loaded, len(live), took)
    if not engine.ids_known(IDS_KNOWN_S):
        logger.warning("read cache: the stored object ids are not known yet: registrations read the store meanwhile")
    return loaded


def live_flows(catalog: Catalog, seconds: float, limit: int | None = None) -> list[str]:
    """The flows whose segments changed within ``seconds`` of the store's newest change (the live ones: those whose
    recorders resume after a restart, also when the server was down for longer than ``seconds``), most recently
    changed first; at most ``limit`` of them."""
    newest = catalog.records(
        "flows",
        [Term("segments_updated", "notnull", None)],
        columns=["segments_updated"],
        order_by=[("segments_updated", True)],
        limit=1,
    )
    if not newest:
        return []
    since = min(utcnow(), newest[0]["segments_updated"]) - dt.timedelta(seconds=seconds)
    found = catalog.records(
        "flows",
        [Term("segments_updated", ">=", since)],
        columns=["id"],
        order_by=[("segments_updated", True)],
        limit=limit,
    )
    return [r["id"] for r in found]
