"""The retry decision engine: given how an attempt ended, *decide* (retry after ``w`` seconds,
or give up and why); the thin sync/async drivers in :mod:`resilience.retry` act on it.

The engine never sleeps.  It reads the clock, the backoff, the ``retry_after`` hint and the
budget, calls the hooks and logs; the drivers sleep and call the function again.
"""

from __future__ import annotations

import inspect
import logging
import math
import random
import reprlib
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from ._budget import RetryBudget
from ._clock import AsyncSleep, Clock, Sleep
from .backoff import Backoff
from .errors import RetryError
from .timeout import Deadline

__all__ = [
    "AttemptRecord",
    "ExceptionFilter",
    "no_retry_waits",
    "set_retry_waits",
]

# Public, stable logger name (this private module logs on behalf of resilience.retry).
logger = logging.getLogger("resilience.retry")

ExceptionFilter = (
    type[BaseException] | tuple[type[BaseException], ...] | Callable[[Exception], bool]
)
Hook = Callable[["AttemptRecord"], object]

#: Default number of attempts (calls, the first one included).
DEFAULT_ATTEMPTS = 3


class _NoResult:
    __slots__ = ()

    def __repr__(self) -> str:
        return "<no result>"


NO_RESULT: Any = _NoResult()


# -- the global testing switch -----------------------------------------------------------


class _Switch:
    __slots__ = ("waits",)

    def __init__(self) -> None:
        self.waits = True


_SWITCH = _Switch()


def set_retry_waits(enabled: bool) -> None:
    """Turn every retry wait on or off process-wide (for test suites).

    With waits off, retries still happen (attempt limits, deadlines, budgets and hooks all
    apply) but every wait is 0 and ``sleep`` is never called; ``retry_after`` is ignored.
    """
    _SWITCH.waits = bool(enabled)


@contextmanager
def no_retry_waits() -> Iterator[None]:
    """Context manager: retry waits are off inside, restored to their previous state after."""
    previous = _SWITCH.waits
    _SWITCH.waits = False
    try:
        yield
    finally:
        _SWITCH.waits = previous


# -- values ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    """What happened to one failed attempt; passed to ``before_sleep`` and ``on_giveup``.

    ``number``: the attempt that just failed (1-based).  ``elapsed``: seconds since the first
    attempt started.  ``next_wait``: seconds before the next attempt, or ``None`` when giving
    up.  ``exception``: what the attempt raised (``None`` when its *result* was retried).
    ``result``: the unacceptable result (``None`` when it raised).  ``reason``: why the loop
    gave up — ``"attempts"``, ``"deadline"`` or ``"budget"`` — or ``None`` before a sleep.
    ``name``: the decorated function's qualified name (or the ``retrying`` name).
    Immutable, hence thread-safe.
    """

    number: int
    elapsed: float
    next_wait: float | None
    exception: BaseException | None
    result: Any = None
    reason: str | None = None
    name: str = ""


class CallState:
    """Mutable state of one retried call (one thread/task only)."""

    __slots__ = ("deadline_at", "name", "pending", "previous", "start")

    def __init__(self, start: float, name: str, deadline: float | None) -> None:
        self.start = start
        self.name = name
        self.previous = 0.0  # the previous backoff wait (decorrelated jitter)
        # (hook name, awaitable) returned by an async hook, for the async driver to await.
        self.pending: tuple[str, Awaitable[object]] | None = None
        # Absolute end of the budget (same arithmetic as anyone computing start + deadline).
        self.deadline_at = None if deadline is None else start + deadline


def _check_number(name: str, value: object, *, allow_zero: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be finite and {bound}, got {value!r}")
    return float(value)


def _check_callable(name: str, value: object, *, optional: bool = True) -> None:
    if value is None and optional:
        return
    if not callable(value):
        raise TypeError(f"{name} must be callable, got {type(value).__name__}")


def parse_filter(
    on: ExceptionFilter, param: str = "on"
) -> tuple[tuple[type[BaseException], ...], Callable[[Exception], bool] | None]:
    """Split ``on=`` into (exception types to catch, optional predicate)."""
    if isinstance(on, type):
        if issubclass(on, BaseException):
            return (on,), None
        raise TypeError(f"{param} must be an exception type, a tuple of them or a predicate")
    if isinstance(on, tuple):
        if not on or not all(isinstance(t, type) and issubclass(t, BaseException) for t in on):
            raise TypeError(f"{param} must be a non-empty tuple of exception types, got {on!r}")
        return on, None
    if callable(on):
        return (Exception,), on
    raise TypeError(
        f"{param} must be an exception type, a tuple of them or a predicate, "
        f"got {type(on).__name__}"
    )


def _retry_after(exc: BaseException | None) -> float:
    """The server's ``retry_after`` hint carried by ``exc`` (seconds), or 0."""
    value = getattr(exc, "retry_after", None)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return 0.0
    return float(value) if math.isfinite(value) and value > 0 else 0.0


