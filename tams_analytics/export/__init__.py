"""Export a store's entity tables as Parquet, to a local directory or ``s3://bucket/prefix``.

Layout, partitioning and columns: :mod:`tams_analytics.export.layout`; destinations (local, S3):
:mod:`tams_analytics.export.destinations`; progress lines: :mod:`tams_analytics.export.progress`; Trino DDL
over an export: :mod:`tams_analytics.export.hive`.

Timerange bounds stay int64 nanoseconds (``start_ns``/``end_ns``) beside the canonical text. Rows stream
through in record batches (no table is ever held whole). Webhook API key values are secrets and are never
exported.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Unpack

import pyarrow as pa
import pyarrow.fs as pafs

from tams_analytics.exceptions import TamsError, said_on_cli
from tams_analytics.export.destinations import (
    Destination,
    S3AccessError,
    S3Options,
    S3Problem,
    check_destination,
    clear_table,
    destination,
    holds_table,
)
from tams_analytics.export.hive import hive_ddl
from tams_analytics.export.layout import (
    EXCLUDED_COLUMNS,
    FORMAT,
    MANIFEST,
    PARTITION_COLUMN,
    ROWS_PER_FILE,
    ROWS_PER_GROUP,
    export_schema,
    flow_bucket,
)
from tams_analytics.export.progress import PROGRESS_EVERY_S, ProgressLines
from tams_analytics.schema import SCHEMAS, SORT_KEYS

if TYPE_CHECKING:
    import pyarrow.dataset as ds

    from tams_analytics.catalog import Catalog

__all__ = [
    "EXCLUDED_COLUMNS",
    "MANIFEST",
    "PARTITION_COLUMN",
    "PROGRESS_EVERY_S",
    "Destination",
    "ExportSummary",
    "ProgressLines",
    "S3AccessError",
    "S3Options",
    "S3Problem",
    "TableExport",
    "default_tables",
    "destination",
    "export_catalog",
    "export_schema",
    "flow_bucket",
    "hive_ddl",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TableExport:
    table: str
    rows: int
    files: int
    bytes: int
    seconds: float


@dataclass
class ExportSummary:
    destination: str
    tables: list[TableExport] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def rows(self) -> int:
        return sum(t.rows for t in self.tables)


def _conform(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    """``batch`` with exactly ``schema``'s columns and types (engines may return wider or other types)."""
    arrays = []
    for f in schema:
        idx = batch.schema.get_field_index(f.name)
        if idx < 0:
            arrays.append(pa.nulls(batch.num_rows, f.type))
        else:
            col = batch.column(idx)
            arrays.append(col if col.type == f.type else col.cast(f.type))
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def _batches(
    catalog: Catalog,
    table: str,
    schema: pa.Schema,
    batch_rows: int,
    on_batch: Callable[[int], None],
    *,
    sort: bool = True,
) -> Iterator[pa.RecordBatch]:
    """The rows of ``table`` (in its sort order with ``sort``), batch by batch."""
    expr = catalog.table(table)
    keys = [k for k in SORT_KEYS.get(table, ()) if k in schema.names] if sort else []
    if keys:
        expr = expr.order_by(keys)
    expr = expr.select(*[c for c in schema.names if c in expr.columns])
    with expr.to_pyarrow_batches(chunk_size=batch_rows) as reader:
        for batch in reader:
            if batch.num_rows:
                yield _conform(batch, schema)
                on_batch(batch.num_rows)


RELEASE_WAIT_S = 5.0
"""How long an export waits for Arrow to let go of its file visitor (see :class:`_FileVisitor`)."""


class _WrittenFiles:
    """The files ``write_dataset`` writes, collected by a visitor, and the moment Arrow lets go of that visitor.

    Arrow releases the visitor on one of its own threads, often after ``write_dataset`` has returned
    (apache/arrow#36980: here 85 % of calls, on pyarrow 23 and 26). The release takes the GIL; if it meets the
    interpreter's exit, the thread is stopped inside a C++ destructor and the process aborts ("terminate called
    without an active exception", exit 134) after the export succeeded. :meth:`wait_released` waits for it while
    Python can still take the GIL. The visitor is handed to Arrow only, so Arrow holds its last reference.
    """

    def __init__(self) -> None:
        self.files: list[ds.WrittenFile] = []
        self._released = threading.Event()

    def visitor(self) -> Callable[[ds.WrittenFile], None]:
        """A new visitor for one ``write_dataset`` call; keep no reference to it."""
        files = self.files

        def visit(written: ds.WrittenFile) -> None:
            files.append(written)

        weakref.finalize(visit, self._released.set)
        return visit

    def wait_released(self) -> list[ds.WrittenFile]:
        if not self._released.wait(RELEASE_WAIT_S):
            logger.warning("Arrow still holds the export's file visitor %.0f s after writing", RELEASE_WAIT_S)
        return self.files


