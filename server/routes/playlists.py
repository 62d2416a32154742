"""``/flows/{flowId}/playlist.m3u8``: an HLS playlist of a flow's segments over a timerange.

A media playlist for a flow with MPEG-TS or fragmented MP4 segments (live or VOD: see
:mod:`tams_analytics.media.hls`), with the same signed or presigned GET URLs as ``get_urls`` (and the same
URL query parameters: ``accept_get_urls``, ``accept_storage_ids``, ``presigned``, ``storage_backend_tag.*``);
a master playlist for a multi flow, whose entries are its video, audio and WebVTT members' playlists over the
same range, each variant with its ``CODECS`` (from the flow's essence parameters, else read once from the media
of its first object: :mod:`tams_analytics.media.codecs`). WebVTT flows play as subtitles. Other containers: 400.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from server.config import Settings
from server.deps import ServicesDep
from server.errors import bad_request, not_found
from server.fetch import SegmentDetails
from server.openapi import SPEC_PARAMETERS
from server.routes._common import check_uuid, get_and_head, parse_timerange
from server.stores import Stores
from server.urls import UrlOptions
from tams_analytics.catalog import Catalog
from tams_analytics.media import hls
from tams_analytics.media.codecs import CodecMemo, Media
from tams_analytics.media.tai import tai_now_ns
from tams_analytics.timerange import TimeRange

router = APIRouter(prefix="/flows", tags=["Playlists"])

MULTI = "urn:x-nmos:format:multi"


class PlaylistResponse(Response):
    media_type = hls.MEDIA_TYPE


_EXAMPLE = """#EXTM3U
#EXT-X-VERSION:3
#EXT-X-TARGETDURATION:2
#EXT-X-MEDIA-SEQUENCE:0
#EXT-X-PLAYLIST-TYPE:VOD
#EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:12:43.000Z
#EXTINF:2.000000,
https://tams.example/_media/8d0a3e3c-2f6e-4c57-9a0e-2b6f7f1c9d11.ts?method=GET&expires=1700000600&sig=...
#EXTINF:2.000000,
https://tams.example/_media/0c6f2f55-1d7e-4b3a-8a43-5e5b9d0f3a27.ts?method=GET&expires=1700000600&sig=...
#EXT-X-ENDLIST
"""
#: the spec's query parameters a playlist takes (as ``GET /flows/{flowId}/segments`` defines them)
_PARAMETERS = {
    "operation": "GET_flows-flowId-segments",
    "names": [
        "timerange",
        "accept_get_urls",
        "accept_storage_ids",
        "presigned",
        "storage_backend_tag.{name}",
        "storage_backend_tag_exists.{name}",
    ],
}
_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "An HLS playlist (RFC 8216): a media playlist of the flow's segments, or a master playlist "
        "of a multi flow's video, audio and WebVTT (subtitles) members.",
        "content": {hls.MEDIA_TYPE: {"schema": {"type": "string"}, "example": _EXAMPLE}},
    },
    400: {
        "description": "Bad request. Invalid query options, or a flow whose container HLS cannot play (HLS plays "
        "MPEG-TS, fragmented MP4: an MP4 container with `init_segments`, and WebVTT)."
    },
    404: {"description": "The Flow ID in the path is invalid."},
}


@get_and_head(
    router,
    "/{flow_id}/playlist.m3u8",
    "flows-flowId-playlist",
    summary="HLS Playlist",
    response_class=PlaylistResponse,
    responses=_RESPONSES,
    openapi_extra={SPEC_PARAMETERS: _PARAMETERS},
)
async def get_playlist(
    request: Request,
    flow_id: str,
    services: ServicesDep,
    timerange: str | None = None,
) -> Response:
    """An HLS playlist (RFC 8216) of the flow's segments over `timerange`: all of them by default; an open-ended
    range on a live flow (not read-only, its last segment recent) lists its newest segments and no `#EXT-X-ENDLIST`.
    Segment URIs are the same pre-signed URLs as the segments' `get_urls`, filtered by the same query parameters;
    their paths end in the extension of the flow's container (`.ts`, `.m4s`, ...), which players such as FFmpeg
    require (except objects stored in S3 under keys without one). A multi flow answers a master playlist of its
    video and audio members and its WebVTT members as subtitles, each variant with its `CODECS`, `BANDWIDTH` and
    `AVERAGE-BANDWIDTH`. Plays MPEG-TS (`video/mp2t`), fragmented MP4 (an MP4 container with
    `essence_parameters.init_segments`) and WebVTT (`text/vtt`). An extension of this server, not part of the TAMS
    API."""
    catalog, stores, settings = services.catalog, services.stores, services.settings
    check_uuid(flow_id, "flow id")
    tr = parse_timerange(timerange) or TimeRange.eternity()
    options = UrlOptions.from_request(request, settings.presign_get_s)
    counter = services.playlists
    text, live = await run_in_threadpool(
        _playlist, request, catalog, stores, settings, flow_id, tr, options, counter, services.codecs
    )
    headers = {"Cache-Control": "no-cache" if live else f"max-age={max(1, settings.presign_get_s // 10)}"}
    if request.method == "HEAD":  # the GET's header fields, Content-Length included, without the body
        headers["Content-Length"] = str(len(text.encode()))
        return PlaylistResponse(None, headers=headers)
    return PlaylistResponse(text, headers=headers)


def _playlist(
    request: Request,
    catalog: Catalog,
    stores: Stores,
    settings: Settings,
    flow_id: str,
    tr: TimeRange,
    options: UrlOptions,
    counter: hls.SequenceCounter,
    codecs: CodecMemo,
) -> tuple[str, bool]:
    flow = catalog.get_flow(flow_id)
    if flow is None:
        raise not_found(f"flow {flow_id} does not exist")
    try:
        if flow.get("format") == MULTI and (flow.get("flow_collection") or not hls.hls_kind(flow)):
            return _master(request, catalog, stores, codecs, flow, tr), False
        playlist = hls.media_playlist(
            catalog,
            flow,
            tr,
            _first_urls(catalog, stores, options, hls.segment_extension(flow)),
            now_ns=tai_now_ns(),
            options=hls.PlaylistOptions(
                max_segments=settings.playlist_max_segments,
                live_segments=settings.playlist_live_segments,
                live_edge_ns=int(settings.playlist_live_edge_s * 1e9),
            ),
            counter=counter,
        )
    except hls.NotPlayable as exc:
        raise bad_request(str(exc)) from exc
    return playlist.text, playlist.live


def _first_urls(catalog: Catalog, stores: Stores, options: UrlOptions, extension: str | None) -> hls.Urls:
    """``object ids -> the first of their get_urls`` (what a player fetches), their paths ending in
    ``.extension`` where the store can make them (objects stored under bare keys, before keys had extensions:
    :meth:`~tams_analytics.storage.base.ObjectStore.playable_url`)."""

    def playable(url: str) -> str:
        if extension is None:
            return url
        for store in stores:
            url = store.playable_url(url, extension)
        return url

    def urls(ids: Sequence[str]) -> Mapping[str, str | None]:
        minted = SegmentDetails(catalog, stores, options).urls_of(ids)
        return {oid: (playable(found[0]["url"]) if (found := minted.get(oid)) else None) for oid in ids}

    return urls


def _master(
    request: Request, catalog: Catalog, stores: Stores, codecs: CodecMemo, flow: dict[str, Any], tr: TimeRange
) -> str:
    found = hls.members(catalog, flow)
    # members' playlists take the same query (URL filters, an access_token), over the same range
    items = [(k, v) for k, v in request.query_params.multi_items() if k != "timerange"]
    query = urlencode(([] if tr.is_eternity else [("timerange", str(tr))]) + items)

    def member(doc: dict[str, Any]) -> hls.Member:
        uri = f"../{doc['id']}/playlist.m3u8" + (f"?{query}" if query else "")
        codec = None if hls.hls_kind(doc) == "vtt" else codecs.codec(doc, lambda: _first_media(catalog, stores, doc))
        return hls.Member(doc, uri.replace('"', "%22"), hls.bandwidth(catalog, doc, tr), codec)

    return hls.master_playlist(
        [member(v) for v in found.video], [member(a) for a in found.audio], [member(t) for t in found.subtitles]
    )


#: how much of a first object is read for its codec's parameters (they come first: an SPS, an ADTS header)
_CODEC_READ = 256 * 1024


def _first_media(catalog: Catalog, stores: Stores, flow: Mapping[str, Any]) -> Media | None:
    """The start of the flow's first object and its init object, from this service's own storage (the server
    fetches no URL a client registered), or None when it has none to read."""
    rows = catalog.segment_rows(flow["id"], limit=1).to_pylist()
    if not rows:
        return None
    init_id = rows[0].get("init_object_id")
    data = _read_start(catalog, stores, rows[0]["object_id"])
    init = _read_start(catalog, stores, init_id) if init_id else None
    if data is None or (init_id and init is None):
        return None
    return data, init


def _read_start(catalog: Catalog, stores: Stores, object_id: str) -> bytes | None:
    for instance in catalog.object_instances([object_id]).get(object_id, []):
        store = stores.get(instance.get("storage_id")) if instance.get("controlled") else None
        if store is None:
            continue
        try:
            with store.open_read(instance["storage_key"]) as stream:
                return stream.body.read(_CODEC_READ)
        except KeyError:
            continue
    return None
