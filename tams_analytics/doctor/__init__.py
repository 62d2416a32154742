"""``doctor``: what a deployment may rely on, checked on a store (``tams-analytics doctor --store URL``).

:func:`diagnose` opens the store read-only and runs :data:`CHECKS` in order; each says ``ok``, ``fail``
(a property is missing: :attr:`Check.meaning` says what that means for a deployment), ``warn`` (it holds, with
advice worth taking: :attr:`Check.meaning` says what it buys; the exit code stays 0) or ``skip`` (it does not
apply to this engine). Connectivity comes first: when the store cannot be opened or does not answer,
nothing else runs and the exit code is 2.

* ``connectivity``: the store opens with these credentials and answers a query (over a TAMS API: the API
  root, ``/service`` and a page of ``/flows`` answer); a DuckDB store a server holds is said to be so, with
  the ways to check it (what the server answers through its API; the file's tables once it is stopped);
* ``tables``: every table of :mod:`tams_analytics.schema` exists with its columns and, where the engine
  has sorting keys (VAST), the key of :data:`~tams_analytics.schema.SORT_KEYS` (skipped over an API: its
  server keeps the tables);
* ``queries``: every query shape the library emits (:mod:`.shapes`) is accepted (on VAST: planned,
  serialised by the SDK and run on the cluster; over an API: sent as the requests that answer it, shapes over
  tables the API does not serve left out and named);
* ``isolation``: of two transactions updating one row exactly one commits (VAST; scratch rows, cleaned up);
* ``projections``: every projection of :data:`~tams_analytics.schema.PROJECTIONS` exists with its columns (VAST,
  unless turned off); a missing one is a finding that says which reads then scan the whole table;
* ``snapshots``: the store's snapshots (VAST: the bucket's), each with the newest change it holds and how long
  ago that was; listed, never a failure when there are none;
* ``storage_format``: the format the store keeps its data in, where the engine has several (DuckDB's storage
  versions); one older than the engine writes new stores in is a warning that says what it costs and the command that
  upgrades it (``tams-analytics upgrade``).
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import pyarrow as pa

from tams_analytics.engines import open_engine, redacted
from tams_analytics.engines.base import Engine
from tams_analytics.exceptions import TamsError, said_on_cli
from tams_analytics.schema import SCHEMAS, SORT_KEYS

__all__ = ["Check", "Diagnosis", "diagnose", "run_checks"]

OK, FAIL, WARN, SKIP = "ok", "fail", "warn", "skip"
EXIT_OK, EXIT_MISSING, EXIT_UNREACHABLE = 0, 1, 2


@dataclass(frozen=True)
class Check:
    name: str
    status: str
    detail: str
    #: for a failure: what a deployment loses; for a warning: what taking the advice buys
    meaning: str = ""
    #: what the check found, for schedulers (``--format json``); None: nothing beyond ``detail``
    data: Mapping[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        if self.data is None:
            del out["data"]
        return out


@dataclass(frozen=True)
class Diagnosis:
    store: str
    engine: str | None
    checks: tuple[Check, ...]

    @property
    def exit_code(self) -> int:
        if any(c.name == "connectivity" and c.status == FAIL for c in self.checks):
            return EXIT_UNREACHABLE
        return EXIT_MISSING if any(c.status == FAIL for c in self.checks) else EXIT_OK

    def to_json(self) -> dict[str, Any]:
        return {
            "store": self.store,
            "engine": self.engine,
            "exit_code": self.exit_code,
            "checks": [c.to_json() for c in self.checks],
        }


def _one_line(exc: BaseException) -> str:
    """The failure in one line: the library's own errors as their message, a driver's with its class."""
    text = " ".join(said_on_cli(exc).split())
    return (text if isinstance(exc, TamsError) else f"{type(exc).__name__}: {text}")[:500]


def diagnose(url: str, **options: Any) -> Diagnosis:
    """Open the store at ``url`` read-only and check it (see the module docstring)."""
    started = time.perf_counter()
    try:
        try:
            engine = open_engine(url, read_only=True, **options)
        except TypeError:  # an engine that is read-only anyway (Trino, an API) takes no such option
            engine = open_engine(url, **options)
    except Exception as exc:  # drivers raise their own errors for refused connections and credentials
        return Diagnosis(redacted(url), None, (_cannot_open(url, exc),))
    try:
        return Diagnosis(redacted(url), engine.name, tuple(run_checks(engine, started)))
    finally:
        engine.close()


UNREACHABLE = "neither a server nor the analytics can use this store: check the URL, the network and the credentials"
#: how a check through a server's API is given the credentials the server asks for
WITH_CREDENTIALS = (
    "with its credentials when it asks for them: TAMS_HTTP_TOKEN, or TAMS_HTTP_USERNAME and TAMS_HTTP_PASSWORD"
)


def _cannot_open(url: str, exc: Exception) -> Check:
    """The failed connectivity check of a store that did not open; a store a server holds is not unreachable:
    it is checked through that server's API."""
    from tams_analytics.engines.duckdb.held import StoreInUseError

    if not isinstance(exc, StoreInUseError):
        return Check("connectivity", FAIL, f"cannot open {redacted(url)}: {_one_line(exc)}", UNREACHABLE)
    file = redacted(url)
    tables = f"its tables are checked on the file once the server is stopped: stop it, run doctor --store {file}"
    if exc.url is not None:
        detail = f"the store is held by the TAMS server at {exc.url} (PID {exc.pid}): it cannot be opened beside it"
        meaning = (
            f"what the server answers is checked through it: tams-analytics doctor --store tams+{exc.url.rstrip('/')} "
            f"(connectivity and query shapes, {WITH_CREDENTIALS}); {tables}, and start it again"
        )
    else:
        detail = f"the store is held by another process (PID {exc.pid}): it cannot be opened beside it"
        meaning = (
            "if that process is a TAMS server, what it answers is checked through it (tams-analytics doctor --store "
            f"tams+http://HOST:PORT, {WITH_CREDENTIALS}) and {tables.replace('the server', 'it')}; else stop that "
            "process and run doctor again"
        )
    return Check("connectivity", FAIL, detail, meaning)


