"""VAST predicate pushdown: every query shape plans, serialises with the SDK and selects the right rows.

1. Shapes built from ``predicates.FILTERS`` (every entity and filter), tag, collection, timerange,
   covered_by and paging filters: the pushdown serialises with the SDK under its size limit.
2. The catalog's and the server's own queries, recorded from a real workload on a DuckDB engine that
   resolves subqueries as VAST does: each one, run through the VAST engine (planning, requests, residual,
   ordered limits) on the wire-level reference store, returns what DuckDB returns.
3. A property test: for random predicate trees and tables, pushdown AND residual select exactly the rows
   of the original filter, the requests are disjoint, and what the serialised requests select on the wire
   is what DuckDB selects for them.
4. The engine's own behaviour (transactions, ordered limits, updates and deletes by row id) on the
   reference store; live tests on a cluster when one is configured. (The shared contract suite runs on the
   reference store through the ``catalog`` fixture's ``vast-reference`` engine, tests/engines/conftest.py.)
"""

from __future__ import annotations

import ast
import datetime as dt
import logging
import sys
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import ibis
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from vastdb import util

from server import records
from server.delete_requests import records as delete_records
from server.gc import claim_collectable_objects
from server.leases import Leases
from server.webhooks import outbox
from server.webhooks import records as webhook_records
from server.webhooks.events import Event
from tams_analytics import TimeRange
from tams_analytics import filters as F
from tams_analytics import predicates as P
from tams_analytics.catalog import Catalog, flows_with_content, object_deletions, registration, segment_page_where
from tams_analytics.catalog.conflicts import Attempt
from tams_analytics.catalog.flow_guard import flows_starting_with
from tams_analytics.catalog.references import any_collectable
from tams_analytics.catalog.summary import catalog_summary
from tams_analytics.compat import arrow_table
from tams_analytics.demo import build_demo
from tams_analytics.engines.base import Capabilities, OrderBy
from tams_analytics.engines.duckdb import Engine as DuckDBEngine
from tams_analytics.engines.remote.residual import evaluate
from tams_analytics.engines.sql import render_sql
from tams_analytics.engines.vast import Engine, parse_url
from tams_analytics.engines.vast.plan import plan_query, topk_bound, topk_prefetch
from tams_analytics.engines.vast.requests import RequestSizer, request_deferred
from tams_analytics.exceptions import ConflictError, TamsError, UnsupportedError
from tams_analytics.pyrows import table_rows
from tams_analytics.schema import SCHEMAS
from tams_analytics.timerange import END_UNBOUNDED, START_UNBOUNDED
from tests.engines.vast.reference import REFERENCE_URL, ReferenceStore

ROOT = Path(__file__).resolve().parents[3]
LIMIT = util.MAX_QUERY_DATA_REQUEST_SIZE

TIMERANGES = ["_", "()", "[0:0_10:0)", "(5:0_", "_10:0]", "[5:0]", "(0:0_0:1)", "[-10:0_10:0]", "[1700000000:0_"]
#: sample values per filter name; any other name gets DEFAULT_VALUES
SAMPLES: dict[str, list[Any]] = {
    "format": ["urn:x-nmos:format:video", "urn:x-nmos:format:video,urn:x-nmos:format:audio"],
    "codec": ["video/h264", ["video/h264", "audio/aac"]],
    "status": ["ingesting", ["ingesting", "closed_complete"]],
    "frame_width": [1920, "1920"],
    "frame_height": [1080],
    "init_segments": [True, False],
    "read_only": [True, False],
    "registered": [True, False],
    "timerange": TIMERANGES,
    "covered_by": TIMERANGES,
    "label": ["news at six"],
    "profile_id": ["p"],
}
DEFAULT_VALUES: list[Any] = ["a", ["a", "b", "c"], "a,b", [str(uuid.UUID(int=i)) for i in range(1000)]]


def assert_serialises(plan: Any, schema: pa.Schema) -> list[int]:
    """Each request of ``plan`` through the SDK's request builder: under the limit (returns the sizes)."""
    sizer = RequestSizer(schema)
    sizes = [sizer.serialized_size(r, plan.fetch) for r in plan.requests]
    assert all(s <= LIMIT for s in sizes), sizes
    return sizes


# -- 1. shapes from the filter vocabulary ------------------------------------------------------------------
def filter_cases() -> Iterator[Any]:
    for entity, names in F.FILTERS.items():
        for name in names:
            for value in SAMPLES.get(name, DEFAULT_VALUES):
                yield pytest.param(entity, {name: value}, id=f"{entity}-{name}-{str(value)[:24]}")


@pytest.mark.parametrize(("entity", "filters"), list(filter_cases()))
def test_every_named_filter_is_pushed_down_whole(entity: str, filters: dict[str, Any]) -> None:
    plan = plan_query(entity, F.build(entity, **filters), schema=SCHEMAS[entity])
    assert not plan.residual, plan.residual
    if plan.is_empty:  # only an empty timerange is known to match nothing
        assert TimeRange.from_str(filters["timerange"]).is_empty
        return
    assert_serialises(plan, SCHEMAS[entity])


def resolved(entity: str, filters: dict[str, Any], values: Sequence[str]) -> list[P.Predicate]:
    """The filters as the catalog hands them to an engine without subqueries: each inner query planned
    (and serialised) on its own table, its result replaced by ``values``."""
    out: list[P.Predicate] = []
    for p in F.build(entity, **filters):
        if isinstance(p, P.InSubquery):
            if p.table in SCHEMAS:
                inner = plan_query(p.table, [p.where], schema=SCHEMAS[p.table], columns=[p.value_column])
                assert not inner.residual
                assert_serialises(inner, SCHEMAS[p.table])
            else:  # derived client-side from collections and flows: nothing to push
                assert p.table == "source_collections"
            p = p.with_values(values)
        out.append(p)
    return out


