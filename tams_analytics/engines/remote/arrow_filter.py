"""The filter DuckDB hands a scan, as conjuncts of the predicate tree the engines push down.

DuckDB gives a ``pyarrow.dataset.Dataset`` scan its filter as a ``pyarrow.compute.Expression``, which has no
public accessors. Its pickled form does: Arrow serialises an expression as an IPC file whose schema metadata
lists the nodes in prefix order (``call``/``field_ref``/``literal``/``options``/``end``) and whose one record
batch holds the literals (and call options) as exact Arrow scalars. :func:`pushdown` reads that form into a
small tree, rebuilds the expression from the tree with pyarrow's public operators and checks that the two are
equal (so a misread tree is never used), then translates each top-level conjunct it can into a
:class:`~tams_analytics.predicates.Predicate`:

* comparisons of a column with a literal (``==``, ``!=``, ``<``, ``<=``, ``>``, ``>=``), ``is_null`` and
  ``is_valid`` (and their ``invert``);
* ``IN`` lists, in both forms DuckDB sends them: deeply nested ORs of equalities (DuckDB 1.3) and
  ``if_else(is_valid(x), is_in(x, values), null)`` (DuckDB 2.0), each one ``isin``; a ``NOT IN``
  (``invert`` of the latter) as ``!=`` each value;
* an OR of any of those (equalities on one column become one ``isin``); an ``if_else(c, x, null)`` at the top
  is ``c AND x``.

Conjuncts it cannot translate are simply not pushed: the scan still applies DuckDB's whole expression with
Arrow to what the engine returns (DuckDB trusts the scan), so a pushed predicate only has to be implied by
the filter (each translation above is exact under SQL's three-valued logic: a row whose filter is null is
dropped, as one whose filter is false). Nothing here recurses on the depth of the expression (a 10,000-value
``IN`` is 10,000 levels on DuckDB 1.3), and the scan applies :attr:`FilterParts.evaluable`, the same filter
with its AND/OR chains as balanced trees and each OR of equalities on one column as one ``is_in``: pyarrow 23
crashes (a segmentation fault) scanning with an OR of 10,000 equalities, nested or balanced. ``is_in`` gives
false where the OR gives null (a null column), which keeps exactly the same rows under AND and OR: only chains
reached from the top through AND/OR alone are folded, never one under a negation (DuckDB 2.0 sends
``invert``). Arrow's own serialisation and comparison of an expression do recurse per level (they crash at
about 40,000 levels on an 8 MiB stack), so :func:`pushdown` reads the filter on a helper thread with a large
stack.

>>> import pyarrow as pa, pyarrow.dataset as ds
>>> schema = pa.schema([("flow_id", pa.string()), ("start_ns", pa.int64())])
>>> parts = pushdown(((ds.field("flow_id") == "a") | (ds.field("flow_id") == "b")) & (ds.field("start_ns") < 5), schema)
>>> parts.predicates
[Term(column='flow_id', op='isin', value=('a', 'b')), Term(column='start_ns', op='<', value=5)]
>>> sorted(parts.columns)
['flow_id', 'start_ns']
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Final

import pyarrow as pa
import pyarrow.compute as pc

from tams_analytics import predicates as P
from tams_analytics.predicates import AnyOf, Op, Predicate, Term

__all__ = ["FilterParts", "pushdown"]

logger = logging.getLogger(__name__)

#: Arrow compute function -> predicate operator, and the operator with the operands swapped
_COMPARE: Final[dict[str, tuple[Op, Op]]] = {
    "equal": ("==", "=="),
    "not_equal": ("!=", "!="),
    "less": ("<", ">"),
    "less_equal": ("<=", ">="),
    "greater": (">", "<"),
    "greater_equal": (">=", "<="),
}
#: Arrow's ``SetLookupOptions::NullMatchingBehavior`` -> ``skip_nulls`` (MATCH: a null input matches a null in the
#: set; SKIP: it never matches)
_NULL_MATCHING: Final = {0: False, 1: True}
_LINE: Final = re.compile(r"^(call|field_ref|literal|options|end): '(.*)'$")
#: stack of the thread that reads a filter (reserved, not committed: pages are only touched as deep as needed)
READER_STACK_BYTES: Final = 512 * 1024 * 1024
_stack_lock = threading.Lock()


@dataclass(frozen=True)
class _Field:
    name: str


@dataclass(frozen=True)
class _Literal:
    value: pa.Scalar


@dataclass(frozen=True)
class _Call:
    name: str
    args: tuple[Any, ...]
    options: pa.StructScalar | None = None


@dataclass(frozen=True)
class FilterParts:
    """What a scan may push down: ``predicates`` (each implied by the filter), the ``columns`` the filter
    reads (``None`` when the filter could not be read: then every column is needed) and ``evaluable``, the
    filter itself with balanced AND/OR chains (``None`` when there is no filter or it could not be read)."""

    predicates: list[Predicate]
    columns: frozenset[str] | None
    evaluable: pc.Expression | None = None


def _tokens(expr: pc.Expression) -> tuple[list[tuple[str, str]], pa.RecordBatch | None]:
    """The serialised nodes of ``expr`` in prefix order, and the batch holding its literals."""
    _, (buffer,) = expr.__reduce__()
    reader = pa.ipc.open_file(buffer)
    text = reader.schema.to_string(show_field_metadata=False, show_schema_metadata=True, truncate_metadata=False)
    _, sep, meta = text.partition("-- schema metadata --\n")
    if not sep:
        raise ValueError("no expression metadata")
    tokens = []
    for line in meta.splitlines():
        m = _LINE.match(line)
        if m is None:
            raise ValueError(f"unexpected expression metadata line {line!r}")
        tokens.append((m.group(1), m.group(2)))
    return tokens, reader.get_batch(0) if reader.num_record_batches else None


def _tree(expr: pc.Expression) -> Any:
    """``expr`` as nested :class:`_Call`/:class:`_Field`/:class:`_Literal` nodes, built without recursion."""
    tokens, batch = _tokens(expr)
    stack: list[tuple[str, list[Any], list[pa.StructScalar]]] = []
    root: list[Any] = []

    def add(node: Any) -> None:
        (stack[-1][1] if stack else root).append(node)

    for kind, value in tokens:
        if kind == "call":
            stack.append((value, [], []))
        elif kind == "field_ref":
            add(_Field(value))
        elif kind in ("literal", "options"):
            if batch is None:
                raise ValueError("expression literals missing")
            scalar = batch.column(int(value))[0]
            if kind == "literal":
                add(_Literal(scalar))
            elif stack:
                stack[-1][2].append(scalar)
        else:  # end
            name, args, options = stack.pop()
            if name != value:
                raise ValueError(f"unbalanced expression metadata at {value!r}")
            add(_Call(name, tuple(args), options[0] if options else None))
    if stack or len(root) != 1:
        raise ValueError("unbalanced expression metadata")
    return root[0]


def _postorder(node: Any) -> Iterator[Any]:
    """The nodes under ``node`` children first, without recursion."""
    pending: list[tuple[Any, bool]] = [(node, False)]
    while pending:
        n, expanded = pending.pop()
        if expanded or not isinstance(n, _Call):
            yield n
            continue
        pending.append((n, True))
        pending.extend((a, False) for a in reversed(n.args))


def _rebuild(node: Any) -> pc.Expression:
    """The expression ``node`` describes, through pyarrow's public operators (raises on calls it does not know)."""
    built: dict[int, pc.Expression] = {}
    for n in _postorder(node):
        if isinstance(n, _Field):
            built[id(n)] = pc.field(n.name)
        elif isinstance(n, _Literal):
            built[id(n)] = pc.scalar(n.value)
        else:
            args = [built[id(a)] for a in n.args]
            built[id(n)] = _call(n, args)
    return built[id(node)]


