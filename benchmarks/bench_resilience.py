"""Benchmark: resilience vs its peers, side by side in one run (issue 2, "Benchmarks").

Run:  .venv/bin/python benchmarks/bench_resilience.py  [--quick] [--rounds N] [--only SECTION]

Sections (each prints a markdown table; a final table gives PASS/MISS per target):

* ``retry``   success path and fail-twice-then-succeed, sync and async, vs tenacity, backoff,
  stamina.  Every library gets a zero wait, and every sleep (ours, tenacity's ``sleep=``,
  and ``time.sleep`` / ``asyncio.sleep`` that backoff and stamina call) is replaced by the
  same no-op counting stub, so no contender pays for a real ``sleep(0)``; the stub's count
  is reported (a zero wait must never call sleep).
* ``breaker`` closed-state and open-state (rejection) cost vs pybreaker and circuitbreaker.
* ``limiter`` ``try_acquire`` decisions per second with 1 and 8 threads vs pyrate-limiter
  (token bucket and its default in-memory log), limits (fixed window, sliding window
  counter, moving window; in-memory) and the original design's simple locked bucket, with a
  rate so high that every call is allowed: the fraction granted shows refusals caused by
  lock contention.
* ``blocking`` blocking-acquire accuracy: 50/s, burst 5, 4 threads, 3 s, vs pyrate-limiter,
  aiolimiter (4 tasks: it is asyncio-only) and the original design's polling bucket.
* ``timeout`` cost per call in the main thread and in a worker thread vs timeout-decorator
  and func-timeout, and whether each really interrupts a call in each thread.

Per-call costs are the best of many short (~2 ms) samples taken in interleaved rounds
(``_peers_util``): on a shared machine the least disturbed sample is the truest one.  A
comparison target is judged on the median over rounds of the per-round ratio (samples of one
round share the machine's state), which is steadier than a ratio of two minima.  Compare
ratios, not absolute values.  Progress goes to stderr, results to stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import logging
import math
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _peers_original import SimpleLockedBucket
from _peers_util import (
    Target,
    calibrate,
    fmt_ns,
    fmt_rate,
    interleaved,
    machine_line,
    md_table,
    median,
    paired_ratio,
    per_call_async_ns,
    per_call_ns,
    percentile,
    quiet_gc,
    ratio,
    verdict_table,
)

import resilience
from resilience import Backoff, CircuitBreaker, CircuitOpenError, TokenBucket

perf_counter = time.perf_counter

TARGETS: list[Target] = []


def progress(msg: str) -> None:
    print(f"[bench_resilience] {msg}", file=sys.stderr, flush=True)


def emit(text: str = "") -> None:
    print(text, flush=True)


def best(samples: list[float]) -> float:
    return min(samples)


# =============================================================================================
# Reference: a plain call
# =============================================================================================


def plain() -> int:
    return 1


async def aplain() -> int:
    return 1


# =============================================================================================
# Retry
# =============================================================================================


class SleepStub:
    """A no-op sleep that counts its calls (sync and async)."""

    def __init__(self) -> None:
        self.calls = 0

    def sleep(self, seconds: float) -> None:
        self.calls += 1

    async def async_sleep(self, seconds: float) -> None:
        self.calls += 1


@contextlib.contextmanager
def stubbed_sleeps(stub: SleepStub) -> Iterator[None]:
    """Replace ``time.sleep`` and ``asyncio.sleep`` (looked up at call time by backoff and
    stamina/tenacity's default sleeps) with the stub while the retry section runs."""
    real_sleep, real_async = time.sleep, asyncio.sleep
    time.sleep = stub.sleep  # type: ignore[assignment]
    asyncio.sleep = stub.async_sleep  # type: ignore[assignment]
    try:
        yield
    finally:
        time.sleep = real_sleep
        asyncio.sleep = real_async


def make_flaky() -> Callable[[], int]:
    """Fails twice, then succeeds (state cycles every three calls)."""
    count = [0]

    def flaky() -> int:
        count[0] += 1
        if count[0] % 3:
            raise ValueError("transient")
        return 1

    return flaky


def make_aflaky() -> Callable[[], Any]:
    count = [0]

    async def aflaky() -> int:
        count[0] += 1
        if count[0] % 3:
            raise ValueError("transient")
        return 1

    return aflaky


def retry_decorators(stub: SleepStub) -> dict[str, Callable[[Callable[..., Any]], Any]]:
    """name -> decorator: 3 attempts, retry on ValueError, zero wait, for every library."""
    import backoff
    import stamina
    import tenacity

    stamina.instrumentation.set_on_retry_hooks([])  # no logging/metrics hooks (ours logs DEBUG)
    zero = Backoff(base=0.0, cap=0.0, jitter="none")

    def ours(func: Callable[..., Any]) -> Any:
        return resilience.retry(
            on=ValueError,
            attempts=3,
            backoff=zero,
            sleep=stub.sleep,
            async_sleep=stub.async_sleep,
        )(func)

    def tenacity_(func: Callable[..., Any]) -> Any:
        is_async = asyncio.iscoroutinefunction(func)
        return tenacity.retry(
            stop=tenacity.stop_after_attempt(3),
            wait=tenacity.wait_none(),
            retry=tenacity.retry_if_exception_type(ValueError),
            reraise=True,
            sleep=stub.async_sleep if is_async else stub.sleep,
        )(func)

    def backoff_(func: Callable[..., Any]) -> Any:
        return backoff.on_exception(
            backoff.constant, ValueError, max_tries=3, interval=0, jitter=None
        )(func)

    def stamina_(func: Callable[..., Any]) -> Any:
        return stamina.retry(
            on=ValueError, attempts=3, timeout=None, wait_initial=0, wait_max=0, wait_jitter=0
        )(func)

    return {"resilience": ours, "tenacity": tenacity_, "backoff": backoff_, "stamina": stamina_}


def bench_retry(rounds: int) -> None:
    progress("retry")
    stub = SleepStub()
    loop = asyncio.new_event_loop()
    try:
        with stubbed_sleeps(stub):
            decorators = retry_decorators(stub)
            sync_ok = {name: deco(plain) for name, deco in decorators.items()}
            sync_fail = {name: deco(make_flaky()) for name, deco in decorators.items()}
            async_ok = {name: deco(aplain) for name, deco in decorators.items()}
            async_fail = {name: deco(make_aflaky()) for name, deco in decorators.items()}

            # Sleep calls per fail-twice call (each call retries twice with a zero wait).
            sleeps: dict[str, tuple[float, float]] = {}
            for name in decorators:
                stub.calls = 0
                for _ in range(30):
                    assert sync_fail[name]() == 1
                s = stub.calls / 30
                stub.calls = 0
                for _ in range(30):
                    assert loop.run_until_complete(async_fail[name]()) == 1
                sleeps[name] = (s, stub.calls / 30)

            def sync_measure(fn: Callable[[], Any]) -> Callable[[], float]:
                n = calibrate(lambda k: per_call_ns(fn, k))
                return lambda: per_call_ns(fn, n)

            def async_measure(fn: Callable[[], Any]) -> Callable[[], float]:
                n = calibrate(lambda k: per_call_async_ns(loop, fn, k))
                return lambda: per_call_async_ns(loop, fn, n)

            contenders: dict[str, Callable[[], float]] = {
                "plain/sync": sync_measure(plain),
                "plain/async": async_measure(aplain),
            }
            for name in decorators:
                contenders[f"{name}/sync ok"] = sync_measure(sync_ok[name])
                contenders[f"{name}/sync fail2"] = sync_measure(sync_fail[name])
                contenders[f"{name}/async ok"] = async_measure(async_ok[name])
                contenders[f"{name}/async fail2"] = async_measure(async_fail[name])
            with quiet_gc():
                samples = interleaved(contenders, rounds)
    finally:
        loop.close()

    b = {name: best(v) for name, v in samples.items()}
    for mode in ("sync", "async"):
        ref_ok = b[f"resilience/{mode} ok"]
        ref_fail = b[f"resilience/{mode} fail2"]
        rows = [
            (
                f"plain {mode} call (reference)",
                fmt_ns(b[f"plain/{mode}"]),
                "",
                "",
                "",
                "",
            )
        ]
        for name in decorators:
            ok, fail = b[f"{name}/{mode} ok"], b[f"{name}/{mode} fail2"]
            calls = sleeps[name][0 if mode == "sync" else 1]
            rows.append(
                (
                    name,
                    fmt_ns(ok),
                    ratio(ok, ref_ok),
                    fmt_ns(fail),
                    ratio(fail, ref_fail),
                    f"{calls:g}",
                )
            )
        emit(f"### Retry, {mode}: 3 attempts, zero wait (best of {rounds} rounds)")
        emit()
        emit(
            md_table(
                (
                    "library",
                    "success path",
                    "vs resilience",
                    "fail twice, then succeed",
                    "vs resilience",
                    "sleep calls per fail-twice call",
                ),
                rows,
            )
        )
        emit()
        backoff_ok = b[f"backoff/{mode} ok"]
        paired = paired_ratio(samples[f"resilience/{mode} ok"], samples[f"backoff/{mode} ok"])
        TARGETS.append(
            Target(
                f"retry success path ({mode}) < half of backoff's",
                f"{fmt_ns(ref_ok)} vs {fmt_ns(backoff_ok)} (best: {ratio(ref_ok, backoff_ok)}; "
                f"per-round median: {paired:.2f}x)",
                paired < 0.5,
            )
        )
        TARGETS.append(
            Target(
                f"retry ({mode}): a zero wait never calls sleep",
                f"{sleeps['resilience'][0 if mode == 'sync' else 1]:g} sleep calls per call",
                sleeps["resilience"][0 if mode == "sync" else 1] == 0,
            )
        )
    emit(
        "> Every sleep is a counting no-op during this section (ours and tenacity through "
        "`sleep=`, backoff and stamina through `time.sleep`/`asyncio.sleep`), so the "
        "columns compare retry machinery only.  stamina's instrumentation hooks are off."
    )
    emit()


# =============================================================================================
# Circuit breaker
# =============================================================================================


def bench_breaker(rounds: int) -> None:
    progress("breaker")
    import circuitbreaker
    import pybreaker

    ours = CircuitBreaker(failure_threshold=5, recovery_timeout=60.0, expected_exception=ValueError)
    pb = pybreaker.CircuitBreaker(fail_max=5, reset_timeout=60)
    cb = circuitbreaker.CircuitBreaker(
        failure_threshold=5, recovery_timeout=60, expected_exception=ValueError
    )
    closed: dict[str, Callable[[], Any]] = {
        "resilience (decorator)": ours(plain),
        "resilience (.call)": functools.partial(ours.call, plain),
        "pybreaker (decorator)": pb(plain),
        "pybreaker (.call)": functools.partial(pb.call, plain),
        "circuitbreaker (decorator)": cb(plain),
    }

    def fail() -> int:
        raise ValueError("down")

    ours_open = CircuitBreaker(
        failure_threshold=5, recovery_timeout=60.0, expected_exception=ValueError
    )
    pb_open = pybreaker.CircuitBreaker(fail_max=5, reset_timeout=60)
    cb_open = circuitbreaker.CircuitBreaker(
        failure_threshold=5, recovery_timeout=60, expected_exception=ValueError
    )
    opened = {
        "resilience": (ours_open(fail), CircuitOpenError),
        "pybreaker": (pb_open(fail), pybreaker.CircuitBreakerError),
        "circuitbreaker": (cb_open(fail), circuitbreaker.CircuitBreakerError),
    }
    for fn, _ in opened.values():
        for _ in range(6):
            with contextlib.suppress(Exception):
                fn()
    assert ours_open.state is resilience.CircuitState.OPEN
    assert pb_open.current_state == "open"
    assert cb_open.opened

    def rejecting(fn: Callable[[], Any], err: type[BaseException]) -> Callable[[], None]:
        def call() -> None:
            try:
                fn()
            except err:
                pass
            else:  # pragma: no cover - would invalidate the measurement
                raise AssertionError("breaker did not reject")

        return call

    def raise_catch() -> None:
        try:
            raise ValueError("x")
        except ValueError:
            pass

    contenders: dict[str, Callable[[], float]] = {}

    def add(name: str, fn: Callable[[], Any]) -> None:
        n = calibrate(lambda k: per_call_ns(fn, k))
        contenders[name] = lambda: per_call_ns(fn, n)

    add("plain", plain)
    add("raise+catch", raise_catch)
    for name, fn in closed.items():
        add(f"closed {name}", fn)
    for name, (fn, err) in opened.items():
        add(f"open {name}", rejecting(fn, err))
    with quiet_gc():
        samples = interleaved(contenders, rounds)
    b = {name: best(v) for name, v in samples.items()}
    ref = b["closed resilience (decorator)"]
    rows = [("plain call (reference)", fmt_ns(b["plain"]), "")]
    rows += [
        (name, fmt_ns(b[f"closed {name}"]), ratio(b[f"closed {name}"], ref)) for name in closed
    ]
    emit(f"### Circuit breaker, CLOSED: a successful call (best of {rounds} rounds)")
    emit()
    emit(md_table(("breaker", "per call", "vs resilience (decorator)"), rows))
    emit()
    ref_open = b["open resilience"]
    rows = [("raise + catch an exception (reference)", fmt_ns(b["raise+catch"]), "")]
    rows += [
        (name, fmt_ns(b[f"open {name}"]), ratio(b[f"open {name}"], ref_open)) for name in opened
    ]
    emit(f"### Circuit breaker, OPEN: a rejected call, caught (best of {rounds} rounds)")
    emit()
    emit(md_table(("breaker", "per rejected call", "vs resilience"), rows))
    emit()
    cb_ns = b["closed circuitbreaker (decorator)"]
    paired = paired_ratio(
        samples["closed resilience (decorator)"], samples["closed circuitbreaker (decorator)"]
    )
    TARGETS.append(
        Target(
            "closed breaker < circuitbreaker's",
            f"{fmt_ns(ref)} vs {fmt_ns(cb_ns)} (best: {ratio(ref, cb_ns)}; "
            f"per-round median: {paired:.2f}x)",
            paired < 1.0,
        )
    )


# =============================================================================================
# Rate limiter: try_acquire
# =============================================================================================


def hammer(fn: Callable[[], bool], nthreads: int, duration: float) -> tuple[int, int, float]:
    """``nthreads`` threads call ``fn`` for ``duration`` s: (calls, grants, elapsed)."""
    barrier = threading.Barrier(nthreads + 1)
    stop = threading.Event()
    results: list[tuple[int, int]] = []
    lock = threading.Lock()

    def worker() -> None:
        calls = grants = 0
        is_set = stop.is_set
        barrier.wait()
        while not is_set():
            for _ in range(32):
                grants += fn()
            calls += 32
        with lock:
            results.append((calls, grants))

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(nthreads)]
    for t in threads:
        t.start()
    barrier.wait()
    start = perf_counter()
    time.sleep(duration)
    stop.set()
    for t in threads:
        t.join()
    elapsed = perf_counter() - start
    return sum(c for c, _ in results), sum(g for _, g in results), elapsed


