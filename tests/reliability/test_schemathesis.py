"""Schemathesis (v4) against the OFFICIAL TAMS OpenAPI file, on the live server: no 5xx, no schema breaks.

Every one of the spec's 85 operations gets ``EXAMPLES`` generated requests per run, in three runs:
schema-valid data with random ids (mostly 404s), schema-valid data on ids that exist (a seeded flow with
segments and media, its source, a webhook, a profile, an object, a tag), and schema-invalid data on those
ids. Checks: no 5xx (``not_a_server_error``), status codes the spec declares, declared content types,
declared response headers (``Link``, ``X-Paging-*``), response bodies valid against the official schemas,
every 4xx body an ``error.json``, and (invalid data) that invalid requests are refused.

Configured around the spec, and why:

* 400 is accepted on every operation. The spec leaves ``limit`` (any integer) and ``page`` (any string)
  free, yet declares no 400 on some listings (``/service/storage-backends``, ``/service/webhooks``,
  ``/flow-delete-requests``); this server answers 400 for ``limit < 1`` and for page keys it never issued
  (DIGEST §3 *[interp]*), which is what Schemathesis reports as "undocumented status code" there.
* No 401 can occur: auth is off here (``test_security.py`` covers auth). The spec declares no 4xx bodies,
  so 4xx bodies are checked against ``error.json``, the house convention, by a check of our own.
* An empty ``accept_storage_ids=`` is accepted although ``uuid-list.json`` forbids it: the spec's own
  text says empty means "no filtering" (DIGEST §4.1), so invalid-data runs do not flag it.
* A query parameter given twice (``limit=true&limit=5``) is answered from its last value (Starlette's
  rule; TAMS has no repeated parameters, lists are comma-separated), so invalid-data runs do not flag
  requests that repeat one.
* A request uvicorn's HTTP parser refuses (invalid bytes in a header line, which invalid-data runs
  generate) is answered by uvicorn itself, before the application, with a ``text/plain`` 400 that is
  not an ``error.json``; that one body is accepted.
* Requests are not shrunk (``Phase.generate`` only): a finding is reported with a curl line to replay.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, Phase, given, settings

from tests.reliability.conftest import LiveServer, report
from tests.server.conftest import video_flow
from tests.spec import assert_valid

schemathesis = pytest.importorskip("schemathesis")
from schemathesis import GenerationMode  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.specs.openapi.checks import (  # noqa: E402
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

#: generated requests per operation and run
EXAMPLES = 8
#: uvicorn's own answer to a request its HTTP parser refuses (e.g. control characters in a header)
UVICORN_400 = b"Invalid HTTP request received."


def status_code_conformance_but_400(ctx: Any, response: Any, case: Any) -> bool | None:
    """The spec's status codes, except that 400 is always allowed (see the module docstring)."""
    if response.status_code == 400:
        return None
    return status_code_conformance(ctx, response, case)


def negative_data_rejection_as_documented(ctx: Any, response: Any, case: Any) -> bool | None:
    """Invalid requests are refused, except the two leniencies the module docstring lists."""
    query = case.query or {}
    if query.get("accept_storage_ids") == "" or any(isinstance(v, list) for v in query.values()):
        return None
    return negative_data_rejection(ctx, response, case)


def error_json_bodies(ctx: Any, response: Any, case: Any) -> bool | None:
    """Every 4xx answer with a body carries an ``error.json`` document."""
    if 400 <= response.status_code < 500 and case.method.upper() != "HEAD":
        if response.content == UVICORN_400:
            return None  # refused by the HTTP server before the application (see the module docstring)
        try:
            body = json.loads(response.content)
        except ValueError:
            raise AssertionError(
                f"{case.method} {case.formatted_path}: {response.status_code} with a body that is not JSON: "
                f"{response.content[:200]!r}"
            ) from None
        assert_valid(body, "error.json")
    return None


CHECKS: list[Callable[..., Any]] = [
    not_a_server_error,
    status_code_conformance_but_400,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    error_json_bodies,
]


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    root = tmp_path_factory.mktemp("fuzz")
    server = LiveServer(root / "data", name="fuzz")
    server.data_dir.mkdir()
    server.start()
    yield server
    server.kill()


