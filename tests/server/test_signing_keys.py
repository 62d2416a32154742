"""Signing keys that outlive a process: generated once into the data dir (0600) unless configured, reused
on restart, rotated with the previous key accepted for one URL lifetime. The restart test runs real
``tams-analytics serve`` processes on 127.0.0.1, one after the other, on one data dir."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest

from benchmarks.live import LiveServer
from server.config import Settings
from server.stores import build_stores
from tams_analytics.storage.base import StorageBackendInfo
from tams_analytics.storage.keys import KEY_FILE, SigningKeys, rotate
from tams_analytics.storage.local import LocalObjectStore
from tests.server.conftest import video_flow

#: none of what the two dependency sets differ in (docs/development/dependencies.md): VAST's set skips it
pytestmark = pytest.mark.stack_independent

LIFETIME = 600


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def local_store(data_dir: Path, clock: Clock) -> LocalObjectStore:
    """What the server builds at startup from the data dir (a new process: keys read from the file)."""
    keys = SigningKeys.in_dir(data_dir, grace_s=LIFETIME, clock=clock)
    info = StorageBackendInfo(
        id="8b2f4a6e-4d2c-4c3b-9a57-3f0e2d1c6b5a", label="local", provider="p", store_product="files"
    )
    return LocalObjectStore(info, root=data_dir / "objects", base_url="http://127.0.0.1:1", keys=keys)


def check(store: LocalObjectStore, url: str) -> str | None:
    parts = urlsplit(url)
    key = parts.path.rsplit("/", 1)[-1]
    return store.check_signature("GET", key, dict(parse_qsl(parts.query)))


def test_a_key_is_generated_once_private_and_reused(tmp_path: Path) -> None:
    clock = Clock()
    first = local_store(tmp_path, clock)
    path = tmp_path / KEY_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    url = first.signed_url("GET", "k", LIFETIME)
    assert check(local_store(tmp_path, clock), url) is None  # "restarted": same key from the file
    assert len(json.loads(path.read_text())["keys"]) == 1


def test_a_configured_key_writes_no_file(tmp_path: Path) -> None:
    build_stores(Settings(data_dir=tmp_path, local_signing_key="configured-key"))
    assert not (tmp_path / KEY_FILE).exists()
    build_stores(Settings(data_dir=tmp_path))
    assert (tmp_path / KEY_FILE).exists()


def test_after_a_rotation_old_urls_work_until_their_lifetime_ends(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("tams_analytics.storage.keys.RELOAD_S", 1e9)  # ``before`` never notices the rotation
    clock = Clock()
    before = local_store(tmp_path, clock)
    old_url = before.signed_url("GET", "k", LIFETIME)
    clock.now += 100
    rotated_at = clock.now
    rotate(tmp_path, clock=clock)
    after = local_store(tmp_path, clock)  # the restarted server
    new_url = after.signed_url("GET", "k", LIFETIME)
    assert new_url != old_url
    assert check(after, old_url) is None and check(after, new_url) is None
    clock.now += LIFETIME - 100  # the old URL's last second
    assert check(after, old_url) is None
    clock.now += 1
    assert check(after, old_url) == "the URL has expired"
    # a process still holding the old key (never restarted) signs a URL now: the new one accepts it only
    # while the old key is accepted, one URL lifetime after the rotation
    late_url = before.signed_url("GET", "k", LIFETIME)
    assert check(after, late_url) is None
    clock.now = rotated_at + LIFETIME + 1
    assert check(after, late_url) == "the URL signature is not valid"
    assert len(after.keys.verifiers()) == 1
    rotate(tmp_path, clock=clock)  # only the previous key is kept
    assert len(json.loads((tmp_path / KEY_FILE).read_text())["keys"]) == 2


def test_a_running_store_picks_up_a_rotation_within_a_second(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock()
    store = local_store(tmp_path, clock)
    old_url = store.signed_url("GET", "k", LIFETIME)
    rotate(tmp_path, clock=clock)
    monkeypatch.setattr("tams_analytics.storage.keys.RELOAD_S", 0.0)
    new_url = store.signed_url("GET", "k", LIFETIME)
    assert new_url != old_url and check(store, old_url) is None and check(store, new_url) is None
    assert check(local_store(tmp_path, clock), new_url) is None


# -- real processes ---------------------------------------------------------------------------------------
def _media_url(server: LiveServer) -> str:
    """Ingest one object through the API and return the GET URL a reader is handed for it."""
    flow = video_flow()
    with httpx.Client(base_url=server.base_url, trust_env=False, timeout=30) as api:
        assert api.put(f"/flows/{flow['id']}", json=flow).status_code == 201
        (media,) = api.post(f"/flows/{flow['id']}/storage", json={"limit": 1}).json()["media_objects"]
        put = media["put_url"]
        assert api.put(put["url"], content=b"essence", headers={"content-type": put["content-type"]}).is_success
        segment = {"object_id": media["object_id"], "timerange": "[0:0_1:0)"}
        assert api.post(f"/flows/{flow['id']}/segments", json=[segment]).status_code == 201
        (seg,) = api.get(f"/flows/{flow['id']}/segments").json()
    return str(seg["get_urls"][0]["url"])


def _fetch(base_url: str, url: str) -> httpx.Response:
    """GET the URL's path and query from the server now at ``base_url`` (each process has its own port)."""
    parts = urlsplit(url)
    return httpx.get(f"{base_url}{parts.path}?{parts.query}", trust_env=False, timeout=30)


def test_urls_handed_out_before_a_restart_and_a_rotation_still_answer(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    store_url = f"duckdb:///{data / 'tams.duckdb'}"
    with LiveServer(store_url, data) as first:
        url = _media_url(first)
        assert _fetch(first.base_url, url).content == b"essence"
    with LiveServer(store_url, data) as second:
        got = _fetch(second.base_url, url)
        assert got.status_code == 200 and got.content == b"essence"
    rotated = subprocess.run(
        [sys.executable, "-m", "tams_analytics.cli", "keys", "rotate", "--data-dir", str(data)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert rotated.returncode == 0, rotated.stderr
    with LiveServer(store_url, data) as third:
        assert _fetch(third.base_url, url).status_code == 200  # the previous key, within the URL's lifetime
        forged = url.replace("sig=", "sig=0")
        assert _fetch(third.base_url, forged).status_code == 403
    assert stat.S_IMODE((data / KEY_FILE).stat().st_mode) == 0o600
