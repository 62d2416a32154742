"""A journaled transaction's writes as bytes and back: the :class:`~tams_analytics.engines.base.Change` list it made.

A payload is a JSON document (the changes: table, kind, predicates and values) and, after it, one Arrow IPC stream
per insert (the rows, exactly as they were written). Predicates are written as small tagged lists
(``["term", column, op, value]``, ``["all", ...]``, ``["any", ...]``, ``["const", bool]``); values keep their type
(timestamps, tuples of values). What a journaled write cannot hold (a predicate on another table) is refused when
the write is made, before anything is acknowledged.

>>> import pyarrow as pa
>>> from tams_analytics.engines.base import Change
>>> from tams_analytics.predicates import isin
>>> changes = [Change("flows", rows=pa.table({"id": ["a"]})), Change("flows", where=(isin("id", ["a"]),))]
>>> decode(encode(changes)) == changes
True
"""

from __future__ import annotations

import datetime as dt
import io
import json
import struct
from collections.abc import Sequence
from typing import Any, Final

import pyarrow as pa

from tams_analytics.engines.base import Change
from tams_analytics.exceptions import TamsError
from tams_analytics.predicates import AllOf, AnyOf, Const, InSubquery, Predicate, Term, Visitor

__all__ = ["JOURNALABLE", "decode", "encode", "journalable"]

VERSION: Final = 1
_LENGTH: Final = struct.Struct("<I")


class _Writer(Visitor[Any]):
    def term(self, p: Term) -> Any:
        return ["term", p.column, p.op, _value(p.value)]

    def const(self, p: Const) -> Any:
        return ["const", bool(p.value)]

    def all_of(self, p: AllOf) -> Any:
        return ["all", *(t.accept(self) for t in p.terms)]

    def any_of(self, p: AnyOf) -> Any:
        return ["any", *(t.accept(self) for t in p.terms)]

    def subquery(self, p: InSubquery) -> Any:
        raise TamsError(f"a journaled write cannot hold {p!r}: resolve it into values first")


_WRITER: Final = _Writer()


def journalable(where: Sequence[Predicate]) -> bool:
    """Whether a write restricted by ``where`` can be journaled (no predicate reads another table)."""
    try:
        for p in where:
            p.accept(_WRITER)
    except TamsError:
        return False
    return True


#: the predicate classes a journal holds
JOURNALABLE: Final = (Term, AllOf, AnyOf, Const)


def _value(v: Any) -> Any:
    if v is None or isinstance(v, bool | int | float | str):
        return v
    if isinstance(v, dt.datetime):
        return {"$dt": v.isoformat()}
    if isinstance(v, dt.date):
        return {"$date": v.isoformat()}
    if isinstance(v, tuple | list):
        return {"$tuple": [_value(x) for x in v]}
    if isinstance(v, bytes):
        return {"$bytes": v.hex()}
    raise TamsError(f"a journaled write cannot hold a value of type {type(v).__name__}: {v!r}")


def _unvalue(v: Any) -> Any:
    if isinstance(v, dict):
        if "$dt" in v:
            return dt.datetime.fromisoformat(v["$dt"])
        if "$date" in v:
            return dt.date.fromisoformat(v["$date"])
        if "$tuple" in v:
            return tuple(_unvalue(x) for x in v["$tuple"])
        if "$bytes" in v:
            return bytes.fromhex(v["$bytes"])
        raise TamsError(f"unknown journal value {v!r}")
    return v


def _predicate(node: Any) -> Predicate:
    kind = node[0]
    if kind == "term":
        return Term(node[1], node[2], _unvalue(node[3]))
    if kind == "const":
        return Const(bool(node[1]))
    if kind == "all":
        return AllOf(tuple(_predicate(n) for n in node[1:]))
    if kind == "any":
        return AnyOf(tuple(_predicate(n) for n in node[1:]))
    raise TamsError(f"unknown journal predicate {node!r}")


def encode(changes: Sequence[Change]) -> bytes:
    """``changes`` as one payload."""
    docs: list[dict[str, Any]] = []
    streams: list[bytes] = []
    for change in changes:
        doc: dict[str, Any] = {"table": change.table}
        if change.rows is not None:
            sink = io.BytesIO()
            with pa.ipc.new_stream(sink, change.rows.schema) as writer:
                writer.write_table(change.rows)
            doc["rows"] = len(streams)
            streams.append(sink.getvalue())
        else:
            doc["where"] = [p.accept(_WRITER) for p in change.where]
            if change.values is not None:
                doc["values"] = {k: _value(v) for k, v in change.values.items()}
        docs.append(doc)
    head = json.dumps({"v": VERSION, "changes": docs, "streams": [len(s) for s in streams]}).encode()
    return _LENGTH.pack(len(head)) + head + b"".join(streams)


def decode(payload: bytes) -> list[Change]:
    """The changes of a payload :func:`encode` made."""
    (n,) = _LENGTH.unpack_from(payload)
    head = json.loads(payload[_LENGTH.size : _LENGTH.size + n])
    if head.get("v") != VERSION:
        raise TamsError(f"a journal record of format {head.get('v')!r}: this tams-analytics reads format {VERSION}")
    at = _LENGTH.size + n
    tables: list[pa.Table] = []
    for size in head["streams"]:
        with pa.ipc.open_stream(pa.py_buffer(payload[at : at + size])) as reader:
            tables.append(reader.read_all())
        at += size
    changes = []
    for doc in head["changes"]:
        if "rows" in doc:
            changes.append(Change(doc["table"], rows=tables[doc["rows"]]))
        else:
            values = doc.get("values")
            changes.append(
                Change(
                    doc["table"],
                    where=tuple(_predicate(p) for p in doc["where"]),
                    values=None if values is None else {k: _unvalue(v) for k, v in values.items()},
                )
            )
    return changes
