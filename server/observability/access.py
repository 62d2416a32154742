"""The access log: one line per request, written off the request path (``TAMS_ACCESS_LOG``).

uvicorn's own access log formats and writes each line on the event loop, as the answer starts: a ``LogRecord``, the
access formatter, a lock and a ``write`` to stdout per request (on the 2-core development machine: 32-38 µs in a loop
alone, and 339 against 246 µs of an HTTP process's CPU a ``GET /health`` without it, side by side), and a request that
waits whenever stdout does (a full pipe, a slow terminal). Here the
request middleware (:class:`~server.observability.middleware.RequestObserver`) only appends the request's facts to
a deque once it is answered (about 1 µs); a thread formats what gathered and writes it every :data:`FLUSH_S`, in
writes of whole lines of at most :data:`CHUNK_BYTES` each (``PIPE_BUF``: a write that size to a pipe is never
interleaved with another's, so the lines of several HTTP processes sharing stdout stay whole). Nothing is lost at a
clean shutdown: :meth:`AccessLog.close` (at the end of uvicorn's shutdown, after the last request was answered) writes
what is left. A stream that fails (a full disk, a closed stdout) or blocks never fails or holds a request: the lines
that could not be written are counted and said once the stream takes lines again, and past :data:`MAX_PENDING` lines
waiting, new ones are dropped and counted the same way.

The lines: with ``text`` logs the line uvicorn writes (``INFO:     127.0.0.1:50432 - "GET /flows HTTP/1.1" 200 OK``)
on stdout; with ``json`` logs one JSON object per line on stderr, as every other log line (``time``, ``level``,
``logger`` ``uvicorn.access``, ``message``, ``request_id``) and the request's fields: ``client``, ``method``,
``path`` (with its query), ``status`` and ``duration_ms``. ``access_token`` values in queries are redacted.

``TAMS_ACCESS_LOG``: ``on`` (every request), ``off``, ``errors`` (answers of 400 or more only) or ``sample:N``
(one request in N, and every error). A ``--log-level`` above ``info`` turns it off, as it turned uvicorn's off.
"""

from __future__ import annotations

import collections
import datetime as dt
import http
import json
import logging
import re
import sys
import threading
import time
import urllib.parse
from dataclasses import dataclass
from typing import IO, Any, Final

__all__ = ["FLUSH_S", "MAX_PENDING", "AccessLog", "AccessMode", "redact_tokens"]

#: how often the writer thread writes what gathered, seconds
FLUSH_S: Final = 0.1
#: the most one write carries (whole lines; a longer line goes alone): what a pipe writes without interleaving
CHUNK_BYTES: Final = 4096
#: lines waiting to be written past which new ones are dropped (and counted): a stream that blocks costs memory only
MAX_PENDING: Final = 100_000
#: how long a shutdown waits for the last lines to be written (a stream that blocks longer loses them)
CLOSE_TIMEOUT_S: Final = 10.0
#: the logger name the lines carry in JSON (uvicorn's: what operators' filters on the access log already name)
LOGGER: Final = "uvicorn.access"

_TOKEN = re.compile(r"((?:^|[?&])access_token=)[^&\s]*")
_PHRASES: dict[int, str] = {s.value: f"{s.value} {s.phrase}" for s in http.HTTPStatus}
_LEVELS = {"critical": 50, "error": 40, "warning": 30, "warn": 30, "info": 20, "debug": 10, "trace": 5}


def redact_tokens(text: str) -> str:
    """``text`` (a request line, a query) with ``access_token`` values hidden (bearer tokens, the spec's
    url_token_auth).

    >>> redact_tokens("/flows?limit=1&access_token=s3cret&x=1")
    '/flows?limit=1&access_token=[redacted]&x=1'
    """
    return _TOKEN.sub(r"\1[redacted]", text) if "access_token=" in text else text


@dataclass(frozen=True)
class AccessMode:
    """Which requests get a line: every one in :attr:`every` (0: none), and with :attr:`errors` every answer of
    400 or more besides.

    >>> AccessMode.parse("on"), AccessMode.parse("sample:10"), AccessMode.parse("errors").every
    (AccessMode(every=1, errors=True), AccessMode(every=10, errors=True), 0)
    >>> AccessMode.parse("off").enabled, AccessMode.parse("sometimes")
    Traceback (most recent call last):
    ...
    ValueError: TAMS_ACCESS_LOG is on, off, errors or sample:N (one request in N, N >= 1), not 'sometimes'
    """

    every: int
    errors: bool

    @classmethod
    def parse(cls, text: str) -> AccessMode:
        value = text.strip().lower()
        if value == "on":
            return cls(1, True)
        if value == "off":
            return cls(0, False)
        if value == "errors":
            return cls(0, True)
        name, _, n = value.partition(":")
        if name == "sample" and n.isdigit() and int(n) >= 1:
            return cls(int(n), True)
        raise ValueError(f"TAMS_ACCESS_LOG is on, off, errors or sample:N (one request in N, N >= 1), not {text!r}")

    @property
    def enabled(self) -> bool:
        return self.every > 0 or self.errors


#: what the middleware keeps of an answered request: (time, client, method, path, query, HTTP version, status,
#: seconds, request id)
Entry = tuple[float, Any, str, str, bytes, str, int, float, str]


