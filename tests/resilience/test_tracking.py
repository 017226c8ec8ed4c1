"""Tests for resilience.tracking: RequestTracker and TrackerSnapshot."""

from __future__ import annotations

import dataclasses
import math
import threading
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from resilience import RequestTracker, TrackerSnapshot
from resilience.testing import FakeClock
from resilience.tracking import MAX_KINDS, OTHER_KIND, SEGMENTS, SLOTS


def test_original_design_api() -> None:
    """add_request / get_request_count / should_throttle behave as in the original design."""
    clock = FakeClock(100.0)
    tracker = RequestTracker(window_seconds=60, clock=clock)
    for _ in range(5):
        tracker.add_request()
        clock.advance(10)
    assert tracker.get_request_count() == 5
    assert tracker.should_throttle(5) is True
    assert tracker.should_throttle(6) is False
    clock.advance(30)  # requests made at 100 and 110 are now more than 60 s old
    assert tracker.get_request_count() == 3
    clock.advance(1000)
    assert tracker.get_request_count() == 0
    assert tracker.should_throttle(1) is False


def test_snapshot_statistics() -> None:
    """A snapshot reports counts, error rate, kinds and latency percentiles of the window."""
    clock = FakeClock()
    tracker = RequestTracker(10, clock=clock)
    tracker.add_request()
    for i in range(1, 101):
        tracker.record(i / 1000, ok=i % 10 != 0, kind="timeout" if i % 20 == 0 else "http")
    snap = tracker.snapshot()
    assert (snap.count, snap.outcomes, snap.errors) == (101, 100, 10)
    assert snap.error_rate == pytest.approx(0.1)
    assert dict(snap.errors_by_kind) == {"http": 5, "timeout": 5}
    assert snap.latency_count == 100
    assert snap.p50 == pytest.approx(0.050, rel=0.01)
    assert snap.p90 == pytest.approx(0.090, rel=0.01)
    assert snap.p99 == pytest.approx(0.099, rel=0.01)
    assert snap.max_latency == 0.1


def test_empty_snapshot() -> None:
    """With nothing recorded, percentiles are None and the error rate is 0."""
    snap = RequestTracker(5, clock=FakeClock()).snapshot()
    assert (snap.count, snap.errors, snap.error_rate) == (0, 0, 0.0)
    assert snap.p50 is None and snap.p99 is None and snap.max_latency is None
    assert dict(snap.errors_by_kind) == {}


def test_snapshot_is_immutable() -> None:
    """TrackerSnapshot is frozen and its errors_by_kind cannot be modified."""
    tracker = RequestTracker(5, clock=FakeClock())
    tracker.record(0.1, ok=False, kind="x")
    snap = tracker.snapshot()
    assert isinstance(snap, TrackerSnapshot)
    with pytest.raises(dataclasses.FrozenInstanceError):
        snap.count = 3  # type: ignore[misc]
    with pytest.raises(TypeError):
        snap.errors_by_kind["x"] = 5  # type: ignore[index]
    tracker.record(0.1, ok=False, kind="x")
    assert snap.errors_by_kind["x"] == 1  # a later record does not change an old snapshot


def test_kinds_are_capped() -> None:
    """More than MAX_KINDS distinct error kinds fold into '(other)'."""
    tracker = RequestTracker(5, clock=FakeClock())
    for i in range(MAX_KINDS + 10):
        tracker.record(0.01, ok=False, kind=f"k{i}")
    kinds = tracker.snapshot().errors_by_kind
    assert len(kinds) == MAX_KINDS + 1
    assert kinds[OTHER_KIND] == 10
    assert sum(kinds.values()) == MAX_KINDS + 10


def test_memory_stays_bounded() -> None:
    """However many requests arrive, at most SLOTS+1 slots and SEGMENTS+1 histograms exist."""
    clock = FakeClock()
    tracker = RequestTracker(1.0, clock=clock)
    for i in range(60_000):
        tracker.record((i % 997) * 1e-3 + 1e-4, ok=i % 7 != 0, kind=f"k{i % 5}")
        clock.advance(0.0001 + (i % 3) * 0.00005)
        if i % 5 == 0:
            tracker.add_request()
    assert len(tracker._slots) <= SLOTS + 1
    assert len(tracker._segments) <= SEGMENTS + 1
    assert len(tracker._hist) <= 1400
    assert tracker.snapshot().count > 0


# -- brute force comparison -------------------------------------------------------------------


def _slot(t: float, width: float) -> int:
    return math.floor(t / width)


def _nearest_rank(values: list[float], num: int, den: int) -> float:
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * num // den))
    return ordered[rank - 1]


_events = st.lists(
    st.tuples(
        # advance, as a fraction of the window: many land near slot and window boundaries
        st.one_of(
            st.sampled_from([0.0, 0.0004, 0.0005, 0.001, 0.02, 0.999, 1.0, 1.0004, 1.001]),
            st.floats(0, 1.5, allow_nan=False),
        ),
        st.sampled_from(["add", "record", "check"]),
        st.floats(0, 50, allow_nan=False),  # latency
        st.booleans(),  # ok
        st.sampled_from([None, "timeout", "http", "reset"]),
    ),
    max_size=120,
)