def run_checks(engine: Engine, started: float | None = None) -> Iterator[Check]:
    """The checks on an open engine, in order; nothing after a failed connectivity check."""
    started = time.perf_counter() if started is None else started
    try:
        answered = engine.ping()
    except Exception as exc:
        yield Check("connectivity", FAIL, f"the store does not answer: {_one_line(exc)}", UNREACHABLE)
        return
    yield Check("connectivity", OK, f"{answered} answered in {1000 * (time.perf_counter() - started):.0f} ms")
    for check in CHECKS:
        yield check(engine)


#: why the store-side checks do not apply to an engine that reads an API, and where they run instead
THROUGH_API = (
    "the server keeps the store: check the store itself, a VAST or Trino store by its URL while the server runs "
    "(doctor --store vast://...), a DuckDB file once the server is stopped (one process opens it at a time: stop the "
    "server, run doctor --store duckdb:///PATH, start it again)"
)


# -- tables -----------------------------------------------------------------------------------------------
def _comparable(t: pa.DataType) -> str:
    """A type as compared: timestamps by unit (stores report zones differently), strings as one kind."""
    if pa.types.is_timestamp(t):
        return f"timestamp[{t.unit}]"
    if pa.types.is_large_string(t) or pa.types.is_string(t):
        return "string"
    return str(t)


