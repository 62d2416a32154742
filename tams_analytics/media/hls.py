"""HLS playlists of a flow's segments over a timerange (RFC 8216).

* A **media playlist** lists the segments in time order: ``#EXTINF`` from each segment's timerange,
  ``#EXT-X-DISCONTINUITY`` where the flow has a gap or the media timeline jumps (``ts_offset`` or the
  init object changes), ``#EXT-X-PROGRAM-DATE-TIME`` (UTC from the TAI timeline) at the start and after each
  discontinuity, ``#EXT-X-MAP`` for fragmented MP4's init objects. Segment URIs come from ``urls`` (the
  server passes the same signed or presigned GET URLs as ``get_urls``).
* **Live**: an open-ended range (no end) on a flow that is not read-only and whose last segment ends within
  ``live_edge_ns`` of now (or that has no segment yet) gives the last ``live_segments`` segments and no
  ``#EXT-X-ENDLIST``. ``#EXT-X-MEDIA-SEQUENCE`` is the number of the range's segments before the window and
  ``#EXT-X-DISCONTINUITY-SEQUENCE`` the number of discontinuities up to its first segment, so both stay
  stable as the window slides (:class:`SequenceCounter` counts them incrementally).
* Otherwise the playlist is VOD: the range's segments from its start, at most ``max_segments`` of them (a
  longer range is cut there, with a ``#`` comment naming the timerange that continues it: playlists are
  held in memory, and players handle some thousands of entries well).
* A **master playlist** (multi flows): a variant per video member, an audio rendition group of the audio
  members, each pointing at the member's own media playlist over the same range.

Only MPEG-TS (``video/mp2t``) and fragmented MP4 (an MP4 container with ``init_segments``) play in HLS:
other flows raise :class:`NotPlayable`. Segments are read a page at a time through the catalog.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Final

from tams_analytics.exceptions import TamsError
from tams_analytics.media.tai import program_date_time
from tams_analytics.predicates import Term, isin
from tams_analytics.storage.extensions import media_extension
from tams_analytics.timerange import TimeRange

if TYPE_CHECKING:
    from tams_analytics.catalog import Catalog

NS: Final = 1_000_000_000
MPEG_TS: Final = frozenset({"video/mp2t", "video/mp2ts", "video/mpeg-ts"})
MP4: Final = frozenset({"video/mp4", "audio/mp4", "application/mp4", "video/iso.segment", "audio/iso.segment"})
#: the ``segments`` columns a playlist reads
COLUMNS: Final = ("object_id", "start_ns", "end_ns", "ts_offset", "init_object_id")
MEDIA_TYPE: Final = "application/vnd.apple.mpegurl"

#: object ids -> a URL each (None: no URL a player may use)
Urls = Callable[[Sequence[str]], Mapping[str, str | None]]


class NotPlayable(TamsError):
    """The flow's media cannot be played in HLS (its container, or a multi flow without playable members)."""


@dataclass(frozen=True)
class PlaylistOptions:
    max_segments: int = 10_000
    live_segments: int = 6
    live_edge_ns: int = 60 * NS
    page: int = 1000


def hls_kind(flow: Mapping[str, Any]) -> str | None:
    """``"ts"`` (MPEG-TS), ``"fmp4"`` (fragmented MP4: an MP4 container with init segments) or None."""
    container = (flow.get("container") or "").lower()
    if container in MPEG_TS:
        return "ts"
    if container in MP4 and (flow.get("essence_parameters") or {}).get("init_segments"):
        return "fmp4"
    return None


def segment_extension(flow: Mapping[str, Any]) -> str | None:
    """The extension players expect on the URLs of the flow's segments (``ts``, ``m4s``, ...)."""
    fragmented = bool((flow.get("essence_parameters") or {}).get("init_segments"))
    return media_extension(flow.get("container"), fragmented=fragmented)


def check_playable(flow: Mapping[str, Any]) -> str:
    kind = hls_kind(flow)
    if kind is None:
        raise NotPlayable(
            f"flow {flow['id']} has container {flow.get('container')!r}: HLS plays MPEG-TS (video/mp2t) or "
            "fragmented MP4 (an MP4 container with essence_parameters.init_segments true)"
        )
    return kind


