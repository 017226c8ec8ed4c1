"""Tests for the Redis circuit-breaker store (resilience.redis.RedisCircuitStore), real Redis."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings
from hypothesis.stateful import initialize
from test_circuit import Boom, BreakerMachine, RefBreaker, configs, fail, ok, trip

from resilience import (
    BackendUnavailable,
    CircuitBreaker,
    CircuitBreakerConfig,
    CircuitOpenError,
    CircuitState,
)
from resilience.redis import RedisCircuitStore
from resilience.testing import FakeClock

pytestmark = pytest.mark.redis

CLOSED, OPEN, HALF_OPEN = CircuitState.CLOSED, CircuitState.OPEN, CircuitState.HALF_OPEN
ROOT = Path(__file__).resolve().parents[2]


def unique(prefix: str = "t") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def store(redis_url: str) -> Iterator[RedisCircuitStore]:
    """A store on the shared test server whose scripts take time from a FakeClock."""
    s = RedisCircuitStore(redis_url, test_time=FakeClock(1000.0))
    yield s
    s.close()


def timed_store(redis_url: str, clock: FakeClock, **kwargs: Any) -> RedisCircuitStore:
    return RedisCircuitStore(redis_url, test_time=clock, **kwargs)


def test_cycle_with_server_side_time(redis_url: str) -> None:
    """The original-design cycle works with the state in Redis; retry_after follows store time."""
    clock = FakeClock(1000.0)
    store = timed_store(redis_url, clock)
    breaker = CircuitBreaker(3, 10.0, store=store, name=unique(), clock=clock)
    trip(breaker, 2)
    assert breaker.state is CLOSED and breaker.failure_count == 2
    assert breaker.last_failure_time == 1000.0
    breaker.call(ok)
    assert breaker.failure_count == 0
    trip(breaker, 3)
    assert breaker.state is OPEN
    clock.advance(4.0)
    with pytest.raises(CircuitOpenError) as info:
        breaker.call(ok)
    assert info.value.retry_after == pytest.approx(6.0, abs=1e-5)
    clock.advance(6.0)
    assert breaker.call(ok) == "ok"
    assert breaker.state is CLOSED
    store.close()


def test_real_server_time(redis_url: str) -> None:
    """Without a test time source the server's TIME drives the recovery timeout."""
    breaker = CircuitBreaker(1, 0.2, store=redis_url, name=unique())
    trip(breaker, 1)
    with pytest.raises(CircuitOpenError) as info:
        breaker.call(ok)
    assert 0 < info.value.retry_after <= 0.2
    time.sleep(0.25)
    assert breaker.state is HALF_OPEN  # the read script compares with the server's TIME
    assert breaker.call(ok) == "ok"
    assert breaker.state is CLOSED


def test_state_reads_half_open_once_recovery_timeout_elapsed(store: RedisCircuitStore) -> None:
    """Every breaker on the name reads HALF_OPEN when the time is up; no listener hears it
    until the first probe is admitted."""
    clock = store.test_time
    assert isinstance(clock, FakeClock)
    name = unique()
    breaker = CircuitBreaker(1, 10.0, store=store, name=name, clock=clock)
    other = CircuitBreaker(1, 10.0, store=store, name=name, clock=clock)  # another worker
    seen: list[tuple[CircuitState, CircuitState]] = []
    breaker.add_listener(lambda b, old, new: seen.append((old, new)))
    other.add_listener(lambda b, old, new: seen.append((old, new)))
    trip(breaker, 1)
    eps = 2.0**-10  # exact in binary, so the store time lands on opened_at + 10 s exactly
    clock.advance(10.0 - eps)
    assert breaker.state is OPEN and other.state is OPEN
    clock.advance(eps)
    assert breaker.state is HALF_OPEN and other.state is HALF_OPEN
    assert breaker.failure_count == 1  # the same read carries the count
    raw = store.connection.execute(lambda c: c.hget(store.keys(name)[0], "state"))
    assert raw == b"open" and seen == [(CLOSED, OPEN)]  # the read changed nothing
    assert other.call(ok) == "ok"  # the probe, admitted through the other breaker
    assert breaker.state is CLOSED
    assert seen == [(CLOSED, OPEN), (OPEN, HALF_OPEN), (HALF_OPEN, CLOSED)]


