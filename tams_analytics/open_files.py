"""A process's limit on open files, raised to what the system lets it have.

Every network connection is an open file. Most systems give a process a soft limit of 1,024 (a login shell's, and a
systemd service's unless its unit says ``LimitNOFILE=``) under a much higher hard limit it may raise the soft one to
itself. A server whose clients keep their connections open (a live site's recorders: one each, so one per flow) meets
the soft limit long before the hard one: past it a connection is not accepted (``EMFILE``), and its client is reset
or waits unanswered. Go's runtime raises the soft limit to the hard one for every program it starts;
:func:`raise_open_files` does it here, for ``serve`` (whose processes inherit it) and for the benchmarks' load
generator.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

__all__ = ["OpenFiles", "raise_open_files"]

#: the limit asked for when the hard limit is unlimited (a Linux process has at most ``fs.nr_open``: 1,048,576)
UNLIMITED_ASK: Final = 1 << 20


@dataclass(frozen=True)
class OpenFiles:
    """This process's limit on open files before and after :func:`raise_open_files`, and the hard limit over it (None:
    unlimited); ``error``: why it could not be raised (None: it was, or did not need to be)."""

    before: int | None
    limit: int | None
    hard: int | None
    error: str | None = None


def raise_open_files() -> OpenFiles | None:
    """Raise this process's soft limit on open files to its hard limit (never lowering it); None where the system
    has no such limit (not POSIX)."""
    try:
        import resource
    except ImportError:  # pragma: no cover - Windows
        return None

    def count(value: int) -> int | None:
        return None if value == resource.RLIM_INFINITY else value

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    ask = UNLIMITED_ASK if hard == resource.RLIM_INFINITY else hard
    if soft != resource.RLIM_INFINITY and soft < ask:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (ask, hard))
        except (ValueError, OSError) as exc:  # (macOS refuses more than its OPEN_MAX under an unlimited hard limit)
            return OpenFiles(count(soft), count(soft), count(hard), str(exc) or type(exc).__name__)
        return OpenFiles(count(soft), ask, count(hard))
    return OpenFiles(count(soft), count(soft), count(hard))
