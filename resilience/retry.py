"""Retrying: the ``@retry(...)`` decorator, the ``retrying(...)`` block form, and
``exponential_backoff_retry`` (the original design's plain function).

Decorator::

    @retry(on=ConnectionError, attempts=5, deadline=30.0)
    def fetch(url: str) -> bytes: ...

Block form (sync and async), with the remaining budget exposed to each attempt::

    for attempt in retrying(on=OSError, deadline=10.0):
        with attempt:
            sock.settimeout(min(5.0, attempt.remaining or 5.0))
            data = sock.recv(1024)

    async for attempt in retrying(on=OSError, attempts=4):
        with attempt:
            await send()

Rules, shared by every form:

* ``on=`` (an exception type, a tuple of them, or a predicate ``exc -> bool`` applied to
  :class:`Exception` instances) selects what is retried; anything else propagates at once,
  untouched.  ``retry_on_result=`` (``result -> bool``) optionally retries on results too.
* Stops after ``attempts`` calls (the first included), on the total ``deadline`` (seconds
  from the first call, monotonic; or a shared :class:`~resilience.Deadline`), or on the
  first of both; at least one of them must be set.
* It **never sleeps past the deadline**: when the next wait would reach it, it gives up
  at once instead of sleeping.
* An exception carrying ``retry_after`` (seconds) makes the next wait at least that long —
  still bounded by the deadline.
* On giving up after exceptions, **the last exception is re-raised unchanged** (same
  object, same type); after unacceptable results, :class:`~resilience.RetryError` is raised
  (``last_result`` holds the value).  That includes a refusal by the :class:`RetryBudget`.
* Hooks ``before_sleep(record)`` and ``on_giveup(record)`` get a frozen
  :class:`AttemptRecord`; exceptions raised by hooks (or by ``on``/``retry_on_result``
  predicates) propagate.  With a coroutine function (or ``async for``), hooks may be
  coroutine functions too: they are awaited (in the block form, an async ``on_giveup``
  needs ``async with attempt:``); in sync code an async hook is a TypeError.  Logs go to the
  ``resilience.retry`` logger: one DEBUG line per retry, one WARNING on giving up.
* A wait of zero never calls ``sleep``.  Waits come from ``backoff`` (a
  :class:`~resilience.Backoff`, default full jitter 1 s .. 60 s).

Decorated functions keep their signature and type (``ParamSpec``); coroutine functions stay
coroutine functions and sleep with ``async_sleep``.  Generators are not supported.
A decorator (and a ``retrying`` object) is immutable once built and may be shared by
threads and tasks; each call keeps its own state.
"""

from __future__ import annotations

import functools
import inspect
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from types import TracebackType
from typing import Any, ParamSpec, TypeVar, cast, overload

from . import _clock
from ._budget import RetryBudget
from ._clock import AsyncSleep, Clock, Sleep
from ._retry_engine import (
    DEFAULT_ATTEMPTS,
    NO_RESULT,
    AttemptRecord,
    CallState,
    ExceptionFilter,
    Hook,
    Policy,
    await_pending,
    parse_filter,
    reject_pending,
)
from .backoff import Backoff, Jitter
from .timeout import Deadline

__all__ = [
    "Attempt",
    "AttemptRecord",
    "RetryBudget",
    "Retrying",
    "exponential_backoff_retry",
    "retry",
    "retrying",
]

P = ParamSpec("P")
T = TypeVar("T")

_DEFAULT_BACKOFF = Backoff()


def _name_of(func: object) -> str:
    return str(getattr(func, "__qualname__", None) or getattr(func, "__name__", None) or func)


def _is_async(func: object) -> bool:
    return inspect.iscoroutinefunction(func) or inspect.iscoroutinefunction(
        getattr(func, "__call__", None)  # noqa: B004 - callable objects with async __call__
    )


