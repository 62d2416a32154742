"""URLs minted for readers: a reader's URL options, the ``get_urls`` of instance rows (signing may block), and
the lists minted for recent pages, handed out again while still valid.

Controlled instances hold only a storage key; their GET URL is minted by the ``ObjectStore`` of the
instance's ``storage_id`` each time (pre-signed S3, or the local store's signed URL, both
``presigned: true``) and never stored. Uncontrolled instances are returned as registered.

The filters follow the spec's query parameters (all of them must pass, ADR 0023):

* ``accept_get_urls`` omitted: no label filter (unlabelled URLs too); empty: no URLs at all; a list:
  only URLs whose label is in it.
* ``accept_storage_ids`` omitted or empty: no filter; a list: only controlled URLs on those backends.
* ``presigned``: ``true`` keeps only pre-signed URLs (every controlled one), ``false`` only the others
  (uncontrolled URLs, whose ``presigned`` is unset and so "not pre-signed").
* ``storage_backend_tag.{name}`` / ``storage_backend_tag_exists.{name}``: only URLs on backends whose
  tags match (as ``tag.{name}`` / ``tag_exists.{name}`` on ``/service/storage-backends``); an
  uncontrolled URL has no backend, so any backend tag filter drops it.
"""

from __future__ import annotations

import functools
import logging
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from fastapi import Request

from server.errors import bad_request
from server.params import check_uuid, parse_bool, prefixed_params
from tams_analytics.storage.base import ObjectStore, ReuseWindow

logger = logging.getLogger(__name__)

_LABEL_LIST_RE = re.compile(r"^([^,]+(,[^,]+)*)?$")


@dataclass(frozen=True)
class UrlOptions:
    """How a reader wants ``get_urls``: the spec's URL query parameters (or a webhook's equivalents)."""

    verbose: bool = False
    #: labels to keep; None = parameter omitted (keep all, unlabelled too); empty = no URLs
    accept_labels: frozenset[str] | None = None
    #: backend ids to keep; None or empty = no filter
    accept_storage_ids: frozenset[str] | None = None
    presigned: bool | None = None
    backend_tags: Mapping[str, Sequence[str]] = field(default_factory=dict)
    backend_tags_exist: Mapping[str, bool] = field(default_factory=dict)
    #: lifetime of minted GET URLs, seconds
    expires_s: int = 600

    @classmethod
    def from_request(cls, request: Request, expires_s: int) -> UrlOptions:
        """Parse ``verbose_storage``, ``accept_get_urls``, ``accept_storage_ids``, ``presigned`` and the
        ``storage_backend_tag[_exists].{name}`` parameters; 400 naming any bad value."""
        q = request.query_params
        labels = q.get("accept_get_urls")
        if labels is not None and not _LABEL_LIST_RE.match(labels):
            raise bad_request(f"accept_get_urls must be a comma-separated list of labels, not {labels!r}")
        ids = q.get("accept_storage_ids")
        id_set = (
            frozenset(check_uuid(i, "accept_storage_ids item", in_path=False) for i in ids.split(",")) if ids else None
        )
        tags = {
            k: [v for v in value.split(",") if v]
            for k, value in prefixed_params(request, "storage_backend_tag").items()
        }
        exist = {
            k: bool(parse_bool(v, f"storage_backend_tag_exists.{k}"))
            for k, v in prefixed_params(request, "storage_backend_tag_exists").items()
        }
        return cls(
            verbose=bool(parse_bool(q.get("verbose_storage"), "verbose_storage")),
            accept_labels=None if labels is None else frozenset(x for x in labels.split(",") if x),
            accept_storage_ids=id_set,
            presigned=parse_bool(q.get("presigned"), "presigned"),
            backend_tags=tags,
            backend_tags_exist=exist,
            expires_s=expires_s,
        )

    @classmethod
    def from_values(
        cls,
        *,
        verbose: bool = False,
        accept_get_urls: Iterable[str] | None = None,
        accept_storage_ids: Iterable[str] | None = None,
        presigned: bool | None = None,
        expires_s: int = 600,
    ) -> UrlOptions:
        """From already parsed values (e.g. a webhook's ``accept_get_urls`` array)."""
        return cls(
            verbose=verbose,
            accept_labels=None if accept_get_urls is None else frozenset(accept_get_urls),
            accept_storage_ids=frozenset(accept_storage_ids) if accept_storage_ids else None,
            presigned=presigned,
            expires_s=expires_s,
        )

    @functools.cached_property
    def cache_key(self) -> tuple[Any, ...]:
        """What tells two readers' URL lists apart (hashable)."""
        return (
            self.verbose,
            self.accept_labels,
            self.accept_storage_ids,
            self.presigned,
            tuple(sorted((k, tuple(v)) for k, v in self.backend_tags.items())),
            tuple(sorted(self.backend_tags_exist.items())),
            self.expires_s,
        )

    @property
    def wants_none(self) -> bool:
        """True when no URL can pass (``accept_get_urls=``): callers skip looking instances up at all."""
        return self.accept_labels is not None and not self.accept_labels

    @property
    def backend_filtered(self) -> bool:
        return bool(self.accept_storage_ids or self.backend_tags or self.backend_tags_exist)

    def backend_ok(self, store: ObjectStore) -> bool:
        """Whether URLs on this backend pass every filter."""
        info = store.info
        if self.accept_storage_ids and info.id not in self.accept_storage_ids:
            return False
        if self.presigned is False:  # every controlled URL is pre-signed
            return False
        if self.accept_labels is not None and info.label not in self.accept_labels:
            return False
        for name, values in self.backend_tags.items():
            if not _tag_matches(info.tags.get(name), values):
                return False
        return all((name in info.tags) == exists for name, exists in self.backend_tags_exist.items())

    def uncontrolled_ok(self, label: str | None) -> bool:
        """Whether an uncontrolled URL with this label passes every filter."""
        if self.backend_filtered or self.presigned is True:
            return False
        if self.accept_labels is None:
            return True
        return label is not None and label in self.accept_labels


