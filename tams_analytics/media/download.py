"""Download the media of a flow over a timerange into one file: the segments' objects in time order,
concatenated (an init object first, and again wherever it changes, for fragmented MP4).

MPEG-TS objects concatenate into a playable stream as they are; fragmented MP4 media segments after their
init segment make a playable fragmented MP4. Every object's size is checked against the store's record
(when it has one); objects that are missing or the wrong size are named in a :class:`DownloadError`, and
the file is only put in place when everything arrived (a ``.part`` file is written meanwhile).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path

from tams_analytics.display import plural
from tams_analytics.exceptions import TamsError
from tams_analytics.media.source import MediaSource, MissingObject, existing_flow
from tams_analytics.timerange import TimeRange

logger = logging.getLogger(__name__)


class DownloadError(TamsError):
    """Some of a range's media could not be fetched, or not as recorded: ``summary`` says how much, ``problems``
    names each object once (the message holds both, the first five problems only)."""

    def __init__(self, summary: str, problems: list[str]) -> None:
        shown = "; ".join(problems[:5]) + (f"; and {len(problems) - 5} more" if len(problems) > 5 else "")
        super().__init__(f"{summary}: {shown}")
        self.summary = summary
        self.problems = problems


@dataclass
class DownloadResult:
    path: Path
    segments: int = 0
    bytes: int = 0
    timerange: TimeRange = field(default_factory=TimeRange.never)


def download(
    source: MediaSource,
    flow_id: str,
    timerange: TimeRange | str,
    path: str | PathLike[str],
    *,
    progress: bool = False,
) -> DownloadResult:
    """Write the media of ``flow_id``'s segments overlapping ``timerange`` to ``path``, in time order."""
    from tqdm import tqdm

    tr = TimeRange.coerce(timerange)
    target = Path(path)
    existing_flow(source, flow_id)
    part = target.with_name(target.name + ".part")
    result = DownloadResult(target)
    #: by object id, its first problem: an object several segments use (an init object) is named once
    problems: dict[str, str] = {}
    bar = tqdm(total=source.count(flow_id, tr), unit="seg", desc="download", disable=not progress)
    init_id: str | None = None
    try:
        with part.open("wb") as out:
            for page in source.pages(flow_id, tr):
                for seg in page:
                    try:
                        if seg.init_object_id and seg.init_object_id != init_id:
                            data = source.read_init(seg)
                            out.write(data)
                            result.bytes += len(data)
                            init_id = seg.init_object_id
                        data = source.read(seg)
                    except MissingObject as exc:
                        problems.setdefault(
                            exc.object_id, f"object {exc.object_id} (segment {seg.timerange}): {exc.why}"
                        )
                        bar.update(1)
                        continue
                    if seg.size is not None and len(data) != seg.size:
                        problems.setdefault(
                            seg.object_id,
                            f"object {seg.object_id} (segment {seg.timerange}): {len(data)} bytes, "
                            f"the store records {seg.size}",
                        )
                    out.write(data)
                    result.bytes += len(data)
                    result.segments += 1
                    result.timerange = result.timerange.hull(seg.timerange)
                    bar.update(1)
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    finally:
        bar.close()
    if problems:
        part.unlink(missing_ok=True)
        said = f"{plural(len(problems), 'object')} of flow {flow_id} in {tr} could not be fetched as recorded"
        raise DownloadError(said, list(problems.values()))
    if result.segments == 0:
        part.unlink(missing_ok=True)
        raise DownloadError(f"flow {flow_id} has no segments in {tr}", [f"no segments in {tr}"])
    part.replace(target)
    logger.info("downloaded %s segments (%s bytes) of flow %s to %s", result.segments, result.bytes, flow_id, target)
    return result
