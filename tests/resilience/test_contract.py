"""Black-box contract tests: issue 2 (and the cheap Redis parts of issue 6), read literally.

Written by a reviewer from the issue text and the original design only, using public names
(``from resilience import ...``, ``resilience.testing.FakeClock``, ``resilience.redis``), as an
independent checker would.  Each test states the requirement it checks.
"""

from __future__ import annotations

import asyncio
import dataclasses
import importlib
import inspect
import logging
import math
import random
import signal
import subprocess
import sys
import threading
import time
import typing
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

import resilience
from resilience import (
    AttemptRecord,
    Backoff,
    CircuitBreaker,
    CircuitOpenError,
    CircuitState,
    Deadline,
    DeadlineExceeded,
    Jitter,
    Policy,
    RateLimiter,
    RequestTracker,
    ResilienceError,
    RetryBudget,
    TokenBucket,
    exponential_backoff_retry,
    retry,
    retrying,
    timeout,
)
from resilience.testing import FakeClock, stop_timeout_watchdog

NAN = float("nan")
JITTERS = ("none", "full", "equal", "decorrelated", "proportional")


class Boom(Exception):
    """A failure the tests retry on / count."""


class Other(Exception):
    """An exception nobody asked to retry or count."""


class Throttled(Exception):
    """A failure carrying a server ``retry_after`` hint."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(f"retry after {retry_after}")
        self.retry_after = retry_after


def flaky(failures: int, exc: BaseException | None = None) -> tuple[Callable[[], str], list[int]]:
    """A function failing ``failures`` times, then returning "ok"; and its call counter."""
    calls = [0]

    def func() -> str:
        calls[0] += 1
        if calls[0] <= failures:
            raise exc if exc is not None else Boom(f"failure {calls[0]}")
        return "ok"

    return func, calls


def no_sleep(seconds: float) -> None:
    raise AssertionError(f"sleep({seconds}) must not be called")


@pytest.fixture(autouse=True, scope="module")
def _no_watchdog_left() -> Iterator[None]:
    """Leave no @timeout watchdog thread behind for later modules."""
    yield
    stop_timeout_watchdog()


# ============================================================================================
# Package surface


def test_top_level_names_are_exported() -> None:
    """Every name the issue lists is in resilience.__all__ and importable from the root."""
    required = {
        "Backoff",
        "retry",
        "retrying",
        "exponential_backoff_retry",
        "RetryBudget",
        "AttemptRecord",
        "CircuitBreaker",
        "CircuitState",
        "CircuitOpenError",
        "TokenBucket",
        "RateLimiter",
        "timeout",
        "Deadline",
        "RequestTracker",
        "Policy",
    }
    assert required <= set(resilience.__all__)
    for name in resilience.__all__:
        assert hasattr(resilience, name), name


@pytest.mark.parametrize(
    "module",
    [
        "resilience.backoff",
        "resilience.retry",
        "resilience.circuit",
        "resilience.ratelimit",
        "resilience.timeout",
        "resilience.tracking",
        "resilience.policy",
        "resilience.errors",
        "resilience.testing",
        "resilience.redis",
    ],
)
def test_public_modules_have_complete_all(module: str) -> None:
    """Each public module declares __all__ and every listed name exists."""
    mod = importlib.import_module(module)
    assert isinstance(mod.__all__, list | tuple)
    for name in mod.__all__:
        assert hasattr(mod, name), f"{module}.{name}"


def test_py_typed_marker_ships() -> None:
    """The package is marked as typed (py.typed)."""
    from importlib.resources import files

    assert files("resilience").joinpath("py.typed").is_file()


def test_import_does_not_need_redis() -> None:
    """Importing resilience (and resilience.redis) does not import the optional redis client."""
    code = "import sys, resilience, resilience.redis; print('redis' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "False"


def test_fake_clock_contract() -> None:
    """FakeClock is callable for the time; advance() moves it; sleep() advances, never waits."""
    clock = FakeClock()
    start = clock()
    clock.advance(2.5)
    assert clock() == start + 2.5
    before = time.monotonic()
    clock.sleep(1000.0)
    assert time.monotonic() - before < 1.0
    assert clock() == start + 1002.5
    asyncio.run(clock.async_sleep(1.0))
    assert clock() == start + 1003.5


# ============================================================================================
# 1. Backoff


def test_backoff_is_frozen() -> None:
    """Backoff is an immutable value."""
    b = Backoff()
    with pytest.raises(dataclasses.FrozenInstanceError):
        b.base = 3.0  # type: ignore[misc]


def test_backoff_defaults_and_delays_without_jitter() -> None:
    """delays() yields base * factor**(n-1), capped, for retry 1, 2, 3 ..."""
    b = Backoff(base=1.0, factor=2.0, cap=10.0, jitter="none")
    it = b.delays()
    assert [next(it) for _ in range(7)] == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0, 10.0]


@pytest.mark.parametrize("jitter", [*JITTERS, *Jitter])
def test_backoff_accepts_each_jitter_spelling(jitter: Any) -> None:
    """Jitter kinds are accepted as strings and as the Jitter enum."""
    b = Backoff(base=0.5, factor=2.0, cap=8.0, jitter=jitter)
    delays = b.delays(rng=random.Random(7))
    assert all(0.0 <= next(delays) <= 8.0 for _ in range(50))


def test_backoff_delays_is_deterministic_with_a_seeded_rng() -> None:
    """The same seeded rng gives the same sequence."""
    b = Backoff(jitter="full")
    first = b.delays(random.Random(3))
    second = b.delays(random.Random(3))
    assert [next(first) for _ in range(20)] == [next(second) for _ in range(20)]


@settings(max_examples=200)
@given(
    base=st.floats(0.001, 100),
    factor=st.floats(1.0, 10),
    extra=st.floats(0, 1000),
    jitter=st.sampled_from(JITTERS),
    seed_and_n=st.tuples(st.integers(0, 2**32), st.integers(1, 60)),
)
def test_backoff_bounds_for_every_kind(
    base: float, factor: float, extra: float, jitter: str, seed_and_n: tuple[int, int]
) -> None:
    """Each jitter kind stays in its documented range; nothing is ever above cap or below 0."""
    seed, n = seed_and_n
    cap = base + extra
    b = Backoff(base=base, factor=factor, cap=cap, jitter=jitter)
    it = b.delays(random.Random(seed))
    waits = [next(it) for _ in range(n)]
    for i, w in enumerate(waits, start=1):
        e = min(base * factor ** min(i - 1, 2000), cap) if factor > 1 else min(base, cap)
        assert 0.0 <= w <= cap * (1 + 1e-12)
        if jitter == "none":
            assert w == pytest.approx(e)
        elif jitter == "full":
            assert w <= e * (1 + 1e-9)
        elif jitter == "equal":
            assert e / 2 * (1 - 1e-9) <= w <= e * (1 + 1e-9)
        elif jitter == "proportional":
            assert e * 0.8 * (1 - 1e-9) <= w <= min(e * 1.2, cap) * (1 + 1e-9)
        else:  # decorrelated
            assert base * (1 - 1e-9) <= w


def test_backoff_no_overflow_at_attempt_10000() -> None:
    """Iterating to attempt 10,000 (and beyond) never overflows and stays at the cap."""
    for jitter in JITTERS:
        b = Backoff(base=1.0, factor=2.0, cap=30.0, jitter=jitter)
        it = b.delays(random.Random(1))
        last = 0.0
        for _ in range(10_000):
            last = next(it)
        assert 0.0 <= last <= 30.0
        assert 0.0 <= b.compute(10_000) <= 30.0
        assert 0.0 <= b.compute(10**9) <= 30.0
    assert Backoff(jitter="none", cap=30.0).compute(10_000) == 30.0


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"base": -1.0}, "base"),
        ({"base": NAN}, "base"),
        ({"factor": NAN}, "factor"),
        ({"factor": -2.0}, "factor"),
        ({"cap": NAN}, "cap"),
        ({"cap": -1.0}, "cap"),
        ({"base": 5.0, "cap": 1.0}, "cap"),
        ({"jitter": "bogus"}, "jitter"),
    ],
)
def test_backoff_rejects_bad_values_naming_the_parameter(
    kwargs: dict[str, Any], param: str
) -> None:
    """Negative, NaN, cap < base, unknown jitter: ValueError naming the parameter."""
    with pytest.raises(ValueError, match=param):
        Backoff(**kwargs)


# ============================================================================================
# 2. retry


def test_retry_decorator_retries_then_succeeds() -> None:
    """Failures matching on= are retried; the result comes back; waits go through sleep=."""
    clock = FakeClock()
    func, calls = flaky(2)
    wrapped = retry(on=Boom, attempts=3, clock=clock, sleep=clock.sleep)(func)
    assert wrapped() == "ok"
    assert calls[0] == 3
    assert len(clock.sleeps) == 2


def test_retry_gives_up_reraising_the_last_exception_unchanged() -> None:
    """After the last attempt the very exception object raised by it propagates."""
    clock = FakeClock()
    raised: list[BaseException] = []

    @retry(on=Boom, attempts=4, clock=clock, sleep=clock.sleep)
    def always() -> None:
        exc = Boom(str(len(raised)))
        raised.append(exc)
        raise exc

    with pytest.raises(Boom) as info:
        always()
    assert len(raised) == 4
    assert info.value is raised[-1]


def test_retry_other_exceptions_propagate_at_once() -> None:
    """Exceptions not selected by on= are not retried."""
    func, calls = flaky(5, Other("nope"))
    with pytest.raises(Other):
        retry(on=Boom, attempts=5, sleep=no_sleep)(func)()
    assert calls[0] == 1


def test_retry_on_accepts_a_tuple_and_a_predicate() -> None:
    """on= takes a tuple of types or a predicate on the exception."""
    clock = FakeClock()
    func, _calls = flaky(2, OSError("x"))
    assert retry(on=(Boom, OSError), attempts=3, clock=clock, sleep=clock.sleep)(func)() == "ok"

    func2, _calls2 = flaky(2, Boom("retry me"))
    pred = retry(on=lambda e: "retry" in str(e), attempts=3, clock=clock, sleep=clock.sleep)
    assert pred(func2)() == "ok"
    func3, calls3 = flaky(2, Boom("fatal"))
    with pytest.raises(Boom):
        pred(func3)()
    assert calls3[0] == 1


def test_retry_on_results() -> None:
    """retry_on_result retries unacceptable results and returns the first acceptable one."""
    clock = FakeClock()
    values = iter([None, None, 42])

    @retry(retry_on_result=lambda r: r is None, attempts=5, clock=clock, sleep=clock.sleep)
    def get() -> int | None:
        return next(values)

    assert get() == 42
    assert len(clock.sleeps) == 2


def test_retry_on_results_gives_up_with_a_typed_error() -> None:
    """When results stay unacceptable, a resilience error (RetryError) says so."""
    clock = FakeClock()
    wrapped = retry(retry_on_result=lambda r: True, attempts=3, clock=clock, sleep=clock.sleep)(
        lambda: "bad"
    )
    with pytest.raises(resilience.RetryError) as info:
        wrapped()
    assert isinstance(info.value, ResilienceError)


def test_retry_deadline_never_sleeps_past_it() -> None:
    """With a total deadline, the sum of sleeps never exceeds it and it gives up in time."""
    clock = FakeClock()
    func, calls = flaky(10**6)
    wrapped = retry(
        on=Boom,
        attempts=None,
        deadline=10.0,
        backoff=Backoff(base=1.0, factor=2.0, cap=60.0, jitter="none"),
        clock=clock,
        sleep=clock.sleep,
    )(func)
    with pytest.raises(Boom):
        wrapped()
    assert sum(clock.sleeps) <= 10.0
    assert clock() <= 10.0
    assert calls[0] == 4  # waits 1, 2, 4 (total 7); the next (8) would cross the deadline


def test_retry_stops_on_whichever_of_attempts_and_deadline_first() -> None:
    """attempts and deadline combine: the first one reached stops the loop."""
    clock = FakeClock()
    func, calls = flaky(10**6)
    no_jitter = Backoff(base=1.0, cap=1.0, jitter="none")
    with pytest.raises(Boom):
        retry(
            on=Boom, attempts=3, deadline=100.0, backoff=no_jitter, clock=clock, sleep=clock.sleep
        )(func)()
    assert calls[0] == 3


def test_retry_after_hint_lengthens_the_wait() -> None:
    """An exception carrying retry_after makes the next wait at least that long."""
    clock = FakeClock()
    func, _calls = flaky(1, Throttled(5.0))
    wrapped = retry(
        on=Throttled,
        attempts=3,
        backoff=Backoff(base=0.1, jitter="none"),
        clock=clock,
        sleep=clock.sleep,
    )(func)
    assert wrapped() == "ok"
    assert clock.sleeps == [pytest.approx(5.0)] or clock.sleeps[0] >= 5.0


def test_retry_after_hint_is_still_bounded_by_the_deadline() -> None:
    """A retry_after beyond the deadline makes it give up instead of sleeping past the deadline."""
    clock = FakeClock()
    func, _calls = flaky(10, Throttled(100.0))
    wrapped = retry(on=Throttled, attempts=5, deadline=10.0, clock=clock, sleep=clock.sleep)(func)
    with pytest.raises(Throttled):
        wrapped()
    assert all(s <= 10.0 for s in clock.sleeps)
    assert clock() <= 10.0


def test_retry_hooks_get_an_immutable_attempt_record() -> None:
    """before_sleep / on_giveup get frozen records: number, elapsed, next_wait, exception."""
    clock = FakeClock()
    before: list[AttemptRecord] = []
    gave_up: list[AttemptRecord] = []
    func, _ = flaky(10**6)
    wrapped = retry(
        on=Boom,
        attempts=3,
        backoff=Backoff(base=2.0, jitter="none"),
        before_sleep=before.append,
        on_giveup=gave_up.append,
        clock=clock,
        sleep=clock.sleep,
    )(func)
    with pytest.raises(Boom) as info:
        wrapped()
    assert [r.number for r in before] == [1, 2]
    assert before[0].next_wait == 2.0
    assert before[1].next_wait == 4.0
    assert before[1].elapsed == pytest.approx(2.0)
    assert isinstance(before[0].exception, Boom)
    assert len(gave_up) == 1
    assert gave_up[0].number == 3
    assert gave_up[0].exception is info.value
    with pytest.raises(dataclasses.FrozenInstanceError):
        before[0].number = 9  # type: ignore[misc]


def test_retry_logs_debug_per_retry_and_warning_on_giving_up(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Retries are logged through logging at DEBUG, giving up at WARNING."""
    clock = FakeClock()
    func, _ = flaky(10**6)
    with caplog.at_level(logging.DEBUG, logger="resilience"), pytest.raises(Boom):
        retry(on=Boom, attempts=3, clock=clock, sleep=clock.sleep)(func)()
    mine = [r for r in caplog.records if r.name.startswith("resilience")]
    assert sum(r.levelno == logging.DEBUG for r in mine) >= 2
    assert any(r.levelno == logging.WARNING for r in mine)