@pytest.fixture(scope="module")
def existing_ids(fuzz_server: LiveServer) -> dict[str, str]:
    """Path parameters naming things that exist: a flow with media segments, its source, a tag, ..."""
    with fuzz_server.client() as c:
        flow = video_flow(tags={"genre": "news"}, label="fuzz")
        fid = flow["id"]
        assert c.put(f"/flows/{fid}", json=flow).status_code == 201
        media = c.post(f"/flows/{fid}/storage", json={"limit": 3}).json()["media_objects"]
        for m in media:
            assert httpx.put(m["put_url"]["url"], content=b"x", headers=m["put_url"].get("headers")).status_code < 300
        segs = [{"object_id": m["object_id"], "timerange": f"[{i}:0_{i + 1}:0)"} for i, m in enumerate(media)]
        assert c.post(f"/flows/{fid}/segments", json=segs).status_code == 201
        # a public address that is never called: the webhook is disabled
        hook = {"url": "http://93.184.216.34/fuzz", "events": ["flows/created"], "status": "disabled"}
        webhook = c.post("/service/webhooks", json=hook)
        assert webhook.status_code == 201, webhook.text
        pid = str(uuid.uuid4())
        data = {
            "format": "urn:x-nmos:format:data",
            "codec": "application/json",
            "essence_parameters": {"data_type": "x"},
        }
        profile = {"id": pid, "label": "fuzz", "flow_metadata": data}
        assert c.post(f"/service/profiles/{pid}", json=profile).status_code == 201
    return {
        "flowId": fid,
        "sourceId": flow["source_id"],
        "webhookId": webhook.json()["id"],
        "profileId": pid,
        "objectId": media[0]["object_id"],
        "name": "genre",
    }


RUNS = {
    "valid-data-random-ids": (GenerationMode.POSITIVE, False),
    "valid-data-existing-ids": (GenerationMode.POSITIVE, True),
    "invalid-data-existing-ids": (GenerationMode.NEGATIVE, True),
}


def fuzz_operation(
    operation: Any, base_url: str, mode: GenerationMode, path_parameters: dict[str, str] | None
) -> tuple[int, list[str]]:
    """Run ``EXAMPLES`` generated requests of one operation; the number sent and the findings."""
    negative = [negative_data_rejection_as_documented] if mode == GenerationMode.NEGATIVE else []
    checks = [*CHECKS, *negative]
    sent = 0
    findings: list[str] = []

    @given(case=operation.as_strategy(generation_mode=mode, path_parameters=path_parameters))
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def run(case: Any) -> None:
        nonlocal sent
        sent += 1
        response = case.call(base_url=base_url, timeout=30)
        try:
            case.validate_response(response, checks=checks)
        except (AssertionError, BaseExceptionGroup) as exc:
            findings.append(f"{operation.label}: {str(exc).strip()[:1500]}")

    run()
    return sent, findings


@pytest.mark.slow
@pytest.mark.parametrize("run_name", list(RUNS))
def test_official_spec_fuzzing_finds_no_5xx_and_no_schema_breaks(
    run_name: str, spec_yaml: Path, fuzz_server: LiveServer, existing_ids: dict[str, str]
) -> None:
    mode, use_existing = RUNS[run_name]
    schema = schemathesis.openapi.from_path(spec_yaml)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == 85
    total = 0
    findings: list[str] = []
    for op in operations:
        params = {p.name: existing_ids[p.name] for p in op.path_parameters if p.name in existing_ids}
        sent, found = fuzz_operation(op, fuzz_server.url, mode, params if use_existing else None)
        total += sent
        findings += found
    log = fuzz_server.log_text()
    server_errors = [line for line in log.splitlines() if "unhandled error" in line or '" 500 ' in line]
    report(f"schemathesis {run_name}", f"{total} cases over {len(operations)} operations, {len(findings)} findings")
    assert not server_errors, server_errors[:5]
    assert not findings, "\n\n".join(findings[:10])
