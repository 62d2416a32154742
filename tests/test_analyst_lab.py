"""An analyst's notebooks, seen in a real browser: JupyterLab from the Analysts' install (the environment
``tests/fixtures/analyst_venv.py`` builds exactly as the README says, shared with ``tests/test_analyst_install.py``),
started headless as the Analysts page says (its ``--no-browser`` line for this user: ``--allow-root`` as root), serves
a temporary folder holding notebooks 02, 04 and 05 on 127.0.0.1 with a token; headless Chromium (Debian's
``chromium``, driven by Playwright) opens each notebook, runs it through the UI (Run > Run All Cells) and saves it
(Ctrl+S).

What the page then shows is checked as a person sees it, by the outputs' screenshots: notebook 02's explorer widget
rendered (its pickers, timerange box, timeline and segments table, and no "Frame at" pane: the notebook gives it no
media), its table of 50 flows in a box that scrolls (not 3,300 pixels of page), 04's SQL an excerpt (not 920 lines),
05's tables no wider than the notebook; no error output and no broken image. The notebooks as saved hold no progress
bar of DuckDB's (``FloatProgress``, stuck at 0). Notebook 05 reads a server of this session's (``served_demo``) as
``TAMS_SERVER_URL`` names it.

Without ``chromium`` (a developer's machine) the tests skip and say so; ``.ci/run`` installs it.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shlex
import shutil
import signal
import struct
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from benchmarks.ports import free_port
from tests.docs import ROOT, block
from tests.fixtures.analyst_venv import analyst_environment
from tests.fixtures.live_tams import ServedDemo

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
NOTEBOOKS = ("02_coverage_and_gaps.ipynb", "04_trino_federation.ipynb", "05_running_server.ipynb")
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
#: the browser's window: a laptop's
VIEWPORT = {"width": 1400, "height": 1000}
#: how long JupyterLab may take to answer, and a notebook to run (02: a demo store, the timelines, the explorer)
START_TIMEOUT_S = 120
RUN_TIMEOUT_S = 300
#: the tallest a table of many rows may stand in the notebook (its box scrolls): 24em, with the output's margins
TALLEST_TABLE_PX = 480

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None, reason="needs chromium (.ci/run installs it: apt-get install chromium)"),
]


def headless_lines() -> dict[str, str]:
    """The Analysts page's two headless ``jupyter lab`` lines: ``user`` and ``root`` (with ``--allow-root``)."""
    written = block("docs/analysts/index.md", "Without a browser, or as root", "jupyter lab --no-browser").commands()
    assert len(written) == 2 and all(line.startswith("jupyter lab --no-browser") for line in written), written
    (root,) = [line for line in written if "--allow-root" in line]
    (user,) = [line for line in written if "--allow-root" not in line]
    return {"user": user, "root": root}


def headless_command(venv: Path, root_dir: Path, port: int, token: str) -> list[str]:
    """The page's line for this user, as written, with the environment's ``jupyter``, serving ``root_dir`` (for the
    page's ``notebooks/``) on 127.0.0.1:``port`` with ``token``."""
    line = headless_lines()["root" if os.geteuid() == 0 else "user"]
    argv = shlex.split(line)
    assert argv[-1] == "notebooks/", line
    return [
        str(venv / "bin" / "jupyter"),
        *argv[1:-1],
        "--ip=127.0.0.1",
        f"--port={port}",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root_dir}",
    ]