def limiter_contenders() -> tuple[
    dict[str, Callable[[], bool]], list[Callable[[], None]], Callable[[], None]
]:
    """name -> a zero-argument try-acquire; every limit is far above the achievable call
    rate, so every call is allowed and any refusal comes from the limiter's own locking."""
    from limits import RateLimitItemPerSecond, storage, strategies
    from pyrate_limiter import Duration, InMemoryBucket, Limiter, Rate, StateBucket
    from pyrate_limiter import TokenBucket as PyrateTokenBucket

    ours = TokenBucket(1e9, 1e6)
    simple = SimpleLockedBucket(1e9, 1e6)
    pyrate_tb = Limiter(
        StateBucket([Rate(10**9, Duration.SECOND, burst=10**6)], algorithm=PyrateTokenBucket())
    )
    pyrate_log = Limiter(InMemoryBucket([Rate(10**6, 100)]))  # 1e7/s over a 100 ms window
    item = RateLimitItemPerSecond(10**9)
    mem = storage.MemoryStorage()
    fixed = strategies.FixedWindowRateLimiter(mem)
    counter = strategies.SlidingWindowCounterRateLimiter(mem)
    moving = strategies.MovingWindowRateLimiter(mem)
    contenders: dict[str, Callable[[], bool]] = {
        "resilience TokenBucket": ours.try_acquire,
        "original design's locked bucket": simple.try_acquire,
        "pyrate-limiter token bucket": functools.partial(
            pyrate_tb.try_acquire, "bench", blocking=False
        ),
        "pyrate-limiter in-memory log": functools.partial(
            pyrate_log.try_acquire, "bench", blocking=False
        ),
        "limits fixed window": functools.partial(fixed.hit, item, "fixed"),
        "limits sliding window counter": functools.partial(counter.hit, item, "counter"),
        "limits moving window": functools.partial(moving.hit, item, "moving"),
    }

    def settle() -> None:
        """Empty the peers' in-memory state and cancel limits' pending expiry timer, so that
        their background threads have nothing left to do while the next contender runs."""
        mem.reset()
        timer = getattr(mem, "timer", None)
        if timer is not None:
            timer.cancel()
            if timer.is_alive():
                timer.join()
        for bucket in pyrate_log.buckets():
            bucket.flush()

    closers: list[Callable[[], None]] = [pyrate_tb.close, pyrate_log.close, settle]
    return contenders, closers, settle


