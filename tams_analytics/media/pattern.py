"""The demo's test pattern: colour bars with the frame's timestamp burnt in, twice.

* as text, for people: the TAI timestamp (``sec:nanosec``) and its UTC time;
* as a block code, for programs: a grid of 8 x 9 black/white cells left of the text holding 8 bytes and a
  check byte, read back by :func:`read_stamp` (a test can check a decoded frame exactly).

The 8 bytes are a :class:`Stamp`: the frame's timestamp on the flow timeline, or, for a segment encoded
once and re-timed (:mod:`~tams_analytics.demo.media`), the frame's offset from its segment's start
(``relative``), which stays true wherever the segment is placed. Frames are built directly as YUV 4:2:0
planes (what the encoder takes) so no colour conversion runs per frame.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Final, cast

import numpy as np

COLS: Final = 8
ROWS: Final = 9
_RELATIVE: Final = 1 << 63
_CHECK_SALT: Final = 0xA5
#: video-range luma of the code's cells
_DARK, _LIGHT = 16, 235

#: 75 % colour bars (R, G, B): white, yellow, cyan, green, magenta, red, blue
_BARS: Final = ((191, 191, 191), (191, 191, 0), (0, 191, 191), (0, 191, 0), (191, 0, 191), (191, 0, 0), (0, 0, 191))


@dataclass(frozen=True)
class Stamp:
    """What a frame says about itself: its timestamp (ns, flow timeline), or its offset into its segment."""

    ns: int
    relative: bool = False

    def to_bytes(self) -> bytes:
        value = (self.ns | _RELATIVE) if self.relative else self.ns
        body = value.to_bytes(8, "big")
        check = _CHECK_SALT
        for b in body:
            check ^= b
        return body + bytes([check])

    @classmethod
    def from_bytes(cls, data: bytes) -> Stamp | None:
        check = _CHECK_SALT
        for b in data[:8]:
            check ^= b
        if len(data) != 9 or check != data[8]:
            return None
        value = int.from_bytes(data[:8], "big")
        return cls(value & ~_RELATIVE, relative=bool(value & _RELATIVE))


@dataclass(frozen=True)
class Layout:
    """Where the code and the text go in a frame of ``width`` x ``height``."""

    width: int
    height: int
    cell: int

    @property
    def has_code(self) -> bool:
        return self.cell >= 2

    @property
    def code_box(self) -> tuple[int, int, int, int]:
        """(x0, y0, x1, y1) of the code grid."""
        x0 = y0 = self.cell
        return x0, y0, x0 + COLS * self.cell, y0 + ROWS * self.cell

    @property
    def text_box(self) -> tuple[int, int, int, int]:
        """(x0, y0, x1, y1) of the text (an even-aligned box right of the code)."""
        x0 = _even(self.code_box[2] + self.cell) if self.has_code else 0
        y1 = _even(min(self.height, self.code_box[3] if self.has_code else self.height // 4))
        return x0, 0, self.width, max(2, y1)


def _even(v: int) -> int:
    return v - v % 2


@functools.lru_cache(maxsize=16)
def layout(width: int, height: int) -> Layout:
    """The layout of a frame: code cells of about a twelfth of the short side (2-24 px, even)."""
    cell = _even(max(0, min(min(width, height) // 12, 24)))
    if cell * (ROWS + 2) > height or cell * (COLS + 2) > width:
        cell = 0
    return Layout(width, height, cell)


@functools.lru_cache(maxsize=8)
def _background(width: int, height: int) -> np.ndarray:
    """Colour bars as yuv420p planes stacked as PyAV wants them (``(h * 3 / 2, w)``, BT.601 video range)."""
    rgb = np.zeros((height, width, 3), np.float64)
    for i, c in enumerate(_BARS):
        rgb[:, i * width // len(_BARS) : (i + 1) * width // len(_BARS)] = c
    rgb[height * 3 // 4 :] = (16, 16, 16)  # a dark strip for the moving marker
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    y = 16 + (65.481 * r + 128.553 * g + 24.966 * b) / 255
    u = 128 + (-37.797 * r - 74.203 * g + 112.0 * b) / 255
    v = 128 + (112.0 * r - 93.786 * g - 18.214 * b) / 255
    half = (slice(0, None, 2), slice(0, None, 2))
    flat = np.concatenate([y.ravel(), u[half].ravel(), v[half].ravel()])
    return cast(np.ndarray, np.clip(np.rint(flat), 0, 255).astype(np.uint8).reshape(height * 3 // 2, width))


@functools.lru_cache(maxsize=8)
def _font(size: int) -> Any:
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # pragma: no cover - a Pillow without FreeType
        return ImageFont.load_default()


def frame_planes(width: int, height: int, stamp: Stamp, lines: list[str], frame_no: int) -> np.ndarray:
    """One yuv420p frame (``(h * 3 / 2, w)`` uint8) of the pattern with ``stamp`` and ``lines`` burnt in.

    ``frame_no`` moves a marker along the bottom strip so that playback visibly moves.
    """
    from PIL import Image, ImageDraw

    if width % 2 or height % 2:
        raise ValueError(f"frame sizes must be even, not {width}x{height}")
    out = _background(width, height).copy()
    flat = out.reshape(-1)
    n = width * height
    y = flat[:n].reshape(height, width)
    u = flat[n : n + n // 4].reshape(height // 2, width // 2)
    v = flat[n + n // 4 :].reshape(height // 2, width // 2)
    lay = layout(width, height)
    tx0, ty0, tx1, ty1 = lay.text_box
    if tx1 - tx0 >= 8 and lines:
        size = max(8, min((ty1 - ty0) // (len(lines) + 1), lay.cell * 2))
        font = _font(size)
        tx1 = min(tx1, tx0 + _even(max(int(font.getlength(line)) for line in lines) + size))
        box = Image.new("L", (tx1 - tx0, ty1 - ty0), _DARK)
        draw = ImageDraw.Draw(box)
        for i, line in enumerate(lines):
            draw.text((size // 2, size // 3 + i * size * 1.15), line, fill=_LIGHT, font=font)
        y[ty0:ty1, tx0:tx1] = np.asarray(box)
        u[ty0 // 2 : ty1 // 2, tx0 // 2 : tx1 // 2] = 128
        v[ty0 // 2 : ty1 // 2, tx0 // 2 : tx1 // 2] = 128
    if lay.has_code:
        c = lay.cell
        x0, y0, x1, y1 = lay.code_box
        bits = np.unpackbits(np.frombuffer(stamp.to_bytes(), np.uint8)).reshape(ROWS, COLS)
        cells = np.where(bits, _LIGHT, _DARK).astype(np.uint8)
        y[y0:y1, x0:x1] = np.kron(cells, np.ones((c, c), np.uint8))
        u[y0 // 2 : y1 // 2, x0 // 2 : x1 // 2] = 128
        v[y0 // 2 : y1 // 2, x0 // 2 : x1 // 2] = 128
    side = _even(max(2, height // 16))
    travel = max(1, width - side)
    mx = _even((frame_no * max(2, width // 50)) % travel)
    my = _even(height * 3 // 4 + (height // 4 - side) // 2)
    y[my : my + side, mx : mx + side] = _LIGHT
    return out


def read_stamp(image: Any) -> Stamp | None:
    """The :class:`Stamp` burnt into a decoded frame (a PIL image or an array), or None when there is none.

    Reads the luma of each code cell's middle and checks the check byte, so a wrong read returns None
    rather than a wrong timestamp.
    """
    luma = _luma(image)
    height, width = luma.shape
    lay = layout(width, height)
    if not lay.has_code:
        return None
    c = lay.cell
    x0, y0, _, _ = lay.code_box
    q = max(1, c // 4)
    bits = np.zeros((ROWS, COLS), np.uint8)
    for r in range(ROWS):
        for k in range(COLS):
            cy, cx = y0 + r * c, x0 + k * c
            bits[r, k] = luma[cy + q : cy + c - q, cx + q : cx + c - q].mean() > 128
    return Stamp.from_bytes(np.packbits(bits).tobytes())


def _luma(image: Any) -> np.ndarray:
    if hasattr(image, "convert"):  # PIL
        return np.asarray(image.convert("L"), np.float64)
    arr = np.asarray(image, np.float64)
    if arr.ndim == 3:  # RGB
        return arr[..., 0] * 0.299 + arr[..., 1] * 0.587 + arr[..., 2] * 0.114
    return arr
