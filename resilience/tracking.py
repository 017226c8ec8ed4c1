"""RequestTracker: sliding-window request counts, outcomes and latency in bounded memory.

The original design's API is kept — ``add_request()``, ``get_request_count()``,
``should_throttle(max_requests)`` — and extended with outcomes and latency::

    tracker = RequestTracker(window_seconds=60)
    tracker.record(0.132)                          # a request that succeeded in 132 ms
    tracker.record(2.5, ok=False, kind="timeout")  # one that failed
    snap = tracker.snapshot()                      # immutable TrackerSnapshot
    snap.count, snap.error_rate, snap.p50, snap.p99, snap.errors_by_kind["timeout"]

Call ``add_request()`` for a request whose outcome you do not track, or ``record(...)`` once
it finished (which also counts it); not both for the same request.

Precision (exact rules)
-----------------------
Memory stays bounded however many requests arrive, so the window is not kept event by
event.  Let ``W = window_seconds``.

* **Counts** (``count``, ``outcomes``, ``errors``, ``errors_by_kind``, and
  ``get_request_count``): time is cut into slots of ``g = W / 1000`` seconds; a request
  made at clock time ``t`` is in slot ``floor(t / g)`` (floating-point division).  At time
  ``now`` a request is counted iff ``floor(t / g) >= floor((now - W) / g)``.  So every
  request of the last ``W`` seconds is counted, plus those up to ``g`` seconds older that
  share the oldest slot.  Memory: at most 1,001 slots of a few integers.
* **Latency** (``p50``, ``p90``, ``p99``, ``max_latency``, ``latency_count``): the same rule
  with coarser segments of ``h = W / 50`` seconds (the window plus up to ``h`` earlier),
  except that a segment is dropped as soon as its *newest* sample is no longer counted by
  the rule above: latencies of requests that all left the window are never reported (once
  ``count`` is 0, so is ``latency_count``).
  Each segment holds a histogram of logarithmic buckets ``[1.02**k, 1.02**(k + 1))``
  seconds.  A percentile ``p`` is the nearest-rank sample (the ``ceil(p * n)``-th smallest
  of the ``n`` latencies in the window), reported as the geometric middle of its bucket
  capped at ``max_latency``: **within 1 % (relative) of the true sample** for latencies
  from 1 µs to 10**6 s.  Latencies below 1 µs share one bucket reported as 0.5 µs (absolute
  error < 1 µs); those above 10**6 s share the top bucket.  ``max_latency`` is exact.
  Memory: at most 51 segments of at most ~1,400 buckets each.
* **Kinds**: at most ``MAX_KINDS`` (64) distinct error kinds are kept in the window; errors
  of further new kinds are counted under ``"(other)"`` until old kinds leave the window.

The clock must be monotonic; a reading earlier than the newest slot is counted in the
newest slot.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from . import _clock
from ._bucket import check_positive

__all__ = ["RequestTracker", "TrackerSnapshot"]

#: Count slots per window (count precision: window / SLOTS).
SLOTS = 1000
#: Latency segments per window.
SEGMENTS = 50
#: Growth factor of the latency histogram's buckets (relative precision sqrt(GROWTH) - 1).
GROWTH = 1.02
#: Latencies below this share one bucket (seconds).
MIN_LATENCY = 1e-6
#: Latencies above this share the top bucket (seconds).
MAX_LATENCY = 1e6
#: Distinct error kinds kept in the window; more go under OTHER_KIND.
MAX_KINDS = 64
OTHER_KIND = "(other)"
#: Default window of the original design, in seconds.
DEFAULT_WINDOW = 60.0

_LOG_GROWTH = math.log(GROWTH)
_TINY = math.floor(math.log(MIN_LATENCY) / _LOG_GROWTH) - 1  # bucket of latencies < 1 us
_TOP = math.floor(math.log(MAX_LATENCY) / _LOG_GROWTH)
_PERCENTILES = ((50, 100), (90, 100), (99, 100))


def latency_bucket(latency: float) -> int:
    """Histogram bucket index of ``latency`` seconds."""
    if latency < MIN_LATENCY:
        return _TINY
    return min(_TOP, math.floor(math.log(latency) / _LOG_GROWTH))


def bucket_value(index: int) -> float:
    """The value reported for a sample in bucket ``index`` (its geometric middle)."""
    if index == _TINY:
        return MIN_LATENCY / 2
    return math.exp((index + 0.5) * _LOG_GROWTH)


@dataclass(frozen=True, slots=True)
class TrackerSnapshot:
    """Immutable statistics of one window (see :mod:`resilience.tracking` for precision).

    ``count``: requests (``add_request`` + ``record``); ``outcomes``: ``record`` calls;
    ``errors``: failed outcomes; ``error_rate``: ``errors / outcomes`` (0.0 without
    outcomes); ``p50``/``p90``/``p99``/``max_latency``: seconds, None without samples;
    ``errors_by_kind``: read-only mapping kind -> errors (errors recorded without a kind
    are not in it); ``window``: the window length; ``at``: the clock time of the snapshot.
    Immutable, so safe to share between threads.
    """

    window: float
    at: float
    count: int
    outcomes: int
    errors: int
    error_rate: float
    latency_count: int
    p50: float | None
    p90: float | None
    p99: float | None
    max_latency: float | None
    errors_by_kind: Mapping[str, int]


class _Slot:
    __slots__ = ("errors", "index", "kinds", "outcomes", "requests")

    def __init__(self, index: int) -> None:
        self.index = index
        self.requests = 0
        self.outcomes = 0
        self.errors = 0
        self.kinds: dict[str, int] | None = None


class _Segment:
    __slots__ = ("hist", "index", "last_slot", "max", "samples")

    def __init__(self, index: int) -> None:
        self.index = index
        self.hist: dict[int, int] = {}
        self.samples = 0
        self.max = 0.0
        self.last_slot = -(2**63)  # count slot (floor(t / g)) of its newest sample


class RequestTracker:
    """Requests, outcomes and latency over a sliding window, in bounded memory.

    Thread-safety: every method may be called from any thread; one internal lock guards a
    few integer updates per call (percentiles are computed outside it).  ``clock`` is read
    under that lock, so it must be a cheap, non-blocking time source.
    """

    __slots__ = (
        "_clock",
        "_errors",
        "_g",
        "_h",
        "_hist",
        "_kinds",
        "_lock",
        "_outcomes",
        "_requests",
        "_samples",
        "_segments",
        "_slots",
        "_window",
    )

    def __init__(
        self, window_seconds: float = DEFAULT_WINDOW, *, clock: _clock.Clock = _clock.monotonic
    ) -> None:
        window = check_positive("window_seconds", window_seconds)
        if not callable(clock):
            raise TypeError("clock must be a zero-argument callable returning seconds")
        self._window = window
        self._g = window / SLOTS
        self._h = window / SEGMENTS
        if not (self._g > 0 and math.isfinite(self._g)):
            raise ValueError(f"window_seconds is too small, got {window_seconds!r}")
        self._clock = clock
        self._lock = threading.Lock()
        self._slots: deque[_Slot] = deque()
        self._segments: deque[_Segment] = deque()
        # Running totals over the window (kept equal to the sums over slots / segments).
        self._requests = 0
        self._outcomes = 0
        self._errors = 0
        self._kinds: dict[str, int] = {}
        self._hist: dict[int, int] = {}
        self._samples = 0

    @property
    def window(self) -> float:
        """Window length in seconds."""
        return self._window

    def __repr__(self) -> str:
        return f"RequestTracker(window_seconds={self._window!r})"

    # -- recording -----------------------------------------------------------------------

    def add_request(self) -> None:
        """Count one request now (no outcome)."""
        with self._lock:
            now = self._clock()
            self._evict(now)
            self._slot(now).requests += 1
            self._requests += 1

    def record(self, latency: float, *, ok: bool = True, kind: str | None = None) -> None:
        """Count one finished request: its ``latency`` (seconds), success, and for a failure
        an optional ``kind`` (e.g. an exception name) counted in ``errors_by_kind``."""
        if isinstance(latency, bool) or not isinstance(latency, (int, float)):
            raise TypeError(f"latency must be a number of seconds, got {type(latency).__name__}")
        value = float(latency)
        if not (math.isfinite(value) and value >= 0):
            raise ValueError(f"latency must be finite and >= 0, got {latency!r}")
        if kind is not None and not isinstance(kind, str):
            raise TypeError(f"kind must be a string or None, got {type(kind).__name__}")
        bucket = latency_bucket(value)
        with self._lock:
            now = self._clock()
            self._evict(now)
            slot = self._slot(now)
            slot.requests += 1
            slot.outcomes += 1
            self._requests += 1
            self._outcomes += 1
            if not ok:
                slot.errors += 1
                self._errors += 1
                if kind is not None:
                    if kind not in self._kinds and len(self._kinds) >= MAX_KINDS:
                        kind = OTHER_KIND
                    if slot.kinds is None:
                        slot.kinds = {}
                    slot.kinds[kind] = slot.kinds.get(kind, 0) + 1
                    self._kinds[kind] = self._kinds.get(kind, 0) + 1
            segment = self._segment(now)
            segment.last_slot = max(segment.last_slot, slot.index)
            segment.hist[bucket] = segment.hist.get(bucket, 0) + 1
            segment.samples += 1
            segment.max = max(segment.max, value)
            self._hist[bucket] = self._hist.get(bucket, 0) + 1
            self._samples += 1

    # -- reading -------------------------------------------------------------------------

    def get_request_count(self) -> int:
        """Requests in the window (see the module docstring for the exact rule)."""
        with self._lock:
            self._evict(self._clock())
            return self._requests

    def should_throttle(self, max_requests: int) -> bool:
        """True when the window already holds ``max_requests`` requests or more."""
        if isinstance(max_requests, bool) or not isinstance(max_requests, (int, float)):
            raise TypeError(f"max_requests must be a number, got {type(max_requests).__name__}")
        if math.isnan(max_requests) or max_requests < 0:
            raise ValueError(f"max_requests must be >= 0, got {max_requests!r}")
        return self.get_request_count() >= max_requests

    def snapshot(self) -> TrackerSnapshot:
        """Immutable statistics of the current window."""
        with self._lock:
            now = self._clock()
            self._evict(now)
            requests, outcomes, errors = self._requests, self._outcomes, self._errors
            kinds = dict(self._kinds)
            hist = sorted(self._hist.items())
            samples = self._samples
            top = max((s.max for s in self._segments if s.samples), default=None)
        percentiles: list[float | None] = [None, None, None]
        if samples and top is not None:
            for i, (num, den) in enumerate(_PERCENTILES):
                rank = max(1, -(-samples * num // den))
                seen = 0
                for index, n in hist:
                    seen += n
                    if seen >= rank:
                        percentiles[i] = min(bucket_value(index), top)
                        break
        return TrackerSnapshot(
            window=self._window,
            at=now,
            count=requests,
            outcomes=outcomes,
            errors=errors,
            error_rate=errors / outcomes if outcomes else 0.0,
            latency_count=samples,
            p50=percentiles[0],
            p90=percentiles[1],
            p99=percentiles[2],
            max_latency=top,
            errors_by_kind=MappingProxyType(kinds),
        )

    # -- internals (called with the lock held) --------------------------------------------

    def _slot(self, now: float) -> _Slot:
        index = math.floor(now / self._g)
        slots = self._slots
        if slots and slots[-1].index >= index:
            return slots[-1]
        slot = _Slot(index)
        slots.append(slot)
        return slot

    def _segment(self, now: float) -> _Segment:
        index = math.floor(now / self._h)
        segments = self._segments
        if segments and segments[-1].index >= index:
            return segments[-1]
        segment = _Segment(index)
        segments.append(segment)
        return segment

    def _evict(self, now: float) -> None:
        oldest = now - self._window
        slots = self._slots
        if slots and slots[0].index < math.floor(oldest / self._g):
            cut = math.floor(oldest / self._g)
            while slots and slots[0].index < cut:
                slot = slots.popleft()
                self._requests -= slot.requests
                self._outcomes -= slot.outcomes
                self._errors -= slot.errors
                if slot.kinds:
                    for kind, n in slot.kinds.items():
                        left = self._kinds[kind] - n
                        if left:
                            self._kinds[kind] = left
                        else:
                            del self._kinds[kind]
        segments = self._segments
        fine_cut = math.floor(oldest / self._g)
        if segments and (
            segments[0].index < math.floor(oldest / self._h) or segments[0].last_slot < fine_cut
        ):
            cut = math.floor(oldest / self._h)
            while segments and (segments[0].index < cut or segments[0].last_slot < fine_cut):
                segment = segments.popleft()
                self._samples -= segment.samples
                for index, n in segment.hist.items():
                    left = self._hist[index] - n
                    if left:
                        self._hist[index] = left
                    else:
                        del self._hist[index]
