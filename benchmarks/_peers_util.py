"""Shared helpers of the benchmark scripts: timing loops, rounds, statistics, markdown tables.

Timing rules (the machine is shared and noisy):

* ``time.perf_counter`` only; a measurement is one tight loop of many calls.
* Contenders are measured in **interleaved rounds** (A, B, C, A, B, C, ...) so that a burst of
  noise hits all of them, and each contender's **best** round is reported (the least disturbed
  run of the same code; the median is kept too).
* Nothing here asserts: scripts print what they measured and a PASS/MISS verdict per target.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import repeat

__all__ = [
    "SAMPLE_S",
    "Target",
    "calibrate",
    "fmt_ns",
    "fmt_rate",
    "interleaved",
    "machine_line",
    "md_table",
    "per_call_async_ns",
    "paired_ratio",
    "per_call_ns",
    "percentile",
    "quiet_gc",
    "ratio",
    "verdict_table",
]

perf_counter = time.perf_counter


def per_call_ns(fn: Callable[[], object], n: int) -> float:
    """Nanoseconds per call of ``fn()`` over ``n`` calls (loop overhead included, ~10 ns)."""
    start = perf_counter()
    for _ in repeat(None, n):
        fn()
    return (perf_counter() - start) * 1e9 / n


async def _loop_async(fn: Callable[[], Awaitable[object]], n: int) -> float:
    start = perf_counter()
    for _ in repeat(None, n):
        await fn()
    return (perf_counter() - start) * 1e9 / n


def per_call_async_ns(
    loop: asyncio.AbstractEventLoop, fn: Callable[[], Awaitable[object]], n: int
) -> float:
    """Nanoseconds per ``await fn()`` over ``n`` awaits inside one running coroutine."""
    return loop.run_until_complete(_loop_async(fn, n))


#: Length of one timing sample: short, so that some samples run without being descheduled.
SAMPLE_S = 0.002


def calibrate(measure: Callable[[int], float], target_s: float = SAMPLE_S, start: int = 16) -> int:
    """The number of calls for which ``measure(n)`` (ns per call) lasts about ``target_s``."""
    n = start
    while True:
        ns = measure(n)
        total = ns * n / 1e9
        if total >= target_s / 4 or n >= 50_000_000:
            return max(1, int(n * target_s / max(total, 1e-9)))
        n *= 4


@contextlib.contextmanager
def quiet_gc() -> Iterator[None]:
    """Collect once, then keep the cyclic GC off while timing (restored afterwards)."""
    gc.collect()
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def interleaved(
    contenders: dict[str, Callable[[], float]],
    rounds: int,
    settle: Callable[[], object] | None = None,
) -> dict[str, list[float]]:
    """Run every contender's ``measure()`` once per round, in turn; all samples per name.

    The order rotates from round to round, so no contender always follows the same one (a
    peer's background thread - an expiry timer, a leak thread - finishing its work during the
    next measurement would otherwise always hit the same victim).  ``settle()``, if given,
    runs untimed after every sample (e.g. to drain such background work).
    """
    samples: dict[str, list[float]] = {name: [] for name in contenders}
    names = list(contenders)
    for number in range(rounds):
        shift = number % len(names) if names else 0
        for name in names[shift:] + names[:shift]:
            samples[name].append(contenders[name]())
            if settle is not None:
                settle()
    return samples


def paired_ratio(a: Sequence[float], b: Sequence[float]) -> float:
    """Median over rounds of ``a[i] / b[i]``: samples of the same round share the machine's
    state of that moment, so the per-round ratio cancels slow drifts in the noise."""
    ratios = [x / y for x, y in zip(a, b, strict=True) if y > 0 and math.isfinite(x / y)]
    return statistics.median(ratios) if ratios else math.nan


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-quantile (0..1) of ``values`` by linear interpolation (nan if empty)."""
    if not values:
        return math.nan
    data = sorted(values)
    pos = (len(data) - 1) * q
    lo = math.floor(pos)
    hi = min(lo + 1, len(data) - 1)
    return data[lo] + (data[hi] - data[lo]) * (pos - lo)


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else math.nan


def fmt_ns(ns: float) -> str:
    """A duration given in ns, in the most readable unit."""
    if math.isnan(ns):
        return "n/a"
    if ns < 1_000:
        return f"{ns:.0f} ns"
    if ns < 1_000_000:
        return f"{ns / 1e3:.2f} µs"
    return f"{ns / 1e6:.2f} ms"


def fmt_rate(per_s: float) -> str:
    if math.isnan(per_s):
        return "n/a"
    if per_s >= 1e6:
        return f"{per_s / 1e6:.2f} M/s"
    if per_s >= 1e3:
        return f"{per_s / 1e3:.0f} k/s"
    return f"{per_s:.0f} /s"


def ratio(value: float, reference: float) -> str:
    """``value / reference`` as ``"1.23x"`` (n/a when undefined)."""
    if not (reference and math.isfinite(reference) and math.isfinite(value)):
        return "n/a"
    return f"{value / reference:.2f}x"


def md_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub markdown table."""
    head = "| " + " | ".join(headers) + " |"
    sep = "|" + "|".join("---" for _ in headers) + "|"
    body = ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join([head, sep, *body])


@dataclass
class Target:
    """One target of the issue: what, the measured value as text, and whether it is met."""

    what: str
    measured: str
    ok: bool
    notes: list[str] = field(default_factory=list)


def verdict_table(targets: Sequence[Target]) -> str:
    rows = [(t.what, t.measured, "PASS" if t.ok else "**MISS**") for t in targets]
    return md_table(("target", "measured", "verdict"), rows)


def machine_line() -> str:
    """One line describing where the numbers come from."""
    load = ""
    with contextlib.suppress(OSError, AttributeError):
        load = " · load avg " + ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return (
        f"Python {platform.python_version()} ({sys.implementation.name}) · "
        f"{os.cpu_count()} CPUs · {platform.system()} {platform.machine()}{load}"
    )
