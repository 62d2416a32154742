"""The server's copy of the store it holds (``POST /_admin/backup``), as ``tams-analytics backup`` asks for it.

Against a real DuckDB file under a server answering real HTTP (uvicorn in a thread): recorders post single
segments to their flows all through a backup, and the backup holds each flow's segments acknowledged up to one
instant and exactly their objects (a registration's segment and object rows are one transaction: a copy made
table by table would tear them); the writers kept committing meanwhile. The endpoint asks the API's credentials
(401), with JWTs the ``admin`` scope (403), is not in the API reference, makes one backup at a time (409), and
says in words that a store of another engine is backed up by its own engine.

The server writes its copy under ``<data dir>/.backup-staging/`` before sending it. On a small real volume (tmpfs):
a backup is refused (507) while that volume is at its high watermark, and stopped (507) when its copy takes the
volume there, the store still taking writes; with the watermarks off, a volume that fills is a 507 naming the file,
what was written and the free space; ``backup --server`` says each in one line (exit 2) with the size of the
newest backup. Nothing is left in ``.backup-staging/`` (nor the folder itself), and what a server stopped mid-copy
left there goes when a server starts on the data dir.
"""

from __future__ import annotations

import base64
import io
import json
import os
import socket
import struct
import tarfile
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import duckdb
import httpx
import pytest
from fastapi.testclient import TestClient

import tams_analytics as ta
from server.app import create_app
from server.config import Settings
from tams_analytics.backup import backup_store, open_parquet_folder
from tams_analytics.backup.transfer import ADMIN_BACKUP_PATH, SNAPSHOT_MEMBER, SnapshotInfo
from tams_analytics.cli.__main__ import main
from tams_analytics.engines import open_engine
from tams_analytics.predicates import Term
from tests.backup.stores import build_catalog_demo, rich_store
from tests.fixtures.http import serving
from tests.fixtures.idp import AUDIENCE, IdentityProvider
from tests.fixtures.live import serve
from tests.fixtures.volume import SmallVolume, small_volume
from tests.server.conftest import video_flow

#: recorders posting during the backup
WRITERS = 4


class Recorder(threading.Thread):
    """Single abutting segments to one flow, each acknowledged before the next, until stopped."""

    def __init__(self, url: str, flow_id: str) -> None:
        super().__init__(name=f"recorder-{flow_id[:8]}", daemon=True)
        self.url, self.flow_id = url, flow_id
        self.acknowledged: list[tuple[str, str]] = []
        self.failures: list[str] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=60, trust_env=False) as client:
            i = 0
            while not self.stopping.is_set():
                body = {"object_id": str(uuid.uuid4()), "timerange": f"[{i}:0_{i + 1}:0)"}
                r = client.post(f"/flows/{self.flow_id}/segments", json=body)
                if r.status_code != 201:
                    self.failures.append(f"{r.status_code} {r.text[:200]}")
                    return
                self.acknowledged.append((body["object_id"], body["timerange"]))
                i += 1


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """A data dir whose store already holds a demo of 60,000 segments (a copy of it takes a while)."""
    data = tmp_path / "data"
    data.mkdir()
    with ta.connect(f"duckdb:///{data / 'tams.duckdb'}", create=True) as cat:
        build_catalog_demo(cat, 60_000)
    return data


