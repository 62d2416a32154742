"""Flow sub-resources: tags, label, description, read_only, max/avg_bit_rate; the read-only 403 matrix."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient

from tests.server.conftest import new_id, video_flow
from tests.server.test_flows_put import PROFILE, PROFILE_ID, assert_error, put
from tests.spec import assert_valid

PROPERTIES = [
    ("label", "Camera 1", "Camera 2"),
    ("description", "A long text", "Another"),
    ("max_bit_rate", 5000, 0),
    ("avg_bit_rate", 3246, 12),
]
BAD_BODIES: dict[str, list[bytes]] = {
    "label": [b"5", b"null", b'["a"]', b"true", b"unquoted"],
    "description": [b"5", b"null", b'{"a": 1}'],
    "max_bit_rate": [b'"5000"', b"-1", b"1.5", b"true", b"null"],
    "avg_bit_rate": [b'"5000"', b"-1", b"2.0e3", b"false"],
}


def make_flow(client: TestClient, **extra: Any) -> dict[str, Any]:
    f = video_flow(**extra)
    assert put(client, f).status_code == 201
    return f


def flow(client: TestClient, flow_id: str) -> dict[str, Any]:
    r = client.get(f"/flows/{flow_id}")
    assert r.status_code == 200
    assert_valid(r.json(), "flow-get.json")
    return r.json()


# -- label, description, bit rates --------------------------------------------------------------------------
@pytest.mark.parametrize(("prop", "value", "other"), PROPERTIES)
def test_property_round_trip(client: TestClient, prop: str, value: Any, other: Any) -> None:
    f = make_flow(client)
    url = f"/flows/{f['id']}/{prop}"
    before = flow(client, f["id"])
    assert_error(client.get(url), 404)  # unset
    assert client.head(url).status_code == 404
    assert client.put(url, json=value).status_code == 204
    r = client.get(url)
    assert r.status_code == 200 and r.json() == value
    head = client.head(url)
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == str(len(r.content))
    after = flow(client, f["id"])
    assert after[prop] == value
    assert after["metadata_version"] != before["metadata_version"]
    assert after["metadata_updated"] > before["metadata_updated"]
    assert client.put(url, json=other).status_code == 204
    assert client.get(url).json() == other
    assert client.delete(url).status_code == 204
    assert_error(client.get(url), 404)
    assert prop not in flow(client, f["id"])
    assert client.delete(url).status_code == 204  # already unset


@pytest.mark.parametrize(("prop", "body"), [(p, b) for p, bodies in BAD_BODIES.items() for b in bodies])
def test_invalid_property_bodies_are_400(client: TestClient, prop: str, body: bytes) -> None:
    f = make_flow(client)
    r = client.put(f"/flows/{f['id']}/{prop}", content=body, headers={"content-type": "application/json"})
    assert_error(r, 400)
    assert prop not in flow(client, f["id"])


SUB_RESOURCES = ["/tags", "/tags/x", "/label", "/description", "/read_only", "/max_bit_rate", "/avg_bit_rate"]


@pytest.mark.parametrize("path", ["", *SUB_RESOURCES, "/flow_collection"])
def test_unknown_or_invalid_flow_is_404_on_every_sub_resource(client: TestClient, path: str) -> None:
    bodies = {"/read_only": True, "/max_bit_rate": 1, "/avg_bit_rate": 1, "/flow_collection": []}
    for fid in (new_id(), "not-a-uuid"):
        assert_error(client.get(f"/flows/{fid}{path}"), 404)
        head = client.head(f"/flows/{fid}{path}")
        assert head.status_code == 404 and head.content == b""
        if path not in ("", "/tags"):
            assert_error(client.put(f"/flows/{fid}{path}", json=bodies.get(path, "v")), 404)
            if path != "/read_only":
                assert_error(client.delete(f"/flows/{fid}{path}"), 404)


def test_avg_bit_rate_of_a_profile_flow_cannot_change(client: TestClient) -> None:
    client.post(f"/service/profiles/{PROFILE_ID}", json=PROFILE)
    f = {"id": new_id(), "source_id": new_id(), "profile_id": PROFILE_ID}
    put(client, f)
    url = f"/flows/{f['id']}/avg_bit_rate"
    assert client.get(url).json() == 50000
    r = client.put(url, json=1)
    assert_error(r, 400)
    assert "profile" in r.json()["summary"]
    assert_error(client.delete(url), 400)
    assert client.get(url).json() == 50000
    # max_bit_rate is not part of a profile
    assert client.put(f"/flows/{f['id']}/max_bit_rate", json=60000).status_code == 204


# -- read_only ----------------------------------------------------------------------------------------------
def test_read_only_round_trip(client: TestClient) -> None:
    f = make_flow(client)
    url = f"/flows/{f['id']}/read_only"
    r = client.get(url)
    assert r.status_code == 200 and r.json() is False
    assert client.head(url).status_code == 200 and client.head(url).content == b""
    assert client.put(url, json=True).status_code == 204
    assert client.get(url).json() is True
    assert flow(client, f["id"])["read_only"] is True
    assert client.put(url, json=True).status_code == 204  # still allowed on a read-only flow
    assert client.put(url, json=False).status_code == 204
    assert client.get(url).json() is False
    assert client.delete(url).status_code == 405  # the spec has no DELETE of read_only


@pytest.mark.parametrize("body", [b'"true"', b"1", b"0", b"null", b"[true]", b"yes"])
def test_read_only_must_be_a_boolean(client: TestClient, body: bytes) -> None:
    f = make_flow(client)
    url = f"/flows/{f['id']}/read_only"
    r = client.put(url, content=body, headers={"content-type": "application/json"})
    assert_error(r, 400)
    assert client.get(url).json() is False


#: every write the read-only flag refuses: (method, path under the flow, JSON body)
READ_ONLY_WRITES = [
    ("PUT", "", None),
    ("DELETE", "", None),
    ("PUT", "/tags/genre", "news"),
    ("DELETE", "/tags/existing", None),
    ("PUT", "/label", "new"),
    ("DELETE", "/label", None),
    ("PUT", "/description", "new"),
    ("DELETE", "/description", None),
    ("PUT", "/max_bit_rate", 1),
    ("DELETE", "/max_bit_rate", None),
    ("PUT", "/avg_bit_rate", 1),
    ("DELETE", "/avg_bit_rate", None),
    ("PUT", "/flow_collection", "member"),
    ("DELETE", "/flow_collection", None),
]


@pytest.mark.parametrize(("method", "path", "body"), READ_ONLY_WRITES, ids=[f"{m} {p}" for m, p, _ in READ_ONLY_WRITES])
def test_read_only_flow_refuses_every_write_but_read_only(
    client: TestClient, method: str, path: str, body: Any
) -> None:
    member = make_flow(client)
    f = make_flow(
        client,
        label="l",
        description="d",
        max_bit_rate=1,
        avg_bit_rate=1,
        tags={"existing": "x"},
        flow_collection=[{"id": member["id"], "role": "video"}],
    )
    assert client.put(f"/flows/{f['id']}/read_only", json=True).status_code == 204
    before = flow(client, f["id"])
    if body == "member":
        body = [{"id": member["id"], "role": "other"}]
    elif path == "" and method == "PUT":
        body = {**f, "label": "changed"}
    r = client.request(method, f"/flows/{f['id']}{path}", json=body)
    assert_error(r, 403)
    assert flow(client, f["id"]) == before
    assert client.put(f"/flows/{f['id']}/read_only", json=False).status_code == 204
    r = client.request(method, f"/flows/{f['id']}{path}", json=body)
    assert r.status_code == 204, r.text


# -- tags -------------------------------------------------------------------------------------------------
def test_flow_tags_round_trip(client: TestClient) -> None:
    f = make_flow(client, tags={"genre": "news"})
    base = f"/flows/{f['id']}/tags"
    r = client.get(base)
    assert r.status_code == 200 and r.json() == {"genre": "news"}
    assert_valid(r.json(), "tags.json")
    head = client.head(base)
    assert head.status_code == 200 and head.content == b""
    before = flow(client, f["id"])
    assert client.put(f"{base}/crew", json=["ann", "bob"]).status_code == 204
    assert client.get(f"{base}/crew").json() == ["ann", "bob"]
    assert client.head(f"{base}/crew").status_code == 200
    after = flow(client, f["id"])
    assert after["tags"] == {"genre": "news", "crew": ["ann", "bob"]}
    assert after["metadata_version"] != before["metadata_version"]
    assert client.put(f"{base}/genre", json="sport").status_code == 204
    assert client.get(f"{base}/genre").json() == "sport"
    assert client.delete(f"{base}/genre").status_code == 204
    assert_error(client.get(f"{base}/genre"), 404)
    assert client.head(f"{base}/genre").status_code == 404
    assert_error(client.delete(f"{base}/genre"), 404)
    assert client.get(base).json() == {"crew": ["ann", "bob"]}
    assert [x["id"] for x in client.get("/flows?tag.crew=bob").json()] == [f["id"]]


def test_flow_tag_names_are_url_decoded(client: TestClient) -> None:
    f = make_flow(client)
    name = "a b/c%d"
    url = f"/flows/{f['id']}/tags/{quote(name, safe='')}"
    assert client.put(url, json="v").status_code == 204
    assert client.get(f"/flows/{f['id']}/tags").json() == {name: "v"}
    assert client.get(url).json() == "v"
    assert client.delete(url).status_code == 204
    assert client.get(f"/flows/{f['id']}/tags").json() == {}


@pytest.mark.parametrize("body", [b"1", b"null", b'{"a": "b"}', b'["a", null]', b"{oops", b""])
def test_invalid_flow_tag_values_are_400(client: TestClient, body: bytes) -> None:
    f = make_flow(client)
    r = client.put(f"/flows/{f['id']}/tags/genre", content=body, headers={"content-type": "application/json"})
    assert_error(r, 400)
    assert client.get(f"/flows/{f['id']}/tags").json() == {}
