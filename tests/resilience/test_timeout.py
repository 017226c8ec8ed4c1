"""Tests for resilience.timeout: Deadline, and @timeout in the main thread, workers and asyncio."""

from __future__ import annotations

import asyncio
import importlib
import inspect
import math
import random
import signal
import threading
import time
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any

import pytest

from resilience import Deadline, DeadlineExceeded, timeout
from resilience.testing import FakeClock, stop_timeout_watchdog

# `resilience.timeout` the attribute is the decorator; the module is reached by name.
timeout_module = importlib.import_module("resilience.timeout")

HAS_SIGALRM = hasattr(signal, "setitimer") and hasattr(signal, "SIGALRM")
needs_sigalrm = pytest.mark.skipif(not HAS_SIGALRM, reason="needs SIGALRM/setitimer")


@pytest.fixture(autouse=True)
def _no_watchdog_left() -> Iterator[None]:
    """Stop the watchdog thread after each test so no thread outlives it."""
    yield
    stop_timeout_watchdog()
    assert not [t for t in threading.enumerate() if t.name == "resilience-timeout-watchdog"]


@pytest.fixture
def saved_sigalrm() -> Iterator[None]:
    """Save SIGALRM's handler and timer (pytest-timeout's) and put them back afterwards."""
    handler = signal.getsignal(signal.SIGALRM)
    delay, interval = signal.getitimer(signal.ITIMER_REAL)
    started = time.monotonic()
    yield
    signal.setitimer(signal.ITIMER_REAL, 0)
    signal.signal(signal.SIGALRM, handler)
    if delay > 0:
        left = max(delay - (time.monotonic() - started), 0.001)
        signal.setitimer(signal.ITIMER_REAL, left, interval)


def spin(seconds: float) -> int:
    """Busy Python loop for about `seconds` (interruptible by async exceptions)."""
    end = time.monotonic() + seconds
    n = 0
    while time.monotonic() < end:
        n += 1
    return n


def in_thread(func: Callable[[], Any]) -> Any:
    """Run func in a real worker thread; return its result or re-raise its exception."""
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["result"] = func()
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(10)
    assert not thread.is_alive()
    if "error" in box:
        raise box["error"]
    return box["result"]


# -- Deadline ----------------------------------------------------------------------------


def test_deadline_counts_down_with_the_clock() -> None:
    """remaining/elapsed/expired follow the injected clock."""
    clock = FakeClock(10.0)
    d = Deadline(5.0, clock=clock)
    assert d.remaining() == 5.0 and d.elapsed() == 0.0 and not d.expired
    clock.advance(3.0)
    assert d.remaining() == 2.0 and d.elapsed() == 3.0
    d.check()
    clock.advance(2.0)
    assert d.expired and d.remaining() == 0.0
    clock.advance(1.0)
    assert d.remaining() == 0.0  # never negative


def test_deadline_check_raises_deadline_exceeded() -> None:
    """check() raises DeadlineExceeded (a TimeoutError) naming the step once expired."""
    clock = FakeClock()
    d = Deadline(1.0, clock=clock)
    clock.advance(1.0)
    with pytest.raises(DeadlineExceeded, match="download exceeded its deadline of 1 s"):
        d.check("download")
    with pytest.raises(TimeoutError):
        d.check()


def test_unlimited_deadline() -> None:
    """Deadline(None) never expires and reports infinite remaining time."""
    clock = FakeClock()
    d = Deadline(None, clock=clock)
    clock.advance(1e9)
    assert d.remaining() == math.inf and not d.expired
    d.check()
    assert d.elapsed() == 1e9
    assert repr(d) == "Deadline(None)"


def test_zero_deadline_is_already_expired() -> None:
    """Deadline(0) is expired at once."""
    assert Deadline(0, clock=FakeClock()).expired


@pytest.mark.parametrize(
    ("kwargs", "error", "param"),
    [
        ({"seconds": -1.0}, ValueError, "seconds"),
        ({"seconds": math.nan}, ValueError, "seconds"),
        ({"seconds": "5"}, TypeError, "seconds"),
        ({"seconds": True}, TypeError, "seconds"),
        ({"seconds": 1.0, "clock": 5}, TypeError, "clock"),
    ],
)
def test_deadline_validation(kwargs: dict[str, Any], error: type[Exception], param: str) -> None:
    """Bad Deadline arguments raise an error naming the parameter."""
    with pytest.raises(error, match=param):
        Deadline(**kwargs)