def test_two_breaker_objects_share_one_state_and_probe_slots(store: RedisCircuitStore) -> None:
    """Two breakers with one name (as in two workers) share failures, state and probe slots."""
    clock = store.test_time
    assert isinstance(clock, FakeClock)
    name = unique()
    a = CircuitBreaker(2, 5.0, store=store, name=name, clock=clock)
    b = CircuitBreaker(2, 5.0, store=store, name=name, clock=clock)
    trip(a, 1)
    trip(b, 1)
    assert a.state is OPEN and b.state is OPEN
    with pytest.raises(CircuitOpenError):
        b.call(ok)
    clock.advance(5.0)
    probe = a.acquire()  # a takes the single probe slot
    with pytest.raises(CircuitOpenError) as info:
        b.call(ok)
    assert info.value.retry_after == 0.0
    probe.success()
    assert b.state is CLOSED


@pytest.mark.parametrize("mode", ["rate", "slow"])
def test_rate_and_slow_modes_in_redis(store: RedisCircuitStore, mode: str) -> None:
    """The failure-rate window and the slow-call rule work on the Redis store."""
    clock = store.test_time
    assert isinstance(clock, FakeClock)
    if mode == "rate":
        breaker = CircuitBreaker(
            failure_rate_threshold=0.5, window_size=4, minimum_calls=4, store=store,
            name=unique(), clock=clock,
        )  # fmt: skip
        for _ in range(3):
            breaker.call(ok)
        trip(breaker, 1)
        breaker.call(ok)  # window ok ok fail ok
        assert breaker.state is CLOSED and breaker.failure_count == 1
        trip(breaker, 1)  # ok fail ok fail
        assert breaker.state is OPEN
    else:
        breaker = CircuitBreaker(
            slow_call_duration=1.0, slow_call_rate_threshold=0.5, window_size=2,
            minimum_calls=2, store=store, name=unique(), clock=clock,
        )  # fmt: skip

        def slow() -> str:
            clock.advance(1.0)
            return "slow"

        breaker.call(ok)
        breaker.call(slow)
        assert breaker.state is OPEN


def test_listeners_in_the_process_that_transitions(store: RedisCircuitStore) -> None:
    """The breaker whose call caused a transition notifies its listeners."""
    clock = store.test_time
    assert isinstance(clock, FakeClock)
    breaker = CircuitBreaker(1, 1.0, store=store, name=unique(), clock=clock)
    seen: list[tuple[CircuitState, CircuitState]] = []
    breaker.add_listener(lambda b, old, new: seen.append((old, new)))
    trip(breaker, 1)
    clock.advance(1.0)
    breaker.call(ok)
    trip(breaker, 1)
    breaker.reset()
    assert seen == [(CLOSED, OPEN), (OPEN, HALF_OPEN), (HALF_OPEN, CLOSED), (CLOSED, OPEN),
                    (OPEN, CLOSED)]  # fmt: skip


def test_keys_expire_when_idle(store: RedisCircuitStore) -> None:
    """The breaker's keys carry an expiry of max(idle_ttl, 2 x recovery_timeout)."""
    name = unique()
    breaker = CircuitBreaker(2, 5000.0, store=store, name=name, failure_rate_threshold=1.0)
    trip(breaker, 1)
    ttl = store.connection.execute(lambda c: c.pttl(store.keys(name)[0]))
    window_ttl = store.connection.execute(lambda c: c.pttl(store.keys(name)[1]))
    assert 9_000_000 < ttl <= 10_000_000
    assert 9_000_000 < window_ttl <= 10_000_000


