"""Downloads and frames from a TAMS server (its get_urls) and from a store with missing or damaged objects:
problems are named, the output is only written whole; the explorer shows the frame at the chosen time."""

from __future__ import annotations

import io
from pathlib import Path

import av
import httpx
import pytest

import tams_analytics as ta
from server.services import services_of
from tams_analytics.catalog import connect
from tams_analytics.cli.__main__ import main
from tams_analytics.exceptions import TamsError
from tams_analytics.media.download import DownloadError, download
from tams_analytics.media.frames import frame_at
from tams_analytics.media.pattern import Stamp, read_stamp
from tams_analytics.media.source import ServerMedia, store_media
from tests.media.conftest import NS, RATE, ingest, segment_media, video_flow


@pytest.fixture
def flow_on_server(live_api: httpx.Client) -> tuple[httpx.Client, str, list[bytes], list[str]]:
    flow = video_flow()
    assert live_api.put(f"/flows/{flow['id']}", json=flow).status_code == 201
    media = [segment_media(s * NS) for s in (50, 51, 53)]
    ids = ingest(live_api, flow["id"], [{"timerange": f"[{s}:0_{s + 1}:0)"} for s in (50, 51, 53)], media)
    return live_api, flow["id"], media, ids


def test_download_from_a_server_fetches_the_range_in_order(
    flow_on_server: tuple[httpx.Client, str, list[bytes], list[str]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    api, fid, media, _ = flow_on_server
    out = tmp_path / "range.ts"
    base = str(api.base_url).rstrip("/")
    assert (
        main(["download", "--server", base, "--flow", fid, "--timerange", "[50:500000000_54:0)", "--out", str(out)])
        == 0
    )
    assert out.read_bytes() == b"".join(media)
    assert "wrote 3 segments" in capsys.readouterr().out
    with av.open(io.BytesIO(out.read_bytes())) as c:
        assert sum(1 for _ in c.decode(c.streams.video[0])) == 3 * RATE
    image = frame_at(ServerMedia(base), fid, "53:100000000")
    assert read_stamp(image) == Stamp(53 * NS + 80_000_000)  # the frame shown at 53.1 s began at 53.08 s


def test_missing_and_damaged_objects_are_named_and_nothing_is_written(
    flow_on_server: tuple[httpx.Client, str, list[bytes], list[str]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    api, fid, _, ids = flow_on_server
    catalog = services_of(api.app).catalog
    (store,) = services_of(api.app).stores
    key = {oid: inst[0]["storage_key"] for oid, inst in catalog.object_instances(ids).items()}
    store.delete([key[ids[0]]])
    store.put_bytes(key[ids[2]], b"\x47" * 188, "video/mp2t")  # not what was recorded (sizes are known for ingests)
    catalog.set_object_size(ids[2], 9999)
    out = tmp_path / "broken.ts"
    with pytest.raises(DownloadError) as err:
        download(store_media(catalog, store), fid, "_", out)
    assert {p.split(" ")[1] for p in err.value.problems} == {ids[0], ids[2]}
    assert "188 bytes, the store records 9999" in str(err.value)
    assert not out.exists() and not (tmp_path / "broken.ts.part").exists()
    # the command: exit 1 naming each object
    base = str(api.base_url).rstrip("/")
    assert main(["download", "--server", base, "--flow", fid, "--out", str(out)]) == 1
    err_text = capsys.readouterr().err
    assert ids[0] in err_text and "answered 404" in err_text and not out.exists()


def test_download_usage_errors_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = f"duckdb:///{tmp_path / 'x.duckdb'}"
    out = str(tmp_path / "o.ts")
    assert main(["download", "--store", store, "--storage", f"local:{tmp_path}", "--flow", "f", "--out", out]) == 2
    assert "no DuckDB store" in capsys.readouterr().err, "a read path makes no store"
    connect(store, create=True).close()
    assert main(["download", "--store", store, "--flow", "f", "--out", out]) == 2
    assert "--store needs --storage" in capsys.readouterr().err
    args = ["download", "--store", store, "--storage", f"local:{tmp_path}", "--flow", "f", "--out", out]
    assert main([*args, "--timerange", "[1:0_x"]) == 2
    assert main(args) == 2
    assert "nothing to read from storage" in capsys.readouterr().err


def test_frame_at_without_a_segment_there_says_so(
    flow_on_server: tuple[httpx.Client, str, list[bytes], list[str]],
) -> None:
    api, fid, _, _ = flow_on_server
    with pytest.raises(TamsError, match="has no segment at 52:0"):
        frame_at(ServerMedia(str(api.base_url).rstrip("/")), fid, "52:0")


def test_the_explorer_shows_the_frame_at_the_chosen_time(
    flow_on_server: tuple[httpx.Client, str, list[bytes], list[str]],
) -> None:
    from PIL import Image

    from tams_analytics.widgets import CoverageExplorer

    api, fid, _, _ = flow_on_server
    catalog = services_of(api.app).catalog
    ex = CoverageExplorer(catalog)
    ex.flow.value = fid
    assert ex.frame_png == b""  # the explorer was given no media
    (store,) = services_of(api.app).stores
    ex = CoverageExplorer(catalog, media=ta.media.attach(catalog, store))
    ex.flow.value = fid
    ex.timerange.value = "[51:0_54:0)"
    assert ex.frame_time == "51:0" and read_stamp(Image.open(io.BytesIO(ex.frame_png))) == Stamp(51 * NS)
    ex.at.value = "53:480000000"
    assert ex.frame_time == "53:480000000" and "the frame at 53:480000000" in ex.status.value
    assert read_stamp(Image.open(io.BytesIO(ex.frame.value))) == Stamp(53 * NS + 480_000_000)
