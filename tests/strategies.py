"""Hypothesis strategies for TAMS timestamps and timeranges.

Values are biased towards the places bugs live: zero and its neighbours, the ±1 s and nanosecond-carry
boundaries, the ends of the int64 range, equal or adjacent start and end, and markers beside omitted
timestamps.
"""

from __future__ import annotations

from hypothesis import strategies as st

from tams_analytics.timerange import MAX_NS, NS_PER_SECOND, TimeRange, Timestamp

__all__ = ["timerange_strings", "timeranges", "timestamp_strings", "timestamps"]

_EDGES = sorted(
    {
        0,
        1,
        -1,
        NS_PER_SECOND - 1,
        NS_PER_SECOND,
        NS_PER_SECOND + 1,
        -(NS_PER_SECOND - 1),
        -NS_PER_SECOND,
        -(NS_PER_SECOND + 1),
        MAX_NS,
        MAX_NS - 1,
        -MAX_NS,
        -MAX_NS + 1,
        (MAX_NS // NS_PER_SECOND) * NS_PER_SECOND,
        -(MAX_NS // NS_PER_SECOND) * NS_PER_SECOND,
    }
)

#: Gaps between a start and an end: equal, adjacent, a frame, a few seconds, anything.
_DELTAS = st.one_of(
    st.sampled_from([0, 1, 2, NS_PER_SECOND - 1, NS_PER_SECOND, 40_000_000]),
    st.integers(-3, 3),
    st.integers(-(10**12), 10**12),
)


def timestamps(*, min_ns: int = -MAX_NS, max_ns: int = MAX_NS) -> st.SearchStrategy[int]:
    """Timestamp values in nanoseconds over the whole valid range, biased to small values and edges."""
    edges = [e for e in _EDGES if min_ns <= e <= max_ns]
    choices = [
        st.integers(min_ns, max_ns),
        st.integers(max(min_ns, -5 * NS_PER_SECOND), min(max_ns, 5 * NS_PER_SECOND)),
        st.integers(max(min_ns, -3), min(max_ns, 3)),
    ]
    if edges:
        choices.insert(0, st.sampled_from(edges))
    return st.one_of(*choices)


def timestamp_strings() -> st.SearchStrategy[str]:
    """Valid timestamp strings, including the non-canonical ``-0:<ns>`` forms (``-0:0`` among them)."""
    return st.one_of(
        timestamps().map(lambda ns: str(Timestamp(ns))),
        st.integers(0, NS_PER_SECOND - 1).map(lambda ns: f"-0:{ns}"),
        st.just("-0:0"),
    )


def _clip(ns: int) -> int:
    return max(-MAX_NS, min(MAX_NS, ns))


@st.composite
def _bounded(draw: st.DrawFn) -> TimeRange:
    start = draw(timestamps())
    end = _clip(start + draw(_DELTAS)) if draw(st.booleans()) else draw(timestamps())
    return TimeRange(start, end, include_start=draw(st.booleans()), include_end=draw(st.booleans()))


def timeranges() -> st.SearchStrategy[TimeRange]:
    """TimeRange objects of every shape: empty, eternity, half-bounded, instants, any clusivity."""
    flags = st.booleans()
    return st.one_of(
        st.just(TimeRange.never()),
        st.just(TimeRange.eternity()),
        timestamps().map(TimeRange.instant),
        _bounded(),
        st.builds(lambda s, inc: TimeRange(s, None, include_start=inc), timestamps(), flags),
        st.builds(lambda e, inc: TimeRange(None, e, include_end=inc), timestamps(), flags),
    )


@st.composite
def _grammar_string(draw: st.DrawFn) -> str:
    """Any string the timerange.json pattern accepts, markers beside omitted sides included."""
    opener = draw(st.sampled_from(["", "[", "("]))
    closer = draw(st.sampled_from(["", "]", ")"]))
    start = draw(st.one_of(st.none(), timestamp_strings()))
    if not draw(st.booleans()):  # no "_": at most one timestamp
        return f"{opener}{start or ''}{closer}"
    if start is not None and draw(st.booleans()):  # an end close to the start
        end_ns = _clip(Timestamp.from_str(start).ns + draw(_DELTAS))
        end = draw(st.sampled_from([str(Timestamp(end_ns)), start]))
    else:
        end = draw(st.one_of(st.none(), timestamp_strings()))
    return f"{opener}{start or ''}_{end or ''}{closer}"


def timerange_strings() -> st.SearchStrategy[str]:
    """Valid timerange strings, canonical or not: ``""``, ``[``, ``()``, ``[_]``, bare ``5:0``, ``(_10:0]``..."""
    return st.one_of(
        _grammar_string(),
        timeranges().map(str),
        st.sampled_from(["", "[", "(", "]", ")", "()", "[]", "_", "[_]", "(_)", "5:0", "(_10:0]", "-0:0"]),
    )