def test_async_calls_through_redis(store: RedisCircuitStore) -> None:
    """call_async and `async with` work against the Redis store."""
    breaker = CircuitBreaker(2, 60.0, store=store, name=unique())

    async def afail() -> None:
        raise Boom

    async def main() -> None:
        with pytest.raises(Boom):
            await breaker.call_async(afail)
        with pytest.raises(Boom):
            async with breaker:
                raise Boom
        with pytest.raises(CircuitOpenError):
            await breaker.call_async(afail)

    asyncio.run(main())
    assert breaker.state is OPEN


def test_secrets_stay_out_of_reprs(redis_url: str) -> None:
    """A password in the store URL never appears in the store's or the breaker's repr."""
    url = redis_url.replace("redis://", "redis://user:hunter2@")
    store = RedisCircuitStore(url)
    breaker = CircuitBreaker(store=store, name="x")
    assert "hunter2" not in repr(store) and "hunter2" not in repr(breaker)


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"on_unavailable": "sometimes"}, "on_unavailable"),
        ({"idle_ttl": 0}, "idle_ttl"),
        ({"key_prefix": 3}, "key_prefix"),
        ({"test_time": 3}, "test_time"),
    ],
)
def test_store_bad_input_names_the_parameter(
    redis_url: str, kwargs: dict[str, Any], param: str
) -> None:
    """Invalid RedisCircuitStore arguments raise ValueError/TypeError naming the parameter."""
    with pytest.raises((ValueError, TypeError), match=param):
        RedisCircuitStore(redis_url, **kwargs)


def test_bad_store_url_is_rejected() -> None:
    """A store URL that is not redis:// raises ValueError naming the URL."""
    with pytest.raises(ValueError, match="url"):
        CircuitBreaker(store="http://127.0.0.1:6379/0", name="x")


# --------------------------------------------------------------------------------------------
# Another process


CHILD = """
import sys
sys.path.insert(0, {root!r})
from resilience import CircuitBreaker, CircuitState
breaker = CircuitBreaker(3, 60.0, store={url!r}, name={name!r})
for _ in range(3):
    try:
        breaker.call(lambda: 1 / 0)
    except ZeroDivisionError:
        pass
print(breaker.state.value)
"""


def test_breaker_opened_in_one_process_rejects_in_another(redis_url: str) -> None:
    """Failures in a child process open the shared breaker; this process's calls are rejected."""
    name = unique()
    here = CircuitBreaker(3, 60.0, store=redis_url, name=name)
    assert here.call(ok) == "ok"
    code = CHILD.format(root=str(ROOT), url=redis_url, name=name)
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert out.stdout.strip() == "open"
    called: list[int] = []
    with pytest.raises(CircuitOpenError) as info:
        here.call(lambda: called.append(1))
    assert called == []
    assert 50.0 < info.value.retry_after <= 60.0
    assert here.state is OPEN


# --------------------------------------------------------------------------------------------
# Redis going away and coming back


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.02)


def redis_answers(breaker: CircuitBreaker) -> bool:
    try:
        breaker.reset()
    except BackendUnavailable:
        return False
    return bool(breaker._engine.store.available)  # type: ignore[attr-defined]


def outage_store(url: str, mode: str) -> RedisCircuitStore:
    return RedisCircuitStore(url, on_unavailable=mode, reconnect_initial=0.02, reconnect_max=0.1)


@pytest.mark.slow
def test_outage_fail_closed_raises_then_recovers(redis_process: Any) -> None:
    """on_unavailable=closed: calls raise BackendUnavailable (unrun) while Redis is down."""
    server = redis_process()
    breaker = CircuitBreaker(2, 60.0, store=outage_store(server.url, "closed"), name=unique())
    assert breaker.call(ok) == "ok"
    server.stop()
    ran: list[int] = []
    for _ in range(3):
        started = time.monotonic()
        with pytest.raises(BackendUnavailable):
            breaker.call(lambda: ran.append(1))
        assert time.monotonic() - started < 5.0  # bounded by socket timeouts, never hangs
    assert ran == []
    with pytest.raises(BackendUnavailable):
        _ = breaker.state
    assert "unknown" in repr(breaker)  # repr never raises
    server.start()
    wait_until(lambda: redis_answers(breaker))
    assert breaker.call(ok) == "ok"
    trip(breaker, 2)
    assert breaker.state is OPEN


