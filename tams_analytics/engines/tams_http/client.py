"""HTTP to a TAMS API: GETs with credentials, retries with back-off, paging by ``Link``, errors as TamsError.

Only what the TAMS 8.x specification promises is assumed: listings are JSON arrays paged by ``limit`` and
an opaque ``page`` key, the next page is the ``Link: <url>; rel="next"`` header (absent on the last page),
the service may cap ``limit`` (``X-Paging-Limit`` says what it used), and errors carry an ``error.json``
body (``type``, ``summary``). ``Link`` targets on another origin are refused rather than followed, so that
credentials never leave the store's host.

Requests are retried on 429 and 5xx answers, time-outs and connection failures, waiting ``Retry-After``
when the server gives one, else an exponential back-off with jitter. Every request is counted
(:attr:`Client.requests`) and logged at debug level without credentials.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Iterator, Mapping
from typing import Any, Final
from urllib.parse import urljoin, urlsplit

import httpx

from tams_analytics.engines.tams_http.auth import Auth, RefreshableAuth, credentials_refused
from tams_analytics.exceptions import TamsError

__all__ = ["RETRY_STATUS", "Client", "ServerUnreachableError"]

logger = logging.getLogger(__name__)

#: answers worth another try
RETRY_STATUS: Final = frozenset({429, 500, 502, 503, 504})
#: the longest wait between two tries, whatever Retry-After says
MAX_WAIT_S: Final = 30.0


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    return parts.scheme.lower(), (parts.hostname or "").lower(), parts.port


class ServerUnreachableError(TamsError):
    """Nothing answers at a TAMS API's URL (refused, unknown host, no answer in time)."""

    def __init__(self, base_url: str, reason: str) -> None:
        super().__init__(
            f"no TAMS server answers at {base_url} ({reason}). Start one (tams-analytics serve; with --demo 2000 it "
            "serves a small demo store), or check the URL's host and port, the network and any proxy in between."
        )
        self.base_url = base_url
        self.reason = reason


def _transport_reason(exc: httpx.TransportError) -> str:
    """Why a connection failed, in a few words (httpx wraps the OS error)."""
    text = str(exc) or type(exc).__name__
    if "refused" in text.lower():
        return "connection refused: no server listens on that port"
    if "name or service not known" in text.lower() or "nodename nor servname" in text.lower():
        return "unknown host name"
    return " ".join(text.split())[:200]


