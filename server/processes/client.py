"""An HTTP process's connection to the store process (:mod:`.store`), on its event loop.

Calls are numbered and answered in any order (:mod:`.protocol`); one task reads the answers. While the store
process cannot be reached (it is starting, or restarting after a crash), a call fails at once with
:class:`~tams_analytics.exceptions.StoreUnavailableError` (a 503 with ``Retry-After``) and the client keeps trying
to connect in the background; a call in flight when the connection is lost fails the same way, saying its outcome is
unknown when it was a write.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
from typing import Any

from server.processes import protocol
from server.processes.protocol import Call, FetchPage, Forward, Hello, KeepPage, Register, Reply, Welcome
from tams_analytics import __version__
from tams_analytics.catalog import AddResult, Registration
from tams_analytics.exceptions import StoreUnavailableError
from tams_analytics.ratelog import RepeatedLog

__all__ = ["StoreClient"]

logger = logging.getLogger(__name__)
_unreachable = RepeatedLog(logger)


class StoreClient:
    """The connection to the store process at the Unix socket ``path`` (see the module docstring)."""

    def __init__(self, path: str, *, retry_s: float = 0.2) -> None:
        self.path = path
        self.retry_s = retry_s
        self._numbers = itertools.count(1)
        self._pending: dict[int, tuple[asyncio.Future[Any], bool]] = {}
        self._writer: asyncio.StreamWriter | None = None
        self._connected = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    async def start(self, *, wait_s: float = 0.0) -> None:
        """Connect in the background (and keep reconnecting); wait up to ``wait_s`` for the first connection."""
        self._task = asyncio.create_task(self._run())
        if wait_s:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._connected.wait(), wait_s)

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
        return await self._call(ask, write=False)

    async def forward(self, request: Forward) -> Any:
        return await self._call(request, write=request.method not in ("GET", "HEAD"))

    def keep_page(self, page: KeepPage) -> None:
        """Hand a rendered page to the store process's page cache (no answer; dropped while disconnected)."""
        if self._writer is not None and self.connected:
            self._writer.write(protocol.encode(Call(None, page)))

    def _call(self, message: Register | FetchPage | Forward, *, write: bool) -> asyncio.Future[Any]:
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
                self._writer = writer
                self._connected.set()
                logger.info("connected to the store process (PID %s)", welcome.pid)
                await self._read_replies(reader)
            except (asyncio.IncompleteReadError, ConnectionError, OSError):
                pass
            finally:
                self._connected.clear()
                self._writer = None
                writer.close()
                self._fail_pending()
            if not self._closing:
                logger.warning("lost the store process; reconnecting")
                await asyncio.sleep(self.retry_s)

    async def _read_replies(self, reader: asyncio.StreamReader) -> None:
        while True:
            reply = await _read(reader)
            if not isinstance(reply, Reply):
                continue
            waiting = self._pending.pop(reply.number, None)
            if waiting is None or waiting[0].done():
                continue
            future = waiting[0]
            if reply.refusal is not None:
                future.set_exception(reply.refusal.error())
            else:
                future.set_result(reply.value)

    def _fail_pending(self) -> None:
        pending, self._pending = self._pending, {}
        for future, write in pending.values():
            if not future.done():
                outcome = "it may or may not have been stored: read it back" if write else "retry"
                future.set_exception(StoreUnavailableError(f"the store process stopped while answering: {outcome}"))


async def _read(reader: asyncio.StreamReader) -> Any:
    length = protocol.frame_length(await reader.readexactly(protocol.HEADER_BYTES))
    return protocol.decode(await reader.readexactly(length))
