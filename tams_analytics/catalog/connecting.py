"""Opening a catalog: the store's engine, under the read cache when asked, handed to a :class:`Catalog`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tams_analytics.catalog.conflicts import RetryPolicy
from tams_analytics.catalog.facade import Catalog
from tams_analytics.engines import open_engine
from tams_analytics.engines.base import Engine

if TYPE_CHECKING:
    from tams_analytics.cache import CacheConfig

__all__ = ["cached", "connect"]


def connect(
    url: str = "duckdb://",
    *,
    create: bool | None = None,
    cache_reads: bool | CacheConfig = False,
    retry_policy: RetryPolicy | None = None,
    **options: Any,
) -> Catalog:
    """Open the store at ``url``: ``duckdb:///path/tams.duckdb``, ``duckdb://`` (memory), ``vast://...``,
    ``trino://...``, ``tams+https://host[:port][/prefix]`` (any TAMS server, through its API).

    A store that does not exist is a :class:`~tams_analytics.exceptions.TamsError` naming the path, never a
    new empty store; ``create=True`` makes it (for DuckDB: the file, in a folder that exists: a mistyped
    folder is an error too). ``cache_reads`` (True, or a :class:`~tams_analytics.cache.CacheConfig`) answers
    segment pages and object instances from an exact in-process cache, where the engine is its store's sole
    writer (writes must then go through this catalog or its engine, never raw SQL); ``retry_policy``: see
    :class:`Catalog`. Other ``options`` go to the engine (e.g. ``read_only=True``).

    >>> import tams_analytics as ta
    >>> ta.connect("duckdb://")
    Catalog(engine='duckdb', store='memory', sources=0, flows=0, segments=0, objects=0)
    """
    if create is not None:
        options["create"] = create
    engine = open_engine(url, **options)
    if cache_reads is not False:
        engine = cached(engine, None if cache_reads is True else cache_reads)
    return Catalog(engine, retry_policy=retry_policy)


def cached(engine: Engine, config: CacheConfig | None = None) -> Engine:
    """``engine`` under the read cache (:class:`~tams_analytics.cache.CachingEngine`) where it is its store's sole
    writer; as it is where not (another writer's changes would go unseen)."""
    from tams_analytics.cache import CachingEngine

    return CachingEngine(engine, config) if engine.capabilities.sole_writer else engine