def _with_bucket(batches: Iterator[pa.RecordBatch], chars: int) -> Iterator[pa.RecordBatch]:
    for b in batches:
        yield b.append_column(PARTITION_COLUMN, flow_bucket(b.column("flow_id"), chars))


def default_tables(catalog: Catalog) -> list[str]:
    """The tables an export writes when none are named: every entity table the engine reads (an engine over
    the TAMS API reads fewer).

    >>> import tams_analytics as ta
    >>> default_tables(ta.connect("duckdb://")) == list(SCHEMAS)
    True
    """
    readable = catalog.engine.capabilities.tables
    return [t for t in SCHEMAS if readable is None or t in readable]


def export_catalog(
    catalog: Catalog,
    to: str | Destination,
    *,
    tables: Sequence[str] | None = None,
    overwrite: bool = False,
    batch_rows: int = 100_000,
    flow_bucket_chars: int = 1,
    sort: bool = True,
    progress: bool | Callable[[str], None] = False,
    **s3: Unpack[S3Options],
) -> ExportSummary:
    """Write ``tables`` (default: every entity table the engine reads) of ``catalog`` as Parquet under ``to``.

    ``progress``: True shows a progress bar (a terminal); a callable is given a line every
    :data:`PROGRESS_EVERY_S` seconds instead (logs, pipes: :class:`ProgressLines`). Row totals are counted
    first only where counting is cheap (not over a TAMS API, where a count reads every row).

    ``s3`` takes ``endpoint``, ``region``, ``access_key``, ``secret_key`` for ``s3://`` destinations (see
    :func:`destination`); an S3 bucket that cannot be written raises :class:`S3AccessError` before anything is
    written, saying why (:class:`S3Problem`). Refuses a non-empty table directory unless ``overwrite``. Rows
    stream to the files; ``sort`` (default) asks the engine for them in :data:`~tams_analytics.schema.SORT_KEYS` order,
    a sort the engine does on its side (DuckDB within its ``memory_limit``, spilling beyond it: about
    0.75 GB for a million segments); ``sort=False`` skips it at the cost of row-group pruning.

    >>> import tempfile, pyarrow.dataset as ds
    >>> from tams_analytics.views import example_catalog
    >>> out = tempfile.TemporaryDirectory()
    >>> summary = export_catalog(example_catalog(), out.name, tables=["segments"])
    >>> summary.rows, ds.dataset(f"{out.name}/segments", partitioning="hive").count_rows()
    (3, 3)
    >>> out.cleanup()
    """
    unknown = sorted(set(tables or ()) - set(SCHEMAS))
    if unknown:
        raise TamsError(f"unknown table(s) {unknown}; expected some of {list(SCHEMAS)}")
    if not 1 <= flow_bucket_chars <= 4:
        raise TamsError("flow_bucket_chars must be 1 to 4 (16 to 65536 buckets)")
    dest = to if isinstance(to, Destination) else destination(to, **s3)
    names = [t for t in SCHEMAS if t in tables] if tables else default_tables(catalog)
    summary = ExportSummary(dest.url)
    t0 = time.perf_counter()
    cheap = catalog.engine.capabilities.cheap_counts
    totals = {name: catalog.count(name) for name in names} if progress and cheap else {}
    bar: Any
    if callable(progress):
        bar = ProgressLines(progress, totals)
    else:
        from tqdm import tqdm

        total = sum(totals.values()) if totals else None
        bar = tqdm(total=total, unit="row", unit_scale=True, disable=not progress, desc="export")
    manifest: dict[str, Any] = {}
    try:
        check_destination(dest)
        occupied = [name for name in names if holds_table(dest, name)]
        if occupied and not overwrite:
            held = f"{dest.url} already holds {', '.join(occupied)}"
            raise TamsError(f"{held}: pass overwrite=True to replace them", cli=f"{held}: --overwrite replaces them")
        dest.filesystem.create_dir(dest.root, recursive=True)
        for name in names:
            if name in occupied:
                clear_table(dest, name)
            summary.tables.append(_export_table(catalog, dest, name, batch_rows, flow_bucket_chars, sort, bar))
            manifest[name] = {
                "rows": summary.tables[-1].rows,
                "files": summary.tables[-1].files,
                "partitioning": [PARTITION_COLUMN] if name == "segments" else [],
                "sorted_by": list(SORT_KEYS.get(name, ())) if sort else [],
            }
        _write_manifest(dest, catalog, manifest, flow_bucket_chars)
    except OSError as exc:
        said = said_on_cli(exc)
        if exc.filename is None and dest.s3 is None:  # pyarrow names no file: the folder is on the volume it met
            exc.filename = dest.root
        raise TamsError(f"cannot write to {dest.url}: {said}") from exc
    finally:
        bar.close()
    summary.seconds = time.perf_counter() - t0
    logger.info("exported %s rows of %s tables to %s in %.1f s", summary.rows, len(names), dest.url, summary.seconds)
    return summary


