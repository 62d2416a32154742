"""Writes that race with other processes: retried, in a new transaction, when the store says so.

Several server processes may write one shared store (VAST). Each write rule runs in one transaction
that first writes the rows it depends on (a registration updates its flows' rows first: the guard), so of
two transactions that could break a rule together, the store lets one commit and refuses the other with
:class:`~tams_analytics.exceptions.WriteConflict`. :func:`run_transaction` runs the refused one again
from the start, in a new transaction that sees what the first committed, after a jittered pause that
grows with each attempt, at least :attr:`RetryPolicy.min_attempts` times and then until
:attr:`RetryPolicy.deadline_s` has passed since the first attempt began (at most :attr:`RetryPolicy.attempts`
times, a bound on the work); then it raises the last error (the server answers 503). The budget is a time, not
only a count: how many attempts a write needs under contention grows with the machine's load (each refused
attempt wins the next race about one time in two, measured with 16 writers on two replicas: at most 10 attempts
in 3,200 writes on two busy cores, 13 with twice that load), while what a client can wait for does not. A
commit whose outcome is unknown
(:class:`~tams_analytics.exceptions.CommitUncertain`) is retried the same way, and the next attempts are
told so (:attr:`Attempt.after_uncertain_commit`): a write that finds its own rows already stored must
take them as its own, not as a clash.

First committer wins is not fair: a writer whose transactions run back to back (a busy replica's group
commit) can starve another, whose every attempt begins while one of the busy writer's is under way and ends
after it commits. So a write refused :attr:`RetryPolicy.claim_after` times in a row first commits its claim
on its rows alone (a transaction that only writes them, short enough to win): every transaction holding
them that began before it is refused at its commit, and the writer that waited longest goes next.

Engines that are their store's sole writer (DuckDB) never raise either error: there, this costs a
function call.
"""

from __future__ import annotations

import functools
import logging
import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Concatenate, ParamSpec, TypeVar

from tams_analytics.exceptions import CommitUncertain, TransientStoreError, WriteConflict

if TYPE_CHECKING:
    from tams_analytics.catalog import Catalog

__all__ = ["Attempt", "Attempts", "RetryPolicy", "RetryStats", "run_transaction", "transactional"]

logger = logging.getLogger(__name__)

T = TypeVar("T")
P = ParamSpec("P")


@dataclass(frozen=True)
class RetryPolicy:
    """How long, and after what pauses, a refused transaction is tried again.

    The pause before attempt ``k + 1`` is uniformly random in ``[0, min(max_pause_s, base_pause_s * 2**(k-1))]``
    ("full jitter"), so that writers refused together do not meet again. A write gives up after ``attempts``
    attempts, or once ``deadline_s`` has passed since its first attempt began and it made ``min_attempts`` (so
    that a write whose every attempt is slow, a large batch, still gets its tries).
    """

    attempts: int = 64
    min_attempts: int = 12
    base_pause_s: float = 0.005
    max_pause_s: float = 0.25
    deadline_s: float = 10.0
    #: after this many conflicts in a row, claim the rows in a transaction of their own before trying again
    claim_after: int = 3

    def pause(self, attempt: int, rng: random.Random | None = None) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        ceiling = min(self.max_pause_s, self.base_pause_s * 2 ** (attempt - 1))
        return (rng or random).uniform(0.0, ceiling)


