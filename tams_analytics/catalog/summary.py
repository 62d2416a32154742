"""What a catalog says of itself: its engine, its store (without credentials) and its counts."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tams_analytics.engines import redacted

if TYPE_CHECKING:
    from tams_analytics.catalog import Catalog

__all__ = ["COUNTED", "catalog_repr", "catalog_summary", "store_of"]

#: what a catalog's summary counts
COUNTED = ("sources", "flows", "segments", "objects")


def store_of(catalog: Catalog) -> str:
    """The store a catalog is open on, without credentials: a path, a URL, or ``memory``."""
    path = getattr(catalog.engine, "path", None)  # a file engine (DuckDB) names its file
    if isinstance(path, str):
        if path == ":memory:":
            return "memory"
        return "/" + path.lstrip("/") if path.startswith("/") else path
    url = catalog.engine.url
    if not (url.netloc or url.path):
        return "memory"
    return redacted(url.geturl())


def counts(catalog: Catalog) -> dict[str, Any]:
    """Rows of the main tables, or why there are none (a summary must never fail)."""
    try:
        return {name: catalog.count(name) for name in COUNTED}
    except Exception as exc:
        return {"counts": f"unavailable ({type(exc).__name__}: {exc})"}


def catalog_summary(catalog: Catalog) -> dict[str, Any]:
    """Engine, store, read cache (when on) and counts."""
    items: dict[str, Any] = {"engine": catalog.name, "store": store_of(catalog)}
    if catalog.caches_reads:
        items["read cache"] = "on"
    return items | counts(catalog)


def catalog_repr(catalog: Catalog) -> str:
    """``Catalog(engine='duckdb', store='/data/tams.duckdb', sources=4, flows=5, segments=1200, objects=1200)``."""
    shown = ", ".join(f"{k}={v}" if isinstance(v, int) else f"{k}={v!r}" for k, v in counts(catalog).items())
    return f"Catalog(engine={catalog.name!r}, store={store_of(catalog)!r}, {shown})"
