"""The store process: the only process that opens the store. It runs the server's app (its services: the engine
stack with the read cache, the segment writer's group commit, the page cache, the background workers) without a
TCP listener, and answers the HTTP processes over a Unix socket (:mod:`.protocol`):

* :class:`~.protocol.Register`: a POST's registration joins the group commit; answered once its batch committed;
* :class:`~.protocol.FetchPage`: a segments page kept and still current, or its rows and instance rows
  (:mod:`.reads`: read as the app reads them: from memory when the read cache holds them, else in a worker thread),
  for the HTTP process to render; :class:`~.protocol.KeepPage` brings the rendered page back to be kept;
* :class:`~.protocol.FetchLiveEdges`: the newest segments of the live flows, for an HTTP process that has just
  connected to start its copy of live edges with (after a restart, its readers' first reads are then answered there,
  not here, while every recorder resumes at once);
* :class:`~.protocol.Forward`: any other request, answered by the app itself;

and, once a write has committed and before anything it wrote is acknowledged, sends every HTTP process what it
changed (:class:`~.protocol.Edges`, :mod:`.edges`), so that they answer live edges' pages themselves.

Every read is answered here, by the one read cache every write updates when it commits, or, for a live edge, by an
HTTP process's copy that has applied every update sent before the read came; so a read in any HTTP process shows
everything acknowledged before it was asked. Per request this process does little Python besides its share of a
batch: parsing, validation, authentication, rendering and live edges happen in the HTTP processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import signal
import socket
import threading
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

from server.config import Settings
from server.processes import protocol
from server.processes.edges import EdgeFeed, SharedSeq, seq_path
from server.processes.protocol import (
    Call,
    Edges,
    FetchLiveEdges,
    FetchPage,
    Forward,
    Forwarded,
    Hello,
    KeepPage,
    More,
    Part,
    Refusal,
    Register,
    Reply,
    Welcome,
)
from server.processes.reads import PageTickets, live_edge_rows, page_rows
from server.processes.supervisor import STOP_TIMEOUT_S
from server.services import Services, services_of
from tams_analytics import __version__
from tams_analytics.cache import CachingEngine
from tams_analytics.exceptions import TamsError
from tams_analytics.nonblocking import WouldBlock, memory_only

__all__ = ["StoreProcess", "run"]

logger = logging.getLogger(__name__)


#: what the store process holds for an HTTP process that does not read (its updates and answers) before it hangs up
MAX_UNREAD_BYTES = 64 << 20


class StoreProcess:
    """The store process's side of the connections: one task per HTTP process, one per call."""

    def __init__(self, app: FastAPI, services: Services) -> None:
        self.app = app
        self.services = services
        self.tickets = PageTickets()
        self._tasks: set[asyncio.Task[None]] = set()
        #: the number of the last :class:`~.protocol.Edges` sent, and where the HTTP processes read it
        self.seq = 0
        self._shared: SharedSeq | None = None
        #: the connections the edges go to
        self._subscribers: set[asyncio.StreamWriter] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None

    @property
    def feeds_edges(self) -> bool:
        return self._shared is not None

    @property
    def connected(self) -> int:
        """How many HTTP processes are connected."""
        return len(self._subscribers)

    async def hung_up(self, timeout_s: float) -> int:
        """Wait until every HTTP process connected has hung up, at most ``timeout_s``; how many are still connected."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while self._subscribers and loop.time() < deadline:
            await asyncio.sleep(0.05)
        return len(self._subscribers)

    def feed_edges(self, shared: SharedSeq) -> None:
        """Send every HTTP process each committed write's :class:`~.protocol.Edges` from now on, numbered on from
        ``shared`` (a restarted store process goes on counting), when the app's store has a read cache (call on the
        event loop, before HTTP processes connect)."""
        engine = self.services.catalog.engine
        if not isinstance(engine, CachingEngine):
            return
        self.seq = shared.read()
        self._shared = shared
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        engine.listen(EdgeFeed(engine, self.publish))

    def publish(self, update: Edges) -> None:
        """Send ``update`` (from any thread): at once on the event loop's thread, else as the loop's next callback,
        which runs before the callbacks that hand the write's outcome to the tasks that acknowledge it."""
        if threading.get_ident() == self._loop_thread:
            self._publish(update)
            return
        loop = self._loop
        if loop is None:
            return
        try:
            loop.call_soon_threadsafe(self._publish, update)
        except RuntimeError:  # the loop is closed: this process is stopping, nobody reads what follows
            pass

    def _publish(self, update: Edges) -> None:
        self.seq += 1
        frame = protocol.encode(dataclasses.replace(update, seq=self.seq))
        for writer in list(self._subscribers):
            if writer.is_closing():
                continue
            if writer.transport.get_write_buffer_size() > MAX_UNREAD_BYTES:
                # an HTTP process that stopped reading (stopped, or hung): hang up rather than hold its updates
                # without bound; it reconnects with an empty copy once it runs again
                logger.warning("store process: an HTTP process has not read %s bytes: disconnected", MAX_UNREAD_BYTES)
                self._subscribers.discard(writer)
                writer.close()
                continue
            writer.write(frame)
        if self._shared is not None:  # counted once it is on its way to every HTTP process
            self._shared.write(self.seq)

    async def connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Serve one HTTP process until it goes away, or until this process stops (cancelled: this task then ends
        quietly, as asyncio's streams of Python 3.11 would log a cancelled connection task as an error)."""
        try:
            await self._serve_connection(reader, writer)
        except asyncio.CancelledError:
            return
        finally:
            writer.close()

    async def _serve_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """One HTTP process's calls, after its hello, until it goes away."""
        hello = await _read(reader)
        if not isinstance(hello, Hello):
            return
        refused = None
        if hello.version != protocol.VERSION or hello.package != __version__:
            refused = (
                f"protocol {hello.version} of tams-analytics {hello.package}: "
                f"this is {protocol.VERSION} of {__version__}"
            )
        welcome = Welcome(protocol.VERSION, __version__, os.getpid(), refused, self.seq, self.feeds_edges)
        writer.write(protocol.encode(welcome))
        if refused is not None:
            await writer.drain()
            logger.error("store process: refused an HTTP process (PID %s): %s", hello.pid, refused)
            return
        self._subscribers.add(writer)  # with the welcome's number, at once: no update is missed or sent twice
        try:
            await writer.drain()
            await self._calls(reader, writer)
        finally:
            self._subscribers.discard(writer)

    async def _calls(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """One HTTP process's calls, until it goes away."""
        #: the streamed answers of this connection still being sent: their pulls (:class:`~.protocol.More`)
        streams: dict[int, asyncio.Queue[bool]] = {}
        try:
            while True:
                try:
                    call = await _read(reader)
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                if isinstance(call.message, More):
                    pulls = streams.get(call.message.number)
                    if pulls is not None:
                        pulls.put_nowait(not call.message.stop)
                    continue
                task = asyncio.create_task(self._answer(call, writer, streams))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
        finally:
            for pulls in streams.values():  # the HTTP process is gone: nobody reads what is left
                pulls.put_nowait(False)

    async def _answer(self, call: Call, writer: asyncio.StreamWriter, streams: dict[int, asyncio.Queue[bool]]) -> None:
        if isinstance(call.message, Forward) and call.number is not None:
            await self._forward(call.number, call.message, writer, streams)
            return
        try:
            value = await self._handle(call.message)
        except Exception as exc:
            if call.number is None:
                logger.warning("store process: %s failed: %s", type(call.message).__name__, exc)
                return
            if not isinstance(exc, TamsError):
                logger.exception("store process: %s failed", type(call.message).__name__)
            reply = Reply(call.number, refusal=Refusal.of(exc))
        else:
            if call.number is None:
                return
            reply = Reply(call.number, value)
        if not writer.is_closing():
            writer.write(protocol.encode(reply))
            await writer.drain()

    async def _handle(self, message: object) -> Any:
        services = self.services
        if isinstance(message, Register):
            return await asyncio.wrap_future(services.segments.queue(message.registration))
        if isinstance(message, FetchPage):
            seq = self.seq if self.feeds_edges else None
            try:
                with memory_only():
                    return page_rows(services, self.tickets, message, seq)
            except WouldBlock:
                return await run_in_threadpool(page_rows, services, self.tickets, message, seq)
        if isinstance(message, FetchLiveEdges):
            seq = self.seq if self.feeds_edges else None
            return await run_in_threadpool(live_edge_rows, services, message, seq)
        if isinstance(message, KeepPage):
            self._keep(message)
            return None
        if isinstance(message, Forward):
            return await forward(self.app, message)
        raise TypeError(f"not a call of this protocol: {type(message).__name__}")

    async def _forward(
        self, number: int, request: Forward, writer: asyncio.StreamWriter, streams: dict[int, asyncio.Queue[bool]]
    ) -> None:
        """``request`` answered by the app: whole in one :class:`~.protocol.Reply`, or streamed once its body
        outgrows :data:`~.protocol.STREAM_AFTER_BYTES` (see :mod:`.protocol`)."""

        async def send(message: object) -> None:
            if not writer.is_closing():
                writer.write(protocol.encode(message))
                await writer.drain()

        stream = _ForwardStream(number, send, streams)
        try:
            answer = await forward(self.app, request, stream)
        except Exception as exc:
            if stream.started:  # the client has its status already: the HTTP process drops the connection
                if not isinstance(exc, ClientGone):
                    logger.warning("store process: a streamed answer failed: %s", exc)
                await send(Part(number, b"", last=True, failed=f"{type(exc).__name__}: {exc}"))
                return
            if not isinstance(exc, TamsError):
                logger.exception("store process: Forward failed")
            await send(Reply(number, refusal=Refusal.of(exc)))
            return
        finally:
            streams.pop(number, None)
        if answer is not None:
            await send(Reply(number, answer))

    def _keep(self, page: KeepPage) -> None:
        pages = self.services.pages
        made_from = self.tickets.redeem(page.ticket)
        if pages is None or made_from is None:
            return
        flow_id, timeline, instances = made_from
        pages.put(
            page.key,
            body=page.body,
            headers=page.headers,
            flow_id=flow_id,
            timeline=timeline,
            instances=instances,
            fresh_until=page.fresh_until,
        )


class ClientGone(ConnectionError):
    """The HTTP process's client stopped reading a streamed answer (or the HTTP process went away)."""


class _ForwardStream:
    """How :func:`forward` sends a body that outgrows one frame: the answer so far in a streamed
    :class:`~.protocol.Forwarded`, then each piece as a :class:`~.protocol.Part` when the HTTP process asks for it."""

    def __init__(self, number: int, send: Callable[[object], Awaitable[None]], streams: dict[int, asyncio.Queue[bool]]):
        self.number = number
        self._send = send
        self._streams = streams
        self._pulls: asyncio.Queue[bool] = asyncio.Queue()
        self.started = False

    async def start(self, head: Forwarded) -> None:
        self._streams[self.number] = self._pulls
        self.started = True
        await self._send(Reply(self.number, head))

    async def part(self, data: bytes, *, last: bool) -> None:
        if not await self._pulls.get():
            raise ClientGone("the client stopped reading the answer")
        await self._send(Part(self.number, data, last=last))


async def forward(app: FastAPI, request: Forward, stream: _ForwardStream | None = None) -> Forwarded | None:
    """``request`` answered by ``app`` (an ASGI call with the request's scope), its answer collected whole or, given
    ``stream``, streamed once its body outgrows :data:`~.protocol.STREAM_AFTER_BYTES` (then None: it is sent)."""
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": request.http_version,
        "method": request.method,
        "scheme": request.scheme,
        "path": request.path,
        "raw_path": request.raw_path,
        "root_path": request.root_path,
        "query_string": request.query_string,
        "headers": list(request.headers),
        "client": request.client,
        "server": request.server,
        "state": {},
    }
    sent = False

    async def receive() -> MutableMapping[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": request.body, "more_body": False}
        await asyncio.Event().wait()  # the client never disconnects mid-request here
        raise AssertionError("unreachable")

    status = 500
    headers: list[tuple[bytes, bytes]] = []
    body: list[bytes] = []
    size = 0
    streaming = False

    async def send(message: MutableMapping[str, Any]) -> None:
        nonlocal status, headers, size, streaming
        if message["type"] == "http.response.start":
            status, headers = message["status"], list(message.get("headers", []))
        elif message["type"] == "http.response.body":
            data, more = message.get("body", b""), message.get("more_body", False)
            if streaming:
                assert stream is not None
                await stream.part(data, last=not more)
                return
            body.append(data)
            size += len(data)
            if stream is not None and more and size > protocol.STREAM_AFTER_BYTES:
                streaming = True
                route = getattr(scope.get("route"), "path_format", None)
                await stream.start(Forwarded(status, headers, b"".join(body), route, streamed=True))
                body.clear()

    await app(scope, receive, send)
    if streaming:
        return None
    route = getattr(scope.get("route"), "path_format", None)
    return Forwarded(status, headers, b"".join(body), route)


async def _read(reader: asyncio.StreamReader) -> Any:
    length = protocol.frame_length(await reader.readexactly(protocol.HEADER_BYTES))
    return protocol.decode(await reader.readexactly(length))


async def serve(settings: Settings, path: str, *, ready: int | None = None) -> None:
    """Run the store process's app and answer HTTP processes on the Unix socket at ``path`` until SIGTERM; write a
    byte to the file descriptor ``ready`` once they may connect.

    SIGINT is left to the process (``python -m server.processes`` ignores it): a Ctrl-C reaches every process of the
    terminal's group, and the supervisor stops the HTTP processes before this one (SIGTERM), so what they have in
    flight is answered while the store is still here. A SIGTERM to the whole group (a service manager's stop,
    ``kill -TERM -PGID``) reaches this process as soon as the HTTP processes: it then takes no new connection and
    answers those it has until the HTTP processes have finished what they had in flight and hung up (at most as long
    as the supervisor waits for them), so the order is the same."""
    from server.app import create_app
    from server.stores import build_stores

    stores = build_stores(settings, check=False)
    app = create_app(settings, stores=stores, workers=True, freeze_gc=settings.gc_freeze, observe_requests=False)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    async with app.router.lifespan_context(app):
        store = StoreProcess(app, services_of(app))
        shared = SharedSeq(seq_path(path), writer=True)
        store.feed_edges(shared)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(path)
        os.chmod(path, 0o600)
        server = await asyncio.start_unix_server(store.connection, sock=listener, backlog=1024)
        logger.info("store process (PID %s) serves the HTTP processes at %s", os.getpid(), path)
        if ready is not None:
            os.write(ready, b"r")
            os.close(ready)
        await stop.wait()
        server.close()
        if store.connected:
            logger.info("store process: stopping once the %s HTTP processes connected hang up", store.connected)
            left = await store.hung_up(STOP_TIMEOUT_S)
            if left:
                logger.warning(
                    "store process: %s HTTP processes still connected %.0f s after SIGTERM: stopping",
                    left,
                    STOP_TIMEOUT_S,
                )
        for task in list(store._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(task, 30)
    logger.info("store process (PID %s) stopped", os.getpid())


def import_ahead() -> None:
    """Import what :func:`serve` opens the store and serves with (about a second of a start), while ``serve`` still
    holds the store (:meth:`~.supervisor.Supervisor.spawn`)."""
    import importlib

    for module in ("server.app", "server.stores", "tams_analytics.cache", "tams_analytics.engines.duckdb", "uvloop"):
        with contextlib.suppress(ImportError):  # (uvloop is optional: run() falls back to asyncio's loop)
            importlib.import_module(module)


def run(settings: Settings, path: str, *, ready: int | None = None) -> None:
    """:func:`serve` on the fast event loop when installed (uvloop), as ``serve`` runs."""
    from server.interpreter import tune_interpreter

    tune_interpreter(settings)
    try:
        import uvloop
    except ImportError:
        asyncio.run(serve(settings, path, ready=ready))
    else:
        uvloop.run(serve(settings, path, ready=ready))
