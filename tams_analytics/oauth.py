"""OAuth2 client credentials for TAMS clients: an ``httpx.Auth`` that signs requests with bearer tokens.

The TAMS spec expects a client to get its bearer token from an OAuth2 grant; for machines (an
ingester, the ``tams+http://`` engine, a CLI job) that is the client-credentials grant (RFC 6749
§4.4). :class:`ClientCredentials` asks the identity provider's token endpoint for a token, keeps it,
and asks again shortly before it expires (or once, when the service answers 401 to a token that
should still be valid: the provider may have rotated its keys). Tokens and the client secret are
never logged nor shown in a ``repr``.

>>> auth = ClientCredentials("https://idp.example/oauth2/token", "ingest", "s3cret", scope="tams-api/read")
>>> auth
ClientCredentials(token_url='https://idp.example/oauth2/token', client_id='ingest', scope='tams-api/read')

Configuration from the environment (:meth:`ClientCredentials.from_env`): ``TAMS_OAUTH_TOKEN_URL``,
``TAMS_OAUTH_CLIENT_ID``, ``TAMS_OAUTH_CLIENT_SECRET``, and optionally ``TAMS_OAUTH_SCOPE`` (space
separated), ``TAMS_OAUTH_AUDIENCE`` (for providers that want one) and ``TAMS_OAUTH_CLIENT_AUTH``
(``basic``, the default: the client id and secret as HTTP basic credentials; or ``post``: in the form).

Needs ``httpx`` (installed with the ``server`` extra).
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections.abc import AsyncGenerator, Generator, Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal, cast, get_args

import httpx

from tams_analytics.exceptions import TamsError

__all__ = ["ClientCredentials", "OAuthError"]

logger = logging.getLogger(__name__)

#: lifetime assumed for a token whose answer gives no ``expires_in``, seconds
DEFAULT_LIFETIME_S: Final = 300.0
_ACCEPT_JSON: Final = {"accept": "application/json"}
#: how the client authenticates to the token endpoint: HTTP Basic, or its id and secret in the form
ClientAuth = Literal["basic", "post"]


class OAuthError(TamsError):
    """The token endpoint refused the client or answered something that is not a bearer token."""


def _client_auth(value: str) -> ClientAuth:
    if value not in get_args(ClientAuth):
        raise OAuthError(f"client_auth must be basic or post, not {value!r}")
    return cast(ClientAuth, value)


@dataclass(frozen=True)
class _Token:
    value: str
    #: ``time.monotonic()`` after which a new token is fetched (ahead of the real expiry)
    refresh_at: float


class ClientCredentials(httpx.Auth):
    """Bearer tokens from an OAuth2 token endpoint (client-credentials grant), cached and refreshed
    ``refresh_margin_s`` before they expire (at most half-way through a short-lived token's life).

    Thread-safe for ``httpx.Client`` and safe on one event loop for ``httpx.AsyncClient`` (the token
    is fetched with a client of the same kind, so an async caller never blocks its loop).
    """

    requires_response_body = False

    def __init__(
        self,
        token_url: str,
        client_id: str,
        client_secret: str,
        *,
        scope: str | None = None,
        audience: str | None = None,
        client_auth: ClientAuth = "basic",
        refresh_margin_s: float = 60.0,
        timeout_s: float = 10.0,
        transport: httpx.BaseTransport | None = None,
        async_transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if not token_url or not client_id or not client_secret:
            raise OAuthError("client credentials need a token URL, a client id and a client secret")
        self.token_url = token_url
        self.client_id = client_id
        self._secret = client_secret
        self.scope = scope
        self.audience = audience
        self.client_auth = _client_auth(client_auth)
        self.refresh_margin_s = refresh_margin_s
        self.timeout_s = timeout_s
        self._transport = transport
        self._async_transport = async_transport
        self._token: _Token | None = None
        self._lock = threading.Lock()
        self._async_lock: asyncio.Lock | None = None
        #: how many tokens were fetched (a refresh is one more)
        self.fetches = 0

    def __repr__(self) -> str:
        return f"ClientCredentials(token_url={self.token_url!r}, client_id={self.client_id!r}, scope={self.scope!r})"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **options: Any) -> ClientCredentials | None:
        """Client credentials from ``TAMS_OAUTH_*`` (see the module); None when no token URL is set."""
        env = os.environ if environ is None else environ
        url = env.get("TAMS_OAUTH_TOKEN_URL")
        if not url:
            return None
        missing = [n for n in ("TAMS_OAUTH_CLIENT_ID", "TAMS_OAUTH_CLIENT_SECRET") if not env.get(n)]
        if missing:
            raise OAuthError(f"TAMS_OAUTH_TOKEN_URL is set: {' and '.join(missing)} must be set too")
        client_auth = _client_auth(env.get("TAMS_OAUTH_CLIENT_AUTH", "basic"))
        return cls(
            url,
            env["TAMS_OAUTH_CLIENT_ID"],
            env["TAMS_OAUTH_CLIENT_SECRET"],
            scope=env.get("TAMS_OAUTH_SCOPE") or None,
            audience=env.get("TAMS_OAUTH_AUDIENCE") or None,
            client_auth=client_auth,
            **options,
        )

    # -- the token -----------------------------------------------------------------------------------------
    def _fresh(self) -> str | None:
        token = self._token
        return token.value if token is not None and time.monotonic() < token.refresh_at else None

    def _request(self) -> tuple[dict[str, str], httpx.BasicAuth | None]:
        form = {"grant_type": "client_credentials"}
        if self.scope:
            form["scope"] = self.scope
        if self.audience:
            form["audience"] = self.audience
        if self.client_auth == "post":
            return form | {"client_id": self.client_id, "client_secret": self._secret}, None
        return form, httpx.BasicAuth(self.client_id, self._secret)

    def _keep(self, response: httpx.Response) -> str:
        """The token of a token endpoint answer (kept until shortly before it expires), or OAuthError."""
        if response.status_code != 200:
            raise OAuthError(f"the token endpoint {self.token_url} answered {response.status_code}: {_why(response)}")
        try:
            body = response.json()
            value, kind = body["access_token"], str(body.get("token_type", "bearer"))
            lifetime = float(body.get("expires_in", DEFAULT_LIFETIME_S))
        except (ValueError, KeyError, TypeError) as exc:
            raise OAuthError(f"the token endpoint {self.token_url} answered no usable token ({exc})") from None
        if not isinstance(value, str) or not value or kind.lower() != "bearer":
            raise OAuthError(f"the token endpoint {self.token_url} answered a {kind!r} token, not a bearer token")
        margin = min(self.refresh_margin_s, lifetime / 2)
        self._token = _Token(value, time.monotonic() + lifetime - margin)
        self.fetches += 1
        logger.info(
            "access token for client %s obtained from %s, valid %.0f s", self.client_id, self.token_url, lifetime
        )
        return value

    def token(self, *, renew: bool = False) -> str:
        """The current access token, fetched (blocking) when there is none or it is about to expire."""
        with self._lock:
            current = None if renew else self._fresh()
            if current is not None:
                return current
            data, auth = self._request()
            with httpx.Client(timeout=self.timeout_s, transport=self._transport) as client:
                try:
                    response = client.post(
                        self.token_url, data=data, auth=auth or httpx.USE_CLIENT_DEFAULT, headers=_ACCEPT_JSON
                    )
                except httpx.HTTPError as exc:
                    raise OAuthError(f"the token endpoint {self.token_url} cannot be reached: {exc}") from None
            return self._keep(response)

    async def atoken(self, *, renew: bool = False) -> str:
        """:meth:`token` for async callers (fetches with an ``httpx.AsyncClient``)."""
        if self._async_lock is None:
            self._async_lock = asyncio.Lock()
        async with self._async_lock:
            current = None if renew else self._fresh()
            if current is not None:
                return current
            data, auth = self._request()
            async with httpx.AsyncClient(timeout=self.timeout_s, transport=self._async_transport) as client:
                try:
                    response = await client.post(
                        self.token_url, data=data, auth=auth or httpx.USE_CLIENT_DEFAULT, headers=_ACCEPT_JSON
                    )
                except httpx.HTTPError as exc:
                    raise OAuthError(f"the token endpoint {self.token_url} cannot be reached: {exc}") from None
            return self._keep(response)

    # -- httpx.Auth ----------------------------------------------------------------------------------------
    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        had = self._fresh()
        request.headers["Authorization"] = f"Bearer {self.token()}"
        response = yield request
        if response.status_code == 401 and had is not None:
            # a token that should still be valid was refused: get a new one, once
            request.headers["Authorization"] = f"Bearer {self.token(renew=True)}"
            yield request

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        had = self._fresh()
        request.headers["Authorization"] = f"Bearer {await self.atoken()}"
        response = yield request
        if response.status_code == 401 and had is not None:
            request.headers["Authorization"] = f"Bearer {await self.atoken(renew=True)}"
            yield request


def _why(response: httpx.Response) -> str:
    """The OAuth2 error of a refusal (``error``, ``error_description``), never more of the body."""
    try:
        body = response.json()
    except ValueError:
        return "no OAuth2 error in the answer"
    if not isinstance(body, dict):
        return "no OAuth2 error in the answer"
    parts = [str(body[k])[:200] for k in ("error", "error_description") if body.get(k)]
    return ": ".join(parts) or "no OAuth2 error in the answer"
