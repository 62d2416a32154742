"""The demo's media is real: every kind decodes with FFmpeg (PyAV) at its flow's parameters, each object
exactly its segment long, its clock where TAMS says (media time + ts_offset = flow time), and video frames
show where they came from; downloads and frame_at read it back through the library's storage."""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest

import tams_analytics as ta
from tams_analytics.catalog import Catalog, connect
from tams_analytics.cli.__main__ import main
from tams_analytics.media.pattern import Stamp, read_stamp
from tams_analytics.media.pts import PTS_HZ, PTS_WRAP, ns_to_pts, pts_offset_ns
from tams_analytics.storage.local import LocalObjectStore
from tams_analytics.storage.spec import open_storage
from tests.media.conftest import continuity_breaks

NS = 1_000_000_000


@dataclass
class Demo:
    url: str
    objects: Path
    catalog: Catalog
    store: LocalObjectStore

    def flow(self, label_end: str, title: str = "Evening News") -> dict[str, Any]:
        rows = self.catalog.rows("flows").to_pylist()
        return next(f for f in rows if f["label"] == f"{title} ({label_end})")

    def segments(self, flow_id: str, n: int = 2) -> list[dict[str, Any]]:
        return self.catalog.segment_rows(flow_id, limit=n).to_pylist()

    def media(self, object_id: str) -> bytes:
        (instance,) = self.catalog.object_instances([object_id])[object_id]
        return self.store.get_bytes(instance["storage_key"])


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    root = tmp_path_factory.mktemp("demo-media")
    objects = root / "objects"
    objects.mkdir()
    url = f"duckdb:///{root / 'demo.duckdb'}"
    assert main(["demo", "--store", url, "--segments", "60", "--programmes", "1", "--storage", f"local:{objects}"]) == 0
    cat = connect(url)
    store = open_storage(f"local:{objects}")
    assert isinstance(store, LocalObjectStore)
    yield Demo(url, objects, cat, store)
    cat.close()


def decode_video(data: bytes) -> tuple[Any, list[Any]]:
    with av.open(io.BytesIO(data)) as c:
        stream = c.streams.video[0]
        frames = list(c.decode(stream))
        return stream.codec_context, frames


def stamp(frame: Any) -> Stamp | None:
    """The stamp burnt into a decoded frame (read from its luma plane: no colour conversion)."""
    return read_stamp(frame.to_ndarray(format="gray"))


def ticks(frame: Any) -> int:
    return round(frame.pts * frame.time_base * PTS_HZ) % PTS_WRAP


