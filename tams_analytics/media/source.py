"""Where a flow's media comes from: a catalog with object storage, or a TAMS server's REST API.

A :class:`MediaSource` lists a flow's segments in time order, a page at a time, and reads objects:

* :class:`StoreMedia`: segments from the catalog, objects through the library's storage
  (:mod:`tams_analytics.storage`: a local directory or S3, as ``integrity --storage`` takes them), by each
  object's instances in preference order (uncontrolled instances by their URL);
* :class:`ServerMedia`: segments from ``GET /flows/{id}/segments`` (following ``Link: rel="next"``), objects
  from their ``get_urls``. :func:`rest_segment_pages` is the one function that speaks the REST API: an
  engine over the API can take its place.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, cast
from urllib.parse import quote

from tams_analytics.exceptions import TamsError
from tams_analytics.extras import install_hint
from tams_analytics.predicates import Term, isin
from tams_analytics.timerange import TimeRange

if TYPE_CHECKING:
    import httpx

    from tams_analytics.catalog import Catalog
    from tams_analytics.storage.base import ObjectStore

PAGE = 1000


class MissingObject(TamsError):
    """An object a segment names cannot be read from anywhere its instances say."""

    def __init__(self, object_id: str, why: str) -> None:
        super().__init__(f"object {object_id}: {why}")
        self.object_id = object_id
        self.why = why


@dataclass(frozen=True)
class SegmentRef:
    """A segment as media readers need it."""

    object_id: str
    start_ns: int
    end_ns: int
    ts_offset: int = 0
    init_object_id: str | None = None
    #: the object's expected size in bytes, when known
    size: int | None = None
    #: URLs to read the object and its init object from (REST sources)
    urls: tuple[str, ...] = ()
    init_urls: tuple[str, ...] = ()

    @property
    def timerange(self) -> TimeRange:
        return TimeRange.from_storage(self.start_ns, self.end_ns)


class MediaSource(Protocol):
    """Segments and objects of flows."""

    def flow(self, flow_id: str) -> dict[str, Any] | None: ...

    def flows_starting_with(self, prefix: str) -> list[tuple[str, str | None]]:
        """``(id, label)`` of the flows whose id starts with ``prefix`` (for the message about an id cut short)."""
        ...

    def pages(self, flow_id: str, timerange: TimeRange) -> Iterator[list[SegmentRef]]:
        """The segments overlapping ``timerange`` in time order, a page at a time."""
        ...

    def count(self, flow_id: str, timerange: TimeRange) -> int | None:
        """How many segments ``pages`` yields (None: not known up front)."""
        ...

    def read(self, segment: SegmentRef) -> bytes:
        """The segment's object; raises :class:`MissingObject`."""
        ...

    def read_init(self, segment: SegmentRef) -> bytes:
        """The segment's init object; raises :class:`MissingObject`."""
        ...


def existing_flow(source: MediaSource, flow_id: str) -> dict[str, Any]:
    """The flow ``flow_id`` names; else the error that says why it names none: an unknown UUID, the start of one
    (with the flows whose id starts with it), or not an id at all
    (:func:`~tams_analytics.catalog.flow_guard.flow_not_found`)."""
    from tams_analytics.catalog.flow_guard import flow_not_found, looks_like_id_start

    flow = source.flow(flow_id)
    if flow is None:
        raise flow_not_found(flow_id, source.flows_starting_with(flow_id) if looks_like_id_start(flow_id) else None)
    return flow


def _http_get(client: httpx.Client, url: str, what: str) -> bytes:
    import httpx

    try:
        r = client.get(url)
    except httpx.HTTPError as exc:
        raise MissingObject(what, f"GET failed: {exc}") from exc
    if r.status_code != 200:
        raise MissingObject(what, f"GET answered {r.status_code}")
    return r.content


def _client() -> httpx.Client:
    try:
        import httpx
    except ImportError as exc:  # pragma: no cover - part of the media and server extras
        raise TamsError(f"reading media over HTTP needs httpx: {install_hint('media')}") from exc
    return httpx.Client(timeout=60, follow_redirects=True)


