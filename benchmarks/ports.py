"""Ports for the servers the tests and benchmarks start on this machine, never the same one to two of them.

A port found free by binding and closing it is free again at once: another process looking at the same moment finds
it free too, and the two servers then race for it (one test's server answered another's readiness check; a SeaweedFS
took a port a TAMS server had been given). So a port handed out here is also *claimed*, by creating a file named after
it in :data:`CLAIMS` the time it was given, under the file's lock (so one process alone finds it unclaimed); every
process of every test worker, nested session and benchmark on the machine asks the same directory. A claim is void
after :data:`CLAIM_S` (its server bound the port long since, or never will), and a port something is bound to is
passed over whatever its claim says.

Ports come from below the kernel's ephemeral range (Linux: ``ip_local_port_range``), so no outgoing connection is
given one between the claim and the server's bind.
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import os
import random
import socket
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

#: the ports handed out: ``PORTS_FROM`` up to the kernel's ephemeral range (32768 on Linux by default)
PORTS_FROM = 11000
#: where the claims are: a file per port, named after it, holding the time it was last given out (empty: let go)
CLAIMS = Path(tempfile.gettempdir()) / "tams-analytics-ports"
#: a claim older than this is void
CLAIM_S = 600.0

#: where this process looks next (a random start, so that processes begin apart)
_next_port: Iterator[int] = itertools.count(random.SystemRandom().randrange(1 << 16))


def free_port(*, paired: int = 0) -> int:
    """A TCP port on 127.0.0.1 that nothing listens on and no other caller on this machine has been given in the last
    :data:`CLAIM_S`, for a server about to bind it. ``paired`` (e.g. 10000, SeaweedFS's gRPC port beside each HTTP
    one): ``port + paired`` is free and claimed too. Where no such port is left (or below a narrow ephemeral range),
    the kernel's choice, unpaired ports only."""
    top = _ephemeral_from() - paired
    span = top - PORTS_FROM
    for _ in range(max(span, 0)):
        port = PORTS_FROM + next(_next_port) % span
        wanted = (port, port + paired) if paired else (port,)
        if not all(_bindable(p) for p in wanted):
            continue
        claimed = [p for p in wanted if _claim(p)]
        if len(claimed) == len(wanted):
            return port
        for p in claimed:  # half a pair: let the other half go
            _release(p)
    if paired:
        raise RuntimeError(f"no free pair of ports (port, port + {paired}) from {PORTS_FROM} below {top + paired}")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _bindable(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:  # taken, or in TIME_WAIT
            return False
    return True


def _claim(port: int) -> bool:
    """Whether this process now holds ``port``'s claim: the time it was given, in its file, under the file's lock."""
    try:
        fd = os.open(CLAIMS / str(port), os.O_CREAT | os.O_RDWR, 0o666)
    except FileNotFoundError:  # no directory yet
        _make_claims_dir()
        fd = os.open(CLAIMS / str(port), os.O_CREAT | os.O_RDWR, 0o666)
    except PermissionError:  # another user's claim: binding alone decides
        return True
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:  # being claimed by another process this instant
            return False
        if time.time() - _claimed_at(fd) < CLAIM_S:
            return False
        os.ftruncate(fd, 0)
        os.pwrite(fd, repr(time.time()).encode(), 0)
        return True
    finally:
        os.close(fd)  # (and so its lock)


def _claimed_at(fd: int) -> float:
    try:
        return float(os.pread(fd, 64, 0) or b"0")
    except ValueError:  # not ours: void
        return 0.0


def _release(port: int) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(CLAIMS / str(port), os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            os.ftruncate(fd, 0)
        finally:
            os.close(fd)


def _make_claims_dir() -> None:
    with contextlib.suppress(FileExistsError):
        CLAIMS.mkdir(parents=True)
        CLAIMS.chmod(0o1777)  # shared by every user's runs, as /tmp is


def _ephemeral_from() -> int:
    """The first port the kernel hands out to a bind of port 0 (Linux; 32768, its default, elsewhere)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768
