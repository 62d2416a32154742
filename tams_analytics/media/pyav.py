"""PyAV, which encoding and decoding need (the ``media`` extra), or an error saying how to install it."""

from __future__ import annotations

from types import ModuleType

from tams_analytics.exceptions import TamsError
from tams_analytics.extras import install_hint


def require_av() -> ModuleType:
    """PyAV (and Pillow, which draws and returns pictures), or a TamsError saying how to install them."""
    try:
        import av
        import PIL  # noqa: F401
    except ImportError as exc:  # tested without them; both are in the media extra (and dev, server)
        raise TamsError(f"media encoding and decoding need PyAV ({exc}): {install_hint('media')}") from exc
    return av