# -- a catalog and its object storage ---------------------------------------------------------------------
@dataclass
class StoreMedia:
    """Media through the catalog's object instances and the given stores (by storage backend id)."""

    catalog: Catalog
    stores: Mapping[str, ObjectStore]
    page: int = PAGE
    _http: httpx.Client | None = field(default=None, repr=False)

    def flow(self, flow_id: str) -> dict[str, Any] | None:
        return self.catalog.get_flow(flow_id)

    def flows_starting_with(self, prefix: str) -> list[tuple[str, str | None]]:
        from tams_analytics.catalog.flow_guard import flows_starting_with

        return flows_starting_with(self.catalog, prefix)

    def count(self, flow_id: str, timerange: TimeRange) -> int | None:
        return self.catalog.count("segments", _where(flow_id, timerange))

    def pages(self, flow_id: str, timerange: TimeRange) -> Iterator[list[SegmentRef]]:
        after: int | None = None
        while True:
            where = _where(flow_id, timerange)
            if after is not None:
                where.append(Term("start_ns", ">", after))
            rows = self.catalog.records(
                "segments",
                where,
                columns=("object_id", "start_ns", "end_ns", "ts_offset", "init_object_id"),
                order_by=[("start_ns", False)],
                limit=self.page,
            )
            if not rows:
                return
            sizes = self.catalog.rows(
                "objects", [isin("id", [r["object_id"] for r in rows])], columns=["id", "size_bytes"]
            )
            size_of = dict(zip(sizes.column("id").to_pylist(), sizes.column("size_bytes").to_pylist(), strict=True))
            yield [
                SegmentRef(
                    r["object_id"],
                    r["start_ns"],
                    r["end_ns"],
                    r.get("ts_offset") or 0,
                    r.get("init_object_id"),
                    size_of.get(r["object_id"]),
                )
                for r in rows
            ]
            if len(rows) < self.page:
                return
            after = rows[-1]["start_ns"]

    def read(self, segment: SegmentRef) -> bytes:
        return self.read_object(segment.object_id)

    def read_init(self, segment: SegmentRef) -> bytes:
        assert segment.init_object_id is not None
        return self.read_object(segment.init_object_id)

    def read_object(self, object_id: str) -> bytes:
        """The object's bytes from its first readable instance."""
        instances = self.catalog.object_instances([object_id]).get(object_id, [])
        if not instances:
            raise MissingObject(object_id, "it has no instances")
        tried = []
        for inst in instances:
            if inst.get("controlled"):
                store = self.stores.get(inst.get("storage_id") or "")
                if store is None:
                    tried.append(f"storage {inst.get('storage_id')} not attached")
                    continue
                try:
                    return store.get_bytes(inst["storage_key"])
                except KeyError:
                    tried.append(f"not in storage {inst.get('storage_id')} (key {inst['storage_key']})")
            elif inst.get("url"):
                if self._http is None:
                    self._http = _client()
                try:
                    return _http_get(self._http, inst["url"], object_id)
                except MissingObject as exc:
                    tried.append(exc.why)
        raise MissingObject(object_id, "; ".join(tried))


def _where(flow_id: str, timerange: TimeRange) -> list[Any]:
    from tams_analytics.catalog import segment_page_where

    return segment_page_where(flow_id, None if timerange.is_eternity else timerange)


def resolve_storage_id(catalog: Catalog, given: str | None = None) -> str | None:
    """The storage backend whose instances a store holds: ``given``, else the catalog's default backend,
    else the only backend its controlled instances use (None: no controlled instances at all)."""
    if given:
        return given
    backends = catalog.table("storage_backends")
    default = backends.filter(backends.default_storage.fill_null(False)).select("id").to_pyarrow()
    if default.num_rows == 1:
        return str(default.column("id")[0].as_py())
    inst = catalog.table("object_instances")
    used = inst.filter(inst.controlled.fill_null(False) & inst.storage_id.notnull()).select("storage_id").distinct()
    ids = sorted(used.limit(11).to_pyarrow().column("storage_id").to_pylist())
    if len(ids) > 1:
        raise TamsError(f"objects live in several storage backends; name one (one of {', '.join(ids[:10])})")
    return ids[0] if ids else None


# -- a TAMS server --------------------------------------------------------------------------------------------
def _answered(response: httpx.Response, what: str) -> TamsError:
    """The error for an API answer other than 200: its status and ``error.json`` summary; for 401 and 403, where
    the credentials come from (:func:`~tams_analytics.engines.tams_http.auth.credentials_refused`)."""
    from tams_analytics.engines.tams_http.auth import credentials_refused

    try:
        body = response.json()
    except ValueError:
        body = None
    summary = body.get("summary") if isinstance(body, dict) else None
    said = f"{what} answered HTTP {response.status_code}" + (f": {summary}" if summary else "")
    return credentials_refused(said) if response.status_code in (401, 403) else TamsError(said)


def rest_segment_pages(
    client: httpx.Client, base_url: str, flow_id: str, timerange: TimeRange, page: int = PAGE
) -> Iterator[list[dict[str, Any]]]:
    """``flow-segment.json`` documents of a flow over ``timerange``, a page at a time, from a TAMS API."""
    url: str | None = f"{base_url.rstrip('/')}/flows/{quote(flow_id, safe='')}/segments"
    params: dict[str, Any] | None = {"limit": page}
    if not timerange.is_eternity:
        params = {**(params or {}), "timerange": str(timerange)}
    while url:
        r = client.get(url, params=params)
        if r.status_code != 200:
            raise _answered(r, f"GET {url}")
        yield r.json()
        url = r.links.get("next", {}).get("url")
        params = None  # the next link carries them


