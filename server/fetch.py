"""What rendering segments needs, fetched from the catalog and the object stores: may block.

A page of segments (and a webhook's ``flows/segments_added`` notification) is fetch, then render: this module
fetches (the rows, their objects' instances, the URLs minted for them, the objects' timeranges), and
:mod:`tams_analytics.codec.segments` renders, a pure function of what was fetched. Each step is done once and kept:
a route tries the fetch on the event loop under :func:`~tams_analytics.nonblocking.memory_only` (the read cache
answers from memory), and when a step would block it goes on in a worker thread from that step, with the
steps before it kept, not thrown away.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from server.stores import Stores
from server.urls import UrlMinter, UrlOptions
from tams_analytics.catalog import Catalog
from tams_analytics.predicates import isin

__all__ = ["SegmentDetails", "Urls", "object_ids"]

#: ``object_id -> get_urls`` (None: the reader wants no URLs)
Urls = Mapping[str, list[dict[str, Any]] | None]


def object_ids(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """The media and init objects ``rows`` name, each once, in order."""
    return list(
        dict.fromkeys([r["object_id"] for r in rows] + [r["init_object_id"] for r in rows if r.get("init_object_id")])
    )


@dataclass
class SegmentDetails:
    """What rendering some segment rows needs besides the rows: their objects' ``get_urls`` (minted for
    ``options``) and, when asked, the objects' timeranges. :meth:`fetch` fills what is missing, step by step."""

    #: where instances and timeranges are read (None: they were fetched already, e.g. by the store process)
    catalog: Catalog | None
    stores: Stores
    options: UrlOptions
    include_object_timerange: bool = False
    #: ``object_id -> get_urls``; None until fetched
    urls: Urls | None = None
    #: ``object_id -> timerange`` of the objects; None until fetched (or not asked)
    object_timeranges: Mapping[str, str | None] | None = None
    #: when (:meth:`~server.urls.MintedUrlLists.clock`) the oldest of the ``get_urls`` lists was minted (None: none)
    urls_minted_at: float | None = None
    _instances: dict[str, tuple[Mapping[str, Any], ...]] | None = field(default=None, repr=False)

    def fetch(self, rows: Sequence[Mapping[str, Any]]) -> SegmentDetails:
        """Fill in what ``rows`` need and is not fetched yet (may block); returns itself."""
        ids = object_ids(rows)
        if self.urls is None:
            self.urls = self.urls_of(ids)
        if self.include_object_timerange and self.object_timeranges is None:
            assert self.catalog is not None, "the objects' timeranges were not fetched"
            t = self.catalog.rows("objects", [isin("id", ids)], columns=["id", "timerange"]) if ids else None
            self.object_timeranges = (
                dict(zip(t.column("id").to_pylist(), t.column("timerange").to_pylist(), strict=True)) if t else {}
            )
        return self

    def given(
        self,
        instances: Mapping[str, tuple[Mapping[str, Any], ...]],
        object_timeranges: Mapping[str, str | None] | None,
    ) -> SegmentDetails:
        """Take instances and objects' timeranges fetched elsewhere (the store process: :mod:`server.processes`), so
        that :meth:`fetch` only mints URLs; returns itself."""
        self._instances = dict(instances)
        if object_timeranges is not None:
            self.object_timeranges = object_timeranges
        return self

    def urls_of(self, ids: Sequence[str]) -> Urls:
        """Each object's ``get_urls``: one catalog call for every object's instances (none when the reader wants no
        URLs), each list minted once per page even when many segments share its object (init objects usually do),
        or not at all while a list minted for an earlier page from the very same instance rows is still valid
        (:class:`~server.urls.MintedUrlLists`)."""
        if self.options.wants_none:
            return dict.fromkeys(ids)
        if self._instances is None:
            assert self.catalog is not None, "the objects' instances were not fetched"
            self._instances = {oid: tuple(rows) for oid, rows in self.catalog.object_instances(ids).items()}
        instances, lists, options = self._instances, self.stores.url_lists, self.options
        mint = UrlMinter(self.stores, options)
        urls: dict[str, list[dict[str, Any]] | None] = {}
        oldest = None
        for oid in ids:
            urls[oid], minted_at = lists.get_minted(oid, instances.get(oid, ()), options, mint)
            if oldest is None or minted_at < oldest:
                oldest = minted_at
        self.urls_minted_at = oldest
        return urls

    @property
    def instances(self) -> Mapping[str, tuple[Mapping[str, Any], ...]]:
        """The instance rows each object's ``get_urls`` were made from, by object (empty until fetched, and when
        the reader wants no URLs)."""
        return self._instances or {}