def test_retry_budget_caps_retries_across_calls() -> None:
    """A shared RetryBudget keeps retries within ratio x first attempts (+ floor) in its window."""
    clock = FakeClock()
    budget = RetryBudget(ratio=0.2, min_per_second=0.0, window=10.0, clock=clock)
    calls = [0]

    def down() -> None:
        calls[0] += 1
        raise Boom("down")

    wrapped = retry(on=Boom, attempts=5, budget=budget, clock=clock, sleep=lambda s: None)(down)
    for _ in range(50):
        with pytest.raises(Boom):
            wrapped()
    retries = calls[0] - 50
    assert retries <= 0.2 * 50 + 1e-9
    assert retries >= 1  # the budget does allow some retries


def test_retry_budget_rejects_bad_values() -> None:
    """RetryBudget validates its parameters, naming them."""
    for kwargs, param in (
        ({"ratio": -1.0}, "ratio"),
        ({"ratio": NAN}, "ratio"),
        ({"min_per_second": -1.0}, "min_per_second"),
        ({"window": 0.0}, "window"),
        ({"window": NAN}, "window"),
    ):
        with pytest.raises(ValueError, match=param):
            RetryBudget(**kwargs)


def test_zero_wait_never_calls_sleep() -> None:
    """A zero backoff wait does not call sleep at all."""
    func, calls = flaky(3)
    wrapped = retry(on=Boom, attempts=5, backoff=Backoff(base=0.0, cap=0.0), sleep=no_sleep)(func)
    assert wrapped() == "ok"
    assert calls[0] == 4


def test_zero_wait_never_calls_async_sleep() -> None:
    """A zero wait in the async driver does not call async_sleep either."""

    async def forbidden(seconds: float) -> None:
        raise AssertionError("async_sleep must not be called")

    func, _calls = flaky(2)

    async def afunc() -> str:
        return func()

    wrapped = retry(on=Boom, attempts=5, backoff=Backoff(base=0.0, cap=0.0), async_sleep=forbidden)(
        afunc
    )
    assert asyncio.run(wrapped()) == "ok"


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"attempts": 0}, "attempts"),
        ({"attempts": -1}, "attempts"),
        ({"deadline": -1.0}, "deadline"),
        ({"deadline": NAN}, "deadline"),
    ],
)
def test_retry_rejects_bad_values_naming_the_parameter(kwargs: dict[str, Any], param: str) -> None:
    """Bad retry() arguments raise ValueError naming the parameter, at decoration time."""
    with pytest.raises(ValueError, match=param):
        retry(**kwargs)
    with pytest.raises(ValueError, match=param):
        retrying(**kwargs)


def test_retrying_block_form_exposes_the_remaining_budget() -> None:
    """for attempt in retrying(...): with attempt: ... retries, numbering attempts from 1 and
    exposing the seconds left of the deadline."""
    clock = FakeClock()
    seen: list[tuple[int, float | None]] = []
    for attempt in retrying(
        on=Boom,
        attempts=5,
        deadline=10.0,
        backoff=Backoff(base=1.0, jitter="none"),
        clock=clock,
        sleep=clock.sleep,
    ):
        with attempt:
            seen.append((attempt.number, attempt.remaining))
            if attempt.number < 3:
                raise Boom("again")
    assert [n for n, _ in seen] == [1, 2, 3]
    assert seen[0][1] == pytest.approx(10.0)
    assert seen[1][1] == pytest.approx(9.0)
    assert seen[2][1] == pytest.approx(7.0)


def test_retrying_block_form_reraises_on_giving_up() -> None:
    """When the block form gives up, the last exception propagates unchanged."""
    clock = FakeClock()
    last: list[Boom] = []
    with pytest.raises(Boom) as info:
        for attempt in retrying(on=Boom, attempts=2, clock=clock, sleep=clock.sleep):
            with attempt:
                exc = Boom("x")
                last.append(exc)
                raise exc
    assert info.value is last[-1]
    assert len(last) == 2


def test_retrying_block_without_deadline_has_no_remaining() -> None:
    """Without a deadline the remaining budget is None (unbounded)."""
    for attempt in retrying(attempts=2):
        with attempt:
            assert attempt.remaining is None


def test_retrying_async_block_form() -> None:
    """async for attempt in retrying(...) works with async_sleep."""
    clock = FakeClock()

    async def run() -> int:
        async for attempt in retrying(
            on=Boom, attempts=4, clock=clock, sleep=clock.sleep, async_sleep=clock.async_sleep
        ):
            with attempt:
                if attempt.number < 3:
                    raise Boom("again")
                return attempt.number
        raise AssertionError("unreachable")

    assert asyncio.run(run()) == 3
    assert len(clock.sleeps) == 2


def test_retry_async_function() -> None:
    """Coroutine functions are retried with async_sleep and stay coroutine functions."""
    clock = FakeClock()
    func, calls = flaky(2)

    @retry(on=Boom, attempts=3, clock=clock, sleep=no_sleep, async_sleep=clock.async_sleep)
    async def afetch(x: int) -> str:
        return func() + str(x)

    assert inspect.iscoroutinefunction(afetch)
    assert asyncio.run(afetch(1)) == "ok1"
    assert calls[0] == 3
    assert len(clock.sleeps) == 2


def test_retry_works_on_methods() -> None:
    """A decorated method receives self and is retried."""
    clock = FakeClock()

    class Client:
        def __init__(self) -> None:
            self.calls = 0

        @retry(on=Boom, attempts=3, clock=clock, sleep=clock.sleep)
        def get(self, x: int) -> int:
            self.calls += 1
            if self.calls < 2:
                raise Boom("again")
            return x * 2

    c = Client()
    assert c.get(21) == 42
    assert c.calls == 2


def test_exponential_backoff_retry_signature() -> None:
    """The original design's function keeps its parameters and defaults."""
    params = inspect.signature(exponential_backoff_retry).parameters
    assert list(params)[:5] == ["func", "max_retries", "base_delay", "max_delay", "exceptions"]
    assert params["max_retries"].default == 3
    assert params["base_delay"].default == 1.0
    assert params["max_delay"].default == 60.0
    assert params["exceptions"].default == (Exception,)


