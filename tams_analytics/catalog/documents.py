"""Source and flow documents as the API shows them: rows with their tags and collections."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from tams_analytics.catalog.tags import get_tags
from tams_analytics.codec.flows import row_to_flow
from tams_analytics.predicates import isin
from tams_analytics.schema import TagEntity

if TYPE_CHECKING:
    from tams_analytics.catalog import Catalog

__all__ = ["flow_docs", "source_collections", "source_docs"]


def source_docs(catalog: Catalog, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Source documents (tags, derived collections) for ``sources`` rows."""
    if not rows:
        return []
    ids = [r["id"] for r in rows]
    tags = get_tags(catalog, TagEntity.SOURCE, ids)
    members, collectors = source_collections(catalog, ids)
    out = []
    for r in rows:
        doc = {k: v for k, v in r.items() if v is not None}
        doc["tags"] = tags.get(r["id"], {})
        if members.get(r["id"]):
            doc["source_collection"] = members[r["id"]]
        if collectors.get(r["id"]):
            doc["collected_by"] = collectors[r["id"]]
        out.append(doc)
    return out


def flow_docs(catalog: Catalog, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Flow documents for ``flows`` rows, with tags and collections fetched in one query each."""
    if not rows:
        return []
    ids = [r["id"] for r in rows]
    tags = get_tags(catalog, TagEntity.FLOW, ids)
    coll = catalog.rows("collections", [isin("flow_id", ids)]).to_pylist()
    collected = catalog.rows("collections", [isin("member_id", ids)], columns=["flow_id", "member_id"]).to_pylist()
    by_flow: dict[str, list[dict[str, Any]]] = {}
    for c in sorted(coll, key=lambda c: (c["flow_id"], c["position"])):
        item: dict[str, Any] = {"id": c["member_id"]}
        if c["role"] is not None:
            item["role"] = c["role"]
        if c["container_mapping"] is not None:
            item["container_mapping"] = json.loads(c["container_mapping"])
        by_flow.setdefault(c["flow_id"], []).append(item)
    collected_by: dict[str, list[str]] = {}
    for c in collected:
        collected_by.setdefault(c["member_id"], []).append(c["flow_id"])
    out = []
    for r in rows:
        doc = row_to_flow(r)
        doc["tags"] = tags.get(r["id"], {})
        if r["id"] in by_flow:
            doc["flow_collection"] = by_flow[r["id"]]
        if r["id"] in collected_by:
            doc["collected_by"] = sorted(set(collected_by[r["id"]]))
        out.append(doc)
    return out


def source_collections(
    catalog: Catalog, source_ids: Sequence[str]
) -> tuple[dict[str, list[dict[str, Any]]], dict[str, list[str]]]:
    """Derived source collections: ``({source: [collection items]}, {source: [collected_by sources]})``.

    If flow F of source S collects flow F1 of source S1, S's collection holds S1 and S1 is collected by S
    (with the role F's collection gives F1; flows of one source never make it collect itself).
    """
    if not source_ids:
        return {}, {}
    flows_of = catalog.rows("flows", [isin("source_id", list(source_ids))], columns=["id", "source_id"]).to_pylist()
    flow_ids = [f["id"] for f in flows_of]
    if not flow_ids:
        return {}, {}
    as_collector = catalog.rows(
        "collections",
        [isin("flow_id", flow_ids)],
        columns=["flow_id", "member_id", "role"],
        order_by=[("flow_id", False), ("position", False)],
    )
    as_member = catalog.rows("collections", [isin("member_id", flow_ids)], columns=["flow_id", "member_id"])
    other_ids = set(as_collector.column("member_id").to_pylist()) | set(as_member.column("flow_id").to_pylist())
    source_of = {f["id"]: f["source_id"] for f in flows_of}
    missing = sorted(other_ids - set(source_of))
    if missing:
        for f in catalog.rows("flows", [isin("id", missing)], columns=["id", "source_id"]).to_pylist():
            source_of[f["id"]] = f["source_id"]
    members: dict[str, list[dict[str, Any]]] = {}
    for c in as_collector.to_pylist():
        s, m = source_of.get(c["flow_id"]), source_of.get(c["member_id"])
        if s is None or m is None or s == m:
            continue
        items = members.setdefault(s, [])
        if all(i["id"] != m for i in items):
            items.append({"id": m, **({"role": c["role"]} if c["role"] is not None else {})})
    collectors: dict[str, list[str]] = {}
    for c in as_member.to_pylist():
        s, m = source_of.get(c["flow_id"]), source_of.get(c["member_id"])
        if s is None or m is None or s == m:
            continue
        collectors.setdefault(m, [])
        if s not in collectors[m]:
            collectors[m].append(s)
    return members, collectors
