"""Reading the filter DuckDB hands a scan (:mod:`tams_analytics.engines.remote.arrow_filter`).

The filters are the ones DuckDB 1.3.2 really produces for SQL (captured by a dataset that records its
``scanner`` call); a property test checks on random expressions that every pushed predicate is implied by the
filter (the engines' semantics: :func:`~tams_analytics.engines.remote.residual.evaluate`) and that the
balanced filter the scan applies selects exactly the rows of the original.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tams_analytics.compat import SCAN_PUSHDOWN
from tams_analytics.engines.remote.arrow_filter import FilterParts, pushdown
from tams_analytics.engines.remote.dataset import PushdownDataset, ScanCache
from tams_analytics.engines.remote.residual import evaluate
from tams_analytics.predicates import AnyOf, Predicate, Term

UTC = dt.UTC
SCHEMA = pa.schema(
    [
        ("flow_id", pa.string()),
        ("start_ns", pa.int64()),
        ("label", pa.string()),
        ("read_only", pa.bool_()),
        ("created", pa.timestamp("us", tz="UTC")),
    ]
)
ROWS = pa.table(
    {
        "flow_id": ["a", "b", "c", None],
        "start_ns": [1, 5, 10, None],
        "label": ["news", "nfl", None, "x"],
        "read_only": [True, False, None, False],
        "created": [dt.datetime(2024, 1, d, tzinfo=UTC) for d in (1, 2, 3)] + [None],
    },
    schema=SCHEMA,
)


class Capture(ds.Dataset):
    """Records what DuckDB hands ``scanner`` and answers with Arrow's own evaluation."""

    def __init__(self, rows: pa.Table) -> None:
        self.rows = rows
        self.calls: list[dict[str, Any]] = []

    @property
    def schema(self) -> pa.Schema:  # type: ignore[override]
        return self.rows.schema

    def scanner(self, **kwargs: Any) -> ds.Scanner:  # type: ignore[override]
        self.calls.append(kwargs)
        parts = pushdown(kwargs.get("filter"), self.rows.schema)
        return ds.dataset(self.rows).scanner(columns=kwargs.get("columns"), filter=parts.evaluable)


def scanned(where: str, rows: pa.Table = ROWS) -> tuple[pc.Expression | None, list[tuple[Any, ...]]]:
    """The filter DuckDB pushes into the scan for ``WHERE where``, and the query's rows."""
    capture = Capture(rows)
    con = duckdb.connect()
    con.register("t", capture)
    result = con.execute(f"SELECT * FROM t WHERE {where} ORDER BY ALL").fetchall()
    con.close()
    (call,) = capture.calls
    return call.get("filter"), result


def as_set(predicates: Sequence[Predicate]) -> set[Any]:
    out: set[Any] = set()
    for p in predicates:
        if isinstance(p, Term) and p.op == "isin":
            out.add((p.column, "isin", frozenset(p.value)))
        elif isinstance(p, AnyOf):
            out.add(("any", frozenset(as_set(p.terms))))
        elif isinstance(p, Term):
            out.add((p.column, p.op, p.value))
    return out


#: what DuckDB pushes into a scan on both dependency sets
CASES = [
    ("flow_id = 'a'", {("flow_id", "==", "a")}),
    ("start_ns < 5 AND start_ns >= 1", {("start_ns", "<", 5), ("start_ns", ">=", 1)}),
    ("start_ns <> 5", {("start_ns", "!=", 5)}),
    ("flow_id IN ('a', 'b', 'c')", {("flow_id", "isin", frozenset("abc"))}),
    ("start_ns IN (1, 5, 10)", {("start_ns", "isin", frozenset({1, 5, 10}))}),
    ("flow_id IN ('a', 'b') AND start_ns < 5", {("flow_id", "isin", frozenset("ab")), ("start_ns", "<", 5)}),
    ("start_ns BETWEEN 2 AND 9", {("start_ns", ">=", 2), ("start_ns", "<=", 9)}),
    ("read_only = false", {("read_only", "==", False)}),
    ("created >= TIMESTAMPTZ '2024-01-02 00:00:00+00'", {("created", ">=", dt.datetime(2024, 1, 2, tzinfo=UTC))}),
    ("5 > start_ns", {("start_ns", "<", 5)}),
    ("(start_ns = 1 OR start_ns > 7)", {("any", frozenset({("start_ns", "==", 1), ("start_ns", ">", 7)}))}),
    ("(flow_id = 'a' OR flow_id = 'c')", {("flow_id", "isin", frozenset("ac"))}),
]
NEW_FORMS = pytest.mark.skipif(
    not SCAN_PUSHDOWN.null_checks, reason="DuckDB 1.3 (VAST's set) pushes no null check, NOT IN or OR across columns"
)
PREFIX_LIKE = pytest.mark.skipif(
    not SCAN_PUSHDOWN.prefix_like, reason="DuckDB 2.0 (the current set) no longer pushes a prefix LIKE into a scan"
)
#: what only one set's DuckDB pushes
ONE_SET_CASES = [
    pytest.param("label LIKE 'ne%'", {("label", ">=", "ne"), ("label", "<", "nf")}, marks=PREFIX_LIKE),
    pytest.param("label IS NULL", {("label", "isnull", None)}, marks=NEW_FORMS),
    pytest.param("label IS NOT NULL", {("label", "notnull", None)}, marks=NEW_FORMS),
    pytest.param("NOT (label IS NULL)", {("label", "notnull", None)}, marks=NEW_FORMS),
    pytest.param("flow_id NOT IN ('a', 'b')", {("flow_id", "!=", "a"), ("flow_id", "!=", "b")}, marks=NEW_FORMS),
    pytest.param(
        "flow_id = 'a' OR start_ns = 1",
        {("any", frozenset({("flow_id", "==", "a"), ("start_ns", "==", 1)}))},
        marks=NEW_FORMS,
    ),
    pytest.param(
        "flow_id IN ('a', 'b') OR label IS NULL",
        {("any", frozenset({("flow_id", "isin", frozenset("ab")), ("label", "isnull", None)}))},
        marks=NEW_FORMS,
    ),
]