SUBQUERY_FILTERS: list[dict[str, Any]] = [
    {"tags": {"genre": "news"}},
    {"tags": {"genre": ["news", "sport"]}, "tags_exist": {"hidden": True}},
    {"tags": {"genre": [""]}},
    {"tags_exist": {"hidden": False}},
    {"collected_by_ids": ""},
    {"collected_by_ids": "c1"},
    {"collected_by_ids": "c1,c2", "tags": {"genre": "news"}},
    {"readable_by": ["news", "sport"]},
    {"writable_by": "news", "tags": {"genre": "news"}},
]


def subquery_cases() -> Iterator[Any]:
    for entity in ("sources", "flows", "webhooks", "storage_backends"):
        for filters in SUBQUERY_FILTERS:
            if "collected_by_ids" in filters and entity not in ("sources", "flows"):
                continue  # a source and flow filter only
            yield pytest.param(entity, filters, id=f"{entity}-{'-'.join(filters)}")


@pytest.mark.parametrize("values", [0, 1, 200, 5000], ids=lambda n: f"{n}-values")
@pytest.mark.parametrize(("entity", "filters"), list(subquery_cases()))
def test_tag_and_collection_filters_push_down_once_resolved(entity: str, filters: dict[str, Any], values: int) -> None:
    ids = [str(uuid.UUID(int=i + 1)) for i in range(values)]
    plan = plan_query(entity, [*resolved(entity, filters, ids), P.eq("id", "x")], schema=SCHEMAS[entity])
    # only a long resolved NOT IN stays client-side
    assert all(isinstance(p, P.Term) and p.op == "!=" for p in plan.residual)
    if not plan.is_empty:
        assert_serialises(plan, SCHEMAS[entity])


@pytest.mark.parametrize("timerange", TIMERANGES)
def test_flows_with_content_and_paging_shapes_push_down(timerange: str) -> None:
    # GET /flows?timerange=: the inner segments query, then flows by id
    sub = flows_with_content(timerange)
    inner = plan_query("segments", [sub.where], schema=SCHEMAS["segments"], columns=["flow_id"])
    assert not inner.residual and not inner.is_empty
    assert_serialises(inner, SCHEMAS["segments"])
    outer = plan_query("flows", [sub.with_values(["f1", "f2"])], schema=SCHEMAS["flows"])
    assert not outer.residual
    # a page of segments: flow, window, keyset cursor either way, ordered and limited
    for op, descending in ((">", False), ("<", True)):
        where = [P.eq("flow_id", "f"), *P.flatten([P.overlaps(timerange)]), P.Term("start_ns", op, 10**18)]
        plan = plan_query("segments", where, schema=SCHEMAS["segments"], order_by=[("start_ns", descending)], limit=100)
        if plan.is_empty:
            assert TimeRange.from_str(timerange).is_empty
            continue
        assert not plan.residual
        assert_serialises(plan, SCHEMAS["segments"])
        head = topk_prefetch(plan)
        assert head is not None and head.fetch == ("start_ns",) and head.requests == plan.requests
        keys = pa.table({"start_ns": list(range(100))})
        assert topk_bound(keys, plan) == P.Term("start_ns", ">=" if descending else "<=", 99)
        assert topk_bound(keys.slice(0, 99), plan) is None


def test_what_the_sdk_cannot_send_is_evaluated_client_side() -> None:
    schema = SCHEMAS["flows"]
    odd = [
        P.AnyOf((P.eq("label", "a"), P.eq("codec", "b"))),  # an OR across columns
        P.Term("frame_width", "==", "1920"),  # a literal of the wrong type
        P.Term("no_such_column", "==", 1),
    ]
    plan = plan_query("flows", [*odd[:2], P.Term("doc", "notnull")], schema=schema)
    assert plan.residual == tuple(odd[:2]) and plan.requests == ((P.Term("doc", "notnull"),),)
    with pytest.raises(TamsError, match="isnull"):  # = NULL is ambiguous across engines, so it cannot be built
        P.eq("label", None)
    assert_serialises(plan, schema)  # notnull goes as NOT(IS NULL), the form the SDK serialises
    with pytest.raises(TamsError, match="unknown column"):
        plan_query("flows", [], schema=schema, columns=["nope"])
    with pytest.raises(TamsError, match="resolve"):
        plan_query("flows", [P.tag("flow", "genre", "news")], schema=schema)
    assert plan_query("flows", [P.isin("id", [])], schema=schema).is_empty
    assert plan_query("flows", [P.eq("id", "x")], schema=schema, limit=0).is_empty


def test_thousands_of_terms_build_a_balanced_request() -> None:
    """A left-deep chain of 5000 terms overflows ibis' resolver (Plan.pushdown_deferred does that)."""
    terms = [P.Term("id", "!=", str(i)) for i in range(5000)]
    expr = request_deferred(terms).resolve(ibis.table(ibis.Schema.from_pyarrow(SCHEMAS["flows"]), name="flows"))
    assert expr.type().is_boolean()


# -- 2. the catalog's and the server's own queries ---------------------------------------------------------
def _catalog_sites() -> list[str]:
    """Frames (file::function) of the catalog and server code that called the engine, innermost first."""
    sites = []
    frame = sys._getframe(2)
    while frame is not None:
        path = Path(frame.f_code.co_filename).resolve()
        if path.is_relative_to(ROOT / "tams_analytics" / "catalog") or path.is_relative_to(ROOT / "server"):
            sites.append(f"{path.relative_to(ROOT)}::{frame.f_code.co_name}")
        frame = frame.f_back  # type: ignore[assignment]
    return sites


def _sorted_rows(t: pa.Table) -> list[tuple[Any, ...]]:
    def key(row: tuple[Any, ...]) -> tuple[tuple[bool, Any], ...]:
        return tuple((v is None, 0 if v is None else v) for v in row)

    return sorted((tuple(r.values()) for r in t.to_pylist()), key=key)


