"""One voice in the command line: every command and option explained, with examples; messages in the command
line's words (options, not Python arguments; no exception classes, no errno); one ``--store`` rule
(``$TAMS_STORE`` by default, except the demo's, which writes); the credentials variable the README names.

The commands run as people run them, through ``python -m tams_analytics.cli`` in a subprocess.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tams_analytics.catalog import connect
from tams_analytics.cli.__main__ import build_parser
from tams_analytics.demo import build_demo
from tams_analytics.predicates import Term
from tams_analytics.timerange import TimeRange
from tams_analytics.timestamp import Timestamp

#: what a Python exception looks like when it leaks into a message
PYTHONIC = re.compile(r"\b[A-Z]\w*(Error|Exception): |\[Errno \d+\]|=True\b|Traceback")


def cli(*argv: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("TAMS_")}
    return subprocess.run(
        [sys.executable, "-m", "tams_analytics.cli", *argv],
        env=base | (env or {}),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )


def one_line(done: subprocess.CompletedProcess[str], command: str) -> str:
    """The one line a failed command says (exit 2), checked for Python leaking into it."""
    assert done.returncode == 2, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"tams-analytics {command}: "), lines[0]
    assert not PYTHONIC.search(lines[0]), lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"duckdb:///{tmp_path_factory.mktemp('voice') / 'demo.duckdb'}"
    with connect(url, create=True) as cat:
        build_demo(cat, 300, programmes=1, progress=False)
    return url


# -- help ---------------------------------------------------------------------------------------------------------
def _parsers() -> Iterator[tuple[str, argparse.ArgumentParser]]:
    """Every (sub)command's parser, by its command line."""
    stack = [("tams-analytics", build_parser())]
    while stack:
        name, parser = stack.pop()
        yield name, parser
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                stack += [(f"{name} {sub}", p) for sub, p in action.choices.items()]


def test_every_option_says_what_it_is_for() -> None:
    missing = [
        f"{name} {action.option_strings[0]}"
        for name, parser in _parsers()
        for action in parser._actions
        if action.option_strings and action.help in (None, "") and action.dest != "help"
    ]
    assert missing == []


def test_every_command_has_a_description_and_an_example() -> None:
    leaf = [(n, p) for n, p in _parsers() if not any(isinstance(a, argparse._SubParsersAction) for a in p._actions)]
    no_description = [n for n, p in leaf if not p.description]
    no_example = [n for n, p in leaf if "example" not in (p.epilog or "")]
    assert no_description == [] and no_example == []


def test_help_reads_as_text_and_names_every_engine() -> None:
    top = cli("--help")
    assert top.returncode == 0
    for text in ("tams+http://", "duckdb:///", "duckdb://./", "vast://", "trino://", "$TAMS_STORE"):
        assert text in top.stdout, text
    helps = {cmd: cli(*cmd.split(), "--help").stdout for cmd in ("integrity", "download", "doctor", "keys rotate")}
    for cmd, text in helps.items():
        assert "``" not in text, cmd  # reST literals of a docstring read as plain text
        assert "example" in text, cmd
    assert "TAMS_HTTP_TOKEN" in helps["download"] and "TAMS_TOKEN " not in helps["download"]
    doctor = " ".join(helps["doctor"].split())
    assert "--format {table,json}" in doctor and "json: every check with its status" in doctor


# -- --store: one rule ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "argv",
    [
        ["integrity"],
        ["report", "coverage"],
        ["report", "storage"],
        ["doctor"],
        ["export", "--to", "{tmp}/out"],
        ["download", "--storage", "local:{tmp}", "--flow", "{flow}", "--out", "{tmp}/clip.ts"],
        ["upgrade", "--no-backup"],
    ],
    ids=lambda a: "-".join(x for x in a if not x.startswith(("{", "-", "local"))),
)
def test_every_store_option_defaults_to_tams_store(argv: list[str], store: str, tmp_path: Path) -> None:
    with connect(store, read_only=True) as cat:
        flow = cat.rows("flows", columns=["id"], limit=1).column("id")[0].as_py()
    args = [a.replace("{tmp}", str(tmp_path)).replace("{flow}", flow) for a in argv]
    done = cli(*args, env={"TAMS_STORE": store})
    # the store was found and opened: what follows is the command's own outcome (the demo store has gaps, no media)
    assert "no store" not in done.stderr and "--store" not in done.stderr and "cannot open" not in done.stderr
    assert done.stdout or "no controlled object instances" in done.stderr, done.stderr


