"""Tests for resilience.circuit: the in-memory CircuitBreaker."""

from __future__ import annotations

import asyncio
import inspect
import logging
import threading
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    initialize,
    invariant,
    multiple,
    rule,
)

import resilience
from resilience import CircuitBreaker, CircuitBreakerConfig, CircuitOpenError, CircuitState
from resilience.circuit import CircuitPermit
from resilience.testing import FakeClock

CLOSED, OPEN, HALF_OPEN = CircuitState.CLOSED, CircuitState.OPEN, CircuitState.HALF_OPEN


class Boom(Exception):
    """A counted failure."""


class Unrelated(Exception):
    """An exception the breakers below do not count."""


def fail() -> None:
    raise Boom("down")


def ok() -> str:
    return "ok"


def trip(breaker: CircuitBreaker, n: int) -> None:
    for _ in range(n):
        with pytest.raises(Boom):
            breaker.call(fail)


# --------------------------------------------------------------------------------------------
# The original design's behaviour


def test_original_design_cycle() -> None:
    """Five consecutive failures open it; after recovery_timeout one probe success closes it."""
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=5, recovery_timeout=60.0, clock=clock)
    assert breaker.last_failure_time is None
    trip(breaker, 4)
    assert breaker.state is CLOSED and breaker.failure_count == 4
    assert breaker.last_failure_time == 0.0
    trip(breaker, 1)
    assert breaker.state is OPEN
    with pytest.raises(CircuitOpenError) as info:
        breaker.call(ok)
    assert info.value.retry_after == pytest.approx(60.0)
    assert info.value.name == "default"
    clock.advance(59.5)
    with pytest.raises(CircuitOpenError) as info:
        breaker.call(ok)
    assert info.value.retry_after == pytest.approx(0.5)
    clock.advance(0.5)
    assert breaker.state is HALF_OPEN  # what the next call finds (it is moved by that call)
    assert breaker.call(ok) == "ok"
    assert breaker.state is CLOSED and breaker.failure_count == 0


def test_positional_arguments_and_attributes_like_the_original() -> None:
    """The original positional signature works and its attributes read back."""
    breaker = CircuitBreaker(3, 10.0, ValueError)
    assert (breaker.failure_threshold, breaker.recovery_timeout) == (3, 10.0)
    assert breaker.expected_exception is ValueError
    assert breaker.state is CircuitState.CLOSED
    assert [s.value for s in CircuitState] == ["closed", "open", "half_open"]


def test_success_resets_consecutive_count() -> None:
    """In count mode only *consecutive* failures open the breaker."""
    breaker = CircuitBreaker(failure_threshold=3, clock=FakeClock())
    for _ in range(5):
        trip(breaker, 2)
        breaker.call(ok)
    assert breaker.state is CLOSED and breaker.failure_count == 0


def test_failed_probe_reopens_and_restarts_timer() -> None:
    """A failing half-open probe re-opens the breaker with a fresh recovery_timeout."""
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=1, recovery_timeout=10.0, clock=clock)
    trip(breaker, 1)
    clock.advance(10.0)
    trip(breaker, 1)  # the probe fails
    assert breaker.state is OPEN
    clock.advance(4.0)
    with pytest.raises(CircuitOpenError) as info:
        breaker.call(ok)
    assert info.value.retry_after == pytest.approx(6.0)


# --------------------------------------------------------------------------------------------
# Half-open probes


def test_half_open_probe_limit_and_rejection_retry_after_zero() -> None:
    """With half_open_max_calls=2, two probes run at once, a third is rejected (retry_after 0)."""
    clock = FakeClock()
    breaker = CircuitBreaker(
        failure_threshold=1, recovery_timeout=5.0, half_open_max_calls=2, clock=clock
    )
    trip(breaker, 1)
    clock.advance(5.0)
    first = breaker.acquire()
    assert breaker.state is HALF_OPEN
    second = breaker.acquire()
    with pytest.raises(CircuitOpenError) as info:
        breaker.acquire()
    assert info.value.retry_after == 0.0
    first.success()
    assert breaker.state is HALF_OPEN  # needs both probes to succeed
    second.success()
    assert breaker.state is CLOSED


def test_ignored_probe_gives_its_slot_back() -> None:
    """A probe ending with a non-counted exception frees its slot; the state stays HALF_OPEN."""
    clock = FakeClock()
    breaker = CircuitBreaker(1, 1.0, Boom, clock=clock)
    trip(breaker, 1)
    clock.advance(1.0)
    with pytest.raises(Unrelated):
        with breaker:
            raise Unrelated
    assert breaker.state is HALF_OPEN
    assert breaker.call(ok) == "ok"
    assert breaker.state is CLOSED


