"""``python -m server.processes store|http``: a child of ``serve``'s supervisor (:mod:`.supervisor`)."""

from __future__ import annotations

import json
import logging
import logging.config
import os
import signal
import socket
import sys
from types import FrameType
from typing import Any

from server.config import Settings


def _settings() -> Settings:
    options: dict[str, Any] = json.loads(os.environ.get("TAMS_PROCESS_OPTIONS", "{}"))
    return Settings(**options)


def _configure_logging(settings: Settings, level: str) -> dict[str, Any] | None:
    """Logging as ``serve`` itself configures it (``-v`` as ``TAMS_PROCESS_VERBOSITY``): JSON lines, or the command
    line's text format at its verbosity's level; uvicorn's own configuration for an HTTP process (None: its
    default)."""
    from server.observability.logs import log_config

    config = log_config(settings.log_format, level)
    if config is not None:
        logging.config.dictConfig(config)
        return config
    verbosity = int(os.environ.get("TAMS_PROCESS_VERBOSITY", "0"))
    logging.basicConfig(
        level=(logging.WARNING, logging.INFO, logging.DEBUG)[min(verbosity, 2)],
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not verbosity:  # as serve: drivers' retries are said by the one line that says what failed
        for handler in logging.getLogger().handlers:
            handler.setLevel(max(handler.level, logging.WARNING))
        logging.getLogger("backoff").disabled = True
    return None


def _http_server_class() -> type[Any]:
    from server.serving import Server

    class HttpServer(Server):
        """uvicorn's server (telling when it accepts requests), deaf to SIGINT: a Ctrl-C reaches every process of the
        terminal's group, and the supervisor stops the HTTP processes itself (SIGTERM, each finishing what it has in
        flight) before the store process."""

        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            if sig != signal.SIGINT:
                super().handle_exit(sig, frame)

    return HttpServer


def _tell_ready(fd: int | None) -> None:
    """Write the byte the supervisor waits for to ``fd`` (``TAMS_READY_FD``), once: this process is ready."""
    if fd is not None:
        os.write(fd, b"r")
        os.close(fd)


def _gate_passed(fd: int | None) -> bool:
    """Wait at the gate ``fd`` for the supervisor's byte: whether to go on (False: the gate closed without one). An
    HTTP process's (``TAMS_STORE_GATE_FD``): the store process is ready (not: it failed, or ``serve`` stops). The store
    process's (``TAMS_OPEN_GATE_FD``): ``serve`` has let go of the store, to be opened here (not: ``serve`` cannot
    start, and says why). No gate: go on."""
    if fd is None:
        return True
    try:
        return bool(os.read(fd, 1))
    finally:
        os.close(fd)


def main(argv: list[str]) -> int:
    # a Ctrl-C reaches every process of the terminal's group: the supervisor stops its children in order (SIGTERM)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    role = argv[0] if argv else ""
    settings = _settings()
    level = os.environ.get("TAMS_PROCESS_LOG_LEVEL", "info")
    path = os.environ["TAMS_STORE_SOCKET"]
    config = _configure_logging(settings, level)
    ready = int(os.environ["TAMS_READY_FD"]) if os.environ.get("TAMS_READY_FD") else None
    if role in ("store", "http"):
        from server.observability.gc_pauses import watch_python_gc

        watch_python_gc(role)
    if role == "store":
        from server.processes import store

        gate = os.environ.get("TAMS_OPEN_GATE_FD")
        if gate:
            store.import_ahead()
            if not _gate_passed(int(gate)):
                return 0  # (``serve`` says why)
        store.run(settings, path, ready=ready)
        return 0
    if role == "http":
        import uvicorn

        from server.cli import _http_stack
        from server.interpreter import tune_interpreter
        from server.observability.access import AccessLog
        from server.processes.client import StoreClient
        from server.processes.front import create_front_app
        from server.services import watched_volumes
        from server.stores import build_stores

        tune_interpreter(settings)
        sock = socket.socket(fileno=int(os.environ["TAMS_LISTEN_FD"]))
        stores = build_stores(settings, check=False)
        access = AccessLog.for_serving(settings.access_log, settings.log_format, level)
        volumes = watched_volumes(settings, None, stores)
        app = create_front_app(settings, stores, StoreClient(path), volumes, access_log=access)
        loop, http = _http_stack(settings.uvicorn_loop, settings.uvicorn_http)
        # the access log is the app's own (server.observability.access), written off the request path: not uvicorn's
        options: dict[str, Any] = {"log_level": level, "loop": loop, "http": http, "access_log": False}
        if config is not None:
            options["log_config"] = config
        # the supervisor announces the server once every HTTP process it starts accepts requests
        server = _http_server_class()(
            uvicorn.Config(app, **options), accepting=lambda: _tell_ready(ready), access_log=access
        )
        gate = os.environ.get("TAMS_STORE_GATE_FD")
        if not _gate_passed(int(gate) if gate else None):
            return 0  # (the supervisor says why)
        server.run(sockets=[sock])
        return 0
    print(f"usage: python -m server.processes store|http, not {role!r}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
