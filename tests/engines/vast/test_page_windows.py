"""On VAST, a page of a long flow reads a window of it, not the whole flow: ordering and limit run
client-side, so a page used to fetch the ``start_ns`` of every segment of the flow. Counted at the
engine's ``store=`` seam, on the reference store (which evaluates the serialized predicates)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from tams_analytics.engines.vast import Engine
from tams_analytics.predicates import Predicate, Term
from tams_analytics.timerange_vector import format_timeranges
from tests.engines.vast.reference import REFERENCE_URL, ReferenceStore

SECOND = 1_000_000_000
N = 20_000


class RowCountingStore(ReferenceStore):
    """The reference store, counting the rows its selects return."""

    def __init__(self) -> None:
        super().__init__()
        self.rows_read = 0

    def select(self, tx: Any, table: str, *args: Any, **kwargs: Any) -> pa.Table:
        rows = super().select(tx, table, *args, **kwargs)
        self.rows_read += rows.num_rows
        return rows


@pytest.fixture
def engine() -> Iterator[tuple[Engine, RowCountingStore]]:
    store = RowCountingStore()
    engine = Engine(REFERENCE_URL, store=store, create=True)
    starts = np.arange(N, dtype=np.int64) * 2 * SECOND
    for flow_id in ("long", "other"):
        s, e = pa.array(starts), pa.array(starts + 2 * SECOND)
        rows = {"flow_id": [flow_id] * N, "object_id": [f"{flow_id}-{i}" for i in range(N)]}
        rows |= {"timerange": format_timeranges(s, e), "start_ns": s, "end_ns": e}
        with engine.transaction():
            engine.insert("segments", pa.table(rows))
    yield engine, store
    engine.close()


def _page(engine: Engine, where: list[Predicate], descending: bool) -> list[int]:
    columns = ["start_ns", "object_id"]
    t = engine.query("segments", where, columns=columns, order_by=[("start_ns", descending)], limit=100)
    return t.column("start_ns").to_pylist()


def test_a_page_of_a_long_flow_reads_a_window_of_it(engine: tuple[Engine, RowCountingStore]) -> None:
    vast, store = engine
    flow: list[Predicate] = [Term("flow_id", "==", "long")]
    starts = [i * 2 * SECOND for i in range(N)]
    assert _page(vast, flow, True) == starts[::-1][:100]  # the first page reads the flow's starts once
    pages = {
        "newest first": (flow, True, starts[::-1][:100]),
        "first": (flow, False, starts[:100]),
        "deep cursor": ([*flow, Term("start_ns", ">", starts[12_000])], False, starts[12_001:12_101]),
        "deep, newest first": ([*flow, Term("start_ns", "<", starts[12_000])], True, starts[11_900:12_000][::-1]),
    }
    for kind, (where, descending, expected) in pages.items():
        store.rows_read = 0
        assert _page(vast, where, descending) == expected, kind
        assert store.rows_read <= 4 * 2 * 100, (kind, store.rows_read)  # a window of about 200 rows, read twice

    # segments appended by this engine are in the next newest-first page at once
    newer = [N * 2 * SECOND + i * 2 * SECOND for i in range(3)]
    s = pa.array(newer, pa.int64())
    e = pa.array([x + 2 * SECOND for x in newer], pa.int64())
    rows = {"flow_id": ["long"] * 3, "object_id": ["n0", "n1", "n2"], "timerange": format_timeranges(s, e)}
    with vast.transaction():
        vast.insert("segments", pa.table(rows | {"start_ns": s, "end_ns": e}))
    store.rows_read = 0
    assert _page(vast, flow, True)[:4] == [*newer[::-1], starts[-1]]
    assert store.rows_read <= 4 * 2 * 100

    # the extent is read again once it is older than max_age (other replicas change the flow too)
    vast._extents.max_age = 0.0
    store.rows_read = 0
    assert _page(vast, flow, False) == starts[:100]
    assert store.rows_read >= N
    vast._extents.max_age = 3600.0
    store.rows_read = 0
    assert _page(vast, flow, False) == starts[:100]
    assert store.rows_read <= 4 * 2 * 100
