"""Read paths never create a store: a URL naming no DuckDB file is an error naming the path (and, for the
two-slash typo, the three-slash spelling); ``create=True``, ``demo`` and ``serve`` make one, in a folder that
exists. A URL naming no engine says what it was probably meant to be."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import tams_analytics as ta
from tams_analytics.cli.__main__ import main


def test_connect_refuses_a_missing_store_and_creates_nothing(tmp_path: Path) -> None:
    path = tmp_path / "no" / "such" / "dir" / "x.duckdb"
    with pytest.raises(ta.TamsError, match=f"no DuckDB store at {path}") as err:
        ta.connect(f"duckdb:///{path}")
    assert "create=True" in str(err.value)
    assert not (tmp_path / "no").exists()


def test_create_makes_no_folders(tmp_path: Path) -> None:
    """A mistyped folder does not become a new store and its folders."""
    with pytest.raises(ta.TamsError, match=f"{tmp_path / 'new' / 'dir'} does not exist: a new DuckDB store"):
        ta.connect(f"duckdb:///{tmp_path / 'new' / 'dir' / 'x.duckdb'}", create=True)
    assert not (tmp_path / "new").exists()
    (tmp_path / "file").write_text("")
    with pytest.raises(ta.TamsError, match="is not a folder"):
        ta.connect(f"duckdb:///{tmp_path / 'file' / 'x.duckdb'}", create=True)


def test_dot_slash_names_a_relative_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """duckdb://./tams-data/tams.duckdb: the README's spelling of a store under the working directory."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tams-data").mkdir()
    with ta.connect("duckdb://./tams-data/tams.duckdb", create=True) as cat:
        assert cat.count("flows") == 0
    assert (tmp_path / "tams-data" / "tams.duckdb").is_file()
    with pytest.raises(ta.TamsError) as err:
        ta.connect("duckdb://./tams-data/other.duckdb")
    assert f"no DuckDB store at {tmp_path / 'tams-data' / 'other.duckdb'}" in str(err.value)
    assert "two slashes" not in str(err.value)  # ./ says "relative" on purpose: no typo hint


def test_a_relative_path_names_the_working_directory_and_the_store_above_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A notebook's kernel runs in notebooks/: TAMS_STORE=duckdb://./tams-data/tams.duckdb set at the repository's
    root names notebooks/tams-data/... there. The error says which absolute path it looked for, that a relative path
    is taken from the working directory (named), and the absolute URL of the store the path names from a folder
    above, which opens it."""
    (tmp_path / "tams-data").mkdir()
    ta.connect(f"duckdb:///{tmp_path / 'tams-data' / 'tams.duckdb'}", create=True).close()
    (tmp_path / "notebooks").mkdir()
    monkeypatch.chdir(tmp_path / "notebooks")
    with pytest.raises(ta.TamsError) as err:
        ta.connect("duckdb://./tams-data/tams.duckdb")
    message = str(err.value)
    assert message.startswith(f"no DuckDB store at {tmp_path / 'notebooks' / 'tams-data' / 'tams.duckdb'} ")
    assert f"(a relative path, taken from the working directory {tmp_path / 'notebooks'})" in message
    url = f"duckdb://{tmp_path / 'tams-data' / 'tams.duckdb'}"
    assert f"name it by its absolute path: {url};" in message, message
    with ta.connect(url) as cat:
        assert cat.count("flows") == 0
    assert os.listdir(tmp_path / "notebooks") == []


def test_a_relative_path_naming_nothing_suggests_the_absolute_form(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    # a folder name of this test's own: a store a developer left at /tmp/tams-data would be suggested instead
    folder = f"tams-data-{tmp_path.name}"
    with pytest.raises(ta.TamsError) as err:
        ta.connect(f"duckdb://./{folder}/tams.duckdb")
    message = str(err.value)
    assert f"no DuckDB store at {tmp_path / folder / 'tams.duckdb'} " in message
    assert f"taken from the working directory {tmp_path})" in message
    assert f'duckdb:///ABSOLUTE/PATH (three slashes), e.g. TAMS_STORE="duckdb://$PWD/{folder}/tams.duckdb"' in message
    # an absolute path needs no such note
    with pytest.raises(ta.TamsError) as err:
        ta.connect(f"duckdb:///{tmp_path / 'x.duckdb'}")
    assert "working directory" not in str(err.value) and "ABSOLUTE" not in str(err.value)


@pytest.mark.parametrize(
    ("url", "hint"),
    [
        ("http://127.0.0.1:8000", "for a TAMS server's API write tams+http://127.0.0.1:8000"),
        ("https://tams.example/api", "write tams+https://tams.example/api"),
        ("/data/tams.duckdb", "for a DuckDB file write duckdb:///data/tams.duckdb"),
        ("tams-data/tams.duckdb", "write duckdb://./tams-data/tams.duckdb (a relative path)"),
        ("postgres://db/tams", "store URLs look like duckdb:///ABSOLUTE/PATH"),
    ],
)
def test_a_url_naming_no_engine_says_what_it_was_meant_to_be(url: str, hint: str) -> None:
    with pytest.raises(ta.TamsError) as err:
        ta.connect(url)
    assert f"{url!r} names no store engine: " in str(err.value) and hint in str(err.value)


def test_two_slashes_name_a_relative_path_and_the_error_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ta.TamsError) as err:
        ta.connect("duckdb://tmp/x.duckdb")
    message = str(err.value)
    assert f"no DuckDB store at {tmp_path / 'tmp' / 'x.duckdb'}" in message
    assert "relative path (two slashes)" in message and "duckdb:///tmp/x.duckdb (three slashes)" in message
    assert os.listdir(tmp_path) == []


def test_create_makes_the_store_then_plain_connect_opens_it(tmp_path: Path) -> None:
    url = f"duckdb:///{tmp_path / 'x.duckdb'}"
    with ta.connect(url, create=True) as cat:
        assert cat.count("flows") == 0
    assert (tmp_path / "x.duckdb").is_file()
    with ta.connect(url) as cat:
        assert cat.count("flows") == 0


def test_memory_stores_need_no_create() -> None:
    assert ta.connect("duckdb://").count("sources") == 0


def test_a_read_only_trino_store_refuses_create() -> None:
    pytest.importorskip("trino")
    with pytest.raises(ta.TamsError, match="read-only"):
        ta.connect("trino://u@127.0.0.1:9/c/s", create=True)


@pytest.mark.parametrize(
    "argv",
    [
        ["integrity", "--store", "{url}"],
        ["report", "coverage", "--store", "{url}"],
        ["report", "storage", "--store", "{url}"],
        ["export", "--store", "{url}", "--to", "{tmp}/out"],
    ],
    ids=["integrity", "report-coverage", "report-storage", "export"],
)
def test_jobs_on_a_typo_store_exit_2_with_one_line_and_create_nothing(
    argv: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TAMS_STORE", raising=False)
    url = "duckdb://tmp/typo.duckdb"
    code = main([a.replace("{url}", url).replace("{tmp}", str(tmp_path)) for a in argv])
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and "no DuckDB store at" in err and "three slashes" in err
    assert not (tmp_path / "tmp").exists() and not (tmp_path / "out").exists()


def test_demo_creates_the_store(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"duckdb:///{tmp_path / 'demo.duckdb'}"
    assert main(["demo", "--store", url, "--segments", "200", "--no-progress"]) == 0
    assert ta.connect(url).count("segments") == 200
