"""``tams-analytics download``: the media of a flow over a timerange, in order, into one file.

``--store URL --storage local:DIR|s3://BUCKET[/PREFIX]`` reads objects through the catalog's instances and
the library's storage (as ``integrity --storage``); ``--server URL`` through a TAMS API's ``get_urls``
(a bearer token from ``TAMS_TOKEN``). Exit codes: 0 done, 1 objects missing or not as recorded (named),
2 usage or connection errors.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from tams_analytics.cli.__main__ import EXIT_FINDINGS, EXIT_OK, EXIT_USAGE
from tams_analytics.cli.report import UsageError, open_catalog
from tams_analytics.exceptions import TamsError


def add_parser(sub: Any) -> None:
    p = sub.add_parser("download", help="download the media of a flow over a timerange into one file")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--store", help="catalog URL (objects through --storage)")
    where.add_argument("--server", help="TAMS API base URL (objects through get_urls; token from TAMS_TOKEN)")
    p.add_argument("--storage", metavar="local:DIR|s3://BUCKET[/PREFIX]", help="object storage, with --store")
    p.add_argument("--storage-id", help="the storage backend id whose instances --storage holds")
    p.add_argument("--s3-endpoint", default=os.environ.get("TAMS_S3_ENDPOINT"), help="S3 endpoint URL")
    p.add_argument("--s3-region", default=os.environ.get("TAMS_S3_REGION", "us-east-1"))
    p.add_argument("--flow", required=True, help="flow id")
    p.add_argument("--timerange", default="_", help="TAMS timerange (default: the whole flow)")
    p.add_argument("--out", required=True, type=Path, help="file to write")
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
        print(f"{name}: {exc}", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return EXIT_FINDINGS
    except (UsageError, TamsError, OSError) as exc:
        print(f"{name}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    finally:
        if catalog is not None:
            catalog.close()
    print(f"wrote {result.segments} segments ({result.bytes} bytes, {result.timerange}) to {args.out}")
    return EXIT_OK