@dataclass
class Lab:
    """A running ``jupyter lab``: its URL and token, the folder it serves, and its log."""

    url: str
    token: str
    root: Path
    process: subprocess.Popen[bytes]
    log: Path
    command: list[str]

    def api(self, path: str, method: str = "GET") -> Any:
        request = urllib.request.Request(
            f"{self.url}{path}", method=method, headers={"Authorization": f"token {self.token}"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            body = response.read()
        return json.loads(body) if body else None

    def answers(self) -> bool:
        try:
            self.api("/api/status")
        except OSError:
            return False
        return True

    def shut_kernels_down(self) -> None:
        """Every kernel shut down (each notebook's demo store goes with its kernel)."""
        for kernel in self.api("/api/kernels"):
            self.api(f"/api/kernels/{kernel['id']}", "DELETE")

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        """Shut the server down as its own API does (its kernels with it, so their demo stores go), else signal."""
        with contextlib.suppress(OSError):
            self.api("/api/shutdown", "POST")
        for sig, wait_s in ((None, 30.0), (signal.SIGTERM, 20.0), (signal.SIGKILL, 10.0)):
            if sig is not None and self.process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=wait_s)
            if self.process.poll() is not None:
                return


@pytest.fixture(scope="module")
def lab(analyst_venv: Path, served_demo: ServedDemo, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """``jupyter lab`` of the analysts' environment, started as the Analysts page says, serving a temporary folder
    that holds notebooks 02, 04 and 05 (as committed: no outputs); 05 reads ``served_demo``."""
    tmp = tmp_path_factory.mktemp("lab")
    root = tmp / "work"
    root.mkdir()
    for name in NOTEBOOKS:
        shutil.copy(ROOT / "notebooks" / name, root / name)
    env = analyst_environment(tmp, analyst_venv) | {"TAMS_SERVER_URL": served_demo.url}
    # every cell in the page at once (JupyterLab otherwise renders only those near the viewport), so that each
    # output can be found, measured and photographed wherever it is
    settings = Path(env["JUPYTERLAB_SETTINGS_DIR"]) / "@jupyterlab" / "notebook-extension"
    settings.mkdir(parents=True)
    (settings / "tracker.jupyterlab-settings").write_text(json.dumps({"windowingMode": "none"}))
    port, token = free_port(), secrets.token_hex(16)
    command = headless_command(analyst_venv, root, port, token)
    log = tmp / "lab.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip
    server = Lab(f"http://127.0.0.1:{port}", token, root, process, log, command)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not server.answers():
            assert process.poll() is None, f"jupyter lab exited ({process.returncode}):\n{server.tail()}"
            assert time.monotonic() < deadline, f"jupyter lab did not answer in {START_TIMEOUT_S} s:\n{server.tail()}"
            time.sleep(0.5)
        yield server
    finally:
        server.stop()
    # the kernels went with the server, and the demo stores they built in their temporary folder with them
    assert [p.name for p in (tmp / "tmp").iterdir() if p.name.startswith("tams-")] == []


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
  const indicator = document.querySelector('.jp-NotebookPanel .jp-Notebook-ExecutionIndicator');
  return {
    prompts: [...document.querySelectorAll('.jp-CodeCell .jp-InputArea-prompt')].map(p => p.textContent.trim()),
    idle: Boolean(indicator && indicator.getAttribute('data-status') === 'idle'),
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


#: the widest thing an output holds (its tables as laid out), in pixels
WIDEST = """o => Math.max(
  o.scrollWidth, ...[...o.querySelectorAll('table')].map(t => t.getBoundingClientRect().width)
)"""


@dataclass
class Ran:
    """A notebook run in the browser and saved: what the page showed, its images, the outputs of chosen cells as
    photographed (``(width, height)`` of each screenshot and the width of what the output holds, by a piece of the
    cell's code), the notebook's width, and the notebook as saved."""

    state: dict[str, Any]
    images: list[list[Any]]
    shots: dict[str, tuple[int, int, int]]
    notebook_width: int
    saved: dict[str, Any]

    def outputs(self, code: str) -> list[dict[str, Any]]:
        (cell,) = [c for c in self.saved["cells"] if c["cell_type"] == "code" and code in "".join(c["source"])]
        outputs: list[dict[str, Any]] = cell["outputs"]
        return outputs


def joined(value: str | list[str]) -> str:
    """A saved notebook's text: a string, or its lines as a list."""
    return value if isinstance(value, str) else "".join(value)


def png_size(png: bytes) -> tuple[int, int]:
    """A PNG's width and height, from its header."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and png[12:16] == b"IHDR"
    width, height = struct.unpack(">II", png[16:24])
    return width, height


def run_in_lab(lab: Lab, tmp_path: Path, name: str, photograph: tuple[str, ...] = ()) -> Ran:
    """Open notebook ``name``, Run > Run All Cells, wait until it ran (02: and its explorer drew), save it (Ctrl+S),
    photograph the output of each cell whose code holds a string of ``photograph``; then shut its kernel down."""
    from playwright.sync_api import sync_playwright

    assert CHROMIUM is not None
    path = lab.root / name
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),
            executable_path=CHROMIUM,
            headless=True,
            args=FLAGS,
            viewport=VIEWPORT,
            env={**os.environ, "HOME": str(tmp_path)},
        )
        try:
            page = browser.new_page()
            # a workspace of its own: nothing another test opened is restored beside it
            where = f"{lab.url}/lab/workspaces/{path.stem}/tree/{name}?token={lab.token}"
            page.goto(where, timeout=START_TIMEOUT_S * 1000)
            # its kernel started and connected (the indicator says "idle" before there is a kernel, too)
            page.wait_for_function(KERNEL_READY, timeout=START_TIMEOUT_S * 1000)
            # through the UI, as an analyst would: the menu bar's Run, then Run All Cells
            page.locator(".lm-MenuBar-item", has_text=re.compile(r"^Run$")).click()
            page.locator(".lm-Menu-item", has_text="Run All Cells").first.click()
            state = _finished(page, explorer=name.startswith("02_"))
            images = page.evaluate(IMAGES)
            shots = {}
            for code in photograph:
                cell = page.locator(".jp-CodeCell").filter(has=page.locator(".jp-InputArea", has_text=code))
                output = cell.locator(".jp-OutputArea-output").last
                shot = output.screenshot(path=str(tmp_path / f"{name}-{len(shots)}.png"), timeout=60_000)
                # and what it holds: a table wider than the output overflows it (scrolled sideways, or past the edge)
                wide = output.evaluate(WIDEST)
                shots[code] = (*png_size(shot), wide)
            print(name, "outputs photographed (width, height):", shots)
            width = page.locator(".jp-NotebookPanel .jp-Notebook").bounding_box()
            assert width is not None
            modified = path.stat().st_mtime_ns
            page.locator(".jp-NotebookPanel .jp-Notebook").click(position={"x": 5, "y": 5})
            page.keyboard.press("Control+s")
            deadline = time.monotonic() + 60
            while path.stat().st_mtime_ns == modified:
                assert time.monotonic() < deadline, "the notebook was not saved"
                time.sleep(0.2)
            time.sleep(0.5)  # written whole
        finally:
            browser.close()
            lab.shut_kernels_down()
    saved: dict[str, Any] = json.loads(path.read_text())
    return Ran(state, images, shots, round(width["width"]), saved)


def _finished(page: Any, *, explorer: bool) -> dict[str, Any]:
    """The page's :data:`STATE` once every code cell has run (each prompt numbered, the kernel idle) and, with
    ``explorer``, the explorer has drawn; or once a cell failed (Run All Cells stops there)."""
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while True:
        state: dict[str, Any] = page.evaluate(STATE)
        done = state["prompts"] and all(re.fullmatch(r"\[\d+\]:", p) for p in state["prompts"]) and state["idle"]
        failed = any("Traceback" in t for t in state["stderr"])
        if failed or (done and (not explorer or (state["explorer"] and state["explorer"]["tables"]))):
            return state
        if time.monotonic() > deadline:
            raise AssertionError(f"the notebook did not finish in {RUN_TIMEOUT_S} s: {json.dumps(state)[:3000]}")
        time.sleep(1.0)


def assert_ran_cleanly(ran: Ran) -> None:
    """No error output, no broken image, and none of DuckDB's progress bars left in the notebook as saved."""
    stderr = ran.state["stderr"]
    assert not [t for t in stderr if "Traceback" in t or re.search(r"^\w*Error\b", t, re.M)], stderr
    assert all(width > 0 for _, width in ran.images), f"broken images: {ran.images}"
    outputs = [o for c in ran.saved["cells"] if c["cell_type"] == "code" for o in c["outputs"]]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    bars = [o for o in outputs if joined(o.get("data", {}).get("text/plain", "")).startswith("FloatProgress(")]
    assert bars == [], bars


def test_notebook_02_runs_in_jupyterlab_and_shows_the_explorer(lab: Lab, tmp_path: Path) -> None:
    table = 'scroll_box(ta.to_pandas(table.order_by("label")))'
    ran = run_in_lab(lab, tmp_path, NOTEBOOKS[0], photograph=(table,))
    assert_ran_cleanly(ran)
    explorer = ran.state["explorer"]
    assert explorer is not None, "the explorer widget did not render"
    assert len(ran.images) == 4, ran.images  # the notebook's three timelines and the explorer's
    # no media given: no frame pane, and the explorer's one image is its timeline
    assert "Frame at" not in explorer["text"] and explorer["images"] == 1, explorer["text"][:300]
    assert "segments in total" in explorer["text"] and explorer["tables"] > 0, explorer["text"][:300]
    sources, flows = explorer["dropdowns"]
    assert "Evening News (video: HD and proxy) [video]" in sources and flows, sources  # the demo's sources' labels
    # the table of every flow (one row each) stands in a box that scrolls, not at its whole height
    (html,) = [o["data"]["text/html"] for o in ran.outputs(table) if "text/html" in o.get("data", {})]
    assert joined(html).count("<tr") > 10
    width, height, _ = ran.shots[table]
    assert height <= TALLEST_TABLE_PX and width <= ran.notebook_width, (ran.shots, ran.notebook_width)


def test_notebook_04_shows_an_excerpt_of_its_sql(lab: Lab, tmp_path: Path) -> None:
    """Without Trino: the statements compiled for it, the longest (920 lines, most of them the leap seconds) as an
    excerpt that shows its window functions."""
    sql = 'print(excerpt(sql, "OVER (", context=4))'
    ran = run_in_lab(lab, tmp_path, NOTEBOOKS[1], photograph=(sql,))
    assert_ran_cleanly(ran)
    text = "".join(joined(o.get("text", "")) for o in ran.outputs(sql))
    assert re.match(r"-- \d{3,} lines; the window functions that find the runs:\n", text), text[:200]
    assert "ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING" in text.upper() and len(text.splitlines()) < 60
    width, height, _ = ran.shots[sql]
    assert height < 1200 and width <= ran.notebook_width, (ran.shots, ran.notebook_width)


def test_notebook_05_reads_a_server_with_its_tables_in_the_notebook(lab: Lab, tmp_path: Path) -> None:
    """A server's flows and gaps: the tables no wider than the notebook, and no progress bar of DuckDB's."""
    summary, gaps = "scroll_box(table.select(*columns)", "scroll_box(longest["
    ran = run_in_lab(lab, tmp_path, NOTEBOOKS[2], photograph=(summary, gaps))
    assert_ran_cleanly(ran)
    text = "".join(joined(o.get("text", "")) for c in ran.saved["cells"] for o in c.get("outputs", []))
    assert "Catalog(engine='tams+http'" in text and "demo server" not in text  # TAMS_SERVER_URL named one
    for code in (summary, gaps):
        width, height, holds = ran.shots[code]
        # no wider than the notebook, and all of it in sight: nothing to scroll sideways to
        assert width <= ran.notebook_width and holds <= width and height <= TALLEST_TABLE_PX, (code, ran.shots)


def test_headless_jupyterlab_starts_as_this_page_says(lab: Lab, analyst_venv: Path, tmp_path: Path) -> None:
    """The lab of these tests is the page's line for this user; as root, the line without ``--allow-root`` is
    refused, as the page says."""
    lines = headless_lines()
    mine = shlex.split(lines["root" if os.geteuid() == 0 else "user"])[1:-1]
    assert lab.command[1 : 1 + len(mine)] == mine and lab.answers()
    if os.geteuid() != 0:
        return
    env = analyst_environment(tmp_path, analyst_venv)
    refused = subprocess.run(
        [str(analyst_venv / "bin" / "jupyter"), *shlex.split(lines["user"])[1:-1], f"--port={free_port()}"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert refused.returncode != 0 and "--allow-root" in refused.stderr, refused.stderr[-2000:]