@pytest.mark.parametrize(("kind", "size", "frames"), [("video", (1920, 1080), 50), ("proxy", (960, 540), 100)])
def test_video_decodes_at_the_flows_size_and_rate_and_shows_its_time(
    demo: Demo, kind: str, size: tuple[int, int], frames: int
) -> None:
    flow = demo.flow(kind)
    assert (flow["frame_width"], flow["frame_height"]) == size and flow["container"] == "video/mp2t"
    head, later = demo.segments(flow["id"])
    stamps = []
    for seg in (head, later):
        data = demo.media(seg["object_id"])
        assert demo.catalog.row("objects", [_id(seg["object_id"])])["size_bytes"] == len(data)
        ctx, decoded = decode_video(data)
        assert (ctx.name, ctx.width, ctx.height) == ("h264", *size)
        duration = seg["end_ns"] - seg["start_ns"]
        assert len(decoded) == frames == duration * 25 // NS  # exactly the segment's frames at 25 fps
        assert seg["ts_offset"] == pts_offset_ns(seg["start_ns"])
        # media time + ts_offset = flow time, frame by frame
        step = PTS_HZ // 25
        assert [ticks(f) for f in decoded] == [
            (ns_to_pts(seg["start_ns"] - seg["ts_offset"]) + i * step) % PTS_WRAP for i in range(frames)
        ]
        stamps.append([stamp(f) for f in decoded])
    # the first segment is stamped with each frame's TAI time; later ones (one encode, re-timed) with
    # each frame's offset into its segment
    assert stamps[0] == [Stamp(head["start_ns"] + i * NS // 25) for i in range(frames)]
    assert stamps[1] == [Stamp(i * NS // 25, relative=True) for i in range(frames)]


def _id(object_id: str) -> Any:
    from tams_analytics.predicates import Term

    return Term("id", "==", object_id)


def test_audio_is_aac_at_the_flows_rate_and_channels_exactly_a_segment_long(demo: Demo) -> None:
    flow = demo.flow("audio")
    for seg in demo.segments(flow["id"]):
        with av.open(io.BytesIO(demo.media(seg["object_id"]))) as c:
            stream = c.streams.audio[0]
            samples = [f for f in c.decode(stream)]
            essence = demo.catalog.get_flow(flow["id"])["essence_parameters"]
            assert (stream.codec_context.name, stream.codec_context.sample_rate) == ("aac", essence["sample_rate"])
            assert stream.codec_context.channels == essence["channels"] == 2
        assert sum(f.samples for f in samples) * NS // 48_000 == seg["end_ns"] - seg["start_ns"]
        assert ticks(samples[0]) == ns_to_pts(seg["start_ns"] - seg["ts_offset"])


def test_captions_are_webvtt_cues_naming_their_time(demo: Demo) -> None:
    flow = demo.flow("captions")
    assert flow["container"] == "text/vtt"
    seg = demo.segments(flow["id"], 1)[0]
    data = demo.media(seg["object_id"])
    with av.open(io.BytesIO(data), format="webvtt") as c:
        cues = [p for p in c.demux(c.streams.subtitles[0]) if p.size]
        texts = [bytes(p).decode() for p in cues]
        times = [round(p.pts * p.time_base * 1000) for p in cues]  # ms
    assert len(cues) == (seg["end_ns"] - seg["start_ns"]) // NS == 10
    assert texts[0] == f"Evening News (captions): TAI {seg['start_ns'] // NS}:0 (22:12:43 UTC)"
    # cue times are media times on the video's MPEG-TS timeline: media time + ts_offset = flow time (to the ms)
    assert seg["ts_offset"] == pts_offset_ns(seg["start_ns"])
    media_ms = [(seg["start_ns"] + k * NS - seg["ts_offset"] + 500_000) // 1_000_000 for k in range(10)]
    assert times == media_ms
    # and the HLS X-TIMESTAMP-MAP ties the first cue's time to the 90 kHz clock value the video has then
    mpegts = ns_to_pts(seg["start_ns"] - seg["ts_offset"])
    local = data.decode().splitlines()[1].split(",LOCAL:")[1]
    assert data.decode().splitlines()[1] == f"X-TIMESTAMP-MAP=MPEGTS:{mpegts},LOCAL:{local}"
    h, m, sec = local.split(":")
    assert round((int(h) * 3600 + int(m) * 60 + float(sec)) * 1000) == media_ms[0]


@pytest.mark.parametrize("kind", ["video", "proxy", "audio"])
def test_consecutive_objects_of_a_flow_continue_each_others_continuity_counters(demo: Demo, kind: str) -> None:
    """As one encoder writing the flow would: the first (stamped, encoded on its own) and the re-timed copies
    after it read as one transport stream, every PID's counter running on (PAT, PMT and SDT included)."""
    flow = demo.flow(kind)
    segs = demo.segments(flow["id"], 4)
    objects = [demo.media(s["object_id"]) for s in segs]
    assert continuity_breaks(b"".join(objects)) == []
    assert continuity_breaks(b"".join(objects[2:])) == []  # from anywhere in the flow
    pids = {(d[i + 1] & 0x1F) << 8 | d[i + 2] for d in objects for i in range(0, len(d), 188)}
    assert {0x0, 0x11, 0x1000, 0x100} <= pids


def test_counters_follow_a_segments_place_in_its_flow_across_gaps() -> None:
    """Segment k of a flow continues segment k - 1, however far apart in time: a playlist lists them one after
    the other (with a discontinuity) and the player's demuxer reads on."""
    from tams_analytics.demo.kinds import KINDS
    from tams_analytics.demo.media import DemoMedia, ts_offsets

    audio = next(k for k in KINDS if k.name == "audio")
    starts = np.array([0, 1, 5, 30], np.int64) * audio.segment_ns + 1_700_000_000 * NS  # gaps after the second
    ends = starts + audio.segment_ns
    media = DemoMedia()
    objects = media.objects(audio, starts, ends, ts_offsets(starts), first=7, title="x")
    assert continuity_breaks(b"".join(objects)) == []
    # a later batch of the same flow carries on from the earlier one
    later = starts[:1] + 40 * audio.segment_ns
    more = media.objects(audio, later, later + audio.segment_ns, ts_offsets(later), first=11, title="x")
    assert continuity_breaks(b"".join(objects + more)) == []


def test_frame_at_shows_the_frame_of_the_timestamp(demo: Demo) -> None:
    media = ta.media.attach(demo.catalog, f"local:{demo.objects}")
    flow = demo.flow("video")
    head, later = demo.segments(flow["id"])
    at = head["start_ns"] + 13 * NS // 25 + 5_000_000  # between frames 13 and 14
    image = media.frame_at(flow["id"], at)
    assert image.size == (1920, 1080)
    assert read_stamp(image) == Stamp(head["start_ns"] + 13 * NS // 25)
    assert image.info["tams_timestamp"] == f"{head['start_ns'] // NS}:520000000"
    copy = media.frame_at(flow["id"], f"{later['start_ns'] // NS}:999999998")
    assert read_stamp(copy) == Stamp(24 * NS // 25, relative=True)  # 2 ns before the next frame: frame 24
    assert read_stamp(media.frame_at(flow["id"], later["start_ns"] + NS - 1)) == Stamp(NS, relative=True)


def test_download_concatenates_the_objects_of_a_range(demo: Demo, tmp_path: Path) -> None:
    flow = demo.flow("proxy")
    segs = demo.segments(flow["id"], 3)
    tr = f"[{segs[0]['start_ns'] // NS}:0_{segs[2]['end_ns'] // NS}:0)"
    out = tmp_path / "proxy.ts"
    code = main(
        [
            "download",
            "--store",
            demo.url,
            "--storage",
            f"local:{demo.objects}",
            "--flow",
            flow["id"],
            "--timerange",
            tr,
            "--out",
            str(out),
        ]
    )
    assert code == 0
    assert out.read_bytes() == b"".join(demo.media(s["object_id"]) for s in segs)
    _, frames = decode_video(out.read_bytes())
    assert len(frames) == 300
    result = ta.media.attach(demo.catalog, f"local:{demo.objects}").download(flow["id"], tr, tmp_path / "again.ts")
    assert result.segments == 3 and (tmp_path / "again.ts").read_bytes() == out.read_bytes()