class Policy:
    """A validated retry configuration plus the decision engine.

    Immutable after construction and safe to share between threads and tasks (per-call state
    lives in :class:`CallState`).  ``budget`` is itself thread-safe.
    """

    __slots__ = (
        "async_sleep",
        "attempts",
        "backoff",
        "before_sleep",
        "budget",
        "catch",
        "clock",
        "deadline",
        "deadline_obj",
        "on_giveup",
        "predicate",
        "retry_on_result",
        "rng",
        "sleep",
    )

    def __init__(
        self,
        *,
        on: ExceptionFilter,
        attempts: int | None,
        deadline: float | Deadline | None,
        backoff: Backoff,
        retry_on_result: Callable[[Any], bool] | None,
        before_sleep: Hook | None,
        on_giveup: Hook | None,
        budget: RetryBudget | None,
        clock: Clock,
        sleep: Sleep,
        async_sleep: AsyncSleep,
        rng: random.Random | None,
    ) -> None:
        self.catch, self.predicate = parse_filter(on)
        if attempts is not None:
            if isinstance(attempts, bool) or not isinstance(attempts, int):
                raise TypeError(f"attempts must be an int or None, got {type(attempts).__name__}")
            if attempts < 1:
                raise ValueError(f"attempts must be >= 1 or None, got {attempts!r}")
        self.attempts = attempts
        self.deadline_obj: Deadline | None = None
        self.deadline: float | None = None
        if isinstance(deadline, Deadline):
            self.deadline_obj = deadline
        elif deadline is not None:
            self.deadline = _check_number("deadline", deadline)
        if attempts is None and deadline is None:
            raise ValueError("attempts and deadline cannot both be None (it would retry forever)")
        if not isinstance(backoff, Backoff):
            raise TypeError(f"backoff must be a Backoff, got {type(backoff).__name__}")
        self.backoff = backoff
        _check_callable("retry_on_result", retry_on_result)
        _check_callable("before_sleep", before_sleep)
        _check_callable("on_giveup", on_giveup)
        self.retry_on_result = retry_on_result
        self.before_sleep = before_sleep
        self.on_giveup = on_giveup
        if budget is not None and not isinstance(budget, RetryBudget):
            raise TypeError(f"budget must be a RetryBudget or None, got {type(budget).__name__}")
        self.budget = budget
        _check_callable("clock", clock, optional=False)
        _check_callable("sleep", sleep, optional=False)
        _check_callable("async_sleep", async_sleep, optional=False)
        self.clock = clock
        self.sleep = sleep
        self.async_sleep = async_sleep
        if rng is not None and not isinstance(rng, random.Random):
            raise TypeError(f"rng must be a random.Random or None, got {type(rng).__name__}")
        self.rng = rng

    # -- per call --------------------------------------------------------------------------

    def start(self, name: str) -> CallState:
        """Begin a retried call (records the first attempt in the budget)."""
        if self.budget is not None:
            self.budget.record_attempt()
        return self.new_state(self.clock(), name)

    def new_state(self, start: float, name: str) -> CallState:
        """State of a call whose first attempt started at ``start``."""
        return CallState(start, name, self.deadline)

    def matches(self, exc: BaseException) -> bool:
        """Whether ``exc`` is one the policy retries on (``on=``)."""
        if not isinstance(exc, self.catch):
            return False
        predicate = self.predicate
        return predicate is None or bool(predicate(exc))  # type: ignore[arg-type]

    def remaining(self, state: CallState, now: float) -> float | None:
        """Seconds left of the total deadline, or None without one."""
        if self.deadline_obj is not None:
            return self.deadline_obj.remaining()
        if state.deadline_at is None:
            return None
        left = state.deadline_at - now
        return left if left > 0.0 else 0.0

    def decide(
        self, state: CallState, number: int, exc: BaseException | None, result: Any
    ) -> float | None:
        """Attempt ``number`` failed (``exc``, or an unacceptable ``result``).

        Returns the wait before the next attempt, or ``None`` to give up (after calling
        ``on_giveup`` and logging a warning).  Calls ``before_sleep`` when it retries.
        """
        now = self.clock()
        elapsed = now - state.start
        attempts = self.attempts
        if attempts is not None and number >= attempts:
            self._give_up(state, number, elapsed, exc, result=result, reason="attempts")
            return None
        wait = self.backoff._next(number, state.previous, self.rng)
        state.previous = wait
        if _SWITCH.waits:
            hint = _retry_after(exc)
            wait = max(wait, hint)
        else:
            wait = 0.0
        if self.deadline_obj is not None:
            past_deadline = wait >= self.deadline_obj.remaining()
        else:
            past_deadline = state.deadline_at is not None and now + wait >= state.deadline_at
        if past_deadline:
            self._give_up(state, number, elapsed, exc, result=result, reason="deadline")
            return None
        if self.budget is not None and not self.budget.try_spend():
            self._give_up(state, number, elapsed, exc, result=result, reason="budget")
            return None
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "%s: attempt %d failed (%s); retrying in %.3f s",
                state.name,
                number,
                _Outcome(exc, result),
                wait,
            )
        if self.before_sleep is not None:
            outcome = self.before_sleep(
                AttemptRecord(number, elapsed, wait, exc, result, None, state.name)
            )
            if outcome is not None and inspect.isawaitable(outcome):
                state.pending = ("before_sleep", outcome)
        return wait

    def _give_up(
        self,
        state: CallState,
        number: int,
        elapsed: float,
        exc: BaseException | None,
        *,
        result: Any,
        reason: str,
    ) -> None:
        logger.warning(
            "%s: giving up after %d attempt(s) in %.3f s (%s): %s",
            state.name,
            number,
            elapsed,
            reason,
            _Outcome(exc, result),
        )
        if self.on_giveup is not None:
            outcome = self.on_giveup(
                AttemptRecord(number, elapsed, None, exc, result, reason, state.name)
            )
            if outcome is not None and inspect.isawaitable(outcome):
                state.pending = ("on_giveup", outcome)

    def result_error(self, state: CallState, number: int, result: Any) -> RetryError:
        """The error raised when retrying on a result gave up."""
        return RetryError(
            f"{state.name}: result still unacceptable after {number} attempt(s)",
            attempts=number,
            last_result=result,
        )


def reject_pending(state: CallState) -> None:
    """Sync drivers: a hook returned an awaitable, which cannot be awaited here."""
    pending = state.pending
    if pending is None:
        return
    state.pending = None
    hook, awaitable = pending
    close = getattr(awaitable, "close", None)
    if close is not None:  # no "never awaited" warning on top of the error
        close()
    raise TypeError(
        f"{hook} returned an awaitable: coroutine hooks need a coroutine function "
        "(or `async for attempt in retrying(...)` with `async with attempt:`)"
    )


async def await_pending(state: CallState) -> None:
    """Async drivers: await what an async hook returned, if anything."""
    pending = state.pending
    if pending is not None:
        state.pending = None
        await pending[1]


class _Outcome:
    """Lazy log argument describing an attempt's outcome (formatted only if logged)."""

    __slots__ = ("exc", "result")

    def __init__(self, exc: BaseException | None, result: Any) -> None:
        self.exc = exc
        self.result = result

    def __str__(self) -> str:
        if self.exc is not None:
            return f"{type(self.exc).__name__}: {self.exc}"
        return f"unacceptable result {reprlib.repr(self.result)}"
