"""``tams-analytics upgrade`` on stores DuckDB 1.3.2 wrote for real (VAST's dependency set builds them in a subprocess:
:mod:`tests.fixtures.old_store`), and what the current set does with such a store before: ``connect`` and ``serve``
open it as it is (the server warning once that it is in the older format), ``doctor`` says so with the command.

The upgrade is SIGKILLed (``kill -9`` of a real process) as each of its steps begins, and run again: the store is the
old one whole until the swap, the next run finishes it from where the first stopped (no second backup), and nothing
of the interrupted run is left. End to end: a store with media and webhooks served, the upgrade killed mid-way and
run again, served again: the same documents (flows, sources, every page of every flow's segments, webhooks) and the
same media bytes.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import httpx
import pyarrow as pa
import pytest

from tams_analytics.catalog import connect
from tams_analytics.cli.__main__ import main
from tams_analytics.engines.duckdb.held import announce
from tams_analytics.engines.duckdb.upkeep import FIRST_FORMAT, older_format
from tams_analytics.upgrade import Step, UpgradeFiles
from tests.backup.documents import documents, media
from tests.backup.runbook import shell
from tests.docs import block
from tests.fixtures.old_store import VAST_PYTHON, build_old_store, run_vast
from tests.reliability.conftest import LiveServer

pytestmark = pytest.mark.skipif(
    not older_format(FIRST_FORMAT),
    reason="holds on the current dependency set (DuckDB 2.0); on VAST's (DuckDB 1.3) there is no newer format to "
    "upgrade to, as test_on_duckdb_1_3_there_is_nothing_to_upgrade_to checks running that set from the current one",
)

#: what the old format's warning starts with, in the server's log and doctor's advice
OLD_FORMAT = "is in DuckDB's storage format v1.0.0+, older than the v2.0.0+"
#: runs ``tams-analytics upgrade ARGS`` and pauses (sleeps) as step ``argv[1]`` begins, saying so on stdout, for the
#: test to SIGKILL it there
PAUSED = """
import sys, time
from tams_analytics import upgrade
from tams_analytics.cli.__main__ import main

pause, real = upgrade.Step(sys.argv[1]), upgrade.upgrade_store

def paused(*args, on_step=None, **kwargs):
    def step(step, what):
        on_step(step, what)
        if step == pause:
            print("paused at", step, flush=True)
            time.sleep(600)
    return real(*args, on_step=step, **kwargs)

upgrade.upgrade_store = paused
sys.exit(main(sys.argv[2:]))
"""


@pytest.fixture(scope="module")
def old_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A server's data folder whose store DuckDB 1.3.2 wrote (media, webhooks), built once for the module."""
    data = tmp_path_factory.mktemp("old") / "tams-data"
    build_old_store(data, segments=120, webhooks=3)
    return data


@pytest.fixture
def data(old_data: Path, tmp_path: Path) -> Path:
    """A copy of the old store's data folder for one test."""
    return Path(shutil.copytree(old_data, tmp_path / "tams-data"))


def url_of(data: Path) -> str:
    return f"duckdb://{data / 'tams.duckdb'}"


def inventory(store: Path) -> dict[str, Any]:
    """The store's format, every table's rows, its indexes and views, read with this process's DuckDB (read-only)."""
    con = duckdb.connect(str(store), read_only=True)
    try:
        db = con.execute("SELECT current_database()").fetchone()[0]  # type: ignore[index]
        tables = [r[0] for r in con.execute("SELECT table_name FROM duckdb_tables() ORDER BY 1").fetchall()]
        return {
            "format": con.execute(
                "SELECT tags['storage_version'] FROM duckdb_databases() WHERE database_name = ?", [db]
            ).fetchone()[0],  # type: ignore[index]
            "rows": {t: con.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in tables},  # type: ignore[index]
            "indexes": sorted(r[0] for r in con.execute("SELECT index_name FROM duckdb_indexes()").fetchall()),
            "views": sorted(
                r[0] for r in con.execute("SELECT view_name FROM duckdb_views() WHERE NOT internal").fetchall()
            ),
        }
    finally:
        con.close()


def upgrade(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["upgrade", *args])
    out, err = capsys.readouterr()
    return code, out, err


