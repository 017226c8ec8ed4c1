"""Tests for resilience.ratelimit: TokenBucket and RateLimiter (in memory)."""

from __future__ import annotations

import asyncio
import inspect
import math
import threading
import time
from collections.abc import Sequence
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from resilience import RateLimitExceeded
from resilience._bucket import BucketMath
from resilience.ratelimit import RateLimiter, TokenBucket
from resilience.testing import FakeClock


def max_excess(grants: Sequence[tuple[float, float]], rate: float) -> float:
    """Largest ``tokens(window) - rate * len(window)`` over every window [t_i, t_j].

    The window bound holds iff the result is <= capacity.  O(n) over grants sorted by time.
    """
    ordered = sorted(grants)
    worst = -math.inf
    best_start = -math.inf  # max over i <= j of rate * t_i - tokens before i
    total = 0.0
    for t, n in ordered:
        best_start = max(best_start, rate * t - total)
        total += n
        worst = max(worst, total - rate * t + best_start)
    return worst


def fake_bucket(rate: float, capacity: float, start: float = 0.0) -> tuple[TokenBucket, FakeClock]:
    clock = FakeClock(start)
    bucket = TokenBucket(
        rate, capacity, clock=clock, sleep=clock.sleep, async_sleep=clock.async_sleep
    )
    return bucket, clock


# -- the original design ------------------------------------------------------------------


def test_original_design_rate_limiting() -> None:
    """The original design's test passes as written, in real time."""
    limiter = RateLimiter(requests_per_minute=60, burst_size=10)

    # Burst should be allowed
    for _ in range(10):
        assert limiter.acquire(timeout=0.1) is True

    # Next request should be throttled
    assert limiter.acquire(timeout=0.1) is False


def test_original_design_refusal_is_immediate() -> None:
    """The eleventh acquire(timeout=0.1) is refused without sleeping (its wait is ~1 s)."""
    sleeps: list[float] = []
    limiter = RateLimiter(60, 10, sleep=sleeps.append)
    assert all(limiter.acquire(timeout=0.1) for _ in range(10))
    assert limiter.acquire(timeout=0.1) is False
    assert sleeps == []
    assert limiter.retry_after() == pytest.approx(1.0, abs=0.05)


def test_rate_limiter_is_a_token_bucket() -> None:
    """RateLimiter(rpm, burst) is a bucket of rate rpm/60 and capacity burst."""
    limiter = RateLimiter(120, 3)
    assert isinstance(limiter, TokenBucket)
    assert limiter.rate == 2.0
    assert limiter.capacity == 3.0
    assert (limiter.requests_per_minute, limiter.burst_size) == (120.0, 3.0)
    assert "requests_per_minute=120" in repr(limiter)


# -- decisions with a fake clock ------------------------------------------------------------


def test_fresh_bucket_grants_capacity_then_refuses() -> None:
    """A new bucket is full: capacity tokens pass at once, the next one does not."""
    bucket, _ = fake_bucket(2, 4)
    assert [bucket.try_acquire() for _ in range(5)] == [True] * 4 + [False]


def test_refill_rate_is_exact() -> None:
    """After draining, one token appears every 1/rate seconds, not earlier."""
    bucket, clock = fake_bucket(4, 2)
    assert bucket.try_acquire(2)
    clock.advance(0.2499)
    assert not bucket.try_acquire()
    clock.advance(0.0001)
    assert bucket.try_acquire()
    assert not bucket.try_acquire()


def test_acquire_sleeps_the_exact_wait() -> None:
    """A blocking acquire sleeps exactly the missing refill time, once."""
    bucket, clock = fake_bucket(10, 5)
    assert bucket.acquire(5)
    clock.advance(0.1)  # one token back
    assert bucket.acquire(3)
    assert clock.sleeps == [pytest.approx(0.2)]
    assert clock() == pytest.approx(0.3)


def test_acquire_refuses_at_once_when_timeout_too_short() -> None:
    """acquire returns False without sleeping when the wait exceeds the timeout."""
    bucket, clock = fake_bucket(1, 1)
    assert bucket.acquire()
    assert bucket.acquire(timeout=0.999) is False
    assert clock.sleeps == []
    assert bucket.acquire(timeout=1.0) is True
    assert clock.sleeps == [pytest.approx(1.0)]


def test_retry_after_reports_the_wait() -> None:
    """retry_after is 0 when tokens are there and the exact wait otherwise."""
    bucket, clock = fake_bucket(2, 2)
    assert bucket.retry_after(2) == 0.0
    assert bucket.try_acquire(2)
    assert bucket.retry_after() == pytest.approx(0.5)
    assert bucket.retry_after(2) == pytest.approx(1.0)
    clock.advance(0.5)
    assert bucket.retry_after() == 0.0
    assert bucket.available() == pytest.approx(1.0)


