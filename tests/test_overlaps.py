"""The overlap rule's helpers: rows grouped by flow in one pass."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from tams_analytics.catalog.overlaps import rows_by_flow


def test_rows_by_flow_gives_each_flows_positions_in_order() -> None:
    ids = ["b", "a", "b", "c", "a", "b"]
    for column in (pa.array(ids), pa.chunked_array([ids[:2], ids[2:]])):
        got = rows_by_flow(column)
        assert {f: p.tolist() for f, p in got.items()} == {"b": [0, 2, 5], "a": [1, 4], "c": [3]}
        assert all(p.dtype == np.int64 for p in got.values())
    assert rows_by_flow(pa.array([], pa.string())) == {}
