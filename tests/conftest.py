"""Shared pytest configuration: fixture plugins, hypothesis profiles, and the groups pytest-xdist keeps together."""

from __future__ import annotations

import os

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


@pytest.hookimpl(tryfirst=True)  # before xdist's own, which reads the groups
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not config.pluginmanager.hasplugin("xdist"):
        return
    for item in items:
        group = shared_group(item)
        if group is not None:
            item.add_marker(pytest.mark.xdist_group(group))
