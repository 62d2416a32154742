"""Aged stores for ``bench --only capacity`` (``--capacity-store 8M``): live ingest's flows with months of history.

A store of ``flows`` H.264 video flows (1,600, the live workload) with ``segments`` segments in all, each with its own
object (a random UUID, as recorders make them) and the object's controlled instance on the benchmark's storage
(:data:`benchmarks.live.STORAGE_ID`), as the server's registrations leave them: abutting 2-s segments ending where live
ingest starts (:data:`benchmarks.live_ingest.LIVE_EPOCH_NS`), loaded through the library's bulk path
(:func:`tams_analytics.catalog.bulk.load_segments`) a few thousand segments of every flow at a time, so the rows lie
interleaved across the flows as live recorders leave them.

Built once and cached under ``~/.cache/tams-analytics/bench-stores/`` (``$XDG_CACHE_HOME`` when set), keyed by flows,
segments, the store's schema (a hash of its DDL), DuckDB's version and :data:`FORMAT`: a change to any of them builds
a new one. Each is a DuckDB file and a manifest beside it (what, when, how long the build took, the flows' ids); a build
is written under a temporary name and renamed once complete, so a killed build never passes for a store. A run copies
the cached store (``cp --reflink=auto``: a reflink where the file system has them, else a copy, timed) and serves the
copy, so the cached one stays as built.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: what a store holds and how it is laid out; bump it when the build changes
FORMAT = 1
#: segments of each flow loaded at a time (each flow in turn), as a few hours of live ingest would leave them
CHUNK = 2_500
#: the live workload's flows
FLOWS = 1600
#: the WAL's size at which DuckDB checkpoints the store while it is built: at its default (16 MiB) a checkpoint came
#: every few seconds and each wrote the objects' whole index again (a build reached 9 M segments in 1,444 s; with this,
#: 7 M in 238 s); the rows and their layout are the same either way
BUILD_CHECKPOINT_THRESHOLD = "4GB"

Progress = Callable[[str], None]


def segments_of(name: str) -> int:
    """The segments a store name means: ``8M``, ``32M``, ``250k`` or a plain count.

    >>> segments_of("8M"), segments_of("32m"), segments_of("250k"), segments_of("1200")
    (8000000, 32000000, 250000, 1200)
    """
    m = re.fullmatch(r"(\d+)([kKmM]?)", name.strip())
    if m is None:
        raise ValueError(f"a store is young or a size like 8M, 32M or 250k, not {name!r}")
    return int(m.group(1)) * {"": 1, "k": 1000, "m": 1_000_000}[m.group(2).lower()]


def cache_dir() -> Path:
    """Where aged stores are kept: ``$XDG_CACHE_HOME/tams-analytics/bench-stores`` (``~/.cache`` by default)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "tams-analytics" / "bench-stores"


def schema_hash() -> str:
    """A short hash of the store's DDL (tables, indexes, views): a store built by another schema is another key."""
    from tams_analytics.engines.duckdb.ddl import table_statements

    return hashlib.sha256("\n".join(table_statements()).encode()).hexdigest()[:10]


def key(flows: int, segments: int) -> str:
    """The cache key of a store of ``flows`` flows and ``segments`` segments in this tree and DuckDB."""
    import duckdb

    return f"aged-{flows}x{segments // flows}-schema{schema_hash()}-duckdb{duckdb.__version__}-f{FORMAT}"


@dataclass(frozen=True)
class AgedStore:
    """A cached aged store: its DuckDB file and its manifest."""

    name: str
    path: Path
    manifest: dict[str, Any]

    @property
    def flows(self) -> list[str]:
        return list(self.manifest["flow_ids"])

    @property
    def segments(self) -> int:
        return int(self.manifest["segments"])

    def copy_to(self, data_dir: Path) -> tuple[str, float]:
        """A copy of the store as ``data_dir/tams.duckdb`` (``data_dir`` made anew): its URL and the seconds the copy
        took."""
        if data_dir.exists():
            shutil.rmtree(data_dir)
        data_dir.mkdir(parents=True)
        target = data_dir / "tams.duckdb"
        started = time.perf_counter()
        if shutil.which("cp") and sys.platform.startswith("linux"):
            subprocess.run(["cp", "--reflink=auto", str(self.path), str(target)], check=True)
        else:
            shutil.copyfile(self.path, target)
        return f"duckdb:///{target}", time.perf_counter() - started