def test_a_backup_through_the_server_shows_one_instant_while_recorders_post(data_dir: Path, tmp_path: Path) -> None:
    with serve(create_app(Settings(data_dir=data_dir))) as client:
        url = str(client.base_url).rstrip("/")
        flows = [video_flow() for _ in range(WRITERS)]
        for flow in flows:
            assert client.put(f"/flows/{flow['id']}", json=flow).status_code == 201
        recorders = [Recorder(url, f["id"]) for f in flows]
        for r in recorders:
            r.start()
        while min(len(r.acknowledged) for r in recorders) < 3:
            assert not any(r.failures for r in recorders), [r.failures for r in recorders]
            threading.Event().wait(0.05)
        before = {r.flow_id: len(r.acknowledged) for r in recorders}
        result = backup_store(str(tmp_path / "backups"), server=url)
        after = {r.flow_id: len(r.acknowledged) for r in recorders}
        for r in recorders:
            r.stopping.set()
            r.join(timeout=60)
            assert not r.failures, r.failures
    assert result.manifest.method == "server" and result.manifest.server == url
    assert sum(after.values()) > sum(before.values()), "the recorders' segments were committed during the backup"
    with open_parquet_folder(Path(result.location)) as backup:
        for r in recorders:
            where = [Term("flow_id", "==", r.flow_id)]
            rows = backup.rows(
                "segments", where, columns=["object_id", "timerange", "start_ns"], order_by=[("start_ns", False)]
            )
            segments = list(
                zip(rows.column("object_id").to_pylist(), rows.column("timerange").to_pylist(), strict=True)
            )
            assert segments == r.acknowledged[: len(segments)], "a prefix of what was acknowledged, in order"
            assert before[r.flow_id] <= len(segments) <= after[r.flow_id]
            objects = backup.rows("objects", [Term("first_referenced_by_flow", "==", r.flow_id)], columns=["id"])
            assert sorted(objects.column("id").to_pylist()) == sorted(o for o, _ in segments), (
                "every segment's object and no other: the copy shows one instant"
            )
        assert backup.count("segments") == result.manifest.tables["segments"].rows


def _answer(client: TestClient, **headers: str) -> httpx.Response:
    return client.post(ADMIN_BACKUP_PATH, headers=headers)


