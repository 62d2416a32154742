"""GET/HEAD /flows: every filter, ADR 0052 sorting, keyset paging headers; flow timeranges."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from server.services import services_of
from tests.server.conftest import new_id, video_flow
from tests.server.test_flows_put import PROFILE, PROFILE_ID, assert_error, audio_flow, put
from tests.spec import assert_valid, assert_valid_list


def ids(r: Any) -> list[str]:
    assert r.status_code == 200, r.text
    assert_valid_list(r.json(), "flow-get.json")
    return [f["id"] for f in r.json()]


def make_flows(client: TestClient, n: int, **extra: Any) -> list[str]:
    """``n`` video flows created one after the other (oldest first)."""
    out = []
    for _ in range(n):
        f = video_flow(**extra)
        assert put(client, f).status_code == 201
        out.append(f["id"])
    return out


def walk(client: TestClient, url: str) -> tuple[list[str], list[Any]]:
    """Follow ``Link: <...>; rel="next"`` from ``url`` to the last page; every item and every response."""
    seen: list[str] = []
    pages = []
    next_url: str | None = url
    while next_url is not None:
        r = client.get(next_url)
        pages.append(r)
        seen += ids(r)
        link = r.headers.get("link")
        if link is None:
            assert "x-paging-nextkey" not in r.headers
            next_url = None
            continue
        target, rel = link.split(";", 1)
        assert rel.strip() == 'rel="next"'
        next_url = target.strip()[1:-1]
        assert next_url.startswith("http://testserver/flows?")
        assert f"page={r.headers['x-paging-nextkey']}" in next_url
        assert len(pages) < 20
    return seen, pages


# -- paging -----------------------------------------------------------------------------------------------
def test_paging_walks_every_flow_once_newest_first(client: TestClient) -> None:
    made = make_flows(client, 25)
    put(client, audio_flow())  # filtered out below: the filter must survive in the Link URL
    seen, pages = walk(client, "/flows?limit=10&format=urn:x-nmos:format:video")
    assert seen == list(reversed(made))
    assert [p.headers["x-paging-count"] for p in pages] == ["10", "10", "5"]
    for p in pages:
        assert p.headers["x-paging-limit"] == "10"
        assert p.headers["x-paging-reverse-order"] == "false"
    assert "format=urn" in pages[0].headers["link"] and "limit=10" in pages[0].headers["link"]

    rev, rpages = walk(client, "/flows?limit=10&reverse_order=true&format=urn:x-nmos:format:video")
    assert rev == made
    assert all(p.headers["x-paging-reverse-order"] == "true" for p in rpages)


def test_head_listing_has_the_paging_headers_and_no_body(client: TestClient) -> None:
    make_flows(client, 3)
    get = client.get("/flows?limit=2")
    head = client.head("/flows?limit=2")
    assert head.status_code == 200 and head.content == b""
    for h in ("x-paging-limit", "x-paging-count", "x-paging-reverse-order", "x-paging-nextkey", "link"):
        assert head.headers[h] == get.headers[h]


def test_limit_is_clamped_to_the_maximum(client: TestClient) -> None:
    make_flows(client, 2)
    r = client.get("/flows?limit=100000")
    assert r.headers["x-paging-limit"] == "1000"
    assert r.headers["x-paging-count"] == "2"
    assert "link" not in r.headers


def test_sort_by_label_alphabetical_then_unlabelled_by_id(client: TestClient) -> None:
    labelled = {}
    for label in ("delta", "alpha", "charlie"):
        f = video_flow(label=label)
        put(client, f)
        labelled[label] = f["id"]
    unlabelled = sorted(make_flows(client, 3))
    expected = [labelled["alpha"], labelled["charlie"], labelled["delta"], *unlabelled]
    assert ids(client.get("/flows?sort_by=label")) == expected
    assert ids(client.get("/flows?sort_by=label&reverse_order=true")) == list(reversed(expected))
    seen, _ = walk(client, "/flows?sort_by=label&limit=2")
    assert seen == expected


def test_sort_by_metadata_updated_newest_first(client: TestClient) -> None:
    a, b, c = make_flows(client, 3)
    assert client.put(f"/flows/{a}/label", json="touched").status_code == 204
    assert ids(client.get("/flows?sort_by=metadata_updated")) == [a, c, b]
    assert ids(client.get("/flows?sort_by=created")) == [c, b, a]
    assert ids(client.get("/flows")) == [c, b, a]


# -- filters ----------------------------------------------------------------------------------------------
@pytest.fixture
def catalogue(client: TestClient) -> dict[str, dict[str, Any]]:
    """A small, varied set of flows to filter."""
    client.post(f"/service/profiles/{PROFILE_ID}", json=PROFILE)
    sid = new_id()
    flows = {
        "hd": video_flow(source_id=sid, label="HD", status="ingesting", tags={"genre": "news"}),
        "sd": video_flow(
            codec="video/mpeg2",
            label="SD",
            essence_parameters={"frame_width": 720, "frame_height": 576, "frame_rate": {"numerator": 25}},
            tags={"genre": ["sport", "live"], "team": "blue"},
            status="closed_complete",
        ),
        "init": video_flow(
            essence_parameters={
                "frame_width": 1280,
                "frame_height": 720,
                "frame_rate": {"numerator": 50},
                "init_segments": True,
            },
            tags={"genre": ""},
        ),
        "audio": audio_flow(source_id=new_id(), label="HD", tags={"team": "red"}),
        "profiled": {"id": new_id(), "source_id": new_id(), "profile_id": PROFILE_ID},
    }
    for f in flows.values():
        assert put(client, f).status_code == 201
    return flows


def by_name(catalogue: dict[str, dict[str, Any]], *names: str) -> set[str]:
    return {catalogue[n]["id"] for n in names}


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("format=urn:x-nmos:format:audio", ["audio"]),
        ("format=urn:x-nmos:format:video", ["hd", "sd", "init", "profiled"]),
        ("format=urn:x-nmos:format:data", []),
        ("codec=video/mpeg2", ["sd"]),
        ("codec=video/h264", ["hd", "init", "profiled"]),
        ("label=HD", ["hd", "audio"]),
        ("label=hd", []),
        ("status=ingesting", ["hd"]),
        ("status=awaiting_content", []),
        ("frame_width=720", ["sd"]),
        ("frame_height=1080", ["hd", "profiled"]),
        ("frame_width=1920&frame_height=576", []),
        ("init_segments=true", ["init"]),
        ("init_segments=false", ["hd", "sd", "audio", "profiled"]),
        ("tag.genre=news", ["hd"]),
        ("tag.genre=live", ["sd"]),
        ("tag.genre=news,sport", ["hd", "sd"]),
        ("tag.genre=spo", []),
        ("tag.genre=", ["init"]),
        ("tag.genre=news&tag.team=blue", []),
        ("tag.team=blue,red", ["sd", "audio"]),
        ("tag_exists.genre=true", ["hd", "sd", "init"]),
        ("tag_exists.genre=false", ["audio", "profiled"]),
        ("tag_exists.team=true&tag_exists.genre=true", ["sd"]),
        (f"profile_id={PROFILE_ID}", ["profiled"]),
        ("label=HD&format=urn:x-nmos:format:video", ["hd"]),
    ],
)
def test_filters_keep_exactly_the_matching_flows(
    client: TestClient, catalogue: dict[str, dict[str, Any]], query: str, expected: list[str]
) -> None:
    assert set(ids(client.get(f"/flows?{query}"))) == by_name(catalogue, *expected)
    assert client.head(f"/flows?{query}").headers["x-paging-count"] == str(len(expected))


def test_source_id_filter(client: TestClient, catalogue: dict[str, dict[str, Any]]) -> None:
    sid = catalogue["hd"]["source_id"]
    extra = video_flow(source_id=sid)
    put(client, extra)
    assert set(ids(client.get(f"/flows?source_id={sid}"))) == {catalogue["hd"]["id"], extra["id"]}
    assert ids(client.get(f"/flows?source_id={new_id()}")) == []


def test_url_encoded_tag_filters(client: TestClient) -> None:
    f = video_flow(tags={"my tag/x": "a,b", "plain": "café"})
    put(client, f)
    put(client, video_flow())
    assert ids(client.get("/flows", params={"tag_exists.my tag/x": "true"})) == [f["id"]]
    assert ids(client.get("/flows?tag_exists.my%20tag%2Fx=true")) == [f["id"]]
    assert ids(client.get("/flows", params={"tag.plain": "café"})) == [f["id"]]


def test_timerange_filter(client: TestClient) -> None:
    with_content, empty = video_flow(), video_flow()
    put(client, with_content)
    put(client, empty)
    catalog = services_of(client.app).catalog
    catalog.add_segments(
        with_content["id"],
        [{"object_id": "a", "timerange": "[0:0_10:0)"}, {"object_id": "b", "timerange": "[20:0_30:0)"}],
    )
    assert set(ids(client.get("/flows"))) == {with_content["id"], empty["id"]}
    assert ids(client.get("/flows?timerange=_")) == [with_content["id"]]
    assert ids(client.get("/flows", params={"timerange": "[5:0_6:0)"})) == [with_content["id"]]
    assert ids(client.get("/flows", params={"timerange": "[10:0_20:0)"})) == []  # the gap, both ends exclusive
    assert ids(client.get("/flows", params={"timerange": "[10:0_20:0]"})) == [with_content["id"]]
    assert ids(client.get("/flows", params={"timerange": "()"})) == [empty["id"]]
    assert ids(client.get("/flows?timerange=%5B25%3A0_%29")) == [with_content["id"]]


@pytest.mark.parametrize(
    "query",
    [
        "sort_by=size",
        "sort_by=updated",
        "limit=0",
        "limit=-3",
        "limit=ten",
        "page=%%%",
        "page=bm90LWFuLWlk",
        "reverse_order=maybe",
        "format=video",
        "codec=h264",
        "source_id=not-a-uuid",
        "profile_id=123",
        "status=finished",
        "frame_width=wide",
        "init_segments=perhaps",
        "tag_exists.genre=perhaps",
        "collected_by_ids=not-a-uuid",
        "timerange=0:0_1:05",
        "timerange=yesterday",
    ],
)
def test_invalid_query_values_are_400(client: TestClient, query: str) -> None:
    make_flows(client, 2)
    r = client.get(f"/flows?{query}")
    assert_error(r, 400)
    name = query.split("=")[0].split(".")[0]
    assert name.split("_")[0] in r.json()["summary"].lower() or "page" in r.json()["summary"]
    head = client.head(f"/flows?{query}")
    assert head.status_code == 400 and head.content == b""


def test_tolerates_unknown_query_parameters(client: TestClient) -> None:
    made = make_flows(client, 1)
    assert ids(client.get("/flows?access_token=abc&whatever=1")) == made


# -- a flow's timerange -----------------------------------------------------------------------------------
def test_include_timerange_reports_the_segment_extent(client: TestClient) -> None:
    f = video_flow()
    put(client, f)
    url = f"/flows/{f['id']}"
    assert client.get(f"{url}?include_timerange=true").json()["timerange"] == "()"
    services_of(client.app).catalog.add_segments(
        f["id"],
        [
            {"object_id": "a", "timerange": "[0:0_10:0)"},
            {"object_id": "b", "timerange": "[10:0_20:0)"},
            {"object_id": "c", "timerange": "[30:0_40:0)"},
        ],
    )

    def timerange(query: str) -> str | None:
        r = client.get(f"{url}?{query}")
        assert r.status_code == 200, r.text
        assert_valid(r.json(), "flow-get.json")
        return r.json().get("timerange")

    assert timerange("") is None
    assert timerange("include_timerange=false") is None
    assert timerange("include_timerange=true") == "[0:0_40:0)"
    assert timerange("include_timerange=true&timerange=%5B12:0_35:0%29") == "[10:0_40:0)"
    assert timerange("include_timerange=true&timerange=%5B21:0_29:0%5D") == "()"
    assert timerange("include_timerange=true&timerange=_") == "[0:0_40:0)"
    assert_error(client.get(f"{url}?include_timerange=true&timerange=bad"), 400)
    assert_error(client.get(f"{url}?include_timerange=maybe"), 400)
    head = client.head(f"{url}?include_timerange=true")
    assert head.status_code == 200 and head.content == b""