class RetryStats:
    """What the retries of one catalog did (thread-safe counters; the server exports them as metrics)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        #: transactions run again after a conflict, after an uncertain commit; writes that gave up
        self.conflicts = 0
        self.uncertain = 0
        self.given_up = 0
        #: claims committed alone after conflicts in a row (see :attr:`RetryPolicy.claim_after`)
        self.claims = 0
        self.claims_refused = 0
        #: the most attempts one write needed so far
        self.most_attempts = 0

    def count(self, exc: TransientStoreError) -> None:
        with self._lock:
            if isinstance(exc, CommitUncertain):
                self.uncertain += 1
            else:
                self.conflicts += 1

    def succeeded(self, attempts: int) -> None:
        if attempts > self.most_attempts:
            with self._lock:
                self.most_attempts = max(self.most_attempts, attempts)

    def claimed(self, committed: bool) -> None:
        with self._lock:
            if committed:
                self.claims += 1
            else:
                self.claims_refused += 1

    def gave_up(self) -> None:
        with self._lock:
            self.given_up += 1


class Attempt:
    """One attempt of a retried write (see :class:`Attempts`): a context manager holding its transaction,
    and what the attempts before it tell it."""

    def __init__(
        self, number: int = 1, after_uncertain_commit: bool = False, *, catalog: Catalog | None = None
    ) -> None:
        self.number = number
        #: an earlier attempt's commit failed without saying whether it applied: its writes may be stored
        self.after_uncertain_commit = after_uncertain_commit
        #: the transient refusal that ended this attempt (None: it committed, or has not ended)
        self.refused: TransientStoreError | None = None
        self._catalog = catalog
        self._transaction: AbstractContextManager[None] | None = None
        self._joins = False

    def __repr__(self) -> str:
        return f"Attempt({self.number}, after_uncertain_commit={self.after_uncertain_commit})"

    def __enter__(self) -> Attempt:
        if self._catalog is None:
            raise RuntimeError("an Attempt made without a catalog holds no transaction")
        self._joins = self._catalog.engine.in_transaction()
        self._transaction = self._catalog.transaction()
        self._transaction.__enter__()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> bool:
        assert self._transaction is not None
        if self._joins:  # an enclosing transaction decides (and retries, if it can)
            return bool(self._transaction.__exit__(kind, exc, tb))
        try:
            self._transaction.__exit__(kind, exc, tb)
        except TransientStoreError as refused:  # the commit was refused
            self.refused = refused
            return True
        if isinstance(exc, TransientStoreError):
            self.refused = exc  # refused before the commit: rolled back, try again
            return True
        return False


class Attempts:
    """The attempts of one write, for a ``for`` loop (as tenacity's ``Retrying``): each attempt is a
    context manager holding a transaction of ``catalog``; a refusal the store calls transient ends the
    attempt (rolled back, counted, a jittered pause) and the loop goes on; one that commits ends the loop.
    After the last refused attempt the loop raises. Calls go down: the caller's code runs in the caller's
    frame, between ``with attempt:`` and its end, so it can compose its own writes into the transaction::

        for attempt in Attempts(catalog, what="segment registration", claim=claim):
            with attempt:
                result = register(catalog, requests, attempt)
                write_outbox(result)

    ``what`` names the write in logs and in the final error; ``claim`` writes the rows the write depends
    on (committed alone after repeated conflicts). Inside an enclosing transaction there is one attempt,
    which joins it: only the outermost transaction can be retried (the enclosing one decides).
    """

    def __init__(self, catalog: Catalog, *, what: str, claim: Callable[[], object] | None = None) -> None:
        self.catalog = catalog
        self.what = what
        self.claim = claim

    def __iter__(self) -> Iterator[Attempt]:
        catalog, what = self.catalog, self.what
        if catalog.engine.in_transaction():
            yield Attempt(catalog=catalog)
            return
        policy: RetryPolicy = catalog.retry_policy
        began = time.monotonic()
        uncertain = False
        in_a_row = 0
        exc: TransientStoreError | None = None
        for number in range(1, policy.attempts + 1):
            if self.claim is not None and in_a_row >= policy.claim_after:
                _claim_alone(catalog, self.claim, what)
            attempt = Attempt(number, uncertain, catalog=catalog)
            yield attempt
            if attempt.refused is None:
                catalog.retry_stats.succeeded(number)
                return
            exc = attempt.refused
            uncertain = uncertain or isinstance(exc, CommitUncertain)
            in_a_row = in_a_row + 1 if isinstance(exc, WriteConflict) else 0
            catalog.retry_stats.count(exc)
            logger.debug("%s: attempt %d of %d refused: %s", what, number, policy.attempts, exc)
            out_of_time = time.monotonic() - began >= policy.deadline_s and number >= policy.min_attempts
            if number == policy.attempts or out_of_time:
                break
            time.sleep(policy.pause(number))
        catalog.retry_stats.gave_up()
        assert exc is not None
        waited = time.monotonic() - began
        logger.warning("%s: gave up after %d attempts in %.1f s: %s", what, number, waited, exc)
        kind = CommitUncertain if uncertain else WriteConflict
        raise kind(
            f"{what}: the store stayed busy with concurrent writes ({number} attempts in {waited:.1f} s); retry"
        ) from exc


def run_transaction(
    catalog: Catalog, work: Callable[[Attempt], T], *, what: str, claim: Callable[[], object] | None = None
) -> T:
    """``work(attempt)`` in a transaction of ``catalog``, tried again while the store refuses it as
    transient (:class:`Attempts`, which says what ``what`` and ``claim`` are)."""
    for attempt in Attempts(catalog, what=what, claim=claim):
        with attempt:
            result = work(attempt)
    return result


def _claim_alone(catalog: Catalog, claim: Callable[[], object], what: str) -> None:
    """Commit ``claim`` in a transaction of its own; if even that is refused, the other writer has just
    committed, which is as good."""
    try:
        with catalog.transaction():
            claim()
    except TransientStoreError as exc:
        catalog.retry_stats.claimed(False)
        logger.debug("%s: claim refused: %s", what, exc)
    else:
        catalog.retry_stats.claimed(True)


def transactional(what: str) -> Callable[[Callable[Concatenate[Catalog, P], T]], Callable[Concatenate[Catalog, P], T]]:
    """Decorate a write rule ``f(catalog, ...)`` so that it runs in :func:`run_transaction`."""

    def decorate(f: Callable[Concatenate[Catalog, P], T]) -> Callable[Concatenate[Catalog, P], T]:
        @functools.wraps(f)
        def wrapper(catalog: Catalog, /, *args: P.args, **kwargs: P.kwargs) -> T:
            return run_transaction(catalog, lambda _attempt: f(catalog, *args, **kwargs), what=what)

        return wrapper

    return decorate
