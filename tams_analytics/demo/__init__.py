"""A realistic demo store: programmes with video, proxy, audio and caption flows, gaps and tags; labelled sources.

Segments are generated with array operations and bulk-loaded (:func:`~tams_analytics.catalog.bulk.load_segments`),
so a million segments build in seconds, not minutes. With ``put_media`` every object is real media (H.264
video and AAC audio in MPEG-TS, WebVTT captions: :mod:`~tams_analytics.demo.media`), written by a few
threads (storage writes wait on the disk or the network, not the CPU).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from tqdm import tqdm

from tams_analytics.catalog import Catalog
from tams_analytics.catalog.bulk import load_segments
from tams_analytics.demo.kinds import BATCH, EPOCH_S, KINDS, MEDIA_WRITERS, PROGRAMMES, SOURCES, FlowKind
from tams_analytics.exceptions import ConflictError
from tams_analytics.timerange import NS_PER_SECOND
from tams_analytics.timerange_vector import format_timeranges

logger = logging.getLogger(__name__)


@dataclass
class DemoSummary:
    sources: int
    flows: int
    segments: int
    seconds: float


def _ids(rng: np.random.Generator, n: int) -> pa.Array:
    """``n`` random version-4 UUID strings, built with array operations (no Python call per id)."""
    raw = rng.integers(0, 256, size=(n, 16), dtype=np.uint8)
    raw[:, 6] = (raw[:, 6] & 0x0F) | 0x40
    raw[:, 8] = (raw[:, 8] & 0x3F) | 0x80
    hexed = pa.array(np.frombuffer(raw.tobytes().hex().encode(), dtype="S32").astype(str))
    parts = [pc.utf8_slice_codeunits(hexed, a, b) for a, b in ((0, 8), (8, 12), (12, 16), (16, 20), (20, 32))]
    return pc.binary_join_element_wise(*parts, "-")


def segment_bounds(rng: np.random.Generator, n: int, segment_ns: int, gap_rate: float) -> tuple[np.ndarray, np.ndarray]:
    """``n`` abutting segments of ``segment_ns`` from the epoch, with random gaps of 1-30 segments."""
    gaps = rng.random(n) < gap_rate
    skip = np.where(gaps, rng.integers(1, 31, size=n), 0)
    slot = np.arange(n, dtype=np.int64) + np.cumsum(skip)
    starts = EPOCH_S * NS_PER_SECOND + slot * segment_ns
    return starts, starts + segment_ns


def segment_batch(rng: np.random.Generator, starts: np.ndarray, ends: np.ndarray, *, video: bool) -> pa.Table:
    """Segment rows for bounds ``[starts, ends)``, each with a new random object id (for ``load_segments``)."""
    n = len(starts)
    return pa.table(
        {
            "object_id": _ids(rng, n),
            "timerange": format_timeranges(starts, ends),
            "start_ns": pa.array(starts),
            "end_ns": pa.array(ends),
            "key_frame_count": pa.array(np.ones(n, dtype=np.int64)) if video else pa.nulls(n, pa.int64()),
        }
    )


def build_demo(
    catalog: Catalog,
    segments: int = 100_000,
    *,
    seed: int = 2026,
    gap_rate: float = 0.002,
    programmes: int = 4,
    storage_id: str | None = None,
    storage_key: Callable[[str, str], str] | None = None,
    put_media: Callable[[str, bytes, str], None] | None = None,
    progress: bool = True,
) -> DemoSummary:
    """Fill ``catalog`` with ``programmes`` sources × 4 flows (plus a multi flow collecting them) and about
    ``segments`` segments spread over the flows by their segment rate.

    With ``storage_id``/``storage_key`` every object gets a controlled instance, under the key
    ``storage_key(object_id, content_type)`` (:func:`~tams_analytics.storage.base.object_key`); with ``put_media``
    its media is written too (``put_media(object_id, data, content_type)``, e.g. an ``ObjectStore.put_bytes`` under
    the same key), and
    segments get the ``ts_offset`` their media needs (PyAV needed: the ``media`` extra).

    The same ``seed`` makes the same object ids: a store already holding them is refused (``ConflictError``)
    before any media is written. Each batch is written in its own transaction: wrap the call in
    ``catalog.transaction()`` to build all or nothing (``tams-analytics demo`` and ``serve --demo`` do).
    """
    import time

    t0 = time.perf_counter()
    media = writers = None
    if put_media is not None:
        from tams_analytics.demo.media import DemoMedia

        media = DemoMedia()
        writers = ThreadPoolExecutor(MEDIA_WRITERS, thread_name_prefix="demo-media")
    rng = np.random.default_rng(seed)
    programmes = max(1, min(programmes, len(PROGRAMMES)))
    rate = np.array([1 / k.segment_ns for k in KINDS])
    per_kind = rate / rate.sum() * segments / programmes
    counts = np.floor(per_kind).astype(int)
    plan: list[tuple[int, FlowKind, int]] = [
        (p, k, int(c)) for p in range(programmes) for k, c in zip(KINDS, counts, strict=True)
    ]
    shortfall = segments - sum(c for *_, c in plan)
    if plan and shortfall > 0:
        p, k, c = plan[0]
        plan[0] = (p, k, c + shortfall)
    made = 0
    flows = 0
    bar = tqdm(total=segments, unit="seg", disable=not progress, desc="demo segments")
    for p in range(programmes):
        title, genre, place = PROGRAMMES[p]
        members = []
        # one source per format (video and its proxy share one); the multi flow's source collects them
        sources = {fmt: str(uuid.uuid4()) for fmt in {k.format for k in KINDS}}
        for _, kind, count in (x for x in plan if x[0] == p):
            flow_id = str(uuid.uuid4())
            catalog.put_flow(
                {
                    "id": flow_id,
                    "source_id": sources[kind.format],
                    "format": kind.format,
                    "codec": kind.codec,
                    "container": kind.container,
                    "label": f"{title} ({kind.name})",
                    "description": f"{kind.name} of {title}",
                    "essence_parameters": kind.essence,
                    "tags": {
                        "genre": genre,
                        "location": place,
                        "quality": kind.quality,
                        "programme": [title, f"{genre}-{p}"],
                        **kind.tags,
                    },
                }
            )
            flows += 1
            members.append({"id": flow_id, "role": kind.name})
            starts, ends = segment_bounds(rng, count, kind.segment_ns, gap_rate)
            for lo in range(0, count, BATCH):
                s, e = starts[lo : lo + BATCH], ends[lo : lo + BATCH]
                table = segment_batch(rng, s, e, video=kind.format.endswith("video"))
                ids = table.column("object_id")
                _check_new_objects(catalog, ids, seed)
                keys = (
                    pa.array([storage_key(i, kind.container) for i in ids.to_pylist()])
                    if storage_key and storage_id
                    else None
                )
                sizes = None
                if put_media is not None:
                    table, sizes = _write_media(table, kind, media, put_media, writers, first=lo, title=title)
                load_segments(catalog, flow_id, table, storage_id=storage_id, storage_keys=keys, sizes=sizes)
                made += len(s)
                bar.update(len(s))
        multi_id = str(uuid.uuid4())
        sources["urn:x-nmos:format:multi"] = str(uuid.uuid4())
        catalog.put_flow(
            {
                "id": multi_id,
                "source_id": sources["urn:x-nmos:format:multi"],
                "format": "urn:x-nmos:format:multi",
                "container": "video/mp2t",
                "label": f"{title} (multi)",
                "flow_collection": members,
                "tags": {"genre": genre, "programme": title},
            }
        )
        flows += 1
        _label_sources(catalog, title, sources)
    bar.close()
    if writers is not None:
        writers.shutdown()
    seconds = time.perf_counter() - t0
    logger.info("demo store: %s flows, %s segments in %.1f s", flows, made, seconds)
    n_sources = catalog.count("sources")
    return DemoSummary(sources=n_sources, flows=flows, segments=made, seconds=seconds)


def _label_sources(catalog: Catalog, title: str, sources: dict[str, str]) -> None:
    """Give a programme's sources (made by their first flow, with no label) a label and a description saying what
    they hold: without, they read as their flows' labels, and the source of the HD video as its proxy's."""
    for fmt, source_id in sources.items():
        name, holds = SOURCES[fmt]
        catalog.set_source_property(source_id, "label", f"{title} ({name})")
        catalog.set_source_property(source_id, "description", f"{title}: {holds}")


def _check_new_objects(catalog: Catalog, ids: pa.Array, seed: int) -> None:
    """Refuse, before writing any media, object ids the store already holds: the same seed makes the same
    objects, so the store holds a demo built with this seed."""
    taken = catalog.engine.count_in("objects", "id", ids)
    if taken:
        raise ConflictError(
            f"the store already holds {taken} of the objects of the demo with seed {seed}: build the demo into a "
            "new store, or with another seed"
        )


def _write_media(
    table: pa.Table,
    kind: FlowKind,
    media: Any,
    put_media: Callable[[str, bytes, str], None],
    writers: Any,
    *,
    first: int,
    title: str,
) -> tuple[pa.Table, pa.Array]:
    """Write the media of a batch of segments; returns the batch with ``ts_offset``/``object_timerange`` and
    the objects' sizes."""
    from tams_analytics.demo.media import ts_offsets

    starts = table.column("start_ns").to_numpy()
    ends = table.column("end_ns").to_numpy()
    offsets = ts_offsets(starts)  # captions share the MPEG-TS timeline of the video and audio
    payloads = media.objects(kind, starts, ends, offsets, first=first, title=f"{title} ({kind.name})")
    ids = table.column("object_id").to_pylist()
    # a failed write raises here, before the segments are registered
    list(writers.map(lambda job: put_media(job[0], job[1], kind.container), zip(ids, payloads, strict=True)))
    table = table.append_column("ts_offset", pa.array(offsets, pa.int64()))
    table = table.append_column("object_timerange", format_timeranges(starts - offsets, ends - offsets))
    return table, pa.array([len(p) for p in payloads], pa.int64())