def retry(
    *,
    on: ExceptionFilter = Exception,
    attempts: int | None = DEFAULT_ATTEMPTS,
    deadline: float | Deadline | None = None,
    backoff: Backoff = _DEFAULT_BACKOFF,
    retry_on_result: Callable[[Any], bool] | None = None,
    before_sleep: Hook | None = None,
    on_giveup: Hook | None = None,
    budget: RetryBudget | None = None,
    clock: Clock = _clock.monotonic,
    sleep: Sleep = _clock.sleep,
    async_sleep: AsyncSleep = _clock.async_sleep,
    rng: random.Random | None = None,
) -> Callable[[Callable[P, T]], Callable[P, T]]:
    """Decorator factory: retry a function, method or coroutine function (see module doc).

    Bad arguments raise ``TypeError``/``ValueError`` naming the parameter, here rather than at
    the first call.
    """
    policy = Policy(
        on=on,
        attempts=attempts,
        deadline=deadline,
        backoff=backoff,
        retry_on_result=retry_on_result,
        before_sleep=before_sleep,
        on_giveup=on_giveup,
        budget=budget,
        clock=clock,
        sleep=sleep,
        async_sleep=async_sleep,
        rng=rng,
    )

    def decorate(func: Callable[P, T]) -> Callable[P, T]:
        if not callable(func):
            raise TypeError(f"retry() decorates callables, got {type(func).__name__}")
        if inspect.isgeneratorfunction(func) or inspect.isasyncgenfunction(func):
            raise TypeError("retry() cannot decorate generator functions")
        if _is_async(func):
            wrapped = _async_wrapper(policy, cast(Callable[P, Awaitable[Any]], func))
            return cast(Callable[P, T], wrapped)
        return _sync_wrapper(policy, func)

    return decorate


# -- sync driver -------------------------------------------------------------------------


def _sync_wrapper(policy: Policy, func: Callable[P, T]) -> Callable[P, T]:
    name = _name_of(func)
    clock = policy.clock
    catch = policy.catch
    predicate = policy.predicate
    check = policy.retry_on_result
    budget = policy.budget

    if predicate is None and check is None and budget is None:
        # The common case, kept as short as possible: one clock read and a try block.
        @functools.wraps(func)
        def fast(*args: P.args, **kwargs: P.kwargs) -> T:
            start = clock()
            try:
                return func(*args, **kwargs)
            except catch as exc:
                failure = exc
            # Outside the except block, so later exceptions do not chain to this one.
            return _retry_sync(
                policy,
                policy.new_state(start, name),
                func,
                args,
                kwargs,
                exc=failure,
                result=NO_RESULT,
            )

        return fast

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        if budget is not None:
            budget.record_attempt()
        start = clock()
        try:
            result = func(*args, **kwargs)
        except catch as exc:
            if predicate is not None and not predicate(exc):  # type: ignore[arg-type]
                raise
            failure = exc
        else:
            if check is None or not check(result):
                return result
            return _retry_sync(
                policy, policy.new_state(start, name), func, args, kwargs, exc=None, result=result
            )
        return _retry_sync(
            policy, policy.new_state(start, name), func, args, kwargs, exc=failure, result=NO_RESULT
        )

    return wrapper


def _retry_sync(
    policy: Policy,
    state: CallState,
    func: Callable[..., T],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    *,
    exc: BaseException | None,
    result: Any,
) -> T:
    """The failure path: attempt 1 failed with ``exc`` (or unacceptable ``result``)."""
    check = policy.retry_on_result
    sleep = policy.sleep
    number = 1
    while True:
        wait = policy.decide(state, number, exc, result)
        if state.pending is not None:
            reject_pending(state)
        if wait is None:
            if exc is not None:
                raise exc
            raise policy.result_error(state, number, result)
        if wait > 0.0:
            sleep(wait)
        number += 1
        try:
            result = func(*args, **kwargs)
        except policy.catch as caught:
            if not policy.matches(caught):
                raise
            exc, result = caught, NO_RESULT
            continue
        if check is None or not check(result):
            return cast(T, result)
        exc = None


# -- async driver ------------------------------------------------------------------------


def _async_wrapper(
    policy: Policy, func: Callable[P, Awaitable[T]]
) -> Callable[P, Coroutine[Any, Any, T]]:
    name = _name_of(func)
    clock = policy.clock
    catch = policy.catch
    check = policy.retry_on_result
    budget = policy.budget

    @functools.wraps(func)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        if budget is not None:
            budget.record_attempt()
        start = clock()
        try:
            result = await func(*args, **kwargs)
        except catch as exc:
            if not policy.matches(exc):
                raise
            failure = exc
        else:
            if check is None or not check(result):
                return result
            return await _retry_async(
                policy, policy.new_state(start, name), func, args, kwargs, exc=None, result=result
            )
        return await _retry_async(
            policy, policy.new_state(start, name), func, args, kwargs, exc=failure, result=NO_RESULT
        )

    return wrapper


