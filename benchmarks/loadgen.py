"""A small HTTP/1.1 load generator: fixed concurrency, keep-alive connections, asyncio, no dependencies.

Each of ``concurrency`` connections sends one request, reads the whole answer (``Content-Length``
bodies), and sends the next, until the time is up. It does as little work per request as it can, so on a
small machine the server, not the client, sets the pace; both endpoints of a comparison are driven by
the same code in the same run.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class LoadResult:
    requests: int
    seconds: float
    errors: int

    @property
    def per_second(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


class HttpError(RuntimeError):
    """The server answered something other than 200, or broke the protocol."""


def request_bytes(host: str, port: int, path: str) -> bytes:
    """A keep-alive GET request for ``path``.

    >>> request_bytes("127.0.0.1", 8000, "/")
    b'GET / HTTP/1.1\\r\\nHost: 127.0.0.1:8000\\r\\nAccept: application/json\\r\\n\\r\\n'
    """
    return f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nAccept: application/json\r\n\r\n".encode()


async def _read_response(reader: asyncio.StreamReader) -> int:
    """Read one response; return its status."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    length = None
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        lowered = name.strip().lower()
        if lowered == b"content-length":
            length = int(value.strip())
        elif lowered == b"transfer-encoding":
            raise HttpError("chunked answers are not supported by this load generator")
    if length is None:
        raise HttpError("answer without Content-Length")
    if length:
        await reader.readexactly(length)
    return status


async def _connection(
    host: str, port: int, requests: Sequence[bytes], offset: int, deadline: float, counts: list[int]
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    i = offset
    try:
        while time.perf_counter() < deadline:
            writer.write(requests[i % len(requests)])
            i += 1
            status = await _read_response(reader)
            counts[0 if status == 200 else 1] += 1
    finally:
        writer.close()
        await writer.wait_closed()


async def _run(host: str, port: int, paths: Sequence[str], concurrency: int, seconds: float) -> LoadResult:
    requests = [request_bytes(host, port, p) for p in paths]
    counts = [0, 0]
    started = time.perf_counter()
    deadline = started + seconds
    await asyncio.gather(*(_connection(host, port, requests, k, deadline, counts) for k in range(concurrency)))
    return LoadResult(counts[0], time.perf_counter() - started, counts[1])


def load(host: str, port: int, paths: Sequence[str], *, concurrency: int = 8, seconds: float = 2.0) -> LoadResult:
    """Drive GETs of ``paths`` (in turn) for ``seconds`` over ``concurrency`` keep-alive connections.

    Raises :class:`HttpError` if any answer is not 200, so a broken endpoint cannot look fast.
    """
    result = asyncio.run(_run(host, port, paths, concurrency, seconds))
    if result.errors:
        raise HttpError(f"{result.errors} of {result.requests + result.errors} answers were not 200 ({paths[0]} ...)")
    return result
