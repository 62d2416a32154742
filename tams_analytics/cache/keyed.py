"""A bounded map of entries by key that stays exact while the store beneath it changes.

The rules (see :mod:`tams_analytics.cache` for why they make the cache exact):

* a key with a write in flight is *unsettled*: nothing loaded for it is kept until the write has ended;
* every change to a key gets a sequence number; a value loaded from the store is kept only when no
  change to its key (or to every key) began since the load did;
* when a write commits, each entry it touched is updated from its old value or dropped; a rollback
  keeps the entries (the store is as it was).

Eviction is scan-resistant (a segmented LRU): a new entry is *on probation* until it is read again, and
probation entries go first. A reader streaming a long flow once therefore pushes out only other
once-read entries, never what the live edge's readers keep asking for.

An entry is its value alone, its weight kept apart in a dict of ints (and not kept at all when every weight is
1): a ``(value, weight)`` pair would be a tuple the garbage collector follows until a collection looks at it,
one for each entry kept, and live ingest keeps a new entry for each segment (its new object's instances, none yet).
"""

from __future__ import annotations

import threading
from collections import Counter, OrderedDict
from collections.abc import Callable, Hashable, Iterable
from typing import Generic, TypeVar, cast

from tams_analytics.engines.base import Change
from tams_analytics.predicates import pinned
from tams_analytics.pyrows import distinct_values

V = TypeVar("V")

__all__ = ["EVERYTHING", "Everything", "KeyedCache", "changed_keys"]


class Everything:
    """The key set of a change that names no key: it touches every entry."""

    def __repr__(self) -> str:
        return "EVERYTHING"


EVERYTHING = Everything()


def changed_keys(change: Change, column: str) -> frozenset[Hashable] | Everything:
    """The values of ``column`` a change can touch: those of the inserted rows, or those its
    predicates pin down (``column == v`` or ``column in (...)`` among the AND-ed terms)."""
    if change.rows is not None:
        return frozenset(distinct_values(change.rows.column(column)))
    values = pinned(change.where, column)
    return EVERYTHING if values is None else frozenset(values)


#: what an absent entry reads as (a kept value may be anything)
_ABSENT = object()