@pytest.mark.parametrize(
    ("value", "error"),
    [(0, ValueError), (-1.0, ValueError), (math.nan, ValueError), (math.inf, ValueError),
     ("1", TypeError), (None, TypeError), (True, TypeError)],
)  # fmt: skip
def test_timeout_validation(value: Any, error: type[Exception]) -> None:
    """timeout() rejects non-positive, non-finite and non-numeric limits, naming `seconds`."""
    with pytest.raises(error, match="seconds"):
        timeout(value)


def test_timeout_rejects_non_callables() -> None:
    """Decorating something that is not callable raises TypeError."""
    with pytest.raises(TypeError):
        timeout(1.0)(42)  # type: ignore[arg-type]


def test_signature_and_metadata_are_preserved() -> None:
    """The wrapper keeps name, docstring and signature."""

    @timeout(1.0)
    def documented(a: int, *, b: str = "x") -> str:
        """Doc."""
        return b * a

    assert documented.__name__ == "documented" and documented.__doc__ == "Doc."
    assert inspect.signature(documented) == inspect.signature(documented.__wrapped__)  # type: ignore[attr-defined]
    assert documented(3, b="y") == "yyy"


# -- main thread (SIGALRM) ---------------------------------------------------------------


@needs_sigalrm
def test_main_thread_busy_loop_times_out(saved_sigalrm: None) -> None:
    """A CPU-bound call in the main thread is stopped near its limit with a clear message."""

    @timeout(0.05)
    def busy() -> int:
        return spin(5.0)

    started = time.monotonic()
    with pytest.raises(DeadlineExceeded, match=r"busy timed out after 0\.05 s") as info:
        busy()
    assert isinstance(info.value, TimeoutError)
    assert time.monotonic() - started < 1.0


@needs_sigalrm
def test_main_thread_blocking_sleep_is_interrupted(saved_sigalrm: None) -> None:
    """In the main thread a blocking time.sleep is interrupted by the signal."""

    @timeout(0.05)
    def sleeper() -> None:
        time.sleep(3.0)

    started = time.monotonic()
    with pytest.raises(DeadlineExceeded):
        sleeper()
    assert time.monotonic() - started < 1.0


@needs_sigalrm
def test_main_thread_fast_call_restores_pytest_timeouts_alarm(saved_sigalrm: None) -> None:
    """A call that finishes in time returns its value; the previous handler/timer survive."""
    before_handler = signal.getsignal(signal.SIGALRM)
    signal.setitimer(signal.ITIMER_REAL, 50.0)

    @timeout(1.0)
    def fast(x: int) -> int:
        return x * 2

    assert fast(21) == 42
    assert signal.getsignal(signal.SIGALRM) is before_handler
    left, _ = signal.getitimer(signal.ITIMER_REAL)
    assert 49.0 < left <= 50.0


@needs_sigalrm
def test_previous_handler_and_timer_are_restored_after_a_timeout(saved_sigalrm: None) -> None:
    """After a timed-out call, a custom handler is back and its timer keeps its remaining time."""
    fired: list[int] = []

    def custom(signum: int, frame: FrameType | None) -> None:
        fired.append(signum)

    signal.signal(signal.SIGALRM, custom)
    signal.setitimer(signal.ITIMER_REAL, 5.0)

    @timeout(0.05)
    def busy() -> None:
        spin(2.0)

    with pytest.raises(DeadlineExceeded):
        busy()
    assert signal.getsignal(signal.SIGALRM) is custom
    left, _ = signal.getitimer(signal.ITIMER_REAL)
    assert 4.0 < left < 5.0
    assert fired == []


@needs_sigalrm
def test_earlier_previous_timer_still_fires_on_time(saved_sigalrm: None) -> None:
    """A previous timer due before our limit is delivered to its handler on time, once."""
    fired: list[float] = []
    started = time.monotonic()

    def custom(signum: int, frame: FrameType | None) -> None:
        fired.append(time.monotonic() - started)

    signal.signal(signal.SIGALRM, custom)
    signal.setitimer(signal.ITIMER_REAL, 0.03)

    @timeout(2.0)
    def work() -> str:
        spin(0.15)
        return "done"

    assert work() == "done"
    assert len(fired) == 1 and 0.02 < fired[0] < 0.14
    assert signal.getsignal(signal.SIGALRM) is custom
    assert signal.getitimer(signal.ITIMER_REAL)[0] == 0.0  # delivered: not re-armed


