"""The ``tams+http`` engine's HTTP: the probe at connect, credentials, retries with back-off, errors, paging
safety, progress.

Credentials run against this project's server with authentication on (a second live server over the shared
demo store); retries, time-outs and hostile ``Link`` headers against a small scripted HTTP server (the
standard library's, on 127.0.0.1), since a well-behaved TAMS server does not produce them on demand; a server
that is not there is a port nothing listens on, and one that never answers a socket that never accepts.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

import tams_analytics as ta
from tams_analytics.engines import tams_http
from tams_analytics.engines.tams_http.auth import BearerToken
from tams_analytics.exceptions import TamsError
from tests.fixtures.live_tams import ServedCatalog, ServedDemo

TOKEN = "s3cret-token-value"


@pytest.fixture(scope="module")
def guarded(served_demo: ServedDemo, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedCatalog]:
    """The demo store behind bearer authentication."""
    server = ServedCatalog(
        served_demo.duckdb, tmp_path_factory.mktemp("guarded"), auth="bearer", bearer_tokens=TOKEN
    ).start()
    yield server
    server.stop()


def _count(url: str, **options: object) -> int:
    cat = ta.connect(url, **options)
    try:
        return int(cat.flows().count().execute())
    finally:
        cat.close()


def test_a_bearer_token_from_the_url_or_the_environment(
    guarded: ServedCatalog, served_demo: ServedDemo, monkeypatch: pytest.MonkeyPatch
) -> None:
    flows = served_demo.duckdb.count("flows")
    host = guarded.url.removeprefix("http://")
    assert _count(f"tams+http://:{TOKEN}@{host}") == flows
    monkeypatch.setenv("TAMS_HTTP_TOKEN", TOKEN)
    assert _count(f"tams+http://{host}") == flows


def test_wrong_credentials_say_so_at_connect_and_never_show_the_secret(
    guarded: ServedCatalog, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TAMS_HTTP_TOKEN", raising=False)
    caplog.set_level(logging.DEBUG)
    wrong = "wrong-" + TOKEN
    url = f"tams+http://:{wrong}@{guarded.url.removeprefix('http://')}"
    with pytest.raises(TamsError, match=r"GET .*/ answered HTTP 401.*check the credentials") as caught:
        ta.connect(url)
    assert wrong not in str(caught.value)
    # in the library's words: every source of credentials, the auth= option among them
    for source in ("user info", "TAMS_HTTP_TOKEN", "TAMS_HTTP_USERNAME and TAMS_HTTP_PASSWORD", "auth= option"):
        assert source in str(caught.value), str(caught.value)
    cat = ta.connect(url, probe_timeout=None)  # not asked at connect: the first query says the same
    with pytest.raises(TamsError, match=r"HTTP 401.*check the credentials") as caught:
        cat.flows().count().execute()
    assert wrong not in str(caught.value) and wrong not in repr(cat.engine.client.auth)
    assert wrong not in caplog.text and TOKEN not in caplog.text
    cat.close()


# -- the probe at connect ---------------------------------------------------------------------------------------
def test_a_server_that_is_not_there_fails_at_connect_at_once_saying_what_to_do() -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    started = time.monotonic()
    with pytest.raises(tams_http.ServerUnreachableError) as caught:
        ta.connect(f"tams+http://127.0.0.1:{port}")
    assert time.monotonic() - started < 2  # not after five retries with back-off
    message = str(caught.value)
    assert "\n" not in message and message.startswith(f"no TAMS server answers at http://127.0.0.1:{port}")
    assert "connection refused" in message and "tams-analytics serve" in message and "check the URL" in message
    assert caught.value.__cause__ is None and caught.value.__suppress_context__  # no chain of httpx's frames


def test_a_server_that_never_answers_fails_at_connect_after_the_probes_time_out() -> None:
    with socket.socket() as s:  # listens (the kernel accepts connections) but never reads or answers
        s.bind(("127.0.0.1", 0))
        s.listen(8)
        started = time.monotonic()
        with pytest.raises(tams_http.ServerUnreachableError, match=r"no answer within 0.5 s"):
            ta.connect(f"tams+http://127.0.0.1:{s.getsockname()[1]}", probe_timeout=0.5)
        assert time.monotonic() - started < 3


def test_a_url_that_is_not_an_api_root_says_so_at_connect() -> None:
    def root(path: str) -> Answer:
        return (200, {}, ["service", "flows"]) if path == "/api/" else (404, {}, error("NotFound", "no such path"))

    with Scripted(lambda path, n: (200, {}, []), root=root) as server:
        with pytest.raises(TamsError, match=r"HTTP 404.*is not the root of a TAMS API; check the URL's path prefix"):
            ta.connect(server.url)  # the API is under /api
        ta.connect(f"{server.url}/api").close()
        assert server.probes == ["/", "/api/"] and server.seen == []


def test_a_web_page_is_not_an_api() -> None:
    page: Answer = (200, {"Content-Type": "text/html"}, "<html></html>")
    with Scripted(lambda path, n: (200, {}, []), root=lambda path: page) as server:
        with pytest.raises(TamsError, match=r"answers, but not as a TAMS API \(GET / gave text/html, not JSON\)"):
            ta.connect(server.url)


def test_pluggable_credentials_are_refreshed_once_after_a_401(guarded: ServedCatalog, served_demo: ServedDemo) -> None:
    class Rotating:
        """A token source whose first token has expired (as an OAuth2 client's would)."""

        def __init__(self) -> None:
            self.token = "expired"
            self.refreshed = 0

        def __call__(self) -> Mapping[str, str]:
            return BearerToken(self.token)()

        def refresh(self) -> None:
            self.refreshed += 1
            self.token = TOKEN

    auth = Rotating()
    assert _count(f"tams+{guarded.url}", auth=auth) == served_demo.duckdb.count("flows")
    assert auth.refreshed == 1


# -- a scripted server ------------------------------------------------------------------------------------------
Answer = tuple[int, Mapping[str, str], object]


class Scripted:
    """An HTTP server answering GETs from a script: ``answers(path_and_query, n) -> (status, headers, body)``.

    An API root (a path ending in ``/``: what ``connect`` asks first) is answered by ``root(path)``, the list
    of paths by default, and recorded in :attr:`probes` rather than counted in :attr:`seen`."""

    def __init__(
        self,
        answers: Callable[[str, int], Answer],
        delay: Callable[[int], float] = lambda n: 0.0,
        root: Callable[[str], Answer] = lambda path: (200, {}, ["service", "flows", "sources"]),
    ) -> None:
        self.seen: list[str] = []
        self.probes: list[str] = []
        script = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.endswith("/"):
                    script.probes.append(self.path)
                    status, headers, body = root(self.path)
                else:
                    n = len(script.seen)
                    script.seen.append(self.path)
                    time.sleep(delay(n))
                    status, headers, body = answers(self.path, n)
                data = (body if isinstance(body, str) else json.dumps(body)).encode()
                self.send_response(status)
                if "Content-Type" not in headers:
                    self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in headers.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"tams+http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> Scripted:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def error(kind: str, summary: str) -> dict[str, str]:
    return {"type": kind, "summary": summary, "time": "2026-01-01T00:00:00Z"}


def test_busy_and_failing_answers_are_retried(tmp_path: Path) -> None:
    def answers(path: str, n: int) -> Answer:
        if n == 0:
            return 429, {"Retry-After": "0"}, error("TooManyRequests", "slow down")
        if n == 1:
            return 503, {}, error("ServiceUnavailable", "busy")
        return 200, {}, []

    with Scripted(answers) as server:
        assert _count(server.url, retries=3) == 0
        assert len(server.seen) == 3


def test_a_time_out_is_retried() -> None:
    with Scripted(lambda path, n: (200, {}, []), delay=lambda n: 2.0 if n == 0 else 0.0) as server:
        assert _count(server.url, timeout=0.5, retries=2) == 0
        assert len(server.seen) == 2


def test_after_the_retries_the_servers_error_json_is_the_error() -> None:
    with Scripted(lambda path, n: (500, {}, error("InternalError", "the disk is on fire"))) as server:
        with pytest.raises(TamsError, match=r"GET .*/flows answered HTTP 500 \(InternalError\): the disk is on fire"):
            _count(server.url, retries=2)
        assert len(server.seen) == 3


def test_a_link_to_another_origin_is_not_followed() -> None:
    def answers(path: str, n: int) -> Answer:
        return 200, {"Link": '<http://elsewhere.invalid/flows?page=2>; rel="next"'}, []

    with Scripted(answers) as server:
        with pytest.raises(TamsError, match="another origin"):
            _count(server.url)
        assert len(server.seen) == 1


def test_relative_links_and_a_prefix(tmp_path: Path) -> None:
    """A service under a path prefix, answering the next page with a relative link."""

    def answers(path: str, n: int) -> Answer:
        if path.startswith("/api/flows") and "page=" not in path:
            return 200, {"Link": '</api/flows?page=k2>; rel="next"'}, []
        return 200, {}, []

    with Scripted(answers) as server:
        assert _count(f"{server.url}/api/") == 0
        assert [p.split("?")[0] for p in server.seen] == ["/api/flows", "/api/flows"]


def test_a_progress_bar_on_long_listings(
    served_demo: ServedDemo, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tams_http, "PROGRESS_DELAY_S", 0.0)  # shown at once, not only after a second
    cat = served_demo.connect(progress=True)
    try:
        assert cat.segments().count().execute() == served_demo.duckdb.count("segments")
    finally:
        cat.close()
    assert "segments" in capsys.readouterr().err
