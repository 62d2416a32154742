"""The documentation works as written: every shell and Python block of the README, of docs/ and of
benchmarks/README.md is run here, or run by the test its marker names, or says why it cannot run on one machine
(``tests/docs.py`` reads the markers; ``docs/development/docs.md`` explains them), and every example in the code's
docstrings (``>>>``) runs. The names the pages give are checked against the code: the server's settings, the
``TAMS_*`` variables, the metrics of ``/metrics``.

Scenarios: ``scratch`` blocks run in an empty folder; ``quick-start`` blocks in a copy of the repository's root
(its entries linked, so ``./tams-data`` is made there and not in the checkout) while the Quick start's
``bash scripts/dev.sh serve`` runs as written on port 8000, and ``quick-start-stopped`` blocks there once it has
stopped (it holds its DuckDB file), from the shell of an activated ``.venv`` as Getting started makes.
"""

from __future__ import annotations

import ast
import contextlib
import doctest
import importlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.docs import CHECKED, ROOT, Block, block, blocks, dependency_set, pages, venv_current
from tests.docs_runner import run_python

SCENARIOS = ("scratch", "quick-start", "quick-start-stopped")
PORT = 8000
#: tests a block names as its tester that another branch adds (the harness accepts them while they are missing,
#: and fails once they exist, so the entry is removed with them)
PENDING: dict[str, str] = {}
RUNNER = ROOT / "tests" / "docs_runner.py"


def _all_blocks() -> list[Block]:
    return [b for page in pages() for b in blocks(page)]


# -- the examples in the code's docstrings ----------------------------------------------------------------------
#: the packages whose modules' docstring examples run here, on both dependency sets (this file is in each set's tests)
EXAMPLE_PACKAGES = ("tams_analytics", "server", "benchmarks")
#: modules whose examples need an optional driver, by that driver: run in the set that has it, skipped in the other
EXAMPLES_NEED = {"tams_analytics.engines.vast.plan": "vastdb"}


def _modules_with_examples() -> list[str]:
    """Every module of :data:`EXAMPLE_PACKAGES` whose source holds an example (found by reading it, so that a new
    module's examples run without a list to add it to)."""
    found = []
    for package in EXAMPLE_PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if ">>> " in path.read_text():
                parts = path.relative_to(ROOT).with_suffix("").parts
                found.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return found


@pytest.mark.parametrize("name", _modules_with_examples())
def test_the_examples_in_the_codes_docstrings_run(name: str) -> None:
    if name in EXAMPLES_NEED:
        pytest.importorskip(EXAMPLES_NEED[name], reason=f"its examples plan with {EXAMPLES_NEED[name]}'s SDK")
    failures, tried = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert tried and not failures, f"{failures} of {tried} examples failed (the output above says which)"


# -- the markers ----------------------------------------------------------------------------------------------
def test_every_block_is_marked() -> None:
    unmarked = [b.where for b in _all_blocks() if b.language in CHECKED and b.marker is None]
    assert not unmarked, f"blocks without a <!-- docs: run|tested-by|not-run --> marker just before them: {unmarked}"
    reasonless = [b.where for b in _all_blocks() if b.marker and b.marker.kind == "not-run" and not b.marker.argument]
    assert not reasonless, f"not-run markers without a reason: {reasonless}"
    scenarios = [b.where for b in _all_blocks() if b.marker and b.marker.kind == "run" and b.scenario not in SCENARIOS]
    assert not scenarios, f"run in a scenario the harness does not have ({SCENARIOS}): {scenarios}"


def test_every_marker_stands_before_a_block() -> None:
    """A marker separated from its block (a blank line, text between) would mark nothing."""
    stray = []
    for page in pages():
        lines = (ROOT / page).read_text().splitlines()
        for i, line in enumerate(lines):
            if re.match(r"^\s*<!--\s*docs:", line) and not (
                i + 1 < len(lines) and re.match(r"^\s*(`{3,}|~{3,})", lines[i + 1])
            ):
                stray.append(f"{page}:{i + 1}")
    assert not stray, f"markers not on the line just before a fence: {stray}"


