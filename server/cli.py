"""``tams-analytics serve``: the TAMS REST server (FastAPI on uvicorn).

A command of the ``tams-analytics`` CLI that the server package adds (entry point group
``tams_analytics.commands``), so the library never imports the server.
"""

from __future__ import annotations

import argparse
import errno
import logging
import socket
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tams_analytics.cli.common import HelpFormatter
from tams_analytics.engines import redacted
from tams_analytics.engines.duckdb.held import announce, withdraw
from tams_analytics.exceptions import TamsError, said_on_cli
from tams_analytics.extras import install_hint

if TYPE_CHECKING:  # the server extra may be missing: this command then says which extra to install
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

    from server.processes.supervisor import Supervisor

logger = logging.getLogger(__name__)

#: the highest TCP port
MAX_PORT = 65535
#: fewer open files than this allowed to the server draws a warning: each connection a client keeps open is one
FEW_OPEN_FILES = 4096


def port_number(text: str) -> int:
    """``--port``: 1 to 65535, or 0 for any free port (the banner says which)."""
    port = int(text) if text.strip().lstrip("+-").isdigit() else None
    if port is None or not 0 <= port <= MAX_PORT:
        raise argparse.ArgumentTypeError(f"{text} is not a TCP port: ports are 1 to {MAX_PORT} (0: any free port)")
    return port


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "serve",
        help="serve the TAMS 8.2 API (docs at /docs)",
        description="Serve the TAMS 8.2 REST API over a store, with object storage (local files or S3). Options "
        "override TAMS_* environment variables (see the README); S3 credentials come from TAMS_S3_ACCESS_KEY and "
        "TAMS_S3_SECRET_KEY, never from the command line. The data dir is created when it does not exist, and "
        "the store too, in a folder that exists. API reference (works offline): /docs and /redoc. Needs the "
        'server extra: pip install -e ".[server]" -c constraints.txt.',
        epilog="examples:\n"
        "  tams-analytics serve --data-dir ./tams-data --demo 20000\n"
        "  tams-analytics serve --host 0.0.0.0 --port 8080 --store duckdb:///srv/tams/tams.duckdb --storage s3 "
        "--s3-endpoint http://127.0.0.1:8333 --s3-bucket media",
        formatter_class=HelpFormatter,
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0: every interface)")
    p.add_argument("--port", type=port_number, default=8000, help="TCP port to listen on (0: any free port)")
    p.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="DuckDB file and local objects (default: $TAMS_DATA_DIR or ./tams-data)",
    )
    p.add_argument(
        "--store",
        default=None,
        help="store URL, e.g. duckdb:///srv/tams/tams.duckdb (default: $TAMS_STORE, else tams.duckdb in the data dir)",
    )
    p.add_argument(
        "--storage", choices=["local", "s3"], default=None, help="object storage (default: $TAMS_STORAGE or local)"
    )
    p.add_argument("--s3-endpoint", default=None, help="S3 endpoint URL (default: $TAMS_S3_ENDPOINT, else AWS)")
    p.add_argument("--s3-bucket", default=None, help="S3 bucket for media objects (default: $TAMS_S3_BUCKET)")
    p.add_argument("--s3-region", default=None, help="S3 region (default: $TAMS_S3_REGION)")
    p.add_argument("--s3-create-bucket", action="store_true", default=None, help="create the S3 bucket if missing")
    p.add_argument(
        "--presign-get",
        type=int,
        default=None,
        dest="presign_get_s",
        help="GET URL lifetime in seconds (default: $TAMS_PRESIGN_GET_S or 600)",
    )
    p.add_argument(
        "--presign-put",
        type=int,
        default=None,
        dest="presign_put_s",
        help="PUT URL lifetime in seconds (default: $TAMS_PRESIGN_PUT_S or 600)",
    )
    p.add_argument("--public-url", default=None, help="externally visible base URL (default: http://HOST:PORT)")
    p.add_argument(
        "--demo",
        type=int,
        default=0,
        metavar="N",
        help="if the store has no flows, fill it with a demo of about N segments (with media); 0: no demo",
    )
    p.add_argument("--log-level", default="info", help="uvicorn log level (critical, error, warning, info, debug)")
    p.add_argument(
        "--log-format", choices=["text", "json"], default=None, help="log lines as text or JSON (TAMS_LOG_FORMAT)"
    )
    p.add_argument(
        "--rotate-signing-key",
        action="store_true",
        help="make a new signing key for local storage URLs first (the previous one stays accepted)",
    )
    p.set_defaults(run=run)
    # S3 credentials come from TAMS_S3_ACCESS_KEY / TAMS_S3_SECRET_KEY (never from the command line)


