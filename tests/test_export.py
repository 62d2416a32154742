"""Parquet export of a real DuckDB demo store to a directory and to a real S3 server (SeaweedFS), read back
with pyarrow.dataset and DuckDB and compared with the catalog."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import weakref
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest
import sqlglot
import sqlglot.expressions as sge

from server.webhooks import records as webhook_records
from tams_analytics.catalog import Catalog
from tams_analytics.cli.__main__ import main
from tams_analytics.export import (
    MANIFEST,
    PARTITION_COLUMN,
    ROWS_PER_GROUP,
    _batches,
    _WrittenFiles,
    export_catalog,
    export_schema,
    hive_ddl,
)
from tams_analytics.export.hive import EXAMPLE_LOCATION
from tams_analytics.predicates import eq
from tams_analytics.schema import PRIMARY_KEYS, SCHEMAS
from tests.fixtures.s3 import S3ServerInfo, _client
from tests.test_views_sql import build_demo_store

SECRET = "webhook-secret-never-exported-7f3a"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Any:
    path = tmp_path_factory.mktemp("export") / "demo.duckdb"
    planted = build_demo_store(path)
    cat: Catalog = planted["catalog"]
    webhook_records.save_webhook(
        cat,
        {"id": "wh-1", "url": "https://hooks.example/tams", "events": ["flows/created"], "api_key_name": "X-Key"},
        api_key_value=SECRET,
    )
    cat.close()  # the CLI opens the file read-only; DuckDB allows one writer process-wide per file
    planted["url"] = f"duckdb:///{path}"
    yield planted


@pytest.fixture(scope="module")
def reader(store: dict[str, Any]) -> Any:
    from tams_analytics.catalog import connect

    cat = connect(store["url"], read_only=True)
    yield cat
    cat.close()


def _sorted(table: pa.Table, name: str) -> list[dict[str, Any]]:
    return table.sort_by([(k, "ascending") for k in PRIMARY_KEYS[name]]).to_pylist()


def _expected(cat: Catalog, name: str) -> pa.Table:
    schema = export_schema(name)
    return cat.rows(name, columns=schema.names).cast(schema)


def _assert_same_as_catalog(cat: Catalog, dataset_of: Any) -> None:
    for name in SCHEMAS:
        got = dataset_of(name).to_table()
        if name == "segments":
            buckets = got.column(PARTITION_COLUMN).to_pylist()
            assert buckets == [f[0].lower() for f in got.column("flow_id").to_pylist()]
            got = got.drop_columns([PARTITION_COLUMN])
        expected = _expected(cat, name)
        assert got.schema == export_schema(name), name
        assert got.num_rows == expected.num_rows, name
        assert _sorted(got, name) == _sorted(expected, name), name


def test_export_to_a_directory_round_trips(
    store: dict[str, Any], reader: Catalog, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "export"
    assert main(["export", "--store", store["url"], "--to", str(out)]) == 0
    captured = capsys.readouterr()
    assert f"segments: {reader.count('segments')} rows" in captured.out
    assert captured.err == "", "no progress bar when stderr is not a terminal"
    _assert_same_as_catalog(reader, lambda name: ds.dataset(out / name, format="parquet", partitioning="hive"))
    manifest = json.loads((out / MANIFEST).read_text())
    assert {k: v["rows"] for k, v in manifest["tables"].items()} == {n: reader.count(n) for n in SCHEMAS}
    assert manifest["tables"]["segments"]["partitioning"] == [PARTITION_COLUMN]


def test_segments_are_bucketed_by_flow_and_sorted_with_int64_bounds(
    store: dict[str, Any], reader: Catalog, tmp_path: Path
) -> None:
    summary = export_catalog(reader, str(tmp_path), tables=["segments"])
    assert [t.table for t in summary.tables] == ["segments"]
    files = sorted((tmp_path / "segments").glob(f"{PARTITION_COLUMN}=*/*.parquet"))
    flows = {f for f in reader.rows("segments", columns=["flow_id"]).column("flow_id").to_pylist()}
    assert {p.parent.name.split("=")[1] for p in files} == {f[0] for f in flows}
    for path in files:
        pf = pq.ParquetFile(path)
        assert pf.schema_arrow.field("start_ns").type == pa.int64() == pf.schema_arrow.field("end_ns").type
        assert all(pf.metadata.row_group(i).num_rows <= ROWS_PER_GROUP for i in range(pf.num_row_groups))
        t = pf.read(columns=["flow_id", "start_ns"])
        bucket = path.parent.name.split("=")[1]
        assert {f[0] for f in t.column("flow_id").to_pylist()} == {bucket}
        keys = list(zip(t.column("flow_id").to_pylist(), t.column("start_ns").to_pylist(), strict=True))
        assert keys == sorted(keys), f"{path} is not in (flow_id, start_ns) order"


def test_duckdb_reads_the_export_and_prunes_by_bucket(store: dict[str, Any], reader: Catalog, tmp_path: Path) -> None:
    export_catalog(reader, str(tmp_path), tables=["segments", "flows"])
    con = duckdb.connect()
    seg = f"read_parquet('{tmp_path}/segments/*/*.parquet', hive_partitioning = true)"
    n, total, flows = con.execute(
        f"SELECT count(*), sum(start_ns - 1700000000000000000), count(DISTINCT flow_id) FROM {seg}"
    ).fetchone()
    stored = reader.rows("segments", columns=["flow_id", "start_ns"])
    assert n == stored.num_rows and flows == len(set(stored.column("flow_id").to_pylist()))
    assert total == sum(s - 1_700_000_000_000_000_000 for s in stored.column("start_ns").to_pylist())
    one = store["gap_flow"]
    pruned = con.execute(
        f"SELECT count(*) FROM {seg} WHERE {PARTITION_COLUMN} = lower(substr(?, 1, 1)) AND flow_id = ?", [one, one]
    ).fetchone()[0]
    assert pruned == reader.count("segments", [eq("flow_id", one)]) > 0
    joined = con.execute(
        f"SELECT count(*) FROM {seg} s JOIN read_parquet('{tmp_path}/flows/*.parquet') f ON f.id = s.flow_id"
    ).fetchone()[0]
    assert joined == n - 1  # all but the planted orphan segment


def test_secrets_are_never_exported(reader: Catalog, tmp_path: Path) -> None:
    assert reader.rows("webhooks").column("api_key_value").to_pylist() == [SECRET]
    export_catalog(reader, str(tmp_path))
    webhooks = ds.dataset(tmp_path / "webhooks", format="parquet").to_table()
    assert webhooks.num_rows == 1 and "api_key_value" not in webhooks.column_names
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path


def test_segments_stream_in_batches(reader: Catalog) -> None:
    seen: list[int] = []
    batches = list(_batches(reader, "segments", export_schema("segments"), 700, seen.append))
    assert len(batches) > 1 and max(b.num_rows for b in batches) <= 700
    assert sum(seen) == reader.count("segments")
    assert all(b.schema == export_schema("segments") for b in batches)


def test_arrow_holds_no_python_callable_of_an_export_once_it_returns(
    reader: Catalog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Arrow releases ``write_dataset``'s file visitor on its own thread, often after the call returned; a release
    that meets the interpreter's exit aborts the process (exit 134, apache/arrow#36980), as the CLI's export did
    in CI. The export returns only once every visitor it gave Arrow is gone."""
    given: list[weakref.ref[Any]] = []
    make = _WrittenFiles.visitor

    def visitor(self: _WrittenFiles) -> Any:
        visit = make(self)
        given.append(weakref.ref(visit))
        return visit

    monkeypatch.setattr(_WrittenFiles, "visitor", visitor)
    for i in range(5):  # without the wait, a visitor outlives the call in most runs (85 % here)
        export_catalog(reader, str(tmp_path / f"export-{i}"), tables=["segments", "flows"])
        assert [ref() for ref in given] == [None] * len(given)
    assert len(given) == 10


