"""The README's commands work as written, pasted at the repository's root.

Every command of the README's bash blocks, and every Python block, is accounted for below: run here as written,
run by another test (the Analysts' install and notebooks: ``tests/test_analyst_install.py``; the test command:
this suite), or not runnable here (interactive players, a deployment's identity provider, placeholders), with
the reason. A README command this list does not know fails the first test, so the two stay in step.

The runnable ones run in sequence from a copy of the repository's root (its entries linked, so ``./tams-data``
is made there and not in the checkout): the Quick start's ``bash scripts/dev.sh serve`` (the demo store with
media, on the README's port 8000), the commands that read that server, then, with it stopped (it holds its
DuckDB file), those that open the store, from the shell of an activated ``.venv`` as the README's Install makes.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.readme import ROOT, blocks

#: how each bash command of the README is checked (RUN: here, in the order of the README)
RUN = "run here"
COMMANDS: dict[str, str] = {
    "bash scripts/dev.sh serve": RUN,
    "bash scripts/dev.sh test": "the test command: .ci/run runs it, and this test is part of it",
    "python3 -m venv .venv && . .venv/bin/activate": "tests/test_analyst_install.py, as the Analysts section says",
    'pip install -e ".[lab]" -c constraints.txt': "tests/test_analyst_install.py runs it in a fresh venv",
    'pip install -e ".[server]" -c constraints.txt': "a subset of .[dev], which scripts/dev.sh installs for the suite",
    'pip install -e ".[dev,lab]" -c constraints.txt': "scripts/dev.sh installs .[dev]; .[lab] is the analyst test's",
    "jupyter lab notebooks/": "interactive: tests/test_analyst_install.py executes the notebooks in that install",
    "export TAMS_AUTH=jwt": "a deployment's identity provider: tests/server/auth runs one on 127.0.0.1",
    "export TAMS_JWT_ISSUER=https://idp.example/realms/media": "a deployment's identity provider (example URL)",
    "export TAMS_JWT_AUDIENCE=tams-api": "a deployment's identity provider",
    "export TAMS_AUTH_CLASSES=true": "a deployment's identity provider",
    "export TAMS_JWT_GROUPS_CLAIM=groups": "a deployment's identity provider",
    "bash scripts/trino.sh start": "the suite starts the same server through it (benchmarks/trino_server.py)",
    "bash scripts/trino.sh status": "benchmarks/trino_server.py reuses a server it reports running",
    "bash scripts/trino.sh stop": "benchmarks/trino_server.py stops the server the suite started",
    "FLOW=$(python3 -c 'import json, urllib.request; print(json.load(urllib.request.urlopen("
    '"http://127.0.0.1:8000/flows?label=Evening%20News%20(video)"))[0]["id"])\')': RUN,
    'ffplay "http://127.0.0.1:8000/flows/$FLOW/playlist.m3u8?timerange=[1700000000:0_1700000060:0)"': (
        "a player on a screen: the next command reads the same playlist with Debian's ffmpeg, and "
        "tests/media/test_hls_stock_players.py checks every frame"
    ),
    'ffmpeg -i "http://127.0.0.1:8000/flows/$FLOW/playlist.m3u8?timerange=[1700000000:0_1700000060:0)" '
    "-c copy clip.ts": RUN,
    "tams-analytics download --server http://127.0.0.1:8000 --flow $FLOW "
    '--timerange "[1700000000:0_1700000060:0)" --out clip.ts': RUN,
    "tams-analytics download --store duckdb://./tams-data/tams.duckdb --storage local:tams-data/objects  "
    '--flow $FLOW --timerange "[1700000000:0_1700000060:0)" --out clip.ts': RUN,
}
#: how each Python block of the README is checked, by its section and first line
PYTHON: dict[tuple[str, str], str] = {
    ("Analysts", "import tams_analytics as ta"): RUN,
    ("Using the library", "import tams_analytics as ta"): "placeholders (/path/to, flow_id): tests/test_catalog.py",
    (
        "Media: play, download, look at a frame",
        'cat = ta.connect("duckdb://./tams-data/tams.duckdb")  # the Quick start\'s store, its server stopped',
    ): RUN,
    (
        "VAST DB",
        'cat = ta.connect("vast://10.0.0.1:8070/media/tams")  # keys from TAMS_VAST_ACCESS_KEY / TAMS_VAST_SECRET_KEY',
    ): ("a VAST cluster: tests/engines/vast runs on one when TAMS_VAST_* is set"),
    (
        "Any TAMS server: `tams+http://`",
        'cat = ta.connect("tams+https://tams.example.com/api")  # or tams+http://127.0.0.1:8000 '
        "(this project's serve)",
    ): "an example server: tests/engines/tams_http reads this project's server the same way",
}
PORT = 8000


def _bash_commands() -> list[str]:
    return [c for b in blocks() if b.language == "bash" for c in b.commands()]


def _python_blocks() -> dict[tuple[str, str], str]:
    return {(b.section, b.text.splitlines()[0]): b.text for b in blocks() if b.language == "python"}


def test_every_readme_command_is_accounted_for() -> None:
    written = _bash_commands()
    unknown = [c for c in written if c not in COMMANDS]
    gone = [c for c in COMMANDS if c not in written]
    assert not unknown, f"README commands this test does not know (add them to COMMANDS): {unknown}"
    assert not gone, f"commands no longer in the README (remove them from COMMANDS): {gone}"
    python = set(_python_blocks())
    assert python == set(PYTHON), f"README Python blocks changed: {sorted(python ^ set(PYTHON))}"


def test_duckdb_urls_in_the_readme_work_at_the_root() -> None:
    """A ``duckdb:///`` URL is an absolute path: the README's examples that mean the Quick start's store are
    relative (``duckdb://./tams-data/...``), and every absolute one is plainly a placeholder or a server path."""
    import re

    text = (ROOT / "README.md").read_text()
    absolute = set(re.findall(r"duckdb:///([^\s\"'`)]+)", text))
    allowed = ("path/to/", "absolute/", "abs/", "srv/", "data/tams.duckdb", "path")
    assert all(a.startswith(allowed) for a in absolute), sorted(absolute)
    assert "duckdb:///tams-data" not in text  # /tams-data: the Quick start's store is ./tams-data


# -- the runnable ones ----------------------------------------------------------------------------------------
def _mirror(tmp: Path) -> Path:
    """A directory that reads as the repository's root: its entries linked (``.venv`` included), no ``tams-data``."""
    root = tmp / "root"
    root.mkdir()
    for entry in ROOT.iterdir():
        if entry.name not in ("tams-data", ".git", ".pytest_cache", "clip.ts"):
            (root / entry.name).symlink_to(entry)
    return root


def _shell_env(root: Path) -> dict[str, str]:
    """A shell as the README's Install leaves it: ``.venv`` activated, no ``TAMS_*`` settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TAMS_", "VIRTUAL_ENV", "PYTHONPATH"))}
    venv = root / ".venv"
    return env | {"VIRTUAL_ENV": str(venv), "PATH": f"{venv / 'bin'}:{env.get('PATH', '')}"}


def _bash(command: str, root: Path, env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-c", f"set -euo pipefail\n{command}"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@dataclass
class QuickStart:
    root: Path
    env: dict[str, str]
    server: subprocess.Popen[bytes]

    @property
    def log(self) -> str:
        return (self.root.parent / "serve.log").read_text()


@pytest.fixture(scope="module")
def quick_start(tmp_path_factory: pytest.TempPathFactory) -> Iterator[QuickStart]:
    """The Quick start's server, started as written (``bash scripts/dev.sh serve``) at a copy of the root."""
    venv = ROOT / ".venv"
    if not (venv / "bin" / "python").exists() or Path(sys.prefix).resolve() != venv.resolve():
        pytest.skip("the README's commands run in the repository's .venv (bash scripts/dev.sh test)")
    if not _venv_current(venv):
        # dev.sh would install the project again, from the copy: never let it rewrite the checkout's .venv
        pytest.skip(".venv is not installed from the current pyproject.toml/constraints.txt: bash scripts/dev.sh")
    if not _port_free(PORT):
        pytest.skip(f"port {PORT}, the README's, is in use on this machine")
    root = _mirror(tmp_path_factory.mktemp("readme"))
    with (root.parent / "serve.log").open("w") as log:
        server = subprocess.Popen(
            ["bash", "-c", "bash scripts/dev.sh serve"],
            cwd=root,
            env=_shell_env(root),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    started = QuickStart(root, _shell_env(root), server)
    try:
        deadline = time.monotonic() + 600
        while "TAMS server on" not in started.log:
            assert server.poll() is None, started.log
            assert time.monotonic() < deadline, "the Quick start's server did not start in 10 minutes"
            time.sleep(0.5)
        yield started
    finally:
        _stop(server)
        shutil.rmtree(root / "tams-data", ignore_errors=True)  # 0.8 GB of demo media: not kept with pytest's temps


def _venv_current(venv: Path) -> bool:
    """Whether ``scripts/dev.sh`` takes ``venv`` as installed (its stamp: the hash of pyproject.toml and
    constraints.txt), so that running it from the copy installs nothing."""
    stamp = venv / ".tams-analytics-installed"
    want = hashlib.sha256((ROOT / "pyproject.toml").read_bytes() + (ROOT / "constraints.txt").read_bytes())
    return stamp.exists() and stamp.read_text().strip() == want.hexdigest()


def _stop(server: subprocess.Popen[bytes], timeout: float = 60) -> None:
    """Stop the server as a person does (Ctrl-C), then harder if it will not."""
    for sig, wait_s in ((signal.SIGINT, timeout), (signal.SIGKILL, 10.0)):
        if server.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            server.wait(timeout=wait_s)


def _python(text: str, root: Path, env: dict[str, str]) -> str:
    """Run a README Python block at ``root`` as a notebook cell would (its bare last line shown); its output."""
    lines = text.rstrip().splitlines()
    script = "\n".join([*lines[:-1], f"print(repr({lines[-1].split('  #')[0]}))"])
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=root, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.slow
def test_the_readme_commands_run_as_written(quick_start: QuickStart) -> None:
    root, env = quick_start.root, quick_start.env
    banner = next(line for line in quick_start.log.splitlines() if "TAMS server on" in line)
    assert f"http://127.0.0.1:{PORT}" in banner
    assert f"store duckdb://{root / 'tams-data' / 'tams.duckdb'})" in banner  # three slashes, the absolute path
    runnable = [c for c in _bash_commands() if COMMANDS[c] == RUN and not c.startswith("bash scripts/dev.sh")]
    flow_line, by_ffmpeg, by_server, by_store = runnable
    # while the server runs: a flow of its demo, by label, and its media through the API
    done = _bash(f'{flow_line}\necho "$FLOW"', root, env)
    assert done.returncode == 0, done.stderr
    flow = done.stdout.strip().splitlines()[-1]
    env = env | {"FLOW": flow}
    if shutil.which("ffmpeg") is not None:  # Debian's, which .ci/run installs
        done = _bash(by_ffmpeg, root, env)
        assert done.returncode == 0, done.stderr[-2000:]
        assert (root / "clip.ts").stat().st_size > 100_000
        (root / "clip.ts").unlink()
    done = _bash(by_server, root, env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("wrote ") and (root / "clip.ts").stat().st_size > 100_000
    (root / "clip.ts").unlink()
    # the server stopped as a person stops it (Ctrl-C) leaves its DuckDB file free: open it
    _stop(quick_start.server)
    assert quick_start.server.returncode is not None and "Traceback" not in quick_start.log
    assert not (root / "tams-data" / "tams.duckdb.server.json").exists()
    done = _bash(by_store, root, env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("wrote ") and (root / "clip.ts").stat().st_size > 100_000
    # the Python blocks that name the Quick start's store
    blocks_run = {key: text for key, text in _python_blocks().items() if PYTHON[key] == RUN}
    analysts, media = blocks_run.values()
    assert "Catalog(engine='duckdb', store=" in _python(analysts, root, env)
    shown = _python(f"import tams_analytics as ta\nflow_id = {flow!r}\n{media}", root, env)
    assert "PIL" in shown and ("size=960x540" in shown or "size=1920x1080" in shown), shown
