"""Tests for the Redis token-bucket backend (resilience.redis) against a real redis-server."""

from __future__ import annotations

import asyncio
import math
import multiprocessing
import os
import signal
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from fractions import Fraction
from multiprocessing.connection import Connection
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from resilience import BackendUnavailable, RateLimiter, TokenBucket
from resilience._redis_common import FailMode, RedisConnection, parse_redis_url
from resilience.redis import RedisBucketBackend
from resilience.testing import FakeClock

pytestmark = pytest.mark.redis


def max_excess(grants: Sequence[tuple[float, float]], rate: float) -> float:
    """Largest ``tokens(window) - rate * len(window)`` over every window [t_i, t_j]."""
    worst, best_start, total = -math.inf, -math.inf, 0.0
    for t, n in sorted(grants):
        best_start = max(best_start, rate * t - total)
        total += n
        worst = max(worst, total - rate * t + best_start)
    return worst


def unique(prefix: str = "t") -> str:
    return f"{prefix}-{uuid.uuid4().hex}"


@pytest.fixture
def backend(redis_url: str) -> Iterator[RedisBucketBackend]:
    """A backend on the session Redis that fails closed (so a broken Redis fails the test)."""
    b = RedisBucketBackend(redis_url, on_unavailable="closed")
    yield b
    b.close()


# -- semantics --------------------------------------------------------------------------------


def test_fresh_shared_bucket_grants_capacity_then_refuses(backend: RedisBucketBackend) -> None:
    """Two buckets with the same name share one Redis state: capacity in total, then no."""
    name = unique()
    a = TokenBucket(1, 3, backend=backend, name=name)
    b = TokenBucket(1, 3, backend=backend, name=name)
    assert [a.try_acquire(), b.try_acquire(), a.try_acquire()] == [True, True, True]
    assert a.try_acquire() is False
    assert b.try_acquire() is False
    assert b.retry_after() == pytest.approx(1.0, abs=0.05)


def test_key_expires_when_the_bucket_would_be_full(
    backend: RedisBucketBackend, redis_url: str
) -> None:
    """The bucket's key carries a PEXPIRE of about the time to refill it, then vanishes."""
    name = unique()
    bucket = TokenBucket(50, 5, backend=backend, name=name)  # refills in 100 ms
    assert bucket.try_acquire(2)
    ttl = backend.connection.execute(lambda c: c.pttl(backend.key(name)))
    assert 0 < ttl <= 100 + 2
    time.sleep(0.15)
    assert backend.connection.execute(lambda c: c.exists(backend.key(name))) == 0
    assert bucket.try_acquire(5) is True  # gone means full


def test_original_design_against_redis(redis_url: str) -> None:
    """The original design's test passes with the Redis backend, refusing without sleeping."""
    sleeps: list[float] = []
    limiter = RateLimiter(60, 10, backend=redis_url, name=unique(), sleep=sleeps.append)
    for _ in range(10):
        assert limiter.acquire(timeout=0.1) is True
    assert limiter.acquire(timeout=0.1) is False
    assert sleeps == []
    assert limiter.on_unavailable is FailMode.LOCAL


def test_blocking_acquire_sleeps_the_wait_from_the_server(backend: RedisBucketBackend) -> None:
    """A blocked acquire sleeps the exact wait the script returned, then is granted."""
    clock = FakeClock(50.0)
    rb = RedisBucketBackend(backend.connection.settings, on_unavailable="closed", test_time=clock)
    bucket = TokenBucket(4, 2, backend=rb, name=unique(), clock=clock, sleep=clock.sleep)
    assert bucket.acquire(2)
    assert bucket.acquire(1, timeout=0.2) is False
    assert clock.sleeps == []
    assert bucket.acquire(2)
    assert clock.sleeps == [pytest.approx(0.5, abs=2e-6)]
    rb.close()


