"""The examples in the remote engines' planning and pushdown modules run, on both dependency sets."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "tams_analytics.engines.remote.arrow_filter",
    "tams_analytics.engines.remote.residual",
    "tams_analytics.engines.remote.rewrite",
    "tams_analytics.engines.tams_http.plan",
]


@pytest.mark.parametrize("name", MODULES)
def test_doctests(name: str) -> None:
    failures, tried = doctest.testmod(importlib.import_module(name))
    assert tried and not failures
