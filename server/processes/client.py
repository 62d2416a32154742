"""An HTTP process's connection to the store process (:mod:`.store`), on its event loop.

Calls are numbered and answered in any order (:mod:`.protocol`); one task reads the answers. While the store
process cannot be reached (it is starting, or restarting after a crash), a call fails at once with
:class:`~tams_analytics.exceptions.StoreUnavailableError` (a 503 with ``Retry-After``) and the client keeps trying
to connect in the background; a call in flight when the connection is lost fails the same way, saying its outcome is
unknown when it was a write.

The client also keeps the HTTP process's copy of live edges (:mod:`.edges`): it applies each
:class:`~.protocol.Edges` as it arrives, and :meth:`StoreClient.edge_page` answers an edge query from the copy once
every update counted before it was asked has been applied. Once connected, it starts that copy with the newest
segments of the store's live flows (:class:`~.protocol.FetchLiveEdges`), so that after a restart the readers of
every resuming flow are answered here from their first read, not by the store process while its writer takes every
recorder's first POST; :meth:`StoreClient.start` waits for that too.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
from collections.abc import AsyncIterator
from typing import Any

from server.processes import protocol
from server.processes.edges import EDGE_ROWS, EdgePage, LiveEdges, SharedSeq, edge_query, seq_path
from server.processes.protocol import (
    Call,
    Edges,
    FetchLiveEdges,
    FetchPage,
    Forward,
    Forwarded,
    Hello,
    KeepPage,
    LiveEdgeRows,
    More,
    PageRows,
    Part,
    Register,
    Reply,
    Welcome,
)
from tams_analytics import __version__
from tams_analytics.catalog import AddResult, Registration
from tams_analytics.exceptions import StoreUnavailableError
from tams_analytics.ratelog import RepeatedLog

__all__ = ["ForwardedStream", "StoreClient"]

logger = logging.getLogger(__name__)
_unreachable = RepeatedLog(logger)


class StoreClient:
    """The connection to the store process at the Unix socket ``path`` (see the module docstring)."""

    def __init__(self, path: str, *, retry_s: float = 0.2, catch_up_s: float = 1.0) -> None:
        self.path = path
        self.retry_s = retry_s
        #: how long an edge query waits for updates still on their way before it asks the store process instead
        self.catch_up_s = catch_up_s
        self.edges = LiveEdges()
        #: the number of the last :class:`~.protocol.Edges` applied (-1: none are, the copy is not used)
        self._applied = -1
        self._shared: SharedSeq | None = None
        self._advanced = asyncio.Event()
        #: the calls in flight whose answers may start the copy, by call number: edge queries (a flow's) and
        #: :class:`~.protocol.FetchLiveEdges` (every live flow's)
        self._asks: dict[int, FetchPage | FetchLiveEdges] = {}
        #: set once the copy was started on the current connection (or could not be)
        self._seeded = asyncio.Event()
        self._numbers = itertools.count(1)
        self._pending: dict[int, tuple[asyncio.Future[Any], bool]] = {}
        self._streams: dict[int, ForwardedStream] = {}
        self._writer: asyncio.StreamWriter | None = None
        self._connected = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    async def start(self, *, wait_s: float = 0.0) -> None:
        """Connect in the background (and keep reconnecting); wait up to ``wait_s`` for the first connection and the
        copy of live edges it starts."""
        self._task = asyncio.create_task(self._run())
        if wait_s:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait_s):
                    await self._connected.wait()
                    await self._seeded.wait()

    async def close(self) -> None:
        self._closing = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._writer is not None:
            self._writer.close()

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    # -- calls ---------------------------------------------------------------------------------------------------
    def queue(self, registration: Registration) -> asyncio.Future[AddResult]:
        """The registration, for the store process's group commit: a future of its result (as the in-process
        segment writer's ``queue``)."""
        return self._call(Register(registration), write=True)

    async def fetch_page(self, ask: FetchPage) -> Any:
        return await self._call(ask, write=False, starts_copy=edge_query(ask))

    async def edge_page(self, flow_id: str, limit: int, *, wants_urls: bool) -> EdgePage | None:
        """An edge query's page from this process's copy (:mod:`.edges`), once it has applied every update the store
        process counted before now; None when the copy cannot answer it (ask :meth:`fetch_page`)."""
        shared = self._shared
        if shared is None or self._applied < 0 or not self.connected:
            return None
        target = shared.read()
        if self._applied < target and not await self._catch_up(target):
            return None
        return self.edges.page(flow_id, limit, wants_urls=wants_urls)

    async def _catch_up(self, target: int) -> bool:
        """Wait until the update numbered ``target`` is applied (False: the time ran out, or the connection is
        lost)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.catch_up_s
        while self._applied < target:
            remaining = deadline - loop.time()
            if remaining <= 0 or self._applied < 0:
                return False
            try:
                await asyncio.wait_for(self._advanced.wait(), remaining)
            except TimeoutError:
                return False
        return True

    async def forward(self, request: Forward) -> Forwarded | ForwardedStream:
        """The store process's app's answer to ``request``: whole, or a :class:`ForwardedStream` of a large body."""
        answer: Forwarded | ForwardedStream = await self._call(request, write=request.method not in ("GET", "HEAD"))
        return answer

    def keep_page(self, page: KeepPage) -> None:
        """Hand a rendered page to the store process's page cache (no answer; dropped while disconnected)."""
        if self._writer is not None and self.connected:
            self._writer.write(protocol.encode(Call(None, page)))

    def _call(
        self, message: Register | FetchPage | FetchLiveEdges | Forward, *, write: bool, starts_copy: bool = False
    ) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        writer = self._writer
        if writer is None or not self.connected:
            future.set_exception(
                StoreUnavailableError(
                    "the store process is not running (it is starting, or restarting): nothing was stored; retry"
                )
            )
            return future
        number = next(self._numbers)
        self._pending[number] = (future, write)
        if starts_copy and isinstance(message, FetchPage | FetchLiveEdges):
            self._asks[number] = message
        writer.write(protocol.encode(Call(number, message)))
        return future

    # -- the connection ------------------------------------------------------------------------------------------
    async def _run(self) -> None:
        while not self._closing:
            try:
                reader, writer = await asyncio.open_unix_connection(self.path, limit=1 << 20)
            except OSError as exc:
                _unreachable.log(
                    logging.WARNING, "connect", "the store process at %s cannot be reached: %s", self.path, exc
                )
                await asyncio.sleep(self.retry_s)
                continue
            try:
                writer.write(protocol.encode(Hello(protocol.VERSION, __version__, os.getpid())))
                await writer.drain()
                welcome = await _read(reader)
                if not isinstance(welcome, Welcome) or welcome.refused is not None:
                    why = welcome.refused if isinstance(welcome, Welcome) else "no welcome"
                    logger.error("the store process refused this HTTP process: %s", why)
                    writer.close()
                    await asyncio.sleep(5 * self.retry_s)
                    continue
                self._follow(welcome)
                self._writer = writer
                self._connected.set()
                logger.info("connected to the store process (PID %s)", welcome.pid)
                self._seed_live_edges()
                await self._read_replies(reader)
            except (asyncio.IncompleteReadError, ConnectionError, OSError):
                pass
            finally:
                self._connected.clear()
                self._unfollow()
                self._writer = None
                writer.close()
                self._fail_pending()
            if not self._closing:
                logger.warning("lost the store process; reconnecting")
                await asyncio.sleep(self.retry_s)

    def _follow(self, welcome: Welcome) -> None:
        """Start a copy of live edges from this connection's welcome, when the store process feeds them."""
        self.edges.clear()
        if not welcome.edges:
            return
        if self._shared is None:
            try:
                self._shared = SharedSeq(seq_path(self.path))
            except OSError as exc:
                logger.warning("live edges are answered by the store process: %s", exc)
                return
        self._applied = welcome.seq
        self._advance()

    def _unfollow(self) -> None:
        self._applied = -1
        self.edges.clear()
        self._asks.clear()
        self._seeded = asyncio.Event()
        self._advance()

    def _seed_live_edges(self) -> None:
        """Ask for the live flows' newest segments to start the copy with (:meth:`_read_replies` applies the
        answer); :attr:`_seeded` is set once it came, failed, or was not needed."""
        if self._applied < 0:
            self._seeded.set()
            return
        seeded = self._seeded
        future = self._call(FetchLiveEdges(self.edges.max_flows, EDGE_ROWS), write=False, starts_copy=True)

        def done(answer: asyncio.Future[Any]) -> None:
            if not answer.cancelled() and answer.exception() is not None:
                logger.warning("live edges: the live flows could not be read to start the copy: %s", answer.exception())
            seeded.set()

        future.add_done_callback(done)

    def _advance(self) -> None:
        self._advanced.set()
        self._advanced = asyncio.Event()

    async def _read_replies(self, reader: asyncio.StreamReader) -> None:
        while True:
            reply = await _read(reader)
            if isinstance(reply, Edges):
                if self._applied >= 0:
                    self.edges.apply(reply)
                    self._applied = reply.seq
                    self._advance()
                continue
            if isinstance(reply, Part):
                stream = self._streams.get(reply.number)
                if stream is not None:
                    if reply.last:
                        del self._streams[reply.number]
                    stream.parts.put_nowait(reply)
                continue
            if not isinstance(reply, Reply):
                continue
            ask = self._asks.pop(reply.number, None)
            if ask is not None:
                self._start_copy(ask, reply.value)
            waiting = self._pending.pop(reply.number, None)
            if waiting is None or waiting[0].done():
                continue
            future = waiting[0]
            if reply.refusal is not None:
                future.set_exception(reply.refusal.error())
            elif isinstance(reply.value, Forwarded) and reply.value.streamed:
                stream = self._streams[reply.number] = ForwardedStream(self, reply.number, reply.value)
                future.set_result(stream)
            else:
                future.set_result(reply.value)

    def _start_copy(self, ask: FetchPage | FetchLiveEdges, answer: Any) -> None:
        """Start the copy with the answer to ``ask`` if it was read after every update applied here and before any
        other (its ``seq`` is the last applied); a refusal, or an answer overtaken by an update, starts nothing."""
        if not isinstance(answer, PageRows | LiveEdgeRows) or answer.seq != self._applied or self._applied < 0:
            return
        if isinstance(ask, FetchPage) and isinstance(answer, PageRows):
            self.edges.seed(ask, answer)
        elif isinstance(ask, FetchLiveEdges) and isinstance(answer, LiveEdgeRows):
            started = self.edges.seed_flows(answer.pages, answer.instances, fetched=answer.rows)
            logger.info("live edges: the copy starts with %s of %s live flows", started, len(answer.pages))

    def _more(self, number: int, *, stop: bool = False) -> bool:
        """Ask for the next part of streamed answer ``number`` (or, with ``stop``, for no more); False when the
        store process cannot be asked (the connection is lost)."""
        if self._writer is None or not self.connected:
            return False
        self._writer.write(protocol.encode(Call(None, More(number, stop))))
        return True

    def _fail_pending(self) -> None:
        streams, self._streams = self._streams, {}
        for stream in streams.values():
            stream.parts.put_nowait(None)
        pending, self._pending = self._pending, {}
        for future, write in pending.values():
            if not future.done():
                outcome = "it may or may not have been stored: read it back" if write else "retry"
                future.set_exception(StoreUnavailableError(f"the store process stopped while answering: {outcome}"))