@pytest.mark.slow
def test_outage_fail_open_allows_calls(redis_process: Any) -> None:
    """on_unavailable=open: calls run while Redis is down and their failures are not counted."""
    server = redis_process()
    breaker = CircuitBreaker(1, 60.0, store=outage_store(server.url, "open"), name=unique())
    server.stop()
    for _ in range(3):
        with pytest.raises(Boom):
            breaker.call(fail)
    assert breaker.call(ok) == "ok"
    assert breaker.state is CLOSED
    server.start()
    wait_until(lambda: redis_answers(breaker))
    trip(breaker, 1)
    assert breaker.state is OPEN


@pytest.mark.slow
def test_outage_local_fallback_then_shared_state_again(redis_process: Any) -> None:
    """on_unavailable=local: an in-process breaker protects during the outage; Redis after."""
    server = redis_process()
    name = unique()
    breaker = CircuitBreaker(2, 60.0, store=outage_store(server.url, "local"), name=name)
    trip(breaker, 1)  # recorded in Redis
    server.stop()
    trip(breaker, 2)  # the local breaker opens
    assert breaker.state is OPEN
    with pytest.raises(CircuitOpenError):
        breaker.call(ok)
    server.start()  # a fresh, empty server: the shared breaker is closed
    wait_until(lambda: redis_answers(breaker))
    assert breaker.call(ok) == "ok"
    assert breaker.state is CLOSED
    other = CircuitBreaker(2, 60.0, store=outage_store(server.url, "local"), name=name)
    trip(breaker, 2)
    with pytest.raises(CircuitOpenError):
        other.call(ok)


@pytest.mark.slow
def test_frozen_redis_never_hangs_a_caller(redis_process: Any) -> None:
    """A Redis that stops answering (SIGSTOP) costs a bounded wait, then the fail mode applies."""
    server = redis_process()
    closed = CircuitBreaker(2, 60.0, store=outage_store(server.url, "closed"), name=unique())
    local = CircuitBreaker(2, 60.0, store=outage_store(server.url, "local"), name=unique())
    assert closed.call(ok) == "ok" and local.call(ok) == "ok"
    assert server.proc is not None
    os.kill(server.proc.pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        with pytest.raises(BackendUnavailable):
            closed.call(ok)
        assert local.call(ok) == "ok"  # the local breaker answers
        assert time.monotonic() - started < 5.0  # socket timeouts (0.25 s each), no hang
    finally:
        os.kill(server.proc.pid, signal.SIGCONT)
    wait_until(lambda: redis_answers(closed))
    assert closed.call(ok) == "ok"


# --------------------------------------------------------------------------------------------
# The state machine again, with the state in Redis


class RedisBreakerMachine(BreakerMachine):
    """The reference-model state machine, run against the Redis store."""

    redis_url = ""

    @initialize(config=configs())
    def build(self, config: CircuitBreakerConfig) -> None:
        store = RedisCircuitStore(self.redis_url, test_time=self.clock)
        self.breaker = CircuitBreaker.from_config(
            config, clock=self.clock, store=store, name=unique("sm")
        )
        self.breaker.add_listener(lambda b, old, new: self.seen.append((old, new)))
        self.model = RefBreaker(config, lazy_success_reset=True)

    def teardown(self) -> None:
        if hasattr(self, "breaker"):
            self.breaker._engine.store.close()  # type: ignore[attr-defined]


def test_state_machine_against_redis(redis_url: str) -> None:
    """The Redis store follows the same reference model as the in-memory breaker."""
    RedisBreakerMachine.redis_url = redis_url
    RedisBreakerMachine.TestCase.settings = settings(max_examples=40, stateful_step_count=30)
    RedisBreakerMachine.TestCase().runTest()