@dataclass(frozen=True)
class _Row:
    object_id: str
    start_ns: int
    end_ns: int
    ts_offset: int
    init_object_id: str | None

    @classmethod
    def of(cls, r: Mapping[str, Any]) -> _Row:
        return cls(r["object_id"], r["start_ns"], r["end_ns"], r.get("ts_offset") or 0, r.get("init_object_id"))

    def follows(self, prev: _Row) -> bool:
        """Whether this segment plays on from ``prev`` without a discontinuity."""
        return (
            self.start_ns == prev.end_ns
            and self.ts_offset == prev.ts_offset
            and self.init_object_id == prev.init_object_id
        )


@dataclass
class Playlist:
    """A rendered media playlist and what it holds."""

    text: str
    live: bool
    segments: int
    media_sequence: int = 0
    discontinuity_sequence: int = 0
    #: the rest of the range when the playlist was cut at ``max_segments``
    continues: TimeRange | None = None


def media_playlist(
    catalog: Catalog,
    flow: Mapping[str, Any],
    timerange: TimeRange,
    urls: Urls,
    *,
    now_ns: int,
    options: PlaylistOptions = PlaylistOptions(),
    counter: SequenceCounter | None = None,
) -> Playlist:
    """The HLS media playlist of ``flow``'s segments overlapping ``timerange`` (``now_ns``: TAI now)."""
    kind = check_playable(flow)
    flow_id = flow["id"]
    where = _range_where(flow_id, timerange)
    live = False
    mseq = dseq = 0
    continues = None
    if timerange.end is None and not flow.get("read_only"):
        tail = [
            _Row.of(r)
            for r in catalog.records(
                "segments", where, columns=COLUMNS, order_by=[("start_ns", True)], limit=options.live_segments
            )
        ][::-1]
        live = not tail or tail[-1].end_ns >= now_ns - options.live_edge_ns
    if live:
        rows = tail
        if rows:
            prefix = (counter or SequenceCounter()).before(catalog, flow_id, timerange, rows[0].start_ns, options.page)
            mseq = prefix.rows
            dseq = prefix.discontinuities + (prefix.last is not None and not rows[0].follows(prefix.last))
    else:
        rows = []
        for page in _pages(catalog, where, options.page):
            rows.extend(page)
            if len(rows) > options.max_segments:
                cut = rows[options.max_segments]
                rows = rows[: options.max_segments]
                continues = TimeRange.from_ns(cut.start_ns, timerange.end_ns).intersect(timerange)
                break
    text = _render(rows, urls, kind=kind, live=live, mseq=mseq, dseq=dseq, continues=continues)
    return Playlist(text, live, len(rows), mseq, dseq, continues)


def _range_where(flow_id: str, timerange: TimeRange) -> list[Any]:
    from tams_analytics.catalog import segment_page_where

    return segment_page_where(flow_id, None if timerange.is_eternity else timerange)


def _pages(catalog: Catalog, where: Sequence[Any], size: int, *, below: int | None = None) -> Iterator[list[_Row]]:
    """The segments matching ``where`` (starting before ``below``) in time order, ``size`` at a time."""
    after: int | None = None
    while True:
        page_where = list(where)
        if after is not None:
            page_where.append(Term("start_ns", ">", after))
        if below is not None:
            page_where.append(Term("start_ns", "<", below))
        recs = catalog.records("segments", page_where, columns=COLUMNS, order_by=[("start_ns", False)], limit=size)
        if not recs:
            return
        page = [_Row.of(r) for r in recs]
        yield page
        if len(page) < size:
            return
        after = page[-1].start_ns