async def _read(reader: asyncio.StreamReader) -> Any:
    length = protocol.frame_length(await reader.readexactly(protocol.HEADER_BYTES))
    return protocol.decode(await reader.readexactly(length))


class ForwardedStream:
    """A forwarded answer whose body comes in parts (:mod:`.protocol`): its status, header fields and route, and
    :meth:`body`, which asks for each part once the one before was taken, so that a client reading slowly slows the
    store process's app down instead of filling memory."""

    def __init__(self, client: StoreClient, number: int, head: Forwarded) -> None:
        self.status, self.headers, self.route = head.status, head.headers, head.route
        self.parts: asyncio.Queue[Part | None] = asyncio.Queue()  # None: the connection was lost
        self._client, self._number, self._first = client, number, head.body

    async def body(self) -> AsyncIterator[bytes]:
        """The body, part by part; raises :class:`StoreUnavailableError` if the store process goes away or fails
        mid-way (the client's response then ends short: its status is sent already)."""
        done = False
        try:
            if self._first:
                yield self._first
            while True:
                if not self._client._more(self._number):
                    raise StoreUnavailableError("the store process stopped while sending an answer")
                part = await self.parts.get()
                if part is None:
                    raise StoreUnavailableError("the store process stopped while sending an answer")
                if part.failed is not None:
                    raise StoreUnavailableError(f"the store process failed while sending an answer: {part.failed}")
                if part.data:
                    yield part.data
                if part.last:
                    done = True
                    return
        finally:
            if not done:
                self._client._streams.pop(self._number, None)
                self._client._more(self._number, stop=True)