async def _retry_async(
    policy: Policy,
    state: CallState,
    func: Callable[..., Awaitable[T]],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    *,
    exc: BaseException | None,
    result: Any,
) -> T:
    check = policy.retry_on_result
    async_sleep = policy.async_sleep
    number = 1
    while True:
        wait = policy.decide(state, number, exc, result)
        if state.pending is not None:
            await await_pending(state)
        if wait is None:
            if exc is not None:
                raise exc
            raise policy.result_error(state, number, result)
        if wait > 0.0:
            await async_sleep(wait)
        number += 1
        try:
            result = await func(*args, **kwargs)
        except policy.catch as caught:
            if not policy.matches(caught):
                raise
            exc, result = caught, NO_RESULT
            continue
        if check is None or not check(result):
            return cast(T, result)
        exc = None


# -- block form --------------------------------------------------------------------------


class _BlockCall:
    """State shared by the attempts of one ``for``/``async for`` loop (one thread/task)."""

    __slots__ = ("is_async", "policy", "retry_pending", "state", "wait")

    def __init__(self, policy: Policy, state: CallState, *, is_async: bool = False) -> None:
        self.policy = policy
        self.state = state
        self.is_async = is_async
        self.retry_pending = False
        self.wait = 0.0


class Attempt:
    """One attempt of a ``retrying`` loop; use it as ``with attempt: ...``.

    ``number`` is 1-based; :attr:`remaining` is the seconds left of the total deadline (or
    ``None`` without a deadline) — pass it on as your own I/O timeout.  If the policy retries
    on results, report the block's result with :meth:`set_result`.  Not thread-safe: an
    attempt belongs to the loop that produced it.
    """

    __slots__ = ("_call", "_result", "number")

    def __init__(self, call: _BlockCall, number: int) -> None:
        self._call = call
        self.number = number
        self._result: Any = NO_RESULT

    @property
    def remaining(self) -> float | None:
        """Seconds left of the deadline now (>= 0), or ``None`` when there is no deadline."""
        policy = self._call.policy
        return policy.remaining(self._call.state, policy.clock())

    @property
    def elapsed(self) -> float:
        """Seconds since the first attempt started."""
        call = self._call
        return call.policy.clock() - call.state.start

    def set_result(self, value: object) -> None:
        """Report the block's result, checked by ``retry_on_result``."""
        self._result = value

    def __enter__(self) -> Attempt:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        return self._exit(exc, awaiting=False)

    async def __aenter__(self) -> Attempt:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        """``async with attempt:`` - as ``with``, and async hooks are awaited here."""
        try:
            return self._exit(exc, awaiting=True)
        finally:
            await await_pending(self._call.state)

    def _decide(self, exc: BaseException | None, result: Any, awaiting: bool) -> float | None:
        call = self._call
        wait = call.policy.decide(call.state, self.number, exc, result)
        # An async hook's awaitable: awaited by __aexit__, or (before a sleep) by the async
        # loop; anywhere else it cannot be awaited.
        if call.state.pending is not None and not (
            awaiting or (call.is_async and wait is not None)
        ):
            reject_pending(call.state)
        return wait

    def _exit(self, exc: BaseException | None, *, awaiting: bool) -> bool:
        call = self._call
        policy = call.policy
        if exc is None:
            result = self._result
            check = policy.retry_on_result
            if result is NO_RESULT or check is None or not check(result):
                return False
            wait = self._decide(None, result, awaiting)
            if wait is None:
                raise policy.result_error(call.state, self.number, result)
            call.wait, call.retry_pending = wait, True
            return False
        if not policy.matches(exc):
            return False
        wait = self._decide(exc, NO_RESULT, awaiting)
        if wait is None:
            return False  # propagate the exception unchanged
        call.wait, call.retry_pending = wait, True
        return True

    def __repr__(self) -> str:
        return f"<Attempt number={self.number} remaining={self.remaining!r}>"


class Retrying:
    """The ``retrying(...)`` block form: iterate (``for``/``async for``) to get attempts.

    Each iteration of the object is an independent retried run, so one ``Retrying`` may be
    reused and shared between threads; an iteration in progress belongs to one thread/task.
    The loop ends after an attempt that did not fail; when it gives up, the attempt's
    exception propagates out of its ``with`` block unchanged.
    """

    __slots__ = ("_name", "_policy")

    def __init__(self, policy: Policy, name: str) -> None:
        self._policy = policy
        self._name = name

    def __iter__(self) -> Iterator[Attempt]:
        policy = self._policy
        call = _BlockCall(policy, policy.start(self._name))
        number = 1
        while True:
            yield Attempt(call, number)
            if not call.retry_pending:
                return
            call.retry_pending = False
            if call.wait > 0.0:
                policy.sleep(call.wait)
            number += 1

    async def _aiter(self) -> AsyncIterator[Attempt]:
        policy = self._policy
        call = _BlockCall(policy, policy.start(self._name), is_async=True)
        number = 1
        while True:
            yield Attempt(call, number)
            await await_pending(call.state)
            if not call.retry_pending:
                return
            call.retry_pending = False
            if call.wait > 0.0:
                await policy.async_sleep(call.wait)
            number += 1

    def __aiter__(self) -> AsyncIterator[Attempt]:
        return self._aiter()


