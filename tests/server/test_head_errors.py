"""HEAD answers carry the header fields of the GET's (RFC 9110, 9.3.2), errors included: a client that checks an
error's Content-Type gets ``application/json`` on HEAD too, with the Content-Length of the body GET sends.
Over real HTTP (uvicorn on 127.0.0.1), as clients see it."""

from __future__ import annotations

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


# fixed ids, not uuid4(): the test ids must be the same in every pytest-xdist worker
@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/flows/3f0c2a9e-5b7d-4e61-9a48-0d2c7e1b6f35", 404),  # the library's NotFoundError
        ("/flows/not-a-uuid", 404),
        ("/flows?limit=many", 400),  # request validation
        ("/flows?timerange=yesterday", 400),
        ("/objects/8d41b6c2-7e0f-4a93-b5d8-61e2c9f0a4b7", 404),
        ("/sources/c2e97f15-0a6b-4d38-8f21-5b9d3e7a0c64/label", 404),
        ("/no/such/endpoint", 404),  # routing
        # the local store's signed URLs
        ("/_media/6a0e3d8b-f4c1-4b72-9e05-2d7a8c1f9b36.ts?method=GET&expires=1&sig=00", 403),
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