def bench_limiter(rounds: int, threaded_rounds: int, duration: float) -> None:
    progress("limiter try_acquire")
    contenders, closers, settle = limiter_contenders()
    try:
        one: dict[str, Callable[[], float]] = {}
        for name, fn in contenders.items():
            n = calibrate(lambda k, fn=fn: per_call_ns(fn, k))
            one[name] = lambda fn=fn, n=n: per_call_ns(fn, n)
        with quiet_gc():
            single = interleaved(one, rounds, settle)
        progress("limiter try_acquire, 8 threads")
        multi: dict[str, list[tuple[int, int, float]]] = {name: [] for name in contenders}
        with quiet_gc():
            names = list(contenders)
            for number in range(threaded_rounds):
                shift = number % len(names)
                for name in names[shift:] + names[:shift]:
                    multi[name].append(hammer(contenders[name], 8, duration))
                    settle()
    finally:
        for close in closers:
            with contextlib.suppress(Exception):
                close()

    ref_name = "resilience TokenBucket"
    per_call = {name: best(v) for name, v in single.items()}
    rate8 = {name: max(c / e for c, _, e in v) for name, v in multi.items()}
    rate8_med = {name: median([c / e for c, _, e in v]) for name, v in multi.items()}
    frac8 = {
        name: sum(g for _, g, _ in v) / max(1, sum(c for c, _, _ in v)) for name, v in multi.items()
    }
    rows = []
    for name in contenders:
        rows.append(
            (
                name,
                fmt_ns(per_call[name]),
                fmt_rate(1e9 / per_call[name]),
                ratio(1e9 / per_call[name], 1e9 / per_call[ref_name]),
                f"{fmt_rate(rate8[name])} (median {fmt_rate(rate8_med[name])})",
                ratio(rate8[name], rate8[ref_name]),
                f"{frac8[name] * 100:.2f} %",
            )
        )
    emit(
        f"### Rate limiter `try_acquire`: decisions per second (every call allowed; best of "
        f"{rounds} rounds; 8 threads: best of {threaded_rounds} rounds of {duration:g} s)"
    )
    emit()
    emit(
        md_table(
            (
                "limiter",
                "1 thread: per call",
                "1 thread: decisions/s",
                "vs resilience",
                "8 threads: decisions/s",
                "vs resilience",
                "8 threads: granted / allowed",
            ),
            rows,
        )
    )
    emit()
    emit(
        "> Limits: ours 1e9/s with a burst of 1e6; pyrate-limiter `Rate(10**9/s, burst=10**6)` "
        "(token bucket) and `Rate(10**6 per 100 ms)` (its default log bucket), both through "
        "`Limiter.try_acquire(blocking=False)`; limits `10**9 per second` on `MemoryStorage` "
        "(`hit`); the peers' in-memory state is emptied between samples (untimed) so that "
        "their expiry/leak threads do not run during another contender's sample.  No call is "
        "refused by the rate, so *granted / allowed* below 100 % means refusals caused by lock "
        "contention.  limits' moving window keeps one entry per hit "
        "in a list (insertion cost grows with the hits of the last second)."
    )
    emit()
    simple_name = "original design's locked bucket"
    paired1 = paired_ratio(single[simple_name], single[ref_name])  # rate ratio = cost ratio
    TARGETS.append(
        Target(
            "try_acquire, 1 thread >= original design's locked bucket",
            f"{fmt_rate(1e9 / per_call[ref_name])} vs {fmt_rate(1e9 / per_call[simple_name])} "
            f"(best: {ratio(per_call[simple_name], per_call[ref_name])}; per-round median: "
            f"{paired1:.2f}x)",
            paired1 >= 1.0,
        )
    )
    limits_names = [n for n in contenders if n.startswith("limits")]
    best_limits = max(limits_names, key=lambda n: rate8[n])
    paired8 = paired_ratio(
        [c / e for c, _, e in multi[ref_name]], [c / e for c, _, e in multi[best_limits]]
    )
    TARGETS.append(
        Target(
            "try_acquire, 8 threads >= limits (its fastest strategy)",
            f"{fmt_rate(rate8[ref_name])} vs {fmt_rate(rate8[best_limits])} ({best_limits}; "
            f"best: {ratio(rate8[ref_name], rate8[best_limits])}; per-round median: "
            f"{paired8:.2f}x)",
            paired8 >= 1.0,
        )
    )
    TARGETS.append(
        Target(
            "try_acquire never refuses because of a lock (8 threads)",
            f"{frac8[ref_name] * 100:.3f} % of allowed calls granted",
            frac8[ref_name] == 1.0,
        )
    )