def _imports(path: Path) -> list[Path]:
    """The modules of this repository's ``tests`` package that ``path`` imports."""
    tree = ast.parse(path.read_text())
    names = [n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module]
    names += [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    found = []
    for name in names:
        if name.startswith("tests."):
            module = ROOT / (name.replace(".", "/") + ".py")
            package = ROOT / name.replace(".", "/") / "__init__.py"
            found += [p for p in (module, package) if p.exists()]
    return found


def test_tested_by_markers_name_tests_that_read_the_page() -> None:
    problems = []
    for b in _all_blocks():
        if not b.marker or b.marker.kind != "tested-by":
            continue
        target = b.marker.argument
        path, _, name = target.partition("::")
        file = ROOT / path
        if target in PENDING:
            if file.exists() and re.search(rf"^\s*(async )?def {re.escape(name)}\(", file.read_text(), re.M):
                problems.append(f"{b.where}: {target} exists now: remove it from PENDING")
            continue
        if not name or not file.exists():
            problems.append(f"{b.where}: no test {target}")
            continue
        if not re.search(rf"^\s*(async )?def {re.escape(name)}\(", file.read_text(), re.M):
            problems.append(f"{b.where}: {path} has no test {name}")
            continue
        readers = [file, *_imports(file)]
        if not any(b.page in r.read_text() for r in readers):
            problems.append(f"{b.where}: {path} (nor a tests module it imports) never names {b.page}")
    assert not problems, "\n".join(problems)


def test_the_helper_reads_blocks_as_this_page_says() -> None:
    """The helper's own example, on ``docs/development/docs.md``, runs here and shows what it says it shows."""
    example = block("docs/development/docs.md", "Every snippet runs", "from tests.docs import")
    assert run_python(example.text) == []
    assert "block(" in example.text and "section_blocks(" in example.text


# -- names the pages give, against the code ---------------------------------------------------------------------
def _text() -> str:
    return "\n".join((ROOT / p).read_text() for p in pages())


def test_the_settings_page_names_every_setting() -> None:
    from server.config import Settings

    page = (ROOT / "docs" / "reference" / "settings.md").read_text()
    missing = [f"TAMS_{name.upper()}" for name in Settings.model_fields if f"`TAMS_{name.upper()}`" not in page]
    assert not missing, f"settings of server/config.py the settings reference does not list: {missing}"


def _code_variables() -> set[str]:
    """The ``TAMS_*`` names the code reads: the server's settings and every name written out in the code."""
    from server.config import Settings

    names = {f"TAMS_{name.upper()}" for name in Settings.model_fields}
    mine = {Path(__file__).resolve(), ROOT / "tests" / "docs.py", ROOT / "tests" / "docs_runner.py"}
    sources = [
        *(p for d in ("tams_analytics", "server", "benchmarks", "tests") for p in (ROOT / d).rglob("*.py")),
        *(ROOT / "scripts").glob("*.sh"),
        *(ROOT / "notebooks").glob("*.ipynb"),
        ROOT / ".ci" / "run",
    ]
    for source in sources:
        if source.resolve() not in mine:
            names |= set(re.findall(r"TAMS_[A-Z0-9_]*[A-Z0-9]", source.read_text()))
    return names


def test_every_tams_variable_the_docs_name_exists() -> None:
    named = set(re.findall(r"TAMS_[A-Z0-9_]*[A-Z0-9](?![A-Z0-9_*])", _text()))
    unknown = sorted(named - _code_variables())
    assert not unknown, f"TAMS_* variables the documentation names that nothing reads: {unknown}"


#: a metric as the pages write it: `name` or `name{label, label}` or `name{label="value"|"value"}`
_METRIC = re.compile(r"`(tams_[a-z_]+)(\{[^`]*\})?`")


def _documented_metrics() -> dict[str, dict[str, set[str]]]:
    """Metric name -> label -> the values the pages name (empty: the label's name only)."""
    out: dict[str, dict[str, set[str]]] = {}
    for name, labels in _METRIC.findall(_text()):
        if name.startswith("tams_analytics"):
            continue
        entry = out.setdefault(name, {})
        for part in re.findall(r'(\w+)(?:="([^}]*?)")?(?=[,}])', labels or ""):
            label, values = part
            entry.setdefault(label, set()).update(v for v in re.split(r'"\|"', values) if v)
    return out


def _code_metrics() -> set[str]:
    """The metric names ``server/observability/metrics.py`` defines, as exposed (a counter with ``_total``)."""
    source = (ROOT / "server" / "observability" / "metrics.py").read_text()
    names = set()
    for kind, name in re.findall(
        r'\b(Counter|Histogram|Gauge|CounterMetricFamily|GaugeMetricFamily)\(\s*"(\w+)"', source
    ):
        names.add(f"{name}_total" if kind.startswith("Counter") else name)
    return names


def test_the_metrics_the_docs_name_are_the_servers() -> None:
    documented, defined = set(_documented_metrics()), _code_metrics()
    assert documented - defined == set(), f"metrics the docs name that the server has not: {documented - defined}"
    monitoring = (ROOT / "docs" / "operators" / "monitoring.md").read_text()
    unlisted = sorted(n for n in defined if f"`{n}" not in monitoring)
    assert not unlisted, f"metrics of the server that the Monitoring page does not list: {unlisted}"


def _check_scraped_metrics(exposition: str) -> None:
    """Every metric and label the pages name, and every label value they name, is in this scrape of /metrics."""
    families: dict[str, dict[str, set[str]]] = {}
    for name in re.findall(r"^# TYPE (\S+) \S+$", exposition, re.M):
        if not name.endswith("_created"):  # prometheus-client's creation time of each counter and histogram
            families.setdefault(name, {})
    for sample, labels in re.findall(r"^([a-z_]+)\{([^}]*)\}", exposition, re.M):
        if sample.endswith("_created"):
            continue
        # the longest family the sample belongs to (tams_write_retries_given_up_total is not tams_write_retries')
        owners = [f for f in families if sample == f or sample.startswith(f + "_")]
        family = max(owners, key=len, default=sample)
        for label, value in re.findall(r'(\w+)="([^"]*)"', labels):
            families.setdefault(family, {}).setdefault(label, set()).add(value)
    problems = []
    for name, labels in _documented_metrics().items():
        family = name if name in families else name.removesuffix("_total")
        if family not in families:
            problems.append(f"{name}: not in /metrics")
            continue
        seen = families[family]
        for label, values in labels.items():
            if seen and label not in seen:
                problems.append(f"{name}: no label {label} (has {sorted(seen)})")
            elif values - seen.get(label, set()):
                problems.append(f"{name}: {label} never {sorted(values - seen.get(label, set()))}")
    undocumented = sorted(
        f for f in families if f.startswith("tams_") and not any(f in d for d in _documented_metrics())
    )
    assert not problems, problems
    assert not undocumented, f"metrics /metrics shows that the documentation does not name: {undocumented}"


def test_duckdb_urls_in_the_docs_work_from_where_they_say() -> None:
    """A ``duckdb:///`` URL is an absolute path: the examples that mean the Quick start's store are relative
    (``duckdb://./tams-data/...``) or built from ``$PWD``, and every other absolute one is plainly a placeholder or
    a server path."""
    text = _text()
    absolute = set(re.findall(r"duckdb:///([^\s\"'`)]+)", text))
    allowed = ("path/to/", "absolute/", "abs/", "srv/", "data/", "ABSOLUTE/", "path", "<absolute", "tmp/x.", "...")
    assert all(a.startswith(allowed) for a in absolute), sorted(absolute)
    assert "duckdb:///tams-data" not in text  # /tams-data: the Quick start's store is ./tams-data
    # what a notebook's kernel (in notebooks/) is given must not be relative to the repository's root
    assert not re.search(r"TAMS_STORE=\"?duckdb://\./", text)


def test_the_readme_links_to_pages_that_exist() -> None:
    readme = (ROOT / "README.md").read_text()
    links = re.findall(r"\]\((?!https?:)([^)#\s]+)", readme)
    assert any(link.startswith("docs/") for link in links)
    assert [link for link in links if not (ROOT / link).exists()] == []


# -- the notebooks' store URL, from the repository's root --------------------------------------------------------
def test_the_notebooks_store_url_works_from_the_kernels_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The Analysts' command, pasted at the repository's root, gives the kernel (a process in ``notebooks/``) a
    store URL that opens the Quick start's store there; the relative URL the README used to give does not."""
    import tams_analytics as ta
    from tams_analytics.demo import build_demo
    from tams_analytics.exceptions import TamsError

    written = block("docs/analysts/index.md", "Notebooks and JupyterLab", 'TAMS_STORE="duckdb://$PWD/')
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "tams-data").mkdir()
    cat = ta.connect(f"duckdb://{tmp_path}/tams-data/tams.duckdb", create=True)
    build_demo(cat, 200, progress=False)
    cat.close()
    # `jupyter lab DIR` as its kernel sees it: a process whose working directory is DIR, with TAMS_STORE
    kernel = 'jupyter() { cd "$2" && env | grep "^TAMS_STORE=" && pwd; }\n'
    (command,) = written.commands()
    done = _bash(kernel + command, tmp_path, _shell_env(ROOT / ".venv"))
    assert done.returncode == 0, done.stderr
    url, cwd = (line.split("=", 1)[-1] for line in done.stdout.splitlines())
    assert url == f"duckdb://{tmp_path}/tams-data/tams.duckdb" and cwd == str(tmp_path / "notebooks")
    monkeypatch.chdir(cwd)
    opened = ta.connect(url)  # what notebook 01 does with TAMS_STORE
    assert opened.flows().count().to_pyarrow().as_py() > 0
    opened.close()
    with pytest.raises(TamsError, match=re.escape("notebooks/tams-data/tams.duckdb")):
        ta.connect("duckdb://./tams-data/tams.duckdb")  # the relative URL, from the kernel's folder


