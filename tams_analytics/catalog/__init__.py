"""The catalog: TAMS semantics over any engine.

:class:`Catalog` is a façade. Reads return lazy ibis tables (``sources()``, ``flows()``, ``segments()``,
``objects()``) for analysts and Arrow rows (``rows()``) or dicts (``records()``) for the server. Writes
keep referential integrity (implicit sources, no overlapping segments, covered-only deletion,
collections, tags, object references); each rule lives in a module of its own that takes the catalog
as an argument:

* :mod:`~tams_analytics.catalog.flows`: sources and flows, properties, tags, collections;
* :mod:`~tams_analytics.catalog.registration`: segment registration and its overlap check;
* :mod:`~tams_analytics.catalog.object_rules` and :mod:`~tams_analytics.catalog.objects`: objects;
* :mod:`~tams_analytics.catalog.references`: which objects are still referenced;
* :mod:`~tams_analytics.catalog.deletion`: covered-only deletion of segments, deletion of flows;
* :mod:`~tams_analytics.catalog.flow_guard`: the one guard every write to a flow passes.
"""

from __future__ import annotations

from tams_analytics.catalog.connecting import cached, connect
from tams_analytics.catalog.facade import Catalog
from tams_analytics.catalog.flow_guard import writable_flow
from tams_analytics.catalog.pages import segment_page_where
from tams_analytics.catalog.registration import Registration
from tams_analytics.catalog.results import AddResult, Changes, DeleteResult, Failure
from tams_analytics.clock import utcnow
from tams_analytics.codec.segments import segments_table
from tams_analytics.filters import flows_with_content

__all__ = [
    "AddResult",
    "Catalog",
    "Changes",
    "DeleteResult",
    "Failure",
    "Registration",
    "cached",
    "connect",
    "flows_with_content",
    "segment_page_where",
    "segments_table",
    "utcnow",
    "writable_flow",
]
