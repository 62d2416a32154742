"""The interpreter's own settings in each serving process (the one process of ``serve``, or its store process and
each HTTP process): how long a thread holds Python's GIL while another waits (``sys.setswitchinterval``) and when
the garbage collector makes a young collection (``gc.set_threshold``'s first value).

Both are set once, at the process's start, from :class:`~server.config.Settings`
(``switch_interval_ms``, ``gc_young_threshold``)."""

from __future__ import annotations

import gc
import logging
import sys

from server.config import Settings

__all__ = ["tune_interpreter"]

logger = logging.getLogger(__name__)


def tune_interpreter(settings: Settings) -> None:
    """Set this process's GIL switch interval and its collector's young threshold from ``settings``; the older
    generations' thresholds stay Python's."""
    sys.setswitchinterval(settings.switch_interval_ms / 1000)
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(settings.gc_young_threshold, older, oldest)
    logger.debug("interpreter: switch interval %s s, gc thresholds %s", sys.getswitchinterval(), gc.get_threshold())
