"""The ``engine`` fixture of the DuckDB engine's own tests: a new DuckDB file with the server's tables."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tams_analytics.engines import open_engine
from tams_analytics.engines.duckdb import Engine


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = open_engine(f"duckdb:///{tmp_path / 'tams.duckdb'}", create=True)
    assert isinstance(engine, Engine)
    yield engine
    engine.close()
