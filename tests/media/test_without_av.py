"""The pure library stays importable and usable without PyAV (media is an extra): only encoding and
decoding need it, and they say how to get it."""

from __future__ import annotations

import subprocess
import sys
import textwrap

PROBE = textwrap.dedent(
    """
    import sys

    class Block:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("av", "PIL"):
                raise ImportError(f"{name} is blocked for this test")

    sys.meta_path.insert(0, Block())
    import tams_analytics as ta
    from tams_analytics.demo import build_demo
    from tams_analytics.media.pyav import require_av
    from tams_analytics.media import hls, mpegts, source, tai  # noqa: F401
    from tams_analytics.media.download import download  # noqa: F401

    cat = ta.connect("duckdb://")
    build_demo(cat, 200, programmes=1, progress=False)
    assert cat.count("segments") == 200
    try:
        require_av()
    except ta.TamsError as exc:
        assert 'pip install -e ".[media]" -c constraints.txt' in str(exc)
    else:
        raise AssertionError("PyAV was importable")
    try:
        build_demo(ta.connect("duckdb://"), 50, programmes=1, progress=False, put_media=lambda *a: None)
    except ta.TamsError as exc:
        print("refused:", exc)
    assert "av" not in sys.modules and "PIL" not in sys.modules
    print("ok")
    """
)


def test_the_library_imports_and_builds_a_demo_without_pyav() -> None:
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "ok"
    assert "refused: media encoding and decoding need PyAV" in done.stdout
