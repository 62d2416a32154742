"""The drill: the operators' runbook (``docs/operators/backup-and-restore.md``), its commands run as written.

A demo store with media is served (``tams-analytics serve``, a real subprocess); it gets a webhook (with a secret)
and a finished flow delete request; a live flow takes single-segment POSTs all through the backup, which the
server makes while it serves. Then the store is damaged (its file cut in half), the backup verified against the
object storage, restored over the damaged store, audited, and served again: the new server answers every source,
flow, segment listing, object (and its media's bytes), webhook and delete request as the first did before the
backup, the live flow holds exactly the segments acknowledged up to some instant during the backup (none torn,
none lost before it began), and the webhook's secret came back too.

The second drill deletes a flow after the backup and collects garbage (as if its timeout had passed) before the
store breaks: restoring the backup must find that flow's media still in storage, which holds because
``TAMS_OBJECT_GRACE_S`` keeps the bytes of objects nothing references any more for the grace period
(:mod:`server.gc`'s deletion queue).
"""

from __future__ import annotations

import datetime as dt
import threading
import uuid
from pathlib import Path

import duckdb
import httpx
import pytest

from server.config import Settings
from tams_analytics.timerange import TimeRange
from tests.backup.documents import documents, listing, media
from tests.backup.runbook import Served, blocks_for, shell
from tests.server.conftest import video_flow

TEST = "tests/backup/test_drill.py::test_the_runbook_restores_what_was_backed_up"
SECRET = "Bearer drill-secret-never-returned"
#: the server's settings in the drill: flow deletions of more than 2 segments are delete requests
SERVER_ENV = {"TAMS_DELETE_SYNC_MAX_SEGMENTS": "2", "TAMS_WEBHOOKS_ALLOW_PRIVATE": "true"}
#: a DuckDB file's main header and its two database headers
HEADERS = 3 * 4096
#: seconds forgotten objects' bytes stay (longer than the drill's time travel)
GRACE_S = 3600


class Writer:
    """A recorder: single abutting segments posted to one flow, one at a time, until stopped."""

    def __init__(self, url: str, flow_id: str) -> None:
        self.url, self.flow_id = url, flow_id
        self.acknowledged: list[tuple[str, str]] = []
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._post, name="drill-writer", daemon=True)

    def _post(self) -> None:
        with httpx.Client(base_url=self.url, timeout=30, trust_env=False) as client:
            i = 0
            while not self._stop.is_set():
                object_id = str(uuid.uuid4())
                # the recorder keeps its media itself and names it: each object has an (uncontrolled) instance
                url = f"https://recorder.example/{object_id}.ts"
                body = {
                    "object_id": object_id,
                    "timerange": f"[{i}:0_{i + 1}:0)",
                    "get_urls": [{"url": url, "label": "recorder"}],
                }
                r = client.post(f"/flows/{self.flow_id}/segments", json=body)
                if r.status_code != 201:
                    self.errors.append(f"{r.status_code} {r.text[:200]}")
                    return
                self.acknowledged.append((body["object_id"], body["timerange"]))
                i += 1

    def start(self) -> Writer:
        self._thread.start()
        return self

    def wait_for(self, n: int) -> None:
        while len(self.acknowledged) < n and not self.errors and self._thread.is_alive():
            self._stop.wait(0.05)
        assert not self.errors, self.errors

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=60)
        assert not self.errors, self.errors


def _wait_done(client: httpx.Client, request_id: str) -> None:
    deadline = dt.datetime.now() + dt.timedelta(seconds=60)
    while (status := client.get(f"/flow-delete-requests/{request_id}").json()["status"]) != "done":
        assert status != "error" and dt.datetime.now() < deadline, status
        threading.Event().wait(0.1)


def _delete_flow(client: httpx.Client, flow_id: str) -> None:
    r = client.delete(f"/flows/{flow_id}")
    assert r.status_code == 202, r.text  # more segments than TAMS_DELETE_SYNC_MAX_SEGMENTS: a delete request
    _wait_done(client, r.json()["id"])


def _collect_garbage(data_dir: Path) -> int:
    """One pass of the server's object collection on its (stopped) store, as if its timeout had passed."""
    from server.auth import Authorizer
    from server.gc import collect_once
    from server.services import build_services

    settings = Settings(data_dir=data_dir, object_grace_s=GRACE_S)  # type: ignore[call-arg]
    services = build_services(settings, Authorizer(settings))
    try:
        later = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=settings.min_object_timeout_s + 1)
        return collect_once(services, now=later)
    finally:
        services.close()