def test_state_reads_half_open_once_recovery_timeout_elapsed() -> None:
    """state reads HALF_OPEN when the timeout is up, without a transition until a probe runs."""
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=1, recovery_timeout=10.0, clock=clock)
    seen: list[tuple[CircuitState, CircuitState]] = []
    breaker.add_listener(lambda b, old, new: seen.append((old, new)))
    trip(breaker, 1)
    assert breaker.state is OPEN and seen == [(CLOSED, OPEN)]
    eps = 2.0**-20  # about 1e-6, and exact in binary: the clock lands on 10.0 exactly below
    clock.advance(10.0 - eps)
    assert breaker.state is OPEN
    assert breaker._engine.retry_after() == eps  # type: ignore[attr-defined]
    clock.advance(eps)  # exactly opened_at + recovery_timeout
    assert breaker.state is HALF_OPEN
    clock.advance(5.0)
    for _ in range(3):
        assert breaker.state is HALF_OPEN  # reading is pure: no listener, no state change
    assert breaker._engine.retry_after() == 0.0  # type: ignore[attr-defined]
    assert breaker._engine._state is OPEN  # type: ignore[attr-defined]
    assert seen == [(CLOSED, OPEN)]
    probes: list[CircuitState] = []
    assert breaker.call(lambda: probes.append(breaker.state) or "ok") == "ok"
    assert probes == [HALF_OPEN]  # during the probe the stored state is HALF_OPEN too
    assert breaker.state is CLOSED
    assert seen == [(CLOSED, OPEN), (OPEN, HALF_OPEN), (HALF_OPEN, CLOSED)]


def test_state_read_after_timeout_matches_admission_in_rate_mode() -> None:
    """Rate mode (the windowed engine path) reads HALF_OPEN after the timeout, OPEN again
    after a failed probe."""
    clock = FakeClock()
    breaker = CircuitBreaker(
        failure_rate_threshold=0.5, window_size=2, minimum_calls=2, recovery_timeout=3.0,
        clock=clock,
    )  # fmt: skip
    trip(breaker, 2)
    assert breaker.state is OPEN
    clock.advance(3.0)
    assert breaker.state is HALF_OPEN
    trip(breaker, 1)  # the probe fails: OPEN for a fresh recovery_timeout
    assert breaker.state is OPEN
    clock.advance(2.5)
    assert breaker.state is OPEN
    clock.advance(0.5)
    assert breaker.state is HALF_OPEN


def test_permit_records_once() -> None:
    """A permit's outcome can be recorded only once."""
    permit = CircuitBreaker().acquire()
    assert isinstance(permit, CircuitPermit)
    permit.success()
    with pytest.raises(RuntimeError):
        permit.failure()


# --------------------------------------------------------------------------------------------
# Rate mode and slow calls


def test_rate_mode_waits_for_minimum_calls() -> None:
    """Rate mode opens only once minimum_calls are recorded and the rate reaches the threshold."""
    breaker = CircuitBreaker(
        failure_rate_threshold=0.5, window_size=10, minimum_calls=4, clock=FakeClock()
    )
    trip(breaker, 3)  # 100 % failures, but only 3 calls
    assert breaker.state is CLOSED and breaker.failure_count == 3
    breaker.call(ok)  # 3/4 = 75 % >= 50 %
    assert breaker.state is OPEN


def test_rate_mode_window_slides() -> None:
    """Old failures leave the window: 3 failures then many successes never open at 50 %."""
    breaker = CircuitBreaker(
        failure_rate_threshold=0.5, window_size=4, minimum_calls=4, clock=FakeClock()
    )
    breaker.call(ok)
    breaker.call(ok)
    breaker.call(ok)
    trip(breaker, 1)  # 1/4
    breaker.call(ok)  # window: ok ok fail ok -> 1/4
    assert breaker.failure_count == 1
    trip(breaker, 1)  # ok fail ok fail -> 2/4 = 50 %
    assert breaker.state is OPEN


def test_rate_threshold_is_exact_for_decimal_fractions() -> None:
    """3 failures in 10 calls meets a 0.3 threshold (no floating-point near miss)."""
    breaker = CircuitBreaker(
        failure_rate_threshold=0.3, window_size=10, minimum_calls=10, clock=FakeClock()
    )
    for _ in range(7):
        breaker.call(ok)
    trip(breaker, 3)
    assert breaker.state is OPEN