def test_exponential_backoff_retry_behaviour() -> None:
    """It calls func up to max_retries times in all, waits ~base*2**i (+-20%), re-raises last."""
    clock = FakeClock()
    func, calls = flaky(2)
    assert exponential_backoff_retry(func, 3, 1.0, 60.0, (Boom,), sleep=clock.sleep) == "ok"
    assert calls[0] == 3
    assert 0.8 <= clock.sleeps[0] <= 1.2
    assert 1.6 <= clock.sleeps[1] <= 2.4

    func2, calls2 = flaky(10)
    with pytest.raises(Boom):
        exponential_backoff_retry(func2, max_retries=3, base_delay=0.0)
    assert calls2[0] == 3

    func3, calls3 = flaky(10, Other("x"))
    with pytest.raises(Other):
        exponential_backoff_retry(func3, max_retries=3, base_delay=0.0, exceptions=(Boom,))
    assert calls3[0] == 1


def test_exponential_backoff_retry_positional_only_func() -> None:
    """The original call style exponential_backoff_retry(func) works (no waits on success)."""
    assert exponential_backoff_retry(lambda: 5) == 5


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"max_retries": 0}, "max_retries"),
        ({"base_delay": -1.0}, "base_delay"),
        ({"base_delay": NAN}, "base_delay"),
        ({"max_delay": NAN}, "max_delay"),
        ({"base_delay": 5.0, "max_delay": 1.0}, "max_delay"),
    ],
)
def test_exponential_backoff_retry_rejects_bad_values(kwargs: dict[str, Any], param: str) -> None:
    """Bad values raise ValueError naming the parameter."""
    with pytest.raises(ValueError, match=param):
        exponential_backoff_retry(lambda: 1, **kwargs)


# ============================================================================================
# Decorators keep signature, name, doc, type hints and async-ness


def _sample(a: int, b: str = "x", *, c: float = 1.0) -> str:
    """Sample docstring."""
    return f"{a}{b}{c}"


async def _asample(a: int, b: str = "x", *, c: float = 1.0) -> str:
    """Async sample docstring."""
    return f"{a}{b}{c}"


def _decorators() -> list[tuple[str, Callable[[Callable[..., Any]], Callable[..., Any]]]]:
    return [
        ("retry", retry(on=Boom)),
        ("breaker", CircuitBreaker()),
        ("bucket", TokenBucket(100.0, 10.0)),
        ("limiter", RateLimiter(600, 10)),
        ("timeout", timeout(5.0)),
        ("policy", Policy(retry=retry(on=Boom), breaker=CircuitBreaker(), timeout=5.0)),
    ]


@pytest.mark.parametrize(("label", "decorator"), _decorators())
def test_decorators_preserve_signature(label: str, decorator: Any) -> None:
    """Every decorator keeps signature, __name__, __doc__, type hints, and sync/async kind."""
    for func in (_sample, _asample):
        wrapped = decorator(func)
        assert inspect.signature(wrapped) == inspect.signature(func), label
        assert wrapped.__name__ == func.__name__
        assert wrapped.__doc__ == func.__doc__
        assert typing.get_type_hints(wrapped) == typing.get_type_hints(func)
        assert inspect.iscoroutinefunction(wrapped) == inspect.iscoroutinefunction(func), label
    assert decorator(_sample)(1, "y", c=2.0) == "1y2.0"
    assert asyncio.run(decorator(_asample)(1, "y", c=2.0)) == "1y2.0"


# ============================================================================================
# 3. CircuitBreaker


def test_circuit_state_values() -> None:
    """CircuitState has the values "closed", "open", "half_open"."""
    assert CircuitState.CLOSED.value == "closed"
    assert CircuitState.OPEN.value == "open"
    assert CircuitState.HALF_OPEN.value == "half_open"
    assert CircuitState("half_open") is CircuitState.HALF_OPEN
    breaker = CircuitBreaker()
    assert breaker.state == "closed"  # the string spelling of the issue works too
    assert CircuitState.OPEN == "open"


def _down() -> None:
    raise Boom("down")


def test_breaker_original_semantics() -> None:
    """Opens at failure_threshold consecutive failures, rejects during recovery_timeout,
    admits a half-open probe after it, and closes on the probe's success."""
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=3, recovery_timeout=10.0, clock=clock)
    assert breaker.state is CircuitState.CLOSED
    for _ in range(2):
        with pytest.raises(Boom):
            breaker.call(_down)
    assert breaker.state is CircuitState.CLOSED
    assert breaker.failure_count == 2
    with pytest.raises(Boom):
        breaker.call(_down)
    assert breaker.state is CircuitState.OPEN

    ran = []
    clock.advance(9.0)
    with pytest.raises(CircuitOpenError) as info:
        breaker.call(lambda: ran.append(1))
    assert ran == []
    assert info.value.retry_after == pytest.approx(1.0)
    assert isinstance(info.value, ResilienceError)

    clock.advance(1.0)
    states: list[CircuitState] = []
    assert breaker.call(lambda: states.append(breaker.state) or "probe") == "probe"
    assert states == [CircuitState.HALF_OPEN]
    assert breaker.state is CircuitState.CLOSED
    assert breaker.failure_count == 0


def test_breaker_positional_original_signature() -> None:
    """CircuitBreaker(5, 60.0, Exception) with the original defaults."""
    b = CircuitBreaker()
    assert (b.failure_threshold, b.recovery_timeout, b.expected_exception) == (5, 60.0, Exception)
    b2 = CircuitBreaker(2, 1.5, Boom)
    assert (b2.failure_threshold, b2.recovery_timeout, b2.expected_exception) == (2, 1.5, Boom)


def test_breaker_failed_probe_reopens() -> None:
    """A failing half-open probe opens the breaker again for a full recovery_timeout."""
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=1, recovery_timeout=5.0, clock=clock)
    with pytest.raises(Boom):
        breaker.call(_down)
    clock.advance(5.0)
    with pytest.raises(Boom):
        breaker.call(_down)
    assert breaker.state is CircuitState.OPEN
    with pytest.raises(CircuitOpenError) as info:
        breaker.call(lambda: None)
    assert info.value.retry_after == pytest.approx(5.0)


def test_breaker_success_resets_consecutive_count() -> None:
    """Failures must be consecutive: a success in between resets the count."""
    breaker = CircuitBreaker(failure_threshold=3)
    for _ in range(5):
        with pytest.raises(Boom):
            breaker.call(_down)
        with pytest.raises(Boom):
            breaker.call(_down)
        breaker.call(lambda: None)
    assert breaker.state is CircuitState.CLOSED


def test_breaker_unexpected_exceptions_pass_through_uncounted() -> None:
    """Exceptions not matching expected_exception propagate unchanged and do not count."""
    breaker = CircuitBreaker(failure_threshold=2, expected_exception=Boom)
    err = Other("x")
    for _ in range(5):
        with pytest.raises(Other) as info:
            breaker.call(lambda: (_ for _ in ()).throw(err))
        assert info.value is err
    assert breaker.state is CircuitState.CLOSED
    assert breaker.failure_count == 0


def test_breaker_call_passes_args_and_kwargs() -> None:
    """breaker.call(func, *args, **kwargs) forwards the arguments."""
    breaker = CircuitBreaker()
    assert breaker.call(_sample, 3, "z", c=0.5) == "3z0.5"


def test_breaker_as_context_manager() -> None:
    """with breaker: counts failures, and refuses to enter while open."""
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=2, recovery_timeout=30.0, clock=clock)
    for _ in range(2):
        with pytest.raises(Boom), breaker:
            raise Boom("x")
    assert breaker.state is CircuitState.OPEN
    entered = []
    with pytest.raises(CircuitOpenError), breaker:
        entered.append(1)
    assert entered == []
    clock.advance(30.0)
    with breaker:
        pass
    assert breaker.state is CircuitState.CLOSED


def test_breaker_as_async_context_manager_and_call_async() -> None:
    """async with breaker: and await breaker.call_async(...) work and count outcomes."""
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=2, recovery_timeout=30.0, clock=clock)

    async def adown() -> None:
        raise Boom("x")

    async def run() -> None:
        async with breaker:
            pass
        with pytest.raises(Boom):
            await breaker.call_async(adown)
        with pytest.raises(Boom):
            async with breaker:
                raise Boom("y")
        assert breaker.state is CircuitState.OPEN
        with pytest.raises(CircuitOpenError):
            await breaker.call_async(adown)

    asyncio.run(run())


def test_breaker_call_with_a_coroutine_function_is_protected() -> None:
    """breaker.call(async_func) gives an awaitable whose failure is counted."""
    breaker = CircuitBreaker(failure_threshold=1)

    async def adown() -> None:
        raise Boom("x")

    async def run() -> None:
        with pytest.raises(Boom):
            await breaker.call(adown)

    asyncio.run(run())
    assert breaker.state is CircuitState.OPEN


def test_breaker_as_decorator_sync_and_async() -> None:
    """@breaker protects sync and async functions and rejects them while open."""
    breaker = CircuitBreaker(failure_threshold=1, recovery_timeout=60.0)

    @breaker
    def down() -> None:
        raise Boom("x")

    @breaker
    async def aok() -> int:
        return 1

    with pytest.raises(Boom):
        down()
    with pytest.raises(CircuitOpenError):
        down()
    with pytest.raises(CircuitOpenError):
        asyncio.run(aok())


def test_breaker_listeners_see_every_transition() -> None:
    """Listeners are called (breaker, old, new) on each transition; reset() closes it."""
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=1, recovery_timeout=1.0, clock=clock)
    seen: list[tuple[Any, CircuitState, CircuitState]] = []
    breaker.add_listener(lambda b, old, new: seen.append((b, old, new)))
    with pytest.raises(Boom):
        breaker.call(_down)
    clock.advance(1.0)
    breaker.call(lambda: None)
    with pytest.raises(Boom):
        breaker.call(_down)
    breaker.reset()
    assert [(o, n) for _, o, n in seen] == [
        (CircuitState.CLOSED, CircuitState.OPEN),
        (CircuitState.OPEN, CircuitState.HALF_OPEN),
        (CircuitState.HALF_OPEN, CircuitState.CLOSED),
        (CircuitState.CLOSED, CircuitState.OPEN),
        (CircuitState.OPEN, CircuitState.CLOSED),
    ]
    assert all(b is breaker for b, _, _ in seen)
    assert breaker.state is CircuitState.CLOSED
    assert breaker.call(lambda: 7) == 7


def test_breaker_failure_rate_mode() -> None:
    """Rate mode opens when the failure rate over the last N calls reaches the threshold,
    once the minimum number of calls is recorded."""
    breaker = CircuitBreaker(failure_rate_threshold=0.5, window_size=10, minimum_calls=6)
    for _ in range(2):
        breaker.call(lambda: None)
    for _ in range(3):
        with pytest.raises(Boom):
            breaker.call(_down)
    assert breaker.state is CircuitState.CLOSED  # 5 calls < minimum_calls
    with pytest.raises(Boom):
        breaker.call(_down)
    assert breaker.state is CircuitState.OPEN  # 4/6 >= 0.5