def check_tables(engine: Engine) -> Check:
    if engine.capabilities.reads_api:
        return Check("tables", SKIP, f"{engine.name} reads a TAMS API, not tables: {THROUGH_API}")
    problems: list[str] = []
    sort_keys_checked = False
    for name, schema in SCHEMAS.items():
        stored = engine.describe(name)
        if stored is None:
            problems.append(f"{name}: missing")
            continue
        have = {f.name: f.type for f in stored.columns}
        for f in schema:
            if f.name not in have:
                problems.append(f"{name}.{f.name}: missing")
            elif _comparable(have[f.name]) != _comparable(f.type):
                problems.append(f"{name}.{f.name}: {have[f.name]}, expected {f.type}")
        if stored.sort_key is not None:
            sort_keys_checked = True
            want = SORT_KEYS.get(name, ())
            if tuple(stored.sort_key) != tuple(want):
                problems.append(f"{name}: sorting key {list(stored.sort_key)}, expected {list(want)}")
    if problems:
        return Check(
            "tables",
            FAIL,
            "; ".join(problems),
            "reads and writes of these tables fail, or (sorting keys) scan whole tables: create the store with "
            "this version (the server creates missing tables; a wrong sorting key needs the table rebuilt)",
        )
    keys = "with their sorting keys" if sort_keys_checked else f"({engine.name} has no sorting keys)"
    return Check("tables", OK, f"{len(SCHEMAS)} tables with their columns {keys}")


# -- query shapes -----------------------------------------------------------------------------------------
def check_queries(engine: Engine) -> Check:
    from tams_analytics.catalog import Catalog
    from tams_analytics.doctor.shapes import shapes
    from tams_analytics.engines.ibis_query import DERIVED

    catalog = Catalog(engine)
    refused: list[str] = []
    tried = 0
    readable = engine.capabilities.tables
    elsewhere: set[str] = set()
    for shape in shapes():
        if readable is not None and shape.entity not in readable and shape.entity not in DERIVED:
            elsewhere.add(shape.entity)  # a table this engine does not read: no request would carry it
            continue
        tried += 1
        try:
            if shape.kind == "count":
                catalog.count(shape.entity, shape.where)
            else:
                catalog.rows(
                    shape.entity, shape.where, columns=shape.columns, order_by=shape.order_by, limit=shape.limit
                )
        except Exception as exc:
            refused.append(f"{shape.name}: {_one_line(exc)}")
    api = engine.capabilities.reads_api
    if refused:
        return Check(
            "queries",
            FAIL,
            f"{len(refused)} of {tried} query shapes refused: " + "; ".join(refused[:5]),
            "analyses and exports that query this way fail over this API"
            if api
            else "the API requests that send these queries answer 500",
        )
    how = " (planned, serialised by the SDK and run)" if engine.name == "vast" else ""
    if api:
        how = " (sent as the API requests that answer them)"
    if elsewhere:
        how += f"; not applicable: shapes over {', '.join(sorted(elsewhere))}, which {engine.name} does not read"
    return Check("queries", OK, f"all {tried} query shapes the library emits accepted{how}")


# -- isolation --------------------------------------------------------------------------------------------
def check_isolation(engine: Engine) -> Check:
    if engine.capabilities.sole_writer:
        return Check("isolation", SKIP, f"{engine.name}: one process writes this store, no concurrent writers")
    if engine.capabilities.reads_api:
        return Check("isolation", SKIP, f"{engine.name} is read-only: {THROUGH_API}")
    if not engine.capabilities.writes:
        return Check("isolation", SKIP, f"{engine.name} is read-only here")
    try:
        probe = engine.probe_isolation()
    except Exception as exc:
        return Check("isolation", FAIL, f"the probe failed: {_one_line(exc)}", REPLICAS)
    if probe is None:
        return Check("isolation", SKIP, f"{engine.name} cannot try two transactions on one row")
    if probe.committed == 1:
        return Check("isolation", OK, f"two transactions updated one row, exactly one committed: {probe.detail}")
    return Check("isolation", FAIL, probe.detail, REPLICAS)


REPLICAS = (
    "several server replicas must not share this store: concurrent registrations on one flow could store "
    "overlapping segments (lost updates) or never commit; run one replica"
)


