"""An HTTP process's copy of live edges (:class:`server.processes.edges.LiveEdges`), against the truth: whatever
sequence of commits it follows and answers it seeds from, every page it answers is the page the store would answer,
and it answers the live edge's pages of flows it follows."""

from __future__ import annotations

import random

import pyarrow as pa
import pytest

from server.processes.edges import EDGE_ROWS, LiveEdges, _newest_by_flow, edge_query
from server.processes.protocol import Edges, FetchPage, PageRows


def _row(start: int) -> dict[str, object]:
    return {
        "object_id": f"o{start}",
        "timerange": f"[{start}:0_{start + 1}:0)",
        "start_ns": start,
        "init_object_id": None,
    }


def _instances(starts: list[int]) -> dict[str, tuple[dict[str, object], ...]]:
    return {f"o{s}": ({"object_id": f"o{s}", "position": 0, "label": "local"},) for s in starts}


def _ask(flow: str, limit: int) -> FetchPage:
    return FetchPage(("k", flow, limit), flow, limit, None, None, None, True, False, True)


def _appended(flow: str, new: list[int], size: int | None, seq: int) -> Edges:
    rows = tuple(_row(s) for s in sorted(new, reverse=True))
    return Edges(seq, {flow: (rows, size)}, _instances(new), frozenset(), frozenset())


@pytest.mark.parametrize("seed", range(40))
def test_every_page_the_copy_answers_is_the_stores(seed: int) -> None:
    """Random commits to two flows (mostly at the live edge, some filling gaps before it, some deleting), the store
    telling the flow's size or not, readers' answers seeding the copy: each page the copy answers (limits 1 to 7) has
    the newest segments and says whether more follow, as the truth does; the live edge (limit 1) is answered in most
    reads once the flow has been read."""
    rng = random.Random(seed)
    edges = LiveEdges(rows=EDGE_ROWS)
    truth: dict[str, set[int]] = {"a": set(), "b": set()}
    answered = asked = seq = 0
    for step in range(400):
        flow = rng.choice("ab")
        held = truth[flow]
        seq += 1
        op = rng.random()
        if op < 0.6:  # the live edge
            top = max(held, default=0)
            new = [top + 1 + i * 2 for i in range(rng.choice([1, 1, 1, 2, 3, 12]))]
        elif op < 0.8:  # gaps filled before it
            free = [s for s in range(1, max(held, default=0)) if s not in held]
            new = rng.sample(free, min(len(free), rng.choice([1, 2])))
            if not new:
                continue
        elif op < 0.85:  # segments deleted: the flow's copy is dropped
            for s in rng.sample(sorted(held), min(len(held), 3)):
                held.discard(s)
            edges.apply(Edges(seq, {}, {}, frozenset({flow}), frozenset()))
            continue
        else:  # a reader's answer from the store (read after everything applied): seeds the copy when it has none
            limit = rng.randint(1, EDGE_ROWS - 1)
            rows = [_row(s) for s in sorted(held, reverse=True)[: limit + 1]]
            edges.seed(
                _ask(flow, limit), PageRows(rows, _instances([r["start_ns"] for r in rows[:limit]]), None, 1, seq)
            )  # type: ignore[misc]
            continue
        newest = sorted(held | set(new))[-len(new) :] == sorted(new)
        held.update(new)
        size = len(held) if newest and rng.random() < 0.9 else None
        edges.apply(_appended(flow, new, size, seq))
        for limit in range(1, EDGE_ROWS):
            page = edges.page(flow, limit, wants_urls=True)
            order = sorted(held, reverse=True)
            if limit == 1:
                asked += 1
            if page is None:
                continue
            if limit == 1:
                answered += 1
            assert [r["start_ns"] for r in page.rows] == order[:limit], (step, limit)
            assert page.more == (len(order) > limit), (step, limit)
            assert set(page.instances) == {f"o{s}" for s in order[:limit]}
    assert answered > asked // 2, f"the live edge was answered from the copy in {answered} of {asked} reads"


def test_what_it_cannot_prove_it_does_not_answer() -> None:
    edges = LiveEdges()
    # never heard of, or heard of only rows that may not be the newest
    assert edges.page("f", 1, wants_urls=False) is None
    edges.apply(_appended("f", [5], None, 1))
    assert edges.page("f", 1, wants_urls=False) is None
    # the newest of 10 segments: a page of one, with more; a page of two is not known
    edges.apply(_appended("f", [9], 10, 2))
    page = edges.page("f", 1, wants_urls=True)
    assert page is not None and [r["start_ns"] for r in page.rows] == [9] and page.more
    assert edges.page("f", 2, wants_urls=False) is None
    # a gap filled below what is kept, while older segments exist: not placed
    edges.apply(_appended("f", [3], None, 3))
    assert edges.page("f", 2, wants_urls=False) is None
    # an object's instances change: its flows' copies are dropped
    edges.apply(Edges(4, {}, {}, frozenset(), frozenset({"o9"})))
    assert edges.page("f", 1, wants_urls=False) is None
    # the instances of an object not known: pages wanting URLs are asked of the store
    edges.apply(Edges(5, {"g": ((_row(1),), 1)}, {}, frozenset(), frozenset()))
    assert edges.page("g", 1, wants_urls=True) is None
    assert edges.page("g", 1, wants_urls=False) is not None
    # everything changed (the store reopened after a fault)
    edges.apply(Edges(6, {}, {}, frozenset(), frozenset(), everything=True))
    assert len(edges) == 0


