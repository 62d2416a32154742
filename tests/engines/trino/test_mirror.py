"""The contract suite's ``trino`` engine really reads through Trino (:mod:`tests.engines.trino.mirror`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.engines.catalogs import open_catalog
from tests.engines.contract.helpers import put


def test_reads_outside_a_transaction_are_trinos(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    with open_catalog("trino", tmp_path, request) as cat:
        put(cat)
        assert cat.count("flows") == 1
        engine = cat.engine
        reads = engine.trino_reads  # type: ignore[attr-defined]
        # behind the decorator's back: DuckDB loses the flow, the Parquet copy Trino reads still has it
        engine.inner.sql("DELETE FROM flows")  # type: ignore[attr-defined]
        assert engine.inner.count("flows") == 0  # type: ignore[attr-defined]
        assert cat.count("flows") == 1 and cat.flows().count().execute() == 1
        assert engine.trino_reads > reads  # type: ignore[attr-defined]
        with cat.transaction():  # inside a transaction the catalog reads DuckDB, its own writes included
            assert cat.count("flows") == 0
        engine.sql("SELECT 1")  # type: ignore[attr-defined]  # raw SQL through the decorator: copied again
        assert cat.count("flows") == 0
