"""Several server replicas on one shared store: leases decide who does background work.

"Replicas" are apps with catalogs of their own over ONE :class:`~tests.engines.vast.reference.ReferenceStore`
(snapshot isolation, first committer wins, behind the VAST engine's ``store=`` seam), as server processes on a
shared VAST store would be. Leases are also tried on DuckDB, whose one writing process takes over what a dead
process left at once.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from server.app import create_app
from server.config import Settings
from server.delete_requests import worker as deletes
from server.leases import Leases
from server.services import Services, services_of
from tams_analytics.catalog import Catalog, connect, utcnow
from tests.server.conftest import video_flow
from tests.server.test_webhook_delivery import Receiver, receiver  # noqa: F401 (a fixture)

pytest.importorskip("vastdb", reason="the VAST engine needs vastdb: VAST's dependency set (TAMS_DEPS=vast)")

from tams_analytics.engines.vast import Engine
from tests.engines.vast.reference import REFERENCE_URL, ReferenceStore


def on(store: ReferenceStore) -> Catalog:
    return Catalog(Engine(REFERENCE_URL, store=store))


@pytest.fixture
def store() -> ReferenceStore:
    return ReferenceStore()


# -- leases --------------------------------------------------------------------------------------------
def test_a_lease_is_held_by_one_replica_until_released_or_expired(store: ReferenceStore) -> None:
    now = [utcnow()]
    a = Leases(on(store), "a", 30, clock=lambda: now[0])
    b = Leases(on(store), "b", 30, clock=lambda: now[0])
    assert a.claim("job") and a.holder_of("job") == "a"
    assert not b.claim("job"), "held by a"
    assert a.claim("job"), "its holder renews it"
    a.release("job")
    assert b.claim("job") and b.holder_of("job") == "b"
    now[0] += dt.timedelta(seconds=31)  # b died: its lease expires
    assert a.holder_of("job") is None
    assert a.claim("job") and a.holder_of("job") == "a"
    assert not b.claim("job"), "back from the dead, b does not get it again"
    a.release("job", forget=True)
    assert a.catalog.count("leases") == 0


def test_of_replicas_claiming_one_lease_at_once_exactly_one_gets_it(store: ReferenceStore) -> None:
    replicas = [Leases(on(store), f"r{k}", 30) for k in range(4)]
    for round_ in range(12):
        name = f"job-{round_}"
        barrier = threading.Barrier(len(replicas))
        won: list[str] = []

        def claim(leases: Leases, n: str = name, b: threading.Barrier = barrier, w: list[str] = won) -> None:
            b.wait()
            if leases.claim(n):
                w.append(leases.holder)

        threads = [threading.Thread(target=claim, args=(r,)) for r in replicas]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        assert len(won) == 1, f"round {round_}: {won} all hold {name}"
        assert replicas[0].holder_of(name) == won[0]


def test_the_sole_writer_takes_over_a_lease_a_dead_process_left_at_once(tmp_path: Path) -> None:
    """On DuckDB one process writes the store: a lease someone else holds was left by a process that is gone."""
    cat = connect(f"duckdb:///{tmp_path / 'tams.duckdb'}", create=True)
    assert Leases(cat, "before-the-crash", 30).claim("job")
    assert not Leases(cat, "restarted", 30).claim("job"), "not without knowing it is the only writer"
    assert Leases(cat, "restarted", 30, sole_writer=True).claim("job")
    cat.close()


# -- replicas' workers ---------------------------------------------------------------------------------
@pytest.fixture
def replicas(store: ReferenceStore, tmp_path: Path) -> Iterator[Callable[..., list[TestClient]]]:
    """``make(n, workers=False, **settings)``: n apps over one store (without background threads unless
    ``workers``: then the tests run the workers)."""
    with ExitStack() as stack:

        def make(n: int = 2, workers: bool = False, **options: Any) -> list[TestClient]:
            out = []
            for k in range(n):
                settings = Settings(data_dir=tmp_path / f"replica-{k}", webhooks_allow_private=True, **options)
                app = create_app(settings, engine=on(store).engine, workers=workers, owns_engine=True)
                out.append(stack.enter_context(TestClient(app)))
            return out

        yield make


def flow_with_segments(client: TestClient, n: int) -> str:
    flow = video_flow()
    assert client.put(f"/flows/{flow['id']}", json=flow).status_code == 201
    segs = [{"object_id": f"{flow['id'][:8]}-{i}", "timerange": f"[{i}:0_{i + 1}:0)"} for i in range(n)]
    assert client.post(f"/flows/{flow['id']}/segments", json=segs).status_code == 201
    return str(flow["id"])


def test_two_replicas_never_carry_out_one_delete_request_twice(
    replicas: Callable[..., list[TestClient]], monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = replicas(2, delete_sync_max_segments=2)  # 6 segments: a delete request of three chunks each
    flows = [flow_with_segments(a, 6) for _ in range(6)]
    requests = []
    for fid in flows:
        r = a.delete(f"/flows/{fid}")
        assert r.status_code == 202, r.text
        requests.append(r.json()["id"])
    ran: list[tuple[str, str]] = []
    real = deletes.run_request

    def recording(services: Services, row: dict[str, Any], *args: Any) -> bool:
        ran.append((services.leases.holder, row["id"]))
        return real(services, row, *args)

    monkeypatch.setattr(deletes, "run_request", recording)
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def work(client: TestClient) -> None:
        barrier.wait()
        try:
            deletes.run_pending(services_of(client.app))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(c,)) for c in (a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == []
    assert sorted(rid for _, rid in ran) == sorted(requests), f"each request carried out once: {ran}"
    for rid in requests:
        assert b.get(f"/flow-delete-requests/{rid}").json()["status"] == "done"
    for fid in flows:
        assert b.get(f"/flows/{fid}").status_code == 404
    assert services_of(a.app).catalog.count("leases") == 0, "finished requests' leases are forgotten"


def test_a_dead_replicas_delete_request_is_taken_over_when_its_lease_expires(
    replicas: Callable[..., list[TestClient]],
) -> None:
    a, b = replicas(2, delete_sync_max_segments=2)
    fid = flow_with_segments(a, 6)
    rid = a.delete(f"/flows/{fid}").json()["id"]
    # replica a claims the request, then dies: it never works on it, nor renews or releases its lease
    assert services_of(a.app).leases.claim(f"delete-request:{rid}")
    assert deletes.run_pending(services_of(b.app)) == 0, "b leaves it to a while a's lease lasts"
    assert b.get(f"/flow-delete-requests/{rid}").json()["status"] == "created"
    later = utcnow() + dt.timedelta(seconds=services_of(b.app).settings.lease_s + 1)
    services_of(b.app).leases.clock = lambda: later
    assert deletes.run_pending(services_of(b.app)) == 1
    assert b.get(f"/flow-delete-requests/{rid}").json()["status"] == "done"
    assert b.get(f"/flows/{fid}").status_code == 404


def test_each_event_reaches_its_webhook_once_whichever_replica_wrote_it(
    replicas: Callable[..., list[TestClient]],
    receiver: Receiver,  # noqa: F811
) -> None:
    """Both replicas deliver (their pollers race for the webhook's lease): every event arrives exactly once."""
    a, b = replicas(2, workers=True, webhook_poll_s=0.05)
    assert (
        a.post("/service/webhooks", json={"url": receiver.base + "/r", "events": ["flows/created"]}).status_code == 201
    )
    services_of(b.app).events.subscriptions_changed()  # b would see the new webhook within 2 s anyway
    flows = [video_flow() for _ in range(16)]
    for k, flow in enumerate(flows):
        assert (a if k % 2 else b).put(f"/flows/{flow['id']}", json=flow).status_code == 201
    got = receiver.wait("/r", lambda rs: len(rs) >= len(flows), timeout=30)
    time.sleep(0.5)  # a second copy would have arrived by now
    got = receiver.at("/r")
    assert sorted(r.body["event"]["flow"]["id"] for r in got) == sorted(f["id"] for f in flows)
    assert services_of(a.app).catalog.count("webhook_events") == 0, "delivered events leave the outbox"
