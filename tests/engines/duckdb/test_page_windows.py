"""Segment pages through windows on ``start_ns`` (``engines/windows.py``) on DuckDB answer exactly what the
plain query answers: first pages, newest-first pages, pages at a cursor either way and pages of a
timerange, on flows with gaps and uneven segments stored interleaved, also after the flow grows at either
end or loses segments; a flow's extent is read once and follows the engine's inserts; a page runs one
windowed statement, and one plain statement where a window cannot help."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from tams_analytics.engines.duckdb import Engine
from tams_analytics.predicates import Predicate, Term
from tams_analytics.timerange import TimeRange
from tams_analytics.timerange_vector import format_timeranges

SECOND = 1_000_000_000


def _segments(flow_id: str, starts: np.ndarray, ends: np.ndarray) -> pa.Table:
    s, e = pa.array(starts, pa.int64()), pa.array(ends, pa.int64())
    return pa.table(
        {
            "flow_id": pa.array([flow_id] * len(starts), pa.string()),
            "object_id": pa.array([f"{flow_id}-{x}" for x in starts], pa.string()),
            "timerange": format_timeranges(s, e),
            "start_ns": s,
            "end_ns": e,
        }
    )


def _uneven(rng: np.random.Generator, n: int, origin: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` segments from ``origin``: durations of 0.5 to 4 s, and now and then a gap of up to an hour."""
    durations = rng.integers(SECOND // 2, 4 * SECOND, n)
    gaps = np.where(rng.random(n) < 0.02, rng.integers(1, 3600 * SECOND, n), 0)
    starts = origin + np.concatenate([[0], np.cumsum(durations + gaps)[:-1]])
    return starts, starts + durations


def _expected(engine: Engine, where: list[Predicate], descending: bool, limit: int) -> list[int]:
    """The page by the plain query (no window)."""
    return engine._select("segments", where, ["start_ns"], [("start_ns", descending)], limit).column(0).to_pylist()


def _page(engine: Engine, where: list[Predicate], descending: bool, limit: int) -> list[int]:
    t = engine.query("segments", where, columns=["start_ns"], order_by=[("start_ns", descending)], limit=limit)
    return t.column(0).to_pylist()


def _store_interleaved(engine: Engine, flows: dict[str, tuple[np.ndarray, np.ndarray]], chunk: int) -> None:
    """The flows' segments appended in time order across flows, ``chunk`` rows an insert (as recorders do)."""
    table = pa.concat_tables([_segments(f, s, e) for f, (s, e) in flows.items()])
    table = table.sort_by("start_ns")
    for lo in range(0, table.num_rows, chunk):
        engine.insert("segments", table.slice(lo, chunk))


def _overlapping(tr: TimeRange) -> list[Predicate]:
    return [Term("start_ns", "<", tr.end_ns), Term("end_ns", ">", tr.start_ns)]


def _all_pages_agree(engine: Engine, flow_id: str, rng: np.random.Generator) -> int:
    """Every kind of page of ``flow_id`` against the plain query; returns how many were compared."""
    starts = engine._select("segments", [Term("flow_id", "==", flow_id)], ["start_ns"], (), None).column(0)
    starts = np.sort(starts.to_numpy())
    compared = 0
    for limit in (1, 10, 100, 1000):
        cursors = [None, *rng.choice(starts, 8), int(starts[0]) - 1, int(starts[-1]) + 1]
        for descending in (False, True):
            for cursor in cursors:
                where: list[Predicate] = [Term("flow_id", "==", flow_id)]
                if cursor is not None:
                    where.append(Term("start_ns", "<" if descending else ">", int(cursor)))
                assert _page(engine, where, descending, limit) == _expected(engine, where, descending, limit), (
                    limit,
                    descending,
                    cursor,
                )
                compared += 1
            for _ in range(4):
                a, b = sorted(int(x) for x in rng.choice(starts, 2))
                tr = TimeRange.from_ns(a + 1, b + SECOND)
                where = [Term("flow_id", "==", flow_id), *_overlapping(tr)]
                assert _page(engine, where, descending, limit) == _expected(engine, where, descending, limit)
                compared += 1
    return compared


def test_windowed_pages_answer_what_the_plain_query_answers(engine: Engine) -> None:
    rng = np.random.default_rng(12)
    flows = {
        "long": _uneven(rng, 6000, 1000 * SECOND),
        "other": _uneven(rng, 4000, 500 * SECOND),
        "short": _uneven(rng, 150, 2000 * SECOND),
    }
    _store_interleaved(engine, flows, chunk=700)
    for flow_id in flows:
        assert _all_pages_agree(engine, flow_id, rng) > 100

    # the flow grows at its live edge and is back-filled before its start, in small and large inserts:
    # its extent was read above, so pages now start from a stale one widened by these inserts
    s, e = flows["long"]
    newer = _uneven(rng, 300, int(e[-1]) + 10 * SECOND)
    for i in range(20):
        engine.insert("segments", _segments("long", newer[0][i : i + 1], newer[1][i : i + 1]))
    for i in range(20, 300, 40):
        engine.insert("segments", _segments("long", newer[0][i : i + 40], newer[1][i : i + 40]))
    older = _uneven(rng, 2000, 10 * SECOND)
    engine.insert("segments", _segments("long", *older))
    newest = _page(engine, [Term("flow_id", "==", "long")], True, 5)
    assert newest == sorted(int(x) for x in np.unique(newer[0]))[-5:][::-1]
    assert _page(engine, [Term("flow_id", "==", "long")], False, 3) == [int(x) for x in older[0][:3]]
    assert _all_pages_agree(engine, "long", rng) > 100

    # segments deleted at both ends and in the middle: the kept extent is now wider than the flow
    engine.delete("segments", [Term("flow_id", "==", "long"), Term("start_ns", ">=", int(newer[0][100]))])
    engine.delete("segments", [Term("flow_id", "==", "long"), Term("start_ns", "<", int(s[3000]))])
    assert _all_pages_agree(engine, "long", rng) > 100
    engine.delete("segments", [Term("flow_id", "==", "long")])
    assert _page(engine, [Term("flow_id", "==", "long")], True, 10) == []


def test_a_flow_grown_by_live_ingest_keeps_its_extent_current(engine: Engine) -> None:
    """Pages of a long flow stored interleaved with others over several row groups: the extent is read once
    (one aggregate) and then follows the engine's inserts, so the newest page finds new segments at once."""
    n = 200_000
    starts = np.arange(n, dtype=np.int64) * SECOND
    flows = {f"f{i}": (starts + i, starts + SECOND + i) for i in range(3)}
    _store_interleaved(engine, flows, chunk=100_000)
    engine.checkpoint()
    where: list[Predicate] = [Term("flow_id", "==", "f1")]
    assert _page(engine, where, True, 100) == [int(x) for x in flows["f1"][0][-100:][::-1]]
    assert _page(engine, where, False, 100) == [int(x) for x in flows["f1"][0][:100]]
    read: list[str] = []
    extent = engine._extents.extent("f1", lambda: read.append("f1") or (None, None, 0))
    assert not read and (extent.lo, extent.hi, extent.n) == (1, (n - 1) * SECOND + 1, n)

    live = np.arange(n, n + 10, dtype=np.int64) * SECOND + 1
    for start in live:
        engine.insert("segments", _segments("f1", np.array([start]), np.array([start + SECOND])))
        assert _page(engine, where, True, 1) == [int(start)]
    extent = engine._extents.extent("f1", lambda: read.append("f1") or (None, None, 0))
    assert not read and (extent.hi, extent.n) == (int(live[-1]), n + 10)

    # a flow without segments is remembered as such, and found by its first inserts
    assert _page(engine, [Term("flow_id", "==", "new")], True, 10) == []
    engine.insert("segments", _segments("new", live[:5], live[:5] + SECOND))
    extent = engine._extents.extent("new", lambda: read.append("new") or (None, None, 0))
    assert not read and (extent.lo, extent.hi, extent.n) == (int(live[0]), int(live[4]), 5)
    assert _page(engine, [Term("flow_id", "==", "new")], True, 2) == [int(live[4]), int(live[3])]


def test_pages_run_one_statement_where_a_window_cannot_help_and_a_windowed_one_where_it_can(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A page filtered on more than its flow and bounds (an object id), or confined by its own timerange,
    runs as it is, once; a page of a long flow runs one statement, with a window on ``start_ns``."""
    rng = np.random.default_rng(5)
    flows = {"long": _uneven(rng, 5000, 0), "other": _uneven(rng, 5000, 0)}
    _store_interleaved(engine, flows, chunk=1000)
    statements: list[list[Predicate]] = []
    select = engine._select

    def counted(name: str, where: list[Predicate], *args: object) -> pa.Table:
        statements.append(list(where))
        return select(name, where, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(engine, "_select", counted)
    flow: list[Predicate] = [Term("flow_id", "==", "long")]
    s, e = flows["long"]
    for descending in (False, True):
        _page(engine, [*flow], descending, 100)  # reads the extent first
        statements.clear()
        assert _page(engine, [*flow], descending, 100) == _expected(engine, flow, descending, 100)
        windows = [t for t in statements[0] if isinstance(t, Term) and t.column == "start_ns"]
        assert len(statements) == 2 and windows, statements  # the page, then the plain query of _expected
        statements.clear()
        by_object = [*flow, Term("object_id", "==", f"long-{s[2500]}")]
        assert _page(engine, by_object, descending, 100) == [int(s[2500])]
        assert len(statements) == 1 and statements[0] == by_object
        statements.clear()
        narrow = [*flow, *_overlapping(TimeRange.from_ns(int(s[1000]), int(e[1002])))]
        assert _page(engine, narrow, descending, 100) == sorted((int(x) for x in s[1000:1003]), reverse=descending)
        assert len(statements) == 1, statements
