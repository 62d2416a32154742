"""The demo's programmes and the kinds of flow each has: what the demo store (:mod:`tams_analytics.demo`) and
its media (:mod:`tams_analytics.demo.media`) are made of."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

from tams_analytics.timerange import NS_PER_SECOND

__all__ = ["BATCH", "EPOCH_S", "KINDS", "MEDIA_WRITERS", "PROGRAMMES", "SOURCES", "FlowKind"]

#: TAI seconds of the demo epoch (2023-11-14T22:13:20Z-ish); every flow starts here
EPOCH_S: Final = 1_700_000_000
BATCH: Final = 250_000
#: threads writing media objects
MEDIA_WRITERS: Final = 4


@dataclass(frozen=True)
class FlowKind:
    """One kind of flow a programme has, and its segment duration."""

    name: str
    format: str
    codec: str
    container: str
    segment_ns: int
    essence: dict[str, Any]
    #: relative number of segments (per unit of time this follows from segment_ns)
    quality: str
    #: tags of the kind's flows besides the programme's (``language_code``: TAMS app note 0003, ISO 639-3)
    tags: dict[str, Any] = field(default_factory=dict)


KINDS: Final = (
    FlowKind(
        "video",
        "urn:x-nmos:format:video",
        "video/h264",
        "video/mp2t",
        2 * NS_PER_SECOND,
        {"frame_width": 1920, "frame_height": 1080, "frame_rate": {"numerator": 25}, "interlace_mode": "progressive"},
        "hd",
    ),
    FlowKind(
        "proxy",
        "urn:x-nmos:format:video",
        "video/h264",
        "video/mp2t",
        4 * NS_PER_SECOND,
        {"frame_width": 960, "frame_height": 540, "frame_rate": {"numerator": 25}},
        "proxy",
    ),
    FlowKind(
        "audio",
        "urn:x-nmos:format:audio",
        "audio/aac",
        "video/mp2t",
        1_920_000_000,
        {"sample_rate": 48000, "channels": 2},
        "hd",
        {"language_code": "eng"},
    ),
    FlowKind(
        "captions",
        "urn:x-nmos:format:data",
        "text/vtt",
        "text/vtt",
        10 * NS_PER_SECOND,
        {"data_type": "urn:x-tam:data:subtitles"},
        "hd",
        {"language_code": "eng"},
    ),
)

#: each programme's sources, by format: the name in the source's label ("Evening News (video: HD and proxy)") and
#: what its description says it holds. The HD video and its proxy are two flows of one source (the same pictures);
#: the multi flow collecting a programme's flows has a source of its own
SOURCES: Final = {
    "urn:x-nmos:format:video": ("video: HD and proxy", "its pictures, as an HD video flow and a proxy flow"),
    "urn:x-nmos:format:audio": ("audio", "its sound, as a stereo audio flow"),
    "urn:x-nmos:format:data": ("captions", "its captions, as a WebVTT subtitles flow"),
    "urn:x-nmos:format:multi": ("multi", "the whole programme, as a multi flow of its video, audio and captions"),
}

PROGRAMMES: Final = (
    ("Evening News", "news", "London"),
    ("Match of the Day", "sport", "Salford"),
    ("Nature Hour", "nature", "Bristol"),
    ("Drama Tonight", "drama", "Cardiff"),
    ("Morning Show", "news", "Glasgow"),
    ("Proms Live", "music", "London"),
)
