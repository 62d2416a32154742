"""Object storage that cannot serve stops ``tams-analytics serve`` at start, in one line naming the store (bucket and
endpoint, or folder) and the precise cause, exit 2: never a server that says it is ready and hands clients PUT URLs
into a bucket that does not exist. Each case runs the real command in a subprocess, against the session's real
SeaweedFS (or a plain HTTP server, or a read-only folder)."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from benchmarks.ports import free_port
from tests.fixtures.http import QuietHandler, serving
from tests.fixtures.s3 import S3ServerInfo
from tests.server.test_serve_errors import assert_one_line

#: none of what the two dependency sets differ in (docs/development/dependencies.md): VAST's set skips it
pytestmark = pytest.mark.stack_independent


def serve(data_dir: Path, env: dict[str, str], *args: str) -> tuple[int, str]:
    """Run ``serve`` until it exits; its exit code and stderr. No S3 credentials reach it but those in ``env``:
    none from the caller's environment, files or an instance metadata service."""
    child_env = {k: v for k, v in os.environ.items() if not k.startswith(("TAMS_", "AWS_"))}
    child_env |= {
        "AWS_SHARED_CREDENTIALS_FILE": str(data_dir.parent / "no-aws-credentials"),
        "AWS_CONFIG_FILE": str(data_dir.parent / "no-aws-config"),
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    cmd = [sys.executable, "-m", "tams_analytics.cli", "serve", "--data-dir", str(data_dir)]
    cmd += ["--port", str(free_port()), *args]
    done = subprocess.run(
        cmd, env=child_env | env, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL
    )
    return done.returncode, done.stderr


def s3_env(s3: S3ServerInfo, bucket: str, **changes: str | None) -> dict[str, str]:
    env: dict[str, str | None] = {
        "TAMS_STORAGE": "s3",
        "TAMS_S3_ENDPOINT": s3.endpoint_url,
        "TAMS_S3_BUCKET": bucket,
        "TAMS_S3_REGION": s3.region,
        "TAMS_S3_ACCESS_KEY": s3.access_key,
        "TAMS_S3_SECRET_KEY": s3.secret_key,
    }
    env |= {f"TAMS_S3_{k.upper()}": v for k, v in changes.items()}
    return {k: v for k, v in env.items() if v is not None}


def closed_port() -> int:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class NotS3(QuietHandler):
    def do_GET(self) -> None:
        self.reply(404)


@pytest.fixture
def not_s3() -> Iterator[str]:
    """A plain HTTP server that is not S3 (404 to everything)."""
    with serving(NotS3) as url:
        yield url


WRONG_SECRET = "wrong-" + uuid.uuid4().hex


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("missing bucket", ("no such bucket", "--s3-create-bucket")),
        ("no credentials", ("no credentials", "set TAMS_S3_ACCESS_KEY and TAMS_S3_SECRET_KEY")),
        ("wrong secret", ("credentials refused (SignatureDoesNotMatch: the secret key does not match",)),
        ("unknown access key", ("credentials refused (InvalidAccessKeyId: the access key is not known",)),
        ("unreachable endpoint", ("the endpoint is unreachable (could not connect)", "check TAMS_S3_ENDPOINT")),
        ("not S3", ("the endpoint does not answer as S3 does (HTTP 404)",)),
    ],
)
def test_s3_that_cannot_serve_is_one_line_naming_bucket_endpoint_and_cause(
    tmp_path: Path, s3_server: S3ServerInfo, s3_bucket: str, not_s3: str, case: str, expected: tuple[str, ...]
) -> None:
    bucket, endpoint = s3_bucket, s3_server.endpoint_url
    env = s3_env(s3_server, bucket)
    if case == "missing bucket":
        bucket = "absent-" + uuid.uuid4().hex[:12]
        env = s3_env(s3_server, bucket)
    elif case == "no credentials":
        env = s3_env(s3_server, bucket, access_key=None, secret_key=None)
    elif case == "wrong secret":
        env = s3_env(s3_server, bucket, secret_key=WRONG_SECRET)
    elif case == "unknown access key":
        env = s3_env(s3_server, bucket, access_key="nobody-" + uuid.uuid4().hex[:8])
    elif case == "unreachable endpoint":
        endpoint = f"http://127.0.0.1:{closed_port()}"
        env = s3_env(s3_server, bucket, endpoint=endpoint)
    elif case == "not S3":
        endpoint = not_s3
        env = s3_env(s3_server, bucket, endpoint=endpoint)
    code, stderr = serve(tmp_path / "data", env)
    assert_one_line(code, stderr, f"object storage: S3 bucket {bucket} at {endpoint}: ", *expected)
    for secret in (s3_server.secret_key, WRONG_SECRET):
        assert secret not in stderr
    assert not (tmp_path / "data" / "tams.duckdb").exists(), "the store made for this start is removed"


def test_a_missing_bucket_is_created_when_asked(tmp_path: Path, s3_server: S3ServerInfo) -> None:
    """``--s3-create-bucket`` creates it (as before): the start-up check then passes, and the server serves."""
    from tests.fixtures.s3 import _client

    bucket = "created-" + uuid.uuid4().hex[:12]
    env = s3_env(s3_server, bucket, create_bucket="true")
    cmd = [sys.executable, "-m", "tams_analytics.cli", "serve", "--data-dir", str(tmp_path / "data")]
    child_env = {k: v for k, v in os.environ.items() if not k.startswith("TAMS_")} | env | {"PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [*cmd, "--port", "0"], env=child_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        banner = process.stdout.readline()
        assert banner.startswith("TAMS server on http://"), (banner, process.stderr and process.stderr.read())
        client = _client(s3_server)
        client.head_bucket(Bucket=bucket)
    finally:
        process.terminate()
        process.communicate(timeout=60)
        with contextlib.suppress(Exception):
            _client(s3_server).delete_bucket(Bucket=bucket)


def test_a_local_object_folder_that_cannot_be_written_is_one_line(tmp_path: Path) -> None:
    """Local object storage on a read-only file system: exit 2 naming the folder."""
    if os.geteuid() != 0:
        pytest.skip("mounting a read-only file system needs root")
    objects = tmp_path / "data" / "objects"
    objects.mkdir(parents=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(objects)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        code, stderr = serve(tmp_path / "data", {})
    finally:
        subprocess.run(["umount", str(objects)], check=True)
    assert_one_line(
        code, stderr, f"object storage: local object storage {objects}: cannot be written (read-only file system)"
    )
