"""The playlist endpoint's contract: live windows that slide with stable sequence numbers, VOD ranges and
their cap, the same URLs as get_urls, init objects, master playlists of multi flows, errors and auth."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from server.app import create_app
from server.config import Settings
from server.services import services_of
from tams_analytics.media.tai import program_date_time, tai_now_ns
from tests.media.conftest import NS, ingest, segment_media, video_flow
from tests.spec import assert_valid


@pytest.fixture
def api(tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings(data_dir=tmp_path / "data", playlist_live_segments=3, playlist_max_segments=4)
    with TestClient(create_app(settings), base_url="http://testserver") as c:
        yield c


def put(api: TestClient, flow: dict[str, Any]) -> str:
    assert api.put(f"/flows/{flow['id']}", json=flow).status_code == 201
    return flow["id"]


def add(api: TestClient, flow_id: str, seconds: list[int], **segment: Any) -> list[str]:
    """Segments ``[s, s + 1)`` (seconds) with real media; returns their object ids."""
    docs = [{"timerange": f"[{s}:0_{s + 1}:0)", **segment} for s in seconds]
    return ingest(api, flow_id, docs, [segment_media(s * NS) for s in seconds], uploader=api)


def playlist(api: TestClient, flow_id: str, timerange: str | None = None, **params: Any) -> str:
    r = api.get(f"/flows/{flow_id}/playlist.m3u8", params={**({"timerange": timerange} if timerange else {}), **params})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/vnd.apple.mpegurl")
    assert r.text.startswith("#EXTM3U\n")
    return r.text


def tag(text: str, name: str) -> str | None:
    m = re.search(rf"^#{name}:(.*)$", text, re.M)
    return m.group(1) if m else None


def uris(text: str) -> list[str]:
    return [line for line in text.splitlines() if line and not line.startswith("#")]


def test_a_live_playlist_slides_as_segments_are_posted(api: TestClient) -> None:
    fid = put(api, video_flow())
    t0 = tai_now_ns() // NS - 20
    live = f"[{t0}:0_"
    add(api, fid, [t0, t0 + 1])
    text = playlist(api, fid, live)
    assert "#EXT-X-ENDLIST" not in text and "#EXT-X-PLAYLIST-TYPE" not in text
    assert len(uris(text)) == 2 and tag(text, "EXT-X-MEDIA-SEQUENCE") == "0"
    assert tag(text, "EXT-X-PROGRAM-DATE-TIME") == program_date_time(t0 * NS)

    add(api, fid, [t0 + 2, t0 + 3, t0 + 5])  # a gap before the last
    text = playlist(api, fid, live)
    assert len(uris(text)) == 3 and tag(text, "EXT-X-MEDIA-SEQUENCE") == "2"
    assert text.count("#EXT-X-DISCONTINUITY\n") == 1 and tag(text, "EXT-X-DISCONTINUITY-SEQUENCE") is None
    # the URLs are the segments' get_urls
    listed = api.get(f"/flows/{fid}/segments", params={"timerange": f"[{t0 + 2}:0_"}).json()
    assert uris(text) == [s["get_urls"][0]["url"] for s in listed]

    add(api, fid, [t0 + 6, t0 + 7])
    text = playlist(api, fid, live)
    # the segment after the gap leads the window: its discontinuity is counted, not tagged
    assert tag(text, "EXT-X-MEDIA-SEQUENCE") == "4" and tag(text, "EXT-X-DISCONTINUITY-SEQUENCE") == "1"
    assert "#EXT-X-DISCONTINUITY\n" not in text and len(uris(text)) == 3
    # the same numbers again (the counter's memory), and from a fresh count on another server's view
    assert playlist(api, fid, live) == text
    services_of(api.app).playlists.forget()
    assert tag(playlist(api, fid, live), "EXT-X-DISCONTINUITY-SEQUENCE") == "1"

    # a closed range on the same flow is VOD
    text = playlist(api, fid, f"[{t0}:0_{t0 + 8}:0)")
    assert text.rstrip().endswith("#EXT-X-ENDLIST") and tag(text, "EXT-X-PLAYLIST-TYPE") == "VOD"


def test_open_ranges_on_finished_flows_are_vod(api: TestClient) -> None:
    old = put(api, video_flow())
    add(api, old, [100, 101])
    assert playlist(api, old).rstrip().endswith("#EXT-X-ENDLIST")  # the last segment ended long ago
    t0 = tai_now_ns() // NS - 5
    done = put(api, video_flow())
    add(api, done, [t0])
    assert api.put(f"/flows/{done}/read_only", json=True).status_code == 204
    assert playlist(api, done, f"[{t0}:0_").rstrip().endswith("#EXT-X-ENDLIST")
    empty = put(api, video_flow())
    assert "#EXT-X-ENDLIST" not in playlist(api, empty)  # waiting for its first segment


def test_a_long_range_is_cut_and_says_where_it_continues(api: TestClient) -> None:
    fid = put(api, video_flow())
    add(api, fid, list(range(10, 16)))
    text = playlist(api, fid, "[10:0_16:0)")
    assert len(uris(text)) == 4 and "# cut at 4 segments: the range continues with timerange=[14:0_16:0)" in text
    assert len(uris(playlist(api, fid, "[14:0_16:0)"))) == 2


def test_init_objects_are_maps_of_fragmented_mp4(api: TestClient) -> None:
    flow = video_flow(container="video/mp4")
    flow["essence_parameters"]["init_segments"] = True
    fid = put(api, flow)
    r = api.post(f"/flows/{fid}/storage", json={"limit": 3})
    init, *media = [m["object_id"] for m in r.json()["media_objects"]]
    docs = [{"object_id": m, "timerange": f"[{s}:0_{s + 1}:0)", "init_object_id": init} for s, m in enumerate(media)]
    assert api.post(f"/flows/{fid}/segments", json=docs).status_code == 201
    text = playlist(api, fid)
    (seg,) = api.get(f"/flows/{fid}/segments", params={"timerange": "[0:0]"}).json()
    assert (
        text.count("#EXT-X-MAP:") == 1 and tag(text, "EXT-X-MAP") == f'URI="{seg["init_object"]["get_urls"][0]["url"]}"'
    )
    assert tag(text, "EXT-X-VERSION") == "6"


def test_a_multi_flow_gives_a_master_playlist_of_its_video_and_audio(api: TestClient) -> None:
    video = put(api, video_flow(max_bit_rate=800))
    audio = put(
        api,
        {
            "id": str(uuid.uuid4()),
            "source_id": str(uuid.uuid4()),
            "format": "urn:x-nmos:format:audio",
            "codec": "audio/aac",
            "container": "video/mp2t",
            "label": "Stereo",
            "essence_parameters": {"sample_rate": 48000, "channels": 2},
        },
    )
    captions = put(api, _captions())
    multi = put(
        api,
        {
            "id": str(uuid.uuid4()),
            "source_id": str(uuid.uuid4()),
            "format": "urn:x-nmos:format:multi",
            "flow_collection": [{"id": video, "role": "video"}, {"id": audio, "role": "audio"}, {"id": captions}],
        },
    )
    text = playlist(api, multi, "[0:0_10:0)", access_token="x")
    assert tag(text, "EXT-X-MEDIA").startswith('TYPE=AUDIO,GROUP-ID="audio",NAME="Stereo"')
    assert 'CHANNELS="2"' in text and text.count("#EXT-X-STREAM-INF:") == 1
    assert tag(text, "EXT-X-STREAM-INF").startswith("BANDWIDTH=") and "RESOLUTION=96x64" in text
    assert 'AUDIO="audio"' in text and "FRAME-RATE=25.000" in text
    (variant,) = uris(text)
    assert variant == f"../{video}/playlist.m3u8?timerange=%5B0%3A0_10%3A0%29&access_token=x"
    # the captions: a subtitles rendition the variant names, its URI the captions flow's own playlist
    (subtitles,) = [line for line in text.splitlines() if line.startswith("#EXT-X-MEDIA:TYPE=SUBTITLES,")]
    assert 'GROUP-ID="subtitles"' in subtitles and 'SUBTITLES="subtitles"' in tag(text, "EXT-X-STREAM-INF")
    assert f'URI="../{captions}/playlist.m3u8?timerange=%5B0%3A0_10%3A0%29&access_token=x"' in subtitles
    # the relative URIs resolve to the members' own playlists
    assert playlist(api, video, "[0:0_10:0)").startswith("#EXTM3U")
    assert api.get(f"/flows/{multi}/{variant}").status_code == 200


def test_a_variant_says_its_codecs_and_rates_from_the_essence_parameters_and_tags(api: TestClient) -> None:
    """RFC 8216 4.3.4.2: CODECS of the video and of the audio renditions (``avc_parameters`` and ``mp4_oti`` say
    them exactly: no media read), BANDWIDTH and AVERAGE-BANDWIDTH summing the variant's and its renditions'
    rates (``max_bit_rate``/``avg_bit_rate``); renditions' LANGUAGE from the ``language_code`` tag."""
    video = video_flow(max_bit_rate=800, avg_bit_rate=600)
    video["essence_parameters"]["avc_parameters"] = {"profile": 100, "flags": 0, "level": 31}
    audio = _audio(max_bit_rate=130, avg_bit_rate=128, tags={"language_code": "fra"})
    audio["essence_parameters"]["codec_parameters"] = {"mp4_oti": 2}
    captions = _captions(max_bit_rate=2, avg_bit_rate=1, label="Sous-titres", tags={"language_code": ["deu", "eng"]})
    ids = [put(api, f) for f in (video, audio, captions)]
    multi = put(api, _multi(ids))
    text = playlist(api, multi)
    inf = tag(text, "EXT-X-STREAM-INF")
    assert inf is not None and inf.startswith("BANDWIDTH=932000,AVERAGE-BANDWIDTH=729000,")
    assert 'CODECS="avc1.64001F,mp4a.40.2"' in inf
    assert 'TYPE=AUDIO,GROUP-ID="audio",NAME="Stereo",LANGUAGE="fr",' in text
    assert 'TYPE=SUBTITLES,GROUP-ID="subtitles",NAME="Sous-titres",LANGUAGE="de",DEFAULT=NO,AUTOSELECT=YES,' in text
    # a codec nothing says (no essence parameters, no media to read): no CODECS rather than half of them
    unknown = put(api, _audio())
    assert "CODECS=" not in playlist(api, put(api, _multi([ids[0], unknown])))


