"""Moved to :mod:`tams_analytics.wire` (the ``tams+http`` engine reads documents with it, and engines never import
the catalog); kept so that ``tams_analytics.catalog.wire`` still imports."""

from tams_analytics.wire import *  # noqa: F403
from tams_analytics.wire import __all__  # noqa: F401