def _export_table(
    catalog: Catalog, dest: Destination, name: str, batch_rows: int, chars: int, sort: bool, bar: Any
) -> TableExport:
    import pyarrow.dataset as ds  # (it imports pandas: here, not with the package, whose destinations the server uses)

    t0 = time.perf_counter()
    path = dest.path(name)
    schema = export_schema(name)
    bar.set_description(f"export {name}")
    collected = _WrittenFiles()
    batches = _batches(catalog, name, schema, batch_rows, bar.update, sort=sort)
    partitioning = None
    if name == "segments":
        batches = _with_bucket(batches, chars)
        schema = schema.append(pa.field(PARTITION_COLUMN, pa.string()))
        partitioning = ds.partitioning(pa.schema([schema.field(PARTITION_COLUMN)]), flavor="hive")
    rows = 0

    def counted() -> Iterator[pa.RecordBatch]:
        nonlocal rows
        for b in batches:
            rows += b.num_rows
            yield b

    ds.write_dataset(
        pa.RecordBatchReader.from_batches(schema, counted()),
        path,
        filesystem=dest.filesystem,
        format="parquet",
        partitioning=partitioning,
        basename_template="part-{i}.parquet",
        file_options=ds.ParquetFileFormat().make_write_options(compression="zstd"),
        preserve_order=True,
        min_rows_per_group=min(ROWS_PER_GROUP, batch_rows),
        max_rows_per_group=ROWS_PER_GROUP,
        max_rows_per_file=ROWS_PER_FILE,
        existing_data_behavior="overwrite_or_ignore",
        file_visitor=collected.visitor(),
    )
    written = collected.wait_released()
    if rows == 0:  # an empty table still gets a file, so that readers see its columns
        import pyarrow.parquet as pq

        empty = dest.path(name, "part-0.parquet")
        dest.filesystem.create_dir(path, recursive=True)
        pq.write_table(export_schema(name).empty_table(), empty, filesystem=dest.filesystem, compression="zstd")
        written.append(ds.WrittenFile(empty, None, dest.filesystem.get_file_info(empty).size))
    size = sum(f.size or 0 for f in written)
    logger.info("exported %s: %s rows in %s files", name, rows, len(written))
    return TableExport(name, rows, len(written), size, time.perf_counter() - t0)


def _write_manifest(dest: Destination, catalog: Catalog, tables: dict[str, Any], chars: int) -> None:
    """Write the manifest, keeping the entries of tables exported earlier and not this time."""
    path = dest.path(MANIFEST)
    if dest.filesystem.get_file_info(path).type == pafs.FileType.File:
        try:
            with dest.filesystem.open_input_stream(path) as f:
                tables = {**json.loads(f.read()).get("tables", {}), **tables}
        except (ValueError, AttributeError):
            logger.warning("replacing unreadable export manifest %s", path)
    doc = {
        "format": FORMAT,
        "created": dt.datetime.now(dt.UTC).isoformat(),
        "engine": catalog.engine.name,
        "segments_partitioning": {
            "column": PARTITION_COLUMN,
            "value": f"regexp_replace(lower(substr(flow_id, 1, {chars})), '[^0-9a-f]', '_')",
        },
        "tables": tables,
    }
    with dest.filesystem.open_output_stream(path) as out:
        out.write(json.dumps(doc, indent=2, sort_keys=True).encode())
