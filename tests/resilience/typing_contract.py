"""Typed usage of the breaker, bucket, limiter and Policy decorators (never executed).

Checked by mypy --strict in test_contract.py: ``assert_type`` proves return types are kept,
and each ``type: ignore[arg-type]`` proves parameter types are kept (an unneeded ignore is
itself an error under --strict).
"""

from __future__ import annotations

from typing_extensions import assert_type

from resilience import (
    Backoff,
    CircuitBreaker,
    CircuitState,
    Policy,
    RateLimiter,
    TokenBucket,
    retry,
)

breaker = CircuitBreaker(failure_threshold=5, recovery_timeout=60.0, expected_exception=OSError)
bucket = TokenBucket(10, 5)
limiter = RateLimiter(requests_per_minute=60, burst_size=10)
policy = Policy(retry=retry(on=OSError), breaker=breaker, limiter=limiter, timeout=1.0)


@breaker
def guarded(x: int) -> str:
    return str(x)


@bucket
def limited(x: int) -> str:
    return str(x)


@limiter
async def limited_async(x: int) -> str:
    return str(x)


@policy
def composed(x: int) -> str:
    return str(x)


@bucket.limit(2, timeout=1.0)
def limited_two(x: int) -> str:
    return str(x)


assert_type(guarded(1), str)
assert_type(limited(1), str)
assert_type(composed(1), str)
assert_type(limited_two(1), str)
guarded("x")  # type: ignore[arg-type]
limited("x")  # type: ignore[arg-type]
composed("x")  # type: ignore[arg-type]
limited_two("x")  # type: ignore[arg-type]
assert_type(breaker.call(guarded, 1), str)
breaker.call(guarded, "1")  # type: ignore[arg-type]
assert_type(policy.call(guarded, 1), str)
assert_type(breaker.state, CircuitState)
assert_type(bucket.try_acquire(), bool)
assert_type(bucket.acquire(tokens=1, timeout=None), bool)
assert_type(list(Backoff().delays()), list[float])


async def use_async() -> None:
    assert_type(await limited_async(1), str)
    await limited_async("x")  # type: ignore[arg-type]
    assert_type(await bucket.acquire_async(), bool)
    assert_type(await breaker.call_async(limited_async, 1), str)
    with breaker:
        pass
    async with breaker:
        pass