@pytest.mark.parametrize("start", [0.0, 1e5, 3.7e6, 1e9])
@pytest.mark.parametrize(("rate", "capacity"), [(3, 7), (0.1, 1), (1000, 10), (7.3, 2.5)])
def test_idle_bucket_grants_capacity_at_once(start: float, rate: float, capacity: float) -> None:
    """After capacity/rate idle seconds the whole capacity is granted in one go."""
    bucket, clock = fake_bucket(rate, capacity, start)
    assert bucket.try_acquire(capacity)
    assert not bucket.try_acquire(min(capacity, 1))
    clock.advance(capacity / rate)
    assert bucket.try_acquire(capacity)


# Operations: (advance seconds, kind, tokens, timeout).
_ops = st.lists(
    st.tuples(
        st.one_of(st.just(0.0), st.floats(0, 3, allow_nan=False)),
        st.sampled_from(["try", "acquire", "acquire_timeout"]),
        st.integers(1, 6),
        st.floats(0, 2, allow_nan=False),
    ),
    max_size=60,
)


@settings(max_examples=200)
@given(
    rate=st.floats(0.2, 50, allow_nan=False),
    capacity=st.integers(1, 6),
    start=st.floats(0, 1e6, allow_nan=False),
    ops=_ops,
)
def test_window_bound_and_exact_decisions(
    rate: float, capacity: int, start: float, ops: list[tuple[float, str, int, float]]
) -> None:
    """Over any (advance, acquire n) sequence: every window W grants <= capacity + rate*W,
    each decision matches an exact-arithmetic bucket, waits are exact and refusals immediate."""
    bucket, clock = fake_bucket(rate, capacity, start)
    r = Fraction(rate)
    tokens = Fraction(capacity)  # reference model, exact rationals
    last = Fraction(clock())
    grants: list[tuple[float, float]] = []
    tol = Fraction(1, 10**6)

    def refill() -> None:
        nonlocal tokens, last
        now = Fraction(clock())
        tokens = min(Fraction(capacity), tokens + (now - last) * r)
        last = now

    for advance, kind, asked, timeout in ops:
        clock.advance(advance)
        n = min(asked, capacity)
        slept = len(clock.sleeps)
        refill()
        needed = (n - tokens) / r  # seconds of refill missing (<= 0: available now)
        if kind == "try":
            granted = bucket.try_acquire(n)
        elif kind == "acquire":
            granted = bucket.acquire(n)
            assert granted
        else:
            granted = bucket.acquire(n, timeout=timeout)
        waited = sum(clock.sleeps[slept:])
        if granted:
            if kind == "try":
                assert needed <= tol, "granted before the tokens were there"
            # a blocking acquire sleeps exactly the missing refill time (none if available)
            assert waited == pytest.approx(float(max(needed, Fraction(0))), abs=1e-6)
            refill()
            tokens -= n
            grants.append((clock(), n))
        else:
            assert needed > -tol, "refused although the tokens were there"
            if kind == "acquire_timeout":
                assert needed > Fraction(timeout) - tol, "refused although the wait fitted"
            assert len(clock.sleeps) == slept, "slept before refusing"
    assert max_excess(grants, rate) <= capacity + 1e-6


@settings(max_examples=100)
@given(
    rate=st.floats(0.5, 20, allow_nan=False),
    capacity=st.integers(1, 5),
    ops=_ops,
)
def test_idle_after_any_history_grants_capacity(
    rate: float, capacity: int, ops: list[tuple[float, str, int, float]]
) -> None:
    """Whatever happened before, capacity/rate idle seconds refill the bucket completely."""
    bucket, clock = fake_bucket(rate, capacity, 1000.0)
    for advance, kind, asked, timeout in ops:
        clock.advance(advance)
        n = min(asked, capacity)
        if kind == "try":
            bucket.try_acquire(n)
        else:
            bucket.acquire(n, timeout=timeout)
    clock.advance(capacity / rate)
    assert bucket.try_acquire(capacity)


