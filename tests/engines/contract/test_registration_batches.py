"""Registrations applied together in one batch (group commit) answer exactly as if they had run one after
another in arrival order: the same segments accepted and refused, for the same reasons, the same errors for
whole requests, and the same store afterwards."""

from __future__ import annotations

import random
import threading
import uuid
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from tams_analytics.catalog import AddResult, Catalog
from tams_analytics.catalog.group_commit import apply_batch
from tams_analytics.catalog.registration import Registered, Registration, attempts, register, register_batch
from tams_analytics.predicates import Term
from tests.engines.catalogs import open_catalog
from tests.engines.contract.helpers import flow

S = 1_000_000_000


def _tr(a: float, b: float) -> str:
    return f"[{int(a * S) // S}:{int(a * S) % S}_{int(b * S) // S}:{int(b * S) % S})"


def _random_requests(
    rng: random.Random, flows: list[str], n: int, init_flows: frozenset[str] = frozenset()
) -> list[tuple[str, list[dict[str, Any]]]]:
    """Requests as a live recorder and a few clumsy clients would send them: mostly abutting single
    segments per flow, some overlapping, some re-using objects (also across flows), some bad. Segments of
    ``init_flows`` (flows of init segments) mostly name an init object, some forget it."""
    objects = [f"shared-{k}" for k in range(4)]
    edge = dict.fromkeys(flows, 0.0)
    out: list[tuple[str, list[dict[str, Any]]]] = []
    for _ in range(n):
        fid = rng.choice([*flows, "missing-flow"] if rng.random() < 0.05 else flows)
        items = []
        for _ in range(rng.choice([1, 1, 1, 2, 3])):
            start = edge.get(fid, 0.0) + rng.choice([0.0, 0.0, 0.0, -1.0, 0.5, 3.0])
            length = rng.choice([1.0, 2.0, 0.5])
            item: dict[str, Any] = {"object_id": str(uuid.uuid4()), "timerange": _tr(start, start + length)}
            roll = rng.random()
            if roll < 0.1:
                item["object_id"] = rng.choice(objects)  # a re-use: the object rules decide
            elif roll < 0.15:
                item["init_object_id"] = "init-" + rng.choice("ab")
            elif roll < 0.18:
                item["timerange"] = "not a timerange"
            elif fid in init_flows and roll < 0.9:
                item["init_object_id"] = "init-" + rng.choice("ab")
            items.append(item)
            edge[fid] = max(edge.get(fid, 0.0), start + length)
        out.append((fid, items))
    return out


def _outcome(o: AddResult | Exception) -> Any:
    if isinstance(o, Exception):
        return (type(o).__name__, str(o))
    return (o.accepted, [(f.index, f.object_id, f.timerange, f.reason) for f in o.failed])


def _store(cat: Catalog) -> Any:
    segs = cat.rows("segments", columns=["flow_id", "object_id", "timerange", "init_object_id"]).to_pylist()
    objs = cat.rows("objects", columns=["id", "registered", "is_init", "timerange", "first_referenced_by_flow"])
    return sorted(map(str, segs)), sorted(map(str, objs.to_pylist()))


@pytest.mark.parametrize("seed", range(4))
def test_a_batch_answers_as_the_requests_would_one_after_another(
    catalog: Catalog, tmp_path: Path, request: pytest.FixtureRequest, seed: int
) -> None:
    engine = request.node.callspec.params["catalog"]
    rng = random.Random(seed)
    init = {"frame_width": 1920, "frame_height": 1080, "init_segments": True}
    docs = [flow(), flow(), flow(container="video/mp4", essence_parameters=init)]
    with open_catalog(engine, tmp_path / "sequential", request) as one_by_one:
        for d in docs:
            catalog.put_flow(d)
            one_by_one.put_flow(d)
        requests = _random_requests(rng, [d["id"] for d in docs], 40, frozenset([docs[2]["id"]]))
        expected = []
        for fid, items in requests:
            try:
                expected.append(_outcome(one_by_one.add_segments(fid, items)))
            except Exception as exc:
                expected.append(_outcome(exc))
        batch = [Registration.of(fid, items) for fid, items in requests]
        got = [_outcome(o) for o in apply_batch(lambda rs: register_batch(catalog, rs), batch)]
        assert got == expected
        assert _store(catalog) == _store(one_by_one)