# -- running the blocks -----------------------------------------------------------------------------------------
def _shell_env(venv: Path) -> dict[str, str]:
    """A shell as Getting started leaves it: ``.venv`` activated, no ``TAMS_*`` settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TAMS_", "VIRTUAL_ENV", "PYTHONPATH"))}
    return env | {"VIRTUAL_ENV": str(venv), "PATH": f"{venv / 'bin'}:{env.get('PATH', '')}"}


def _bash(command: str, cwd: Path, env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-c", f"set -euo pipefail\n{command}"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


@dataclass
class ScenarioRun:
    """The ``run`` blocks of one scenario, running (or run) in one runner process."""

    scenario: str
    ids: list[str]
    results: Path
    output: Path
    process: subprocess.Popen[bytes] | None

    def wait(self, timeout: float = 1800) -> list[dict[str, str]]:
        """Wait for the runner; every block ran, none failed (those skipped are printed with the reason)."""
        if self.process is None:
            return []
        try:
            code = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.stop()
            raise
        log = self.output.read_text(errors="replace")
        assert code == 0, log[-5000:]
        ran: list[dict[str, str]] = json.loads(self.results.read_text())
        failed = [f"{r['id']}:\n{r['detail']}" for r in ran if r["status"] == "failed"]
        assert not failed, "\n\n".join(failed) + "\n\n" + log[-3000:]
        assert [r["id"] for r in ran] == self.ids
        for r in ran:
            if r["status"] == "skipped":
                print(f"docs: skipped {r['id']}: {r['detail']}")
        return ran

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)


def _start_scenario(scenario: str, cwd: Path, env: dict[str, str], state: Path) -> ScenarioRun:
    """Start running every ``run`` block of ``scenario`` (pages in order, blocks in page order) in one runner
    process, in ``cwd``; :meth:`ScenarioRun.wait` checks the outcome."""
    chosen = [b for b in _all_blocks() if b.marker and b.marker.kind == "run" and b.scenario == scenario]
    spec = [{"id": b.where, "page": b.page, "language": b.language, "text": b.text} for b in chosen]
    inputs, results = state / f"{scenario}.json", state / f"{scenario}.results.json"
    output = state / f"{scenario}.log"
    if not spec:
        return ScenarioRun(scenario, [], results, output, None)
    inputs.write_text(json.dumps(spec))
    with output.open("wb") as log:
        process = subprocess.Popen(
            [str(Path(env["VIRTUAL_ENV"]) / "bin" / "python"), str(RUNNER), str(inputs), str(results), str(state)],
            cwd=cwd,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    return ScenarioRun(scenario, [s["id"] for s in spec], results, output, process)


def _run_scenario(scenario: str, cwd: Path, env: dict[str, str], state: Path) -> list[dict[str, str]]:
    return _start_scenario(scenario, cwd, env, state).wait()


def _need_venv() -> Path:
    venv, _ = dependency_set()
    if not (venv / "bin" / "python").exists() or Path(sys.prefix).resolve() != venv.resolve():
        pytest.skip(f"the documentation's commands run in the repository's {venv.name} (bash scripts/dev.sh test)")
    return venv


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ScenarioRun]:
    """The ``scratch`` blocks, started in the background in an empty folder: the Quick start's fixture asks for
    it first, so they run while its server builds its demo store."""
    venv = _need_venv()
    folder = tmp_path_factory.mktemp("docs-scratch")
    (folder / "work").mkdir()
    (folder / "state").mkdir()
    run = _start_scenario("scratch", folder / "work", _shell_env(venv), folder / "state")
    try:
        yield run
    finally:
        run.stop()


def _mirror(tmp: Path) -> Path:
    """A directory that reads as the repository's root: its entries linked (``.venv`` included), no ``tams-data``."""
    root = tmp / "root"
    root.mkdir()
    for entry in ROOT.iterdir():
        if entry.name not in ("tams-data", ".git", ".pytest_cache", "clip.ts", "site"):
            (root / entry.name).symlink_to(entry)
    return root


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _stop(server: subprocess.Popen[bytes], timeout: float = 60) -> None:
    """Stop the server as a person does (Ctrl-C), then harder if it will not."""
    for sig, wait_s in ((signal.SIGINT, timeout), (signal.SIGKILL, 10.0)):
        if server.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            server.wait(timeout=wait_s)


