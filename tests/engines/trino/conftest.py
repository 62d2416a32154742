"""Trino engine fixtures.

Live tests read a TAMS store through a real Trino: the one ``TAMS_TRINO_URL`` names
(``trino://user@host:port/catalog/schema``, e.g. a VAST catalog holding your store), else the session's demo
store on the Trino of ``tests/fixtures/trino.py`` (``trino_store``, a Parquet export in a Hive catalog). Offline
tests build the engine without a server (the driver connects lazily) and run the exact SQL it would send,
transpiled to DuckDB, on a real DuckDB demo store.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tams_analytics.catalog import Catalog, connect


class EngineConf:
    """What the Trino engine supports, for tests to read instead of checking names."""

    name = "trino"
    supports_write = False
    deps = ("trino",)
    url_env = "TAMS_TRINO_URL"


@pytest.fixture(scope="session")
def trino_url(request: pytest.FixtureRequest) -> str:
    """``TAMS_TRINO_URL``, else the session's demo store on the test Trino."""
    url = os.environ.get(EngineConf.url_env)
    if url:
        return url
    store: Any = request.getfixturevalue("trino_store")
    return str(store.url("hive"))


@pytest.fixture(scope="session")
def trino_catalog(trino_url: str) -> Iterator[Catalog]:
    cat = connect(trino_url)
    try:
        yield cat
    finally:
        cat.close()


@pytest.fixture(scope="module")
def duckdb_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A DuckDB demo store (file ``demo.duckdb``: DuckDB names its catalog ``demo``, schema ``main``)."""
    from tests.test_views_sql import build_demo_store

    path: Path = tmp_path_factory.mktemp("trino-offline") / "demo.duckdb"
    planted = build_demo_store(path, segments=3_000)
    try:
        yield planted
    finally:
        planted["catalog"].close()


@pytest.fixture(scope="module")
def offline_trino(duckdb_store: dict[str, Any]) -> Iterator[Catalog]:
    """A Trino catalog whose catalog/schema match the DuckDB store's, on a port where no server listens."""
    cat = connect("trino://tester@127.0.0.1:9/demo/main")
    try:
        yield cat
    finally:
        cat.close()