# =============================================================================================
# Blocking acquire accuracy
# =============================================================================================

RATE, BURST, THREADS = 50.0, 5, 4


@dataclass
class Accuracy:
    granted: int
    bound_t: float
    span_bound: float
    worst_window: int
    over_grants: int
    late_median: float
    late_p99: float
    late_max: float


def analyse(
    records: list[tuple[float, float]], t0: float, seconds: float, tol: float = 0.001
) -> Accuracy:
    """Accuracy of grants ``(request time, release time)`` of a 50/s, burst-5 limiter.

    * bound over the run: ``BURST + RATE * seconds``; bound over the span actually used:
      ``BURST + RATE * (last release - t0)`` (the last permit of the run is due exactly at
      the end, so a fixed-length bound cannot be reached by any real limiter).
    * worst 1-s window: most releases in any ``[a_i, a_i + 1 s]``; bound ``BURST + RATE``.
    * over-grants: permits beyond ``BURST + RATE * (span + tol)`` in the worst window of any
      length (``tol`` = 1 ms absorbs the time between a decision and its timestamp).
    * lateness: release time minus the earliest time the permit was allowed: the later of its
      request and the moment a bucket charged with the grants actually released before it
      had a token again (GCRA virtual scheduling, no drift from earlier lateness).
    """
    end = t0 + seconds
    grants = sorted((a, r) for r, a in records if a <= end)
    times = [a for a, _ in grants]
    n = len(times)
    worst = 0
    j = 0
    for i in range(n):
        while j < n and times[j] <= times[i] + 1.0:
            j += 1
        worst = max(worst, j - i)
    over = 0
    for i in range(n):
        for k in range(i, n):
            allowed = math.floor(BURST + RATE * (times[k] - times[i] + tol) + 1e-9)
            over = max(over, k - i + 1 - allowed)
    interval = 1.0 / RATE
    tau = (BURST - 1) * interval
    tat = t0
    lateness = []
    for a, r in grants:
        earliest = max(r, tat - tau, t0)
        lateness.append(max(0.0, a - earliest))
        tat = max(a, tat) + interval
    last = times[-1] if times else t0
    return Accuracy(
        granted=n,
        bound_t=BURST + RATE * seconds,
        span_bound=BURST + RATE * (last - t0),
        worst_window=worst,
        over_grants=over,
        late_median=percentile(lateness, 0.5),
        late_p99=percentile(lateness, 0.99),
        late_max=max(lateness) if lateness else math.nan,
    )