class StartupError(Exception):
    """What keeps the server from starting, said in one line (``serve`` prints it and exits 2)."""


def run(args: argparse.Namespace) -> int:
    try:
        _require_server_extra()
        return _serve(args)
    except StartupError as exc:
        print(f"tams-analytics serve: {exc}", file=sys.stderr)
        return 2


#: the modules the ``server`` extra installs (pyproject.toml) that the app imports as it starts, looked for without
#: importing them: a supervisor (:func:`_supervise`) never imports the app its children serve (boto3 and PyAV, from
#: the extras it includes, are imported when used, and say so themselves when missing)
SERVER_EXTRA_MODULES = (
    "fastapi",
    "uvicorn",
    "httptools",
    "pydantic",
    "pydantic_settings",
    "orjson",
    "prometheus_client",
    "jwt",
    "fastapi_offline",
    "yaml",
    "jsonschema",
    "referencing",
    "jsonschema_rs",
    "httpx",
)


def _require_server_extra() -> None:
    """The server's dependencies (the ``server`` extra), or a :class:`StartupError` saying how to install them."""
    for name in SERVER_EXTRA_MODULES:
        if not _installed(name):
            raise StartupError(f"serve needs the server extra (no module {name}): {install_hint('server')}")


def _installed(module: str) -> bool:
    """Whether top-level ``module`` can be imported, found without importing it (one imported already, or blocked as
    ``sys.modules[module] = None`` blocks it, answers for itself)."""
    import importlib.util

    if module in sys.modules:
        return sys.modules[module] is not None
    return importlib.util.find_spec(module) is not None


def _serve(args: argparse.Namespace) -> int:
    settings = _settings(args)
    from server.interpreter import tune_interpreter

    tune_interpreter(settings)
    _raise_open_files_limit()
    sock = _listen(args.host, args.port)
    if settings.public_url is None:  # the port listened on: with --port 0, the one the system chose
        port = sock.getsockname()[1]
        settings = settings.model_copy(update={"public_url": f"http://{_url_host(args.host)}:{port}"})
    ahead: Supervisor | None = None
    try:
        _data_dir(args, settings)
        if not args.demo and settings.store_url.lower().startswith("duckdb:") and settings.http_process_count():
            ahead = _supervisor(args, settings, sock, settings.http_process_count())
            ahead.spawn()  # a DuckDB store's children start while the store opens here (see Supervisor.spawn)
        catalog, stores = _open(args, settings)
    except BaseException:
        if ahead is not None:
            ahead.abandon()
        sock.close()
        raise
    loop, http = _http_stack(settings.uvicorn_loop, settings.uvicorn_http)
    processes = settings.http_process_count() if catalog.engine.capabilities.sole_writer else 0
    if processes:
        supervisor = ahead or _supervisor(args, settings, sock, processes)
        return _supervise(settings, catalog, supervisor, f"[{loop}, {http}]")
    if ahead is not None:  # (not a sole writer after all: served here)
        ahead.abandon()
    return _serve_here(args, settings, catalog, stores, sock, (loop, http))


