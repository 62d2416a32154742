"""A body the official schemas refuse is answered with the path of the offending value and the problem in words:
the branch of a flow's ``oneOf`` its ``format`` selects, a timerange or timestamp as the ``timerange`` query
parameter is answered, never the whole body nor a schema's regular expression. Through the API, on a real DuckDB
file."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.server.conftest import new_id, video_flow
from tests.spec import assert_valid


def refused(r: Any) -> str:
    assert r.status_code == 400, r.text
    assert_valid(r.json(), "error.json")
    summary: str = r.json()["summary"]
    assert "^(" not in summary and "[0-9]" not in summary, summary  # no regular expression
    assert "valid under any of the given schemas" not in summary, summary
    return summary


def audio_flow() -> dict[str, Any]:
    body = video_flow(format="urn:x-nmos:format:audio", codec="audio/aac")
    body["essence_parameters"] = {"sample_rate": 48000, "channels": 2}
    return body


@pytest.mark.parametrize(
    ("make", "drop", "said"),
    [
        (video_flow, "frame_rate", "at essence_parameters: 'frame_rate' is a required property (a video flow)"),
        (audio_flow, "channels", "at essence_parameters: 'channels' is a required property (an audio flow)"),
    ],
)
def test_a_flow_is_judged_by_the_branch_its_format_selects(client: TestClient, make: Any, drop: str, said: str) -> None:
    body = make()
    del body["essence_parameters"][drop]
    summary = refused(client.put(f"/flows/{body['id']}", json=body))
    assert said in summary
    assert body["source_id"] not in summary and "'codec'" not in summary  # the body is not echoed


def test_a_flow_of_no_known_format_is_told_what_selects_one(client: TestClient) -> None:
    body = video_flow(format="urn:x-nmos:format:smell")
    summary = refused(client.put(f"/flows/{body['id']}", json=body))
    assert "format 'urn:x-nmos:format:smell' is not one of urn:x-nmos:format:video, urn:x-nmos:format:audio" in summary
    assert "or give profile_id (a flow profile)" in summary and body["source_id"] not in summary


def test_a_value_not_in_its_pattern_is_said_in_words(client: TestClient) -> None:
    body = video_flow(codec="H.264 video")
    summary = refused(client.put(f"/flows/{body['id']}", json=body))
    assert "at codec: 'H.264 video' is not a MIME type (type/subtype, e.g. video/mp2t) (a video flow)" in summary


def test_a_segment_timerange_typo_is_said_as_the_query_parameters_is(client: TestClient) -> None:
    body = video_flow()
    fid = body["id"]
    assert client.put(f"/flows/{fid}", json=body).status_code == 201
    typo = "[1700000000:0-1700000002:0)"
    as_query = refused(client.get(f"/flows/{fid}/segments", params={"timerange": typo}))
    reason = as_query.removeprefix("timerange: ")
    assert reason.startswith(f"invalid timerange '{typo}'")
    single = refused(client.post(f"/flows/{fid}/segments", json={"object_id": "a", "timerange": typo}))
    assert single.endswith(f"at timerange: {reason}"), single
    bulk = client.post(f"/flows/{fid}/segments", json=[{"object_id": "a", "timerange": typo}])
    assert bulk.status_code == 200
    (failure,) = bulk.json()["failed_segments"]
    assert failure["error"]["summary"].endswith(f"at timerange: {reason}")
    offset = refused(
        client.post(f"/flows/{fid}/segments", json={"object_id": "a", "timerange": "[0:0_1:0)", "ts_offset": "1.5"})
    )
    assert "at ts_offset: invalid timestamp '1.5'" in offset


def test_a_long_value_is_not_quoted_whole(client: TestClient) -> None:
    body = video_flow()
    fid = body["id"]
    assert client.put(f"/flows/{fid}", json=body).status_code == 201
    long = "x" * 5000
    summary = refused(client.post(f"/flows/{fid}/segments", json={"object_id": [long], "timerange": "[0:0_1:0)"}))
    assert "at object_id: expected string, not an array" in summary and long[:100] not in summary
    summary = refused(client.post(f"/flows/{fid}/segments", json={"object_id": "a", "timerange": long}))
    assert len(summary) < 600 and "at timerange: invalid timerange" in summary


def test_a_flow_of_two_forms_or_a_bad_profile_id_is_told_so(client: TestClient) -> None:
    both = video_flow(profile_id=new_id())
    summary = refused(client.put(f"/flows/{both['id']}", json=both))
    assert "matches more than one of the forms allowed (a flow profile and a video flow)" in summary
    assert both["source_id"] not in summary and "$ref" not in summary
    profile = {"id": new_id(), "source_id": new_id(), "profile_id": "nope"}
    summary = refused(client.put(f"/flows/{profile['id']}", json=profile))
    assert "at profile_id: 'nope' is not a valid TAMS UUID (lowercase, versions 1-5)" in summary
