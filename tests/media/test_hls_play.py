"""Playing a flow's HLS playlist with FFmpeg (PyAV) from a live server: every frame the range holds, in
order, across a gap and across segments with different ts_offset, each showing its own timestamp."""

from __future__ import annotations

from typing import Any

import av
import httpx

from tams_analytics.media.pattern import Stamp, read_stamp
from tests.media.conftest import NS, RATE, ingest, segment_media, video_flow

FRAME_NS = NS // RATE
#: FFmpeg 7.1+ refuses segment URLs without a media file extension unless told otherwise; TAMS object URLs
#: (signed or presigned) have none (VLC, hls.js and Safari do not check)
HLS_OPTIONS = {"extension_picky": "0"}


def play(api: httpx.Client, flow_id: str, timerange: str) -> list[Stamp | None]:
    """Open the playlist URL with FFmpeg's HLS demuxer and decode every video frame; their burnt-in stamps."""
    url = f"{str(api.base_url).rstrip('/')}/flows/{flow_id}/playlist.m3u8?timerange={timerange}"
    with av.open(url, options=HLS_OPTIONS) as container:
        return [read_stamp(frame.to_image()) for frame in container.decode(container.streams.video[0])]


def frames_of(*seconds: tuple[int, int]) -> list[Stamp]:
    """The stamps of every frame of the flow-time spans ``[a, b)`` (seconds)."""
    return [Stamp(t) for a, b in seconds for t in range(a * NS, b * NS, FRAME_NS)]


def test_a_playlist_plays_every_frame_across_a_gap(live_api: httpx.Client) -> None:
    flow = video_flow()
    assert live_api.put(f"/flows/{flow['id']}", json=flow).status_code == 201
    starts = [100, 101, 103, 104]
    segments = [{"timerange": f"[{s}:0_{s + 1}:0)"} for s in starts]
    ingest(live_api, flow["id"], segments, [segment_media(s * NS) for s in starts])

    text = live_api.get(f"/flows/{flow['id']}/playlist.m3u8", params={"timerange": "[100:0_104:0)"}).text
    assert text.count("#EXTINF:1.000000,") == 3 and text.count("#EXT-X-DISCONTINUITY\n") == 1
    assert text.rstrip().endswith("#EXT-X-ENDLIST")

    stamps = play(live_api, flow["id"], "[100:0_104:0)")
    assert len(stamps) == 3 * RATE  # exactly the frames of the three segments in the range
    assert stamps == frames_of((100, 102), (103, 104))


def test_a_playlist_plays_across_a_change_of_ts_offset(live_api: httpx.Client) -> None:
    """Two abutting segments whose objects both start at media time 10 s: the media timeline jumps back
    where the flow's does not, so the playlist marks a discontinuity and the player follows it."""
    flow = video_flow()
    assert live_api.put(f"/flows/{flow['id']}", json=flow).status_code == 201
    segments: list[dict[str, Any]] = [
        {"timerange": "[200:0_201:0)", "ts_offset": "190:0"},
        {"timerange": "[201:0_202:0)", "ts_offset": "191:0"},
    ]
    media = [segment_media(200 * NS, ts_offset=190 * NS), segment_media(201 * NS, ts_offset=191 * NS)]
    ingest(live_api, flow["id"], segments, media)

    text = live_api.get(f"/flows/{flow['id']}/playlist.m3u8", params={"timerange": "[200:0_202:0)"}).text
    assert text.count("#EXT-X-DISCONTINUITY\n") == 1
    assert play(live_api, flow["id"], "[200:0_202:0)") == frames_of((200, 202))
