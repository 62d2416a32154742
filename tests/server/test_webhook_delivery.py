"""Webhook delivery to a real HTTP receiver on 127.0.0.1: bodies, api key header, filters, retries."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from server.app import create_app
from server.config import Settings
from server.leases import Leases
from tams_analytics.engines import open_engine
from tams_analytics.predicates import Term
from tests.fixtures.http import QuietHandler, serving
from tests.server.conftest import metric, new_id, video_flow
from tests.spec import assert_valid

SECRET = "k3y-value-that-must-never-appear-in-a-body"
ALL_EVENTS = [
    "flows/created",
    "flows/updated",
    "flows/deleted",
    "flows/segments_added",
    "flows/segments_deleted",
    "sources/created",
    "sources/updated",
    "sources/deleted",
]


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    raw: bytes

    @property
    def body(self) -> dict[str, Any]:
        return json.loads(self.raw)

    @property
    def type(self) -> str:
        return self.body["event_type"]


@dataclass
class Receiver:
    """A real HTTP server recording every POST; paths under ``/fail`` answer 500."""

    base: str = ""
    requests: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def at(self, path: str) -> list[Received]:
        with self.lock:
            return [r for r in self.requests if r.path == path]

    def wait(self, path: str, done: Callable[[list[Received]], bool], timeout: float = 10.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.at(path)
            if done(got):
                return got
            time.sleep(0.02)
        raise AssertionError(f"{path}: timed out; received {[r.type for r in self.at(path)]}")


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rec = Receiver()

    class Handler(QuietHandler):
        def do_POST(self) -> None:
            raw = self.body()
            with rec.lock:
                rec.requests.append(Received(self.path, {k.lower(): v for k, v in self.headers.items()}, raw))
            self.reply(500 if self.path.startswith("/fail") else 200)

    with serving(Handler) as rec.base:
        yield rec


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        webhooks_allow_private=True,
        webhook_max_attempts=3,
        webhook_retry_base_s=0.02,
        webhook_timeout_s=3.0,
    )


def hook(client: TestClient, url: str, events: list[str], **options: Any) -> dict[str, Any]:
    body = {"url": url, "events": events, "api_key_name": "X-Api-Key", "api_key_value": SECRET, **options}
    r = client.post("/service/webhooks", json=body)
    assert r.status_code == 201, r.text
    return r.json()


def collection_of(member: dict[str, Any]) -> dict[str, Any]:
    """A multi flow whose collection holds ``member``: ``member``'s ``collected_by`` once both are stored."""
    return {
        "id": new_id(),
        "source_id": new_id(),
        "format": "urn:x-nmos:format:multi",
        "flow_collection": [{"id": member["id"], "role": "video"}],
    }


def put_flow(client: TestClient, flow: dict[str, Any]) -> None:
    r = client.put(f"/flows/{flow['id']}", json=flow)
    assert r.status_code in (201, 204), r.text


def add_segments(client: TestClient, flow_id: str, starts: list[int]) -> list[str]:
    r = client.post(f"/flows/{flow_id}/storage", json={"limit": len(starts)})
    assert r.status_code == 201, r.text
    ids = [m["object_id"] for m in r.json()["media_objects"]]
    segs = [{"object_id": oid, "timerange": f"[{s}:0_{s + 1}:0)"} for oid, s in zip(ids, starts, strict=True)]
    r = client.post(f"/flows/{flow_id}/segments", json=segs)
    assert r.status_code == 201, r.text
    return ids


