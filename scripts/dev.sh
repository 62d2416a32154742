#!/usr/bin/env bash
# Set up a virtual environment (again whenever pyproject.toml or its constraints file change), then run a command in it:
#   bash scripts/dev.sh serve [OPTIONS]   TAMS server on DuckDB + local storage with demo data
#   bash scripts/dev.sh test [PYTEST ARGS] the test suite, in TAMS_TEST_WORKERS processes (2; 0: in this one)
#   bash scripts/dev.sh check              ruff (lint and format) and mypy, as CI runs them
#   bash scripts/dev.sh CMD ...            anything else, inside the environment
# TAMS_DEPS picks the dependency set (docs/development/dependencies.md): current (the default: .venv, constraints.txt,
# the dev extra) or vast (.venv-vast, constraints-vast.txt, the dev and vast extras: vastdb 2.1 and its older pins).
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-$(command -v python3.11 || command -v python3)}
uv_version=0.13.9
case "${TAMS_DEPS:-current}" in
  current) venv=.venv constraints=constraints.txt extras=dev ;;
  vast) venv=.venv-vast constraints=constraints-vast.txt extras=dev,vast ;;
  *) echo "TAMS_DEPS is current or vast, not ${TAMS_DEPS}" >&2; exit 2 ;;
esac
if [ ! -x "$venv/bin/python" ]; then
  "$python" -m venv "$venv"
fi
stamp=$venv/.tams-analytics-installed
want=$(cat pyproject.toml "$constraints" | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "setting up $venv (pinned dependencies from $constraints) ..." >&2
  "$venv/bin/python" -m pip install --quiet --upgrade pip
  # uv (pinned here) resolves and installs the pinned set in about a minute, downloads included, where pip took two and
  # a half with its cache warm (its resolver: 90 CPU-seconds); the same packages at the same versions. pip does it
  # where uv cannot be had.
  if "$venv/bin/python" -m pip install --quiet "uv==$uv_version"; then
    "$venv/bin/uv" pip install --quiet --compile-bytecode --python "$venv/bin/python" -e ".[$extras]" -c "$constraints"
  else
    echo "uv $uv_version could not be installed: pip installs the set instead" >&2
    "$venv/bin/python" -m pip install --quiet -e ".[$extras]" -c "$constraints"
  fi
  echo "$want" > "$stamp"
fi
# the console's player library, from the npm registry as its lock file pins it (a no-op once installed)
bash scripts/console-vendor.sh
cmd=${1:-}
[ $# -gt 0 ] && shift
case "$cmd" in
  serve) exec "$venv/bin/tams-analytics" serve --data-dir ./tams-data --demo 20000 "$@" ;;
  # Bytecode is written (in __pycache__, ignored by git) even where PYTHONDONTWRITEBYTECODE is set, as on these
  # machines: the suite starts hundreds of Python processes (servers, the CLI, notebooks, pytest's workers and the
  # sessions some tests run), each of which compiled the checkout's modules anew from source, and pytest rewrote the
  # test modules for each (a seventh of the CPU of the tests that start servers; half of a collection's).
  # --max-worker-restart 0: a test that takes its worker down fails the run at once; pytest-xdist 3.8's loadgroup
  # replaces a crashed worker and then waits for good (pytest-xdist #1323, #1378): CI ran out its 90 minutes that way
  test) unset PYTHONDONTWRITEBYTECODE
    exec "$venv/bin/python" -m pytest -n "${TAMS_TEST_WORKERS:-2}" --dist loadgroup --max-worker-restart 0 "$@" ;;
  check) "$venv/bin/ruff" check . && "$venv/bin/ruff" format --check . && exec "$venv/bin/mypy" ;;
  "") echo "usage: bash scripts/dev.sh serve|test|check|COMMAND ..." >&2; exit 2 ;;
  *) export PATH="$PWD/$venv/bin:$PATH"; exec "$cmd" "$@" ;;
esac
