"""Runs documentation blocks as a reader would, in the working directory it is started in.

``python tests/docs_runner.py BLOCKS.json RESULTS.json STATE_DIR``: ``BLOCKS.json`` is a list of
``{"id", "page", "language", "text"}`` in the order to run them. A shell block runs in bash (``set -euo pipefail``)
with the variables the page's earlier shell blocks set (kept in ``STATE_DIR``, one file per page); a Python block
runs in a fresh namespace of this process. Where a bare expression statement ends in a comment that is a Python
literal (``tr.overlaps(other)  # False``), its value must equal that literal. ``RESULTS.json`` gets one
``{"id", "status": "ok"|"failed"|"skipped", "detail"}`` per block. Standard library only: it runs in the
environment under test.
"""

from __future__ import annotations

import ast
import gc
import io
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import tokenize
import traceback
from pathlib import Path
from typing import Any

#: programs a reader may not have installed: a block needing one that is absent is skipped, with the reason
OPTIONAL_TOOLS = ("ffmpeg", "ffplay", "ffprobe", "curl", "trino")
BLOCK_TIMEOUT_S = 600

#: runs a page's shell block with the variables its earlier blocks set, then keeps the new ones
_SHELL = """set -euo pipefail
__docs_baseline=" $(compgen -v | tr '\\n' ' ') "
if [ -f "$__docs_state" ]; then source "$__docs_state"; fi
{block}
for __docs_v in $(compgen -v); do
  case "$__docs_baseline" in *" $__docs_v "*) continue ;; esac
  case "$__docs_v" in __docs_*|BASH_*|FUNCNAME|PIPESTATUS|_) continue ;; esac
  declare -p "$__docs_v"
done > "$__docs_state.new"
mv "$__docs_state.new" "$__docs_state"
"""


def _comments(text: str) -> dict[int, str]:
    """The comment ending each line of ``text``, by line number."""
    found = {}
    for tok in tokenize.generate_tokens(io.StringIO(text).readline):
        if tok.type == tokenize.COMMENT:
            found[tok.start[0]] = tok.string.lstrip("#").strip()
    return found


def _expected(comment: str | None) -> tuple[bool, Any]:
    if not comment:
        return False, None
    try:
        return True, ast.literal_eval(comment)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return False, None


def run_python(text: str, filename: str = "<docs>") -> list[str]:
    """Run a Python block statement by statement in a fresh namespace; the literal expectations it fails, as text
    (an exception propagates)."""
    tree = ast.parse(text, filename)
    comments = _comments(text)
    namespace: dict[str, Any] = {"__name__": "__main__"}
    failures = []
    try:
        _run_statements(tree, text, filename, comments, namespace, failures)
    finally:
        _close(namespace)
    return failures


def _run_statements(
    tree: ast.Module,
    text: str,
    filename: str,
    comments: dict[int, str],
    namespace: dict[str, Any],
    failures: list[str],
) -> None:
    for stmt in tree.body:
        if isinstance(stmt, ast.Expr):
            value = eval(compile(ast.Expression(stmt.value), filename, "eval"), namespace)
            end = stmt.end_lineno or stmt.lineno
            has, want = _expected(comments.get(end))
            if has and value != want:
                failures.append(f"line {end}: {ast.get_source_segment(text, stmt)} is {value!r}, not {want!r}")
        else:
            exec(compile(ast.Module([stmt], []), filename, "exec"), namespace)


def _close(namespace: dict[str, Any]) -> None:
    """Close what a block opened, as its kernel's end would (a catalog holds its DuckDB file until closed)."""
    for value in namespace.values():
        close = getattr(value, "close", None)
        if type(value).__module__.startswith("tams_analytics") and callable(close):
            close()
    namespace.clear()
    gc.collect()


def missing_tools(text: str) -> list[str]:
    """The optional programs a shell block runs that are not installed."""
    missing = []
    for line in re.sub(r"\\\n\s*", " ", text).splitlines():
        try:
            words = shlex.split(line, comments=True)
        except ValueError:  # quotes this simple reading cannot pair: the first word is still the first word
            words = line.split()
        words = [w for w in words if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", w)]
        if words and words[0] in OPTIONAL_TOOLS and shutil.which(words[0]) is None:
            missing.append(words[0])
    return missing


def run_shell(text: str, state: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-c", _SHELL.format(block=text.rstrip("\n"))],
        env={**os.environ, "__docs_state": str(state)},
        capture_output=True,
        text=True,
        timeout=BLOCK_TIMEOUT_S,
        stdin=subprocess.DEVNULL,
    )


def main(blocks_json: str, results_json: str, state_dir: str) -> int:
    here = str(Path(__file__).resolve().parent)
    sys.path[:] = [p for p in sys.path if p and Path(p).resolve().as_posix() != here]
    blocks = json.loads(Path(blocks_json).read_text())
    results = []
    for b in blocks:
        result: dict[str, Any] = {"id": b["id"], "status": "ok", "detail": ""}
        print(f"--- {b['id']}", flush=True)
        started = time.monotonic()
        try:
            if b["language"] == "python":
                failures = run_python(b["text"], b["id"])
                if failures:
                    result |= {"status": "failed", "detail": "\n".join(failures)}
            else:
                missing = missing_tools(b["text"])
                if missing:
                    result |= {"status": "skipped", "detail": f"{', '.join(missing)} not installed"}
                else:
                    state = Path(state_dir) / re.sub(r"[^\w.-]", "_", b["page"])
                    done = run_shell(b["text"], state)
                    print(done.stdout[-4000:], done.stderr[-4000:], sep="\n", flush=True)
                    if done.returncode != 0:
                        detail = f"exit {done.returncode}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
                        result |= {"status": "failed", "detail": detail}
        except Exception:
            result |= {"status": "failed", "detail": traceback.format_exc()[-4000:]}
        result["seconds"] = round(time.monotonic() - started, 1)
        print(f"--- {result['status']} in {result['seconds']} s", flush=True)
        results.append(result)
        Path(results_json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:4]))