def test_webvtt_flows_play_as_media_playlists_of_their_segments(api: TestClient) -> None:
    fid = put(api, _captions())
    r = api.post(f"/flows/{fid}/storage", json={"limit": 2})
    objects = [m["object_id"] for m in r.json()["media_objects"]]
    docs = [{"object_id": o, "timerange": f"[{10 * k}:0_{10 * k + 10}:0)"} for k, o in enumerate(objects)]
    assert api.post(f"/flows/{fid}/segments", json=docs).status_code == 201
    text = playlist(api, fid)
    assert tag(text, "EXT-X-TARGETDURATION") == "10" and text.count("#EXTINF:10.000000,") == 2
    assert [httpx.URL(u).path.endswith(".vtt") for u in uris(text)] == [True, True]
    assert "#EXT-X-DISCONTINUITY" not in text and text.rstrip().endswith("#EXT-X-ENDLIST")


def _audio(**extra: Any) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "source_id": str(uuid.uuid4()),
        "format": "urn:x-nmos:format:audio",
        "codec": "audio/aac",
        "container": "video/mp2t",
        "label": "Stereo",
        "essence_parameters": {"sample_rate": 48000, "channels": 2},
        **extra,
    }


def _multi(members: list[str]) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "source_id": str(uuid.uuid4()),
        "format": "urn:x-nmos:format:multi",
        "flow_collection": [{"id": m} for m in members],
    }


