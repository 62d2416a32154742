"""``serve`` as a supervisor: it starts the store process and, beside it, the HTTP processes on the socket it listens
on (each makes its app while the store opens, then waits until the store process is ready before it serves), restarts
any that dies, and stops them in order (the HTTP processes first, then the store process, which applies what is queued
and checkpoints). On a DuckDB store they start while ``serve`` itself opens the store to check it
(:meth:`Supervisor.spawn`: the store process imports meanwhile and opens the store once ``serve`` has let go of it,
``TAMS_OPEN_GATE_FD``).

The children are ``python -m server.processes store|http`` with the server's settings in their environment
(``TAMS_PROCESS_OPTIONS``: the options ``serve`` was given, as JSON; secrets stay in the environment they came from),
the store process's Unix socket in a folder only this user can enter (``TAMS_STORE_SOCKET``), the listening socket
inherited (``TAMS_LISTEN_FD``) and a pipe it writes to once it is ready (``TAMS_READY_FD``): the store process once
HTTP processes may connect, an HTTP process once it accepts requests; an HTTP process started with the store process
reads a byte from another pipe (``TAMS_STORE_GATE_FD``) before it serves, written once the store process is ready (the
pipe closed without one: the store process failed, or ``serve`` stops, and it ends). ``serve`` announces the server
(its banner, the file beside a DuckDB store) only once every HTTP process it started accepts requests. Each child dies
with the supervisor (``PR_SET_PDEATHSIG``).
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["ChildFailed", "Supervisor"]

logger = logging.getLogger(__name__)

#: how long the store process may take to open the store and preload the live flows
READY_TIMEOUT_S = 900.0
#: how long an HTTP process may take to start and accept requests (imports, the store process's live edges)
HTTP_READY_TIMEOUT_S = 300.0
#: how long each child may take to stop once asked (then it is killed)
STOP_TIMEOUT_S = 120.0
_PR_SET_PDEATHSIG = 1


class ChildFailed(Exception):
    """A child (the store process, or an HTTP process at start-up) ended before it was ready (its own message went to
    the log): ``code`` is its exit code."""

    def __init__(self, code: int, role: str = "store") -> None:
        what = "the store process" if role == "store" else "an HTTP process"
        super().__init__(f"{what} ended with exit code {code} before it was ready")
        self.code = code
        self.role = role


def _die_with_parent() -> None:
    """In a child, before it runs: end it with SIGTERM when the supervisor ends, however it ends."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclass
class _Child:
    role: str
    process: subprocess.Popen[bytes]
    #: when it was started (the store process: when it was ready)
    started: float
    #: consecutive quick deaths (the pause before the next start grows with them)
    failures: int = 0


@dataclass
class _Spawned:
    """The children :meth:`Supervisor.spawn` started, at their gates."""

    store: _Child
    #: the read end of the pipe the store process writes to once it is ready
    store_ready: int
    #: the write end of the store process's gate: a byte lets it open the store
    open_gate: int
    #: each HTTP process and the read end of the pipe it writes to once it accepts requests
    starting: list[tuple[_Child, int]] = field(default_factory=list)
    #: the write ends of the HTTP processes' gates: a byte once the store process is ready
    gates: list[int] = field(default_factory=list)