class KeyedCache(Generic[V]):
    """Entries by key, bounded by total weight, kept exact by the rules in the module docstring.

    ``weigh`` gives an entry's weight (1 each without it); ``protected`` is the share of the capacity entries read
    more than once may hold. Thread-safe.
    """

    def __init__(self, capacity: int, weigh: Callable[[V], int] | None = None, protected: float = 0.8) -> None:
        self.capacity = capacity
        self._weigh = weigh
        self._protected_capacity = int(capacity * protected)
        self._lock = threading.Lock()
        #: entries read once (evicted first) and entries read again, each least recently used first
        self._probation: OrderedDict[Hashable, V] = OrderedDict()
        self._protected: OrderedDict[Hashable, V] = OrderedDict()
        #: each entry's weight, when ``weigh`` is given (see the module docstring)
        self._weights: dict[Hashable, int] | None = None if weigh is None else {}
        self._weight = 0
        self._protected_weight = 0
        self._seq = 0
        #: key -> sequence number of the last change to it that began (pruned, see _prune)
        self._changed: dict[Hashable, int] = {}
        self._all_changed = 0
        #: keys with a write in flight (a counter: nested changes), and writes in flight on everything
        self._unsettled: Counter[Hashable] = Counter()
        self._unsettled_all = 0
        #: keys put by :meth:`fill` and not read since (on probation)
        self._unread: set[Hashable] = set()
        #: sequence numbers at which loads in flight began
        self._loading: Counter[int] = Counter()
        self.hits = 0
        self.misses = 0

    # -- reads -------------------------------------------------------------------------------------------
    def get(self, key: Hashable) -> tuple[bool, V | None]:
        """``(True, value)`` for a cached key, else ``(False, None)``."""
        with self._lock:
            value = self._touch(key)
            if value is _ABSENT:
                self.misses += 1
                return False, None
            self.hits += 1
            return True, cast(V, value)

    def get_many(self, keys: Iterable[Hashable]) -> dict[Hashable, V]:
        """The cached ones of ``keys``."""
        out: dict[Hashable, V] = {}
        with self._lock:
            for key in keys:
                value = self._touch(key)
                if value is _ABSENT:
                    self.misses += 1
                else:
                    self.hits += 1
                    out[key] = cast(V, value)
        return out

    def peek(self, key: Hashable) -> tuple[bool, V | None]:
        """:meth:`get` without counting as a use (no promotion, no statistics)."""
        with self._lock:
            value = self._entry(key)
        return (False, None) if value is _ABSENT else (True, cast(V, value))

    def peek_many(self, keys: Iterable[Hashable]) -> dict[Hashable, V]:
        """The kept ones of ``keys``, as :meth:`peek` (not counted as a use; one lock for all)."""
        out: dict[Hashable, V] = {}
        with self._lock:
            for key in keys:
                value = self._entry(key)
                if value is not _ABSENT:
                    out[key] = cast(V, value)
        return out

    def holds(self, keys: Iterable[Hashable]) -> bool:
        """Whether every one of ``keys`` is kept (not counted as a use)."""
        with self._lock:
            return all(k in self._protected or k in self._probation for k in keys)

    def begin_load(self, keys: Iterable[Hashable], *, partial: bool = False) -> int | None:
        """A token for loading ``keys`` from the store, or None when one of them is unsettled (read the
        store and keep nothing). ``partial``: a token even then (None only while a write on everything is in
        flight), for a load of many keys of which :meth:`end_load` keeps those no write touched meanwhile (an
        unsettled key's write ends after the token, so its value is never kept)."""
        with self._lock:
            if self._unsettled_all or (not partial and any(k in self._unsettled for k in keys)):
                return None
            self._loading[self._seq] += 1
            return self._seq

    def end_load(self, token: int, values: dict[Hashable, V]) -> None:
        """Keep what was loaded since ``token``, for every key no change has touched since."""
        with self._lock:
            self._loading[token] -= 1
            if not self._loading[token]:
                del self._loading[token]
            if self._all_changed > token:
                return
            for key, value in values.items():
                if self._changed.get(key, -1) > token or key in self._unsettled:
                    continue
                self._put(key, value)

    def abandon_load(self, token: int) -> None:
        self.end_load(token, {})

    def discard(self, key: Hashable) -> None:
        """Forget ``key``'s entry (kept elsewhere now)."""
        with self._lock:
            if key in self._probation or key in self._protected:
                self._pop(key)

    def fill(self, values: dict[Hashable, V]) -> None:
        """Keep ``values`` for the keys not kept yet: what a committed write made known without a load
        (their current value; a load that began before is discarded, as after any change). They count as
        not read yet: their first read leaves them on probation, as a load would."""
        with self._lock:
            self._seq += 1
            for key, value in values.items():
                self._changed[key] = self._seq
                if key not in self._probation and key not in self._protected:
                    self._put(key, value)
                    self._unread.add(key)
            self._prune()

    # -- changes -----------------------------------------------------------------------------------------
    def unsettle(self, keys: frozenset[Hashable] | Everything) -> None:
        """A write on ``keys`` began: they are unsettled until :meth:`settle`."""
        with self._lock:
            self._seq += 1
            if isinstance(keys, Everything):
                self._unsettled_all += 1
                self._all_changed = self._seq
                return
            for k in keys:
                self._unsettled[k] += 1
                self._changed[k] = self._seq
            self._prune()

    def settle(
        self, keys: frozenset[Hashable] | Everything, update: Callable[[Hashable, V], V | None] | None = None
    ) -> None:
        """The write on ``keys`` ended. ``update`` (committed writes only) gives a key's new value from
        its cached one, or None to drop it; without it the entries are kept (a rollback). (Computing the
        new values outside the lock was tried: readers then compete with the writer for the GIL while it
        extends timelines, and live ingest lost a quarter of its throughput.)"""
        with self._lock:
            self._seq += 1
            if isinstance(keys, Everything):
                self._unsettled_all -= 1
                self._all_changed = self._seq
                if update is not None:
                    self._probation.clear()
                    self._protected.clear()
                    self._unread.clear()
                    if self._weights is not None:
                        self._weights.clear()
                    self._weight = self._protected_weight = 0
                return
            for k in keys:
                self._unsettled[k] -= 1
                if not self._unsettled[k]:
                    del self._unsettled[k]
                self._changed[k] = self._seq
                if update is not None and (k in self._probation or k in self._protected):
                    was_protected = k in self._protected
                    new = update(k, self._pop(k))
                    if new is not None:
                        self._put(k, new, protected=was_protected)

    # -- internals (lock held) -----------------------------------------------------------------------------
    def _entry(self, key: Hashable) -> V | object:
        """``key``'s value, or ``_ABSENT``."""
        value = self._protected.get(key, _ABSENT)
        return self._probation.get(key, _ABSENT) if value is _ABSENT else value

    def _weight_of(self, key: Hashable) -> int:
        return 1 if self._weights is None else self._weights[key]

    def _touch(self, key: Hashable) -> V | object:
        value = self._protected.get(key, _ABSENT)
        if value is not _ABSENT:
            self._protected.move_to_end(key)
            return value
        if key in self._unread:  # filled by a write, read for the first time: on probation still
            self._unread.discard(key)
            self._probation.move_to_end(key)
            return self._probation[key]
        value = self._probation.pop(key, _ABSENT)
        if value is not _ABSENT:  # read again: promoted
            self._protected[key] = cast(V, value)
            self._protected_weight += self._weight_of(key)
            self._demote()
        return value

    def _put(self, key: Hashable, value: V, *, protected: bool = False) -> None:
        weight = 1 if self._weigh is None else self._weigh(value)
        if key in self._probation or key in self._protected:
            self._pop(key)
        if weight > self.capacity:
            return
        if self._weights is not None:
            self._weights[key] = weight
        if protected:
            self._protected[key] = value
            self._protected_weight += weight
        else:
            self._probation[key] = value
        self._weight += weight
        self._demote()
        while self._weight > self.capacity:  # the least recently used out, probation first
            self._pop(next(iter(self._probation or self._protected)))

    def _demote(self) -> None:
        """Keep the protected segment within its share: its least recently used go back on probation."""
        while self._protected_weight > self._protected_capacity and len(self._protected) > 1:
            key, value = self._protected.popitem(last=False)
            self._protected_weight -= self._weight_of(key)
            self._probation[key] = value

    def _pop(self, key: Hashable) -> V:
        self._unread.discard(key)
        weight = 1 if self._weights is None else self._weights.pop(key)
        if key in self._protected:
            value = self._protected.pop(key)
            self._protected_weight -= weight
        else:
            value = self._probation.pop(key)
        self._weight -= weight
        return value

    def _prune(self) -> None:
        """Forget change sequence numbers no load in flight can be older than."""
        if len(self._changed) < 4096:
            return
        oldest = min(self._loading, default=self._seq)
        self._changed = {k: s for k, s in self._changed.items() if s > oldest or k in self._unsettled}

    def __len__(self) -> int:
        return len(self._probation) + len(self._protected)

    def __contains__(self, key: object) -> bool:
        """Whether ``key`` is kept (not counted as a use)."""
        return key in self._protected or key in self._probation

    @property
    def weight(self) -> int:
        return self._weight
