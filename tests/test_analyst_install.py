"""The Analysts page's install is enough (docs/analysts/index.md): in a fresh environment installed exactly as it says
(``tests/fixtures/analyst_venv.py``), all five notebooks run top to bottom on that environment's own kernel, as
an analyst opens them: no ``TAMS_*`` settings, so 01–03 build their demo stores, 04 compiles its queries offline and
05, with no server to read, serves a demo store itself in the background (the ``lab`` extra holds the server) and
stops it. A command that needs more than it installs (``bench --peer postgres``) says in one line which extra.

``tests/test_notebooks.py`` runs 04 against a real Trino and 05 against a live server; ``tests/test_analyst_lab.py``
runs 02 in JupyterLab, in a browser, on this same environment.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.docs import ROOT
from tests.fixtures.analyst_venv import CURRENT_STACK, analyst_environment, current_stack

NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))

#: executes one notebook with nbclient inside the analysts' environment; prints what the test checks
RUNNER = """
import json, sys
import nbformat
from nbclient import NotebookClient

path, workdir = sys.argv[1], sys.argv[2]
nb = nbformat.read(path, as_version=4)
nb.cells.append(nbformat.v4.new_code_cell("import sys; print(sys.executable)"))
NotebookClient(nb, kernel_name="python3", timeout=600, resources={"metadata": {"path": workdir}}).execute()
outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
print(json.dumps({
    "errors": [f"{o.ename}: {o.evalue}" for o in outputs if o.output_type == "error"],
    "kernel": nb.cells[-1].outputs[0].text.strip(),
    "text": "".join(o.get("text", "") for o in outputs),
}))
"""


def test_the_section_installs_what_every_notebook_needs() -> None:
    """The extras the Analysts' command installs cover what the notebooks import: PyAV (03's demo media), the
    Trino driver (04, with TAMS_TRINO_URL), httpx (05's tams+http) and the server (05's demo server), besides
    JupyterLab (read from pyproject.toml, so a cheap check of the slow one)."""
    import tomllib

    from tests.fixtures.analyst_venv import install_script

    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert 'pip install -e ".[lab]" -c constraints.txt' in install_script(Path("/venv"))

    def closure(name: str) -> set[str]:
        out = set()
        for req in extras[name]:
            if req.startswith("tams-analytics["):
                for sub in req.split("[")[1].rstrip("]").split(","):
                    out |= closure(sub)
            else:
                out.add(req.split("=")[0].split(">")[0].split("[")[0])
        return out

    assert {"av", "pillow", "httpx", "jupyterlab", "nbclient", "ipykernel", "matplotlib"} <= closure("lab")
    assert {"trino", "fastapi", "uvicorn"} <= closure("lab") and closure("notebooks") == closure("lab") - {"jupyterlab"}


def test_an_install_made_ahead_is_taken_only_when_it_is_the_pages_and_finished_well(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """CI makes the install ahead (``TAMS_ANALYST_INSTALL``): a session takes it only when it ended with exit 0 and
    ran the script the page gives now; an older page's install, a failed one or none is made again by the session."""
    from tests.fixtures.analyst_venv import PREPARED, install_script, prepared

    folder = tmp_path / "ahead"
    folder.mkdir()
    monkeypatch.setenv(PREPARED, str(folder))
    (folder / "script").write_text(install_script(folder / "venv"))
    (folder / "exit").write_text("0\n")
    assert prepared() == folder / "venv"
    (folder / "exit").write_text("1\n")
    assert prepared() is None
    (folder / "exit").write_text("0\n")
    (folder / "script").write_text(install_script(folder / "venv").replace("[lab]", "[notebooks]"))
    assert prepared() is None
    monkeypatch.delenv(PREPARED)
    assert prepared() is None


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebooks_run_in_the_analysts_install(path: Path, analyst_venv: Path, tmp_path: Path) -> None:
    from tams_analytics.demo_server import DEFAULT_URL, answers

    env = analyst_environment(tmp_path, analyst_venv)
    server_there = path.name.startswith("05_") and answers(DEFAULT_URL)  # then 05 reads it (a shared machine)
    done = subprocess.run(
        [str(analyst_venv / "bin" / "python"), "-c", RUNNER, str(path), str(tmp_path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert not result["errors"], "\n".join(result["errors"])
    assert result["kernel"] == str(analyst_venv / "bin" / "python")  # the environment's own kernel ran it
    if path.name.startswith("03_"):
        assert "clean: False" in result["text"] and "clean again: True" in result["text"]  # with real media
    if path.name.startswith("04_"):
        assert "live Trino: no" in result["text"] and "ROWS BETWEEN" in result["text"].upper()  # compiled offline
    if path.name.startswith("05_") and not server_there:
        started = re.search(r"Started a demo server at http://127\.0\.0\.1:\d+ \(PID \d+\)", result["text"])
        assert started, result["text"]
        assert "stopped DemoServer(" in result["text"] and "Catalog(engine='tams+http'" in result["text"]
    # what the notebook made in the temp folder goes when its kernel stops
    assert [p.name for p in (tmp_path / "tmp").iterdir() if p.name.startswith("tams-")] == []


@pytest.mark.slow
@pytest.mark.parametrize(("command", "extra"), [("bench --peer postgres", "bench")])
def test_commands_needing_another_extra_say_which(command: str, extra: str, analyst_venv: Path, tmp_path: Path) -> None:
    """The analysts' install holds the server (05's demo server: ``serve`` runs) and, with it, what ``bench``
    needs but PostgreSQL's client for its peer."""
    done = subprocess.run(
        [str(analyst_venv / "bin" / "tams-analytics"), *command.split()],
        cwd=tmp_path,
        env=analyst_environment(tmp_path, analyst_venv),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert lines[0].startswith(f"tams-analytics {command.split()[0]}: ")
    assert f'pip install -e ".[{extra}]" -c constraints.txt' in lines[0]
    assert not (tmp_path / "tams-data").exists()  # nothing made on the way


def _downgrades(report: dict[str, Any], before: dict[str, str]) -> dict[str, str]:
    """What an install report of pip's (``--report``) put in at a lower version than ``before`` (name → version)."""
    from packaging.utils import canonicalize_name
    from packaging.version import Version

    had = {canonicalize_name(name): version for name, version in before.items()}
    return {
        name: f"{had[name]} -> {meta['version']}"
        for meta in (item["metadata"] for item in report["install"])
        if (name := canonicalize_name(meta["name"])) in had and Version(meta["version"]) < Version(had[name])
    }


#: what installing ``.[lab]`` may take back, and why: ibis 12.0.0 allows sqlglot 30.18 and later, which break its
#: ``create_table`` from memory (a lazy table's residual, ``ibis.memtable``), so pyproject.toml caps it below 30.18;
#: botocore (boto3's core: S3 object storage) requires python-dateutil below 3, while pandas 3 takes its 4.0
MAY_DOWNGRADE = {"sqlglot", "python-dateutil"}


@pytest.mark.slow
def test_installed_beside_a_current_jupyter_environment_it_downgrades_nothing(analyst_venv: Path) -> None:
    """The analysts' environment held the current pandas, pyarrow, ibis, DuckDB and JupyterLab before the page's
    ``pip install`` ran in it (``tests/fixtures/analyst_venv.py``). Installing ``.[lab]`` as ``pip install
    tams-analytics[lab]`` resolves (no constraints file) would downgrade nothing there but what
    :data:`MAY_DOWNGRADE` explains; the page's pinned install keeps those five as they were; the notebooks then run
    there (the test above)."""
    folder = analyst_venv.parent
    before = {p["name"]: p["version"] for p in json.loads((folder / "before.json").read_text())}
    assert {name: before.get(name) for name in CURRENT_STACK} == current_stack()
    unpinned = _downgrades(json.loads((folder / "unpinned.json").read_text()), before)
    assert set(unpinned) <= MAY_DOWNGRADE, unpinned
    pinned = _downgrades(json.loads((folder / "report.json").read_text()), before)
    assert not set(pinned) & set(CURRENT_STACK), pinned
    listing = [str(analyst_venv / "bin" / "python"), "-m", "pip", "list", "--format", "json"]
    after = {
        p["name"]: p["version"] for p in json.loads(subprocess.run(listing, capture_output=True, check=True).stdout)
    }
    assert {name: after.get(name) for name in CURRENT_STACK} == current_stack()
