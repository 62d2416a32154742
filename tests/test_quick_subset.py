"""The quick subset a newcomer runs first, given beside the Quick start (README.md, docs/getting-started.md):
``bash scripts/dev.sh test -m quick`` runs the library's time values, predicates and the engine contract on DuckDB
(``tests/conftest.py``'s :func:`~tests.conftest.quick`) in a few minutes, and downloads and starts nothing: no
Trino, SeaweedFS, PostgreSQL, server process, JupyterLab or browser.

The command runs as written, at the repository's root, as a newcomer runs it (two workers); the processes below it
are watched while it runs.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.docs import ROOT, block, venv_current
from tests.fixtures.session_end import below

PAGES = {"README.md": "Quick start", "docs/getting-started.md": "The Quick start, explained"}
#: what a process of a service the quick subset must not start has in its command line
SERVICES = re.compile(r"\bjava\b|/weed\b|\bpostgres\b|\binitdb\b|chromium|jupyter|tams_analytics\.cli serve|trino")
#: the most it may take on two busy cores (it takes two to three minutes)
LONGEST_S = 600


def written() -> str:
    """The command, the same on both pages."""
    commands = {page: block(page, section, "bash scripts/dev.sh test -m").commands() for page, section in PAGES.items()}
    assert all(c == ["bash scripts/dev.sh test -m quick"] for c in commands.values()), commands
    return "bash scripts/dev.sh test -m quick"


def test_the_quick_subset_is_core_tests_on_duckdb() -> None:
    """What ``-m quick`` selects: only the modules under QUICK_PATHS are collected, no Trino or VAST engine among
    them, nothing slow, and every engine contract on DuckDB."""
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", "-m", "quick"],
        cwd=ROOT,
        env={k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    ids = [line for line in done.stdout.splitlines() if "::" in line]
    assert 300 < len(ids) < 600, len(ids)
    assert {i.split("::")[0] for i in ids} >= {"tests/test_timerange.py", "tests/engines/contract/test_tags.py"}
    assert not [i for i in ids if re.search(r"\[.*(trino|vast)", i)]
    contract = [i for i in ids if i.startswith("tests/engines/contract/")]
    assert contract and all(re.search(r"\[(.*-)?duckdb(-cached)?(-.*)?\]", i) for i in contract), contract[:5]


@pytest.mark.slow
def test_the_quick_subset_runs_as_written() -> None:
    command = written()
    venv = ROOT / ".venv"
    if Path(sys.prefix).resolve() != venv.resolve() or not venv_current(venv):
        pytest.skip("the quick subset runs in the repository's .venv as installed (bash scripts/dev.sh test)")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "TAMS_TEST_WORKERS"))}
    env["PYTEST_ADDOPTS"] = "-p no:cacheprovider"  # this run's cache is the suite's own
    started = time.monotonic()
    process = subprocess.Popen(
        ["bash", "-c", command],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    seen: set[str] = set()
    try:
        while process.poll() is None:
            for pid in [process.pid, *below(process.pid)]:  # bash, then (exec) pytest and its workers
                try:
                    seen.add(Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"))
                except OSError:
                    pass
            assert time.monotonic() - started < LONGEST_S, f"the quick subset took more than {LONGEST_S} s"
            time.sleep(0.5)
        took = time.monotonic() - started
    finally:
        if process.poll() is None:
            os.killpg(process.pid, 9)
        output = process.communicate()[0]
    assert process.returncode == 0, output[-5000:]
    summary = output.strip().splitlines()[-1]
    passed = re.search(r"(\d+) passed", summary)
    assert passed and 300 < int(passed.group(1)) < 600 and "failed" not in summary and "error" not in summary, summary
    assert not [c for c in seen if SERVICES.search(c)], [c for c in seen if SERVICES.search(c)]
    assert any("-m pytest -n 2" in c for c in seen), seen  # the watch saw the run itself, in two workers
    print(f"the quick subset: {summary} ({took:.0f} s)")
