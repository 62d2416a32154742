"""What an export looks like: where each table goes, in which partition, with which columns.

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
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

import pyarrow as pa
import pyarrow.compute as pc

from tams_analytics.schema import SCHEMAS

MANIFEST: Final = "_tams_export.json"
FORMAT: Final = "tams-analytics-export/1"
#: the Hive partition column of the segments export
PARTITION_COLUMN: Final = "flow_bucket"
#: columns never exported (secrets)
EXCLUDED_COLUMNS: Final[Mapping[str, tuple[str, ...]]] = {"webhooks": ("api_key_value",)}
#: rows per Parquet row group: small enough that statistics skip most of a bucket for one flow's window
ROWS_PER_GROUP: Final = 128 * 1024
ROWS_PER_FILE: Final = 16 * 1024 * 1024


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
