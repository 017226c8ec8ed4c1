"""Token-bucket rate limiting: ``TokenBucket`` and the original design's ``RateLimiter``.

``TokenBucket(rate, capacity)`` grants up to ``capacity`` tokens at once and refills at
``rate`` tokens per second.  Four ways to take tokens::

    bucket.try_acquire(tokens=1)                 # never waits: True or False, now
    bucket.acquire(tokens=1, timeout=None)       # waits the exact time needed, FIFO
    await bucket.acquire_async(tokens=1, timeout=None)
    @bucket            /  @bucket.limit(tokens=2, timeout=5.0)   # sync or async functions

**Guarantee.**  In any window of length ``W`` the bucket grants at most
``capacity + rate * W`` tokens, counting each grant at the moment it is decided, which is
immediately before the caller is released (the clock is read under the bucket's lock at the
release itself, never at a reservation made earlier: a waiter that wakes up late consumes at
its real wake-up time, so lateness cannot bunch grants).  A bucket left without grants for
``capacity / rate`` seconds is full again and grants ``capacity`` tokens at once.  The maths
and its proof are in :mod:`resilience._bucket`.

**Waiting is exact and first-come first-served.**  ``acquire`` computes how long the
request must wait instead of polling.  Waiters form one FIFO queue (threads and asyncio
tasks alike): only the head of the queue takes tokens, it sleeps (``sleep`` /
``async_sleep``) exactly until its tokens are there — nothing can change that time, since
nobody else may take tokens while it waits — and when it leaves (granted, timed out,
interrupted or cancelled) it wakes the next one, which waits on its own signal with its
deadline as timeout.  So a large request is never starved
by a stream of small ones.  *While anyone is waiting, ``try_acquire`` returns False*: it may
not jump the queue (otherwise the head's exact wait would be wrong and a big request could
starve).  ``acquire(timeout=t)`` returns False **at once**, without sleeping, when the wait
it computes (behind the waiters already queued, assuming they stay) exceeds ``t``; it never
sleeps past ``t``.

``tokens > capacity`` raises ValueError (it could never be granted) instead of hanging.

**Backends.**  ``backend=None`` keeps the state in this process.  ``backend="redis://..."``
(or a :class:`resilience.redis.RedisBucketBackend`) shares one bucket, named ``name``, among
every process using the same Redis: see :mod:`resilience.redis`.  With a backend, the local
FIFO still orders this process's waiters; the head asks Redis (one round trip), which
answers "granted" or the exact wait, sleeps that long and asks again.  Between processes
there is no FIFO (each process's head competes).  If Redis cannot be reached,
``on_unavailable`` decides: ``"closed"`` raises :class:`~resilience.BackendUnavailable`,
``"open"`` grants, ``"local"`` (the default) falls back to an in-memory bucket with the
same rate and capacity in this process until Redis answers again.

Time comes from ``clock=`` (monotonic seconds), waits go through ``sleep=`` /
``async_sleep=``; pass a :class:`resilience.testing.FakeClock`'s ``clock``, ``clock.sleep``
and ``clock.async_sleep`` to make tests instant.  ``clock`` is called under the bucket's
internal lock, so it must be a cheap, non-blocking time source.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import logging
import math
import threading
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec, Protocol, TypeVar, cast, runtime_checkable

from . import _clock
from ._bucket import BucketMath, check_positive, check_timeout
from ._redis_common import FailMode
from .errors import BackendUnavailable, DeadlineExceeded, RateLimitExceeded

__all__ = ["BucketBackend", "RateLimiter", "TokenBucket"]

logger = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")

#: Default name of a bucket (the key suffix in a shared backend).
DEFAULT_NAME = "default"
#: What a shared bucket does when its backend is unreachable, unless configured otherwise.
DEFAULT_ON_UNAVAILABLE = FailMode.LOCAL

# Outcomes of a waiter's turn (see TokenBucket._turn).
_GRANTED, _REFUSED, _HEAD, _QUEUED = range(4)


@runtime_checkable
class BucketBackend(Protocol):
    """A shared store that decides for a :class:`TokenBucket` (e.g. a Redis server).

    ``decide`` takes ``tokens`` from the bucket ``name`` (created full on first use) with the
    given ``rate`` and ``capacity`` and returns 0.0 when granted, or the exact number of
    seconds to wait before the same request could be granted (nothing is taken then).  With
    ``peek=True`` nothing is ever taken.  ``timeout`` (seconds, or None for the backend's
    own default) bounds the time the call may take.  It raises
    :class:`~resilience.BackendUnavailable` when the store cannot be reached, and
    :class:`~resilience.DeadlineExceeded` when it could not answer within ``timeout``.
    ``on_unavailable`` is the backend's default failure mode ("closed", "open", "local").
    Implementations must be thread-safe.
    """

    @property
    def on_unavailable(self) -> FailMode: ...

    def decide(
        self,
        name: str,
        rate: float,
        capacity: float,
        tokens: float,
        *,
        timeout: float | None = None,
        peek: bool = False,
    ) -> float: ...


class _SyncWaiter:
    """A thread waiting in the queue; ``wake`` tells it that it became the head.

    The signal is a lock created held: ``wake`` releases it once, ``wait`` acquires it
    (cheaper to create than a ``threading.Event``; a woken waiter never waits again).
    """

    __slots__ = ("cost", "signal", "tokens", "woken")

    def __init__(self, tokens: float, cost: float) -> None:
        self.tokens = tokens
        self.cost = cost
        self.signal = threading.Lock()
        self.signal.acquire()
        self.woken = False

    def wake(self) -> None:
        if not self.woken:
            self.woken = True
            self.signal.release()

    def wait(self, timeout: float | None) -> None:
        if self.signal.acquire(timeout=-1 if timeout is None else timeout):
            self.signal.release()  # stay signalled


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class _AsyncWaiter:
    """An asyncio task waiting in the queue; woken through its own event loop."""

    __slots__ = ("cost", "future", "loop", "tokens")

    def __init__(self, tokens: float, cost: float, loop: asyncio.AbstractEventLoop) -> None:
        self.tokens = tokens
        self.cost = cost
        self.loop = loop
        self.future: asyncio.Future[None] = loop.create_future()

    def wake(self) -> None:
        # A closed loop raises RuntimeError: its task is gone (cancelled) and needs no wake-up.
        with contextlib.suppress(RuntimeError):
            self.loop.call_soon_threadsafe(_resolve, self.future)


_Waiter = _SyncWaiter | _AsyncWaiter


class TokenBucket:
    """Token bucket: ``capacity`` tokens of burst, refilled at ``rate`` tokens per second.

    See the module docstring for the guarantee, FIFO waiting, backends and failure modes.

    Thread-safety: every method may be called from any thread and any event loop at once;
    threads and tasks share one FIFO queue.  The internal lock is held only for a few
    arithmetic operations (never while sleeping, calling user code other than ``clock``, or
    talking to a backend), and ``try_acquire`` waits for that lock rather than failing when
    another thread holds it, so it never refuses a permit because of contention.
    """

    __slots__ = (
        "_async_sleep",
        "_backend",
        "_clock",
        "_empty_at",
        "_fail_mode",
        "_fast",
        "_fill",
        "_lock",
        "_math",
        "_name",
        "_one",
        "_queued",
        "_sleep",
        "_try_eps",
        "_waiters",
    )

    def __init__(
        self,
        rate: float,
        capacity: float,
        *,
        clock: _clock.Clock = _clock.monotonic,
        sleep: _clock.Sleep = _clock.sleep,
        async_sleep: _clock.AsyncSleep = _clock.async_sleep,
        backend: str | BucketBackend | None = None,
        name: str = DEFAULT_NAME,
        on_unavailable: FailMode | str | None = None,
    ) -> None:
        self._math = BucketMath.create(rate, capacity)
        if not callable(clock):
            raise TypeError("clock must be a zero-argument callable returning seconds")
        if not callable(sleep):
            raise TypeError("sleep must be a callable taking seconds")
        if not callable(async_sleep):
            raise TypeError("async_sleep must be a callable taking seconds")
        if not isinstance(name, str) or not name:
            raise ValueError(f"name must be a non-empty string, got {name!r}")
        mode = None if on_unavailable is None else FailMode.coerce(on_unavailable)
        if isinstance(backend, str):
            from .redis import RedisBucketBackend  # noqa: PLC0415 - optional extra, on demand

            backend = RedisBucketBackend(backend, on_unavailable=mode)
        elif backend is not None and not isinstance(backend, BucketBackend):
            raise TypeError(
                "backend must be None, a redis:// URL or a BucketBackend, "
                f"got {type(backend).__name__}"
            )
        self._backend = backend
        self._fail_mode = (
            mode
            if mode is not None
            else (backend.on_unavailable if backend is not None else DEFAULT_ON_UNAVAILABLE)
        )
        self._name = name
        self._clock = clock
        self._sleep = sleep
        self._async_sleep = async_sleep
        self._lock = threading.Lock()
        self._waiters: deque[_Waiter] = deque()
        self._queued = 0.0  # sum of the waiters' costs (seconds of refill)
        m = self._math
        self._fill = m.fill
        self._try_eps = m.eps  # rounding slack of the fast path; -inf while waiters queue
        self._one = m.interval  # cost of one token
        self._fast = backend is None and m.capacity >= 1  # try_acquire(1) may take the fast path
        self._empty_at = m.initial(clock())

    # -- introspection -------------------------------------------------------------------

    @property
    def rate(self) -> float:
        """Refill rate in tokens per second."""
        return self._math.rate

    @property
    def capacity(self) -> float:
        """Burst size: the most tokens held (and granted at once)."""
        return self._math.capacity

    @property
    def name(self) -> str:
        """The bucket's name (its key in a shared backend)."""
        return self._name

    @property
    def backend(self) -> BucketBackend | None:
        """The shared backend, or None for an in-memory bucket."""
        return self._backend

    @property
    def on_unavailable(self) -> FailMode:
        """What happens when the backend cannot be reached ("closed", "open" or "local")."""
        return self._fail_mode

    @property
    def waiting(self) -> int:
        """Number of callers currently queued in this process."""
        return len(self._waiters)

    def available(self) -> float:
        """Tokens available now in this process's state (the local fallback with a backend)."""
        with self._lock:
            return self._math.tokens(self._empty_at, self._clock())

    def __repr__(self) -> str:
        where = "" if self._backend is None else f", backend={self._backend!r}"
        return (
            f"{type(self).__name__}(rate={self.rate!r}, capacity={self.capacity!r}, "
            f"name={self._name!r}{where})"
        )

    # -- non-blocking --------------------------------------------------------------------

    def try_acquire(self, tokens: float = 1) -> bool:
        """Take ``tokens`` now if they are available and nobody is queued; never waits.

        Raises ValueError if ``tokens`` is not in ``(0, capacity]``.  With a backend, one
        round trip (bounded by the backend's socket timeout) and the failure mode apply.
        """
        if tokens == 1 and self._fast:
            # Inlined BucketMath.decide: this is the hot path (one token, in memory).
            # ``_try_eps`` is -inf while anyone is queued: then nothing passes (no queue jumping).
            with self._lock:
                now = self._clock()
                start = now - self._fill
                if self._empty_at > start:  # noqa: PLR1730 - faster than calling max()
                    start = self._empty_at
                start += self._one
                if start - now <= self._try_eps:
                    self._empty_at = start
                    return True
                return False
        cost = self._math.cost(tokens)
        if self._backend is not None:
            return self._try_remote(tokens, cost)
        with self._lock:
            if self._waiters:
                return False
            after, wait = self._math.decide(self._empty_at, self._clock(), cost)
            if wait == 0.0:
                self._empty_at = after
                return True
            return False

    def retry_after(self, tokens: float = 1) -> float:
        """Seconds until ``tokens`` could be granted to a new caller (behind the current
        queue); 0.0 if now.  With a backend: one round trip, ignoring other processes'
        queues (a lower bound)."""
        cost = self._math.cost(tokens)
        if self._backend is None:
            with self._lock:
                return self._math.queue_wait(self._empty_at, self._clock(), self._queued + cost)
        wait = self._remote(tokens, cost, None, peek=True)
        return 0.0 if wait is None else wait

    # -- blocking ------------------------------------------------------------------------

    def acquire(self, tokens: float = 1, timeout: float | None = None) -> bool:
        """Wait until ``tokens`` are granted (True) or ``timeout`` seconds cannot suffice (False).

        Waits the exact time needed, first-come first-served.  Returns False at once,
        without sleeping, when the computed wait exceeds ``timeout``; ``timeout=None``
        waits as long as needed.
        """
        if (
            tokens == 1
            and self._fast
            and (timeout is None or (type(timeout) in (float, int) and timeout >= 0))
        ):
            # Fast path: one token available and nobody queued (same maths as try_acquire).
            with self._lock:
                now = self._clock()
                start = now - self._fill
                if self._empty_at > start:  # noqa: PLR1730 - faster than calling max()
                    start = self._empty_at
                start += self._one
                if start - now <= self._try_eps:
                    self._empty_at = start
                    return True
        return self._acquire(tokens, timeout) is None

    def _acquire(self, tokens: float, timeout: float | None) -> float | None:
        """``acquire`` returning None when granted, else the wait that was too long."""
        cost = self._math.cost(tokens)
        limit = check_timeout(timeout)
        if self._backend is not None:
            return self._acquire_remote(tokens, cost, limit)
        with self._lock:
            now = self._clock()
            verdict = self._admit(cost, now, limit)
            if verdict is not None:
                return verdict if verdict > 0 else None
            waiter = _SyncWaiter(tokens, cost)
            self._enqueue(waiter)
            deadline = None if limit is None else now + limit
            head = self._waiters[0] is waiter
            wait = self._head_wait(cost, now) if head else 0.0
        try:
            while True:
                if head:
                    self._sleep(wait)
                else:
                    rest = None if deadline is None else max(0.0, deadline - self._clock())
                    waiter.wait(rest)
                with self._lock:
                    outcome, wait = self._turn(waiter, cost, deadline)
                if outcome == _GRANTED:
                    return None
                if outcome == _REFUSED:
                    return wait
                head = outcome == _HEAD
        except BaseException:
            self._abandon(waiter)
            raise

    async def acquire_async(self, tokens: float = 1, timeout: float | None = None) -> bool:
        """Coroutine form of :meth:`acquire`; tasks and threads share one FIFO queue."""
        return (await self._acquire_async(tokens, timeout)) is None

    async def _acquire_async(self, tokens: float, timeout: float | None) -> float | None:
        cost = self._math.cost(tokens)
        limit = check_timeout(timeout)
        if self._backend is not None:
            return await self._acquire_remote_async(tokens, cost, limit)
        loop = asyncio.get_running_loop()
        with self._lock:
            now = self._clock()
            verdict = self._admit(cost, now, limit)
            if verdict is not None:
                return verdict if verdict > 0 else None
            waiter = _AsyncWaiter(tokens, cost, loop)
            self._enqueue(waiter)
            deadline = None if limit is None else now + limit
            head = self._waiters[0] is waiter
            wait = self._head_wait(cost, now) if head else 0.0
        try:
            while True:
                if head:
                    await self._async_sleep(wait)
                else:
                    rest = None if deadline is None else max(0.0, deadline - self._clock())
                    await asyncio.wait((waiter.future,), timeout=rest)
                with self._lock:
                    outcome, wait = self._turn(waiter, cost, deadline)
                if outcome == _GRANTED:
                    return None
                if outcome == _REFUSED:
                    return wait
                head = outcome == _HEAD
        except BaseException:
            self._abandon(waiter)
            raise

    # -- queue mechanics (all called with self._lock held) --------------------------------

    def _admit(self, cost: float, now: float, limit: float | None) -> float | None:
        """Grant at once (0.0), refuse at once (the wait, > 0), or None: the caller queues."""
        if not self._waiters:
            after, wait = self._math.decide(self._empty_at, now, cost)
            if wait == 0.0:
                self._empty_at = after
                return 0.0
        else:
            wait = self._math.queue_wait(self._empty_at, now, self._queued + cost)
        if limit is not None and wait > limit:
            return wait
        return None

    def _enqueue(self, waiter: _Waiter) -> None:
        self._waiters.append(waiter)
        self._queued += waiter.cost
        self._try_eps = -math.inf

    def _head_wait(self, cost: float, now: float) -> float:
        return self._math.decide(self._empty_at, now, cost)[1]

    def _turn(self, waiter: _Waiter, cost: float, deadline: float | None) -> tuple[int, float]:
        """One look at the queue after waking: ``(_GRANTED, 0)``, ``(_REFUSED, wait)`` (it
        left the queue), or ``(_HEAD, wait)`` / ``(_QUEUED, 0)`` to keep waiting."""
        now = self._clock()
        if self._waiters[0] is waiter:
            after, wait = self._math.decide(self._empty_at, now, cost)
            if wait == 0.0:
                self._empty_at = after
                self._remove(waiter)
                return _GRANTED, 0.0
            if deadline is not None and now + wait > deadline:
                self._remove(waiter)
                return _REFUSED, wait
            return _HEAD, wait
        if deadline is not None and now >= deadline:
            wait = self._math.queue_wait(self._empty_at, now, self._queued)
            self._remove(waiter)
            return _REFUSED, max(wait, cost)
        return _QUEUED, 0.0

    def _remove(self, waiter: _Waiter) -> None:
        """Take ``waiter`` out of the queue and wake the new head if the head changed."""
        was_head = self._waiters[0] is waiter
        self._waiters.remove(waiter)
        self._queued -= waiter.cost
        if not self._waiters:
            self._queued = 0.0  # no float drift across long runs
            self._try_eps = self._math.eps
        elif was_head:
            self._waiters[0].wake()

    def _abandon(self, waiter: _Waiter) -> None:
        """An interrupted or cancelled waiter leaves the queue (if still in it)."""
        with self._lock:
            if waiter in self._waiters:
                self._remove(waiter)

    # -- decorator -----------------------------------------------------------------------

    def limit(
        self, tokens: float = 1, *, timeout: float | None = None
    ) -> Callable[[Callable[P, R]], Callable[P, R]]:
        """Decorator taking ``tokens`` before each call of a sync or async function.

        Waits as :meth:`acquire` does; raises :class:`~resilience.RateLimitExceeded` (with
        ``retry_after``) when ``timeout`` cannot suffice.  Keeps the signature and type.
        """
        self._math.cost(tokens)
        check_timeout(timeout)

        def decorate(func: Callable[P, R]) -> Callable[P, R]:
            if inspect.iscoroutinefunction(func):
                afunc = cast(Callable[P, Awaitable[Any]], func)

                @functools.wraps(func)
                async def async_wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
                    wait = await self._acquire_async(tokens, timeout)
                    if wait is not None:
                        raise self._exceeded(tokens, wait)
                    return await afunc(*args, **kwargs)

                return cast(Callable[P, R], async_wrapper)

            @functools.wraps(func)
            def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
                wait = self._acquire(tokens, timeout)
                if wait is not None:
                    raise self._exceeded(tokens, wait)
                return func(*args, **kwargs)

            return wrapper

        return decorate

    def __call__(self, func: Callable[P, R]) -> Callable[P, R]:
        """``@bucket``: take one token before each call, waiting as long as needed."""
        return self.limit()(func)

    def _exceeded(self, tokens: float, wait: float) -> RateLimitExceeded:
        return RateLimitExceeded(
            f"rate limit {self._name!r}: {tokens!r} token(s) not available in time "
            f"(retry after {wait:.3f}s)",
            retry_after=wait,
        )

    # -- shared backend ------------------------------------------------------------------

    def _remote(
        self, tokens: float, cost: float, timeout: float | None, *, peek: bool = False
    ) -> float | None:
        """Ask the backend: None when granted, else seconds to wait (``inf``: out of time).

        Applies the failure mode when the backend is unreachable.
        """
        backend = self._backend
        assert backend is not None
        try:
            wait = backend.decide(
                self._name, self._math.rate, self._math.capacity, tokens, timeout=timeout, peek=peek
            )
        except DeadlineExceeded:
            return math.inf
        except BackendUnavailable:
            mode = self._fail_mode
            if mode is FailMode.CLOSED:
                raise
            if mode is FailMode.OPEN:
                return None
            with self._lock:
                now = self._clock()
                after, wait = self._math.decide(self._empty_at, now, cost)
                if wait == 0.0 and not peek:
                    self._empty_at = after
            return None if wait == 0.0 else wait
        return None if wait <= 0 else wait

    def _try_remote(self, tokens: float, cost: float) -> bool:
        if self._waiters:
            return False
        return self._remote(tokens, cost, None) is None

    def _acquire_remote(self, tokens: float, cost: float, limit: float | None) -> float | None:
        waiter = _SyncWaiter(tokens, cost)
        with self._lock:
            start = self._clock()
            self._enqueue(waiter)
            head = self._waiters[0] is waiter
        deadline = None if limit is None else start + limit
        first = True
        try:
            while True:
                if not head:
                    rest = None if deadline is None else max(0.0, deadline - self._clock())
                    waiter.wait(rest)
                    with self._lock:
                        head = self._waiters[0] is waiter
                    if not head:
                        if deadline is not None and self._clock() >= deadline:
                            self._abandon(waiter)
                            return self._remote_hint(cost)
                        continue
                wait, budget = self._remote_step(tokens, cost, deadline, first, limit)
                first = False
                if wait is None:
                    self._abandon(waiter)
                    return None
                if budget is not None and wait > budget:
                    self._abandon(waiter)
                    return wait if math.isfinite(wait) else self._remote_hint(cost)
                self._sleep(wait)
        except BaseException:
            self._abandon(waiter)
            raise

    async def _acquire_remote_async(
        self, tokens: float, cost: float, limit: float | None
    ) -> float | None:
        waiter = _AsyncWaiter(tokens, cost, asyncio.get_running_loop())
        with self._lock:
            start = self._clock()
            self._enqueue(waiter)
            head = self._waiters[0] is waiter
        deadline = None if limit is None else start + limit
        first = True
        try:
            while True:
                if not head:
                    rest = None if deadline is None else max(0.0, deadline - self._clock())
                    await asyncio.wait((waiter.future,), timeout=rest)
                    with self._lock:
                        head = self._waiters[0] is waiter
                    if not head:
                        if deadline is not None and self._clock() >= deadline:
                            self._abandon(waiter)
                            return self._remote_hint(cost)
                        continue
                wait, budget = await asyncio.to_thread(
                    self._remote_step, tokens, cost, deadline, first, limit
                )
                first = False
                if wait is None:
                    self._abandon(waiter)
                    return None
                if budget is not None and wait > budget:
                    self._abandon(waiter)
                    return wait if math.isfinite(wait) else self._remote_hint(cost)
                await self._async_sleep(wait)
        except BaseException:
            self._abandon(waiter)
            raise

    def _remote_step(
        self,
        tokens: float,
        cost: float,
        deadline: float | None,
        first: bool,
        limit: float | None,
    ) -> tuple[float | None, float | None]:
        """One decision by the queue head: ``(wait or None if granted, remaining budget)``.

        The backend call is bounded by the time left before ``deadline``.  The first
        attempt is always made, even with no time left: ``acquire(timeout=0)`` makes one
        plain try (bounded by the backend's socket timeout, like ``try_acquire``), others
        one with the shortest I/O timeout.  Later attempts with no time left make no call.
        """
        if deadline is None:
            return self._remote(tokens, cost, None), None
        remaining = deadline - self._clock()
        io_budget: float | None = remaining
        if remaining <= 0.0:
            if not first:
                return math.inf, 0.0
            io_budget = None if limit == 0.0 else 0.0
        wait = self._remote(tokens, cost, io_budget)
        remaining = max(0.0, deadline - self._clock())
        return wait, remaining

    def _remote_hint(self, cost: float) -> float:
        """A retry-after hint for a remote waiter that ran out of time before deciding: the
        refill time of what is queued here (other processes' demand is unknown)."""
        with self._lock:
            return max(self._queued, cost)


