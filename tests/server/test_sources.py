"""/sources: listing (filters, sorting, paging), one source, and its tags, label and description."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient

from tests.server.conftest import new_id, video_flow
from tests.server.test_flows_put import assert_error, audio_flow, put
from tests.spec import assert_valid, assert_valid_list


def source_ids(r: Any) -> list[str]:
    assert r.status_code == 200, r.text
    assert_valid_list(r.json(), "source.json")
    return [s["id"] for s in r.json()]


def make_source(client: TestClient, **flow: Any) -> str:
    """A source, made the only way there is: by putting a flow that names it."""
    f = video_flow(**flow) if flow.get("format") is None else {**audio_flow(), **flow}
    assert put(client, f).status_code == 201
    return f["source_id"]


# -- one source -------------------------------------------------------------------------------------------
def test_get_and_head_one_source(client: TestClient) -> None:
    sid = make_source(client)
    r = client.get(f"/sources/{sid}")
    assert r.status_code == 200
    body = r.json()
    assert_valid(body, "source.json")
    assert body["id"] == sid and body["format"] == "urn:x-nmos:format:video" and body["tags"] == {}
    assert body["created"].endswith("Z") and body["updated"].endswith("Z")
    head = client.head(f"/sources/{sid}")
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == str(len(r.content))


@pytest.mark.parametrize("path", ["", "/tags", "/tags/x", "/label", "/description"])
def test_unknown_or_invalid_source_is_404(client: TestClient, path: str) -> None:
    for sid in (new_id(), "not-a-uuid"):
        assert_error(client.get(f"/sources/{sid}{path}"), 404)
        head = client.head(f"/sources/{sid}{path}")
        assert head.status_code == 404 and head.content == b""
        if path not in ("", "/tags"):
            assert_error(client.put(f"/sources/{sid}{path}", json="v"), 404)
            assert_error(client.delete(f"/sources/{sid}{path}"), 404)


def test_there_is_no_put_or_delete_of_a_source(client: TestClient) -> None:
    sid = make_source(client)
    assert client.put(f"/sources/{sid}", json={"id": sid, "format": "urn:x-nmos:format:video"}).status_code == 405
    assert client.delete(f"/sources/{sid}").status_code == 405
    assert client.get(f"/sources/{sid}").status_code == 200


# -- listing ----------------------------------------------------------------------------------------------
def test_listing_sorts_newest_first_and_pages_with_link_headers(client: TestClient) -> None:
    made = [make_source(client) for _ in range(12)]
    seen: list[str] = []
    url: str | None = "/sources?limit=5"
    counts = []
    while url is not None:
        r = client.get(url)
        seen += source_ids(r)
        counts.append(r.headers["x-paging-count"])
        assert r.headers["x-paging-limit"] == "5"
        assert r.headers["x-paging-reverse-order"] == "false"
        link = r.headers.get("link")
        url = link.split(";")[0].strip()[1:-1] if link else None
        if url:
            assert url.startswith("http://testserver/sources?") and "limit=5" in url
            assert r.headers["x-paging-nextkey"] in url
    assert seen == list(reversed(made))
    assert counts == ["5", "5", "2"]
    assert source_ids(client.get("/sources?reverse_order=true")) == made
    head = client.head("/sources?limit=5")
    assert head.status_code == 200 and head.content == b"" and "link" in head.headers


def test_sort_by_label_and_updated(client: TestClient) -> None:
    a, b, c, d = (make_source(client) for _ in range(4))
    for sid, label in ((a, "zulu"), (b, "alpha"), (c, "mike")):
        assert client.put(f"/sources/{sid}/label", json=label).status_code == 204
    assert source_ids(client.get("/sources?sort_by=label")) == [b, c, a, d]
    assert source_ids(client.get("/sources?sort_by=label&reverse_order=true")) == [d, a, c, b]
    # c was updated last, then b, then a; d never (its `updated` is its creation, the oldest of all)
    assert source_ids(client.get("/sources?sort_by=updated")) == [c, b, a, d]
    assert source_ids(client.get("/sources?sort_by=created")) == [d, c, b, a]


def test_filters_keep_exactly_the_matching_sources(client: TestClient) -> None:
    video = make_source(client)
    audio = make_source(client, format="urn:x-nmos:format:audio")
    other = make_source(client)
    client.put(f"/sources/{video}/label", json="cam")
    client.put(f"/sources/{audio}/label", json="cam")
    client.put(f"/sources/{video}/tags/genre", json=["news", "live"])
    client.put(f"/sources/{other}/tags/genre", json="sport")
    cases = {
        "label=cam": {video, audio},
        "label=Cam": set(),
        "format=urn:x-nmos:format:audio": {audio},
        "format=urn:x-nmos:format:video": {video, other},
        "tag.genre=live": {video},
        "tag.genre=sport,news": {video, other},
        "tag.genre=spo": set(),
        "tag_exists.genre=true": {video, other},
        "tag_exists.genre=false": {audio},
        "label=cam&format=urn:x-nmos:format:video": {video},
        "label=cam&tag_exists.genre=false": {audio},
    }
    for query, expected in cases.items():
        assert set(source_ids(client.get(f"/sources?{query}"))) == expected, query


@pytest.mark.parametrize(
    "query",
    [
        "sort_by=metadata_updated",
        "sort_by=id",
        "limit=0",
        "limit=x",
        "page=garbage!",
        "reverse_order=sometimes",
        "format=urn:x-nmos:format:smell",
        "tag_exists.genre=1x",
        "collected_by_ids=abc",
    ],
)
def test_invalid_query_values_are_400(client: TestClient, query: str) -> None:
    make_source(client)
    assert_error(client.get(f"/sources?{query}"), 400)
    head = client.head(f"/sources?{query}")
    assert head.status_code == 400 and head.content == b""


# -- tags -------------------------------------------------------------------------------------------------
def test_source_tags_round_trip(client: TestClient) -> None:
    sid = make_source(client)
    base = f"/sources/{sid}/tags"
    r = client.get(base)
    assert r.status_code == 200 and r.json() == {}
    assert_valid(r.json(), "tags.json")
    assert client.put(f"{base}/genre", json="news").status_code == 204
    assert client.put(f"{base}/crew", json=["ann", "bob"]).status_code == 204
    assert client.put(f"{base}/empty", json=[]).status_code == 204
    r = client.get(base)
    assert_valid(r.json(), "tags.json")
    assert r.json() == {"genre": "news", "crew": ["ann", "bob"], "empty": []}
    assert client.head(base).status_code == 200 and client.head(base).content == b""
    assert client.get(f"{base}/genre").json() == "news"
    assert client.get(f"{base}/crew").json() == ["ann", "bob"]
    head = client.head(f"{base}/crew")
    assert head.status_code == 200 and head.content == b""
    assert client.put(f"{base}/genre", json=["a"]).status_code == 204  # string -> array
    assert client.get(f"{base}/genre").json() == ["a"]
    assert client.get(f"/sources/{sid}").json()["tags"]["genre"] == ["a"]
    assert client.delete(f"{base}/genre").status_code == 204
    assert_error(client.get(f"{base}/genre"), 404)
    assert client.head(f"{base}/genre").status_code == 404
    assert_error(client.delete(f"{base}/genre"), 404)  # deleting a tag that is not set
    assert client.get(base).json() == {"crew": ["ann", "bob"], "empty": []}


def test_tag_names_with_special_characters(client: TestClient) -> None:
    sid = make_source(client)
    name = "my tag/with:odd?chars&%"
    url = f"/sources/{sid}/tags/{quote(name, safe='')}"
    assert client.put(url, json="v").status_code == 204
    assert client.get(f"/sources/{sid}/tags").json() == {name: "v"}
    assert client.get(url).json() == "v"
    assert client.delete(url).status_code == 204
    assert client.get(f"/sources/{sid}/tags").json() == {}


@pytest.mark.parametrize("body", [b"5", b"null", b'{"a": "b"}', b'["a", 1]', b"true", b"{bad", b""])
def test_invalid_tag_values_are_400(client: TestClient, body: bytes) -> None:
    sid = make_source(client)
    r = client.put(f"/sources/{sid}/tags/genre", content=body, headers={"content-type": "application/json"})
    assert_error(r, 400)
    assert client.get(f"/sources/{sid}/tags").json() == {}


# -- label and description ----------------------------------------------------------------------------------
@pytest.mark.parametrize("prop", ["label", "description"])
def test_label_and_description_round_trip(client: TestClient, prop: str) -> None:
    sid = make_source(client)
    url = f"/sources/{sid}/{prop}"
    before = client.get(f"/sources/{sid}").json()
    assert_error(client.get(url), 404)  # unset
    assert client.head(url).status_code == 404
    assert client.put(url, json="Big Buck Bunny").status_code == 204
    r = client.get(url)
    assert r.status_code == 200 and r.json() == "Big Buck Bunny"
    head = client.head(url)
    assert head.status_code == 200 and head.content == b""
    after = client.get(f"/sources/{sid}").json()
    assert_valid(after, "source.json")
    assert after[prop] == "Big Buck Bunny"
    assert after["updated"] > before["updated"] and after["created"] == before["created"]
    assert_error(client.put(url, json=5), 400)
    assert_error(client.put(url, json=["x"]), 400)
    assert_error(client.put(url, content=b"unquoted", headers={"content-type": "application/json"}), 400)
    assert client.get(url).json() == "Big Buck Bunny"
    assert client.delete(url).status_code == 204
    assert_error(client.get(url), 404)
    assert prop not in client.get(f"/sources/{sid}").json()
    assert client.delete(url).status_code == 204  # already unset: still the requested end state


def test_source_label_does_not_touch_its_flows(client: TestClient) -> None:
    f = video_flow(label="flow label")
    put(client, f)
    client.put(f"/sources/{f['source_id']}/label", json="source label")
    assert client.get(f"/flows/{f['id']}").json()["label"] == "flow label"
    assert source_ids(client.get("/sources?label=source%20label")) == [f["source_id"]]
