"""Export a store's entity tables as Parquet, to a local directory or ``s3://bucket/prefix``.

Layout under the destination::

    _tams_export.json                      what was exported: tables, row counts, partitioning
    sources/part-0.parquet                 one directory per table, columns and types of tams_analytics.schema
    segments/flow_bucket=0/part-0.parquet  segments: Hive partitions by flow bucket
    ...

Segments are partitioned by **flow bucket**, the first hex digit of the flow id
(``lower(substr(flow_id, 1, 1))``: 16 buckets; ``flow_bucket_chars=2`` gives 256), and written in
``(flow_id, start_ns)`` order, not by day of ``start_ns``, because:

* ``start_ns`` is a flow's media timeline, not wall-clock time: file-based flows often start at ``0:0``
  while live ones sit near "now", so days of ``start_ns`` would be badly skewed (one huge 1970-01-01
  partition) and unbounded in number across decades of archive;
* nearly every segment query names one flow and a window. The bucket of a flow is computable in any
  engine (``flow_bucket = lower(substr(flow_id, 1, 1))`` lets Trino/Hive prune to 1/16 of the files),
  and inside a bucket rows are sorted by ``(flow_id, start_ns)``, so Parquet row-group statistics skip
  everything but the flow's window;
* flow ids are random UUIDs, so buckets are even, their number is fixed, and a streaming writer keeps
  only one open file per bucket.

Timerange bounds stay int64 nanoseconds (``start_ns``/``end_ns``) beside the canonical text. Rows stream
through in record batches (no table is ever held whole). Webhook API key values are secrets and are never
exported.

S3 settings come from arguments or the environment: ``TAMS_S3_ENDPOINT`` (e.g. ``http://127.0.0.1:8333``;
AWS when unset), ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY`` (else pyarrow's default AWS credential
chain) and ``TAMS_S3_REGION``/``AWS_REGION`` (default ``us-east-1``).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, TypedDict, Unpack
from urllib.parse import urlsplit

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.fs as pafs

from tams_analytics.exceptions import TamsError, said_on_cli
from tams_analytics.schema import SCHEMAS, SORT_KEYS

if TYPE_CHECKING:
    from tams_analytics.catalog import Catalog

__all__ = [
    "EXCLUDED_COLUMNS",
    "MANIFEST",
    "PARTITION_COLUMN",
    "PROGRESS_EVERY_S",
    "Destination",
    "ExportSummary",
    "ProgressLines",
    "S3Options",
    "TableExport",
    "default_tables",
    "destination",
    "export_catalog",
    "export_schema",
    "flow_bucket",
    "hive_ddl",
]

logger = logging.getLogger(__name__)

MANIFEST: Final = "_tams_export.json"
FORMAT: Final = "tams-analytics-export/1"
#: the Hive partition column of the segments export
PARTITION_COLUMN: Final = "flow_bucket"
#: columns never exported (secrets)
EXCLUDED_COLUMNS: Final[Mapping[str, tuple[str, ...]]] = {"webhooks": ("api_key_value",)}
#: rows per Parquet row group: small enough that statistics skip most of a bucket for one flow's window
ROWS_PER_GROUP: Final = 128 * 1024
ROWS_PER_FILE: Final = 16 * 1024 * 1024
#: Trino Hive connector column types of the exported Arrow types
_HIVE_TYPES: Final = {
    "string": "VARCHAR",
    "int64": "BIGINT",
    "bool": "BOOLEAN",
    "timestamp[us, tz=UTC]": "TIMESTAMP(6)",
}
#: where the committed example DDL (sql/trino/export/hive_tables.sql) points
EXAMPLE_LOCATION: Final = "s3://tams-exports/tams"
#: seconds between two progress lines (progress written as lines, off a terminal)
PROGRESS_EVERY_S: Final = 5.0


@dataclass(frozen=True)
class Destination:
    """A filesystem and the root path under it; ``url`` is for messages."""

    filesystem: pafs.FileSystem
    root: str
    url: str

    def path(self, *parts: str) -> str:
        return "/".join([self.root.rstrip("/"), *parts])


class S3Options(TypedDict, total=False):
    """The options of an ``s3://`` :func:`destination` (None: from the environment or the default)."""

    endpoint: str | None
    region: str | None
    access_key: str | None
    secret_key: str | None


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


