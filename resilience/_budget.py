"""RetryBudget: a fleet-wide cap on retries, shared by every caller that holds it.

Re-exported as :class:`resilience.RetryBudget` (and from :mod:`resilience.retry`).
"""

from __future__ import annotations

import math
import threading

from ._clock import Clock, monotonic

__all__ = ["RetryBudget"]

#: Defaults: retries may add 20 % to the load, plus 1 retry per second as a floor, over 10 s.
DEFAULT_RATIO = 0.2
DEFAULT_MIN_PER_SECOND = 1.0
DEFAULT_WINDOW = 10.0
#: The window is kept as this many buckets (the precision of the sliding window).
BUCKETS = 10


def _number(name: str, value: object, *, positive: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    if not math.isfinite(value) or value < 0 or (positive and value == 0):
        bound = "> 0" if positive else ">= 0"
        raise ValueError(f"{name} must be finite and {bound}, got {value!r}")
    return float(value)


class RetryBudget:
    """Allow a retry only while ``retries <= ratio * first_attempts + min_per_second * window``.

    Counts cover a sliding window of ``window`` seconds.  Every call made through a
    :func:`~resilience.retry` (or ``retrying``) that holds this budget records one *first
    attempt*; each retry asks :meth:`try_spend` first.  Share one budget between all the
    callers of one service: during an outage they then add at most ``ratio`` of extra load
    (plus a small floor of ``min_per_second`` retries per second, so rare callers can still
    retry), instead of multiplying it by the number of attempts.

    When the budget refuses a retry, the retry loop **gives up at once and re-raises the
    last exception** (or raises :class:`~resilience.RetryError` when it was retrying on a
    result); the warning log and the ``on_giveup`` record say ``reason="budget"``.

    Precision: the window is kept as ``BUCKETS`` (10) buckets of ``window / 10`` seconds, so
    an event is forgotten between ``0.9 * window`` and ``window`` after it happened.
    Memory is constant.  Thread-safe (one short lock; the clock is read outside it).
    """

    __slots__ = (
        "_bucket",
        "_clock",
        "_firsts",
        "_firsts_total",
        "_floor",
        "_lock",
        "_retries",
        "_retries_total",
        "_width",
        "min_per_second",
        "ratio",
        "window",
    )

    def __init__(
        self,
        ratio: float = DEFAULT_RATIO,
        min_per_second: float = DEFAULT_MIN_PER_SECOND,
        window: float = DEFAULT_WINDOW,
        *,
        clock: Clock = monotonic,
    ) -> None:
        self.ratio = _number("ratio", ratio, positive=False)
        self.min_per_second = _number("min_per_second", min_per_second, positive=False)
        self.window = _number("window", window, positive=True)
        if not callable(clock):
            raise TypeError("clock must be a zero-argument callable returning seconds")
        self._clock = clock
        self._floor = self.min_per_second * self.window
        self._width = self.window / BUCKETS
        self._lock = threading.Lock()
        self._firsts = [0] * BUCKETS
        self._retries = [0] * BUCKETS
        self._firsts_total = 0
        self._retries_total = 0
        self._bucket = math.floor(clock() / self._width)

    def _roll(self, bucket: int) -> int:
        """Forget buckets that left the window; return the current slot.  Lock held."""
        gap = bucket - self._bucket
        if gap <= 0:  # same bucket, or a thread that read the clock a little earlier
            return self._bucket % BUCKETS
        if gap >= BUCKETS:
            self._firsts = [0] * BUCKETS
            self._retries = [0] * BUCKETS
            self._firsts_total = self._retries_total = 0
        else:
            for b in range(self._bucket + 1, bucket + 1):
                slot = b % BUCKETS
                self._firsts_total -= self._firsts[slot]
                self._retries_total -= self._retries[slot]
                self._firsts[slot] = 0
                self._retries[slot] = 0
        self._bucket = bucket
        return bucket % BUCKETS

    def record_attempt(self) -> None:
        """Count one first attempt (a call, not a retry)."""
        bucket = math.floor(self._clock() / self._width)
        with self._lock:
            slot = bucket % BUCKETS if bucket == self._bucket else self._roll(bucket)
            self._firsts[slot] += 1
            self._firsts_total += 1

    def try_spend(self) -> bool:
        """Take one retry from the budget; False (and nothing recorded) if none is left."""
        bucket = math.floor(self._clock() / self._width)
        with self._lock:
            slot = self._roll(bucket)
            if self._retries_total + 1 > self.ratio * self._firsts_total + self._floor:
                return False
            self._retries[slot] += 1
            self._retries_total += 1
            return True

    def available(self) -> float:
        """How many more retries the budget would grant now (may be fractional)."""
        bucket = math.floor(self._clock() / self._width)
        with self._lock:
            self._roll(bucket)
            left = self.ratio * self._firsts_total + self._floor - self._retries_total
        return max(0.0, left)

    def __repr__(self) -> str:
        return (
            f"RetryBudget(ratio={self.ratio!r}, min_per_second={self.min_per_second!r}, "
            f"window={self.window!r})"
        )