class RecordingEngine(DuckDBEngine):
    """The DuckDB engine, resolving subqueries as VAST does (the catalog hands it value lists), and checking
    every call it receives against the VAST engine on a snapshot of the same rows."""

    capabilities = Capabilities(writes=True, subqueries=False, transactions=True)

    def __init__(self, url: Any) -> None:
        self.sites: Counter[str] = Counter()
        self.failures: list[str] = []
        self.checked = 0
        super().__init__(url, create=True)

    def _vast(self, *names: str) -> Engine:
        store = ReferenceStore()
        engine = Engine(REFERENCE_URL, store=store)
        for name in names:
            rows = DuckDBEngine.query(self, name)
            if rows.num_rows:
                engine.insert(name, rows)
        return engine

    def _resolve(self, where: Sequence[P.Predicate]) -> list[P.Predicate]:
        out = []
        for p in P.flatten(where):
            if isinstance(p, P.InSubquery):
                inner = DuckDBEngine.query(self, p.table, [p.where], columns=[p.value_column])
                p = p.with_values(inner.column(0).to_pylist())
            out.append(p)
        return out

    def _check(self, name: str, where: Sequence[P.Predicate], kind: str, **call: Any) -> None:
        for site in dict.fromkeys(_catalog_sites()):
            self.sites[site] += 1
        if name not in SCHEMAS and name != "source_collections":
            return
        try:
            flat = self._resolve(where)
            tables = ("collections", "flows") if name == "source_collections" else (name,)
            vast = self._vast(*tables)
            if kind == "count":
                assert vast.count(name, flat) == call["expected"]
            elif kind == "rows":  # the rows a delete or update would touch
                assert vast.count(name, flat) == DuckDBEngine.count(self, name, flat)
            else:
                expected = call.pop("expected")
                got = vast.query(name, flat, **call)
                assert got.column_names == expected.column_names
                order: OrderBy = call.get("order_by") or ()
                keys = [c for c, _ in order if c in expected.column_names]
                if keys:
                    assert got.select(keys).to_pylist() == expected.select(keys).to_pylist()
                if call.get("limit") is None:
                    assert _sorted_rows(got) == _sorted_rows(expected)
                else:
                    everything = DuckDBEngine.query(self, name, flat, columns=call.get("columns"))
                    assert got.num_rows == expected.num_rows
                    assert set(_sorted_rows(got)) <= set(_sorted_rows(everything))
            self.checked += 1
        except Exception as exc:  # collected, so that the catalog's own error handling cannot hide it
            self.failures.append(f"{kind} {name} {list(where)!r:.300}: {type(exc).__name__}: {exc}")

    def query(
        self,
        name: str,
        where: Sequence[P.Predicate] = (),
        *,
        columns: Sequence[str] | None = None,
        order_by: OrderBy = (),
        limit: int | None = None,
    ) -> pa.Table:
        out = super().query(name, where, columns=columns, order_by=order_by, limit=limit)
        self._check(name, where, "query", columns=columns, order_by=order_by, limit=limit, expected=out)
        return out

    def records(
        self,
        name: str,
        where: Sequence[P.Predicate] = (),
        *,
        columns: Sequence[str],
        order_by: OrderBy = (),
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        out = super().records(name, where, columns=columns, order_by=order_by, limit=limit)
        expected = DuckDBEngine.query(self, name, where, columns=columns, order_by=order_by, limit=limit)
        if out != table_rows(expected, columns):  # DuckDB's own fast path for a few ids gives the rows Arrow does
            self.failures.append(f"records {name} {list(where)!r:.300}: {out!r:.300} != the query's rows")
        self._check(name, where, "query", columns=columns, order_by=order_by, limit=limit, expected=expected)
        return out

    def count(self, name: str, where: Sequence[P.Predicate] = ()) -> int:
        n = super().count(name, where)
        self._check(name, where, "count", expected=n)
        return n

    def delete(self, name: str, where: Sequence[P.Predicate]) -> int:
        self._check(name, where, "rows")
        return super().delete(name, where)

    def update(self, name: str, where: Sequence[P.Predicate], values: dict[str, Any]) -> int:
        self._check(name, where, "rows")
        return super().update(name, where, values)


def exercise_catalog(cat: Catalog) -> None:
    """A workload touching every catalog operation that queries the engine."""
    now = dt.datetime.now(dt.UTC)
    summary = build_demo(cat, 400, programmes=2, progress=False)
    assert summary is not None
    assert catalog_summary(cat)["segments"] == 400  # what a notebook shows of a catalog (counts)
    flows = cat.rows("flows").to_pylist()
    video = next(f for f in flows if f["format"] == "urn:x-nmos:format:video")
    fid, sid = video["id"], video["source_id"]
    for entity in F.FILTERS:
        cat.rows(entity, F.build(entity, **{name: SAMPLES.get(name, ["a"])[0] for name in list(F.FILTERS[entity])[:3]}))
    for filters in SUBQUERY_FILTERS:
        cat.rows("flows", F.build("flows", **filters))
        cat.rows("sources", F.build("sources", **{k: v for k, v in filters.items()}))
        cat.count("flows", F.build("flows", **filters))
    cat.rows("flows", [flows_with_content("[1700000000:0_1700000100:0)")])
    cat.rows("flows", [flows_with_content("()")])
    cat.get_flow(fid)
    assert (fid, video["label"]) in flows_starting_with(cat, fid[:6])  # the flows a mistyped id may mean
    cat.flow_docs(flows)
    cat.get_source(sid)
    cat.source_docs(cat.rows("sources").to_pylist())
    cat.flow_tags(fid)
    page = cat.segment_rows(fid, timerange="[1700000000:0_1700000200:0)", limit=5)
    cat.segment_rows(fid, after_start_ns=page.column("start_ns")[-1].as_py(), limit=5)
    cat.segment_rows(fid, after_start_ns=page.column("start_ns")[-1].as_py(), reverse=True, limit=5)
    cat.segment_rows(fid, object_id=page.column("object_id")[0].as_py())
    where = segment_page_where(fid, "[1700000000:0_1700000200:0)", reverse=True)
    cat.records("segments", where, columns=["object_id", "start_ns"], order_by=[("start_ns", True)], limit=5)
    cat.flow_timerange(fid)
    cat.flow_timerange(fid, within="[1700000010:0_1700000020:0)")
    cat.flow_timerange(fid, within="[1:0_2:0)")  # no segments there: the flow's existence is checked
    first = page.to_pylist()[0]
    cat.get_object(first["object_id"])
    cat.object_instances([first["object_id"]])
    cat.add_uncontrolled_instance(first["object_id"], "https://example.com/a", "mirror")
    cat.add_controlled_instance(first["object_id"], "store-2", "key-2")
    cat.delete_instance(first["object_id"], label="mirror")
    cat.set_object_size(first["object_id"], 1234)
    # new segments: re-use, overlap, init objects
    ids = cat.allocate_objects(fid, count=3, storage_id="store-1", storage_key=lambda i: f"k/{i}")
    cat.allocate_objects(fid, object_ids=["chosen-1"], storage_id="store-1", storage_key=lambda i: f"k/{i}")
    end = cat.flow_timerange(fid).end_ns or 0
    base = end // 10**9 + 10
    cat.add_segments(
        fid,
        [
            {"object_id": ids[0], "timerange": f"[{base}:0_{base + 1}:0)"},
            {
                "object_id": ids[1],
                "timerange": f"[{base + 1}:0_{base + 2}:0)",
                "get_urls": [{"label": "x", "url": "https://e/x"}],
            },
            {"object_id": ids[2], "timerange": f"[{base}:500000000_{base + 3}:0)"},
        ],
    )
    # init objects: on a flow of init segments, whose setting cannot change while they are there
    fmp4 = {"id": str(uuid.uuid4()), "source_id": sid, "format": video["format"], "container": "video/mp4"}
    fmp4["essence_parameters"] = {"frame_width": 1920, "init_segments": True}
    cat.put_flow(fmp4)
    init_seg = {"object_id": "fmp4-1", "timerange": "[0:0_1:0)", "init_object_id": "init-1"}
    cat.add_segments(fmp4["id"], [init_seg, {"object_id": "fmp4-1", "timerange": "[5:0_6:0)"}])
    with pytest.raises(ConflictError):
        cat.put_flow(fmp4 | {"essence_parameters": {"frame_width": 1920}})
    # refused whole: the flow's claim is put back; a retry after an uncertain commit finds its own segment stored
    cat.add_segments(fid, [{"object_id": "clash", "timerange": f"[{base}:0_{base + 3}:0)"}])
    again = registration.Registration.of(fid, [{"object_id": ids[0], "timerange": f"[{base}:0_{base + 1}:0)"}])
    with cat.transaction():
        assert registration.register(cat, [again], Attempt(2, after_uncertain_commit=True)).outcomes[0].accepted == [0]
    cat.delete_segments(fid, f"[{base}:0_{base + 2}:0)", limit=1)
    cat.delete_segments(fid, f"[{base}:0_{base + 2}:0)", object_id=ids[1])
    cat.delete_segments(fid, "[1700000000:0_1700000020:0)")
    cat.collectable_objects(now + dt.timedelta(days=1))
    any_collectable(cat, now + dt.timedelta(days=1))
    cat.purge_objects([ids[2], "chosen-1"])
    claim_collectable_objects(cat, now + dt.timedelta(days=1), grace_s=0)
    # the object deletion queue: claimed (keys in use dropped), failed, deleted; a key taken back
    object_deletions.any_due(cat, now + dt.timedelta(days=2))
    claimed = object_deletions.claim(cat, now + dt.timedelta(days=2))
    object_deletions.failed(cat, claimed.rows[:1], "storage unavailable")
    object_deletions.deleted(cat, claimed.rows)
    object_deletions.pending(cat)
    object_deletions.reclaim(cat, "store-1", ["k/chosen-1"])
    cat.set_flow_property(fid, "label", "renamed")
    cat.set_flow_tag(fid, "genre", ["news", "sport"])
    cat.set_flow_tag(fid, "genre", None)
    cat.set_source_property(sid, "label", "source label")
    cat.set_source_tag(sid, "owner", "bbc")
    cat.set_source_tag(sid, "owner", None)
    members = [f["id"] for f in flows if f["format"] == "urn:x-nmos:format:audio"][:1]
    cat.set_flow_collection(fid, [{"id": m, "role": "audio"} for m in members])
    cat.source_collections([sid])
    cat.rows("sources", F.build("sources", collected_by_ids=sid))
    records.set_service_info(cat, {"name": "test", "description": None})
    records.service_info(cat)
    cat.register_storage_backend(
        {"id": "store-1", "store_type": "http_object_store", "provider": "p", "store_product": "s", "tags": {"a": "b"}}
    )
    records.create_profile(cat, {"id": "profile-1", "flow_metadata": {"format": "urn:x-nmos:format:video"}})
    records.get_profile(cat, "profile-1")
    hook = {"id": "wh-1", "url": "https://example.com/hook", "events": ["flows/created"], "tags": {"t": "1"}}
    webhook_records.save_webhook(cat, hook)
    webhook_records.save_webhook(cat, {"id": "wh-1", "url": "https://example.com/hook2"}, keep_secret=True)
    webhook_records.webhook_docs(cat, cat.rows("webhooks").to_pylist())
    webhook_records.get_webhook(cat, "wh-1", with_secret=True)
    webhook_records.active_webhooks(cat)
    webhook_records.set_webhook_status(cat, "wh-1", "started", only_from=["created"])
    webhook_records.delete_webhook(cat, "wh-1")
    request = delete_records.create_delete_request(cat, fid, "_", delete_flow=False, expiry=now)
    delete_records.update_delete_request(cat, request["id"], status="done", error={"summary": "x"})
    delete_records.get_delete_request(cat, request["id"])
    delete_records.unfinished_delete_requests(cat)
    delete_records.purge_delete_requests(cat, now + dt.timedelta(days=1))
    cat.delete_flow(members[0]) if members else None
    cat.delete_flow(fid, force=True)
    # the server's leases and webhook outbox
    leases = Leases(cat, "replica-1", 30)
    leases.claim("job")
    leases.holder_of("job")
    leases.release("job")
    leases.claim("job")
    leases.release("job", forget=True)
    outbox.write(cat, [(Event("flows/deleted", {"flow_id": fid}, flow_id=fid), ["wh-2"])])
    waiting = outbox.due(cat, outbox.webhooks_with_events(cat)[0])
    outbox.attempt_failed(cat, waiting[0]["id"], 1, now, "the receiver answered HTTP 503")
    outbox.delivered(cat, waiting[0]["id"])
    outbox.discard(cat, ["wh-2"])
    outbox.depth(cat)


def query_sites() -> set[str]:
    """Catalog and service-record functions that query the engine: calls of rows/records/row/exists/count on
    self or the catalog, or of the engine's query/records/count/count_in/delete/update."""
    engine_calls = {"query", "records", "count", "count_in", "delete", "update"}
    found = set()
    paths = [*(ROOT / "tams_analytics" / "catalog").glob("*.py"), ROOT / "server" / "records.py"]
    paths += [ROOT / "server" / name for name in ("gc.py", "leases.py", "webhooks/outbox.py", "webhooks/records.py")]
    paths += [ROOT / "server" / "delete_requests" / "records.py"]
    for path in sorted(paths):
        tree = ast.parse(path.read_text())
        for fn in ast.walk(tree):
            if not isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for node in ast.walk(fn):
                if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                    continue
                target, attr = node.func.value, node.func.attr
                direct = attr in {"rows", "records", "row", "exists", "count"} and (
                    (isinstance(target, ast.Name) and target.id in ("self", "catalog"))
                    or (isinstance(target, ast.Attribute) and target.attr == "catalog")
                )
                via_engine = attr in engine_calls and isinstance(target, ast.Attribute) and target.attr == "engine"
                if direct or via_engine:
                    found.add(f"{path.relative_to(ROOT)}::{fn.name}")
                    break
    return found


@pytest.fixture
def recording(tmp_path: Path) -> Iterator[RecordingEngine]:
    engine = RecordingEngine(urlsplit(f"duckdb:///{tmp_path / 'rec.duckdb'}"))
    yield engine
    engine.close()


#: query sites that only run on an engine that is its store's sole writer (the read cache's loads), so never
#: on VAST (none: the cache loads through the engine it wraps, outside the catalog)
SOLE_WRITER_ONLY: set[str] = set()


def test_every_catalog_query_runs_the_same_on_vast(recording: RecordingEngine) -> None:
    exercise_catalog(Catalog(recording))
    assert not recording.failures, "\n".join(recording.failures[:20])
    assert recording.checked > 150
    assert not recording.capabilities.sole_writer, "as VAST: no read cache"
    missed = sorted(query_sites() - set(recording.sites) - SOLE_WRITER_ONLY)
    assert not missed, f"catalog queries this workload does not exercise (extend exercise_catalog): {missed}"


def test_the_servers_queries_run_the_same_on_vast(recording: RecordingEngine, tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from server.app import create_app
    from server.config import Settings

    cat = Catalog(recording)
    build_demo(cat, 200, programmes=1, progress=False)
    flow = cat.rows("flows", [P.eq("format", "urn:x-nmos:format:video")]).to_pylist()[0]
    app = create_app(Settings(data_dir=tmp_path / "data", webhooks_allow_private=True), engine=cat.engine)
    with TestClient(app, base_url="http://testserver") as client:
        fid = flow["id"]
        for url in [
            "/flows",
            "/flows?tag.genre=news&format=urn:x-nmos:format:video&limit=2",
            "/flows?tag_exists.genre=false&timerange=[1700000000:0_1700000010:0)",
            "/flows?timerange=()&codec=video/h264",
            "/flows?collected_by_ids=&sort_by=label",
            f"/flows?source_id={flow['source_id']}&frame_width=1920&init_segments=false",
            "/sources?tag.genre=news&format=urn:x-nmos:format:video",
            f"/sources/{flow['source_id']}",
            f"/flows/{fid}?include_timerange=true",
            f"/flows/{fid}/segments?limit=3",
            f"/flows/{fid}/segments?timerange=[1700000004:0_1700000040:0)&reverse_order=true&limit=2",
            f"/flows/{fid}/segments?object_id=nope",
            "/service/storage-backends",
            "/service/profiles?format=urn:x-nmos:format:video",
            "/service/webhooks",
            "/flow-delete-requests",
        ]:
            r = client.get(url)
            assert r.status_code < 500, (url, r.status_code, r.text[:300])
            nxt = r.headers.get("link", "")
            if 'rel="next"' in nxt:
                assert client.get(nxt[nxt.index("<") + 1 : nxt.index(">")]).status_code < 500
        assert client.delete(f"/flows/{fid}/segments?timerange=[1700000000:0_1700000010:0)").status_code < 500
    assert not recording.failures, "\n".join(recording.failures[:20])
    assert any(site.startswith("server/") for site in recording.sites)


# -- 3. the property: pushdown AND residual == the filter -------------------------------------------------------
STRINGS = ["", "a", "ab", "abc", "b", "ba", "é", "\U0001f600"]
PROPERTY_SCHEMA = pa.schema(
    [
        ("rid", pa.int64()),
        ("i", pa.int64()),
        ("s", pa.string()),
        ("b", pa.bool_()),
        ("start_ns", pa.int64()),
        ("end_ns", pa.int64()),
    ]
)
small_ints = st.integers(-6, 6)
stored_ranges = st.one_of(
    st.tuples(st.integers(-20, 20), st.integers(1, 10)).map(lambda t: (t[0], t[0] + t[1])),
    st.just((END_UNBOUNDED, START_UNBOUNDED)),  # a stored empty range
    st.integers(-20, 20).map(lambda a: (START_UNBOUNDED, a)),
    st.integers(-20, 20).map(lambda a: (a, END_UNBOUNDED)),
)


@st.composite
def tables(draw: st.DrawFn) -> pa.Table:
    n = draw(st.integers(0, 40))
    bounds = draw(st.lists(stored_ranges, min_size=n, max_size=n))
    return pa.table(
        {
            "rid": list(range(n)),
            "i": draw(st.lists(st.none() | small_ints, min_size=n, max_size=n)),
            "s": draw(st.lists(st.none() | st.sampled_from(STRINGS), min_size=n, max_size=n)),
            "b": draw(st.lists(st.none() | st.booleans(), min_size=n, max_size=n)),
            "start_ns": [lo for lo, _ in bounds],
            "end_ns": [hi for _, hi in bounds],
        },
        schema=PROPERTY_SCHEMA,
    )


def _values(column: str) -> st.SearchStrategy[Any]:
    return {"i": small_ints, "s": st.sampled_from(STRINGS), "b": st.booleans()}[column]


@st.composite
def terms(draw: st.DrawFn, column: str | None = None) -> P.Predicate:
    col = column or draw(st.sampled_from(["i", "s", "b"]))
    values = _values(col)
    ops = ["==", "!=", "isin", "isnull", "notnull"] + (["<", "<=", ">", ">=", "between"] if col != "b" else [])
    ops += ["startswith", "contains"] if col == "s" else []
    op = draw(st.sampled_from(ops))
    if op in ("isnull", "notnull"):
        return P.Term(col, op)
    if op == "isin":
        many = st.lists(st.integers(-500, 500), min_size=0, max_size=300) if col == "i" else st.nothing()
        vals = draw(many | st.lists(values, min_size=0, max_size=4))
        return P.Term(col, "isin", tuple(vals))
    if op == "between":
        return P.Term(col, "between", (draw(values), draw(values)))
    if op in ("startswith", "contains"):
        return P.Term(col, op, draw(values))
    return P.Term(col, op, draw(values))


query_ranges = st.builds(
    TimeRange,
    st.none() | st.integers(-25, 25),
    st.none() | st.integers(-25, 25),
    include_start=st.booleans(),
    include_end=st.booleans(),
)
leaves = st.one_of(
    terms(),
    st.sampled_from(["i", "s", "b"]).flatmap(
        lambda c: st.lists(terms(c), min_size=1, max_size=4).map(lambda ts: P.AnyOf(tuple(ts)))
    ),  # an OR on one column: pushable
    query_ranges.map(P.overlaps),
    query_ranges.map(P.covered_by),
    st.booleans().map(P.Const),
)
trees = st.recursive(
    leaves,
    lambda inner: st.one_of(
        st.lists(inner, min_size=1, max_size=4).map(lambda ps: P.AllOf(tuple(ps))),
        st.lists(inner, min_size=1, max_size=3).map(lambda ps: P.AnyOf(tuple(ps))),  # across columns
    ),
    max_leaves=8,
)


def _no_empty_lists(p: P.Predicate) -> P.Predicate:
    """``render_sql`` writes ``IN ()`` for an empty list, which DuckDB cannot parse: it means FALSE."""
    if isinstance(p, P.Term) and p.op == "isin" and not p.value:
        return P.Const(False)
    if isinstance(p, P.AllOf | P.AnyOf):
        return type(p)(tuple(_no_empty_lists(t) for t in p.terms))
    return p


def duckdb_filter(rows: pa.Table, predicate: P.Predicate) -> list[int]:
    """The reference: the DuckDB engine's own SQL rendering of the whole tree."""
    import duckdb

    predicate = _no_empty_lists(predicate)
    params: list[Any] = []
    sql = f"SELECT rid FROM rows WHERE {render_sql(predicate, params)}"
    con = duckdb.connect()
    con.register("rows", rows)
    return sorted(r[0] for r in con.execute(sql, params).fetchall())


@settings(suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large], deadline=None)
@given(rows=tables(), tree=trees, max_bytes=st.sampled_from([None, 6_000]))
def test_pushdown_and_residual_select_exactly_what_the_filter_selects(
    rows: pa.Table, tree: P.Predicate, max_bytes: int | None
) -> None:
    expected = duckdb_filter(rows, tree)
    plan = plan_query("t", [tree], schema=PROPERTY_SCHEMA, max_bytes=max_bytes)
    if plan.is_empty:
        assert expected == []
        return
    parts = [evaluate(rows, list(request), columns=plan.fetch) for request in plan.requests]
    pushed = pa.concat_tables(parts)
    assert pushed.num_rows == len(set(pushed.column("rid").to_pylist())), "a row matched two requests"
    got = evaluate(pushed, list(plan.residual))
    assert sorted(got.column("rid").to_pylist()) == expected
    # on the wire: what the serialised requests select is what DuckDB selects for them
    store = ReferenceStore()
    with store.transaction() as tx:
        store.ensure_tables(tx, {"t": PROPERTY_SCHEMA}, {})
        store.insert(tx, "t", rows)
    with store.transaction() as tx:
        for request, part in zip(plan.requests, parts, strict=True):
            wire = store.select(tx, "t", list(plan.fetch), request_deferred(request))
            assert sorted(wire.column("rid").to_pylist()) == sorted(part.column("rid").to_pylist()), request
    assert max(store.request_sizes) <= (max_bytes or LIMIT)


@given(
    rows=tables(),
    keys=st.lists(st.tuples(st.sampled_from(["i", "s", "b", "start_ns"]), st.booleans()), min_size=1, max_size=3),
    limit=st.none() | st.integers(0, 10),
)
def test_client_side_ordering_is_duckdbs(rows: pa.Table, keys: list[tuple[str, bool]], limit: int | None) -> None:
    import duckdb

    order = list(dict(keys).items())
    names = [c for c, _ in order]
    got = evaluate(rows, [], columns=names, order_by=order, limit=limit)
    con = duckdb.connect()
    con.register("rows", rows)
    directions = ", ".join(f"{c} {'DESC' if d else 'ASC'}" for c, d in order)
    sql = f"SELECT {', '.join(names)} FROM rows ORDER BY {directions}"
    sql += "" if limit is None else f" LIMIT {limit}"
    assert got.to_pylist() == arrow_table(con, sql).to_pylist()


# -- 4. the engine on the reference store ---------------------------------------------------------------------
def video_flow(**extra: Any) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "source_id": str(uuid.uuid4()),
        "format": "urn:x-nmos:format:video",
        "codec": "video/h264",
        "container": "video/mp2t",
        **extra,
    }