# -- projections ------------------------------------------------------------------------------------------
def check_projections(engine: Engine) -> Check:
    if engine.capabilities.reads_api:
        return Check("projections", SKIP, f"{engine.name} reads a TAMS API, not tables: {THROUGH_API}")
    stored = {name: engine.describe(name) for name in SCHEMAS}
    if all(t is None or t.projections is None for t in stored.values()):
        return Check("projections", SKIP, f"{engine.name} has no projections")
    wanted = engine.projections
    if not wanted:
        return Check(
            "projections",
            SKIP,
            "projections are turned off (TAMS_ENABLE_TABLE_PROJECTIONS=false): lookups by object read every row "
            "of segments",
        )
    problems: list[str] = []
    costs: list[str] = []
    count = 0
    for table, projections in wanted.items():
        found = stored.get(table)
        have = {p.name: set(p.columns) for p in (found.projections or ())} if found is not None else {}
        for p in projections:
            count += 1
            if p.name not in have:
                problems.append(f"{table}: projection {p.name} missing")
            elif not set(p.columns) <= have[p.name]:
                lacking = sorted(set(p.columns) - have[p.name])
                problems.append(f"{table}: projection {p.name} lacks {lacking}")
            else:
                continue
            costs.append(f"{p.serves} read every row of {table} instead of the few rows of the ids asked for")
    if problems:
        return Check(
            "projections",
            FAIL,
            "; ".join(problems),
            "; ".join(costs) + " (a server connecting read-write creates missing projections; one with too few "
            "columns must be dropped first)",
        )
    return Check("projections", OK, f"{count} projections with their columns ({', '.join(_names(wanted))})")


def _names(wanted: Mapping[str, Any]) -> list[str]:
    return [f"{table}.{p.name}" for table, projections in wanted.items() for p in projections]


# -- snapshots --------------------------------------------------------------------------------------------
def check_snapshots(engine: Engine, now: dt.datetime | None = None) -> Check:
    if engine.capabilities.reads_api:
        return Check("snapshots", SKIP, f"{engine.name} reads a TAMS API: {THROUGH_API}")
    try:
        found = engine.snapshots()
    except Exception as exc:
        return Check(
            "snapshots",
            FAIL,
            f"cannot list the snapshots: {_one_line(exc)}",
            "point-in-time reads (?snapshot=NAME) and restores from a snapshot cannot be used with these credentials",
        )
    if found is None:
        return Check("snapshots", SKIP, f"{engine.name} has no snapshots")
    now = dt.datetime.now(dt.UTC) if now is None else now
    listed = [
        {
            "name": s.name,
            "newest_change": None if s.newest_change is None else s.newest_change.isoformat(),
            "age_s": None if s.newest_change is None else round((now - s.newest_change).total_seconds()),
        }
        for s in found
    ]
    if not found:
        return Check(
            "snapshots", OK, "no snapshots: no point-in-time copy to read or restore from", data={"snapshots": []}
        )
    parts = [
        f"{s['name']} (empty)"
        if s["newest_change"] is None
        else f"{s['name']} (newest change {s['newest_change']}, {_ago(s['age_s'])} ago)"
        for s in listed
    ]
    return Check("snapshots", OK, f"{len(found)}: " + ", ".join(parts), data={"snapshots": listed})


def _ago(seconds: Any) -> str:
    """A duration in its largest whole unit.

    >>> _ago(59), _ago(7200), _ago(3 * 86400 + 5)
    ('59 s', '2 h', '3 d')
    """
    s = int(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if abs(s) >= size:
            return f"{s // size} {unit}"
    return f"{s} s"


# -- storage format ---------------------------------------------------------------------------------------
def check_storage_format(engine: Engine) -> Check:
    if engine.capabilities.reads_api:
        return Check("storage_format", SKIP, f"{engine.name} reads a TAMS API: {THROUGH_API}")
    found = engine.storage_format()
    if found is None:
        return Check("storage_format", SKIP, f"{engine.name} keeps one storage format (or this store has no file)")
    data = {"version": found.version, "current": found.current}
    if found.advice is None:
        return Check("storage_format", OK, f"{found.version}, the format {engine.name} writes new stores in", data=data)
    detail = f"{found.version}, older than the {found.current} {engine.name} writes new stores in"
    return Check("storage_format", WARN, detail, found.advice, data=data)


CHECKS: tuple[Callable[[Engine], Check], ...] = (
    check_tables,
    check_queries,
    check_isolation,
    check_projections,
    check_snapshots,
    check_storage_format,
)
