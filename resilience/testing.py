"""Test helpers: a fake monotonic clock whose ``sleep`` advances time instead of waiting.

``FakeClock`` is thread-safe: ``advance``/``sleep`` and reads may come from any thread.
"""

from __future__ import annotations

import math
import threading

__all__ = ["FakeClock"]


class FakeClock:
    """A controllable monotonic clock.

    Call it to read the time; ``advance(s)`` moves it forward; ``sleep(s)`` does the same and
    records the request in ``sleeps`` (so tests can assert what a primitive *decided* to wait);
    ``async_sleep(s)`` is the coroutine form.  Thread-safe.
    """

    __slots__ = ("_lock", "_now", "sleeps")

    def __init__(self, start: float = 0.0) -> None:
        if not math.isfinite(start):
            raise ValueError(f"start must be finite, got {start!r}")
        self._now = float(start)
        self._lock = threading.Lock()
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self._now

    def now(self) -> float:
        """The current fake time in seconds."""
        return self._now

    def advance(self, seconds: float) -> None:
        """Move the clock forward by ``seconds`` (which must be finite and >= 0)."""
        if not (math.isfinite(seconds) and seconds >= 0):
            raise ValueError(f"seconds must be finite and >= 0, got {seconds!r}")
        with self._lock:
            self._now += seconds

    def sleep(self, seconds: float) -> None:
        """Record the requested wait and advance the clock by it instead of waiting."""
        with self._lock:
            self.sleeps.append(seconds)
            self._now += max(0.0, seconds)

    async def async_sleep(self, seconds: float) -> None:
        """Coroutine form of :meth:`sleep` (does not yield to the event loop's timer)."""
        self.sleep(seconds)

    def __repr__(self) -> str:
        return f"FakeClock(now={self._now!r})"


# -- retry waits switch (like stamina's testing mode): retries happen, waits are zero --------
from ._retry_engine import no_retry_waits, set_retry_waits  # noqa: E402
from .timeout import _stop_watchdog  # noqa: E402

__all__ += ["no_retry_waits", "set_retry_waits", "stop_timeout_watchdog"]


def stop_timeout_watchdog(timeout: float = 5.0) -> None:
    """Stop the ``@timeout`` watchdog thread now (it restarts on demand).

    For test suites that check no thread outlives a test; call it when no timed call runs.
    Otherwise the watchdog exits by itself after ``WATCHDOG_IDLE_SECONDS`` without work.
    """
    _stop_watchdog(timeout)
