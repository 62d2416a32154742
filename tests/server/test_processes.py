"""The process boundary of ``serve`` (:mod:`server.processes`), each side driven alone: the protocol's frames and
refusals, and a real store process (``python -m server.processes store`` on a real DuckDB file) answered by the HTTP
processes' client, without an HTTP process."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from server.processes import protocol
from server.processes.client import StoreClient
from server.processes.edges import EDGE_ROWS, EdgePage
from server.processes.protocol import (
    FetchPage,
    Forward,
    Forwarded,
    Hello,
    KeepPage,
    KeptPage,
    PageRows,
    Refusal,
    StoreProcessError,
    Welcome,
)
from tams_analytics.catalog import AddResult, Registration
from tams_analytics.exceptions import (
    ConflictError,
    InsufficientStorageError,
    StoreNotFoundError,
    StoreUnavailableError,
)
from tests.server.conftest import video_flow

REPO = Path(__file__).resolve().parents[2]


# -- the protocol ----------------------------------------------------------------------------------------------------
def test_a_frame_carries_one_message_and_its_length() -> None:
    hello = Hello(protocol.VERSION, "0.1.0", 42)
    frame = protocol.encode(hello)
    assert protocol.frame_length(frame[: protocol.HEADER_BYTES]) == len(frame) - protocol.HEADER_BYTES
    assert protocol.decode(frame[protocol.HEADER_BYTES :]) == hello
    with pytest.raises(ValueError, match="not from a peer"):
        protocol.frame_length(b"\xff\xff\xff\xff")


@pytest.mark.parametrize(
    "error",
    [
        ConflictError("timerange overlaps the stored segment [0:0_1:0)"),
        StoreNotFoundError("no DuckDB store at /x.duckdb"),  # its __init__ takes other arguments than its args
        InsufficientStorageError("the volume is full", part="store", uncertain=True),
    ],
    ids=["conflict", "store-not-found", "insufficient-storage"],
)
def test_a_library_error_travels_as_itself(error: Exception) -> None:
    """The same class, words and attributes on the other side (status codes are mapped from them)."""
    again = protocol.decode(protocol.encode(Refusal.of(error))[protocol.HEADER_BYTES :]).error()
    assert type(again) is type(error)
    assert str(again) == str(error)
    assert vars(again) == vars(error)


def test_anything_else_travels_as_its_words() -> None:
    again = Refusal.of(KeyError("flows")).error()
    assert isinstance(again, StoreProcessError)
    assert str(again) == "the store process failed: KeyError: 'flows'"


# -- the store process, alone --------------------------------------------------------------------------------------
class StoreProcess:
    """``python -m server.processes store`` on a DuckDB file under ``data``, ready for HTTP processes at ``socket``."""

    def __init__(self, data: Path, socket: Path) -> None:
        self.data, self.socket = data, socket
        read, write = os.pipe()
        env = {k: v for k, v in os.environ.items() if not k.startswith("TAMS_")}
        env |= {
            "PYTHONPATH": str(REPO),
            "TAMS_PROCESS_OPTIONS": json.dumps({"data_dir": str(data), "webhooks_allow_private": True}),
            "TAMS_STORE_SOCKET": str(socket),
            "TAMS_READY_FD": str(write),
        }
        self.process = subprocess.Popen(
            [sys.executable, "-m", "server.processes", "store"], env=env, pass_fds=[write], cwd=data.parent
        )
        os.close(write)
        with os.fdopen(read, "rb") as ready:
            assert ready.read(1) == b"r", "the store process ended before it was ready"

    def stop(self) -> int:
        self.process.terminate()
        return self.process.wait(60)


@pytest.fixture
def store_process(tmp_path: Path) -> Iterator[StoreProcess]:
    process = StoreProcess(tmp_path / "data", tmp_path / "store.sock")
    try:
        yield process
    finally:
        if process.process.poll() is None:
            process.stop()


def _forward(method: str, path: str, body: object = None, query: str = "") -> Forward:
    data = b"" if body is None else json.dumps(body).encode()
    headers = [(b"host", b"testserver"), (b"content-type", b"application/json")]
    return Forward(
        method,
        "http",
        ("testserver", 80),
        ("127.0.0.1", 1),
        "",
        path,
        path.encode(),
        query.encode(),
        headers,
        "1.1",
        data,
    )


def _page(flow_id: str, key: str) -> FetchPage:
    return FetchPage(
        key=key,
        flow_id=flow_id,
        limit=10,
        timerange=None,
        object_id=None,
        after=None,
        reverse=False,
        with_object_tr=False,
        wants_urls=True,
    )


def test_the_store_process_registers_reads_keeps_pages_and_answers_the_rest(store_process: StoreProcess) -> None:
    async def run() -> None:
        client = StoreClient(str(store_process.socket))
        await client.start(wait_s=30)
        assert client.connected
        flow = video_flow()
        fid = flow["id"]
        put: Forwarded = await client.forward(_forward("PUT", f"/flows/{fid}", flow))
        assert put.status == 201 and put.route == "/flows/{flow_id}", put
        segments = [{"object_id": f"o{i}", "timerange": f"[{i}:0_{i + 1}:0)"} for i in range(3)]
        results = await asyncio.gather(*(client.queue(Registration.of(fid, [s])) for s in segments))
        assert all(isinstance(r, AddResult) and r.accepted == [0] and not r.failed for r in results)
        refused = await client.queue(Registration.of(fid, [{"object_id": "x", "timerange": "[0:0_1:0)"}]))
        assert "overlaps" in refused.failed[0].reason
        rows = await client.fetch_page(_page(fid, "page-1"))
        assert isinstance(rows, PageRows) and rows.ticket is not None
        assert [r["object_id"] for r in rows.rows] == ["o0", "o1", "o2"]
        assert set(rows.instances) == {"o0", "o1", "o2"}
        client.keep_page(KeepPage(rows.ticket, "page-1", b"[rendered]", {"x-paging-limit": "10"}, float("inf")))
        await asyncio.sleep(0.2)  # a one-way message: give it time to arrive
        kept = await client.fetch_page(_page(fid, "page-1"))
        assert kept == KeptPage(b"[rendered]", {"x-paging-limit": "10"})
        # a registration makes the kept page stale at once: rows again, with the new segment
        await client.queue(Registration.of(fid, [{"object_id": "o3", "timerange": "[3:0_4:0)"}]))
        again = await client.fetch_page(_page(fid, "page-1"))
        assert isinstance(again, PageRows) and [r["object_id"] for r in again.rows][-1] == "o3"
        missing: Forwarded = await client.forward(_forward("GET", f"/flows/{uuid.uuid4()}"))
        assert missing.status == 404 and json.loads(missing.body)["type"] == "NotFoundError"
        ready: Forwarded = await client.forward(_forward("GET", "/ready"))
        assert ready.status == 200 and json.loads(ready.body)["status"] == "ready"
        await client.close()

    asyncio.run(run())
    assert store_process.stop() == 0  # SIGTERM: the queue applied, the store checkpointed, exit 0


def _edge(flow_id: str, limit: int, *, wants_urls: bool = True) -> FetchPage:
    return FetchPage(("edge", flow_id, limit, wants_urls), flow_id, limit, None, None, None, True, False, wants_urls)


def _assert_same_page(mine: EdgePage | None, theirs: object, limit: int) -> None:
    """The copy's page is the store process's answer: its rows, whether more follow, the objects' instance rows."""
    assert mine is not None, f"limit {limit}: not answered from the copy"
    assert isinstance(theirs, PageRows)
    assert [dict(r) for r in mine.rows] == [{k: r[k] for k in mine.rows[0]} for r in theirs.rows[:limit]]
    assert mine.more == (len(theirs.rows) > limit)
    assert {k: list(v) for k, v in mine.instances.items()} == {
        k: [{c: row[c] for c in row} for row in v] for k, v in theirs.instances.items()
    }