def test_slow_calls_open_the_breaker() -> None:
    """Successful but slow calls open the breaker once their rate reaches the threshold."""
    clock = FakeClock()
    breaker = CircuitBreaker(
        slow_call_duration=2.0,
        slow_call_rate_threshold=0.5,
        window_size=4,
        minimum_calls=4,
        clock=clock,
    )

    def slow() -> str:
        clock.advance(2.0)
        return "slow"

    breaker.call(ok)
    breaker.call(ok)
    breaker.call(slow)
    assert breaker.state is CLOSED
    assert breaker.call(slow) == "slow"  # 2/4 slow
    assert breaker.state is OPEN
    assert breaker.failure_count == 0  # no failure was involved


def test_decorated_rate_and_slow_modes() -> None:
    """The decorator's in-memory window path counts failures, slow calls and rejects when open."""
    clock = FakeClock()
    breaker = CircuitBreaker(
        failure_rate_threshold=0.5,
        window_size=4,
        minimum_calls=4,
        slow_call_duration=1.0,
        slow_call_rate_threshold=0.75,
        clock=clock,
    )

    @breaker
    def work(seconds: float, ok: bool = True) -> str:
        clock.advance(seconds)
        if not ok:
            raise Boom
        return "done"

    for _ in range(6):
        assert work(0.0) == "done"  # a full window of plain successes
    assert work(2.0) == "done"
    assert work(2.0) == "done"
    with pytest.raises(Boom):
        work(0.0, ok=False)
    assert breaker.state is CLOSED and breaker.failure_count == 1  # 2/4 slow, 1/4 failed
    assert work(1.0) == "done"  # 3/4 slow
    assert breaker.state is OPEN
    with pytest.raises(CircuitOpenError):
        work(0.0)


def test_slow_probe_reopens() -> None:
    """A half-open probe that succeeds slowly counts as a failed probe."""
    clock = FakeClock()
    breaker = CircuitBreaker(1, 1.0, slow_call_duration=1.0, window_size=1, clock=clock)
    trip(breaker, 1)
    clock.advance(1.0)
    with breaker:
        clock.advance(1.5)
    assert breaker.state is OPEN


# --------------------------------------------------------------------------------------------
# Exceptions that are not failures


def test_unrelated_exception_passes_untouched_and_counts_as_neither() -> None:
    """A non-matching exception propagates as the same object and does not touch the count."""
    breaker = CircuitBreaker(2, 1.0, Boom, clock=FakeClock())
    trip(breaker, 1)
    error = Unrelated("x")

    def raises() -> None:
        raise error

    with pytest.raises(Unrelated) as info:
        breaker.call(raises)
    assert info.value is error
    assert breaker.failure_count == 1  # not reset (not a success), not incremented
    trip(breaker, 1)
    assert breaker.state is OPEN


@pytest.mark.parametrize(
    "expected",
    [
        (KeyError, Boom),
        lambda exc: isinstance(exc, Boom) and "down" in str(exc),
    ],
    ids=["tuple", "predicate"],
)
def test_expected_exception_tuple_and_predicate(expected: Any) -> None:
    """A tuple or a predicate selects what counts as a failure."""
    breaker = CircuitBreaker(1, 1.0, expected, clock=FakeClock())
    with pytest.raises(Unrelated):
        breaker.call(lambda: (_ for _ in ()).throw(Unrelated()))
    assert breaker.state is CLOSED
    trip(breaker, 1)
    assert breaker.state is OPEN


def test_keyboard_interrupt_is_not_a_failure() -> None:
    """BaseExceptions outside Exception (KeyboardInterrupt) are not failures by default."""
    breaker = CircuitBreaker(1, clock=FakeClock())

    def interrupted() -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        breaker.call(interrupted)
    assert breaker.state is CLOSED


# --------------------------------------------------------------------------------------------
# Call forms


def test_decorator_keeps_signature_and_counts() -> None:
    """The decorator keeps name, docstring and signature, and protects the call."""
    breaker = CircuitBreaker(2, clock=FakeClock())

    @breaker
    def fetch(symbol: str, *, n: int = 1) -> str:
        """Fetch."""
        if symbol == "bad":
            raise Boom(symbol)
        return symbol * n

    assert fetch.__name__ == "fetch" and fetch.__doc__ == "Fetch."
    assert str(inspect.signature(fetch)) == "(symbol: 'str', *, n: 'int' = 1) -> 'str'"
    assert fetch("a", n=2) == "aa"
    for _ in range(2):
        with pytest.raises(Boom):
            fetch("bad")
    with pytest.raises(CircuitOpenError):
        fetch("a")


