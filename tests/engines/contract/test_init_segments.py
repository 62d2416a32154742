"""The ``init_segments`` rule (flow-video.json, flow-audio.json, flow-data.json, flow-multi.json: "MUST be set to
true if Media Objects have init_object populated. If set to true, all Media Objects MUST have init_object
populated"), enforced by the library's write rules on every engine: single and bulk registrations, batches of
concurrent writers (group commit), the bulk loader, and a flow whose setting changes while it holds segments.
Init objects record the flow that first referenced them."""

from __future__ import annotations

import threading
import uuid
from typing import Any

import pyarrow as pa
import pytest

from tams_analytics.catalog import Catalog
from tams_analytics.catalog.bulk import load_segments
from tams_analytics.exceptions import ConflictError
from tams_analytics.predicates import Term
from tests.engines.contract.helpers import flow, put

FMP4 = {
    "container": "video/mp4",
    "essence_parameters": {"frame_width": 1920, "frame_height": 1080, "init_segments": True},
}


def seg(start: int, object_id: str | None = None, init: str | None = None) -> dict[str, Any]:
    doc: dict[str, Any] = {"object_id": object_id or str(uuid.uuid4()), "timerange": f"[{start}:0_{start + 1}:0)"}
    return doc | ({"init_object_id": init} if init else {})


def stored(catalog: Catalog, flow_id: str) -> list[tuple[str, str | None]]:
    rows = catalog.rows("segments", [Term("flow_id", "==", flow_id)], columns=["timerange", "init_object_id"])
    return sorted(zip(rows.column(0).to_pylist(), rows.column(1).to_pylist(), strict=True))


def test_a_flow_with_init_segments_takes_only_segments_with_an_init_object(catalog: Catalog) -> None:
    fmp4 = put(catalog, **FMP4)["id"]
    result = catalog.add_segments(fmp4, [seg(0, init="init"), seg(1), seg(2, init="init")])
    assert result.accepted == [0, 2]
    (failure,) = result.failed
    assert failure.index == 1 and "uses initialisation segments" in failure.reason
    assert "init_object_id" in failure.reason
    assert stored(catalog, fmp4) == [("[0:0_1:0)", "init"), ("[2:0_3:0)", "init")]


def test_a_flow_without_init_segments_refuses_segments_with_an_init_object(catalog: Catalog) -> None:
    plain = put(catalog)["id"]
    # the refused row registers nothing and blocks nothing: the row after it takes the same time
    result = catalog.add_segments(plain, [seg(0, "first", init="init"), seg(0, "second")])
    assert result.accepted == [1]
    assert "does not use initialisation segments" in result.failed[0].reason
    assert stored(catalog, plain) == [("[0:0_1:0)", None)]
    assert catalog.get_object("first") is None and catalog.get_object("init") is None


def test_a_reuse_takes_its_objects_init_object_and_must_suit_the_flow(catalog: Catalog) -> None:
    """The spec asks re-uses to omit init_object_id: the object's init object counts, and the segment records
    it (readers need it to decode; the init object stays referenced while the re-use does)."""
    a, b, plain = put(catalog, **FMP4)["id"], put(catalog, **FMP4)["id"], put(catalog)["id"]
    assert catalog.add_segments(a, [seg(0, "m", init="init")]).all_accepted
    assert catalog.add_segments(b, [seg(0, "m")]).all_accepted
    assert stored(catalog, b) == [("[0:0_1:0)", "init")]
    refused = catalog.add_segments(plain, [seg(0, "m")])
    assert not refused.accepted and "does not use initialisation segments" in refused.failed[0].reason
    # a plain object re-used on a flow of init segments breaks the rule the other way
    assert catalog.add_segments(plain, [seg(5, "p")]).all_accepted
    assert "uses initialisation segments" in catalog.add_segments(a, [seg(5, "p")]).failed[0].reason
    # deleting the first flow's segments leaves the init object referenced by the re-use
    catalog.delete_segments(a)
    assert catalog.get_object("init")["referenced_by_flows"] == [b]  # type: ignore[index]