def test_http_processes_answer_live_edges_from_the_copy_the_store_process_feeds(store_process: StoreProcess) -> None:
    """Each acknowledged registration is on the client's copy of the live edge before the acknowledgement arrives,
    and the copy's page is the store process's own answer (rows, whether more follow, the objects' instance rows),
    for pages of every size the copy answers; what changes a flow otherwise (an instance added to its newest object,
    segments deleted) drops the flow's copy at once, and the store process's next answer starts it again."""

    async def run() -> None:
        client = StoreClient(str(store_process.socket))
        await client.start(wait_s=30)
        flow = video_flow()
        fid = flow["id"]
        assert (await client.forward(_forward("PUT", f"/flows/{fid}", flow))).status == 201

        async def same_as_the_store(limit: int, *, wants_urls: bool = True) -> None:
            mine = await client.edge_page(fid, limit, wants_urls=wants_urls)
            _assert_same_page(mine, await client.fetch_page(_edge(fid, limit, wants_urls=wants_urls)), limit)

        assert await client.edge_page(fid, 1, wants_urls=True) is None  # nothing known of the flow yet
        await client.fetch_page(_edge(fid, 1))  # an empty flow's answer starts its copy
        empty = await client.edge_page(fid, 1, wants_urls=True)
        assert empty is not None and empty.rows == [] and not empty.more
        for i in range(12):
            oid = f"o{i}"
            result = await client.queue(Registration.of(fid, [{"object_id": oid, "timerange": f"[{i}:0_{i + 1}:0)"}]))
            assert result.accepted == [0]
            newest = client.edges.page(fid, 1, wants_urls=True)  # no waiting: applied before the acknowledgement
            assert newest is not None and newest.rows[0]["object_id"] == oid
        for limit in range(1, EDGE_ROWS):
            await same_as_the_store(limit)
        await same_as_the_store(1, wants_urls=False)
        added = await client.forward(
            _forward("POST", "/objects/o11/instances", {"url": "http://media.example/o11", "label": "mirror"})
        )
        assert added.status == 201, added.body
        assert await client.edge_page(fid, 1, wants_urls=True) is None
        await client.fetch_page(_edge(fid, 1))
        await same_as_the_store(1)
        mine = await client.edge_page(fid, 1, wants_urls=True)
        assert mine is not None and [i["label"] for i in mine.instances["o11"]] == ["mirror"]
        deleted = await client.forward(_forward("DELETE", f"/flows/{fid}/segments", query="timerange=[10:0_12:0)"))
        assert deleted.status == 204, deleted.body
        assert await client.edge_page(fid, 1, wants_urls=True) is None
        await client.fetch_page(_edge(fid, 3))
        await same_as_the_store(1)
        assert (await client.edge_page(fid, 1, wants_urls=True)).rows[0]["object_id"] == "o9"  # type: ignore[union-attr]
        await client.close()

    asyncio.run(run())