def test_every_event_type_is_delivered_with_the_api_key_header(client: TestClient, receiver: Receiver) -> None:
    webhook = hook(client, receiver.base + "/all", ALL_EVENTS)
    flow = video_flow()
    fid, sid = flow["id"], flow["source_id"]
    put_flow(client, flow)
    assert client.put(f"/flows/{fid}/label", json="relabelled").status_code == 204
    assert client.put(f"/sources/{sid}/label", json="source label").status_code == 204
    object_ids = add_segments(client, fid, [0, 1, 2])
    assert client.delete(f"/flows/{fid}/segments", params={"timerange": "[0:0_2:0)"}).status_code == 204
    assert client.delete(f"/flows/{fid}").status_code == 204

    got = receiver.wait("/all", lambda rs: "sources/deleted" in [r.type for r in rs])
    by_type: dict[str, list[dict[str, Any]]] = {}
    for r in got:
        assert r.headers["x-api-key"] == SECRET
        assert r.headers["content-type"] == "application/json"
        assert SECRET.encode() not in r.raw
        body = r.body
        assert set(body) == {"event_timestamp", "event_type", "event"}
        assert body["event_timestamp"].endswith("Z")
        by_type.setdefault(body["event_type"], []).append(body["event"])
    assert set(by_type) == set(ALL_EVENTS)

    assert by_type["sources/created"][0]["source"]["id"] == sid
    assert_valid(by_type["sources/created"][0]["source"], "source.json")
    created = by_type["flows/created"][0]["flow"]
    assert_valid(created, "flow-get.json")
    assert created["id"] == fid
    assert any(e["flow"].get("label") == "relabelled" for e in by_type["flows/updated"])
    for e in by_type["flows/updated"]:
        assert_valid(e["flow"], "flow-get.json")
    assert any(e["source"].get("label") == "source label" for e in by_type["sources/updated"])

    added = by_type["flows/segments_added"][0]
    assert added["flow_id"] == fid
    assert [s["object_id"] for s in added["segments"]] == object_ids
    assert [s["timerange"] for s in added["segments"]] == ["[0:0_1:0)", "[1:0_2:0)", "[2:0_3:0)"]
    for seg in added["segments"]:
        assert_valid(seg, "flow-segment.json")
        assert seg["get_urls"] and seg["get_urls"][0]["presigned"] is True

    deleted = by_type["flows/segments_deleted"][0]
    assert deleted == {"flow_id": fid, "timerange": "[0:0_2:0)"}
    assert by_type["flows/deleted"] == [{"flow_id": fid}]
    assert by_type["sources/deleted"] == [{"source_id": sid}]
    # order on one webhook is publication order
    types = [r.type for r in got]
    assert types.index("flows/created") < types.index("flows/segments_added") < types.index("flows/deleted")

    status = client.get(f"/service/webhooks/{webhook['id']}").json()
    assert_valid(status, "webhook-get.json")
    assert status["status"] == "started"


def test_only_subscribed_event_types_are_delivered(client: TestClient, receiver: Receiver) -> None:
    hook(client, receiver.base + "/deleted-only", ["flows/deleted"])
    flow = video_flow()
    put_flow(client, flow)
    assert client.delete(f"/flows/{flow['id']}").status_code == 204
    got = receiver.wait("/deleted-only", lambda rs: len(rs) >= 1)
    time.sleep(0.3)
    assert [r.type for r in receiver.at("/deleted-only")] == ["flows/deleted"]
    assert got[0].body["event"] == {"flow_id": flow["id"]}


def test_filters(client: TestClient, receiver: Receiver) -> None:
    """flow_ids, source_ids and the collected_by filters, on flows/updated and sources/updated."""
    member, other = video_flow(), video_flow()
    collection = collection_of(member)
    put_flow(client, member)
    put_flow(client, other)
    put_flow(client, collection)
    assert client.get(f"/flows/{member['id']}").json()["collected_by"] == [collection["id"]]

    events = ["flows/updated", "sources/updated"]
    hook(client, receiver.base + "/flow-ids", events, flow_ids=[member["id"]])
    hook(client, receiver.base + "/source-ids", events, source_ids=[other["source_id"]])
    hook(client, receiver.base + "/uncollected", ["flows/updated"], flow_collected_by_ids=[])
    hook(client, receiver.base + "/collected", ["flows/updated"], flow_collected_by_ids=[collection["id"]])
    hook(client, receiver.base + "/src-collected", events, source_collected_by_ids=[collection["source_id"]])
    hook(client, receiver.base + "/everything", ["flows/updated"])

    flows = {"member": member, "other": other, "collection": collection}
    for name, flow in flows.items():
        assert client.put(f"/flows/{flow['id']}/label", json=f"probe-{name}").status_code == 204
    assert client.put(f"/sources/{other['source_id']}/label", json="probe-source").status_code == 204

    def probes(path: str) -> set[str]:
        out = set()
        for r in receiver.at(path):
            doc = r.body["event"].get("flow") or r.body["event"].get("source")
            if str(doc.get("label", "")).startswith("probe-"):
                out.add(doc["label"].removeprefix("probe-"))
        return out

    expected = {
        "/flow-ids": {"member", "source"},  # flow_ids does not limit source events
        "/source-ids": {"other", "source"},
        "/uncollected": {"other", "collection"},
        "/collected": {"member"},
        "/src-collected": {"member"},
        "/everything": {"member", "other", "collection"},
    }
    for path, want in expected.items():
        receiver.wait(path, lambda _rs, p=path, w=want: probes(p) >= w)
    time.sleep(0.3)  # anything that should not arrive has had time to
    assert {path: probes(path) for path in expected} == expected