@settings(max_examples=150)
@given(
    window=st.floats(0.5, 20, allow_nan=False),
    start=st.floats(0, 1e6, allow_nan=False),
    events=_events,
)
def test_counts_equal_brute_force(
    window: float,
    start: float,
    events: list[tuple[float, str, float, bool, str | None]],
) -> None:
    """Counts, errors and kinds equal a brute-force count under the documented slot rule;
    percentiles are within 1 % of the exact nearest-rank sample; max latency is exact."""
    clock = FakeClock(start)
    tracker = RequestTracker(window, clock=clock)
    log: list[tuple[float, str, float, bool, str | None]] = []
    g, h = window / SLOTS, window / SEGMENTS

    def check() -> None:
        now = clock()
        snap = tracker.snapshot()
        fine = [e for e in log if _slot(e[0], g) >= _slot(now - window, g)]
        records = [e for e in log if e[1] == "record"]
        newest: dict[int, int] = {}  # latency segment -> count slot of its newest sample
        for e in records:
            seg = _slot(e[0], h)
            newest[seg] = max(newest.get(seg, _slot(e[0], g)), _slot(e[0], g))
        coarse = [
            e
            for e in records
            if _slot(e[0], h) >= _slot(now - window, h)
            and newest[_slot(e[0], h)] >= _slot(now - window, g)
        ]
        recorded = [e for e in fine if e[1] == "record"]
        failed = [e for e in recorded if not e[3]]
        assert snap.count == len(fine) == tracker.get_request_count()
        assert snap.outcomes == len(recorded)
        assert snap.errors == len(failed)
        assert dict(snap.errors_by_kind) == dict(Counter(e[4] for e in failed if e[4]))
        assert snap.latency_count == len(coarse)
        latencies = [e[2] for e in coarse]
        if not latencies:
            assert snap.p50 is None and snap.max_latency is None
            return
        assert snap.max_latency == max(latencies)
        for got, (num, den) in zip(
            (snap.p50, snap.p90, snap.p99), ((50, 100), (90, 100), (99, 100)), strict=True
        ):
            exact = _nearest_rank(latencies, num, den)
            assert got is not None
            if exact < 1e-6:
                assert abs(got - exact) < 1e-6
            else:
                assert abs(got - exact) <= 0.01 * exact

    for fraction, op, latency, ok, kind in events:
        clock.advance(fraction * window)
        if op == "add":
            tracker.add_request()
            log.append((clock(), "add", 0.0, True, None))
        elif op == "record":
            tracker.record(latency, ok=ok, kind=kind)
            log.append((clock(), "record", latency, ok, kind))
        else:
            check()
    check()


def test_window_rule_includes_at_most_one_slot_more() -> None:
    """A request is counted for exactly the window plus the rest of its slot, never less."""
    clock = FakeClock(0.0)
    tracker = RequestTracker(10, clock=clock)  # slots of 10 ms
    clock.advance(1.005)  # middle of slot 100
    tracker.add_request()
    clock.advance(10.0)  # exactly window seconds later: still counted
    assert tracker.get_request_count() == 1
    clock.advance(0.004)  # 10.004 s after: still in the oldest slot, counted
    assert tracker.get_request_count() == 1
    clock.advance(0.002)  # past the slot's end (1.010 + 10): gone
    assert tracker.get_request_count() == 0


# -- threads ------------------------------------------------------------------------------------


def test_concurrent_recording_loses_nothing() -> None:
    """8 real threads recording at once (with a reader taking snapshots) lose no update."""
    tracker = RequestTracker(3600)
    per_thread = 3000
    stop = threading.Event()
    snapshots: list[TrackerSnapshot] = []

    def writer(index: int) -> None:
        for i in range(per_thread):
            if i % 3 == 0:
                tracker.add_request()
            else:
                tracker.record(0.001 * (1 + i % 50), ok=i % 5 != 0, kind=f"k{index % 2}")

    def reader() -> None:
        while not stop.is_set():
            snapshots.append(tracker.snapshot())

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(8)]
    watcher = threading.Thread(target=reader)
    watcher.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    stop.set()
    watcher.join(10)
    snap = tracker.snapshot()
    recorded = 8 * sum(1 for i in range(per_thread) if i % 3 != 0)
    failed = 8 * sum(1 for i in range(per_thread) if i % 3 != 0 and i % 5 == 0)
    assert snap.count == 8 * per_thread
    assert snap.outcomes == snap.latency_count == recorded
    assert snap.errors == failed
    assert sum(snap.errors_by_kind.values()) == failed
    assert all(s.errors <= s.outcomes <= s.count for s in snapshots)


# -- bad input ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "exc"),
    [
        (0, ValueError),
        (-5, ValueError),
        (math.nan, ValueError),
        (math.inf, ValueError),
        ("60", TypeError),
    ],
)
def test_bad_window(value: object, exc: type[Exception]) -> None:
    """A bad window_seconds raises naming it."""
    with pytest.raises(exc, match="window_seconds"):
        RequestTracker(value)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "exc", "param"),
    [
        ({"latency": -0.1}, ValueError, "latency"),
        ({"latency": math.nan}, ValueError, "latency"),
        ({"latency": math.inf}, ValueError, "latency"),
        ({"latency": "fast"}, TypeError, "latency"),
        ({"latency": 0.1, "kind": 3}, TypeError, "kind"),
    ],
)
def test_bad_record(kwargs: dict[str, object], exc: type[Exception], param: str) -> None:
    """record rejects bad latency or kind, naming the parameter, and counts nothing."""
    tracker = RequestTracker(5, clock=FakeClock())
    with pytest.raises(exc, match=param):
        tracker.record(**kwargs)  # type: ignore[arg-type]
    assert tracker.get_request_count() == 0


@pytest.mark.parametrize(
    ("value", "exc"), [(-1, ValueError), (math.nan, ValueError), ("3", TypeError)]
)
def test_bad_max_requests(value: object, exc: type[Exception]) -> None:
    """should_throttle rejects a bad max_requests naming it."""
    with pytest.raises(exc, match="max_requests"):
        RequestTracker(5).should_throttle(value)  # type: ignore[arg-type]