def test_an_existing_export_is_kept_unless_overwrite(
    store: dict[str, Any], reader: Catalog, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["export", "--store", store["url"], "--to", str(tmp_path), "--tables", "sources,flows"]
    assert main(args) == 0
    before = (tmp_path / "flows" / "part-0.parquet").read_bytes()
    capsys.readouterr()
    assert main(args) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert (tmp_path / "flows" / "part-0.parquet").read_bytes() == before
    (tmp_path / "flows" / "stale.parquet").write_bytes(b"old")
    assert main([*args, "--overwrite"]) == 0
    assert sorted(p.name for p in (tmp_path / "flows").iterdir()) == ["part-0.parquet"]
    assert main(["export", "--store", store["url"], "--to", str(tmp_path), "--tables", "tags"]) == 0
    manifest = json.loads((tmp_path / MANIFEST).read_text())
    assert sorted(manifest["tables"]) == ["flows", "sources", "tags"], "a partial export keeps earlier entries"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--to", "ftp://host/x"], "expected a directory or s3://"),
        (["--to", "{tmp}", "--tables", "segments", "nope"], "unknown table"),
        (["--to", "{tmp}", "--flow-bucket-chars", "9"], "flow_bucket_chars"),
    ],
)
def test_usage_errors_exit_2(
    store: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    assert main(["export", "--store", store["url"], *args]) == 2
    assert message in capsys.readouterr().err


def test_a_missing_store_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export", "--store", f"duckdb:///{tmp_path / 'none.duckdb'}", "--to", str(tmp_path / "o")]) == 2
    assert "cannot open" in capsys.readouterr().err
    assert not (tmp_path / "none.duckdb").exists()


# -- the real S3 server -----------------------------------------------------------------------------------
def _s3_env(monkeypatch: pytest.MonkeyPatch, s3: S3ServerInfo) -> None:
    monkeypatch.setenv("TAMS_S3_ENDPOINT", s3.endpoint_url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3.secret_key)
    monkeypatch.setenv("TAMS_S3_REGION", s3.region)


def test_export_to_s3_round_trips(
    store: dict[str, Any],
    reader: Catalog,
    s3_server: S3ServerInfo,
    s3_bucket: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _s3_env(monkeypatch, s3_server)
    to = f"s3://{s3_bucket}/exports/run-1"
    assert main(["export", "--store", store["url"], "--to", to]) == 0
    assert f"to {to} in" in capsys.readouterr().out
    keys = {
        o["Key"]
        for page in _client(s3_server).get_paginator("list_objects_v2").paginate(Bucket=s3_bucket)
        for o in page.get("Contents", [])
    }
    assert f"exports/run-1/{MANIFEST}" in keys
    assert any(k.startswith(f"exports/run-1/segments/{PARTITION_COLUMN}=") for k in keys)
    s3 = pafs.S3FileSystem(
        access_key=s3_server.access_key,
        secret_key=s3_server.secret_key,
        region=s3_server.region,
        endpoint_override=s3_server.endpoint_url.removeprefix("http://"),
        scheme="http",
    )
    root = f"{s3_bucket}/exports/run-1"

    def dataset_of(name: str) -> ds.Dataset:
        return ds.dataset(f"{root}/{name}", filesystem=s3, format="parquet", partitioning="hive")

    _assert_same_as_catalog(reader, dataset_of)
    con = duckdb.connect()
    con.register("segments", dataset_of("segments"))  # DuckDB scans the S3 dataset through Arrow
    row = con.execute("SELECT count(*), count(DISTINCT flow_id), max(end_ns) FROM segments").fetchone()
    stored = reader.rows("segments", columns=["flow_id", "end_ns"])
    assert row == (
        stored.num_rows,
        len(set(stored.column("flow_id").to_pylist())),
        max(stored.column("end_ns").to_pylist()),
    )


def test_export_to_a_missing_bucket_exits_2(
    store: dict[str, Any], s3_server: S3ServerInfo, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _s3_env(monkeypatch, s3_server)
    assert main(["export", "--store", store["url"], "--to", "s3://no-such-bucket-tams/x", "--tables", "sources"]) == 2
    assert "s3://no-such-bucket-tams/x" in capsys.readouterr().err


#: variables that would let the AWS SDK find credentials of this machine's own: kept away from the CLI below
_AWS_ISOLATION = {
    "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/aws-credentials",
    "AWS_CONFIG_FILE": "/nonexistent/aws-config",
    "AWS_EC2_METADATA_DISABLED": "true",
}


def _export_cli(store_url: str, to: str, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """``tams-analytics export`` in a process of its own, with ``env`` as its only S3 and AWS settings."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "TAMS_S3_"))}
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "tams_analytics.cli",
            "export",
            "--store",
            store_url,
            "--to",
            to,
            "--no-progress",
            *args,
        ],
        env={**base, **_AWS_ISOLATION, **env},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def _keys(s3: S3ServerInfo, bucket: str) -> list[str]:
    pages = _client(s3).get_paginator("list_objects_v2").paginate(Bucket=bucket)
    return [o["Key"] for page in pages for o in page.get("Contents", [])]


def test_export_takes_the_s3_settings_serve_and_integrity_take(
    store: dict[str, Any], s3_server: S3ServerInfo, s3_bucket: str
) -> None:
    """TAMS_S3_ENDPOINT, TAMS_S3_ACCESS_KEY, TAMS_S3_SECRET_KEY and TAMS_S3_REGION alone: no AWS_* variable."""
    env = {
        "TAMS_S3_ENDPOINT": s3_server.endpoint_url,
        "TAMS_S3_ACCESS_KEY": s3_server.access_key,
        "TAMS_S3_SECRET_KEY": s3_server.secret_key,
        "TAMS_S3_REGION": s3_server.region,
    }
    done = _export_cli(store["url"], f"s3://{s3_bucket}/tams", env, "--tables", "sources,flows")
    assert done.returncode == 0, done.stderr
    assert f"to s3://{s3_bucket}/tams in" in done.stdout
    assert f"tams/{MANIFEST}" in _keys(s3_server, s3_bucket)


@pytest.mark.parametrize("problem", ["no credentials", "credentials refused", "no such bucket", "unreachable"])
def test_what_stops_an_s3_export_is_said_in_one_line(
    store: dict[str, Any], s3_server: S3ServerInfo, s3_bucket: str, problem: str
) -> None:
    """Exit 2 and one line naming the problem, the endpoint and the destination (never a secret), before anything
    is written: where S3 itself answers ``403`` alike to no credentials and to a wrong secret."""
    endpoint = s3_server.endpoint_url
    bucket = "no-such-bucket-tams" if problem == "no such bucket" else s3_bucket
    env = {"TAMS_S3_ENDPOINT": endpoint, "TAMS_S3_REGION": s3_server.region}
    wrong_secret = "wrong-" + s3_server.secret_key
    if problem == "credentials refused":
        env |= {"TAMS_S3_ACCESS_KEY": s3_server.access_key, "TAMS_S3_SECRET_KEY": wrong_secret}
    elif problem != "no credentials":
        env |= {"TAMS_S3_ACCESS_KEY": s3_server.access_key, "TAMS_S3_SECRET_KEY": s3_server.secret_key}
    if problem == "unreachable":
        with socket.socket() as s:  # a port nothing listens on
            s.bind(("127.0.0.1", 0))
            endpoint = env["TAMS_S3_ENDPOINT"] = f"http://127.0.0.1:{s.getsockname()[1]}"
    to = f"s3://{bucket}/tams"
    done = _export_cli(store["url"], to, env, "--tables", "sources")
    said = {
        "no credentials": "no S3 credentials for",
        "credentials refused": "refused the credentials from TAMS_S3_ACCESS_KEY/TAMS_S3_SECRET_KEY",
        "no such bucket": f"no bucket {bucket} at",
        "unreachable": "cannot reach S3 at",
    }[problem]
    assert done.returncode == 2, done.stderr
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("tams-analytics export: "), done.stderr
    assert said in lines[0] and endpoint in lines[0] and to in lines[0], lines[0]
    assert s3_server.secret_key not in done.stderr and wrong_secret not in done.stderr
    if bucket == s3_bucket:
        assert _keys(s3_server, bucket) == []


# -- the Hive DDL over an export ---------------------------------------------------------------------------
HIVE_SQL = Path(__file__).resolve().parents[1] / "sql" / "trino" / "export" / "hive_tables.sql"


def test_committed_hive_ddl_is_up_to_date_and_parses() -> None:
    text = HIVE_SQL.read_text()
    assert text == hive_ddl(EXAMPLE_LOCATION), "regenerate sql/trino/export/hive_tables.sql with hive_ddl()"
    statements = [s for s in sqlglot.parse(text, read="trino") if s is not None]
    creates = [s for s in statements if isinstance(s, sge.Create) and s.kind == "TABLE"]
    assert [c.this.this.name for c in creates] == list(SCHEMAS)
    assert isinstance(statements[-1], sge.Command) and "sync_partition_metadata" in statements[-1].sql("trino")


def test_hive_ddl_columns_match_the_exported_files(reader: Catalog, tmp_path: Path) -> None:
    export_catalog(reader, str(tmp_path), tables=["segments", "objects"])
    creates = {
        c.this.this.name: c
        for c in sqlglot.parse(hive_ddl(f"file://{tmp_path}"), read="trino")
        if isinstance(c, sge.Create) and c.kind == "TABLE"
    }
    for name in ("segments", "objects"):
        columns = [col.name for col in creates[name].this.expressions]
        files = ds.dataset(tmp_path / name, format="parquet", partitioning="hive")
        assert columns == files.schema.names, name
        assert f"external_location='file://{tmp_path}/{name}'" in creates[name].sql("trino")


def test_unsorted_export_has_the_same_rows(store: dict[str, Any], reader: Catalog, tmp_path: Path) -> None:
    assert main(["export", "--store", store["url"], "--to", str(tmp_path), "--tables", "segments", "--no-sort"]) == 0
    got = ds.dataset(tmp_path / "segments", format="parquet", partitioning="hive").to_table()
    assert _sorted(got.drop_columns([PARTITION_COLUMN]), "segments") == _sorted(
        _expected(reader, "segments"), "segments"
    )
    assert json.loads((tmp_path / MANIFEST).read_text())["tables"]["segments"]["sorted_by"] == []
