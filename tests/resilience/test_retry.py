"""Tests for resilience.retry: retry, retrying, RetryBudget, exponential_backoff_retry."""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import itertools
import logging
import random
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from resilience import (
    AttemptRecord,
    Backoff,
    Deadline,
    RetryBudget,
    RetryError,
    exponential_backoff_retry,
    retry,
    retrying,
)
from resilience.testing import FakeClock, no_retry_waits, set_retry_waits

NO_JITTER = Backoff(base=1.0, factor=2.0, cap=60.0, jitter="none")


class Flaky:
    """A callable failing with the given exceptions, then returning 'ok'."""

    def __init__(self, clock: FakeClock, *failures: BaseException, duration: float = 0.0):
        self.clock = clock
        self.failures = list(failures)
        self.duration = duration
        self.calls: list[float] = []

    def __call__(self, *args: Any, **kwargs: Any) -> str:
        self.calls.append(self.clock())
        self.clock.advance(self.duration)
        if self.failures:
            raise self.failures.pop(0)
        return "ok"


def fake_retry(clock: FakeClock, **kwargs: Any) -> Callable[[Callable[..., Any]], Any]:
    """retry() wired to a FakeClock."""
    kwargs.setdefault("backoff", NO_JITTER)
    return retry(clock=clock, sleep=clock.sleep, async_sleep=clock.async_sleep, **kwargs)


class RetryAfterError(Exception):
    """An error carrying a server retry hint."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(f"retry after {retry_after}")
        self.retry_after = retry_after


# -- decorator: basic behaviour ----------------------------------------------------------


def test_success_first_time_calls_once_and_never_sleeps() -> None:
    """A call that succeeds at once is made once and sleep is never called."""
    clock = FakeClock()
    func = Flaky(clock)
    assert fake_retry(clock, on=ValueError)(func)() == "ok"
    assert len(func.calls) == 1 and clock.sleeps == []


def test_retries_matching_exceptions_with_backoff_waits() -> None:
    """Two ValueErrors then success: three calls, sleeps follow the backoff (1, 2)."""
    clock = FakeClock()
    func = Flaky(clock, ValueError("a"), ValueError("b"))
    assert fake_retry(clock, on=ValueError, attempts=5)(func)() == "ok"
    assert len(func.calls) == 3
    assert clock.sleeps == [1.0, 2.0]


def test_arguments_are_passed_on_every_attempt() -> None:
    """Positional and keyword arguments reach every attempt unchanged."""
    clock = FakeClock()
    seen: list[tuple[Any, ...]] = []

    @fake_retry(clock, on=KeyError)
    def func(a: int, *, b: str) -> str:
        seen.append((a, b))
        if len(seen) < 2:
            raise KeyError(a)
        return b * a

    assert func(2, b="x") == "xx"
    assert seen == [(2, "x"), (2, "x")]


def test_non_matching_exception_propagates_at_once() -> None:
    """An exception outside on= is raised after one call, without sleeping."""
    clock = FakeClock()
    func = Flaky(clock, TypeError("no"))
    with pytest.raises(TypeError, match="no"):
        fake_retry(clock, on=ValueError)(func)()
    assert len(func.calls) == 1 and clock.sleeps == []


def test_non_matching_exception_on_a_later_attempt_propagates() -> None:
    """A ValueError then a TypeError: the TypeError propagates, no further attempts."""
    clock = FakeClock()
    func = Flaky(clock, ValueError(), TypeError("later"))
    with pytest.raises(TypeError, match="later"):
        fake_retry(clock, on=ValueError, attempts=5)(func)()
    assert len(func.calls) == 2


def test_gives_up_after_attempts_and_reraises_the_last_exception_unchanged() -> None:
    """After `attempts` calls the very last exception object is re-raised, unchained."""
    clock = FakeClock()
    errors = [ValueError(i) for i in range(3)]
    func = Flaky(clock, *errors)
    with pytest.raises(ValueError) as info:
        fake_retry(clock, on=ValueError, attempts=3)(func)()
    assert info.value is errors[2]
    assert info.value.__context__ is None and info.value.__cause__ is None
    assert len(func.calls) == 3
    assert clock.sleeps == [1.0, 2.0]


def test_attempts_one_means_no_retry() -> None:
    """attempts=1 calls once and re-raises."""
    clock = FakeClock()
    func = Flaky(clock, ValueError())
    with pytest.raises(ValueError):
        fake_retry(clock, on=ValueError, attempts=1)(func)()
    assert len(func.calls) == 1 and clock.sleeps == []


def test_tuple_of_exception_types() -> None:
    """on= accepts a tuple of types."""
    clock = FakeClock()
    func = Flaky(clock, KeyError(), IndexError())
    assert fake_retry(clock, on=(KeyError, IndexError))(func)() == "ok"
    assert len(func.calls) == 3


def test_predicate_selects_what_is_retried() -> None:
    """on=predicate retries only the exceptions it accepts."""
    clock = FakeClock()
    transient = Flaky(clock, OSError("transient"), OSError("fatal"))
    deco = fake_retry(clock, on=lambda exc: "transient" in str(exc), attempts=5)
    with pytest.raises(OSError, match="fatal"):
        deco(transient)()
    assert len(transient.calls) == 2


def test_predicate_never_sees_base_exceptions() -> None:
    """A predicate cannot make KeyboardInterrupt retryable: it propagates at once."""
    clock = FakeClock()
    func = Flaky(clock, KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        fake_retry(clock, on=lambda exc: True)(func)()
    assert len(func.calls) == 1


def test_zero_wait_never_calls_sleep() -> None:
    """With a zero backoff the retries happen but sleep is never called."""
    clock = FakeClock()

    def forbidden_sleep(seconds: float) -> None:
        raise AssertionError(f"sleep({seconds}) called")

    func = Flaky(clock, ValueError(), ValueError())
    deco = retry(on=ValueError, backoff=Backoff(base=0, cap=0), clock=clock, sleep=forbidden_sleep)
    assert deco(func)() == "ok"
    assert len(func.calls) == 3


def test_decorrelated_waits_follow_the_stateful_sequence() -> None:
    """The decorator's waits equal Backoff.delays() for the same seed (decorrelated state)."""
    clock = FakeClock()
    backoff = Backoff(base=0.5, cap=100.0, jitter="decorrelated")
    func = Flaky(clock, *[ValueError() for _ in range(6)])
    fake_retry(clock, on=ValueError, attempts=7, backoff=backoff, rng=random.Random(3))(func)()
    expected = list(itertools.islice(backoff.delays(random.Random(3)), 6))
    assert clock.sleeps == expected