def test_segment_options_shape_the_segments_of_each_webhook(client: TestClient, receiver: Receiver) -> None:
    storage_id = client.get("/service/storage-backends").json()[0]["id"]
    events = ["flows/segments_added"]
    hook(client, receiver.base + "/plain", events)
    hook(client, receiver.base + "/no-urls", events, accept_get_urls=[])
    hook(client, receiver.base + "/verbose", events, verbose_storage=True, include_object_timerange=True)
    hook(client, receiver.base + "/not-presigned", events, presigned=False)
    hook(client, receiver.base + "/this-store", events, accept_storage_ids=[storage_id])
    flow = video_flow()
    put_flow(client, flow)
    add_segments(client, flow["id"], [0, 1])

    def segments(path: str) -> list[dict[str, Any]]:
        got = receiver.wait(path, lambda rs: len(rs) >= 1)
        assert got[0].headers["x-api-key"] == SECRET
        segs = got[0].body["event"]["segments"]
        assert len(segs) == 2
        for seg in segs:
            assert_valid(seg, "flow-segment.json")
        return segs

    for seg in segments("/plain"):
        assert [set(u) for u in seg["get_urls"]] == [{"url", "presigned", "label"}]
        assert "object_timerange" not in seg
    for seg in segments("/no-urls"):
        assert not seg.get("get_urls")
    for seg in segments("/verbose"):
        assert seg["get_urls"][0]["storage_id"] == storage_id
        assert seg["get_urls"][0]["controlled"] is True
        assert seg["object_timerange"] == seg["timerange"]
    for seg in segments("/not-presigned"):
        assert not seg.get("get_urls")
    for seg in segments("/this-store"):
        assert len(seg["get_urls"]) == 1


def test_failing_receiver_is_retried_then_the_webhook_goes_to_error(client: TestClient, receiver: Receiver) -> None:
    failing = hook(client, receiver.base + "/fail", ["flows/created"])
    healthy = hook(client, receiver.base + "/ok", ["flows/created"])
    put_flow(client, video_flow())

    receiver.wait("/ok", lambda rs: len(rs) == 1)
    attempts = receiver.wait("/fail", lambda rs: len(rs) >= 3)

    def status_of(webhook: dict[str, Any]) -> dict[str, Any]:
        return client.get(f"/service/webhooks/{webhook['id']}").json()

    deadline = time.monotonic() + 10
    while status_of(failing)["status"] != "error" and time.monotonic() < deadline:
        time.sleep(0.02)
    failed = status_of(failing)
    assert_valid(failed, "webhook-get.json")
    assert failed["status"] == "error"
    assert_valid(failed["error"], "error.json")
    assert "500" in failed["error"]["summary"] and SECRET not in json.dumps(failed)
    assert len(attempts) == 3  # webhook_max_attempts, all with the key and the same body
    assert {a.raw for a in attempts} == {attempts[0].raw}
    assert all(a.headers["x-api-key"] == SECRET for a in attempts)
    assert status_of(healthy)["status"] == "started"

    # a webhook in error receives nothing more ...
    put_flow(client, video_flow())
    receiver.wait("/ok", lambda rs: len(rs) == 2)
    time.sleep(0.3)
    assert len(receiver.at("/fail")) == 3
    # ... until a client re-enables it
    body = {k: v for k, v in failed.items() if k != "error"} | {"status": "created"}
    assert client.put(f"/service/webhooks/{failing['id']}", json=body).status_code == 201
    put_flow(client, video_flow())
    receiver.wait("/fail", lambda rs: len(rs) > 3)


