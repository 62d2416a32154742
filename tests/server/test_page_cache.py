"""Rendered segment pages answered again (``server.page_cache``): byte for byte what rendering them again gives,
and never once the flow's segments, its objects' instances or the URLs' reuse window say otherwise."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from server.app import create_app
from server.config import Settings
from server.page_cache import PageCache
from server.routes import segments as segments_route
from server.services import services_of
from server.stores import build_stores
from server.urls import MintedUrlLists
from tams_analytics.cache import CachingEngine
from tests.server.test_segments_list import make_flow, post
from tests.server.test_url_reuse import Clock


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def client(tmp_path: Path, clock: Clock) -> Iterator[TestClient]:
    """A server whose URL lists (and so its kept pages) run on ``clock``."""
    settings = Settings(data_dir=tmp_path / "data")
    stores = build_stores(settings)
    stores.url_lists = MintedUrlLists(clock=clock)
    with TestClient(create_app(settings, stores=stores), base_url="http://testserver") as c:
        yield c


def pages_of(client: TestClient) -> PageCache:
    pages = services_of(client.app).pages
    assert pages is not None, "on by default (with the read cache)"
    return pages


def page(client: TestClient, flow_id: str, **params: Any) -> tuple[bytes, dict[str, str]]:
    r = client.get(f"/flows/{flow_id}/segments", params=params)
    assert r.status_code == 200, r.text
    return r.content, {k: v for k, v in r.headers.items() if k.lower().startswith(("x-paging", "link"))}


def rendered_again(client: TestClient, flow_id: str, **params: Any) -> tuple[bytes, dict[str, str]]:
    """The page as rendering it now gives it (nothing kept)."""
    pages_of(client).clear()
    return page(client, flow_id, **params)


def allocated(client: TestClient, flow_id: str, n: int) -> list[str]:
    r = client.post(f"/flows/{flow_id}/storage", json={"limit": n})
    assert r.status_code == 201, r.text
    return [m["object_id"] for m in r.json()["media_objects"]]


def test_a_page_read_again_is_answered_from_the_page_cache_byte_for_byte(client: TestClient) -> None:
    fid = make_flow(client)
    ids = allocated(client, fid, 5)  # controlled instances: every segment carries a signed URL
    post(client, fid, [{"object_id": o, "timerange": f"[{i}:0_{i + 1}:0)"} for i, o in enumerate(ids)])
    pages = pages_of(client)
    first = page(client, fid, limit=2)
    hits = pages.hits
    assert page(client, fid, limit=2) == first
    assert pages.hits == hits + 1
    assert 'rel="next"' in first[1]["link"]
    head = client.head(f"/flows/{fid}/segments", params={"limit": 2})
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == str(len(first[0])) and head.headers["link"] == first[1]["link"]
    assert pages.hits == hits + 2, "HEAD is answered from the kept page too"
    assert rendered_again(client, fid, limit=2) == first


def test_a_page_kept_for_one_host_is_not_answered_to_another(client: TestClient) -> None:
    fid = make_flow(client)
    post(client, fid, [{"object_id": f"o{i}", "timerange": f"[{i}:0_{i + 1}:0)"} for i in range(3)])
    here = client.get(f"/flows/{fid}/segments", params={"limit": 1}).headers["link"]
    there = client.get(f"/flows/{fid}/segments", params={"limit": 1}, headers={"host": "elsewhere:8000"})
    assert "testserver" in here and "elsewhere:8000" in there.headers["link"]


def test_a_new_segment_shows_at_once(client: TestClient) -> None:
    fid = make_flow(client)
    post(client, fid, [{"object_id": f"o{i}", "timerange": f"[{i}:0_{i + 1}:0)"} for i in range(3)])
    newest = {"reverse_order": "true", "limit": 1}
    before = page(client, fid, **newest)
    assert page(client, fid, **newest) == before
    # a reader still in flight on the version the page was read from keeps it alive (the flow is loaded in the
    # background since its registration: a live edge's page does not load it)
    engine = services_of(client.app).catalog.engine
    assert isinstance(engine, CachingEngine) and engine.segments.wait_warmed(30)
    held = engine.kept_timeline(fid)
    assert held is not None
    post(client, fid, {"object_id": "o3", "timerange": "[3:0_4:0)"})
    after = page(client, fid, **newest)
    assert b'"o3"' in after[0] and after != before
    assert rendered_again(client, fid, **newest) == after


def test_deleted_segments_go_at_once(client: TestClient) -> None:
    fid = make_flow(client)
    post(client, fid, [{"object_id": f"o{i}", "timerange": f"[{i}:0_{i + 1}:0)"} for i in range(4)])
    assert b'"o1"' in page(client, fid)[0]
    page(client, fid)
    assert client.delete(f"/flows/{fid}/segments", params={"timerange": "[1:0_2:0)"}).status_code == 204
    assert b'"o1"' not in page(client, fid)[0]


def test_an_instance_added_or_removed_shows_at_once(client: TestClient) -> None:
    fid = make_flow(client)
    post(client, fid, [{"object_id": f"o{i}", "timerange": f"[{i}:0_{i + 1}:0)"} for i in range(3)])
    before = page(client, fid)
    assert page(client, fid) == before
    for label in ("cdn", "mirror"):
        r = client.post("/objects/o1/instances", json={"url": f"https://{label}.example/o1", "label": label})
        assert r.status_code == 201, r.text
        added = page(client, fid)
        assert f"https://{label}.example/o1".encode() in added[0]
        assert page(client, fid) == added
    assert client.delete("/objects/o1/instances", params={"label": "cdn"}).status_code == 204
    removed = page(client, fid)[0]
    assert b"https://cdn.example/o1" not in removed and b"https://mirror.example/o1" in removed


def test_urls_are_not_handed_out_past_their_reuse_window(client: TestClient, clock: Clock) -> None:
    fid = make_flow(client)
    ids = allocated(client, fid, 2)
    post(client, fid, [{"object_id": o, "timerange": f"[{i}:0_{i + 1}:0)"} for i, o in enumerate(ids)])
    pages = pages_of(client)
    first = page(client, fid)
    clock.now += 29.0  # the default lifetime is 600 s: a list is handed out again for 30 s
    hits = pages.hits
    assert page(client, fid) == first and pages.hits == hits + 1
    clock.now += 2.0
    misses = pages.misses
    page(client, fid)
    assert pages.misses == misses + 1, "31 s after the URLs were minted: rendered again, lists minted again"
    assert pages.hits == hits + 1


def test_a_write_committed_while_a_page_is_read_never_looks_current(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A page read before a write commits is kept with what it was read from: the write makes it stale at once."""
    fid = make_flow(client)
    post(client, fid, [{"object_id": f"o{i}", "timerange": f"[{i}:0_{i + 1}:0)"} for i in range(2)])
    page(client, fid, limit=1)  # the flow's timeline loaded: the page below is read from it, and kept
    catalog = services_of(client.app).catalog
    fetch = segments_route.SegmentsPage.fetch
    raced: list[bool] = []

    def fetch_then_write(self: Any, cat: Any) -> None:
        fetch(self, cat)
        if not raced:  # the rows are read: now a write commits, before the page is kept
            raced.append(True)
            assert catalog.add_segments(fid, [{"object_id": "late", "timerange": "[2:0_3:0)"}]).accepted == [0]

    monkeypatch.setattr(segments_route.SegmentsPage, "fetch", fetch_then_write)
    assert b'"late"' not in page(client, fid)[0], "read before the write"
    assert b'"late"' in page(client, fid)[0], "the page kept is stale: never answered again"


