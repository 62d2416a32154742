"""The one guard every write to a flow passes: the flow exists, is not being deleted, and may be written;
and :func:`known_flow`, what an analyst's question about one flow checks when the answer is empty.

On a store other processes write too (not the engine's :attr:`~tams_analytics.engines.base.Capabilities.
sole_writer`), a write that depends on what a flow holds first claims the flow's row (:func:`claim_flows`):
of two transactions claiming one row, the store commits one and refuses the other, which is then retried
(:mod:`~tams_analytics.catalog.conflicts`) and sees what the first stored.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from tams_analytics.exceptions import ConflictError, NotFoundError, ReadOnlyError, TamsError
from tams_analytics.predicates import Predicate, Term, isin
from tams_analytics.schema import FLOWS
from tams_analytics.statuses import UNFINISHED_DELETE_REQUESTS

if TYPE_CHECKING:
    from tams_analytics.catalog import Catalog

__all__ = [
    "check_writable",
    "claim_flows",
    "flow_id_text",
    "flow_not_found",
    "known_flow",
    "looks_like_id_start",
    "pending_flow_deletions",
    "refuse_if_being_deleted",
    "restore_flows",
    "writable_flow",
]

#: the columns of a flow row the guard returns
FLOW_ROW = tuple(f.name for f in FLOWS)
#: what the TAMS specification's flow ids look like (a UUID)
UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_UUID_TAIL = "00000000-0000-0000-0000-000000000000"
#: the shortest text taken for the start of an id (fewer hex digits read as a word, e.g. a label "bad")
ID_START_MIN = 4
#: how many flows whose id starts with the text a message names
NAMED_FLOWS = 5
#: where the command line lists every flow's id and label
LISTS_FLOWS_ON_CLI = "tams-analytics report coverage --store URL lists every flow's id and label"


def looks_like_id_start(text: str) -> bool:
    """Whether ``text`` is the start of a UUID, not a whole one (e.g. its first 8 hex digits, as people copy them).

    >>> looks_like_id_start("adb8d058"), looks_like_id_start("adb8d058-9a"), looks_like_id_start("Evening News")
    (True, True, False)
    """
    return ID_START_MIN <= len(text) < len(_UUID_TAIL) and bool(UUID.match(text + _UUID_TAIL[len(text) :]))


def flow_not_found(flow_id: str, starting: Sequence[tuple[str, str | None]] | None = None) -> TamsError:
    """The error for ``flow_id``, which names no flow: a :class:`NotFoundError` for a whole UUID; for the start of
    one, that it is only the start, with the flows whose id starts with it (``starting``: ``(id, label)``); else
    that it is not a flow id at all (e.g. a label given for one). In the library's words, with the command
    line's (``cli``).

    >>> print(flow_not_found("adb8d058", [("adb8d058-9a82-4575-9b1e-0c3a3d6f0e11", "News")]))
    'adb8d058' is the start of a flow id, not a whole one: the flow whose id starts with it is \