class Client:
    """GETs against the TAMS API at ``base_url`` (``https://host[:port][/prefix]``, no credentials in it)."""

    def __init__(
        self,
        base_url: str,
        *,
        auth: Auth | None = None,
        timeout: float = 30.0,
        retries: int = 5,
        backoff_s: float = 0.25,
        verify: bool = True,
        connections: int = 8,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.auth = auth
        self.retries = max(0, retries)
        self.backoff_s = backoff_s
        self.timeout = timeout
        self._http = httpx.Client(
            timeout=timeout,
            verify=verify,
            limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
            headers={"Accept": "application/json"},
        )
        self._lock = threading.Lock()
        #: requests sent (retries included)
        self.requests = 0

    def __repr__(self) -> str:
        return f"Client({self.base_url!r})"

    def close(self) -> None:
        self._http.close()

    # -- one request ----------------------------------------------------------------------------------------
    def _headers(self) -> Mapping[str, str]:
        return dict(self.auth()) if self.auth is not None else {}

    def _send(self, url: str, params: Mapping[str, str] | None) -> httpx.Response:
        with self._lock:
            self.requests += 1
        return self._http.get(url, params=params, headers=self._headers())

    def get(self, path_or_url: str, params: Mapping[str, str] | None = None) -> httpx.Response:
        """GET a path under the base URL (or an absolute URL on its origin); 2xx and 404 are returned, other
        answers raise :class:`TamsError` after the retries."""
        url = path_or_url if "://" in path_or_url else self.base_url + path_or_url
        if _origin(url) != _origin(self.base_url):
            raise TamsError(f"the TAMS server at {self.base_url} pointed to another origin ({_origin(url)[1]})")
        refreshed = False
        attempt = 0
        while True:
            try:
                response = self._send(url, params)
            except (httpx.TimeoutException, httpx.TransportError) as exc:
                if attempt >= self.retries:
                    raise TamsError(f"cannot reach the TAMS server at {self.base_url}: {type(exc).__name__}") from exc
                self._wait(attempt, None)
                attempt += 1
                continue
            logger.debug("GET %s %s -> %s", url, dict(params or {}), response.status_code)
            if response.status_code == 401 and not refreshed and isinstance(self.auth, RefreshableAuth):
                self.auth.refresh()
                refreshed = True
                continue
            if response.status_code in RETRY_STATUS and attempt < self.retries:
                self._wait(attempt, response.headers.get("retry-after"))
                attempt += 1
                continue
            if response.is_success or response.status_code == 404:
                return response
            raise self._error(response)

    def _wait(self, attempt: int, retry_after: str | None) -> None:
        delay = self.backoff_s * (2**attempt) * (0.5 + random.random())
        if retry_after is not None:
            try:
                delay = float(retry_after)
            except ValueError:
                pass
        time.sleep(min(MAX_WAIT_S, max(0.0, delay)))

    def _error(self, response: httpx.Response) -> TamsError:
        """A TamsError naming the request and the server's ``error.json`` (type and summary)."""
        what = f"GET {response.request.url.copy_with(query=None)}"
        detail = ""
        try:
            body = response.json()
        except ValueError:
            body = None
        if isinstance(body, dict) and body.get("summary"):
            # the type beside the status, not as "Type: ...", which reads as a Python exception on the command line
            kind = body.get("type")
            detail = f"{f' ({kind})' if kind else ''}: {body['summary']}"
        said = f"{what} answered HTTP {response.status_code}{detail}"
        return credentials_refused(said) if response.status_code in (401, 403) else TamsError(said)

    # -- is anyone there? --------------------------------------------------------------------------------
    def probe(self, timeout: float) -> Any:
        """GET the API root once, within ``timeout`` seconds and without retries: the service's answer (the
        list of its paths), or a :class:`ServerUnreachableError` (nothing answers) or :class:`TamsError`
        (something answers, not as a TAMS API would to these credentials) saying in one paragraph what to do.
        """
        url = self.base_url + "/"
        with self._lock:
            self.requests += 1
        try:
            response = self._http.get(url, headers=self._headers(), timeout=timeout)
        except httpx.TimeoutException:  # (the reason is in the message: no chain of httpx's frames under it)
            raise ServerUnreachableError(self.base_url, f"no answer within {timeout:g} s") from None
        except httpx.TransportError as exc:
            raise ServerUnreachableError(self.base_url, _transport_reason(exc)) from None
        logger.debug("GET %s -> %s", url, response.status_code)
        if response.status_code == 401 and isinstance(self.auth, RefreshableAuth):
            self.auth.refresh()
            response = self._http.get(url, headers=self._headers(), timeout=timeout)
        if not response.is_success:
            error = self._error(response)
            if response.status_code == 404:
                raise TamsError(f"{error}: {self.base_url} is not the root of a TAMS API; check the URL's path prefix")
            raise error
        try:
            return response.json()
        except ValueError:
            kind = response.headers.get("content-type", "no content type").split(";")[0]
            raise TamsError(
                f"{self.base_url} answers, but not as a TAMS API (GET / gave {kind}, not JSON): check the URL's host, "
                "port and path prefix"
            ) from None

    # -- documents ------------------------------------------------------------------------------------------
    def document(self, path: str, params: Mapping[str, str] | None = None) -> Any | None:
        """The JSON document at ``path``, or None when the server answers 404."""
        response = self.get(path, params)
        return None if response.status_code == 404 else response.json()

    def pages(self, path: str, params: Mapping[str, str] | None = None) -> Iterator[list[Any]]:
        """The pages of a listing, following ``Link: rel="next"`` until the last one (a 404 is no items)."""
        url: str | None = path
        query: Mapping[str, str] | None = params
        while url is not None:
            response = self.get(url, query)
            if response.status_code == 404:
                return
            items = response.json()
            if not isinstance(items, list):
                raise TamsError(f"GET {url}: expected a JSON array, got {type(items).__name__}")
            yield items
            nxt = response.links.get("next", {}).get("url")
            url, query = (urljoin(str(response.url), nxt), None) if nxt else (None, None)
