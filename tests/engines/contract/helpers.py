"""Small builders and readers the contract tests share: documents to write, ids and rows to compare."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from tams_analytics.catalog import Catalog, utcnow

VIDEO = "urn:x-nmos:format:video"
AUDIO = "urn:x-nmos:format:audio"
MULTI = "urn:x-nmos:format:multi"


def flow(source_id: str | None = None, fmt: str = VIDEO, **extra: Any) -> dict[str, Any]:
    """A new video (or ``fmt``) flow document with a container, so it can take segments."""
    return {
        "id": str(uuid.uuid4()),
        "source_id": source_id or str(uuid.uuid4()),
        "format": fmt,
        "codec": "video/h264",
        "container": "video/mp2t",
        "essence_parameters": {"frame_width": 1920, "frame_height": 1080},
        **extra,
    }


def multi_flow(members: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    """A multi-essence flow document collecting ``members`` (collection items: ``id``, maybe ``role``)."""
    source_id = str(uuid.uuid4())
    return {"id": str(uuid.uuid4()), "source_id": source_id, "format": MULTI, "flow_collection": members, **extra}


def put(catalog: Catalog, **extra: Any) -> dict[str, Any]:
    """Store a new flow (``flow(**extra)``) and return its document."""
    f = flow(**extra)
    catalog.put_flow(f)
    return f


def seg(oid: str, tr: str, **extra: Any) -> dict[str, Any]:
    """A segment document."""
    return {"object_id": oid, "timerange": tr, **extra}


def seconds(n: int, start: int = 0, prefix: str = "o") -> list[dict[str, Any]]:
    """``n`` abutting one-second segments from ``start`` s, objects ``{prefix}{second}``."""
    return [seg(f"{prefix}{i}", f"[{i}:0_{i + 1}:0)") for i in range(start, start + n)]


def stored(catalog: Catalog, flow_id: str) -> list[str]:
    """The flow's segment timeranges, in time order."""
    return catalog.segment_rows(flow_id).column("timerange").to_pylist()


def ids(table: Any) -> set[str]:
    """The ``id`` column of a lazy ibis table (``catalog.flows(...)``, ``catalog.sources(...)``) as a set."""
    return set(table.select("id").to_pyarrow().column("id").to_pylist())


def objects(catalog: Catalog) -> dict[str, dict[str, Any]]:
    """Every ``objects`` row (registered or only allocated), by id."""
    return {r["id"]: r for r in catalog.rows("objects").to_pylist()}


def soon() -> dt.datetime:
    """A moment just ahead of now: everything stamped so far is before it."""
    return utcnow() + dt.timedelta(seconds=5)
