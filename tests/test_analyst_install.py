"""The README's Analysts install is enough: in a fresh environment installed exactly as that section says
(``tests/fixtures/analyst_venv.py``), notebooks 01–04 run top to bottom on that environment's own kernel, and
the commands that need more than it installs (``serve``, ``bench``) say in one line which extra to install.

Notebook 05 reads a running server: ``tests/test_notebooks.py`` runs it against one.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.readme import ROOT

NOTEBOOKS = sorted(p for p in (ROOT / "notebooks").glob("0[1-4]_*.ipynb"))

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


def _environment(tmp_path: Path, venv: Path) -> dict[str, str]:
    """A shell of the analysts' environment: activated, no TAMS_* settings, Jupyter's own dirs empty (no
    kernel of this machine's user stands in for the environment's), a temp folder of its own."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TAMS_", "JUPYTER", "VIRTUAL_ENV", "PYTHONPATH"))}
    scratch = tmp_path / "tmp"
    scratch.mkdir(exist_ok=True)
    return env | {
        "VIRTUAL_ENV": str(venv),
        "PATH": f"{venv / 'bin'}:{env.get('PATH', '')}",
        "JUPYTER_DATA_DIR": str(tmp_path / "jupyter-data"),
        "JUPYTER_CONFIG_DIR": str(tmp_path / "jupyter-config"),
        "TMPDIR": str(scratch),
        "TAMS_DEMO_SEGMENTS": "4000",
    }


def test_the_section_installs_what_every_notebook_needs() -> None:
    """The extras the Analysts' command installs cover what the notebooks import: PyAV (03's demo media) and
    httpx (05's tams+http), besides JupyterLab (read from pyproject.toml, so a cheap check of the slow one)."""
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


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebooks_run_in_the_analysts_install(path: Path, analyst_venv: Path, tmp_path: Path) -> None:
    env = _environment(tmp_path, analyst_venv)
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
    # what the notebook made in the temp folder goes when its kernel stops
    assert [p.name for p in (tmp_path / "tmp").iterdir() if p.name.startswith("tams-")] == []


@pytest.mark.slow
@pytest.mark.parametrize(("command", "extra"), [("serve", "server"), ("bench", "bench")])
def test_commands_needing_another_extra_say_which(command: str, extra: str, analyst_venv: Path, tmp_path: Path) -> None:
    done = subprocess.run(
        [str(analyst_venv / "bin" / "tams-analytics"), command],
        cwd=tmp_path,
        env=_environment(tmp_path, analyst_venv),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert lines[0].startswith(f"tams-analytics {command}: ")
    assert f'pip install -e ".[{extra}]" -c constraints.txt' in lines[0]
    assert not (tmp_path / "tams-data").exists()  # nothing made on the way
