"""The examples in the backup modules' docstrings run (on in-memory DuckDB and temporary folders)."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "tams_analytics.backup.copy",
    "tams_analytics.backup.manifest",
    "tams_analytics.backup.reader",
    "tams_analytics.backup.repository",
    "tams_analytics.backup.snapshot",
    "tams_analytics.backup.take",
    "tams_analytics.cli.output",
]


@pytest.mark.parametrize("name", MODULES)
def test_doctests(name: str) -> None:
    failures, tried = doctest.testmod(importlib.import_module(name))
    assert tried and not failures