def _equalities(operands: list[Any]) -> tuple[str, pa.Array] | None:
    """``(column, values)`` when every operand is ``column == literal`` on one column."""
    column = None
    values: list[pa.Scalar] = []
    for n in operands:
        if not (isinstance(n, _Call) and n.name == "equal" and len(n.args) == 2):
            return None
        field, lit = n.args if isinstance(n.args[0], _Field) else n.args[::-1]
        if not (isinstance(field, _Field) and isinstance(lit, _Literal)) or column not in (None, field.name):
            return None
        column = field.name
        values.append(lit.value)
    if column is None or len({v.type for v in values}) != 1:
        return None
    return column, pa.array([v.as_py() for v in values], values[0].type)


def _balanced(node: Any) -> pc.Expression:
    """The filter ``node`` for Arrow to evaluate: AND/OR chains as balanced trees (both are associative), ORs of
    equalities on one column as ``is_in`` (see the module docstring: only under AND/OR, never negated)."""
    if isinstance(node, _Call) and node.name in ("and_kleene", "or_kleene"):
        operands = _flat(node, node.name)
        if node.name == "or_kleene" and len(operands) > 2:
            found = _equalities(operands)
            if found is not None:
                return pc.field(found[0]).isin(found[1])
        parts = [_balanced(n) for n in operands]
        if node.name == "and_kleene":
            return P.balanced(parts, lambda a, b: a & b)
        return P.balanced(parts, lambda a, b: a | b)
    return _rebuild(node)  # below anything else (a negation), the filter as it came