def _raise_open_files_limit() -> None:
    """Raise this process's limit on open files to the hard limit (:mod:`tams_analytics.open_files`), before it
    opens anything: the store and HTTP processes inherit it. A live site's recorders keep a connection open each, and
    at the soft limit most systems give (1,024) a server accepts no more: warn when the limit stays under
    :data:`FEW_OPEN_FILES`."""
    from tams_analytics.open_files import raise_open_files

    files = raise_open_files()
    if files is None or files.limit is None:
        return
    if files.limit < FEW_OPEN_FILES:
        why = f" (raising it failed: {files.error})" if files.error else " (its hard limit)"
        logger.warning(
            "the server may have %s files open at once%s, and each client connection is one (a live recorder keeps "
            "its own open): past that, new connections are reset or wait unanswered; raise the limit (LimitNOFILE= "
            "in a systemd unit, ulimit -n in a shell)",
            files.limit,
            why,
        )
    elif files.before != files.limit:
        logger.debug("open files: the limit is %s (raised from %s)", files.limit, files.before)


def _serve_here(
    args: argparse.Namespace, settings: Any, catalog: Any, stores: Any, sock: socket.socket, stack: tuple[str, str]
) -> int:
    """Serve in this one process (a store that is not a single writer's, or ``TAMS_HTTP_PROCESSES=0``)."""
    import uvicorn

    from server.app import create_app
    from server.observability.access import AccessLog
    from server.observability.gc_pauses import watch_python_gc
    from server.observability.logs import log_config
    from server.serving import Server

    watch_python_gc("server")
    url = settings.public_url
    loop, http = stack
    access = AccessLog.for_serving(settings.access_log, settings.log_format, args.log_level)
    app = create_app(
        settings,
        engine=catalog.engine,
        stores=stores,
        owns_engine=True,
        freeze_gc=settings.gc_freeze,
        access_log=access,
    )
    banner = f"TAMS server on {url}  (API docs: {url}/docs; store {redacted(settings.store_url)})  [{loop}, {http}]"
    # the access log is the app's own (server.observability.access), written off the request path: not uvicorn's
    options: dict[str, Any] = {"log_level": args.log_level, "loop": loop, "http": http, "access_log": False}
    custom = log_config(settings.log_format, args.log_level)
    if custom is not None:
        options["log_config"] = custom
    # a DuckDB store is locked while served: leave the URL beside it from startup to shutdown, so that an
    # analyst opening the file is told to read it through this server instead (tams_analytics.engines.duckdb.held)
    path = getattr(catalog.engine, "path", None)
    served: Any = app
    if path and path != ":memory:" and url:
        served = Announced(app, path, url)
    try:  # the banner once requests are accepted (the app started), as with HTTP processes
        server = Server(uvicorn.Config(served, **options), accepting=lambda: _say(settings, banner), access_log=access)
        server.run(sockets=[sock])
    finally:
        if served is not app and path:
            withdraw(path)
    return 0


def _supervisor(args: argparse.Namespace, settings: Any, sock: socket.socket, processes: int) -> Supervisor:
    """The :class:`~server.processes.supervisor.Supervisor` of a store process and ``processes`` HTTP processes."""
    from server.processes.supervisor import Supervisor

    return Supervisor(
        sock=sock,
        options=process_options(settings),
        http_processes=processes,
        log_level=args.log_level,
        verbosity=int(getattr(args, "verbose", 0) or 0),
    )


def _supervise(settings: Any, catalog: Any, supervisor: Supervisor, stack: str) -> int:
    """Serve as a store process and HTTP processes (:mod:`server.processes`, ``supervisor``'s): the store is closed
    here (checkpointed) and opened by the store process; this process supervises."""
    from server.processes.supervisor import ChildFailed

    found = getattr(catalog.engine, "path", None)
    catalog.close()
    url = settings.public_url
    path: str | None = found if isinstance(found, str) and found != ":memory:" and url else None

    def announce_processes(pids: dict[str, Any]) -> None:
        if path is not None:
            announce(path, url, pids)

    supervisor.announce = announce_processes
    processes = supervisor.http_processes
    sock = supervisor.sock
    banner = f"TAMS server on {url}  (API docs: {url}/docs; store {redacted(settings.store_url)})  {stack}"
    plural = "es" if processes != 1 else ""

    def ready() -> None:
        _say(settings, banner)
        _say(
            settings, f"serving with {processes} HTTP process{plural} in front of the store process", stream=sys.stderr
        )

    try:
        supervisor.start(ready=ready)
    except ChildFailed as exc:
        supervisor.stop()
        sock.close()
        raise StartupError(f"{exc} (its message is above)") from None
    try:
        return supervisor.run()
    finally:
        if path is not None:
            withdraw(path)