def killed_at(step: Step, *args: str) -> str:
    """Run ``tams-analytics upgrade ARGS`` in a process and SIGKILL it as ``step`` begins; what it said on stderr."""
    process = subprocess.Popen(
        [sys.executable, "-c", PAUSED, str(step), "upgrade", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={k: v for k, v in os.environ.items() if not k.startswith("TAMS_")},
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()  # blocks until it pauses (or ends)
        assert line.strip() == f"paused at {step}", (
            f"{line!r}; stderr: {process.stderr.read() if process.stderr else ''}"
        )
        os.kill(process.pid, signal.SIGKILL)
        assert process.wait(timeout=30) == -signal.SIGKILL
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.stderr is not None
    return process.stderr.read()


def test_connect_reads_and_writes_a_store_duckdb_1_3_wrote_and_keeps_it_readable_there(data: Path) -> None:
    before = inventory(data / "tams.duckdb")
    with connect(url_of(data)) as catalog:
        assert catalog.flows().count().execute() == before["rows"]["flows"]
        found = catalog.engine.storage_format()
        assert found is not None and found.version == "v1.0.0+" and found.old
        catalog.engine.insert("service", pa.table({"key": ["written-by"], "value": ["DuckDB 2.0"]}))
    after = inventory(data / "tams.duckdb")
    assert after["format"] == "v1.0.0+" and after["rows"]["service"] == before["rows"]["service"] + 1
    query = "SELECT value FROM service WHERE key = 'written-by'"
    read = run_vast(
        "-c", f"import duckdb; c = duckdb.connect('{data / 'tams.duckdb'}'); print(c.sql({query!r}).fetchall())"
    )
    assert read.stdout.strip() == "[('DuckDB 2.0',)]"


def test_doctor_warns_of_the_old_format_with_the_command_that_upgrades_it(
    data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["doctor", "--store", url_of(data), "--format", "json"])
    report = json.loads(capsys.readouterr().out)
    check = next(c for c in report["checks"] if c["name"] == "storage_format")
    assert code == 0 and report["exit_code"] == 0
    assert check["status"] == "warn" and check["data"] == {"version": "v1.0.0+", "current": "v2.0.0+"}
    assert OLD_FORMAT in check["meaning"] and "read and written as it is" in check["meaning"]
    assert f"tams-analytics upgrade --store duckdb://{data / 'tams.duckdb'}" in check["meaning"]
    assert main(["doctor", "--store", url_of(data)]) == 0
    table = capsys.readouterr().out
    assert "WARN  storage_format  v1.0.0+, older than the v2.0.0+ duckdb writes new stores in" in table
    assert "advice: the store" in table
    assert upgrade(capsys, "--store", url_of(data), "--no-backup")[0] == 0
    assert main(["doctor", "--store", url_of(data), "--format", "json"]) == 0
    check = next(c for c in json.loads(capsys.readouterr().out)["checks"] if c["name"] == "storage_format")
    assert check["status"] == "ok" and check["meaning"] == "" and check["data"]["version"] == "v2.0.0+"


def test_an_upgrade_rewrites_the_store_keeps_the_old_file_and_says_so(
    data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = data / "tams.duckdb"
    store.chmod(0o640)  # the server's user's, say
    before = inventory(store)
    code, out, err = upgrade(capsys, "--store", url_of(data), "--format", "json")
    assert code == 0, err
    result = json.loads(out)
    after = inventory(store)
    assert store.stat().st_mode & 0o777 == 0o640
    assert after["format"] == "v2.0.0+" and before["format"] == "v1.0.0+"
    assert {k: v for k, v in after.items() if k != "format"} == {k: v for k, v in before.items() if k != "format"}
    kept = data / "tams.duckdb.v1-before-upgrade"
    assert result["upgraded"] and result["from"] == "v1.0.0+" and result["to"] == "v2.0.0+"
    assert result["kept"] == str(kept) and inventory(kept) == before
    assert result["tables"] == before["rows"] and result["rows"] == sum(before["rows"].values())
    assert result["backup"]["location"] == f"{data / 'backups'}/{result['backup']['id']}"
    assert (data / "backups" / result["backup"]["id"] / "backup.json").is_file()
    assert sorted(p.name for p in data.iterdir()) == ["backups", "objects", "tams.duckdb", kept.name]
    # run again: in the current format, said, exit 0, nothing touched
    code, out, err = upgrade(capsys, "--store", url_of(data))
    assert code == 0 and out.splitlines() == [
        f"{store} is in storage format v2.0.0+, the current one: nothing to upgrade",
        f"the file it was upgraded from is kept as {kept}: remove it once you no longer need it",
    ]
    assert inventory(store) == after


def test_the_people_s_lines_say_one_way_where_the_old_file_is_and_the_backup(
    data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = upgrade(capsys, "--store", url_of(data), "--backup-to", str(data.parent / "elsewhere"))
    assert code == 0, err
    first, backup, kept = out.splitlines()
    assert first.startswith(f"upgraded {data / 'tams.duckdb'} from storage format v1.0.0+ to v2.0.0+: ")
    assert backup.startswith("backed up first: backup ") and str(data.parent / "elsewhere") in backup
    assert kept == (
        f"the old file is kept as {data / 'tams.duckdb.v1-before-upgrade'}: one-way, DuckDB 1.3 cannot open the "
        "upgraded store; remove the old file once the server runs well on the new one"
    )
    assert [line.split(": ", 1)[1].split(" ")[0] for line in err.splitlines()] == [
        "backing",
        "copying",
        "checkpointing",
        "checking",
        "keeping",
        "moving",
    ]


@pytest.mark.parametrize("step", list(Step))
def test_a_sigkill_as_any_step_begins_leaves_the_old_store_whole_and_the_next_run_finishes(
    data: Path, step: Step, capsys: pytest.CaptureFixture[str]
) -> None:
    store = data / "tams.duckdb"
    files = UpgradeFiles(store)
    before = inventory(store)
    killed_at(step, "--store", url_of(data))
    assert inventory(store) == before  # the old store, whole, under its name
    assert files.state.is_file()
    backups = sorted(p.name for p in (data / "backups").iterdir()) if (data / "backups").exists() else []
    assert len(backups) == (0 if step == Step.BACKUP else 1)
    code, out, err = upgrade(capsys, "--store", url_of(data), "--format", "json")
    assert code == 0, err
    result = json.loads(out)
    assert result["resumed"] and result["upgraded"]
    if step != Step.BACKUP:  # no second backup: the one the first run took
        assert result["backup"]["id"] == backups[0]
    assert "copying" in err if step in (Step.BACKUP, Step.COPY, Step.CHECKPOINT) else "copying" not in err
    after = inventory(store)
    assert after["format"] == "v2.0.0+" and after["rows"] == before["rows"] and after["indexes"] == before["indexes"]
    assert not [p for p in (*files.leftovers(), *files.staged(), files.state) if p.exists()]
    assert inventory(data / "tams.duckdb.v1-before-upgrade") == before
    assert len(list((data / "backups").iterdir())) == 1


def test_a_wal_a_crash_left_is_checkpointed_first_and_its_rows_upgraded(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "tams-data"
    store = build_old_store(data, segments=30, webhooks=1, wal=True)
    code, out, err = upgrade(capsys, "--store", url_of(data), "--no-backup", "--format", "json")
    assert code == 0, err
    assert json.loads(out)["backup"] is None and not (data / "backups").exists()
    assert not Path(f"{store}.wal").exists()
    con = duckdb.connect(str(store), read_only=True)
    assert con.execute("SELECT value FROM service WHERE key = 'written-before-a-crash'").fetchall() == [
        ("in the WAL only",)
    ]
    con.close()


@pytest.mark.parametrize("announced", [True, False], ids=["a server", "another process"])
def test_a_store_in_use_is_refused_in_one_line_naming_who_holds_it_and_nothing_is_written(
    data: Path, announced: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    store = data / "tams.duckdb"
    script = f"import duckdb, time; c = duckdb.connect('{store}'); print('held', flush=True); time.sleep(600)"
    holder = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        if announced:  # as serve does, its store process holding the file
            announce(store, "http://127.0.0.1:8123", {"store": holder.pid})
        code, out, err = upgrade(capsys, "--store", url_of(data))
    finally:
        holder.kill()
        holder.wait()
    holder_is = f"the TAMS server at http://127.0.0.1:8123 (PID {os.getpid()})" if announced else "another process"
    assert code == 2 and out == "" and err.count("\n") == 1
    assert err.startswith(f"tams-analytics upgrade: the store {store} is in use by {holder_is}")
    assert err.endswith(": stop it (a server holds its store while it runs), then run the upgrade again\n")
    assert (f"(PID {holder.pid})" in err) != announced
    assert sorted(p.name for p in data.iterdir()) == [
        "objects",
        "tams.duckdb",
        *(["tams.duckdb.server.json"] * announced),
    ]


def test_a_server_that_announced_itself_and_runs_is_refused_between_two_of_its_store_processes(
    data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The lock is free a moment while the supervisor starts a store process anew: the announcement still holds."""
    announce(data / "tams.duckdb", "http://127.0.0.1:8123")  # this process: running
    code, _, err = upgrade(capsys, "--store", url_of(data))
    assert code == 2 and f"in use by the TAMS server at http://127.0.0.1:8123 (PID {os.getpid()})" in err
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    record = json.loads((data / "tams.duckdb.server.json").read_text()) | {"pid": int(gone.stdout)}
    (data / "tams.duckdb.server.json").write_text(json.dumps(record))  # a server that stopped without removing it
    code, _, err = upgrade(capsys, "--store", url_of(data), "--no-backup")
    assert code == 0, err


def test_a_store_in_the_current_format_is_said_to_be_and_left_as_it_is(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = tmp_path / "tams.duckdb"
    connect(f"duckdb://{store}", create=True).close()
    stat = store.stat()
    code, out, err = upgrade(capsys, "--store", f"duckdb://{store}", "--format", "json")
    result = json.loads(out)
    assert code == 0 and err == "" and not result["upgraded"] and result["from"] == result["to"] == "v2.0.0+"
    assert result["kept"] is None and result["backup"] is None
    assert store.stat().st_mtime_ns == stat.st_mtime_ns and sorted(p.name for p in tmp_path.iterdir()) == [store.name]


@pytest.mark.parametrize(
    ("store", "said"),
    [
        ("vast://10.0.0.1:8070/media/tams", "vast://10.0.0.1:8070/media/tams is not a DuckDB store"),
        ("duckdb://", "an in-memory store has no file to upgrade"),
        ("duckdb:///nowhere/tams.duckdb", "no DuckDB store at /nowhere/tams.duckdb"),
    ],
)
def test_what_is_not_a_duckdb_file_is_refused_in_one_line(
    store: str, said: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = upgrade(capsys, "--store", store)
    assert code == 2 and out == "" and err.count("\n") == 1 and said in err


def test_on_duckdb_1_3_there_is_nothing_to_upgrade_to(data: Path) -> None:
    done = run_vast("-m", "tams_analytics.cli", "upgrade", "--store", url_of(data), check=False)
    assert done.returncode == 2 and done.stdout == "" and done.stderr.count("\n") == 1
    assert done.stderr.startswith("tams-analytics upgrade: nothing to upgrade to: DuckDB 1.3.2 writes stores in ")
    assert sorted(p.name for p in data.iterdir()) == ["objects", "tams.duckdb"]


def test_a_copy_that_does_not_verify_is_removed_and_the_store_left_as_it_was(
    data: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from tams_analytics import upgrade as module

    real = module.copy_into

    def lossy(con: duckdb.DuckDBPyConnection, database: str, files: UpgradeFiles, tell: Any) -> None:
        real(con, database, files, tell)
        damaged = duckdb.connect(str(files.ready))
        damaged.execute("DELETE FROM segments WHERE rowid = 0")
        damaged.close()

    monkeypatch.setattr(module, "copy_into", lossy)
    before = inventory(data / "tams.duckdb")
    code, _, err = upgrade(capsys, "--store", url_of(data), "--no-backup")
    assert code == 2 and err.count("\n") == 4  # three steps said (copy, checkpoint, verify), then the refusal
    assert "the new file did not match the store (main.segments: other columns or rows)" in err
    assert inventory(data / "tams.duckdb") == before
    assert not (data / "tams.duckdb.upgraded").exists() and not (data / "tams.duckdb.v1-before-upgrade").exists()


# -- end to end ----------------------------------------------------------------------------------------------------
def paged(client: httpx.Client, path: str) -> list[list[Any]]:
    """A listing's pages of 5 items, as the server cuts them (following ``Link: rel="next"``)."""
    out: list[list[Any]] = []
    url: str | None = path
    query: dict[str, str] | None = {"limit": "5", "accept_get_urls": ""}
    while url is not None:
        r = client.get(url, params=query)
        assert r.status_code == 200, r.text
        out.append(r.json())
        url, query = r.links.get("next", {}).get("url"), None
    return out


def served_documents(client: httpx.Client) -> tuple[dict[str, Any], dict[str, str]]:
    """Everything the server serves (:func:`tests.backup.documents.documents`: service, storage backends, sources,
    flows, every flow's segments, objects, webhooks, delete requests), each flow's segments in pages of 5, and the
    SHA-256 of every object's media."""
    docs = documents(client)
    docs["pages"] = {fid: paged(client, f"/flows/{fid}/segments") for fid in docs["flows"]}
    return docs, media(client, docs["objects"])


@contextlib.contextmanager
def served(data: Path, name: str) -> Iterator[tuple[httpx.Client, LiveServer]]:
    """``tams-analytics serve`` on ``data``, stopped (SIGTERM) after."""
    server = LiveServer(data, verbosity=0, name=name)
    try:
        server.start()
        with server.client() as client:
            yield client, server
    finally:
        server.stop()


@pytest.mark.slow
def test_an_upgrade_killed_mid_way_and_run_again_serves_the_same_documents(
    data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Served as DuckDB 1.3.2 wrote it (the server warns once), upgraded, SIGKILLed as the new file was being
    checkpointed, upgraded again, served again: the same documents and media, and no warning."""
    with served(data, "before") as (client, server):
        before, hashes = served_documents(client)
    log = server.log_text()
    assert log.count(OLD_FORMAT) == 1 and f"WARNING server.services: the store {data / 'tams.duckdb'}" in log
    assert f"tams-analytics upgrade --store duckdb://{data / 'tams.duckdb'}" in log
    assert len(before["webhooks"]) == 3 and len(hashes) == len(before["objects"]) >= 100
    assert any(len(pages) > 2 for pages in before["pages"].values())

    said = killed_at(Step.CHECKPOINT, "--store", url_of(data))
    assert "copying the store into" in said
    assert inventory(data / "tams.duckdb")["format"] == "v1.0.0+"
    assert (data / "tams.duckdb.upgrading").exists()  # the partial new file, left by the kill
    started = time.perf_counter()
    code, out, err = upgrade(capsys, "--store", url_of(data), "--format", "json")
    assert code == 0, err
    result = json.loads(out)
    assert result["resumed"] and result["upgraded"] and not (data / "tams.duckdb.upgrading").exists()
    assert time.perf_counter() - started < 60

    with served(data, "after") as (client, server):
        after, hashes_after = served_documents(client)
    assert OLD_FORMAT not in server.log_text()
    assert after == before and hashes_after == hashes
    assert inventory(data / "tams.duckdb")["format"] == "v2.0.0+"


# -- the operators' page -------------------------------------------------------------------------------------------
PAGE = "docs/operators/upgrading.md"


def page_commands(section: str, first_line: str) -> list[str]:
    """The commands of the block of ``docs/operators/upgrading.md`` under ``section`` starting with ``first_line``,
    which must be marked as run by the test below."""
    found = block(PAGE, section, first_line)
    assert found.marker is not None and found.marker.kind == "tested-by"
    assert found.marker.argument == "tests/test_upgrade.py::test_the_operators_page_upgrades_a_store_as_written"
    return found.commands()


@pytest.mark.slow
def test_the_operators_page_upgrades_a_store_as_written(old_data: Path, tmp_path: Path) -> None:
    """Every command of the page, as written, on a store DuckDB 1.3.2 wrote: doctor warns, upgrade and serve, copy
    into a new file (the current format too), the old file put back (DuckDB 1.3 opens it), and the backup restored
    with VAST's set (a v1.0.0+ store again)."""
    for folder in (tmp_path / "here", tmp_path / "copy"):
        shutil.copytree(old_data, folder / "tams-data")
    store = tmp_path / "here" / "tams-data" / "tams.duckdb"
    before = inventory(store)
    with shell(tmp_path / "copy") as sh:
        (copy,) = page_commands("Into another file, or onto another volume", "tams-analytics copy")
        sh.run(copy)
        copied = inventory(tmp_path / "copy" / "upgraded.duckdb")
        assert copied["format"] == "v2.0.0+" and copied["rows"] == before["rows"]
    with shell(tmp_path / "here") as sh:
        (doctor,) = page_commands("When", "tams-analytics doctor")
        said = sh.run(doctor).stdout
        assert "WARN  storage_format  v1.0.0+, older than the v2.0.0+" in said and "tams-analytics upgrade" in said
        upgrade_command, serve = page_commands("How", "tams-analytics upgrade")
        done = sh.run(upgrade_command)
        assert "upgraded " in done.stdout and "the old file is kept as" in done.stdout
        assert inventory(store)["format"] == "v2.0.0+"
        served = sh.serve(serve, store)
        with httpx.Client(base_url=served.url, timeout=60, trust_env=False) as client:
            assert len(client.get("/flows", params={"limit": "1000"}).json()) == before["rows"]["flows"]
        served.stop()
        (back,) = page_commands("One-way, and the way back", "mv ")
        sh.run(back)
        assert inventory(store) == before
        query = "SELECT count(*) FROM segments"
        read = run_vast("-c", f"import duckdb; c = duckdb.connect('{store}'); print(c.sql({query!r}).fetchone()[0])")
        assert int(read.stdout) == before["rows"]["segments"]
    with shell(tmp_path / "here", {"PATH": f"{VAST_PYTHON.parent}{os.pathsep}{os.environ['PATH']}"}) as vast:
        (restore,) = page_commands("One-way, and the way back", "tams-analytics restore")
        vast.run(restore)
        restored = inventory(store)
        assert restored["format"] == "v1.0.0+" and restored["rows"] == before["rows"]
