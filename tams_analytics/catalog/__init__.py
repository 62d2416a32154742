"""The catalog: TAMS semantics over any engine.

Reads return lazy ibis tables (``sources()``, ``flows()``, ``segments()``, ``objects()``) for analysts and
Arrow rows (``rows()``) for the server; writes keep referential integrity (implicit sources, no
overlapping segments, covered-only deletion, collections, tags, object references).
"""

from __future__ import annotations

from typing import Any

from tams_analytics.catalog.base import flows_with_content, utcnow
from tams_analytics.catalog.flows import Changes
from tams_analytics.catalog.segments import AddResult, DeleteResult, Failure, segments_table
from tams_analytics.catalog.service import ServiceMixin
from tams_analytics.engines import open_engine

__all__ = [
    "AddResult",
    "Catalog",
    "Changes",
    "DeleteResult",
    "Failure",
    "connect",
    "flows_with_content",
    "segments_table",
    "utcnow",
]


class Catalog(ServiceMixin):
    """A TAMS store: sources, flows, segments, objects and the service's own records."""

    def __repr__(self) -> str:
        return f"Catalog(engine={self.engine.name!r})"


def connect(url: str = "duckdb://", **options: Any) -> Catalog:
    """Open the store at ``url``: ``duckdb:///path/tams.duckdb``, ``duckdb://`` (memory), ``vast://...``,
    ``trino://...``.

    >>> import tams_analytics as ta
    >>> ta.connect("duckdb://")
    Catalog(engine='duckdb')
    """
    return Catalog(open_engine(url, **options))
