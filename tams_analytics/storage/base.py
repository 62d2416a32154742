"""The media object storage interface shared by the S3 and local backends.

A TAMS store never moves media bytes through its API: it hands clients pre-signed URLs and
the clients talk to the object store directly. ``ObjectStore`` is therefore mostly about
issuing URLs that carry their own authorisation, plus the few server-side operations the
store needs itself (existence/size checks, deletion, copying between backends).
"""

from __future__ import annotations

import heapq
import operator
import threading
import time
import uuid
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from types import TracebackType
from typing import Any, BinaryIO, Generic, Protocol, TypeVar, runtime_checkable
from urllib.parse import quote

from tams_analytics.exceptions import StoreUnavailableError
from tams_analytics.nonblocking import may_block
from tams_analytics.storage.extensions import media_extension

V = TypeVar("V")

#: the storage backend id a TAMS server of this package uses by default (``TAMS_STORAGE_ID``): the demo
#: command writes its objects' instances for it, so ``serve`` on the same data finds them
DEFAULT_STORAGE_ID = "8b2f4a6e-4d2c-4c3b-9a57-3f0e2d1c6b5a"


class StorageError(Exception):
    """An object store operation failed for a reason other than a missing object."""


class Unavailable(StrEnum):
    """Why object storage cannot serve this server (:class:`ObjectStorageUnavailable`): each is also the state
    the server's health shows for it."""

    #: no credentials were given, nor found where the client library looks (environment, files)
    NO_CREDENTIALS = "no_credentials"
    #: the credentials were refused (an unknown access key, a wrong secret, access denied)
    CREDENTIALS_REFUSED = "credentials_refused"
    #: the bucket does not exist
    NO_SUCH_BUCKET = "no_such_bucket"
    #: the endpoint cannot be reached, times out, fails (5xx), or does not answer as S3 does
    UNREACHABLE = "unreachable"
    #: a local store's folder cannot be written
    NOT_WRITABLE = "not_writable"


class ObjectStorageUnavailable(StorageError, StoreUnavailableError):
    """Object storage cannot serve this server now (HTTP 503): ``where`` names it (bucket and endpoint, or
    folder), ``cause`` says why (:class:`Unavailable`), the message says both in words. Raised where the fault
    is born, by the store's own operations and by :meth:`ObjectStore.check`; never carries a secret."""

    def __init__(self, where: str, cause: Unavailable, detail: str) -> None:
        super().__init__(f"{where}: {detail}", part="object_storage")
        self.where = where
        self.cause = cause
        self.detail = detail