# -- deadline ----------------------------------------------------------------------------


def test_deadline_gives_up_instead_of_sleeping_past_it() -> None:
    """Waits 1, 2, 4 with deadline 6: after attempt 3 (t=3) a 4 s wait would cross it."""
    clock = FakeClock()
    func = Flaky(clock, *[ValueError(i) for i in range(10)])
    records: list[AttemptRecord] = []
    with pytest.raises(ValueError, match="2"):
        fake_retry(clock, on=ValueError, attempts=None, deadline=6.0, on_giveup=records.append)(
            func
        )()
    assert clock.sleeps == [1.0, 2.0]
    assert func.calls == [0.0, 1.0, 3.0]
    assert records[0].reason == "deadline" and records[0].number == 3


def test_deadline_counts_time_spent_in_attempts() -> None:
    """Slow attempts consume the deadline too (monotonic time from the first call)."""
    clock = FakeClock()
    func = Flaky(clock, *[ValueError() for _ in range(10)], duration=2.0)
    with pytest.raises(ValueError):
        fake_retry(clock, on=ValueError, attempts=None, deadline=7.0)(func)()
    # attempt 1: 0-2, wait 1, attempt 2: 3-5, wait 2 would start attempt 3 at 7: give up.
    assert func.calls == [0.0, 3.0]


