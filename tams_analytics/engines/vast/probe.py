"""The isolation property several replicas on one VAST store rely on, tried on the store itself.

Two server processes registering segments on one flow both update the flow's row first (the guard); the
design is safe only if, of two transactions updating one row, exactly one commits (first committer wins)
and the other fails with a conflict it can retry. :func:`isolation_probe` tries exactly that on a scratch
row of the ``service`` table (key ``doctor-probe-<random>``, which nothing reads by that key), through the
:class:`~tams_analytics.engines.vast.store.Store` seam, and deletes the row afterwards whatever happened.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from typing import Any

import pyarrow as pa

from tams_analytics.engines.base import IsolationProbe
from tams_analytics.engines.vast.requests import ROW_ID, request_deferred
from tams_analytics.engines.vast.store import Store, is_conflict
from tams_analytics.engines.vast.tables import table_schema
from tams_analytics.predicates import Term

__all__ = ["SCRATCH_TABLE", "isolation_probe"]

logger = logging.getLogger(__name__)

SCRATCH_TABLE = "service"


def _scratch_schema() -> pa.Schema:
    return table_schema(SCRATCH_TABLE)


def _row_ids(store: Store, tx: Any, key: str) -> pa.Array:
    found = store.select(tx, SCRATCH_TABLE, ["key"], request_deferred([Term("key", "==", key)]), row_ids=True)
    return found.column(ROW_ID).combine_chunks()


def _value(store: Store, key: str) -> str | None:
    with store.transaction() as tx:
        found = store.select(tx, SCRATCH_TABLE, ["value"], request_deferred([Term("key", "==", key)]))
    values = found.column("value").to_pylist()
    return values[0] if values else None


def _update(store: Store, tx: Any, row_id: int, value: str) -> None:
    rows = pa.table({ROW_ID: pa.array([row_id], pa.uint64()), "value": pa.array([value], pa.string())})
    store.update(tx, SCRATCH_TABLE, rows, ["value"])


def isolation_probe(store: Store) -> IsolationProbe:
    """Insert a scratch row, update it from two open transactions, commit both, and say what happened."""
    key = f"doctor-probe-{uuid.uuid4().hex}"
    with store.transaction() as tx:
        store.insert(tx, SCRATCH_TABLE, pa.Table.from_pylist([{"key": key, "value": "initial"}], _scratch_schema()))
    try:
        with store.transaction() as tx:
            (row_id,) = _row_ids(store, tx, key).to_pylist()
        outcomes = _two_writers(store, row_id)
        committed = [name for name, exc in outcomes.items() if exc is None]
        final = _value(store, key)
    finally:
        with store.transaction() as tx:
            ids = _row_ids(store, tx, key)
            if len(ids):
                store.delete(tx, SCRATCH_TABLE, ids)
    said = "; ".join(
        f"{name} committed" if exc is None else f"{name} refused ({type(exc).__name__})"
        for name, exc in outcomes.items()
    )
    unexpected = [exc for exc in outcomes.values() if exc is not None and not is_conflict(exc)]
    if unexpected:
        said += f"; unexpected error: {type(unexpected[0]).__name__}: {unexpected[0]}"
        return IsolationProbe(committed=-1, detail=said)
    if len(committed) == 1 and final != f"written by {committed[0]}":
        said += f"; but the row holds {final!r}"
    return IsolationProbe(committed=len(committed), detail=f"{said}; the row holds {final!r}")


def _two_writers(store: Store, row_id: int) -> dict[str, BaseException | None]:
    """Open transactions a and b, update the row in a then b, commit a then b: each one's error or None."""
    scopes = {name: store.transaction() for name in ("a", "b")}
    txs = {name: scope.__enter__() for name, scope in scopes.items()}
    outcomes: dict[str, BaseException | None] = {}
    for name, scope in scopes.items():
        try:
            _update(store, txs[name], row_id, f"written by {name}")
        except Exception as exc:  # refused at once: roll this one back
            outcomes[name] = exc
            with contextlib.suppress(Exception):
                scope.__exit__(type(exc), exc, exc.__traceback__)
    for name, scope in scopes.items():
        if name in outcomes:
            continue
        try:
            scope.__exit__(None, None, None)  # commit
            outcomes[name] = None
        except Exception as exc:
            outcomes[name] = exc
    logger.info("isolation probe: %s", {k: type(v).__name__ if v else "committed" for k, v in outcomes.items()})
    return dict(sorted(outcomes.items()))