@dataclass
class ServerMedia:
    """Media through a TAMS server: its segment listings and their ``get_urls`` (pre-signed: no credentials)."""

    base_url: str
    token: str | None = None
    page: int = PAGE
    #: the headers that sign each API request (``tams_analytics.engines.tams_http.auth``), besides ``token``
    auth: Callable[[], Mapping[str, str]] | None = field(default=None, repr=False)
    _api: Any = field(default=None, repr=False)
    _media: Any = field(default=None, repr=False)

    def __post_init__(self) -> None:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        self._api = _client()
        self._api.headers.update(headers)
        if self.auth is not None:
            sign = self.auth
            self._api.event_hooks["request"].append(lambda request: request.headers.update(sign()))
        self._media = _client()

    @classmethod
    def from_env(cls, base_url: str) -> ServerMedia:
        """A source for ``base_url`` with the credentials the ``tams+http`` engine would use: the URL's user info,
        else ``TAMS_HTTP_TOKEN``, ``TAMS_HTTP_USERNAME``/``TAMS_HTTP_PASSWORD`` or OAuth2 client credentials."""
        from urllib.parse import urlsplit

        from tams_analytics.engines.tams_http.auth import auth_from

        return cls(base_url, auth=auth_from(urlsplit(base_url)))

    def flow(self, flow_id: str) -> dict[str, Any] | None:
        import httpx

        try:
            r = self._api.get(f"{self.base_url.rstrip('/')}/flows/{quote(flow_id, safe='')}")
        except httpx.HTTPError as exc:
            raise TamsError(f"cannot reach {self.base_url}: {exc}") from exc
        if r.status_code == 404:
            return None
        if r.status_code != 200:
            raise _answered(r, f"GET /flows/{flow_id}")
        return cast(dict[str, Any], r.json())

    def flows_starting_with(self, prefix: str) -> list[tuple[str, str | None]]:
        """Read from ``GET /flows``, page by page (the API filters flows by label, not by the start of an id)."""
        from tams_analytics.catalog.flow_guard import NAMED_FLOWS

        found: list[tuple[str, str | None]] = []
        url: str | None = f"{self.base_url.rstrip('/')}/flows"
        params: dict[str, Any] | None = {"limit": PAGE}
        while url and len(found) <= NAMED_FLOWS:
            r = self._api.get(url, params=params)
            if r.status_code != 200:
                break
            found += [(d["id"], d.get("label")) for d in r.json() if str(d.get("id", "")).startswith(prefix.lower())]
            url, params = r.links.get("next", {}).get("url"), None
        return sorted(found)[: NAMED_FLOWS + 1]

    def count(self, flow_id: str, timerange: TimeRange) -> int | None:
        return None

    def pages(self, flow_id: str, timerange: TimeRange) -> Iterator[list[SegmentRef]]:
        for docs in rest_segment_pages(self._api, self.base_url, flow_id, timerange, self.page):
            yield [_segment_ref(d) for d in docs]

    def read(self, segment: SegmentRef) -> bytes:
        return self._read(segment.object_id, segment.urls)

    def read_init(self, segment: SegmentRef) -> bytes:
        assert segment.init_object_id is not None
        return self._read(segment.init_object_id, segment.init_urls)

    def _read(self, object_id: str, urls: Sequence[str]) -> bytes:
        if not urls:
            raise MissingObject(object_id, "the server gives no get_urls for it")
        tried = []
        for url in urls:
            try:
                return _http_get(self._media, url, object_id)
            except MissingObject as exc:
                tried.append(exc.why)
        raise MissingObject(object_id, "; ".join(tried))


def _segment_ref(doc: Mapping[str, Any]) -> SegmentRef:
    from tams_analytics.timestamp import Timestamp

    start, end = TimeRange.from_str(doc["timerange"]).storage_bounds()
    init = doc.get("init_object") or {}
    offset = doc.get("ts_offset")
    return SegmentRef(
        doc["object_id"],
        start,
        end,
        Timestamp.from_str(offset).ns if offset else 0,
        init.get("object_id"),
        None,
        tuple(u["url"] for u in doc.get("get_urls") or []),
        tuple(u["url"] for u in init.get("get_urls") or []),
    )


def store_media(
    catalog: Catalog,
    storage: ObjectStore | str | Mapping[str, ObjectStore],
    *,
    storage_id: str | None = None,
    s3_endpoint: str | None = None,
    s3_region: str = "us-east-1",
) -> StoreMedia:
    """A :class:`StoreMedia` for ``catalog`` over ``storage``: a spec (``local:DIR`` or ``s3://BUCKET[/PREFIX]``)
    holding the instances of ``storage_id`` (default: see :func:`resolve_storage_id`), an ``ObjectStore``
    (holding those of ``storage_id``, default its own id), or ``{storage_id: ObjectStore}``."""
    if isinstance(storage, str):
        from tams_analytics.storage.spec import open_storage

        sid = resolve_storage_id(catalog, storage_id)
        if sid is None:
            raise TamsError("the catalog has no controlled object instances: there is nothing to read from storage")
        return StoreMedia(catalog, {sid: open_storage(storage, s3_endpoint=s3_endpoint, s3_region=s3_region)})
    if isinstance(storage, Mapping):
        return StoreMedia(catalog, dict(storage))
    return StoreMedia(catalog, {storage_id or storage.info.id: storage})