def test_after_a_restart_an_http_process_answers_the_live_flows_edges_from_its_first_read(tmp_path: Path) -> None:
    """A store process started again on a store whose flows were written a moment ago (within the preload window): an
    HTTP process connecting to it starts its copy with each live flow's newest segments before ``start`` returns, so
    the flows' edge pages are answered from the copy at once, without waiting or asking, and are the store process's
    own answers; a flow that was never written is not in the copy."""
    data, sock = tmp_path / "data", tmp_path / "store.sock"

    async def write() -> tuple[list[str], str]:
        client = StoreClient(str(sock))
        await client.start(wait_s=30)
        fids = []
        for count in (6, 2):
            flow = video_flow()
            fids.append(flow["id"])
            assert (await client.forward(_forward("PUT", f"/flows/{flow['id']}", flow))).status == 201
            for i in range(count):
                segment = {"object_id": f"{flow['id']}-o{i}", "timerange": f"[{i}:0_{i + 1}:0)"}
                assert (await client.queue(Registration.of(flow["id"], [segment]))).accepted == [0]
        idle = video_flow()
        assert (await client.forward(_forward("PUT", f"/flows/{idle['id']}", idle))).status == 201
        await client.close()
        return fids, idle["id"]

    async def read(fids: list[str], idle: str) -> None:
        client = StoreClient(str(sock))
        await client.start(wait_s=30)
        assert len(client.edges) == len(fids)
        for fid in fids:
            for limit in range(1, EDGE_ROWS):
                mine = client.edges.page(fid, limit, wants_urls=True)  # no waiting, no call: the copy as started
                _assert_same_page(mine, await client.fetch_page(_edge(fid, limit)), limit)
        assert client.edges.page(idle, 1, wants_urls=True) is None
        await client.close()

    first = StoreProcess(data, sock)
    try:
        fids, idle = asyncio.run(write())
    finally:
        assert first.stop() == 0
    again = StoreProcess(data, sock)
    try:
        asyncio.run(read(fids, idle))
    finally:
        assert again.stop() == 0


def _stall(stalled: Any, go_on: Any) -> None:
    """Hold the event loop that runs this until ``go_on`` (after saying so with ``stalled``)."""
    stalled.set()
    go_on.wait()