def _captions(**extra: Any) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "source_id": str(uuid.uuid4()),
        "format": "urn:x-nmos:format:data",
        "codec": "text/vtt",
        "container": "text/vtt",
        "essence_parameters": {"data_type": "urn:x-tam:data:subtitles"},
        **extra,
    }


def _json_data() -> dict[str, Any]:
    return {**_captions(), "codec": "application/json", "container": "application/json"}


@pytest.mark.parametrize(
    ("flow", "status", "says"),
    [
        (_json_data(), 400, "container 'application/json'"),
        (video_flow(container="video/mp4"), 400, "fragmented MP4"),
        (None, 404, "does not exist"),
    ],
)
def test_flows_that_cannot_play_answer_with_an_error(
    api: TestClient, flow: dict[str, Any] | None, status: int, says: str
) -> None:
    fid = put(api, flow) if flow else str(uuid.uuid4())
    for method in ("GET", "HEAD"):
        r = api.request(method, f"/flows/{fid}/playlist.m3u8")
        assert r.status_code == status
    r = api.get(f"/flows/{fid}/playlist.m3u8")
    assert_valid(r.json(), "error.json")
    assert says in r.json()["summary"]


def test_bad_parameters_answer_400(api: TestClient) -> None:
    fid = put(api, video_flow())
    for params in ({"timerange": "[1:0_"[:-1] + "x"}, {"presigned": "maybe"}):
        r = api.get(f"/flows/{fid}/playlist.m3u8", params=params)
        assert r.status_code == 400, params
        assert_valid(r.json(), "error.json")
    assert api.head(f"/flows/{fid}/playlist.m3u8").content == b""


def test_playlists_need_the_api_credentials(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", auth="bearer", bearer_tokens="secret")
    with TestClient(create_app(settings)) as c:
        flow = video_flow()
        assert c.put(f"/flows/{flow['id']}", json=flow, headers={"Authorization": "Bearer secret"}).status_code == 201
        assert c.get(f"/flows/{flow['id']}/playlist.m3u8").status_code == 401
        ok = c.get(f"/flows/{flow['id']}/playlist.m3u8", headers={"Authorization": "Bearer secret"})
        assert ok.status_code == 200 and ok.text.startswith("#EXTM3U")
