"""``tams-analytics download``: the media of a flow over a timerange, in order, into one file.

``--store URL --storage local:DIR|s3://BUCKET[/PREFIX]`` reads objects through the catalog's instances and
the library's storage (as ``integrity --storage``); ``--server URL`` through a TAMS API's ``get_urls``, with
the credentials the ``tams+http`` engine uses (``TAMS_HTTP_TOKEN``, ``TAMS_HTTP_USERNAME``/``TAMS_HTTP_PASSWORD``
or OAuth2 client credentials). Exit codes: 0 done, 1 objects missing or not as recorded (named), 2 usage or
connection errors.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from tams_analytics.cli.common import (
    EXIT_FINDINGS,
    EXIT_OK,
    EXIT_USAGE,
    S3_REGION_HELP,
    STORE_HELP,
    HelpFormatter,
    UsageError,
    add_store_option,
    open_catalog,
)
from tams_analytics.exceptions import TamsError, said_on_cli


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "download",
        help="download the media of a flow over a timerange into one file",
        description="Write the media of a flow over a timerange into one file: its objects in time order (an init "
        "object first for fragmented MP4), each checked against its recorded size. Objects come from a store and "
        "its object storage (--store with --storage) or from a TAMS server's get_urls (--server; credentials "
        "from TAMS_HTTP_TOKEN, or TAMS_HTTP_USERNAME and TAMS_HTTP_PASSWORD, or OAuth2 client credentials: "
        "TAMS_OAUTH_TOKEN_URL, TAMS_OAUTH_CLIENT_ID, TAMS_OAUTH_CLIENT_SECRET). Exit 1 names the objects "
        "missing or not as recorded.",
        epilog="examples:\n"
        "  tams-analytics download --server http://127.0.0.1:8000 --flow FLOW_ID "
        '--timerange "[1700000000:0_1700000060:0)" --out clip.ts\n'
        "  tams-analytics download --store duckdb://./tams-data/tams.duckdb --storage local:tams-data/objects "
        "--flow FLOW_ID --timerange 2023-11-14T22:13Z/PT1M --out clip.ts",
        formatter_class=HelpFormatter,
    )
    add_store_option(p, help=STORE_HELP.replace("(default", "(objects through --storage; default"))
    p.add_argument(
        "--server",
        metavar="URL",
        help="TAMS API base URL, e.g. http://127.0.0.1:8000 (objects through get_urls; credentials from "
        "TAMS_HTTP_TOKEN or TAMS_HTTP_USERNAME/TAMS_HTTP_PASSWORD); instead of --store",
    )
    p.add_argument("--storage", metavar="local:DIR|s3://BUCKET[/PREFIX]", help="object storage, with --store")
    p.add_argument("--storage-id", help="the storage backend id whose instances --storage holds")
    p.add_argument(
        "--s3-endpoint",
        default=os.environ.get("TAMS_S3_ENDPOINT"),
        help="S3 endpoint URL (default: $TAMS_S3_ENDPOINT, else AWS)",
    )
    p.add_argument("--s3-region", default=os.environ.get("TAMS_S3_REGION", "us-east-1"), help=S3_REGION_HELP)
    p.add_argument("--flow", required=True, metavar="FLOW_ID", help="flow id")
    p.add_argument(
        "--timerange",
        default="_",
        help="TAMS timerange or ISO 8601 interval (default: the whole flow)",
    )
    p.add_argument("--out", required=True, type=Path, metavar="FILE", help="file to write")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from tams_analytics.media.download import DownloadError, download
    from tams_analytics.media.source import ServerMedia, store_media
    from tams_analytics.timerange import TimeRange

    name = "tams-analytics download"
    catalog = None
    try:
        tr = TimeRange.coerce(args.timerange, "--timerange")
        if args.server:
            source: Any = ServerMedia.from_env(args.server)
        else:
            if not args.store:
                raise UsageError("give --server URL, or --store URL (or set TAMS_STORE) with --storage")
            if not args.storage:
                raise UsageError("--store needs --storage local:DIR or s3://BUCKET[/PREFIX] to read objects from")
            catalog = open_catalog(args.store)
            source = store_media(
                catalog,
                args.storage,
                storage_id=args.storage_id,
                s3_endpoint=args.s3_endpoint,
                s3_region=args.s3_region,
            )
        result = download(source, args.flow, tr, args.out, progress=sys.stderr.isatty())
    except DownloadError as exc:
        print(f"{name}: {exc.summary}:", file=sys.stderr)  # each problem once, on its own line
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return EXIT_FINDINGS
    except (UsageError, TamsError, OSError) as exc:
        print(f"{name}: {said_on_cli(exc)}", file=sys.stderr)
        return EXIT_USAGE
    finally:
        if catalog is not None:
            catalog.close()
    print(f"wrote {result.segments} segments ({result.bytes} bytes, {result.timerange}) to {args.out}")
    return EXIT_OK
