"""A test session stops every service it started when it ends, however it ends: signalled with SIGTERM (a
scheduler, ``kill``) or SIGINT (Ctrl-C) as well as at its normal end, in one process or with pytest-xdist workers
(``tests/fixtures/session_end.py``).

Each case runs a small session of its own, in a subprocess, as ``bash scripts/dev.sh test`` runs the suite: this
suite's plugins (``tests/conftest.py``'s), and a test that starts real services through the suite's own fixtures
(SeaweedFS, a PostgreSQL cluster, a TAMS server in a process of its own, Trino), writes their process ids and waits.
Once they run, the session's first process (pytest's, or pytest-xdist's controller) is signalled as a person or a
scheduler would signal it; when it has exited, none of those processes may be left.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.docs import ROOT

#: the small suite's conftest: the suite's own plugins, and the services not behind a session fixture of theirs
CONFTEST = '''
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import pytest_plugins  # noqa: F401  # this suite's plugins, as the suite has them


@pytest.fixture(scope="session")
def postgres() -> Iterator[int]:
    """A throwaway PostgreSQL cluster (as Trino's federation tests have one): the postmaster's process id."""
    from benchmarks import postgres_peer

    try:
        postgres_peer.check_driver()
        cluster = postgres_peer.Cluster()
        cluster.start()
    except postgres_peer.PeerUnavailable as exc:
        pytest.skip(f"no PostgreSQL: {exc}")
    try:
        yield int((cluster.data / "postmaster.pid").read_text().split()[0])
    finally:
        cluster.remove()


@pytest.fixture(scope="session")
def tams_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """``tams-analytics serve`` in a process of its own (as the reliability tests start it): its process id."""
    from benchmarks.live import LiveServer
    from tams_analytics.catalog import connect

    root = tmp_path_factory.mktemp("served")
    (root / "data").mkdir()
    connect(f"duckdb:///{root / 'tams.duckdb'}", create=True).close()
    with LiveServer(f"duckdb:///{root / 'tams.duckdb'}", root / "data") as server:
        yield server.pid
'''

#: the small suite's one test: the services named in PROBE_SERVICES, their process ids written, then a long wait
PROBE = """
import json
import os
import time
from pathlib import Path

import pytest


def pids(name: str, service: object) -> int:
    if name == "s3_server":
        return int(service.pid)
    if name == "trino_server":
        if service.home is None:
            pytest.skip("a Trino this session did not start (TAMS_TRINO_SERVER, or scripts/trino.sh start)")
        return int((service.home / "data" / "var" / "run" / "launcher.pid").read_text().split()[0])
    return int(service)


def test_holds_its_services(request: pytest.FixtureRequest) -> None:
    names = os.environ["PROBE_SERVICES"].split(",")
    held = {name: pids(name, request.getfixturevalue(name)) for name in names}
    Path(os.environ["PROBE_PIDS"] + ".part").write_text(json.dumps(held))
    os.replace(os.environ["PROBE_PIDS"] + ".part", os.environ["PROBE_PIDS"])
    time.sleep(3600)
"""

#: what a service's start may take (Trino's first start on two busy cores: a minute or two)
START_TIMEOUT_S = 600
#: how long the signalled session may take to end (its teardown: Trino stops in seconds, pytest-xdist gives its
#: workers ten)
END_TIMEOUT_S = 180


def gone(pid: int) -> bool:
    """No such process, or only its exit status left (a zombie: nothing runs)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return True


@dataclass
class Session:
    """A small session, started: its pytest process, the file its test writes the services' process ids to, and
    its output."""

    process: subprocess.Popen[str]
    pids_file: Path
    log: Path

    @property
    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def services(self) -> dict[str, int]:
        """The services' process ids, once they all run; skips when the small session skipped its test."""
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self.pids_file.exists():
            if self.process.poll() is not None:
                if " skipped" in self.output and " passed" not in self.output:
                    pytest.skip(self.output.strip().splitlines()[-1])
                raise AssertionError(f"the session ended before its services ran:\n{self.output[-5000:]}")
            assert time.monotonic() < deadline, f"the services did not start in {START_TIMEOUT_S} s"
            time.sleep(0.5)
        pids: dict[str, int] = json.loads(self.pids_file.read_text())
        return pids


@contextlib.contextmanager
def sigint_as_a_terminal_gives_it() -> Iterator[None]:
    """Meanwhile, SIGINT handled (Python's ``KeyboardInterrupt``), so that a process started here has it at its
    default, as a command typed at a terminal has (and Python makes it a ``KeyboardInterrupt`` there).

    A process inherits an ignored signal, and this suite run as a background job of a script (``cmd &``, no job
    control) has SIGINT ignored: so would the small session, and no SIGINT would stop it. A handled signal is reset to
    its default by ``exec``."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:  # (None: a handler set outside Python, which Python cannot set back; its default is the nearest)
        signal.signal(signal.SIGINT, signal.SIG_DFL if previous is None else previous)


def start_session(tmp_path: Path, services: list[str], workers: int) -> Session:
    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / "conftest.py").write_text(textwrap.dedent(CONFTEST))
    (suite / "test_probe.py").write_text(textwrap.dedent(PROBE))
    pids_file, log = tmp_path / "pids.json", tmp_path / "session.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "TAMS_TRINO_SERVER"))}
    env |= {"PYTHONPATH": str(ROOT), "PROBE_SERVICES": ",".join(services), "PROBE_PIDS": str(pids_file)}
    command = [sys.executable, "-m", "pytest", "-n", str(workers), "-p", "no:cacheprovider", "-q", "-rs", str(suite)]
    with log.open("w") as out, sigint_as_a_terminal_gives_it():
        # a process group of its own, as a terminal gives a command: Ctrl-C there signals the whole group
        process = subprocess.Popen(
            command,
            cwd=suite,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            start_new_session=True,
        )
    return Session(process, pids_file, log)


#: how a session is stopped: ``kill -TERM PID`` (a scheduler, CI's timeout), ``kill -INT PID``, and Ctrl-C at a
#: terminal (SIGINT to every process of the foreground group: pytest-xdist's workers too)
HOW = {
    "kill-TERM": lambda pid: os.kill(pid, signal.SIGTERM),
    "kill-INT": lambda pid: os.kill(pid, signal.SIGINT),
    "ctrl-C": lambda pid: os.killpg(pid, signal.SIGINT),
}


def signalled(tmp_path: Path, services: list[str], workers: int, how: str) -> None:
    session = start_session(tmp_path, services, workers)
    try:
        pids = session.services()
        assert not [name for name, pid in pids.items() if gone(pid)], pids
        HOW[how](session.process.pid)
        try:
            session.process.wait(timeout=END_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"the session did not end in {END_TIMEOUT_S} s:\n{session.output[-5000:]}") from None
        left = {name: pid for name, pid in pids.items() if not gone(pid)}
        assert not left, f"left running after {how}: {left}\n{session.output[-5000:]}"
    finally:  # a failed case leaves nothing either: the session's processes, and the services by their ids
        with contextlib.suppress(ProcessLookupError):
            os.killpg(session.process.pid, signal.SIGKILL)
        session.process.wait()
        for pid in json.loads(session.pids_file.read_text()).values() if session.pids_file.exists() else ():
            if not gone(pid):
                os.kill(pid, signal.SIGKILL)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("workers", "how"),
    [(2, "kill-TERM"), (2, "kill-INT"), (2, "ctrl-C"), (0, "kill-TERM"), (0, "ctrl-C")],
    ids=lambda v: {2: "xdist", 0: "one-process"}.get(v, v) if isinstance(v, int) else v,
)
def test_a_signalled_session_stops_its_services(tmp_path: Path, workers: int, how: str) -> None:
    signalled(tmp_path, ["s3_server", "postgres", "tams_server"], workers, how)


@pytest.mark.slow
def test_a_signalled_session_stops_its_trino(tmp_path: Path) -> None:
    """The case found: the suite stopped with SIGTERM, its Trino JVM (4 GB) still running 35 minutes later."""
    signalled(tmp_path, ["trino_server"], 2, "kill-TERM")
