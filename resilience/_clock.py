"""The one place that reads time.

Every time-dependent primitive in :mod:`resilience` takes a ``clock=`` (a zero-argument
callable returning monotonic seconds) and, where it waits, a ``sleep=`` (a one-argument
callable taking seconds).  The defaults below are the real ones; tests pass
:class:`resilience.testing.FakeClock` instead.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

__all__ = ["AsyncSleep", "Clock", "Sleep", "async_sleep", "monotonic", "sleep"]

Clock = Callable[[], float]
Sleep = Callable[[float], object]
AsyncSleep = Callable[[float], Awaitable[object]]

monotonic: Clock = time.monotonic
sleep: Callable[[float], None] = time.sleep
async_sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
