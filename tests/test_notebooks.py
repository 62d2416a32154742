"""The analyst notebooks run top to bottom without errors, on the venv's own kernel, and are committed clean.

The kernel is this interpreter's ipykernel: a ``python3`` kernelspec written to a temporary directory that
``JUPYTER_PATH`` puts first, for this test session only (the user's Jupyter configuration is not touched).
Notebook 04 runs against a real Trino (the session's ``trino_store``, Parquet export in a Hive catalog) and a
programme schedule in PostgreSQL behind it (``trino_schedule``), named by ``TAMS_TRINO_URL`` and
``TAMS_TRINO_SCHEDULE``; notebook 05 reads this project's server, live on 127.0.0.1 over a demo store (the
session's ``served_demo``), through ``TAMS_SERVER_URL``, and,
without it and with nothing answering at the default URL, a demo server it starts itself and stops.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import sys
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


@pytest.fixture(scope="module")
def jupyter_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data directory holding a ``python3`` kernelspec that runs ``sys.executable``."""
    root = tmp_path_factory.mktemp("jupyter")
    spec = root / "kernels" / "python3"
    spec.mkdir(parents=True)
    kernel = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (tams-analytics test venv)",
        "language": "python",
    }
    (spec / "kernel.json").write_text(json.dumps(kernel))
    return root


def test_the_five_notebooks_exist() -> None:
    assert [p.name[:3] for p in NOTEBOOKS] == ["01_", "02_", "03_", "04_", "05_"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_without_outputs(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code
    assert all(c.outputs == [] and c.execution_count is None for c in code)
    assert nb.metadata["kernelspec"]["name"] == "python3"


def execute(
    path: Path, jupyter_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, demo_segments: str | None = "4000"
) -> list[Any]:
    """Run the notebook top to bottom on the venv's kernel (which is then shut down); its outputs, no errors."""
    nb = run(path, jupyter_path, tmp_path, monkeypatch, demo_segments)
    return [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]


def run(
    path: Path, jupyter_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, demo_segments: str | None
) -> Any:
    """Run the notebook top to bottom on the venv's kernel (which is then shut down), its demo stores of
    ``demo_segments`` (None: the notebook's own size); the notebook run, no errors."""
    monkeypatch.setenv("JUPYTER_PATH", str(jupyter_path))
    monkeypatch.delenv("TAMS_STORE", raising=False)  # each notebook builds its own demo store
    monkeypatch.delenv("TAMS_OBJECTS_DIR", raising=False)
    if demo_segments is None:
        monkeypatch.delenv("TAMS_DEMO_SEGMENTS", raising=False)
    else:
        monkeypatch.setenv("TAMS_DEMO_SEGMENTS", demo_segments)
    scratch = tmp_path / "tmp"  # the kernel's temp folder: what the notebook leaves behind shows here
    scratch.mkdir()
    monkeypatch.setenv("TMPDIR", str(scratch))
    nb = nbformat.read(path, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell("import sys; print(sys.executable)"))
    client = NotebookClient(nb, kernel_name="python3", timeout=600, resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    errors = [o for o in outputs if o.output_type == "error"]
    assert not errors, "\n".join(f"{e.ename}: {e.evalue}" for e in errors)
    assert nb.cells[-1].outputs[0].text.strip() == sys.executable  # the venv's kernel ran it
    # the demo stores and media a notebook makes go when its kernel stops (no tams-demo-*, tams-integrity-*)
    assert sorted(p.name for p in scratch.iterdir() if p.name.startswith("tams-")) == []
    return nb


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_runs_without_errors(
    path: Path, jupyter_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    if path.name.startswith("04_"):
        monkeypatch.setenv("TAMS_TRINO_URL", request.getfixturevalue("trino_store").url("hive"))
        monkeypatch.setenv("TAMS_TRINO_SCHEDULE", request.getfixturevalue("trino_schedule").qualified)
    if path.name.startswith("05_"):
        monkeypatch.setenv("TAMS_SERVER_URL", request.getfixturevalue("served_demo").server.url)
    outputs = execute(path, jupyter_path, tmp_path, monkeypatch)
    text = "".join(o.get("text", "") for o in outputs)
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    if path.name.startswith("02_"):
        assert len(images) >= 3  # the timelines
        assert any("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in outputs)
    if path.name.startswith("03_"):
        assert "clean: False" in text and "clean again: True" in text
    if path.name.startswith("04_"):
        assert "ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING" in text.upper()
        assert "live Trino: yes" in text
        # the most missing first: an hour on a flow without segments, a minute on a flow TAMS lacks, the
        # planted gap, the leap second the leap flow misses
        assert "programmes with gaps: Film, Repeat, Evening News, New Year\n" in text
        assert "one query over the catalogs: ['archive', 'hive']" in text
    if path.name.startswith("05_"):
        assert_reads_a_server(text, images)
        assert "demo server" not in text  # TAMS_SERVER_URL named one


def assert_reads_a_server(text: str, images: list[Any]) -> None:
    """What notebook 05 shows of a server it reads."""
    assert "Catalog(engine='tams+http'" in text and "from 1 request(s)" in text
    assert len(images) >= 2 and "skipped unreferenced_objects" in text and "UnsupportedError" in text


@pytest.mark.slow
def test_05_without_a_server_starts_a_demo_server_and_stops_it(
    jupyter_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``TAMS_SERVER_URL`` unset and nothing at the default URL: no 20 s wait and traceback, but a demo server
    started in the background (said so), read like any other, and stopped at the end. It is the notebook's own
    size, small, and its first cell takes what the notebook says before it."""
    from tams_analytics.demo_server import DEFAULT_URL, answers

    if answers(DEFAULT_URL):
        pytest.skip(f"a server answers at {DEFAULT_URL} (the notebook would read it): the case needs none there")
    monkeypatch.delenv("TAMS_SERVER_URL", raising=False)
    nb = run(NOTEBOOKS[4], jupyter_path, tmp_path, monkeypatch, demo_segments=None)
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    text = "".join(o.get("text", "") for o in outputs)
    started = re.search(
        r"Started a demo server at (http://127\.0\.0\.1:\d+) \(PID (\d+)\) over a demo store of 2000 segments", text
    )
    assert started is not None, text
    first = next(i for i, c in enumerate(nb.cells) if c.cell_type == "code")
    said = " ".join(nb.cells[first - 1].source.split())
    assert nb.cells[first - 1].cell_type == "markdown" and "a demo store of 2,000 segments" in said, said
    assert "10 to 20 seconds" in said and "up to a minute" in said, said
    timing = nb.cells[first].metadata.execution
    took = dt.datetime.fromisoformat(timing["shell.execute_reply"]) - dt.datetime.fromisoformat(
        timing["iopub.execute_input"]
    )
    assert took.total_seconds() < 60, took
    assert f"No TAMS server answers at {DEFAULT_URL}" in text
    assert_reads_a_server(text, [o for o in outputs if "image/png" in o.get("data", {})])
    url, pid = started.group(1), int(started.group(2))
    assert f"store='tams+{url}'" in text and "stopped DemoServer(" in text
    assert not answers(url)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
