"""The group commit's batching: what one batch holds, with and without a linger (the apply function records
the batches it is given; the queue, the writer thread and the futures are the real ones)."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

import pytest

from tams_analytics.catalog.group_commit import GroupCommit


class Recorded:
    """An ``apply`` that answers each request with itself and records the batches it was given."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []

    def __call__(self, requests: Sequence[int]) -> list[int]:
        self.batches.append(list(requests))
        return list(requests)


def _at_once(group: GroupCommit[int, int], requests: Sequence[int], gap_s: float) -> float:
    """Submit ``requests`` from threads, ``gap_s`` apart; the seconds until every answer was back."""
    answers: dict[int, int] = {}
    started = time.monotonic()

    def one(k: int) -> None:
        answers[k] = group.submit(k)

    threads = []
    for k in requests:
        threads.append(threading.Thread(target=one, args=(k,)))
        threads[-1].start()
        time.sleep(gap_s)
    for t in threads:
        t.join(10)
    assert answers == {k: k for k in requests}
    return time.monotonic() - started


def test_under_load_a_batch_holds_the_requests_that_arrive_within_the_linger() -> None:
    recorded = Recorded()
    group: GroupCommit[int, int] = GroupCommit(recorded, linger_s=0.5)
    assert _at_once(group, [0], gap_s=0) < 0.5, "a first request is applied at once"
    took = _at_once(group, [1, 2, 3], gap_s=0.05)  # the next arrives right after: the writer is under load
    group.close()
    assert recorded.batches == [[0], [1, 2, 3]]
    assert took >= 0.5, "the first request waited out the linger"


def test_after_a_quiet_spell_a_request_is_applied_at_once() -> None:
    """A request that arrives longer than the linger after the last batch was applied waits for no other: waiting
    would only add the linger to its answer."""
    recorded = Recorded()
    group: GroupCommit[int, int] = GroupCommit(recorded, linger_s=0.3)
    _at_once(group, [1], gap_s=0)
    time.sleep(0.6)
    _at_once(group, [2, 3], gap_s=0.1)
    group.close()
    assert recorded.batches == [[1], [2], [3]], "the request after the quiet spell did not wait for the next"


def test_without_a_linger_the_first_request_is_applied_alone() -> None:
    recorded = Recorded()
    group: GroupCommit[int, int] = GroupCommit(recorded)
    _at_once(group, [1, 2, 3], gap_s=0.05)
    group.close()
    assert recorded.batches[0] == [1]
    assert sorted(k for b in recorded.batches for k in b) == [1, 2, 3]


def test_a_full_batch_or_a_close_ends_the_linger() -> None:
    recorded = Recorded()
    group: GroupCommit[int, int] = GroupCommit(recorded, linger_s=30, max_batch=2)
    _at_once(group, [0], gap_s=0)  # (then the writer is under load)
    assert _at_once(group, [1, 2], gap_s=0.01) < 10, "a full batch does not wait out the linger"
    pending = group.future(3)
    started = time.monotonic()
    group.close()
    assert pending.result(timeout=10) == 3 and time.monotonic() - started < 10, "close applies what waits"
    assert recorded.batches == [[0], [1, 2], [3]]


def test_what_a_full_batch_leaves_queued_is_applied_next_without_a_linger() -> None:
    """A backlog (what queued while a batch was applied) is applied in batches of at most ``max_batch``; the
    requests a full batch left behind have waited already, so the next batch takes them at once rather than waiting
    out the linger for more."""
    go = threading.Event()
    recorded = Recorded()

    def held(requests: Sequence[int]) -> list[int]:
        if 1 in requests:
            go.wait(10)
        return recorded(requests)

    group: GroupCommit[int, int] = GroupCommit(held, linger_s=30, max_batch=2)
    _at_once(group, [0], gap_s=0)  # (then the writer is under load)
    first = [group.future(k) for k in (1, 2)]  # a full batch: applied at once, and held
    deadline = time.monotonic() + 10
    while not first[0].running() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert first[0].running(), "the first full batch is being applied"
    backlog = [group.future(k) for k in (3, 4, 5)]  # queued behind it
    started = time.monotonic()
    go.set()
    assert [f.result(timeout=10) for f in first + backlog] == [1, 2, 3, 4, 5]
    took = time.monotonic() - started
    group.close()
    assert recorded.batches == [[0], [1, 2], [3, 4], [5]], "the backlog went in batches of at most max_batch"
    assert took < 10, f"the request a full batch left queued waited {took:.1f} s: it waited out the linger"


def test_a_negative_linger_is_refused() -> None:
    with pytest.raises(ValueError, match="linger_s"):
        GroupCommit(Recorded(), linger_s=-1)