@settings(max_examples=150)
@given(
    deadline=st.floats(min_value=0.01, max_value=50.0),
    durations=st.lists(st.floats(min_value=0.001, max_value=5.0), min_size=1, max_size=30),
    base=st.floats(min_value=0.0, max_value=5.0),
    kind=st.sampled_from(["none", "full", "equal", "decorrelated", "proportional"]),
    attempts=st.one_of(st.none(), st.integers(min_value=1, max_value=30)),
    hint=st.one_of(st.none(), st.floats(min_value=0.0, max_value=20.0)),
    seed=st.integers(0, 1000),
)
def test_deadline_is_never_overshot(
    *,
    deadline: float,
    durations: list[float],
    base: float,
    kind: str,
    attempts: int | None,
    hint: float | None,
    seed: int,
) -> None:
    """No attempt ever starts at or after the deadline, whatever the waits and hints."""
    clock = FakeClock(100.0)
    starts: list[float] = []
    durations_iter = itertools.cycle(durations)

    def func() -> None:
        starts.append(clock())
        clock.advance(next(durations_iter))
        exc = RetryAfterError(hint) if hint is not None else ValueError()
        raise exc

    records: list[AttemptRecord] = []
    deco = retry(
        on=Exception,
        attempts=attempts,
        deadline=deadline,
        backoff=Backoff(base=base, cap=base * 4, jitter=kind),
        on_giveup=records.append,
        clock=clock,
        sleep=clock.sleep,
        rng=random.Random(seed),
    )
    with pytest.raises(Exception):
        deco(func)()
    assert all(start < 100.0 + deadline for start in starts[1:])
    assert sum(clock.sleeps) < deadline
    assert len(records) == 1
    if records[0].reason == "attempts":
        assert attempts is not None and len(starts) == attempts
    else:
        assert records[0].reason == "deadline"
    if hint is not None:
        assert all(s >= hint for s in clock.sleeps)


def test_shared_deadline_object_spans_calls() -> None:
    """A Deadline passed as deadline= is one budget across several decorated calls."""
    clock = FakeClock()
    shared = Deadline(5.0, clock=clock)
    deco = fake_retry(clock, on=ValueError, attempts=None, deadline=shared)
    first = Flaky(clock, ValueError(), ValueError())
    assert deco(first)() == "ok"  # t = 0 -> 3
    second = Flaky(clock, ValueError(), ValueError())
    with pytest.raises(ValueError):
        deco(second)()  # t = 3: a 1 s wait is fine (t=4), then 2 s would reach 6 > 5
    assert second.calls == [3.0, 4.0]


# -- retry_after -------------------------------------------------------------------------


def test_retry_after_raises_the_next_wait() -> None:
    """retry_after=5 makes the next wait 5 s although the backoff says 1 s."""
    clock = FakeClock()
    func = Flaky(clock, RetryAfterError(5.0), RetryAfterError(0.5))
    assert fake_retry(clock, on=RetryAfterError)(func)() == "ok"
    assert clock.sleeps == [5.0, 2.0]


def test_retry_after_is_still_bounded_by_the_deadline() -> None:
    """A retry_after beyond the deadline makes the loop give up instead of sleeping."""
    clock = FakeClock()
    func = Flaky(clock, RetryAfterError(30.0))
    with pytest.raises(RetryAfterError):
        fake_retry(clock, on=RetryAfterError, deadline=10.0)(func)()
    assert clock.sleeps == [] and len(func.calls) == 1


@pytest.mark.parametrize("junk", [-1.0, float("nan"), float("inf"), "5", None, True])
def test_invalid_retry_after_values_are_ignored(junk: object) -> None:
    """Negative, NaN, infinite or non-numeric retry_after hints fall back to the backoff."""
    clock = FakeClock()
    exc = ValueError()
    exc.retry_after = junk  # type: ignore[attr-defined]
    func = Flaky(clock, exc)
    assert fake_retry(clock, on=ValueError)(func)() == "ok"
    assert clock.sleeps == [1.0]


# -- results -----------------------------------------------------------------------------


def test_retry_on_result_until_acceptable() -> None:
    """retry_on_result retries unacceptable results and returns the first good one."""
    clock = FakeClock()
    results = iter([None, None, 42])
    deco = fake_retry(clock, retry_on_result=lambda r: r is None, attempts=5)
    assert deco(lambda: next(results))() == 42
    assert clock.sleeps == [1.0, 2.0]


def test_retry_on_result_gives_up_with_retry_error() -> None:
    """When results stay unacceptable a RetryError carries the attempts and last result."""
    clock = FakeClock()
    counter = itertools.count()
    deco = fake_retry(clock, retry_on_result=lambda r: r < 100, attempts=3)
    with pytest.raises(RetryError) as info:
        deco(lambda: next(counter))()
    assert info.value.attempts == 3 and info.value.last_result == 2


