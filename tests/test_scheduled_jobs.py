"""The scheduled jobs of docs/jobs/index.md ("On a schedule") run where a scheduler runs them: the crontab line in
cron's environment and the systemd service's command in systemd's, each under ``env -i`` (nothing inherited: no
activated ``.venv``, cron's ``PATH``), on a demo store with its media; ``systemd-analyze verify`` reads both units.

The page's deployment folders are placed under a temporary root: ``/srv/tams`` (the environment the page installs
into is this checkout's ``.venv``, linked there) and ``/var/log/tams``. Nothing else of the page's text is changed.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.docs import Block, block

PAGE = "docs/jobs/index.md"
SECTION = "On a schedule"
#: the environment cron gives a job (Debian's cron: the crontab owner's HOME, LOGNAME and SHELL; PATH fixed)
CRON_PATH = "/usr/bin:/bin"
#: the PATH systemd gives a system service, and what it sets for one with ``User=``
SYSTEMD_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass(frozen=True)
class Deployment:
    """The page's folders under ``root``, a demo store with media in them, and a home folder for the job's user."""

    root: Path
    home: Path

    def placed(self, text: str) -> str:
        """``text`` with the page's folders under :attr:`root`."""
        for folder in ("/srv/tams", "/var/log/tams"):
            text = text.replace(folder, f"{self.root}{folder}")
        return text

    @property
    def report(self) -> Path:
        return self.root / "var" / "log" / "tams" / "integrity.json"


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Deployment:
    root = tmp_path_factory.mktemp("deployment")
    srv = root / "srv" / "tams"
    (srv / "media").mkdir(parents=True)
    (root / "var" / "log" / "tams").mkdir(parents=True)
    (srv / ".venv").symlink_to(Path(sys.prefix))
    home = root / "home" / "tams"
    home.mkdir(parents=True)
    command = [str(srv / ".venv" / "bin" / "tams-analytics"), "demo", "--store", f"duckdb://{srv}/jobs.duckdb"]
    command += ["--segments", "100", "--storage", f"local:{srv}/media"]
    subprocess.run(command, check=True, capture_output=True, timeout=600, stdin=subprocess.DEVNULL)
    return Deployment(root, home)


def units(unit: Block) -> dict[str, list[tuple[str, str]]]:
    """A unit file's sections and their ``Key=value`` lines, in order (a key may come more than once)."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] = []
    for line in unit.text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], [])
            continue
        key, _, value = line.partition("=")
        current.append((key.strip(), value.strip()))
    return sections


def test_the_cron_line_runs_in_crons_environment(deployment: Deployment) -> None:
    """As cron runs a crontab line: its command with ``/bin/sh -c`` in the owner's home, cron's environment only.
    cron mails what a job prints: on a clean store the line prints nothing."""
    line = block(PAGE, SECTION, "0 * * * *")
    minute, hour, day, month, weekday, command = line.text.strip().split(None, 5)
    assert (minute, hour, day, month, weekday) == ("0", "*", "*", "*", "*")
    assert "%" not in command, "cron reads % in a command as a new line"
    environment = [f"HOME={deployment.home}", "LOGNAME=tams", f"PATH={CRON_PATH}", "SHELL=/bin/sh"]
    done = subprocess.run(
        ["env", "-i", *environment, "/bin/sh", "-c", deployment.placed(command)],
        cwd=deployment.home,
        capture_output=True,
        text=True,
        timeout=600,
        stdin=subprocess.DEVNULL,
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, "", ""), done
    assert json.loads(deployment.report.read_text())["verdict"] == "clean"


def test_the_systemd_service_runs_as_systemd_starts_it(deployment: Deployment) -> None:
    """As systemd starts a oneshot service: ``ExecStart=`` split into words (no shell), in ``/``, with systemd's
    ``PATH`` and the variables it sets for ``User=``, standard output to the file ``StandardOutput=`` names."""
    service = units(block(PAGE, SECTION, "# /etc/systemd/system/tams-integrity.service"))["Service"]
    settings = dict(service)
    assert settings["Type"] == "oneshot"
    argv = shlex.split(deployment.placed(settings["ExecStart"]))  # a bare name is looked up in systemd's PATH
    user = settings["User"]
    environment = [f"PATH={SYSTEMD_PATH}", f"HOME={deployment.home}", f"USER={user}", f"LOGNAME={user}"]
    environment += ["SHELL=/bin/sh", *(value for key, value in service if key == "Environment")]
    kind, _, output = settings["StandardOutput"].partition(":")
    assert kind == "truncate", settings["StandardOutput"]
    deployment.report.write_text("the last run's report\n")  # replaced whole
    with open(deployment.placed(output), "w") as out:
        done = subprocess.run(
            ["env", "-i", *environment, *argv],
            cwd=settings.get("WorkingDirectory", "/"),
            stdout=out,
            stderr=subprocess.PIPE,
            text=True,
            timeout=600,
            stdin=subprocess.DEVNULL,
        )
    assert done.returncode == 0, done.stderr
    assert json.loads(deployment.report.read_text())["verdict"] == "clean"


def test_systemd_analyze_verifies_the_units(deployment: Deployment, tmp_path: Path) -> None:
    """Both units as systemd reads them: every key known, the command there and executable, the timer's calendar
    and the service it starts (``tams-integrity.timer`` starts ``tams-integrity.service``)."""
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (Debian's systemd package has it)")
    files = []
    for name in ("tams-integrity.service", "tams-integrity.timer"):
        unit = block(PAGE, SECTION, f"# /etc/systemd/system/{name}")
        path = tmp_path / name
        path.write_text(deployment.placed(unit.text))
        files.append(str(path))
    done = subprocess.run(
        [analyze, "verify", *files],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "SYSTEMD_LOG_LEVEL": "notice"},
    )
    assert done.returncode == 0 and not done.stderr.strip(), done.stderr
