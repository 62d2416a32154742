"""A demo server in the background (:mod:`tams_analytics.demo_server`), for a notebook with no server to read.

Real processes throughout: the notebook's part is played by a Python subprocess that starts the demo server,
which must be gone, with its directory, however that process ends: by ``stop()``, by exiting (a kernel shut
down), or killed (SIGKILL: the server notices its parent is gone). The server to read is the URL given, else
the default when something answers there (a live server on 127.0.0.1), else the demo.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import tams_analytics as ta
from benchmarks.ports import free_port
from tams_analytics.demo_server import answers, server_or_demo
from tests.fixtures.live_tams import ServedDemo
from tests.fixtures.session_end import below

ROOT = Path(__file__).resolve().parents[1]

#: a process that starts a demo server, says where, then exits (or waits to be killed)
STARTER = """
import json, sys, time
from tams_analytics.demo_server import DemoServer
demo = DemoServer.start(300)
print(json.dumps({"url": demo.url, "pid": demo.process.pid, "root": str(demo.root)}), flush=True)
if sys.argv[1] == "wait":
    time.sleep(600)
"""


def gone(pid: int) -> bool:
    """No such process, or only its exit status left (a zombie: an orphan whose new parent has not reaped it)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return True


def start_in_a_process(how: str) -> tuple[subprocess.Popen[str], dict[str, str | int]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAMS_")} | {"PYTHONPATH": str(ROOT)}
    parent = subprocess.Popen(
        [sys.executable, "-c", STARTER, how], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    assert parent.stdout is not None
    line = parent.stdout.readline()
    assert line, parent.stderr.read() if parent.stderr else ""
    return parent, json.loads(line)


def test_the_url_given_or_a_server_at_the_default_is_read_as_it_is(served_demo: ServedDemo) -> None:
    nowhere = f"http://127.0.0.1:{free_port()}"
    assert server_or_demo(nowhere) == (nowhere, None)  # given: connect says whether it answers
    assert server_or_demo(None, default=served_demo.server.url) == (served_demo.server.url, None)
    assert answers(served_demo.server.url) and answers(served_demo.url) and not answers(nowhere)


def test_a_demo_server_serves_a_demo_store_until_stopped(capsys: pytest.CaptureFixture[str]) -> None:
    default = f"http://127.0.0.1:{free_port()}"  # nothing there
    url, demo = server_or_demo(None, default=default, segments=300)
    assert demo is not None and url == demo.url and demo.running
    said = capsys.readouterr().out
    assert f"No TAMS server answers at {default}" in said and f"Started a demo server at {url}" in said
    with ta.connect(f"tams+{url}") as cat:
        assert cat.count("segments") == 300 and cat.count("flows") == 20
    # one process: no HTTP processes in front of a store process, whose start would double the wait
    assert below(demo.process.pid) == []
    demo.stop()
    assert not demo.running and not demo.root.exists() and not answers(url)
    demo.stop()  # again: nothing to do


def test_it_stops_when_the_process_that_started_it_exits() -> None:
    parent, started = start_in_a_process("exit")
    assert parent.wait(timeout=60) == 0
    assert gone(int(started["pid"])) and not Path(str(started["root"])).exists()
    assert not answers(str(started["url"]))


def test_it_stops_by_itself_when_the_process_that_started_it_is_killed() -> None:
    parent, started = start_in_a_process("wait")
    pid = int(started["pid"])
    assert answers(str(started["url"])) and not gone(pid)
    os.kill(parent.pid, signal.SIGKILL)  # no atexit, no stop(): the server watches for this
    parent.wait(timeout=30)
    deadline = time.monotonic() + 30
    while not gone(pid) or Path(str(started["root"])).exists():
        assert time.monotonic() < deadline, "the demo server outlived the process that started it"
        time.sleep(0.2)
    assert not answers(str(started["url"]))
