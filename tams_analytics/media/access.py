"""A flow's media for analysts: download a range into one file, look at the frame shown at a time.

The media is reached through a catalog and its object storage (:func:`attach`) or through a TAMS server's API
(:func:`from_server`); either way :class:`FlowMedia` does the same. The catalog knows nothing of media: this
module uses the catalog, never the reverse.

>>> import tams_analytics as ta
>>> media = ta.media.attach(ta.connect("duckdb://"))  # no storage: uncontrolled instances' URLs only
>>> media
FlowMedia(StoreMedia)
"""

from __future__ import annotations

from collections.abc import Mapping
from os import PathLike
from typing import TYPE_CHECKING, Any

from tams_analytics.media.download import DownloadResult, download
from tams_analytics.media.frames import frame_at
from tams_analytics.media.source import MediaSource, ServerMedia, StoreMedia, store_media
from tams_analytics.timerange import TimeRange
from tams_analytics.timestamp import Timestamp

if TYPE_CHECKING:
    from PIL.Image import Image

    from tams_analytics.catalog import Catalog
    from tams_analytics.storage.base import ObjectStore

__all__ = ["FlowMedia", "attach", "from_server"]


class FlowMedia:
    """Flows' media from one :class:`~tams_analytics.media.source.MediaSource`."""

    def __init__(self, source: MediaSource) -> None:
        self.source = source

    def __repr__(self) -> str:
        return f"FlowMedia({type(self.source).__name__})"

    def download(
        self, flow_id: str, timerange: TimeRange | str, path: str | PathLike[str], *, progress: bool = False
    ) -> DownloadResult:
        """Write the media of the flow's segments over ``timerange`` to ``path``, in order (see
        :func:`~tams_analytics.media.download.download`)."""
        return download(self.source, flow_id, timerange, path, progress=progress)

    def frame_at(self, flow_id: str, timestamp: Timestamp | int | str) -> Image:
        """The video frame shown at ``timestamp`` as a PIL image (a notebook displays it; see
        :func:`~tams_analytics.media.frames.frame_at`)."""
        return frame_at(self.source, flow_id, timestamp)


def attach(
    catalog: Catalog,
    storage: ObjectStore | str | Mapping[str, ObjectStore] | None = None,
    *,
    storage_id: str | None = None,
    **s3: Any,
) -> FlowMedia:
    """The media of ``catalog``'s flows, read from ``storage``: ``"local:DIR"``, ``"s3://BUCKET[/PREFIX]"``
    (``s3_endpoint=``, ``s3_region=``), an ``ObjectStore`` or ``{storage_id: ObjectStore}`` (see
    :func:`~tams_analytics.media.source.store_media`); without it, only uncontrolled instances' URLs."""
    if storage is None:
        return FlowMedia(StoreMedia(catalog, {}))
    return FlowMedia(store_media(catalog, storage, storage_id=storage_id, **s3))


def from_server(url: str) -> FlowMedia:
    """The media of a TAMS server's flows, through its API (credentials as ``tams+http`` takes them)."""
    return FlowMedia(ServerMedia.from_env(url))
