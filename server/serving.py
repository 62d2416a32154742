"""uvicorn's server, telling when it accepts requests.

``serve`` announces itself (its banner, the file beside a DuckDB store), and the supervisor counts an HTTP process as
started, only once requests are accepted: uvicorn's startup has run the app's lifespan (services built, live flows
preloaded, the store process connected) and handed the listening socket to the event loop. A script or a service
manager that waits for the banner is then answered at once.

It also owns the process's access log (:mod:`server.observability.access`): started before requests are accepted,
closed (its last lines written) at the end of uvicorn's shutdown, once every request in flight has been answered and
before uvicorn re-raises the SIGTERM that stopped it.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable

import uvicorn

from server.observability.access import AccessLog

__all__ = ["Server"]


class Server(uvicorn.Server):
    """uvicorn's server; ``accepting()`` is called once, when it accepts requests (not at all if it never starts);
    ``access_log`` (the app's request middleware feeds it) is written from startup to the end of shutdown."""

    def __init__(
        self,
        config: uvicorn.Config,
        *,
        accepting: Callable[[], None] = lambda: None,
        access_log: AccessLog | None = None,
    ) -> None:
        super().__init__(config)
        self._accepting = accepting
        self._access_log = access_log

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        if self._access_log is not None:
            self._access_log.start()
        await super().startup(sockets=sockets)
        if self.started:
            self._accepting()

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        try:
            await super().shutdown(sockets=sockets)
        finally:
            if self._access_log is not None:
                await asyncio.to_thread(self._access_log.close)