adb8d058-9a82-4575-9b1e-0c3a3d6f0e11 (News); give its whole id
    """
    if UUID.match(flow_id):
        return NotFoundError(f"no flow {flow_id} in this store")
    if looks_like_id_start(flow_id):
        found = list(starting or ())
        if found:
            named = ", ".join(f"{i} ({label})" if label else i for i, label in found[:NAMED_FLOWS])
            more = f" and {len(found) - NAMED_FLOWS} more" if len(found) > NAMED_FLOWS else ""
            which = "the flow whose id starts with it is" if len(found) == 1 else "flows whose id starts with it:"
            said = f"{flow_id!r} is the start of a flow id, not a whole one: {which} {named}{more}; give its whole id"
            return TamsError(said, cli=said)
        head = (
            f"{flow_id!r} looks like the start of a flow id, but no flow's id here starts with it "
            "(a flow id is a whole UUID"
        )
        return TamsError(
            f"{head}; to find a flow by its label: cat.flows(label=...))", cli=f"{head}; {LISTS_FLOWS_ON_CLI})"
        )
    head = f"{flow_id!r} is not a flow id: flow ids are UUIDs"
    return TamsError(
        f"{head} (to find a flow by its label: cat.flows(label={flow_id!r}))", cli=f"{head} ({LISTS_FLOWS_ON_CLI})"
    )


def flows_starting_with(catalog: Catalog, prefix: str) -> list[tuple[str, str | None]]:
    """``(id, label)`` of the flows whose id starts with ``prefix`` (case as ids are written: lowercase), in id
    order, one more than a message names (so it can say there are more)."""
    rows = catalog.records(
        "flows",
        [Term("id", "startswith", prefix.lower())],
        columns=["id", "label"],
        order_by=[("id", False)],
        limit=NAMED_FLOWS + 1,
    )
    return [(r["id"], r.get("label")) for r in rows]


def flow_id_text(flow_id: object, name: str = "flow_id") -> str:
    """``flow_id`` if it is a non-empty string (one flow's id), else a :class:`TamsError` saying what it is.

    >>> flow_id_text(["a", "b"])
    Traceback (most recent call last):
    ...
    tams_analytics.exceptions.TamsError: flow_id names one flow: a string (a UUID), not list ['a', 'b']
    """
    if not isinstance(flow_id, str) or not flow_id.strip():
        raise TamsError(f"{name} names one flow: a string (a UUID), not {type(flow_id).__name__} {flow_id!r}")
    return flow_id


def known_flow(catalog: Catalog, flow_id: object) -> str:
    """``flow_id``, if the store has that flow; else an error saying whether it is not a flow id at all
    (:class:`TamsError`, e.g. a label given for an id) or names no flow here (:class:`NotFoundError`).

    Analytics of one flow call it when their answer is empty, so a typo is not read as "no segments" and the
    common case costs no query. The start of an id (its first 8 hex digits, say) is said to be one, naming the
    flows whose id starts with it (:func:`flow_not_found`).
    """
    flow_id = flow_id_text(flow_id)
    if catalog.exists("flows", [Term("id", "==", flow_id)]):
        return flow_id
    raise flow_not_found(flow_id, flows_starting_with(catalog, flow_id) if looks_like_id_start(flow_id) else None)


def writable_flow(
    catalog: Catalog,
    flow_id: str,
    *,
    even_read_only: bool = False,
    deleting: bool = False,
    needs_container: str | None = None,
) -> dict[str, Any]:
    """The flow's row, if it may be written; else the error that says why not (see :func:`check_writable`).

    Call it inside the write's transaction, so that the flow cannot change between check and write.
    """
    found = catalog.records("flows", [Term("id", "==", flow_id)], columns=FLOW_ROW, limit=1)
    row = dict(found[0]) if found else None
    requests = () if deleting or row is None else pending_flow_deletions(catalog, [flow_id]).get(flow_id, ())
    return check_writable(
        flow_id, row, requests, even_read_only=even_read_only, deleting=deleting, needs_container=needs_container
    )


def claim_flows(catalog: Catalog, flow_ids: Sequence[str], now: Any) -> dict[str, Any] | None:
    """On a shared store, claim the flows' rows for this transaction before reading what they hold: set
    their ``segments_updated`` to ``now`` (a write that always changes the row), so that a concurrent
    transaction claiming one of them conflicts. Returns the values it replaced, by flow, for
    :func:`restore_flows` to put back on flows the transaction leaves unchanged; None when nothing was
    claimed (the sole writer of a store needs no claim: its writes are serialised in-process).
    """
    if catalog.engine.capabilities.sole_writer or not flow_ids:
        return None
    where = [isin("id", list(flow_ids))]
    rows = catalog.records("flows", where, columns=["id", "segments_updated"])
    before = {r["id"]: r["segments_updated"] for r in rows}
    if before:
        catalog.engine.update("flows", where, {"segments_updated": now})
    return before


def restore_flows(catalog: Catalog, before: Mapping[str, Any]) -> None:
    """Put back the ``segments_updated`` :func:`claim_flows` replaced (flows whose segments did not change
    keep their value; the rows were still written, so the claim holds)."""
    by_value: dict[Any, list[str]] = {}
    for flow_id, value in before.items():
        by_value.setdefault(value, []).append(flow_id)
    for value, ids in by_value.items():
        catalog.engine.update("flows", [isin("id", ids)], {"segments_updated": value})


def check_writable(
    flow_id: str,
    row: dict[str, Any] | None,
    deletions: Sequence[Mapping[str, Any]],
    *,
    even_read_only: bool = False,
    deleting: bool = False,
    needs_container: str | None = None,
) -> dict[str, Any]:
    """``row`` (the flow's), if it may be written given the flow's pending flow ``deletions``:

    * it must exist (:class:`NotFoundError`);
    * it must not have a pending flow delete request (:class:`ConflictError`: the write would be lost
      with the flow), unless the write is that request's own deletion (``deleting``);
    * it must not be read-only (:class:`ReadOnlyError`), unless ``even_read_only`` (a write of the
      ``read_only`` flag itself, or a deletion a delete request already accepted);
    * with ``needs_container`` (what the write is, for the message), it must have a container set.
    """
    if row is None:
        raise NotFoundError(f"flow {flow_id} does not exist")
    if not deleting:
        refuse_if_being_deleted(row, deletions)
    if row.get("read_only") and not even_read_only:
        raise ReadOnlyError(f"flow {flow_id} is read-only")
    if needs_container is not None and not row.get("container"):
        raise ConflictError(f"flow {flow_id} has no container set, so {needs_container}")
    return row


def pending_flow_deletions(catalog: Catalog, flow_ids: Iterable[str]) -> dict[str, list[dict[str, Any]]]:
    """``{flow_id: [pending flow delete requests]}`` for the given flows, in one query."""
    where: list[Predicate] = [
        isin("flow_id", flow_ids),
        Term("delete_flow", "==", True),
        Term("status", "isin", UNFINISHED_DELETE_REQUESTS),
    ]
    out: dict[str, list[dict[str, Any]]] = {}
    for r in catalog.records("delete_requests", where, columns=["flow_id", "created"]):
        out.setdefault(r["flow_id"], []).append(r)
    return out


def refuse_if_being_deleted(flow: Mapping[str, Any], deletions: Sequence[Mapping[str, Any]]) -> None:
    """A flow with a pending flow delete request takes no new writes: they would be lost with it.

    Only requests made for this incarnation of the flow count (made after it was created): a flow
    deleted and created again with the same id is not the one an older request deletes.
    """
    for request in deletions:
        if flow.get("created") is None or request["created"] >= flow["created"]:
            raise ConflictError(f"flow {flow['id']} is being deleted by a flow delete request; retry once it is done")
