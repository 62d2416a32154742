"""The pauses of Python's garbage collector, timed in each server process (``tams_python_gc_pause_seconds``).

A collection holds Python's lock for its whole length, so everything its process has in flight waits for it (in the
store process, every write): these are the pauses a latency's tail is read against. Every collection is timed by a
``gc.callbacks`` callback, and that callback runs wherever the collection began, which is inside any allocation: also
inside prometheus-client's own update of another metric, which in multiprocess mode holds the one lock (not
reentrant) its values share while it writes a new series' key. A callback that observed the histogram itself would
then wait for that lock forever, and the process would hang (an HTTP process did so under the benchmark's smoke test,
deaf to SIGTERM). So the callback only notes each pause in a deque, which takes no lock a caller can hold, and a
thread of its own observes what was noted, every :data:`FLUSH_S`.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections import deque

from server.observability.metrics import PYTHON_GC_PAUSE

__all__ = ["FLUSH_S", "MAX_NOTED", "GcPauseWatch", "watch_python_gc"]

logger = logging.getLogger(__name__)

#: how often the pauses noted are observed
FLUSH_S = 0.5
#: pauses noted and not yet observed, at most (should the observing thread stop, the oldest go, never the memory)
MAX_NOTED = 10_000


class GcPauseWatch:
    """Times every collection of this process's garbage collector, as ``process``'s (``store``, ``http``, or
    ``server`` when one process serves), once started."""

    def __init__(self, process: str, *, flush_s: float = FLUSH_S) -> None:
        self.process = process
        self.flush_s = flush_s
        self._by_generation = [PYTHON_GC_PAUSE.labels(process, str(generation)) for generation in range(3)]
        self._noted: deque[tuple[int, float]] = deque(maxlen=MAX_NOTED)
        self._began = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tams-gc-pauses", daemon=True)

    def start(self) -> GcPauseWatch:
        gc.callbacks.append(self._note)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Time no more collections, and observe those noted."""
        if self._note in gc.callbacks:
            gc.callbacks.remove(self._note)
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join()
        self.flush()

    def flush(self) -> None:
        """Observe the pauses noted so far."""
        while True:
            try:
                generation, seconds = self._noted.popleft()
            except IndexError:
                return
            self._by_generation[generation].observe(seconds)

    def _note(self, phase: str, info: dict[str, int]) -> None:
        # runs inside whatever allocation began the collection: no lock, no metric, nothing that can wait (module
        # docstring); one collection at a time per process (the collector's own rule), so ``_began`` is never shared
        if phase == "start":
            self._began = time.perf_counter()
        else:
            self._noted.append((info["generation"], time.perf_counter() - self._began))

    def _run(self) -> None:
        while not self._stop.wait(self.flush_s):
            try:
                self.flush()
            except Exception:  # a metric that cannot be written must not stop the timing
                logger.exception("the garbage collector's pauses could not be observed")


_watch: GcPauseWatch | None = None


def watch_python_gc(process: str) -> GcPauseWatch:
    """Time every collection of this process's garbage collector from now on, as ``process``'s (see
    :class:`GcPauseWatch`): one watch per process, a later call replaces the earlier one."""
    global _watch
    if _watch is not None:
        _watch.stop()
    _watch = GcPauseWatch(process).start()
    return _watch
