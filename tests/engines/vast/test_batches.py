"""On VAST, a batch of single-segment registrations is one transaction with a constant number of store calls,
however many registrations it holds (counted at the engine's ``store=`` seam, on the reference store)."""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from tams_analytics.catalog import Catalog
from tams_analytics.catalog.registration import Registration, register_batch
from tams_analytics.engines.vast import Engine
from tests.engines.contract.helpers import flow
from tests.engines.vast.reference import REFERENCE_URL, ReferenceStore


class CountingStore(ReferenceStore):
    """The reference store, counting the calls (and transactions) the engine makes."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: Counter[str] = Counter()

    def transaction(self) -> Any:
        self.calls["transaction"] += 1
        return super().transaction()

    def select(self, tx: Any, table: str, *args: Any, **kwargs: Any) -> Any:
        self.calls["select"] += 1
        return super().select(tx, table, *args, **kwargs)

    def insert(self, tx: Any, table: str, rows: Any) -> None:
        self.calls["insert"] += 1
        super().insert(tx, table, rows)

    def update(self, tx: Any, table: str, rows: Any, columns: Any) -> None:
        self.calls["update"] += 1
        super().update(tx, table, rows, columns)


@pytest.fixture
def counted() -> Iterator[tuple[Catalog, CountingStore]]:
    store = CountingStore()
    cat = Catalog(Engine(REFERENCE_URL, store=store))
    yield cat, store
    cat.close()


def _registrations(flows: list[str], n: int, start: int) -> list[Registration]:
    return [
        Registration.of(
            flows[k % len(flows)], [{"object_id": str(uuid.uuid4()), "timerange": f"[{start + k}:0_{start + k + 1}:0)"}]
        )
        for k in range(n)
    ]


def test_a_batch_costs_the_same_store_calls_for_1_or_32_registrations(counted: tuple[Catalog, CountingStore]) -> None:
    cat, store = counted
    flows = [cat.put_flow(flow())[1].flows_created[0] for _ in range(32)]
    per_batch = {}
    for n, start in ((1, 0), (32, 100)):
        store.calls.clear()
        outcomes = register_batch(cat, _registrations(flows, n, start))
        assert all(o.all_accepted for o in outcomes)  # type: ignore[union-attr]
        per_batch[n] = sum(store.calls.values())
        assert store.calls["transaction"] == 1, "one VAST transaction per batch"
    assert per_batch[32] == per_batch[1], per_batch
    assert per_batch[32] / 32 < 0.5, f"{per_batch[32]} store calls for 32 acknowledged registrations"


def test_concurrent_registrations_on_vast_share_transactions(counted: tuple[Catalog, CountingStore]) -> None:
    cat, store = counted
    flows = [cat.put_flow(flow())[1].flows_created[0] for _ in range(16)]
    store.calls.clear()

    def writer(k: int) -> None:
        for i in range(10):
            s = 10 * k + i
            r = cat.add_segments(flows[k], [{"object_id": str(uuid.uuid4()), "timerange": f"[{s}:0_{s + 1}:0)"}])
            assert r.all_accepted

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert cat.count("segments") == 160
    assert store.calls["transaction"] < 160, f"{store.calls['transaction']} transactions for 160 registrations"