def test_breaker_rate_mode_below_threshold_stays_closed() -> None:
    """A failure rate below the threshold never opens it, however many failures in total."""
    breaker = CircuitBreaker(failure_rate_threshold=0.5, window_size=10, minimum_calls=4)
    for _ in range(30):
        breaker.call(lambda: None)
        breaker.call(lambda: None)
        with pytest.raises(Boom):
            breaker.call(_down)
    assert breaker.state is CircuitState.CLOSED


def test_breaker_slow_call_threshold() -> None:
    """Calls at least slow_call_duration long count as slow; their rate opens the breaker."""
    clock = FakeClock()
    breaker = CircuitBreaker(
        failure_rate_threshold=1.0,
        window_size=4,
        minimum_calls=4,
        slow_call_duration=1.0,
        slow_call_rate_threshold=0.5,
        clock=clock,
    )

    def slow() -> str:
        clock.advance(2.0)
        return "late"

    breaker.call(lambda: None)
    breaker.call(lambda: None)
    assert breaker.call(slow) == "late"
    assert breaker.state is CircuitState.CLOSED
    breaker.call(slow)
    assert breaker.state is CircuitState.OPEN


def test_breaker_half_open_limits_probes() -> None:
    """HALF_OPEN admits half_open_max_calls probes at once and rejects the rest."""
    clock = FakeClock()
    breaker = CircuitBreaker(
        failure_threshold=1, recovery_timeout=1.0, half_open_max_calls=2, clock=clock
    )
    with pytest.raises(Boom):
        breaker.call(_down)
    clock.advance(1.0)
    rejected: list[CircuitOpenError] = []

    def probe(depth: int) -> None:
        if depth == 0:
            try:
                breaker.call(lambda: None)
            except CircuitOpenError as exc:
                rejected.append(exc)
            return
        breaker.call(probe, depth - 1)

    breaker.call(probe, 1)  # two nested probes in flight, a third is attempted
    assert len(rejected) == 1
    assert rejected[0].retry_after >= 0.0
    assert breaker.state is CircuitState.CLOSED


def test_breaker_closed_calls_run_concurrently() -> None:
    """A closed breaker holds no lock during the call: two slow calls overlap (real threads)."""
    breaker = CircuitBreaker()
    barrier = threading.Barrier(2, timeout=5.0)
    results: list[int] = []

    def slow() -> int:
        return barrier.wait()  # both calls must be inside at once

    threads = [threading.Thread(target=lambda: results.append(breaker.call(slow))) for _ in "ab"]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert sorted(results) == [0, 1]


def test_breaker_threads_hammering_count_exactly() -> None:
    """Concurrent failures from 8 threads open the breaker; no call is lost or double counted."""
    breaker = CircuitBreaker(failure_threshold=10_000, recovery_timeout=60.0)
    errors: list[BaseException] = []

    def work() -> None:
        for _ in range(500):
            try:
                breaker.call(_down)
            except Boom:
                pass
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
    assert breaker.failure_count == 4000
    assert breaker.state is CircuitState.CLOSED


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"failure_threshold": 0}, "failure_threshold"),
        ({"failure_threshold": -1}, "failure_threshold"),
        ({"recovery_timeout": -1.0}, "recovery_timeout"),
        ({"recovery_timeout": NAN}, "recovery_timeout"),
        ({"failure_rate_threshold": 1.5}, "failure_rate_threshold"),
        ({"failure_rate_threshold": NAN}, "failure_rate_threshold"),
        ({"failure_rate_threshold": -0.5}, "failure_rate_threshold"),
        ({"window_size": 0}, "window_size"),
        ({"minimum_calls": 0}, "minimum_calls"),
        ({"slow_call_duration": -1.0}, "slow_call_duration"),
        ({"slow_call_duration": NAN}, "slow_call_duration"),
        ({"slow_call_rate_threshold": NAN}, "slow_call_rate_threshold"),
        ({"slow_call_rate_threshold": 2.0}, "slow_call_rate_threshold"),
        ({"half_open_max_calls": 0}, "half_open_max_calls"),
    ],
)
def test_breaker_rejects_bad_values_naming_the_parameter(
    kwargs: dict[str, Any], param: str
) -> None:
    """Bad breaker settings raise ValueError naming the parameter."""
    with pytest.raises(ValueError, match=param):
        CircuitBreaker(**kwargs)


def test_breaker_rejects_a_non_exception_expected_exception() -> None:
    """expected_exception that is neither an exception type nor a predicate is refused."""
    with pytest.raises((TypeError, ValueError), match="expected_exception"):
        CircuitBreaker(expected_exception=42)  # type: ignore[arg-type]


# ============================================================================================
# 4. TokenBucket / RateLimiter


def test_original_design_rate_limiter_test_as_written() -> None:
    """The original design's test: ten acquire(timeout=0.1) True, the eleventh False."""
    limiter = RateLimiter(requests_per_minute=60, burst_size=10)

    # Burst should be allowed
    for _ in range(10):
        assert limiter.acquire(timeout=0.1) is True

    # Next request should be throttled
    assert limiter.acquire(timeout=0.1) is False


def test_rate_limiter_is_a_token_bucket_with_rpm_over_60() -> None:
    """RateLimiter(rpm, burst) = TokenBucket(rate=rpm/60, capacity=burst); defaults 60 / 10."""
    limiter = RateLimiter()
    assert isinstance(limiter, TokenBucket)
    assert limiter.rate == pytest.approx(1.0)
    assert limiter.capacity == 10
    other = RateLimiter(120, 5)
    assert other.rate == pytest.approx(2.0)
    assert other.capacity == 5


def test_try_acquire_never_waits() -> None:
    """try_acquire grants capacity tokens at once, then False without sleeping; refill by rate."""
    clock = FakeClock()
    bucket = TokenBucket(rate=10.0, capacity=5, clock=clock, sleep=no_sleep)
    assert [bucket.try_acquire() for _ in range(6)] == [True] * 5 + [False]
    clock.advance(0.1)
    assert bucket.try_acquire() is True
    assert bucket.try_acquire() is False
    clock.advance(0.25)
    assert bucket.try_acquire(tokens=2) is True
    assert bucket.try_acquire(2) is False


def test_acquire_waits_the_exact_time_instead_of_polling() -> None:
    """acquire computes the exact wait: one sleep of 1/rate for an empty bucket."""
    clock = FakeClock()
    bucket = TokenBucket(4.0, 2, clock=clock, sleep=clock.sleep)
    assert bucket.acquire() and bucket.acquire()
    assert clock.sleeps == []
    assert bucket.acquire() is True
    assert sum(clock.sleeps) == pytest.approx(0.25)
    assert len(clock.sleeps) == 1
    assert bucket.acquire(tokens=2) is True
    assert sum(clock.sleeps) == pytest.approx(0.75)


def test_acquire_timeout_returns_false_without_oversleeping() -> None:
    """acquire(timeout=t) returns False when t cannot suffice and never sleeps past t."""
    clock = FakeClock()
    bucket = TokenBucket(1.0, 1, clock=clock, sleep=clock.sleep)
    assert bucket.acquire(timeout=0) is True
    assert bucket.acquire(timeout=0.5) is False
    assert sum(clock.sleeps) <= 0.5
    assert bucket.acquire(timeout=1.0) is True


def test_more_than_capacity_raises_value_error() -> None:
    """Asking for more than capacity at once raises ValueError instead of hanging."""
    bucket = TokenBucket(1.0, 3, sleep=no_sleep)
    with pytest.raises(ValueError, match="capacity"):
        bucket.try_acquire(4)
    with pytest.raises(ValueError, match="capacity"):
        bucket.acquire(4)
    with pytest.raises(ValueError, match="capacity"):
        bucket.acquire(tokens=4, timeout=None)
    with pytest.raises(ValueError, match="capacity"):
        asyncio.run(bucket.acquire_async(4))


def test_idle_bucket_grants_capacity_at_once() -> None:
    """A bucket left idle for capacity / rate seconds grants capacity tokens at once."""
    clock = FakeClock()
    bucket = TokenBucket(rate=2.0, capacity=6, clock=clock, sleep=no_sleep)
    assert bucket.try_acquire(6)
    clock.advance(3.0)
    assert bucket.try_acquire(6) is True
    assert bucket.try_acquire() is False


@settings(max_examples=150)
@given(
    rate=st.floats(0.5, 50),
    capacity=st.integers(1, 20),
    steps=st.lists(
        st.tuples(st.floats(0, 2), st.integers(1, 20), st.booleans()), min_size=1, max_size=60
    ),
)
def test_window_bound_property(
    rate: float, capacity: int, steps: list[tuple[float, int, bool]]
) -> None:
    """In any window of length W, tokens granted <= capacity + rate * W (FakeClock driven)."""
    clock = FakeClock()
    bucket = TokenBucket(rate, capacity, clock=clock, sleep=clock.sleep)
    grants: list[tuple[float, int]] = []
    for dt, wanted, blocking in steps:
        clock.advance(dt)
        n = min(wanted, capacity)
        ok = bucket.acquire(n, timeout=0.5) if blocking else bucket.try_acquire(n)
        if ok:
            grants.append((clock(), n))
    for i, (ti, _) in enumerate(grants):
        total = 0
        for tj, nj in grants[i:]:
            total += nj
            assert total <= capacity + rate * (tj - ti) + 1e-6


def test_async_acquire() -> None:
    """The async acquire waits (through async_sleep) and returns True / False like acquire."""
    clock = FakeClock()
    bucket = TokenBucket(2.0, 1, clock=clock, sleep=no_sleep, async_sleep=clock.async_sleep)

    async def run() -> tuple[bool, bool, bool]:
        a = await bucket.acquire_async()
        b = await bucket.acquire_async(tokens=1, timeout=None)
        c = await bucket.acquire_async(1, timeout=0.1)
        return a, b, c

    assert asyncio.run(run()) == (True, True, False)
    assert sum(clock.sleeps) == pytest.approx(0.5)


def test_bucket_as_decorator_sync_and_async() -> None:
    """@bucket takes a token before each call, waiting as needed (sync and async)."""
    clock = FakeClock()
    bucket = TokenBucket(1.0, 1, clock=clock, sleep=clock.sleep, async_sleep=clock.async_sleep)

    @bucket
    def f(x: int) -> int:
        return x

    @bucket
    async def g(x: int) -> int:
        return x

    assert f(1) == 1
    assert f(2) == 2
    assert sum(clock.sleeps) == pytest.approx(1.0)
    assert asyncio.run(g(3)) == 3
    assert sum(clock.sleeps) == pytest.approx(2.0)


