"""Stock players play the server's HLS playlists: Debian's ``ffmpeg`` and ``ffprobe`` binaries, run as a user
runs them (no options), against a live server on 127.0.0.1. FFmpeg's HLS demuxer refuses a segment whose URL
path has no media extension (``allowed_segment_extensions``, ``extension_picky``, in Debian 12's 5.1.x as in
FFmpeg 7.1+), so these fail if the URLs the server mints lose the extension of their flow's container.

Each frame's burnt-in timestamp is read back, so "exact" means: every frame of the range, in order, none twice.
"""

from __future__ import annotations

import json
import queue
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import httpx
import numpy as np
import pytest

from server.app import create_app
from server.config import Settings
from server.services import services_of
from server.stores import Stores
from tams_analytics.media.pattern import Stamp, read_stamp
from tams_analytics.media.tai import tai_now_ns
from tests.fixtures.live import serve
from tests.media.conftest import NS, RATE, H, W, fmp4_media, ingest, segment_media, video_flow

pytestmark = pytest.mark.skipif(
    shutil.which("ffmpeg") is None or shutil.which("ffprobe") is None,
    reason="needs the ffmpeg and ffprobe binaries (Debian: apt-get install ffmpeg; .ci/run installs them)",
)
FRAME_NS = NS // RATE
#: decode the playlist's first video stream to raw grey frames on stdout, one per decoded frame (no frame rate
#: conversion, which would duplicate or drop frames around a gap)
#: ffprobe: the number of frames decoded, as JSON
PROBE_FRAMES = ("-show_entries", "stream=nb_read_frames", "-of", "json")
DECODE = ["-map", "0:v:0", "-fps_mode", "passthrough", "-f", "rawvideo", "-pix_fmt", "gray", "-"]


def playlist_url(api: httpx.Client, flow_id: str, timerange: str | None = None) -> str:
    base = f"{str(api.base_url).rstrip('/')}/flows/{flow_id}/playlist.m3u8"
    return base + (f"?timerange={timerange}" if timerange else "")


def stamps_of(raw: bytes) -> list[Stamp | None]:
    """The burnt-in stamps of raw grey ``W``x``H`` frames."""
    size = W * H
    assert len(raw) % size == 0, f"{len(raw)} bytes is not a whole number of {W}x{H} frames"
    return [read_stamp(np.frombuffer(raw, np.uint8, size, at).reshape(H, W)) for at in range(0, len(raw), size)]


