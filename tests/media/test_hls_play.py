"""Playing a flow's HLS playlist with FFmpeg (PyAV) from a live server: every frame the range holds, in
order, across a gap and across segments with different ts_offset, each showing its own timestamp."""

from __future__ import annotations

from typing import Any

import av
import httpx

from tams_analytics.media.pattern import Stamp, read_stamp
from tests.media.conftest import NS, RATE, fmp4_media, ingest, segment_media, video_flow

FRAME_NS = NS // RATE


def play(api: httpx.Client, flow_id: str, timerange: str) -> list[Stamp | None]:
    """Open the playlist URL with FFmpeg's HLS demuxer (PyAV's FFmpeg 8, which checks segment URLs' extensions
    as stock players do: no options needed) and decode every video frame; their burnt-in stamps."""
    url = f"{str(api.base_url).rstrip('/')}/flows/{flow_id}/playlist.m3u8?timerange={timerange}"
    with av.open(url) as container:
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


def test_fragmented_mp4_plays_after_its_init_object_and_downloads_with_it(
    live_api: httpx.Client, tmp_path: Any
) -> None:
    from tams_analytics.media.download import download
    from tams_analytics.media.frames import frame_at
    from tams_analytics.media.source import ServerMedia

    flow = video_flow(container="video/mp4")
    flow["essence_parameters"]["init_segments"] = True
    assert live_api.put(f"/flows/{flow['id']}", json=flow).status_code == 201
    init, media = fmp4_media(300 * NS)
    r = live_api.post(f"/flows/{flow['id']}/storage", json={"limit": 3})
    objects = r.json()["media_objects"]
    with httpx.Client(trust_env=False) as plain:
        for m, data in zip(objects, [init, *media], strict=True):
            put = m["put_url"]
            assert plain.put(put["url"], content=data, headers={"content-type": put["content-type"]}).is_success
    init_id = objects[0]["object_id"]
    docs = [
        {
            "object_id": m["object_id"],
            "timerange": f"[{300 + i}:0_{301 + i}:0)",
            "ts_offset": "300:0",
            "init_object_id": init_id,
        }
        for i, m in enumerate(objects[1:])
    ]
    assert live_api.post(f"/flows/{flow['id']}/segments", json=docs).status_code == 201

    text = live_api.get(f"/flows/{flow['id']}/playlist.m3u8").text
    assert text.count("#EXT-X-MAP:") == 1 and "#EXT-X-DISCONTINUITY" not in text
    assert play(live_api, flow["id"], "[300:0_302:0)") == frames_of((300, 302))
    # the same media downloaded: the init object, then the fragments, one playable file
    source = ServerMedia(str(live_api.base_url).rstrip("/"))
    out = tmp_path / "clip.mp4"
    assert download(source, flow["id"], "_", out).segments == 2
    assert out.read_bytes() == init + b"".join(media)
    with av.open(str(out)) as c:
        assert [read_stamp(f.to_ndarray(format="gray")) for f in c.decode(c.streams.video[0])] == frames_of((300, 302))
    assert read_stamp(frame_at(source, flow["id"], "301:500000000")) == Stamp(301 * NS + 480_000_000)
