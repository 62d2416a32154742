"""``tams-analytics backup``: a consistent copy of a store, live or not, into a backup repository; ``backup expire``:
retention.

A DuckDB store a running server holds is copied by that server, at one point in time, while it goes on writing:
the command finds the server's URL beside the store (``<store>.server.json``) or takes ``--server URL``, and
sends the API's credentials (``TAMS_HTTP_TOKEN``, or ``TAMS_HTTP_USERNAME``/``TAMS_HTTP_PASSWORD``; with JWTs the
``admin`` scope); the server writes the whole copy under ``<data dir>/.backup-staging/`` before it sends it, so the
store's volume needs about the size of a backup free beyond its high watermark (else 507, said in one line). A store
nobody holds (even one whose server crashed, leaving its URL beside it) is copied directly. Each backup is a folder
of the repository (a directory or ``s3://bucket/prefix``) named by its UTC time, with the tables as Parquet and
``backup.json`` (counts, columns, a SHA-256 per file). ``--keep N`` then removes all but the N newest backups.

Exit codes: 0 done; 2 usage, configuration, connection or I/O errors (a full disk: the file and its volume's free
space), said in one line.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from tams_analytics.cli.common import EXIT_OK, HelpFormatter, add_s3_options, add_store_option
from tams_analytics.cli.output import clock, mib
from tams_analytics.exceptions import TamsError

#: what ``--to`` takes
REPO_HELP = "the backup repository: a directory or s3://bucket/prefix"


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "backup",
        help="back a store up (a live server's too) into a repository; backup expire: retention",
        description=__doc__,
        epilog="examples:\n"
        "  tams-analytics backup --store duckdb:///srv/tams/tams.duckdb --to /backups/tams --keep 7\n"
        "  tams-analytics backup --store duckdb:///srv/tams/tams.duckdb --to s3://backups/tams --format json\n"
        "  tams-analytics backup --server http://127.0.0.1:8000 --to /backups/tams\n"
        "  tams-analytics backup expire --to /backups/tams --keep 7",
        formatter_class=HelpFormatter,
    )
    add_store_option(p)
    p.add_argument(
        "--server",
        metavar="URL",
        help="the server holding the store, which makes the copy (default: the URL it leaves beside a DuckDB store)",
    )
    p.add_argument("--to", metavar="DIR|s3://BUCKET/PREFIX", help=REPO_HELP)
    p.add_argument("--keep", type=int, metavar="N", help="then remove all but the N newest backups of the repository")
    p.add_argument("--format", choices=("table", "json"), default="table", help="output: one line, or JSON")
    add_s3_options(p)
    p.set_defaults(run=run, action=None)
    actions = p.add_subparsers(dest="action", metavar="ACTION")
    expire = actions.add_parser(
        "expire",
        help="remove all but the N newest backups of a repository",
        description="Remove all but the --keep newest complete backups of the repository, and backups that did not "
        "finish older than the newest complete one (one being written now is newer and stays). A backup whose "
        "manifest cannot be read is left for people to look at.",
        epilog="examples:\n"
        "  tams-analytics backup expire --to /backups/tams --keep 7\n"
        "  tams-analytics backup expire --to s3://backups/tams --keep 30 --format json",
        formatter_class=HelpFormatter,
    )
    expire.add_argument("--to", metavar="DIR|s3://BUCKET/PREFIX", dest="expire_to", help=REPO_HELP)
    expire.add_argument("--keep", type=int, metavar="N", dest="expire_keep", required=True, help="backups to keep")
    expire.add_argument("--format", choices=("table", "json"), dest="expire_format", help="output: lines, or JSON")
    add_s3_options(expire)
    expire.set_defaults(run=run, action="expire", said_as="tams-analytics backup expire")


def _s3(args: argparse.Namespace) -> dict[str, Any]:
    return {"endpoint": args.s3_endpoint, "region": args.s3_region}


def run(args: argparse.Namespace) -> int:
    return _expire(args) if args.action == "expire" else _backup(args)


def _backup(args: argparse.Namespace) -> int:
    from tams_analytics.backup import backup_store

    if not args.to:
        raise TamsError("--to DIR|s3://BUCKET/PREFIX is required: where the backups go")
    if not args.store and not args.server:
        raise TamsError("no store: give --store URL (or set TAMS_STORE), or --server URL")
    result = backup_store(args.to, store=args.store, server=args.server, keep=args.keep, **_s3(args))
    if args.format == "json":
        print(json.dumps(result.to_json(), indent=2))
        return EXIT_OK
    m = result.manifest
    how = f" (copied by the server at {m.server})" if m.method == "server" else ""
    print(
        f"backup {m.id} of {m.store}{how}: {m.rows:,} rows, {mib(m.size_bytes)} in {clock(result.seconds)}, "
        f"to {result.location}"
    )
    for gone in result.expired:
        print(f"removed backup {gone.id} ({'complete' if gone.complete else 'unfinished'}; --keep {args.keep})")
    return EXIT_OK


def _expire(args: argparse.Namespace) -> int:
    from tams_analytics.backup import Repository

    to = args.expire_to or args.to
    if not to:
        raise TamsError("--to DIR|s3://BUCKET/PREFIX is required: the repository")
    repo = Repository.open(to, **_s3(args))
    gone = repo.expire(args.expire_keep)
    kept = [b.id for b in repo.backups() if b.complete]
    if (args.expire_format or args.format) == "json":
        doc = {"repository": repo.url, "removed": [b.id for b in gone], "kept": kept}
        print(json.dumps(doc, indent=2))
        return EXIT_OK
    for b in gone:
        print(f"removed backup {b.id} ({'complete' if b.complete else 'unfinished'})")
    print(f"{repo.url}: {len(kept)} backups kept ({', '.join(kept) or 'none'})")
    return EXIT_OK