def test_async_and_decorator_against_redis(backend: RedisBucketBackend) -> None:
    """acquire_async and an async decorated function work with the Redis backend."""
    bucket = TokenBucket(200, 2, backend=backend, name=unique())

    @bucket
    async def work(x: int) -> int:
        return x + 1

    async def main() -> list[int]:
        assert await bucket.acquire_async(2)
        return list(await asyncio.gather(*(work(i) for i in range(4))))

    started = time.monotonic()
    assert asyncio.run(main()) == [1, 2, 3, 4]
    # 2 + 4 tokens with 2 of burst: at least 4 refills of 5 ms happened.
    assert time.monotonic() - started >= 4 / 200 - 1e-3


def test_script_reloaded_after_flush(backend: RedisBucketBackend) -> None:
    """After SCRIPT FLUSH (e.g. a server restart) the EVAL fallback keeps deciding."""
    bucket = TokenBucket(1, 2, backend=backend, name=unique())
    assert bucket.try_acquire()
    backend.connection.execute(lambda c: c.script_flush())
    assert bucket.try_acquire()
    assert bucket.try_acquire() is False


def test_server_clock_step_back_creates_no_burst(backend: RedisBucketBackend) -> None:
    """If the server time jumps backwards, the bucket counts as empty, not as full."""
    clock = FakeClock(1000.0)
    rb = RedisBucketBackend(backend.connection.settings, on_unavailable="closed", test_time=clock)
    bucket = TokenBucket(10, 5, backend=rb, name=unique())
    assert bucket.try_acquire(5)
    clock._now = 500.0  # white-box: a clock step backwards
    assert bucket.try_acquire() is False
    assert bucket.retry_after() == pytest.approx(0.1, abs=1e-5)
    rb.close()


_ops = st.lists(
    st.tuples(
        st.one_of(st.just(0.0), st.floats(0, 2, allow_nan=False)),
        st.sampled_from(["try", "acquire", "acquire_timeout"]),
        st.integers(1, 5),
        # A positive timeout also bounds the real Redis round trip, so sub-0.1 s budgets could
        # refuse on a loaded machine; 0 means one plain try bounded by the socket timeout.
        st.one_of(st.just(0.0), st.floats(0.1, 1.5, allow_nan=False)),
    ),
    max_size=30,
)


@settings(max_examples=60)
@given(
    rate=st.floats(0.2, 50, allow_nan=False),
    capacity=st.integers(1, 5),
    start=st.floats(1e3, 1e6, allow_nan=False),
    ops=_ops,
)
def test_window_bound_against_redis(
    redis_url: str,
    rate: float,
    capacity: int,
    start: float,
    ops: list[tuple[float, str, int, float]],
) -> None:
    """The in-memory bucket's window property, against Redis with a controllable time source:
    every window W grants <= capacity + rate*W and each decision matches an exact model."""
    clock = FakeClock(start)
    rb = RedisBucketBackend(redis_url, on_unavailable="closed", test_time=clock)
    bucket = TokenBucket(
        rate, capacity, backend=rb, name=unique("h"), clock=clock, sleep=clock.sleep
    )
    r = Fraction(rate)
    tokens, last = Fraction(capacity), Fraction(clock())
    grants: list[tuple[float, float]] = []
    tol = Fraction(2, 10**6)  # the script works in whole microseconds

    def refill() -> None:
        nonlocal tokens, last
        now = Fraction(clock())
        tokens = min(Fraction(capacity), tokens + (now - last) * r)
        last = now

    try:
        for advance, kind, asked, timeout in ops:
            clock.advance(advance)
            n = min(asked, capacity)
            slept = len(clock.sleeps)
            refill()
            needed = (n - tokens) / r
            if kind == "try":
                granted = bucket.try_acquire(n)
            elif kind == "acquire":
                granted = bucket.acquire(n)
                assert granted
            else:
                granted = bucket.acquire(n, timeout=timeout)
            if granted:
                if kind == "try":
                    assert needed <= tol
                assert sum(clock.sleeps[slept:]) == pytest.approx(
                    float(max(needed, Fraction(0))), abs=3e-6
                )
                refill()
                tokens -= n
                grants.append((clock(), n))
            else:
                assert needed > -tol
                if kind == "acquire_timeout":
                    assert needed > Fraction(timeout) - tol
                assert len(clock.sleeps) == slept
        assert max_excess(grants, rate) <= capacity + rate * 2e-6
    finally:
        rb.close()