def test_disabled_webhooks_receive_nothing(client: TestClient, receiver: Receiver) -> None:
    hook(client, receiver.base + "/disabled", ["flows/created"], status="disabled")
    hook(client, receiver.base + "/enabled", ["flows/created"])
    put_flow(client, video_flow())
    receiver.wait("/enabled", lambda rs: len(rs) == 1)
    time.sleep(0.3)
    assert receiver.at("/disabled") == []


def test_requests_do_not_wait_for_slow_deliveries(settings: Settings, receiver: Receiver) -> None:
    """A receiver that never answers in time holds up neither requests nor other webhooks. Its timeout is
    long (20 s), so a request that waited for a delivery attempt could not pass for a slow machine."""
    import socket

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # accepts connections, never answers
    slow = settings.model_copy(update={"webhook_timeout_s": 20.0})
    with TestClient(create_app(slow), base_url="http://testserver") as client:
        try:
            hook(client, f"http://127.0.0.1:{silent.getsockname()[1]}/slow", ["flows/created"])
            hook(client, receiver.base + "/fast", ["flows/created"])
            took = []
            for _ in range(3):
                started = time.monotonic()
                put_flow(client, video_flow())
                took.append(time.monotonic() - started)
            assert max(took) < 5.0, took
            receiver.wait("/fast", lambda rs: len(rs) == 3, timeout=5)
        finally:
            silent.close()