def cached(
    name: str, *, flows: int = FLOWS, directory: Path | None = None, progress: Progress = lambda _m: None
) -> AgedStore:
    """The aged store ``name`` (``8M``: 8,000,000 segments over ``flows`` flows) from the cache, built first if it is
    not there (see the module docstring)."""
    segments = segments_of(name)
    if segments < flows:
        raise ValueError(f"an aged store of {segments:,} segments has fewer than one a flow ({flows} flows)")
    directory = directory or cache_dir()
    path = directory / f"{key(flows, segments)}.duckdb"
    manifest_path = path.with_suffix(".json")
    if path.exists() and manifest_path.exists():
        return AgedStore(name, path, json.loads(manifest_path.read_text()))
    directory.mkdir(parents=True, exist_ok=True)
    progress(f"capacity: building the aged store {name} ({flows} flows, {segments:,} segments) once, into {path} ...")
    manifest = build(path, flows, segments // flows, progress)
    manifest_path.write_text(json.dumps(manifest, indent=1) + "\n")
    return AgedStore(name, path, manifest)


def build(path: Path, flows: int, per_flow: int, progress: Progress = lambda _m: None) -> dict[str, Any]:
    """Build the store at ``path`` (under a temporary name first) and return its manifest."""
    import duckdb
    import numpy as np
    import pyarrow as pa

    from benchmarks.live import STORAGE_ID
    from benchmarks.live_ingest import LIVE_EPOCH_NS
    from benchmarks.stores import video_flow
    from tams_analytics.catalog import connect
    from tams_analytics.catalog.bulk import load_segments
    from tams_analytics.storage.base import object_key
    from tams_analytics.timerange import NS_PER_SECOND
    from tams_analytics.timerange_vector import format_timeranges

    started = time.perf_counter()
    building = path.with_name(f"{path.name}.building-{os.getpid()}")
    for p in (building, building.with_name(building.name + ".wal")):
        p.unlink(missing_ok=True)
    step = 2 * NS_PER_SECOND
    first = LIVE_EPOCH_NS - per_flow * step
    ids: list[str] = []
    # under the read cache, each load's proof that its objects are new comes from the ids known in memory: without it,
    # a scan of every object's id a call, 85 % of the time past 20 M segments (py-spy)
    with connect(
        f"duckdb:///{building}",
        create=True,
        cache_reads=True,
        duckdb_config={"checkpoint_threshold": BUILD_CHECKPOINT_THRESHOLD},
    ) as catalog:
        for _ in range(flows):
            doc = video_flow()
            catalog.put_flow(doc)
            ids.append(doc["id"])
        for lo in range(0, per_flow, CHUNK):
            n = min(CHUNK, per_flow - lo)
            starts = first + (lo + np.arange(n, dtype=np.int64)) * step
            s, e = pa.array(starts, pa.int64()), pa.array(starts + step, pa.int64())
            timeranges = format_timeranges(s, e)
            for k, fid in enumerate(ids, 1):
                oids = [str(uuid.uuid4()) for _ in range(n)]
                rows = pa.table({"object_id": pa.array(oids), "timerange": timeranges, "start_ns": s, "end_ns": e})
                keys = pa.array([object_key(o, "video/mp2t") for o in oids])
                load_segments(catalog, fid, rows, storage_id=STORAGE_ID, storage_keys=keys)
                if k % 400 == 0 or k == flows:
                    done = lo * flows + k * n
                    elapsed = time.perf_counter() - started
                    progress(f"  {done:,} of {per_flow * flows:,} segments in {elapsed:.0f} s")
    building.rename(path)
    return {
        "format": FORMAT,
        "flows": flows,
        "segments": flows * per_flow,
        "segments_per_flow": per_flow,
        "schema": schema_hash(),
        "duckdb": duckdb.__version__,
        "built": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "build_s": round(time.perf_counter() - started, 1),
        "bytes": path.stat().st_size,
        "storage_id": STORAGE_ID,
        "flow_ids": ids,
    }


def main(argv: list[str] | None = None) -> int:
    """``python -m benchmarks.aged 8M [--flows N] [--cache DIR]``: build (or find) an aged store, say what it took."""
    import argparse

    p = argparse.ArgumentParser(prog="python -m benchmarks.aged", description=main.__doc__)
    p.add_argument("name", help="the store's size: 8M, 32M, 250k, ...")
    p.add_argument("--flows", type=int, default=FLOWS)
    p.add_argument("--cache", type=Path, default=None, help=f"the cache (default {cache_dir()})")
    args = p.parse_args(argv)
    store = cached(args.name, flows=args.flows, directory=args.cache, progress=lambda m: print(m, flush=True))
    m = store.manifest
    print(
        f"{store.path}: {m['segments']:,} segments over {m['flows']} flows, {m['bytes'] / 2**30:.2f} GiB, "
        f"built {m['built']} in {m['build_s']:.0f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