@dataclass(frozen=True)
class StorageBackendInfo:
    """Description of one storage backend, as exposed at TAMS ``/service/storage-backends``."""

    id: str
    label: str
    provider: str
    store_product: str
    store_type: str = "http_object_store"
    region: str | None = None
    availability_zone: str | None = None
    default_storage: bool = False
    tags: dict[str, str | list[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        try:
            canonical = str(uuid.UUID(self.id))
        except (ValueError, AttributeError, TypeError) as exc:
            raise ValueError(f"storage backend id must be a UUID string, got {self.id!r}") from exc
        if canonical != self.id:
            raise ValueError(f"storage backend id must be a lowercase hyphenated UUID, got {self.id!r}")

    def to_json(self) -> dict[str, Any]:
        """The TAMS ``storage-backend.json`` body."""
        body: dict[str, Any] = {
            "id": self.id,
            "label": self.label,
            "store_type": self.store_type,
            "provider": self.provider,
            "store_product": self.store_product,
        }
        if self.region is not None:
            body["region"] = self.region
        if self.availability_zone is not None:
            body["availability_zone"] = self.availability_zone
        if self.default_storage:
            body["default_storage"] = True
        if self.tags:
            body["tags"] = dict(self.tags)
        return body

    def url_metadata(self) -> dict[str, Any]:
        """Backend fields allowed inside a verbose TAMS ``get_urls`` item."""
        meta: dict[str, Any] = {
            "storage_id": self.id,
            "store_type": self.store_type,
            "provider": self.provider,
            "store_product": self.store_product,
        }
        if self.region is not None:
            meta["region"] = self.region
        if self.availability_zone is not None:
            meta["availability_zone"] = self.availability_zone
        if self.tags:
            meta["tags"] = dict(self.tags)
        return meta


@dataclass(frozen=True)
class PutUrl:
    """A pre-signed upload: the client PUTs the bytes to ``url`` sending ``headers``."""

    url: str
    content_type: str
    headers: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The TAMS ``http-request.json`` shape used for ``put_url``."""
        body: dict[str, Any] = {"url": self.url, "content-type": self.content_type}
        if self.headers:
            body["headers"] = dict(self.headers)
        return body


@dataclass
class ObjectStream:
    """An open object being read: a file-like ``body`` plus what is needed to re-store it.

    Used as a context manager so the underlying file or HTTP response is always closed.
    """

    body: BinaryIO
    size: int
    content_type: str

    def __enter__(self) -> ObjectStream:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.body.close()


class ReadableStore(Protocol):
    """Where ``ObjectStore.copy_from`` can copy from: anything that opens a key for reading."""

    def open_read(self, key: str) -> ObjectStream: ...


@runtime_checkable
class ObjectStore(Protocol):
    """What the TAMS server needs from a media object storage backend."""

    info: StorageBackendInfo

    def put_url(self, key: str, content_type: str, expires_s: int) -> PutUrl:
        """A pre-signed URL a credential-less client can PUT the object to."""
        ...

    def get_url(self, key: str, expires_s: int) -> str:
        """A pre-signed URL a credential-less client can GET the object from. A store whose signing is
        slow (a network library, not a local HMAC) calls :func:`~tams_analytics.nonblocking.may_block`
        before signing: under ``memory_only`` it answers only from URLs it minted recently."""
        ...

    def playable_url(self, url: str, extension: str) -> str:
        """``url`` as a player that checks a segment URL's extension accepts it (HLS playlists): ``url`` itself
        when it is not this store's or its path ends in ``.extension`` already; a store that can add the
        extension to the path of a URL it minted for a key without one (stored before keys had extensions)
        does, one that cannot (S3: the path is the key) returns ``url``."""
        ...

    def head(self, keys: Sequence[str]) -> dict[str, int | None]:
        """Size in bytes of each key, or None when it does not exist."""
        ...

    def put_bytes(self, key: str, data: bytes, content_type: str) -> None:
        """Store a small object directly."""
        ...

    def get_bytes(self, key: str) -> bytes:
        """Read a whole object; raises ``KeyError`` when it does not exist."""
        ...

    def open_read(self, key: str) -> ObjectStream:
        """Open an object for streaming reads; raises ``KeyError`` when it does not exist."""
        ...

    def delete(self, keys: Sequence[str]) -> None:
        """Delete objects; keys that do not exist are not an error."""
        ...

    def copy_from(self, source: ReadableStore, key: str) -> None:
        """Copy ``key`` from another store into this one (same key), streaming."""
        ...

    def check(self) -> str:
        """Whether this store can serve now, by one light request (S3: a listing of at most one key; local: a
        file written and removed): a line saying what answered, or :class:`ObjectStorageUnavailable` saying
        where and why not."""
        ...


class ReuseWindow(Generic[V]):
    """Values minted recently, by key, handed out again for a twentieth of their lifetime, while the
    ``basis`` they were built from is the very same (None: no basis to check; a tuple: the same objects).

    Serves minted GET URLs (:class:`RecentUrls`) and whole ``get_urls`` lists
    (:class:`~server.urls.MintedUrlLists`), which are made of URLs handed out again themselves: a URL is at most a
    twentieth of its lifetime old when a list takes it, and the list is handed out for another twentieth, so a
    reader never gets a URL living less than 90 % of what the service promises (each window a tenth, as before,
    let a URL reach a reader with 80 % left).

    A value is forgotten as soon as its window has passed (each :meth:`put` drops those whose window ended, by a heap
    of their ends), so what is held is what a window's reads minted, not everything since the server started: a
    server that ran for hours under live readers otherwise held every list it ever made (a new one for each newly
    read object, a few hundred bytes each) and its memory grew all day. ``capacity`` bounds it still: when full,
    everything is forgotten at once.
    """

    #: the share of a value's lifetime during which it is handed out again (half the tenth a reader may lose: see
    #: the class docstring)
    REUSE_FRACTION = 0.05

    def __init__(self, *, capacity: int = 100_000, clock: Callable[[], float] = time.monotonic) -> None:
        self._capacity = capacity
        self._clock = clock
        #: by key: the basis, when it was minted, the value, and when its window ends
        self._values: dict[Hashable, tuple[object, float, V, float]] = {}
        #: ``(window's end, number, key)`` of every value put (a key put again is in it twice: the older is skipped)
        self._ends: list[tuple[float, int, Hashable]] = []
        self._puts = 0
        self._lock = threading.Lock()

    def get(self, key: Hashable, basis: object = None) -> V | None:
        """The value put under ``key`` while its window lasts and its ``basis`` is the same (keys name the lifetime
        their values were minted for: :meth:`put` set the window from it)."""
        hit = self.get_minted(key, basis)
        return hit[0] if hit is not None else None

    def get_minted(self, key: Hashable, basis: object = None) -> tuple[V, float] | None:
        """:meth:`get`, with the time the value was minted (this window's clock)."""
        hit = self._values.get(key)
        if hit is not None and _same(hit[0], basis) and self._clock() < hit[3]:
            return hit[2], hit[1]
        return None

    def now(self) -> float:
        """The time to give :meth:`put` for a value about to be minted (taken before minting, so
        the window never outlasts the value's share of a lifetime)."""
        return self._clock()

    def put(self, key: Hashable, value: V, minted_at: float, lifetime_s: float, basis: object = None) -> None:
        """Keep ``value``, minted at ``minted_at`` to live ``lifetime_s``, for its window; forget those past theirs."""
        end = minted_at + lifetime_s * self.REUSE_FRACTION
        with self._lock:
            self._forget_ended(self._clock())
            if len(self._values) >= self._capacity:
                self._values.clear()
                self._ends.clear()
            self._values[key] = (basis, minted_at, value, end)
            self._puts += 1
            heapq.heappush(self._ends, (end, self._puts, key))

    def _forget_ended(self, now: float) -> None:
        ends, values = self._ends, self._values
        while ends and ends[0][0] <= now:
            end, _, key = heapq.heappop(ends)
            held = values.get(key)
            if held is not None and held[3] == end:  # not a newer value put under the same key since
                del values[key]

    def __len__(self) -> int:
        return len(self._values)


def _same(a: object, b: object) -> bool:
    """The very same object, or tuples of the very same objects (rows a read cache shares stay the same
    objects while they do not change)."""
    if a is b:
        return True
    if type(a) is not tuple or type(b) is not tuple or len(a) != len(b):
        return False
    # checked for every object of every page: no generator frame (an object has one instance, mostly)
    return a[0] is b[0] if len(a) == 1 else all(map(operator.is_, a, b))


class RecentUrls:
    """GET URLs minted recently, handed out again while at least 90 % of their lifetime is left.

    Every segment of every page carries a freshly authorised GET URL, and readers re-read the same pages
    (the live edge, scrubbing): signing each time (an HMAC for local storage, a SigV4 presign of about
    100 µs for S3) was most of a page's cost.
    """

    def __init__(
        self,
        mint: Callable[[str, int], str],
        *,
        slow: bool = False,
        capacity: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._mint = mint
        #: minting may block (see :mod:`tams_analytics.nonblocking`)
        self._slow = slow
        self._urls: ReuseWindow[str] = ReuseWindow(capacity=capacity, clock=clock)

    def __call__(self, key: str, expires_s: int) -> str:
        """A URL for ``key`` living at least 90 % of ``expires_s``."""
        url = self._urls.get((key, expires_s))
        if url is not None:
            return url
        if self._slow:
            may_block(f"signing a URL for {key}")
        minted_at = self._urls.now()
        url = self._mint(key, expires_s)
        self._urls.put((key, expires_s), url, minted_at, expires_s)
        return url

    def __len__(self) -> int:
        return len(self._urls)


def encode_segment(text: str) -> str:
    """Percent-encode ``text`` into a single path segment that is never a dot-segment.

    ``quote(text, safe="")`` encodes ``/`` but leaves ``.`` alone, so the texts ``.`` and
    ``..`` would come out unchanged and be treated as relative path steps by URL resolvers and
    file systems. Those two are encoded as ``%2E``. The mapping stays injective: ``quote``
    never produces ``%2E`` itself (it would encode the ``%`` as ``%25``).
    """
    if not text:
        raise ValueError("an object key must not be empty")
    encoded = quote(text, safe="")
    if encoded in (".", ".."):
        encoded = "%2E" * len(encoded)
    return encoded


def object_key(object_id: str, content_type: str | None = None, *, fragmented: bool = False) -> str:
    """The storage key for a TAMS media object id, ending in the extension of its media type.

    Derived only from the object id and its media type (never a flow id or date) so one stored
    object can be referenced from many flows. Ids may contain ``/`` and ``..``; percent-encoding
    makes the key a single opaque segment, so ``a/b`` and ``a%2Fb`` map to different keys. The
    extension (:func:`~tams_analytics.storage.extensions.media_extension`; ``fragmented``: of a flow
    with initialisation segments) is always appended, even to an id that ends in one already, so
    no two ids share a key; a type without a known extension keeps the bare encoded id, as every key
    did before extensions (such keys stay valid: a key is stored with each instance, never derived
    again).

    >>> object_key("3f2a", "video/mp2t"), object_key("clip.ts", "video/mp2t"), object_key("a/b")
    ('3f2a.ts', 'clip.ts.ts', 'a%2Fb')
    """
    key = encode_segment(object_id)
    extension = media_extension(content_type, fragmented=fragmented)
    return f"{key}.{extension}" if extension else key