def test_pages_not_kept_without_the_read_cache_or_with_object_timeranges(tmp_path: Path) -> None:
    off = Settings(data_dir=tmp_path / "off", read_cache_rows=0)
    with TestClient(create_app(off)) as c:
        assert services_of(c.app).pages is None
    with TestClient(create_app(Settings(data_dir=tmp_path / "on"))) as c:
        fid = make_flow(c)
        post(c, fid, {"object_id": "o", "timerange": "[0:0_1:0)"})
        for _ in range(2):
            assert c.get(f"/flows/{fid}/segments", params={"include_object_timerange": "true"}).status_code == 200
        assert len(pages_of(c)) == 0


def test_kept_pages_stay_within_their_bytes(client: TestClient) -> None:
    fid = make_flow(client)
    post(client, fid, [{"object_id": f"o{i}", "timerange": f"[{i}:0_{i + 1}:0)"} for i in range(20)])
    pages = pages_of(client)
    pages.max_bytes = 8 * 1024
    for limit in range(1, 21):
        page(client, fid, limit=limit)
    assert 0 < len(pages) < 20 and pages.bytes <= pages.max_bytes
    newest = page(client, fid, limit=20)
    assert page(client, fid, limit=20) == newest


def test_the_metrics_count_pages_answered_again(client: TestClient) -> None:
    fid = make_flow(client)
    for _ in range(4):  # the first read loads the flow's timeline and reads the page again from it: kept at once
        page(client, fid)
    pages = pages_of(client)
    assert (pages.hits, pages.misses) == (3, 1)
    text = client.get("/metrics").text
    assert 'tams_read_cache_hits_total{cache="pages"} 3.0' in text
    assert 'tams_read_cache_misses_total{cache="pages"} 1.0' in text
    assert 'tams_read_cache_entries{cache="pages"} 1.0' in text


