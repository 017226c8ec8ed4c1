"""The original design's simple locked token bucket, re-implemented as a benchmark baseline.

As described in ``shared/ORIGINAL_DESIGN.md``: a float of tokens and the time of the last
update behind one ``threading.Lock``; each attempt refills ``elapsed * rate`` (capped at the
burst) and takes a token if one is there; ``acquire`` polls every 0.1 s until its timeout.
``try_acquire`` is one such attempt without waiting (the design's loop body).  The clock is
``time.monotonic`` (the design used ``time.time``; both cost the same, and monotonic is what
every other contender uses).
"""

from __future__ import annotations

import threading
import time

__all__ = ["SimpleLockedBucket"]


class SimpleLockedBucket:
    """Token bucket of the original design.  Thread-safe (one lock around each attempt)."""

    def __init__(self, rate: float, burst: float) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = float(burst)
        self.last_update = time.monotonic()
        self._lock = threading.Lock()

    def try_acquire(self) -> bool:
        with self._lock:
            now = time.monotonic()
            elapsed = now - self.last_update
            self.tokens = min(self.burst, self.tokens + elapsed * self.rate)
            self.last_update = now
            if self.tokens >= 1.0:
                self.tokens -= 1.0
                return True
            return False

    def acquire(self, timeout: float | None = None) -> bool:
        start = time.monotonic()
        while True:
            if self.try_acquire():
                return True
            if timeout is not None and time.monotonic() - start >= timeout:
                return False
            time.sleep(0.1)