def run_threaded(
    acquire_until: Callable[[float], bool], seconds: float
) -> tuple[list[tuple[float, float]], float]:
    """THREADS threads call ``acquire_until(end)`` in a loop until ``end``."""
    barrier = threading.Barrier(THREADS + 1)
    records: list[tuple[float, float]] = []
    lock = threading.Lock()
    box: dict[str, float] = {}

    def worker() -> None:
        barrier.wait()
        end = box["end"]
        mine = []
        while True:
            r = perf_counter()
            if r >= end:
                break
            if acquire_until(end):
                mine.append((r, perf_counter()))
        with lock:
            records.extend(mine)

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(THREADS)]
    for t in threads:
        t.start()
    t0 = perf_counter()
    box["end"] = t0 + seconds
    barrier.wait()
    for t in threads:
        t.join()
    return records, t0


def run_aiolimiter(seconds: float) -> tuple[list[tuple[float, float]], float]:
    from aiolimiter import AsyncLimiter

    records: list[tuple[float, float]] = []

    async def main() -> float:
        limiter = AsyncLimiter(BURST, BURST / RATE)  # leaky bucket: 5 per 0.1 s = 50/s, burst 5
        t0 = perf_counter()
        end = t0 + seconds

        async def task() -> None:
            while (r := perf_counter()) < end:
                try:
                    await asyncio.wait_for(limiter.acquire(), end - r)
                except TimeoutError:
                    break
                records.append((r, perf_counter()))

        await asyncio.gather(*(task() for _ in range(THREADS)))
        return t0

    t0 = asyncio.run(main())
    return records, t0