@pytest.mark.parametrize("rate_mode", [False, True])
def test_decorated_method(rate_mode: bool) -> None:
    """Decorating a method works (the wrapper binds like the function) in both modes."""
    breaker = CircuitBreaker(failure_rate_threshold=0.5 if rate_mode else None)

    class Client:
        @breaker
        def get(self, x: int) -> int:
            return x + 1

    assert Client().get(1) == 2


def test_context_manager_sync_nested() -> None:
    """`with breaker:` records success and failure; nesting pairs enters with exits."""
    breaker = CircuitBreaker(2, clock=FakeClock())
    with breaker, breaker:
        pass
    with pytest.raises(Boom):
        with breaker:
            with breaker:
                raise Boom
    assert breaker.failure_count == 2
    assert breaker.state is OPEN
    with pytest.raises(CircuitOpenError):
        with breaker:
            pass


def test_async_with_in_interleaved_tasks_pairs_each_exit_with_its_enter() -> None:
    """Two tasks inside `async with` at once: each exit records its own call's duration."""
    clock = FakeClock()
    # Correct pairing: durations 1.1 s and 1.5 s, none slow.  Swapped: 0.1 s and 2.5 s.
    breaker = CircuitBreaker(
        slow_call_duration=2.0,
        slow_call_rate_threshold=0.5,
        window_size=2,
        minimum_calls=2,
        clock=clock,
    )

    async def main() -> None:
        a_inside, b_inside, a_done = asyncio.Event(), asyncio.Event(), asyncio.Event()

        async def task_a() -> None:
            async with breaker:  # enters at t=0
                a_inside.set()
                await b_inside.wait()
                clock.advance(0.1)  # exits at t=1.1
            a_done.set()

        async def task_b() -> None:
            await a_inside.wait()
            clock.advance(1.0)
            async with breaker:  # enters at t=1.0
                b_inside.set()
                await a_done.wait()
                clock.advance(1.4)  # exits at t=2.5

        await asyncio.gather(task_a(), task_b())

    asyncio.run(main())
    assert breaker.state is CLOSED


