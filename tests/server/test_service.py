"""/ and /service: bodies valid against the official schemas, POST /service, storage backends."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.spec import assert_valid, assert_valid_list


def test_root_lists_paths(client: TestClient) -> None:
    r = client.get("/")
    assert r.status_code == 200
    assert {"service", "flows", "sources", "flow-delete-requests"} <= set(r.json())
    h = client.head("/")
    assert h.status_code == 200 and h.content == b""


def test_service_body_is_valid(client: TestClient) -> None:
    r = client.get("/service")
    assert r.status_code == 200
    body = r.json()
    assert_valid(body, "service.json")
    assert body["api_version"] == "8.2"
    assert body["type"].startswith("urn:x-tams:service")


def test_post_service_updates_name_and_rejects_bad_bodies(client: TestClient) -> None:
    assert client.post("/service", json={"name": "archive", "description": "d"}).status_code == 200
    assert client.get("/service").json()["name"] == "archive"
    bad = client.post("/service", json={"name": 5})
    assert bad.status_code == 400
    assert_valid(bad.json(), "error.json")
    malformed = client.post("/service", content=b"{not json", headers={"content-type": "application/json"})
    assert malformed.status_code == 400
    assert "malformed JSON" in malformed.json()["summary"]


def test_storage_backends_listed_with_paging_headers(client: TestClient) -> None:
    r = client.get("/service/storage-backends")
    assert r.status_code == 200
    assert_valid(r.json(), "storage-backends-list.json")
    assert len(r.json()) == 1 and r.json()[0]["default_storage"] is True
    assert r.headers["X-Paging-Limit"] == "100"
    assert r.headers["X-Paging-Count"] == "1"
    assert "Link" not in r.headers


def test_unknown_path_gets_error_json(client: TestClient) -> None:
    r = client.get("/nope")
    assert r.status_code == 404
    assert_valid(r.json(), "error.json")


def test_profiles_round_trip(client: TestClient) -> None:
    profile = {
        "id": "0b2a5d4e-8f3c-4b1a-9e7d-6c5b4a3f2e1d",
        "label": "HD",
        "flow_metadata": {
            "format": "urn:x-nmos:format:video",
            "codec": "video/h264",
            "essence_parameters": {"frame_width": 1920, "frame_height": 1080, "frame_rate": {"numerator": 25}},
        },
    }
    r = client.post(f"/service/profiles/{profile['id']}", json=profile)
    assert r.status_code == 201, r.text
    assert client.post(f"/service/profiles/{profile['id']}", json=profile).status_code == 400
    got = client.get(f"/service/profiles/{profile['id']}")
    assert got.status_code == 200 and got.json() == profile
    listing = client.get("/service/profiles")
    assert_valid_list(listing.json(), "profile.json")
    assert client.get("/service/profiles/0b2a5d4e-8f3c-4b1a-9e7d-6c5b4a3f2e10").status_code == 404
