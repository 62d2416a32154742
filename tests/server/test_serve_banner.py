"""``serve`` announces its URL only once a connection to it is no longer refused: a script that waits for the
banner and connects at once is answered as soon as the app has started. Runs the real command."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import httpx

from benchmarks.live import free_port


def test_a_client_connecting_as_soon_as_the_banner_shows_is_answered(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAMS_")}
    cmd = [sys.executable, "-m", "tams_analytics.cli", "serve", "--data-dir", str(tmp_path), "--port", str(port)]
    server = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert server.stdout is not None
        for line in server.stdout:
            if "TAMS server on" in line:
                break
        else:
            raise AssertionError(f"serve exited ({server.wait()}) without a banner")
        # hold the server where the banner left it (before the app has started), and connect
        os.kill(server.pid, signal.SIGSTOP)
        answer: list[httpx.Response | Exception] = []

        def get() -> None:
            try:
                answer.append(httpx.get(f"http://127.0.0.1:{port}/", timeout=60))
            except Exception as exc:  # reported below
                answer.append(exc)

        client = threading.Thread(target=get)
        client.start()
        client.join(1.0)
        os.kill(server.pid, signal.SIGCONT)
        client.join(60)
        assert len(answer) == 1 and isinstance(answer[0], httpx.Response), answer
        assert answer[0].status_code == 200
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(server.pid, signal.SIGCONT)
        server.terminate()
        server.wait(30)
