"""An ipywidgets explorer for notebooks: pick a source and a flow, choose a timerange (an ISO 8601 interval in
UTC such as ``2023-11-14T22:00Z/PT1H``, or a TAMS timerange), and see the flow's coverage timeline and its
segments update; for a video flow, when the explorer is given the flows' media
(``explore(cat, media=ta.media.attach(cat, "local:DIR"))``: :func:`tams_analytics.media.attach`), the frame at
the selected time too.

A pane shows only when it has something to show: the timeline once drawn, the frame pane ("Frame at" and the
frame) only with media and a video flow, and a frame that cannot be read is a line saying why in its place. An
``ipywidgets.Image`` without a value is a broken image in the browser, so an empty one is left out of the box
(``widget.children``) rather than shown.

ipywidgets and matplotlib are imported only when an explorer is made. The explorer keeps what it shows as
plain attributes (``segments``, ``runs``, ``total``, ``png``) so that code and tests can read them
without a browser.

>>> import tams_analytics as ta
>>> ex = CoverageExplorer(ta.connect("duckdb://"))
>>> ex.status.value
'no sources in this store'
"""

from __future__ import annotations

import datetime as dt
import html
import logging
from typing import TYPE_CHECKING, Any, Final

import pyarrow as pa

from tams_analytics.exceptions import TamsError
from tams_analytics.extras import install_hint
from tams_analytics.timerange import NS_PER_SECOND, TimeRange

if TYPE_CHECKING:
    from tams_analytics.catalog import Catalog
    from tams_analytics.media.access import FlowMedia

__all__ = ["CoverageExplorer", "explore"]

logger = logging.getLogger(__name__)

_TABLE_COLUMNS: Final = ("start_utc", "timerange", "object_id", "duration_s", "created")
#: the format of the flows with frames to show
_VIDEO: Final = "urn:x-nmos:format:video"


def _widgets() -> Any:
    try:
        import ipywidgets
    except ImportError as exc:  # pragma: no cover - part of the notebooks extra
        raise TamsError(f"the explorer needs ipywidgets: {install_hint('notebooks')}") from exc
    return ipywidgets


def _html_table(rows: pa.Table) -> str:
    """A small HTML table of segment rows (at most the explorer's limit)."""
    head = "".join(f"<th>{html.escape(c)}</th>" for c in rows.column_names)
    body = []
    for row in rows.to_pylist():
        cells = "".join(f"<td>{html.escape(_cell(v))}</td>" for v in row.values())
        body.append(f"<tr>{cells}</tr>")
    return f"<table class='tams-segments'><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dt.datetime):  # UTC, to the millisecond a person reads
        return value.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return str(value)


def _source_options(catalog: Catalog) -> list[tuple[str, str]]:
    """``(shown, source_id)`` per source: its label, else its first flow's label (sources made implicitly by
    a flow PUT have none), with its format."""
    src = catalog.sources()
    flows = catalog.flows()
    named = flows.group_by(flows.source_id.name("sid")).aggregate(flow_label=flows.label.min())
    j = src.left_join(named, src.id == named.sid)
    rows = j.select("id", "label", "format", "flow_label").to_pyarrow().to_pylist()
    shown = [(r["label"] or r["flow_label"] or r["id"], r["format"].rsplit(":", 1)[-1], r["id"]) for r in rows]
    return [(f"{name} [{fmt}]", sid) for name, fmt, sid in sorted(shown)]


