"""Media test helpers: tiny real H.264 segments with their timestamps burnt in, a live server on 127.0.0.1,
and the ingest a real client does (allocate storage, PUT the bytes to the put_url, POST the segments)."""

from __future__ import annotations

import contextlib
import io
import struct
import uuid
from collections.abc import Iterator
from fractions import Fraction
from typing import Any

import av
import httpx
import pytest

from tams_analytics.demo.media import VideoShape, video_frames
from tams_analytics.media.encode import h264_ts
from tams_analytics.media.mpegts import TsTemplate
from tams_analytics.media.pts import ns_to_pts
from tests.fixtures.live import serve

NS = 1_000_000_000
#: the tests' video: tiny, so encoding and decoding cost milliseconds
W, H, RATE = 96, 64, 25
SHAPE = VideoShape(W, H, Fraction(RATE))


def segment_media(start_ns: int, seconds: float = 1.0, *, ts_offset: int = 0) -> bytes:
    """An MPEG-TS object of ``seconds`` of video whose frames carry their flow timestamps from ``start_ns``,
    with media timestamps ``flow time - ts_offset``."""
    frames = video_frames(SHAPE, SHAPE.frames(int(seconds * NS)), start_ns, "test")
    return TsTemplate.parse(h264_ts(frames, W, H, SHAPE.rate, preset="ultrafast")).at(ns_to_pts(start_ns - ts_offset))


def continuity_breaks(stream: bytes) -> list[tuple[int, int, int]]:
    """Where ``stream``'s continuity counters break ISO/IEC 13818-1 (2.4.3.3): ``(packet, PID, counter)`` of every
    packet whose counter is not its PID's last one plus one (with a payload) or the last one (without)."""
    last: dict[int, int] = {}
    breaks = []
    for i in range(0, len(stream), 188):
        pid = (stream[i + 1] & 0x1F) << 8 | stream[i + 2]
        afc, cc = (stream[i + 3] >> 4) & 3, stream[i + 3] & 0x0F
        if pid == 0x1FFF:
            continue
        want = (last[pid] + (afc & 1)) % 16 if pid in last else cc
        if cc != want:
            breaks.append((i // 188, pid, cc))
        last[pid] = cc
    return breaks


def fmp4_media(start_ns: int, fragments: int = 2) -> tuple[bytes, list[bytes]]:
    """Fragmented MP4 of ``fragments`` seconds of video stamped from ``start_ns`` (media time from 0): the
    init segment (ftyp + moov) and one media segment (moof + mdat) per second."""
    frames = video_frames(SHAPE, RATE * fragments, start_ns, "test")
    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4", options={"movflags": "frag_keyframe+empty_moov+default_base_moof"}) as out:
        stream = out.add_stream("libx264", rate=RATE)
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
        stream.codec_context.time_base = Fraction(1, RATE)
        stream.options = {"preset": "ultrafast", "bf": "0", "g": str(RATE), "x264-params": "scenecut=0"}
        for i, planes in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(planes, format="yuv420p")
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    data, boxes, at = buf.getvalue(), [], 0
    while at < len(data):
        size, kind = struct.unpack(">I4s", data[at : at + 8])
        boxes.append((kind, data[at : at + size]))
        at += size
    init = b"".join(b for k, b in boxes if k in (b"ftyp", b"moov"))
    media = [boxes[i][1] + boxes[i + 1][1] for i, (k, _) in enumerate(boxes) if k == b"moof"]
    assert len(media) == fragments
    return init, media


def video_flow(**extra: Any) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "source_id": str(uuid.uuid4()),
        "format": "urn:x-nmos:format:video",
        "codec": "video/h264",
        "container": "video/mp2t",
        "essence_parameters": {"frame_width": W, "frame_height": H, "frame_rate": {"numerator": RATE}},
        **extra,
    }


def ingest(
    api: Any,
    flow_id: str,
    segments: list[dict[str, Any]],
    media: list[bytes],
    *,
    uploader: Any = None,
    storage_id: str | None = None,
) -> list[str]:
    """Upload ``media`` through the flow's storage allocation (on ``storage_id``, default: the default backend)
    and register ``segments`` (their ``object_id`` filled in, one object each, in order); returns the object
    ids. ``uploader``: the client that PUTs the bytes (default: a plain client without credentials; a
    TestClient for its own app)."""
    body: dict[str, Any] = {"limit": len(media)} | ({"storage_id": storage_id} if storage_id else {})
    r = api.post(f"/flows/{flow_id}/storage", json=body)
    assert r.status_code == 201, r.text
    ids = []
    with contextlib.ExitStack() as stack:
        plain = uploader or stack.enter_context(httpx.Client(trust_env=False, timeout=30))
        for m, data in zip(r.json()["media_objects"], media, strict=False):
            put = m["put_url"]
            headers = httpx.Headers({"content-type": put["content-type"]})
            headers.update(put.get("headers", {}))
            assert plain.put(put["url"], content=data, headers=headers).status_code == 200
            ids.append(m["object_id"])
    docs = [{**s, "object_id": oid} for s, oid in zip(segments, ids, strict=True)]
    r = api.post(f"/flows/{flow_id}/segments", json=docs)
    assert r.status_code == 201, r.text
    return ids


@pytest.fixture
def live_api(tmp_path: Any) -> Iterator[httpx.Client]:
    from server.app import create_app
    from server.config import Settings

    app = create_app(Settings(data_dir=tmp_path / "data", playlist_live_segments=3))
    with serve(app) as api:
        api.app = app  # type: ignore[attr-defined]
        yield api
