"""``raise_open_files`` in a process started with the usual soft limit on open files (1,024) under a higher hard
one: it raises the soft limit to the hard one, says what it was, and never lowers it."""

from __future__ import annotations

import json
import resource
import subprocess
import sys

import pytest

PROBE = """
import json, resource
resource.setrlimit(resource.RLIMIT_NOFILE, (1_024, 2_048))
from tams_analytics.open_files import raise_open_files
first = raise_open_files()
second = raise_open_files()
print(json.dumps([first.__dict__, second.__dict__, resource.getrlimit(resource.RLIMIT_NOFILE)]))
"""


def test_the_soft_limit_is_raised_to_the_hard_one_and_said() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 2_048:
        pytest.skip(f"the hard limit on open files here is {hard}: the test starts a process under 2,048")
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True, timeout=60).stdout
    first, second, now = json.loads(out)
    assert first == {"before": 1_024, "limit": 2_048, "hard": 2_048, "error": None}
    assert second == {"before": 2_048, "limit": 2_048, "hard": 2_048, "error": None}  # nothing left to raise
    assert now == [2_048, 2_048]
