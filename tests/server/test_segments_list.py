"""GET/HEAD /flows/{id}/segments: filters, clusivity, paging through Link headers, get_urls options."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest
from fastapi.testclient import TestClient

from server.app import create_app
from server.config import Settings
from server.routes.media import make_router
from server.services import services_of
from server.stores import Stores
from tams_analytics.storage.base import StorageBackendInfo
from tams_analytics.storage.local import LocalObjectStore
from tests.server.conftest import new_id, video_flow
from tests.spec import assert_valid, assert_valid_list

NS = 1_000_000_000


def make_flow(client: TestClient, *, init_segments: bool = False) -> str:
    """A video flow; with ``init_segments``, of fragmented MP4 (its segments name init objects)."""
    body = video_flow()
    if init_segments:
        body["container"] = "video/mp4"
        body["essence_parameters"]["init_segments"] = True
    assert client.put(f"/flows/{body['id']}", json=body).status_code == 201
    return body["id"]


def post(client: TestClient, flow_id: str, body: Any) -> None:
    r = client.post(f"/flows/{flow_id}/segments", json=body)
    assert r.status_code == 201, r.text


def listing(client: TestClient, flow_id: str, **params: Any) -> list[dict[str, Any]]:
    r = client.get(f"/flows/{flow_id}/segments", params=params)
    assert r.status_code == 200, r.text
    assert_valid_list(r.json(), "flow-segment.json")
    return r.json()


def trs(items: list[dict[str, Any]]) -> list[str]:
    return [s["timerange"] for s in items]


def bad(r: Any, *words: str) -> None:
    assert r.status_code == 400, r.text
    assert_valid(r.json(), "error.json")
    for w in words:
        assert w in r.json()["summary"]


# -- basics -----------------------------------------------------------------------------------------------
def test_unknown_flow_has_no_segments_and_invalid_id_is_404(client: TestClient) -> None:
    r = client.get(f"/flows/{new_id()}/segments")
    assert r.status_code == 200 and r.json() == []
    assert r.headers["X-Paging-Count"] == "0" and "Link" not in r.headers
    r = client.get("/flows/not-a-uuid/segments")
    assert r.status_code == 404
    assert_valid(r.json(), "error.json")
    assert client.get(f"/flows/{str(uuid.uuid4()).upper()}/segments").status_code == 404


def test_head_gives_the_get_headers_without_a_body(client: TestClient) -> None:
    fid = make_flow(client)
    post(client, fid, [{"object_id": f"o{i}", "timerange": f"[{i}:0_{i + 1}:0)"} for i in range(3)])
    g = client.get(f"/flows/{fid}/segments", params={"limit": 2})
    h = client.head(f"/flows/{fid}/segments", params={"limit": 2})
    assert h.status_code == 200 and h.content == b""
    for name in ("X-Paging-Limit", "X-Paging-Count", "X-Paging-NextKey", "X-Paging-Timerange", "Link"):
        assert h.headers[name] == g.headers[name]
    assert client.head("/flows/nope/segments").status_code == 404
    assert client.head(f"/flows/{fid}/segments", params={"timerange": "bad"}).status_code == 400


def test_wire_fields_round_trip(client: TestClient) -> None:
    fid = make_flow(client, init_segments=True)
    seg = {
        "object_id": "o",
        "timerange": "[10:0_12:0)",
        "ts_offset": "-0:500000000",
        "last_duration": "0:20000000",
        "sample_offset": 3,
        "sample_count": 50,
        "key_frame_count": 1,
        "init_object_id": "init",
    }
    post(client, fid, seg)
    (got,) = listing(client, fid)
    expected = {k: v for k, v in seg.items() if k != "init_object_id"}
    assert {k: got[k] for k in expected} == expected
    assert got["init_object"]["object_id"] == "init"
    assert "object_timerange" not in got


def test_include_object_timerange_gives_the_objects_timerange(client: TestClient) -> None:
    a, b = make_flow(client), make_flow(client)
    post(client, a, {"object_id": "o", "timerange": "[0:0_10:0)"})
    post(client, b, {"object_id": "o", "timerange": "[102:0_104:0)", "ts_offset": "100:0"})
    (got,) = listing(client, b, include_object_timerange="true")
    assert got["object_timerange"] == "[0:0_10:0)"  # the whole object, not just the part used
    assert "object_timerange" not in listing(client, b, include_object_timerange="false")[0]


# -- filters ----------------------------------------------------------------------------------------------
@pytest.fixture
def three(client: TestClient) -> str:
    fid = make_flow(client)
    post(
        client,
        fid,
        [
            {"object_id": "a", "timerange": "[0:0_1:0)"},
            {"object_id": "b/with/slashes", "timerange": "[1:0_2:0)"},
            {"object_id": "c", "timerange": "[2:0]"},
            {"object_id": "d", "timerange": "(2:0_3:0)"},
        ],
    )
    return fid


@pytest.mark.parametrize(
    "query, expected",
    [
        ("[1:0_2:0)", ["[1:0_2:0)"]),
        ("[0:0_1:0]", ["[0:0_1:0)", "[1:0_2:0)"]),
        ("(1:0_2:0]", ["[1:0_2:0)", "[2:0]"]),
        ("[2:0]", ["[2:0]"]),
        ("(2:0_2:500000000)", ["(2:0_3:0)"]),
        ("[1:999999999_2:0)", ["[1:0_2:0)"]),
        ("_", ["[0:0_1:0)", "[1:0_2:0)", "[2:0]", "(2:0_3:0)"]),
        ("[3:0_", []),
        ("()", []),
    ],
)
def test_timerange_filter_is_overlap_with_exact_clusivity(
    client: TestClient, three: str, query: str, expected: list[str]
) -> None:
    assert trs(listing(client, three, timerange=query)) == expected


def test_object_id_filter_and_reverse_order(client: TestClient, three: str) -> None:
    assert trs(listing(client, three, object_id="b/with/slashes")) == ["[1:0_2:0)"]
    assert listing(client, three, object_id="zzz") == []
    r = client.get(f"/flows/{three}/segments", params={"reverse_order": "true"})
    assert trs(r.json()) == ["(2:0_3:0)", "[2:0]", "[1:0_2:0)", "[0:0_1:0)"]
    assert r.headers["X-Paging-Reverse-Order"] == "true"


@pytest.mark.parametrize(
    "params, word",
    [
        ({"timerange": "[0:0_1:00)"}, "timerange"),
        ({"limit": "0"}, "limit"),
        ({"limit": "many"}, "limit"),
        ({"reverse_order": "maybe"}, "reverse_order"),
        ({"page": "!!"}, "page"),
        ({"page": "ImEi"}, "page"),  # a valid key of the wrong kind ("a")
        ({"verbose_storage": "yes please"}, "verbose_storage"),
        ({"include_object_timerange": "2"}, "include_object_timerange"),
        ({"accept_storage_ids": "not-a-uuid"}, "accept_storage_ids"),
        ({"accept_get_urls": "a,,b"}, "accept_get_urls"),
        ({"presigned": "often"}, "presigned"),
        ({"storage_backend_tag_exists.tier": "perhaps"}, "storage_backend_tag_exists.tier"),
    ],
)
def test_bad_query_values_are_400(client: TestClient, three: str, params: dict[str, str], word: str) -> None:
    bad(client.get(f"/flows/{three}/segments", params=params), word)


# -- paging -----------------------------------------------------------------------------------------------
def _walk(client: TestClient, url: str) -> tuple[list[list[dict[str, Any]]], list[Any]]:
    pages, responses = [], []
    while url:
        r = client.get(url)
        assert r.status_code == 200, r.text
        assert_valid_list(r.json(), "flow-segment.json")
        pages.append(r.json())
        responses.append(r)
        link = r.headers.get("Link")
        if link is None:
            assert "X-Paging-NextKey" not in r.headers
            break
        m = re.fullmatch(r'<([^>]+)>; rel="next"', link)
        assert m, link
        url = m.group(1)
        assert url.startswith("http://testserver/flows/")
        assert "page=" + r.headers["X-Paging-NextKey"] in unquote(url)
    return pages, responses


@pytest.mark.parametrize("reverse", [False, True])
def test_paging_walks_every_segment_once_in_time_order(client: TestClient, reverse: bool) -> None:
    fid = make_flow(client)
    n = 250
    post(client, fid, [{"object_id": f"o{i}", "timerange": f"[{i}:0_{i + 1}:0)"} for i in range(n)])
    url = f"/flows/{fid}/segments?limit=100&reverse_order={'true' if reverse else 'false'}"
    pages, responses = _walk(client, url)
    assert [len(p) for p in pages] == [100, 100, 50]
    seen = [s["object_id"] for p in pages for s in p]
    expected = [f"o{i}" for i in range(n)]
    assert seen == (expected[::-1] if reverse else expected)
    for page, r in zip(pages, responses, strict=True):
        assert r.headers["X-Paging-Limit"] == "100"
        assert r.headers["X-Paging-Count"] == str(len(page))
        assert r.headers["X-Paging-Reverse-Order"] == ("true" if reverse else "false")
        starts = sorted(int(s["object_id"][1:]) for s in page)
        assert r.headers["X-Paging-Timerange"] == f"[{starts[0]}:0_{starts[-1] + 1}:0)"


def test_paging_keeps_the_other_filters_and_clamps_the_limit(client: TestClient) -> None:
    fid = make_flow(client)
    post(client, fid, [{"object_id": f"o{i}", "timerange": f"[{i}:0_{i + 1}:0)"} for i in range(30)])
    pages, _ = _walk(client, f"/flows/{fid}/segments?limit=4&timerange=[10:0_20:0)&accept_get_urls=")
    assert [s["object_id"] for p in pages for s in p] == [f"o{i}" for i in range(10, 20)]
    assert all("get_urls" not in s for p in pages for s in p)
    r = client.get(f"/flows/{fid}/segments", params={"limit": 10**6})
    assert r.headers["X-Paging-Limit"] == "1000" and len(r.json()) == 30


def test_one_instance_lookup_per_page_then_none_while_cached(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    fid = make_flow(client, init_segments=True)
    urls = [{"url": "https://cdn.example/o", "label": "cdn"}]
    post(
        client,
        fid,
        [
            {"object_id": f"o{i}", "timerange": f"[{i}:0_{i + 1}:0)", "init_object_id": "init", "get_urls": urls}
            for i in range(50)
        ],
    )
    cache = services_of(client.app).catalog.engine
    assert cache.segments.wait_warmed(30)  # (the load the registration's check asked for, in the background)
    engine = cache.inner  # the store beneath the cache
    reads: list[tuple[str, Any]] = []
    real = engine.query
    # what a listing reads (background workers poll their own tables, e.g. webhook_events, at any moment)
    listed = {"flows", "segments", "objects", "object_instances", "delete_requests"}
    monkeypatch.setattr(
        engine,
        "query",
        lambda name, where=(), **kw: (name in listed and reads.append((name, where))) or real(name, where, **kw),
    )
    assert len(listing(client, fid)) == 50
    assert [where for name, where in reads if name == "object_instances"] == []  # new objects: known from their write
    for oid in [f"o{i}" for i in range(50)] + ["init"]:  # as after a restart: the cache does not know them
        cache.instances.discard(oid)
    reads.clear()
    assert len(listing(client, fid)) == 50
    instance_reads = [where for name, where in reads if name == "object_instances"]
    assert len(instance_reads) == 1  # the 50 media objects, in one query (the init object never had an instance)
    assert len(instance_reads[0][0].value) == 50
    reads.clear()
    assert len(listing(client, fid)) == 50
    assert reads == []  # the flow's timeline and the instances come from the read cache
    listing(client, fid, accept_get_urls="")
    assert reads == []


# -- get_urls options -------------------------------------------------------------------------------------
HOT = "0d5f8b3e-1a2b-4c3d-8e4f-5a6b7c8d9e0f"
COLD = "1e6a9c4f-2b3c-4d4e-9f5a-6b7c8d9e0f1a"


@pytest.fixture
def tiered(tmp_path: Path) -> Iterator[TestClient]:
    """Two local backends: "hot" (default, tags tier=hot) and "cold" (tier=cold, region=eu)."""
    settings = Settings(data_dir=tmp_path / "data")
    stores = [
        LocalObjectStore(
            StorageBackendInfo(HOT, "hot", "p", "local files", default_storage=True, tags={"tier": "hot"}),
            root=tmp_path / "hot",
            base_url="",
            secret=b"k1",
        ),
        LocalObjectStore(
            StorageBackendInfo(COLD, "cold", "p", "local files", region="eu", tags={"tier": ["cold", "slow"]}),
            root=tmp_path / "cold",
            base_url="",
            secret=b"k2",
            route_prefix="/_media_cold",
        ),
    ]
    app = create_app(settings, stores=Stores(stores))
    # create_app serves only its first local store at /_media; serve the second one too
    app.include_router(make_router(lambda: stores[1], route_prefix="/_media_cold"))
    with TestClient(app) as c:
        yield c


@pytest.fixture
def replicated(tiered: TestClient) -> tuple[TestClient, str]:
    """A flow with one segment whose object has a hot copy, a cold copy and an uncontrolled URL."""
    fid = make_flow(tiered)
    (media,) = tiered.post(f"/flows/{fid}/storage", json={"limit": 1}).json()["media_objects"]
    oid, put = media["object_id"], media["put_url"]
    assert tiered.put(put["url"], content=b"media", headers=put.get("headers", {})).status_code == 200
    seg = {"object_id": oid, "timerange": "[0:0_1:0)", "get_urls": [{"url": "http://mirror/o", "label": "mirror"}]}
    post(tiered, fid, seg)
    assert tiered.post(f"/objects/{oid}/instances", json={"storage_id": COLD}).status_code == 201
    return tiered, fid


def _urls(client: TestClient, fid: str, **params: Any) -> list[dict[str, Any]]:
    (seg,) = listing(client, fid, **params)
    return seg.get("get_urls", [])


def _labels(urls: list[dict[str, Any]]) -> list[str]:
    return [u["label"] for u in urls]


@pytest.mark.parametrize(
    "params, labels",
    [
        ({}, ["hot", "mirror", "cold"]),
        ({"accept_get_urls": "hot,mirror"}, ["hot", "mirror"]),
        ({"accept_get_urls": "mirror"}, ["mirror"]),
        ({"accept_storage_ids": ""}, ["hot", "mirror", "cold"]),  # empty: no filtering
        ({"accept_storage_ids": COLD}, ["cold"]),
        ({"accept_storage_ids": f"{HOT},{COLD}", "accept_get_urls": "cold,mirror"}, ["cold"]),
        ({"accept_storage_ids": str(uuid.uuid4())}, []),
        ({"presigned": "true"}, ["hot", "cold"]),
        ({"presigned": "false"}, ["mirror"]),
        ({"storage_backend_tag.tier": "cold"}, ["cold"]),
        ({"storage_backend_tag.tier": "slow,hot"}, ["hot", "cold"]),
        ({"storage_backend_tag_exists.tier": "true"}, ["hot", "cold"]),
        ({"storage_backend_tag_exists.tier": "false"}, []),
        ({"storage_backend_tag_exists.other": "false"}, ["hot", "cold"]),
    ],
)
def test_get_urls_filters(replicated: tuple[TestClient, str], params: dict[str, str], labels: list[str]) -> None:
    client, fid = replicated
    assert _labels(_urls(client, fid, **params)) == labels


def test_empty_accept_get_urls_means_no_urls(replicated: tuple[TestClient, str]) -> None:
    client, fid = replicated
    (seg,) = listing(client, fid, accept_get_urls="")
    assert "get_urls" not in seg


def test_verbose_storage_keys(replicated: tuple[TestClient, str]) -> None:
    client, fid = replicated
    plain = _urls(client, fid)
    assert [set(u) for u in plain] == [{"url", "presigned", "label"}, {"url", "label"}, {"url", "presigned", "label"}]
    verbose = _urls(client, fid, verbose_storage="true")
    hot, mirror, cold = verbose
    assert hot["controlled"] is True and hot["storage_id"] == HOT and hot["presigned"] is True
    assert hot["tags"] == {"tier": "hot"} and hot["store_type"] == "http_object_store"
    assert cold["region"] == "eu" and cold["storage_id"] == COLD
    assert "id" not in hot and "default_storage" not in hot
    assert mirror == {"url": "http://mirror/o", "label": "mirror", "controlled": False}


def test_controlled_urls_are_minted_per_read_and_fetch_the_bytes(replicated: tuple[TestClient, str]) -> None:
    client, fid = replicated
    for label in ("hot", "cold"):
        (url,) = _urls(client, fid, accept_get_urls=label)
        r = client.get(url["url"])
        assert r.status_code == 200 and r.content == b"media"
    catalog = services_of(client.app).catalog
    stored = catalog.rows("object_instances").to_pylist()
    assert all(r["url"] is None for r in stored if r["controlled"])  # only keys are stored


def test_init_object_urls_follow_the_same_options(client: TestClient) -> None:
    fid = make_flow(client, init_segments=True)
    init = client.post(f"/flows/{fid}/storage", json={"content_type": "video/mp4"}).json()["media_objects"]
    init_id = init[0]["object_id"]
    post(client, fid, {"object_id": "m", "timerange": "[0:0_1:0)", "init_object_id": init_id})
    (seg,) = listing(client, fid)
    assert seg["init_object"]["object_id"] == init_id
    assert [u["label"] for u in seg["init_object"]["get_urls"]] == ["default"]
    (seg,) = listing(client, fid, accept_get_urls="")
    assert seg["init_object"] == {"object_id": init_id}
