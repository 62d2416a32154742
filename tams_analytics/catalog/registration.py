"""Segment registration: segments checked and stored atomically per flow, never overlapping.

Registrations are applied in *batches* (:func:`register_batch`): a live recorder posts one segment per
request to each of many flows, so the server's concurrent requests are queued and applied together
(:mod:`~tams_analytics.catalog.group_commit`): one transaction and one durable commit per batch, and
a constant number of reads, each for the whole batch (the flows, their pending flow delete requests,
the stored segments their new ones could overlap, the objects they mention). Every registration is
still judged on its own, as if the batch's registrations had run one after another in arrival order:
it sees the segments and objects of those before it, and gets its own answer (an error for the flow,
or the segments accepted and refused, and why).

On a store other processes write too (VAST, several server replicas), a batch first claims the rows of
its flows (:func:`~tams_analytics.catalog.flow_guard.claim_flows`), then reads and judges in the transaction
that holds the claim: of two batches touching one flow the store commits one and refuses the other,
which is retried (:mod:`~tams_analytics.catalog.conflicts`) and judged again on what the first stored.
A retry after a commit of unknown outcome takes segments stored exactly as it would store them (same
flow, timerange and object) as its own, accepted, not as overlaps.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from tams_analytics.catalog.conflicts import Attempt, Attempts
from tams_analytics.catalog.flow_guard import (
    FLOW_ROW,
    check_writable,
    claim_flows,
    pending_flow_deletions,
    restore_flows,
)
from tams_analytics.catalog.object_rules import (
    ObjectState,
    check_objects,
    flows_using_init,
    init_segments_refused,
    mentioned_ids,
    write_objects,
)
from tams_analytics.catalog.objects import add_uncontrolled_instances
from tams_analytics.catalog.overlaps import already_stored, check_overlaps, flow_spans, stored_bounds
from tams_analytics.catalog.results import AddResult, Failure
from tams_analytics.clock import utcnow
from tams_analytics.codec.segments import SEGMENT_ROWS, segment_rows
from tams_analytics.exceptions import StoreUnavailableError, TransientStoreError
from tams_analytics.predicates import isin
from tams_analytics.pyrows import distinct_values

if TYPE_CHECKING:
    from tams_analytics.catalog import Catalog

__all__ = ["Registered", "Registration", "add_segments", "attempts", "register", "register_batch"]

logger = logging.getLogger(__name__)

UrlItems = Mapping[int, Sequence[Mapping[str, str]]]
_TS = pa.timestamp("us", tz="UTC")


@dataclass(frozen=True)
class Registration:
    """One request to register segments on a flow: its parsed segments (dicts from
    :func:`~tams_analytics.codec.segments.segment_rows`, or a table from
    :func:`~tams_analytics.codec.segments.segments_table`, each with its ``index`` in the request), the
    documents that did not parse, uncontrolled ``get_urls`` by index, and labels reserved for backends."""

    flow_id: str
    segments: pa.Table | list[dict[str, Any]]
    parse_failures: tuple[Failure, ...] = ()
    urls: Mapping[int, Sequence[Mapping[str, str]]] = field(default_factory=dict)
    reserved_labels: frozenset[str] = frozenset()

    @property
    def size(self) -> int:
        return self.segments.num_rows if isinstance(self.segments, pa.Table) else len(self.segments)

    def rows(self) -> list[dict[str, Any]]:
        """The parsed segments as dicts."""
        return self.segments.to_pylist() if isinstance(self.segments, pa.Table) else self.segments

    @classmethod
    def of(
        cls,
        flow_id: str,
        segments: pa.Table | Sequence[Mapping[str, Any]],
        *,
        uncontrolled_urls: UrlItems | None = None,
        reserved_labels: frozenset[str] = frozenset(),
    ) -> Registration:
        """From wire documents (parsed here) or a table from ``segments_table``."""
        failures: list[Failure] = []
        urls = dict(uncontrolled_urls or {})
        parsed: pa.Table | list[dict[str, Any]]
        if isinstance(segments, pa.Table):
            parsed = segments
            if "index" not in parsed.column_names:
                parsed = parsed.append_column("index", pa.array(np.arange(parsed.num_rows), pa.int64()))
        else:
            docs = list(segments)
            parsed, failures = segment_rows(docs)
            urls = {i: d["get_urls"] for i, d in enumerate(docs) if isinstance(d, Mapping) and d.get("get_urls")} | urls
        return cls(flow_id, parsed, tuple(failures), urls, reserved_labels)


def add_segments(
    catalog: Catalog,
    flow_id: str,
    segments: pa.Table | Sequence[Mapping[str, Any]],
    *,
    uncontrolled_urls: UrlItems | None = None,
    reserved_labels: frozenset[str] = frozenset(),
) -> AddResult:
    """Register segments on a flow, atomically, never storing two overlapping segments.

    Every segment is checked against the flow's stored segments and the segments accepted before it
    (abutting ranges are fine); those that overlap, or break the object rules
    (:mod:`~tams_analytics.catalog.object_rules`), fail individually and the rest are stored.
    ``segments`` is a list of wire documents, or a table from
    :func:`~tams_analytics.codec.segments.segments_table`. Concurrent calls are applied in batches, one
    transaction each; a call inside a transaction joins it.
    """
    request = Registration.of(flow_id, segments, uncontrolled_urls=uncontrolled_urls, reserved_labels=reserved_labels)
    if not catalog.engine.in_transaction():
        return catalog.group_commit.submit(request)
    outcome = register_batch(catalog, [request])[0]
    if isinstance(outcome, Exception):
        raise outcome
    return outcome


class _JudgeAlone(Exception):
    """The batch's requests must be judged one by one: judging them together would differ (a batch that
    raises is applied again request by request: :class:`~tams_analytics.catalog.group_commit.GroupCommit`)."""


@dataclass(frozen=True)
class Registered:
    """What one batch of registrations did: each request's outcome (its result, or the error that refused
    it) and the segment rows it stored (None: none), for the caller to compose more writes from."""

    outcomes: list[AddResult | Exception]
    stored: pa.Table | None


def attempts(catalog: Catalog, requests: Sequence[Registration]) -> Attempts:
    """The attempts of a batch's transaction (:class:`~tams_analytics.catalog.conflicts.Attempts`): a batch the
    store refuses because of concurrent writers is tried again as a whole; one refused three times in a row
    first commits its claim on its flows alone."""
    flow_ids = list(dict.fromkeys(r.flow_id for r in requests))
    return Attempts(catalog, what="segment registration", claim=lambda: _claim_alone(catalog, flow_ids))


def register(catalog: Catalog, requests: Sequence[Registration], attempt: Attempt) -> Registered:
    """Judge and store ``requests`` in the transaction ``attempt`` holds, as if they had run one after another.

    Raises when the batch cannot be judged as a whole (its requests are then applied one by one)."""
    batch = _Batch(catalog, requests, replay=attempt.after_uncertain_commit)
    outcomes = batch.judge()
    return Registered(outcomes, batch.flush())


def register_batch(catalog: Catalog, requests: Sequence[Registration]) -> list[AddResult | Exception]:
    """Apply ``requests`` in one transaction (:func:`attempts`, :func:`register`); each gets its own result,
    or the error that refused it. If the store keeps refusing the batch, every request gets that
    :class:`~tams_analytics.exceptions.TransientStoreError`."""
    try:
        for attempt in attempts(catalog, requests):
            with attempt:
                done = register(catalog, requests, attempt)
    except (TransientStoreError, StoreUnavailableError) as exc:
        return [exc] * len(requests)
    return done.outcomes


def _claim_alone(catalog: Catalog, flow_ids: Sequence[str]) -> None:
    """The flows' claim, committed on its own after repeated conflicts; it changes no value."""
    before = claim_flows(catalog, flow_ids, utcnow())
    if before:
        restore_flows(catalog, before)