def segments(n: int, start: int = 0) -> list[dict[str, Any]]:
    return [{"object_id": f"o{start + i}", "timerange": f"[{start + i}:0_{start + i + 1}:0)"} for i in range(n)]


class CountingStore(ReferenceStore):
    """The reference store, counting transactions and the rows each select returns."""

    def __init__(self) -> None:
        super().__init__()
        self.transactions = 0
        self.returned: list[tuple[str, tuple[str, ...], int]] = []

    def transaction(self) -> Any:
        self.transactions += 1
        return super().transaction()

    def select(self, tx: Any, table: str, columns: Sequence[str], predicate: Any, **kw: Any) -> pa.Table:
        out = super().select(tx, table, columns, predicate, **kw)
        self.returned.append((table, tuple(out.column_names), out.num_rows))
        return out


@pytest.fixture
def counting() -> CountingStore:
    return CountingStore()


@pytest.fixture
def vast_catalog(counting: CountingStore) -> Iterator[Catalog]:
    cat = Catalog(Engine(REFERENCE_URL, store=counting))
    yield cat
    cat.close()


def test_one_catalog_transaction_is_one_vast_transaction_and_rolls_back_whole(
    vast_catalog: Catalog, counting: CountingStore
) -> None:
    before = counting.transactions
    with vast_catalog.transaction():
        vast_catalog.put_flow(video_flow())
        vast_catalog.put_flow(video_flow())  # nested catalog transactions reuse the outer one
        assert vast_catalog.count("flows") == 2  # reads inside see the writes
    assert counting.transactions - before == 1
    with pytest.raises(RuntimeError), vast_catalog.transaction():
        vast_catalog.put_flow(video_flow())
        raise RuntimeError("abandon")
    assert vast_catalog.count("flows") == 2


