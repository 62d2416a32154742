"""The server's shared services, built once per app by :func:`build_services`, read top to bottom, and handed to
the routes (one dependency, :data:`server.deps.ServicesDep`) and the background workers.

The engine stack is built here, explicitly: the store's engine, its statements timed for the metrics
(:class:`~tams_analytics.engines.timed.TimedEngine`), under the read cache where this process is the store's only
writer (:class:`~tams_analytics.cache.CachingEngine`); the catalog gets that stack, the retry policy and the
metrics' operation observer at construction. Nothing is swapped or wired after construction.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from server.auth import Authorizer
from server.config import Settings
from server.health import Health
from server.ingest import SegmentWriter, preload_live_flows
from server.leases import Leases, replica_name
from server.observability import metrics
from server.page_cache import PageCache
from server.stores import Stores, build_stores
from server.volumes import Stage, Volumes
from server.webhooks import outbox
from server.webhooks import records as webhook_records
from server.webhooks.events import EventBus
from tams_analytics.cache import CachingEngine
from tams_analytics.catalog import Catalog, cached
from tams_analytics.engines import open_engine
from tams_analytics.engines.base import Engine
from tams_analytics.engines.guarded import GuardedEngine
from tams_analytics.engines.timed import TimedEngine
from tams_analytics.exceptions import InsufficientStorageError
from tams_analytics.media.codecs import CodecMemo
from tams_analytics.media.hls import SequenceCounter

__all__ = ["Services", "Stop", "build_services", "engine_stack", "services_of"]

logger = logging.getLogger(__name__)

#: what starting a background worker returns: awaiting it stops the worker
Stop = Callable[[], Awaitable[None]]


@dataclass(frozen=True)
class Services:
    """What the routes and the background workers of one app share."""

    settings: Settings
    authorizer: Authorizer
    catalog: Catalog
    stores: Stores
    events: EventBus
    leases: Leases
    #: POSTed segments, registered in batches with their webhook events (:mod:`server.ingest`)
    segments: SegmentWriter
    #: the volumes of the store and of local object storage, against the disk watermarks (None: watermarks off)
    volumes: Volumes | None
    #: this app's scrape-time metrics (its catalog's cache, outbox and retries, its parts' condition)
    metrics: CollectorRegistry
    #: the condition of each part the server depends on (:mod:`server.health`): the write path, ``/ready``,
    #: ``/metrics`` and the log read it
    health: Health
    #: segment pages answered again while nothing they show has changed (None: off, or no read cache)
    pages: PageCache | None = None
    #: live playlists' media sequence numbers
    playlists: SequenceCounter = field(default_factory=SequenceCounter)
    #: flows' codec strings read from their media, for master playlists
    codecs: CodecMemo = field(default_factory=CodecMemo)
    #: held while a readiness check waits on the store (the next ones answer 503 at once)
    ready_probe: threading.Lock = field(default_factory=threading.Lock)
    #: wakes the delete-request worker when a request is made
    delete_wakeup: threading.Event = field(default_factory=threading.Event)

    def close(self, *, catalog: bool = True) -> None:
        """Apply the segments still queued; close the catalog (and its store) when ``catalog``."""
        self.segments.close()
        if catalog:
            self.catalog.close()


def engine_stack(store: Engine, settings: Settings, admit: Callable[[], None] | None = None) -> Engine:
    """The catalog's engine: ``store``'s statements timed (metrics), its writes let in by ``admit`` (the disk
    watermarks' gate: :mod:`server.volumes`), beneath the read cache when it is on and this process is the store's
    only writer. A ``store`` that already caches (a test's) is taken as it is."""
    if store.caches_reads:
        return store
    observe_checkpoints = getattr(store, "observe_checkpoints", None)  # a DuckDB store's: its checkpoints' cost
    if observe_checkpoints is not None:
        fmt = store.storage_format() if hasattr(store, "storage_format") else None
        older = fmt is None or fmt.old
        observe_checkpoints(metrics.checkpoint_observer(journaled=settings.journal, older_format=older))
    observe_journal_syncs = getattr(store, "observe_journal_syncs", None)  # a DuckDB store's with a journal
    if observe_journal_syncs is not None:
        observe_journal_syncs(metrics.observe_journal_sync)
    observe_journal_applies = getattr(store, "observe_journal_applies", None)
    if observe_journal_applies is not None:
        observe_journal_applies(metrics.observe_journal_apply)
    engine: Engine = TimedEngine(store, metrics.observe_statement)
    if admit is not None:
        engine = GuardedEngine(engine, admit)
    if settings.read_cache_rows:
        engine = cached(engine, settings.read_cache_config())
        if engine.caches_reads:
            logger.info(
                "read cache on: up to %s segment rows, %s objects",
                settings.read_cache_rows,
                settings.read_cache_objects,
            )
    return engine


def build_services(
    settings: Settings,
    authorizer: Authorizer,
    *,
    engine: Engine | None = None,
    stores: Stores | None = None,
    health: Health | None = None,
) -> Services:
    """The services of one app over ``engine`` (default: the store ``settings`` name, created when missing) and
    ``stores`` (default: those ``settings`` name), with ``health`` (default: a new one; the app's assembly gives
    the one its authorizer reports to)."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    store = engine or open_engine(settings.store_url, create=True, **settings.store_options())
    warn_of_old_format(store)
    stores = stores or build_stores(settings)
    volumes = watched_volumes(settings, store, stores)
    admit = None if volumes is None else functools.partial(volumes.admit, Stage.FLOOD, "the write")
    catalog = Catalog(
        engine_stack(store, settings, admit), retry_policy=settings.retry_policy(), observe=metrics.observe_operation
    )
    preload_live_flows(catalog, settings.preload_live_s)
    for object_store in stores:
        try:
            catalog.register_storage_backend(object_store.info.to_json() | {"tags": object_store.info.tags})
        except InsufficientStorageError as exc:  # the row from an earlier start stays; reads and deletes go on
            logger.warning("storage backend %s not registered again: %s", object_store.info.id, exc)
    leases = Leases(
        catalog,
        settings.replica_id or replica_name(),
        settings.lease_s,
        sole_writer=catalog.engine.capabilities.sole_writer,
    )
    auth_classes = settings.auth_classes
    events = EventBus(
        settings.webhooks,
        webhooks=lambda: webhook_records.active_webhooks(catalog),
        accepts=lambda webhook, event: outbox.accepts(webhook, event, auth_classes=auth_classes),
        sink=lambda routed: outbox.write(catalog, routed),  # returns how many rows: the bus ignores it
        reads_classes=auth_classes,
    )
    engine = catalog.engine
    health = Health() if health is None else health
    pages = (
        PageCache(engine, settings.page_cache_mb << 20, clock=stores.url_lists.clock)
        if settings.page_cache_mb and isinstance(engine, CachingEngine)
        else None
    )
    return Services(
        volumes=volumes,
        settings=settings,
        authorizer=authorizer,
        catalog=catalog,
        stores=stores,
        events=events,
        leases=leases,
        segments=SegmentWriter(
            catalog,
            events,
            on_batch=metrics.observe_batch,
            linger_s=settings.group_commit_linger_us / 1e6,
            max_batch=settings.group_commit_max_batch,
        ),
        metrics=metrics.catalog_registry(catalog, pages, health),
        health=health,
        pages=pages,
    )


def warn_of_old_format(store: Engine) -> None:
    """Say once, as the server starts, that its store is in an older storage format than its engine writes, what
    that costs and the command that upgrades it (:meth:`Engine.storage_format`)."""
    try:
        found = store.storage_format()
    except Exception as exc:  # a store that cannot say is served all the same
        logger.debug("the store's storage format could not be read: %s", exc)
        return
    if found is not None and found.advice is not None:
        logger.warning("%s", found.advice)


def watched_volumes(settings: Settings, store: Engine | None, stores: Stores) -> Volumes | None:
    """The volumes the server writes to (the store's file, local object storage) against the settings' watermarks,
    with the headroom a DuckDB checkpoint needs on the store's (twice its WAL); None when watermarks are off or the
    server writes to no local volume. Without ``store`` (an HTTP process: :mod:`server.processes`), the store's file
    is the one ``settings`` name, if it is a DuckDB file."""
    if not settings.disk_watermarks:
        return None
    paths: dict[str, Path] = {}
    path = getattr(store, "path", None) if store is not None else _duckdb_file(settings.store_url)
    wal: Path | None = None
    if isinstance(path, str) and path != ":memory:":
        paths["store"] = Path(path)
        wal = Path(f"{path}.wal")
    local = stores.local()
    if local is not None:
        paths["local object storage"] = local.root
    if not paths:
        return None
    low, high, flood = settings.watermarks()

    def reserve() -> int:
        return 2 * wal.stat().st_size if wal is not None and wal.is_file() else 0

    return Volumes(paths, low=low, high=high, flood=flood, reserve=reserve, reserve_on="store" if wal else None)


def _duckdb_file(url: str) -> str | None:
    """The file a ``duckdb://`` store URL names (None for another engine, or memory)."""
    if not url.lower().startswith("duckdb://"):
        return None
    path = url[len("duckdb://") :].split("?", 1)[0]
    return path or None


class ServiceStarting(Exception):
    """The app has no services yet (its lifespan has not started, or has ended)."""


def services_of(app: FastAPI) -> Services:
    """The services of ``app`` (its lifespan built them); :class:`ServiceStarting` before that."""
    services = getattr(app.state, "services", None)
    if not isinstance(services, Services):
        raise ServiceStarting("the server is starting: no store yet")
    return services