def test_bucket_decorates_methods() -> None:
    """A rate-limited method receives self."""
    bucket = TokenBucket(1000.0, 10)

    class Api:
        @bucket
        def get(self, x: int) -> int:
            return x + 1

    assert Api().get(1) == 2


def test_fifo_large_request_is_not_starved() -> None:
    """Waiters are served first-come first-served: a queued large request goes before a later
    small one, and try_acquire does not jump the queue (real threads, gated fake time)."""
    clock = FakeClock()
    gate = threading.Event()

    def sleep(seconds: float) -> None:
        gate.wait(10)
        clock.sleep(seconds)

    bucket = TokenBucket(rate=10.0, capacity=4, clock=clock, sleep=sleep)
    assert bucket.try_acquire(4)
    results: list[bool] = []
    big = threading.Thread(target=lambda: results.append(bucket.acquire(4)))
    big.start()
    deadline = time.monotonic() + 5
    while bucket.retry_after(1) < 0.45 and time.monotonic() < deadline:  # big is queued
        time.sleep(0.001)
    assert bucket.try_acquire() is False  # no queue jumping
    small = threading.Thread(target=lambda: results.append(bucket.acquire(1)))
    small.start()
    while bucket.retry_after(1) < 0.55 and time.monotonic() < deadline:  # small queued too
        time.sleep(0.001)
    gate.set()
    big.join(5)
    small.join(5)
    assert results == [True, True]
    # The head (big) slept 0.4 s for its four tokens; only then did small wait its 0.1 s.
    assert clock.sleeps == [pytest.approx(0.4), pytest.approx(0.1)]


