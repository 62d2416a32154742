"""The server's condition, owned once.

Each part the server depends on (the store, the volume under it, object storage, the identity provider) has one
:class:`Condition` here, reported by whatever watches that part (a disk monitor, the store's writer after a failed
commit, a start-up or periodic probe). The write path, ``/ready``, ``/metrics`` and the log all read this one
object; no route guesses the server's condition from an exception. A change of state is logged once, not once per
request it affects, and as a warning both ways (a part going bad, and the same part ok again): an operator who alerts on
one sees the other at the default log level.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

__all__ = ["OK", "Condition", "Health", "Part"]

logger = logging.getLogger(__name__)

#: the state of a part that is as it should be
OK = "ok"


class Part(StrEnum):
    """The parts whose condition the server keeps."""

    #: the store's engine: answering, or failed and being reopened
    STORE = "store"
    #: the free space of the volumes the store and local object storage write to
    VOLUME = "volume"
    #: the object storage backend (an S3 bucket, local files)
    OBJECT_STORAGE = "object_storage"
    #: the identity provider whose keys check bearer tokens (``TAMS_AUTH=jwt``)
    IDENTITY_PROVIDER = "identity_provider"


@dataclass(frozen=True)
class Condition:
    """What is known of one part: a short ``state`` (``ok``, or e.g. ``flood_stage``, ``failed``, ``unreachable``),
    a ``summary`` an operator can act on, whether the server is ``ready`` (``/ready`` answers 200) in this state,
    and since when (``time.time()``: seconds since 1970-01-01 UTC)."""

    part: Part
    state: str
    summary: str
    ready: bool
    since: float

    @property
    def ok(self) -> bool:
        return self.state == OK

    def to_json(self) -> dict[str, object]:
        """As ``/ready`` shows it: ``since`` in ISO 8601 (UTC, milliseconds), and as ``since_unix_s`` the same instant
        in seconds since 1970-01-01 UTC (the number ``since`` was before)."""
        since = dt.datetime.fromtimestamp(self.since, dt.UTC).isoformat(timespec="milliseconds")
        return {
            "state": self.state,
            "summary": self.summary,
            "ready": self.ready,
            "since": since.replace("+00:00", "Z"),
            "since_unix_s": self.since,
        }


class Health:
    """The condition of each part (see the module docstring). Thread-safe: reporters run in worker threads."""

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._parts: dict[Part, Condition] = {}

    def report(self, part: Part, state: str, summary: str, *, ready: bool | None = None) -> Condition:
        """``part`` is in ``state`` (``ready`` defaults to whether the state is ``ok``). Logged only when the state
        changes (``/metrics`` reads the conditions); a new summary in the same state (a volume's free space moving) is
        kept without a log line."""
        ready = state == OK if ready is None else ready
        with self._lock:
            before = self._parts.get(part)
            changed = before is None or before.state != state or before.ready != ready
            since = self._clock() if changed or before is None else before.since
            after = Condition(part, state, summary, ready, since)
            self._parts[part] = after
        if changed:
            if state == OK:
                if before is not None:
                    logger.warning("health: %s is ok again (was %s): %s", part, before.state, summary)
            else:
                logger.warning("health: %s is %s: %s", part, state, summary)
        return after

    def ok(self, part: Part, summary: str = "ok") -> Condition:
        """``part`` is as it should be."""
        return self.report(part, OK, summary)

    def condition(self, part: Part) -> Condition | None:
        """What was last reported of ``part`` (None: nothing yet)."""
        with self._lock:
            return self._parts.get(part)

    def conditions(self) -> dict[Part, Condition]:
        """Every part's last report."""
        with self._lock:
            return dict(self._parts)

    def unready(self) -> list[Condition]:
        """The parts that keep the server from being ready, in the order of :class:`Part`."""
        with self._lock:
            return [c for p in Part if (c := self._parts.get(p)) is not None and not c.ready]