class _Batch:
    """One batch: what the store held before it (read once, for all its requests), the judgement of every
    segment of every request in arrival order, and what the batch writes.

    The requests' segments are judged together, as one table in arrival order: a segment is accepted
    when it overlaps neither a stored segment nor a segment accepted before it (of its request, or of an
    earlier one), and passes the object rules given the objects as the earlier segments left them.
    """

    def __init__(self, catalog: Catalog, requests: Sequence[Registration], *, replay: bool = False) -> None:
        self.catalog = catalog
        self.requests = requests
        self.now = utcnow()
        flow_ids = list(dict.fromkeys(r.flow_id for r in requests))
        #: the flows' ``segments_updated`` before the claim (None: not claimed, see ``claim_flows``)
        self.claimed = claim_flows(catalog, flow_ids, self.now)
        self.flows = {r["id"]: r for r in catalog.records("flows", [isin("id", flow_ids)], columns=FLOW_ROW)}
        self.deletions = pending_flow_deletions(catalog, [f for f in flow_ids if f in self.flows])
        #: per request: None, or the error that refuses it as a whole
        self.refused: list[Exception | None] = [self._refusal(r) for r in requests]
        live = [k for k, (r, why) in enumerate(zip(requests, self.refused, strict=True)) if why is None and r.size]
        self.segments = _tagged([(k, requests[k]) for k in live]) if live else None
        mentioned = mentioned_ids(self.segments) if self.segments is not None else pa.array([], pa.string())
        self.objects = ObjectState.load(catalog, mentioned, self.now)
        spans = flow_spans(self.segments) if self.segments is not None else {}
        self.stored = stored_bounds(catalog, spans) if spans else {}
        #: rows stored exactly so already: an earlier attempt's, whose commit may have applied
        self.done = already_stored(catalog, self.segments, spans) if replay and spans else None
        self.accepted: pa.Table | None = None
        self.urls: dict[tuple[str, str], str] = {}

    def _refusal(self, request: Registration) -> Exception | None:
        try:
            check_writable(
                request.flow_id,
                self.flows.get(request.flow_id),
                self.deletions.get(request.flow_id, ()),
                needs_container="segments cannot be registered",
            )
        except Exception as exc:
            return exc
        return None

    def judge(self) -> list[AddResult | Exception]:
        """Each request's outcome; the accepted segments are kept for :meth:`flush`."""
        failed: list[list[Failure]] = [list(r.parse_failures) for r in self.requests]
        accepted: list[list[int]] = [[] for _ in self.requests]
        segs = self.segments
        if segs is not None:
            segs = segs.combine_chunks()
            req = segs.column("request").to_numpy()
            index = segs.column("index").to_numpy()
            # labels and the flow's init_segments rule first: a row refused for them must neither block later
            # rows as an overlap nor register its object
            done = self.done if self.done is not None else np.zeros(segs.num_rows, dtype=bool)
            uses_init = flows_using_init(segs.column("flow_id"), self.flows)
            early = init_segments_refused(segs, uses_init, self.objects)
            early |= _check_labels(segs, req, index, self.requests)
            reasons = {p: why for p, why in early.items() if not done[p]}
            candidates = ~done
            candidates[list(reasons)] = False
            judged = _judge_in_order(segs, candidates, self.stored, self.objects, uses_init)
            ok, self.objects = judged.ok, judged.objects
            reasons |= judged.overlapping | judged.by_objects
            if len(self.requests) > 1:
                _refuse_batching(segs, req, reasons, self.objects)
            oids, texts = segs.column("object_id"), segs.column("timerange")
            for pos, why in sorted(reasons.items()):
                ok[pos] = False
                failed[req[pos]].append(Failure(int(index[pos]), oids[pos].as_py(), texts[pos].as_py(), why))
            for pos in np.flatnonzero(ok | done).tolist():
                accepted[req[pos]].append(int(index[pos]))
            if self.objects.segment_inits:
                segs = _with_inits(segs, self.objects.segment_inits)
            self.accepted = segs if ok.all() else segs.filter(pa.array(ok))
            self.urls = _wanted_urls(self.accepted, self.requests)
        return [
            why if why is not None else AddResult(accepted=acc, failed=sorted(f, key=lambda x: x.index))
            for why, acc, f in zip(self.refused, accepted, failed, strict=True)
        ]

    def flush(self) -> pa.Table | None:
        """Write what the batch accepted: one insert per table, one update of the flows touched (unless
        claimed, which set it already: then the claimed flows left unchanged get their value back). Returns
        the segment rows stored (None: none)."""
        rows = self.accepted
        touched = distinct_values(rows.column("flow_id")) if rows is not None and rows.num_rows else []
        if self.claimed:
            restore_flows(self.catalog, {f: v for f, v in self.claimed.items() if f not in set(touched)})
        if rows is None or not touched:
            return None
        now = self.now
        rows = rows.drop_columns(["index", "request"])
        rows = rows.set_column(
            rows.schema.get_field_index("created"), "created", pa.repeat(pa.scalar(now, _TS), rows.num_rows)
        )
        self.catalog.engine.insert("segments", rows)
        write_objects(self.catalog, self.objects)
        if self.urls:
            add_uncontrolled_instances(self.catalog, self.urls)
        if self.claimed is None:
            self.catalog.engine.update("flows", [isin("id", touched)], {"segments_updated": now})
        return rows


