"""A served app freezes the objects alive once it has started out of the garbage collector's full collections
(``Settings.gc_freeze``): each full collection traversed them all, 150-200 ms with every request waiting."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

_PROGRAM = """
import gc, sys
from fastapi.testclient import TestClient
from server.app import create_app
from server.config import Settings

app = create_app(Settings(data_dir=sys.argv[1]), freeze_gc=sys.argv[2] == "on")
with TestClient(app) as client:
    assert client.get("/health").status_code == 200
    print(gc.get_freeze_count())
"""


@pytest.mark.parametrize("freeze", ["on", "off"])
def test_a_started_app_freezes_what_is_alive_only_when_asked(tmp_path: Path, freeze: str) -> None:
    out = subprocess.run(
        [sys.executable, "-c", _PROGRAM, str(tmp_path / "data"), freeze],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    frozen = int(out.stdout.split()[-1])
    if freeze == "on":
        assert frozen > 50_000, "the imports' objects at least"
    else:
        assert frozen == 0
