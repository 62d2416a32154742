"""The demo's media plays in stock players as a real encoder's would: Debian's ``ffmpeg``/``ffprobe`` read a
minute of each demo flow's HLS playlist, and of its multi flow's master playlist, from a live server on
127.0.0.1 with no broken continuity counter (no ``Packet corrupt``, no frame dropped with
``-fflags +discardcorrupt``), the master playlist's variants name the codecs ffprobe finds in their media, and
the captions play as a subtitles rendition whose cues land at their captions' TAMS times.

FFmpeg before 8 leaves subtitles renditions out unless told ``-strict experimental`` (its HLS demuxer says
``Can't support the subtitle``): the tests read the master playlist both ways.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from server.app import create_app
from server.config import Settings
from tams_analytics.cli.__main__ import main
from tams_analytics.demo.kinds import EPOCH_S
from tams_analytics.timerange import TimeRange
from tests.fixtures.live import serve

pytestmark = pytest.mark.skipif(
    shutil.which("ffmpeg") is None or shutil.which("ffprobe") is None,
    reason="needs the ffmpeg and ffprobe binaries (Debian: apt-get install ffmpeg; .ci/run installs them)",
)
NS = 1_000_000_000
#: a minute from the start of every demo flow
RANGE = f"[{EPOCH_S}:0_{EPOCH_S + 60}:0)"
#: ffprobe's names of H.264 profiles, by profile_idc (constraint flags aside)
H264_PROFILES = {66: {"Baseline", "Constrained Baseline"}, 77: {"Main"}, 100: {"High"}}
#: ffprobe's names of AAC profiles, by MPEG-4 audio object type
AAC_PROFILES = {2: "LC", 5: "HE-AAC", 29: "HE-AACv2"}


@dataclass
class Demo:
    api: httpx.Client
    flows: dict[str, dict[str, Any]]  # by kind: video, proxy, audio, captions, multi

    def url(self, kind: str) -> str:
        return f"{str(self.api.base_url).rstrip('/')}/flows/{self.flows[kind]['id']}/playlist.m3u8?timerange={RANGE}"

    def segments(self, kind: str) -> list[dict[str, Any]]:
        r = self.api.get(f"/flows/{self.flows[kind]['id']}/segments", params={"timerange": RANGE})
        assert r.status_code == 200
        return list(r.json())


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    """A one-programme demo store with media (a couple of minutes of each flow), served as ``serve`` would."""
    data = tmp_path_factory.mktemp("demo-hls") / "data"
    (data / "objects").mkdir(parents=True)
    store = f"duckdb:///{data / 'tams.duckdb'}"
    assert (
        main(
            [
                "demo",
                "--store",
                store,
                "--segments",
                "130",
                "--programmes",
                "1",
                "--storage",
                f"local:{data / 'objects'}",
            ]
        )
        == 0
    )
    with serve(create_app(Settings(data_dir=data))) as api:
        flows = {f["label"].rsplit("(", 1)[1].rstrip(")"): f for f in api.get("/flows").json()}
        yield Demo(api, flows)


def run(*command: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def probe(url: str, *options: str) -> dict[str, Any]:
    return dict(json.loads(run("ffprobe", "-v", "error", *options, "-of", "json", url).stdout))


def seconds(tr: str) -> float:
    r = TimeRange.from_str(tr)
    assert r.start_ns is not None and r.end_ns is not None
    return (r.end_ns - r.start_ns) / NS


@pytest.mark.parametrize(("kind", "per_second"), [("video", 25), ("proxy", 25), ("audio", 48_000 / 1024)])
def test_a_minute_of_a_demo_flow_plays_with_no_broken_continuity_counter(
    demo: Demo, kind: str, per_second: float
) -> None:
    url = demo.url(kind)
    # FFmpeg's MPEG-TS demuxer checks every PID's counter (PAT, PMT and SDT too) and says so at debug level;
    # a break on an audio or video PID marks its packet corrupt (a warning, "Packet corrupt")
    log = run(
        "ffmpeg",
        "-hide_banner",
        "-nostdin",
        "-loglevel",
        "debug",
        "-i",
        url,
        "-map",
        "0",
        "-c",
        "copy",
        "-f",
        "null",
        "-",
    )
    assert "Continuity check failed" not in log.stderr and "corrupt" not in log.stderr
    assert log.stderr.count("/_media/") >= 30  # it did read the segments
    # every frame still there: none dropped as corrupt
    expected = round(sum(seconds(s["timerange"]) for s in demo.segments(kind)) * per_second)
    (stream,) = probe(url, "-fflags", "+discardcorrupt", "-count_packets", "-show_entries", "stream=nb_read_packets")[
        "streams"
    ]
    assert int(stream["nb_read_packets"]) == expected >= 60 * per_second


def master(demo: Demo) -> str:
    r = demo.api.get(demo.url("multi"))
    assert r.status_code == 200 and r.text.startswith("#EXTM3U\n")
    return r.text


def attributes(line: str) -> dict[str, str]:
    """The attributes of an ``#EXT-X-...:`` tag line (quoted strings unquoted)."""
    pairs = re.findall(r'([A-Z0-9-]+)=("[^"]*"|[^,]*)', line.split(":", 1)[1])
    return {k: v.strip('"') for k, v in pairs}