@given(
    rate=st.floats(0.01, 1e4, allow_nan=False),
    capacity=st.floats(1, 1e3, allow_nan=False),
    empty_at=st.floats(-1e6, 1e6, allow_nan=False),
    now=st.floats(-1e6, 1e6, allow_nan=False),
    tokens=st.floats(0.01, 1, allow_nan=False),
)
def test_fast_path_matches_pure_maths(
    rate: float, capacity: float, empty_at: float, now: float, tokens: float
) -> None:
    """try_acquire(1)'s inlined fast path decides exactly as BucketMath.decide."""
    math_ = BucketMath.create(rate, capacity)
    bucket = TokenBucket(rate, capacity, clock=lambda: now)
    bucket._empty_at = empty_at  # white-box: put the bucket in an arbitrary state
    after, wait = math_.decide(empty_at, now, math_.interval)
    assert bucket.try_acquire(1) is (wait == 0.0)
    assert bucket._empty_at == (after if wait == 0.0 else empty_at)


# -- FIFO and queue jumping -----------------------------------------------------------------


def _wait_until(predicate: object, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.001)


def test_fifo_large_request_is_not_starved() -> None:
    """A queued 5-token request is served before 1-token requests that came after it, and
    try_acquire does not jump the queue even when a token is available."""
    clock = FakeClock()
    gate = threading.Event()

    def sleep(seconds: float) -> None:
        gate.wait(10)
        clock.sleep(seconds)

    bucket = TokenBucket(10, 5, clock=clock, sleep=sleep)
    assert bucket.try_acquire(5)
    order: list[str] = []

    def take(label: str, n: int) -> None:
        assert bucket.acquire(n, timeout=60)
        order.append(label)

    big = threading.Thread(target=take, args=("big", 5))
    big.start()
    _wait_until(lambda: bucket.waiting == 1)
    clock.advance(0.1)  # one token is there, but the head needs five
    assert bucket.try_acquire() is False
    smalls = []
    for i in range(3):
        t = threading.Thread(target=take, args=(f"small{i}", 1))
        t.start()
        smalls.append(t)
        _wait_until(lambda i=i: bucket.waiting == i + 2)
    gate.set()
    for t in [big, *smalls]:
        t.join(10)
    assert order == ["big", "small0", "small1", "small2"]
    assert bucket.waiting == 0
    assert bucket.try_acquire() is False  # the queue consumed exactly what was refilled


def test_timeout_accounts_for_waiters_ahead() -> None:
    """A new acquire is refused at once if the queue ahead makes its wait exceed its timeout."""
    clock = FakeClock()
    gate = threading.Event()

    def sleep(seconds: float) -> None:
        gate.wait(10)
        clock.sleep(seconds)

    bucket = TokenBucket(1, 2, clock=clock, sleep=sleep)
    assert bucket.try_acquire(2)
    head = threading.Thread(target=bucket.acquire, args=(2,))
    head.start()
    _wait_until(lambda: bucket.waiting == 1)
    # The head needs 2 s; one more token after it needs 3 s in total.
    assert bucket.retry_after() == pytest.approx(3.0)
    assert bucket.acquire(1, timeout=2.9) is False
    assert bucket.waiting == 1
    gate.set()
    head.join(10)
    assert clock() == pytest.approx(2.0)


def test_interrupted_waiter_leaves_the_queue() -> None:
    """An exception while waiting (e.g. KeyboardInterrupt) removes the waiter from the queue."""
    clock = FakeClock()

    def sleep(seconds: float) -> None:
        raise KeyboardInterrupt

    bucket = TokenBucket(1, 1, clock=clock, sleep=sleep)
    assert bucket.try_acquire()
    with pytest.raises(KeyboardInterrupt):
        bucket.acquire()
    assert bucket.waiting == 0
    clock.advance(1)
    assert bucket.try_acquire() is True


# -- real threads ---------------------------------------------------------------------------


class RecordingClock:
    """Real monotonic clock remembering, per thread, the last value it returned.

    The bucket reads the clock exactly once when it decides, as its last read before
    returning, so after a grant the thread's last value is the grant's decision time.
    """

    def __init__(self) -> None:
        self._local = threading.local()

    def __call__(self) -> float:
        now = time.monotonic()
        self._local.last = now
        return now

    @property
    def last(self) -> float:
        value: float = self._local.last
        return value


