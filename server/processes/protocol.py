"""The messages between an HTTP process and the store process, and how they travel.

Each message is a frozen dataclass named for what it carries. A frame is a 4-byte big-endian length and the message
pickled (protocol 5): both ends run the same code, which :class:`Hello` checks (:data:`VERSION` and the package's
version) before anything else is sent, and the socket lives in a folder only the server's user can enter (pickle
must never be read from anyone else). An HTTP process numbers its calls; the store process answers each with a
:class:`Reply` carrying the same number, in any order.

A forwarded answer whose body outgrows :data:`STREAM_AFTER_BYTES` (a backup's tar, say) is not collected whole: its
:class:`Forwarded` reply carries the body so far (``streamed``), and the rest follows as :class:`Part` messages, one
for each :class:`More` the HTTP process sends when it has passed the one before to its client. So neither process
holds more than a part of it, its size is not bounded by a frame, and a client that stops reading stops the store
process's app too (:class:`More` with ``stop``: its response is ended; the same when the connection is lost).
"""

from __future__ import annotations

import importlib
import pickle
import struct
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from tams_analytics.catalog import AddResult, Registration
from tams_analytics.exceptions import TamsError

__all__ = [
    "VERSION",
    "Call",
    "Edges",
    "FetchLiveEdges",
    "FetchPage",
    "Forward",
    "Forwarded",
    "Hello",
    "KeepPage",
    "KeptPage",
    "LiveEdgeRows",
    "More",
    "PageRows",
    "Part",
    "Refusal",
    "Register",
    "Reply",
    "StoreProcessError",
    "Welcome",
    "decode",
    "encode",
    "frame_length",
]

#: bumped whenever a message changes: an HTTP process and a store process of different versions refuse each other
VERSION: Final = 4
#: the frame header: the length of the pickled message
_HEADER = struct.Struct(">I")
HEADER_BYTES: Final = _HEADER.size
#: the largest message (a forwarded request body is bounded by TAMS_MAX_BODY_BYTES, 64 MiB by default)
MAX_FRAME_BYTES: Final = 1 << 30
#: a forwarded answer's body beyond this is streamed (:class:`Part`), not collected into one frame
STREAM_AFTER_BYTES: Final = 256 << 10


@dataclass(frozen=True)
class Hello:
    """An HTTP process introducing itself: the protocol and package versions it speaks, and its process id."""

    version: int
    package: str
    pid: int


@dataclass(frozen=True)
class Welcome:
    """The store process's answer to :class:`Hello`: ``refused`` says why it will not talk (None: it will)."""

    version: int
    package: str
    pid: int
    refused: str | None = None
    #: the number of the last :class:`Edges` sent before this (the next ones follow on this connection)
    seq: int = 0
    #: whether the store process sends :class:`Edges` (it does when its read cache is on)
    edges: bool = False


@dataclass(frozen=True)
class Register:
    """A registration of segments (a POST's), for the store process's group commit; answered with its
    :class:`~tams_analytics.catalog.AddResult`."""

    registration: Registration


@dataclass(frozen=True)
class FetchPage:
    """What a segments page shows: answered with the page rendered before and still current (:class:`KeptPage`),
    or with the rows and their objects' instance rows to render it from (:class:`PageRows`). ``key`` is the page's
    :func:`~server.page_cache.page_key`; the rest is the parsed query."""

    key: Hashable
    flow_id: str
    limit: int
    timerange: str | None
    object_id: str | None
    after: int | None
    reverse: bool
    with_object_tr: bool
    #: the reader wants no ``get_urls`` (the instances are not needed)
    wants_urls: bool


@dataclass(frozen=True)
class KeptPage:
    """A page rendered before and still what rendering it again would give."""

    body: bytes
    headers: Mapping[str, str]


@dataclass(frozen=True)
class PageRows:
    """A page's rows (one more than the page, when another follows), its objects' instance rows and timeranges
    (when asked), and ``ticket``: the number to give :class:`KeepPage` once it is rendered (None: it cannot be
    kept)."""

    rows: Sequence[Mapping[str, Any]]
    instances: Mapping[str, tuple[Mapping[str, Any], ...]]
    object_timeranges: Mapping[str, str | None] | None
    ticket: int | None
    #: the number of the last :class:`Edges` sent before the rows were read (they show at least what it had)
    seq: int | None = None


@dataclass(frozen=True)
class FetchLiveEdges:
    """The newest ``rows`` segments of each live flow (at most ``flows`` of them: those whose segments changed
    most recently, within the store's preload window), for an HTTP process that has just connected to start its copy
    of live edges with (:mod:`.edges`): answered with :class:`LiveEdgeRows`."""

    flows: int
    rows: int


@dataclass(frozen=True)
class LiveEdgeRows:
    """The answer to :class:`FetchLiveEdges`: each flow's newest segments' rows (newest first, at most the ``rows``
    asked: fewer when the flow has no more), the instance rows of their objects, and, as :class:`PageRows`, the number
    of the last :class:`Edges` sent before they were read."""

    pages: Mapping[str, tuple[Mapping[str, Any], ...]]
    instances: Mapping[str, tuple[Mapping[str, Any], ...]]
    rows: int
    seq: int | None = None