def resolve(demo: Demo, uri: str) -> str:
    return str(httpx.URL(demo.url("multi")).join(uri))


def test_the_master_playlists_variants_name_the_codecs_ffprobe_finds(demo: Demo) -> None:
    lines = master(demo).splitlines()
    variants = [
        (attributes(line), lines[i + 1]) for i, line in enumerate(lines) if line.startswith("#EXT-X-STREAM-INF:")
    ]
    renditions = [attributes(line) for line in lines if line.startswith("#EXT-X-MEDIA:")]
    (audio,) = [r for r in renditions if r["TYPE"] == "AUDIO"]
    (subtitles,) = [r for r in renditions if r["TYPE"] == "SUBTITLES"]
    assert (audio["LANGUAGE"], subtitles["LANGUAGE"]) == ("en", "en") and subtitles["NAME"].endswith("(captions)")
    assert len(variants) == 2  # the video and its proxy
    (aac,) = probe(resolve(demo, audio["URI"]), "-show_entries", "stream=codec_name,profile")["streams"]
    for attrs, uri in variants:
        video, audio_codec = attrs["CODECS"].split(",")
        (h264,) = probe(resolve(demo, uri), "-show_entries", "stream=codec_name,profile,level,width,height")["streams"]
        assert re.fullmatch(r"avc1\.[0-9A-F]{6}", video) and h264["codec_name"] == "h264"
        assert h264["profile"] in H264_PROFILES[int(video[5:7], 16)] and h264["level"] == int(video[9:11], 16)
        assert audio_codec == "mp4a.40.2" and (aac["codec_name"], aac["profile"]) == ("aac", AAC_PROFILES[2])
        assert attrs["RESOLUTION"] == f"{h264['width']}x{h264['height']}" and attrs["FRAME-RATE"] == "25.000"
        assert int(attrs["BANDWIDTH"]) >= int(attrs["AVERAGE-BANDWIDTH"]) > 0
        assert (attrs["AUDIO"], attrs["SUBTITLES"]) == (audio["GROUP-ID"], subtitles["GROUP-ID"])


def test_stock_ffmpeg_reads_a_minute_of_the_master_playlist_without_a_warning(demo: Demo) -> None:
    url = demo.url("multi")
    types = sorted(s["codec_type"] for s in probe(url, "-strict", "experimental", "-show_streams")["streams"])
    assert types == ["audio", "subtitle", "video", "video"]
    read = ["-i", url, "-map", "0", "-c", "copy", "-f", "null", "-"]
    quiet = ["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "warning"]
    assert run(*quiet, "-strict", "experimental", *read).stderr == ""
    # as it comes: FFmpeg 5.1 leaves the subtitles out, and says only that
    said = run(*quiet, *read).stderr.splitlines()
    assert all("Can't support the subtitle" in line for line in said), said


def test_subtitle_cues_play_at_their_captions_times(demo: Demo) -> None:
    """Each cue names the TAI time it belongs to; FFmpeg puts it there on the video's clock."""
    url = demo.url("multi")
    first = probe(url, "-select_streams", "v:0", "-read_intervals", "%+#1", "-show_entries", "packet=pts_time")
    video_start = float(first["packets"][0]["pts_time"])  # the flow time RANGE starts at
    vtt = run(
        "ffmpeg",
        "-v",
        "error",
        "-nostdin",
        "-strict",
        "experimental",
        "-copyts",
        "-i",
        url,
        "-map",
        "0:s:0",
        "-f",
        "webvtt",
        "-",
    )
    cues = re.findall(r"^(\d+):(\d\d):(\d\d\.\d{3}) --> .*\n.*: TAI (\d+):0 ", vtt.stdout, re.M)
    # one cue a second of each caption segment in the range
    expected = [
        TimeRange.from_str(s["timerange"]).start_ns // NS + k for s in demo.segments("captions") for k in range(10)
    ]
    assert [int(tai) for *_, tai in cues] == expected and len(expected) == 60
    for h, m, s, tai in cues:
        at = int(h) * 3600 + int(m) * 60 + float(s)
        assert abs((at - video_start) - (int(tai) - EPOCH_S)) < 0.001, (h, m, s, tai)
