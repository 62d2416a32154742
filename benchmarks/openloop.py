"""An open-loop load generator for live ingest, as recorders behave: requests go out on the clock.

Each flow's next single-segment POST is due at a time fixed in advance (the flows in turn, so at rate
``R`` over ``N`` flows each flow posts every ``N / R`` seconds, their offsets spread evenly), whatever the
server is doing; its latency is counted **from that scheduled time**, so a server that stalls is charged
for every request it held back (no coordinated omission). Edge readers
(``GET /flows/{id}/segments?reverse_order=true&limit=1``) are scheduled the same way at their own rate.

POSTs go over a pool of keep-alive connections (one request in flight on each): a due POST waits for a
free connection, and that wait is part of its latency. A flow's POSTs go out in order, one at a time, as
a recorder sends them: a POST that falls due while the flow's previous one is unanswered follows it on
the same connection. Readers have a pool of their own. An answer other than 201 (or 200 for a read), or
a broken connection, is counted as an error; after a broken connection the flow's next segment starts
after the unanswered one (whether or not that one was stored), so no POST overlaps it.

The generator must not be the bottleneck: it reports its own lateness (how long after its scheduled time
each request was handed to a connection) and its CPU time, so a run on a busy client shows it.
"""

from __future__ import annotations

import asyncio
import gc
import json
import random
import time
import uuid
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

from benchmarks.live_ingest import LIVE_EPOCH_NS, read_response
from tams_analytics.open_files import raise_open_files
from tams_analytics.timerange import NS_PER_SECOND, TimeRange

#: record kinds
POST, READ = 0, 1
#: status recorded for a request whose connection broke (or timed out) before its answer
BROKEN = 0
#: tags of phases whose errors are expected (load cut short by stopping the server), left out of :attr:`OpenLoop.errors`
EXPECTED_ERRORS = ("before-",)


@dataclass(slots=True)
class Record:
    """One request: when it was due, handed to a connection, written and answered (``perf_counter``)."""

    kind: int
    tag: str
    #: the flow's position in :attr:`OpenLoop.flows`
    flow: int
    due: float
    dispatched: float
    sent: float = 0.0
    done: float = 0.0
    status: int = -1

    @property
    def latency(self) -> float:
        """Seconds from the scheduled time to the end of the answer."""
        return self.done - self.due


@dataclass
class _Flow:
    id: str
    next_start: int
    busy: bool = False
    backlog: deque[Record] = field(default_factory=deque)