def test_the_endpoint_asks_the_apis_credentials_and_sends_a_tar_of_the_copy(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", auth="basic", basic_users="ann:s3cret")  # type: ignore[arg-type]
    with TestClient(create_app(settings, workers=False)) as client:
        refused = _answer(client)
        assert refused.status_code == 401 and refused.json()["type"] == "UnauthorizedError"
        assert _answer(client, Authorization="Basic YW5uOndyb25n").status_code == 401  # ann:wrong
        ok = _answer(client, Authorization="Basic YW5uOnMzY3JldA==")  # ann:s3cret
        assert ok.status_code == 200 and ok.headers["content-type"] == "application/x-tar"
        with tarfile.open(fileobj=io.BytesIO(ok.content)) as tar:
            names = tar.getnames()
            info = SnapshotInfo.loads(tar.extractfile(SNAPSHOT_MEMBER).read())  # type: ignore[union-attr]
        assert names[0] == SNAPSHOT_MEMBER and "segments/data_0.parquet" in names
        assert info.engine == "duckdb" and set(info.rows) >= {"sources", "flows", "segments", "webhooks"}
        assert "/_admin" not in client.get("/openapi.json").text, "not part of the TAMS API"
        assert not (tmp_path / "data" / ".backup-staging").exists() or not any(
            (tmp_path / "data" / ".backup-staging").iterdir()
        ), "the copy goes once sent"


def test_with_jwts_a_backup_needs_the_admin_scope(tmp_path: Path, idp: IdentityProvider) -> None:
    settings = Settings(data_dir=tmp_path / "data", auth="jwt", jwt_issuer=idp.issuer, jwt_audience=AUDIENCE)
    with TestClient(create_app(settings, workers=False)) as client:
        user = idp.mint("ann", ["read", "write", "delete"])
        refused = _answer(client, Authorization=f"Bearer {user}")
        assert refused.status_code == 403, refused.text
        assert "tams-api/admin" in refused.json()["summary"]
        assert 'error="insufficient_scope"' in refused.headers["www-authenticate"]
        admin = idp.mint("ops", ["admin"])
        assert _answer(client, Authorization=f"Bearer {admin}").status_code == 200


def _store_of_a_large_copy(data_dir: Path, megabytes: int = 12) -> None:
    """A store whose copy is a tar of about ``megabytes`` MB (sources with incompressible descriptions): more than the
    socket buffers between the server and a client that has not read it yet take (a few MB on loopback), so the
    server is still sending it while the client reads its first bytes. A copy that fitted in them (an empty store's,
    19 kB) was wholly sent at once, and the next backup was then rightly free."""
    data_dir.mkdir(parents=True)
    store = data_dir / "tams.duckdb"
    engine = open_engine(f"duckdb:///{store}", create=True)
    engine.create_tables()
    engine.close()
    con = duckdb.connect(str(store))
    try:
        for _ in range(megabytes):
            description = base64.b64encode(os.urandom(750_000)).decode()  # 1 MB of text, 0.75 MB of entropy
            con.execute(
                "INSERT INTO sources (id, format, description) VALUES (?, 'urn:x-nmos:format:video', ?)",
                [str(uuid.uuid4()), description],
            )
    finally:
        con.close()


def test_one_backup_at_a_time(tmp_path: Path) -> None:
    _store_of_a_large_copy(tmp_path / "data")
    with serve(create_app(Settings(data_dir=tmp_path / "data"), workers=False)) as client:
        with client.stream("POST", ADMIN_BACKUP_PATH) as first:
            assert first.status_code == 200
            chunks = first.iter_raw(512)
            next(chunks)  # the copy is being sent
            second = client.post(ADMIN_BACKUP_PATH)
            assert second.status_code == 409 and "being made" in second.json()["summary"]
            for _ in chunks:  # the rest of it
                pass
        assert client.post(ADMIN_BACKUP_PATH).status_code == 200, "free again once sent"


@pytest.mark.parametrize("gone", ["before the first byte", "mid-copy"])
def test_a_client_gone_before_its_backup_is_sent_frees_the_next_one(tmp_path: Path, gone: str) -> None:
    """A client that asks and goes (closing the connection before reading the answer, or after its first bytes)
    must not leave the server refusing every later backup with 409, nor its copy behind."""
    data = tmp_path / "data"
    rich_store(data, segments=3000)
    with serve(create_app(Settings(data_dir=data), workers=False)) as client:
        host, port = client.base_url.host, client.base_url.port
        assert port is not None
        deadline = time.monotonic() + 20
        gone_clients = 0
        while gone_clients < 3:  # the server notices a client gone mid-copy a moment later: 409 meanwhile
            with socket.create_connection((host, port)) as sock:
                sock.sendall(f"POST {ADMIN_BACKUP_PATH} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n".encode())
                if gone == "mid-copy":
                    status = sock.recv(4096)[:12]
                    assert status in (b"HTTP/1.1 200", b"HTTP/1.1 409"), status
                    gone_clients += status == b"HTTP/1.1 200"
                else:
                    gone_clients += 1
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # reset, not FIN
            assert time.monotonic() < deadline, "a backup nobody reads keeps the next ones refused"
            time.sleep(0.05)
        while (answer := client.post(ADMIN_BACKUP_PATH)).status_code == 409:
            assert time.monotonic() < deadline, "a backup nobody reads keeps the next ones refused"
            time.sleep(0.2)
        assert answer.status_code == 200, answer.text
        staging = data / ".backup-staging"
        deadline = time.monotonic() + 20
        while staging.exists() and any(staging.iterdir()):
            assert time.monotonic() < deadline, f"copies left behind: {list(staging.iterdir())}"
            time.sleep(0.2)


def test_a_copy_that_breaks_off_is_one_line_exit_2_and_leaves_no_backup(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The server stopped mid-copy: its tar ends early. ``backup --server`` says so in one line, exit 2, and the
    repository holds no backup (not even an unfinished folder)."""
    with TestClient(create_app(Settings(data_dir=tmp_path / "data"), workers=False)) as client:
        whole = _answer(client).content
    half = whole[: len(whole) // 2]

    class Broken(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.send_response(200)
            self.send_header("content-type", "application/x-tar")
            self.send_header("content-length", str(len(half)))
            self.end_headers()
            self.wfile.write(half)

        def log_message(self, *args: object) -> None:
            pass

    repo = tmp_path / "backups"
    with serving(Broken) as url:
        code = main(["backup", "--server", url, "--to", str(repo)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert err[0].startswith("tams-analytics backup: the copy is incomplete: "), err
    assert not repo.exists() or list(repo.iterdir()) == []


def test_serve_streams_a_backup_larger_than_a_frame_part_and_stops_with_a_client_gone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``serve`` (a store process behind an HTTP process) sends a backup's tar part by part as the client reads it
    (:mod:`server.processes.protocol`): the backup verifies, and clients that go mid-copy free the next backup."""
    from server.processes.protocol import STREAM_AFTER_BYTES
    from tests.reliability.conftest import LiveServer

    data = tmp_path / "data"
    rich_store(data, segments=20000)
    server = LiveServer(data).start()
    try:
        repo = tmp_path / "backups"
        assert main(["backup", "--server", server.url, "--to", str(repo), "--format", "json"]) == 0
        capsys.readouterr()
        (made,) = repo.iterdir()
        assert json.loads((made / "backup.json").read_text())["object_grace_s"] == 604800  # the server's, recorded
        assert sum(f.stat().st_size for f in made.rglob("*.parquet")) > STREAM_AFTER_BYTES, "not streamed"
        assert main(["verify", "--from", str(repo)]) == 0
        for _ in range(3):  # each goes after its first bytes: the store process stops its app's response
            with socket.create_connection(("127.0.0.1", server.port)) as sock:
                sock.sendall(f"POST {ADMIN_BACKUP_PATH} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n".encode())
                assert sock.recv(4096)[:12] in (b"HTTP/1.1 200", b"HTTP/1.1 409")
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        deadline = time.monotonic() + 20
        with server.client() as client:
            while (answer := client.post(ADMIN_BACKUP_PATH)).status_code == 409:
                assert time.monotonic() < deadline, "a backup nobody reads keeps the next ones refused"
                time.sleep(0.2)
            assert answer.status_code == 200 and len(answer.content) > STREAM_AFTER_BYTES
            with tarfile.open(fileobj=io.BytesIO(answer.content)) as tar:
                assert "segments/data_0.parquet" in tar.getnames()
            assert client.get("/health").status_code == 200
    finally:
        server.stop()


# -- the copy's space ------------------------------------------------------------------------------------------
#: a volume holding the data dir of a store whose copy is about 9 MB (``_store_of_a_large_copy``)
VOLUME_BYTES = 64 << 20
#: free space: low at 16 MiB, high at 12 MiB (the flood stage keeps a checkpoint's 4 MiB and more anyway)
WATERMARKS = {"disk_watermark_low": "16MiB", "disk_watermark_high": "12MiB", "disk_watermark_flood": "1MiB"}


@pytest.fixture
def volume(tmp_path: Path) -> Iterator[SmallVolume]:
    with small_volume(tmp_path / "vol", VOLUME_BYTES) as mounted:
        yield mounted


def _staged(data: Path) -> list[str]:
    """What ``.backup-staging`` holds (``["-"]``: it is not there)."""
    staging = data / ".backup-staging"
    return sorted(p.name for p in staging.rglob("*")) if staging.exists() else ["-"]


def _segment(client: httpx.Client | TestClient, flow_id: str, second: int) -> int:
    body = {"object_id": str(uuid.uuid4()), "timerange": f"[{second}:0_{second + 1}:0)"}
    return client.post(f"/flows/{flow_id}/segments", json=body).status_code


def test_a_backup_that_would_take_the_volume_past_the_high_watermark_is_refused_or_stopped(
    volume: SmallVolume, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = volume.path / "data"
    _store_of_a_large_copy(data)
    repo = tmp_path / "backups"
    settings = Settings(data_dir=data, **WATERMARKS)  # type: ignore[arg-type]
    with serve(create_app(settings, workers=False)) as client:
        url = str(client.base_url).rstrip("/")
        flow = video_flow()
        assert client.put(f"/flows/{flow['id']}", json=flow).status_code == 201
        assert main(["backup", "--server", url, "--to", str(repo)]) == 0  # room for it: the newest backup
        assert _staged(data) == ["-"], "neither the copy nor the staging folder is left"
        capsys.readouterr()

        volume.fill(leave=20 << 20)  # above the low watermark; the copy (9 MB) would leave 11 MiB: past the high
        stopped = client.post(ADMIN_BACKUP_PATH)
        assert stopped.status_code == 507 and stopped.json()["type"] == "InsufficientStorageError", stopped.text
        summary = stopped.json()["summary"]
        assert summary.startswith("a backup stopped with ") and "of its copy written" in summary, summary
        assert f"{data / '.backup-staging'}" in summary and "free of 64.0 MiB" in summary, summary
        assert "high watermark (12.0 MiB free)" in summary and "stop the server" in summary, summary
        assert _staged(data) == ["-"] and volume.free_bytes() > 19 << 20, "the copy is removed"
        assert _segment(client, flow["id"], 0) == 201, "the store takes writes on"

        volume.free()
        volume.fill(leave=10 << 20)  # at the high watermark: refused before anything is copied
        refused = client.post(ADMIN_BACKUP_PATH)
        assert refused.status_code == 507 and refused.json()["summary"].startswith("a backup refused: "), refused.text
        assert main(["backup", "--server", url, "--to", str(repo)]) == 2
        err = capsys.readouterr().err.splitlines()
        assert len(err) == 1 and err[0].startswith(f"tams-analytics backup: the server at {url} could not make"), err
        assert str(data / ".backup-staging") in err[0] and "free of 64.0 MiB" in err[0], err
        (newest,) = [p.name for p in repo.iterdir()]
        assert f"the newest backup in {repo}, {newest}, holds 8." in err[0], err
        assert _segment(client, flow["id"], 1) == 201

        volume.free()
        assert client.post(ADMIN_BACKUP_PATH).status_code == 200
    assert _staged(data) == ["-"]


def test_a_backup_that_meets_a_full_volume_says_the_file_and_the_space(
    volume: SmallVolume, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """With the watermarks off nothing stops the copy before the volume is full: the 507 says where and how much."""
    data = volume.path / "data"
    _store_of_a_large_copy(data)
    settings = Settings(data_dir=data, disk_watermarks=False)
    with serve(create_app(settings, workers=False)) as client:
        url = str(client.base_url).rstrip("/")
        volume.fill(leave=4 << 20)
        full = client.post(ADMIN_BACKUP_PATH)
        assert full.status_code == 507 and full.json()["type"] == "InsufficientStorageError", full.text
        summary = full.json()["summary"]
        assert summary.startswith(f"the backup failed: no space left on device writing {data / '.backup-staging'}/")
        assert ".parquet: the copy in " in summary and "free of 64.0 MiB" in summary, summary
        assert _staged(data) == ["-"]
        assert main(["backup", "--server", url, "--to", str(tmp_path / "backups")]) == 2
        err = capsys.readouterr().err.splitlines()
        assert len(err) == 1 and "no space left on device writing" in err[0] and "free of 64.0 MiB" in err[0], err
        assert not (tmp_path / "backups").exists() or list((tmp_path / "backups").iterdir()) == []


def test_what_a_server_stopped_mid_copy_left_goes_when_one_starts(tmp_path: Path) -> None:
    data = tmp_path / "data"
    left = data / ".backup-staging" / "0123abcd" / "segments"
    left.mkdir(parents=True)
    (left / "data_0.parquet").write_bytes(b"\0" * 4096)
    with TestClient(create_app(Settings(data_dir=data), workers=False)) as client:
        assert client.get("/service").status_code == 200
        assert _staged(data) == ["-"]


def test_a_server_records_its_stores_absolute_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A server on a relative data dir (``serve --data-dir tams-data``) names its store by its absolute path."""
    monkeypatch.chdir(tmp_path)
    rich_store(tmp_path / "tams-data", segments=100)
    with serve(create_app(Settings(data_dir=Path("tams-data")), workers=False)) as client:
        result = backup_store(str(tmp_path / "backups"), server=str(client.base_url).rstrip("/"))
    assert result.manifest.store == f"duckdb://{tmp_path / 'tams-data' / 'tams.duckdb'}"


@pytest.fixture
def vast_app(tmp_path: Path) -> Iterator[TestClient]:
    pytest.importorskip("vastdb")
    from tams_analytics.engines.vast import Engine
    from tests.engines.vast.reference import REFERENCE_URL, ReferenceStore

    engine = Engine(REFERENCE_URL, store=ReferenceStore())
    with TestClient(create_app(Settings(data_dir=tmp_path), engine=engine, workers=False, owns_engine=True)) as c:
        yield c


def test_a_store_of_another_engine_is_backed_up_by_that_engine(vast_app: TestClient) -> None:
    answer = _answer(vast_app)
    assert answer.status_code == 400 and "not a DuckDB file" in answer.json()["summary"]
