"""Credentials for a TAMS API: anything that yields the headers of a request.

An :class:`Auth` is a callable returning the headers to send (``{"Authorization": ...}``), called before
every request, so a token source that renews itself (OAuth2 client credentials) plugs in as is; if it also
has a ``refresh()`` method, the client calls it once after a 401 and tries again. Built in:
:class:`BearerToken` and :class:`BasicCredentials`. :func:`auth_from` picks credentials from the store URL
(``tams+https://USER:PASSWORD@host`` for basic, ``tams+https://:TOKEN@host`` for a bearer token) or else
from the environment (``TAMS_HTTP_TOKEN``; ``TAMS_HTTP_USERNAME`` and ``TAMS_HTTP_PASSWORD``; or OAuth2
client credentials, ``TAMS_OAUTH_TOKEN_URL`` with ``TAMS_OAUTH_CLIENT_ID`` and ``TAMS_OAUTH_CLIENT_SECRET``:
see :mod:`tams_analytics.oauth`).
No credential is ever part of a ``repr``, a message or a log line.

>>> from urllib.parse import urlsplit
>>> auth_from(urlsplit("tams+https://:s3cret@tams.example"), env={})
BearerToken(<redacted>)
>>> auth_from(urlsplit("tams+https://tams.example"), env={"TAMS_HTTP_USERNAME": "ann", "TAMS_HTTP_PASSWORD": "pw"})
BasicCredentials('ann', <redacted>)
"""

from __future__ import annotations

import base64
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Final, Protocol, runtime_checkable
from urllib.parse import SplitResult, unquote

from tams_analytics.exceptions import TamsError

if TYPE_CHECKING:
    from tams_analytics.oauth import ClientCredentials

__all__ = [
    "CREDENTIALS",
    "CREDENTIALS_ON_CLI",
    "PASSWORD_ENV",
    "TOKEN_ENV",
    "USERNAME_ENV",
    "Auth",
    "BasicCredentials",
    "BearerToken",
    "OAuthBearer",
    "RefreshableAuth",
    "auth_from",
    "credentials_refused",
]

TOKEN_ENV: Final = "TAMS_HTTP_TOKEN"
USERNAME_ENV: Final = "TAMS_HTTP_USERNAME"
PASSWORD_ENV: Final = "TAMS_HTTP_PASSWORD"


#: where the credentials for a TAMS API come from, in the library's words (a refused request names them)
CREDENTIALS: Final = (
    f"the URL's user info (tams+https://USER:PASSWORD@host, or :TOKEN@host), {TOKEN_ENV}, {USERNAME_ENV} and "
    f"{PASSWORD_ENV}, OAuth2 client credentials (TAMS_OAUTH_TOKEN_URL, TAMS_OAUTH_CLIENT_ID, "
    "TAMS_OAUTH_CLIENT_SECRET), or the auth= option of connect()"
)
#: the same in the command line's words: environment variables (it has no auth= option)
CREDENTIALS_ON_CLI: Final = (
    f"{TOKEN_ENV}, or {USERNAME_ENV} and {PASSWORD_ENV}, or OAuth2 client credentials (TAMS_OAUTH_TOKEN_URL, "
    "TAMS_OAUTH_CLIENT_ID, TAMS_OAUTH_CLIENT_SECRET), or the URL's user info (USER:PASSWORD@host)"
)


def credentials_refused(message: str) -> TamsError:
    """A :class:`~tams_analytics.exceptions.TamsError` for a request the server refused (401/403): ``message``
    and where the credentials come from, in the library's words and the command line's."""
    return TamsError(
        f"{message} (check the credentials: {CREDENTIALS})",
        cli=f"{message} (check the credentials: {CREDENTIALS_ON_CLI})",
    )


class Auth(Protocol):
    """Credentials: called before every request, they give the headers to add to it."""

    def __call__(self) -> Mapping[str, str]: ...


@runtime_checkable
class RefreshableAuth(Auth, Protocol):
    """An :class:`Auth` that can renew its credentials at once: the client calls ``refresh()`` after a 401."""

    def refresh(self) -> None: ...


class BearerToken:
    """``Authorization: Bearer <token>``."""

    def __init__(self, token: str) -> None:
        self._token = token

    def __call__(self) -> Mapping[str, str]:
        return {"Authorization": f"Bearer {self._token}"}

    def __repr__(self) -> str:
        return "BearerToken(<redacted>)"


class BasicCredentials:
    """HTTP basic authentication."""

    def __init__(self, username: str, password: str) -> None:
        self.username = username
        self._header = "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()

    def __call__(self) -> Mapping[str, str]:
        return {"Authorization": self._header}

    def __repr__(self) -> str:
        return f"BasicCredentials({self.username!r}, <redacted>)"


class OAuthBearer:
    """Bearer tokens from an OAuth2 token endpoint (:class:`tams_analytics.oauth.ClientCredentials`): fetched
    when needed, renewed before they expire, and renewed at once when the server answers 401."""

    def __init__(self, credentials: ClientCredentials) -> None:
        self.credentials = credentials

    def __call__(self) -> Mapping[str, str]:
        return {"Authorization": f"Bearer {self.credentials.token()}"}

    def refresh(self) -> None:
        self.credentials.token(renew=True)

    def __repr__(self) -> str:
        return f"OAuthBearer({self.credentials!r})"


def auth_from(url: SplitResult, env: Mapping[str, str] | None = None) -> Auth | None:
    """Credentials in ``url``'s userinfo, else in the environment (``env`` defaults to ``os.environ``)."""
    env = os.environ if env is None else env
    if url.password is not None:
        password = unquote(url.password)
        if not url.username:
            return BearerToken(password)
        return BasicCredentials(unquote(url.username), password)
    if env.get(TOKEN_ENV):
        return BearerToken(env[TOKEN_ENV])
    if env.get(USERNAME_ENV) and env.get(PASSWORD_ENV):
        return BasicCredentials(env[USERNAME_ENV], env[PASSWORD_ENV])
    if env.get("TAMS_OAUTH_TOKEN_URL"):
        from tams_analytics.oauth import ClientCredentials

        credentials = ClientCredentials.from_env(env)  # None only without a token URL
        if credentials is not None:
            return OAuthBearer(credentials)
    return None
