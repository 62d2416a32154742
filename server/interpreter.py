"""The interpreter's own settings in each serving process (the one process of ``serve``, or its store process and
each HTTP process): how long a thread holds Python's GIL while another waits (``sys.setswitchinterval``) and when
the garbage collector makes a young collection (``gc.set_threshold``'s first value, and at least every
``gc_young_every_s`` on a beat).

They are set once, at the process's start, from :class:`~server.config.Settings`
(``switch_interval_ms``, ``gc_young_threshold``, ``gc_young_every_s``)."""

from __future__ import annotations

import gc
import logging
import sys
import threading
import time

from server.config import Settings

__all__ = ["YoungBeat", "tune_interpreter"]

logger = logging.getLogger(__name__)


def tune_interpreter(settings: Settings) -> None:
    """Set this process's GIL switch interval and its collector's young threshold from ``settings``; the older
    generations' thresholds stay Python's."""
    sys.setswitchinterval(settings.switch_interval_ms / 1000)
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(settings.gc_young_threshold, older, oldest)
    logger.debug("interpreter: switch interval %s s, gc thresholds %s", sys.getswitchinterval(), gc.get_threshold())
    if settings.gc_young_every_s > 0:
        YoungBeat.start(settings.gc_young_every_s)


class YoungBeat:
    """A young collection every ``every_s``, from a daemon thread: one a process (:meth:`start` again changes its beat).

    Python makes a young collection once the objects made exceed those freed by the threshold, and every object freed
    counts, however old. A cache at its bound frees an old entry for each new one, so the count barely moves while the
    new entries pile up in the youngest generation, to be walked all at once by the collection that comes at last,
    with every thread of the process waiting (:attr:`~server.config.Settings.gc_young_every_s`)."""

    _running: YoungBeat | None = None
    _lock = threading.Lock()

    def __init__(self, every_s: float) -> None:
        self.every_s = every_s
        self._thread = threading.Thread(target=self._run, name="tams-gc-young", daemon=True)

    @classmethod
    def start(cls, every_s: float) -> YoungBeat:
        with cls._lock:
            if cls._running is None:
                cls._running = YoungBeat(every_s)
                cls._running._thread.start()
            cls._running.every_s = every_s
            return cls._running

    def _run(self) -> None:
        while True:
            time.sleep(self.every_s)
            gc.collect(0)
