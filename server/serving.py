"""uvicorn's server, telling when it accepts requests.

``serve`` announces itself (its banner, the file beside a DuckDB store), and the supervisor counts an HTTP process as
started, only once requests are accepted: uvicorn's startup has run the app's lifespan (services built, live flows
preloaded, the store process connected) and handed the listening socket to the event loop. A script or a service
manager that waits for the banner is then answered at once.
"""

from __future__ import annotations

import socket
from collections.abc import Callable

import uvicorn

__all__ = ["Server"]


class Server(uvicorn.Server):
    """uvicorn's server; ``accepting()`` is called once, when it accepts requests (not at all if it never starts)."""

    def __init__(self, config: uvicorn.Config, *, accepting: Callable[[], None] = lambda: None) -> None:
        super().__init__(config)
        self._accepting = accepting

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started:
            self._accepting()