def test_with_statement_in_two_threads_at_once() -> None:
    """`with breaker:` in two threads overlapping: both run, each records its own outcome."""
    breaker = CircuitBreaker(2)
    both_inside = threading.Barrier(2, timeout=5)
    errors: list[BaseException] = []

    def worker(fails: bool) -> None:
        try:
            with breaker:
                both_inside.wait()
                if fails:
                    raise Boom
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(k == 0,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert [type(e) for e in errors] == [Boom]
    assert breaker.state is CLOSED


def test_exit_without_enter_is_an_error() -> None:
    """__exit__ without a matching __enter__ raises RuntimeError."""
    with pytest.raises(RuntimeError):
        CircuitBreaker().__exit__(None, None, None)


def test_async_forms() -> None:
    """Async decorator, call_async, call() on a coroutine function and `async with` all count."""
    breaker = CircuitBreaker(4, clock=FakeClock())

    @breaker
    async def afail() -> None:
        await asyncio.sleep(0)
        raise Boom

    async def aok(x: int) -> int:
        await asyncio.sleep(0)
        return x

    async def raw_fail() -> None:
        raise Boom

    async def main() -> None:
        assert inspect.iscoroutinefunction(afail)
        with pytest.raises(Boom):
            await afail()
        with pytest.raises(Boom):
            await breaker.call_async(raw_fail)
        assert await breaker.call(aok, 7) == 7  # resets the consecutive count
        assert breaker.failure_count == 0
        for _ in range(3):
            with pytest.raises(Boom):
                await breaker.call(raw_fail)
        with pytest.raises(Boom):
            async with breaker:
                raise Boom
        assert breaker.state is OPEN
        with pytest.raises(CircuitOpenError):
            await breaker.call_async(aok, 1)
        with pytest.raises(CircuitOpenError):
            async with breaker:
                pass

    asyncio.run(main())


def test_async_rate_mode_and_cancellation_is_not_a_failure() -> None:
    """In rate mode async calls are recorded; a cancelled call is recorded as neither."""
    breaker = CircuitBreaker(
        failure_rate_threshold=1.0, window_size=2, minimum_calls=1, clock=FakeClock()
    )

    async def main() -> None:
        async def forever() -> None:
            await asyncio.Event().wait()

        task = asyncio.ensure_future(breaker.call_async(forever))
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert breaker.state is CLOSED and breaker.failure_count == 0

        async def afail() -> None:
            raise Boom

        with pytest.raises(Boom):
            await breaker.call_async(afail)
        assert breaker.state is OPEN

    asyncio.run(main())


# --------------------------------------------------------------------------------------------
# Listeners, reset, repr


def test_listeners_see_every_transition_and_reset() -> None:
    """Listeners get (breaker, old, new) for each transition, including reset()."""
    clock = FakeClock()
    breaker = CircuitBreaker(1, 1.0, clock=clock, name="tv")
    seen: list[tuple[str, CircuitState, CircuitState]] = []
    breaker.add_listener(lambda b, old, new: seen.append((b.name, old, new)))
    trip(breaker, 1)
    clock.advance(1.0)
    breaker.call(ok)
    trip(breaker, 1)
    breaker.reset()
    breaker.reset()  # already closed: no transition
    assert seen == [
        ("tv", CLOSED, OPEN),
        ("tv", OPEN, HALF_OPEN),
        ("tv", HALF_OPEN, CLOSED),
        ("tv", CLOSED, OPEN),
        ("tv", OPEN, CLOSED),
    ]


def test_failing_listener_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    """A listener that raises is logged; the call's own outcome reaches the caller."""
    breaker = CircuitBreaker(1, clock=FakeClock(), name="tv")
    calls: list[CircuitState] = []

    def bad(b: CircuitBreaker, old: CircuitState, new: CircuitState) -> None:
        raise RuntimeError("listener bug")

    breaker.add_listener(bad)
    breaker.add_listener(lambda b, old, new: calls.append(new))
    with caplog.at_level(logging.ERROR, logger="resilience.circuit"):
        trip(breaker, 1)  # Boom, not RuntimeError
    assert calls == [OPEN]
    assert "listener" in caplog.text
    breaker.remove_listener(bad)
    with pytest.raises(ValueError):
        breaker.remove_listener(bad)


def test_repr_names_the_breaker() -> None:
    """The repr shows name, state and settings."""
    text = repr(CircuitBreaker(name="tradingview", failure_rate_threshold=0.5))
    assert "tradingview" in text and "closed" in text and "failure_rate_threshold=0.5" in text


def test_from_config_and_config_is_frozen() -> None:
    """from_config builds an equivalent breaker; the config is immutable."""
    config = CircuitBreakerConfig(failure_threshold=2)
    breaker = CircuitBreaker.from_config(config, name="x", clock=FakeClock())
    assert breaker.config is config
    trip(breaker, 2)
    assert breaker.state is OPEN
    with pytest.raises(AttributeError):
        config.failure_threshold = 3  # type: ignore[misc]
    with pytest.raises(TypeError, match="config"):
        CircuitBreaker.from_config({"failure_threshold": 2})  # type: ignore[arg-type]


def test_top_level_exports() -> None:
    """The public names are importable from the package root and listed in __all__."""
    for name in ("CircuitBreaker", "CircuitBreakerConfig", "CircuitState", "CircuitOpenError"):
        assert name in resilience.__all__


# --------------------------------------------------------------------------------------------
# Bad input


@pytest.mark.parametrize(
    ("kwargs", "error", "param"),
    [
        ({"failure_threshold": 0}, ValueError, "failure_threshold"),
        ({"failure_threshold": 2.5}, TypeError, "failure_threshold"),
        ({"failure_threshold": True}, TypeError, "failure_threshold"),
        ({"recovery_timeout": -1}, ValueError, "recovery_timeout"),
        ({"recovery_timeout": float("nan")}, ValueError, "recovery_timeout"),
        ({"recovery_timeout": "60"}, TypeError, "recovery_timeout"),
        ({"expected_exception": 3}, TypeError, "expected_exception"),
        ({"expected_exception": ()}, TypeError, "expected_exception"),
        ({"expected_exception": (ValueError, int)}, TypeError, "expected_exception"),
        ({"failure_rate_threshold": 0.0}, ValueError, "failure_rate_threshold"),
        ({"failure_rate_threshold": 50}, ValueError, "failure_rate_threshold"),
        ({"window_size": 0}, ValueError, "window_size"),
        ({"minimum_calls": 0}, ValueError, "minimum_calls"),
        ({"slow_call_duration": 0}, ValueError, "slow_call_duration"),
        ({"slow_call_duration": float("inf")}, ValueError, "slow_call_duration"),
        ({"slow_call_rate_threshold": 1.5}, ValueError, "slow_call_rate_threshold"),
        ({"half_open_max_calls": 0}, ValueError, "half_open_max_calls"),
        ({"name": ""}, ValueError, "name"),
        ({"clock": 3}, TypeError, "clock"),
        ({"store": 3}, TypeError, "store"),
    ],
)
def test_bad_input_names_the_parameter(
    kwargs: dict[str, Any], error: type[Exception], param: str
) -> None:
    """Each invalid constructor argument raises ValueError/TypeError naming the parameter."""
    with pytest.raises(error, match=param):
        CircuitBreaker(**kwargs)


def test_decorating_a_non_callable_is_a_type_error() -> None:
    """Decorating something that is not callable raises TypeError."""
    with pytest.raises(TypeError):
        CircuitBreaker()(3)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------
# Real threads


@pytest.mark.parametrize("rate_mode", [False, True])
def test_two_slow_calls_overlap_through_a_closed_breaker(rate_mode: bool) -> None:
    """Two calls through one closed breaker run at the same time (no lock held during a call)."""
    breaker = CircuitBreaker(failure_rate_threshold=0.5 if rate_mode else None)
    both_inside = threading.Barrier(2, timeout=5)
    results: list[str] = []

    @breaker
    def slow_call() -> str:
        both_inside.wait()  # breaks (BrokenBarrierError) if the calls cannot overlap
        return "done"

    def worker() -> None:
        results.append(slow_call())

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert results == ["done", "done"]


def test_threads_hammering_rate_mode_lose_no_outcome() -> None:
    """8 threads recording outcomes concurrently: the window holds exactly the failures made."""
    breaker = CircuitBreaker(failure_rate_threshold=1.0, window_size=10_000, minimum_calls=10_000)
    per_thread = 400

    def worker(k: int) -> None:
        for i in range(per_thread):
            if (i + k) % 4 == 0:
                with pytest.raises(Boom):
                    breaker.call(fail)
            else:
                breaker.call(ok)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert breaker.failure_count == 8 * per_thread // 4
    assert breaker.state is CLOSED


def test_threads_on_a_full_window_keep_counts_equal_to_the_slots() -> None:
    """8 threads on a full ring (lock-free success moves): the counts match the slots exactly."""
    breaker = CircuitBreaker(failure_rate_threshold=1.0, window_size=50, minimum_calls=50)
    engine = breaker._engine
    guarded_fail, guarded_ok = breaker(fail), breaker(ok)

    def worker(k: int) -> None:
        for i in range(2000):
            if (i * 7 + k) % 5 == 0:
                with pytest.raises(Boom):
                    guarded_fail()
            else:
                guarded_ok()

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    window = engine._window  # type: ignore[attr-defined]
    assert engine._n == 50  # type: ignore[attr-defined]
    assert breaker.failure_count == sum(code & 1 for code in window)
    assert 0 < breaker.failure_count < 50
    assert breaker.state is CLOSED


def test_threads_hammering_count_mode_open_exactly_once() -> None:
    """Concurrent failures open a count-mode breaker once, and it then rejects every thread."""
    breaker = CircuitBreaker(failure_threshold=50, recovery_timeout=3600)
    transitions: list[CircuitState] = []
    breaker.add_listener(lambda b, old, new: transitions.append(new))
    rejected = threading.Event()

    def worker() -> None:
        for _ in range(200):
            try:
                breaker.call(fail)
            except Boom:
                pass
            except CircuitOpenError:
                rejected.set()

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert transitions == [OPEN]
    assert rejected.is_set() and breaker.state is OPEN


# --------------------------------------------------------------------------------------------
# The state machine, checked against a small reference model


@dataclass
class RefToken:
    kind: str  # "normal" or "probe"
    period: int
    start: float
    seen: int = 0  # consecutive failures when admitted


@dataclass
class RefBreaker:
    """A deliberately plain re-statement of the documented rules."""

    config: CircuitBreakerConfig
    state: CircuitState = CLOSED
    consecutive: int = 0
    window: list[tuple[bool, bool]] = field(default_factory=list)
    opened_at: float = 0.0
    period: int = 0
    admitted: int = 0
    succeeded: int = 0
    transitions: list[tuple[CircuitState, CircuitState]] = field(default_factory=list)
    # The Redis store's one-round-trip success: a count-mode success is not written back when
    # no failures were recorded at admission time.
    lazy_success_reset: bool = False

    def _go(self, new: CircuitState, now: float) -> None:
        self.transitions.append((self.state, new))
        self.state = new
        self.admitted = self.succeeded = 0
        if new is OPEN:
            self.opened_at = now
        elif new is HALF_OPEN:
            self.period += 1
        else:
            self.consecutive = 0
            self.window = []

    def observed(self, now: float) -> CircuitState:
        """What ``breaker.state`` reads: HALF_OPEN for an OPEN breaker whose time is up."""
        if self.state is OPEN and now >= self.opened_at + self.config.recovery_timeout:
            return HALF_OPEN
        return self.state

    @property
    def failure_count(self) -> int:
        if self.config.failure_rate_threshold is None:
            return self.consecutive
        return sum(failed for failed, _ in self.window)

    def acquire(self, now: float) -> RefToken | float:
        """A token, or the retry_after of a rejection."""
        if self.state is OPEN:
            left = self.opened_at + self.config.recovery_timeout - now
            if left > 0:
                return left
            self._go(HALF_OPEN, now)
        if self.state is HALF_OPEN:
            if self.admitted >= self.config.half_open_max_calls:
                return 0.0
            self.admitted += 1
            return RefToken("probe", self.period, now)
        return RefToken("normal", 0, now, self.consecutive)

    def finish(self, token: RefToken, outcome: str, now: float) -> None:
        c = self.config
        slow = c.slow_call_duration is not None and now - token.start >= c.slow_call_duration
        if token.kind == "normal":
            if self.state is not CLOSED or outcome == "ignored":
                return
            failed = outcome == "failure"
            windowed = c.failure_rate_threshold is not None or c.slow_call_duration is not None
            if self.lazy_success_reset and not failed and not windowed and token.seen == 0:
                return
            self.consecutive = self.consecutive + 1 if failed else 0
            self.window = [*self.window, (failed, slow)][-c.window_size :]
            n = len(self.window)
            minimum = min(c.minimum_calls, c.window_size)
            rate = sum(f for f, _ in self.window) / n
            slow_rate = sum(s for _, s in self.window) / n
            if (
                (c.failure_rate_threshold is None and self.consecutive >= c.failure_threshold)
                or (
                    c.failure_rate_threshold is not None
                    and n >= minimum
                    and rate >= c.failure_rate_threshold
                )
                or (
                    c.slow_call_duration is not None
                    and n >= minimum
                    and slow_rate >= c.slow_call_rate_threshold
                )
            ):
                self._go(OPEN, now)
            return
        if self.state is not HALF_OPEN or token.period != self.period:
            return
        if outcome == "ignored":
            self.admitted -= 1
        elif outcome == "failure" or slow:
            self._go(OPEN, now)
        else:
            self.succeeded += 1
            if self.succeeded >= c.half_open_max_calls:
                self._go(CLOSED, now)

    def reset(self, now: float) -> None:
        if self.state is not CLOSED:
            self._go(CLOSED, now)
        else:
            self.consecutive = 0
            self.window = []


FRACTIONS = st.sampled_from([0.2, 0.25, 0.3, 0.5, 2 / 3, 0.7, 1.0])
OUTCOMES = st.sampled_from(["success", "failure", "ignored"])
EXCEPTIONS: dict[str, BaseException | None] = {
    "success": None,
    "failure": Boom(),
    "ignored": Unrelated(),
}


@st.composite
def configs(draw: st.DrawFn) -> CircuitBreakerConfig:
    window = draw(st.integers(1, 6))
    return CircuitBreakerConfig(
        failure_threshold=draw(st.integers(1, 4)),
        recovery_timeout=draw(st.sampled_from([0.0, 1.0, 2.5])),
        expected_exception=Boom,
        failure_rate_threshold=draw(st.none() | FRACTIONS),
        window_size=window,
        minimum_calls=draw(st.integers(1, window + 1)),
        slow_call_duration=draw(st.none() | st.sampled_from([0.5, 1.0])),
        slow_call_rate_threshold=draw(FRACTIONS),
        half_open_max_calls=draw(st.integers(1, 3)),
    )


class BreakerMachine(RuleBasedStateMachine):
    """Drives a real breaker and the reference model with the same calls and fake time."""

    inflight = Bundle("inflight")

    def __init__(self) -> None:
        super().__init__()
        self.clock = FakeClock()
        self.seen: list[tuple[CircuitState, CircuitState]] = []

    @initialize(config=configs())
    def build(self, config: CircuitBreakerConfig) -> None:
        self.breaker = CircuitBreaker.from_config(config, clock=self.clock)
        self.breaker.add_listener(lambda b, old, new: self.seen.append((old, new)))
        self.model = RefBreaker(config)

    def _check_rejection(self, expected: RefToken | float, error: CircuitOpenError) -> None:
        assert isinstance(expected, float), "breaker rejected, model admitted"
        assert error.retry_after == pytest.approx(expected, abs=2e-6)  # Redis: whole us

    @rule(target=inflight)
    def start(self) -> Any:
        expected = self.model.acquire(self.clock())
        try:
            permit = self.breaker.acquire()
        except CircuitOpenError as error:
            self._check_rejection(expected, error)
            return multiple()  # nothing goes in flight
        assert isinstance(expected, RefToken), "model rejected, breaker admitted"
        return (permit, expected)

    @rule(call=consumes(inflight), outcome=OUTCOMES)
    def finish(self, call: Any, outcome: str) -> None:
        permit, token = call
        permit.record(EXCEPTIONS[outcome])
        self.model.finish(token, outcome, self.clock())

    @rule(outcome=OUTCOMES, duration=st.sampled_from([0.0, 0.5, 1.0, 1.5]))
    def call(self, outcome: str, duration: float) -> None:
        expected = self.model.acquire(self.clock())

        def body() -> str:
            self.clock.advance(duration)
            exc = EXCEPTIONS[outcome]
            if exc is not None:
                raise exc
            return "ok"

        try:
            result = self.breaker.call(body)
        except CircuitOpenError as error:
            self._check_rejection(expected, error)
            return
        except (Boom, Unrelated) as exc:
            assert exc is EXCEPTIONS[outcome]
        else:
            assert result == "ok" and outcome == "success"
        assert isinstance(expected, RefToken)
        self.model.finish(expected, outcome, self.clock())

    @rule(seconds=st.sampled_from([0.25, 0.5, 1.0, 2.5]))
    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)

    @rule()
    def reset(self) -> None:
        self.breaker.reset()
        self.model.reset(self.clock())

    @invariant()
    def same_state(self) -> None:
        if not hasattr(self, "model"):
            return
        assert self.breaker.state is self.model.observed(self.clock())
        assert self.breaker.failure_count == self.model.failure_count
        assert self.seen == self.model.transitions