def _tag_matches(value: str | list[str] | None, wanted: Sequence[str]) -> bool:
    if value is None:
        return False
    if isinstance(value, str):
        return value in wanted
    return any(v in wanted for v in value)


class UrlMinter:
    """Turns instance rows into ``get_urls`` for one read; backend checks are done once, not per URL."""

    def __init__(self, stores: Iterable[ObjectStore], options: UrlOptions) -> None:
        self.options = options
        #: storage_id -> (store, the fixed part of its URL items)
        self._backends: dict[str, tuple[ObjectStore, dict[str, Any]]] = {}
        for store in stores:
            if not options.backend_ok(store):
                continue
            extra: dict[str, Any] = {"presigned": True, "label": store.info.label}
            if options.verbose:
                extra |= {"controlled": True, **store.info.url_metadata()}
            self._backends[store.info.id] = (store, extra)

    def __call__(self, instances: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        if self.options.wants_none:
            return []
        out: list[dict[str, Any]] = []
        for inst in instances:
            if inst.get("controlled"):
                backend = self._backends.get(inst.get("storage_id") or "")
                if backend is None:
                    continue
                store, extra = backend
                url = store.get_url(inst["storage_key"], self.options.expires_s)
                out.append({"url": url, **extra})
            elif inst.get("url") and self.options.uncontrolled_ok(inst.get("label")):
                item: dict[str, Any] = {"url": inst["url"]}
                if inst.get("label") is not None:
                    item["label"] = inst["label"]
                if self.options.verbose:
                    item["controlled"] = False
                out.append(item)
        return out


class MintedUrlLists:
    """``get_urls`` lists by object and reader options, handed out again while the object's instance
    rows are the very same objects (a read cache shares them) and the URLs keep at least 90 % of their
    lifetime.

    A segments page needs one list per object; rebuilding them (backend filters, a URL each, the
    items) was the largest part of a page served from memory. The instance rows' identity is the
    validity check: the read cache replaces them whenever an object's instances change (rows read from
    the store are new objects on every read, so their lists serve one page only).
    """

    #: at most this many distinct reader options' keys are shared (more: forgotten, and shared anew)
    SHARED_OPTIONS = 256

    def __init__(self, capacity: int = 100_000, clock: Callable[[], float] = time.monotonic) -> None:
        self._lists: ReuseWindow[list[dict[str, Any]]] = ReuseWindow(capacity=capacity, clock=clock)
        #: each distinct options' key, once: a request makes its own, and a list kept for a window under it kept it
        #: alive, one 7-item tuple for each list, all equal (most readers ask alike) and all followed by the garbage
        #: collector (about 5,300 at 800 POSTs/s, the largest share of what the HTTP process's collections walked)
        self._options: dict[tuple[Any, ...], tuple[Any, ...]] = {}

    def get(
        self, object_id: str, instances: Sequence[Mapping[str, Any]], options: UrlOptions, mint: UrlMinter
    ) -> list[dict[str, Any]]:
        """The object's ``get_urls`` (shared: do not modify), from ``mint`` when not still valid."""
        return self.get_minted(object_id, instances, options, mint)[0]

    def get_minted(
        self, object_id: str, instances: Sequence[Mapping[str, Any]], options: UrlOptions, mint: UrlMinter
    ) -> tuple[list[dict[str, Any]], float]:
        """:meth:`get`, with the time (:attr:`clock`) the list was minted: it is handed out until
        :meth:`reuse_until` that time."""
        key = (object_id, self._shared(options.cache_key))
        hit = self._lists.get_minted(key, basis=instances)
        if hit is not None:
            return hit
        minted_at = self._lists.now()
        urls = mint(instances)
        self._lists.put(key, urls, minted_at, options.expires_s, basis=instances)
        return urls, minted_at

    def _shared(self, options_key: tuple[Any, ...]) -> tuple[Any, ...]:
        """The one kept copy of ``options_key`` (see ``_options``)."""
        shared = self._options.get(options_key)
        if shared is None:
            if len(self._options) >= self.SHARED_OPTIONS:
                self._options.clear()
            shared = self._options.setdefault(options_key, options_key)
        return shared

    def reuse_until(self, minted_at: float, options: UrlOptions) -> float:
        """Until when (:attr:`clock`) a list minted at ``minted_at`` for ``options`` is handed out again."""
        return minted_at + options.expires_s * ReuseWindow.REUSE_FRACTION

    def clock(self) -> float:
        """The time on the clock lists are minted by."""
        return self._lists.now()


def get_urls(
    instances: Sequence[Mapping[str, Any]], stores: Iterable[ObjectStore], options: UrlOptions
) -> list[dict[str, Any]]:
    """The ``get_urls`` of one object from its instance rows (in preference order)."""
    return UrlMinter(stores, options)(instances)
