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
  members and a subtitles rendition group of the WebVTT members, each pointing at the member's own media
  playlist over the same range. Each variant says what a player needs to choose it (RFC 8216, 4.3.4.2):
  ``BANDWIDTH`` and ``AVERAGE-BANDWIDTH`` (its own and its renditions' rates), ``CODECS`` (every member's codec
  string, :mod:`~tams_analytics.media.codecs`; left out when one of them is not known), ``RESOLUTION``,
  ``FRAME-RATE``, ``AUDIO`` and ``SUBTITLES``; renditions carry ``LANGUAGE`` from the flow's ``language_code``
  tag (:mod:`~tams_analytics.media.language`).

MPEG-TS (``video/mp2t``), fragmented MP4 (an MP4 container with ``init_segments``) and WebVTT (``text/vtt``,
subtitles: their cue times on the MPEG-TS timeline, or an ``X-TIMESTAMP-MAP`` to it, RFC 8216 3.5) play in HLS:
other flows raise :class:`NotPlayable`. Segments are read a page at a time through the catalog.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Final

from tams_analytics.exceptions import TamsError
from tams_analytics.media.language import bcp47
from tams_analytics.media.tai import program_date_time
from tams_analytics.predicates import Term, isin
from tams_analytics.storage.extensions import media_extension
from tams_analytics.timerange import TimeRange

if TYPE_CHECKING:
    from tams_analytics.catalog import Catalog

NS: Final = 1_000_000_000
MPEG_TS: Final = frozenset({"video/mp2t", "video/mp2ts", "video/mpeg-ts"})
MP4: Final = frozenset({"video/mp4", "audio/mp4", "application/mp4", "video/iso.segment", "audio/iso.segment"})
WEBVTT: Final = frozenset({"text/vtt"})
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
    """``"ts"`` (MPEG-TS), ``"fmp4"`` (fragmented MP4: an MP4 container with init segments), ``"vtt"`` (WebVTT)
    or None."""
    container = (flow.get("container") or "").lower()
    if container in MPEG_TS:
        return "ts"
    if container in MP4 and (flow.get("essence_parameters") or {}).get("init_segments"):
        return "fmp4"
    if container in WEBVTT:
        return "vtt"
    return None


def segment_extension(flow: Mapping[str, Any]) -> str | None:
    """The extension players expect on the URLs of the flow's segments (``ts``, ``m4s``, ...)."""
    fragmented = bool((flow.get("essence_parameters") or {}).get("init_segments"))
    return media_extension(flow.get("container"), fragmented=fragmented)