def bench_blocking(seconds: float, rounds: int) -> None:
    from pyrate_limiter import Duration, Limiter, Rate, StateBucket
    from pyrate_limiter import TokenBucket as PyrateTokenBucket

    oversleep: list[float] = []  # how late time.sleep itself woke our waiters (this round)

    def recording_sleep(wait: float) -> None:
        start = perf_counter()
        time.sleep(wait)
        oversleep.append(perf_counter() - start - wait)

    def ours() -> Callable[[float], bool]:
        oversleep.clear()
        bucket = TokenBucket(RATE, BURST, sleep=recording_sleep)
        clock = time.monotonic
        return lambda end: bucket.acquire(timeout=max(0.0, end - clock()))

    def pyrate(buffer_ms: int) -> Callable[[], Callable[[float], bool]]:
        def make() -> Callable[[float], bool]:
            limiter = Limiter(
                StateBucket(
                    [Rate(int(RATE), Duration.SECOND, burst=BURST)], algorithm=PyrateTokenBucket()
                ),
                buffer_ms=buffer_ms,
            )
            closers.append(limiter.close)

            def acquire(end: float) -> bool:
                left = end - time.monotonic()
                if left <= 0:
                    return False
                return bool(limiter.try_acquire("bench", blocking=True, timeout=left))

            return acquire

        return make

    def original() -> Callable[[float], bool]:
        bucket = SimpleLockedBucket(RATE, BURST)
        return lambda end: bucket.acquire(timeout=max(0.0, end - time.monotonic()))

    closers: list[Callable[[], None]] = []
    ours_name = "resilience TokenBucket.acquire"
    makers: dict[str, Callable[[], Callable[[float], bool]] | None] = {
        ours_name: ours,
        "pyrate-limiter token bucket (default buffer_ms=50)": pyrate(50),
        "pyrate-limiter token bucket (buffer_ms=0)": pyrate(0),
        "aiolimiter (4 asyncio tasks)": None,
        "original design's polling bucket": original,
    }
    results: dict[str, list[Accuracy]] = {name: [] for name in makers}
    ours_oversleep: list[list[float]] = []
    for number in range(rounds):
        for name, make in makers.items():
            progress(f"blocking acquire, round {number + 1}: {name}")
            if make is None:
                records, t0 = run_aiolimiter(seconds)
            else:
                records, t0 = run_threaded(make(), seconds)
            results[name].append(analyse(records, t0, seconds))
            if name == ours_name:
                ours_oversleep.append(list(oversleep))
    for close in closers:
        with contextlib.suppress(Exception):
            close()

    def pick(runs: list[Accuracy]) -> int:
        return min(range(len(runs)), key=lambda i: runs[i].late_p99)

    rows = []
    for name, runs in results.items():
        acc = runs[pick(runs)]
        rows.append(
            (
                name,
                f"{acc.granted} / {acc.bound_t:g}",
                f"{acc.granted / acc.span_bound * 100:.2f} %",
                f"{max(r.worst_window for r in runs)} / {BURST + RATE:g}",
                max(r.over_grants for r in runs),
                f"{acc.late_median * 1e3:.3f} ms",
                " / ".join(f"{r.late_p99 * 1e3:.2f}" for r in runs) + " ms",
                f"{acc.late_max * 1e3:.2f} ms",
            )
        )
    emit(
        f"### Blocking acquire accuracy: {RATE:g}/s, burst {BURST}, {THREADS} threads, "
        f"{seconds:g} s ({rounds} interleaved rounds)"
    )
    emit()
    emit(
        md_table(
            (
                "limiter",
                "granted / bound over the run",
                "granted / bound over the span used",
                "worst 1-s window / bound (all rounds)",
                "over-grants (all rounds)",
                "lateness median",
                "lateness p99 (each round)",
                "lateness max",
            ),
            rows,
        )
    )
    emit()
    best_ours = pick(results[ours_name])
    sleeps = ours_oversleep[best_ours]
    emit(
        "> Bound over the run: burst + rate x T.  The run's last permit is due exactly at T, "
        "so the achievable count is judged against the span used (start to last release).  "
        "Over-grants: permits beyond burst + rate x (window + 1 ms) in the worst window of any "
        "length.  Lateness: release time minus the earliest time that permit was allowed (its "
        "request, or when a bucket charged with the grants released before it had a token "
        "again).  Columns other than the all-rounds ones come from each limiter's round with "
        "the lowest p99 (the least disturbed).  In that round, `time.sleep` itself woke "
        f"resilience's waiters late by median {percentile(sleeps, 0.5) * 1e3:.3f} ms, "
        f"p99 {percentile(sleeps, 0.99) * 1e3:.3f} ms, max "
        f"{(max(sleeps) if sleeps else math.nan) * 1e3:.2f} ms ({len(sleeps)} sleeps): the "
        "operating system's share of the lateness."
    )
    emit()
    runs = results[ours_name]
    acc = runs[best_ours]
    share = acc.granted / acc.span_bound
    TARGETS.append(
        Target(
            "blocking acquire grants >= 99.5 % of the bound",
            f"{share * 100:.2f} % ({acc.granted} of {acc.span_bound:.2f}; {acc.granted} of "
            f"{acc.bound_t:g} over the whole run)",
            share >= 0.995,
        )
    )
    over = max(r.over_grants for r in runs)
    worst = max(r.worst_window for r in runs)
    TARGETS.append(
        Target(
            "blocking acquire: 0 over-grants",
            f"{over} in {len(runs)} rounds (worst 1-s window {worst} / {BURST + RATE:g})",
            over == 0 and worst <= BURST + RATE,
        )
    )
    TARGETS.append(
        Target(
            "blocking acquire: lateness p99 <= 1 ms",
            f"p99 {acc.late_p99 * 1e3:.3f} ms (median {acc.late_median * 1e3:.3f} ms; "
            f"time.sleep's own oversleep p99 {percentile(sleeps, 0.99) * 1e3:.3f} ms)",
            acc.late_p99 <= 0.001,
        )
    )