# -- several processes ------------------------------------------------------------------------


def _worker(url: str, name: str, conn: Connection) -> None:
    """One of the processes sharing the limit (forked: everything is already imported)."""
    backend = RedisBucketBackend(url, on_unavailable="closed")
    bucket = TokenBucket(50, 5, backend=backend, name=name)
    backend.connection.execute(lambda c: c.ping())
    conn.send("ready")
    go, end = conn.recv()
    sec, usec = backend.connection.execute(lambda c: c.time())
    offset = time.monotonic() - (sec + usec / 1e6)  # local monotonic = server time + offset
    grants: list[float] = []
    lock = threading.Lock()

    def work() -> None:
        mine = []
        time.sleep(max(0.0, go + offset - time.monotonic()))
        while True:
            left = end + offset - time.monotonic()
            if left <= 0:
                break
            if bucket.acquire(timeout=left):
                server_time = backend.last_server_time()
                assert server_time is not None
                mine.append(server_time)
        with lock:
            grants.extend(mine)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    conn.send(grants)


@pytest.mark.slow
@pytest.mark.skipif(sys.platform != "linux", reason="forks worker processes")
def test_four_processes_share_one_limit(redis_url: str) -> None:
    """4 processes x 4 threads sharing 50/s (burst 5) for 3 s: no window exceeds
    capacity + rate*W (Redis server timestamps of each grant) and together they get
    >= 95 % of the bound."""
    name = unique("mp")
    clock_source = RedisConnection(redis_url)  # imports redis before forking: fast workers
    clock_source.execute(lambda c: c.ping())
    ctx = multiprocessing.get_context("fork")
    pipes = [ctx.Pipe() for _ in range(4)]
    procs = [ctx.Process(target=_worker, args=(redis_url, name, child)) for _, child in pipes]
    for p in procs:
        p.start()
    try:
        for parent, _ in pipes:
            assert parent.poll(30), "worker did not start"
            assert parent.recv() == "ready"
        sec, usec = clock_source.execute(lambda c: c.time())
        go = sec + usec / 1e6 + 0.05
        end = go + 3.0
        for parent, _ in pipes:
            parent.send((go, end))
        results: list[list[float]] = []
        for parent, _ in pipes:
            assert parent.poll(30), "worker did not finish"
            results.append(parent.recv())
        for p in procs:
            p.join(10)
            assert p.exitcode == 0
    finally:
        clock_source.close()
        for p in procs:
            if p.is_alive():
                p.kill()
                p.join()
    times = [t for per_process in results for t in per_process]
    assert all(go - 1e-6 <= t <= end + 0.05 for t in times)
    in_run = [t for t in times if t <= end]
    allowed = 5 + 50 * (end - go)
    assert max_excess([(t, 1) for t in times], 50) <= 5 + 1e-3
    assert len(in_run) >= 0.95 * allowed, (len(in_run), allowed)
    assert all(len(per_process) > 0 for per_process in results)


# -- Redis going away -------------------------------------------------------------------------


def _wait_for(predicate: Callable[[], bool], seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.01)


@pytest.mark.parametrize("mode", ["closed", "open", "local"])
def test_redis_stopped_mid_run_then_recovers(redis_process: Callable[[], Any], mode: str) -> None:
    """With Redis stopped, each failure mode behaves as configured (without hanging), and
    the shared state is used again once Redis is back."""
    server = redis_process()
    rb = RedisBucketBackend(
        server.url, on_unavailable=mode, reconnect_initial=0.02, reconnect_max=0.1
    )
    bucket = TokenBucket(2, 2, backend=rb, name=unique())  # one token per 0.5 s
    try:
        assert [bucket.try_acquire() for _ in range(3)] == [True, True, False]
        seen = rb.last_server_time()
        assert seen is not None
        server.stop()
        started = time.monotonic()
        if mode == "closed":
            with pytest.raises(BackendUnavailable):
                bucket.try_acquire()
            with pytest.raises(BackendUnavailable):
                bucket.acquire(timeout=1.0)
        elif mode == "open":
            assert all(bucket.try_acquire() for _ in range(20))
            assert bucket.acquire(timeout=0)
        else:  # local: an in-process bucket of the same rate takes over (it starts full)
            assert [bucket.try_acquire() for _ in range(3)] == [True, True, False]
            assert bucket.acquire(timeout=1.0) is True  # waits ~0.5 s for the local refill
        assert time.monotonic() - started < 3.0  # no hang on a dead server
        assert rb.available is False
        assert rb.last_server_time() == seen  # nothing came from Redis meanwhile
        server.start()
        _wait_for(lambda: (bucket.try_acquire(), rb.available)[1])
        assert rb.last_server_time() != seen  # decisions come from Redis again
    finally:
        rb.close()