def process_options(settings: Any) -> dict[str, Any]:
    """The settings the children of ``serve`` are given (:mod:`server.processes`): every one set from an option or
    the environment, secrets left out (the children read those from the environment they inherit)."""
    from pydantic import SecretStr

    secret = {name for name, f in type(settings).model_fields.items() if f.annotation in (SecretStr, SecretStr | None)}
    return {
        name: value
        for name, value in settings.model_dump(mode="json", exclude_unset=True).items()
        if name not in secret
    }


def _http_stack(loop: str, http: str) -> tuple[str, str]:
    """The event loop and HTTP/1.1 parser uvicorn is to run: ``auto`` resolved here (uvloop and httptools,
    installed with the server, when they import) so that the banner says what serves."""
    if loop == "auto":
        loop = "uvloop" if _imports("uvloop") else "asyncio"
    if http == "auto":
        http = "httptools" if _imports("httptools") else "h11"
    return loop, http


def _imports(module: str) -> bool:
    import importlib

    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True


def _settings(args: argparse.Namespace) -> Any:
    from pydantic import ValidationError

    from server.config import Settings

    options = {
        k: v
        for k, v in {
            "data_dir": args.data_dir,
            "store": args.store,
            "storage": args.storage,
            "s3_endpoint": args.s3_endpoint,
            "s3_bucket": args.s3_bucket,
            "s3_region": args.s3_region,
            "s3_create_bucket": args.s3_create_bucket,
            "presign_get_s": args.presign_get_s,
            "presign_put_s": args.presign_put_s,
            "public_url": args.public_url,
            "log_format": args.log_format,
        }.items()
        if v is not None
    }
    try:
        return Settings(**options)
    except ValidationError as exc:
        raise StartupError(setting_errors(exc)) from None


def setting_errors(exc: Any) -> str:
    """A pydantic ``ValidationError`` of :class:`~server.config.Settings` as one line naming the settings."""
    parts = []
    for err in exc.errors():
        names = [str(p) for p in err.get("loc", ()) if isinstance(p, str)]
        message = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        if names:
            shown = repr(err.get("input")) if "input" in err else ""
            parts.append(
                f"TAMS_{names[0].upper()}={shown}: {message}" if shown else f"TAMS_{names[0].upper()}: {message}"
            )
        else:
            parts.append(message)
    return "bad setting: " + "; ".join(parts)


#: connections the listening socket queues before uvicorn accepts them (uvicorn's default backlog)
BACKLOG = 2048