def test_eight_threads_never_exceed_the_bound() -> None:
    """8 threads hammering one bucket (try_acquire and acquire) never exceed the window bound."""
    rate, capacity = 200.0, 10
    start = time.monotonic()
    bucket = TokenBucket(rate, capacity)
    stamps: list[float] = []
    lock = threading.Lock()
    stop_at = start + 0.4

    def work(blocking: bool) -> None:
        while time.monotonic() < stop_at:
            ok = bucket.acquire(timeout=0.05) if blocking else bucket.try_acquire()
            if ok:
                now = time.monotonic()
                with lock:
                    stamps.append(now)

    threads = [threading.Thread(target=work, args=(i % 2 == 0,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    end = time.monotonic()
    assert len(stamps) <= capacity + rate * (end - start) + 1e-6
    assert len(stamps) >= capacity  # and it does grant (at least the burst; noisy machines)


@pytest.mark.parametrize(
    ("factory", "param"),
    [
        (lambda: TokenBucket(0, 1), "rate"),
        (lambda: TokenBucket(-1.0, 1), "rate"),
        (lambda: TokenBucket(NAN, 1), "rate"),
        (lambda: TokenBucket(1.0, 0), "capacity"),
        (lambda: TokenBucket(1.0, NAN), "capacity"),
        (lambda: TokenBucket(1.0, -3), "capacity"),
        (lambda: RateLimiter(0, 10), "requests_per_minute"),
        (lambda: RateLimiter(NAN, 10), "requests_per_minute"),
        (lambda: RateLimiter(60, 0), "burst_size"),
        (lambda: RateLimiter(60, -1), "burst_size"),
        (lambda: RateLimiter(requests_per_minute=60, burst_size=NAN), "burst_size"),
    ],
)
def test_bucket_rejects_bad_values_naming_the_parameter(
    factory: Callable[[], object], param: str
) -> None:
    """Bad bucket / limiter settings raise ValueError naming the parameter."""
    with pytest.raises(ValueError, match=param):
        factory()


@pytest.mark.parametrize("tokens", [0, -1, NAN])
def test_bucket_rejects_bad_token_counts(tokens: float) -> None:
    """Non-positive or NaN token counts are refused with ValueError naming tokens."""
    bucket = TokenBucket(1.0, 5)
    with pytest.raises(ValueError, match="tokens"):
        bucket.try_acquire(tokens)
    with pytest.raises(ValueError, match="tokens"):
        bucket.acquire(tokens)


@pytest.mark.parametrize("bad", [-1.0, NAN])
def test_acquire_rejects_bad_timeouts(bad: float) -> None:
    """A negative or NaN timeout is a ValueError naming timeout."""
    bucket = TokenBucket(1.0, 5)
    with pytest.raises(ValueError, match="timeout"):
        bucket.acquire(timeout=bad)


def test_bucket_docstring_states_the_guarantee() -> None:
    """The window guarantee is stated in the docstrings."""
    doc = (resilience.ratelimit.__doc__ or "") + (TokenBucket.__doc__ or "")
    assert "capacity + rate" in doc


# ============================================================================================
# 5. timeout / Deadline


@timeout(0.05)
def _sleepy(seconds: float) -> str:
    time.sleep(seconds)
    return "done"


def test_timeout_main_thread() -> None:
    """@timeout(seconds) interrupts a sync call in the main thread with a TimeoutError."""
    assert threading.current_thread() is threading.main_thread()
    assert _sleepy(0) == "done"
    started = time.monotonic()
    with pytest.raises(TimeoutError) as info:
        _sleepy(5.0)
    assert time.monotonic() - started < 2.0
    assert isinstance(info.value, DeadlineExceeded)
    assert isinstance(info.value, ResilienceError)


def test_timeout_restores_the_previous_alarm_handler() -> None:
    """The signal strategy restores any previous SIGALRM handler."""
    if not hasattr(signal, "SIGALRM"):
        pytest.skip("no SIGALRM")

    def mine(signum: int, frame: object) -> None:
        pass

    previous = signal.signal(signal.SIGALRM, mine)
    armed = signal.getitimer(signal.ITIMER_REAL)[0]  # pytest-timeout may have one running
    try:
        assert _sleepy(0) == "done"
        with pytest.raises(TimeoutError):
            _sleepy(1.0)
        assert signal.getsignal(signal.SIGALRM) is mine
        left = signal.getitimer(signal.ITIMER_REAL)[0]
        if armed == 0.0:
            assert left == 0.0
        else:  # the earlier timer is re-armed with its remaining time
            assert 0.0 < left <= armed
    finally:
        signal.signal(signal.SIGALRM, previous)


def test_timeout_in_a_worker_thread() -> None:
    """@timeout works from another thread (python code between short blocking calls)."""
    outcome: list[object] = []

    @timeout(0.1)
    def busy() -> None:
        for _ in range(300):
            time.sleep(0.01)

    def run() -> None:
        started = time.monotonic()
        try:
            busy()
            outcome.append("finished")
        except TimeoutError as exc:
            outcome.append((exc, time.monotonic() - started))

    t = threading.Thread(target=run)
    t.start()
    t.join(10)
    assert len(outcome) == 1
    assert isinstance(outcome[0], tuple)
    assert isinstance(outcome[0][0], DeadlineExceeded)
    assert outcome[0][1] < 2.0


def test_timeout_in_a_worker_thread_lets_fast_calls_through() -> None:
    """A call that finishes in time returns its value from a worker thread, many times."""
    results: list[int] = []

    @timeout(1.0)
    def quick(x: int) -> int:
        return x

    t = threading.Thread(target=lambda: results.extend(quick(i) for i in range(200)))
    t.start()
    t.join(10)
    assert results == list(range(200))


def test_timeout_async() -> None:
    """@timeout on a coroutine function raises a TimeoutError and stays a coroutine function."""

    @timeout(0.05)
    async def slow() -> None:
        await asyncio.sleep(5)

    @timeout(1.0)
    async def fast() -> int:
        await asyncio.sleep(0)
        return 3

    assert inspect.iscoroutinefunction(slow)
    with pytest.raises(TimeoutError):
        asyncio.run(slow())
    assert asyncio.run(fast()) == 3


@pytest.mark.parametrize("bad", [0, -1.0, NAN])
def test_timeout_rejects_bad_seconds(bad: float) -> None:
    """timeout(seconds) with 0, negative or NaN raises ValueError naming seconds."""
    with pytest.raises(ValueError, match="seconds"):
        timeout(bad)


def test_deadline_remaining_and_expired() -> None:
    """Deadline(seconds) counts down with the clock; expired once nothing is left."""
    clock = FakeClock()
    d = Deadline(5.0, clock=clock)
    assert d.remaining() == pytest.approx(5.0)
    assert d.expired is False
    clock.advance(3.0)
    assert d.remaining() == pytest.approx(2.0)
    clock.advance(3.0)
    assert d.remaining() == 0.0
    assert d.expired is True
    with pytest.raises(TimeoutError):
        d.check()


def test_deadline_unlimited_and_real_clock() -> None:
    """Deadline(None) never expires; the default clock is real monotonic time."""
    assert Deadline(None).expired is False
    assert Deadline(None).remaining() == math.inf
    real = Deadline(60.0)
    assert 59.0 < real.remaining() <= 60.0


@pytest.mark.parametrize("bad", [-1.0, NAN])
def test_deadline_rejects_bad_seconds(bad: float) -> None:
    """Deadline with a negative or NaN budget raises ValueError naming seconds."""
    with pytest.raises(ValueError, match="seconds"):
        Deadline(bad)


def test_deadline_shared_by_retry() -> None:
    """A Deadline object can be the retry's total budget (shared across calls)."""
    clock = FakeClock()
    d = Deadline(3.0, clock=clock)
    func, _calls = flaky(10**6)
    wrapped = retry(
        on=Boom,
        attempts=None,
        deadline=d,
        backoff=Backoff(base=1.0, cap=1.0, jitter="none"),
        clock=clock,
        sleep=clock.sleep,
    )(func)
    with pytest.raises(Boom):
        wrapped()
    assert clock() <= 3.0
    assert sum(clock.sleeps) <= 3.0


# ============================================================================================
# 6. RequestTracker


def test_tracker_original_api_and_window() -> None:
    """add_request / get_request_count / should_throttle over a sliding window (fake clock)."""
    clock = FakeClock(1000.0)
    tracker = RequestTracker(window_seconds=60, clock=clock)
    assert tracker.get_request_count() == 0
    for _ in range(3):
        tracker.add_request()
    clock.advance(30)
    tracker.add_request()
    tracker.add_request()
    assert tracker.get_request_count() == 5
    assert tracker.should_throttle(5) is True
    assert tracker.should_throttle(6) is False
    clock.advance(31)
    assert tracker.get_request_count() == 2
    clock.advance(30)
    assert tracker.get_request_count() == 0
    assert tracker.should_throttle(1) is False


def test_tracker_default_window_is_sixty_seconds() -> None:
    """RequestTracker() defaults to a 60 s window, as in the original design."""
    clock = FakeClock()
    tracker = RequestTracker(clock=clock)
    tracker.add_request()
    clock.advance(59)
    assert tracker.get_request_count() == 1
    clock.advance(2)
    assert tracker.get_request_count() == 0


@settings(max_examples=100)
@given(st.lists(st.tuples(st.floats(0, 20), st.integers(0, 5)), min_size=1, max_size=40))
def test_tracker_counts_match_brute_force(steps: list[tuple[float, int]]) -> None:
    """Counts equal a brute-force count of the window, within the documented slot precision."""
    window = 30.0
    clock = FakeClock(100.0)
    tracker = RequestTracker(window_seconds=window, clock=clock)
    times: list[float] = []
    for dt, n in steps:
        clock.advance(dt)
        for _ in range(n):
            tracker.add_request()
            times.append(clock())
        now = clock()
        exact = sum(1 for t in times if t >= now - window)
        loose = sum(1 for t in times if t >= now - window - window / 1000 * 1.01)
        assert exact <= tracker.get_request_count() <= loose


def test_tracker_snapshot_outcomes_and_latency() -> None:
    """record() feeds an immutable snapshot with count, error rate and p50/p99 latency."""
    clock = FakeClock()
    tracker = RequestTracker(window_seconds=60, clock=clock)
    for i in range(1, 101):
        tracker.record(i / 1000, ok=i % 4 != 0, kind=None if i % 4 else "timeout")
    snap = tracker.snapshot()
    assert snap.count == 100
    assert snap.error_rate == pytest.approx(0.25)
    assert snap.p50 == pytest.approx(0.050, rel=0.02)
    assert snap.p99 == pytest.approx(0.099, rel=0.02)
    assert snap.errors_by_kind["timeout"] == 25
    with pytest.raises(dataclasses.FrozenInstanceError):
        snap.count = 0  # type: ignore[misc]
    with pytest.raises(TypeError):
        snap.errors_by_kind["x"] = 1  # type: ignore[index]
    clock.advance(61)
    empty = tracker.snapshot()
    assert empty.count == 0
    assert empty.error_rate == 0.0
    assert empty.p50 is None


def test_tracker_memory_stays_bounded() -> None:
    """Memory does not grow with the number of requests inside one window."""
    import tracemalloc

    clock = FakeClock()
    tracker = RequestTracker(window_seconds=1, clock=clock)

    def burst(n: int) -> None:
        for i in range(n):
            clock.advance(5e-4)
            if i % 2:
                tracker.add_request()
            else:
                tracker.record(0.001 * (1 + i % 50))

    burst(3_000)  # 1.5 s: the window is full, every slot and segment exists
    tracemalloc.start()
    try:
        burst(3_000)  # steady state: old slots are replaced by traced new ones
        steady = tracemalloc.get_traced_memory()[0]
        burst(6_000)  # three more windows' worth of requests
        grown = tracemalloc.get_traced_memory()[0] - steady
    finally:
        tracemalloc.stop()
    assert tracker.get_request_count() >= 1_900
    assert grown < 30_000  # a per-request record would take > 200 kB here


def test_tracker_thread_safe() -> None:
    """8 threads adding 1000 requests each are all counted."""
    tracker = RequestTracker(window_seconds=3600)

    def work() -> None:
        for i in range(1000):
            if i % 2:
                tracker.add_request()
            else:
                tracker.record(0.001)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert tracker.get_request_count() == 8000
    assert tracker.snapshot().count == 8000


@pytest.mark.parametrize("bad", [0, -1, NAN])
def test_tracker_rejects_bad_window(bad: float) -> None:
    """window_seconds must be positive and finite: ValueError naming it."""
    with pytest.raises(ValueError, match="window_seconds"):
        RequestTracker(window_seconds=bad)


def test_tracker_rejects_bad_latency() -> None:
    """A negative or NaN latency is refused, naming latency."""
    tracker = RequestTracker()
    for bad in (-1.0, NAN):
        with pytest.raises(ValueError, match="latency"):
            tracker.record(bad)


# ============================================================================================
# 7. Composition


def test_policy_composes_retry_breaker_limiter_timeout() -> None:
    """A Policy retries, and its breaker counts every attempt (breaker inside the retry)."""
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=10, clock=clock)
    limiter = TokenBucket(100.0, 10, clock=clock, sleep=clock.sleep)
    policy = Policy(
        retry=retry(on=Boom, attempts=3, clock=clock, sleep=clock.sleep),
        breaker=breaker,
        limiter=limiter,
        timeout=5.0,
    )
    func, calls = flaky(2)
    assert policy.call(func) == "ok"
    assert calls[0] == 3

    func2, _ = flaky(10)
    with pytest.raises(Boom):
        policy.call(func2)
    assert breaker.failure_count == 3


def test_policy_order_is_documented() -> None:
    """The composition order and its reasoning are documented."""
    doc = (resilience.policy.__doc__ or "") + (Policy.__doc__ or "")
    assert "Retry" in doc and "CircuitBreaker" in doc and "RateLimiter" in doc
    assert "Timeout" in doc
    assert "Why" in doc or "why" in doc


def test_policy_open_breaker_stops_the_retry_loop() -> None:
    """An open breaker rejects attempts without calling the function."""
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=1, recovery_timeout=60.0, clock=clock)
    policy = Policy(
        retry=retry(on=Boom, attempts=5, clock=clock, sleep=clock.sleep), breaker=breaker
    )
    func, calls = flaky(10)
    with pytest.raises((Boom, CircuitOpenError)):
        policy.call(func)
    assert calls[0] == 1


# ============================================================================================
# Class docstrings state thread-safety


@pytest.mark.parametrize(
    "cls",
    [
        Backoff,
        RetryBudget,
        CircuitBreaker,
        TokenBucket,
        RateLimiter,
        Deadline,
        RequestTracker,
        Policy,
        FakeClock,
        AttemptRecord,
        resilience.TrackerSnapshot,
        resilience.Retrying,
        resilience.Attempt,
        resilience.CircuitBreakerConfig,
    ],
)
def test_class_docstrings_state_thread_safety(cls: type) -> None:
    """Every public class says whether it is thread-safe."""
    doc = (cls.__doc__ or "").lower()
    assert "thread" in doc or "immutable" in doc, cls.__name__


# ============================================================================================
# Issue 6: Redis (cheap checks against a real server)


def _name() -> str:
    return f"contract-{uuid.uuid4().hex}"


def test_redis_bucket_same_semantics(redis_url: str) -> None:
    """A Redis-backed bucket grants capacity at once then refuses; try/acquire/async all work."""
    bucket = TokenBucket(2.0, 3, backend=redis_url, name=_name())
    assert [bucket.try_acquire() for _ in range(4)] == [True, True, True, False]
    assert bucket.acquire(timeout=0.1) is False
    assert bucket.acquire(timeout=2.0) is True
    assert asyncio.run(bucket.acquire_async(timeout=0.05)) is False
    with pytest.raises(ValueError, match="capacity"):
        bucket.try_acquire(4)


def test_redis_original_rate_limiter_test(redis_url: str) -> None:
    """The original design's limiter test passes on the Redis backend too."""
    limiter = RateLimiter(requests_per_minute=60, burst_size=10, backend=redis_url, name=_name())
    for _ in range(10):
        assert limiter.acquire(timeout=0.1) is True
    assert limiter.acquire(timeout=0.1) is False


def test_redis_buckets_with_one_name_share_one_budget(redis_url: str) -> None:
    """Two limiters (as in two processes) with the same name share the budget; the key expires."""
    import redis

    name = _name()
    a = TokenBucket(1.0, 5, backend=redis_url, name=name)
    b = TokenBucket(1.0, 5, backend=redis_url, name=name)
    c = TokenBucket(1.0, 5, backend=redis_url, name=_name())
    assert a.try_acquire(5)
    assert b.try_acquire() is False
    assert c.try_acquire() is True
    client = redis.Redis.from_url(redis_url)
    try:
        keys = [k for k in client.scan_iter(match=f"*{name}*")]
        assert len(keys) == 1
        assert client.pttl(keys[0]) > 0  # an idle limit expires
    finally:
        client.close()


def test_redis_breaker_shared_between_instances(redis_url: str) -> None:
    """A breaker opened by failures in one instance rejects calls in another (same name)."""
    name = _name()
    one = CircuitBreaker(failure_threshold=2, recovery_timeout=30.0, name=name, store=redis_url)
    two = CircuitBreaker(failure_threshold=2, recovery_timeout=30.0, name=name, store=redis_url)
    for _ in range(2):
        with pytest.raises(Boom):
            one.call(_down)
    assert two.state is CircuitState.OPEN
    with pytest.raises(CircuitOpenError) as info:
        two.call(lambda: None)
    assert 0 < info.value.retry_after <= 30.0
    two.reset()
    assert one.state is CircuitState.CLOSED


def _dead_url(query: str = "", password: str = "") -> str:
    from tests.conftest import free_port

    auth = f":{password}@" if password else ""
    return f"redis://{auth}127.0.0.1:{free_port()}/0{query}"


def test_redis_unreachable_fail_closed_raises_typed_error() -> None:
    """on_unavailable=closed: a typed error (BackendUnavailable), quickly."""
    bucket = TokenBucket(1.0, 5, backend=_dead_url("?on_unavailable=closed"), name=_name())
    started = time.monotonic()
    with pytest.raises(resilience.BackendUnavailable):
        bucket.try_acquire()
    assert time.monotonic() - started < 3.0


def test_redis_unreachable_fail_open_grants() -> None:
    """on_unavailable=open grants while Redis is down."""
    bucket = TokenBucket(1.0, 1, backend=_dead_url(), on_unavailable="open", name=_name())
    assert all(bucket.try_acquire() for _ in range(5))


def test_redis_unreachable_local_fallback_limits() -> None:
    """on_unavailable=local falls back to an in-process bucket with the same limits."""
    bucket = TokenBucket(1.0, 2, backend=_dead_url("?on_unavailable=local"), name=_name())
    assert [bucket.try_acquire() for _ in range(3)] == [True, True, False]


def test_redis_unreachable_never_hangs_beyond_the_timeout() -> None:
    """A blocking acquire against a dead Redis returns within (about) the caller's timeout."""
    bucket = TokenBucket(1.0, 1, backend=_dead_url("?on_unavailable=local"), name=_name())
    assert bucket.acquire(timeout=0.2) is True
    started = time.monotonic()
    assert bucket.acquire(timeout=0.2) is False
    assert time.monotonic() - started < 2.0


def test_redis_password_never_in_repr_logs_or_errors(caplog: pytest.LogCaptureFixture) -> None:
    """A password in the URL does not appear in reprs, log records or exception messages."""
    secret = "s3cr3t-pa55"
    url = _dead_url("?on_unavailable=closed", password=secret)
    with caplog.at_level(logging.DEBUG):
        bucket = TokenBucket(1.0, 1, backend=url, name=_name())
        breaker = CircuitBreaker(name=_name(), store=url)
        texts = [repr(bucket), repr(bucket.backend), repr(breaker)]
        for action in (bucket.try_acquire, lambda: breaker.call(lambda: None)):
            try:
                action()
            except Exception as exc:
                texts.append(str(exc))
                texts.append(repr(exc))
    texts.extend(r.getMessage() for r in caplog.records)
    assert texts
    assert not [t for t in texts if secret in t]


def test_redis_bad_fail_mode_names_the_parameter() -> None:
    """An unknown on_unavailable value is a ValueError naming it."""
    with pytest.raises(ValueError, match="on_unavailable"):
        TokenBucket(1.0, 1, backend=_dead_url(), on_unavailable="sideways")


# ============================================================================================
# More demanding checks


def test_retrying_block_form_never_sleeps_past_the_deadline() -> None:
    """The block form gives up rather than sleep past its deadline."""
    clock = FakeClock()
    with pytest.raises(Boom):
        for attempt in retrying(
            on=Boom,
            attempts=None,
            deadline=5.0,
            backoff=Backoff(base=2.0, factor=1.0, cap=2.0, jitter="none"),
            clock=clock,
            sleep=clock.sleep,
        ):
            with attempt:
                raise Boom("x")
    assert clock.sleeps == [2.0, 2.0]
    assert clock() <= 5.0


def test_retry_deadline_with_the_real_monotonic_clock() -> None:
    """By default the deadline is measured on the real monotonic clock."""
    started = time.monotonic()
    func, calls = flaky(10**6)
    wrapped = retry(
        on=Boom, attempts=None, deadline=0.2, backoff=Backoff(base=0.02, cap=0.02, jitter="none")
    )(func)
    with pytest.raises(Boom):
        wrapped()
    assert time.monotonic() - started < 1.5
    assert calls[0] >= 2


def test_retry_does_not_catch_base_exceptions_by_default() -> None:
    """KeyboardInterrupt (not an Exception) is never retried with the default on=Exception."""
    func, calls = flaky(3, KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        retry(attempts=5, sleep=no_sleep)(func)()
    assert calls[0] == 1


def test_retry_after_is_honoured_in_async_code() -> None:
    """The async driver honours retry_after too."""
    clock = FakeClock()
    func, _ = flaky(1, Throttled(3.0))

    @retry(
        on=Throttled,
        attempts=2,
        backoff=Backoff(base=0.0, cap=0.0),
        clock=clock,
        sleep=no_sleep,
        async_sleep=clock.async_sleep,
    )
    async def call() -> str:
        return func()

    assert asyncio.run(call()) == "ok"
    assert clock.sleeps[0] >= 3.0


def test_async_retry_does_not_retry_cancellation() -> None:
    """A cancelled task is not retried: CancelledError propagates."""
    calls = [0]

    @retry(attempts=5, async_sleep=lambda s: asyncio.sleep(0))
    async def cancelled() -> None:
        calls[0] += 1
        raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        asyncio.run(cancelled())
    assert calls[0] == 1


def test_retry_works_with_a_callable_object_with_async_call() -> None:
    """A callable object whose __call__ is a coroutine function is retried asynchronously."""
    clock = FakeClock()
    func, calls = flaky(1)

    class Fetcher:
        async def __call__(self) -> str:
            return func()

    wrapped = retry(on=Boom, attempts=2, clock=clock, async_sleep=clock.async_sleep)(Fetcher())
    assert asyncio.run(wrapped()) == "ok"  # type: ignore[arg-type]
    assert calls[0] == 2


def test_exponential_backoff_retry_with_a_coroutine_function() -> None:
    """exponential_backoff_retry(async_func) gives an awaitable that retries."""
    func, calls = flaky(2)

    async def afunc() -> str:
        return func()

    result = exponential_backoff_retry(afunc, max_retries=3, base_delay=0.0)
    assert asyncio.run(result) == "ok"
    assert calls[0] == 3


@pytest.mark.parametrize(
    ("factory", "param"),
    [
        (lambda: Backoff(base="1"), "base"),  # type: ignore[arg-type]
        (lambda: retry(attempts=2.5), "attempts"),  # type: ignore[arg-type]
        (lambda: retry(on="Boom"), "on"),  # type: ignore[arg-type]
        (lambda: TokenBucket("10", 5), "rate"),  # type: ignore[arg-type]
        (lambda: RateLimiter("60", 10), "requests_per_minute"),  # type: ignore[arg-type]
        (lambda: CircuitBreaker(failure_threshold=2.5), "failure_threshold"),  # type: ignore[arg-type]
        (lambda: RequestTracker(window_seconds="60"), "window_seconds"),  # type: ignore[arg-type]
        (lambda: timeout("1"), "seconds"),  # type: ignore[arg-type]
        (lambda: Deadline("1"), "seconds"),  # type: ignore[arg-type]
        (lambda: Policy(timeout="1"), "timeout"),  # type: ignore[arg-type]
    ],
)
def test_wrong_types_raise_naming_the_parameter(factory: Callable[[], object], param: str) -> None:
    """A wrong type is a TypeError (or ValueError) naming the parameter."""
    with pytest.raises((TypeError, ValueError), match=param):
        factory()


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"timeout": -1.0}, "timeout"),
        ({"timeout": NAN}, "timeout"),
        ({"timeout": 0}, "timeout"),
        ({"limiter_timeout": -1.0}, "limiter_timeout"),
    ],
)
def test_policy_rejects_bad_values(kwargs: dict[str, Any], param: str) -> None:
    """Policy validates its numbers, naming them."""
    with pytest.raises(ValueError, match=param):
        Policy(**kwargs)


