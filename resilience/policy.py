"""Composition: one documented way to stack retry, circuit breaker, rate limiter and timeout.

    policy = Policy(
        retry=retry(on=(OSError, CircuitOpenError, DeadlineExceeded), attempts=4, deadline=30.0),
        breaker=CircuitBreaker(5, 60.0, name="tradingview"),
        limiter=RateLimiter(60, 10),
        timeout=10.0,
    )

    @policy                              # sync or async functions; signature preserved
    def fetch(symbol: str) -> bytes: ...

    policy.call(fetch, "NASDAQ:AAPL")    # or: await policy.call_async(afetch, "NASDAQ:AAPL")

The order is fixed, the one resilience4j documents::

    Retry( CircuitBreaker( RateLimiter( Timeout( call ))))

read from the outside in: the retry loop runs *attempts*; each attempt asks the breaker for
permission, then takes a rate-limit token, then runs the call under the per-attempt timeout.

Why this order
--------------
* **Timeout innermost - it bounds one attempt.**  A hung attempt becomes
  :class:`~resilience.DeadlineExceeded`, which the breaker sees as a failure (by default: a
  dependency that hangs is unhealthy) and which the retry loop may retry.  Put outside the
  retry, a timeout would cut the whole retry sequence short mid-sleep; that total budget is
  the retry's own ``deadline=``, which never sleeps past its end.
* **Rate limiter inside the breaker - only calls that will really go out spend tokens.**
  While the breaker is open, rejected attempts cost no token, so the budget is intact when
  the dependency recovers (a remote limit counts what we send, not what we refuse locally).
  The time spent waiting for a token is not part of the call: it is outside the timeout and
  outside the breaker's slow-call timer.  A limiter that cannot grant within
  ``limiter_timeout`` raises :class:`~resilience.RateLimitExceeded`, which the breaker records
  as **neither** success nor failure (throttling ourselves says nothing about the dependency)
  and whose half-open probe slot is given back.
* **Breaker inside the retry - every attempt is counted, and an open breaker stops the
  loop from hammering.**  The breaker sees each attempt's outcome, so a burst of failing
  attempts opens it promptly (a breaker outside the retry would see one outcome per whole
  retry sequence and open several times later).  Once open, an attempt fails fast with
  :class:`~resilience.CircuitOpenError` without touching the dependency; the retry loop then
  either waits for ``retry_after`` (the retry honours it, bounded by its deadline) so that its
  next attempt is the half-open probe, or - if ``CircuitOpenError`` is not in its ``on=`` -
  gives up at once.
* **Retry outermost - one budget for the whole operation** (attempts, deadline, retry
  budget), and its hooks see every kind of failure: the call's own exceptions, timeouts,
  rejections and rate-limit refusals.

Every layer is optional; a Policy with none of them just calls the function.  Exceptions are
never wrapped: what the caller gets is the call's own exception, ``DeadlineExceeded``,
``CircuitOpenError`` or ``RateLimitExceeded`` (or whatever the retry decides on giving up).
"""

from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, ParamSpec, TypeVar, cast

from .circuit import CircuitBreaker
from .errors import RateLimitExceeded
from .ratelimit import TokenBucket
from .timeout import timeout as make_timeout

__all__ = ["Policy"]

P = ParamSpec("P")
R = TypeVar("R")

Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]
"""A decorator such as the one returned by :func:`resilience.retry`."""