class _Connection:
    """One keep-alive HTTP/1.1 connection, opened on first use and again after it broke."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, data: bytes, timeout_s: float) -> tuple[int, bytes]:
        async with asyncio.timeout(timeout_s):
            if self.reader is not None and self.reader.at_eof():
                self.close()  # the server closed it while idle (uvicorn's keep-alive timeout): a client reconnects
            if self.writer is None:
                self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
            assert self.reader is not None
            self.writer.write(data)
            return await read_response(self.reader)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


class OpenLoop:
    """Scheduled POSTs to ``flows`` and edge reads of them against one server (see the module docstring).

    Every request is kept as a :class:`Record` in :attr:`records`, tagged with the phase that scheduled it;
    :attr:`acknowledged` holds each flow's acknowledged ``(object_id, timerange)`` for the store check.
    """

    def __init__(
        self,
        host: str,
        port: int,
        flows: Sequence[str],
        *,
        connections: int = 64,
        reader_connections: int = 16,
        segment_s: float = 2.0,
        timeout_s: float = 60.0,
        seed: int = 26,
    ) -> None:
        self.host, self.port = host, port
        self.step_ns = int(segment_s * NS_PER_SECOND)
        self.flows = [_Flow(f, LIVE_EPOCH_NS) for f in flows]
        self.connections = connections
        self.reader_connections = reader_connections
        self.timeout_s = timeout_s
        self.rng = random.Random(seed)
        self.records: list[Record] = []
        self.acknowledged: dict[str, list[tuple[str, str]]] = {f: [] for f in flows}
        #: the first few unexpected errors (see :data:`EXPECTED_ERRORS`), for the report
        self.errors: list[str] = []
        self._next_flow = 0
        self._posts: asyncio.Queue[Record | None] = asyncio.Queue()
        self._reads: asyncio.Queue[Record | None] = asyncio.Queue()
        self._outstanding = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._workers: list[asyncio.Task[None]] = []
        self._pools: list[_Connection] = []

    # -- lifecycle ---------------------------------------------------------------------------------------
    async def start(self, *, connect: bool = True) -> None:
        """Start the connection workers (``connect``: open every connection now, not on first use), with room for
        them under this process's limit on open files (a connection per recorder is more than the usual 1,024)."""
        raise_open_files()
        posts = [_Connection(self.host, self.port) for _ in range(self.connections)]
        reads = [_Connection(self.host, self.port) for _ in range(self.reader_connections)]
        self._pools = posts + reads
        if connect:
            for c in self._pools:
                c.reader, c.writer = await asyncio.open_connection(self.host, self.port)
        self._workers = [asyncio.create_task(self._post_worker(c)) for c in posts]
        self._workers += [asyncio.create_task(self._read_worker(c)) for c in reads]

    async def stop(self) -> None:
        """Stop the workers and close the connections (call after :meth:`drain`); thaw what :meth:`schedule` froze."""
        gc.unfreeze()
        for _ in range(self.connections):
            self._posts.put_nowait(None)
        for _ in range(self.reader_connections):
            self._reads.put_nowait(None)
        await asyncio.gather(*self._workers, return_exceptions=True)
        for c in self._pools:
            c.close()

    def disconnect(self) -> None:
        """Forget every connection (a restarted server: the next request on each opens a new one)."""
        for c in self._pools:
            c.close()

    async def drain(self, timeout_s: float) -> bool:
        """Wait until every scheduled request is answered (or failed); False if that took over ``timeout_s``."""
        try:
            async with asyncio.timeout(timeout_s):
                await self._idle.wait()
        except TimeoutError:
            return False
        return True

    # -- scheduling --------------------------------------------------------------------------------------
    async def schedule(
        self, tag: str, rate: float, seconds: float, *, read_share: float = 0.25, start: float | None = None
    ) -> float:
        """Schedule POSTs at ``rate`` per second (the flows in turn) and edge reads at ``rate * read_share``
        for ``seconds`` from now (or from ``start``, a ``perf_counter`` time: a run scheduled in parts, each from
        where the last ended); returns the start time. Does not wait for the answers (:meth:`drain`).

        First it collects garbage and freezes what is alive (``gc.freeze``; :meth:`stop` thaws it). The generator keeps
        a record of every request, and a full collection walks every object it keeps: one that fell at the start of a
        resume paused the generator for 70-110 ms (nothing sent, every POST due meanwhile counted late against the
        server). Frozen, the records of earlier phases are not walked again."""
        gc.collect()
        gc.freeze()
        if start is None:
            start = time.perf_counter()
        posts = round(rate * seconds)
        reads = round(rate * read_share * seconds)
        post_gap = 1.0 / rate if rate > 0 else 0.0
        read_gap = 1.0 / (rate * read_share) if rate > 0 and read_share > 0 else 0.0
        i = j = 0
        while i < posts or j < reads:
            due_post = start + i * post_gap if i < posts else float("inf")
            due_read = start + (j + 0.5) * read_gap if j < reads else float("inf")
            due = min(due_post, due_read)
            now = time.perf_counter()
            if due > now:
                await asyncio.sleep(due - now)
                now = time.perf_counter()
            while i < posts and start + i * post_gap <= now:
                self._dispatch(self._posts, Record(POST, tag, self._next_flow, start + i * post_gap, now))
                self._next_flow = (self._next_flow + 1) % len(self.flows)
                i += 1
            while j < reads and start + (j + 0.5) * read_gap <= now:
                flow = self.rng.randrange(len(self.flows))
                self._dispatch(self._reads, Record(READ, tag, flow, start + (j + 0.5) * read_gap, now))
                j += 1
        return start

    def _dispatch(self, queue: asyncio.Queue[Record | None], record: Record) -> None:
        self.records.append(record)
        self._outstanding += 1
        self._idle.clear()
        queue.put_nowait(record)

    def _finished(self) -> None:
        self._outstanding -= 1
        if self._outstanding == 0:
            self._idle.set()

    # -- workers -----------------------------------------------------------------------------------------
    async def _post_worker(self, conn: _Connection) -> None:
        while (record := await self._posts.get()) is not None:
            flow = self.flows[record.flow]
            if flow.busy:  # its previous POST is unanswered: this one follows it
                flow.backlog.append(record)
                continue
            flow.busy = True
            while record is not None:
                await self._post(conn, flow, record)
                record = flow.backlog.popleft() if flow.backlog else None
            flow.busy = False

    async def _post(self, conn: _Connection, flow: _Flow, record: Record) -> None:
        start = flow.next_start
        tr = str(TimeRange.from_ns(start, start + self.step_ns))
        oid = str(uuid.uuid4())
        body = json.dumps({"object_id": oid, "timerange": tr}).encode()
        head = (
            f"POST /flows/{flow.id}/segments HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        record.sent = time.perf_counter()
        try:
            status, answer = await conn.request(head.encode() + body, self.timeout_s)
        except (OSError, EOFError, asyncio.IncompleteReadError, TimeoutError, ValueError) as exc:
            conn.close()
            status, answer = BROKEN, repr(exc).encode()
            flow.next_start = start + self.step_ns  # it may have been stored: never overlap it
        record.done = time.perf_counter()
        record.status = status
        if status == 201:
            flow.next_start = start + self.step_ns
            self.acknowledged[flow.id].append((oid, tr))
        else:
            self._error(record, f"POST {flow.id} {tr}: {status} {answer[:200]!r}")
        self._finished()

    async def _read_worker(self, conn: _Connection) -> None:
        while (record := await self._reads.get()) is not None:
            fid = self.flows[record.flow].id
            req = (
                f"GET /flows/{fid}/segments?reverse_order=true&limit=1 HTTP/1.1\r\n"
                f"Host: {self.host}:{self.port}\r\nAccept: application/json\r\n\r\n"
            ).encode()
            record.sent = time.perf_counter()
            try:
                status, answer = await conn.request(req, self.timeout_s)
            except (OSError, EOFError, asyncio.IncompleteReadError, TimeoutError, ValueError) as exc:
                conn.close()
                status, answer = BROKEN, repr(exc).encode()
            record.done = time.perf_counter()
            record.status = status
            if status != 200:
                self._error(record, f"GET live edge of {fid}: {status} {answer[:200]!r}")
            self._finished()

    def _error(self, record: Record, text: str) -> None:
        if len(self.errors) < 5 and not record.tag.startswith(EXPECTED_ERRORS):
            self.errors.append(f"{record.tag}: {text}")

    # -- results -----------------------------------------------------------------------------------------
    def tagged(self, tag: str, kind: int) -> list[Record]:
        return [r for r in self.records if r.tag == tag and r.kind == kind]

    def first_posts(self, tag: str) -> list[Record]:
        """The first POST of each flow among those of ``tag``."""
        seen: set[int] = set()
        out = []
        for r in self.tagged(tag, POST):
            if r.flow not in seen:
                seen.add(r.flow)
                out.append(r)
        return out
