"""Lazy tables for engines whose store is remote (VAST DB, any TAMS server over ``tams+http``).

An analyst's ``catalog.segments(flow_id=f, timerange=tr).group_by(...)`` or
``catalog.segments().filter(_.flow_id == f)`` must read from the store only the rows and columns it needs,
and everything else (joins, aggregates, windows, ``to_pandas``, ``to_parquet``) must still work. The tables
of such an engine are made by :class:`LazyTables`:

* every table is a :class:`~.dataset.PushdownDataset` (a ``pyarrow.dataset.Dataset`` subclass) registered in
  an in-memory DuckDB, which runs the whole ibis expression;
* when DuckDB scans a table it hands the dataset the columns it reads and the filters it pushed into the
  scan (through projections, windows, CTEs, and from joins as "dynamic filters"); the dataset reads them
  (:mod:`~.arrow_filter`) and asks the engine for exactly those rows and columns: the engine plans its own
  requests (VAST: ``Table.select(predicate=, columns=)`` split under the request limit, with a residual;
  ``tams+http``: query parameters, per-flow listings and a residual), then Arrow applies DuckDB's filter
  exactly to what came back;
* the catalog's own filters (``flows(format=...)``, tags, collections, ``timerange=``) are *pinned* to the
  table when it is made (:meth:`LazyTables.table` with ``where``), so the engine gets them in its own
  predicate language, including what DuckDB does not push into a scan (prefixes, semi-joins on tags, and on
  DuckDB 1.3 ``IS NULL`` and ORs across columns);
* a literal prefix (``startswith``, ``LIKE 'abc%'``) is also written as the range it implies before DuckDB
  plans the query (:mod:`~.rewrite`), since DuckDB pushes no ``starts_with`` and 2.0 no prefix ``LIKE``;
* a scan that reads a whole table is counted and, when the query filters anything, logged at WARNING once
  per query shape (:class:`~.dataset.WholeReads`), so no lazy query falls back to a whole read unnoticed.

What DuckDB hands a scan differs between the two dependency sets (``compat.SCAN_PUSHDOWN``): 1.3 sends an
``IN`` list as nested ORs and a join's keys from its other side; 2.0 sends ``IN`` as ``is_in``, also ``IS NULL``,
``NOT IN`` and ORs across columns, but no join keys (its dynamic filters stay inside DuckDB). The reader
(:mod:`~.arrow_filter`) understands both forms without asking which it got.

Why this mechanism. Two were tried with the pinned versions (ibis 10.8, DuckDB 1.3.2, pyarrow 23):

1. rewriting the expression in the ibis DuckDB backend's ``_run_pre_execute_hooks``: it sees every execution
   path, but returns nothing, so it can only register a replacement for each leaf under the leaf's name (with
   every column, unused ones null); and it must find the leaf's filters and used columns itself in ibis's
   operation tree. A filter above a ``mutate``/``select`` is not on the leaf, and a join reads its columns
   through ``JoinTable`` nodes: the spike found no filter for ``t.mutate(...).filter(...)`` and no columns for
   a self-join, so each shape would need hand-written pushdown rules, and a missed column is a silent null;
2. a ``pyarrow.dataset.Dataset`` subclass (this package): DuckDB's own optimizer decides what each scan
   needs, for any SQL ibis generates, and passes join keys as filters too; the spike pushed the filter and
   the exact projection for all those shapes. Its limits: DuckDB does not push ``IS NULL``,
   ``starts_with``/``contains``, ORs across columns or ``LIMIT`` into a scan (the pinned catalog filters
   cover the first three), and the filter arrives as an Arrow expression without a public reader.

Both are undocumented behaviour of the pinned versions: :mod:`~.selfcheck` checks it once per process
before the first lazy table (falling back to whole reads, with a warning) and tests pin it in CI on both sets
(``tests/engines/remote``: the forms read back, and the rows each filter shape makes a store read).
"""

from __future__ import annotations

from tams_analytics.engines.remote.dataset import Fetch, Narrows, PushdownDataset, ScanCache, WholeReads
from tams_analytics.engines.remote.tables import LazyTables

__all__ = ["Fetch", "LazyTables", "Narrows", "PushdownDataset", "ScanCache", "WholeReads"]
