"""What the lazy tables rewrite in an ibis expression before DuckDB plans it: a prefix also as a range.

DuckDB pushes no ``starts_with`` into a scan (1.3 nor 2.0), and 2.0 no longer pushes a prefix ``LIKE 'abc%'``
either (1.3 pushed it as the range ``>= 'abc' AND < 'abd'``), so ``t.filter(t.flow_id.startswith(p))`` would read
the whole table. A string starts with ``p`` exactly when it lies in ``[p, q)``, ``q`` being ``p`` with its last
character's code point one higher (:func:`prefix_bound`): strings compare by code point, which is their UTF-8
bytes' order, in DuckDB (its default binary collation), in Arrow and on VAST. :func:`prefix_ranges` puts that
range in front of every ``startswith`` of a literal and of the literal start of every ``LIKE`` pattern
(``'abc%'``, ``'abc_d%'``), keeping the original (``s >= p AND s < q AND starts_with(s, p)``: the same value
for every string and for null), so DuckDB pushes the range into the scan on both dependency sets, and
:mod:`~.arrow_filter` reads it as two comparisons. ``contains`` (and a ``LIKE`` that starts with a wildcard) has
no such range: DuckDB applies it to the rows the scan read.

>>> import ibis
>>> t = ibis.table({"label": "string"}, name="t")
>>> sql = ibis.to_sql(prefix_ranges(t.filter(t.label.startswith("ab"))), dialect="duckdb", pretty=False)
>>> print(sql.partition(" WHERE ")[2])
("t0"."label" >= 'ab') AND ("t0"."label" < 'ac') AND STARTS_WITH("t0"."label", 'ab')
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeVar

import ibis.expr.datatypes as dt
import ibis.expr.operations as ops

if TYPE_CHECKING:
    import ibis.expr.types as ir

__all__ = ["filters", "prefix_bound", "prefix_ranges"]

E = TypeVar("E", bound="ir.Expr")
_SURROGATES = range(0xD800, 0xE000)


def prefix_bound(prefix: str) -> str | None:
    """The least string above every string that starts with ``prefix`` (None: there is none).

    >>> prefix_bound("ab"), prefix_bound("a\\U0010ffff"), prefix_bound("\\ud7ff") == "\\ue000", prefix_bound("")
    ('ac', 'b', True, None)
    """
    chars = list(prefix)
    while chars:
        following = ord(chars[-1]) + 1
        if following in _SURROGATES:  # no string holds one: the next code point there is
            following = _SURROGATES.stop
        if following <= 0x10FFFF:
            return "".join(chars[:-1]) + chr(following)
        chars.pop()
    return None


def _prefix(node: ops.Node) -> str | None:
    """The literal prefix ``node`` tests for (``startswith('p')``, ``LIKE 'p%'``), or None."""
    if isinstance(node, ops.StartsWith) and isinstance(node.start, ops.Literal):
        value = node.start.value
    elif (
        isinstance(node, ops.StringSQLLike)
        and node.escape is None
        and isinstance(node.pattern, ops.Literal)
        and isinstance(node.pattern.value, str)
    ):
        pattern = node.pattern.value
        wildcard = min((i for i in (pattern.find("%"), pattern.find("_")) if i >= 0), default=-1)
        value = pattern[:wildcard]  # what every match starts with (none without a wildcard: an equality)
        if wildcard < 0 or "\\" in value:  # DuckDB takes no escape character unless told: stay on the safe side
            return None
    else:
        return None
    return value if isinstance(value, str) and value else None


def _ranged(node: ops.Node, kwargs: dict[str, Any] | None) -> ops.Node:
    node = node.__recreate__(kwargs) if kwargs else node
    prefix = _prefix(node)
    if prefix is None:
        return node
    arg: Any = node.arg
    test: ops.Node = ops.GreaterEqual(arg, ops.Literal(prefix, dt.string))
    bound = prefix_bound(prefix)
    if bound is not None:
        test = ops.And(test, ops.Less(arg, ops.Literal(bound, dt.string)))
    return ops.And(test, node)


def prefix_ranges(expr: E) -> E:
    """``expr`` with every literal prefix test also written as the range DuckDB pushes into a scan."""
    op = expr.op()
    if not op.find((ops.StartsWith, ops.StringSQLLike)):
        return expr
    return op.replace(_ranged).to_expr()  # type: ignore[no-any-return]


def filters(expr: ir.Expr) -> bool:
    """Whether ``expr`` filters rows anywhere (a filter, a join, a limit): whether reading a whole table for it
    may be a fallback rather than what it asks for.

    >>> import ibis
    >>> t = ibis.table({"label": "string"}, name="t")
    >>> filters(t.select("label")), filters(t.filter(t.label.contains("x"))), filters(t.semi_join(t, "label"))
    (False, True, True)
    """
    return bool(expr.op().find((ops.Filter, ops.JoinChain, ops.Limit)))