class RateLimiter(TokenBucket):
    """The original design's limiter: ``requests_per_minute`` with a burst of ``burst_size``.

    A :class:`TokenBucket` with ``rate = requests_per_minute / 60`` and
    ``capacity = burst_size``; same methods, guarantee and thread-safety.  A fresh
    ``RateLimiter(60, 10)`` grants ten ``acquire(timeout=0.1)`` at once and refuses the
    eleventh immediately (its wait would be one second).
    """

    __slots__ = ("_burst_size", "_requests_per_minute")

    def __init__(
        self,
        requests_per_minute: float = 60,
        burst_size: float = 10,
        *,
        clock: _clock.Clock = _clock.monotonic,
        sleep: _clock.Sleep = _clock.sleep,
        async_sleep: _clock.AsyncSleep = _clock.async_sleep,
        backend: str | BucketBackend | None = None,
        name: str = DEFAULT_NAME,
        on_unavailable: FailMode | str | None = None,
    ) -> None:
        rpm = check_positive("requests_per_minute", requests_per_minute)
        burst = check_positive("burst_size", burst_size)
        super().__init__(
            rpm / 60.0,
            burst,
            clock=clock,
            sleep=sleep,
            async_sleep=async_sleep,
            backend=backend,
            name=name,
            on_unavailable=on_unavailable,
        )
        self._requests_per_minute = rpm
        self._burst_size = burst

    @property
    def requests_per_minute(self) -> float:
        """The sustained rate, per minute."""
        return self._requests_per_minute

    @property
    def burst_size(self) -> float:
        """The burst: how many requests pass at once on an idle limiter."""
        return self._burst_size

    def __repr__(self) -> str:
        where = "" if self._backend is None else f", backend={self._backend!r}"
        return (
            f"RateLimiter(requests_per_minute={self._requests_per_minute!r}, "
            f"burst_size={self._burst_size!r}, name={self._name!r}{where})"
        )
