"""Shared pytest configuration: fixture plugins, hypothesis profiles, the groups pytest-xdist keeps together, and the
quick subset (``-m quick``)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

pytest_plugins = [
    "tests.fixtures.s3",
    "tests.fixtures.idp",
    "tests.fixtures.live_tams",
    "tests.fixtures.analyst_venv",
    "tests.fixtures.trino",
    "tests.fixtures.summary",
    "tests.fixtures.session_end",
]

ROOT = Path(__file__).resolve().parents[1]

settings.register_profile("ci", max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", max_examples=100, deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else "dev")


def shared_group(item: pytest.Item) -> str | None:
    """The group of tests that share something outside their process, which pytest-xdist's ``--dist loadgroup``
    (``scripts/dev.sh test``) runs one after another on one worker; ``None`` for a test any worker may run.

    - ``trino``: the Trino server (one per machine: ``scripts/trino.sh`` finds a running one, and the worker that
      started it stops it at its end), its PostgreSQL and their stores. Its tests are under ``engines/trino``,
      named ``trino`` (the ``trino`` engine of the shared suites) or use a ``trino_*`` fixture, and the notebooks
      ask for Trino's fixtures as they run. The pip installs of this checkout go with them: they write its build
      metadata in the checkout, and the Analysts' environment (one per worker that asks for it, a minute or more
      to build) runs a notebook on Trino.
    - ``docs``: the Quick start's server on its fixed port, 8000.
    """
    path = item.nodeid.split("::", 1)[0]
    names = set(getattr(item, "fixturenames", ()))
    if "trino" in item.nodeid.lower() or any(name.startswith("trino") for name in names):
        return "trino"
    if path in ("tests/test_notebooks.py", "tests/test_editable_install.py") or "analyst_venv" in names:
        return "trino"
    if path == "tests/test_docs.py":
        return "docs"
    return None


#: the quick subset a newcomer runs first, ``bash scripts/dev.sh test -m quick`` (README.md's Quick start): the
#: library's time values and predicates, and the engine contract on DuckDB, in a few minutes
QUICK_PATHS = ("tests/test_timerange.py", "tests/test_predicates.py", "tests/engines/contract/")
#: fixtures that start something outside the test processes (a server, SeaweedFS, JupyterLab, an environment)
SERVICES = frozenset(
    {"s3_server", "s3_bucket", "s3_store", "restartable_s3", "served_demo", "analyst_venv", "lab", "quick_start"}
)


def quick(item: pytest.Item) -> bool:
    """Whether ``item`` is in the quick subset: under :data:`QUICK_PATHS`, not slow, in no shared group, using no
    fixture of :data:`SERVICES`, and on DuckDB where it runs on an engine: it starts nothing outside its process
    (no Trino, SeaweedFS, PostgreSQL, server process or browser) and downloads nothing."""
    if not item.nodeid.startswith(QUICK_PATHS) or item.get_closest_marker("slow") or shared_group(item) is not None:
        return False
    from tests.engines.catalogs import ENGINES, family

    if SERVICES & set(getattr(item, "fixturenames", ())):
        return False
    params = getattr(getattr(item, "callspec", None), "params", {})
    return all(family(v) == "duckdb" for v in params.values() if isinstance(v, str) and v in ENGINES)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "quick: the quick subset, run first (bash scripts/dev.sh test -m quick)")


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """With ``-m quick`` (alone), only the modules under :data:`QUICK_PATHS` are collected: in seconds, and whatever
    another module needs that this environment lacks."""
    if config.getoption("markexpr", "") != "quick" or not collection_path.is_relative_to(ROOT):
        return None
    here = collection_path.relative_to(ROOT).as_posix()
    for path in (p.rstrip("/") for p in QUICK_PATHS):
        if here == path or here.startswith(f"{path}/") or path.startswith(f"{here}/"):
            return None
    return True


@pytest.hookimpl(tryfirst=True)  # before -m selects by marker, and before xdist's own hook, which reads the groups
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    grouped = config.pluginmanager.hasplugin("xdist")
    for item in items:
        if quick(item):
            item.add_marker(pytest.mark.quick)
        group = shared_group(item) if grouped else None
        if group is not None:
            item.add_marker(pytest.mark.xdist_group(group))
