"""Circuit breaker: stop calling a dependency that keeps failing, probe it, resume when healthy.

    breaker = CircuitBreaker(failure_threshold=5, recovery_timeout=60.0, name="tradingview")

    @breaker                          # sync or async functions; signature preserved
    def fetch(symbol: str) -> bytes: ...

    breaker.call(fetch, "NASDAQ:AAPL")           # or: await breaker.call_async(afetch, ...)
    with breaker:                                # or: async with breaker:
        ...

The state rules (count mode, failure-rate mode, slow calls, half-open probes) are the table at
the top of :mod:`resilience._circuit_engine`.  In short:

* **CLOSED** - calls pass.  The breaker opens after ``failure_threshold`` *consecutive*
  failures (count mode, the default), or - when ``failure_rate_threshold`` is given - when the
  failure rate over the last ``window_size`` calls reaches it (once ``minimum_calls`` calls
  are recorded).  With ``slow_call_duration`` set, calls taking at least that long are *slow*,
  and a slow-call rate reaching ``slow_call_rate_threshold`` over the same window opens it too.
* **OPEN** - calls are rejected with :class:`~resilience.CircuitOpenError` whose
  ``retry_after`` is the time left of ``recovery_timeout``.  Once that time is up, ``state``
  reads HALF_OPEN (what the next call will find); the first call then admitted is the first
  probe, and that is when the transition is made and listeners hear OPEN -> HALF_OPEN.
* **HALF_OPEN** - up to ``half_open_max_calls`` probe calls are admitted; the others are
  rejected with ``retry_after=0.0``.  A failed (or slow) probe re-opens the breaker and restarts
  the timer; when every probe has succeeded the breaker closes with fresh counters.

Exceptions that do not match ``expected_exception`` (a type, a tuple of types, or a predicate
``exc -> bool``) propagate untouched and count as **neither** success nor failure: they do not
reset the consecutive-failure count, are not recorded in the rate window, and a half-open probe
that ends with one gives its probe slot back.  (A ``KeyboardInterrupt`` or a cancelled task says
nothing about the dependency's health.)  The breaker never wraps or swallows the call's own
exceptions; only rejections raise :class:`~resilience.CircuitOpenError`.

Shared state: ``store="redis://host:port/db"`` (or a store object such as
:class:`resilience.redis.RedisCircuitStore`) keeps the state in Redis so that every process
using the same ``name`` sees one breaker; see :mod:`resilience._redis_circuit`.
"""

from __future__ import annotations

import functools
import inspect
import logging
import math
import types
from collections.abc import Awaitable, Callable, Coroutine
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ParamSpec, Protocol, TypeVar, cast

from . import _clock
from ._circuit_engine import (
    FAILURE,
    IGNORED,
    NORMAL,
    SUCCESS,
    CircuitState,
    Engine,
    MemoryEngine,
    Notify,
)
from .errors import CircuitOpenError, ResilienceError

if TYPE_CHECKING:
    from ._clock import Clock

__all__ = [
    "CircuitBreaker",
    "CircuitBreakerConfig",
    "CircuitPermit",
    "CircuitState",
    "CircuitStore",
    "ExpectedException",
    "Listener",
]

logger = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")

ExpectedException = (
    type[BaseException] | tuple[type[BaseException], ...] | Callable[[BaseException], bool]
)
"""What counts as a failure: an exception type, a tuple of them, or a predicate."""

Listener = Callable[["CircuitBreaker", CircuitState, CircuitState], object]
"""A transition listener: ``listener(breaker, old_state, new_state)``."""

DEFAULT_FAILURE_THRESHOLD = 5
DEFAULT_RECOVERY_TIMEOUT = 60.0
DEFAULT_WINDOW_SIZE = 100
DEFAULT_MINIMUM_CALLS = 10

_CLOSED = CircuitState.CLOSED
_OPEN = CircuitState.OPEN
_new_error = CircuitOpenError.__new__
_CoroutineType = types.CoroutineType


