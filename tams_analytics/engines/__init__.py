"""Engine registry: a URL scheme names an engine, imported lazily so missing drivers cost nothing."""

from __future__ import annotations

import importlib
from typing import Any, Final
from urllib.parse import urlsplit, urlunsplit

from tams_analytics.engines.base import Engine
from tams_analytics.exceptions import TamsError
from tams_analytics.extras import install_hint

__all__ = ["ENGINES", "Engine", "open_engine", "redacted"]

#: scheme -> (module, pip extra that provides its driver)
ENGINES: Final[dict[str, tuple[str, str | None]]] = {
    "duckdb": ("tams_analytics.engines.duckdb", None),
    "vast": ("tams_analytics.engines.vast", "vast"),
    "trino": ("tams_analytics.engines.trino", "trino"),
    "tams+http": ("tams_analytics.engines.tams_http", "remote"),
    "tams+https": ("tams_analytics.engines.tams_http", "remote"),
}


def _scheme_hint(url: str, scheme: str) -> str:
    """What ``url`` (whose scheme names no engine) was probably meant to be, in a sentence."""
    if scheme in ("http", "https"):
        return f"for a TAMS server's API write tams+{url}"
    if not scheme:
        path = url.removeprefix("file:")
        if path.startswith("/"):
            return f"for a DuckDB file write duckdb://{path}"
        relative = path.removeprefix("./")
        return f"for a DuckDB file write duckdb://./{relative} (a relative path) or duckdb:///ABSOLUTE/PATH"
    return (
        "store URLs look like duckdb:///ABSOLUTE/PATH, duckdb://./RELATIVE/PATH, tams+http://HOST:PORT, "
        "vast://HOST:PORT/BUCKET/SCHEMA or trino://USER@HOST:PORT/CATALOG/SCHEMA"
    )


def open_engine(url: str, **options: Any) -> Engine:
    """Open the engine named by ``url``'s scheme (a URL naming none is a :class:`TamsError` saying what it
    was probably meant to be: ``http://host`` is ``tams+http://host``, a bare path a ``duckdb://`` URL)."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if len(scheme) == 1:  # C:\\stores\\x.duckdb: a drive letter, not a scheme
        scheme = ""
    if scheme not in ENGINES:
        shown = redacted(url)
        raise TamsError(f"{shown!r} names no store engine: {_scheme_hint(shown, scheme)}")
    module_name, extra = ENGINES[scheme]
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        hint = install_hint(extra) if extra else "reinstall tams-analytics"
        raise TamsError(f"the {scheme} engine needs a driver that is not installed ({exc.name}): {hint}") from exc
    engine: Engine = module.Engine(parts, **options)
    return engine


def redacted(url: str) -> str:
    """A store URL without user name or password, for messages and logs.

    >>> redacted("vast://key:secret@10.0.0.1:8070/media/tams")
    'vast://10.0.0.1:8070/media/tams'
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable URL>"
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
