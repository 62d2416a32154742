"""Where a VAST DB store lives: the ``vast://`` URL and its credentials.

``vast://[ACCESS:SECRET@]HOST[:PORT]/BUCKET/SCHEMA[?https=true&ssl_verify=false&timeout=S&retries=N&snapshot=NAME]``

``snapshot`` reads the bucket's snapshot of that name, read-only (:func:`url_snapshot`).

``timeout`` (seconds per request) and ``retries`` (attempts of a request the SDK may retry) default to the
SDK's own (it retries a refused connection for about a minute).

Credentials come from the URL's userinfo or, when it has none, from ``TAMS_VAST_ACCESS_KEY`` and
``TAMS_VAST_SECRET_KEY``. The endpoint is plain HTTP unless the URL asks for ``https=true``, or
``TAMS_VAST_ENDPOINT`` names the same host with an ``https://`` prefix (the test fixtures build the URL
from that variable without its scheme). The secret never appears in ``repr`` or in error messages.

>>> from urllib.parse import urlsplit
>>> c = parse_url(urlsplit("vast://key:secret@10.0.0.1:8070/media/tams"), env={})
>>> c.endpoint, c.bucket, c.schema, c
('http://10.0.0.1:8070', 'media', 'tams', VastConfig(endpoint='http://10.0.0.1:8070', bucket='media', schema='tams'))
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import SplitResult, parse_qs, unquote

from tams_analytics.exceptions import TamsError

__all__ = [
    "ACCESS_KEY_ENV",
    "ENDPOINT_ENV",
    "PROJECTIONS_ENV",
    "SECRET_KEY_ENV",
    "VastConfig",
    "parse_url",
    "projections_enabled",
    "url_snapshot",
]

ENDPOINT_ENV: Final = "TAMS_VAST_ENDPOINT"
ACCESS_KEY_ENV: Final = "TAMS_VAST_ACCESS_KEY"
SECRET_KEY_ENV: Final = "TAMS_VAST_SECRET_KEY"
#: whether the engine creates the projections of :data:`~tams_analytics.schema.PROJECTIONS` (default: yes)
PROJECTIONS_ENV: Final = "TAMS_ENABLE_TABLE_PROJECTIONS"
_FALSE: Final = frozenset({"0", "false", "no", "off"})
_FORM: Final = "vast://[ACCESS:SECRET@]HOST[:PORT]/BUCKET/SCHEMA"
_TRUE: Final = frozenset({"1", "true", "yes", "on"})


@dataclass(frozen=True)
class VastConfig:
    """Endpoint, location and credentials of one store (``repr`` shows no credentials)."""

    endpoint: str
    bucket: str
    schema: str
    access_key: str = field(repr=False)
    secret_key: str = field(repr=False)
    ssl_verify: bool = field(default=True, repr=False)
    timeout_s: float | None = field(default=None, repr=False)
    retries: int | None = field(default=None, repr=False)


def _flag(query: Mapping[str, list[str]], name: str, default: bool) -> bool:
    values = query.get(name)
    return default if not values else values[-1].strip().lower() in _TRUE


def parse_url(url: SplitResult, env: Mapping[str, str] | None = None) -> VastConfig:
    """The :class:`VastConfig` of a split ``vast://`` URL; ``env`` defaults to ``os.environ``.

    Raises :class:`~tams_analytics.exceptions.TamsError` naming what is missing.
    """
    env = os.environ if env is None else env
    host = url.hostname
    if not host:
        raise TamsError(f"a VAST store URL needs a host: {_FORM}")
    try:
        port = url.port
    except ValueError as exc:
        raise TamsError(f"bad port in the VAST store URL: {_FORM}") from exc
    parts = [unquote(p) for p in url.path.split("/") if p]
    if len(parts) < 2:
        raise TamsError(f"a VAST store URL needs a bucket and a schema: {_FORM}")
    bucket, schema = parts[0], "/".join(parts[1:])
    query = parse_qs(url.query)
    shown = f"[{host}]" if ":" in host else host  # IPv6 literals keep their brackets
    netloc = f"{shown}:{port}" if port else shown
    https = _flag(query, "https", False)
    configured = env.get(ENDPOINT_ENV, "")
    if configured.lower().startswith("https://") and configured[8:].rstrip("/").lower() == netloc.lower():
        https = True
    access = unquote(url.username) if url.username else env.get(ACCESS_KEY_ENV, "")
    secret = unquote(url.password) if url.password else env.get(SECRET_KEY_ENV, "")
    if not access or not secret:
        raise TamsError(
            f"VAST credentials missing: put them in the URL ({_FORM}) or set {ACCESS_KEY_ENV} and {SECRET_KEY_ENV}"
        )
    return VastConfig(
        endpoint=f"{'https' if https else 'http'}://{netloc}",
        bucket=bucket,
        schema=schema,
        access_key=access,
        secret_key=secret,
        ssl_verify=_flag(query, "ssl_verify", True),
        timeout_s=_number(query, "timeout", float),
        retries=_number(query, "retries", int),
    )


def _number(query: Mapping[str, list[str]], name: str, kind: type[float] | type[int]) -> Any:
    values = query.get(name)
    if not values:
        return None
    try:
        value = kind(values[-1])
    except ValueError:
        raise TamsError(f"{name} in the VAST store URL must be a number, not {values[-1]!r}") from None
    if value <= 0:
        raise TamsError(f"{name} in the VAST store URL must be above 0, not {values[-1]!r}")
    return value


def url_snapshot(url: SplitResult) -> str | None:
    """The snapshot a ``vast://`` URL names (``?snapshot=NAME``), or None.

    >>> from urllib.parse import urlsplit
    >>> url_snapshot(urlsplit("vast://10.0.0.1/media/tams?snapshot=nightly-2026-11-30"))
    'nightly-2026-11-30'
    """
    values = parse_qs(url.query, keep_blank_values=True).get("snapshot")
    if not values:
        return None
    name = values[-1].strip()
    if not name or "/" in name:
        raise TamsError(f"snapshot in the VAST store URL must be a snapshot's name, not {values[-1]!r}")
    return name


def projections_enabled(env: Mapping[str, str] | None = None) -> bool:
    """Whether ``TAMS_ENABLE_TABLE_PROJECTIONS`` leaves projections on (any value but 0/false/no/off; unset: on).

    >>> projections_enabled({}), projections_enabled({"TAMS_ENABLE_TABLE_PROJECTIONS": "false"})
    (True, False)
    """
    env = os.environ if env is None else env
    return env.get(PROJECTIONS_ENV, "").strip().lower() not in _FALSE
