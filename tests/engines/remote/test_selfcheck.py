"""The undocumented behaviour the lazy tables rely on holds here, and what they do when it does not.

:func:`~tams_analytics.engines.remote.selfcheck.check` runs once per process before the first lazy table;
this pins it in CI for the pinned DuckDB and pyarrow. The rest of the module checks the lazy tables'
plumbing on a plain fetch function: the fallback to whole reads, errors raised by a scan coming out as
themselves on every execution path, and scans of one execution sharing a fetch.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import duckdb
import ibis
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tams_analytics.engines.remote import LazyTables, arrow_filter, selfcheck
from tams_analytics.engines.remote import tables as lazy_tables
from tams_analytics.exceptions import TamsError
from tams_analytics.predicates import Predicate, Term
from tams_analytics.schema import SCHEMAS

SOURCES = pa.table(
    {"id": ["s1", "s2", "s3"], "format": ["urn:x-nmos:format:video", "urn:x-nmos:format:audio", "x"]}
).append_column("label", pa.array(["a", "b", None]))


class Fetches:
    """A store of one ``sources`` table that records what each fetch asked for."""

    def __init__(self, fail: Exception | None = None) -> None:
        self.calls: list[tuple[str, list[Predicate], list[str]]] = []
        self.fail = fail

    def __call__(self, table: str, where: Sequence[Predicate], columns: Sequence[str]) -> pa.Table:
        self.calls.append((table, list(where), list(columns)))
        if self.fail is not None:
            raise self.fail
        rows = SOURCES
        for p in where:
            if isinstance(p, Term) and p.op == "==":
                rows = rows.filter(pa.compute.equal(rows[p.column], p.value))
        full = {
            f.name: rows[f.name] if f.name in rows.column_names else pa.nulls(len(rows), f.type) for f in SCHEMAS[table]
        }
        return pa.table(full).select(list(columns))


def test_the_pinned_duckdb_and_pyarrow_behave_as_the_lazy_tables_expect() -> None:
    assert selfcheck.problems() == []
    assert selfcheck.check() is True


def test_a_changed_expression_form_is_detected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(arrow_filter, "_LINE", arrow_filter.re.compile(r"^never$"))
    found = selfcheck.problems()
    assert any("read back" in f for f in found)


def test_without_pushdown_tables_are_whole_reads_with_the_same_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lazy_tables.selfcheck, "check", lambda: False)
    fetches = Fetches()
    lazy = LazyTables(fetches)
    t = lazy.table("sources")
    assert t.filter(t.label == "b").select("id").to_pyarrow().column("id").to_pylist() == ["s2"]
    assert fetches.calls[0][1:] == ([], SCHEMAS["sources"].names)  # everything, once, when the table was made


def test_a_pushdown_table_fetches_its_filters_and_columns() -> None:
    fetches = Fetches()
    lazy = LazyTables(fetches)
    t = lazy.table("sources", [Term("format", "==", "x")])
    assert t.select("id").to_pyarrow().column("id").to_pylist() == ["s3"]
    assert fetches.calls == [("sources", [Term("format", "==", "x")], ["id"])]
    u = lazy.table("sources")
    fetches.calls.clear()
    assert u.filter(u.id == "s1").count().execute() == 1
    assert fetches.calls == [("sources", [Term("id", "==", "s1")], ["id"])]
    assert lazy.table("sources", [Term("format", "==", "x")]) is t  # one dataset per distinct filter


def test_scans_of_one_execution_share_one_fetch() -> None:
    fetches = Fetches()
    lazy = LazyTables(fetches, whole_rows=True)
    t = lazy.table("sources")
    # two scans of sources (filters DuckDB keeps for itself on both sets: nothing pushed, the same fetch)
    t.filter(t.label.contains("a")).select("id").union(t.filter(t.id.contains("s")).select("id")).count().execute()
    assert len(fetches.calls) == 1
    t.count().execute()
    assert len(fetches.calls) == 2  # the next execution reads again


@pytest.mark.parametrize("path", ["to_pyarrow", "execute", "to_pandas", "to_csv", "to_pyarrow_batches", "hook"])
def test_every_execution_reads_afresh(path: str, tmp_path: Path) -> None:
    """No execution path answers from what an earlier execution fetched (the store may have changed)."""
    fetches = Fetches()
    lazy = LazyTables(fetches, whole_rows=True)
    expr = lazy.table("sources").count()
    expr.execute()
    if path == "to_csv":
        lazy.table("sources").to_csv(tmp_path / "s.csv")
    elif path == "to_pyarrow_batches":
        with lazy.table("sources").to_pyarrow_batches() as reader:
            reader.read_all()
    elif path == "hook":  # what ibis 10.8 runs before every execution, whatever the path
        lazy.backend._run_pre_execute_hooks(expr)
        lazy.con.execute('SELECT count(*) FROM "sources"').fetchall()
    else:
        getattr(expr, path)()
    assert len(fetches.calls) == 2


@pytest.mark.parametrize("path", ["to_pyarrow", "execute", "to_parquet", "to_pyarrow_batches"])
def test_an_error_a_scan_raises_comes_out_as_itself(path: str, tmp_path: Path) -> None:
    lazy = LazyTables(Fetches(fail=TamsError("GET /sources answered HTTP 503: ServiceUnavailable: busy")))
    expr = lazy.table("sources").filter(ibis._.format == "x")
    with pytest.raises(TamsError, match="HTTP 503") as caught:
        if path == "to_parquet":
            expr.to_parquet(tmp_path / "out.parquet")
        elif path == "to_pyarrow_batches":
            with expr.to_pyarrow_batches() as reader:
                reader.read_all()
        else:
            getattr(expr, path)()
    assert isinstance(caught.value.__cause__, duckdb.Error) or path == "to_pyarrow_batches"


def test_to_parquet_writes_what_the_scan_returned(tmp_path: Path) -> None:
    lazy = LazyTables(Fetches())
    lazy.table("sources", [Term("format", "==", "x")]).to_parquet(tmp_path / "s.parquet")
    assert pq.read_table(tmp_path / "s.parquet").column("id").to_pylist() == ["s3"]
