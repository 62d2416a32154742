"""HEAD answers carry the header fields of the GET's (RFC 9110, 9.3.2), errors included: a client that checks an
error's Content-Type gets ``application/json`` on HEAD too, with the Content-Length of the body GET sends.
Over real HTTP (uvicorn on 127.0.0.1), as clients see it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest

from server.app import create_app
from server.config import Settings
from tests.fixtures.live import serve
from tests.server.conftest import video_flow
from tests.spec import assert_valid


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    data = tmp_path_factory.mktemp("head") / "data"
    with serve(create_app(Settings(data_dir=data))) as api:
        yield api


@pytest.fixture(scope="module")
def unplayable(live: httpx.Client) -> str:
    """A flow HLS cannot play (JSON data; WebVTT captions play, as subtitles)."""
    flow = video_flow(format="urn:x-nmos:format:data", codec="application/json", container="application/json")
    flow["essence_parameters"] = {"data_type": "urn:x-tam:data:subtitles"}
    assert live.put(f"/flows/{flow['id']}", json=flow).status_code == 201
    return str(flow["id"])


@pytest.mark.parametrize(
    ("path", "status"),
    [
        (f"/flows/{uuid.uuid4()}", 404),  # the library's NotFoundError
        ("/flows/not-a-uuid", 404),
        ("/flows?limit=many", 400),  # request validation
        ("/flows?timerange=yesterday", 400),
        (f"/objects/{uuid.uuid4()}", 404),
        (f"/sources/{uuid.uuid4()}/label", 404),
        ("/no/such/endpoint", 404),  # routing
        (f"/_media/{uuid.uuid4()}.ts?method=GET&expires=1&sig=00", 403),  # the local store's signed URLs
        ("/flows/{unplayable}/playlist.m3u8", 400),
    ],
)
def test_head_of_an_error_has_the_gets_header_fields(
    live: httpx.Client, unplayable: str, path: str, status: int
) -> None:
    url = path.format(unplayable=unplayable)
    got, head = live.get(url), live.head(url)
    assert got.status_code == head.status_code == status, (got.text, head.headers)
    assert_valid(got.json(), "error.json")
    assert got.headers["content-type"] == head.headers.get("content-type") == "application/json"
    assert head.headers["content-length"] == got.headers["content-length"] == str(len(got.content))
    assert head.content == b""


def test_head_of_a_playlist_has_the_gets_header_fields(live: httpx.Client) -> None:
    flow = video_flow()
    assert live.put(f"/flows/{flow['id']}", json=flow).status_code == 201
    url = f"/flows/{flow['id']}/playlist.m3u8"
    got, head = live.get(url), live.head(url)
    assert got.status_code == head.status_code == 200
    assert got.headers["content-type"] == head.headers["content-type"] == "application/vnd.apple.mpegurl"
    assert head.headers["content-length"] == got.headers["content-length"] != "0"
    assert head.content == b""