@pytest.mark.parametrize(
    "argv", [["integrity"], ["doctor"], ["download", "--flow", "f", "--out", "clip.ts"], ["upgrade"]]
)
def test_without_a_store_one_line_says_how_to_give_it(argv: list[str], tmp_path: Path) -> None:
    """(integrity stands for every command that opens the store through the shared helper: report, export.)"""
    line = one_line(cli(*argv, cwd=tmp_path), argv[0])
    assert "give --store URL or set TAMS_STORE" in line or "--store URL (or set TAMS_STORE)" in line
    assert list(tmp_path.iterdir()) == []


def test_the_demo_writes_so_its_store_is_named(store: str) -> None:
    done = cli("demo", "--segments", "10", env={"TAMS_STORE": store})
    assert done.returncode == 2 and "--store" in done.stderr and "required" in done.stderr
    with connect(store, read_only=True) as cat:
        assert cat.count("segments") == 300  # untouched


# -- messages in the command line's words ---------------------------------------------------------------------------
def test_export_says_the_option_not_the_argument(store: str, tmp_path: Path) -> None:
    assert cli("export", "--store", store, "--to", str(tmp_path / "out")).returncode == 0
    line = one_line(cli("export", "--store", store, "--to", str(tmp_path / "out")), "export")
    assert "already holds" in line and "--overwrite replaces them" in line and "overwrite=True" not in line


def test_a_missing_store_says_which_command_makes_one(tmp_path: Path) -> None:
    line = one_line(cli("integrity", "--store", f"duckdb:///{tmp_path / 'none.duckdb'}"), "integrity")
    assert f"no DuckDB store at {tmp_path / 'none.duckdb'}" in line
    assert "tams-analytics demo --store URL" in line and "create=True" not in line