def test_concurrent_writers_batched_together_each_get_the_rule(catalog: Catalog) -> None:
    """Writers of both kinds of flow, half of their requests breaking the rule, share batches (group commit) and
    each gets its own answer."""
    fmp4, plain = put(catalog, **FMP4)["id"], put(catalog)["id"]
    answers: dict[tuple[str, int], tuple[bool, str]] = {}
    errors: list[BaseException] = []

    def writer(k: int) -> None:
        fid, uses_init = (fmp4, True) if k % 2 else (plain, False)
        try:
            for i in range(k // 2, 48, 4):
                breaks = i % 2 == 0
                gives_init = uses_init != breaks
                r = catalog.add_segments(fid, [seg(i, init="init" if gives_init else None)])
                answers[(fid, i)] = (r.all_accepted, r.failed[0].reason if r.failed else "")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors[:3]
    assert len(answers) == 96
    for (fid, i), (accepted, reason) in answers.items():
        assert accepted == (i % 2 == 1), (fid, i, reason)
        if not accepted:
            expected = "uses initialisation segments" if fid == fmp4 else "does not use initialisation segments"
            assert expected in reason
    assert stored(catalog, fmp4) == sorted((f"[{i}:0_{i + 1}:0)", "init") for i in range(1, 48, 2))
    assert stored(catalog, plain) == sorted((f"[{i}:0_{i + 1}:0)", None) for i in range(1, 48, 2))
    commits = catalog.group_commit
    assert commits.batches < commits.requests, "concurrent requests share batches"


def test_the_bulk_loader_keeps_the_rule(catalog: Catalog) -> None:
    fmp4, plain = put(catalog, **FMP4)["id"], put(catalog)["id"]
    table = pa.table(
        {
            "object_id": ["x0", "x1"],
            "timerange": ["[0:0_1:0)", "[1:0_2:0)"],
            "start_ns": [0, 10**9],
            "end_ns": [10**9, 2 * 10**9],
            "init_object_id": ["init", None],
        }
    )
    for fid in (fmp4, plain):
        with pytest.raises(ConflictError, match="1 of the segments break the rule"):
            load_segments(catalog, fid, table)
        assert stored(catalog, fid) == []
    with_init = table.set_column(4, "init_object_id", pa.array(["init", "init"]))
    assert load_segments(catalog, fmp4, with_init) == 2


@pytest.mark.parametrize("becomes", [True, False])
def test_init_segments_cannot_change_while_segments_would_break_it(catalog: Catalog, becomes: bool) -> None:
    doc = flow(**FMP4) if not becomes else flow()
    catalog.put_flow(doc)
    fid = doc["id"]
    assert catalog.add_segments(fid, [seg(i, init=None if becomes else "init") for i in range(3)]).all_accepted
    changed = {**doc, "essence_parameters": {**doc["essence_parameters"], "init_segments": becomes}}
    with pytest.raises(ConflictError, match=f"holds 3 segments {'without' if becomes else 'with'} init_object_id"):
        catalog.put_flow(changed)
    assert bool(catalog.get_flow(fid)["essence_parameters"].get("init_segments")) is not becomes  # type: ignore[index]
    # other changes to the flow are fine; so is the change once the segments are gone
    catalog.put_flow({**doc, "label": "renamed"})
    catalog.delete_segments(fid)
    catalog.put_flow(changed)
    assert bool(catalog.get_flow(fid)["essence_parameters"].get("init_segments")) is becomes  # type: ignore[index]


def test_init_objects_record_the_flow_that_first_referenced_them(catalog: Catalog) -> None:
    a, b = put(catalog, **FMP4)["id"], put(catalog, **FMP4)["id"]
    init, media = catalog.allocate_objects(a, count=2, storage_id=str(uuid.uuid4()), storage_key=str)
    assert catalog.add_segments(a, [seg(0, media, init=init)]).all_accepted
    assert catalog.add_segments(b, [seg(0, init=init)]).all_accepted
    assert catalog.get_object(init)["first_referenced_by_flow"] == a  # type: ignore[index]
    assert catalog.row("objects", [Term("id", "==", init)])["first_referenced_by_flow"] == a  # type: ignore[index]
    # one registered before init objects recorded it: the flow of the first segment naming it
    catalog.engine.update("objects", [Term("id", "==", init)], {"first_referenced_by_flow": None})
    assert catalog.get_object(init)["first_referenced_by_flow"] == a  # type: ignore[index]


def test_live_ingest_of_fragmented_mp4_stays_batched_when_some_requests_are_refused(
    catalog: Catalog, caplog: pytest.LogCaptureFixture
) -> None:
    """Every segment of a live fragmented MP4 flow names the same init object: requests share it in every batch.
    It is registered already, so a refused request (here: repeats of a segment) leaves the batch's other
    requests batched (no judging one by one), and each gets its own answer."""
    fids = [put(catalog, **FMP4)["id"] for _ in range(4)]
    for fid in fids:
        assert catalog.add_segments(fid, [seg(0, init="init")]).all_accepted
    answers: list[tuple[bool, bool]] = []
    errors: list[BaseException] = []

    def writer(k: int) -> None:
        fid = fids[k % 4]
        try:
            for i in range(1 + k // 4, 40, 2):
                answers.append((catalog.add_segments(fid, [seg(i, init="init")]).all_accepted, True))
                again = catalog.add_segments(fid, [seg(i, init="init")])  # a repeat: refused as an overlap
                answers.append((again.all_accepted, False))
        except BaseException as exc:
            errors.append(exc)

    with caplog.at_level("DEBUG", logger="tams_analytics.catalog.registration"):
        threads = [threading.Thread(target=writer, args=(k,)) for k in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
    assert not errors, errors[:3]
    assert all(got == wanted for got, wanted in answers) and len(answers) == 2 * (4 * 20 + 4 * 19)
    assert not [r for r in caplog.records if "one by one" in r.getMessage()]
    for fid in fids:
        assert stored(catalog, fid) == sorted((f"[{i}:0_{i + 1}:0)", "init") for i in range(40))