def _invoke(func: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
    return func(*args, **kwargs)


async def _invoke_async(func: Callable[..., Awaitable[Any]], /, *args: Any, **kwargs: Any) -> Any:
    return await func(*args, **kwargs)


def _is_async(func: object) -> bool:
    return inspect.iscoroutinefunction(func) or inspect.iscoroutinefunction(
        getattr(func, "__call__", None)  # noqa: B004 - callable objects with async __call__
    )


class Policy:
    """Retry( CircuitBreaker( RateLimiter( Timeout( call )))) - see the module docstring.

    ``retry``: a decorator from :func:`resilience.retry` (or any decorator that may call its
    function several times).  ``breaker``: a :class:`~resilience.CircuitBreaker`.
    ``limiter``: a :class:`~resilience.TokenBucket` / :class:`~resilience.RateLimiter`, from
    which each attempt takes ``tokens``, waiting at most ``limiter_timeout`` seconds (None:
    as long as needed).  ``timeout``: seconds per attempt (None: no limit).

    Thread-safety: a Policy is immutable after construction and may be shared by any number
    of threads and tasks; its parts are themselves thread-safe and no lock is held while the
    call runs.
    """

    __slots__ = (
        "_async_chain",
        "_breaker",
        "_limiter",
        "_limiter_timeout",
        "_retry",
        "_sync_chain",
        "_timed",
        "_timed_async",
        "_timeout",
        "_tokens",
    )

    def __init__(
        self,
        *,
        retry: Decorator | None = None,
        breaker: CircuitBreaker | None = None,
        limiter: TokenBucket | None = None,
        timeout: float | None = None,
        limiter_timeout: float | None = None,
        tokens: float = 1,
    ) -> None:
        if retry is not None and not callable(retry):
            raise TypeError(f"retry must be a decorator such as retry(...), got {retry!r}")
        if breaker is not None and not isinstance(breaker, CircuitBreaker):
            raise TypeError(f"breaker must be a CircuitBreaker, got {type(breaker).__name__}")
        if limiter is not None and not isinstance(limiter, TokenBucket):
            raise TypeError(f"limiter must be a TokenBucket, got {type(limiter).__name__}")
        for name, value in (("timeout", timeout), ("limiter_timeout", limiter_timeout)):
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise TypeError(f"{name} must be a number of seconds or None, got {value!r}")
            if math.isnan(value) or value < 0 or (name == "timeout" and value == 0):
                raise ValueError(f"{name} must be > 0 (or None), got {value!r}")
        if isinstance(tokens, bool) or not isinstance(tokens, (int, float)):
            raise TypeError(f"tokens must be a number, got {tokens!r}")
        if not (math.isfinite(tokens) and tokens > 0):
            raise ValueError(f"tokens must be finite and > 0, got {tokens!r}")
        if limiter is not None and tokens > limiter.capacity:
            raise ValueError(f"tokens ({tokens}) must be <= the limiter's capacity")
        self._retry = retry
        self._breaker = breaker
        self._limiter = limiter
        self._timeout = timeout
        self._limiter_timeout = limiter_timeout
        self._tokens = tokens
        if timeout is None:
            self._timed: Callable[..., Any] = _invoke
            self._timed_async: Callable[..., Coroutine[Any, Any, Any]] = _invoke_async
        else:
            limit = make_timeout(timeout)
            self._timed = limit(_invoke)
            self._timed_async = limit(_invoke_async)
        sync_chain: Callable[..., Any] = self._attempt
        async_chain: Callable[..., Any] = self._attempt_async
        if retry is not None:
            sync_chain = retry(sync_chain)
            async_chain = retry(async_chain)
        self._sync_chain = sync_chain
        self._async_chain = async_chain

    @property
    def breaker(self) -> CircuitBreaker | None:
        return self._breaker

    @property
    def limiter(self) -> TokenBucket | None:
        return self._limiter

    @property
    def timeout(self) -> float | None:
        return self._timeout

    def __repr__(self) -> str:
        parts = [
            f"retry={'yes' if self._retry is not None else None}",
            f"breaker={self._breaker.name if self._breaker is not None else None!r}",
            f"limiter={self._limiter.name if self._limiter is not None else None!r}",
            f"timeout={self._timeout!r}",
        ]
        return f"Policy({', '.join(parts)})"

    # -- one attempt: breaker -> limiter -> timeout -> call -----------------------------------

    def _refused(self) -> RateLimitExceeded:
        limiter = cast(TokenBucket, self._limiter)
        return RateLimitExceeded(
            f"rate limiter {limiter.name!r} could not grant {self._tokens:g} token(s) "
            f"within {self._limiter_timeout:g}s",
            retry_after=limiter.retry_after(self._tokens),
        )

    def _attempt(self, func: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        breaker = self._breaker
        permit = breaker.acquire() if breaker is not None else None  # CircuitOpenError
        limiter = self._limiter
        if limiter is not None:
            try:
                granted = limiter.acquire(self._tokens, self._limiter_timeout)
            except BaseException:
                if permit is not None:
                    permit.release()
                raise
            if not granted:
                if permit is not None:
                    permit.release()
                raise self._refused()
        if permit is None:
            return self._timed(func, *args, **kwargs)
        permit._restart()
        try:
            result = self._timed(func, *args, **kwargs)
        except BaseException as exc:
            permit.record(exc)
            raise
        permit.success()
        return result

    async def _attempt_async(
        self, func: Callable[..., Awaitable[Any]], /, *args: Any, **kwargs: Any
    ) -> Any:
        breaker = self._breaker
        permit = await breaker.acquire_async() if breaker is not None else None
        limiter = self._limiter
        if limiter is not None:
            try:
                granted = await limiter.acquire_async(self._tokens, self._limiter_timeout)
            except BaseException:
                if permit is not None:
                    await permit.release_async()
                raise
            if not granted:
                if permit is not None:
                    await permit.release_async()
                raise self._refused()
        if permit is None:
            return await self._timed_async(func, *args, **kwargs)
        permit._restart()
        try:
            result = await self._timed_async(func, *args, **kwargs)
        except BaseException as exc:
            await permit.record_async(exc)
            raise
        await permit.record_async(None)
        return result

    # -- call forms ---------------------------------------------------------------------------

    def call(self, func: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """Call ``func(*args, **kwargs)`` through the policy.

        For a coroutine function this returns the protected coroutine (await it).
        """
        if _is_async(func):
            return cast(R, self._async_chain(func, *args, **kwargs))
        return cast(R, self._sync_chain(func, *args, **kwargs))

    async def call_async(
        self, func: Callable[P, Awaitable[R]], /, *args: P.args, **kwargs: P.kwargs
    ) -> R:
        """Await ``func(*args, **kwargs)`` through the policy."""
        return cast(R, await self._async_chain(func, *args, **kwargs))

    def __call__(self, func: Callable[P, R]) -> Callable[P, R]:
        """Decorate a function or coroutine function; the wrapper keeps its signature.

        The retry layer wraps a per-function attempt, so its logs and hook records carry the
        decorated function's name.
        """
        if not callable(func):
            raise TypeError(f"Policy decorates callables, got {func!r}")
        chain: Callable[..., Any]
        if _is_async(func):
            attempt_async = self._attempt_async
            afunc = cast(Callable[..., Awaitable[Any]], func)

            @functools.wraps(func)
            async def one_attempt_async(*args: Any, **kwargs: Any) -> Any:
                return await attempt_async(afunc, *args, **kwargs)

            chain = one_attempt_async
        else:
            attempt = self._attempt

            @functools.wraps(func)
            def one_attempt(*args: Any, **kwargs: Any) -> Any:
                return attempt(func, *args, **kwargs)

            chain = one_attempt
        if self._retry is not None:
            chain = self._retry(chain)
        return cast(Callable[P, R], chain)
