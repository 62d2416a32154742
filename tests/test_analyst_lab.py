"""An analyst's first steps, seen in a real browser: JupyterLab from the Analysts' install (the environment
``tests/fixtures/analyst_venv.py`` builds exactly as the README says, shared with ``tests/test_analyst_install.py``)
serves a temporary folder holding notebook 02 on 127.0.0.1 with a token; headless Chromium (Debian's ``chromium``,
driven by Playwright) opens the notebook and runs it through the UI (Run > Run All Cells), and the page then shows
the explorer widget rendered (its pickers, timerange box, timeline and segments table, and no "Frame at" pane:
the notebook gives it no media), no error output, and no broken image.

Without ``chromium`` (a developer's machine) the test skips and says so; ``.ci/run`` installs it.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.docs import ROOT
from tests.fixtures.analyst_venv import analyst_environment

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
NOTEBOOK = "02_coverage_and_gaps.ipynb"
#: Chromium's flags for this machine: without the background-networking ones its connections are refused here
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
]
#: how long JupyterLab may take to answer, and the notebook to run (a demo store, the timelines, the explorer)
START_TIMEOUT_S = 120
RUN_TIMEOUT_S = 240

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None, reason="needs chromium (.ci/run installs it: apt-get install chromium)"),
]


@dataclass
class Lab:
    """A running ``jupyter lab``: its URL and token, and its log."""

    url: str
    token: str
    process: subprocess.Popen[bytes]
    log: Path

    def answers(self) -> bool:
        request = urllib.request.Request(f"{self.url}/api/status", headers={"Authorization": f"token {self.token}"})
        try:
            with urllib.request.urlopen(request, timeout=2) as response:
                return response.status == 200
        except OSError:
            return False

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        """Shut the server down as its own API does (its kernels with it, so their demo stores go), else signal."""
        request = urllib.request.Request(
            f"{self.url}/api/shutdown", method="POST", headers={"Authorization": f"token {self.token}"}
        )
        with contextlib.suppress(OSError):
            urllib.request.urlopen(request, timeout=5).close()
        for sig, wait_s in ((None, 30.0), (signal.SIGTERM, 20.0), (signal.SIGKILL, 10.0)):
            if sig is not None and self.process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=wait_s)
            if self.process.poll() is not None:
                return


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def lab(analyst_venv: Path, tmp_path: Path) -> Iterator[Lab]:
    """``jupyter lab`` of the analysts' environment, headless, on 127.0.0.1 with a token, serving a temporary
    folder that holds notebook 02 (as committed: no outputs)."""
    root = tmp_path / "work"
    root.mkdir()
    shutil.copy(ROOT / "notebooks" / NOTEBOOK, root / NOTEBOOK)
    port, token = _free_port(), secrets.token_hex(16)
    log = tmp_path / "lab.log"
    command = [
        str(analyst_venv / "bin" / "jupyter"),
        "lab",
        "--no-browser",
        "--ip=127.0.0.1",
        f"--port={port}",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root}",
        *(["--allow-root"] if os.geteuid() == 0 else []),  # CI runs as root
    ]
    with log.open("wb") as out:
        process = subprocess.Popen(
            command,
            cwd=root,
            env=analyst_environment(tmp_path, analyst_venv),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    server = Lab(f"http://127.0.0.1:{port}", token, process, log)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not server.answers():
            assert process.poll() is None, f"jupyter lab exited ({process.returncode}):\n{server.tail()}"
            assert time.monotonic() < deadline, f"jupyter lab did not answer in {START_TIMEOUT_S} s:\n{server.tail()}"
            time.sleep(0.5)
        yield server
    finally:
        server.stop()
    # the kernel went with the server, and the demo store it built in its temporary folder with it
    assert [p.name for p in (tmp_path / "tmp").iterdir() if p.name.startswith("tams-")] == []


#: whether the notebook's kernel is there and idle
KERNEL_READY = """() => {
  const name = document.querySelector('.jp-NotebookPanel .jp-Toolbar-kernelName');
  const state = document.querySelector('.jp-NotebookPanel .jp-Notebook-ExecutionIndicator');
  return Boolean(name && !/No Kernel/.test(name.textContent) && state && state.getAttribute('data-status') === 'idle');
}"""

#: what the page shows once the notebook ran: every code cell's prompt, the outputs' error texts and images
#: (each image decoded by the browser: a broken one has no width), and the explorer's DOM
STATE = """() => {
  const outputs = [...document.querySelectorAll('.jp-OutputArea-output')];
  const stderr = outputs.filter(o => o.getAttribute('data-mime-type') === 'application/vnd.jupyter.stderr');
  const explorer = [...document.querySelectorAll('.jp-OutputArea-output .widget-vbox')]
    .find(box => box.querySelector('.widget-dropdown select') && box.querySelector('.widget-text input'));
  return {
    prompts: [...document.querySelectorAll('.jp-CodeCell .jp-InputArea-prompt')].map(p => p.textContent.trim()),
    stderr: stderr.map(o => o.textContent),
    explorer: explorer ? {
      text: explorer.innerText.replace(/\u00a0/g, ' '),
      dropdowns: [...explorer.querySelectorAll('.widget-dropdown select')]
        .map(s => [...s.options].map(o => o.text.replace(/\u00a0/g, ' '))),
      tables: explorer.querySelectorAll('table.tams-segments tbody tr').length,
      images: explorer.querySelectorAll('img').length,
    } : null,
  };
}"""

#: every image in the outputs, decoded: [its source's start, its natural width] (0: the browser cannot show it)
IMAGES = """async () => Promise.all(
  [...document.querySelectorAll('.jp-OutputArea-output img')].map(
    img => img.decode().then(() => [img.src.slice(0, 40), img.naturalWidth], () => [img.src.slice(0, 40), 0])
  )
)"""


def test_notebook_02_runs_in_jupyterlab_and_shows_the_explorer(lab: Lab, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    assert CHROMIUM is not None
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),
            executable_path=CHROMIUM,
            headless=True,
            args=FLAGS,
            viewport={"width": 1400, "height": 1000},
            env={**os.environ, "HOME": str(tmp_path)},
        )
        try:
            page = browser.new_page()
            page.goto(f"{lab.url}/lab/tree/{NOTEBOOK}?token={lab.token}", timeout=START_TIMEOUT_S * 1000)
            # its kernel started and connected (the indicator says "idle" before there is a kernel, too)
            page.wait_for_function(KERNEL_READY, timeout=START_TIMEOUT_S * 1000)
            # through the UI, as an analyst would: the menu bar's Run, then Run All Cells
            page.locator(".lm-MenuBar-item", has_text=re.compile(r"^Run$")).click()
            page.locator(".lm-Menu-item", has_text="Run All Cells").first.click()
            state = _finished(page)
            images = page.evaluate(IMAGES)
        finally:
            browser.close()
    assert not [t for t in state["stderr"] if "Traceback" in t or re.search(r"^\w*Error\b", t, re.M)], state["stderr"]
    explorer = state["explorer"]
    assert explorer is not None, "the explorer widget did not render"
    assert all(width > 0 for _, width in images), f"broken images: {images}"
    assert len(images) == 4, images  # the notebook's three timelines and the explorer's
    # no media given: no frame pane, and the explorer's one image is its timeline
    assert "Frame at" not in explorer["text"] and explorer["images"] == 1, explorer["text"][:300]
    assert "segments in total" in explorer["text"] and explorer["tables"] > 0, explorer["text"][:300]
    sources, flows = explorer["dropdowns"]
    assert "Evening News (video: HD and proxy) [video]" in sources and flows, sources  # the demo's sources' labels


def _finished(page: Any) -> dict[str, Any]:
    """The page's :data:`STATE` once every code cell has run (each prompt numbered) and the explorer has drawn, or
    once a cell failed (Run All Cells stops there)."""
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while True:
        state: dict[str, Any] = page.evaluate(STATE)
        done = state["prompts"] and all(re.fullmatch(r"\[\d+\]:", p) for p in state["prompts"])
        failed = any("Traceback" in t for t in state["stderr"])
        if failed or (done and state["explorer"] and state["explorer"]["tables"]):
            return state
        if time.monotonic() > deadline:
            raise AssertionError(f"the notebook did not finish in {RUN_TIMEOUT_S} s: {json.dumps(state)[:3000]}")
        time.sleep(1.0)