def _live_segments(served: Served, flow_id: str) -> list[tuple[str, str]]:
    """The live flow's segments on a server, in time order."""
    with httpx.Client(base_url=served.url, timeout=60, trust_env=False) as client:
        segs = listing(client, f"/flows/{flow_id}/segments", accept_get_urls="")
    segs.sort(key=lambda s: TimeRange.from_str(s["timerange"]).start)
    return [(s["object_id"], s["timerange"]) for s in segs]


def drill(work: Path, *, collect_garbage: bool) -> None:
    setup, backup, verify, restore = blocks_for(TEST)
    store = work / "tams-data" / "tams.duckdb"
    env = SERVER_ENV | ({"TAMS_OBJECT_GRACE_S": str(GRACE_S)} if collect_garbage else {})
    with shell(work, env) as sh:
        # a demo store with media, served
        for command in setup[:-1]:
            sh.run(command)
        first = sh.serve(setup[-1], store)
        with httpx.Client(base_url=first.url, timeout=60, trust_env=False) as client:
            # flows of media objects, each with more segments than a synchronous delete takes
            flows = [
                f["id"]
                for f in listing(client, "/flows")
                if f.get("container") and len(listing(client, f"/flows/{f['id']}/segments", accept_get_urls="")) > 2
            ]
            hook = {"url": "http://127.0.0.1:9/hook", "events": ["sources/deleted"], "api_key_name": "Authorization"}
            assert client.post("/service/webhooks", json=hook | {"api_key_value": SECRET}).status_code == 201
            _delete_flow(client, flows[0])  # a flow delete request, carried out
            live = video_flow()
            assert client.put(f"/flows/{live['id']}", json=live).status_code == 201
            before = documents(client, leave_out_flows=[live["id"]])
            bytes_before = media(client, before["objects"])
            assert len(bytes_before) >= 40, "the demo's objects have media"

            # the backup, while a recorder posts to the live flow
            writer = Writer(first.url, live["id"]).start()
            writer.wait_for(5)
            acknowledged_before = len(writer.acknowledged)
            (line,) = [sh.run(c).stdout for c in backup]
            acknowledged_after = len(writer.acknowledged)
            writer.stop()
            assert "copied by the server at " + first.url in line, line
            assert acknowledged_after > acknowledged_before, "the recorder posted during the backup"
            if collect_garbage:
                _delete_flow(client, flows[1])  # after the backup: its objects are forgotten below
        first.stop()
        if collect_garbage:
            gone_flow_objects = {s["object_id"] for s in before["segments"][flows[1]]}
            collected = _collect_garbage(work / "tams-data")
            assert collected >= len(gone_flow_objects), "the deleted flow's objects were forgotten"

        # the store breaks: its headers overwritten, its second half gone
        size = store.stat().st_size
        with store.open("r+b") as f:
            f.write(bytes(HEADERS))
            f.truncate(size // 2)
        with pytest.raises(duckdb.Error):
            duckdb.connect(str(store), read_only=True).close()

        # verify the backup against object storage, restore it over the broken store, audit, serve
        for command in verify:
            sh.run(command)
        for command in restore[:-1]:
            sh.run(command)
        assert Path(f"{store}.before-restore").stat().st_size == size // 2, "the broken store is kept beside"
        assert Path(f"{store}.before-restore").read_bytes()[:HEADERS] == bytes(HEADERS)
        second = sh.serve(restore[-1], store)
        with httpx.Client(base_url=second.url, timeout=60, trust_env=False) as client:
            after = documents(client, leave_out_flows=[live["id"]])
            assert after == before
            assert media(client, after["objects"]) == bytes_before
        restored_live = _live_segments(second, live["id"])
        second.stop()
    # the live flow: the segments acknowledged up to one instant during the backup, in order, none torn
    assert restored_live == writer.acknowledged[: len(restored_live)]
    assert acknowledged_before <= len(restored_live) <= acknowledged_after
    with duckdb.connect(str(store), read_only=True) as con:
        (secret,) = con.execute("SELECT api_key_value FROM webhooks").fetchone() or (None,)
        live_objects = con.execute("SELECT count(*) FROM objects WHERE first_referenced_by_flow = ?", [live["id"]])
        (n_objects,) = live_objects.fetchone() or (0,)
    assert secret == SECRET, "the webhook's secret is restored (a backup holds every column)"
    assert n_objects == len(restored_live), "every live segment's object, and no other, is in the backup"


def test_the_runbook_restores_what_was_backed_up(tmp_path: Path) -> None:
    drill(tmp_path, collect_garbage=False)


def test_objects_a_backup_needs_outlive_garbage_collection(tmp_path: Path) -> None:
    drill(tmp_path, collect_garbage=True)
