"""A stateful property test: random sequences of writes through the API against a model of the store.

Hypothesis drives flow PUT/DELETE, segment POST (single and bulk) and DELETE, tag and collection edits
on a small pool of flow and source ids, so operations collide on the same resources. The model predicts
every status code and every refused segment; after every step the invariants hold: no orphans, no
overlaps (SQL on the DuckDB file), implicit sources exist exactly while they have flows, paging with a
small limit and ``Link`` returns every segment exactly once in order, and the stored segments, tags and
collections are the model's.
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from server.app import create_app
from server.config import Settings
from server.services import services_of
from tams_analytics.timerange import TimeRange
from tests.reliability.conftest import store_problems
from tests.server.conftest import video_flow
from tests.spec import assert_valid, assert_valid_list

pytestmark = pytest.mark.slow

FLOW_IDS = [str(uuid.UUID(int=0xF10 + i, version=4)) for i in range(3)]
SOURCE_IDS = [str(uuid.UUID(int=0x50C + i, version=4)) for i in range(3)]
TAG_NAMES = ["genre", "owner"]
#: listings page with this limit, so every check crosses several pages
PAGE = 2

flows = st.sampled_from(FLOW_IDS)
tag_values = st.one_of(st.sampled_from(["news", "sport"]), st.lists(st.sampled_from(["a", "b", "c"]), max_size=3))
tags = st.dictionaries(st.sampled_from(TAG_NAMES), tag_values, max_size=2)
collections = st.lists(st.sampled_from(FLOW_IDS), max_size=2, unique=True)


@st.composite
def timeranges(draw: st.DrawFn) -> str:
    """Small ranges on a 0..12 s grid, with every clusivity, some instantaneous: collisions are frequent."""
    start = draw(st.integers(0, 12))
    length = draw(st.integers(0, 3))
    if length == 0:
        return f"[{start}:0]"
    open_start, close_end = draw(st.booleans()), draw(st.booleans())
    return f"{'(' if open_start else '['}{start}:0_{start + length}:0{']' if close_end else ')'}"


@dataclass
class FlowModel:
    source_id: str
    tags: dict[str, Any] = field(default_factory=dict)
    collection: list[str] = field(default_factory=list)
    #: object_id -> timerange of each stored segment
    segments: dict[str, TimeRange] = field(default_factory=dict)


class StoreMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.tmp = Path(tempfile.mkdtemp(prefix="tams-state-"))
        app = create_app(Settings(data_dir=self.tmp / "data"), workers=False)
        self.client = TestClient(app)
        self.client.__enter__()
        self.engine = services_of(app).catalog.engine
        self.flows: dict[str, FlowModel] = {}
        self.counter = 0

    def teardown(self) -> None:
        self.client.__exit__(None, None, None)
        shutil.rmtree(self.tmp, ignore_errors=True)

    def expect(self, r: httpx.Response, status: int) -> None:
        assert r.status_code == status, f"{r.request.method} {r.request.url}: {r.status_code} {r.text}"
        if status >= 400:
            assert_valid(r.json(), "error.json")

    @initialize()
    def three_flows(self) -> None:
        """Start with every flow of the pool (two sharing a source) and a collection, so that the few
        steps a CI budget allows already collide on them."""
        self.put_flow(FLOW_IDS[0], SOURCE_IDS[0], {}, [])
        self.put_flow(FLOW_IDS[1], SOURCE_IDS[1], {"genre": "news"}, [])
        self.put_flow(FLOW_IDS[2], SOURCE_IDS[1], {}, [FLOW_IDS[0], FLOW_IDS[1]])

    # -- flows --------------------------------------------------------------------------------------------
    @rule(flow_id=flows, source_id=st.sampled_from(SOURCE_IDS), tags=tags, members=collections)
    def put_flow(self, flow_id: str, source_id: str, tags: dict[str, Any], members: list[str]) -> None:
        body = video_flow(flow_id, source_id, tags=tags, flow_collection=[{"id": m} for m in members])
        r = self.client.put(f"/flows/{flow_id}", json=body)
        if flow_id in members or len(set(members)) != len(members) or not set(members) <= set(self.flows):
            self.expect(r, 400)
            return
        self.expect(r, 204 if flow_id in self.flows else 201)
        if r.status_code == 201:
            assert_valid(r.json(), "flow-get.json")
        old = self.flows.get(flow_id)
        self.flows[flow_id] = FlowModel(source_id, tags, members, old.segments if old else {})

    @rule(flow_id=flows)
    def delete_flow(self, flow_id: str) -> None:
        r = self.client.delete(f"/flows/{flow_id}")
        self.expect(r, 204 if flow_id in self.flows else 404)
        if self.flows.pop(flow_id, None) is not None:
            for other in self.flows.values():
                other.collection = [m for m in other.collection if m != flow_id]

    # -- segments -------------------------------------------------------------------------------------------
    @rule(flow_id=flows, ranges=st.lists(timeranges(), min_size=1, max_size=5), bulk=st.booleans())
    def post_segments(self, flow_id: str, ranges: list[str], bulk: bool) -> None:
        if not bulk:
            ranges = ranges[:1]
        items = []
        for tr in ranges:
            self.counter += 1
            items.append({"object_id": f"obj-{self.counter}", "timerange": tr})
        r = self.client.post(f"/flows/{flow_id}/segments", json=items if bulk else items[0])
        model = self.flows.get(flow_id)
        if model is None:
            self.expect(r, 404)
            return
        taken = list(model.segments.values())
        refused = set()
        for item in items:  # earlier items win; refused ones block nothing
            tr = TimeRange.from_str(item["timerange"])
            if any(tr.overlaps(t) for t in taken):
                refused.add(item["object_id"])
            else:
                taken.append(tr)
                model.segments[item["object_id"]] = tr
        if not refused:
            self.expect(r, 201)
            assert r.content == b""
        elif not bulk:
            self.expect(r, 400)
        else:
            self.expect(r, 200)
            assert_valid(r.json(), "flow-segment-bulk-failure.json")
            assert {f["object_id"] for f in r.json()["failed_segments"]} == refused

    @rule(flow_id=flows, start=st.integers(0, 14), length=st.integers(1, 8), everything=st.booleans())
    def delete_segments(self, flow_id: str, start: int, length: int, everything: bool) -> None:
        tr = TimeRange.eternity() if everything else TimeRange.from_str(f"[{start}:0_{start + length}:0)")
        r = self.client.delete(f"/flows/{flow_id}/segments", params={"timerange": str(tr)})
        model = self.flows.get(flow_id)
        self.expect(r, 204 if model is not None else 404)
        if model is not None:  # covered-only: partial overlaps stay whole
            model.segments = {oid: t for oid, t in model.segments.items() if not tr.covers(t)}

    # -- tags and collections ----------------------------------------------------------------------------
    @rule(flow_id=flows, name=st.sampled_from(TAG_NAMES), value=tag_values)
    def put_tag(self, flow_id: str, name: str, value: Any) -> None:
        r = self.client.put(f"/flows/{flow_id}/tags/{name}", json=value)
        self.expect(r, 204 if flow_id in self.flows else 404)
        if flow_id in self.flows:
            self.flows[flow_id].tags[name] = value

    @rule(flow_id=flows, name=st.sampled_from(TAG_NAMES))
    def delete_tag(self, flow_id: str, name: str) -> None:
        r = self.client.delete(f"/flows/{flow_id}/tags/{name}")
        model = self.flows.get(flow_id)
        self.expect(r, 204 if model is not None and name in model.tags else 404)
        if model is not None:
            model.tags.pop(name, None)

    @rule(flow_id=flows, members=collections)
    def put_collection(self, flow_id: str, members: list[str]) -> None:
        r = self.client.put(f"/flows/{flow_id}/flow_collection", json=[{"id": m} for m in members])
        if flow_id not in self.flows:
            self.expect(r, 404)
        elif flow_id in members or len(set(members)) != len(members) or not set(members) <= set(self.flows):
            self.expect(r, 400)
        else:
            self.expect(r, 204)
            self.flows[flow_id].collection = members

    @rule(flow_id=flows)
    def delete_collection(self, flow_id: str) -> None:
        r = self.client.delete(f"/flows/{flow_id}/flow_collection")
        self.expect(r, 204 if flow_id in self.flows else 404)
        if flow_id in self.flows:
            self.flows[flow_id].collection = []

    # -- invariants ---------------------------------------------------------------------------------------
    @invariant()
    def no_orphans_no_overlaps(self) -> None:
        assert store_problems(lambda sql: [tuple(r.values()) for r in self.engine.sql(sql).to_pylist()]) == {}

    @invariant()
    def sources_exist_exactly_while_they_have_flows(self) -> None:
        listed = self.walk("/sources")
        assert_valid_list(listed, "source.json")
        assert sorted(s["id"] for s in listed) == sorted({f.source_id for f in self.flows.values()})

    @invariant()
    def flows_tags_and_collections_are_the_models(self) -> None:
        listed = self.walk("/flows")
        assert_valid_list(listed, "flow-get.json")
        assert {f["id"]: f["source_id"] for f in listed} == {k: v.source_id for k, v in self.flows.items()}
        for doc in listed:
            model = self.flows[doc["id"]]
            assert doc["tags"] == model.tags
            assert [m["id"] for m in doc.get("flow_collection", [])] == model.collection
            collectors = sorted(k for k, v in self.flows.items() if doc["id"] in v.collection)
            assert sorted(doc.get("collected_by", [])) == collectors

    @invariant()
    def paging_returns_each_stored_segment_once_in_order(self) -> None:
        for flow_id in FLOW_IDS:
            listed = self.walk(f"/flows/{flow_id}/segments")
            assert_valid_list(listed, "flow-segment.json")
            model = self.flows.get(flow_id)
            expected = sorted((model.segments if model else {}).items(), key=lambda kv: kv[1].storage_bounds())
            assert [(s["object_id"], TimeRange.from_str(s["timerange"])) for s in listed] == expected

    def walk(self, path: str) -> list[dict[str, Any]]:
        """Every item of a listing, ``PAGE`` at a time, following ``Link`` (each key seen once)."""
        out: list[dict[str, Any]] = []
        url: str | None = f"{path}?limit={PAGE}"
        keys: set[str] = set()
        while url is not None:
            r = self.client.get(url)
            assert r.status_code == 200, r.text
            page = r.json()
            assert len(page) <= PAGE
            out.extend(page)
            key = r.headers.get("x-paging-nextkey")
            assert key not in keys, "paging went round in a circle"
            if key is not None:
                keys.add(key)
            link = r.headers.get("link")
            assert (link is None) == (key is None)
            url = link[link.index("<") + 1 : link.index(">")] if link else None
        return out


StoreMachine.TestCase.settings = settings(
    max_examples=12,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
test_store_machine = StoreMachine.TestCase