def _listen(host: str, port: int) -> socket.socket:
    """A socket listening on ``host:port`` (uvicorn serves on it), or a :class:`StartupError` saying why not.

    It listens from the start, and the banner announces the URL once the app (every HTTP process) accepts requests on
    it: a client that connects then (a script waiting for the banner) is answered at once, and one that connects
    earlier waits in the backlog instead of being refused."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        raise StartupError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(BACKLOG)
        sock.set_inheritable(True)
    except OSError as exc:
        sock.close()
        reason = "the port is in use" if exc.errno == errno.EADDRINUSE else (exc.strerror or str(exc))
        raise StartupError(f"cannot listen on {host}:{port}: {reason}") from None
    return sock


def _data_dir(args: argparse.Namespace, settings: Any) -> None:
    """Make the data dir (and a new signing key, when asked), or a :class:`StartupError`: before any child starts,
    whose local storage lies there."""
    from tams_analytics.storage.keys import rotate

    try:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        if args.rotate_signing_key:
            rotate(settings.data_dir)
    except (OSError, TamsError) as exc:
        raise StartupError(f"data dir {settings.data_dir}: {_one_line(exc)}") from None


def _open(args: argparse.Namespace, settings: Any) -> tuple[Any, Any]:
    """The catalog and object stores (with the demo, when asked), or a :class:`StartupError`; the data dir is
    :func:`_data_dir`'s."""
    from server.stores import build_stores
    from tams_analytics.catalog import connect

    if not getattr(args, "verbose", 0):
        # drivers log their retries (Trino's at INFO on its own level, the VAST SDK's give-up as ERROR):
        # the one line below says what failed
        for handler in logging.getLogger().handlers:
            handler.setLevel(max(handler.level, logging.WARNING))
        # (the backoff package sets its logger's level when first imported: keep it quiet another way)
        logging.getLogger("backoff").disabled = True
    try:
        catalog = connect(settings.store_url, create=True, **settings.store_options())
    except Exception as exc:  # drivers raise their own errors (duckdb's held lock, requests', the SDK's)
        raise StartupError(f"cannot open the store {redacted(settings.store_url)}: {_one_line(exc)}") from None
    try:
        catalog.count("service")  # lazy drivers (Trino's) connect on the first query
    except Exception as exc:
        catalog.close()
        raise StartupError(f"the store {redacted(settings.store_url)} does not answer: {_one_line(exc)}") from None
    try:
        stores = build_stores(settings)
        if args.demo and catalog.count("flows") == 0:
            _demo(catalog, stores, args.demo, settings)
    except BaseException as exc:
        catalog.discard()  # a store made for this demo goes; an existing one is as it was (one transaction)
        if isinstance(exc, TamsError | OSError):
            raise StartupError(_one_line(exc)) from None
        raise
    return catalog, stores


def _demo(catalog: Any, stores: Any, segments: int, settings: Any) -> None:
    from tams_analytics.demo import build_demo
    from tams_analytics.storage.base import object_key

    store = stores.default
    assert store is not None
    _say(settings, f"building a demo store of about {segments} segments with media ...", stream=sys.stderr)
    with catalog.transaction():
        build_demo(
            catalog,
            segments,
            storage_id=store.info.id,
            storage_key=object_key,
            put_media=lambda oid, data, ctype: store.put_bytes(object_key(oid, ctype), data, ctype),
            progress=sys.stderr.isatty(),
        )


def _say(settings: Any, message: str, *, stream: Any = None) -> None:
    """A line for the operator (stdout unless ``stream``): as written, or, with ``--log-format json``, as one
    JSON log line like every other the server writes."""
    if settings.log_format == "json":
        from server.observability.logs import JsonFormatter

        record = logging.LogRecord("tams_analytics.serve", logging.INFO, __file__, 0, message, None, None)
        message = JsonFormatter().format(record)
    try:
        print(message, file=stream or sys.stdout, flush=True)
    except (OSError, ValueError) as exc:  # a full disk or a closed stream beneath: the line is lost, never the server
        logging.getLogger("tams_analytics.serve").warning("a line for the operator could not be written: %s", exc)


def _url_host(host: str) -> str:
    """``host`` as it goes in a URL (an IPv6 address in brackets)."""
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def _one_line(exc: BaseException) -> str:
    """What went wrong, in one line and in words (an ``OSError`` as its reason and the path, not its class)."""
    if isinstance(exc, TamsError) or (isinstance(exc, OSError) and exc.strerror):
        return " ".join(said_on_cli(exc).split())
    text = " ".join(str(exc).split()) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"


class Announced:
    """The ASGI app, with its URL left beside its DuckDB store from the end of startup to the end of shutdown
    (uvicorn re-raises a SIGTERM after shutting down, so code after ``uvicorn.run`` does not run then)."""

    def __init__(self, app: ASGIApp, store: str, url: str) -> None:
        self.app, self.store, self.url = app, store, url

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return

        async def sending(message: Message) -> None:
            if message["type"] == "lifespan.startup.complete":
                announce(self.store, self.url)
            elif message["type"] in ("lifespan.shutdown.complete", "lifespan.shutdown.failed"):
                withdraw(self.store)
            await send(message)

        await self.app(scope, receive, sending)
