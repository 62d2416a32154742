"""Connection settings of the Trino engine, read from its store URL.

``trino://user[:password]@host[:port]/catalog/schema[?http_scheme=https&verify=false&source=NAME]``

* ``catalog`` is the Trino catalog holding the TAMS tables (e.g. ``vast``); ``schema`` is everything after
  it, percent-decoded, so a VAST schema named ``bucket/tams`` (the connector's default separator) or
  ``bucket|tams`` (``custom_schema_separator=|``) can be written as is.
* The password comes from the URL, the ``password`` option or ``TAMS_TRINO_PASSWORD``. Trino accepts
  passwords only over TLS, so a password makes ``https`` the default scheme (and 443 the default port).
* The password is never part of ``repr()`` or log lines.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Final
from urllib.parse import SplitResult, parse_qs, unquote

from tams_analytics.exceptions import TamsError

__all__ = ["PASSWORD_ENV", "TrinoSettings", "parse_url"]

#: environment variable holding the Trino password when the URL has none
PASSWORD_ENV: Final = "TAMS_TRINO_PASSWORD"
_SCHEMES: Final = ("http", "https")
_FALSE: Final = frozenset({"0", "false", "no", "off"})


@dataclass(frozen=True)
class TrinoSettings:
    """Where and as whom to connect (see the module docstring for the URL form)."""

    host: str
    port: int
    user: str
    catalog: str
    schema: str
    http_scheme: str = "http"
    verify: bool = True
    source: str = "tams-analytics"
    password: str | None = field(default=None, repr=False)

    @property
    def display(self) -> str:
        """The URL without its password, for messages and logs."""
        return f"trino://{self.user}@{self.host}:{self.port}/{self.catalog}/{self.schema} ({self.http_scheme})"


def parse_url(
    url: SplitResult,
    *,
    password: str | None = None,
    http_scheme: str | None = None,
    verify: bool | None = None,
    environ: dict[str, str] | None = None,
) -> TrinoSettings:
    """Settings from a split ``trino://`` URL; keyword options override the URL's query parameters.

    >>> from urllib.parse import urlsplit
    >>> s = parse_url(urlsplit("trino://analyst@trino.example:8443/vast/media%7Ctams?http_scheme=https"))
    >>> s.host, s.port, s.user, s.catalog, s.schema, s.http_scheme
    ('trino.example', 8443, 'analyst', 'vast', 'media|tams', 'https')
    >>> parse_url(urlsplit("trino://u:secret@h/hive/tams"), environ={}).port
    443
    """
    env = os.environ if environ is None else environ
    if not url.hostname:
        raise TamsError("a trino URL needs a host: trino://user@host:port/catalog/schema")
    catalog, _, schema = url.path.strip("/").partition("/")
    catalog, schema = unquote(catalog), unquote(schema)
    if not catalog or not schema:
        raise TamsError(f"a trino URL needs /catalog/schema after the host, got path {url.path!r}")
    query = {k: v[-1] for k, v in parse_qs(url.query).items()}
    unknown = set(query) - {"http_scheme", "verify", "source"}
    if unknown:
        raise TamsError(f"unknown trino URL parameter(s) {sorted(unknown)}; expected http_scheme, verify, source")
    secret = password or (unquote(url.password) if url.password else None) or env.get(PASSWORD_ENV) or None
    scheme = (http_scheme or query.get("http_scheme") or ("https" if secret else "http")).lower()
    if scheme not in _SCHEMES:
        raise TamsError(f"http_scheme must be http or https, got {scheme!r}")
    if secret and scheme == "http":
        raise TamsError("Trino accepts passwords only over https: use ?http_scheme=https or drop the password")
    try:
        port = url.port or (443 if scheme == "https" else 8080)
    except ValueError as exc:
        raise TamsError(f"bad port in trino URL: {exc}") from None
    if verify is None:
        verify = query.get("verify", "true").lower() not in _FALSE
    return TrinoSettings(
        host=url.hostname,
        port=port,
        user=unquote(url.username) if url.username else "tams",
        catalog=catalog,
        schema=schema,
        http_scheme=scheme,
        verify=verify,
        source=query.get("source", "tams-analytics"),
        password=secret,
    )
