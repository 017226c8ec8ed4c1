"""Tests for resilience.policy: Retry(CircuitBreaker(RateLimiter(Timeout(call))))."""

from __future__ import annotations

import asyncio
import inspect
import threading
import time
from typing import Any

import pytest

import resilience
from resilience import (
    Backoff,
    CircuitBreaker,
    CircuitOpenError,
    CircuitState,
    DeadlineExceeded,
    Policy,
    RateLimitExceeded,
    TokenBucket,
    retry,
)
from resilience.retry import AttemptRecord
from resilience.testing import FakeClock

ONE_SECOND = Backoff(base=1.0, factor=1.0, cap=1.0, jitter="none")
NO_WAIT = Backoff(base=0.0, factor=1.0, cap=0.0, jitter="none")


class Boom(Exception):
    """The dependency failed."""


def fake_retry(clock: FakeClock, records: list[AttemptRecord] | None = None, **kw: Any) -> Any:
    hooks: dict[str, Any] = {}
    if records is not None:
        hooks["before_sleep"] = records.append
    return retry(clock=clock, sleep=clock.sleep, async_sleep=clock.async_sleep, **hooks, **kw)


def fake_bucket(clock: FakeClock, rate: float = 1.0, capacity: float = 1) -> TokenBucket:
    return TokenBucket(
        rate, capacity, clock=clock, sleep=clock.sleep, async_sleep=clock.async_sleep
    )


# --------------------------------------------------------------------------------------------
# The order, proven


def test_retry_sees_circuit_open_error_and_waits_for_the_probe() -> None:
    """Each attempt passes the breaker; once open, retry gets CircuitOpenError and waits."""
    clock = FakeClock()
    breaker = CircuitBreaker(2, 10.0, clock=clock)
    records: list[AttemptRecord] = []
    calls: list[float] = []
    policy = Policy(
        retry=fake_retry(clock, records, attempts=5, backoff=ONE_SECOND), breaker=breaker
    )

    def down() -> None:
        calls.append(clock())
        raise Boom

    with pytest.raises(CircuitOpenError):
        policy.call(down)
    # t=0 Boom, t=1 Boom (opens), t=2 rejected (retry_after 9), t=11 probe Boom (reopens),
    # t=12 rejected: the retry gives up with the breaker's error.
    assert calls == [0.0, 1.0, 11.0]
    assert [type(r.exception) for r in records] == [Boom, Boom, CircuitOpenError, Boom]
    assert clock.sleeps == [1.0, 1.0, 9.0, 1.0]
    assert breaker.state is CircuitState.OPEN


def test_limiter_is_consulted_per_attempt() -> None:
    """Each attempt takes its own token: retries with no backoff still wait for the limiter."""
    clock = FakeClock()
    attempts: list[float] = []

    def flaky() -> str:
        attempts.append(clock())
        if len(attempts) < 3:
            raise Boom
        return "ok"

    policy = Policy(
        retry=fake_retry(clock, attempts=3, backoff=NO_WAIT),
        breaker=CircuitBreaker(10, clock=clock),
        limiter=fake_bucket(clock, rate=1.0, capacity=1),
    )
    assert policy.call(flaky) == "ok"
    assert attempts == [0.0, 1.0, 2.0]
    assert clock.sleeps == [1.0, 1.0]  # the limiter's waits; a zero backoff never sleeps


def test_open_breaker_spends_no_tokens() -> None:
    """Attempts rejected by an open breaker do not take rate-limit tokens (limiter inside)."""
    clock = FakeClock()
    breaker = CircuitBreaker(1, 60.0, clock=clock)
    bucket = fake_bucket(clock, rate=0.001, capacity=2)
    policy = Policy(breaker=breaker, limiter=bucket)
    with pytest.raises(Boom):
        policy.call(lambda: (_ for _ in ()).throw(Boom()))
    for _ in range(5):
        with pytest.raises(CircuitOpenError):
            policy.call(lambda: "never")
    assert bucket.try_acquire() is True  # one of two tokens left: rejections took none
    assert bucket.try_acquire() is False