def _call(node: _Call, args: list[pc.Expression]) -> pc.Expression:
    name = node.name
    if name in _COMPARE and len(args) == 2:
        a, b = args
        return {
            "equal": a == b,
            "not_equal": a != b,
            "less": a < b,
            "less_equal": a <= b,
            "greater": a > b,
            "greater_equal": a >= b,
        }[name]
    if name == "and_kleene" and len(args) == 2:
        return args[0] & args[1]
    if name == "or_kleene" and len(args) == 2:
        return args[0] | args[1]
    if name == "invert" and len(args) == 1:
        return ~args[0]
    if name == "is_valid" and len(args) == 1:
        return args[0].is_valid()
    if name == "is_null" and len(args) == 1:
        nan_is_null = bool(node.options["nan_is_null"].as_py()) if node.options is not None else False
        return args[0].is_null(nan_is_null=nan_is_null)
    if name == "is_in" and len(args) == 1 and node.options is not None:
        values, skip_nulls = _set_lookup(node.options)
        return pc.is_in(args[0], options=pc.SetLookupOptions(values, skip_nulls=skip_nulls))
    if name == "if_else" and len(args) == 3:
        return pc.if_else(*args)
    raise ValueError(f"no rebuild for {name}/{len(args)}")


def _set_lookup(options: pa.StructScalar) -> tuple[pa.Array, bool]:
    """The value set of ``is_in``'s options, and whether a null input never matches (``skip_nulls``)."""
    if options["_type_name"].as_py() != b"SetLookupOptions":
        raise ValueError(f"unexpected is_in options {options['_type_name']}")
    behaviour = options["null_matching_behavior"].as_py()
    if behaviour not in _NULL_MATCHING:  # EMIT_NULL, INCONCLUSIVE: not what pyarrow's Python options can say
        raise ValueError(f"is_in null_matching_behavior {behaviour}")
    return options["value_set"].values, _NULL_MATCHING[behaviour]


def _kind(t: pa.DataType) -> str | None:
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return "string"
    if pa.types.is_integer(t):
        return "integer"
    if pa.types.is_boolean(t):
        return "boolean"
    if pa.types.is_timestamp(t):
        return "timestamp"
    return None


