"""In-memory DuckDB connections the library runs its own queries on: the remote engines' lazy tables (``tams+http``,
VAST), their residual filters and the tables they derive client-side.

DuckDB turns its progress bar on for a connection made in an interactive session, and in Jupyter draws it as an
ipywidgets ``FloatProgress`` (black, above the cell's output) once a query has run for two seconds. A query over
a remote store waits on the network while it reads, which DuckDB cannot measure: the bar stays at 0 and is left
behind in the notebook. The library says how its long work goes itself (``progress=``, on stderr), so its
connections never draw DuckDB's bar, in a notebook or in a terminal. (The DuckDB engine runs its queries on
cursors, which DuckDB never gives the bar.)

>>> con = memory_connection()
>>> con.execute("SELECT current_setting('enable_progress_bar'), current_setting('TimeZone')").fetchall()
[(False, 'UTC')]
"""

from __future__ import annotations

import duckdb

__all__ = ["memory_connection", "quiet"]


def quiet(con: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
    """``con`` with DuckDB's progress bar off (a setting of the connection: its cursors start without the bar)."""
    con.execute("SET enable_progress_bar = false")
    return con


def memory_connection() -> duckdb.DuckDBPyConnection:
    """A new in-memory DuckDB, its time zone UTC and its progress bar off."""
    con = quiet(duckdb.connect(":memory:"))
    con.execute("SET TimeZone = 'UTC'")
    return con
