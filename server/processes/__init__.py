"""The server as several processes: one **store process** (the only one that opens a DuckDB store: it writes, keeps
the read cache and runs the background workers) and **HTTP processes** in front of it (parsing, validation,
authentication, rendering), so the HTTP work and the store's writer no longer share one GIL.

* :mod:`.protocol`: the messages between them and their encoding (one module, with a version both ends check);
* :mod:`.store`: the store process: the app's services, serving the HTTP processes over a Unix socket;
* :mod:`.client`: an HTTP process's connection to it;
* :mod:`.front`: the HTTP processes' app: segment registrations and pages natively, everything else forwarded;
* :mod:`.supervisor`: ``serve`` starting them, restarting one that dies, stopping them in order.
"""