def test_eight_threads_never_exceed_the_bound() -> None:
    """8 real threads hammering one bucket (try and blocking acquire) never exceed
    capacity + rate * W in any window, and the FIFO queue always drains."""
    clock = RecordingClock()
    rate, capacity = 400.0, 8
    bucket = TokenBucket(rate, capacity, clock=clock)
    grants: list[tuple[float, float]] = []
    lock = threading.Lock()
    stop = time.monotonic() + 0.6

    def hammer(index: int) -> None:
        mine: list[tuple[float, float]] = []
        n = 1 + index % 3
        i = 0
        while time.monotonic() < stop:
            i += 1
            if index % 2 == 0 or i % 4 == 0:
                ok = bucket.acquire(n, timeout=0.02)
            else:
                ok = bucket.try_acquire(n)
            if ok:
                mine.append((clock.last, n))
        with lock:
            grants.extend(mine)

    threads = [threading.Thread(target=hammer, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not any(t.is_alive() for t in threads)
    assert sum(n for _, n in grants) >= capacity
    assert max_excess(grants, rate) <= capacity + 1e-6
    assert bucket.waiting == 0


def test_blocking_acquire_in_real_time_is_paced() -> None:
    """Blocking waiters in real threads are released at the refill pace, within the bound."""
    clock = RecordingClock()
    rate, capacity = 200.0, 2
    bucket = TokenBucket(rate, capacity, clock=clock)
    grants: list[tuple[float, float]] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(10):
            assert bucket.acquire()
            with lock:
                grants.append((clock.last, 1))

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    times = sorted(t for t, _ in grants)
    assert len(times) == 40
    # 40 tokens with 2 of burst need at least 38 refills of 5 ms.
    assert times[-1] - times[0] >= (40 - capacity) / rate - 1e-6
    assert max_excess(grants, rate) <= capacity + 1e-6


# -- asyncio --------------------------------------------------------------------------------


def test_async_acquire_waits_exactly() -> None:
    """acquire_async sleeps the exact wait through async_sleep and refuses at once on timeout."""
    bucket, clock = fake_bucket(2, 1)

    async def main() -> None:
        assert await bucket.acquire_async()
        assert await bucket.acquire_async(timeout=0.4) is False
        assert clock.sleeps == []
        assert await bucket.acquire_async(timeout=0.5) is True
        assert clock.sleeps == [pytest.approx(0.5)]

    asyncio.run(main())


def test_async_waiters_are_fifo_in_real_time() -> None:
    """Concurrent tasks are granted in the order they queued, paced by the refill rate."""
    bucket = TokenBucket(200, 1)
    order: list[int] = []

    async def take(i: int, n: int) -> None:
        assert await bucket.acquire_async(n)
        order.append(i)

    async def main() -> None:
        assert bucket.try_acquire()
        tasks = []
        for i in range(6):
            tasks.append(asyncio.create_task(take(i, 1)))
            await asyncio.sleep(0)  # let it queue, in order
        await asyncio.gather(*tasks)

    asyncio.run(main())
    assert order == list(range(6))


def test_cancelled_task_leaves_the_queue() -> None:
    """Cancelling a waiting task removes it; the next waiter is then served."""
    bucket = TokenBucket(20, 1)

    async def main() -> None:
        assert bucket.try_acquire()
        first = asyncio.create_task(bucket.acquire_async())
        await asyncio.sleep(0)
        second = asyncio.create_task(bucket.acquire_async())
        await asyncio.sleep(0)
        assert bucket.waiting == 2
        first.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first
        assert bucket.waiting == 1
        assert await second is True
        assert bucket.waiting == 0

    asyncio.run(main())


def test_threads_and_tasks_share_one_queue() -> None:
    """A thread queued first is served before a task queued after it."""
    clock = FakeClock()
    gate = threading.Event()

    def sleep(seconds: float) -> None:
        gate.wait(10)
        clock.sleep(seconds)

    bucket = TokenBucket(10, 1, clock=clock, sleep=sleep, async_sleep=clock.async_sleep)
    assert bucket.try_acquire()
    order: list[str] = []

    def thread_side() -> None:
        assert bucket.acquire()
        order.append("thread")

    t = threading.Thread(target=thread_side)
    t.start()
    _wait_until(lambda: bucket.waiting == 1)

    async def main() -> None:
        task = asyncio.create_task(bucket.acquire_async())
        await asyncio.sleep(0)
        assert bucket.waiting == 2
        gate.set()
        assert await task
        order.append("task")

    asyncio.run(main())
    t.join(10)
    assert order == ["thread", "task"]


# -- decorator ------------------------------------------------------------------------------


def test_decorator_sync_and_async_keep_signature() -> None:
    """@bucket limits sync and async functions and keeps their name and signature."""
    bucket, clock = fake_bucket(1, 1)

    @bucket
    def add(a: int, b: int = 2) -> int:
        """Add."""
        return a + b

    @bucket.limit(tokens=1)
    async def mul(a: int, b: int) -> int:
        return a * b

    assert add.__name__ == "add"
    assert add.__doc__ == "Add."
    assert str(inspect.signature(add)) == str(inspect.signature(add.__wrapped__))  # type: ignore[attr-defined]
    assert inspect.iscoroutinefunction(mul)
    assert add(1) == 3
    assert asyncio.run(mul(2, 3)) == 6
    assert clock.sleeps == [pytest.approx(1.0)]


def test_decorator_raises_rate_limit_exceeded_with_retry_after() -> None:
    """With a timeout that cannot suffice, the decorated call raises RateLimitExceeded."""
    bucket, clock = fake_bucket(0.5, 1)
    calls: list[int] = []

    @bucket.limit(timeout=1.0)
    def work(x: int) -> int:
        calls.append(x)
        return x

    async def awork() -> int:
        return 1

    limited_async = bucket.limit(timeout=1.0)(awork)
    assert work(1) == 1
    with pytest.raises(RateLimitExceeded) as info:
        work(2)
    assert info.value.retry_after == pytest.approx(2.0)
    with pytest.raises(RateLimitExceeded):
        asyncio.run(limited_async())
    assert calls == [1]
    assert clock.sleeps == []


def test_decorator_on_methods() -> None:
    """The decorator works on methods (self is passed through)."""
    bucket, _ = fake_bucket(100, 10)

    class Client:
        def __init__(self) -> None:
            self.n = 0

        @bucket
        def get(self, k: int) -> int:
            self.n += k
            return self.n

    c = Client()
    assert c.get(2) == 2
    assert c.get(3) == 5


# -- bad input ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "exc", "param"),
    [
        ({"rate": 0, "capacity": 1}, ValueError, "rate"),
        ({"rate": -1, "capacity": 1}, ValueError, "rate"),
        ({"rate": math.nan, "capacity": 1}, ValueError, "rate"),
        ({"rate": math.inf, "capacity": 1}, ValueError, "rate"),
        ({"rate": "5", "capacity": 1}, TypeError, "rate"),
        ({"rate": True, "capacity": 1}, TypeError, "rate"),
        ({"rate": 1, "capacity": 0}, ValueError, "capacity"),
        ({"rate": 1, "capacity": -3}, ValueError, "capacity"),
        ({"rate": 1, "capacity": math.nan}, ValueError, "capacity"),
        ({"rate": 1, "capacity": None}, TypeError, "capacity"),
        ({"rate": 1, "capacity": 1, "name": ""}, ValueError, "name"),
        ({"rate": 1, "capacity": 1, "clock": 3}, TypeError, "clock"),
        ({"rate": 1, "capacity": 1, "sleep": None}, TypeError, "sleep"),
        ({"rate": 1, "capacity": 1, "on_unavailable": "maybe"}, ValueError, "on_unavailable"),
        ({"rate": 1, "capacity": 1, "backend": 42}, TypeError, "backend"),
    ],
)
def test_bad_bucket_arguments(kwargs: dict[str, object], exc: type[Exception], param: str) -> None:
    """Bad constructor arguments raise ValueError/TypeError naming the parameter."""
    with pytest.raises(exc, match=param):
        TokenBucket(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("args", "param"),
    [((0, 10), "requests_per_minute"), ((-60, 10), "requests_per_minute"), ((60, 0), "burst_size")],
)
def test_bad_rate_limiter_arguments(args: tuple[float, float], param: str) -> None:
    """RateLimiter names its own parameters in errors."""
    with pytest.raises(ValueError, match=param):
        RateLimiter(*args)


@pytest.mark.parametrize("tokens", [0, -1, math.nan, math.inf, 11])
def test_bad_tokens(tokens: float) -> None:
    """tokens outside (0, capacity] raise ValueError (never a hang) on every entry point."""
    bucket, _ = fake_bucket(1, 10)
    with pytest.raises(ValueError, match="tokens"):
        bucket.try_acquire(tokens)
    with pytest.raises(ValueError, match="tokens"):
        bucket.acquire(tokens)
    with pytest.raises(ValueError, match="tokens"):
        asyncio.run(bucket.acquire_async(tokens))
    with pytest.raises(ValueError, match="tokens"):
        bucket.limit(tokens)


def test_one_token_on_fractional_capacity_is_refused_loudly() -> None:
    """With capacity < 1, asking for one token raises instead of waiting forever."""
    bucket, _ = fake_bucket(1, 0.5)
    assert bucket.try_acquire(0.5)
    with pytest.raises(ValueError, match="capacity"):
        bucket.try_acquire()


@pytest.mark.parametrize("timeout", [-0.1, math.nan, "1"])
def test_bad_timeout(timeout: object) -> None:
    """A negative, NaN or non-number timeout is rejected naming 'timeout'."""
    bucket, _ = fake_bucket(1, 1)
    with pytest.raises((ValueError, TypeError), match="timeout"):
        bucket.acquire(1, timeout=timeout)  # type: ignore[arg-type]
