"""A Trino server for ``bench --only trino`` and the tests: one someone runs, or one ``scripts/trino.sh`` starts.

:func:`acquire` returns, in this order of preference:

* ``TAMS_TRINO_SERVER=http://host:port``: a server someone else runs (it must read this machine's files for the
  Hive catalog, i.e. run here, and allow ``CREATE CATALOG``: ``scripts/trino.sh start`` gives both);
* the one ``bash scripts/trino.sh start`` left running in its default home (reused and left running);
* else one started in ``home`` (a temporary directory), which :meth:`Server.stop` stops.

When none can be had it raises :class:`TrinoUnavailable` with the one-line reason, and says whether Trino was
there but failed to start (a failure worth more than a skip on CI) or cannot be had here at all (no download,
no Java 24+).
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote, urlsplit

from benchmarks.ports import free_port

#: the script that downloads, starts and stops Trino (in a clone of the repository)
SCRIPT: Final = Path(__file__).resolve().parents[1] / "scripts" / "trino.sh"
#: a Trino someone else runs, http://host:port
SERVER_ENV: Final = "TAMS_TRINO_SERVER"
_START_TIMEOUT_S: Final = 900  # a first start downloads 0.8 GB


class TrinoUnavailable(RuntimeError):
    """No Trino here; the message is the reason. ``failed_start``: Trino was there but did not start."""

    def __init__(self, reason: str, *, failed_start: bool) -> None:
        super().__init__(reason)
        self.failed_start = failed_start


@dataclass
class Server:
    """A running Trino and how to reach it."""

    host: str
    port: int
    #: the home of an instance we started (None: not ours to stop)
    home: Path | None = None
    #: seconds the start took (None: it was running already)
    start_s: float | None = None
    _con: Any = field(default=None, repr=False)

    @property
    def http_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def url(self, catalog: str, schema: str, user: str = "tester", source: str | None = None) -> str:
        """The ``trino://`` store URL of ``catalog``/``schema`` (a VAST schema ``bucket/schema`` is quoted)."""
        query = f"?source={quote(source)}" if source else ""
        return f"trino://{user}@{self.host}:{self.port}/{catalog}/{quote(schema, safe='')}{query}"

    def execute(self, statement: str) -> list[list[Any]]:
        """Run one statement (no trailing semicolon) and return its rows."""
        import trino

        if self._con is None:
            self._con = trino.dbapi.connect(host=self.host, port=self.port, user="tests", source="tams-tests")
        cur = self._con.cursor()
        try:
            cur.execute(statement)
            return [list(r) for r in cur.fetchall()]
        finally:
            cur.close()

    def script(self, text: str) -> None:
        """Run every statement of a SQL file's text."""
        from tams_analytics.engines.trino import statements

        for statement in statements(text):
            self.execute(statement)

    def stop(self) -> None:
        """Close the connection, and stop the server if we started it."""
        if self._con is not None:
            self._con.close()
            self._con = None
        if self.home is not None:
            _script("stop", self.home)


def _script(
    command: str, home: Path | None, port: int | None = None, jit: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    if jit is not None:
        env["TAMS_TRINO_JIT"] = jit
    if home is not None:
        env["TAMS_TRINO_HOME"] = str(home)
    if port is not None:
        env["TAMS_TRINO_PORT"] = str(port)
    return subprocess.run(
        ["bash", str(SCRIPT), command], env=env, capture_output=True, text=True, timeout=_START_TIMEOUT_S, check=False
    )


def _at(url: str, home: Path | None = None, start_s: float | None = None) -> Server:
    parts = urlsplit(url.strip())
    if not parts.hostname or not parts.port:
        raise TrinoUnavailable(f"not an http://host:port URL: {url!r}", failed_start=False)
    return Server(parts.hostname, parts.port, home, start_s)


def _last_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "no message"


def acquire(home: Path, jit: str = "full") -> Server:
    """A running Trino (see the module docstring); ``home`` is where one started here lives, its JVM compiling
    with ``jit`` (``scripts/trino.sh``'s ``TAMS_TRINO_JIT``: ``full``, or ``quick`` for C1 only: a test session's
    many short queries on small data spent a third of Trino's CPU in C2's compiler)."""
    import time

    external = os.environ.get(SERVER_ENV)
    if external:
        return _at(external)
    if not SCRIPT.is_file():
        raise TrinoUnavailable(f"no {SERVER_ENV} and no {SCRIPT} to start one with", failed_start=False)
    status = _script("status", None)
    if status.returncode == 0 and "running at" in status.stdout:
        return _at(status.stdout.split("running at", 1)[1])
    t0 = time.perf_counter()
    started = _script("start", home, free_port(), jit)  # (claimed, as every test server's port)
    if started.returncode == 2:
        raise TrinoUnavailable(_last_line(started.stderr), failed_start=False)
    if started.returncode != 0:
        _script("stop", home)
        tail = "\n".join(started.stderr.strip().splitlines()[-50:])
        raise TrinoUnavailable(f"scripts/trino.sh start failed (exit {started.returncode}):\n{tail}", failed_start=True)
    return _at(_last_line(started.stdout), home, time.perf_counter() - t0)