# =============================================================================================
# Timeout
# =============================================================================================


def in_thread(fn: Callable[[], Any]) -> Any:
    """Run ``fn`` in a fresh worker thread; return its result (re-raise its exception)."""
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:
            box["error"] = exc

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join()
    if "error" in box:
        raise box["error"]
    return box["value"]


def spin(seconds: float) -> int:
    """Busy Python loop (interruptible by any strategy)."""
    end = perf_counter() + seconds
    n = 0
    while perf_counter() < end:
        n += 1
    return n


def nap(seconds: float) -> int:
    """A blocking C call (``time.sleep``)."""
    time.sleep(seconds)
    return 0


def check_interrupts(
    deco: Callable[[Callable[..., Any]], Any], body: Callable[[float], int]
) -> str:
    """Does ``deco`` (limit 0.05 s) stop ``body(0.4)`` early?  Returns a short verdict."""
    guarded = deco(body)
    start = perf_counter()
    try:
        guarded(0.4)
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:
        took = perf_counter() - start
        kind = type(exc).__name__.lower()
        if isinstance(exc, TimeoutError) or "timeout" in kind or "timedout" in kind:
            return f"yes ({took * 1e3:.0f} ms)" if took < 0.3 else f"late ({took * 1e3:.0f} ms)"
        return f"no ({type(exc).__name__})"
    return "no (ran to the end)"