def _is_positive_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _check_number(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return float(value)


def _check_fraction(name: str, value: object) -> None:
    number = _check_number(name, value)
    if not 0.0 < number <= 1.0:
        raise ValueError(f"{name} must be a fraction in (0, 1], got {value!r}")


@dataclass(frozen=True)
class CircuitBreakerConfig:
    """Immutable, validated breaker settings (seconds everywhere).

    Invalid values raise :class:`ValueError` (or :class:`TypeError` for a wrong type) whose
    message names the parameter.  Rates are fractions in (0, 1]: ``0.5`` means 50 %.
    """

    failure_threshold: int = DEFAULT_FAILURE_THRESHOLD
    """Count mode: consecutive failures that open the breaker."""
    recovery_timeout: float = DEFAULT_RECOVERY_TIMEOUT
    """Seconds the breaker stays OPEN before admitting a probe."""
    expected_exception: ExpectedException = Exception
    """Exceptions that count as failures (type, tuple of types, or predicate)."""
    failure_rate_threshold: float | None = None
    """Rate mode when set: failure fraction over the window that opens the breaker."""
    window_size: int = DEFAULT_WINDOW_SIZE
    """Number of most recent calls the rates are computed over."""
    minimum_calls: int = DEFAULT_MINIMUM_CALLS
    """Calls the window must hold before a rate can open the breaker (at most ``window_size``:
    a larger value acts as ``window_size``, as in resilience4j)."""
    slow_call_duration: float | None = None
    """A call taking at least this many seconds is slow (None: no slow-call rule)."""
    slow_call_rate_threshold: float = 1.0
    """Slow fraction over the window that opens the breaker."""
    half_open_max_calls: int = 1
    """Probes admitted in HALF_OPEN; that many successes close the breaker."""

    def __post_init__(self) -> None:
        for name in ("failure_threshold", "window_size", "minimum_calls", "half_open_max_calls"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"{name} must be an int, got {type(value).__name__}")
            if not _is_positive_int(value):
                raise ValueError(f"{name} must be >= 1, got {value!r}")
        if _check_number("recovery_timeout", self.recovery_timeout) < 0:
            raise ValueError(f"recovery_timeout must be >= 0, got {self.recovery_timeout!r}")
        if self.failure_rate_threshold is not None:
            _check_fraction("failure_rate_threshold", self.failure_rate_threshold)
        if self.slow_call_duration is not None and (
            _check_number("slow_call_duration", self.slow_call_duration) <= 0
        ):
            raise ValueError(f"slow_call_duration must be > 0, got {self.slow_call_duration!r}")
        _check_fraction("slow_call_rate_threshold", self.slow_call_rate_threshold)
        _classifier(self.expected_exception)  # validates

    @property
    def rate_mode(self) -> bool:
        """True when the failure rule is the failure rate, False for consecutive counts."""
        return self.failure_rate_threshold is not None


def _is_exception_type(value: object) -> bool:
    return isinstance(value, type) and issubclass(value, BaseException)


def _classifier(expected: object) -> Callable[[BaseException], bool]:
    """Turn ``expected_exception`` into ``exc -> is this a failure``."""
    if _is_exception_type(expected) or (
        isinstance(expected, tuple) and expected and all(map(_is_exception_type, expected))
    ):
        kinds = cast("type[BaseException] | tuple[type[BaseException], ...]", expected)
        return lambda exc: isinstance(exc, kinds)
    if callable(expected) and not isinstance(expected, (type, tuple)):
        return cast("Callable[[BaseException], bool]", expected)
    raise TypeError(
        "expected_exception must be an exception type, a non-empty tuple of exception types "
        f"or a predicate, got {expected!r}"
    )


class CircuitStore(Protocol):
    """A place that keeps breaker state (for example Redis), chosen with ``store=``.

    Implementations must be thread-safe: one store may serve many breakers, each used from
    any number of threads and tasks.
    """

    def engine(self, config: CircuitBreakerConfig, name: str, clock: Clock, notify: Notify) -> Any:
        """Return the state holder for the breaker ``name`` (an internal engine object)."""
        ...


class CircuitPermit:
    """Permission for one call, from :meth:`CircuitBreaker.acquire`; report its outcome once.

    For integrations that cannot wrap the call.  A permit is used by one thread or task.
    """

    __slots__ = ("_breaker", "_done", "_start", "_token")

    def __init__(self, breaker: CircuitBreaker, token: object, start: float) -> None:
        self._breaker = breaker
        self._token = token
        self._start = start
        self._done = False

    def _restart(self) -> None:
        """Start the slow-call timer now (after a wait that is not part of the call)."""
        breaker = self._breaker
        if breaker._timed:
            self._start = breaker._clock()

    def _outcome(self, exc: BaseException | None) -> int:
        if exc is None:
            return SUCCESS
        return FAILURE if self._breaker._is_failure(exc) else IGNORED

    def _take(self) -> float:
        if self._done:
            raise RuntimeError("this circuit permit's outcome was already recorded")
        self._done = True
        breaker = self._breaker
        return breaker._clock() - self._start if breaker._timed else 0.0

    def _finish(self, outcome: int) -> None:
        duration = self._take()
        self._breaker._engine.record(self._token, outcome, duration)

    def record(self, exc: BaseException | None = None) -> None:
        """Record the call's end: ``None`` is a success; an exception is classified."""
        self._finish(self._outcome(exc))

    async def record_async(self, exc: BaseException | None = None) -> None:
        """Async form of :meth:`record` (does not block the event loop on a remote store)."""
        outcome = self._outcome(exc)
        duration = self._take()
        await self._breaker._engine.record_async(self._token, outcome, duration)

    async def release_async(self) -> None:
        """Async form of :meth:`release`."""
        duration = self._take()
        await self._breaker._engine.record_async(self._token, IGNORED, duration)

    def success(self) -> None:
        """Record a success."""
        self._finish(SUCCESS)

    def failure(self) -> None:
        """Record a failure (for example an unacceptable result)."""
        self._finish(FAILURE)

    def release(self) -> None:
        """Record neither success nor failure (the call said nothing about health)."""
        self._finish(IGNORED)


class CircuitBreaker:
    """A circuit breaker (see the module docstring for the rules).

    ``CircuitBreaker(failure_threshold=5, recovery_timeout=60.0, expected_exception=Exception)``
    behaves as the original design; the keyword-only arguments add the failure-rate mode, the
    slow-call rule, half-open probes, an injectable ``clock`` and a shared ``store``.

    Thread-safety: one breaker may be shared by any number of threads and asyncio tasks.  No
    lock is held while the protected call or a listener runs, so calls through a closed
    breaker run concurrently.  The closed-state success path of the in-memory count mode takes
    no lock at all (one attribute read, plus a locked counter reset only after a failure); in
    rate / slow-call mode a success that replaces a success in a full window takes none
    either (concurrent ones may then keep a slightly older success in the window; the
    failure and slow counts stay exact).  Failures, window changes and transitions take a
    short lock.  Outcomes of concurrent calls are applied in the order they finish.
    Listeners run in the thread whose call caused the transition, after the state changed;
    an exception raised by a listener is logged and does not reach the caller.

    ``state`` is a pure read of what the next call would find: it reads HALF_OPEN once
    ``recovery_timeout`` has elapsed since the breaker opened, while the stored state is
    still OPEN.  Reading it changes nothing and calls no listener; listeners hear
    OPEN -> HALF_OPEN when the first probe is admitted (the first call after the timeout),
    which is also when the stored state changes.  So a breaker read as HALF_OPEN that gets
    no call for a while reports no transition at all, and one whose first probe succeeds
    reports OPEN -> HALF_OPEN then HALF_OPEN -> CLOSED, both during that call.
    """

    def __init__(
        self,
        failure_threshold: int = DEFAULT_FAILURE_THRESHOLD,
        recovery_timeout: float = DEFAULT_RECOVERY_TIMEOUT,
        expected_exception: ExpectedException = Exception,
        *,
        name: str = "default",
        failure_rate_threshold: float | None = None,
        window_size: int = DEFAULT_WINDOW_SIZE,
        minimum_calls: int = DEFAULT_MINIMUM_CALLS,
        slow_call_duration: float | None = None,
        slow_call_rate_threshold: float = 1.0,
        half_open_max_calls: int = 1,
        clock: Clock | None = None,
        store: str | CircuitStore | None = None,
    ) -> None:
        config = CircuitBreakerConfig(
            failure_threshold=failure_threshold,
            recovery_timeout=recovery_timeout,
            expected_exception=expected_exception,
            failure_rate_threshold=failure_rate_threshold,
            window_size=window_size,
            minimum_calls=minimum_calls,
            slow_call_duration=slow_call_duration,
            slow_call_rate_threshold=slow_call_rate_threshold,
            half_open_max_calls=half_open_max_calls,
        )
        self._setup(config, name, clock, store)

    @classmethod
    def from_config(
        cls,
        config: CircuitBreakerConfig,
        *,
        name: str = "default",
        clock: Clock | None = None,
        store: str | CircuitStore | None = None,
    ) -> CircuitBreaker:
        """Build a breaker from a :class:`CircuitBreakerConfig`."""
        if not isinstance(config, CircuitBreakerConfig):
            raise TypeError(f"config must be a CircuitBreakerConfig, got {type(config).__name__}")
        breaker = cls.__new__(cls)
        breaker._setup(config, name, clock, store)
        return breaker

    def _setup(
        self,
        config: CircuitBreakerConfig,
        name: str,
        clock: Clock | None,
        store: str | CircuitStore | None,
    ) -> None:
        if not isinstance(name, str) or not name:
            raise ValueError(f"name must be a non-empty string, got {name!r}")
        if clock is not None and not callable(clock):
            raise TypeError(f"clock must be a zero-argument callable, got {clock!r}")
        self._config = config
        self._name = name
        self._clock: Clock = clock if clock is not None else _clock.monotonic
        self._is_failure = _classifier(config.expected_exception)
        self._timed = config.slow_call_duration is not None
        self._listeners: tuple[Listener, ...] = ()
        self._permits: ContextVar[tuple[CircuitPermit, ...]] = ContextVar(
            f"circuit_permits_{name}", default=()
        )
        engine: Engine
        if store is None:
            engine = MemoryEngine(config, name, self._clock, self._on_transition)
            self._store_kind = "memory"
        elif isinstance(store, str):
            from ._redis_circuit import store_from_url  # noqa: PLC0415 (redis is optional)

            engine = store_from_url(store).engine(config, name, self._clock, self._on_transition)
            self._store_kind = "redis"
        elif callable(getattr(store, "engine", None)):
            engine = store.engine(config, name, self._clock, self._on_transition)
            self._store_kind = type(store).__name__
        else:
            raise TypeError(
                f"store must be None, a redis:// URL or a store object, got {type(store).__name__}"
            )
        self._engine = engine
        # The lock-free fast path: in-memory, consecutive-count mode, no call timing.
        fast = isinstance(engine, MemoryEngine) and not config.rate_mode and not self._timed
        self._mem: MemoryEngine | None = engine if fast else None  # type: ignore[assignment]

    # -- introspection -------------------------------------------------------------------------

    @property
    def name(self) -> str:
        """The breaker's name (the shared key when a store is used)."""
        return self._name

    @property
    def config(self) -> CircuitBreakerConfig:
        """The immutable settings."""
        return self._config

    @property
    def state(self) -> CircuitState:
        """The state the next call would find (with a remote store, one round trip).

        HALF_OPEN once ``recovery_timeout`` has elapsed since the breaker opened, even though
        no probe has been admitted yet.  A pure read: no transition, no listener call.
        """
        return self._engine.state

    @property
    def failure_count(self) -> int:
        """Consecutive failures (count mode) or failures in the window (rate mode)."""
        return self._engine.failure_count

    @property
    def last_failure_time(self) -> float | None:
        """``clock()`` time of the last failure recorded by this process (None if none yet)."""
        value: float | None = getattr(self._engine, "last_failure_time", None)
        return value

    @property
    def failure_threshold(self) -> int:
        return self._config.failure_threshold

    @property
    def recovery_timeout(self) -> float:
        return self._config.recovery_timeout

    @property
    def expected_exception(self) -> ExpectedException:
        return self._config.expected_exception

    def __repr__(self) -> str:
        c = self._config
        mode = (
            f"failure_rate_threshold={c.failure_rate_threshold!r}, window_size={c.window_size!r}"
            if c.rate_mode
            else f"failure_threshold={c.failure_threshold!r}"
        )
        try:
            state = self._engine.state.value
        except ResilienceError:  # a shared store that cannot be read right now
            state = "unknown"
        return (
            f"CircuitBreaker(name={self._name!r}, state={state!r}, {mode}, "
            f"recovery_timeout={c.recovery_timeout!r}, store={self._store_kind!r})"
        )

    # -- control -------------------------------------------------------------------------------

    def reset(self) -> None:
        """Force the breaker CLOSED and clear its counters (listeners see the transition)."""
        self._engine.reset()

    def add_listener(self, listener: Listener) -> None:
        """Call ``listener(breaker, old_state, new_state)`` after each transition."""
        if not callable(listener):
            raise TypeError(f"listener must be callable, got {listener!r}")
        self._listeners = (*self._listeners, listener)

    def remove_listener(self, listener: Listener) -> None:
        """Stop calling ``listener`` (ValueError if it was not added)."""
        listeners = list(self._listeners)
        listeners.remove(listener)
        self._listeners = tuple(listeners)

    def _on_transition(self, old: CircuitState, new: CircuitState) -> None:
        if new is CircuitState.OPEN:
            logger.warning("circuit breaker %s: %s -> %s", self._name, old.value, new.value)
        else:
            logger.info("circuit breaker %s: %s -> %s", self._name, old.value, new.value)
        for listener in self._listeners:
            try:
                listener(self, old, new)
            except Exception:
                logger.exception("circuit breaker %s: listener %r failed", self._name, listener)

    # -- low-level form ------------------------------------------------------------------------

    def acquire(self) -> CircuitPermit:
        """Ask for permission for one call; raise :class:`~resilience.CircuitOpenError` if refused.

        The returned permit must get exactly one outcome (``success()``, ``failure()``,
        ``release()`` or ``record(exc)``).
        """
        token = self._engine.acquire()
        return CircuitPermit(self, token, self._clock() if self._timed else 0.0)

    async def acquire_async(self) -> CircuitPermit:
        """Async form of :meth:`acquire`."""
        token = await self._engine.acquire_async()
        return CircuitPermit(self, token, self._clock() if self._timed else 0.0)

    # -- call forms ----------------------------------------------------------------------------

    def call(self, func: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """Call ``func(*args, **kwargs)`` through the breaker.

        If ``func`` returns a coroutine (a coroutine function), the coroutine is returned
        wrapped so that its outcome, once awaited, is recorded against the permission taken now.
        """
        mem = self._mem
        if mem is not None and mem._state is _CLOSED:
            try:
                result = func(*args, **kwargs)
            except BaseException as exc:
                mem.record(NORMAL, FAILURE if self._is_failure(exc) else IGNORED, 0.0)
                raise
            if type(result) is _CoroutineType:
                return cast("R", self._finish_coroutine(cast("Any", result), NORMAL, 0.0))
            if mem._failures:
                mem.record(NORMAL, SUCCESS, 0.0)
            return result
        if mem is not None and mem._state is _OPEN:
            # MemoryEngine.acquire's lock-free rejection, inlined (see the decorator).
            left = mem._opened_at + mem._recovery - self._clock()
            if left > 0:
                error = _new_error(CircuitOpenError)
                error.retry_after = left
                error.name = self._name
                raise error
        return self._call_slow(func, args, kwargs)

    def _call_slow(self, func: Callable[..., R], args: Any, kwargs: Any) -> R:
        return self._call_admitted(self._engine.acquire(), func, args, kwargs)

    def _call_admitted(self, token: object, func: Callable[..., R], args: Any, kwargs: Any) -> R:
        engine = self._engine
        timed = self._timed
        clock = self._clock
        start = clock() if timed else 0.0
        try:
            result = func(*args, **kwargs)
        except BaseException as exc:
            outcome = FAILURE if self._is_failure(exc) else IGNORED
            engine.record(token, outcome, clock() - start if timed else 0.0)
            raise
        if type(result) is _CoroutineType:
            return cast("R", self._finish_coroutine(cast("Any", result), token, start))
        engine.record(token, SUCCESS, clock() - start if timed else 0.0)
        return result

    async def _finish_coroutine(
        self, coro: Coroutine[Any, Any, Any], token: object, start: float
    ) -> Any:
        engine = self._engine
        timed = self._timed
        clock = self._clock
        try:
            result = await coro
        except BaseException as exc:
            outcome = FAILURE if self._is_failure(exc) else IGNORED
            await engine.record_async(token, outcome, clock() - start if timed else 0.0)
            raise
        await engine.record_async(token, SUCCESS, clock() - start if timed else 0.0)
        return result

    async def call_async(
        self, func: Callable[P, Awaitable[R]], /, *args: P.args, **kwargs: P.kwargs
    ) -> R:
        """Await ``func(*args, **kwargs)`` through the breaker."""
        mem = self._mem
        if mem is not None and mem._state is _CLOSED:
            try:
                result = await func(*args, **kwargs)
            except BaseException as exc:
                mem.record(NORMAL, FAILURE if self._is_failure(exc) else IGNORED, 0.0)
                raise
            if mem._failures:
                mem.record(NORMAL, SUCCESS, 0.0)
            return result
        engine = self._engine
        token = await engine.acquire_async()
        timed = self._timed
        clock = self._clock
        start = clock() if timed else 0.0
        try:
            result = await func(*args, **kwargs)
        except BaseException as exc:
            outcome = FAILURE if self._is_failure(exc) else IGNORED
            await engine.record_async(token, outcome, clock() - start if timed else 0.0)
            raise
        await engine.record_async(token, SUCCESS, clock() - start if timed else 0.0)
        return result

    def __call__(self, func: Callable[P, R]) -> Callable[P, R]:
        """Decorate a function or coroutine function; the wrapper keeps its signature."""
        if inspect.iscoroutinefunction(func):
            return cast("Callable[P, R]", self._decorate_async(func))
        if not callable(func):
            raise TypeError(f"CircuitBreaker decorates callables, got {func!r}")
        engine = self._mem
        slow_path = self._call_slow
        admitted = self._call_admitted
        acquire = self._engine.acquire
        is_failure = self._is_failure
        if engine is None:
            memory = self._engine
            if not isinstance(memory, MemoryEngine):

                @functools.wraps(func)
                def guarded(*args: P.args, **kwargs: P.kwargs) -> R:
                    return slow_path(func, args, kwargs)

                return guarded

            # In-memory rate / slow-call modes: no permit object, one record per call (which
            # exits without the lock in the healthy case).
            clock = self._clock
            timed = self._timed

            @functools.wraps(func)
            def windowed(*args: P.args, **kwargs: P.kwargs) -> R:
                if memory._state is not _CLOSED:
                    return admitted(acquire(), func, args, kwargs)
                start = clock() if timed else 0.0
                try:
                    result = func(*args, **kwargs)
                except BaseException as exc:
                    outcome = FAILURE if is_failure(exc) else IGNORED
                    memory.record(NORMAL, outcome, clock() - start if timed else 0.0)
                    raise
                memory.record(NORMAL, SUCCESS, clock() - start if timed else 0.0)
                return result

            return windowed

        name = self._name
        clock = self._clock
        recovery = engine._recovery

        @functools.wraps(func)
        def fast(*args: P.args, **kwargs: P.kwargs) -> R:
            if engine._state is not _CLOSED:
                # MemoryEngine.acquire's lock-free rejection, inlined: no extra frame.
                if engine._state is _OPEN:
                    left = engine._opened_at + recovery - clock()
                    if left > 0:
                        error = _new_error(CircuitOpenError)
                        error.retry_after = left
                        error.name = name
                        raise error
                return admitted(acquire(), func, args, kwargs)
            try:
                result = func(*args, **kwargs)
            except BaseException as exc:
                engine.record(NORMAL, FAILURE if is_failure(exc) else IGNORED, 0.0)
                raise
            if engine._failures:
                engine.record(NORMAL, SUCCESS, 0.0)
            return result

        return fast

    def _decorate_async(
        self, func: Callable[P, Coroutine[Any, Any, R]]
    ) -> Callable[P, Coroutine[Any, Any, R]]:
        call_async = self.call_async

        @functools.wraps(func)
        async def guarded(*args: P.args, **kwargs: P.kwargs) -> R:
            return await call_async(func, *args, **kwargs)

        return guarded

    # -- context managers ----------------------------------------------------------------------

    def __enter__(self) -> CircuitBreaker:
        permit = self.acquire()
        self._permits.set((*self._permits.get(), permit))
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: types.TracebackType | None,
    ) -> None:
        permit = self._pop_permit()
        permit.record(exc)

    async def __aenter__(self) -> CircuitBreaker:
        permit = await self.acquire_async()
        self._permits.set((*self._permits.get(), permit))
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: types.TracebackType | None,
    ) -> None:
        permit = self._pop_permit()
        await permit.record_async(exc)

    def _pop_permit(self) -> CircuitPermit:
        stack = self._permits.get()
        if not stack:
            raise RuntimeError(f"circuit breaker {self._name!r}: __exit__ without __enter__")
        self._permits.set(stack[:-1])
        return stack[-1]
