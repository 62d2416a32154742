"""The install is quiet: an editable install of this checkout (``pip install -e``, what the README's Install runs;
``scripts/dev.sh`` builds the same editable wheel through uv, or pip where uv cannot be had), with the pip
``scripts/dev.sh`` upgrades to, prints no warning of the build backend. Setuptools installs a flat layout through an
import hook and warns at every install that folders named like a package may shadow it, unless ``pyproject.toml``
says where the packages lie (``[tool.setuptools] package-dir``): then it writes a ``.pth`` file naming the checkout,
as for a src layout.

The install builds in pip's isolated environment (setuptools from PyPI, or pip's cache), into a throwaway venv,
without dependencies: the package only.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.docs import ROOT


@pytest.mark.slow
def test_an_editable_install_prints_no_warning(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PIP_REQUIRE_VIRTUALENV")}
    done = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "-e", ".", "--no-deps"],
        cwd=ROOT,
        env=env | {"TMPDIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=600,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-3000:]
    assert "Successfully installed tams-analytics" in output
    assert "Warning" not in output and "WARNING" not in output and "careful" not in output, output[-3000:]
    (pth,) = (venv / "lib").glob("python3.*/site-packages/__editable__.*.pth")
    assert pth.read_text().strip() == str(ROOT)  # the checkout on sys.path: its packages, as they are there