def check_playable(flow: Mapping[str, Any]) -> str:
    kind = hls_kind(flow)
    if kind is None:
        raise NotPlayable(
            f"flow {flow['id']} has container {flow.get('container')!r}: HLS plays MPEG-TS (video/mp2t), "
            "fragmented MP4 (an MP4 container with essence_parameters.init_segments true) or WebVTT (text/vtt)"
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
@dataclass(frozen=True)
class Rates:
    """A member's bit rates (bits per second): its peak segment rate and its average."""

    peak: int
    average: int | None = None


@dataclass
class Member:
    """A member flow of a multi flow, as a master playlist shows it."""

    flow: Mapping[str, Any]
    uri: str
    rates: Rates
    #: its codec string (RFC 6381), None when not known
    codecs: str | None = None


@dataclass(frozen=True)
class Members:
    """The members of a multi flow that HLS can play, by what they are, in collection order."""

    video: list[dict[str, Any]]
    audio: list[dict[str, Any]]
    subtitles: list[dict[str, Any]]


def master_playlist(video: Sequence[Member], audio: Sequence[Member], subtitles: Sequence[Member] = ()) -> str:
    """A master playlist: each video member a variant (with the audio and subtitles groups, if any), audio
    members as renditions (or as variants when there is no video), WebVTT members as subtitles renditions."""
    if not video and not audio:
        raise NotPlayable("the multi flow has no video or audio member that HLS can play")
    lines = ["#EXTM3U", "#EXT-X-VERSION:6"]
    for i, a in enumerate(audio):
        attrs = ["TYPE=AUDIO", 'GROUP-ID="audio"', *_naming(a.flow), f"DEFAULT={'YES' if i == 0 else 'NO'}"]
        attrs.append("AUTOSELECT=YES")
        channels = (a.flow.get("essence_parameters") or {}).get("channels")
        if channels:
            attrs.append(f'CHANNELS="{channels}"')
        lines.append("#EXT-X-MEDIA:" + ",".join([*attrs, f'URI="{a.uri}"']))
    for t in subtitles:
        attrs = ["TYPE=SUBTITLES", 'GROUP-ID="subtitles"', *_naming(t.flow), "DEFAULT=NO", "AUTOSELECT=YES"]
        lines.append("#EXT-X-MEDIA:" + ",".join([*attrs, f'URI="{t.uri}"']))
    # a variant's rates are its own and those of the renditions a player may add to it (the largest of each group)
    groups = [g for g in ((audio if video else []), subtitles) if g]
    peak = sum(max(m.rates.peak for m in g) for g in groups)
    averages = [
        None if any(m.rates.average is None for m in g) else max(m.rates.average or 0 for m in g) for g in groups
    ]
    # CODECS names every format a variant's media holds, its audio renditions' included (WebVTT text files have
    # no entry); a variant whose codecs are not all known goes without, rather than with part of them
    audio_codecs = [a.codecs for a in audio] if video else []
    for v in video or audio:
        ep = v.flow.get("essence_parameters") or {}
        attrs = [f"BANDWIDTH={v.rates.peak + peak}"]
        if v.rates.average is not None and None not in averages:
            attrs.append(f"AVERAGE-BANDWIDTH={v.rates.average + sum(a or 0 for a in averages)}")
        codecs = [v.codecs, *audio_codecs]
        if all(codecs):
            attrs.append(f'CODECS="{",".join(dict.fromkeys(str(c) for c in codecs))}"')
        if ep.get("frame_width") and ep.get("frame_height"):
            attrs.append(f"RESOLUTION={ep['frame_width']}x{ep['frame_height']}")
        rate = ep.get("frame_rate")
        if rate:
            attrs.append(f"FRAME-RATE={rate['numerator'] / rate.get('denominator', 1):.3f}")
        if video and audio:
            attrs.append('AUDIO="audio"')
        if subtitles:
            attrs.append('SUBTITLES="subtitles"')
        lines += ["#EXT-X-STREAM-INF:" + ",".join(attrs), v.uri]
    return "\n".join(lines) + "\n"


def _naming(flow: Mapping[str, Any]) -> list[str]:
    """A rendition's ``NAME`` (the flow's label) and ``LANGUAGE`` (its ``language_code`` tag), if it has one."""
    attrs = [f"NAME={_quoted(flow.get('label') or flow['id'])}"]
    language = bcp47((flow.get("tags") or {}).get("language_code"))
    if language:
        attrs.append(f"LANGUAGE={_quoted(language)}")
    return attrs


def _quoted(text: str) -> str:
    return '"' + text.replace('"', "'").replace("\n", " ") + '"'


def members(catalog: Catalog, flow: Mapping[str, Any]) -> Members:
    """The video, audio and WebVTT members of a multi flow that HLS can play, in collection order."""
    ids = [item["id"] for item in flow.get("flow_collection") or []]
    if not ids:
        return Members([], [], [])
    found = {f["id"]: f for f in catalog.flow_docs(catalog.rows("flows", [isin("id", ids)]).to_pylist())}
    docs = [found[i] for i in ids if i in found and hls_kind(found[i])]
    media = [d for d in docs if hls_kind(d) != "vtt"]
    return Members(
        [d for d in media if d.get("format") == "urn:x-nmos:format:video"],
        [d for d in media if d.get("format") == "urn:x-nmos:format:audio"],
        [d for d in docs if hls_kind(d) == "vtt"],
    )


def bandwidth(catalog: Catalog, flow: Mapping[str, Any], timerange: TimeRange, sample: int = 20) -> Rates:
    """Bit rates for ``#EXT-X-STREAM-INF``: the flow's ``max_bit_rate`` and ``avg_bit_rate`` (kbit/s); what they
    do not say, from the range's first ``sample`` segments' objects (the largest segment rate as the peak, all
    their bits over all their time as the average); a peak of 1 Mbit/s when there is nothing to go on."""
    peak, average = (int(flow[name]) * 1000 if flow.get(name) else None for name in ("max_bit_rate", "avg_bit_rate"))
    if peak is not None and average is not None:
        return Rates(peak, average)
    rows = catalog.records(
        "segments", _range_where(flow["id"], timerange), columns=COLUMNS, order_by=[("start_ns", False)], limit=sample
    )
    sized: list[tuple[int, int]] = []  # (bytes, ns)
    if rows:
        sizes = catalog.rows("objects", [isin("id", [r["object_id"] for r in rows])], columns=["id", "size_bytes"])
        size_of = dict(zip(sizes.column("id").to_pylist(), sizes.column("size_bytes").to_pylist(), strict=True))
        sized = [
            (size_of[r["object_id"]], max(1, r["end_ns"] - r["start_ns"])) for r in rows if size_of.get(r["object_id"])
        ]
    if peak is None:
        peak = max((b * 8 * NS // ns for b, ns in sized), default=average or 1_000_000)
    if average is None and sized:
        average = sum(b for b, _ in sized) * 8 * NS // sum(ns for _, ns in sized)
    return Rates(peak, average)
