"""GET/HEAD /flows/{flowId}/coverage: a flow's runs and gaps at a resolution, as the console's timeline draws them.

Every answer is checked against a brute force over the segments the test posted (runs formed in Python), and the gaps
against the library's own :func:`~tams_analytics.analytics.coverage.flow_gaps` (what ``report coverage`` lists).
"""

from __future__ import annotations

import random
from typing import Any

import pytest
from fastapi.testclient import TestClient

from server.services import services_of
from tams_analytics.analytics import coverage
from tams_analytics.timerange import TimeRange
from tests.server.conftest import new_id, video_flow

NS = 1_000_000_000
T0 = 1_700_000_000 * NS


def _flow(client: TestClient, bounds: list[tuple[int, int]]) -> str:
    body = video_flow()
    assert client.put(f"/flows/{body['id']}", json=body).status_code == 201
    segments = [{"object_id": new_id(), "timerange": str(TimeRange.from_ns(a, b))} for a, b in bounds]
    for i in range(0, len(segments), 100):
        r = client.post(f"/flows/{body['id']}/segments", json=segments[i : i + 100])
        assert r.status_code == 201, r.text
    return str(body["id"])


def _runs(bounds: list[tuple[int, int]], min_gap: int, lo: int, hi: int) -> list[tuple[int, int, int]]:
    """Runs of the segments overlapping [lo, hi), clipped to it, gaps under ``min_gap`` inside runs: by brute force."""
    out: list[list[int]] = []
    for a, b in sorted(x for x in bounds if x[0] < hi and x[1] > lo):
        if out and a - out[-1][1] < max(min_gap, 1):
            out[-1][1] = max(out[-1][1], b)
            out[-1][2] += 1
        else:
            out.append([a, b, 1])
    return [(max(a, lo), min(b, hi), n) for a, b, n in out]


def _coverage(client: TestClient, flow_id: str, **params: Any) -> dict[str, Any]:
    r = client.get(f"/flows/{flow_id}/coverage", params=params)
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def test_runs_and_gaps_are_the_flows_own_at_every_resolution(client: TestClient) -> None:
    rng = random.Random(54)
    bounds, t = [], T0
    for _ in range(300):
        t += rng.choice([0] * 8 + [NS // 25, NS, 7 * NS])  # mostly contiguous; a frame, a second or 7 s missing
        bounds.append((t, t + 2 * NS))
        t += 2 * NS
    flow_id = _flow(client, bounds)
    lo, hi = bounds[0][0], bounds[-1][1]
    whole = _coverage(client, flow_id)
    assert whole["timerange"] == whole["extent"] == str(TimeRange.from_ns(lo, hi))
    catalog = services_of(client.app).catalog  # type: ignore[attr-defined]
    assert whole["gaps"] == [str(g) for g in coverage.flow_gaps(catalog, flow_id)]
    assert whole["segments"] == 300 and not whole["truncated"]
    for resolution, window in [
        (0, (lo, hi)),
        (NS // 10, (lo, hi)),
        (2 * NS, (lo, hi)),
        (10 * NS, (lo, hi)),
        (0, (lo + 101 * NS, lo + 333 * NS)),
        (3 * NS, (lo - 50 * NS, lo + 200 * NS)),
    ]:
        found = _coverage(client, flow_id, timerange=str(TimeRange.from_ns(*window)), resolution=resolution)
        want = _runs(bounds, resolution, *window)
        assert [(r["timerange"], r["segments"]) for r in found["runs"]] == [
            (str(TimeRange.from_ns(a, b)), n) for a, b, n in want
        ], (resolution, window)
        edges = [window[0], *[x for a, b, _ in want for x in (a, b)], window[1]]
        want_gaps = [str(TimeRange.from_ns(a, b)) for a, b in zip(edges[::2], edges[1::2], strict=True) if a < b]
        assert found["gaps"] == want_gaps
        assert found["resolution"] == resolution


def test_a_window_without_segments_is_one_gap_and_a_flow_without_segments_has_no_extent(client: TestClient) -> None:
    flow_id = _flow(client, [(T0, T0 + NS)])
    found = _coverage(client, flow_id, timerange=f"[{T0 // NS + 10}:0_{T0 // NS + 20}:0)")
    assert found["runs"] == [] and found["gaps"] == [f"[{T0 // NS + 10}:0_{T0 // NS + 20}:0)"]
    empty = _flow(client, [])
    assert _coverage(client, empty) == {
        "flow_id": empty,
        "timerange": "()",
        "extent": "()",
        "resolution": 0,
        "segments": 0,
        "runs": [],
        "gaps": [],
        "truncated": False,
    }


def test_more_runs_than_the_limit_are_cut_and_said_to_be(client: TestClient) -> None:
    bounds = [(T0 + i * 2 * NS, T0 + i * 2 * NS + NS) for i in range(12)]  # a gap after every segment
    flow_id = _flow(client, bounds)
    found = _coverage(client, flow_id, limit=5)
    assert found["truncated"] is True and len(found["runs"]) == 5 and len(found["gaps"]) == 4
    assert _coverage(client, flow_id, resolution=2 * NS)["runs"] == [
        {"timerange": str(TimeRange.from_ns(T0, T0 + 23 * NS)), "segments": 12}
    ]


@pytest.mark.parametrize(
    ("params", "status", "says"),
    [
        ({"resolution": "-1"}, 400, "resolution"),
        ({"resolution": "soon"}, 400, "resolution"),
        ({"limit": "0"}, 400, "limit"),
        ({"limit": "5001"}, 400, "limit"),
        ({"timerange": "[5:0_soon)"}, 400, "timerange"),
    ],
)
def test_bad_queries_are_400_with_a_tams_error(
    client: TestClient, params: dict[str, str], status: int, says: str
) -> None:
    flow_id = _flow(client, [(T0, T0 + NS)])
    r = client.get(f"/flows/{flow_id}/coverage", params=params)
    assert r.status_code == status and says in r.json()["summary"], r.text
    assert r.json()["type"]


def test_an_unknown_flow_is_404_and_head_answers_the_gets_headers(client: TestClient) -> None:
    r = client.get(f"/flows/{new_id()}/coverage")
    assert r.status_code == 404 and "does not exist" in r.json()["summary"]
    assert client.get("/flows/not-a-uuid/coverage").status_code in (400, 404)
    flow_id = _flow(client, [(T0, T0 + NS)])
    got, head = client.get(f"/flows/{flow_id}/coverage"), client.head(f"/flows/{flow_id}/coverage")
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == got.headers["content-length"]


def test_the_coverage_operation_is_documented_as_this_servers_extension(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    get = doc["paths"]["/flows/{flowId}/coverage"]["get"]
    assert get["operationId"] == "GET_flows-flowId-coverage" and get["x-tams-analytics-extension"] is True
    names = {p["name"] for p in get["parameters"]}
    assert {"flowId", "timerange", "resolution", "limit"} <= names