def test_result_then_exception_then_success() -> None:
    """Results and exceptions can alternate within one retried call."""
    clock = FakeClock()
    outcomes: list[Any] = [None, ValueError(), "done"]

    def func() -> Any:
        item = outcomes.pop(0)
        if isinstance(item, Exception):
            raise item
        return item

    deco = fake_retry(clock, on=ValueError, retry_on_result=lambda r: r is None, attempts=4)
    assert deco(func)() == "done"
    assert len(clock.sleeps) == 2


# -- hooks and logging -------------------------------------------------------------------


def test_hooks_receive_frozen_records() -> None:
    """before_sleep gets one record per retry and on_giveup one final record."""
    clock = FakeClock()
    errors = [ValueError(i) for i in range(3)]
    func = Flaky(clock, *errors, duration=0.5)
    before: list[AttemptRecord] = []
    giveup: list[AttemptRecord] = []
    deco = fake_retry(
        clock, on=ValueError, attempts=3, before_sleep=before.append, on_giveup=giveup.append
    )
    with pytest.raises(ValueError):
        deco(func)()
    assert [(r.number, r.elapsed, r.next_wait, r.exception) for r in before] == [
        (1, 0.5, 1.0, errors[0]),
        (2, 2.0, 2.0, errors[1]),
    ]
    (last,) = giveup
    assert (last.number, last.elapsed, last.next_wait, last.exception, last.reason) == (
        3,
        4.5,
        None,
        errors[2],
        "attempts",
    )
    assert last.name.endswith("Flaky") or last.name
    with pytest.raises(dataclasses.FrozenInstanceError):
        last.number = 9  # type: ignore[misc]
    assert not hasattr(last, "__dict__")


def test_hook_exceptions_propagate() -> None:
    """An exception raised by before_sleep stops the loop and propagates."""
    clock = FakeClock()

    def hook(record: AttemptRecord) -> None:
        raise RuntimeError("hook failed")

    with pytest.raises(RuntimeError, match="hook failed"):
        fake_retry(clock, on=ValueError, before_sleep=hook)(Flaky(clock, ValueError()))()


def test_logs_debug_per_retry_and_warning_on_giveup(caplog: pytest.LogCaptureFixture) -> None:
    """Each retry logs at DEBUG and giving up logs one WARNING naming the function."""
    clock = FakeClock()

    @fake_retry(clock, on=ValueError, attempts=3)
    def fetch_quotes() -> None:
        raise ValueError("down")

    with caplog.at_level(logging.DEBUG, logger="resilience.retry"), pytest.raises(ValueError):
        fetch_quotes()
    levels = [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "resilience.retry"]
    assert [lvl for lvl, _ in levels] == [logging.DEBUG, logging.DEBUG, logging.WARNING]
    assert "fetch_quotes" in levels[-1][1] and "giving up after 3" in levels[-1][1]
    assert "ValueError: down" in levels[0][1]


# -- signatures and methods --------------------------------------------------------------


def test_decorator_preserves_metadata_and_signature() -> None:
    """Name, docstring, __wrapped__ and the inspect signature are those of the function."""

    @retry(on=ValueError)
    def documented(a: int, b: str = "x") -> str:
        """Doc."""
        return b * a

    assert documented.__name__ == "documented" and documented.__doc__ == "Doc."
    signature = inspect.signature(documented)
    assert signature == inspect.signature(documented.__wrapped__)  # type: ignore[attr-defined]
    assert list(signature.parameters) == ["a", "b"]
    assert signature.parameters["b"].default == "x"
    assert documented(2) == "xx"


def test_methods_are_retried_with_self_bound() -> None:
    """Decorating a method works: self is passed on every attempt."""
    clock = FakeClock()

    class Client:
        def __init__(self) -> None:
            self.calls = 0

        @fake_retry(clock, on=ConnectionError)
        def get(self, key: str) -> str:
            self.calls += 1
            if self.calls < 2:
                raise ConnectionError
            return key.upper()

    client = Client()
    assert client.get("k") == "K" and client.calls == 2


# -- async -------------------------------------------------------------------------------


