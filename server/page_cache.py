"""Segment pages answered again, byte for byte, while nothing they show has changed.

Readers ask for the same pages again and again: every reader of a live flow asks for its newest segment until
the next one comes, players and editors scrub back and forth over the same windows. A page is a pure function of
the request (its path, query and the host its links name), the flow's segments, the instance rows of the
objects it shows and the ``get_urls`` lists minted from them; with the read cache on, each of those is an object
that is replaced, never modified, when it changes (:mod:`tams_analytics.cache`: a flow's
:class:`~tams_analytics.cache.timeline.Timeline`, an object's instance rows; :class:`~server.urls.MintedUrlLists`
hands a list out again for a twentieth of its URLs' lifetime). So a rendered page is kept with the very objects it
was made from and answered again only while the read cache still holds those same objects and its oldest URL
list would still be handed out: the answer is the one rendering the page again would give.

The flow's timeline is taken *before* the page is read (a write committed while it is read makes the kept page
stale at once, never a stale page look current); the instance rows are those the page was made from. A page
whose flow the read cache does not keep (too long, or the cache is off) is not kept, nor one with
``include_object_timerange`` (the objects' rows are not versioned by the cache).
"""

from __future__ import annotations

import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request

from tams_analytics.cache import CachingEngine
from tams_analytics.cache.timeline import Timeline

__all__ = ["CachedPage", "PageCache", "page_key"]

#: what an entry costs besides its body (its key, headers and the references it holds), for the byte bound
_ENTRY_BYTES = 1024
#: what each object of a kept page adds (its instance rows' references)
_OBJECT_BYTES = 256


def page_key(request: Request) -> Hashable:
    """What tells two requests for pages apart: the path, the query, and what the page's ``Link`` header is built
    from (scheme, ``Host``, or the server's address without one, root path)."""
    scope = request.scope
    host = next((v for k, v in scope["headers"] if k == b"host"), None)
    where = host if host is not None else scope.get("server")
    return (scope["scheme"], where, scope.get("root_path", ""), scope["path"], scope["query_string"])


@dataclass(frozen=True, eq=False)
class CachedPage:
    """One rendered page and what it was made from."""

    body: bytes
    headers: Mapping[str, str]
    flow_id: str
    timeline: weakref.ref[Timeline]
    #: each object's instance rows the page's ``get_urls`` were made from (the read cache's own dicts)
    instances: Mapping[str, tuple[Mapping[str, Any], ...]]
    #: until when (the URL lists' clock) the page's oldest ``get_urls`` list is handed out again
    fresh_until: float

    @property
    def weight(self) -> int:
        return len(self.body) + _ENTRY_BYTES + _OBJECT_BYTES * len(self.instances)


class PageCache:
    """Rendered pages by :func:`page_key`, at most ``max_bytes`` of them (least recently used go first), answered
    while still what rendering them again would give (see the module docstring). Thread-safe."""

    def __init__(self, engine: CachingEngine, max_bytes: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.engine = engine
        self.max_bytes = max_bytes
        self.clock = clock
        self._pages: OrderedDict[Hashable, CachedPage] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def timeline(self, flow_id: str) -> Timeline | None:
        """The flow's timeline as the read cache keeps it now: take it before reading a page to keep."""
        return self.engine.kept_timeline(flow_id)

    def get(self, key: Hashable) -> CachedPage | None:
        """The page kept for ``key``, if it is still current (a page that is not is forgotten)."""
        with self._lock:
            page = self._pages.get(key)
            if page is not None:
                self._pages.move_to_end(key)
        if page is not None and self._current(page):
            self.hits += 1
            return page
        self.misses += 1
        if page is not None:
            with self._lock:
                if self._pages.get(key) is page:
                    self._forget(key)
        return None

    def put(
        self,
        key: Hashable,
        *,
        body: bytes,
        headers: Mapping[str, str],
        flow_id: str,
        timeline: Timeline,
        instances: Mapping[str, tuple[Mapping[str, Any], ...]],
        fresh_until: float,
    ) -> None:
        """Keep a page rendered from ``timeline`` (taken before it was read) and ``instances``."""
        page = CachedPage(body, dict(headers), flow_id, weakref.ref(timeline), dict(instances), fresh_until)
        if page.weight > self.max_bytes:
            return
        with self._lock:
            if key in self._pages:
                self._forget(key)
            self._pages[key] = page
            self._bytes += page.weight
            while self._bytes > self.max_bytes:
                self._forget(next(iter(self._pages)))

    def clear(self) -> None:
        with self._lock:
            self._pages.clear()
            self._bytes = 0

    def __len__(self) -> int:
        return len(self._pages)

    @property
    def bytes(self) -> int:
        return self._bytes

    def _current(self, page: CachedPage) -> bool:
        """Whether rendering the page again would give it: its flow's timeline is the same, every object's
        instance rows are the same, its oldest URL list is still handed out."""
        if self.clock() >= page.fresh_until:
            return False
        timeline = page.timeline()
        # an answer from the page is a read of what it shows: counted as one, so the read cache keeps it
        if timeline is None or self.engine.kept_timeline(page.flow_id, use=True) is not timeline:
            return False
        if not page.instances:
            return True
        kept = self.engine.kept_rows("object_instances", list(page.instances), use=True)
        if len(kept) != len(page.instances):
            return False
        return all(_same_rows(rows, kept[oid]) for oid, rows in page.instances.items())

    def _forget(self, key: Hashable) -> None:
        self._bytes -= self._pages.pop(key).weight


def _same_rows(a: tuple[Mapping[str, Any], ...], b: tuple[Mapping[str, Any], ...]) -> bool:
    """The very same row objects (in any order: a page sorts an object's instances by position)."""
    if len(a) != len(b):
        return False
    if len(a) == 1:
        return a[0] is b[0]
    held = {id(r) for r in b}
    return all(id(r) in held for r in a)
