"""The object deletion queue outlives a SIGKILL: bytes forgotten while S3 is down are deleted once it is back, by
the restarted ``tams-analytics serve`` (a real subprocess, a real SeaweedFS stopped and started)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

import httpx

from tests.fixtures.s3 import SeaweedFS, _client
from tests.reliability.conftest import LiveServer
from tests.server.conftest import video_flow


def wait_for(check: Callable[[], bool], what: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, f"not within {timeout_s:g} s: {what}"
        time.sleep(0.1)


def test_queued_deletions_survive_a_sigkill_and_run_once_s3_is_back(
    live_server_factory: Callable[..., LiveServer], restartable_s3: SeaweedFS
) -> None:
    s3, bucket = restartable_s3.info, f"queue-{uuid.uuid4().hex[:16]}"
    raw = _client(s3)
    raw.create_bucket(Bucket=bucket)
    server = live_server_factory(
        env={
            "TAMS_STORAGE": "s3",
            "TAMS_S3_ENDPOINT": s3.endpoint_url,
            "TAMS_S3_BUCKET": bucket,
            "TAMS_S3_REGION": s3.region,
            "TAMS_S3_ACCESS_KEY": s3.access_key,
            "TAMS_S3_SECRET_KEY": s3.secret_key,
            "TAMS_OBJECT_GRACE_S": "0",
            "TAMS_GC_INTERVAL_S": "0.2",
            "TAMS_STORAGE_PROBE_S": "0.2",
        }
    )
    with server.client() as api, httpx.Client(trust_env=False, timeout=30) as plain:
        flow = video_flow()
        assert api.put(f"/flows/{flow['id']}", json=flow).status_code == 201
        media = api.post(f"/flows/{flow['id']}/storage", json={"limit": 1}).json()["media_objects"][0]
        put = media["put_url"]
        assert plain.put(put["url"], content=b"precious", headers=put["headers"]).status_code == 200
        oid = media["object_id"]
        segment = {"object_id": oid, "timerange": "[0:0_1:0)", "get_urls": [{"url": "http://mirror/x", "label": "m"}]}
        assert api.post(f"/flows/{flow['id']}/segments", json=[segment]).status_code == 201
        (key,) = [o["Key"] for o in raw.list_objects_v2(Bucket=bucket)["Contents"]]
        storage_id = api.get("/service/storage-backends").json()[0]["id"]

        restartable_s3.stop()
        wait_for(lambda: api.get("/ready").status_code == 503, "the server sees S3 down")
        # the S3 copy is removed while S3 is down: its bytes are queued
        assert api.delete(f"/objects/{oid}/instances", params={"storage_id": storage_id}).status_code == 204
    time.sleep(0.5)  # a few GC passes: they wait for S3
    server.kill()
    with server.database() as db:
        assert db.execute("SELECT storage_key, attempts FROM object_deletions").fetchall() == [(key, 0)]

    restartable_s3.start()
    assert raw.head_object(Bucket=bucket, Key=key)["ContentLength"] == len(b"precious"), "kept while S3 was down"
    server.start()

    def gone() -> bool:
        return "Contents" not in raw.list_objects_v2(Bucket=bucket)

    wait_for(gone, "the restarted server deletes the queued bytes")
    with server.client() as api:
        assert api.get("/metrics").status_code == 200
    server.stop()
    with server.database() as db:
        assert db.execute("SELECT count(*) FROM object_deletions").fetchone() == (0,)
        assert db.execute("SELECT count(*) FROM object_instances WHERE controlled").fetchone() == (0,)