class AccessLog:
    """The access lines of one process: :meth:`add` on the request path, a thread that writes (see the module
    docstring). :meth:`start` starts the thread; :meth:`close` writes what is left and stops it."""

    def __init__(self, mode: AccessMode, log_format: str = "text", stream: IO[str] | None = None) -> None:
        self.mode = mode
        self.json = log_format == "json"
        #: where the lines go (None: stdout for text, stderr for JSON, as uvicorn's and the JSON logs went)
        self._stream = stream
        self._entries: collections.deque[Entry] = collections.deque()
        self._seen = 0
        #: lines dropped (too many waiting) and lines the stream refused, in all; and how many of each were said
        self.dropped = 0
        self.unwritten = 0
        self._said_dropped = self._said_unwritten = 0
        self._failure = ""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()  # one writer at a time: the thread's flushes and close()'s last one

    @classmethod
    def for_serving(cls, setting: str, log_format: str, log_level: str) -> AccessLog | None:
        """The access log ``serve`` (or an HTTP process) runs with: None when ``setting`` is ``off`` or ``log_level``
        is above ``info`` (access lines are at INFO)."""
        mode = AccessMode.parse(setting)
        if not mode.enabled or _LEVELS.get(log_level.strip().lower(), 20) > logging.INFO:
            return None
        return cls(mode, log_format)

    # -- the request path ----------------------------------------------------------------------------------------
    def add(self, scope: Any, status: int, seconds: float, request_id: str) -> None:
        """Keep an answered request's line (when the mode takes it); never raises, never waits."""
        mode = self.mode
        if mode.every != 1:
            self._seen += 1
            if not ((mode.errors and status >= 400) or (mode.every and self._seen % mode.every == 0)):
                return
        if len(self._entries) >= MAX_PENDING:
            self.dropped += 1
            return
        self._entries.append(
            (
                time.time(),
                scope.get("client"),
                scope["method"],
                scope["path"],
                scope["query_string"],
                scope["http_version"],
                status,
                seconds,
                request_id,
            )
        )

    # -- the writer ----------------------------------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="tams-access-log", daemon=True)
            self._thread.start()

    def close(self, timeout_s: float = CLOSE_TIMEOUT_S) -> None:
        """Write every line kept so far and stop the thread (idempotent)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None
        else:
            self.flush()

    def _run(self) -> None:
        while not self._stop.wait(FLUSH_S):
            self.flush()
        self.flush()

    def flush(self) -> None:
        """Format and write the lines gathered, in writes of whole lines (:data:`CHUNK_BYTES` at most, a longer line
        alone); a failing stream loses them, counted."""
        with self._lock:
            entries = self._entries
            batch = [entries.popleft() for _ in range(len(entries))]
            try:
                lines = [self._line(e) for e in batch]
            except Exception as exc:  # a line that cannot be formatted must not stop the log
                lines, self._failure = [], f"{type(exc).__name__}: {exc}"
                self.unwritten += len(batch)
            dropped, unwritten = self.dropped, self.unwritten
            said = self._lost(dropped - self._said_dropped, unwritten - self._said_unwritten)
            if said:
                lines.insert(0, said)
            if not lines:
                return
            stream = self._stream or (sys.stderr if self.json else sys.stdout)
            written = 0
            try:
                if stream is None:
                    raise OSError("no stream to write to")
                for chunk, count in _chunks(lines):
                    stream.write(chunk)
                    stream.flush()
                    written += count
            except (OSError, ValueError) as exc:  # a full disk, a closed or broken stream
                self.unwritten += min(len(batch), len(lines) - written)
                self._failure = str(exc) or type(exc).__name__
            else:
                self._said_dropped, self._said_unwritten = dropped, unwritten

    def _lost(self, dropped: int, unwritten: int) -> str:
        """A line saying how many lines were dropped or not written since a line last said so (empty: none)."""
        if not (dropped or unwritten):
            return ""
        parts = []
        if dropped:
            parts.append(f"{dropped} dropped ({MAX_PENDING:,} were waiting to be written)")
        if unwritten:
            parts.append(f"{unwritten} not written ({self._failure})")
        message = "access log: lines lost: " + ", ".join(parts)
        if self.json:
            doc = {"time": _iso(time.time()), "level": "WARNING", "logger": LOGGER, "message": message}
            return json.dumps({**doc, "request_id": None}, ensure_ascii=False) + "\n"
        return f"WARNING:  {message}\n"

    def _line(self, entry: Entry) -> str:
        when, client, method, path, query, version, status, seconds, request_id = entry
        address = f"{client[0]}:{client[1]}" if client else ""
        target = urllib.parse.quote(path)
        if query:
            target = redact_tokens(f"{target}?{query.decode('ascii', 'replace')}")
        message = f'{address} - "{method} {target} HTTP/{version}" {status}'
        if not self.json:
            return f'INFO:     {address} - "{method} {target} HTTP/{version}" {_PHRASES.get(status, str(status))}\n'
        doc = {
            "time": _iso(when),
            "level": "INFO",
            "logger": LOGGER,
            "message": message,
            "request_id": request_id,
            "client": address,
            "method": method,
            "path": target,
            "status": status,
            "duration_ms": round(seconds * 1000, 3),
        }
        return json.dumps(doc, ensure_ascii=False) + "\n"


def _chunks(lines: list[str], limit: int = CHUNK_BYTES) -> list[tuple[str, int]]:
    """``lines`` joined into chunks of at most ``limit`` bytes (a longer line alone), each with its count of lines.

    >>> [(len(c), n) for c, n in _chunks(["a" * 30 + "\\n"] * 5 + ["b" * 99 + "\\n"], limit=64)]
    [(62, 2), (62, 2), (31, 1), (100, 1)]
    """
    out: list[tuple[str, int]] = []
    chunk: list[str] = []
    size = 0
    for line in lines:
        n = len(line.encode())
        if chunk and size + n > limit:
            out.append(("".join(chunk), len(chunk)))
            chunk, size = [], 0
        chunk.append(line)
        size += n
    if chunk:
        out.append(("".join(chunk), len(chunk)))
    return out


def _iso(when: float) -> str:
    return dt.datetime.fromtimestamp(when, dt.UTC).isoformat(timespec="milliseconds")