def test_another_http_process_waits_for_the_updates_counted_before_a_read(store_process: StoreProcess) -> None:
    """Two HTTP processes' clients, the reader's on an event loop of its own that is stalled while a registration is
    acknowledged to the writer: an edge page the reader is asked for at once, before its loop has read the update,
    waits for it (the count it reads says there is one) and shows the acknowledged segment."""
    import threading

    reader_loop = asyncio.new_event_loop()
    thread = threading.Thread(target=reader_loop.run_forever, daemon=True)
    thread.start()
    reader = StoreClient(str(store_process.socket))

    def on_reader(coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, reader_loop)

    async def run() -> None:
        writer = StoreClient(str(store_process.socket))
        await writer.start(wait_s=30)
        on_reader(reader.start(wait_s=30)).result()
        flow = video_flow()
        fid = flow["id"]
        assert (await writer.forward(_forward("PUT", f"/flows/{fid}", flow))).status == 201
        on_reader(reader.fetch_page(_edge(fid, 1))).result()
        for i in range(10):
            stalled, go_on = threading.Event(), threading.Event()
            reader_loop.call_soon_threadsafe(_stall, stalled, go_on)
            stalled.wait()
            oid = f"o{i}"
            await writer.queue(Registration.of(fid, [{"object_id": oid, "timerange": f"[{i}:0_{i + 1}:0)"}]))
            asked = on_reader(reader.edge_page(fid, 1, wants_urls=True))
            go_on.set()
            page = await asyncio.wrap_future(asked)
            assert page is not None and page.rows[0]["object_id"] == oid, (i, page)
        await writer.close()
        on_reader(reader.close()).result()

    try:
        asyncio.run(run())
    finally:
        reader_loop.call_soon_threadsafe(reader_loop.stop)
        thread.join(10)
        reader_loop.close()


def test_a_client_of_another_version_is_refused(store_process: StoreProcess) -> None:
    async def run() -> Welcome:
        reader, writer = await asyncio.open_unix_connection(str(store_process.socket))
        writer.write(protocol.encode(Hello(protocol.VERSION + 1, "0.0.1", os.getpid())))
        await writer.drain()
        length = protocol.frame_length(await reader.readexactly(protocol.HEADER_BYTES))
        welcome = protocol.decode(await reader.readexactly(length))
        assert await reader.read() == b""  # and it hangs up
        writer.close()
        return welcome  # type: ignore[no-any-return]

    welcome = asyncio.run(run())
    assert welcome.refused is not None and f"protocol {protocol.VERSION + 1} of tams-analytics 0.0.1" in welcome.refused


def test_calls_fail_at_once_with_503_while_the_store_process_is_gone(tmp_path: Path) -> None:
    async def run() -> None:
        client = StoreClient(str(tmp_path / "nobody.sock"), retry_s=0.05)
        await client.start(wait_s=0.2)
        with pytest.raises(StoreUnavailableError, match="the store process is not running"):
            await client.queue(Registration.of(str(uuid.uuid4()), [{"object_id": "a", "timerange": "[0:0_1:0)"}]))
        await client.close()

    asyncio.run(run())


def test_a_large_forwarded_answer_comes_part_by_part_and_a_client_gone_stops_it(tmp_path: Path) -> None:
    """A backup's tar, larger than :data:`~server.processes.protocol.STREAM_AFTER_BYTES`, is streamed: parts asked
    one at a time, byte for byte the copy; a stream abandoned after its first part stops the app's response, and the
    next backup is not refused as one still being made."""
    import io
    import tarfile

    import tams_analytics as ta
    from server.processes.client import ForwardedStream
    from tests.backup.stores import build_catalog_demo

    data = tmp_path / "data"
    data.mkdir()
    with ta.connect(f"duckdb:///{data / 'tams.duckdb'}", create=True) as cat:
        build_catalog_demo(cat, 20000)
    process = StoreProcess(data, tmp_path / "store.sock")

    async def run() -> None:
        client = StoreClient(str(process.socket))
        await client.start(wait_s=30)
        answer = await client.forward(_forward("POST", "/_admin/backup"))
        assert isinstance(answer, ForwardedStream) and answer.status == 200
        parts = [part async for part in answer.body()]
        assert len(parts) > 2 and max(map(len, parts)) < sum(map(len, parts)) // 2  # never held whole
        with tarfile.open(fileobj=io.BytesIO(b"".join(parts))) as tar:
            assert "segments/data_0.parquet" in tar.getnames()
        assert client._streams == {}
        for _ in range(100):  # free again a moment after it was sent (the app's response still ending)
            abandoned = await client.forward(_forward("POST", "/_admin/backup"))
            if abandoned.status != 409:
                break
            await asyncio.sleep(0.05)
        assert isinstance(abandoned, ForwardedStream)
        body = abandoned.body()
        assert await body.__anext__()
        await body.aclose()  # the client went away: the store process is told to send no more
        for _ in range(100):
            again = await client.forward(_forward("POST", "/_admin/backup"))
            if again.status != 409:
                break
            await asyncio.sleep(0.1)
        assert isinstance(again, ForwardedStream) and again.status == 200
        assert sum([len(p) async for p in again.body()]) == sum(map(len, parts))
        await client.close()

    try:
        asyncio.run(run())
    finally:
        assert process.stop() == 0