def retrying(
    *,
    on: ExceptionFilter = Exception,
    attempts: int | None = DEFAULT_ATTEMPTS,
    deadline: float | Deadline | None = None,
    backoff: Backoff = _DEFAULT_BACKOFF,
    retry_on_result: Callable[[Any], bool] | None = None,
    before_sleep: Hook | None = None,
    on_giveup: Hook | None = None,
    budget: RetryBudget | None = None,
    clock: Clock = _clock.monotonic,
    sleep: Sleep = _clock.sleep,
    async_sleep: AsyncSleep = _clock.async_sleep,
    rng: random.Random | None = None,
    name: str = "retrying block",
) -> Retrying:
    """Block form of :func:`retry` (same arguments; ``name`` labels logs and records)."""
    policy = Policy(
        on=on,
        attempts=attempts,
        deadline=deadline,
        backoff=backoff,
        retry_on_result=retry_on_result,
        before_sleep=before_sleep,
        on_giveup=on_giveup,
        budget=budget,
        clock=clock,
        sleep=sleep,
        async_sleep=async_sleep,
        rng=rng,
    )
    return Retrying(policy, str(name))


# -- the original design's function ------------------------------------------------------


@overload
def exponential_backoff_retry(
    func: Callable[[], Coroutine[Any, Any, T]],
    max_retries: int = ...,
    base_delay: float = ...,
    max_delay: float = ...,
    exceptions: type[BaseException] | tuple[type[BaseException], ...] = ...,
    *,
    clock: Clock = ...,
    sleep: Sleep = ...,
    async_sleep: AsyncSleep = ...,
    rng: random.Random | None = ...,
) -> Coroutine[Any, Any, T]: ...


@overload
def exponential_backoff_retry(
    func: Callable[[], T],
    max_retries: int = ...,
    base_delay: float = ...,
    max_delay: float = ...,
    exceptions: type[BaseException] | tuple[type[BaseException], ...] = ...,
    *,
    clock: Clock = ...,
    sleep: Sleep = ...,
    async_sleep: AsyncSleep = ...,
    rng: random.Random | None = ...,
) -> T: ...


def exponential_backoff_retry(
    func: Callable[[], Any],
    max_retries: int = 3,
    base_delay: float = 1.0,
    max_delay: float = 60.0,
    exceptions: type[BaseException] | tuple[type[BaseException], ...] = (Exception,),
    *,
    clock: Clock = _clock.monotonic,
    sleep: Sleep = _clock.sleep,
    async_sleep: AsyncSleep = _clock.async_sleep,
    rng: random.Random | None = None,
) -> Any:
    """Call ``func()`` up to ``max_retries`` times in total, as in the original design.

    Waits ``min(base_delay * 2**i, max_delay)`` ±20 % between calls (never above
    ``max_delay``), retries only on ``exceptions`` and re-raises the last one.  A coroutine
    function gives a coroutine to await.
    """
    if not callable(func):
        raise TypeError(f"func must be callable, got {type(func).__name__}")
    if isinstance(max_retries, bool) or not isinstance(max_retries, int):
        raise TypeError(f"max_retries must be an int, got {type(max_retries).__name__}")
    if max_retries < 1:
        raise ValueError(f"max_retries must be >= 1, got {max_retries!r}")
    for param, value in (("base_delay", base_delay), ("max_delay", max_delay)):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"{param} must be a number, got {type(value).__name__}")
        if not (value >= 0 and value < float("inf")):
            raise ValueError(f"{param} must be finite and >= 0, got {value!r}")
    if max_delay < base_delay:
        raise ValueError(f"max_delay must be >= base_delay ({base_delay!r}), got {max_delay!r}")
    parse_filter(exceptions, "exceptions")
    policy = Policy(
        on=exceptions,
        attempts=max_retries,
        deadline=None,
        backoff=Backoff(base_delay, 2.0, max_delay, Jitter.PROPORTIONAL, 0.2),
        retry_on_result=None,
        before_sleep=None,
        on_giveup=None,
        budget=None,
        clock=clock,
        sleep=sleep,
        async_sleep=async_sleep,
        rng=rng,
    )
    if _is_async(func):
        return _async_wrapper(policy, func)()
    return _sync_wrapper(policy, func)()