def _tagged(requests: Sequence[tuple[int, Registration]]) -> pa.Table:
    """The segments of ``requests`` as one table in arrival order, each row with its flow and its request's
    position in the batch (parsed rows of all requests become one table in one step)."""
    schema = SEGMENT_ROWS.append(pa.field("request", pa.int64()))
    rows: list[dict[str, Any]] = []
    tables: list[pa.Table] = []
    for k, r in requests:
        if isinstance(r.segments, pa.Table):
            if rows:
                tables.append(pa.Table.from_pylist(rows, schema=schema))
                rows = []
            present = set(r.segments.column_names)  # (a new list at each call of column_names: 30-50 µs)
            t = r.segments.select([c for c in SEGMENT_ROWS.names if c in present])
            n = t.num_rows
            t = t.append_column("request", pa.repeat(pa.scalar(k, pa.int64()), n))
            t = t.set_column(t.schema.get_field_index("flow_id"), "flow_id", pa.repeat(pa.scalar(r.flow_id), n))
            tables.append(_conform(t, schema))
        else:
            rows.extend(row | {"flow_id": r.flow_id, "request": k} for row in r.segments)
    if rows:
        tables.append(pa.Table.from_pylist(rows, schema=schema))
    return pa.concat_tables(tables) if len(tables) > 1 else tables[0]