def test_an_ordered_limit_reads_wide_rows_only_up_to_the_limit(vast_catalog: Catalog, counting: CountingStore) -> None:
    flow = video_flow()
    vast_catalog.put_flow(flow)
    assert vast_catalog.add_segments(flow["id"], segments(300)).all_accepted
    counting.returned.clear()
    page = vast_catalog.segment_rows(flow["id"], after_start_ns=100 * 10**9, limit=10)
    assert page.column("timerange").to_pylist() == [f"[{i}:0_{i + 1}:0)" for i in range(101, 111)]
    # the flow's extent is read once (engines/windows.py), then the ordering column of a window of about two
    # pages after the cursor (199 rows, every one after it, without the window), then the 10 wide rows
    (extent, head, full) = counting.returned
    assert extent == ("segments", ("start_ns",), 300)
    assert head == ("segments", ("start_ns",), 20) and full[2] == 10 and "timerange" in full[1]
    counting.returned.clear()
    page = vast_catalog.segment_rows(flow["id"], after_start_ns=200 * 10**9, limit=10)
    assert page.column("timerange").to_pylist() == [f"[{i}:0_{i + 1}:0)" for i in range(201, 211)]
    assert [n for _table, _columns, n in counting.returned] == [20, 10]
    last = vast_catalog.segment_rows(flow["id"], reverse=True, limit=3)
    assert last.column("start_ns").to_pylist() == [299 * 10**9, 298 * 10**9, 297 * 10**9]
    assert str(vast_catalog.flow_timerange(flow["id"])) == "[0:0_300:0)"


