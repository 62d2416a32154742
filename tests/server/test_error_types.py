"""One vocabulary of ``error.json`` types: every error answer, from a route, a media route, a library exception,
authentication or the server's limits, carries the type its status names (``server.errors.TYPES``: the spec's
own style, ``TAMSError``), and a valid ``error.json`` body; so does each ``failed_segments`` error. Over real HTTP
(uvicorn on 127.0.0.1) on a real DuckDB file and local storage."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from server.app import create_app
from server.config import Settings
from tests.fixtures.live import serve
from tests.server.conftest import video_flow
from tests.spec import assert_valid

#: the agreed type of each status (the vocabulary, written out here so that a change to it is a change here too)
AGREED = {
    400: "BadRequestError",
    401: "UnauthorizedError",
    403: "ForbiddenError",
    404: "NotFoundError",
    405: "MethodNotAllowedError",
    413: "PayloadTooLargeError",
    416: "RangeNotSatisfiableError",
}


class Store:
    """A served store with a flow (a segment whose media is stored, one whose media never was) and a read-only
    flow."""

    def __init__(self, api: httpx.Client) -> None:
        self.api = api
        flow = video_flow()
        self.flow = flow["id"]
        assert api.put(f"/flows/{self.flow}", json=flow).status_code == 201
        media, unsent = api.post(f"/flows/{self.flow}/storage", json={"limit": 2}).json()["media_objects"]
        put = media["put_url"]
        with httpx.Client(trust_env=False) as plain:
            stored = plain.put(put["url"], content=b"media", headers={"content-type": put["content-type"]})
            assert stored.status_code == 200
        segs = [
            {"object_id": media["object_id"], "timerange": "[0:0_10:0)"},
            {"object_id": unsent["object_id"], "timerange": "[30:0_31:0)"},  # its media never uploaded
        ]
        assert api.post(f"/flows/{self.flow}/segments", json=segs).status_code == 201
        listed, not_there = api.get(f"/flows/{self.flow}/segments").json()
        self.media_url, self.unsent_url = listed["get_urls"][0]["url"], not_there["get_urls"][0]["url"]
        locked = video_flow()
        self.locked = locked["id"]
        assert api.put(f"/flows/{self.locked}", json=locked).status_code == 201
        assert api.put(f"/flows/{self.locked}/read_only", json=True).status_code == 204


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    data = tmp_path_factory.mktemp("errors") / "data"
    with serve(create_app(Settings(data_dir=data, max_body_bytes=4096))) as api:
        yield Store(api)


def _plain() -> httpx.Client:
    return httpx.Client(trust_env=False, timeout=30)


REQUESTS: dict[str, tuple[int, Callable[[Store], httpx.Response]]] = {
    # the library's NotFoundError, a route's own 404, an id that is not one, routing
    "GET_flows-flowId, no such flow": (404, lambda s: s.api.get(f"/flows/{uuid.uuid4()}")),
    "GET_flows-flowId, not an id": (404, lambda s: s.api.get("/flows/not-a-uuid")),
    "GET_sources-sourceId": (404, lambda s: s.api.get(f"/sources/{uuid.uuid4()}")),
    "GET_objects-objectId": (404, lambda s: s.api.get(f"/objects/{uuid.uuid4()}")),
    "POST_flows-flowId-storage, no such flow": (404, lambda s: s.api.post(f"/flows/{uuid.uuid4()}/storage", json={})),
    "DELETE_flows-flowId": (404, lambda s: s.api.delete(f"/flows/{uuid.uuid4()}")),
    "GET_flows-flowId-tags-name": (404, lambda s: s.api.get(f"/flows/{s.flow}/tags/nope")),
    "no such endpoint": (404, lambda s: s.api.get("/no/such/endpoint")),
    # request validation, body validation, the library's ConflictError and TamsError
    "GET_flows, a bad timerange": (400, lambda s: s.api.get("/flows", params={"timerange": "yesterday"})),
    "GET_flows, a bad limit": (400, lambda s: s.api.get("/flows", params={"limit": "many"})),
    "PUT_flows-flowId, a bad body": (400, lambda s: s.api.put(f"/flows/{s.flow}", json={"id": s.flow})),
    "POST_flows-flowId-segments, a bad body": (
        400,
        lambda s: s.api.post(f"/flows/{s.flow}/segments", json={"object_id": "x", "timerange": "[0:0-1:0)"}),
    ),
    "POST_flows-flowId-segments, an overlap": (
        400,
        lambda s: s.api.post(f"/flows/{s.flow}/segments", json={"object_id": "x", "timerange": "[5:0_6:0)"}),
    ),
    "PUT_flows-flowId-read-only, not a boolean": (400, lambda s: s.api.put(f"/flows/{s.flow}/read_only", json="no")),
    # the library's ReadOnlyError
    "POST_flows-flowId-segments, read-only": (
        403,
        lambda s: s.api.post(f"/flows/{s.locked}/segments", json={"object_id": "y", "timerange": "[0:0_1:0)"}),
    ),
    "PUT_flows-flowId-label, read-only": (403, lambda s: s.api.put(f"/flows/{s.locked}/label", json="x")),
    "a method the path does not have": (405, lambda s: s.api.patch("/flows")),
    "a body over the server's limit": (413, lambda s: s.api.put(f"/flows/{s.flow}/description", json="x" * 5000)),
    # the media routes
    "media, no such object": (404, lambda s: _plain().get(s.unsent_url)),
    "media, a tampered URL": (403, lambda s: _plain().get(s.media_url.replace("method=GET", "method=PUT"))),
    "media, a range past the end": (416, lambda s: _plain().get(s.media_url, headers={"Range": "bytes=99-"})),
}


@pytest.mark.parametrize("name", list(REQUESTS))
def test_an_error_answer_has_the_type_its_status_names(store: Store, name: str) -> None:
    status, send = REQUESTS[name]
    got = send(store)
    assert got.status_code == status, got.text
    body = got.json()
    assert_valid(body, "error.json")
    assert body["type"] == AGREED[status], body


def test_every_status_of_the_vocabulary_is_answered_here() -> None:
    assert {status for status, _ in REQUESTS.values()} | {401} == set(AGREED)


def test_a_refused_credential_is_an_unauthorized_error(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", auth="basic", basic_users="ann:secret")
    with serve(create_app(settings)) as api:
        got = api.get("/flows")
    assert got.status_code == 401
    assert_valid(got.json(), "error.json")
    assert got.json()["type"] == AGREED[401]


def test_a_refused_segment_of_a_bulk_post_has_the_same_type(store: Store) -> None:
    body: list[Any] = [{"object_id": "z", "timerange": "[5:0_6:0)"}, {"object_id": 7, "timerange": "[20:0_21:0)"}]
    got = store.api.post(f"/flows/{store.flow}/segments", json=body)
    assert got.status_code == 200, got.text
    assert_valid(got.json(), "flow-segment-bulk-failure.json")
    errors = [f["error"] for f in got.json()["failed_segments"]]
    assert len(errors) == 2 and all(e["type"] == AGREED[400] for e in errors)
