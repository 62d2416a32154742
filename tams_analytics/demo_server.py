"""A TAMS server over a demo store, in the background, for a notebook that has no server to read.

:func:`server_or_demo` gives notebook 05 the server to read: the URL it is given (``TAMS_SERVER_URL``); else
the default, ``http://127.0.0.1:8000`` (what ``bash scripts/dev.sh serve`` starts), when a server answers
there; else a :class:`DemoServer` it starts and says so. A demo server is ``tams-analytics serve`` in a child
process (one process, ``TAMS_HTTP_PROCESSES=0``: most of its start is the server's imports, and one process makes
them once), on a free port of 127.0.0.1, over a demo store built first in a new temporary directory
(:func:`~tams_analytics.demo.build_demo`: catalog only, no media, so it takes a second and no encoder, where
``serve --demo`` writes every object's media: 788 MB for 20,000 segments). It stops with
:meth:`DemoServer.stop`, when this interpreter exits (a kernel shut down or restarted) and, should this
process die without exiting (killed), by itself: the child watches its parent and stops when the parent is
gone. Its directory goes with it.

The child runs this module (``python -m tams_analytics.demo_server PARENT_PID DATA_DIR serve ...``): the
parent watch, then the ``tams-analytics`` command line; the library never imports the server.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Final

from tams_analytics.exceptions import TamsError

__all__ = ["DEFAULT_URL", "DemoServer", "answers", "server_or_demo"]

#: where ``bash scripts/dev.sh serve`` (``tams-analytics serve``) listens
DEFAULT_URL: Final = "http://127.0.0.1:8000"
#: how long a demo server may take to build its store and answer (the first start imports a lot)
START_TIMEOUT_S: Final = 180.0
#: how often the child checks that its parent is still there
PARENT_CHECK_S: Final = 1.0


def answers(url: str, timeout: float = 2.0) -> bool:
    """Whether an HTTP server answers at ``url`` (a TAMS API root, ``http://host:port[/prefix]``): anything
    that answers counts, a refusal of credentials too (``connect`` then says what is wrong)."""
    from tams_analytics.engines.tams_http.client import Client, ServerUnreachableError

    client = Client(url.removeprefix("tams+").rstrip("/"), timeout=timeout, retries=0, connections=1)
    try:
        client.probe(timeout)
    except ServerUnreachableError:
        return False
    except TamsError:
        return True
    finally:
        client.close()
    return True


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class DemoServer:
    """``tams-analytics serve --demo N`` in a child process (see the module docstring); :meth:`start` it."""

    def __init__(self, process: subprocess.Popen[bytes], url: str, root: Path, segments: int) -> None:
        self.process = process
        self.url = url
        #: the temporary directory of its store, media and log (removed when it stops)
        self.root = root
        self.segments = segments

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"DemoServer({self.url!r}, pid={self.process.pid}, {self.segments} segments, {state})"

    @property
    def running(self) -> bool:
        return self.process.poll() is None

    @classmethod
    def start(cls, segments: int = 2_000, *, timeout_s: float = START_TIMEOUT_S) -> DemoServer:
        """Build a demo store of about ``segments`` segments, serve it, and wait until it answers; a
        :class:`TamsError` with the server's own last words when it cannot start."""
        from tams_analytics.catalog import connect
        from tams_analytics.demo import build_demo

        root = Path(tempfile.mkdtemp(prefix="tams-demo-server-"))
        try:
            (root / "data").mkdir()
            with connect(f"duckdb:///{root / 'data' / 'tams.duckdb'}", create=True) as catalog:
                build_demo(catalog, segments, progress=False)
        except BaseException:
            shutil.rmtree(root, ignore_errors=True)
            raise
        url = f"http://127.0.0.1:{_free_port()}"
        port = url.rsplit(":", 1)[1]
        serve = ["serve", "--host", "127.0.0.1", "--port", port, "--data-dir", str(root / "data")]
        command = [sys.executable, "-m", __name__, str(os.getpid()), str(root), *serve]
        # its own settings only: TAMS_STORE, TAMS_AUTH, ... of this environment are not the demo's; one process (no
        # HTTP processes in front of a store process): a notebook's reads need no more, and it starts in half the time
        env = {k: v for k, v in os.environ.items() if not k.startswith("TAMS_")} | {"TAMS_HTTP_PROCESSES": "0"}
        try:
            with (root / "serve.log").open("wb") as log:
                process = subprocess.Popen(
                    [*command, "--log-level", "warning"], stdout=log, stderr=subprocess.STDOUT, env=env
                )
        except BaseException:
            shutil.rmtree(root, ignore_errors=True)
            raise
        server = cls(process, url, root, segments)
        atexit.register(server.stop)
        deadline = time.monotonic() + timeout_s
        while not answers(url, timeout=1.0):
            if not server.running or time.monotonic() > deadline:
                why = server._last_words() if not server.running else f"it did not answer within {timeout_s:g} s"
                server.stop()
                raise TamsError(f"the demo server could not start: {why}")
            time.sleep(0.2)
        return server

    def _last_words(self) -> str:
        try:
            lines = (self.root / "serve.log").read_text(errors="replace").strip().splitlines()
        except OSError:
            lines = []
        return lines[-1] if lines else f"it exited with code {self.process.returncode}"

    def stop(self) -> None:
        """Stop the server (SIGTERM: it finishes what it is doing) and remove its directory."""
        atexit.unregister(self.stop)
        if self.running:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=30)
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> DemoServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def server_or_demo(
    url: str | None = None, *, default: str = DEFAULT_URL, segments: int = 2_000
) -> tuple[str, DemoServer | None]:
    """The TAMS server to read, and the demo server started for it (None when one was there already).

    ``url`` (a notebook passes ``TAMS_SERVER_URL``) is returned as it is: ``connect`` says at once if it does
    not answer. Without it, ``default`` when a server answers there, else a :class:`DemoServer` of about
    ``segments`` segments, started in the background (this is said on stdout).
    """
    if url:
        return url, None
    if answers(default):
        return default, None
    print(f"No TAMS server answers at {default} (and TAMS_SERVER_URL is not set): starting a demo server ...")
    demo = DemoServer.start(segments)
    print(
        f"Started a demo server at {demo.url} (PID {demo.process.pid}) over a demo store of {segments} segments; "
        "it stops with demo.stop() or when this kernel exits. To read your own server, set TAMS_SERVER_URL or "
        "start one (bash scripts/dev.sh serve)."
    )
    return demo.url, demo


# -- the child ---------------------------------------------------------------------------------------------
def _watch_parent(parent: int) -> None:
    """Stop this process (SIGTERM: the server shuts down cleanly) once ``parent`` is no longer its parent."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_CHECK_S)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _stop(signum: int, frame: object) -> None:
    """SIGTERM, once uvicorn has shut down (it re-raises the signal it stopped for): exit through ``finally``."""
    raise SystemExit(128 + signum)


def _child(argv: list[str]) -> int:
    parent, root, *command = argv
    signal.signal(signal.SIGTERM, _stop)
    _watch_parent(int(parent))
    from tams_analytics.cli.__main__ import main

    try:
        return main(command)
    finally:
        if os.getppid() != int(parent):  # nobody left to clean up: the directory goes with the server
            with contextlib.suppress(OSError):
                shutil.rmtree(root)


if __name__ == "__main__":
    sys.exit(_child(sys.argv[1:]))