def test_a_limit_without_ordering_is_applied_by_the_server(vast_catalog: Catalog, counting: CountingStore) -> None:
    for _ in range(3):
        vast_catalog.put_flow(video_flow())
    counting.returned.clear()
    assert vast_catalog.exists("flows", [P.eq("format", "urn:x-nmos:format:video")])
    assert counting.returned == [("flows", ("id",), 1)]


def test_updates_and_deletes_touch_exactly_the_matching_rows(reference_engine: Engine) -> None:
    rows = pa.table({"id": [f"w{i}" for i in range(6)], "url": ["u"] * 6, "status": ["created", "started", None] * 2})
    reference_engine.insert("webhooks", rows)
    cross = P.AnyOf((P.eq("status", "started"), P.eq("id", "w0")))  # residual: an OR across columns
    assert reference_engine.update("webhooks", [cross], {"error": "e"}) == 3
    got = reference_engine.query("webhooks", [P.Term("error", "notnull")], columns=["id"], order_by=[("id", False)])
    assert got.column("id").to_pylist() == ["w0", "w1", "w4"]
    assert reference_engine.delete("webhooks", [P.Term("status", "isnull")]) == 2
    assert reference_engine.count("webhooks") == 4
    assert reference_engine.delete("webhooks", [P.isin("id", [])]) == 0
    with pytest.raises(UnsupportedError, match="sorting key"):
        reference_engine.update("segments", [P.eq("flow_id", "f")], {"start_ns": 1})