def _render(
    rows: Sequence[_Row], urls: Urls, *, kind: str, live: bool, mseq: int, dseq: int, continues: TimeRange | None
) -> str:
    located: dict[str, str | None] = {}
    wanted = list(dict.fromkeys([r.object_id for r in rows] + [r.init_object_id for r in rows if r.init_object_id]))
    for lo in range(0, len(wanted), 1000):
        located.update(urls(wanted[lo : lo + 1000]))
    body: list[str] = []
    prev: _Row | None = None
    init: str | None = None
    gaps = False
    for r in rows:
        if prev is not None and not r.follows(prev):
            body.append("#EXT-X-DISCONTINUITY")
        if kind == "fmp4" and r.init_object_id and (init != r.init_object_id):
            init = r.init_object_id
            init_url = located.get(init)
            if init_url:
                body.append(f'#EXT-X-MAP:URI="{init_url}"')
        if prev is None or not r.follows(prev):
            body.append(f"#EXT-X-PROGRAM-DATE-TIME:{program_date_time(r.start_ns)}")
        body.append(f"#EXTINF:{(r.end_ns - r.start_ns) / NS:.6f},")
        url = located.get(r.object_id)
        if url is None:  # no URL the reader may use: keep the numbering, tell players to skip it
            gaps = True
            body += ["#EXT-X-GAP", f"#object/{r.object_id}"]
        else:
            body.append(url)
        prev = r
    target = max((math.ceil((r.end_ns - r.start_ns) / NS) for r in rows), default=1)
    head = ["#EXTM3U", f"#EXT-X-VERSION:{8 if gaps else 6 if kind == 'fmp4' else 3}", f"#EXT-X-TARGETDURATION:{target}"]
    head.append(f"#EXT-X-MEDIA-SEQUENCE:{mseq}")
    if dseq:
        head.append(f"#EXT-X-DISCONTINUITY-SEQUENCE:{dseq}")
    if not live:
        head.append("#EXT-X-PLAYLIST-TYPE:VOD")
    tail = [] if live else ["#EXT-X-ENDLIST"]
    if continues is not None:
        tail.insert(0, f"# cut at {len(rows)} segments: the range continues with timerange={continues}")
    return "\n".join(head + body + tail) + "\n"


# -- sequence numbers of live windows ------------------------------------------------------------------------
@dataclass(frozen=True)
class Prefix:
    """What precedes a live window: the range's segments starting before ``upto``."""

    upto: int
    rows: int = 0
    discontinuities: int = 0
    last: _Row | None = None


class SequenceCounter:
    """Counts the segments and discontinuities before a live window, remembering how far it counted per
    (flow, range) so that the next poll of a sliding window reads only the segments added since.

    A remembered count is used only while the store still holds as many segments before that point (one
    count query); otherwise it counts again from the range's start.
    """

    def __init__(self, capacity: int = 256) -> None:
        self._capacity = capacity
        self._memo: OrderedDict[tuple[str, str], Prefix] = OrderedDict()
        self._lock = threading.Lock()

    def forget(self) -> None:
        """Forget every count (the next poll of each window counts from its range's start)."""
        with self._lock:
            self._memo.clear()

    def before(self, catalog: Catalog, flow_id: str, timerange: TimeRange, upto: int, page: int = 10_000) -> Prefix:
        key = (flow_id, str(timerange))
        where = _range_where(flow_id, timerange)
        with self._lock:
            known = self._memo.get(key)
        start = Prefix(upto=-(1 << 63))
        if known is not None and known.upto <= upto:
            if catalog.count("segments", [*where, Term("start_ns", "<", known.upto)]) == known.rows:
                start = known
        prefix = _extend(catalog, where, start, upto, page)
        with self._lock:
            self._memo[key] = prefix
            self._memo.move_to_end(key)
            while len(self._memo) > self._capacity:
                self._memo.popitem(last=False)
        return prefix


def _extend(catalog: Catalog, where: Sequence[Any], prefix: Prefix, upto: int, page: int) -> Prefix:
    rows, disc, last = prefix.rows, prefix.discontinuities, prefix.last
    scoped = [*where, Term("start_ns", ">=", prefix.upto)] if prefix.rows else list(where)
    for chunk in _pages(catalog, scoped, page, below=upto):
        for r in chunk:
            if last is not None and not r.follows(last):
                disc += 1
            last = r
        rows += len(chunk)
    return replace(prefix, upto=upto, rows=rows, discontinuities=disc, last=last)


