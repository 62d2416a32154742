"""The ``catalog`` fixture, parametrized over every engine available here.

DuckDB (a real file) always runs, plain and with the read cache on (``duckdb-cached``: every contract
must hold the same when pages and instances come from memory); VAST runs when ``TAMS_VAST_ENDPOINT``
(and keys, bucket) are set; read-only engines are skipped for write tests through their capabilities.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tams_analytics.catalog import Catalog, connect


def _engine_params() -> list[object]:
    params: list[object] = [pytest.param("duckdb", id="duckdb"), pytest.param("duckdb-cached", id="duckdb-cached")]
    vast = pytest.mark.skipif(not os.environ.get("TAMS_VAST_ENDPOINT"), reason="TAMS_VAST_ENDPOINT not set")
    params.append(pytest.param("vast", id="vast", marks=vast))
    return params


def _url(engine: str, tmp_path: Path) -> str:
    if engine in ("duckdb", "duckdb-cached"):
        return f"duckdb:///{tmp_path / 'tams.duckdb'}"
    if engine == "vast":
        import uuid

        return (
            f"vast://{os.environ['TAMS_VAST_ENDPOINT'].removeprefix('http://').removeprefix('https://')}"
            f"/{os.environ['TAMS_VAST_BUCKET']}/tams_test_{uuid.uuid4().hex[:8]}"
        )
    raise AssertionError(engine)


@pytest.fixture(params=_engine_params())
def catalog(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Catalog]:
    engine = request.param
    for mark in request.node.iter_markers("notimpl"):
        if engine.removesuffix("-cached") in mark.args[0]:
            pytest.skip(f"not implemented on {engine}: {mark.kwargs.get('reason', '')}")
    cat = connect(_url(engine, tmp_path))
    if engine.endswith("-cached"):
        assert cat.cache_reads()
    try:
        yield cat
    finally:
        drop = getattr(cat.engine, "drop_store", None)
        if drop is not None:  # a schema per test on a shared cluster: leave nothing behind
            drop()
        cat.close()