def test_only_edge_queries_are_answered_from_the_copy() -> None:
    assert edge_query(_ask("f", 1)) and edge_query(_ask("f", EDGE_ROWS - 1))
    assert not edge_query(_ask("f", EDGE_ROWS))
    base = _ask("f", 1)
    for other in (
        FetchPage(base.key, "f", 1, "[0:0_1:0)", None, None, True, False, True),
        FetchPage(base.key, "f", 1, None, "o1", None, True, False, True),
        FetchPage(base.key, "f", 1, None, None, 10, True, False, True),
        FetchPage(base.key, "f", 1, None, None, None, False, False, True),
        FetchPage(base.key, "f", 1, None, None, None, True, True, True),
    ):
        assert not edge_query(other)


def test_the_copy_is_bounded() -> None:
    edges = LiveEdges(max_flows=3)
    for i in range(5):
        edges.apply(Edges(i + 1, {f"f{i}": ((_row(1),), 1)}, _instances([1]), frozenset(), frozenset()))
    assert len(edges) == 3 and edges.page("f0", 1, wants_urls=False) is None
    assert edges.page("f4", 1, wants_urls=True) is not None


def test_a_cut_batch_says_older_segments_exist() -> None:
    """A transaction that wrote more segments to a flow than the copy keeps sends only the newest: a flow whose copy
    was complete (empty) then has older segments than those kept."""
    edges = LiveEdges()
    edges.seed(_ask("f", 1), PageRows([], {}, None, 1, 1))  # an empty flow, known to be empty
    rows = tuple(_row(s) for s in range(20, 20 - EDGE_ROWS, -1))
    edges.apply(
        Edges(2, {"f": (rows, None)}, _instances(list(range(17, 21))), frozenset(), frozenset(), cut=frozenset({"f"}))
    )
    page = edges.page("f", EDGE_ROWS - 1, wants_urls=False)
    assert page is not None and page.more
    full = edges.page("f", EDGE_ROWS, wants_urls=False)
    assert full is not None and full.more  # the kept rows, and more: the batch's older ones


def test_a_copy_started_with_the_live_flows_answers_as_the_store() -> None:
    """``seed_flows``: each flow's newest rows, as many as were fetched or fewer when it has no more. Every page the
    copy then answers is the store's (a flow of ten segments, one of two, an empty one); a flow kept already stays as
    it is; no more flows are started than the copy keeps; a copy keeping fewer rows than were fetched knows that older
    ones exist."""
    truth = {"long": list(range(10)), "short": [0, 1], "empty": []}
    newest = {f: [_row(s) for s in sorted(v, reverse=True)[:EDGE_ROWS]] for f, v in truth.items()}
    instances = _instances(list(range(10)))
    edges = LiveEdges()
    edges.apply(_appended("kept", [7], 8, 1))
    assert edges.seed_flows(newest | {"kept": [_row(3)]}, instances, fetched=EDGE_ROWS) == 3
    for flow, starts in truth.items():
        expected = sorted(starts, reverse=True)
        for limit in range(1, EDGE_ROWS):
            page = edges.page(flow, limit, wants_urls=True)
            assert page is not None, (flow, limit)
            assert [r["start_ns"] for r in page.rows] == expected[:limit]
            assert page.more == (len(expected) > limit)
    assert edges.page("long", EDGE_ROWS, wants_urls=False) is None  # whether older ones exist is not known
    kept = edges.page("kept", 1, wants_urls=False)
    assert kept is not None and [r["start_ns"] for r in kept.rows] == [7]
    bounded = LiveEdges(max_flows=2)
    assert bounded.seed_flows(newest, instances, fetched=EDGE_ROWS) == 2 and len(bounded) == 2
    shorter = LiveEdges(rows=2)
    shorter.seed_flows({"long": newest["long"]}, instances, fetched=EDGE_ROWS)
    page = shorter.page("long", 2, wants_urls=False)
    assert page is not None and [r["start_ns"] for r in page.rows] == [9, 8] and page.more


@pytest.mark.parametrize("size", [1, 5, 64, 65, 300])
def test_the_newest_rows_of_each_flow_in_an_insert(size: int) -> None:
    """What the store process sends of an insert: each flow's newest rows (newest first), its count and its oldest
    start, the same whether grouped in Python (small inserts) or with Arrow's kernels (large ones)."""
    rng = random.Random(size)
    flows = [f"f{i}" for i in range(rng.randint(1, 7))]
    rows = [
        {"flow_id": rng.choice(flows), "object_id": f"o{s}", "timerange": f"[{s}:0_{s}:1)", "start_ns": s}
        for s in rng.sample(range(10**6), size)
    ]
    table = pa.Table.from_pylist(rows)
    got = _newest_by_flow(table)
    for flow in flows:
        mine = sorted((r for r in rows if r["flow_id"] == flow), key=lambda r: r["start_ns"], reverse=True)
        if not mine:
            assert flow not in got
            continue
        newest, count, oldest = got[flow]
        assert [r["start_ns"] for r in newest] == [r["start_ns"] for r in mine[:EDGE_ROWS]]
        assert newest[0]["object_id"] == mine[0]["object_id"] and "flow_id" not in newest[0]
        assert (count, oldest) == (len(mine), mine[-1]["start_ns"])