def test_hung_redis_never_outlives_the_callers_timeout(redis_process: Callable[[], Any]) -> None:
    """A frozen server (SIGSTOP) costs a blocked acquire at most its timeout (+1 ms of I/O
    slack) and try_acquire at most the socket timeout; then the fail mode applies."""
    server = redis_process()
    rb = RedisBucketBackend(server.url, on_unavailable="closed", socket_timeout=0.5)
    bucket = TokenBucket(10, 1, backend=rb, name=unique())
    assert bucket.try_acquire()
    os.kill(server.proc.pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        assert bucket.acquire(timeout=0.05) is False  # budget-limited call ran out of time
        elapsed = time.monotonic() - started
        assert elapsed < 0.4, elapsed  # bounded by its 0.05 s, not the 0.5 s socket timeout
        started = time.monotonic()
        with pytest.raises(BackendUnavailable):
            bucket.try_acquire()
        assert 0.45 < time.monotonic() - started < 2.0
        with pytest.raises(BackendUnavailable):  # marked down: fails fast now
            bucket.try_acquire()
    finally:
        os.kill(server.proc.pid, signal.SIGCONT)
        rb.close()


# -- configuration ----------------------------------------------------------------------------


def test_url_parsing_and_redaction() -> None:
    """URLs carry host, port, db, credentials and options; the password never shows."""
    s = parse_redis_url(
        "redis://bob:s3cret@127.0.0.1:6390/2?socket_timeout=0.5&on_unavailable=open"
    )
    assert (s.host, s.port, s.db, s.username, s.password) == ("127.0.0.1", 6390, 2, "bob", "s3cret")
    assert s.socket_timeout == 0.5
    assert s.on_unavailable is FailMode.OPEN
    assert "s3cret" not in repr(s)
    assert "s3cret" not in s.redacted_url()
    backend = RedisBucketBackend("redis://:pw@127.0.0.1:6390/0")
    assert "pw" not in repr(backend)
    assert backend.on_unavailable is FailMode.LOCAL
    assert parse_redis_url("rediss://example.invalid").ssl is True
    assert parse_redis_url("unix:///tmp/redis.sock?db=3").unix_path == "/tmp/redis.sock"


@pytest.mark.parametrize(
    ("url", "param"),
    [
        ("http://127.0.0.1", "url"),
        ("redis://127.0.0.1/x", "database"),
        ("redis://127.0.0.1/0?bogus=1", "bogus"),
        ("redis://127.0.0.1/0?socket_timeout=-1", "socket_timeout"),
        ("redis://127.0.0.1/0?on_unavailable=maybe", "on_unavailable"),
    ],
)
def test_bad_urls(url: str, param: str) -> None:
    """Bad URLs raise ValueError naming what is wrong."""
    with pytest.raises(ValueError, match=param):
        parse_redis_url(url)


def test_fail_mode_from_url_and_override() -> None:
    """on_unavailable comes from the URL unless the limiter overrides it."""
    url = "redis://127.0.0.1:6390/0?on_unavailable=closed"
    assert TokenBucket(1, 1, backend=url).on_unavailable is FailMode.CLOSED
    assert TokenBucket(1, 1, backend=url, on_unavailable="open").on_unavailable is FailMode.OPEN
    with pytest.raises(ValueError, match="on_unavailable"):
        RedisBucketBackend(url, on_unavailable="sometimes")