def test_subqueries_and_derived_tables_are_resolved_by_the_engine(reference_engine: Engine) -> None:
    cat = Catalog(reference_engine)
    a, b = video_flow(tags={"genre": "news"}), video_flow()
    cat.put_flow(b)
    cat.put_flow({**a, "flow_collection": [{"id": b["id"]}]})
    tagged = reference_engine.query("flows", [P.tag("flow", "genre", "news")], columns=["id"])
    assert tagged.column("id").to_pylist() == [a["id"]]
    assert reference_engine.count("flows", [P.tag_exists("flow", "genre", False)]) == 1
    pairs = reference_engine.query("source_collections").to_pylist()
    assert pairs == [{"source_id": a["source_id"], "member_id": b["source_id"]}]
    got = cat.rows("sources", F.build("sources", collected_by_ids=a["source_id"]), columns=["id"])
    assert got.column("id").to_pylist() == [b["source_id"]]


def test_analysts_get_a_memtable_that_ibis_can_execute(reference_engine: Engine) -> None:
    cat = Catalog(reference_engine)
    flow = video_flow(tags={"genre": "news"})
    cat.put_flow(flow)
    cat.add_segments(flow["id"], segments(5))
    seg = cat.segments(flow_id=flow["id"], timerange="[1:0_3:0)")
    assert seg.order_by("start_ns").timerange.execute().tolist() == ["[1:0_2:0)", "[2:0_3:0)"]
    assert cat.flows(tags={"genre": "news"}).count().execute() == 1
    assert list(reference_engine.table("segments").schema().names) == SCHEMAS["segments"].names