@dataclass
class Supervisor:
    """The processes of one server (see the module docstring): ``http_processes`` HTTP processes on ``sock``;
    ``options`` the settings ``serve`` was given; ``announce(pids)`` is told the children's process ids whenever they
    change (the file beside a DuckDB store names them)."""

    sock: socket.socket
    options: Mapping[str, Any]
    http_processes: int
    log_level: str = "info"
    #: ``serve -v``'s count
    verbosity: int = 0
    announce: Callable[[dict[str, Any]], None] = lambda _pids: None
    _children: list[_Child] = field(default_factory=list)
    _stopping: bool = False
    _folder: Path | None = None
    #: the children :meth:`spawn` started, until :meth:`start` lets them in (or :meth:`abandon` sends them away)
    _spawned: _Spawned | None = None

    @property
    def socket_path(self) -> Path:
        assert self._folder is not None
        return self._folder / "store.sock"

    @property
    def metrics_dir(self) -> Path:
        """Where every child writes its metrics, for a scrape to add up (prometheus-client's multiprocess mode)."""
        assert self._folder is not None
        return self._folder / "metrics"

    def spawn(self) -> None:
        """Start the store process and the HTTP processes beside it, ahead: the store process imports what it serves
        with and waits at its gate to open the store, which ``serve`` holds meanwhile (it opens the store first, to
        say in one line what keeps it from starting); each HTTP process makes its app and waits at its own gate until
        the store process is ready. :meth:`start` lets them in, :meth:`abandon` sends them away."""
        self._folder = Path(tempfile.mkdtemp(prefix="tams-"))  # mode 0700: only this user reaches the socket
        self.metrics_dir.mkdir()
        gate, opened = os.pipe()
        try:
            store, store_ready = self._spawn_watched("store", open_fd=gate)
        except BaseException:
            os.close(opened)
            raise
        finally:
            os.close(gate)
        self._children.append(store)
        spawned = self._spawned = _Spawned(store, store_ready, opened)
        # the HTTP processes start beside it, side by side, and wait at their gate until it is ready: their imports
        # and apps are made while the store opens (about a second and a half of every start, on two cores)
        for _ in range(self.http_processes):
            gate, opened = os.pipe()
            spawned.gates.append(opened)
            try:
                spawned.starting.append(self._spawn_watched("http", gate_fd=gate))
            finally:
                os.close(gate)
            self._children.append(spawned.starting[-1][0])

    def abandon(self) -> None:
        """The children :meth:`spawn` started are not let in (``serve`` cannot start, and says why): their gates close
        without a byte, and they end without a word."""
        spawned, self._spawned = self._spawned, None
        if spawned is not None:
            for pipe in [spawned.open_gate, spawned.store_ready, *spawned.gates, *(p for _, p in spawned.starting)]:
                with contextlib.suppress(OSError):
                    os.close(pipe)
        self.stop()

    def start(self, *, ready: Callable[[], None] = lambda: None) -> None:
        """Start the children (unless :meth:`spawn` has), let the store process open the store, wait until it is
        ready, let the HTTP processes serve and wait until each accepts requests (``ChildFailed`` if one ends first);
        then announce the children and call ``ready``."""
        # from here on a SIGINT or SIGTERM only asks to stop: :meth:`run` then stops whatever was started, in order
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._stop_signal)
        if self._spawned is None:
            self.spawn()
        spawned, self._spawned = self._spawned, None
        assert spawned is not None
        store, store_ready, starting, gates = spawned.store, spawned.store_ready, spawned.starting, spawned.gates
        with contextlib.suppress(OSError):  # (a store process that ended already: its wait says so below)
            os.write(spawned.open_gate, b"o")
        os.close(spawned.open_gate)
        try:
            self._wait_store_ready(store, store_ready)
            if not self._stopping:
                for opened in gates:
                    with contextlib.suppress(OSError):  # (an HTTP process that ended already: its wait says so below)
                        os.write(opened, b"g")
        except BaseException:
            for _, pipe in starting:
                os.close(pipe)
            raise
        finally:
            for opened in gates:  # closed without a byte (the store process failed, or a stop): they end at once
                os.close(opened)
        if self._stopping:
            for _, pipe in starting:
                os.close(pipe)
            return
        for i, (child, pipe) in enumerate(starting):
            try:
                self._wait_ready(child, pipe, HTTP_READY_TIMEOUT_S)
            except ChildFailed:
                for _, other in starting[i + 1 :]:
                    os.close(other)
                raise
        if not self._stopping:  # (a SIGTERM while they started: run() stops them)
            self._announce()
            ready()

    def run(self) -> int:
        """Supervise until SIGTERM or SIGINT (since :meth:`start`), then stop every child; the exit code."""
        try:
            while not self._stopping:
                time.sleep(0.2)
                self._restart_the_dead()
        finally:
            self.stop()
        return 0

    def stop(self) -> None:
        """Stop the HTTP processes, then the store process (each SIGTERM, then SIGKILL after a while)."""
        self._stopping = True
        for role in ("http", "store"):
            children = [c for c in self._children if c.role == role and c.process.poll() is None]
            for child in children:
                with contextlib.suppress(ProcessLookupError):
                    child.process.send_signal(signal.SIGTERM)
            for child in children:
                try:
                    child.process.wait(STOP_TIMEOUT_S)
                except subprocess.TimeoutExpired:
                    logger.warning("the %s process (PID %s) did not stop: killed", child.role, child.process.pid)
                    child.process.kill()
                    child.process.wait()
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)

    def pids(self) -> dict[str, Any]:
        alive = [c for c in self._children if c.process.poll() is None]
        return {
            "supervisor": os.getpid(),
            "store": next((c.process.pid for c in alive if c.role == "store"), None),
            "http": [c.process.pid for c in alive if c.role == "http"],
        }

    # -- children ------------------------------------------------------------------------------------------------
    def _stop_signal(self, signum: int, _frame: Any) -> None:
        self._stopping = True

    def _announce(self) -> None:
        with contextlib.suppress(Exception):
            self.announce(self.pids())

    def _environment(self, role: str) -> dict[str, str]:
        env = dict(os.environ)
        env["TAMS_PROCESS_OPTIONS"] = json.dumps(dict(self.options), default=str)
        env["TAMS_PROCESS_LOG_LEVEL"] = self.log_level
        env["TAMS_PROCESS_VERBOSITY"] = str(self.verbosity)
        env["TAMS_STORE_SOCKET"] = str(self.socket_path)
        env["PYTHONUNBUFFERED"] = "1"
        env["PROMETHEUS_MULTIPROC_DIR"] = str(self.metrics_dir)
        return env

    def _spawn(
        self, role: str, *, ready_fd: int | None = None, gate_fd: int | None = None, open_fd: int | None = None
    ) -> _Child:
        env = self._environment(role)
        fds: list[int] = []
        if role == "http":
            env["TAMS_LISTEN_FD"] = str(self.sock.fileno())
            fds.append(self.sock.fileno())
        for name, fd in (("TAMS_READY_FD", ready_fd), ("TAMS_STORE_GATE_FD", gate_fd), ("TAMS_OPEN_GATE_FD", open_fd)):
            if fd is not None:
                env[name] = str(fd)
                fds.append(fd)
        process = subprocess.Popen(
            [sys.executable, "-m", "server.processes", role],
            env=env,
            pass_fds=fds,
            stdin=subprocess.DEVNULL,
            preexec_fn=_die_with_parent,
        )
        logger.info("started the %s process (PID %s)", role, process.pid)
        return _Child(role, process, time.monotonic())

    def _start_store(self) -> _Child:
        child, pipe = self._spawn_watched("store")
        self._wait_store_ready(child, pipe)
        return child

    def _wait_store_ready(self, child: _Child, pipe: int) -> None:
        """Wait until the store process ``child`` is ready (:meth:`_wait_ready`, which closes ``pipe``)."""
        self._wait_ready(child, pipe, READY_TIMEOUT_S)
        child.started = time.monotonic()  # a quick death is one soon after it was ready (a large store opens slowly)

    def _spawn_watched(
        self, role: str, *, gate_fd: int | None = None, open_fd: int | None = None
    ) -> tuple[_Child, int]:
        """A child of ``role`` and the read end of the pipe it writes a byte to once it is ready; an HTTP process given
        ``gate_fd`` waits to read a byte there (the store process is ready) before it starts serving, a store process
        given ``open_fd`` (:meth:`spawn`) waits to read one there before it opens the store."""
        read, write = os.pipe()
        try:
            child = self._spawn(role, ready_fd=write, gate_fd=gate_fd, open_fd=open_fd)
        except BaseException:
            os.close(read)
            raise
        finally:
            os.close(write)
        return child, read

    def _wait_ready(self, child: _Child, pipe: int, timeout_s: float) -> None:
        """Wait until ``child`` writes to ``pipe`` (closed after), or until asked to stop; ``ChildFailed`` if it ends
        first, or takes longer than ``timeout_s`` (it is killed then)."""
        try:
            deadline = time.monotonic() + timeout_s
            while True:
                readable, _, _ = select.select([pipe], [], [], 0.2)
                if (readable and os.read(pipe, 1)) or self._stopping:
                    return
                code = child.process.poll()
                if code is not None:
                    raise ChildFailed(code, child.role)
                if time.monotonic() > deadline:
                    child.process.kill()
                    raise ChildFailed(-9, child.role)
        finally:
            os.close(pipe)

    def _pause(self, seconds: float) -> bool:
        """Wait ``seconds`` before a restart, or until asked to stop (a SIGTERM does not wait out the pause of a
        child that keeps dying: up to 30 s); whether to go on."""
        deadline = time.monotonic() + seconds
        while not self._stopping and time.monotonic() < deadline:
            time.sleep(min(0.1, max(0.0, deadline - time.monotonic())))
        return not self._stopping

    def _restart_the_dead(self) -> None:
        for i, child in enumerate(self._children):
            code = child.process.poll()
            if code is None or self._stopping:
                continue
            quick = time.monotonic() - child.started < 10
            failures = child.failures + 1 if quick else 0
            pause = min(30.0, 0.5 * 2**failures) if failures else 0.0
            logger.error(
                "the %s process (PID %s) ended with exit code %s: restarting it%s",
                child.role,
                child.process.pid,
                code,
                f" in {pause:.1f} s" if pause else "",
            )
            if not self._pause(pause):
                return  # asked to stop meanwhile: :meth:`run` stops the others
            try:
                fresh = self._start_store() if child.role == "store" else self._spawn("http")
            except ChildFailed as exc:
                logger.error("the store process could not be started again: %s", exc)
                fresh = _Child("store", subprocess.Popen(["true"]), time.monotonic())
            fresh.failures = failures
            self._children[i] = fresh
            self._announce()
