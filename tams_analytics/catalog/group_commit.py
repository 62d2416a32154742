"""Group commit: concurrent writers queue their requests; one writer thread applies them in batches.

Every request submitted while a batch is being applied waits in the queue and goes into the next batch,
so batches grow with the load (one transaction, one durable commit, a constant number of reads each)
while a lone writer pays only a hand-over to the writer thread. With a ``linger``, the writer under load waits that
long for more before it applies the batch: a batch then holds what arrived within it, not one request and then the
ones that queued behind its commit, and costs its fixed share fewer times a second. Under load means the batch's first
request arrived within the linger of the previous batch's end (live ingest's recorders, all the time); a request
after a quiet spell is applied at once, since waiting would only add the linger to its answer (at 25 requests a
second a batch rarely gains a second one). Callers wait on a
:class:`concurrent.futures.Future`: threads block on it (:meth:`GroupCommit.submit`), an event loop awaits
it (``asyncio.wrap_future(group_commit.future(request))``) without holding a thread per request.

The writer thread starts with the first request and stops at :meth:`GroupCommit.close`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Generic, TypeVar

from tams_analytics.exceptions import StoreUnavailableError, TransientStoreError

__all__ = ["BatchObserver", "GroupCommit", "apply_batch"]

logger = logging.getLogger(__name__)

Request = TypeVar("Request")
Outcome = TypeVar("Outcome")
#: ``observe(size, seconds)``: told each batch's size and how long applying it took
BatchObserver = Callable[[int, float], None]


class GroupCommit(Generic[Request, Outcome]):
    """Batches of requests for ``apply``, which gets a batch and returns one outcome per request (a result,
    or the exception that refused it); when it raises instead, the batch's requests are applied one by one.
    ``max_batch`` bounds a batch (and so the wait it adds: after a stall, the requests that waited longest are answered
    once their share of the backlog is applied, not once all of it is; what a full batch leaves queued is applied next,
    without a linger); ``linger_s``: how long the writer, under load (see the
    module docstring), waits for more before applying the batch (0: never; it stops waiting at ``max_batch`` or at
    :meth:`close`); ``on_batch`` hears each batch's size and the seconds applying it took (metrics)."""

    def __init__(
        self,
        apply: Callable[[Sequence[Request]], Sequence[Outcome | Exception]],
        *,
        max_batch: int = 256,
        name: str = "tams-group-commit",
        on_batch: BatchObserver | None = None,
        linger_s: float = 0.0,
    ) -> None:
        if linger_s < 0:
            raise ValueError(f"linger_s must not be negative, not {linger_s}")
        self.apply = apply
        self.max_batch = max_batch
        self.linger_s = linger_s
        self.name = name
        self.on_batch = on_batch
        #: batches and requests applied so far
        self.batches = 0
        self.requests = 0
        self._queue: list[tuple[Request, Future[Outcome]]] = []
        #: when the queue's first request arrived, and when the last batch was applied (``time.monotonic``)
        self._arrived = 0.0
        self._ended = -float("inf")
        self._wakeup = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closed = False

    def future(self, request: Request) -> Future[Outcome]:
        """Queue ``request``; the future gets its outcome (or its exception) once its batch is applied."""
        fut: Future[Outcome] = Future()
        with self._wakeup:
            if self._closed:
                raise RuntimeError("the writer is closed")
            if not self._queue:
                self._arrived = time.monotonic()
            self._queue.append((request, fut))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
                self._thread.start()
            self._wakeup.notify()
        return fut

    def submit(self, request: Request) -> Outcome:
        """Queue ``request``, wait until its batch is applied, and return its outcome (raise its exception)."""
        return self.future(request).result()

    def close(self, timeout_s: float = 30.0) -> None:
        """Apply what is queued, then stop the writer thread."""
        with self._wakeup:
            self._closed = True
            self._wakeup.notify()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout_s)

    def _run(self) -> None:
        left_over = False  # the last batch was full and requests stayed queued: they have waited already
        while True:
            with self._wakeup:
                while not self._queue and not self._closed:
                    self._wakeup.wait()
                if not self._queue:
                    return
                if self.linger_s > 0 and not left_over and self._arrived - self._ended < self.linger_s:  # under load
                    self._linger()
                batch, self._queue = self._queue[: self.max_batch], self._queue[self.max_batch :]
                left_over = bool(self._queue)
            self._apply(batch)
            self._ended = time.monotonic()

    def _linger(self) -> None:
        """Wait (holding the condition's lock, so releasing it while waiting) up to the linger for the queue to
        fill a batch."""
        deadline = time.monotonic() + self.linger_s
        while len(self._queue) < self.max_batch and not self._closed:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            self._wakeup.wait(left)

    def _apply(self, batch: list[tuple[Request, Future[Outcome]]]) -> None:
        live = [(r, f) for r, f in batch if f.set_running_or_notify_cancel()]
        started = time.perf_counter()
        outcomes = apply_batch(self.apply, [r for r, _ in live])
        for (_, fut), outcome in zip(live, outcomes, strict=True):
            if isinstance(outcome, Exception):
                fut.set_exception(outcome)
            else:
                fut.set_result(outcome)
        self.batches += 1
        self.requests += len(live)
        if self.on_batch is not None:
            try:
                self.on_batch(len(live), time.perf_counter() - started)
            except Exception:  # a listener's failure must never stop the writer
                logger.exception("on_batch failed")


def apply_batch(
    apply: Callable[[Sequence[Request]], Sequence[Outcome | Exception]], requests: Sequence[Request]
) -> list[Outcome | Exception]:
    """``apply(requests)``, one outcome per request; a batch that fails as a whole is applied again request by
    request, so that one request's trouble never fails another (but a store that stayed busy, or cannot take writes
    now, fails them all: trying each again would only keep it busier, or fail the same way)."""
    try:
        return list(apply(requests))
    except (TransientStoreError, StoreUnavailableError) as exc:
        return [exc] * len(requests)
    except Exception as exc:
        if len(requests) == 1:
            logger.debug("a request failed", exc_info=True)
            return [exc]
        logger.debug("a batch of %s requests failed (%s); applying them one by one", len(requests), exc)
    return [outcome for request in requests for outcome in apply_batch(apply, [request])]