def test_rate_limit_refusal_is_not_a_breaker_failure() -> None:
    """A limiter refusal is neither success nor failure, and gives a half-open slot back."""
    clock = FakeClock()
    breaker = CircuitBreaker(1, 5.0, clock=clock)
    bucket = fake_bucket(clock, rate=0.1, capacity=1)
    policy = Policy(breaker=breaker, limiter=bucket, limiter_timeout=0.0)
    assert bucket.try_acquire()  # empty the bucket
    with pytest.raises(RateLimitExceeded) as info:
        policy.call(lambda: "x")
    assert info.value.retry_after == pytest.approx(10.0)
    assert breaker.state is CircuitState.CLOSED and breaker.failure_count == 0
    clock.advance(10.0)  # one token again
    with pytest.raises(Boom):
        policy.call(lambda: (_ for _ in ()).throw(Boom()))
    assert breaker.state is CircuitState.OPEN
    clock.advance(5.0)  # recovery over, but the bucket is only half full
    with pytest.raises(RateLimitExceeded):
        policy.call(lambda: "x")  # took the probe slot, then gave it back
    assert breaker.state is CircuitState.HALF_OPEN
    clock.advance(5.0)
    assert policy.call(lambda: "x") == "x"  # the probe runs and closes the breaker
    assert breaker.state is CircuitState.CLOSED


def test_limiter_wait_is_not_part_of_the_slow_call_timer() -> None:
    """Waiting for a token does not make an instant call 'slow' for the breaker."""
    clock = FakeClock()
    breaker = CircuitBreaker(slow_call_duration=1.0, window_size=1, minimum_calls=1, clock=clock)
    bucket = fake_bucket(clock, rate=0.2, capacity=1)
    policy = Policy(breaker=breaker, limiter=bucket)
    assert policy.call(lambda: 1) == 1
    assert policy.call(lambda: 2) == 2  # waited 5 s for its token
    assert clock.sleeps == [5.0]
    assert breaker.state is CircuitState.CLOSED


def test_timeout_bounds_each_attempt_and_counts_as_failure() -> None:
    """The timeout is per attempt: a hung first attempt times out, the retry succeeds."""
    breaker = CircuitBreaker(failure_rate_threshold=1.0, window_size=10, minimum_calls=10)
    calls: list[int] = []

    def hangs_once() -> str:
        calls.append(1)
        if len(calls) == 1:
            time.sleep(20.0)  # interrupted by the 0.1 s timeout
        return "ok"

    policy = Policy(
        retry=retry(on=DeadlineExceeded, attempts=2, backoff=NO_WAIT),
        breaker=breaker,
        timeout=0.1,
    )
    started = time.monotonic()
    assert policy.call(hangs_once) == "ok"
    assert len(calls) == 2
    assert breaker.failure_count == 1  # the timeout was recorded as a failure
    assert time.monotonic() - started < 10.0  # the sleep was interrupted, not waited out


# --------------------------------------------------------------------------------------------
# Async


def test_async_order_and_timeout() -> None:
    """Async: retry sees CircuitOpenError, limiter per attempt, timeout per attempt."""
    clock = FakeClock()
    breaker = CircuitBreaker(2, 10.0, clock=clock)
    records: list[AttemptRecord] = []
    calls: list[float] = []
    policy = Policy(
        retry=fake_retry(clock, records, attempts=5, backoff=ONE_SECOND),
        breaker=breaker,
        limiter=fake_bucket(clock, rate=10.0, capacity=10),
    )

    async def down() -> None:
        calls.append(clock())
        raise Boom

    real_breaker = CircuitBreaker(failure_rate_threshold=1.0, window_size=10, minimum_calls=10)
    timed = Policy(
        retry=retry(on=DeadlineExceeded, attempts=2, backoff=NO_WAIT),
        breaker=real_breaker,
        timeout=0.05,
    )
    slow_calls: list[int] = []

    @timed
    async def hangs_once(x: int) -> int:
        slow_calls.append(x)
        if len(slow_calls) == 1:
            await asyncio.sleep(5)
        return x

    async def main() -> None:
        with pytest.raises(CircuitOpenError):
            await policy.call_async(down)
        assert await hangs_once(3) == 3

    asyncio.run(main())
    assert calls == [0.0, 1.0, 11.0]
    assert [type(r.exception) for r in records] == [Boom, Boom, CircuitOpenError, Boom]
    assert slow_calls == [3, 3] and real_breaker.failure_count == 1