@pytest.mark.parametrize("seed", range(4))
def test_only_accepted_rows_count_as_earlier(
    catalog: Catalog, tmp_path: Path, request: pytest.FixtureRequest, seed: int
) -> None:
    """A batch stores what its rows would store registered alone, one after another in arrival order: a row
    refused for any reason (an object rule, the init_segments rule, an overlap, a timerange that does not parse)
    blocks no later row, of its request or of a later one."""
    engine = request.node.callspec.params["catalog"]
    rng = random.Random(1000 + seed)
    init = {"frame_width": 1920, "frame_height": 1080, "init_segments": True}
    docs = [flow(), flow(), flow(container="video/mp4", essence_parameters=init)]
    with open_catalog(engine, tmp_path / "row-by-row", request) as alone:
        for d in docs:
            catalog.put_flow(d)
            alone.put_flow(d)
        requests = _random_requests(rng, [d["id"] for d in docs], 60, frozenset([docs[2]["id"]]))
        for fid, items in requests:
            for item in items:
                try:
                    alone.add_segments(fid, [item])
                except Exception:  # a flow that does not exist
                    continue
        batch = [Registration.of(fid, items) for fid, items in requests]
        apply_batch(lambda rs: register_batch(catalog, rs), batch)
        assert _store(catalog) == _store(alone)


def test_concurrent_writers_are_batched_and_each_gets_its_own_answer(catalog: Catalog) -> None:
    """16 threads post single abutting segments (and every fourth an overlap) to 4 flows at once."""
    fids = [catalog.put_flow(flow())[1].flows_created[0] for _ in range(4)]
    answers: dict[tuple[str, int], bool] = {}
    errors: list[BaseException] = []

    def writer(k: int) -> None:
        fid = fids[k % 4]
        try:
            for i in range(k // 4, 40, 4):  # four writers share a flow, each its own slots
                r = catalog.add_segments(fid, [{"object_id": str(uuid.uuid4()), "timerange": _tr(i, i + 1)}])
                answers[(fid, i)] = r.all_accepted
                if i % 4 == 0:  # overlaps the segment just stored: refused, whichever batch it lands in
                    dup = catalog.add_segments(fid, [{"object_id": str(uuid.uuid4()), "timerange": _tr(i, i + 0.5)}])
                    assert not dup.accepted and "overlaps" in dup.failed[0].reason
        except BaseException as exc:  # reported below, not swallowed by the thread
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors[:3]
    assert all(answers.values()) and len(answers) == 160
    for fid in fids:
        assert catalog.count("segments", [_flow(fid)]) == 40
    commits = catalog.group_commit
    assert commits.requests >= 200 and commits.batches < commits.requests, "concurrent requests share batches"


def _flow(fid: str) -> Any:
    from tams_analytics.predicates import Term

    return Term("flow_id", "==", fid)


def test_a_caller_composes_its_own_writes_into_a_batch_transaction(catalog: Catalog, flow_id: str) -> None:
    """``register`` returns the rows it stored, inside the caller's attempt (what the server does with the
    webhook outbox): the caller's writes commit with the batch, and if they fail nothing of the batch is stored.
    The library calls nobody back."""

    def batch(docs: list[dict[str, Any]], then: Any) -> Registered:
        request = Registration.of(flow_id, docs)
        for attempt in attempts(catalog, [request]):
            with attempt:
                done = register(catalog, [request], attempt)
                then(done)
        return done

    def note(done: Registered) -> None:
        assert catalog.engine.in_transaction()
        if done.stored is not None:
            heard = ",".join(done.stored.column("object_id").to_pylist())
            catalog.engine.insert("service", pa.Table.from_pylist([{"key": f"heard-{heard}", "value": "x"}]))

    done = batch([{"object_id": "a", "timerange": "[0:0_1:0)"}], note)
    assert isinstance(done.outcomes[0], AddResult) and done.outcomes[0].accepted == [0]
    assert catalog.exists("service", [Term("key", "==", "heard-a")])
    refused = batch([{"object_id": "b", "timerange": "[0:0_1:0)"}], note)
    assert refused.stored is None, "nothing stored: nothing to compose"

    def failing(done: Registered) -> None:
        raise RuntimeError("the outbox is broken")

    with pytest.raises(RuntimeError, match="outbox"):
        batch([{"object_id": "c", "timerange": "[1:0_2:0)"}], failing)
    assert catalog.rows("segments", columns=["object_id"]).column("object_id").to_pylist() == ["a"]
    assert not catalog.exists("objects", [Term("id", "==", "c")])