@dataclass(frozen=True)
class Edges:
    """From the store process to every HTTP process, once a write has committed and before anything it wrote is
    acknowledged (:mod:`.edges`): numbered ``seq``, the flows' new segments' rows (newest first) with the flow's size
    when they are its newest (None: not known), the instance rows of their objects, and the flows and objects whose
    other changes drop what an HTTP process keeps of them (``everything``: all of it)."""

    seq: int
    appended: Mapping[str, tuple[tuple[Mapping[str, Any], ...], int | None]]
    instances: Mapping[str, tuple[Mapping[str, Any], ...]]
    stale_flows: frozenset[str]
    stale_objects: frozenset[str]
    everything: bool = False
    #: flows whose new segments were more than those sent (only the newest are): they have older ones
    cut: frozenset[str] = frozenset()


@dataclass(frozen=True)
class KeepPage:
    """A page an HTTP process rendered from :class:`PageRows` with ``ticket``, for the store process's page cache
    (no answer)."""

    ticket: int
    key: Hashable
    body: bytes
    headers: Mapping[str, str]
    #: until when (``time.monotonic``, the same clock in every process) its oldest URL list is handed out again
    fresh_until: float


@dataclass(frozen=True)
class Forward:
    """An HTTP request the HTTP process does not answer itself, for the store process's app: the ASGI scope's
    fields that travel, and the whole body."""

    method: str
    scheme: str
    server: tuple[str, int] | None
    client: tuple[str, int] | None
    root_path: str
    path: str
    raw_path: bytes
    query_string: bytes
    headers: Sequence[tuple[bytes, bytes]]
    http_version: str
    body: bytes


@dataclass(frozen=True)
class Forwarded:
    """The store process's app's answer to a :class:`Forward`: status, header fields and the whole body, and the
    template of the route that answered (None: no route matched), for the HTTP process's metrics."""

    status: int
    headers: Sequence[tuple[bytes, bytes]]
    body: bytes
    route: str | None = None
    #: the body is only its beginning: the rest follows as :class:`Part` messages, one per :class:`More`
    streamed: bool = False


@dataclass(frozen=True)
class More:
    """From an HTTP process: send the next :class:`Part` of the streamed answer to call ``number``; with ``stop``,
    send no more (its client went away): the store process's app is told the response cannot be sent."""

    number: int
    stop: bool = False


@dataclass(frozen=True)
class Part:
    """From the store process: the next piece of the streamed answer to call ``number``; ``last`` ends it, and
    ``failed`` says the app failed before its body was complete (the HTTP process drops the connection: the status
    is sent already)."""

    number: int
    data: bytes
    last: bool = False
    failed: str | None = None


@dataclass(frozen=True)
class Call:
    """One call of an HTTP process: its number and what it asks (``None`` for a message that wants no answer)."""

    number: int | None
    message: Register | FetchPage | FetchLiveEdges | KeepPage | Forward | More


@dataclass(frozen=True)
class Refusal:
    """A library error (a :class:`~tams_analytics.exceptions.TamsError`) that refused a call, as it travels: its
    class, arguments and attributes. :meth:`error` makes the same error again on the other side without calling its
    ``__init__`` (some take other arguments than the ``args`` they keep). Anything else that went wrong in the store
    process travels as its words only (:data:`INTERNAL`)."""

    module: str
    name: str
    args: tuple[Any, ...]
    state: Mapping[str, Any]

    @classmethod
    def of(cls, exc: BaseException) -> Refusal:
        if isinstance(exc, TamsError):
            return cls(type(exc).__module__, type(exc).__qualname__, exc.args, dict(vars(exc)))
        return cls(INTERNAL, type(exc).__name__, (str(exc),), {})

    def error(self) -> Exception:
        if self.module == INTERNAL:
            return StoreProcessError(f"the store process failed: {self.name}: {self.args[0] if self.args else ''}")
        try:
            kind = getattr(importlib.import_module(self.module), self.name)
        except (ImportError, AttributeError):
            kind = TamsError
        error: Exception = kind.__new__(kind)
        error.args = self.args
        vars(error).update(self.state)
        return error


#: :attr:`Refusal.module` of an error that is not the library's
INTERNAL: Final = "<internal>"


class StoreProcessError(RuntimeError):
    """Something other than a library error went wrong in the store process (logged there): a 500 here."""


@dataclass(frozen=True)
class Reply:
    """The answer to call ``number``: a value, or what refused it (raised again by the caller)."""

    number: int
    value: AddResult | KeptPage | PageRows | LiveEdgeRows | Forwarded | None = None
    refusal: Refusal | None = field(default=None)


def encode(message: object) -> bytes:
    """``message`` as one frame."""
    payload = pickle.dumps(message, protocol=5)
    return _HEADER.pack(len(payload)) + payload


def frame_length(header: bytes) -> int:
    """The length of the message whose frame begins with ``header`` (:data:`HEADER_BYTES` bytes)."""
    (length,) = _HEADER.unpack(header)
    if length > MAX_FRAME_BYTES:
        raise ValueError(f"a frame of {length} bytes: not from a peer of this protocol")
    return int(length)


def decode(payload: bytes) -> Any:
    """The message a frame's payload carries."""
    return pickle.loads(payload)
