"""Object storage going away under a running server, and coming back: a real SeaweedFS stopped and started again.

While it is down, ``/ready`` answers 503 naming the bucket, the endpoint and the cause, storage allocations answer
503 (``error.json``, ``Retry-After``) instead of PUT URLs nobody can use, and a flow deleted meanwhile has its bytes
queued, not forgotten; once it answers again everything resumes by itself and those bytes go.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from server.app import create_app
from server.config import Settings
from server.gc import collect_once
from server.services import Services, services_of
from tests.fixtures.live import serve
from tests.fixtures.s3 import SeaweedFS, _client
from tests.server.conftest import metric, video_flow
from tests.spec import assert_valid

#: a "now" past the service's min_object_timeout (time travel instead of waiting for it)
LATER = dt.timedelta(days=1)


def wait_for(check: Callable[[], bool], what: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, f"not within {timeout_s:g} s: {what}"
        time.sleep(0.05)


@pytest.fixture
def bucket(restartable_s3: SeaweedFS) -> str:
    name = f"faults-{uuid.uuid4().hex[:16]}"
    _client(restartable_s3.info).create_bucket(Bucket=name)
    return name


def s3_settings(tmp_path: Path, s3: SeaweedFS, bucket: str, **extra: Any) -> Settings:
    info = s3.info
    return Settings(
        data_dir=tmp_path / "data",
        storage="s3",
        s3_endpoint=info.endpoint_url,
        s3_bucket=bucket,
        s3_region=info.region,
        s3_access_key=info.access_key,
        s3_secret_key=info.secret_key,
        **extra,
    )


@pytest.fixture
def api(tmp_path: Path, restartable_s3: SeaweedFS, bucket: str) -> Iterator[httpx.Client]:
    """A served app on S3, checking object storage every 0.1 s, with no grace period (its GC passes are the test's
    own: ``collect_once``)."""
    settings = s3_settings(tmp_path, restartable_s3, bucket, storage_probe_s=0.1, object_grace_s=0)
    app = create_app(settings)
    with serve(app) as client:
        client.app = app  # type: ignore[attr-defined]
        yield client


def services(api: httpx.Client) -> Services:
    return services_of(api.app)  # type: ignore[attr-defined]


def new_flow(api: httpx.Client) -> str:
    flow = video_flow()
    assert api.put(f"/flows/{flow['id']}", json=flow).status_code == 201
    return str(flow["id"])


def upload(api: httpx.Client, flow_id: str, n: int) -> list[str]:
    """Allocate ``n`` objects, PUT bytes to their URLs (straight to S3) and register them; their ids."""
    r = api.post(f"/flows/{flow_id}/storage", json={"limit": n})
    assert r.status_code == 201, r.text
    ids = []
    with httpx.Client(trust_env=False, timeout=30) as plain:
        for media in r.json()["media_objects"]:
            put = media["put_url"]
            assert plain.put(put["url"], content=b"bytes", headers=put["headers"]).status_code == 200
            ids.append(media["object_id"])
    segments = [{"object_id": oid, "timerange": f"[{i}:0_{i + 1}:0)"} for i, oid in enumerate(ids)]
    assert api.post(f"/flows/{flow_id}/segments", json=segments).status_code == 201
    return ids


def stored_keys(s3: SeaweedFS, bucket: str) -> set[str]:
    listing = _client(s3.info).list_objects_v2(Bucket=bucket)
    return {o["Key"] for o in listing.get("Contents", [])}


def test_s3_stopped_and_started_under_a_running_server(
    api: httpx.Client, restartable_s3: SeaweedFS, bucket: str
) -> None:
    flow_id = new_flow(api)
    upload(api, flow_id, 2)
    assert len(stored_keys(restartable_s3, bucket)) == 2
    assert api.get("/ready").status_code == 200
    endpoint = restartable_s3.info.endpoint_url

    restartable_s3.stop()
    unreachable = f"object_storage: S3 bucket {bucket} at {endpoint}: the endpoint is unreachable"

    def says_unreachable() -> bool:
        # while SeaweedFS stops, a probe may meet its S3 gateway still up and failing (503 "fails (HTTP 500)"): the
        # state once it is down is what the test asserts
        answer = api.get("/ready")
        return answer.status_code == 503 and unreachable in answer.json().get("summary", "")

    wait_for(says_unreachable, "/ready says object storage is unreachable")
    ready = api.get("/ready").json()
    assert_valid(ready, "error.json")
    assert unreachable in ready["summary"]
    assert metric(api, "tams_health", part="object_storage", state="unreachable") == 1
    # no PUT URLs into storage that cannot take them
    refused = api.post(f"/flows/{flow_id}/storage", json={"limit": 1})
    assert refused.status_code == 503, refused.text
    assert_valid(refused.json(), "error.json")
    assert refused.headers["retry-after"] == "1"
    assert f"S3 bucket {bucket} at {endpoint}" in refused.json()["summary"]
    # a flow deleted meanwhile: its objects are collected, their bytes queued, not forgotten
    assert api.delete(f"/flows/{flow_id}").status_code == 204
    assert collect_once(services(api), now=dt.datetime.now(dt.UTC) + LATER) == 2
    assert metric(api, "tams_object_deletions_pending") == 2

    restartable_s3.start()
    wait_for(lambda: api.get("/ready").status_code == 200, "/ready is 200 again by itself")
    assert metric(api, "tams_health", part="object_storage", state="ok") == 1
    assert api.post(f"/flows/{new_flow(api)}/storage", json={"limit": 1}).status_code == 201
    assert len(stored_keys(restartable_s3, bucket)) == 2, "kept while S3 was down"
    collect_once(services(api), now=dt.datetime.now(dt.UTC) + LATER)
    assert stored_keys(restartable_s3, bucket) == set(), "no orphaned bytes once S3 is back"
    assert metric(api, "tams_object_deletions_pending") == 0


def test_a_deletion_that_fails_is_kept_and_retried_until_it_succeeds(
    tmp_path: Path, restartable_s3: SeaweedFS, bucket: str, caplog: pytest.LogCaptureFixture
) -> None:
    """No storage watch running (as if S3 failed between two checks): the deleter's own failure says object storage
    is unavailable, is recorded on every row (one log record for all of them), and the rows wait for their next
    attempt; once S3 answers again, the next attempt deletes the bytes and the rows."""
    settings = s3_settings(tmp_path, restartable_s3, bucket, object_grace_s=0)
    app = create_app(settings, workers=False)
    with serve(app) as api:
        svc = services_of(app)
        flow_id = new_flow(api)
        upload(api, flow_id, 3)
        assert api.delete(f"/flows/{flow_id}").status_code == 204
        restartable_s3.stop()
        t1 = dt.datetime.now(dt.UTC) + LATER
        failed_before = metric(api, "tams_object_deletions_failed_total")
        with caplog.at_level("WARNING", logger="server.gc"):
            assert collect_once(svc, now=t1) == 3
        rows = svc.catalog.records("object_deletions")
        assert len(rows) == 3
        assert {r["attempts"] for r in rows} == {1}
        assert all("the endpoint is unreachable" in (r["last_error"] or "") for r in rows)
        assert {r["next_attempt_at"] for r in rows} == {t1 + dt.timedelta(seconds=60)}
        failures = [r for r in caplog.records if r.name == "server.gc" and r.levelname == "WARNING"]
        assert len(failures) == 1 and "3 objects failed" in failures[0].getMessage() and not failures[0].exc_info
        assert metric(api, "tams_object_deletions_failed_total") - failed_before == 3
        assert api.get("/ready").status_code == 503, "the deleter's failure is the health's"

        restartable_s3.start()
        from server.storage_watch import probe_once

        assert probe_once(svc).ok
        collect_once(svc, now=t1 + dt.timedelta(seconds=30))  # not due yet: back-off
        assert len(svc.catalog.records("object_deletions")) == 3
        assert len(stored_keys(restartable_s3, bucket)) == 3
        collect_once(svc, now=t1 + dt.timedelta(seconds=61))
        assert svc.catalog.records("object_deletions") == []
        assert stored_keys(restartable_s3, bucket) == set()


def test_a_copy_into_s3_while_it_is_down_is_503_naming_it(
    tmp_path: Path, restartable_s3: SeaweedFS, bucket: str
) -> None:
    """Copying an object into a second backend that cannot take it is not the client's fault: 503, not 400."""
    from server.stores import Stores, build_stores

    s3 = build_stores(s3_settings(tmp_path, restartable_s3, bucket)).default
    local = build_stores(Settings(data_dir=tmp_path / "data")).default
    assert s3 is not None and local is not None
    s3_id, local_id = s3.info.id, "5a7c9e1b-3d4f-4a6b-8c7d-9e0f1a2b3c4d"
    local.info = dataclasses.replace(local.info, id=local_id)
    s3.info = dataclasses.replace(s3.info, default_storage=False)
    app = create_app(Settings(data_dir=tmp_path / "data"), stores=Stores([local, s3]), workers=False)
    with serve(app) as api:
        flow_id = new_flow(api)
        (oid,) = upload(api, flow_id, 1)
        restartable_s3.stop()
        r = api.post(f"/objects/{oid}/instances", json={"storage_id": s3_id})
        assert r.status_code == 503, r.text
        assert_valid(r.json(), "error.json")
        assert f"S3 bucket {bucket} at {restartable_s3.info.endpoint_url}: the endpoint is unreachable" in r.text