def test_an_empty_result_asks_nothing(reference_engine: Engine, reference_store: ReferenceStore) -> None:
    before = reference_store.selects
    assert reference_engine.query("flows", [P.Const(False)]).num_rows == 0
    assert reference_engine.query("flows", [P.isin("id", [])], columns=["id"]).column_names == ["id"]
    assert reference_engine.count_in("objects", "id", pa.array([], pa.string())) == 0
    assert reference_store.selects == before


class NaiveTimestampStore(ReferenceStore):
    """A cluster that reports timestamp columns without their time zone."""

    def select(self, tx: Any, table: str, columns: Sequence[str], predicate: Any, **kw: Any) -> pa.Table:
        out = super().select(tx, table, columns, predicate, **kw)
        for i, f in enumerate(out.schema):
            if pa.types.is_timestamp(f.type):
                out = out.set_column(i, f.name, out.column(i).cast(pa.timestamp("us")))
        return out


def test_results_have_the_entity_types_whatever_the_cluster_reports() -> None:
    engine = Engine(REFERENCE_URL, store=NaiveTimestampStore())
    when = dt.datetime(2025, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    engine.insert("sources", pa.table({"id": ["s"], "format": ["f"], "created": [when]}))
    for where in ([], [P.Term("created", "<", when + dt.timedelta(seconds=1))]):
        got = engine.query("sources", where, order_by=[("id", False)])
        assert [f.type for f in got.schema] == [f.type for f in SCHEMAS["sources"]]
        assert got.column("created").to_pylist() == [when]


def test_a_read_only_engine_refuses_writes(reference_store: ReferenceStore) -> None:
    Engine(REFERENCE_URL, store=reference_store)  # creates the tables
    engine = Engine(REFERENCE_URL, store=reference_store, read_only=True)
    with pytest.raises(UnsupportedError, match="read-only"):
        engine.insert("service", pa.table({"key": ["k"], "value": ["v"]}))
    assert engine.count("service") == 0


# -- configuration and connection -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("url", "env", "expected"),
    [
        ("vast://k:secret1@h:8070/b/s", {}, ("http://h:8070", "b", "s", "k", "secret1", True)),
        (
            "vast://h/b/nested/s?https=true&ssl_verify=false",
            {"TAMS_VAST_ACCESS_KEY": "k", "TAMS_VAST_SECRET_KEY": "xyz"},
            ("https://h", "b", "nested/s", "k", "xyz", False),
        ),
        (
            "vast://h:9/b/s",
            {"TAMS_VAST_ENDPOINT": "https://h:9/", "TAMS_VAST_ACCESS_KEY": "k", "TAMS_VAST_SECRET_KEY": "xyz"},
            ("https://h:9", "b", "s", "k", "xyz", True),
        ),
        ("vast://k%40x:s%2Fy@[::1]:80/b/s", {}, ("http://[::1]:80", "b", "s", "k@x", "s/y", True)),
    ],
)
def test_store_urls(url: str, env: dict[str, str], expected: tuple[Any, ...]) -> None:
    c = parse_url(urlsplit(url), env=env)
    assert (c.endpoint, c.bucket, c.schema, c.access_key, c.secret_key, c.ssl_verify) == expected
    assert c.secret_key not in repr(c)


@pytest.mark.parametrize(
    ("url", "message"),
    [("vast:///b/s", "needs a host"), ("vast://h/b", "bucket and a schema"), ("vast://h/b/s", "credentials missing")],
)
def test_bad_store_urls_say_what_is_missing(url: str, message: str) -> None:
    with pytest.raises(TamsError, match=message):
        parse_url(urlsplit(url), env={})


def test_a_server_that_is_not_vast_is_refused_without_leaking_the_secret(
    s3_server: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """The SDK's handshake against a real S3 server (SeaweedFS) that is not a VAST DB endpoint."""
    from tams_analytics.catalog import connect

    netloc = urlsplit(s3_server.endpoint_url).netloc
    secret = "s3cr3t-" + uuid.uuid4().hex
    caplog.set_level(logging.DEBUG)
    with pytest.raises(TamsError, match="cannot open the VAST DB") as info:
        connect(f"vast://key:{secret}@{netloc}/bucket/schema", retries=1, timeout=5)
    assert secret not in str(info.value)
    assert all(secret not in r.getMessage() for r in caplog.records)


# -- live, on a cluster -------------------------------------------------------------------------------------------
def test_live_round_trip_with_pushdown_splits_and_row_id_writes(vast_url: str) -> None:
    from tams_analytics.catalog import connect

    cat = connect(vast_url)
    try:
        flow = video_flow(tags={"genre": "news"})
        cat.put_flow(flow)
        assert cat.add_segments(flow["id"], segments(50)).all_accepted
        assert cat.segment_rows(flow["id"], timerange="[10:0_13:0)").column("timerange").to_pylist() == [
            "[10:0_11:0)",
            "[11:0_12:0)",
            "[12:0_13:0)",
        ]
        assert str(cat.flow_timerange(flow["id"])) == "[0:0_50:0)"
        assert cat.rows("flows", F.build("flows", tags={"genre": "news"}), columns=["id"]).num_rows == 1
        asked = pa.array([f"o{i}" for i in range(0, 50, 2)] + [str(uuid.UUID(int=i)) for i in range(60_000)])
        assert cat.engine.count_in("segments", "object_id", asked) == 25
        assert cat.delete_segments(flow["id"], "[0:0_10:0)").deleted == 10
        cat.set_flow_property(flow["id"], "label", "live")
        assert cat.get_flow(flow["id"])["label"] == "live"
        with pytest.raises(RuntimeError), cat.transaction():
            cat.put_flow(video_flow())
            raise RuntimeError("abandon")
        assert cat.count("flows") == 1
        assert pc.sum(cat.rows("segments", columns=["start_ns"]).column(0)).as_py() == sum(range(10, 50)) * 10**9
    finally:
        cat.close()