def test_async_functions_stay_coroutine_functions() -> None:
    """The decorated coroutine function is still a coroutine function."""

    @retry(on=ValueError)
    async def fetch() -> int:
        return 1

    assert inspect.iscoroutinefunction(fetch)
    assert asyncio.run(fetch()) == 1


def test_async_retry_uses_async_sleep_and_reraises() -> None:
    """Async retries await async_sleep with the backoff waits and re-raise the last error."""
    clock = FakeClock()
    errors = [ValueError(i) for i in range(3)]
    calls: list[float] = []

    @fake_retry(clock, on=ValueError, attempts=3)
    async def fetch() -> None:
        calls.append(clock())
        await asyncio.sleep(0)
        raise errors[len(calls) - 1]

    with pytest.raises(ValueError) as info:
        asyncio.run(fetch())
    assert info.value is errors[2]
    assert clock.sleeps == [1.0, 2.0] and calls == [0.0, 1.0, 3.0]


def test_async_retry_on_result_and_predicate() -> None:
    """Async form honours on= predicates and retry_on_result."""
    clock = FakeClock()
    outcomes: list[Any] = [OSError("transient"), None, 7]

    @fake_retry(
        clock, on=lambda e: "transient" in str(e), retry_on_result=lambda r: r is None, attempts=5
    )
    async def fetch() -> Any:
        item = outcomes.pop(0)
        if isinstance(item, Exception):
            raise item
        return item

    assert asyncio.run(fetch()) == 7
    assert len(clock.sleeps) == 2


def test_async_non_matching_exception_propagates() -> None:
    """An async exception outside on= propagates after one call."""
    clock = FakeClock()
    calls = []

    @fake_retry(clock, on=ValueError)
    async def fetch() -> None:
        calls.append(1)
        raise KeyError("x")

    with pytest.raises(KeyError):
        asyncio.run(fetch())
    assert calls == [1]


def test_async_callable_object_is_detected() -> None:
    """An object with an async __call__ gets the async driver."""
    clock = FakeClock()

    class Caller:
        def __init__(self) -> None:
            self.n = 0

        async def __call__(self) -> int:
            self.n += 1
            if self.n < 2:
                raise ValueError
            return self.n

    wrapped = fake_retry(clock, on=ValueError)(Caller())
    assert inspect.iscoroutinefunction(wrapped)
    assert asyncio.run(wrapped()) == 2


# -- block form --------------------------------------------------------------------------


def test_block_form_retries_and_stops_after_success() -> None:
    """for/with retries failed attempts, exposes number/remaining, stops after a success."""
    clock = FakeClock()
    seen: list[tuple[int, float | None, float]] = []
    for attempt in retrying(
        on=ValueError, attempts=5, deadline=20.0, backoff=NO_JITTER, clock=clock, sleep=clock.sleep
    ):
        with attempt:
            seen.append((attempt.number, attempt.remaining, attempt.elapsed))
            if attempt.number < 3:
                raise ValueError
    assert seen == [(1, 20.0, 0.0), (2, 19.0, 1.0), (3, 17.0, 3.0)]
    assert clock.sleeps == [1.0, 2.0]


def test_block_form_remaining_is_none_without_deadline() -> None:
    """Without a deadline attempt.remaining is None."""
    for attempt in retrying(attempts=2):
        with attempt:
            assert attempt.remaining is None


def test_block_form_gives_up_with_the_original_exception() -> None:
    """After the last attempt its exception propagates out of the with block unchanged."""
    clock = FakeClock()
    errors = [ValueError(i) for i in range(2)]
    numbers = []
    with pytest.raises(ValueError) as info:
        for attempt in retrying(on=ValueError, attempts=2, clock=clock, sleep=clock.sleep):
            with attempt:
                numbers.append(attempt.number)
                raise errors[attempt.number - 1]
    assert info.value is errors[1] and numbers == [1, 2]


def test_block_form_non_matching_exception_propagates() -> None:
    """An exception outside on= leaves the loop at once."""
    clock = FakeClock()
    numbers = []
    with pytest.raises(KeyError):
        for attempt in retrying(on=ValueError, clock=clock, sleep=clock.sleep):
            with attempt:
                numbers.append(attempt.number)
                raise KeyError
    assert numbers == [1] and clock.sleeps == []