@needs_sigalrm
def test_previous_timer_that_expired_during_the_call_fires_afterwards(saved_sigalrm: None) -> None:
    """If our limit was shorter, a previous timer is re-armed and still delivered later."""
    fired: list[int] = []

    def custom(signum: int, frame: FrameType | None) -> None:
        fired.append(signum)

    signal.signal(signal.SIGALRM, custom)
    signal.setitimer(signal.ITIMER_REAL, 0.08)

    @timeout(0.03)
    def busy() -> None:
        spin(1.0)

    with pytest.raises(DeadlineExceeded):
        busy()
    assert fired == []
    spin(0.15)
    assert fired == [signal.SIGALRM]


@needs_sigalrm
def test_nested_timeouts_in_the_main_thread(saved_sigalrm: None) -> None:
    """The shorter of two nested limits wins, and each raises with its own message."""

    @timeout(1.0)
    def inner_long() -> None:
        spin(3.0)

    @timeout(0.05)
    def outer_short() -> None:
        inner_long()

    started = time.monotonic()
    with pytest.raises(DeadlineExceeded, match="outer_short"):
        outer_short()
    assert time.monotonic() - started < 0.9

    @timeout(0.05)
    def inner_short() -> None:
        spin(3.0)

    @timeout(2.0)
    def outer_long() -> str:
        with pytest.raises(DeadlineExceeded, match="inner_short"):
            inner_short()
        spin(0.05)  # the outer alarm is still armed and not fired early
        return "outer done"

    assert outer_long() == "outer done"


@needs_sigalrm
def test_no_late_alarm_after_return_in_the_main_thread(saved_sigalrm: None) -> None:
    """Calls racing their limit either return or raise inside; nothing fires afterwards."""
    rng = random.Random(1)

    @timeout(0.002)
    def racy(seconds: float) -> str:
        spin(seconds)
        return "ok"

    outcomes = {"ok": 0, "timeout": 0}
    for _ in range(150):
        try:
            outcomes[racy(rng.uniform(0.0, 0.004))] += 1
        except DeadlineExceeded:
            outcomes["timeout"] += 1
    spin(0.05)  # a late SIGALRM would raise here
    assert outcomes["ok"] > 0 and outcomes["timeout"] > 0


