"""Catalogs on every engine the tests can reach here: one definition for the contract suite's ``catalog``
fixture (``tests/engines/conftest.py``) and the analytics tests (``tests.analytics.catalog_on``).

Engines, in parameter order:

* ``duckdb``: a DuckDB file; always runs.
* ``duckdb-cached``: the same with the exact read cache on (``connect(url, cache_reads=True)``): every contract
  must hold the same when segment pages and object instances come from memory.
* ``vast-reference``: the VAST engine (planning, serialised requests, residual, transactions) over
  :class:`~tests.engines.vast.reference.ReferenceStore`, which stands in for the cluster; runs offline
  whenever the ``vastdb`` SDK is installed.
* ``vast-snapshot``: the same, with every read outside a transaction served by an engine pinned to a bucket
  snapshot taken after the last write (:class:`~tests.engines.vast.snapshot_reads.SnapshotReads`): the catalog's
  read paths on a snapshot-pinned, read-only engine.
* ``vast``: a fresh schema on a live cluster, dropped afterwards; runs when ``TAMS_VAST_ENDPOINT``,
  ``TAMS_VAST_ACCESS_KEY``, ``TAMS_VAST_SECRET_KEY`` and ``TAMS_VAST_BUCKET`` are set.
* ``trino``: the ``trino://`` engine on a real Trino (``tests/fixtures/trino.py``) for every read, over a Parquet
  copy of a DuckDB store that takes the writes (the engine is read-only; :mod:`tests.engines.trino.mirror`);
  skips, with the reason printed once, where Trino cannot be had.

``@pytest.mark.notimpl(engines, raises=..., reason=...)`` names engines or families of them: ``"duckdb"``
means ``duckdb`` and ``duckdb-cached``, ``"vast"`` means ``vast`` and ``vast-reference``, a full name only
that engine. On those engines the test still runs and must raise ``raises`` (a strict xfail), so a gap that
gets implemented shows up as a failure asking for the marker to go.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import pytest

from tams_analytics.catalog import Catalog, cached, connect

#: every engine, in parameter order (see the module docstring)
ENGINES = ("duckdb", "duckdb-cached", "vast-reference", "vast-snapshot", "vast", "trino")
#: read-only engines, tested on served data rather than through the ``catalog`` fixture
#: (``tests/engines/tams_http``); ``notimpl`` markers may name them too
READ_ONLY_ENGINES = ("tams+http",)
LIVE_VAST_ENV = ("TAMS_VAST_ENDPOINT", "TAMS_VAST_ACCESS_KEY", "TAMS_VAST_SECRET_KEY", "TAMS_VAST_BUCKET")


def family(engine: str) -> str:
    """The engine a variant runs on: ``duckdb-cached`` -> ``duckdb``, ``vast-reference`` -> ``vast``."""
    return engine.split("-", 1)[0]


#: engines only the contract suite runs (``engine_params(contract=True)``): a second VAST variant for every
#: analytics and UI test would double their time for no more coverage of the engine's read paths
CONTRACT_ONLY = ("vast-snapshot",)


def engine_params(*, contract: bool = False) -> list[object]:
    """``pytest.param`` per engine (with :data:`CONTRACT_ONLY` for the contract suite); the live cluster skips,
    naming what is missing, without its variables."""
    missing = [name for name in LIVE_VAST_ENV if not os.environ.get(name)]
    live = pytest.mark.skipif(bool(missing), reason=f"needs a VAST cluster: set {', '.join(missing)}")
    engines = [e for e in ENGINES if contract or e not in CONTRACT_ONLY]
    return [pytest.param(e, id=e, marks=[live] if e == "vast" else []) for e in engines]


def live_vast_url(schema: str) -> str:
    """The ``vast://`` URL of schema ``schema`` on the cluster named by the environment."""
    endpoint = os.environ["TAMS_VAST_ENDPOINT"].removeprefix("http://").removeprefix("https://").rstrip("/")
    return f"vast://{endpoint}/{os.environ['TAMS_VAST_BUCKET']}/{schema}"


@contextmanager
def open_catalog(engine: str, tmp_path: Path, request: pytest.FixtureRequest | None = None) -> Iterator[Catalog]:
    """A fresh, empty catalog on ``engine``; closed (and on a cluster, dropped) afterwards. ``trino`` needs the
    test's ``request`` (for the session's Trino)."""
    tmp_path.mkdir(parents=True, exist_ok=True)  # a DuckDB store (trino's mirror too) is made in a folder that exists
    if family(engine) == "duckdb":
        cat = connect(f"duckdb:///{tmp_path / 'tams.duckdb'}", create=True)
    elif engine == "vast-reference":
        pytest.importorskip("vastdb", reason="the VAST engine needs vastdb: VAST's dependency set (TAMS_DEPS=vast)")
        from tams_analytics.engines.vast import Engine
        from tests.engines.vast.reference import REFERENCE_URL, ReferenceStore

        cat = Catalog(Engine(REFERENCE_URL, store=ReferenceStore()))
    elif engine == "vast-snapshot":
        pytest.importorskip("vastdb", reason="the VAST engine needs vastdb: VAST's dependency set (TAMS_DEPS=vast)")
        from tams_analytics.engines.vast import Engine
        from tests.engines.vast.reference import REFERENCE_URL, ReferenceStore
        from tests.engines.vast.snapshot_reads import SnapshotReads

        store = ReferenceStore()
        cat = Catalog(SnapshotReads(Engine(REFERENCE_URL, store=store), store))
    elif engine == "vast":
        cat = connect(live_vast_url(f"tams_test_{uuid.uuid4().hex[:8]}"))
    elif engine == "trino":
        if request is None:
            raise AssertionError("open_catalog('trino', ...) needs the test's request")
        cat = request.getfixturevalue("trino_mirror").open(tmp_path / "tams.duckdb")
    else:
        raise AssertionError(f"unknown engine {engine!r}; expected one of {ENGINES}")
    if engine.endswith("-cached"):
        cat = Catalog(cached(cat.engine))
        assert cat.caches_reads, f"{engine}: the read cache did not turn on"
    try:
        yield cat
    finally:
        try:
            if engine == "vast":  # a schema per test on a shared cluster: leave nothing behind
                cat.engine.drop_store()  # type: ignore[attr-defined]
        finally:
            cat.close()


def _names(engines: Sequence[str] | str) -> set[str]:
    names = {engines} if isinstance(engines, str) else set(engines)
    unknown = names - set(ENGINES) - {family(e) for e in ENGINES} - set(READ_ONLY_ENGINES)
    if unknown:
        known = (*ENGINES, *READ_ONLY_ENGINES)
        pytest.fail(f"notimpl names unknown engines {sorted(unknown)}; expected names from {known}", pytrace=False)
    return names


def expect_notimpl(request: pytest.FixtureRequest, engine: str) -> None:
    """Turn the test's ``notimpl`` markers naming ``engine`` into strict xfails on the exception they name."""
    for mark in request.node.iter_markers("notimpl"):
        names = _names(mark.args[0] if mark.args else mark.kwargs["engines"])
        if engine not in names and family(engine) not in names:
            continue
        raises = mark.kwargs.get("raises")
        if raises is None:
            pytest.fail(f"{request.node.nodeid}: a notimpl marker must name the exception it expects (raises=...)")
        reason = f"not implemented on {engine}: {mark.kwargs.get('reason', '')}"
        request.applymarker(pytest.mark.xfail(raises=raises, strict=True, reason=reason))