def test_random_writes_never_leave_a_stale_page(client: TestClient, clock: Clock) -> None:
    """Every page asked for after any write, instance change or passing time is what rendering it again gives."""
    rng = random.Random(7)
    flows = [make_flow(client) for _ in range(2)]
    ends = dict.fromkeys(flows, 0)
    made = 0
    objects: list[str] = []  # registered
    queries: list[dict[str, Any]] = [
        {},
        {"limit": 2},
        {"reverse_order": "true", "limit": 1},
        {"timerange": "[2:0_6:0)"},
        {"accept_get_urls": ""},
        {"verbose_storage": "true", "limit": 3},
    ]
    for _ in range(60):
        fid = rng.choice(flows)
        action = rng.choice(["append", "allocate", "instance", "drop", "delete", "time", "read"])
        if action in ("append", "allocate"):
            oid = allocated(client, fid, 1)[0] if action == "allocate" else f"u{made}"
            made += 1
            post(client, fid, {"object_id": oid, "timerange": f"[{ends[fid]}:0_{ends[fid] + 1}:0)"})
            objects.append(oid)
            ends[fid] += 1
        elif action == "instance" and objects:
            oid = rng.choice(objects)
            instance = {"url": f"https://x.example/{oid}/{made}", "label": f"l{made}"}
            r = client.post(f"/objects/{oid}/instances", json=instance)
            assert r.status_code == 201, r.text
        elif action == "drop" and objects:
            oid = rng.choice(objects)
            urls = client.get(f"/objects/{oid}").json().get("get_urls", [])
            added = [u["label"] for u in urls if u.get("label", "").startswith("l")]  # uncontrolled, added above
            if len(urls) > 1 and added:  # an object keeps its last instance
                r = client.delete(f"/objects/{oid}/instances", params={"label": added[0]})
                assert r.status_code == 204, r.text
        elif action == "delete" and ends[fid]:
            lo = rng.randrange(ends[fid])
            client.delete(f"/flows/{fid}/segments", params={"timerange": f"[{lo}:0_{lo + 1}:0)"})
        elif action == "time":
            clock.now += rng.choice([1.0, 15.0, 31.0])
        for q in rng.sample(queries, 3):
            for f in flows:
                answered = page(client, f, **q)
                assert page(client, f, **q) == answered
                assert rendered_again(client, f, **q) == answered, (action, q)
    assert pages_of(client).hits > 100
