"""The operators' runbook (``docs/operators/backup-and-restore.md``): its bash blocks, each marked with the test
that runs it as written (``<!-- docs: tested-by tests/path.py::test_name -->`` on the line before), and a shell
that runs their commands in a folder, a server (``tams-analytics serve``) in the background."""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.docs import blocks

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs/operators/backup-and-restore.md"
#: a command may take this long (a CLI start imports pandas, ibis, duckdb: seconds on a loaded machine)
COMMAND_TIMEOUT_S = 180.0
SERVE_TIMEOUT_S = 90.0


def blocks_for(test: str) -> list[list[str]]:
    """The commands of every bash block the page marks as tested by ``test`` (``path::name``), in page order."""
    found = [
        b.commands()
        for b in blocks(PAGE)
        if b.language == "bash" and b.marker is not None and b.marker.kind == "tested-by" and b.marker.argument == test
    ]
    assert found, f"{PAGE} has no bash block tested by {test}"
    return found


def environment(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The caller's environment without its TAMS_* settings, with this interpreter's tams-analytics first on the
    PATH, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAMS_")}
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    env["PYTHONUNBUFFERED"] = "1"
    return env | dict(extra or {})


@dataclass
class Served:
    """A ``tams-analytics serve`` started from the runbook, and the URL it left beside its store."""

    process: subprocess.Popen[bytes]
    url: str
    log: Path

    def stop(self) -> None:
        """SIGTERM (as a service manager stops it: the store is checkpointed and closed), SIGKILL if it hangs."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=30)


class Shell:
    """Runs a runbook's commands in ``cwd`` as written (split as a shell would, no shell in between)."""

    def __init__(self, cwd: Path, env: Mapping[str, str] | None = None) -> None:
        self.cwd = cwd
        self.env = environment(env)
        self.servers: list[Served] = []

    def run(self, command: str, *, check: bool = True) -> subprocess.CompletedProcess[str]:
        argv = shlex.split(command)
        done = subprocess.run(
            argv, cwd=self.cwd, env=self.env, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S
        )
        if check:
            assert done.returncode == 0, f"{command}: exit {done.returncode}\n{done.stdout}\n{done.stderr}"
        return done

    def serve(self, command: str, store: Path) -> Served:
        """Start ``command`` (a ``tams-analytics serve``) in the background; returns once it answers, with the URL
        it left beside ``store``."""
        assert shlex.split(command)[:2] == ["tams-analytics", "serve"], command
        announced = Path(f"{store}.server.json")
        log = self.cwd / f"serve-{len(self.servers) + 1}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                shlex.split(command),
                cwd=self.cwd,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        deadline = time.monotonic() + SERVE_TIMEOUT_S
        while True:
            assert process.poll() is None, f"{command} exited {process.returncode}:\n{log.read_text()}"
            assert time.monotonic() < deadline, f"{command} did not start:\n{log.read_text()}"
            with contextlib.suppress(OSError, ValueError):
                record = json.loads(announced.read_text())
                if record.get("pid") == process.pid:
                    with contextlib.suppress(httpx.TransportError):
                        httpx.get(record["url"] + "/service", timeout=2)
                        served = Served(process, record["url"], log)
                        self.servers.append(served)
                        return served
            time.sleep(0.1)

    def close(self) -> None:
        for served in self.servers:
            if served.process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(served.process.pid, signal.SIGKILL)
                served.process.wait(timeout=30)


@contextlib.contextmanager
def shell(cwd: Path, env: Mapping[str, str] | None = None) -> Iterator[Shell]:
    sh = Shell(cwd, env)
    try:
        yield sh
    finally:
        sh.close()
