"""What a TAMS server answers about everything it holds, to compare two servers (the original at backup time and
one on the restored store): every source, flow, segment listing, object (and its media's bytes), webhook and
delete request, through the API, with what differs between two servers by design taken out (the URLs minted for
this server: signed, for its host)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any

import httpx

#: listing pages as large as the server gives
PAGE = 1000


def listing(client: httpx.Client, path: str, **params: Any) -> list[dict[str, Any]]:
    """Every item of a listing, following ``Link: rel="next"``."""
    out: list[dict[str, Any]] = []
    url: str | None = path
    query: dict[str, Any] | None = {"limit": PAGE, **params}
    while url is not None:
        r = client.get(url, params=query)
        assert r.status_code == 200, f"GET {url}: {r.status_code} {r.text[:300]}"
        out.extend(r.json())
        link = r.headers.get("link")
        url = link[link.index("<") + 1 : link.index(">")] if link else None
        query = None  # the next page's URL carries its query
    return out


def _get(client: httpx.Client, path: str, **params: Any) -> Any:
    r = client.get(path, params=params)
    assert r.status_code == 200, f"GET {path}: {r.status_code} {r.text[:300]}"
    return r.json()


def _unminted(doc: dict[str, Any]) -> dict[str, Any]:
    """An object document without the URLs minted for this server (their labels and storage ids stay)."""
    urls = [{k: v for k, v in u.items() if k not in ("url", "presigned")} for u in doc.get("get_urls") or ()]
    return {**doc, "get_urls": urls} if "get_urls" in doc else doc


def documents(client: httpx.Client, *, leave_out_flows: Iterable[str] = ()) -> dict[str, Any]:
    """Everything the server answers, by resource, keyed by id (flows in ``leave_out_flows``, with their segments
    and objects, left out)."""
    skip = set(leave_out_flows)
    flows = {f["id"]: f for f in listing(client, "/flows") if f["id"] not in skip}
    out: dict[str, Any] = {
        "service": _get(client, "/service"),
        "storage_backends": _get(client, "/service/storage-backends"),
        "sources": {s["id"]: _get(client, f"/sources/{s['id']}") for s in listing(client, "/sources")},
        "flows": {fid: _get(client, f"/flows/{fid}", include_timerange="true") for fid in flows},
        "segments": {fid: listing(client, f"/flows/{fid}/segments", accept_get_urls="") for fid in flows},
        "webhooks": {
            w["id"]: _get(client, f"/service/webhooks/{w['id']}") for w in listing(client, "/service/webhooks")
        },
        "delete_requests": {
            d["id"]: _get(client, f"/flow-delete-requests/{d['id']}") for d in listing(client, "/flow-delete-requests")
        },
    }
    object_ids = sorted({s["object_id"] for segs in out["segments"].values() for s in segs})
    out["objects"] = {oid: _unminted(_get(client, f"/objects/{oid}")) for oid in object_ids}
    return out


def media(client: httpx.Client, object_ids: Iterable[str]) -> dict[str, str]:
    """The SHA-256 of the bytes behind each object's first URL (one the server minted: its media), fetched through
    the server (objects without one are left out)."""
    out = {}
    for oid in object_ids:
        urls = [u for u in _get(client, f"/objects/{oid}").get("get_urls") or () if u.get("presigned")]
        if not urls:
            continue
        r = client.get(urls[0]["url"])
        assert r.status_code == 200, f"object {oid}: GET its media: {r.status_code}"
        out[oid] = hashlib.sha256(r.content).hexdigest()
    return out
