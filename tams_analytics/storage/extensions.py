"""The file extension of a media type, for the storage keys (and so the URLs) of objects.

Players pick a demuxer, or refuse a segment, by the extension of its URL's path: FFmpeg's HLS demuxer
(``allowed_segment_extensions``, ``extension_picky``: Debian 12's 5.1.x and FFmpeg 7.1+) refuses an HLS
segment whose URL path has no extension of its list, or one that does not fit the media it finds (an
MPEG-TS segment must end in ``.ts``, ``.m4s``, ``.mpg``, ...; fragmented MP4 in ``.mp4``, ``.m4s``, ...;
WebVTT in ``.vtt``). The keys the service chooses for new objects therefore end in the extension of the
object's media type (:func:`~tams_analytics.storage.base.object_key`).
"""

from __future__ import annotations

from typing import Final

__all__ = ["EXTENSIONS", "media_extension"]

#: media type (lower case, no parameters) -> extension; the HLS-playable ones first
EXTENSIONS: Final[dict[str, str]] = {
    "video/mp2t": "ts",
    "video/mp2ts": "ts",
    "video/mpeg-ts": "ts",
    "video/mp4": "mp4",
    "audio/mp4": "m4a",
    "application/mp4": "mp4",
    "video/iso.segment": "m4s",
    "audio/iso.segment": "m4s",
    "audio/aac": "aac",
    "audio/x-aac": "aac",
    "audio/aacp": "aac",
    "audio/ac3": "ac3",
    "audio/eac3": "eac3",
    "audio/mpeg": "mp3",
    "audio/flac": "flac",
    "audio/wav": "wav",
    "audio/wave": "wav",
    "audio/x-wav": "wav",
    "audio/vnd.wave": "wav",
    "audio/ogg": "oga",
    "video/ogg": "ogv",
    "text/vtt": "vtt",
    "video/quicktime": "mov",
    "video/mpeg": "mpg",
    "video/x-matroska": "mkv",
    "video/webm": "webm",
    "application/mxf": "mxf",
    "application/ttml+xml": "ttml",
    "image/jpeg": "jpg",
    "image/jp2": "jp2",
    "image/png": "png",
    "application/json": "json",
}
#: the MP4 types whose fragments (a flow with ``init_segments``) are ``.m4s`` media segments
_FRAGMENTABLE: Final = frozenset({"video/mp4", "audio/mp4", "application/mp4"})


def media_extension(content_type: str | None, *, fragmented: bool = False) -> str | None:
    """The extension (without the dot) for objects of ``content_type``; None for a type not known here.

    ``fragmented``: the object belongs to a flow with initialisation segments, so an MP4 type is a
    fragment (``.m4s``), not a whole file (``.mp4``).

    >>> media_extension("video/mp2t"), media_extension("video/mp4", fragmented=True), media_extension("x/y")
    ('ts', 'm4s', None)
    """
    if not content_type:
        return None
    kind = content_type.split(";", 1)[0].strip().lower()
    if fragmented and kind in _FRAGMENTABLE:
        return "m4s"
    return EXTENSIONS.get(kind)
