"""PUT, GET, HEAD and DELETE of /flows/{id}: whole replacement, implicit sources, profiles, events."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from server.app import create_app
from server.config import Settings
from server.services import services_of
from server.webhooks import outbox
from server.webhooks.events import Event
from tests.server.conftest import new_id, video_flow
from tests.spec import assert_valid

PROFILE_ID = "329b98d6-adeb-418c-8eaf-eca14edc1706"
PROFILE = {
    "id": PROFILE_ID,
    "label": "1080p50 TS Video 50Mbps",
    "flow_metadata": {
        "format": "urn:x-nmos:format:video",
        "codec": "video/h264",
        "container": "video/mp2t",
        "avg_bit_rate": 50000,
        "segment_duration": {"numerator": 6, "denominator": 1},
        "essence_parameters": {
            "frame_rate": {"numerator": 50, "denominator": 1},
            "frame_width": 1920,
            "frame_height": 1080,
        },
    },
}


def put(client: TestClient, flow: dict[str, Any]) -> Any:
    return client.put(f"/flows/{flow['id']}", json=flow)


def audio_flow(flow_id: str | None = None, source_id: str | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "id": flow_id or new_id(),
        "source_id": source_id or new_id(),
        "format": "urn:x-nmos:format:audio",
        "codec": "audio/aac",
        "container": "video/mp2t",
        "essence_parameters": {"sample_rate": 48000, "channels": 2},
        **extra,
    }


def assert_error(r: Any, status: int) -> None:
    assert r.status_code == status, r.text
    assert_valid(r.json(), "error.json")


@pytest.fixture
def quiet_client(settings: Settings) -> Iterator[TestClient]:
    """A client on a server without background workers, so published events stay on the queue."""
    with TestClient(create_app(settings, workers=False), base_url="http://testserver") as c:
        yield c


def drain(client: TestClient) -> list[Event]:
    """The events waiting in the outbox (written for the one webhook of these tests), taken out of it."""
    catalog = services_of(client.app).catalog
    out = []
    for webhook_id in outbox.webhooks_with_events(catalog):
        for row in outbox.due(catalog, webhook_id, limit=1000):
            out.append(Event.from_json(row["event"]))
            outbox.delivered(catalog, row["id"])
    return out


# -- create and read ----------------------------------------------------------------------------------------
def test_create_answers_201_with_the_flow(client: TestClient) -> None:
    f = video_flow(label="cam 1", description="studio A", tags={"genre": ["news", "live"]}, max_bit_rate=8000)
    r = put(client, f)
    assert r.status_code == 201, r.text
    body = r.json()
    assert_valid(body, "flow-get.json")
    for k in ("id", "source_id", "format", "codec", "container", "label", "description", "essence_parameters"):
        assert body[k] == f[k]
    assert body["tags"] == {"genre": ["news", "live"]}
    assert body["max_bit_rate"] == 8000
    assert body["created"].endswith("Z") and body["metadata_version"]
    assert "timerange" not in body
    got = client.get(f"/flows/{f['id']}")
    assert got.status_code == 200
    assert_valid(got.json(), "flow-get.json")
    assert got.json() == body


def test_head_of_a_flow_has_headers_and_no_body(client: TestClient) -> None:
    f = video_flow()
    put(client, f)
    get = client.get(f"/flows/{f['id']}")
    head = client.head(f"/flows/{f['id']}")
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == str(len(get.content))
    assert head.headers["content-type"] == "application/json"
    missing = client.head(f"/flows/{new_id()}")
    assert missing.status_code == 404 and missing.content == b""


def test_unknown_and_invalid_flow_ids_are_404(client: TestClient) -> None:
    assert_error(client.get(f"/flows/{new_id()}"), 404)
    assert_error(client.get("/flows/not-a-uuid"), 404)
    assert_error(client.get("/flows/6BA7B810-9DAD-41D1-80B4-00C04FD430C8"), 404)  # upper case is invalid
    assert_error(client.delete(f"/flows/{new_id()}"), 404)
    assert_error(client.put("/flows/not-a-uuid", json=video_flow()), 404)


# -- replacement ------------------------------------------------------------------------------------------
def test_update_answers_204_and_replaces_the_whole_flow(client: TestClient) -> None:
    f = video_flow(label="a", description="d", tags={"x": "1"}, max_bit_rate=5000, status="ingesting")
    first = put(client, f).json()
    g = video_flow(f["id"], f["source_id"], label="b")
    r = put(client, g)
    assert r.status_code == 204 and r.content == b""
    body = client.get(f"/flows/{f['id']}").json()
    assert_valid(body, "flow-get.json")
    assert body["label"] == "b"
    assert body["tags"] == {}  # tags omitted from the PUT: unset
    for gone in ("description", "max_bit_rate", "status"):
        assert gone not in body
    assert body["created"] == first["created"]
    assert body["metadata_version"] != first["metadata_version"]
    assert body["metadata_updated"] > first["metadata_updated"]


def test_client_metadata_version_is_kept_on_create(client: TestClient) -> None:
    f = video_flow(metadata_version="v1")
    assert put(client, f).json()["metadata_version"] == "v1"
    put(client, f)  # the same value again: the service sets a new one
    assert client.get(f"/flows/{f['id']}").json()["metadata_version"] != "v1"


def test_server_managed_fields_are_ignored(client: TestClient) -> None:
    other = video_flow()
    put(client, other)
    f = video_flow(
        created="2000-01-01T00:00:00Z",
        metadata_updated="2000-01-01T00:00:00Z",
        segments_updated="2000-01-01T00:00:00Z",
        collected_by=[other["id"]],
        timerange="[0:0_10:0)",
    )
    body = put(client, f).json()
    assert_valid(body, "flow-get.json")
    assert body["created"] != "2000-01-01T00:00:00Z"
    assert body["metadata_updated"] != "2000-01-01T00:00:00Z"
    for k in ("segments_updated", "collected_by", "timerange"):
        assert k not in body
    assert client.get(f"/flows/{f['id']}?include_timerange=true").json()["timerange"] == "()"


@pytest.mark.parametrize(
    "mutate",
    [
        pytest.param(lambda f: f.pop("source_id"), id="no-source_id"),
        pytest.param(lambda f: f.pop("codec"), id="video-without-codec"),
        pytest.param(lambda f: f.update(format="urn:x-tams:format:video"), id="unknown-format"),
        pytest.param(lambda f: f.update(source_id="NOT-A-UUID"), id="bad-source-id"),
        pytest.param(lambda f: f["essence_parameters"].update(frame_width=0), id="frame-width-0"),
        pytest.param(lambda f: f["essence_parameters"].update(colour="red"), id="unknown-essence-key"),
        pytest.param(lambda f: f.update(tags={"a": 1}), id="tag-not-string"),
        pytest.param(lambda f: f.update(max_bit_rate=-1), id="negative-bit-rate"),
        pytest.param(lambda f: f.update(read_only="yes"), id="read_only-not-bool"),
    ],
)
def test_invalid_bodies_are_400(client: TestClient, mutate: Any) -> None:
    f = video_flow()
    mutate(f)
    r = client.put(f"/flows/{f['id']}", json=f)
    assert_error(r, 400)
    assert "flow-put.json" in r.json()["summary"]
    assert client.get(f"/flows/{f['id']}").status_code == 404


def test_malformed_and_non_object_bodies_are_400(client: TestClient) -> None:
    fid = new_id()
    r = client.put(f"/flows/{fid}", content=b"{nope", headers={"content-type": "application/json"})
    assert_error(r, 400)
    assert "malformed JSON" in r.json()["summary"]
    assert_error(client.put(f"/flows/{fid}", content=b""), 400)
    assert_error(client.put(f"/flows/{fid}", json=[video_flow(fid)]), 400)


def test_body_id_must_match_the_path(client: TestClient) -> None:
    f = video_flow()
    r = client.put(f"/flows/{new_id()}", json=f)
    assert_error(r, 400)
    assert "differs" in r.json()["summary"]


# -- implicit sources ---------------------------------------------------------------------------------------
def test_first_flow_creates_its_source_and_the_last_deleted_flow_removes_it(client: TestClient) -> None:
    sid = new_id()
    f1, f2 = video_flow(source_id=sid), video_flow(source_id=sid)
    assert client.get(f"/sources/{sid}").status_code == 404
    assert put(client, f1).status_code == 201
    src = client.get(f"/sources/{sid}")
    assert src.status_code == 200
    assert_valid(src.json(), "source.json")
    assert src.json()["id"] == sid and src.json()["format"] == "urn:x-nmos:format:video"
    assert put(client, f2).status_code == 201
    assert client.delete(f"/flows/{f1['id']}").status_code == 204
    assert client.get(f"/flows/{f1['id']}").status_code == 404
    assert client.get(f"/sources/{sid}").status_code == 200
    assert client.delete(f"/flows/{f2['id']}").status_code == 204
    assert_error(client.get(f"/sources/{sid}"), 404)
    assert client.get("/sources").json() == []


def test_moving_a_flow_to_another_source_removes_the_orphaned_source(client: TestClient) -> None:
    f = video_flow()
    put(client, f)
    new_sid = new_id()
    assert put(client, {**f, "source_id": new_sid}).status_code == 204
    assert client.get(f"/sources/{f['source_id']}").status_code == 404
    assert client.get(f"/sources/{new_sid}").status_code == 200
    assert client.get(f"/flows/{f['id']}").json()["source_id"] == new_sid


def test_format_conflicting_with_the_source_is_400(client: TestClient) -> None:
    sid = new_id()
    put(client, video_flow(source_id=sid))
    a = audio_flow(source_id=sid)
    r = put(client, a)
    assert_error(r, 400)
    assert "conflicts" in r.json()["summary"]
    assert client.get(f"/flows/{a['id']}").status_code == 404
    assert client.get(f"/sources/{sid}").json()["format"] == "urn:x-nmos:format:video"
    assert put(client, audio_flow(source_id=new_id())).status_code == 201


# -- read-only --------------------------------------------------------------------------------------------
def test_read_only_flow_refuses_replacement_and_deletion(client: TestClient) -> None:
    f = video_flow(read_only=True, label="locked")
    assert put(client, f).status_code == 201
    assert_error(put(client, {**f, "label": "changed"}), 403)
    assert_error(put(client, {**f, "read_only": False}), 403)
    assert_error(client.delete(f"/flows/{f['id']}"), 403)
    assert client.get(f"/flows/{f['id']}").json()["label"] == "locked"
    assert client.put(f"/flows/{f['id']}/read_only", json=False).status_code == 204
    assert put(client, {**f, "label": "changed", "read_only": False}).status_code == 204
    assert client.get(f"/flows/{f['id']}").json()["label"] == "changed"
    assert client.delete(f"/flows/{f['id']}").status_code == 204


# -- profiles ---------------------------------------------------------------------------------------------
def test_flow_from_a_profile_takes_its_technical_metadata(client: TestClient) -> None:
    assert client.post(f"/service/profiles/{PROFILE_ID}", json=PROFILE).status_code == 201
    f = {"id": new_id(), "source_id": new_id(), "label": "capture", "profile_id": PROFILE_ID}
    r = put(client, f)
    assert r.status_code == 201, r.text
    body = r.json()
    assert_valid(body, "flow-get.json")
    assert body["profile_id"] == PROFILE_ID
    meta = PROFILE["flow_metadata"]
    for k in ("format", "codec", "container", "avg_bit_rate", "segment_duration", "essence_parameters"):
        assert body[k] == meta[k]  # type: ignore[index]
    assert client.get(f"/sources/{f['source_id']}").json()["format"] == meta["format"]  # type: ignore[index]
    listed = client.get(f"/flows?profile_id={PROFILE_ID}").json()
    assert [x["id"] for x in listed] == [f["id"]]
    # label changes keep the link when the profile is named again without technical metadata
    assert put(client, {**f, "label": "renamed"}).status_code == 204
    again = client.get(f"/flows/{f['id']}").json()
    assert again["label"] == "renamed" and again["profile_id"] == PROFILE_ID and again["codec"] == "video/h264"


def test_unknown_profile_is_400(client: TestClient) -> None:
    f = {"id": new_id(), "source_id": new_id(), "profile_id": new_id()}
    r = put(client, f)
    assert_error(r, 400)
    assert "does not exist" in r.json()["summary"]
    assert client.get(f"/flows/{f['id']}").status_code == 404


@pytest.mark.parametrize(
    "extra",
    [
        {"codec": "video/h264"},
        {"container": "video/mp4"},
        {"avg_bit_rate": 1000},
        {"format": "urn:x-nmos:format:multi"},
        {
            "format": "urn:x-nmos:format:video",
            "codec": "video/h264",
            "essence_parameters": {"frame_width": 1, "frame_height": 1},
        },
    ],
    ids=["codec", "container", "avg_bit_rate", "multi-format", "full-video"],
)
def test_profile_plus_technical_metadata_is_400(client: TestClient, extra: dict[str, Any]) -> None:
    client.post(f"/service/profiles/{PROFILE_ID}", json=PROFILE)
    f = {"id": new_id(), "source_id": new_id(), "profile_id": PROFILE_ID, **extra}
    assert_error(put(client, f), 400)
    assert client.get(f"/flows/{f['id']}").status_code == 404


def test_unlinking_a_profile_allows_new_technical_metadata(client: TestClient) -> None:
    client.post(f"/service/profiles/{PROFILE_ID}", json=PROFILE)
    f = {"id": new_id(), "source_id": new_id(), "profile_id": PROFILE_ID}
    put(client, f)
    # replacing a linked flow with technical metadata but no profile_id would drop the link silently
    v = video_flow(f["id"], f["source_id"], codec="video/h265")
    r = put(client, v)
    assert_error(r, 400)
    assert 'profile_id ""' in r.json()["summary"]
    assert put(client, {**v, "profile_id": ""}).status_code == 204
    body = client.get(f"/flows/{f['id']}").json()
    assert_valid(body, "flow-get.json")
    assert "profile_id" not in body and body["codec"] == "video/h265" and "avg_bit_rate" not in body
    assert client.get(f"/flows?profile_id={PROFILE_ID}").json() == []


# -- deletion ---------------------------------------------------------------------------------------------
def test_delete_removes_flow_and_segments(client: TestClient) -> None:
    f = video_flow()
    put(client, f)
    catalog = services_of(client.app).catalog
    added = catalog.add_segments(f["id"], [{"object_id": "o1", "timerange": "[0:0_10:0)"}])
    assert added.all_accepted
    r = client.delete(f"/flows/{f['id']}")
    assert r.status_code == 204 and r.content == b""
    assert client.get(f"/flows/{f['id']}").status_code == 404
    assert catalog.count("segments") == 0
    assert_error(client.delete(f"/flows/{f['id']}"), 404)
    assert_error(client.delete("/flows/nope"), 404)


# -- events -----------------------------------------------------------------------------------------------
def test_writes_publish_flow_and_source_events(quiet_client: TestClient) -> None:
    c = quiet_client
    put(c, video_flow())
    assert drain(c) == [], "no webhook wants events: nothing is published"
    types = ["sources/created", "flows/created", "flows/updated", "sources/updated", "flows/deleted", "sources/deleted"]
    assert c.post("/service/webhooks", json={"url": "http://127.0.0.1:9/hook", "events": types}).status_code == 201
    f = video_flow()
    put(c, f)
    created = drain(c)
    assert [e.type for e in created] == ["sources/created", "flows/created"]
    assert created[1].body["flow"]["id"] == f["id"]
    assert_valid(created[1].body["flow"], "flow-get.json")
    assert_valid(created[0].body["source"], "source.json")
    put(c, {**f, "label": "x"})
    assert [e.type for e in drain(c)] == ["flows/updated"]
    c.put(f"/flows/{f['id']}/label", json="y")
    c.put(f"/sources/{f['source_id']}/label", json="s")
    assert [e.type for e in drain(c)] == ["flows/updated", "sources/updated"]
    c.delete(f"/flows/{f['id']}")
    deleted = drain(c)
    assert [e.type for e in deleted] == ["flows/deleted", "sources/deleted"]
    assert deleted[1].body == {"source_id": f["source_id"]}
