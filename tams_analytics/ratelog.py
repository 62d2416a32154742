"""Logging a repeated cause once per interval, with a count: :class:`RepeatedLog`.

A fault that every request meets (a full volume, an unreachable bucket) would otherwise write a record per request:
thousands of identical lines that bury the one that says what happened. Here the first occurrence of a cause is
logged at once, later ones are counted, and the next record after the interval says how many were not logged.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

__all__ = ["RepeatedLog"]


class RepeatedLog:
    """Log each cause at most once per ``interval_s`` on ``logger``; the record after a quiet spell says how many
    occurrences it stands for."""

    def __init__(
        self, logger: logging.Logger, interval_s: float = 60.0, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.logger = logger
        self.interval_s = interval_s
        self._clock = clock
        self._lock = threading.Lock()
        #: cause -> (when it was last logged, occurrences since then not logged)
        self._seen: dict[str, tuple[float, int]] = {}

    def log(self, level: int, cause: str, msg: str, *args: object) -> bool:
        """Log ``msg % args`` for ``cause`` unless it was logged less than the interval ago (then count it).
        Returns whether a record was written."""
        now = self._clock()
        with self._lock:
            last, skipped = self._seen.get(cause, (None, 0))
            if last is not None and now - last < self.interval_s:
                self._seen[cause] = (last, skipped + 1)
                return False
            self._seen[cause] = (now, 0)
        if skipped:
            msg += " (%s more times since the last such record, %.0f s ago)"
            args = (*args, skipped, now - last if last is not None else 0.0)
        self.logger.log(level, msg, *args)
        return True