def columns_of(expected: set[Any]) -> set[str]:
    return {c for e in expected for c in (columns_of(set(e[1])) if e[0] == "any" else {e[0]})}


@pytest.mark.parametrize(("where", "expected"), [*CASES, *ONE_SET_CASES])
def test_what_duckdb_pushes_reads_back_as_predicates(where: str, expected: set[Any]) -> None:
    expr, rows = scanned(where)
    parts = pushdown(expr, SCHEMA)
    assert as_set(parts.predicates) == expected
    assert parts.columns == columns_of(expected)
    con = duckdb.connect()
    assert rows == con.execute(f"SELECT * FROM ROWS WHERE {where} ORDER BY ALL").fetchall()  # exact through the scan


@pytest.mark.parametrize(
    "where",
    [
        "starts_with(label, 'n')",
        "contains(label, 'ew')",
        "read_only",
        "NOT read_only",
        pytest.param("label LIKE 'ne%'", marks=NEW_FORMS),
        pytest.param("label IS NULL", marks=PREFIX_LIKE),
        pytest.param("flow_id = 'a' OR start_ns = 1", marks=PREFIX_LIKE),
    ],
)
def test_what_duckdb_keeps_for_itself_pushes_nothing(where: str) -> None:
    expr, _ = scanned(where)
    assert expr is None
    assert pushdown(expr, SCHEMA) == FilterParts([], frozenset())


@pytest.mark.parametrize("n", [3, 100, 10_000])
def test_a_long_in_list_is_one_isin_and_scans_without_crashing(n: int) -> None:
    rows = pa.table(
        {"flow_id": [str(i) for i in range(0, 2 * n, 2)] + [None]}, schema=pa.schema([("flow_id", pa.string())])
    )
    values = ", ".join(f"'{i}'" for i in range(n))
    expr, result = scanned(f"flow_id IN ({values})", rows)
    parts = pushdown(expr, rows.schema)
    assert parts.predicates == [Term("flow_id", "isin", parts.predicates[0].value)]
    assert set(parts.predicates[0].value) == {str(i) for i in range(n)}
    assert len(result) == len(range(0, n, 2))
    if n > 3:  # Arrow could not evaluate DuckDB's 10,000-level OR: the scan applies one is_in instead
        assert "is_in" in str(parts.evaluable)


def test_a_filter_it_cannot_read_pushes_nothing_and_needs_every_column() -> None:
    odd = pc.utf8_upper(pc.field("label")) == "NEWS"  # a form DuckDB does not send
    assert pushdown(odd & (pc.field("start_ns") > 1), SCHEMA) == FilterParts([], None)


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        (pc.field("start_ns").isin([1, 2]), {("start_ns", "isin", frozenset({1, 2}))}),
        (pc.field("label").isin(pa.array(["x", None])), set()),  # a null label matches the set's null
        (
            pc.is_in(pc.field("label"), options=pc.SetLookupOptions(pa.array(["x", None]), skip_nulls=True)),
            {("label", "==", "x")},
        ),
        (~pc.field("start_ns").isin([1, 2]), set()),  # true for a null start_ns: no != is implied
        (
            pc.if_else(pc.field("start_ns") > 1, pc.field("label") == "x", pa.scalar(None, pa.bool_())),
            {
                ("start_ns", ">", 1),
                ("label", "==", "x"),
            },
        ),
        (pc.if_else(pc.field("start_ns") > 1, pc.field("label") == "x", True), set()),  # not an AND
        (~(pc.field("start_ns") < 3), set()),
        (pc.field("label").isin(pa.array([], pa.string())), set()),
    ],
    ids=["isin", "isin with a null", "isin skipping nulls", "not isin", "if_else as AND", "if_else", "not <", "empty"],
)
def test_forms_duckdb_does_not_send_push_only_what_they_imply(expr: pc.Expression, expected: set[Any]) -> None:
    parts = pushdown(expr, SCHEMA)
    assert as_set(parts.predicates) == expected and parts.evaluable is not None