def test_async_rate_limit_refusal_releases_probe() -> None:
    """Async: a limiter refusal in HALF_OPEN gives the probe slot back."""
    clock = FakeClock()
    breaker = CircuitBreaker(1, 5.0, clock=clock)
    bucket = fake_bucket(clock, rate=0.1, capacity=1)
    policy = Policy(breaker=breaker, limiter=bucket, limiter_timeout=0.0)

    async def fail() -> None:
        raise Boom

    async def ok() -> str:
        return "ok"

    async def main() -> None:
        with pytest.raises(Boom):
            await policy.call_async(fail)
        clock.advance(5.0)
        with pytest.raises(RateLimitExceeded):
            await policy.call_async(ok)
        assert breaker.state is CircuitState.HALF_OPEN
        clock.advance(5.0)
        assert await policy.call(ok) == "ok"  # call() on a coroutine function is awaitable

    asyncio.run(main())
    assert breaker.state is CircuitState.CLOSED


# --------------------------------------------------------------------------------------------
# Forms, threads, input


def test_decorator_keeps_signature_sync_and_async() -> None:
    """@policy keeps names and signatures and the coroutine-function nature."""
    policy = Policy(breaker=CircuitBreaker(), timeout=5.0)

    @policy
    def add(a: int, b: int = 2) -> int:
        """Add."""
        return a + b

    @policy
    async def aadd(a: int, b: int = 2) -> int:
        return a + b

    assert add(1) == 3 and add.__name__ == "add" and add.__doc__ == "Add."
    assert str(inspect.signature(add)) == "(a: 'int', b: 'int' = 2) -> 'int'"
    assert inspect.iscoroutinefunction(aadd)
    assert asyncio.run(aadd(1, b=5)) == 6


def test_retry_records_name_the_decorated_function() -> None:
    """With @policy, the retry hooks see the decorated function's name."""
    clock = FakeClock()
    records: list[AttemptRecord] = []
    policy = Policy(retry=fake_retry(clock, records, attempts=2, backoff=NO_WAIT))

    @policy
    def fetch_bars() -> None:
        raise Boom

    with pytest.raises(Boom):
        fetch_bars()
    assert records and records[0].name.endswith("fetch_bars")


def test_empty_policy_just_calls() -> None:
    """A Policy with no parts calls the function and lets its exceptions through unchanged."""
    policy = Policy()
    error = Boom()

    def raises() -> None:
        raise error

    assert policy.call(lambda x: x * 2, 4) == 8
    with pytest.raises(Boom) as info:
        policy.call(raises)
    assert info.value is error
    assert "Policy(" in repr(policy)


def test_two_calls_overlap_through_one_policy() -> None:
    """Two threads' calls through one policy (breaker, limiter, timeout) run at the same time."""
    policy = Policy(
        retry=retry(attempts=1),
        breaker=CircuitBreaker(),
        limiter=TokenBucket(100.0, 10),
        timeout=10.0,
    )
    both_inside = threading.Barrier(2, timeout=5)
    results: list[str] = []

    @policy
    def slow() -> str:
        both_inside.wait()
        return "done"

    threads = [threading.Thread(target=lambda: results.append(slow())) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert results == ["done", "done"]


@pytest.mark.parametrize(
    ("kwargs", "error", "param"),
    [
        ({"retry": 3}, TypeError, "retry"),
        ({"breaker": "x"}, TypeError, "breaker"),
        ({"limiter": 5}, TypeError, "limiter"),
        ({"timeout": 0}, ValueError, "timeout"),
        ({"timeout": "1"}, TypeError, "timeout"),
        ({"limiter_timeout": -1.0}, ValueError, "limiter_timeout"),
        ({"tokens": 0}, ValueError, "tokens"),
        ({"tokens": 5, "limiter": TokenBucket(1.0, 2)}, ValueError, "tokens"),
    ],
)
def test_bad_input_names_the_parameter(
    kwargs: dict[str, Any], error: type[Exception], param: str
) -> None:
    """Invalid Policy arguments raise ValueError/TypeError naming the parameter."""
    with pytest.raises(error, match=param):
        Policy(**kwargs)


def test_policy_is_exported() -> None:
    """Policy is a top-level name."""
    assert "Policy" in resilience.__all__ and resilience.Policy is Policy