def test_main_thread_falls_back_to_the_watchdog_without_sigalrm(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Where SIGALRM is unavailable (e.g. Windows) the main thread uses the watchdog."""
    monkeypatch.setattr(timeout_module, "_SIGNALS_USABLE", False)
    before = signal.getsignal(signal.SIGALRM) if HAS_SIGALRM else None

    @timeout(0.05)
    def busy() -> None:
        spin(3.0)

    with pytest.raises(DeadlineExceeded, match="busy timed out"):
        busy()
    if HAS_SIGALRM:
        assert signal.getsignal(signal.SIGALRM) is before


# -- worker threads (watchdog) -----------------------------------------------------------


def test_worker_thread_busy_loop_times_out() -> None:
    """A CPU-bound call in a worker thread raises DeadlineExceeded near its limit."""

    @timeout(0.05)
    def busy() -> int:
        return spin(5.0)

    def run() -> float:
        started = time.monotonic()
        with pytest.raises(DeadlineExceeded, match=r"busy timed out after 0\.05 s"):
            busy()
        return time.monotonic() - started

    assert in_thread(run) < 1.0


def test_worker_thread_fast_call_returns_and_nothing_fires_later() -> None:
    """Fast calls in a worker return their values and no exception arrives afterwards."""

    @timeout(0.05)
    def fast(x: int) -> int:
        return x + 1

    def run() -> int:
        total = sum(fast(i) for i in range(200))
        spin(0.1)  # well past every limit: a leaked entry would inject here
        return total

    assert in_thread(run) == sum(range(1, 201))


def test_worker_blocking_call_is_interrupted_only_when_it_returns() -> None:
    """Documented limit: a blocking C call in a worker is interrupted when it returns."""

    @timeout(0.03)
    def sleeper() -> None:
        time.sleep(0.2)
        spin(1.0)

    def run() -> float:
        started = time.monotonic()
        with pytest.raises(DeadlineExceeded):
            sleeper()
        return time.monotonic() - started

    assert 0.19 < in_thread(run) < 1.0


def test_no_late_injection_after_return_in_a_worker() -> None:
    """Worker calls racing their limit either return or raise inside; nothing escapes later."""
    rng = random.Random(2)

    @timeout(0.002)
    def racy(seconds: float) -> str:
        spin(seconds)
        return "ok"

    def run() -> dict[str, int]:
        outcomes = {"ok": 0, "timeout": 0}
        for _ in range(150):
            try:
                outcomes[racy(rng.uniform(0.0, 0.004))] += 1
            except DeadlineExceeded as exc:
                assert str(exc).endswith("<locals>.racy timed out after 0.002 s")
                outcomes["timeout"] += 1
        spin(0.05)
        return outcomes

    outcomes = in_thread(run)
    assert outcomes["ok"] > 0 and outcomes["timeout"] > 0


def test_nested_timeouts_in_a_worker() -> None:
    """Nested limits in a worker: each exception reaches the call that owns it."""

    @timeout(1.0)
    def inner_long() -> None:
        spin(3.0)

    @timeout(0.05)
    def outer_short() -> None:
        inner_long()

    @timeout(0.05)
    def inner_short() -> None:
        spin(3.0)

    @timeout(2.0)
    def outer_long() -> str:
        try:
            inner_short()
        except DeadlineExceeded as exc:
            assert "inner_short" in str(exc)
        spin(0.05)
        return "outer done"

    def run() -> str:
        started = time.monotonic()
        with pytest.raises(DeadlineExceeded, match="outer_short"):
            outer_short()
        assert time.monotonic() - started < 0.9
        return outer_long()

    assert in_thread(run) == "outer done"


def test_many_worker_threads_each_get_their_own_limit() -> None:
    """8 threads with different limits: short ones time out, long ones finish."""
    results: dict[int, str] = {}
    lock = threading.Lock()

    def make(i: int) -> Callable[[], None]:
        limit = 0.04 if i % 2 else 3.0

        @timeout(limit)
        def work() -> None:
            # Generous: with 8 CPU-bound threads the watchdog may wait a while for the GIL.
            spin(0.5)

        def run() -> None:
            try:
                work()
                outcome = "ok"
            except DeadlineExceeded:
                outcome = "timeout"
            with lock:
                results[i] = outcome

        return run

    threads = [threading.Thread(target=make(i)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert results == {i: ("timeout" if i % 2 else "ok") for i in range(8)}


def test_exceptions_of_the_function_pass_through_in_a_worker() -> None:
    """Other exceptions raised by the function propagate unchanged."""
    error = KeyError("k")

    @timeout(1.0)
    def failing() -> None:
        raise error

    with pytest.raises(KeyError) as info:
        in_thread(failing)
    assert info.value is error


# -- asyncio -----------------------------------------------------------------------------


def test_coroutine_function_times_out() -> None:
    """A coroutine awaiting too long is cancelled and raises DeadlineExceeded."""

    @timeout(0.05)
    async def slow() -> None:
        await asyncio.sleep(3.0)

    assert inspect.iscoroutinefunction(slow)
    started = time.monotonic()
    with pytest.raises(DeadlineExceeded, match=r"slow timed out after 0\.05 s"):
        asyncio.run(slow())
    assert time.monotonic() - started < 1.0


def test_coroutine_function_in_time_returns_its_value() -> None:
    """A coroutine finishing in time returns its result."""

    @timeout(1.0)
    async def quick(x: int) -> int:
        await asyncio.sleep(0)
        return x * 3

    assert asyncio.run(quick(2)) == 6


def test_coroutines_own_timeout_error_is_not_converted() -> None:
    """A TimeoutError raised by the coroutine itself is not mistaken for ours."""

    @timeout(1.0)
    async def own() -> None:
        raise TimeoutError("mine")

    with pytest.raises(TimeoutError, match="mine") as info:
        asyncio.run(own())
    assert not isinstance(info.value, DeadlineExceeded)


def test_async_timeouts_run_concurrently() -> None:
    """Several timed coroutines on one loop keep independent limits."""

    @timeout(0.05)
    async def short() -> str:
        await asyncio.sleep(1.0)
        return "late"

    @timeout(1.0)
    async def long() -> str:
        await asyncio.sleep(0.1)
        return "ok"

    async def main() -> list[Any]:
        return await asyncio.gather(short(), long(), return_exceptions=True)

    first, second = asyncio.run(main())
    assert isinstance(first, DeadlineExceeded) and second == "ok"


def test_watchdog_thread_exits_by_itself_when_idle() -> None:
    """After WATCHDOG_IDLE_SECONDS without work the watchdog thread ends on its own."""

    @timeout(1.0)
    def quick() -> int:
        return 1

    assert in_thread(quick) == 1
    assert any(t.name == "resilience-timeout-watchdog" for t in threading.enumerate())
    deadline = time.monotonic() + timeout_module.WATCHDOG_IDLE_SECONDS + 3.0
    while time.monotonic() < deadline:
        if not any(t.name == "resilience-timeout-watchdog" for t in threading.enumerate()):
            break
        time.sleep(0.05)
    assert not any(t.name == "resilience-timeout-watchdog" for t in threading.enumerate())
    assert in_thread(quick) == 1  # and starts again on demand