def _plural(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


class CoverageExplorer:
    """Source and flow pickers, a timerange box, a coverage timeline and a segments table.

    Parameters
    ----------
    catalog : Catalog
    limit : int
        Segments listed in the table (the first ones in the timerange).
    width : float
        Width of the timeline plot in inches.

    Attributes
    ----------
    source, flow : ipywidgets.Dropdown
    timerange : ipywidgets.Text
        An ISO 8601 interval in UTC (``2023-11-14T22:00Z/PT1H``, ``start/end``) or a TAMS timerange; empty means
        the whole flow.
    status : ipywidgets.HTML
        What is shown, or what is wrong with the timerange.
    plot : ipywidgets.Image
        The coverage timeline (PNG).
    table : ipywidgets.HTML
        The first ``limit`` segments overlapping the timerange.
    at : ipywidgets.Text
        The time of the frame shown (default: the timerange's start, else the flow's).
    frame : ipywidgets.Image
        That frame (PNG, at most ``frame_width`` pixels wide), when the explorer was given ``media``
        (:class:`~tams_analytics.media.FlowMedia`) and the flow is video; ``frame_png`` holds its bytes and
        ``frame_time`` the timestamp of the frame shown.
    frame_note : ipywidgets.HTML
        In the frame's place, why there is no frame (a frame that cannot be read).
    frame_pane : ipywidgets.VBox
        ``at`` with ``frame`` or ``frame_note``: in ``widget`` only with media and a video flow.
    widget : ipywidgets.VBox
        What there is to show of the above; displaying the explorer displays this.
    segments : pyarrow.Table
        The rows in the table; ``total`` counts every segment in the timerange; ``runs`` are the
        contiguous runs drawn; ``png`` the plot's bytes.
    """

    def __init__(
        self,
        catalog: Catalog,
        *,
        media: FlowMedia | None = None,
        limit: int = 50,
        width: float = 10.0,
        frame_width: int = 480,
    ) -> None:
        w = _widgets()
        self.catalog = catalog
        self.media = media
        self.limit = limit
        self.width = width
        self.frame_width = frame_width
        self.frame_png = b""
        self.frame_time: str | None = None
        self.segments: pa.Table = pa.table({c: pa.array([], pa.string()) for c in _TABLE_COLUMNS})
        self.runs: pa.Table = pa.table({"start_ns": pa.array([], pa.int64()), "end_ns": pa.array([], pa.int64())})
        self.total = 0
        self.png = b""
        self.source = w.Dropdown(description="Source", layout=w.Layout(width="45%"))
        self.flow = w.Dropdown(description="Flow", layout=w.Layout(width="45%"))
        self.timerange = w.Text(
            description="Timerange",
            placeholder="empty: the whole flow; or UTC, e.g. 2023-11-14T22:00Z/PT10M, or TAMS, e.g. "
            "[1700000000:0_1700000600:0)",
            continuous_update=False,
            layout=w.Layout(width="90%"),
        )
        self.at = w.Text(
            description="Frame at",
            placeholder="a timestamp, e.g. 1700000000:0 (default: the timerange's start)",
            continuous_update=False,
            layout=w.Layout(width="90%"),
        )
        self.status = w.HTML()
        self.plot = w.Image(format="png")
        self.frame = w.Image(format="png")
        self.frame_note = w.HTML()
        self.frame_pane = w.VBox([self.at])
        self.table = w.HTML()
        self._pickers = w.HBox([self.source, self.flow])
        self.widget = w.VBox()
        self._layout(frame=False)
        options = _source_options(catalog)
        self.source.observe(self._on_source, names="value")
        self.flow.observe(self._on_change, names="value")
        self.timerange.observe(self._on_change, names="value")
        self.at.observe(self._on_change, names="value")
        if not options:
            self.status.value = "no sources in this store"
            return
        # ipywidgets 8 selects nothing when options change: choose the first, which fills the flows
        self.source.options = options
        self.source.value = options[0][1]

    # -- callbacks ---------------------------------------------------------------------------------------------
    def _on_source(self, change: dict[str, Any] | None = None) -> None:
        source_id = self.source.value
        flows = self.catalog.flows(source_id=source_id).select("id", "label", "format").order_by(["label", "id"])
        rows = flows.to_pyarrow().to_pylist()
        self.flow.options = [(r["label"] or r["id"], r["id"]) for r in rows]
        if rows:
            self.flow.value = rows[0]["id"]
        else:
            self.segments, self.total, self.png = self.segments.slice(0, 0), 0, b""
            self.plot.value, self.table.value = b"", ""
            self.status.value = f"source {html.escape(str(source_id))} has no flows"
            self._layout(frame=False)

    def _on_change(self, change: dict[str, Any] | None = None) -> None:
        self.refresh()

    def _layout(self, *, frame: bool) -> None:
        """The panes with something to show, in their order (an empty image is never in the box)."""
        panes = [self._pickers, self.timerange, self.status]
        if self.plot.value:
            panes.append(self.plot)
        if frame:
            self.frame_pane.children = [self.at, self.frame if self.frame_png else self.frame_note]
            panes.append(self.frame_pane)
        panes.append(self.table)
        self.widget.children = panes

    def _window(self) -> TimeRange | None:
        text = self.timerange.value.strip()
        return TimeRange.coerce(text) if text else None

    def refresh(self) -> None:
        """Redraw the plot and the table for the current flow and timerange."""
        flow_id = self.flow.value
        if flow_id is None:
            return
        try:
            window = self._window()
        except TamsError as exc:
            self.status.value = f"<span style='color:#d62728'>{html.escape(str(exc))}</span>"
            return
        from tams_analytics.analytics import coverage
        from tams_analytics.analytics.utc import utc
        from tams_analytics.plots import plot_coverage, to_png

        segs = self.catalog.segments(flow_id=flow_id, timerange=window)
        self.total = int(segs.count().to_pyarrow().as_py())
        shown = segs.order_by("start_ns").limit(self.limit)
        rows = shown.select(
            utc(shown.start_ns).name("start_utc"),
            "timerange",
            "object_id",
            ((shown.end_ns - shown.start_ns) / NS_PER_SECOND).name("duration_s"),
            "created",
        ).to_pyarrow()
        self.segments = rows
        self.runs = coverage.runs(self.catalog, flow_id, within=window).to_pyarrow()
        self.png = to_png(plot_coverage(self.catalog, flow_id, within=window, title=self.flow.label))
        self.plot.value = self.png
        self.table.value = _html_table(rows)
        where = "in total" if window is None else "in " + html.escape(_both(window))
        gaps = max(0, self.runs.num_rows - 1)
        self.status.value = (
            f"{_plural(self.total, 'segment')} {where}: {_plural(self.runs.num_rows, 'contiguous run')} with "
            f"{_plural(gaps, 'gap')} between them; the table shows the first {rows.num_rows}"
        ) + self._show_frame(flow_id, window)

    def _show_frame(self, flow_id: str, window: TimeRange | None) -> str:
        """Show the frame at the chosen time (the frame pane only with media and a video flow); returns a note
        for the status line (empty when there is no frame to show)."""
        self.frame_png, self.frame_time, self.frame.value, self.frame_note.value = b"", None, b"", ""
        pictures = self.media is not None and (self.catalog.get_flow(flow_id) or {}).get("format") == _VIDEO
        try:
            note = self._read_frame(flow_id, window) if pictures else ""
        except Exception as exc:  # whatever stops the frame (no segment there, damaged media), said in its place
            logger.debug("no frame of flow %s", flow_id, exc_info=True)
            why = str(exc) if isinstance(exc, TamsError) else f"{type(exc).__name__}: {exc}"
            self.frame_note.value = f"<span style='color:#d62728'>no frame: {html.escape(why)}</span>"
            note = f"<br><span style='color:#d62728'>frame: {html.escape(why)}</span>"
        self._layout(frame=pictures)
        return note

    def _read_frame(self, flow_id: str, window: TimeRange | None) -> str:
        """Read the frame at the chosen time into ``frame``; returns the status line's note."""
        assert self.media is not None
        text = self.at.value.strip()
        when: Any
        if text:
            when = text
        elif window is not None and window.start is not None:
            when = window.start
        else:
            when = self.catalog.flow_timerange(flow_id).start
        if when is None:
            self.frame_note.value = "no frame: the flow has no segments"
            return ""
        image = self.media.frame_at(flow_id, when)
        import io

        self.frame_time = image.info.get("tams_timestamp")
        if image.width > self.frame_width:
            image = image.resize((self.frame_width, round(image.height * self.frame_width / image.width)))
        buf = io.BytesIO()
        image.save(buf, format="PNG")
        self.frame_png = self.frame.value = buf.getvalue()
        return f"<br>the frame at {html.escape(str(self.frame_time))}"

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)


def _both(window: TimeRange) -> str:
    """A window in TAMS form and in UTC clock time."""
    return str(window) if window.is_empty else f"{window} ({window.to_iso8601()} UTC)"


def explore(catalog: Catalog, **options: Any) -> CoverageExplorer:
    """A :class:`CoverageExplorer` on ``catalog``; the last expression of a cell displays it."""
    return CoverageExplorer(catalog, **options)
