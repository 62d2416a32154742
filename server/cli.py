"""``tams-analytics serve``: the TAMS REST server (FastAPI on uvicorn).

A command of the ``tams-analytics`` CLI that the server package adds (entry point group
``tams_analytics.commands``), so the library never imports the server.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from tams_analytics.engines import redacted
from tams_analytics.engines.duckdb.held import announce, withdraw


def add_parser(sub: Any) -> None:
    p = sub.add_parser("serve", help="serve the TAMS 8.2 API (docs at /docs)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--data-dir", type=Path, default=None, help="DuckDB file and local objects (default ./tams-data)")
    p.add_argument("--store", default=None, help="catalog URL (default: duckdb file in the data dir)")
    p.add_argument("--storage", choices=["local", "s3"], default=None, help="object storage (default local)")
    p.add_argument("--s3-endpoint", default=None)
    p.add_argument("--s3-bucket", default=None)
    p.add_argument("--s3-region", default=None)
    p.add_argument("--s3-create-bucket", action="store_true", default=None)
    p.add_argument("--presign-get", type=int, default=None, dest="presign_get_s", help="GET URL lifetime, s")
    p.add_argument("--presign-put", type=int, default=None, dest="presign_put_s", help="PUT URL lifetime, s")
    p.add_argument("--public-url", default=None, help="externally visible base URL")
    p.add_argument(
        "--demo",
        type=int,
        default=0,
        metavar="N",
        help="if the store has no flows, fill it with a demo of about N segments (with media)",
    )
    p.add_argument("--log-level", default="info")
    p.set_defaults(run=run)
    # S3 credentials come from TAMS_S3_ACCESS_KEY / TAMS_S3_SECRET_KEY (never from the command line)


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from server.app import build_stores, create_app
    from server.config import Settings
    from tams_analytics.catalog import connect

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
            "public_url": args.public_url or f"http://{args.host}:{args.port}",
        }.items()
        if v is not None
    }
    settings = Settings(**options)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    catalog = connect(settings.store_url)
    stores = build_stores(settings)
    if args.demo and catalog.count("flows") == 0:
        from tams_analytics.demo import build_demo
        from tams_analytics.storage.base import object_key

        store = stores.default
        assert store is not None
        print(f"building a demo store of about {args.demo} segments with media ...", file=sys.stderr)
        build_demo(
            catalog,
            args.demo,
            storage_id=store.info.id,
            storage_key=object_key,
            put_media=lambda oid, data, ctype: store.put_bytes(object_key(oid), data, ctype),
            progress=sys.stderr.isatty(),
        )
    app = create_app(settings, catalog=catalog, stores=stores, owns_catalog=True)
    url = settings.public_url
    print(f"TAMS server on {url}  (API docs: {url}/docs; store {redacted(settings.store_url)})", flush=True)
    # a DuckDB store is locked while served: leave the URL beside it from startup to shutdown, so that an
    # analyst opening the file is told to read it through this server instead (tams_analytics.engines.duckdb.held)
    path = getattr(catalog.engine, "path", None)
    served: Any = app
    if path and path != ":memory:" and url:
        served = Announced(app, path, url)
    try:
        uvicorn.run(served, host=args.host, port=args.port, log_level=args.log_level)
    finally:
        if served is not app:
            withdraw(path)
    return 0


class Announced:
    """The ASGI app, with its URL left beside its DuckDB store from the end of startup to the end of shutdown
    (uvicorn re-raises a SIGTERM after shutting down, so code after ``uvicorn.run`` does not run then)."""

    def __init__(self, app: Any, store: str, url: str) -> None:
        self.app, self.store, self.url = app, store, url

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return

        async def sending(message: Any) -> None:
            if message["type"] == "lifespan.startup.complete":
                announce(self.store, self.url)
            elif message["type"] in ("lifespan.shutdown.complete", "lifespan.shutdown.failed"):
                withdraw(self.store)
            await send(message)

        await self.app(scope, receive, sending)