def _with_inits(segs: pa.Table, inits: Mapping[int, str]) -> pa.Table:
    """``segs`` with ``init_object_id`` set at rows ``inits`` (re-uses taking their object's init object)."""
    column = segs.column("init_object_id").to_pylist()
    for pos, init_id in inits.items():
        column[pos] = init_id
    where = segs.schema.get_field_index("init_object_id")
    return segs.set_column(where, "init_object_id", pa.array(column, segs.schema.field(where).type))


def _conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """``table`` with ``schema``'s columns in its order and types (missing columns null)."""
    present = set(table.column_names)  # (a new list at each call of column_names: 30-50 µs)
    columns = [
        table.column(f.name).cast(f.type) if f.name in present else pa.nulls(table.num_rows, f.type) for f in schema
    ]
    return pa.Table.from_arrays(columns, schema=schema)


def _check_labels(
    segs: pa.Table, req: np.ndarray, index: np.ndarray, requests: Sequence[Registration]
) -> dict[int, str]:
    """Uncontrolled get_urls: a label must be unique in its segment and differ from backend labels."""
    reasons: dict[int, str] = {}
    for pos in range(segs.num_rows) if any(r.urls for r in requests) else ():
        request = requests[req[pos]]
        labels = [u.get("label") for u in request.urls.get(int(index[pos])) or []]
        if len(set(labels)) != len(labels):
            reasons[pos] = "get_urls labels must be unique"
        elif request.reserved_labels.intersection(labels):
            taken = sorted(request.reserved_labels.intersection(labels))[0]
            reasons[pos] = f"get_urls label {taken!r} is a storage backend's label"
    return reasons


def _refuse_batching(segs: pa.Table, req: np.ndarray, reasons: Mapping[int, str], objects: ObjectState) -> None:
    """Raise :class:`_JudgeAlone` when judging the batch's requests together could answer differently from
    judging them one after another (then they are): a refused row mentions an object, not registered before the
    batch, that other requests of the batch mention too. Alone, the rules a request meets first (the
    init_segments rule before the overlap check, :func:`init_segments_refused`) are decided on the object as the
    earlier requests left it, which a batch knows only in order. This is rare in live ingest, where each request
    brings new objects (an object registered before cannot change: fragmented MP4's init object, named by every
    segment of a live flow, never sends a batch this way).
    """
    if objects.repeated - objects.settled() and reasons:
        shared = _shared_objects(segs, req, but=objects.settled())
        if len(shared):
            named = [segs.column("object_id"), segs.column("init_object_id")]
            rows = pa.array(sorted(reasons), pa.int64())
            if any(pc.any(pc.is_in(c.take(rows), value_set=shared)).as_py() for c in named):
                raise _JudgeAlone("a refused row mentions an object other requests of the batch mention")


