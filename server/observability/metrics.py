"""Prometheus metrics of the server (``prometheus-client``), exposed at ``GET /metrics``.

Process-wide metrics (one server process is one scrape target) live in :data:`REGISTRY`: HTTP requests by
route template and status, catalog operation and store statement timings, group-commit batch sizes and
GC activity, each observed through a seam the server's assembly hands out (:func:`observe_statement` to the
engine stack's timing decorator, :func:`observe_operation` to the catalog, :func:`observe_batch` to the segment
writer). What belongs to one app's catalog (read cache counters, webhook and delete-request queue depths,
write retries) is read at scrape time by :class:`CatalogCollector`, one per app, so several apps in one process
(tests) never collide.

Names: ``tams_http_requests_total`` / ``tams_http_request_duration_seconds`` {method, route, status};
``tams_catalog_operation_seconds`` {operation}; ``tams_store_statement_seconds`` {statement, table};
``tams_store_checkpoint_seconds``;
``tams_group_commit_batch_size``; ``tams_read_cache_hits_total`` / ``tams_read_cache_misses_total`` /
``tams_read_cache_entries`` {cache}; ``tams_webhook_queue_depth``; ``tams_delete_requests_unfinished``;
``tams_gc_runs_total``, ``tams_gc_objects_collected_total``; ``tams_python_gc_pause_seconds`` {process, generation}
(:mod:`server.observability.gc_pauses`); ``tams_object_deletions_total``,
``tams_object_deletions_failed_total``, ``tams_object_deletions_pending``; ``tams_write_retries_total`` {reason},
``tams_write_retries_given_up_total``; ``tams_health`` {part, state} (1 for each part's current state:
:mod:`server.health`); and the client's ``process_*`` metrics.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pyarrow as pa
from prometheus_client import CollectorRegistry, Counter, Histogram, PlatformCollector, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from tams_analytics.catalog import Catalog
from tams_analytics.engines.base import Engine
from tams_analytics.predicates import Term
from tams_analytics.ratelog import RepeatedLog
from tams_analytics.statuses import UNFINISHED_DELETE_REQUESTS

if TYPE_CHECKING:
    from server.health import Health
    from server.page_cache import PageCache

__all__ = [
    "CONTENT_TYPE",
    "REGISTRY",
    "CatalogCollector",
    "catalog_registry",
    "checkpoint_observer",
    "observe_batch",
    "observe_deletions",
    "observe_gc",
    "observe_journal_apply",
    "observe_journal_sync",
    "observe_operation",
    "observe_request",
    "observe_statement",
    "render",
    "render_every_process",
]

logger = logging.getLogger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

#: the process-wide metrics (not prometheus_client's global default registry: nothing else registers here)
REGISTRY = CollectorRegistry(auto_describe=True)
#: several processes serve one server (``serve``'s store and HTTP processes: :mod:`server.processes`): each writes
#: its counters and histograms to files in this folder, and a scrape adds every process's up (prometheus-client's
#: multiprocess mode: the HTTP process answering the scrape reads them, :func:`render_every_process`); the
#: ``process_*`` metrics are then the store process's
MULTIPROCESS_DIR = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
_PROCESS = CollectorRegistry(auto_describe=True) if MULTIPROCESS_DIR else REGISTRY
ProcessCollector(registry=_PROCESS)
PlatformCollector(registry=_PROCESS)

#: request latencies: a cached segments page takes about a millisecond, a bulk POST seconds
_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_STATEMENT_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0)

HTTP_REQUESTS = Counter(
    "tams_http_requests", "HTTP requests answered", ("method", "route", "status"), registry=REGISTRY
)
HTTP_DURATION = Histogram(
    "tams_http_request_duration_seconds",
    "Time from a request's arrival to the end of its answer",
    ("method", "route", "status"),
    buckets=_LATENCY_BUCKETS,
    registry=REGISTRY,
)
CATALOG_OPERATION = Histogram(
    "tams_catalog_operation_seconds",
    "Catalog operations (writes with their rules, document reads)",
    ("operation",),
    buckets=_LATENCY_BUCKETS,
    registry=REGISTRY,
)
STORE_STATEMENT = Histogram(
    "tams_store_statement_seconds",
    "Statements that reach the store (not those the read cache answers)",
    ("statement", "table"),
    buckets=_STATEMENT_BUCKETS,
    registry=REGISTRY,
)
GROUP_COMMIT_BATCH = Histogram(
    "tams_group_commit_batch_size",
    "Writes committed together in one group commit",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096),
    registry=REGISTRY,
)
LIVE_EDGE_PAGES = Counter(
    "tams_live_edge_pages",
    "Live edges' pages an HTTP process answered from its copy of flows' newest segments, or asked of the store process",
    ("answered_by",),
    registry=REGISTRY,
)
for _answered_by in ("copy", "store"):  # both counted from 0, in every process (a scrape shows both at once)
    LIVE_EDGE_PAGES.labels(_answered_by)
STORE_CHECKPOINT = Histogram(
    "tams_store_checkpoint_seconds",
    "Checkpoints of a DuckDB store (its WAL passed its threshold): with the journal, applying its records waited for "
    "them; without it, every write did",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
    registry=REGISTRY,
)
#: a checkpoint this long is logged as a warning: every write waited for it
SLOW_CHECKPOINT_S = 1.0
JOURNAL_SYNC = Histogram(
    "tams_journal_sync_seconds",
    "Records of the store's journal written and synced (TAMS_JOURNAL=true): every POST of segments acknowledged from "
    "the journal waited for its record's",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
    registry=REGISTRY,
)
JOURNAL_APPLY = Histogram(
    "tams_journal_apply_seconds",
    "Rounds of the journal's applier (TAMS_JOURNAL=true): each applied the records journaled since the last to the "
    "store in one transaction, behind the acknowledgements; meanwhile it shared the cores with the writes (its sum "
    "over a time is the share of it the store spent applying)",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
    registry=REGISTRY,
)
#: a journal sync this long is logged as a warning (at most once a minute)
SLOW_JOURNAL_SYNC_S = 1.0
_slow_syncs = RepeatedLog(logger)
PYTHON_GC_PAUSE = Histogram(
    "tams_python_gc_pause_seconds",
    "Collections of Python's garbage collector, by the server's process and the generation collected: every thread "
    "of that process waited for each (the store process's: every write)",
    ("process", "generation"),
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
    registry=REGISTRY,
)
GC_RUNS = Counter("tams_gc_runs", "Object garbage collection passes", registry=REGISTRY)
GC_OBJECTS = Counter(
    "tams_gc_objects_collected", "Objects forgotten, their bytes queued for deletion", registry=REGISTRY
)
OBJECT_DELETIONS = Counter(
    "tams_object_deletions", "Stored bytes of forgotten instances deleted from storage", registry=REGISTRY
)
OBJECT_DELETIONS_FAILED = Counter(
    "tams_object_deletions_failed",
    "Attempts to delete the stored bytes of a forgotten instance that failed (each tried again later)",
    registry=REGISTRY,
)


def observe_batch(size: int, seconds: float) -> None:
    """Record one group commit of ``size`` segment registrations (``tams_group_commit_batch_size``) that took
    ``seconds`` (operation ``register_batch``: POSTs of segments are applied in batches, not one by one)."""
    GROUP_COMMIT_BATCH.observe(size)
    CATALOG_OPERATION.labels("register_batch").observe(seconds)


def observe_gc(collected: int) -> None:
    """Record one garbage collection pass that collected ``collected`` objects."""
    GC_RUNS.inc()
    if collected:
        GC_OBJECTS.inc(collected)


def observe_deletions(deleted: int, failed: int) -> None:
    """Record a pass of the object deleter: the bytes of ``deleted`` instances gone, ``failed`` attempts failed."""
    if deleted:
        OBJECT_DELETIONS.inc(deleted)
    if failed:
        OBJECT_DELETIONS_FAILED.inc(failed)


@functools.lru_cache(maxsize=4096)
def _request_children(method: str, route: str, status: int) -> tuple[Any, Any]:
    """The labelled children of one (method, route, status): ``labels()`` is a locked dict lookup, this is
    a plain one. Bounded: routes are templates, methods and statuses few."""
    labels = (method, route, str(status))
    return HTTP_REQUESTS.labels(*labels), HTTP_DURATION.labels(*labels)


def observe_request(method: str, route: str, status: int, seconds: float) -> None:
    counter, histogram = _request_children(method, route, status)
    counter.inc()
    histogram.observe(seconds)


def observe_statement(statement: str, table: str, seconds: float) -> None:
    """A statement that reached the store (the server's engine stack times them beneath the read cache:
    :class:`~tams_analytics.engines.timed.TimedEngine`)."""
    STORE_STATEMENT.labels(statement, table).observe(seconds)


def checkpoint_observer(*, journaled: bool, older_format: bool = True) -> Callable[[float, int], None]:
    """What is told of each checkpoint of a DuckDB store (its engine's ``observe_checkpoints``): it is counted, and
    one of :data:`SLOW_CHECKPOINT_S` or longer is logged, saying what waited for it and what to do. ``journaled``:
    the store keeps a journal, so writes were acknowledged meanwhile (only applying them, and reads of what they
    changed, waited). ``older_format``: the store is in DuckDB's older storage format (or it is not known), whose
    checkpoints write the objects' indexes whole; in the current one a long checkpoint is the changes since the last."""
    waited = (
        "writes were acknowledged meanwhile, from the journal, and reads of what they changed waited"
        if journaled
        else "every write waited"
    )

    def observe(seconds: float, wal_bytes: int) -> None:
        STORE_CHECKPOINT.observe(seconds)
        if seconds >= SLOW_CHECKPOINT_S:
            if not older_format:
                logger.warning(
                    "the store checkpointed for %.1f s (a WAL of %.1f MiB) and %s: a checkpoint writes what changed "
                    "since the last one, so a slow disk or a large WAL makes it long (docs: operators, Monitoring)",
                    seconds,
                    wal_bytes / 2**20,
                    waited,
                )
                return
            logger.warning(
                "the store checkpointed for %.1f s (a WAL of %.1f MiB) and %s: in DuckDB's older storage format "
                "(v1.0.0+: tams-analytics doctor says a store's) each checkpoint writes the objects' indexes whole, "
                "so this grows with the objects kept, and tams-analytics upgrade rewrites the store in the current "
                "one (docs: operators, Monitoring)",
                seconds,
                wal_bytes / 2**20,
                waited,
            )

    return observe


def observe_journal_apply(seconds: float) -> None:
    """One round of the journal's applier that took ``seconds`` (its engine's ``observe_journal_applies``)."""
    JOURNAL_APPLY.observe(seconds)


def observe_journal_sync(seconds: float) -> None:
    """One record of the store's journal written and synced in ``seconds`` (its engine's ``observe_journal_syncs``);
    one of :data:`SLOW_JOURNAL_SYNC_S` or longer is logged."""
    JOURNAL_SYNC.observe(seconds)
    if seconds >= SLOW_JOURNAL_SYNC_S:
        _slow_syncs.log(
            logging.WARNING,
            "slow journal sync",
            "a record of the store's journal took %.1f s to write and sync, and the POSTs it held waited for it: the "
            "store's volume is slow or busy (docs: operators, Monitoring)",
            seconds,
        )


def observe_operation(operation: str, seconds: float) -> None:
    """A catalog operation (the catalog's ``observe``); its labelled child is made on first use, so operations
    never run export no empty series."""
    CATALOG_OPERATION.labels(operation).observe(seconds)


class CatalogCollector(Collector):
    """The metrics read from one app's catalog at scrape time: its read cache, its outbox and delete requests,
    its write retries."""

    def __init__(self, catalog: Catalog, pages: PageCache | None = None, health: Health | None = None) -> None:
        self.catalog = catalog
        self.pages = pages
        self.health = health

    def collect(self) -> Iterator[Metric]:
        if self.health is not None:
            condition = GaugeMetricFamily(
                "tams_health",
                "The state of each part the server depends on (1: its current state)",
                labels=["part", "state"],
            )
            for part, found in self.health.conditions().items():
                condition.add_metric([str(part), found.state], 1)
            yield condition
        catalog = self.catalog
        hits = CounterMetricFamily("tams_read_cache_hits", "Read cache lookups answered from memory", labels=["cache"])
        misses = CounterMetricFamily(
            "tams_read_cache_misses", "Read cache lookups that went to the store", labels=["cache"]
        )
        entries = GaugeMetricFamily("tams_read_cache_entries", "Entries kept by the read cache", labels=["cache"])
        parts: list[tuple[str, Any]] = cache_stats(catalog.engine)
        if self.pages is not None:
            parts.append(("pages", self.pages))
        for name, cache in parts:
            hits.add_metric([name], cache.hits)
            misses.add_metric([name], cache.misses)
            entries.add_metric([name], len(cache))
        yield from (hits, misses, entries)
        yield from _memory(catalog.engine)
        yield GaugeMetricFamily(
            "tams_webhook_queue_depth",
            "Webhook events waiting for delivery in the outbox (all replicas')",
            value=_count(catalog, "webhook events", "webhook_events"),
        )
        yield GaugeMetricFamily(
            "tams_object_deletions_pending",
            "Stored bytes of forgotten instances not deleted yet (in their grace period, due, or failing)",
            value=_count(catalog, "pending object deletions", "object_deletions"),
        )
        yield GaugeMetricFamily(
            "tams_delete_requests_unfinished",
            "Flow delete requests created or started and not yet done",
            value=_count(catalog, "unfinished delete requests", "delete_requests", UNFINISHED_DELETE_REQUESTS),
        )
        stats = catalog.retry_stats
        retries = CounterMetricFamily(
            "tams_write_retries",
            "Writes tried again because another replica wrote the same rows first (conflict) or a commit's "
            "outcome was unknown (uncertain)",
            labels=["reason"],
        )
        retries.add_metric(["conflict"], stats.conflicts)
        retries.add_metric(["uncertain"], stats.uncertain)
        yield retries
        yield CounterMetricFamily(
            "tams_write_retries_given_up", "Writes refused after every retry (answered 503)", value=stats.given_up
        )


def cache_stats(engine: Engine) -> list[tuple[str, Any]]:
    """The read cache's parts that count hits and misses, by name (none without the cache)."""
    if not engine.caches_reads:
        return []
    return [
        (name, part) for name in ("timelines", "bound_timelines", "instances") if (part := getattr(engine, name, None))
    ]


def _memory(engine: Engine) -> Iterator[Metric]:
    """What the store process holds in memory beside the interpreter's own: the store engine's (DuckDB's buffer
    manager, by tag), Arrow's buffers and the read cache's sets of known ids, so that a growing RSS can be told apart
    from a cache or buffer pool filling."""
    held = GaugeMetricFamily(
        "tams_store_memory_bytes", "Memory the store engine holds in the store process, by part", labels=["part"]
    )
    try:
        parts = engine.memory()
    except Exception:  # a scrape must answer even when the store does not; /ready says why
        logger.warning("metrics: reading the store's memory failed", exc_info=True)
        parts = {}
    for part, size in sorted(parts.items()):
        held.add_metric([part], size)
    yield held
    yield GaugeMetricFamily(
        "tams_arrow_memory_bytes",
        "Memory Arrow's default pool holds for live buffers in the process answering (the store process)",
        value=pa.total_allocated_bytes(),
    )
    ids = GaugeMetricFamily(
        "tams_read_cache_ids_bytes", "Memory the read cache's sets of stored ids take, by table", labels=["table"]
    )
    for table, known in known_ids(engine):
        ids.add_metric([table], known.nbytes)
    yield ids


def known_ids(engine: Engine) -> list[tuple[str, Any]]:
    """The read cache's sets of stored ids (:class:`~tams_analytics.cache.known.KnownIds`), by table (none without
    the cache)."""
    if not engine.caches_reads:
        return []
    found = (getattr(engine, name, None) for name in ("object_ids", "instance_objects"))
    return [(known.name, known) for known in found if known is not None]


def _count(catalog: Catalog, what: str, table: str, statuses: tuple[str, ...] = ()) -> float:
    try:
        return catalog.count(table, [Term("status", "isin", statuses)] if statuses else [])
    except Exception:  # a scrape must answer even when the store does not; /ready says why
        logger.warning("metrics: counting %s failed", what, exc_info=True)
        return float("nan")


def catalog_registry(
    catalog: Catalog, pages: PageCache | None = None, health: Health | None = None
) -> CollectorRegistry:
    """A registry holding ``catalog``'s :class:`CatalogCollector` (and its rendered pages' counts, its parts'
    condition)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(CatalogCollector(catalog, pages, health))
    return registry


def render(registry: CollectorRegistry) -> bytes:
    """The text exposition of this process's metrics and ``registry``'s (blocking: may count on the store).

    In multiprocess mode this is the store process's own part only (its ``process_*`` metrics and ``registry``'s
    gauges): the HTTP process that forwarded the scrape adds every process's counters and histograms
    (:func:`render_every_process`), so that reading every process's files (7 ms of Python a scrape for a store
    and an HTTP process under live ingest) is not done in the process whose writer every POST waits for."""
    if MULTIPROCESS_DIR:
        return generate_latest(_PROCESS) + generate_latest(registry)
    return generate_latest(REGISTRY) + generate_latest(registry)


def render_every_process() -> bytes:
    """The counters and histograms of every process of the server, added up (multiprocess mode; blocking: reads
    each process's file)."""
    if not MULTIPROCESS_DIR:
        raise RuntimeError("every process's metrics are read in multiprocess mode only (PROMETHEUS_MULTIPROC_DIR)")
    every = CollectorRegistry()
    MultiProcessCollector(every, MULTIPROCESS_DIR)
    return generate_latest(every)