def destination(
    to: str,
    *,
    endpoint: str | None = None,
    region: str | None = None,
    access_key: str | None = None,
    secret_key: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> Destination:
    """Where ``to`` (a local path, ``file://`` URL or ``s3://bucket/prefix``) points.

    >>> d = destination("/tmp/tams-export")
    >>> type(d.filesystem).__name__, d.root
    ('LocalFileSystem', '/tmp/tams-export')
    """
    env = os.environ if environ is None else environ
    parts = urlsplit(to)
    scheme = parts.scheme.lower()
    if scheme in ("", "file") or (len(scheme) == 1 and to[1:3] in (":\\", ":/")):  # C:\ is a path
        local = Path(parts.path if scheme == "file" else to).expanduser().resolve()
        return Destination(pafs.LocalFileSystem(), local.as_posix(), local.as_posix())
    if scheme != "s3":
        raise TamsError(f"cannot export to {to!r}: expected a directory or s3://bucket/prefix")
    if not parts.netloc:
        raise TamsError(f"an S3 destination needs a bucket: s3://bucket/prefix, got {to!r}")
    options: dict[str, Any] = {
        "region": region or env.get("TAMS_S3_REGION") or env.get("AWS_REGION") or "us-east-1",
        "allow_bucket_creation": False,
    }
    endpoint = endpoint or env.get("TAMS_S3_ENDPOINT")
    if endpoint:
        ep = urlsplit(endpoint if "://" in endpoint else f"https://{endpoint}")
        options["endpoint_override"] = ep.netloc
        options["scheme"] = ep.scheme
    access_key = access_key or env.get("AWS_ACCESS_KEY_ID")
    secret_key = secret_key or env.get("AWS_SECRET_ACCESS_KEY")
    if access_key and secret_key:
        options["access_key"], options["secret_key"] = access_key, secret_key
    root = f"{parts.netloc}/{parts.path.strip('/')}".rstrip("/")
    logger.info("exporting to s3://%s via %s", root, endpoint or "AWS")
    return Destination(pafs.S3FileSystem(**options), root, f"s3://{root}")


def flow_bucket(flow_id: pa.Array | pa.ChunkedArray, chars: int = 1) -> pa.Array | pa.ChunkedArray:
    """The segments partition of each flow id: its first ``chars`` characters, lower-cased, anything but
    ``0-9a-f`` replaced by ``_`` (in Trino: ``regexp_replace(lower(substr(flow_id, 1, 1)), '[^0-9a-f]', '_')``).

    >>> flow_bucket(pa.array(["3F2504E0-4F89-11D3-9A0C-0305E82C3301", "x/y"])).to_pylist()
    ['3', '_']
    """
    head = pc.utf8_lower(pc.utf8_slice_codeunits(flow_id, 0, chars))
    return pc.replace_substring_regex(head, "[^0-9a-f]", "_")


def export_schema(table: str) -> pa.Schema:
    """The Arrow schema of an exported table: the declared one, nullable, secrets left out.

    >>> "api_key_value" in export_schema("webhooks").names
    False
    """
    excluded = EXCLUDED_COLUMNS.get(table, ())
    return pa.schema([f.with_nullable(True) for f in SCHEMAS[table] if f.name not in excluded])


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


class ProgressLines:
    """Progress as a line every ``every_s`` seconds, for logs and pipes where a bar cannot redraw itself.

    A thread writes what is known at each tick (the table being exported, its rows so far, of how many when
    the engine counts cheaply, and the time taken), also while a table's rows are still being read from the
    store; an export shorter than ``every_s`` writes nothing. The interface is the part of tqdm's the export
    uses (``set_description``, ``update``, ``close``).
    """

    def __init__(
        self, write: Callable[[str], None], totals: Mapping[str, int] | None = None, every_s: float = PROGRESS_EVERY_S
    ) -> None:
        self._write = write
        self._totals = dict(totals or {})
        self._every_s = every_s
        self._table = ""
        self._rows = 0
        self._started = self._table_started = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._tick, name="export-progress", daemon=True)
        self._thread.start()

    def set_description(self, description: str) -> None:
        self._table = description.removeprefix("export ")
        self._rows = 0
        self._table_started = time.monotonic()

    def update(self, rows: int) -> None:
        self._rows += rows

    def line(self) -> str:
        """What the next tick writes."""
        now = time.monotonic()
        total = self._totals.get(self._table)
        rows = f"{self._rows:,} of {total:,} rows" if total else f"{self._rows:,} rows"
        if not self._rows:
            rows = "reading from the store"
        return f"{self._table}: {rows}, {now - self._table_started:.0f} s (export {now - self._started:.0f} s)"

    def _tick(self) -> None:
        while not self._stop.wait(self._every_s):
            if self._table:
                self._write(self.line())

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=self._every_s)


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


def _with_bucket(batches: Iterator[pa.RecordBatch], chars: int) -> Iterator[pa.RecordBatch]:
    for b in batches:
        yield b.append_column(PARTITION_COLUMN, flow_bucket(b.column("flow_id"), chars))


def _occupied(dest: Destination, table: str) -> bool:
    """True when the table's directory holds anything (a file in its place counts)."""
    path = dest.path(table)
    info = dest.filesystem.get_file_info(path)
    if info.type == pafs.FileType.File:
        return True
    if info.type != pafs.FileType.Directory:
        return False
    return bool(dest.filesystem.get_file_info(pafs.FileSelector(path, allow_not_found=True, recursive=False)))