class _Judged(NamedTuple):
    """The overlap rule and the object rules applied to a batch's rows (:func:`_judge_in_order`)."""

    #: rows that passed the overlap rule (the object rules' refusals are in ``by_objects``)
    ok: np.ndarray
    overlapping: dict[int, str]
    by_objects: dict[int, str]
    #: the objects as the accepted rows leave them
    objects: ObjectState


def _judge_in_order(
    segs: pa.Table,
    candidates: np.ndarray,
    stored: Mapping[str, tuple[Any, Any]],
    objects: ObjectState,
    uses_init: np.ndarray | None,
) -> _Judged:
    """The overlap rule, then the object rules, on the rows ``candidates`` (in arrival order), answering as if
    each row were judged after those before it: only rows accepted count as "earlier in the request".

    The overlap rule runs first, over all rows at once, and so counts as earlier every row it lets through,
    among them rows the object rules then refuse (an object timerange, a re-use that does not fit, an init
    object that is a media object, ...). When a refused row could have blocked a later row (they share time on
    one flow), the rows before that later row were judged exactly, so the object rules' refusals among them
    stand: the batch is judged again without them, until no refused row could have blocked another. The norm
    (no object refusal sharing time with an overlap refusal) is judged once.
    """
    flows = segs.column("flow_id")
    starts, ends = segs.column("start_ns").to_numpy(), segs.column("end_ns").to_numpy()
    refused: dict[int, str] = {}  # refused by the object rules, whatever the rows after them do
    while True:
        ok = candidates.copy()
        ok[list(refused)] = False
        state = objects.anew()
        overlapping = check_overlaps(segs, ok, stored)
        by_objects = check_objects(state, flows, segs, ok, uses_init)
        blocked = _first_maybe_blocked(flows, starts, ends, overlapping, by_objects)
        if blocked is None:
            return _Judged(ok, overlapping, refused | by_objects, state)
        refused |= {p: why for p, why in by_objects.items() if p < blocked}


def _first_maybe_blocked(
    flows: pa.ChunkedArray,
    starts: np.ndarray,
    ends: np.ndarray,
    overlapping: Mapping[int, str],
    by_objects: Mapping[int, str],
) -> int | None:
    """The first row refused as an overlap that shares time with an earlier row of its flow the object rules
    refused (None: none does): its refusal may rest on a segment that is not stored."""
    if not overlapping or not by_objects:
        return None
    later = np.fromiter(sorted(overlapping), dtype=np.int64)
    first: int | None = None
    for p in sorted(by_objects):
        near = later[(later > p) & (starts[later] < ends[p]) & (ends[later] > starts[p])]
        for q in near.tolist():
            if (first is None or q < first) and flows[q] == flows[p]:
                first = q
                break
    return first


def _shared_objects(segs: pa.Table, req: np.ndarray, *, but: frozenset[str]) -> pa.Array:
    """The objects (media or init) that rows of more than one request of the batch mention, ``but`` those."""
    requests = pa.array(req, pa.int64())
    pairs = pa.concat_tables(
        [
            pa.table({"id": segs.column("object_id"), "request": requests}),
            pa.table({"id": segs.column("init_object_id"), "request": requests}),
        ]
    )
    counts = pairs.group_by("id").aggregate([("request", "count_distinct")])
    several = pc.greater(counts.column("request_count_distinct"), 1)
    ids = pc.drop_null(counts.column("id").filter(several)).combine_chunks()
    return ids.filter(pc.invert(pc.is_in(ids, value_set=pa.array(sorted(but), pa.string())))) if but else ids


def _wanted_urls(accepted: pa.Table, requests: Sequence[Registration]) -> dict[tuple[str, str], str]:
    """``{(object_id, label): url}`` of the accepted segments' uncontrolled get_urls."""
    wanted: dict[tuple[str, str], str] = {}
    if not any(r.urls for r in requests):
        return wanted
    cols = accepted.select(["request", "index", "object_id"]).to_pydict()
    for k, i, oid in zip(cols["request"], cols["index"], cols["object_id"], strict=True):
        for u in requests[k].urls.get(i) or []:
            wanted.setdefault((oid, u["label"]), u["url"])
    return wanted