def _flat(node: Any, name: str) -> list[Any]:
    """The operands of a chain of ``name`` calls (``a or (b or c)`` -> ``[a, b, c]``), without recursion."""
    out, pending = [], [node]
    while pending:
        n = pending.pop()
        if isinstance(n, _Call) and n.name == name and len(n.args) == 2:
            pending.extend(reversed(n.args))
        else:
            out.append(n)
    return out


def _column(node: Any, schema: pa.Schema) -> str | None:
    """The name of ``node`` when it is a column of ``schema`` whose type a predicate can compare."""
    if isinstance(node, _Field) and node.name in schema.names and _kind(schema.field(node.name).type) is not None:
        return node.name
    return None


def _guard(node: Any) -> tuple[Any, Any] | None:
    """``(c, x)`` of ``if_else(c, x, null)`` (or ``false``): true exactly where both ``c`` and ``x`` are."""
    if not (isinstance(node, _Call) and node.name == "if_else" and len(node.args) == 3):
        return None
    other = node.args[2]
    if not isinstance(other, _Literal) or (other.value.is_valid and other.value.as_py() is not False):
        return None
    return node.args[0], node.args[1]


def _in_values(node: Any, schema: pa.Schema, *, valid: bool) -> tuple[str, list[Any]] | None:
    """``(column, values)`` of ``is_in(column, values)``, the non-null values a row's column must equal for it
    to be true (``valid``: where the column is known not to be null, so a null in the set matches nothing)."""
    if not (isinstance(node, _Call) and node.name == "is_in" and len(node.args) == 1 and node.options is not None):
        return None
    column = _column(node.args[0], schema)
    if column is None:
        return None
    values, skip_nulls = _set_lookup(node.options)
    if _kind(values.type) != _kind(schema.field(column).type) or (values.null_count and not (skip_nulls or valid)):
        return None  # another type, or a null in the set that a null column matches
    return column, [v for v in values.to_pylist() if v is not None]


def _in_list(node: Any, schema: pa.Schema) -> tuple[str, list[Any]] | None:
    """``(column, values)`` of DuckDB 2.0's ``IN``: ``if_else(is_valid(column), is_in(column, values), null)``."""
    guard = _guard(node)
    if guard is None:
        return None
    check, inner = guard
    found = _in_values(inner, schema, valid=True)
    if found is None or not (
        isinstance(check, _Call) and check.name == "is_valid" and check.args == (_Field(found[0]),)
    ):
        return None
    return found


def _term(node: Any, schema: pa.Schema) -> Term | None:
    """A comparison, ``IN`` list or null check of one column of ``schema`` (exactly ``node``), or None."""
    if not isinstance(node, _Call):
        return None
    if node.name in ("is_null", "is_valid") and len(node.args) == 1:
        column = _column(node.args[0], schema)
        return None if column is None else Term(column, "isnull" if node.name == "is_null" else "notnull")
    if node.name == "invert" and len(node.args) == 1:
        inner = node.args[0]  # is_valid is never null, and is_null only with nan_is_null on a float: not compared
        if isinstance(inner, _Call) and inner.name in ("is_null", "is_valid") and len(inner.args) == 1:
            column = _column(inner.args[0], schema)
            return None if column is None else Term(column, "notnull" if inner.name == "is_null" else "isnull")
        return None
    found = _in_list(node, schema) or _in_values(node, schema, valid=False)
    if found is not None:
        column, values = found
        return Term(column, "isin", tuple(dict.fromkeys(values))) if values else None
    if node.name not in _COMPARE or len(node.args) != 2:
        return None
    a, b = node.args
    op, flipped = _COMPARE[node.name]
    if isinstance(a, _Literal) and isinstance(b, _Field):
        a, b, op = b, a, flipped
    if not (isinstance(a, _Field) and isinstance(b, _Literal)) or a.name not in schema.names:
        return None
    kind = _kind(schema.field(a.name).type)
    if kind is None or kind != _kind(b.value.type) or not b.value.is_valid:
        return None
    return Term(a.name, op, b.value.as_py())


