"""A live TAMS server for the HTTP benchmarks: ``tams-analytics serve`` (uvicorn) in a subprocess on 127.0.0.1."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from benchmarks.ports import free_port

logger = logging.getLogger(__name__)

#: the storage backend id the benchmark stores and the server agree on
STORAGE_ID = "5d0c8a3e-7f41-4b6a-9c2e-1a3b5c7d9e0f"


def server_role(command: str) -> str | None:
    """Which of ``serve``'s processes the command line ``command`` starts: ``store`` (its store process), ``http``
    (an HTTP process), ``supervisor`` (``serve`` itself), None (another).

    >>> [server_role(c) for c in ("python -m server.processes store", "python -m tams_analytics.cli serve --port 1")]
    ['store', 'supervisor']
    """
    if "server.processes store" in command:
        return "store"
    if "server.processes http" in command:
        return "http"
    if " serve " in f"{command} ":
        return "supervisor"
    return None


class LiveServer:
    """``tams-analytics serve`` on ``store_url`` in a child process, until :meth:`stop` (SIGTERM) or :meth:`kill`.

    The child gets a clean environment (no inherited ``TAMS_*`` settings) with local storage under
    ``data_dir`` and :data:`STORAGE_ID` as its backend id, plus ``env``; webhooks, the read cache and the access log
    stay as by default (the log, stdout and stderr, goes to ``data_dir/server.log``). ``port`` (default: a free one)
    lets a restarted server take its predecessor's; ``log_level`` (default: none given, ``serve``'s own ``info``) is
    ``serve --log-level``.
    """

    def __init__(
        self,
        store_url: str,
        data_dir: Path,
        *,
        startup_s: float = 120.0,
        env: dict[str, str] | None = None,
        port: int | None = None,
        cpus: str | None = None,
        log_level: str | None = None,
    ) -> None:
        self.host = "127.0.0.1"
        self.port = port or free_port()
        self.base_url = f"http://{self.host}:{self.port}"
        child_env = {k: v for k, v in os.environ.items() if not k.startswith("TAMS_")}
        child_env |= {"TAMS_STORAGE_ID": STORAGE_ID, "PYTHONUNBUFFERED": "1", **(env or {})}
        cmd = [
            sys.executable,
            "-m",
            "tams_analytics.cli",
            "serve",
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--data-dir",
            str(data_dir),
            "--store",
            store_url,
        ]
        if log_level is not None:
            cmd += ["--log-level", log_level]
        if cpus is not None:  # the server's processes on these cores only (``taskset -c``), the rest for the load
            cmd = ["taskset", "-c", cpus, *cmd]
        self._log = (data_dir / "server.log").open("ab") if data_dir.is_dir() else subprocess.DEVNULL
        # its own process group: a SIGKILL reaches its store and HTTP processes too, as a crash of the machine would
        self.process = subprocess.Popen(
            cmd, env=child_env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )
        self._wait_ready(startup_s)

    def _wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        # one client for the polls: each new one makes a TLS context, ~50 ms of CPU, which at this pace would take
        # most of a core from the server starting beside it (and from a restart's measured resume)
        with httpx.Client(timeout=1.0, trust_env=False) as probe:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise RuntimeError(f"the server exited with {self.process.returncode} before answering")
                try:
                    if probe.get(f"{self.base_url}/").status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"the server did not answer within {timeout_s} s")

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if hasattr(self._log, "close"):
            self._log.close()

    def kill(self) -> None:
        """SIGKILL of every process of the server: it stops at once, as in a crash (no shutdown, no checkpoint).
        Returns once all of them are gone (the store process holds the DuckDB file until it is)."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                os.killpg(self.process.pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.01)
        if hasattr(self._log, "close"):
            self._log.close()

    def __enter__(self) -> LiveServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class PeakRss:
    """Samples a process's resident set size in a thread; ``peak_mb`` is the largest sample seen."""

    def __init__(self, pid: int, interval_s: float = 0.01) -> None:
        import psutil

        self._process: Any = psutil.Process(pid)
        self._interval = interval_s
        self._stop = threading.Event()
        self.start_mb = self._rss_mb()
        self.peak_mb = self.start_mb
        self._thread = threading.Thread(target=self._sample, name="peak-rss", daemon=True)

    def _rss_mb(self) -> float:
        return float(self._process.memory_info().rss) / 2**20

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak_mb = max(self.peak_mb, self._rss_mb())
            self._stop.wait(self._interval)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_mb = max(self.peak_mb, self._rss_mb())
