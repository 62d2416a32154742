"""What catalog writes report: the changes a write made (for events), and registration/deletion outcomes."""

from __future__ import annotations

from dataclasses import dataclass, field

from tams_analytics.codec.segments import Failure
from tams_analytics.timerange import TimeRange

__all__ = ["AddResult", "Changes", "DeleteResult", "Failure"]


@dataclass
class Changes:
    """What a write did, for event delivery: ids per event type."""

    sources_created: list[str] = field(default_factory=list)
    sources_updated: list[str] = field(default_factory=list)
    sources_deleted: list[str] = field(default_factory=list)
    flows_created: list[str] = field(default_factory=list)
    flows_updated: list[str] = field(default_factory=list)
    flows_deleted: list[str] = field(default_factory=list)

    def merge(self, other: Changes) -> Changes:
        for name in self.__dataclass_fields__:
            getattr(self, name).extend(getattr(other, name))
        return self


@dataclass
class AddResult:
    """Outcome of a segment registration (:meth:`~tams_analytics.catalog.Catalog.add_segments`)."""

    accepted: list[int] = field(default_factory=list)
    failed: list[Failure] = field(default_factory=list)
    changes: Changes = field(default_factory=Changes)

    @property
    def all_accepted(self) -> bool:
        return not self.failed


@dataclass(frozen=True)
class DeleteResult:
    """Outcome of a covered-only deletion (:meth:`~tams_analytics.catalog.Catalog.delete_segments`)."""

    deleted: int
    #: the hull of what was deleted (``()`` when nothing was)
    timerange: TimeRange
    #: False when ``limit`` stopped the deletion before every covered segment was gone
    complete: bool = True
