"""Live-server fixtures for the reliability suite, and the store invariants every test checks.

``LiveServer`` runs ``tams-analytics serve`` in a subprocess (its own process group) on 127.0.0.1 with a free
port and a data directory under the test's tmp_path, waits until it answers, and can stop it gracefully,
SIGKILL it, and start it again on the same data directory. Its stdout/stderr go to a log file the tests read
(secrets must never appear there).

``store_problems`` opens the DuckDB file of a stopped server and lists every broken invariant: orphans,
overlapping segments, sources without flows, objects referenced but gone. It is written in plain SQL on
purpose, independent of the catalog code under test.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import duckdb
import httpx
import pytest

from benchmarks.ports import free_port
from tests.fixtures.summary import note

REPO = Path(__file__).resolve().parents[2]
#: run ``argv[1:]`` with the limit on open files ``(soft, hard)``: set, then exec'd (a ``preexec_fn`` is not safe in a
#: process with threads, as a test worker may be)
_LIMITED = (
    "import os, resource, sys; resource.setrlimit(resource.RLIMIT_NOFILE, %r); os.execv(sys.argv[1], sys.argv[1:])"
)
#: the first start imports pandas, ibis, duckdb, boto3 ...: a few seconds on a small machine
STARTUP_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0


class LiveServer:
    """``tams-analytics serve`` in a subprocess on one data directory; restartable after a crash."""

    def __init__(
        self,
        data_dir: Path,
        *,
        env: Mapping[str, str] | None = None,
        verbosity: int = 1,
        name: str = "server",
        open_files: tuple[int, int] | None = None,
    ) -> None:
        self.data_dir = data_dir
        #: the limit on open files (soft, hard) the server is started with (None: this process's)
        self.open_files = open_files
        self.extra_env = dict(env or {})
        self.verbosity = verbosity
        self.log_path = data_dir.parent / f"{name}.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.port = 0
        #: how many times the process was started, and how it ended each time
        self.starts = 0
        self.exits: list[int] = []

    # -- process ---------------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def store_path(self) -> Path:
        return self.data_dir / "tams.duckdb"

    @property
    def objects_dir(self) -> Path:
        return self.data_dir / "objects"

    def environment(self) -> dict[str, str]:
        """The caller's environment without its ``TAMS_*`` settings, plus this server's."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("TAMS_")}
        env["PYTHONUNBUFFERED"] = "1"
        env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
        return env | self.extra_env

    def command(self) -> list[str]:
        verbose = ["-" + "v" * self.verbosity] if self.verbosity else []
        limited = [sys.executable, "-c", _LIMITED % (self.open_files,)] if self.open_files else []
        return [
            *limited,
            sys.executable,
            "-m",
            "tams_analytics.cli",
            *verbose,
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--data-dir",
            str(self.data_dir),
            "--log-level",
            "debug" if self.verbosity > 1 else "info",
        ]

    def start(self) -> LiveServer:
        """Start the server and wait until it answers HTTP (any status: auth may be on)."""
        assert not self.running, "already running"
        for attempt in range(3):
            self.port = free_port()
            with self.log_path.open("ab") as log:
                log.write(f"\n--- start {self.starts + 1} on port {self.port} ---\n".encode())
                log.flush()
                self.process = subprocess.Popen(
                    self.command(),
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    env=self.environment(),
                    cwd=self.data_dir.parent,
                    start_new_session=True,
                )
            self.starts += 1
            if self._wait_ready():
                return self
            if attempt == 2 or "address already in use" not in self.log_text().lower():
                break
        raise RuntimeError(f"the server did not start:\n{self.log_tail()}")

    def _wait_ready(self) -> bool:
        assert self.process is not None
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        with self.client(timeout=2.0) as probe:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    self.exits.append(self.process.returncode)
                    return False
                try:
                    probe.get("/service")
                except httpx.TransportError:
                    time.sleep(0.1)
                    continue
                return True
        self.kill()
        return False

    def _signal(self, sig: int) -> None:
        assert self.process is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, sig)

    def kill(self) -> None:
        """SIGKILL the server (and anything it started: its store and HTTP processes): no shutdown code runs.
        Returns once every process of it is gone (a store process holds the DuckDB file until it is)."""
        if self.process is None or self.process.poll() is not None:
            return
        self._signal(signal.SIGKILL)
        self.exits.append(self.process.wait(timeout=STOP_TIMEOUT_S))
        self._wait_group_gone()

    def _wait_group_gone(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while time.monotonic() < deadline:
            try:
                os.killpg(self.process.pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.02)
        raise AssertionError(f"processes of the server (group {self.process.pid}) still run after SIGKILL")

    def stop(self) -> None:
        """Stop gracefully (SIGTERM, as a service manager would), SIGKILL if that takes too long."""
        if self.process is None or self.process.poll() is not None:
            return
        self._signal(signal.SIGTERM)
        try:
            self.exits.append(self.process.wait(timeout=STOP_TIMEOUT_S))
        except subprocess.TimeoutExpired:
            self.kill()
        else:
            self._wait_group_gone()

    def restart(self, *, crash: bool = False) -> LiveServer:
        self.kill() if crash else self.stop()
        return self.start()

    # -- talking to it -----------------------------------------------------------------------------------
    def client(self, **kwargs: Any) -> httpx.Client:
        """A client of the server's plain HTTP: no TLS, so no certificates to load (a verifying client loads the CA
        bundle, ~50 ms of CPU each: tests that open one per request spent most of their time there)."""
        kwargs.setdefault("verify", False)
        return httpx.Client(base_url=self.url, timeout=kwargs.pop("timeout", 120.0), **kwargs)

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    @contextlib.contextmanager
    def database(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """The store's DuckDB file, read-only; the server must be stopped (DuckDB locks the file). A journal a
        killed server left (``TAMS_JOURNAL``) is applied first, as the server's next start would."""
        assert not self.running, "stop the server before opening its store"
        if Path(f"{self.store_path}.journal").exists():
            from tams_analytics.engines import open_engine

            open_engine(f"duckdb://{self.store_path.resolve()}").close()
        con = duckdb.connect(str(self.store_path), read_only=True)
        try:
            yield con
        finally:
            con.close()


@pytest.fixture
def live_server_factory(tmp_path: Path) -> Iterator[Callable[..., LiveServer]]:
    """``make(env={...}, verbosity=1, name="server")`` starts a live server; all are killed at teardown."""
    servers: list[LiveServer] = []

    def make(*, env: Mapping[str, str] | None = None, verbosity: int = 1, name: str = "server") -> LiveServer:
        server = LiveServer(tmp_path / name / "data", env=env, verbosity=verbosity, name=name)
        server.data_dir.mkdir(parents=True)
        servers.append(server)
        return server.start()

    yield make
    for server in servers:
        server.kill()


@pytest.fixture
def live_server(live_server_factory: Callable[..., LiveServer]) -> LiveServer:
    return live_server_factory()


# -- invariants ------------------------------------------------------------------------------------------
#: name -> SQL listing the rows that break the invariant (none may come back)
INVARIANTS: dict[str, str] = {
    "segments without their flow": "SELECT flow_id, count(*) FROM segments "
    "WHERE flow_id NOT IN (SELECT id FROM flows) GROUP BY flow_id",
    "overlapping segments": "SELECT flow_id, prev_tr, timerange FROM ("
    " SELECT flow_id, timerange, start_ns,"
    "  lag(end_ns) OVER (PARTITION BY flow_id ORDER BY start_ns, end_ns) AS prev_end,"
    "  lag(timerange) OVER (PARTITION BY flow_id ORDER BY start_ns, end_ns) AS prev_tr"
    " FROM segments) WHERE prev_end > start_ns",
    "flows without their source": "SELECT id, source_id FROM flows WHERE source_id NOT IN (SELECT id FROM sources)",
    "sources without flows": "SELECT id FROM sources WHERE id NOT IN (SELECT source_id FROM flows)",
    "tags of missing entities": "SELECT entity_type, entity_id, name FROM tags WHERE"
    " (entity_type = 'flow' AND entity_id NOT IN (SELECT id FROM flows))"
    " OR (entity_type = 'source' AND entity_id NOT IN (SELECT id FROM sources))"
    " OR (entity_type = 'webhook' AND entity_id NOT IN (SELECT id FROM webhooks))",
    "collections naming missing flows": "SELECT flow_id, member_id FROM collections"
    " WHERE flow_id NOT IN (SELECT id FROM flows) OR member_id NOT IN (SELECT id FROM flows)",
    "segments referencing missing objects": "SELECT flow_id, object_id, init_object_id FROM segments"
    " WHERE object_id NOT IN (SELECT id FROM objects)"
    " OR (init_object_id IS NOT NULL AND init_object_id NOT IN (SELECT id FROM objects))",
    "referenced objects marked for collection": "SELECT id FROM objects WHERE unreferenced_since IS NOT NULL"
    " AND (id IN (SELECT object_id FROM segments) OR id IN (SELECT init_object_id FROM segments))",
    "unreferenced objects never collected": "SELECT id FROM objects WHERE registered AND unreferenced_since IS NULL"
    " AND id NOT IN (SELECT object_id FROM segments)"
    " AND id NOT IN (SELECT init_object_id FROM segments WHERE init_object_id IS NOT NULL)",
    "instances of missing objects": "SELECT object_id FROM object_instances"
    " WHERE object_id NOT IN (SELECT id FROM objects)",
}


Query = Callable[[str], list[tuple[Any, ...]]]


def duckdb_query(con: duckdb.DuckDBPyConnection) -> Query:
    return lambda sql: con.execute(sql).fetchall()


def store_problems(con: duckdb.DuckDBPyConnection | Query, objects_dir: Path | None = None) -> dict[str, list[Any]]:
    """Every broken invariant with (up to 10 of) its offending rows; ``{}`` when the store is consistent.

    ``con`` is a DuckDB connection or any ``sql -> rows`` callable. With ``objects_dir`` (local storage),
    the controlled instances of referenced objects must also exist there as files: no segment may point
    at media bytes that are gone.
    """
    query = duckdb_query(con) if isinstance(con, duckdb.DuckDBPyConnection) else con
    problems: dict[str, list[Any]] = {}
    for name, sql in INVARIANTS.items():
        rows = query(sql)
        if rows:
            problems[name] = rows[:10]
    if objects_dir is not None:
        missing = missing_media(query, objects_dir)
        if missing:
            problems["referenced objects missing from storage"] = missing[:10]
    return problems


def missing_media(query: Query, objects_dir: Path) -> list[str]:
    """Referenced objects whose controlled instance has no file in local storage."""
    from tams_analytics.storage.base import StorageBackendInfo
    from tams_analytics.storage.local import LocalObjectStore

    info = StorageBackendInfo(id="00000000-0000-4000-8000-000000000000", label="check", provider="t", store_product="t")
    store = LocalObjectStore(info, root=objects_dir, base_url="", secret=b"unused")
    keys = query(
        "SELECT DISTINCT i.object_id, i.storage_key FROM object_instances i"
        " JOIN segments s ON s.object_id = i.object_id WHERE i.controlled"
    )
    return [oid for oid, key in keys if not store.path_for(key).is_file()]


def segments_in_store(con: duckdb.DuckDBPyConnection, flow_id: str | None = None) -> list[tuple[str, str, str]]:
    """``(flow_id, object_id, timerange)`` of every stored segment (of one flow), in time order."""
    sql = "SELECT flow_id, object_id, timerange FROM segments"
    params: list[Any] = []
    if flow_id is not None:
        sql += " WHERE flow_id = ?"
        params.append(flow_id)
    return [tuple(r) for r in con.execute(sql + " ORDER BY flow_id, start_ns", params).fetchall()]  # type: ignore[misc]


def all_segments(client: httpx.Client, flow_id: str, limit: int = 500) -> list[dict[str, Any]]:
    """Every segment of a flow through the API, following ``Link`` until the last page."""
    out: list[dict[str, Any]] = []
    url: str | None = f"/flows/{flow_id}/segments?limit={limit}&accept_get_urls="
    while url is not None:
        r = client.get(url)
        assert r.status_code == 200, r.text
        out.extend(r.json())
        link = r.headers.get("link")
        url = link[link.index("<") + 1 : link.index(">")] if link else None
    return out


def report(name: str, value: object) -> None:
    """A figure the tests measured (writers, segments, crash runs, schemathesis cases), printed after the run."""
    note("reliability figures", f"{name}: {value}")


@pytest.fixture
def spec_yaml() -> Path:
    """The official OpenAPI file (TAMS_SPEC_DIR), or skip."""
    from tests.spec import require_spec

    path = require_spec() / "api" / "TimeAddressableMediaStore.yaml"
    if not path.is_file():
        pytest.skip(f"{path} not found (set TAMS_SPEC_DIR)")
    return path
