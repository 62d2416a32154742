"""The ``catalog`` fixture, parametrized over every engine available here (see ``tests/engines/catalogs.py``).

DuckDB (a real file) always runs, plain and with the read cache on (``duckdb-cached``); the VAST engine runs
on the offline reference store (``vast-reference``; ``vast-snapshot`` reads a bucket snapshot after each write)
and, when ``TAMS_VAST_*`` are set, on a live cluster (``vast``); the Trino engine reads, on a real Trino, what
DuckDB stored (``trino``). ``notimpl`` markers turn into strict xfails on the exception they name.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path

import pytest

from tams_analytics.catalog import Catalog
from tests.engines.catalogs import engine_params, expect_notimpl, open_catalog

#: the VAST engine's own tests need the vastdb SDK, which only VAST's dependency set has (TAMS_DEPS=vast); the contract
#: suite's VAST parameters say so as skips
collect_ignore = [] if importlib.util.find_spec("vastdb") else ["vast"]


@pytest.fixture(params=engine_params(contract=True))
def catalog(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Catalog]:
    expect_notimpl(request, request.param)
    with open_catalog(request.param, tmp_path, request) as cat:
        yield cat
