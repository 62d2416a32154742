"""The embedded default engine: one DuckDB file (or memory) per store.

Reads on the hot path render the predicate tree straight to parameterised SQL (no ibis compile);
analysts get lazy ibis tables over the same DuckDB database. DuckDB connections are not safe to share
between threads, so each thread gets its own cursor; writes run on one cursor under one lock, inside an
explicit transaction, and reads made inside a transaction use that cursor so they see its writes.

The parts, each a module: the store's file (:mod:`.files`), its tables (:mod:`.ddl`), how reads and writes run
(:mod:`.reads`, :mod:`.writes`), the connections and their recovery after a storage fault
(:mod:`.connections`, :mod:`.faults`, :mod:`.readers`), and upkeep: checkpoints and the storage format
(:mod:`.upkeep`). What differs between the supported DuckDB versions is in :mod:`tams_analytics.compat`.

Importing the package imports none of that: its light parts (:mod:`.held`, :mod:`.files`, :mod:`.faults`,
:mod:`.upkeep`) serve the command line and the server's HTTP processes, which never open a store, without the cost of
ibis and pandas (about a second of every process's start). :class:`Engine` and the names beside it load on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tams_analytics.lazy import lazy_exports

if TYPE_CHECKING:
    from tams_analytics.engines.duckdb.engine import (
        CHECKPOINT_MARGIN_BYTES,
        LOOKUP_KEYS,
        ROW_GROUP_ROWS,
        CheckpointObserver,
        Engine,
    )

__all__ = ["CHECKPOINT_MARGIN_BYTES", "LOOKUP_KEYS", "ROW_GROUP_ROWS", "CheckpointObserver", "Engine"]

__getattr__ = lazy_exports(__name__, dict.fromkeys(__all__, ".engine"))