TestBreakerStateMachine = BreakerMachine.TestCase
TestBreakerStateMachine.settings = settings(max_examples=150, stateful_step_count=40)


@given(st.lists(st.booleans(), max_size=60), st.integers(1, 6))
def test_count_mode_opens_exactly_at_threshold(outcomes: list[bool], threshold: int) -> None:
    """Count mode opens exactly when the run of consecutive failures reaches the threshold."""
    breaker = CircuitBreaker(threshold, 3600.0, clock=FakeClock())
    run = 0
    for failed in outcomes:
        if breaker.state is OPEN:
            break
        if failed:
            run += 1
            with pytest.raises(Boom):
                breaker.call(fail)
        else:
            run = 0
            breaker.call(ok)
        assert (breaker.state is OPEN) == (run >= threshold)


def test_open_rejection_message_retry_after_and_pickle_on_every_path() -> None:
    """An OPEN rejection (decorator, .call, acquire) has the exact retry_after, the usual text."""
    import copy
    import pickle

    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=1, recovery_timeout=30.0, name="svc", clock=clock)

    @breaker
    def down() -> None:
        raise Boom("down")

    with pytest.raises(Boom):
        down()
    clock.advance(10.25)
    errors: list[CircuitOpenError] = []
    for attempt in (down, lambda: breaker.call(down), breaker.acquire):
        with pytest.raises(CircuitOpenError) as info:
            attempt()
        errors.append(info.value)
    eager = CircuitOpenError(
        "circuit breaker 'svc' is open; retry in 19.750s", retry_after=19.75, name="svc"
    )
    for error in errors:
        assert type(error) is CircuitOpenError
        assert error.retry_after == pytest.approx(19.75, abs=1e-12)
        assert error.name == "svc"
        assert str(error) == str(eager)
        assert repr(error) == repr(eager)
        for clone in (pickle.loads(pickle.dumps(error)), copy.copy(error)):
            assert type(clone) is CircuitOpenError
            assert (clone.retry_after, clone.name, str(clone)) == (19.75, "svc", str(error))
