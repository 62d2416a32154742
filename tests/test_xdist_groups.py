"""The suite's pytest-xdist groups (:func:`tests.conftest.shared_group`) take effect: ``bash scripts/dev.sh test``
runs the suite in two worker processes, and the tests that share one thing outside their process (the Trino server
above all) must all run on one of them.

A broken grouping says nothing: pytest 9.2's node ids silently dropped ``--dist loadgroup``'s groups
(pytest-xdist #1386), and both workers then started a Trino of their own. This runs a small suite under the same
hook in two workers, as the script does, and fails if a group is split.

A test that takes its worker process down (a crash in DuckDB, say) must fail the run, not hang it: pytest-xdist 3.8's
``loadgroup`` replaces the crashed worker and then waits for good (pytest-xdist #1323, #1378; CI once ran out its 90
minutes so), so the script gives ``--max-worker-restart 0``. The second test runs a suite with such a test through the
script itself.

The script writes bytecode where ``PYTHONDONTWRITEBYTECODE`` is set: without it each of the suite's hundreds of Python
processes compiled the checkout's modules anew, and pytest rewrote the test modules for each. The third test checks
that a run through the script leaves bytecode behind with the variable set.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.docs import ROOT

SUITE = """
import os
import time

import pytest


@pytest.mark.parametrize("i", range(12))
@pytest.mark.parametrize("engine", ["duckdb", "trino"])
def test_one(engine: str, i: int) -> None:
    time.sleep(0.05)
    with open(os.environ["WORKERS_FILE"], "a") as out:
        out.write(f"{engine} {os.environ['PYTEST_XDIST_WORKER']}\\n")
"""


def test_the_tests_of_one_group_run_on_one_worker(tmp_path: Path) -> None:
    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / "conftest.py").write_text("from tests.conftest import pytest_collection_modifyitems  # noqa: F401\n")
    (suite / "test_groups.py").write_text(textwrap.dedent(SUITE))
    workers_file = tmp_path / "workers.txt"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}  # not this run's worker's
    env |= {"PYTHONPATH": str(ROOT), "WORKERS_FILE": str(workers_file)}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-n", "2", "--dist", "loadgroup", "-p", "no:cacheprovider", "-q", str(suite)],
        cwd=suite,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    ran = [line.split() for line in workers_file.read_text().splitlines()]
    assert len(ran) == 24
    assert len({worker for _, worker in ran}) == 2, "the suite ran in one worker: nothing was distributed"
    assert len({worker for engine, worker in ran if engine == "trino"}) == 1, f"the trino group was split: {ran}"


CRASHING_SUITE = """
import os
import signal
import time

import pytest


@pytest.mark.xdist_group("store")
@pytest.mark.parametrize("i", range(3))
def test_in_a_group(i: int) -> None:
    time.sleep(0.2)
    if i == 1:
        os.kill(os.getpid(), signal.SIGSEGV)


@pytest.mark.parametrize("i", range(8))
def test_alone(i: int) -> None:
    time.sleep(0.1)
"""


def test_a_crashed_worker_fails_the_run_rather_than_hang_it(tmp_path: Path) -> None:
    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / "test_crash.py").write_text(textwrap.dedent(CRASHING_SUITE))
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env["TAMS_TEST_WORKERS"] = "2"
    run = subprocess.Popen(
        ["bash", str(ROOT / "scripts" / "dev.sh"), "test", "-p", "no:cacheprovider", "-q", str(suite)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        out, _ = run.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        os.killpg(run.pid, signal.SIGKILL)
        out, _ = run.communicate()
        raise AssertionError(f"the run hung after its worker crashed:\n{out[-3000:]}") from None
    assert run.returncode == 1, out
    # (the test's id is relative to the repository, where the script runs pytest)
    assert re.search(r"crashed while running '[^']*test_crash\.py::test_in_a_group\[1\]@store'", out), out


BYTECODE_SUITE = """
import sys

import helper


def test_writes_bytecode() -> None:
    assert helper.ANSWER == 42 and not sys.dont_write_bytecode
"""


def test_the_script_writes_bytecode_where_the_environment_says_not_to(tmp_path: Path) -> None:
    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / "helper.py").write_text("ANSWER = 42\n")
    (suite / "test_bytecode.py").write_text(textwrap.dedent(BYTECODE_SUITE))
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env |= {"TAMS_TEST_WORKERS": "0", "PYTHONDONTWRITEBYTECODE": "1", "PYTHONPATH": str(suite)}
    run = subprocess.run(
        ["bash", str(ROOT / "scripts" / "dev.sh"), "test", "-p", "no:cacheprovider", "-q", str(suite)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    written = sorted(p.name for p in (suite / "__pycache__").glob("*.pyc"))
    tag = sys.implementation.cache_tag
    assert f"helper.{tag}.pyc" in written, written  # imported: compiled once, for every process after
    assert any(name.startswith(f"test_bytecode.{tag}-pytest-") for name in written), written  # pytest's rewrite
