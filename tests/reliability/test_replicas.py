"""Several replicas on one shared VAST store: concurrent writers conflict, retry, and lose nothing.

Two catalogs ("replicas", each with its own VAST engine, group commit and write lock, as two server processes
would have) share ONE :class:`~tests.engines.vast.reference.ReferenceStore` behind the engine's ``store=`` seam:
snapshot isolation, first committer wins on updated rows, a real ``vastdb.errors.Conflict`` for the loser.
Nothing here goes through an in-process read cache (shared engines never cache).
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from tams_analytics.catalog import AddResult, Catalog, cached
from tams_analytics.catalog.conflicts import RetryPolicy
from tams_analytics.exceptions import TransientStoreError
from tams_analytics.predicates import Term
from tests.reliability.conftest import report

pytest.importorskip("vastdb", reason="the VAST engine needs vastdb: VAST's dependency set (TAMS_DEPS=vast)")

import itertools

from tams_analytics.engines.vast import Engine
from tests.engines.vast.reference import REFERENCE_URL, ReferenceStore

WRITERS = 16
REPLICAS = 2
SEGMENTS_PER_WRITER = 20
FLOWS = 3
#: segments start on a 0.5 s grid over this many seconds and last 0.5, 1 or 2 s: they collide and abut often
SPAN_S = 100


def replica(store: ReferenceStore) -> Catalog:
    """One replica: a catalog on its own VAST engine over the shared store."""
    cat = Catalog(Engine(REFERENCE_URL, store=store))
    assert not cat.caches_reads and cached(cat.engine) is cat.engine, "a shared engine must never cache reads"
    return cat


@pytest.fixture
def store() -> ReferenceStore:
    return ReferenceStore()


@pytest.fixture
def replicas(store: ReferenceStore) -> Iterator[list[Catalog]]:
    cats = [replica(store) for _ in range(REPLICAS)]
    yield cats
    for cat in cats:
        cat.close()


def new_flow(cat: Catalog) -> str:
    fid = str(uuid.uuid4())
    cat.put_flow(
        {
            "id": fid,
            "source_id": str(uuid.uuid4()),
            "format": "urn:x-nmos:format:video",
            "codec": "video/h264",
            "container": "video/mp2t",
        }
    )
    return fid


def stored_segments(cat: Catalog, flow_id: str) -> list[tuple[int, int, str]]:
    t = cat.rows("segments", [Term("flow_id", "==", flow_id)], columns=["start_ns", "end_ns", "object_id"])
    return sorted(zip(*(t.column(c).to_pylist() for c in ("start_ns", "end_ns", "object_id")), strict=True))


@dataclass
class Outcomes:
    accepted: dict[str, tuple[str, int, int]] = field(default_factory=dict)
    refused: dict[str, tuple[str, int, int, str]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def writer(cat: Catalog, flows: list[str], k: int, out: Outcomes, start: threading.Barrier) -> None:
    rng = random.Random(k)
    start.wait()
    for i in range(SEGMENTS_PER_WRITER):
        fid = rng.choice(flows)
        lo = rng.randrange(SPAN_S * 2) * 500_000_000
        hi = lo + rng.choice((500_000_000, 1_000_000_000, 2_000_000_000))
        oid = f"w{k}-{i}"
        seg = {"object_id": oid, "timerange": f"[{lo // 10**9}:{lo % 10**9}_{hi // 10**9}:{hi % 10**9})"}
        began = time.perf_counter()
        try:
            result: AddResult = cat.add_segments(fid, [seg])
        except Exception as exc:  # a conflict that escaped, a 503 after the retries: all failures of this test
            with out.lock:
                out.errors.append(f"{type(exc).__name__}: {exc}")
            continue
        with out.lock:
            out.latencies.append(time.perf_counter() - began)
            if result.accepted == [0]:
                out.accepted[oid] = (fid, lo, hi)
            else:
                out.refused[oid] = (fid, lo, hi, result.failed[0].reason)


def test_sixteen_writers_on_two_replicas_store_no_overlap_and_lose_nothing(
    store: ReferenceStore, replicas: list[Catalog]
) -> None:
    flows = [new_flow(replicas[0]) for _ in range(FLOWS)]
    out = Outcomes()
    barrier = threading.Barrier(WRITERS)
    threads = [
        threading.Thread(target=writer, args=(replicas[k % REPLICAS], flows, k, out, barrier)) for k in range(WRITERS)
    ]
    began = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    elapsed = time.perf_counter() - began
    assert not any(t.is_alive() for t in threads), "a writer hung"

    assert out.errors == [], f"{len(out.errors)} registrations failed: {out.errors[:3]}"
    assert len(out.accepted) + len(out.refused) == WRITERS * SEGMENTS_PER_WRITER
    # a third view of the store, opened afterwards: what is stored, flow by flow
    check = replica(store)
    stored: dict[str, tuple[str, int, int]] = {}
    for fid in flows:
        segs = stored_segments(check, fid)
        overlaps = [(a, b) for a, b in itertools.pairwise(segs) if b[0] < a[1]]
        assert overlaps == [], f"flow {fid}: overlapping segments stored: {overlaps[:3]}"
        stored.update({oid: (fid, lo, hi) for lo, hi, oid in segs})
    assert stored == out.accepted, "acknowledged segments lost, or refused ones stored"
    for oid, (fid, lo, hi, reason) in out.refused.items():  # every refusal is a real overlap
        assert "overlaps" in reason, reason
        assert any(s_fid == fid and s_lo < hi and lo < s_hi for s_fid, s_lo, s_hi in stored.values()), oid
    check.close()

    retries = sum(c.retry_stats.conflicts for c in replicas)
    assert store.conflicts > 0, "the replicas never conflicted: this test proves nothing"
    refused_claims = sum(c.retry_stats.claims_refused for c in replicas)
    assert retries + refused_claims == store.conflicts, "every conflict the store raised was retried"
    assert sum(c.retry_stats.given_up for c in replicas) == 0
    lat = sorted(out.latencies)
    p50, p99 = lat[len(lat) // 2], lat[min(len(lat) - 1, int(len(lat) * 0.99))]
    report(
        "replicas on one VAST store",
        f"{WRITERS} writers on {REPLICAS} replicas, {len(lat)} single-segment registrations to {FLOWS} flows in "
        f"{elapsed:.1f}s: {len(out.accepted)} stored, {len(out.refused)} refused as overlaps, 0 lost; "
        f"{store.commits} commits, {retries} conflict retries (at most "
        f"{max(c.retry_stats.most_attempts for c in replicas)} attempts for one batch, "
        f"{sum(c.retry_stats.claims for c in replicas)} claims alone); latency p50 {p50 * 1000:.0f} ms, "
        f"p99 {p99 * 1000:.0f} ms",
    )


def test_a_retry_after_an_uncertain_commit_takes_its_own_segments_as_registered(
    store: ReferenceStore, replicas: list[Catalog]
) -> None:
    cat = replicas[0]
    fid = new_flow(cat)
    cat.add_segments(fid, [{"object_id": "before", "timerange": "[0:0_1:0)"}])
    store.lose_commit_answers = 1  # the next commit is applied, and its answer lost
    result = cat.add_segments(
        fid,
        [
            {"object_id": "a", "timerange": "[1:0_2:0)"},
            {"object_id": "b", "timerange": "[2:0_3:0)"},
            {"object_id": "clash", "timerange": "[0:500000000_1:0)"},  # overlaps a segment stored before
        ],
    )
    assert store.lost_answers == 1
    assert cat.retry_stats.uncertain == 1
    assert result.accepted == [0, 1], result
    assert [f.index for f in result.failed] == [2] and "overlaps" in result.failed[0].reason
    assert [s[2] for s in stored_segments(cat, fid)] == ["before", "a", "b"], "stored once each"
    # and a retry after an uncertain commit that did NOT store them stores them (nothing is taken as done
    # that is not there): the other replica registers, its answer lost, then the store refuses nothing
    other = replicas[1]
    store.lose_commit_answers = 1
    assert other.add_segments(fid, [{"object_id": "c", "timerange": "[3:0_4:0)"}]).accepted == [0]
    assert [s[2] for s in stored_segments(cat, fid)] == ["before", "a", "b", "c"]


def test_conflicting_flow_updates_on_two_replicas_are_retried(store: ReferenceStore, replicas: list[Catalog]) -> None:
    """Property writes race too (both update the flow's row): every one succeeds, after retries."""
    fid = new_flow(replicas[0])
    errors: list[str] = []

    def label(cat: Catalog, k: int) -> None:
        for i in range(10):
            try:
                cat.set_flow_property(fid, "label", f"{k}-{i}")
            except Exception as exc:
                errors.append(f"{type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=label, args=(replicas[k % REPLICAS], k)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == []
    assert store.conflicts > 0 and sum(c.retry_stats.conflicts for c in replicas) == store.conflicts


def test_a_write_that_keeps_conflicting_gives_up_with_a_transient_error(
    store: ReferenceStore, replicas: list[Catalog]
) -> None:
    """Bounded: after ``retry_policy.attempts`` refusals the caller gets a TransientStoreError (the server's
    503), and nothing of the write is stored."""
    cat = replicas[0]
    fid = new_flow(cat)
    cat.retry_policy = RetryPolicy(attempts=3, base_pause_s=0.001, max_pause_s=0.001)
    store.refuse_commits = 3  # as if another replica won each time
    with pytest.raises(TransientStoreError, match="3 attempts"):
        cat.add_segments(fid, [{"object_id": "x", "timerange": "[0:0_1:0)"}])
    assert cat.retry_stats.conflicts == 3 and cat.retry_stats.given_up == 1
    assert stored_segments(cat, fid) == []
    assert cat.add_segments(fid, [{"object_id": "x", "timerange": "[0:0_1:0)"}]).accepted == [0]


def test_a_write_refused_past_its_deadline_gives_up_then_and_not_before(
    store: ReferenceStore, replicas: list[Catalog]
) -> None:
    """The retry budget is a time: a write the store keeps refusing answers once ``deadline_s`` has passed (and
    it made ``min_attempts``), with attempts to spare; one refused for less than that is stored."""
    cat = replicas[0]
    fid = new_flow(cat)
    cat.retry_policy = RetryPolicy(attempts=10_000, min_attempts=2, base_pause_s=0.01, max_pause_s=0.02, deadline_s=1.0)
    store.refuse_commits = 10_000
    began = time.monotonic()
    with pytest.raises(TransientStoreError, match=r"\d+ attempts in \d+\.\d s"):
        cat.add_segments(fid, [{"object_id": "x", "timerange": "[0:0_1:0)"}])
    waited = time.monotonic() - began
    assert 1.0 <= waited < 10, waited
    assert cat.retry_stats.given_up == 1 and 2 < cat.retry_stats.conflicts < 10_000
    assert stored_segments(cat, fid) == []
    cat.retry_policy = RetryPolicy()  # the default's 12 tries, whatever the time: five refusals, then stored
    store.refuse_commits = 5
    assert cat.add_segments(fid, [{"object_id": "x", "timerange": "[0:0_1:0)"}]).accepted == [0]
    assert cat.retry_stats.given_up == 1


def test_a_write_whose_attempts_are_slow_still_makes_its_minimum_attempts(
    store: ReferenceStore, replicas: list[Catalog]
) -> None:
    """A deadline shorter than the attempts take (a large batch's) still leaves a write ``min_attempts`` tries:
    the deadline only ends retries a count would have made."""
    cat = replicas[0]
    fid = new_flow(cat)
    cat.retry_policy = RetryPolicy(attempts=100, min_attempts=4, base_pause_s=0.05, max_pause_s=0.05, deadline_s=0.001)
    store.refuse_commits = 3  # refused three times, past the deadline: the fourth try is stored
    assert cat.add_segments(fid, [{"object_id": "x", "timerange": "[0:0_1:0)"}]).accepted == [0]
    assert cat.retry_stats.conflicts == 3 and cat.retry_stats.given_up == 0
    store.refuse_commits = 100
    with pytest.raises(TransientStoreError, match="4 attempts"):
        cat.add_segments(fid, [{"object_id": "y", "timerange": "[1:0_2:0)"}])
    assert cat.retry_stats.conflicts == 7 and cat.retry_stats.given_up == 1