@dataclass
class QuickStart:
    root: Path
    env: dict[str, str]
    server: subprocess.Popen[bytes]

    @property
    def log(self) -> str:
        return (self.root.parent / "serve.log").read_text()


def _quick_start_block() -> Block:
    return block("docs/index.md", "Quick start", "bash scripts/dev.sh serve")


@dataclass
class SiteBuild:
    """``bash scripts/dev.sh mkdocs build --strict`` as README.md and docs/development/docs.md write it, run at a
    copy of the root."""

    root: Path
    command: str
    process: subprocess.Popen[bytes]
    log: Path

    def wait(self, timeout: float = 900) -> str:
        try:
            code = self.process.wait(timeout=timeout)
        finally:
            _stop(self.process, 10)
        output = self.log.read_text(errors="replace")
        assert code == 0, output[-5000:]
        return output


@pytest.fixture(scope="module")
def site_build(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SiteBuild]:
    """The site's strict build, started in the background (the Quick start's fixture asks for it first, so it runs
    while the server builds its demo store)."""
    venv = _need_venv()
    if not venv_current(venv):  # dev.sh would install again, into the checkout's .venv through the copy's link
        pytest.skip(
            f"{venv.name} is not installed from the current pyproject.toml and constraints: bash scripts/dev.sh"
        )
    written = block("README.md", "Documentation", "bash scripts/dev.sh mkdocs build")
    (command,) = written.commands()
    root = _mirror(tmp_path_factory.mktemp("docs-site"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "PYTHONPATH"))}
    log = root.parent / "build.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            ["bash", "-c", command],
            cwd=root,
            env=env | {"NO_MKDOCS_2_WARNING": "1"},  # Material's notice about its successor: not about this site
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    build = SiteBuild(root, command, process, log)
    try:
        yield build
    finally:
        _stop(process, 10)
        shutil.rmtree(root / "site", ignore_errors=True)


