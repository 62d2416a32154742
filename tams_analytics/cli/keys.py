"""``tams-analytics keys rotate --data-dir DIR``: a new signing key for local storage URLs.

The server in that data dir picks the new key up within a second (and ``serve --rotate-signing-key`` does
the same at startup); URLs signed with the previous key stay valid until they expire (see
:mod:`tams_analytics.storage.keys`).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from tams_analytics.cli.common import HelpFormatter
from tams_analytics.storage.keys import KEY_FILE, rotate

DESCRIPTION = (
    "The signing keys of the local object storage's URLs (the server's data dir, when it serves media from local "
    f"files). rotate makes a new current key in DIR/{KEY_FILE}; a running server picks it up within a second, "
    "and URLs signed with the previous key stay valid for one URL lifetime (only the previous key is kept)."
)


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "keys",
        help="manage the signing keys of local storage URLs",
        description=DESCRIPTION,
        epilog="example:\n  tams-analytics keys rotate --data-dir ./tams-data",
        formatter_class=HelpFormatter,
    )
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    r = actions.add_parser(
        "rotate",
        help=f"make a new current key in DIR/{KEY_FILE}; the previous stays accepted",
        description=DESCRIPTION,
        epilog="example:\n  tams-analytics keys rotate --data-dir ./tams-data",
        formatter_class=HelpFormatter,
    )
    r.add_argument("--data-dir", type=Path, required=True, metavar="DIR", help="the server's data dir")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from tams_analytics.exceptions import TamsError

    if not args.data_dir.is_dir():
        raise TamsError(f"--data-dir {args.data_dir} is not a directory: give the server's data dir")
    rotate(args.data_dir)
    print(f"rotated the signing key in {args.data_dir / KEY_FILE}")
    return 0