# -- master playlists -------------------------------------------------------------------------------------
@dataclass
class Member:
    """A member flow of a multi flow, as a master playlist shows it."""

    flow: Mapping[str, Any]
    uri: str
    bandwidth: int
    extra: dict[str, str] = field(default_factory=dict)


def master_playlist(video: Sequence[Member], audio: Sequence[Member]) -> str:
    """A master playlist: each video member a variant (with the audio group, if any), audio members as
    renditions (or as variants when there is no video)."""
    if not video and not audio:
        raise NotPlayable("the multi flow has no video or audio member that HLS can play")
    lines = ["#EXTM3U", "#EXT-X-VERSION:6"]
    for i, a in enumerate(audio):
        ep = a.flow.get("essence_parameters") or {}
        attrs = [
            "TYPE=AUDIO",
            'GROUP-ID="audio"',
            f"NAME={_quoted(a.flow.get('label') or a.flow['id'])}",
            f"DEFAULT={'YES' if i == 0 else 'NO'}",
            "AUTOSELECT=YES",
        ]
        if ep.get("channels"):
            attrs.append(f'CHANNELS="{ep["channels"]}"')
        attrs.append(f'URI="{a.uri}"')
        lines.append("#EXT-X-MEDIA:" + ",".join(attrs))
    audio_peak = max((a.bandwidth for a in audio), default=0)
    for v in video or audio:
        ep = v.flow.get("essence_parameters") or {}
        attrs = [f"BANDWIDTH={v.bandwidth + (audio_peak if video else 0)}"]
        if ep.get("frame_width") and ep.get("frame_height"):
            attrs.append(f"RESOLUTION={ep['frame_width']}x{ep['frame_height']}")
        rate = ep.get("frame_rate")
        if rate:
            attrs.append(f"FRAME-RATE={rate['numerator'] / rate.get('denominator', 1):.3f}")
        if video and audio:
            attrs.append('AUDIO="audio"')
        lines += ["#EXT-X-STREAM-INF:" + ",".join(attrs), v.uri]
    return "\n".join(lines) + "\n"


def _quoted(text: str) -> str:
    return '"' + text.replace('"', "'").replace("\n", " ") + '"'


def members(catalog: Catalog, flow: Mapping[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The video and audio members of a multi flow that HLS can play, in collection order."""
    ids = [item["id"] for item in flow.get("flow_collection") or []]
    if not ids:
        return [], []
    found = {f["id"]: f for f in catalog.flow_docs(catalog.rows("flows", [isin("id", ids)]).to_pylist())}
    docs = [found[i] for i in ids if i in found and hls_kind(found[i])]
    video = [d for d in docs if d.get("format") == "urn:x-nmos:format:video"]
    audio = [d for d in docs if d.get("format") == "urn:x-nmos:format:audio"]
    return video, audio


def bandwidth(catalog: Catalog, flow: Mapping[str, Any], timerange: TimeRange, sample: int = 20) -> int:
    """Peak bits per second for ``#EXT-X-STREAM-INF``: the flow's ``max_bit_rate`` or ``avg_bit_rate``
    (kbit/s), else the largest rate among the range's first ``sample`` segments' objects, else 1 Mbit/s."""
    for name in ("max_bit_rate", "avg_bit_rate"):
        if flow.get(name):
            return int(flow[name]) * 1000
    rows = catalog.records(
        "segments", _range_where(flow["id"], timerange), columns=COLUMNS, order_by=[("start_ns", False)], limit=sample
    )
    if not rows:
        return 1_000_000
    sizes = catalog.rows("objects", [isin("id", [r["object_id"] for r in rows])], columns=["id", "size_bytes"])
    size_of = dict(zip(sizes.column("id").to_pylist(), sizes.column("size_bytes").to_pylist(), strict=True))
    rates = [
        size_of[r["object_id"]] * 8 * NS // max(1, r["end_ns"] - r["start_ns"])
        for r in rows
        if size_of.get(r["object_id"])
    ]
    return max(rates, default=1_000_000)
