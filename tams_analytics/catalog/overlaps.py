"""The overlap rule of segment registration: which new segments overlap a stored one or an earlier one of their
batch, and what a batch reads to know (the stored bounds near its segments, read once per group of flows)."""

from __future__ import annotations

import bisect
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from tams_analytics.predicates import Predicate, Term, isin
from tams_analytics.pyrows import SMALL
from tams_analytics.timerange import TimeRange

if TYPE_CHECKING:
    from tams_analytics.catalog import Catalog

__all__ = ["already_stored", "check_overlaps", "flow_spans", "rows_by_flow", "stored_bounds"]


def check_overlaps(segs: pa.Table, ok: np.ndarray, stored: Mapping[str, tuple[Any, Any]]) -> dict[int, str]:
    """Rows (among ``ok``, which is updated) that overlap a segment of their flow: a stored one or one an
    earlier request of the batch accepted (for the request, both are stored), else an earlier row of their
    own request. Refused rows never block others."""
    reasons: dict[int, str] = {}
    starts = segs.column("start_ns").to_numpy()
    ends = segs.column("end_ns").to_numpy()
    texts = segs.column("timerange")
    req = segs.column("request").to_numpy()
    by_flow = rows_by_flow(segs.column("flow_id")) if len(stored) > 1 else None
    for fid, (s_start, s_end) in stored.items():
        positions = np.arange(len(starts)) if by_flow is None else by_flow.get(fid, np.zeros(0, dtype=np.int64))
        # the rows of one request are contiguous, in arrival order
        for group in np.split(positions, np.flatnonzero(np.diff(req[positions])) + 1):
            if len(s_start):
                idx = np.searchsorted(s_start, ends[group], side="left")
                prev = np.clip(idx - 1, 0, None)
                clash = (idx > 0) & (s_end[prev] > starts[group])
                for j in np.flatnonzero(clash & ok[group]):
                    pos = int(group[j])
                    other = TimeRange.from_ns(int(s_start[prev[j]]), int(s_end[prev[j]]))
                    reasons[pos] = f"timerange overlaps the stored segment {other}"
                    ok[pos] = False
            reasons.update(overlaps_within(group[ok[group]], starts, ends, texts, ok))
            kept = group[ok[group]]
            if len(kept):  # what this request stores, the next ones see as stored
                s_start, s_end = merged(s_start, s_end, starts[kept], ends[kept])
    return reasons


def overlaps_within(
    cand: np.ndarray, starts: np.ndarray, ends: np.ndarray, texts: pa.ChunkedArray, ok: np.ndarray
) -> dict[int, str]:
    """Rows of one request (``cand``, in order) overlapping an earlier row of it; ``ok`` is updated."""
    reasons: dict[int, str] = {}
    order = cand[np.argsort(starts[cand], kind="stable")]
    if len(order) < 2 or not np.any(starts[order[1:]] < ends[order[:-1]]):
        return reasons  # the norm: abutting, in order
    taken: list[tuple[int, int, int]] = []  # (start, end, pos) of rows accepted so far, sorted
    for pos in cand.tolist():
        s, e = int(starts[pos]), int(ends[pos])
        k = bisect.bisect_left(taken, (e, -1, -1))
        if k > 0 and taken[k - 1][1] > s:
            reasons[pos] = f"timerange overlaps segment {texts[taken[k - 1][2]].as_py()} earlier in the request"
            ok[pos] = False
            continue
        bisect.insort(taken, (s, e, pos))
    return reasons


def merged(s_start: Any, s_end: Any, starts: Any, ends: Any) -> tuple[Any, Any]:
    """Bounds sorted by start, with ``starts``/``ends`` added."""
    all_start, all_end = np.concatenate([s_start, starts]), np.concatenate([s_end, ends])
    order = np.argsort(all_start, kind="stable")
    return all_start[order], all_end[order]


# -- what a batch reads -----------------------------------------------------------------------------------
def flow_spans(segments: pa.Table) -> dict[str, tuple[int, int]]:
    """Per flow, the hull of the storage bounds its segments in the batch could overlap."""
    start, end = segments.column("start_ns"), segments.column("end_ns")
    if not start.null_count and not end.null_count:  # the norm: numpy, no Arrow grouping (Acero runs a thread pool)
        starts, ends = start.to_numpy(), end.to_numpy()
        by_flow = rows_by_flow(segments.column("flow_id"))
        return {f: (int(starts[p].min()), int(ends[p].max())) for f, p in by_flow.items() if len(p)}
    hull = segments.group_by("flow_id").aggregate([("start_ns", "min"), ("end_ns", "max")]).to_pydict()
    return {
        f: (lo, hi)
        for f, lo, hi in zip(hull["flow_id"], hull["start_ns_min"], hull["end_ns_max"], strict=True)
        if lo is not None and hi is not None
    }