def test_comparisons_it_cannot_push_still_name_their_columns() -> None:
    parts = pushdown((pc.field("label") == pc.field("flow_id")) & (pc.field("start_ns") > 3), SCHEMA)
    assert parts.predicates == [Term("start_ns", ">", 3)] and parts.columns == {"label", "flow_id", "start_ns"}


def test_a_literal_of_another_type_or_a_null_is_not_pushed() -> None:
    assert pushdown(pc.field("start_ns") == pc.scalar(1.5), SCHEMA).predicates == []
    assert pushdown(pc.field("flow_id") == pc.scalar(pa.scalar(None, pa.string())), SCHEMA).predicates == []
    assert pushdown(pc.field("missing") == 1, SCHEMA).predicates == []


# -- property: pushed predicates are implied, the evaluated filter is the same filter -------------------------
COLUMN_VALUES = {"flow_id": ["a", "b", "c"], "start_ns": [1, 5, 10], "label": ["news", "nfl", "x"]}


NULL_BOOL = pa.scalar(None, pa.bool_())


@st.composite
def in_lists(draw: st.DrawFn, column: str) -> pc.Expression:
    """An ``IN`` list as DuckDB 2.0 sends it (``NOT IN``: inverted), or a bare ``is_in`` of either null matching."""
    values = draw(st.lists(st.one_of(st.none(), st.sampled_from(COLUMN_VALUES[column])), max_size=4))
    f = pc.field(column)
    lookup = pc.is_in(f, options=pc.SetLookupOptions(pa.array(values, SCHEMA.field(column).type), skip_nulls=False))
    form = draw(st.sampled_from(["in", "not in", "is_in", "is_in skipping nulls"]))
    if form == "is_in skipping nulls":
        return pc.is_in(f, options=pc.SetLookupOptions(pa.array(values, SCHEMA.field(column).type), skip_nulls=True))
    if form == "is_in":
        return lookup
    duckdb_in = pc.if_else(f.is_valid(), lookup, NULL_BOOL)
    return duckdb_in if form == "in" else ~duckdb_in


@st.composite
def expressions(draw: st.DrawFn, depth: int = 0) -> pc.Expression:
    leaves = ["cmp", "cmp", "null", "in"]
    kind = draw(st.sampled_from([*leaves, "and", "or", "guard"] if depth < 3 else leaves))
    column = draw(st.sampled_from(sorted(COLUMN_VALUES)))
    if kind == "in":
        return draw(in_lists(column))
    if kind == "guard":  # if_else(c, x, null | false | true)
        otherwise = draw(st.sampled_from([NULL_BOOL, pa.scalar(False), pa.scalar(True)]))
        return pc.if_else(draw(expressions(depth + 1)), draw(expressions(depth + 1)), otherwise)
    if kind == "cmp":
        value = draw(st.sampled_from(COLUMN_VALUES[column]))
        op = draw(st.sampled_from(["==", "!=", "<", "<=", ">", ">="]))
        f, v = pc.field(column), pc.scalar(value)
        return {"==": f == v, "!=": f != v, "<": f < v, "<=": f <= v, ">": f > v, ">=": f >= v}[op]
    if kind == "null":
        check = pc.field(column).is_null() if draw(st.booleans()) else pc.field(column).is_valid()
        return ~check if draw(st.booleans()) else check
    parts = draw(st.lists(expressions(depth + 1), min_size=2, max_size=4))
    out = parts[0]
    for p in parts[1:]:
        out = (out & p) if kind == "and" else (out | p)
    return out


rows_strategy = st.lists(
    st.fixed_dictionaries({c: st.one_of(st.none(), st.sampled_from(v)) for c, v in COLUMN_VALUES.items()}),
    max_size=12,
)


@settings(max_examples=300, deadline=None)
@given(expr=expressions(), rows=rows_strategy)
def test_pushed_predicates_are_implied_and_the_evaluated_filter_is_the_same(expr: pc.Expression, rows: list) -> None:
    schema = pa.schema([("flow_id", pa.string()), ("start_ns", pa.int64()), ("label", pa.string())])
    table = pa.Table.from_pylist(rows, schema=schema)
    parts = pushdown(expr, schema)
    assert parts.columns is not None and parts.evaluable is not None
    selected = ds.dataset(table).to_table(filter=expr).to_pylist()
    assert ds.dataset(table).to_table(filter=parts.evaluable).to_pylist() == selected
    pushed = evaluate(table, parts.predicates).to_pylist()
    assert all(row in pushed for row in selected)
    assert parts.columns <= set(schema.names)


def test_a_scan_applies_the_filter_exactly_to_what_the_engine_returns() -> None:
    """The engine may return more than the pushed predicates select; DuckDB sees exactly its rows."""

    def fetch(table: str, where: Sequence[Predicate], columns: Sequence[str]) -> pa.Table:
        return ROWS.select(list(columns))  # ignores the predicates: a superset

    con = duckdb.connect()
    con.register("t", PushdownDataset("t", [], SCHEMA, fetch, ScanCache()))
    got = con.execute("SELECT flow_id FROM t WHERE start_ns > 1 AND label < 'x' ORDER BY 1").fetchall()
    assert got == [("b",)]