def _clear(dest: Destination, table: str) -> None:
    path = dest.path(table)
    info = dest.filesystem.get_file_info(path)
    if info.type == pafs.FileType.File:
        dest.filesystem.delete_file(path)
    elif info.type == pafs.FileType.Directory:
        dest.filesystem.delete_dir_contents(path, missing_dir_ok=True)


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
    :func:`destination`). Refuses a non-empty table directory unless ``overwrite``. Rows stream to the
    files; ``sort`` (default) asks the engine for them in :data:`~tams_analytics.schema.SORT_KEYS` order,
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
        occupied = [name for name in names if _occupied(dest, name)]
        if occupied and not overwrite:
            held = f"{dest.url} already holds {', '.join(occupied)}"
            raise TamsError(f"{held}: pass overwrite=True to replace them", cli=f"{held}: --overwrite replaces them")
        dest.filesystem.create_dir(dest.root, recursive=True)
        for name in names:
            if name in occupied:
                _clear(dest, name)
            summary.tables.append(_export_table(catalog, dest, name, batch_rows, flow_bucket_chars, sort, bar))
            manifest[name] = {
                "rows": summary.tables[-1].rows,
                "files": summary.tables[-1].files,
                "partitioning": [PARTITION_COLUMN] if name == "segments" else [],
                "sorted_by": list(SORT_KEYS.get(name, ())) if sort else [],
            }
        _write_manifest(dest, catalog, manifest, flow_bucket_chars)
    except OSError as exc:
        raise TamsError(f"cannot write to {dest.url}: {said_on_cli(exc)}") from exc
    finally:
        bar.close()
    summary.seconds = time.perf_counter() - t0
    logger.info("exported %s rows of %s tables to %s in %.1f s", summary.rows, len(names), dest.url, summary.seconds)
    return summary


def _export_table(
    catalog: Catalog, dest: Destination, name: str, batch_rows: int, chars: int, sort: bool, bar: Any
) -> TableExport:
    t0 = time.perf_counter()
    path = dest.path(name)
    schema = export_schema(name)
    bar.set_description(f"export {name}")
    written: list[ds.WrittenFile] = []
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
        file_visitor=written.append,
    )
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


def hive_ddl(location: str, *, catalog: str = "hive", schema: str = "tams_export", partitioned: bool = True) -> str:
    """Trino statements that expose an export at ``location`` as Hive tables (external, Parquet).

    Segments are partitioned by ``flow_bucket``; the closing ``sync_partition_metadata`` call registers the
    bucket directories. ``sql/trino/export/hive_tables.sql`` is this for :data:`EXAMPLE_LOCATION`. With
    ``partitioned=False`` every table, segments too, is one directory of Parquet files with exactly the
    declared columns (what other writers than ``export`` produce).

    >>> print(hive_ddl("s3://b/p").splitlines()[5])
    CREATE SCHEMA IF NOT EXISTS "hive"."tams_export";
    """

    def q(*parts: str) -> str:
        return ".".join('"' + p.replace('"', '""') + '"' for p in parts)

    def lit(text: str) -> str:
        return "'" + text.replace("'", "''") + "'"

    root = location.rstrip("/")
    out = [
        f"-- Generated by tams_analytics.export.hive_ddl({location!r}): the Parquet export at {root} as external",
        "-- Hive tables in Trino. Run after `tams-analytics export --to <location>`; re-run the CALL after",
        "-- exports that add flow buckets. The catalog needs hive.parquet.time-zone=UTC and",
        "-- hive.timestamp-precision=MICROSECONDS (sql/trino/catalogs/hive_s3.properties).",
        "",
        f"CREATE SCHEMA IF NOT EXISTS {q(catalog, schema)};",
    ]
    for table in SCHEMAS:
        fields = list(export_schema(table))
        props = [f"external_location = {lit(f'{root}/{table}')}", "format = 'PARQUET'"]
        if table == "segments" and partitioned:
            fields.append(pa.field(PARTITION_COLUMN, pa.string()))
            props.append(f"partitioned_by = ARRAY[{lit(PARTITION_COLUMN)}]")
        cols = ",\n".join(f"  {q(f.name)} {_HIVE_TYPES[str(f.type)]}" for f in fields)
        out += [
            "",
            f"CREATE TABLE IF NOT EXISTS {q(catalog, schema, table)} (\n{cols}\n)",
            f"WITH ({', '.join(props)});",
        ]
    if partitioned:
        out += ["", f"CALL {q(catalog)}.system.sync_partition_metadata({lit(schema)}, 'segments', 'FULL');"]
    out.append("")
    return "\n".join(out)
