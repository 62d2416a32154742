"""DuckDB's own progress bar stays off where the library runs queries (``tams_analytics.engines.memory``): in Jupyter
DuckDB draws it as an ipywidgets ``FloatProgress`` (a black bar, stuck at 0 while a query waits on a remote store)
above the output of a query that ran for two seconds, as notebook 05 showed above its storage report and its audit.

A real kernel (this interpreter's, as ``tests/test_notebooks.py`` runs the notebooks) runs the library's queries on a
DuckDB store and through a TAMS server's API (``tams+http``), then a query of some seconds over each one's segments
(a Python UDF that takes its time, as a remote read does): DuckDB would draw its bar for it. None may be drawn, and
none may be left in the notebook's widget state.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient

from tests.fixtures.live_tams import ServedDemo

#: the library's queries, and a query of some seconds over its tables (a Python UDF, 1.5 ms a row, on 2,000
#: segments) where ibis runs them
CELL = """
import threading
import time

import ibis

import tams_analytics as ta
from tams_analytics.analytics import coverage, integrity, reports
from tams_analytics.demo import build_demo


ONE_AT_A_TIME = threading.Lock()  # however many threads DuckDB calls it from


@ibis.udf.scalar.python
def pause(ns: int) -> int:
    with ONE_AT_A_TIME:
        time.sleep(0.0015)
    return ns


for url in ("duckdb://", SERVED):
    cat = ta.connect(url)
    if url == "duckdb://":
        build_demo(cat, 2000, progress=False)
    for expr in (reports.storage(cat, "format"), integrity.overlapping_segments(cat), coverage.summary(cat)):
        expr.to_pandas()
    segments = cat.segments()
    started = time.monotonic()
    n = segments.mutate(p=pause(segments.start_ns)).p.count().execute()
    print(cat.engine.name, n, "segments in", round(time.monotonic() - started, 1), "s")
"""


@pytest.fixture(scope="module")
def jupyter_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data directory holding a ``python3`` kernelspec that runs ``sys.executable``."""
    root = tmp_path_factory.mktemp("jupyter")
    spec = root / "kernels" / "python3"
    spec.mkdir(parents=True)
    kernel = {"argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"], "language": "python"}
    (spec / "kernel.json").write_text(json.dumps(kernel))
    return root


def duckdb_progress_bars(nb: Any) -> list[str]:
    """DuckDB's progress bars in a run notebook: a bare ``FloatProgress`` displayed (the library's own progress, tqdm's,
    is a box holding one with its texts, which goes when done), and the widget models of one, black."""
    shown = [
        o["data"]["text/plain"]
        for cell in nb.cells
        for o in cell.get("outputs", [])
        if o.get("data", {}).get("text/plain", "").startswith("FloatProgress(")
    ]
    state = nb.metadata.get("widgets", {}).get("application/vnd.jupyter.widget-state+json", {}).get("state", {})
    black = {key for key, m in state.items() if m["state"].get("bar_color") == "black"}
    models = [
        f"{m['model_name']} {key}"
        for key, m in state.items()
        if m["model_name"] == "FloatProgressModel" and m["state"].get("style", "").removeprefix("IPY_MODEL_") in black
    ]
    return shown + models


@pytest.mark.slow
def test_no_progress_bar_in_a_notebook(
    served_demo: ServedDemo, jupyter_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JUPYTER_PATH", str(jupyter_path))
    nb = nbformat.v4.new_notebook()
    nb.cells.append(nbformat.v4.new_code_cell(f"SERVED = {served_demo.url!r}\n" + CELL))
    NotebookClient(nb, kernel_name="python3", timeout=600, resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = nb.cells[0].outputs
    assert not [o for o in outputs if o.output_type == "error"], outputs
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    said = [line.split() for line in text.splitlines() if " segments in " in line]
    assert [(engine, n) for engine, n, *_ in said] == [("duckdb", "2000"), ("tams+http", "2000")], text
    assert all(float(line[-2]) > 2.5 for line in said), text  # long enough for DuckDB to draw its bar
    assert duckdb_progress_bars(nb) == []