def _single(term: Term) -> Term:
    """A one-value ``isin`` as ``==``."""
    return Term(term.column, "==", term.value[0]) if term.op == "isin" and len(term.value) == 1 else term


def _conjunct(node: Any, schema: pa.Schema) -> list[Predicate]:
    """What one top-level conjunct implies (exactly), as predicates; none when it cannot be read."""
    if isinstance(node, _Call) and node.name == "or_kleene":
        terms = [_term(n, schema) for n in _flat(node, "or_kleene")]
        if any(t is None for t in terms):
            return []
        found = [t for t in terms if t is not None]
        if len({t.column for t in found}) == 1 and all(t.op in ("==", "isin") for t in found):
            values = [v for t in found for v in (t.value if t.op == "isin" else (t.value,))]
            return [P.isin(found[0].column, values)]
        return [AnyOf(tuple(_single(t) for t in found))]
    if isinstance(node, _Call) and node.name == "invert" and len(node.args) == 1:
        negated = _in_list(node.args[0], schema)  # NOT IN: not null, and none of the values
        if negated is not None:
            column, values = negated
            return [Term(column, "!=", v) for v in dict.fromkeys(values)] or [Term(column, "notnull")]
    term = _term(node, schema)
    return [] if term is None else [_single(term)]


def _conjuncts(tree: Any, schema: pa.Schema) -> list[Predicate]:
    """The predicates the filter ``tree`` implies: its top-level AND chain (``if_else(c, x, null)`` opened as
    ``c AND x``), each conjunct translated, without duplicates, and without a ``notnull`` that another
    comparison of the same column implies."""
    out: list[Predicate] = []
    pending = [tree]
    while pending:
        node = pending.pop()
        guard = _guard(node) if _in_list(node, schema) is None else None
        if isinstance(node, _Call) and node.name == "and_kleene" and len(node.args) == 2:
            pending.extend(reversed(node.args))
        elif guard is not None:
            pending.extend(reversed(guard))
        else:
            out.extend(_conjunct(node, schema))
    compared = {p.column for p in out if isinstance(p, Term) and p.op not in ("isnull", "notnull")}
    kept = [p for p in out if not (isinstance(p, Term) and p.op == "notnull" and p.column in compared)]
    return list(dict.fromkeys(kept))


def pushdown(expr: pc.Expression | None, schema: pa.Schema) -> FilterParts:
    """The pushable conjuncts of the scan filter ``expr`` over ``schema``, and the columns it reads.

    A filter that cannot be read (a form this module does not know) pushes nothing and reads every column.
    """
    if expr is None:
        return FilterParts([], frozenset())
    result: list[FilterParts] = []
    with _stack_lock:
        previous = threading.stack_size(READER_STACK_BYTES)
        try:
            reader = threading.Thread(target=lambda: result.append(_read(expr, schema)), name="tams-scan-filter")
            reader.start()
        finally:
            threading.stack_size(previous)
    reader.join()
    return result[0] if result else FilterParts([], None)


def _read(expr: pc.Expression, schema: pa.Schema) -> FilterParts:
    try:
        tree = _tree(expr)
        rebuilt = _rebuild(tree)
        same = rebuilt.equals(expr)
        del rebuilt  # freed here, on this thread's stack (its destructor recurses too)
        if not same:
            raise ValueError("the rebuilt expression differs")
        evaluable = _balanced(tree)
    except (ValueError, KeyError, IndexError, RecursionError, pa.ArrowException) as exc:
        logger.debug("scan filter not pushed down: %s", exc)
        return FilterParts([], None)
    columns = frozenset(n.name for n in _postorder(tree) if isinstance(n, _Field))
    return FilterParts(_conjuncts(tree, schema), columns, evaluable)
