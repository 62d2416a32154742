"""A DuckDB store tells its observer of every commit that checkpointed it (:meth:`Engine.observe_checkpoints`): the
WAL passed DuckDB's threshold, and every write waited while the commit wrote the store's file."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from tams_analytics.engines import open_engine
from tams_analytics.engines.duckdb import Engine
from tams_analytics.predicates import Term

Told = list[tuple[float, int]]


def _register(engine: Engine, first: int, count: int) -> None:
    """``count`` objects, each with its instance, in one transaction (what a batch of registrations adds)."""
    ids = [f"object-{i}" for i in range(first, first + count)]
    with engine.transaction():
        engine.insert("objects", pa.table({"id": ids, "registered": [True] * count}))
        engine.insert("object_instances", pa.table({"object_id": ids, "storage_id": ["s3"] * count}))


def _stored(engine: Engine) -> int:
    return engine.query("objects", [Term("registered", "==", True)]).num_rows


def _wal(engine: Engine) -> int:
    wal = Path(f"{engine.path}.wal")
    return wal.stat().st_size if wal.exists() else 0


def test_a_commit_that_checkpoints_is_told_and_one_that_does_not_is_not(engine: Engine) -> None:
    told: Told = []
    engine.observe_checkpoints(lambda seconds, wal: told.append((seconds, wal)))
    _register(engine, 0, 20)  # DuckDB's threshold (16 MiB) is far: the WAL only grows
    assert told == [] and _wal(engine) > 0
    engine.sql("SET checkpoint_threshold = '1KB'")
    before = _wal(engine)
    _register(engine, 20, 20)  # the WAL passes 1 KB: this commit checkpoints the store
    assert len(told) == 1
    seconds, wal = told[0]
    assert seconds > 0 and wal >= before and _wal(engine) < wal
    assert _stored(engine) == 40
    engine.checkpoint()  # one asked for holds no write up: not told
    engine.observe_checkpoints(None)
    _register(engine, 40, 20)
    assert len(told) == 1 and _stored(engine) == 60


def test_an_observer_that_fails_costs_no_write(engine: Engine, caplog: pytest.LogCaptureFixture) -> None:
    def fail(seconds: float, wal: int) -> None:
        raise RuntimeError("the observer is broken")

    engine.observe_checkpoints(fail)
    engine.sql("SET checkpoint_threshold = '1KB'")
    _register(engine, 0, 40)  # checkpoints in its commit: the observer raises, the write stands
    _register(engine, 40, 40)
    assert _stored(engine) == 80
    assert sum("checkpoint observer failed" in r.getMessage() for r in caplog.records) == 2


def test_an_in_memory_store_never_tells() -> None:
    engine = open_engine("duckdb://", create=True)
    assert isinstance(engine, Engine)
    told: Told = []
    engine.observe_checkpoints(lambda seconds, wal: told.append((seconds, wal)))
    engine.create_tables()
    _register(engine, 0, 40)
    assert told == [] and _stored(engine) == 40
    engine.close()
