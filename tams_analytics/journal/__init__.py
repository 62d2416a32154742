"""Journaled writes: acknowledged once durable in a synced log of their own, applied to the store behind them.

A live recorder's registration is acknowledged when its batch is durable. On DuckDB that was its commit, and a commit
waits for whatever the database is doing: a checkpoint that writes the objects' indexes holds every commit for a
time that grows with the archive (seconds on a store of millions of objects), and a commit costs more than the bytes
it makes durable. A *journaled* transaction (``engine.journaled()``, used by the server's segment writer) is instead
written to :class:`~tams_analytics.journal.log.Log` (one ``write`` and one ``fdatasync``) and acknowledged; the store
applies the journal's records in order, in transactions of many records, behind it (:mod:`.applier`). So:

* **durable before acknowledged**: a record is synced before the transaction returns; a failed write (a full volume)
  is cut back off the log and refused, never acknowledged;
* **nothing acknowledged is lost**: the store keeps the number of the last record it applied in the same transaction
  as the record's rows; when it is opened, every record after that is applied again before anything is read (a
  SIGKILL at any moment, a checkpoint included);
* **reads stay exact**: a read of rows a record not yet applied may change waits until it is applied
  (:class:`~tams_analytics.journal.pending.Pending`, by table and by key: a flow's segments, an object by id); the read
  cache, the live edges and the page cache see a journaled transaction when it is acknowledged, as they see a commit;
* **room to apply**: the journal keeps a reserve of space on the store's volume
  (:class:`~tams_analytics.journal.reserve.Reserve`), released the moment the volume is full, and before the store is
  opened, so that what it acknowledged can be applied (and read) on a full volume and after a restart on one;
* **one writer**: a transaction that is not journaled waits until every record is applied and runs alone (the journal
  takes no record meanwhile), so the store's order of writes is the order they were acknowledged in.

The journal is in a folder beside the store (``tams.duckdb.journal/``); it is removed, reserve and all, when the
store is closed cleanly.
"""

from tams_analytics.journal.codec import decode, encode
from tams_analytics.journal.log import Log, LogError, Record
from tams_analytics.journal.reserve import Reserve

__all__ = ["Log", "LogError", "Record", "Reserve", "decode", "encode"]