def bench_timeout(rounds: int) -> None:
    progress("timeout")
    import func_timeout
    import timeout_decorator

    limit = 10.0
    decorators: dict[str, Callable[[float], Callable[[Callable[..., Any]], Any]]] = {
        "resilience @timeout": resilience.timeout,
        "timeout-decorator (signals)": timeout_decorator.timeout,
        "timeout-decorator (use_signals=False)": lambda s: timeout_decorator.timeout(
            s, use_signals=False
        ),
        "func-timeout @func_set_timeout": func_timeout.func_set_timeout,
    }
    slow = {"timeout-decorator (use_signals=False)"}

    # Does it work, per thread?  (busy Python loop, then a blocking sleep)
    works: dict[tuple[str, str], str] = {}
    for name, deco in decorators.items():
        for where in ("main", "worker"):
            for body_name, body in (("spin", spin), ("sleep", nap)):

                def check(deco: Any = deco, body: Any = body) -> str:
                    try:
                        return check_interrupts(deco(0.05), body)
                    except ValueError as exc:  # e.g. "signal only works in main thread"
                        return f"no ({type(exc).__name__})"

                works[(name, f"{where}/{body_name}")] = (
                    check() if where == "main" else in_thread(check)
                )

    # Cost of one call of a trivial function with a generous limit.
    contenders: dict[str, Callable[[], float]] = {}

    def add(label: str, fn: Callable[[], Any], where: str, fixed_n: int | None = None) -> None:
        def measure(k: int) -> float:
            return per_call_ns(fn, k) if where == "main" else in_thread(lambda: per_call_ns(fn, k))

        n = fixed_n if fixed_n is not None else calibrate(measure)
        contenders[f"{label}|{where}"] = lambda: measure(n)

    add("plain call", plain, "main")
    for name, deco in decorators.items():
        guarded = deco(limit)(plain)
        for where in ("main", "worker"):
            if works[(name, f"{where}/spin")].startswith("no ("):
                continue
            add(name, guarded, where, fixed_n=1 if name in slow else None)
    with quiet_gc():
        samples = interleaved(contenders, rounds)
    b = {name: best(v) for name, v in samples.items()}
    ref_main = b["resilience @timeout|main"]
    ref_worker = b.get("resilience @timeout|worker", math.nan)
    rows = [("plain call (reference)", fmt_ns(b["plain call|main"]), "", "", "", "", "")]
    for name in decorators:
        main_ns = b.get(f"{name}|main", math.nan)
        worker_ns = b.get(f"{name}|worker", math.nan)
        rows.append(
            (
                name,
                fmt_ns(main_ns),
                ratio(main_ns, ref_main),
                fmt_ns(worker_ns),
                ratio(worker_ns, ref_worker),
                f"main: {works[(name, 'main/spin')]}; worker: {works[(name, 'worker/spin')]}",
                f"main: {works[(name, 'main/sleep')]}; worker: {works[(name, 'worker/sleep')]}",
            )
        )
    emit(f"### Timeout: cost per call of a trivial function (best of {rounds} rounds)")
    emit()
    emit(
        md_table(
            (
                "decorator",
                "main thread",
                "vs resilience",
                "worker thread",
                "vs resilience",
                "stops a busy loop (0.05 s limit)",
                "stops time.sleep(0.4)",
            ),
            rows,
        )
    )
    emit()
    emit(
        "> n/a: the decorator does not work in that thread.  resilience uses SIGALRM in the "
        "main thread and a shared watchdog thread elsewhere (an exception injected at the next "
        "bytecode: a blocking C call is interrupted only when it returns).  func-timeout runs "
        "every call in a new thread (the caller gets its exception on time, the call keeps "
        "running); timeout-decorator without signals runs every call in a new process."
    )
    emit()
    for where, value in (("main", ref_main), ("worker", ref_worker)):
        ok = works[("resilience @timeout", f"{where}/spin")].startswith("yes")
        TARGETS.append(
            Target(
                f"timeout works in the {where} thread at <= 20 µs per call",
                f"{fmt_ns(value)}; interrupts a busy loop: "
                f"{works[('resilience @timeout', f'{where}/spin')]}",
                ok and value <= 20_000,
            )
        )


# =============================================================================================


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--rounds", type=int, default=25, help="interleaved rounds of short samples (default 25)"
    )
    parser.add_argument("--quick", action="store_true", help="fewer rounds, shorter runs")
    parser.add_argument(
        "--only",
        action="append",
        choices=("retry", "breaker", "limiter", "blocking", "timeout"),
        help="run only these sections (repeatable)",
    )
    args = parser.parse_args(argv)
    rounds = 5 if args.quick else args.rounds
    sections = args.only or ["retry", "breaker", "limiter", "blocking", "timeout"]
    logging.disable(logging.WARNING)  # a library's retry/breaker warnings must not hit stderr
    started = perf_counter()
    emit("## bench_resilience: resilience vs tenacity, backoff, stamina, pybreaker, ...")
    emit()
    emit(f"> {machine_line()}")
    emit()
    if "retry" in sections:
        bench_retry(rounds)
    if "breaker" in sections:
        bench_breaker(rounds)
    if "limiter" in sections:
        bench_limiter(rounds, 3 if args.quick else 9, 0.1)
    if "blocking" in sections:
        bench_blocking(1.0 if args.quick else 3.0, 1 if args.quick else 2)
    if "timeout" in sections:
        bench_timeout(rounds)
    emit("### Targets (issue 2)")
    emit()
    emit(verdict_table(TARGETS))
    emit()
    emit(f"> bench_resilience ran in {perf_counter() - started:.0f} s.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