@pytest.mark.parametrize("url", ["http://127.0.0.1:6379/0", "redis://127.0.0.1:99999/0"])
def test_redis_backends_reject_bad_urls(url: str) -> None:
    """A malformed Redis URL is a ValueError (no connection attempted)."""
    from resilience.redis import RedisBucketBackend, RedisCircuitStore

    with pytest.raises(ValueError):
        RedisBucketBackend(url)
    with pytest.raises(ValueError):
        RedisCircuitStore(url)
    with pytest.raises(ValueError):
        TokenBucket(1.0, 1, backend=url)


def test_backoff_compute_rejects_attempt_zero() -> None:
    """compute(attempt) is 1-based: 0 is a ValueError naming attempt."""
    with pytest.raises(ValueError, match="attempt"):
        Backoff().compute(0)


def test_retry_budget_is_thread_safe() -> None:
    """8 threads spending from one budget never get more retries than it allows."""
    budget = RetryBudget(ratio=0.5, min_per_second=0.0, window=3600.0)
    for _ in range(1000):
        budget.record_attempt()
    granted = [0] * 8

    def spend(i: int) -> None:
        for _ in range(200):
            if budget.try_spend():
                granted[i] += 1

    threads = [threading.Thread(target=spend, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert sum(granted) == 500


def test_breaker_does_not_count_keyboard_interrupt() -> None:
    """A KeyboardInterrupt passes through and says nothing about the dependency."""
    breaker = CircuitBreaker(failure_threshold=1)

    def interrupted() -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        breaker.call(interrupted)
    assert breaker.state is CircuitState.CLOSED


def test_breaker_expected_exception_tuple_and_methods() -> None:
    """expected_exception may be a tuple; @breaker works on methods."""
    breaker = CircuitBreaker(failure_threshold=2, expected_exception=(Boom, OSError))

    class Service:
        @breaker
        def get(self, fail: BaseException | None) -> str:
            if fail is not None:
                raise fail
            return "ok"

    s = Service()
    assert s.get(None) == "ok"
    with pytest.raises(OSError):
        s.get(OSError("x"))
    with pytest.raises(Boom):
        s.get(Boom("x"))
    assert breaker.state is CircuitState.OPEN
    with pytest.raises(CircuitOpenError):
        s.get(None)


def test_breaker_half_open_rejects_a_second_concurrent_probe() -> None:
    """With one probe slot, a second thread's call during the probe is rejected (retry_after 0)."""
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=1, recovery_timeout=1.0, clock=clock)
    with pytest.raises(Boom):
        breaker.call(_down)
    clock.advance(1.0)
    inside = threading.Event()
    release = threading.Event()
    outcome: list[object] = []

    def probe() -> str:
        inside.set()
        release.wait(5)
        return "probed"

    t = threading.Thread(target=lambda: outcome.append(breaker.call(probe)))
    t.start()
    assert inside.wait(5)
    with pytest.raises(CircuitOpenError) as info:
        breaker.call(lambda: None)
    assert info.value.retry_after == 0.0
    release.set()
    t.join(5)
    assert outcome == ["probed"]
    assert breaker.state is CircuitState.CLOSED


def test_bucket_decorator_with_timeout_raises_rate_limit_exceeded() -> None:
    """A limited function that cannot get a token in time raises RateLimitExceeded."""
    clock = FakeClock()
    bucket = TokenBucket(1.0, 1, clock=clock, sleep=clock.sleep)

    @bucket.limit(timeout=0.1)
    def f() -> int:
        return 1

    assert f() == 1
    with pytest.raises(resilience.RateLimitExceeded) as info:
        f()
    assert info.value.retry_after == pytest.approx(1.0)
    assert clock.sleeps == []


def test_fifo_across_asyncio_tasks() -> None:
    """Async waiters are served in arrival order, a big request included."""
    bucket = TokenBucket(100.0, 5)
    order: list[str] = []

    async def take(label: str, n: int) -> None:
        await bucket.acquire_async(n)
        order.append(label)

    async def run() -> None:
        assert bucket.try_acquire(5)
        big = asyncio.create_task(take("big", 5))
        await asyncio.sleep(0)
        smalls = [asyncio.create_task(take(f"s{i}", 1)) for i in range(3)]
        await asyncio.gather(big, *smalls)

    asyncio.run(run())
    assert order == ["big", "s0", "s1", "s2"]


def test_timeout_passes_the_function_exceptions_through() -> None:
    """A function's own exception is not converted by @timeout."""
    err = Boom("mine")

    @timeout(5.0)
    def bad() -> None:
        raise err

    with pytest.raises(Boom) as info:
        bad()
    assert info.value is err

    outcome: list[BaseException] = []

    def in_thread() -> None:
        try:
            bad()
        except Boom as exc:
            outcome.append(exc)

    t = threading.Thread(target=in_thread)
    t.start()
    t.join(5)
    assert outcome == [err]


def test_timeout_in_several_threads_at_once() -> None:
    """Concurrent timed calls in worker threads each get their own outcome."""
    results: dict[int, str] = {}

    @timeout(0.2)
    def work(i: int) -> str:
        if i % 2:
            for _ in range(200):
                time.sleep(0.01)
        return "done"

    def run(i: int) -> None:
        try:
            results[i] = work(i)
        except TimeoutError:
            results[i] = "timeout"

    threads = [threading.Thread(target=run, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert results == {i: ("timeout" if i % 2 else "done") for i in range(6)}


def test_timeout_decorates_methods() -> None:
    """@timeout works on methods (self is passed)."""

    class Job:
        @timeout(1.0)
        def run(self, x: int) -> int:
            return x * 3

    assert Job().run(2) == 6


def test_policy_async() -> None:
    """A Policy protects coroutine functions (decorator and call_async)."""
    clock = FakeClock()
    policy = Policy(
        retry=retry(on=Boom, attempts=3, clock=clock, async_sleep=clock.async_sleep),
        breaker=CircuitBreaker(clock=clock),
        timeout=5.0,
    )
    func, calls = flaky(2)

    @policy
    async def call() -> str:
        return func()

    assert inspect.iscoroutinefunction(call)
    assert asyncio.run(call()) == "ok"
    assert calls[0] == 3
    func2, _ = flaky(0)

    async def direct(x: int) -> str:
        return func2() + str(x)

    assert asyncio.run(policy.call_async(direct, 1)) == "ok1"


def test_redis_uses_server_time_not_the_client_clock(redis_url: str) -> None:
    """Refill follows the Redis server's time even when the client clock stands still."""
    frozen = FakeClock(123.0)
    bucket = TokenBucket(20.0, 2, backend=redis_url, name=_name(), clock=frozen)
    assert bucket.try_acquire(2)
    assert bucket.try_acquire() is False
    time.sleep(0.1)  # two tokens' worth of real (server) time
    assert bucket.try_acquire() is True


def test_redis_bucket_async_and_decorator(redis_url: str) -> None:
    """The Redis bucket's async acquire and decorator behave as in memory."""
    bucket = TokenBucket(50.0, 1, backend=redis_url, name=_name())

    @bucket
    async def f() -> int:
        return 1

    async def run() -> list[int]:
        return [await f(), await f(), int(await bucket.acquire_async(timeout=1.0))]

    started = time.monotonic()
    assert asyncio.run(run()) == [1, 1, 1]
    assert time.monotonic() - started >= 0.03  # it did wait for refills


def test_redis_breaker_fail_closed_when_unreachable() -> None:
    """A Redis-backed breaker configured to fail closed raises a typed error when Redis is down."""
    breaker = CircuitBreaker(name=_name(), store=_dead_url("?on_unavailable=closed"))
    ran: list[int] = []
    with pytest.raises(resilience.BackendUnavailable):
        breaker.call(lambda: ran.append(1))
    assert ran == []


def test_redis_breaker_local_fallback_when_unreachable() -> None:
    """With the default local fallback, a breaker on a dead Redis still works in-process."""
    breaker = CircuitBreaker(failure_threshold=1, name=_name(), store=_dead_url())
    assert breaker.call(lambda: 5) == 5
    with pytest.raises(Boom):
        breaker.call(_down)
    with pytest.raises(CircuitOpenError):
        breaker.call(lambda: 5)


class OriginalDesignBreakerModel(RuleBasedStateMachine):
    """The breaker (count mode, sequential calls) against the original design's semantics."""

    THRESHOLD = 3
    RECOVERY = 10.0

    def __init__(self) -> None:
        super().__init__()
        self.clock = FakeClock()
        self.breaker = CircuitBreaker(
            failure_threshold=self.THRESHOLD,
            recovery_timeout=self.RECOVERY,
            expected_exception=Boom,
            clock=self.clock,
        )
        self.state = "closed"
        self.failures = 0
        self.opened_at = 0.0

    def _call(self, outcome: str) -> None:
        now = self.clock()
        if self.state == "open":
            if now - self.opened_at < self.RECOVERY:
                with pytest.raises(CircuitOpenError) as info:
                    self.breaker.call(lambda: None)
                assert info.value.retry_after == pytest.approx(self.opened_at + self.RECOVERY - now)
                return
            self.state = "half_open"

        def body() -> str:
            if outcome == "fail":
                raise Boom("x")
            if outcome == "other":
                raise Other("y")
            return "ok"

        if outcome == "ok":
            assert self.breaker.call(body) == "ok"
            self.failures = 0
            self.state = "closed"
        elif outcome == "fail":
            with pytest.raises(Boom):
                self.breaker.call(body)
            self.failures += 1
            if self.state == "half_open" or self.failures >= self.THRESHOLD:
                self.state = "open"
                self.opened_at = now
        else:
            with pytest.raises(Other):
                self.breaker.call(body)

    @rule(outcome=st.sampled_from(["ok", "fail", "fail", "other"]))
    def call(self, outcome: str) -> None:
        self._call(outcome)

    @rule(dt=st.sampled_from([0.5, 3.0, 9.99, 10.0, 25.0]))
    def advance(self, dt: float) -> None:
        self.clock.advance(dt)

    @rule()
    def reset(self) -> None:
        self.breaker.reset()
        self.state = "closed"
        self.failures = 0

    @invariant()
    def same_state(self) -> None:
        # state reads what the next call would find: HALF_OPEN once the recovery time is up.
        expected = self.state
        if expected == "open" and self.clock() >= self.opened_at + self.RECOVERY:
            expected = "half_open"
        assert self.breaker.state is CircuitState(expected)
        if self.state == "closed":
            assert self.breaker.failure_count == self.failures


TestOriginalDesignBreakerModel = OriginalDesignBreakerModel.TestCase
TestOriginalDesignBreakerModel.settings = settings(max_examples=60, stateful_step_count=30)


def test_redis_one_script_per_decision_using_server_time(redis_url: str) -> None:
    """Each decision is one EVALSHA (a single round trip) that reads the server's TIME."""
    import redis

    bucket = TokenBucket(1000.0, 5, backend=redis_url, name=_name())
    assert bucket.try_acquire()  # warm-up: the script is cached on the server
    client = redis.Redis.from_url(redis_url)
    try:

        def calls() -> dict[str, int]:
            stats = client.info("commandstats")
            return {k: v["calls"] for k, v in stats.items()}

        before = calls()
        for _ in range(10):
            bucket.try_acquire()
        after = calls()
    finally:
        client.close()
    delta = {k: n - before.get(k, 0) for k, n in after.items() if n != before.get(k, 0)}
    delta.pop("cmdstat_info", None)
    assert delta["cmdstat_evalsha"] == 10
    assert delta["cmdstat_time"] == 10
    assert delta.get("cmdstat_get", 0) == 10  # the script's own read; no extra client round trip
    assert set(delta) <= {"cmdstat_evalsha", "cmdstat_time", "cmdstat_get", "cmdstat_set"}


def test_async_hooks_are_awaited_by_async_retries() -> None:
    """Coroutine-function hooks work with coroutine functions: before_sleep and on_giveup run."""
    clock = FakeClock()
    seen: list[tuple[str, int]] = []

    async def before(record: AttemptRecord) -> None:
        await asyncio.sleep(0)
        seen.append(("before", record.number))

    async def giveup(record: AttemptRecord) -> None:
        await asyncio.sleep(0)
        seen.append(("giveup", record.number))

    @retry(
        on=Boom,
        attempts=3,
        before_sleep=before,
        on_giveup=giveup,
        clock=clock,
        async_sleep=clock.async_sleep,
    )
    async def down() -> None:
        raise Boom("x")

    with pytest.raises(Boom):
        asyncio.run(down())
    assert seen == [("before", 1), ("before", 2), ("giveup", 3)]


def test_async_hooks_in_the_async_block_form() -> None:
    """async for ... async with attempt: awaits coroutine hooks, giving up included."""
    clock = FakeClock()
    seen: list[tuple[str, int]] = []

    async def before(record: AttemptRecord) -> None:
        seen.append(("before", record.number))

    async def giveup(record: AttemptRecord) -> None:
        seen.append(("giveup", record.number))

    async def run() -> None:
        async for attempt in retrying(
            on=Boom,
            attempts=2,
            before_sleep=before,
            on_giveup=giveup,
            clock=clock,
            async_sleep=clock.async_sleep,
        ):
            async with attempt:
                raise Boom("x")

    with pytest.raises(Boom):
        asyncio.run(run())
    assert seen == [("before", 1), ("giveup", 2)]


def test_async_hook_with_a_sync_function_is_a_type_error() -> None:
    """A coroutine hook cannot run in sync code: a clear TypeError, not a silently dropped hook."""

    async def before(record: AttemptRecord) -> None:
        raise AssertionError("never runs")

    wrapped = retry(on=Boom, attempts=3, before_sleep=before, sleep=lambda s: None)(_down)
    with pytest.raises(TypeError, match="before_sleep"):
        wrapped()


@pytest.mark.parametrize(
    "error",
    [
        CircuitOpenError("open", retry_after=1.5, name="svc"),
        resilience.RateLimitExceeded("slow down", retry_after=2.0),
        resilience.RetryError("gave up", attempts=3, last_result=[1]),
        DeadlineExceeded("late"),
        resilience.BackendUnavailable("down"),
    ],
)
def test_errors_survive_pickle_and_copy(error: ResilienceError) -> None:
    """Errors cross process boundaries (multiprocessing pickles them) and copy with their data."""
    import copy
    import pickle

    fields = ("retry_after", "name", "attempts", "last_result")
    for clone in (pickle.loads(pickle.dumps(error)), copy.copy(error)):
        assert type(clone) is type(error)
        assert str(clone) == str(error)
        assert clone.args == error.args
        for field in fields:
            assert getattr(clone, field, None) == getattr(error, field, None), field


def test_rejection_error_pickles_as_raised() -> None:
    """The CircuitOpenError an open breaker raises can be pickled with its retry_after."""
    import pickle

    breaker = CircuitBreaker(failure_threshold=1, recovery_timeout=30.0, name="svc")
    with pytest.raises(Boom):
        breaker.call(_down)
    with pytest.raises(CircuitOpenError) as info:
        breaker.call(lambda: None)
    clone = pickle.loads(pickle.dumps(info.value))
    assert clone.retry_after == info.value.retry_after
    assert "svc" in str(clone)


@pytest.mark.slow
def test_decorators_keep_types_for_mypy() -> None:
    """mypy --strict accepts typing_contract.py: breaker/bucket/limiter/Policy keep types."""
    api = pytest.importorskip("mypy.api")
    here = Path(__file__).parent
    stdout, stderr, status = api.run(
        [
            str(here / "typing_contract.py"),
            "--strict",
            "--follow-imports=silent",
            "--no-error-summary",
            "--python-version=3.10",
        ]
    )
    assert status == 0, stdout + stderr
