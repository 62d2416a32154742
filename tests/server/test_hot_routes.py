"""The live-ingest routes served past FastAPI's per-request machinery (``server.hot_routes``) answer exactly as the
FastAPI routes they stand in front of: the same statuses, headers and bodies, errors, auth and metrics."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from server import hot_routes
from server.app import create_app
from server.config import Settings
from tests.server.conftest import new_id, video_flow

NS = 1_000_000_000
#: headers that differ between any two answers
_VARYING = {"x-request-id", "date"}


class Served:
    """A server with a flow of six one-minute segments; :meth:`both` answers a request through the hot route and
    through the FastAPI route alone (the hot route taken out for it)."""

    def __init__(self, client: TestClient, app: FastAPI, flow_id: str) -> None:
        self.client, self.app, self.flow_id = client, app, flow_id

    def both(self, method: str, url: str, body: str | None = None) -> tuple[Any, Any]:
        hot = _answer(self.client, method, url, body)
        routes = self.app.router.routes
        at = next(k for k, r in enumerate(routes) if getattr(r, "name", None) == "segments-hot")
        route = routes.pop(at)
        try:
            plain = _answer(self.client, method, url, body)
        finally:
            routes.insert(at, route)
        return hot, plain


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    app = create_app(Settings(data_dir=tmp_path / "data"))
    with TestClient(app) as client:
        flow_id = video_flow()["id"]
        assert client.put(f"/flows/{flow_id}", json=video_flow(flow_id)).status_code == 201
        for k in range(6):
            body = {"object_id": new_id(), "timerange": f"[{k}:0_{k + 1}:0)"}
            assert client.post(f"/flows/{flow_id}/segments", json=body).status_code == 201
        yield Served(client, app, flow_id)


def _answer(client: TestClient, method: str, url: str, body: str | None = None) -> tuple[int, dict[str, str], Any]:
    headers = {"content-type": "application/json"} if body is not None else {}
    r = client.request(method, url, content=body, headers=headers)
    headers = {k: v for k, v in r.headers.items() if k not in _VARYING}
    content: Any = (
        r.json() if r.content and r.headers.get("content-type", "").startswith("application/json") else r.content
    )
    return r.status_code, headers, _timeless(content)


def _timeless(doc: Any) -> Any:
    """``doc`` without the ``time`` of its error bodies (they differ between any two answers)."""
    if isinstance(doc, dict):
        return {k: _timeless(v) for k, v in doc.items() if k != "time"}
    if isinstance(doc, list):
        return [_timeless(v) for v in doc]
    return doc


@pytest.mark.parametrize(
    "query",
    [
        "",
        "?limit=2",
        "?limit=2&reverse_order=true",
        "?reverse_order=true&limit=1",
        "?timerange=[2:0_4:0)",
        "?limit=abc",  # not an integer: the FastAPI route's own 400
        "?limit=%2B3",  # '+3': FastAPI reads it; the hot route hands it over
        "?limit=-1",
        "?limit=0",
        "?reverse_order=maybe",
        "?timerange=nonsense",
        "?page=notakey",
        "?include_object_timerange=true&limit=1",
        "?object_id=nope",
        "?limit=2&limit=3",
    ],
)
def test_a_listing_answers_as_the_fastapi_route_does(served: Served, query: str) -> None:
    for method in ("GET", "HEAD"):
        got, want = served.both(method, f"/flows/{served.flow_id}/segments{query}")
        assert got == want, (method, query)


def test_next_pages_answer_alike(served: Served) -> None:
    key = served.client.get(f"/flows/{served.flow_id}/segments?limit=2").headers["x-paging-nextkey"]
    url = f"/flows/{served.flow_id}/segments?limit=2&page={key}"
    got, want = served.both("GET", url)
    assert got == want
    assert [s["timerange"] for s in got[2]] == ["[2:0_3:0)", "[3:0_4:0)"]


@pytest.mark.parametrize(
    "body",
    [
        "not json",
        {"object_id": "x"},  # no timerange: the schema's 400
        {"object_id": "a", "timerange": "[0:0_1:0)"},  # overlaps a stored segment: 400
        [{"object_id": "b", "timerange": "[0:0_1:0)"}, {"object_id": "c", "timerange": "bad"}],  # 200, both failed
        [],
    ],
)
def test_a_refused_post_answers_as_the_fastapi_route_does(served: Served, body: Any) -> None:
    raw = body if isinstance(body, str) else json.dumps(body)
    got, want = served.both("POST", f"/flows/{served.flow_id}/segments", raw)
    assert got == want
    assert got[0] in (200, 201, 400)


def test_posts_and_reads_go_through_the_hot_route_and_count_in_the_metrics(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    hot, flow_id, routes = served.client, served.flow_id, served.app.router.routes
    assert getattr(routes[0], "name", None) == "segments-hot"
    seen: list[str] = []
    endpoint = hot_routes._SegmentsRoute._endpoint

    async def counting(self: Any, request: Any) -> Any:
        seen.append(request.method)
        return await endpoint(self, request)

    monkeypatch.setattr(hot_routes._SegmentsRoute, "_endpoint", counting)
    first = routes[0]
    assert isinstance(first, hot_routes._SegmentsRoute)
    routes[0] = hot_routes._SegmentsRoute(first.by_method, first.authorizer)  # its endpoint: the counting one
    before = _requests(hot, "POST")
    assert (
        hot.post(f"/flows/{flow_id}/segments", json={"object_id": new_id(), "timerange": "[9:0_10:0)"}).status_code
        == 201
    )
    assert hot.get(f"/flows/{flow_id}/segments?reverse_order=true&limit=1").json()[0]["timerange"] == "[9:0_10:0)"
    assert seen == ["POST", "GET"]
    assert _requests(hot, "POST") == before + 1  # labelled with the route's template, as FastAPI's were


def _requests(client: TestClient, method: str) -> float:
    for line in client.get("/metrics").text.splitlines():
        if (
            line.startswith("tams_http_requests_total{")
            and f'method="{method}"' in line
            and 'route="/flows/{flow_id}/segments"' in line
            and 'status="201"' in line
        ):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_auth_applies_on_the_hot_route(tmp_path: Path) -> None:
    """With basic auth on, the hot route refuses a request without credentials as the API does (401)."""
    settings = Settings(data_dir=tmp_path / "data", auth="basic", basic_users="rec:pw")  # type: ignore[arg-type]
    with TestClient(create_app(settings)) as client:
        flow_id = new_id()
        assert client.get(f"/flows/{flow_id}/segments").status_code == 401
        assert (
            client.post(f"/flows/{flow_id}/segments", json={"object_id": "a", "timerange": "[0:0_1:0)"}).status_code
            == 401
        )
        assert client.get(f"/flows/{flow_id}/segments", auth=("rec", "pw")).status_code == 200
