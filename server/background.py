"""The loop of the background workers ``server.app`` starts: webhook delivery, delete requests, garbage collection.

Each worker's module exposes ``start(services) -> async stop()`` (:data:`server.services.Stop`). Workers run in
daemon threads (the catalog and the object stores are blocking APIs), so they never hold up a request, and
``stop`` waits for them without blocking the event loop.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable

from tams_analytics.exceptions import StoreUnavailableError
from tams_analytics.ratelog import RepeatedLog

logger = logging.getLogger(__name__)
#: workers held up by the store's condition: one record per worker and cause a minute
_waiting = RepeatedLog(logger)


class PeriodicWorker:
    """Run ``step()`` in a daemon thread every ``interval_s`` seconds, or at once when woken.

    ``step`` failures are logged and the loop goes on; ``stop()`` lets a running step finish
    (steps check :attr:`stopping` between units of work) and waits at most ``join_timeout_s``.
    """

    def __init__(
        self,
        name: str,
        step: Callable[[], object],
        interval_s: float,
        *,
        wakeup: threading.Event | None = None,
        join_timeout_s: float = 30.0,
    ) -> None:
        self.name = name
        self.step = step
        self.interval_s = interval_s
        self.wakeup = wakeup or threading.Event()
        self.stopping = threading.Event()
        self.join_timeout_s = join_timeout_s
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self, *, at_once: bool = True) -> PeriodicWorker:
        if at_once:
            self.wakeup.set()
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self.stopping.is_set():
            self.wakeup.wait(self.interval_s)
            self.wakeup.clear()
            if self.stopping.is_set():
                break
            try:
                self.step()
            except StoreUnavailableError as exc:  # the server's condition (a full volume, say): /ready says it
                _waiting.log(
                    logging.WARNING,
                    f"{self.name}:{type(exc).__name__}",
                    "background worker %s waits: %s",
                    self.name,
                    exc,
                )
            except Exception:
                logger.exception("background worker %s failed; it runs again later", self.name)

    async def stop(self) -> None:
        self.stopping.set()
        self.wakeup.set()
        await asyncio.to_thread(self._thread.join, self.join_timeout_s)
        if self._thread.is_alive():
            logger.warning("background worker %s did not stop within %.1fs", self.name, self.join_timeout_s)
