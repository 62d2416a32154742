"""Flow collections and the collections derived from them: collected_by, source_collection, filters."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.server.conftest import new_id, video_flow
from tests.server.test_flows_put import assert_error, audio_flow, put
from tests.spec import assert_valid, assert_valid_list


def multi_flow(members: list[dict[str, Any]] | None = None, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": new_id(),
        "source_id": new_id(),
        "format": "urn:x-nmos:format:multi",
        "container": "video/mp2t",
        **extra,
    }
    if members is not None:
        body["flow_collection"] = members
    return body


@pytest.fixture
def rig(client: TestClient) -> dict[str, dict[str, Any]]:
    """A multi-essence flow collecting a video and an audio flow (each of its own source)."""
    video, audio, loose = video_flow(), audio_flow(), video_flow()
    for f in (video, audio, loose):
        assert put(client, f).status_code == 201
    multi = multi_flow(
        [
            {"id": video["id"], "role": "video"},
            {"id": audio["id"], "role": "audio", "container_mapping": {"track_index": 1}},
        ]
    )
    r = put(client, multi)
    assert r.status_code == 201, r.text
    assert_valid(r.json(), "flow-get.json")
    return {"video": video, "audio": audio, "loose": loose, "multi": multi}


def get(client: TestClient, url: str, schema: str) -> Any:
    r = client.get(url)
    assert r.status_code == 200, r.text
    assert_valid(r.json(), schema)
    return r.json()


def flow_ids(client: TestClient, query: str) -> set[str]:
    r = client.get(f"/flows?{query}")
    assert r.status_code == 200, r.text
    assert_valid_list(r.json(), "flow-get.json")
    return {f["id"] for f in r.json()}


def source_ids(client: TestClient, query: str) -> set[str]:
    r = client.get(f"/sources?{query}")
    assert r.status_code == 200, r.text
    assert_valid_list(r.json(), "source.json")
    return {s["id"] for s in r.json()}


# -- the collection sub-resource ----------------------------------------------------------------------------
def test_collection_from_the_flow_put_is_readable_in_order(client: TestClient, rig: dict[str, Any]) -> None:
    url = f"/flows/{rig['multi']['id']}/flow_collection"
    body = get(client, url, "flow-collection.json")
    assert body == rig["multi"]["flow_collection"]
    head = client.head(url)
    assert head.status_code == 200 and head.content == b""
    assert get(client, f"/flows/{rig['multi']['id']}", "flow-get.json")["flow_collection"] == body


def test_put_collection_keeps_the_given_order_and_replaces_the_old_one(client: TestClient, rig: dict[str, Any]) -> None:
    url = f"/flows/{rig['multi']['id']}/flow_collection"
    before = get(client, f"/flows/{rig['multi']['id']}", "flow-get.json")
    new = [{"id": rig["loose"]["id"], "role": "backup"}, {"id": rig["audio"]["id"]}, {"id": rig["video"]["id"]}]
    assert client.put(url, json=new).status_code == 204
    assert get(client, url, "flow-collection.json") == new
    after = get(client, f"/flows/{rig['multi']['id']}", "flow-get.json")
    assert after["metadata_version"] != before["metadata_version"]
    assert client.put(url, json=list(reversed(new))).status_code == 204
    assert get(client, url, "flow-collection.json") == list(reversed(new))


def test_delete_and_empty_collection(client: TestClient, rig: dict[str, Any]) -> None:
    multi = rig["multi"]["id"]
    url = f"/flows/{multi}/flow_collection"
    assert client.delete(url).status_code == 204
    assert get(client, url, "flow-collection.json") == []
    assert "flow_collection" not in get(client, f"/flows/{multi}", "flow-get.json")
    assert "collected_by" not in get(client, f"/flows/{rig['video']['id']}", "flow-get.json")
    assert client.delete(url).status_code == 204
    assert client.put(url, json=[{"id": rig["video"]["id"]}]).status_code == 204
    assert client.put(url, json=[]).status_code == 204
    assert get(client, url, "flow-collection.json") == []


@pytest.mark.parametrize(
    ("make_body", "why"),
    [
        (lambda rig: [{"id": new_id()}], "must already exist"),
        (lambda rig: [{"id": rig["multi"]["id"]}], "itself"),
        (lambda rig: [{"id": rig["video"]["id"]}, {"id": rig["video"]["id"]}], "twice"),
        (lambda rig: [{"role": "video"}], "flow-collection.json"),
        (lambda rig: [{"id": "NOT-A-UUID"}], "flow-collection.json"),
        (lambda rig: {"id": rig["video"]["id"]}, "flow-collection.json"),
        (lambda rig: [{"id": rig["video"]["id"], "role": 5}], "flow-collection.json"),
    ],
    ids=["unknown-member", "self", "duplicate", "no-id", "bad-id", "not-an-array", "role-not-string"],
)
def test_invalid_collections_are_400(client: TestClient, rig: dict[str, Any], make_body: Any, why: str) -> None:
    url = f"/flows/{rig['multi']['id']}/flow_collection"
    before = get(client, url, "flow-collection.json")
    r = client.put(url, json=make_body(rig))
    assert_error(r, 400)
    assert why in r.json()["summary"]
    assert get(client, url, "flow-collection.json") == before


def test_flow_put_with_unknown_member_or_itself_is_400(client: TestClient) -> None:
    assert_error(put(client, multi_flow([{"id": new_id()}])), 400)
    m = multi_flow()
    m["flow_collection"] = [{"id": m["id"]}]
    assert_error(put(client, m), 400)
    assert client.get(f"/flows/{m['id']}").status_code == 404


def test_replacing_the_flow_without_a_collection_removes_it(client: TestClient, rig: dict[str, Any]) -> None:
    m = {k: v for k, v in rig["multi"].items() if k != "flow_collection"}
    assert put(client, m).status_code == 204
    assert get(client, f"/flows/{m['id']}/flow_collection", "flow-collection.json") == []
    assert "collected_by" not in get(client, f"/flows/{rig['audio']['id']}", "flow-get.json")


# -- derived collected_by and source collections --------------------------------------------------------
def test_members_are_collected_by_the_collecting_flow(client: TestClient, rig: dict[str, Any]) -> None:
    multi = rig["multi"]["id"]
    for name in ("video", "audio"):
        assert get(client, f"/flows/{rig[name]['id']}", "flow-get.json")["collected_by"] == [multi]
    assert "collected_by" not in get(client, f"/flows/{rig['loose']['id']}", "flow-get.json")
    assert "collected_by" not in get(client, f"/flows/{multi}", "flow-get.json")
    other = multi_flow([{"id": rig["video"]["id"]}])
    put(client, other)
    assert get(client, f"/flows/{rig['video']['id']}", "flow-get.json")["collected_by"] == sorted([multi, other["id"]])


def test_sources_collections_are_derived_from_flow_collections(client: TestClient, rig: dict[str, Any]) -> None:
    ms, vs, as_ = (rig[n]["source_id"] for n in ("multi", "video", "audio"))
    multi_src = get(client, f"/sources/{ms}", "source.json")
    assert multi_src["source_collection"] == [{"id": vs, "role": "video"}, {"id": as_, "role": "audio"}]
    assert "collected_by" not in multi_src
    for sid in (vs, as_):
        src = get(client, f"/sources/{sid}", "source.json")
        assert src["collected_by"] == [ms]
        assert "source_collection" not in src
    # the collection's order follows the flow collection's order
    client.put(
        f"/flows/{rig['multi']['id']}/flow_collection",
        json=[{"id": rig["audio"]["id"], "role": "audio"}, {"id": rig["video"]["id"], "role": "video"}],
    )
    reordered = get(client, f"/sources/{ms}", "source.json")["source_collection"]
    assert reordered == [{"id": as_, "role": "audio"}, {"id": vs, "role": "video"}]
    client.delete(f"/flows/{rig['multi']['id']}/flow_collection")
    assert "source_collection" not in get(client, f"/sources/{ms}", "source.json")
    assert "collected_by" not in get(client, f"/sources/{vs}", "source.json")


def test_deleting_a_member_flow_removes_it_from_collections(client: TestClient, rig: dict[str, Any]) -> None:
    assert client.delete(f"/flows/{rig['video']['id']}").status_code == 204
    url = f"/flows/{rig['multi']['id']}/flow_collection"
    assert get(client, url, "flow-collection.json") == [rig["multi"]["flow_collection"][1]]
    ms = get(client, f"/sources/{rig['multi']['source_id']}", "source.json")
    assert ms["source_collection"] == [{"id": rig["audio"]["source_id"], "role": "audio"}]


def test_deleting_the_collecting_flow_clears_collected_by(client: TestClient, rig: dict[str, Any]) -> None:
    assert client.delete(f"/flows/{rig['multi']['id']}").status_code == 204
    assert "collected_by" not in get(client, f"/flows/{rig['audio']['id']}", "flow-get.json")
    assert "collected_by" not in get(client, f"/sources/{rig['audio']['source_id']}", "source.json")


# -- collected_by_ids filters -------------------------------------------------------------------------------
def test_collected_by_ids_filter_on_flows(client: TestClient, rig: dict[str, Any]) -> None:
    ids = {n: f["id"] for n, f in rig.items()}
    assert flow_ids(client, f"collected_by_ids={ids['multi']}") == {ids["video"], ids["audio"]}
    assert flow_ids(client, f"collected_by_ids={ids['loose']}") == set()
    assert flow_ids(client, f"collected_by_ids={new_id()},{ids['multi']}") == {ids["video"], ids["audio"]}
    assert flow_ids(client, "collected_by_ids=") == {ids["multi"], ids["loose"]}  # top-level only
    assert flow_ids(client, "collected_by_ids=&format=urn:x-nmos:format:multi") == {ids["multi"]}
    assert_error(client.get("/flows?collected_by_ids=abc,def"), 400)


def test_collected_by_ids_filter_on_sources(client: TestClient, rig: dict[str, Any]) -> None:
    src = {n: f["source_id"] for n, f in rig.items()}
    assert source_ids(client, f"collected_by_ids={src['multi']}") == {src["video"], src["audio"]}
    assert source_ids(client, f"collected_by_ids={src['video']}") == set()
    assert source_ids(client, "collected_by_ids=") == {src["multi"], src["loose"]}
    assert_error(client.get(f"/sources?collected_by_ids={src['multi']},x"), 400)


def test_a_source_never_collects_itself(client: TestClient) -> None:
    sid = new_id()
    member = video_flow(source_id=sid)
    put(client, member)
    put(client, video_flow(source_id=sid, flow_collection=[{"id": member["id"]}]))
    src = get(client, f"/sources/{sid}", "source.json")
    assert "source_collection" not in src and "collected_by" not in src