def test_large_bulk_registrations_are_notified_in_parts(
    client: TestClient, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("server.webhooks.outbox.SEGMENTS_PER_NOTIFICATION", 2)
    hook(client, receiver.base + "/bulk", ["flows/segments_added"])
    flow = video_flow()
    put_flow(client, flow)
    ids = add_segments(client, flow["id"], [0, 1, 2, 3, 4])
    got = receiver.wait("/bulk", lambda rs: len(rs) >= 3)
    parts = [[s["object_id"] for s in r.body["event"]["segments"]] for r in got]
    assert parts == [ids[0:2], ids[2:4], ids[4:5]]
    assert {r.body["event"]["flow_id"] for r in got} == {flow["id"]}


def test_the_ssrf_guard_runs_again_at_delivery(tmp_path: Path, receiver: Receiver) -> None:
    """A URL that became unacceptable (here: the deployment stopped allowing private addresses) is
    never called: the webhook goes to error instead."""
    lax = Settings(data_dir=tmp_path / "d", webhooks_allow_private=True)
    with TestClient(create_app(lax)) as c:
        webhook = hook(c, receiver.base + "/private", ["flows/created"])
    strict = Settings(data_dir=tmp_path / "d", webhooks_allow_private=False)
    with TestClient(create_app(strict)) as c:
        put_flow(c, video_flow())
        deadline = time.monotonic() + 10
        while c.get(f"/service/webhooks/{webhook['id']}").json()["status"] != "error":
            assert time.monotonic() < deadline, "the webhook never went to error"
            time.sleep(0.02)
        got = c.get(f"/service/webhooks/{webhook['id']}").json()
        assert_valid(got, "webhook-get.json")
        assert "refused" in got["error"]["summary"]
    assert receiver.at("/private") == []


def test_a_stream_of_events_is_delivered_over_one_connection(client: TestClient) -> None:
    """Live ingest: a segment every 50 ms. The webhook's lane lingers between events (server.webhooks.delivery's
    LINGER_S), so one client delivers them all, over one kept-alive connection; a lane per event opened a
    connection (and loaded a TLS context, and claimed and freed the lease) for each."""
    peers: list[int] = []
    lock = threading.Lock()

    class KeepAlive(QuietHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            self.body()
            with lock:
                peers.append(self.client_address[1])
            self.reply(200)

    with serving(KeepAlive) as base:
        hook(client, base + "/stream", ["flows/segments_added"])
        flow = video_flow()
        put_flow(client, flow)
        for second in range(20):
            segment = {"object_id": new_id(), "timerange": f"[{second}:0_{second + 1}:0)"}
            assert client.post(f"/flows/{flow['id']}/segments", json=segment).status_code == 201
            time.sleep(0.05)
        deadline = time.monotonic() + 10
        while len(peers) < 20:
            assert time.monotonic() < deadline, f"{len(peers)} of 20 events delivered"
            time.sleep(0.02)
    assert len(set(peers)) == 1, f"{len(peers)} events over {len(set(peers))} connections"


def _operations(client: TestClient, *names: str) -> float:
    """How many of the catalog's operations ``names`` ran so far (``tams_catalog_operation_seconds``)."""
    return sum(metric(client, "tams_catalog_operation_seconds_count", operation=name) for name in names)


def test_registrations_read_no_flow_documents_for_webhooks_that_filter_by_no_collection(
    client: TestClient, receiver: Receiver
) -> None:
    """Routing ``flows/segments_added`` to webhooks without collection filters (auth classes off) needs the flow's
    source id alone: the segment writer reads no flow or source document for each batch (with a webhook those
    reads were most of its work)."""
    hook(client, receiver.base + "/plain", ["flows/segments_added"], source_ids=[new_id()])
    hook(client, receiver.base + "/all", ["flows/segments_added"])
    flow = video_flow()
    put_flow(client, flow)
    before = _operations(client, "get_flow", "get_source")
    for second in range(5):
        segment = {"object_id": new_id(), "timerange": f"[{second}:0_{second + 1}:0)"}
        assert client.post(f"/flows/{flow['id']}/segments", json=segment).status_code == 201
    receiver.wait("/all", lambda rs: len(rs) >= 5)
    assert _operations(client, "get_flow", "get_source") == before
    assert receiver.at("/plain") == []  # the source id was there to route by


def test_segments_added_follow_the_collected_by_filters(client: TestClient, receiver: Receiver) -> None:
    """With a collection filter among the webhooks, the flows' collections are read to route each batch."""
    member, other = video_flow(), video_flow()
    collection = collection_of(member)
    for flow in (member, other, collection):
        put_flow(client, flow)
    hook(client, receiver.base + "/collected", ["flows/segments_added"], flow_collected_by_ids=[collection["id"]])
    hook(client, receiver.base + "/all", ["flows/segments_added"])
    for flow in (member, other):
        assert (
            client.post(
                f"/flows/{flow['id']}/segments", json={"object_id": new_id(), "timerange": "[0:0_1:0)"}
            ).status_code
            == 201
        )
    receiver.wait("/all", lambda rs: len(rs) >= 2)
    time.sleep(0.3)  # anything that should not arrive has had time to
    assert [r.body["event"]["flow_id"] for r in receiver.at("/collected")] == [member["id"]]


def test_a_stopped_server_gives_its_webhooks_leases_up(
    settings: Settings, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A lane giving its webhook's lease up as the server stops is waited for: the release is a write of the store,
    and a stop that forgot the lane first closed the store under it (DuckDB 1.3.2 crashed its process), leaving the
    lease held until it expired, so no other replica delivered to the webhook meanwhile. Here the lane stops
    lingering at once, and its release is held up (as a write is behind a checkpoint) until the server stops."""
    release, releasing = Leases.release, threading.Event()

    def slow_release(leases: Leases, name: str, *, forget: bool = False) -> None:
        releasing.set()
        time.sleep(0.5)
        release(leases, name, forget=forget)

    monkeypatch.setattr("server.webhooks.delivery.LINGER_S", 0.01)
    monkeypatch.setattr(Leases, "release", slow_release)
    with TestClient(create_app(settings), base_url="http://testserver") as client:
        webhook = hook(client, receiver.base + "/stop", ["flows/created"])
        put_flow(client, video_flow())
        receiver.wait("/stop", lambda rs: len(rs) == 1)
        assert releasing.wait(10), "the lane did not retire"
    store = open_engine(settings.store_url)
    try:
        held = store.records("leases", [Term("name", "==", f"webhook:{webhook['id']}")], columns=["holder"])
    finally:
        store.close()
    assert held == [{"holder": None}], "the stopped server still holds the webhook's lease"