def test_a_path_that_is_not_a_folder_is_said_in_words(store: str, tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    line = one_line(cli("export", "--store", store, "--to", str(tmp_path / "file" / "out")), "export")
    assert "Errno" not in line and "NotADirectoryError" not in line


def test_a_held_store_is_said_without_class_names(store: str, tmp_path: Path) -> None:
    """doctor and the jobs on a DuckDB store another process holds: the message, not StoreInUseError:/TamsError:."""
    path = store.removeprefix("duckdb://")
    holder = subprocess.Popen(
        [sys.executable, "-c", f"import duckdb, sys; c = duckdb.connect({path!r}); print('ok', flush=True); input()"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ok"
        doctor = cli("doctor", "--store", store)
        assert doctor.returncode == 2
        assert f"held by another process (PID {holder.pid})" in doctor.stdout, doctor.stdout
        assert "StoreInUseError" not in doctor.stdout and "TamsError" not in doctor.stdout
        line = one_line(cli("report", "storage", "--store", store), "report")
        assert "in use by another process" in line
    finally:
        holder.communicate("\n", timeout=30)


def test_an_unknown_scheme_hints_at_the_right_one(tmp_path: Path) -> None:
    line = one_line(cli("report", "coverage", "--store", "http://127.0.0.1:8000"), "report")
    assert "write tams+http://127.0.0.1:8000" in line
    line = one_line(cli("integrity", "--store", str(tmp_path / "x.duckdb")), "integrity")
    assert f"write duckdb://{tmp_path / 'x.duckdb'}" in line


def test_keys_refuses_a_data_dir_that_is_not_one(tmp_path: Path) -> None:
    line = one_line(cli("keys", "rotate", "--data-dir", str(tmp_path / "nope")), "keys")
    assert "is not a directory" in line and not (tmp_path / "nope").exists()


# -- a flow id cut short -------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def with_media(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    """A small demo store with its media in a local object directory: ``(url, objects dir)``."""
    from tests.analytics import demo_with_media, local_store

    tmp = tmp_path_factory.mktemp("voice-media")
    url, root = f"duckdb:///{tmp / 'tams.duckdb'}", tmp / "objects"
    with connect(url, create=True) as cat:
        demo_with_media(cat, local_store(root), segments=40)
    return url, root


def test_the_start_of_a_flow_id_is_said_to_be_one(with_media: tuple[str, Path], tmp_path: Path) -> None:
    """The first 8 hex digits of an id, as people copy them from a table: said to be the start of an id, with the
    flow whose id starts with it (not a hint to look for a flow labelled so), by the store or through a server."""
    from server.app import create_app
    from server.config import Settings
    from tests.fixtures.live import serve

    store, root = with_media
    with connect(store) as cat:
        label = "Evening News (video)"
        flow_id = cat.rows("flows", [Term("label", "==", label)]).to_pylist()[0]["id"]
    out = str(tmp_path / "a.ts")
    lines = [
        one_line(cli("report", "coverage", "--store", store, "--flow", flow_id[:8]), "report coverage"),
        one_line(
            cli("download", "--store", store, "--storage", f"local:{root}", "--flow", flow_id[:8], "--out", out),
            "download",
        ),
    ]
    with serve(create_app(Settings(data_dir=tmp_path / "data", store=store))) as api:
        base = str(api.base_url).rstrip("/")
        lines.append(one_line(cli("download", "--server", base, "--flow", flow_id[:8], "--out", out), "download"))
    for line in lines:
        assert f"'{flow_id[:8]}' is the start of a flow id, not a whole one" in line, line
        assert f"{flow_id} ({label})" in line and "label=" not in line
    nothing = one_line(cli("report", "coverage", "--store", store, "--flow", "ffffffff"), "report coverage")
    assert "no flow's id here starts with it" in nothing and "cat.flows" not in nothing
    label_given = one_line(cli("report", "coverage", "--store", store, "--flow", label), "report coverage")
    assert "is not a flow id: flow ids are UUIDs" in label_given
    assert "tams-analytics report coverage --store URL lists every flow's id and label" in label_given
    assert "cat.flows" not in label_given


# -- times say their zone ------------------------------------------------------------------------------------------
def test_a_time_without_a_zone_is_refused_saying_how_to_write_it(store: str) -> None:
    said = "2023-11-14T22:00 has no time zone: write 2023-11-14T22:00Z for UTC, or give an offset"
    within = one_line(
        cli("report", "coverage", "--store", store, "--within", "2023-11-14T22:00/PT1H"), "report coverage"
    )
    assert said in within
    since = one_line(cli("report", "ingest", "--store", store, "--since", "2023-11-14T22:00"), "report ingest")
    assert said in since
    assert cli("report", "ingest", "--store", store, "--since", "2023-11-14T22:00Z").returncode == 0
    assert cli("report", "ingest", "--store", store, "--since", "2023-11-14").returncode == 0  # a date: its UTC day


# -- credentials are named as the command line takes them ---------------------------------------------------------
def test_refused_credentials_name_the_environment_variables(tmp_path: Path) -> None:
    from server.app import create_app
    from server.config import Settings
    from tests.fixtures.live import serve

    settings = Settings(data_dir=tmp_path / "data", auth="basic", basic_users="ann:secret")
    with serve(create_app(settings)) as api:
        base = str(api.base_url).rstrip("/")
        refused = [
            one_line(cli("report", "storage", "--store", f"tams+{base}"), "report"),
            one_line(
                cli("download", "--server", base, "--flow", str(uuid.uuid4()), "--out", str(tmp_path / "a.ts")),
                "download",
            ),
        ]
    for line in refused:
        assert "401" in line and "TAMS_HTTP_TOKEN, or TAMS_HTTP_USERNAME and TAMS_HTTP_PASSWORD" in line, line
        assert "auth=" not in line


# -- download names each object once --------------------------------------------------------------------------------
def test_download_names_each_missing_object_once_in_the_right_number(tmp_path: Path) -> None:
    """An object two segments use, its media gone: one line for it, and "1 object", not "1 objects"."""
    from tests.analytics import demo_with_media, key_of, local_store

    url, root = f"duckdb:///{tmp_path / 'tams.duckdb'}", tmp_path / "objects"
    objects = local_store(root)
    with connect(url, create=True) as cat:
        demo_with_media(cat, objects, segments=40)
        video = cat.rows("flows", [Term("label", "==", "Evening News (video)")]).to_pylist()[0]["id"]
        first = cat.segment_rows(video, limit=1).to_pylist()[0]
        # the same object again, a minute later on the flow's timeline
        again = TimeRange.from_ns(first["start_ns"] + 60 * 10**9, first["end_ns"] + 60 * 10**9)
        offset = Timestamp((first["ts_offset"] or 0) + 60 * 10**9)
        reuse = {"object_id": first["object_id"], "timerange": str(again), "ts_offset": str(offset)}
        added = cat.add_segments(video, [reuse])
        assert added.all_accepted, added.failed
        objects.delete([key_of(cat, first["object_id"])])
    done = cli(
        "download", "--store", url, "--storage", f"local:{root}", "--flow", video, "--out", str(tmp_path / "v.ts")
    )
    assert done.returncode == 1, done.stderr
    lines = done.stderr.strip().splitlines()
    assert lines[0].startswith(f"tams-analytics download: 1 object of flow {video} in "), lines[0]
    assert lines[0].endswith("could not be fetched as recorded:") and first["object_id"] not in lines[0]
    assert len(lines) == 2 and lines[1].startswith(f"  object {first['object_id']} (segment "), done.stderr