def ffmpeg_play(url: str) -> list[Stamp | None]:
    """``ffmpeg -i URL``, as stock as it comes: the stamps of every frame it decodes."""
    done = subprocess.run(
        ["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-i", url, *DECODE],
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0 and not done.stderr, done.stderr.decode(errors="replace")
    return stamps_of(done.stdout)


def ffprobe_frames(url: str) -> int:
    """The number of video frames ``ffprobe -count_frames`` decodes from ``url``."""
    done = subprocess.run(
        [*("ffprobe", "-v", "error", "-select_streams", "v:0", "-count_frames"), *PROBE_FRAMES, url],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0 and not done.stderr, done.stderr
    (stream,) = json.loads(done.stdout)["streams"]
    return int(stream["nb_read_frames"])


def frames_of(*spans: tuple[int, int]) -> list[Stamp]:
    """The stamps of every frame of the flow-time spans ``[a, b)`` (nanoseconds)."""
    return [Stamp(t) for a, b in spans for t in range(a, b, FRAME_NS)]


def ts_flow(api: httpx.Client, starts_s: list[int], storage_id: str | None = None) -> tuple[str, list[str]]:
    """A video flow of MPEG-TS segments one second long at ``starts_s``; its id and its objects' ids."""
    flow = video_flow()
    assert api.put(f"/flows/{flow['id']}", json=flow).status_code == 201
    segments = [{"timerange": f"[{s}:0_{s + 1}:0)"} for s in starts_s]
    ids = ingest(api, flow["id"], segments, [segment_media(s * NS) for s in starts_s], storage_id=storage_id)
    return flow["id"], ids


def test_mpeg_ts_plays_in_stock_ffmpeg_with_every_frame_of_the_range(live_api: httpx.Client) -> None:
    fid, _ = ts_flow(live_api, [100, 101, 103, 104, 105])
    url = playlist_url(live_api, fid, "[100:0_105:0)")
    text = live_api.get(url).text
    assert text.count("#EXTINF") == 4 and all(
        line.split("?")[0].endswith(".ts") for line in text.splitlines() if line.startswith("http")
    )
    expected = frames_of((100 * NS, 102 * NS), (103 * NS, 105 * NS))  # a gap at 102 s
    assert ffmpeg_play(url) == expected
    assert ffprobe_frames(url) == len(expected) == 4 * RATE


def test_fragmented_mp4_with_init_segments_plays_in_stock_ffmpeg(live_api: httpx.Client) -> None:
    flow = video_flow(container="video/mp4")
    flow["essence_parameters"]["init_segments"] = True
    assert live_api.put(f"/flows/{flow['id']}", json=flow).status_code == 201
    init, media = fmp4_media(300 * NS, fragments=3)
    r = live_api.post(f"/flows/{flow['id']}/storage", json={"limit": 4})
    objects = r.json()["media_objects"]
    with httpx.Client(trust_env=False) as plain:
        for m, data in zip(objects, [init, *media], strict=True):
            put = m["put_url"]
            assert plain.put(put["url"], content=data, headers=put["headers"]).status_code == 200
    init_id = objects[0]["object_id"]
    docs = [
        {"object_id": m["object_id"], "timerange": f"[{300 + i}:0_{301 + i}:0)", "ts_offset": "300:0"}
        | {"init_object_id": init_id}
        for i, m in enumerate(objects[1:])
    ]
    assert live_api.post(f"/flows/{flow['id']}/segments", json=docs).status_code == 201

    url = playlist_url(live_api, flow["id"], "[301:0_303:0)")  # the last two fragments, after their init object
    text = live_api.get(url).text
    (map_line,) = [line for line in text.splitlines() if line.startswith("#EXT-X-MAP:")]
    assert ".m4s?" in map_line and text.count(".m4s?") == 3  # the init object and two fragments
    expected = frames_of((301 * NS, 303 * NS))
    assert ffmpeg_play(url) == expected
    assert ffprobe_frames(url) == len(expected) == 2 * RATE


def _lines(stream: IO[bytes], into: queue.Queue[str]) -> None:
    for line in iter(stream.readline, b""):
        into.put(line.decode(errors="replace"))


def test_a_live_playlist_plays_on_as_segments_arrive_and_ends_when_the_flow_does(live_api: httpx.Client) -> None:
    """ffmpeg opens a live playlist (the newest three segments, no #EXT-X-ENDLIST), keeps reloading it while
    two more segments are registered, and stops once the flow is made read-only (its playlist ends)."""
    t = (tai_now_ns() // NS - 20) * NS  # live: the newest segment ends within a minute of now
    t_s = t // NS
    fid, _ = ts_flow(live_api, [t_s + i for i in range(4)])
    url = playlist_url(live_api, fid, f"[{t_s}:0_")
    first = live_api.get(url).text
    assert "#EXT-X-ENDLIST" not in first and "#EXT-X-MEDIA-SEQUENCE:1\n" in first and first.count("#EXTINF") == 3

    command = ["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "verbose", "-i", url, *DECODE]
    player = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    log: queue.Queue[str] = queue.Queue()
    out: list[bytes] = []
    readers = [
        threading.Thread(target=_lines, args=(player.stderr, log), daemon=True),
        threading.Thread(target=lambda: out.append(player.stdout.read()), daemon=True),  # type: ignore[union-attr]
    ]
    for reader in readers:
        reader.start()
    seen: list[str] = []
    try:
        deadline = time.monotonic() + 60
        while not any("/_media/" in line for line in seen):  # it has the live window and fetches from it
            assert time.monotonic() < deadline and player.poll() is None, "".join(seen)
            try:
                seen.append(log.get(timeout=1))
            except queue.Empty:
                continue
        more = [t_s + 4, t_s + 5]
        segments = [{"timerange": f"[{s}:0_{s + 1}:0)"} for s in more]
        ingest(live_api, fid, segments, [segment_media(s * NS) for s in more])
        assert live_api.put(f"/flows/{fid}/read_only", json=True).status_code == 204
        assert player.wait(timeout=60) == 0, "".join(seen) + "".join(log.queue)
    finally:
        if player.poll() is None:
            player.kill()
            player.wait()
    for reader in readers:
        reader.join(timeout=10)
    # from the first segment of the live window it joined to the end of the flow: every frame, once
    assert stamps_of(out[0]) == frames_of((t + NS, t + 6 * NS))


def legacy_flow(api: httpx.Client, store: Any, starts_s: list[int]) -> str:
    """A video flow of MPEG-TS segments whose objects are stored under bare keys (the object id alone), as every
    object was before keys had extensions."""
    flow = video_flow()
    assert api.put(f"/flows/{flow['id']}", json=flow).status_code == 201
    catalog = services_of(api.app).catalog
    ids = catalog.allocate_objects(flow["id"], count=len(starts_s), storage_id=store.info.id, storage_key=str)
    for oid, start in zip(ids, starts_s, strict=True):
        store.put_bytes(oid, segment_media(start * NS), "video/mp2t")
    docs = [{"object_id": oid, "timerange": f"[{s}:0_{s + 1}:0)"} for oid, s in zip(ids, starts_s, strict=True)]
    assert api.post(f"/flows/{flow['id']}/segments", json=docs).status_code == 201
    return str(flow["id"])


def test_objects_stored_under_bare_keys_still_play_from_local_storage(live_api: httpx.Client) -> None:
    """The local store adds the extension to the playlist's URLs of objects stored under bare keys (their
    signature names the bare key): an existing demo store plays in stock ffmpeg too."""
    (store,) = services_of(live_api.app).stores
    fid = legacy_flow(live_api, store, [40, 41])
    (seg, _) = live_api.get(f"/flows/{fid}/segments").json()
    with httpx.Client(trust_env=False) as plain:
        assert plain.get(seg["get_urls"][0]["url"]).content == store.get_bytes(seg["object_id"])
    url = playlist_url(live_api, fid)
    paths = segment_paths(live_api.get(url).text)
    assert paths and all(path.endswith(".ts") for path in paths)
    assert ffmpeg_play(url) == frames_of((40 * NS, 42 * NS))


@pytest.fixture
def s3_live(tmp_path: Path, s3_store: Any) -> Iterator[httpx.Client]:
    app = create_app(Settings(data_dir=tmp_path / "data"), stores=Stores([s3_store]))
    with serve(app) as api:
        api.app = app  # type: ignore[attr-defined]
        yield api


def test_mpeg_ts_on_s3_plays_in_stock_ffmpeg(s3_live: httpx.Client, s3_store: Any) -> None:
    fid, ids = ts_flow(s3_live, [10, 11, 12], storage_id=s3_store.info.id)
    assert all(s3_store.head([f"{i}.ts" for i in ids]).values())  # stored under keys that end in .ts
    url = playlist_url(s3_live, fid, "[10:0_13:0)")
    assert segment_paths(s3_live.get(url).text) == [f"/{s3_store.bucket}/{i}.ts" for i in ids]
    expected = frames_of((10 * NS, 13 * NS))
    assert ffmpeg_play(url) == expected
    assert ffprobe_frames(url) == len(expected)


def segment_paths(playlist: str) -> list[str]:
    """The URL paths of a playlist's segments."""
    return [httpx.URL(line).path for line in playlist.splitlines() if line.startswith("http")]


def test_objects_stored_under_bare_keys_on_s3_keep_working(s3_live: httpx.Client, s3_store: Any) -> None:
    """A presigned URL's path is the key: objects S3 holds under bare keys keep bare URLs. They are still served,
    and play in ffmpeg told not to check extensions (as the README says)."""
    fid = legacy_flow(s3_live, s3_store, [20, 21])
    url = playlist_url(s3_live, fid)
    paths = segment_paths(s3_live.get(url).text)
    assert len(paths) == 2 and not any(path.endswith(".ts") for path in paths)
    with httpx.Client(trust_env=False) as plain:
        for line in s3_live.get(url).text.splitlines():
            if line.startswith("http"):
                assert plain.get(line).status_code == 200
    done = subprocess.run(
        ["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-extension_picky", "0", "-i", url, *DECODE],
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    assert stamps_of(done.stdout) == frames_of((20 * NS, 22 * NS))