def test_block_form_retry_on_result() -> None:
    """set_result() feeds retry_on_result; giving up raises RetryError."""
    clock = FakeClock()
    got = []
    for attempt in retrying(
        retry_on_result=lambda r: r < 2, attempts=5, clock=clock, sleep=clock.sleep
    ):
        with attempt:
            attempt.set_result(attempt.number)
            got.append(attempt.number)
    assert got == [1, 2]
    with pytest.raises(RetryError):
        for attempt in retrying(
            retry_on_result=lambda r: True, attempts=2, clock=clock, sleep=clock.sleep
        ):
            with attempt:
                attempt.set_result(0)


def test_block_form_is_reusable() -> None:
    """Each iteration of one retrying object starts a fresh run."""
    clock = FakeClock()
    policy = retrying(on=ValueError, attempts=3, backoff=NO_JITTER, clock=clock, sleep=clock.sleep)
    for _ in range(2):
        numbers = []
        for attempt in policy:
            with attempt:
                numbers.append(attempt.number)
                if attempt.number < 2:
                    raise ValueError
        assert numbers == [1, 2]
    assert clock.sleeps == [1.0, 1.0]


def test_async_block_form() -> None:
    """async for/with retries with async_sleep and gives up with the last exception."""
    clock = FakeClock()

    async def run() -> list[int]:
        numbers = []
        async for attempt in retrying(
            on=ValueError,
            attempts=4,
            backoff=NO_JITTER,
            clock=clock,
            sleep=clock.sleep,
            async_sleep=clock.async_sleep,
        ):
            with attempt:
                numbers.append(attempt.number)
                await asyncio.sleep(0)
                if attempt.number < 3:
                    raise ValueError
        return numbers

    assert asyncio.run(run()) == [1, 2, 3]
    assert clock.sleeps == [1.0, 2.0]

    async def failing() -> None:
        async for attempt in retrying(
            on=ValueError, attempts=2, clock=clock, async_sleep=clock.async_sleep
        ):
            with attempt:
                raise ValueError("last")

    with pytest.raises(ValueError, match="last"):
        asyncio.run(failing())


# -- budget ------------------------------------------------------------------------------


def test_budget_shared_across_functions_limits_retries() -> None:
    """With ratio 0 and a floor of 2 per window, two functions share two retries in total."""
    clock = FakeClock()
    budget = RetryBudget(ratio=0.0, min_per_second=0.2, window=10.0, clock=clock)
    records: list[AttemptRecord] = []
    deco = fake_retry(
        clock, on=ValueError, attempts=5, budget=budget, backoff=Backoff(0, cap=0),
        on_giveup=records.append,
    )  # fmt: skip
    a = Flaky(clock, *[ValueError() for _ in range(10)])
    b = Flaky(clock, *[ValueError() for _ in range(10)])
    with pytest.raises(ValueError):
        deco(a)()
    with pytest.raises(ValueError):
        deco(b)()
    assert len(a.calls) + len(b.calls) == 2 + 2  # two first attempts + two retries
    assert [r.reason for r in records] == ["budget", "budget"]
    clock.advance(10.0)  # the window slides: retries are available again
    c = Flaky(clock, ValueError())
    assert deco(c)() == "ok"


def test_budget_ratio_of_first_attempts() -> None:
    """ratio=0.5 with no floor: 10 first attempts allow 5 retries in the window."""
    clock = FakeClock()
    budget = RetryBudget(ratio=0.5, min_per_second=0.0, window=10.0, clock=clock)
    for _ in range(10):
        budget.record_attempt()
    granted = sum(budget.try_spend() for _ in range(20))
    assert granted == 5
    assert budget.available() == 0.0


def test_budget_forgets_after_the_window() -> None:
    """Attempts older than the window stop counting (bucket precision: 0.9-1.0 window)."""
    clock = FakeClock()
    budget = RetryBudget(ratio=1.0, min_per_second=0.0, window=10.0, clock=clock)
    for _ in range(4):
        budget.record_attempt()
    clock.advance(8.5)
    assert budget.available() == 4.0
    clock.advance(1.6)
    assert budget.available() == 0.0