#: what a page may load from elsewhere: nothing (links to other sites are fine, loads are not)
_LOADS = re.compile(
    r"""<(?:script|img|iframe|source|audio|video)\b[^>]*\bsrc=["'](?:https?:)?//"""
    r"""|<link\b(?=[^>]*\brel=["'](?:stylesheet|preconnect|preload|prefetch|dns-prefetch|icon|manifest)["'])"""
    r"""[^>]*\bhref=["'](?:https?:)?//"""
    r"""|@import\s+(?:url\()?["']?(?:https?:)?//""",
    re.I,
)


@pytest.fixture(scope="module")
def quick_start(
    tmp_path_factory: pytest.TempPathFactory, scratch: ScenarioRun, site_build: SiteBuild
) -> Iterator[QuickStart]:
    """The Quick start's server, started as the Home page writes it (``bash scripts/dev.sh serve``) at a copy of
    the root."""
    venv = _need_venv()
    if not venv_current(venv):
        # dev.sh would install the project again, from the copy: never let it rewrite the checkout's .venv
        pytest.skip(
            f"{venv.name} is not installed from the current pyproject.toml and constraints: bash scripts/dev.sh"
        )
    if not _port_free(PORT):
        pytest.skip(f"port {PORT}, the Quick start's, is in use on this machine")
    serve = _quick_start_block().commands()[0]
    root = _mirror(tmp_path_factory.mktemp("docs"))
    with (root.parent / "serve.log").open("w") as log:
        server = subprocess.Popen(
            ["bash", "-c", serve],
            cwd=root,
            env=_shell_env(root / ".venv"),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    started = QuickStart(root, _shell_env(root / ".venv"), server)
    try:
        deadline = time.monotonic() + 600
        while "TAMS server on" not in started.log:
            assert server.poll() is None, started.log
            assert time.monotonic() < deadline, "the Quick start's server did not start in 10 minutes"
            time.sleep(0.5)
        yield started
    finally:
        _stop(server)
        shutil.rmtree(root / "tams-data", ignore_errors=True)  # 0.8 GB of demo media: not kept with pytest's temps


@pytest.mark.slow
@pytest.mark.stack_independent  # as written (no TAMS_DEPS), the Quick start runs the current set
def test_the_quick_start_runs_as_written(quick_start: QuickStart, tmp_path: Path) -> None:
    written = _quick_start_block().commands()
    assert written == ["bash scripts/dev.sh serve", "bash scripts/dev.sh test"]
    for page in ("README.md", "docs/getting-started.md"):  # the same two commands wherever they are given
        assert block(
            page, "Quick start" if page == "README.md" else "The Quick start, explained", "bash scripts/dev.sh serve"
        ).commands() == (written)
    # the test command is the one CI runs, and this test is part of it
    assert any(line.startswith(written[1]) for line in (ROOT / ".ci" / "run").read_text().splitlines())
    root, env = quick_start.root, quick_start.env
    banner = next(line for line in quick_start.log.splitlines() if "TAMS server on" in line)
    assert f"http://127.0.0.1:{PORT}" in banner
    assert f"store duckdb://{root / 'tams-data' / 'tams.duckdb'})" in banner  # three slashes, the absolute path
    # while the server runs: the blocks that read it, then what they left and what /metrics shows
    _run_scenario("quick-start", root, env, tmp_path)
    if shutil.which("ffmpeg") is not None:
        assert (root / "clip.ts").stat().st_size > 100_000
    with urllib.request.urlopen(f"http://127.0.0.1:{PORT}/metrics", timeout=30) as answer:
        _check_scraped_metrics(answer.read().decode())
    (root / "clip.ts").unlink(missing_ok=True)
    # the server stopped as a person stops it (Ctrl-C) leaves its DuckDB file free: the blocks that open it
    _stop(quick_start.server)
    assert quick_start.server.returncode is not None and "Traceback" not in quick_start.log
    assert not (root / "tams-data" / "tams.duckdb.server.json").exists()
    _run_scenario("quick-start-stopped", root, env, tmp_path)
    assert (root / "clip.ts").stat().st_size > 100_000


@pytest.mark.slow
def test_the_scratch_blocks_run(scratch: ScenarioRun) -> None:
    assert scratch.wait(), "no block runs in the scratch scenario"


@pytest.mark.slow
def test_the_site_builds_strict_as_written(site_build: SiteBuild) -> None:
    """The site builds with warnings as errors, as README.md and docs/development/docs.md write the command, and
    its pages load nothing from elsewhere (no CDN, no web fonts: they work on an air-gapped network)."""
    same = block("docs/development/docs.md", "Writing these pages", "bash scripts/dev.sh mkdocs build")
    assert site_build.command == "bash scripts/dev.sh mkdocs build --strict" and same.commands() == [site_build.command]
    output = site_build.wait()
    assert "WARNING" not in output, output[-5000:]
    site = site_build.root / "site"
    built = sorted(site.rglob("*.html"))
    assert (site / "index.html").exists() and len(built) > 30
    loads = {
        p.relative_to(site).as_posix(): m.group(0)
        for p in [*built, *site.rglob("*.css")]
        if (m := _LOADS.search(p.read_text(errors="replace")))
    }
    assert not loads, f"pages that load something from elsewhere: {loads}"
    # the API reference is there, rendered from the docstrings
    reference = (site / "reference" / "api" / "time" / "index.html").read_text()
    assert "tams_analytics.timerange.TimeRange" in reference and "from_str" in reference