def clusters(spans: Mapping[str, tuple[int, int]]) -> list[tuple[list[str], int, int]]:
    """Flows whose spans lie close together in time, with the hull of each group: one read per group.

    Live recorders write their flows at about the same time (one group); a flow back-filled far from the
    others gets a read of its own, so that no read covers hours no flow of it asked for.
    """
    out: list[tuple[list[str], int, int]] = []
    for fid, (lo, hi) in sorted(spans.items(), key=lambda kv: kv[1]):
        if out:
            flows, c_lo, c_hi = out[-1]
            if lo <= c_hi + max(hi - lo, c_hi - c_lo):
                flows.append(fid)
                out[-1] = (flows, c_lo, max(c_hi, hi))
                continue
        out.append(([fid], lo, hi))
    return out


def already_stored(catalog: Catalog, segments: pa.Table, spans: Mapping[str, tuple[int, int]]) -> np.ndarray:
    """Which rows of ``segments`` are stored exactly so (flow, timerange, object); each stored segment
    answers for one row only (a repeat later in the batch is judged as usual)."""
    stored: set[tuple[str, str, str]] = set()
    for flows, lo, hi in clusters(spans):
        where: list[Predicate] = [isin("flow_id", flows), Term("start_ns", "<", hi), Term("end_ns", ">", lo)]
        t = catalog.rows("segments", where, columns=["flow_id", "timerange", "object_id"]).to_pydict()
        stored.update(zip(t["flow_id"], t["timerange"], t["object_id"], strict=True))
    mine = segments.select(["flow_id", "timerange", "object_id"]).to_pydict()
    done = np.zeros(segments.num_rows, dtype=bool)
    for pos, key in enumerate(zip(mine["flow_id"], mine["timerange"], mine["object_id"], strict=True)):
        if key in stored:
            stored.discard(key)
            done[pos] = True
    return done


def stored_bounds(catalog: Catalog, spans: Mapping[str, tuple[int, int]]) -> dict[str, tuple[Any, Any]]:
    """Per flow, the ``(starts, ends)`` of its stored segments that overlap its span, sorted by start: from the
    engine's memory where it holds the flow (:meth:`~tams_analytics.engines.base.Engine.held_bounds`), else read
    once per group of flows: just the span (unordered, so that a read cache answers it without loading the flows'
    timelines on the writer's thread; sorted here)."""
    out: dict[str, tuple[Any, Any]] = dict(catalog.engine.held_bounds(spans))
    rest = {f: span for f, span in spans.items() if f not in out}
    for flows, lo, hi in clusters(rest):
        where: list[Predicate] = [isin("flow_id", flows), Term("start_ns", "<", hi), Term("end_ns", ">", lo)]
        t = catalog.rows("segments", where, columns=["flow_id", "start_ns", "end_ns"])
        if t.num_rows > 1:
            t = t.sort_by("start_ns")
        starts, ends = t.column("start_ns").to_numpy(), t.column("end_ns").to_numpy()
        positions = rows_by_flow(t.column("flow_id"))
        empty = np.zeros(0, dtype=np.int64)
        for fid in flows:
            mine = positions.get(fid)
            out[fid] = (starts[mine], ends[mine]) if mine is not None else (empty, empty)
    return out


def rows_by_flow(flow_ids: pa.ChunkedArray | pa.Array) -> dict[str, np.ndarray]:
    """The positions of each flow's rows, in order: one pass (a filter per flow would be an Arrow call each, and
    every such call on the writer thread hands the GIL to the event loop and waits to get it back)."""
    if len(flow_ids) <= SMALL:
        positions: dict[str, list[int]] = {}
        for at, flow_id in enumerate(flow_ids.to_pylist()):
            positions.setdefault(flow_id, []).append(at)
        return {f: np.asarray(p, dtype=np.int64) for f, p in positions.items()}
    encoded = pc.dictionary_encode(flow_ids)
    if isinstance(encoded, pa.ChunkedArray):
        encoded = encoded.combine_chunks()
    codes = np.asarray(encoded.indices.to_numpy(zero_copy_only=False), dtype=np.int64)
    order = np.argsort(codes, kind="stable")
    bounds = np.searchsorted(codes[order], np.arange(len(encoded.dictionary) + 1))
    names = encoded.dictionary.to_pylist()
    return {names[k]: order[bounds[k] : bounds[k + 1]] for k in range(len(names))}