@settings(max_examples=100)
@given(
    st.lists(
        st.tuples(st.sampled_from(["first", "retry"]), st.floats(min_value=0.0, max_value=3.0)),
        max_size=200,
    )
)
def test_budget_never_grants_more_than_the_bound(ops: list[tuple[str, float]]) -> None:
    """Over any history, retries granted in the last 0.9 window stay within the formula."""
    clock = FakeClock()
    ratio, floor_rate, window = 0.3, 0.5, 10.0
    budget = RetryBudget(ratio=ratio, min_per_second=floor_rate, window=window, clock=clock)
    firsts: list[float] = []
    retries: list[float] = []
    for op, dt in ops:
        clock.advance(dt)
        now = clock()
        if op == "first":
            budget.record_attempt()
            firsts.append(now)
        elif budget.try_spend():
            retries.append(now)
            # The budget counts every event younger than 0.9 window, none older than 1 window.
            firsts_counted = sum(1 for t in firsts if t > now - window)
            retries_surely_counted = sum(1 for t in retries if t > now - 0.9 * window)
            assert retries_surely_counted <= ratio * firsts_counted + floor_rate * window


def test_budget_is_thread_safe() -> None:
    """8 threads spending concurrently are granted exactly the budget, no more."""
    budget = RetryBudget(ratio=0.1, min_per_second=0.0, window=1000.0)
    for _ in range(1000):
        budget.record_attempt()
    granted: list[int] = []
    lock = threading.Lock()
    start = threading.Barrier(8)

    def worker() -> None:
        start.wait()
        mine = sum(budget.try_spend() for _ in range(100))
        with lock:
            granted.append(mine)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(granted) == 100


@pytest.mark.parametrize(
    ("kwargs", "error", "param"),
    [
        ({"ratio": -0.1}, ValueError, "ratio"),
        ({"ratio": float("nan")}, ValueError, "ratio"),
        ({"min_per_second": -1}, ValueError, "min_per_second"),
        ({"min_per_second": float("inf")}, ValueError, "min_per_second"),
        ({"window": 0}, ValueError, "window"),
        ({"window": "10"}, TypeError, "window"),
        ({"clock": 3}, TypeError, "clock"),
    ],
)
def test_budget_validation_names_the_parameter(
    kwargs: dict[str, Any], error: type[Exception], param: str
) -> None:
    """Bad RetryBudget arguments raise an error naming the parameter."""
    with pytest.raises(error, match=param):
        RetryBudget(**kwargs)


# -- testing switch ----------------------------------------------------------------------


def test_no_retry_waits_switch_removes_waits_but_keeps_retries() -> None:
    """Inside no_retry_waits() retries happen without any sleep call; outside, waits return."""
    clock = FakeClock()
    deco = fake_retry(clock, on=Exception, attempts=3)
    with no_retry_waits():
        assert deco(Flaky(clock, ValueError(), RetryAfterError(9)))() == "ok"
    assert clock.sleeps == []
    assert deco(Flaky(clock, ValueError()))() == "ok"
    assert clock.sleeps == [1.0]


def test_set_retry_waits_toggles_globally() -> None:
    """set_retry_waits(False) disables waits until set_retry_waits(True)."""
    clock = FakeClock()
    deco = fake_retry(clock, on=ValueError)
    set_retry_waits(False)
    try:
        deco(Flaky(clock, ValueError()))()
    finally:
        set_retry_waits(True)
    assert clock.sleeps == []


# -- exponential_backoff_retry -----------------------------------------------------------


def test_exponential_backoff_retry_original_semantics() -> None:
    """max_retries is the total number of calls; waits are base*2**i within ±20 %."""
    clock = FakeClock()
    errors = [ConnectionError(i) for i in range(4)]
    func = Flaky(clock, *errors)
    with pytest.raises(ConnectionError) as info:
        exponential_backoff_retry(
            func, max_retries=4, base_delay=1.0, max_delay=3.0, clock=clock, sleep=clock.sleep
        )
    assert info.value is errors[3] and len(func.calls) == 4
    for wait, nominal in zip(clock.sleeps, [1.0, 2.0, 3.0], strict=True):
        assert nominal * 0.8 <= wait <= min(nominal * 1.2, 3.0)


def test_exponential_backoff_retry_returns_result_and_filters() -> None:
    """Returns the first success; exceptions outside `exceptions` propagate at once."""
    clock = FakeClock()
    func = Flaky(clock, ValueError())
    assert (
        exponential_backoff_retry(func, exceptions=(ValueError,), clock=clock, sleep=clock.sleep)
        == "ok"
    )
    other = Flaky(clock, KeyError())
    with pytest.raises(KeyError):
        exponential_backoff_retry(other, exceptions=ValueError, clock=clock, sleep=clock.sleep)
    assert len(other.calls) == 1


