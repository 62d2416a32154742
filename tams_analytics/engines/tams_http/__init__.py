"""``tams+http://`` / ``tams+https://``: any TAMS 8.x store, read through its REST API.

``ta.connect("tams+https://host[:port][/prefix]")`` gives the catalog of a TAMS server (this project's, AWS's,
OpenTAMS, ...) to the analytics: ``sources()``, ``flows()``, ``segments()`` and ``objects()`` are lazy tables
on the shared pushdown layer (:mod:`tams_analytics.engines.remote`), so each scan becomes the requests that
answer it (:mod:`~.plan`): ``GET /flows?format=...&tag.genre=news``, ``GET /flows/{id}/segments?timerange=...``
per flow (bounded concurrency across flows), ``GET /objects/{id}``; whatever the parameters cannot say is
filtered client-side (:mod:`tams_analytics.engines.remote.residual`). Only what the specification promises
is used: listings page by ``Link``, ``limit`` is asked high and the server caps it, errors carry
``error.json``. Read-only: writes raise :class:`~tams_analytics.exceptions.UnsupportedError`.

Credentials: ``tams+https://USER:PASSWORD@host`` (basic), ``tams+https://:TOKEN@host`` (bearer), the
environment (``TAMS_HTTP_TOKEN``, or ``TAMS_HTTP_USERNAME``/``TAMS_HTTP_PASSWORD``), or ``auth=`` any
callable returning headers (:mod:`~.auth`). ``?verify=false`` accepts a test CA. Options:
``connect(url, auth=, timeout=30, retries=5, concurrency=8, page_limit=10000, progress=None, probe_timeout=5)``.

Connecting asks the API root once (``GET /``, within ``probe_timeout`` seconds, no retries; None: not at all),
so that a server that is not there, a wrong path prefix or refused credentials fail at ``connect`` in one
paragraph saying what to do (:class:`~.client.ServerUnreachableError` when nothing answers), not later inside
a query after every retry.

What the API cannot answer exactly, and how this engine says so:

* objects are reached through the segments that reference them: an object no segment references is not
  listed (``Capabilities.complete_listings`` is False, and the integrity checks that look for such rows,
  orphan segments, missing and unreferenced objects, skip with that reason);
* columns the API never exposes are null and listed in ``Capabilities.unavailable`` (``segments.created``,
  objects' sizes, ...; see :mod:`~.wire`): reports that need them (ingest over time) raise
  :class:`~tams_analytics.exceptions.UnsupportedError`;
* webhooks, delete requests, profiles and service records are not tables here.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, ClassVar, Final, TypeVar
from urllib.parse import SplitResult, parse_qs, quote, urlunsplit

import pyarrow as pa

from tams_analytics import predicates as P
from tams_analytics.engines.base import Capabilities, OrderBy
from tams_analytics.engines.base import Engine as BaseEngine
from tams_analytics.engines.ibis_query import DERIVED, derived_rows
from tams_analytics.engines.remote import LazyTables
from tams_analytics.engines.remote.residual import conform, evaluate
from tams_analytics.engines.tams_http import wire
from tams_analytics.engines.tams_http.auth import Auth, auth_from
from tams_analytics.engines.tams_http.client import Client, ServerUnreachableError
from tams_analytics.engines.tams_http.plan import RestPlan, flow_terms, narrows, plan
from tams_analytics.exceptions import TamsError, UnsupportedError
from tams_analytics.predicates import InSubquery, Predicate, Term
from tams_analytics.schema import SCHEMAS, TagEntity

if TYPE_CHECKING:
    import ibis.expr.types as ir

__all__ = ["Engine", "ServerUnreachableError", "base_url"]

logger = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")

#: the tables this engine reads (and the derived ``source_collections``)
READABLE: Final = frozenset(
    {"sources", "flows", "segments", "objects", "object_instances", "tags", "collections", "storage_backends"}
)
#: reads (flows, objects) that make a listing worth a progress bar, shown once it has taken this long
PROGRESS_FLOWS: Final = 2
PROGRESS_DELAY_S = 1.0


def base_url(url: SplitResult) -> str:
    """The API's base URL of a ``tams+http(s)://`` URL: the scheme without ``tams+``, no credentials, no query.

    >>> from urllib.parse import urlsplit
    >>> base_url(urlsplit("tams+https://:token@tams.example:8443/api/v8/?verify=false"))
    'https://tams.example:8443/api/v8'
    """
    scheme = url.scheme.lower().removeprefix("tams+")
    if scheme not in ("http", "https") or not url.hostname:
        raise TamsError("a TAMS API store URL looks like tams+https://host[:port][/prefix]")
    host = f"[{url.hostname}]" if ":" in url.hostname else url.hostname
    netloc = f"{host}:{url.port}" if url.port else host
    return urlunsplit((scheme, netloc, url.path.rstrip("/"), "", ""))


def _interactive() -> bool:
    """A terminal or a notebook kernel: where a progress bar is worth showing."""
    if sys.stderr is not None and sys.stderr.isatty():
        return True
    shell = sys.modules.get("IPython")
    return shell is not None and "ipykernel" in sys.modules


class Engine(BaseEngine):
    """A TAMS store through its REST API (read-only)."""

    name: ClassVar[str] = "tams+http"
    capabilities: ClassVar[Capabilities] = Capabilities(
        writes=False,
        subqueries=True,
        transactions=False,
        complete_listings=False,
        unavailable=wire.UNAVAILABLE,
        tables=READABLE,
        cheap_counts=False,
        reads_api=True,
    )

    def __init__(
        self,
        url: SplitResult,
        *,
        auth: Auth | None = None,
        timeout: float = 30.0,
        retries: int = 5,
        concurrency: int = 8,
        page_limit: int = 10_000,
        verify: bool | None = None,
        progress: bool | None = None,
        probe_timeout: float | None = 5.0,
    ) -> None:
        super().__init__(url)
        self.base_url = base_url(url)
        if verify is None:
            verify = (parse_qs(url.query).get("verify") or ["true"])[-1].lower() not in ("0", "false", "no", "off")
        self.concurrency = max(1, concurrency)
        self.page_limit = page_limit
        self.progress = progress
        self.client = Client(
            self.base_url,
            auth=auth if auth is not None else auth_from(url),
            timeout=timeout,
            retries=retries,
            verify=verify,
            connections=self.concurrency,
        )
        self._lazy: LazyTables | None = None
        if probe_timeout is not None:
            try:
                self.client.probe(probe_timeout)
            except BaseException:
                self.client.close()
                raise
        logger.info("tams+http engine on %s", self.base_url)

    def ping(self) -> str:
        """The API answers with these credentials: its root, ``/service`` and a one-item page of ``/flows``
        (reading needs more rights than the root on some servers)."""
        self.client.probe(self.client.timeout)
        service = self.client.document("/service") or {}
        self.client.document("/flows", {"limit": "1"})
        version = service.get("api_version", "?") if isinstance(service, dict) else "?"
        kind = service.get("type") or service.get("name") if isinstance(service, dict) else None
        return f"TAMS API {version} at {self.base_url}" + (f" ({kind})" if kind else "")

    def __repr__(self) -> str:
        return f"tams_http.Engine({self.base_url!r})"

    # -- analyst view -------------------------------------------------------------------------------------
    @property
    def lazy(self) -> LazyTables:
        if self._lazy is None:
            self._lazy = LazyTables(
                lambda name, where, columns: self.query(name, where, columns=columns),
                whole_rows=True,
                label="tams+http",
                narrows=narrows,
            )
        return self._lazy

    def table(self, name: str) -> ir.Table:
        self._readable(name)
        return self.lazy.table(name)

    def pushdown_table(self, name: str, where: Sequence[Predicate]) -> ir.Table:
        self._readable(name)
        return self.lazy.table(name, where)

    def _readable(self, name: str) -> None:
        if name not in READABLE and name not in DERIVED:
            if name in SCHEMAS:
                raise UnsupportedError(
                    f"the TAMS API engine does not read {name}: it reads {', '.join(sorted(READABLE))}"
                )
            raise TamsError(f"unknown table {name!r}; expected one of {sorted(SCHEMAS)}")

    # -- rows -------------------------------------------------------------------------------------------------
    def query(
        self,
        name: str,
        where: Sequence[Predicate] = (),
        *,
        columns: Sequence[str] | None = None,
        order_by: OrderBy = (),
        limit: int | None = None,
    ) -> pa.Table:
        self._readable(name)
        if name in DERIVED:
            rows = derived_rows(name, lambda table, cols: self.query(table, [], columns=cols))
            return evaluate(rows, self._resolve(where), columns=columns, order_by=order_by, limit=limit)
        p = plan(name, where)
        schema = SCHEMAS[name]
        if p.empty:
            return schema.empty_table().select(list(columns) if columns is not None else schema.names)
        rows = _READERS[name](self, p)
        out = evaluate(rows, self._resolve(p.residual), columns=columns, order_by=order_by, limit=limit)
        return conform(out, schema)

    def _resolve(self, where: Iterable[Predicate]) -> list[Predicate]:
        """Subqueries the requests could not carry, run and replaced by their values."""
        out: list[Predicate] = []
        for p in where:
            if isinstance(p, InSubquery):
                inner = self.query(p.table, [p.where], columns=[p.value_column])
                p = p.with_values(inner.column(p.value_column).to_pylist())
            out.append(p)
        return out

    # -- reading documents ---------------------------------------------------------------------------------------
    def _each(self, fn: Callable[[T], R], items: Sequence[T], what: str) -> list[R]:
        """``fn`` over ``items`` on up to ``concurrency`` threads, in order, with a progress bar when long."""
        from tqdm.auto import tqdm

        show = (self.progress if self.progress is not None else _interactive()) and len(items) >= PROGRESS_FLOWS
        with (
            tqdm(total=len(items), desc=what, unit="req", disable=not show, leave=False, delay=PROGRESS_DELAY_S) as bar,
            ThreadPoolExecutor(max_workers=min(self.concurrency, max(1, len(items)))) as pool,
        ):
            out = []
            for result in pool.map(fn, items):
                out.append(result)
                bar.update(1)
        return out

    def _listing(self, path: str, params: dict[str, str] | None = None) -> list[Any]:
        query = {"limit": str(self.page_limit), **(params or {})}
        return [doc for page in self.client.pages(path, query) for doc in page]

    def _documents(self, path: str, p: RestPlan, params: dict[str, str] | None = None) -> list[Any]:
        """The documents of a collection: by id when the plan names ids, else the listing with its parameters."""
        if p.ids is None:
            return self._listing(path, {**p.params, **(params or {})})
        docs = self._each(lambda i: self.client.document(f"{path}/{quote(i, safe='')}", params), p.ids, path)
        return [d for d in docs if d is not None]

    def _flow_ids(self, p: RestPlan) -> list[str]:
        """The flows whose segments a segments read lists: those named, else every flow that passes the
        residual's terms on ``flow_id`` (:func:`~.plan.flow_terms`)."""
        if p.ids is not None:
            return list(p.ids)
        ids = [d["id"] for d in self._listing("/flows")]
        terms = flow_terms(p)
        if not terms:
            return ids
        kept = evaluate(pa.table({"id": pa.array(ids, pa.string())}), terms).column("id")
        return [str(i) for i in kept.to_pylist()]

    def _segment_docs(self, p: RestPlan, params: dict[str, str], *, urls: bool = False) -> list[tuple[str, list[Any]]]:
        """``(flow_id, segment documents)`` per flow of the plan (every flow when it names none); without
        ``urls`` the documents carry no ``get_urls`` (``accept_get_urls=``: no URL to mint or send)."""
        query = {**p.params, **({} if urls else {"accept_get_urls": ""}), **params}
        flows = self._flow_ids(p)
        return list(
            zip(
                flows,
                self._each(lambda f: self._listing(f"/flows/{f}/segments", query), flows, "segments"),
                strict=True,
            )
        )

    def _sources(self, p: RestPlan) -> pa.Table:
        return wire.source_rows(self._documents("/sources", p))

    def _flows(self, p: RestPlan) -> pa.Table:
        return wire.flow_rows(self._documents("/flows", p))

    def _segments(self, p: RestPlan) -> pa.Table:
        parts = [wire.segment_rows(f, docs) for f, docs in self._segment_docs(p, {})]
        return pa.concat_tables(parts) if parts else wire.table_of("segments", [])

    def _objects(self, p: RestPlan) -> pa.Table:
        """Objects by id (``GET /objects/{id}``), else those the segments of every flow reference (without
        ``first_referenced_by_flow``: only an object's own document has it, and the spec makes it optional)."""
        if p.ids is None:
            segments = self._segment_docs(plan("segments", []), {"include_object_timerange": "true"})
            return wire.table_of("objects", wire.objects_of_segments([d for _, ds in segments for d in ds]))
        docs = self._documents("/objects", p)
        return wire.table_of("objects", wire.object_rows(docs))

    def _instances(self, p: RestPlan) -> pa.Table:
        """Instances of the objects named (``GET /objects/{id}?verbose_storage=true`` each), else of every
        object the segments reference, read from the segment listings themselves (``verbose_storage=true``:
        an object's ``get_urls`` are listed with each segment), a request per page rather than per object."""
        if p.ids is not None:
            docs = self._documents("/objects", RestPlan("objects", p.ids), {"verbose_storage": "true"})
        else:
            segments = self._segment_docs(plan("segments", []), {"verbose_storage": "true"}, urls=True)
            docs = wire.instances_of_segments([d for _, ds in segments for d in ds])
        return wire.instance_rows(docs)

    def _tags(self, p: RestPlan) -> pa.Table:
        kinds = {TagEntity.FLOW: "/flows", TagEntity.SOURCE: "/sources"}
        wanted: set[str] = {TagEntity.FLOW, TagEntity.SOURCE, TagEntity.STORAGE_BACKEND}
        name: str | None = None
        for t in p.residual:
            if isinstance(t, Term) and t.column == "entity_type" and t.op in ("==", "isin"):
                wanted &= set(t.value if t.op == "isin" else (t.value,))
            if isinstance(t, Term) and t.column == "name" and t.op == "==":
                name = t.value
        pinned = P.pinned(p.residual, "entity_id")
        ids = None if pinned is None else tuple(str(i) for i in pinned)
        rows: list[dict[str, object]] = []
        for entity, path in kinds.items():
            if entity in wanted:
                params = {f"tag_exists.{name}": "true"} if name else {}
                docs = self._documents(path, RestPlan("tags", ids, params))
                rows += wire.tag_rows_of(entity, docs)
        if TagEntity.STORAGE_BACKEND in wanted:
            rows += wire.storage_backend_rows(self._listing("/service/storage-backends"))[1]
        return wire.table_of("tags", rows)

    def _collections(self, p: RestPlan) -> pa.Table:
        return wire.collection_rows(self._documents("/flows", RestPlan("flows", p.ids)))

    def _storage_backends(self, p: RestPlan) -> pa.Table:
        return wire.storage_backend_rows(self._listing("/service/storage-backends"))[0]

    def close(self) -> None:
        if self._lazy is not None:
            self._lazy.close()
        self.client.close()


#: table -> how to read its rows (whole rows; ``query`` filters, orders and projects them)
_READERS: Final[dict[str, Callable[[Engine, RestPlan], pa.Table]]] = {
    "sources": Engine._sources,
    "flows": Engine._flows,
    "segments": Engine._segments,
    "objects": Engine._objects,
    "object_instances": Engine._instances,
    "tags": Engine._tags,
    "collections": Engine._collections,
    "storage_backends": Engine._storage_backends,
}
assert set(_READERS) == READABLE
