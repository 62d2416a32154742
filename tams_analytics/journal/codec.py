"""A journaled transaction's writes as bytes and back: the :class:`~tams_analytics.engines.base.Change` list it made.

A payload is a JSON document (the changes: table, kind, predicates and values) and, after it, the rows of each insert
(exactly as they were written) as Arrow IPC messages: the schema's, then one record batch (none for no rows). An IPC
stream per insert (format 1, still read) cost a live registration's record about 20 µs an insert more to write and 8
more to read: the stream writer's set-up, and its schema message read back each time. Predicates are written as small
tagged lists (``["term", column, op, value]``, ``["all", ...]``, ``["any", ...]``, ``["const", bool]``); values keep
their type (timestamps, tuples of values). What a journaled write cannot hold (a predicate on another table) is
refused when the write is made, before anything is acknowledged.

>>> import pyarrow as pa
>>> from tams_analytics.engines.base import Change
>>> from tams_analytics.predicates import isin
>>> changes = [Change("flows", rows=pa.table({"id": ["a"]})), Change("flows", where=(isin("id", ["a"]),))]
>>> decode(encode(changes)) == changes
True
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import struct
from collections.abc import Sequence
from typing import Any, Final

import pyarrow as pa

from tams_analytics.engines.base import Change
from tams_analytics.exceptions import TamsError
from tams_analytics.predicates import AllOf, AnyOf, Const, InSubquery, Predicate, Term, Visitor

__all__ = ["JOURNALABLE", "decode", "encode", "journalable"]

VERSION: Final = 2
#: the formats :func:`decode` reads (1: an IPC stream per insert)
READABLE: Final = (1, 2)
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
    parts: list[bytes | pa.Buffer] = []
    sizes: list[int] = []
    for change in changes:
        doc: dict[str, Any] = {"table": change.table}
        if change.rows is not None:
            rows = change.rows
            messages = [rows.schema.serialize()]
            if rows.num_rows:
                messages += [b.serialize() for b in rows.combine_chunks().to_batches()]
            doc["rows"] = [len(sizes), len(messages)]
            parts += messages
            sizes += [m.size for m in messages]
        else:
            doc["where"] = [p.accept(_WRITER) for p in change.where]
            if change.values is not None:
                doc["values"] = {k: _value(v) for k, v in change.values.items()}
        docs.append(doc)
    head = json.dumps({"v": VERSION, "changes": docs, "parts": sizes}).encode()
    return b"".join([_LENGTH.pack(len(head)), head, *parts])


def decode(payload: bytes) -> list[Change]:
    """The changes of a payload :func:`encode` made (of either format)."""
    (n,) = _LENGTH.unpack_from(payload)
    head = json.loads(payload[_LENGTH.size : _LENGTH.size + n])
    version = head.get("v")
    if version not in READABLE:
        raise TamsError(f"a journal record of format {version!r}: this tams-analytics reads formats {READABLE}")
    buffer = pa.py_buffer(payload)
    at = _LENGTH.size + n
    messages: list[pa.Buffer] = []
    for size in head["parts" if version == 2 else "streams"]:
        messages.append(buffer.slice(at, size))
        at += size
    changes = []
    for doc in head["changes"]:
        if "rows" in doc:
            changes.append(Change(doc["table"], rows=_rows(messages, doc["rows"], version)))
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


@functools.lru_cache(maxsize=64)
def _schema(message: bytes) -> pa.Schema:
    """The schema a message holds (the few tables' schemas recur in every record)."""
    return pa.ipc.read_schema(pa.py_buffer(message))


def _rows(messages: Sequence[pa.Buffer], where: Any, version: int) -> pa.Table:
    """An insert's rows: in format 2 ``where`` is ``[first, count]`` of ``messages`` (the schema's, then the record
    batches), in format 1 the index of its stream."""
    if version == 1:
        with pa.ipc.open_stream(messages[where]) as reader:
            return reader.read_all()
    first, count = where
    schema = _schema(messages[first].to_pybytes())
    batches = [pa.ipc.read_record_batch(m, schema) for m in messages[first + 1 : first + count]]
    return pa.Table.from_batches(batches, schema)