def test_exponential_backoff_retry_async() -> None:
    """A coroutine function gives an awaitable retried with async_sleep."""
    clock = FakeClock()
    calls = []

    async def fetch() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise ValueError
        return "ok"

    result = asyncio.run(
        exponential_backoff_retry(fetch, clock=clock, async_sleep=clock.async_sleep)
    )
    assert result == "ok" and len(clock.sleeps) == 2


@pytest.mark.parametrize(
    ("kwargs", "error", "param"),
    [
        ({"max_retries": 0}, ValueError, "max_retries"),
        ({"max_retries": 2.5}, TypeError, "max_retries"),
        ({"base_delay": -1}, ValueError, "base_delay"),
        ({"max_delay": float("nan")}, ValueError, "max_delay"),
        ({"base_delay": 5, "max_delay": 1}, ValueError, "max_delay"),
        ({"exceptions": "ValueError"}, TypeError, "exceptions"),
        ({"exceptions": ()}, TypeError, "exceptions"),
    ],
)
def test_exponential_backoff_retry_validation(
    kwargs: dict[str, Any], error: type[Exception], param: str
) -> None:
    """Bad arguments raise before any call, naming the parameter."""
    calls = []
    with pytest.raises(error, match=param):
        exponential_backoff_retry(lambda: calls.append(1), **kwargs)
    assert calls == []


# -- validation --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error", "param"),
    [
        ({"on": 42}, TypeError, "on"),
        ({"on": int}, TypeError, "on"),
        ({"on": (ValueError, 3)}, TypeError, "on"),
        ({"on": ()}, TypeError, "on"),
        ({"attempts": 0}, ValueError, "attempts"),
        ({"attempts": 2.0}, TypeError, "attempts"),
        ({"attempts": True}, TypeError, "attempts"),
        ({"deadline": -1.0}, ValueError, "deadline"),
        ({"deadline": 0}, ValueError, "deadline"),
        ({"deadline": float("nan")}, ValueError, "deadline"),
        ({"deadline": "5"}, TypeError, "deadline"),
        ({"attempts": None, "deadline": None}, ValueError, "deadline"),
        ({"backoff": 1.0}, TypeError, "backoff"),
        ({"retry_on_result": 3}, TypeError, "retry_on_result"),
        ({"before_sleep": "log"}, TypeError, "before_sleep"),
        ({"on_giveup": 1}, TypeError, "on_giveup"),
        ({"budget": 0.2}, TypeError, "budget"),
        ({"clock": 0}, TypeError, "clock"),
        ({"sleep": None}, TypeError, "sleep"),
        ({"async_sleep": 1}, TypeError, "async_sleep"),
        ({"rng": 7}, TypeError, "rng"),
    ],
)
@pytest.mark.parametrize("factory", [retry, retrying])
def test_retry_validation_names_the_parameter(
    factory: Callable[..., Any], kwargs: dict[str, Any], error: type[Exception], param: str
) -> None:
    """retry()/retrying() reject bad arguments at construction, naming the parameter."""
    with pytest.raises(error, match=param):
        factory(**kwargs)


def test_retry_rejects_non_callables_and_generators() -> None:
    """Decorating a non-callable or a generator function raises TypeError."""
    with pytest.raises(TypeError):
        retry()(3)  # type: ignore[arg-type]

    def gen() -> Any:
        yield 1

    with pytest.raises(TypeError, match="generator"):
        retry()(gen)


# -- typing ------------------------------------------------------------------------------


@pytest.mark.slow
def test_typed_usage_file_passes_mypy() -> None:
    """mypy --strict accepts typing_retry.py: decorators keep parameters and return types."""
    api = pytest.importorskip("mypy.api")
    here = Path(__file__).parent
    stdout, stderr, status = api.run(
        [
            str(here / "typing_retry.py"),
            "--strict",
            "--follow-imports=silent",
            "--no-error-summary",
            "--python-version=3.10",
        ]
    )
    assert status == 0, stdout + stderr
