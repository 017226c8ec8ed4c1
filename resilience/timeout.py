"""Time limits: the ``@timeout(seconds)`` decorator and the cooperative :class:`Deadline`.

``@timeout(seconds)`` bounds one call of a function, a method or a coroutine function and
raises :class:`~resilience.DeadlineExceeded` (a :class:`TimeoutError`) when it runs out.
Three strategies, picked per call:

* **coroutine functions**: asyncio-native (``asyncio.timeout`` on Python >= 3.11, else
  ``asyncio.wait_for``); the awaited coroutine is cancelled at the deadline.
* **sync, main thread** (POSIX): ``signal.setitimer(ITIMER_REAL)`` with a ``SIGALRM``
  handler that raises.  Blocking system calls (``time.sleep``, socket reads) are interrupted.
  Any previous ``SIGALRM`` handler is restored afterwards and a previously armed real-time
  timer is re-armed with its *remaining* time; if that earlier timer was due before our
  deadline it is delivered to its own handler on time (nested ``@timeout`` calls compose).
* **sync, any other thread** (or no usable ``SIGALRM``): one shared watchdog thread keeps a
  heap of deadlines and, when one expires, injects the exception into the target thread with
  ``PyThreadState_SetAsyncExc``.  **Limit:** such an exception is raised only when the thread
  next runs Python bytecode, so a blocking C call (``time.sleep(10)``, a socket read without
  its own timeout) is interrupted only when it returns to Python.  Give blocking I/O its own
  timeout (see :meth:`Deadline.remaining`) and use ``@timeout`` as the outer safety net.
  Delivery also needs the GIL: usually within a millisecond or so of the deadline, but many
  CPU-bound threads can delay the watchdog (and the target) by a few GIL switch intervals.

Guarantees: once the decorated call has returned (normally or by raising), no late timeout
can be raised in the caller — a pending injected exception is cancelled, and a pending
``SIGALRM`` is drained while our handler is still installed.  If the deadline expires at the
very moment the function returns, either outcome (the result or ``DeadlineExceeded``) may be
seen.  A function that catches and swallows ``DeadlineExceeded`` defeats the timeout.

The watchdog thread is a daemon started on first use; it exits by itself after
``WATCHDOG_IDLE_SECONDS`` without work.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import functools
import heapq
import importlib
import inspect
import itertools
import math
import queue
import signal
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine
from types import FrameType
from typing import Any, ParamSpec, TypeVar, cast

from ._clock import Clock, monotonic
from .errors import DeadlineExceeded

__all__ = ["Deadline", "timeout"]

P = ParamSpec("P")
T = TypeVar("T")

#: The watchdog thread exits after this many seconds with no armed deadline.
WATCHDOG_IDLE_SECONDS = 1.0
# A signal that arrives this much before our deadline is not ours (someone else's SIGALRM).
_EARLY_SIGNAL_SLACK = 0.005


class Deadline:
    """A fixed point in time shared by several steps (cooperative budget).

    ``Deadline(seconds)`` starts now (per ``clock``); ``Deadline(None)`` never expires.
    :meth:`remaining` returns seconds left, never negative, and ``math.inf`` for an unlimited
    deadline (so ``min(socket_timeout, deadline.remaining())`` always works).  Immutable after
    construction: thread-safe.
    """

    __slots__ = ("_clock", "_end", "_start", "seconds")

    def __init__(self, seconds: float | None, *, clock: Clock = monotonic) -> None:
        if seconds is not None:
            if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
                raise TypeError(f"seconds must be a number or None, got {type(seconds).__name__}")
            if math.isnan(seconds) or seconds < 0:
                raise ValueError(f"seconds must be >= 0 or None, got {seconds!r}")
        if not callable(clock):
            raise TypeError("clock must be a zero-argument callable returning seconds")
        self.seconds: float | None = None if seconds is None else float(seconds)
        self._clock = clock
        self._start = clock()
        self._end = math.inf if seconds is None else self._start + seconds

    def remaining(self) -> float:
        """Seconds left (``>= 0``); ``math.inf`` when unlimited."""
        left = self._end - self._clock()
        return left if left > 0.0 else 0.0

    @property
    def expired(self) -> bool:
        """True once no time is left."""
        return self._clock() >= self._end

    def elapsed(self) -> float:
        """Seconds since the deadline was created."""
        return self._clock() - self._start

    def check(self, what: str | None = None) -> None:
        """Raise :class:`~resilience.DeadlineExceeded` if the deadline has expired."""
        if self._clock() >= self._end:
            subject = what or "operation"
            raise DeadlineExceeded(f"{subject} exceeded its deadline of {self.seconds:g} s")

    def __repr__(self) -> str:
        if self.seconds is None:
            return "Deadline(None)"
        return f"Deadline({self.seconds:g}, remaining={self.remaining():.3f})"


# -- the decorator ------------------------------------------------------------------------


def timeout(seconds: float) -> Callable[[Callable[P, T]], Callable[P, T]]:
    """Decorator: each call of the function may last at most ``seconds`` (> 0, finite).

    Works for functions, methods and coroutine functions (which stay coroutine functions),
    in the main thread and in any other thread; see the module docstring for the strategies
    and their limits.  Raises :class:`~resilience.DeadlineExceeded` on expiry.
    """
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
        raise TypeError(f"seconds must be a number, got {type(seconds).__name__}")
    if not (math.isfinite(seconds) and seconds > 0):
        raise ValueError(f"seconds must be finite and > 0, got {seconds!r}")
    limit = float(seconds)

    def decorate(func: Callable[P, T]) -> Callable[P, T]:
        if not callable(func):
            raise TypeError(f"timeout() decorates callables, got {type(func).__name__}")
        name = getattr(func, "__qualname__", None) or repr(func)
        message = f"{name} timed out after {limit:g} s"
        if _is_async(func):
            return cast(Callable[P, T], _async_wrapper(func, limit, message))  # type: ignore[arg-type]
        return _sync_wrapper(func, limit, message)

    return decorate


def _is_async(func: object) -> bool:
    return inspect.iscoroutinefunction(func) or inspect.iscoroutinefunction(
        getattr(func, "__call__", None)  # noqa: B004 - callable objects with async __call__
    )


def _sync_wrapper(func: Callable[P, T], limit: float, message: str) -> Callable[P, T]:
    get_ident = threading.get_ident

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        if get_ident() == _MAIN_IDENT and _SIGNALS_USABLE and _python_owns_sigalrm():
            alarm = _Alarm(limit, message)
            try:
                alarm.arm()
                return func(*args, **kwargs)
            finally:
                # The SIGALRM handler may run at any call boundary, even as disarm() starts;
                # it marks itself done before raising, so a second disarm() always completes.
                try:
                    alarm.disarm()
                except DeadlineExceeded:
                    alarm.disarm()
                    raise
        return _WATCHDOG.call(func, args, kwargs, limit, message)

    return wrapper


def _async_wrapper(
    func: Callable[P, Awaitable[T]], limit: float, message: str
) -> Callable[P, Coroutine[Any, Any, T]]:
    @functools.wraps(func)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        if sys.version_info >= (3, 11):
            try:
                async with asyncio.timeout(limit) as scope:
                    return await func(*args, **kwargs)
            except TimeoutError as exc:
                if scope.expired():
                    raise DeadlineExceeded(message) from exc
                raise
        else:  # pragma: no cover - Python 3.10
            try:
                return await asyncio.wait_for(func(*args, **kwargs), limit)
            except asyncio.TimeoutError as exc:
                raise DeadlineExceeded(message) from exc

    return wrapper


# -- main thread: SIGALRM + setitimer -----------------------------------------------------

_MAIN_IDENT = threading.main_thread().ident
_SIGNALS_USABLE = hasattr(signal, "setitimer") and hasattr(signal, "SIGALRM")
# The C functions behind ``signal.signal``/``getsignal``: the public wrappers convert results
# to enums through a failing ``Handlers(callable)`` lookup that costs ~8 us per call.
_raw: Any = importlib.import_module("_signal") if _SIGNALS_USABLE else signal
_raw_signal: Callable[[int, Any], Any] = getattr(_raw, "signal", signal.signal)
_raw_getsignal: Callable[[int], Any] = getattr(_raw, "getsignal", signal.getsignal)
_SIGALRM: int = int(getattr(signal, "SIGALRM", 14))
_ITIMER_REAL: int = int(getattr(signal, "ITIMER_REAL", 0))
_Handler = Callable[[int, FrameType | None], Any] | int | signal.Handlers | None


def _python_owns_sigalrm() -> bool:
    """False when SIGALRM's handler was installed from C (we could not restore it)."""
    return _raw_getsignal(_SIGALRM) is not None


class _Alarm:
    """One armed ``SIGALRM`` timer for one call in the main thread (main thread only)."""

    __slots__ = (
        "_deadline",
        "_done",
        "_early",
        "_for_previous",
        "_installed",
        "_limit",
        "_message",
        "_prev_delay",
        "_prev_delivered",
        "_prev_handler",
        "_prev_interval",
        "_ready",
        "_start",
    )

    def __init__(self, limit: float, message: str) -> None:
        self._limit = limit
        self._message = message
        self._done = False
        self._ready = False  # arm() finished: the handler may raise
        self._early = False  # our timer fired while arm() was still running
        self._installed = False
        self._for_previous = False
        self._prev_delivered = False
        self._prev_handler: _Handler = None
        self._prev_delay = 0.0
        self._prev_interval = 0.0
        self._start = 0.0
        self._deadline = 0.0

    def arm(self) -> None:
        """Install our handler and timer, remembering the previous ones."""
        self._prev_handler = _raw_signal(_SIGALRM, self._on_signal)
        self._installed = True
        self._start = now = time.monotonic()
        self._deadline = now + self._limit
        delay, interval = signal.setitimer(_ITIMER_REAL, self._limit)
        self._prev_delay, self._prev_interval = delay, interval
        if 0.0 < delay < self._limit:
            # An earlier timer was due first: let it fire on time, then take ours over.
            self._for_previous = True
            signal.setitimer(_ITIMER_REAL, delay)
        self._ready = True
        if self._early:
            self._done = True
            raise DeadlineExceeded(self._message)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if self._done:
            return
        if self._for_previous:
            self._for_previous = False
            self._prev_delivered = True
            left = self._deadline - time.monotonic()
            signal.setitimer(_ITIMER_REAL, left if left > 1e-6 else 1e-6)
            self._deliver_to_previous(signum, frame)
            return
        if time.monotonic() < self._deadline - _EARLY_SIGNAL_SLACK:
            return  # not our timer (someone sent SIGALRM): ours is still armed
        if not self._ready:
            self._early = True
            return
        self._done = True
        raise DeadlineExceeded(self._message)

    def _deliver_to_previous(self, signum: int, frame: FrameType | None) -> None:
        handler = self._prev_handler
        if callable(handler):
            handler(signum, frame)
        elif handler == signal.SIG_DFL:  # the default action of SIGALRM ends the process
            signal.signal(signal.SIGALRM, signal.SIG_DFL)
            signal.raise_signal(signal.SIGALRM)

    def disarm(self) -> None:
        """Stop our timer, restore the previous handler and re-arm the previous timer."""
        self._done = True
        if not self._installed:
            return
        self._installed = False
        signal.setitimer(_ITIMER_REAL, 0.0)
        # signal.signal() first runs any SIGALRM that is still pending, while our handler
        # (now a no-op) is installed, so a late signal cannot reach the caller.
        _raw_signal(_SIGALRM, self._prev_handler)
        delay, interval = self._prev_delay, self._prev_interval
        if self._prev_delivered:
            if interval > 0.0:
                left = interval - (time.monotonic() - self._start - delay) % interval
                signal.setitimer(_ITIMER_REAL, max(left, 1e-6), interval)
        elif delay > 0.0:
            left = delay - (time.monotonic() - self._start)
            signal.setitimer(_ITIMER_REAL, left if left > 1e-6 else 1e-6, interval)


# -- other threads: one watchdog injecting exceptions -------------------------------------
#
# Theory of operation.  Each timed call pushes an _Entry (deadline, thread id, the entry of
# the enclosing timed call in the same thread, message) on a heap.  The watchdog thread pops
# due entries; for one still ARMED it marks it FIRED and, under the lock, injects a fresh
# exception class made for that entry (so any handler can tell whose timeout it is).
#
# An injected exception is raised at the target thread's next "eval breaker" check (a call,
# a backward jump), so the caller's bookkeeping must tolerate being interrupted anywhere:
#
# * only C-level primitives are used on the caller's side (a plain Lock, whose ``with`` has
#   no Python frames; a SimpleQueue to wake the watchdog), so an interruption never leaks
#   the lock;
# * the decisive step, "mark my entry DONE, and clear my pending exception if it FIRED", is
#   done inside the ``try`` that guards the call, so an exception raised while doing it is
#   still caught and converted.  After that step nothing of ours can be injected any more;
# * a thread has one pending-exception slot, so when a call clears its own pending exception
#   it re-injects the innermost enclosing entry that FIRED but was not delivered yet;
# * an injected exception caught by a call that does not own it goes on to its owner if the
#   owner encloses the call, and is converted otherwise.  Injected classes subclass
#   DeadlineExceeded and carry the owner's message, so even one escaping raw reads right.
#
# States: ARMED -> FIRED -> DELIVERED (raised and caught) ; any -> DONE (call finished).


class _Injected(DeadlineExceeded):
    """Base of the exceptions injected by the watchdog (one subclass per fired entry)."""

    _entry: _Entry

    def __str__(self) -> str:
        return self._entry.message


_ARMED, _FIRED, _DELIVERED, _DONE = range(4)

# Two prototypes of the same C function: one passes the exception type, one passes NULL
# (which clears the thread's pending asynchronous exception).
_set_async_exc = ctypes.pythonapi["PyThreadState_SetAsyncExc"]
_set_async_exc.argtypes = (ctypes.c_ulong, ctypes.py_object)
_set_async_exc.restype = ctypes.c_int
_clear_async_exc = ctypes.pythonapi["PyThreadState_SetAsyncExc"]
_clear_async_exc.argtypes = (ctypes.c_ulong, ctypes.c_void_p)
_clear_async_exc.restype = ctypes.c_int


class _Entry:
    __slots__ = ("deadline", "exc_type", "ident", "message", "parent", "state")

    def __init__(self, deadline: float, ident: int, parent: _Entry | None, message: str) -> None:
        self.deadline = deadline
        self.ident = ident
        self.parent = parent
        self.message = message
        self.state = _ARMED
        self.exc_type: type[_Injected] | None = None


def _encloses(outer: _Entry, inner: _Entry) -> bool:
    node = inner.parent
    while node is not None:
        if node is outer:
            return True
        node = node.parent
    return False


class _Watchdog:
    """The shared watchdog thread and its heap of deadlines.

    Thread-safe: any thread may call :meth:`call`.  The lock is held only for heap/state
    updates and for the (non-blocking) injection itself, never while user code runs.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._wake: queue.SimpleQueue[None] = queue.SimpleQueue()
        self._heap: list[tuple[float, int, _Entry]] = []
        self._seq = itertools.count()
        self._stale = 0  # finished entries still in the heap
        self._wake_at = math.inf  # when the watchdog thread will next look at the heap
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._local = threading.local()

    def call(
        self,
        func: Callable[..., T],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        limit: float,
        message: str,
    ) -> T:
        lock = self._lock
        local = self._local
        entry = _Entry(
            time.monotonic() + limit,
            threading.get_ident(),
            getattr(local, "current", None),
            message,
        )
        try:
            self._arm(entry)
            result = func(*args, **kwargs)
            with lock:
                state = entry.state
                entry.state = _DONE
                if state == _ARMED:
                    self._stale += 1
            if state == _FIRED:  # fired as the call returned: cancel the pending exception
                self._clear(entry)
        except _Injected as exc:
            owner = exc._entry
            with lock:
                state = entry.state
                if owner.state == _FIRED:
                    owner.state = _DELIVERED
                entry.state = _DONE
                if state == _ARMED:
                    self._stale += 1
            if state == _FIRED and owner is not entry:
                self._clear(entry)  # ours is still pending: drop it, the caught one wins
            local.current = entry.parent
            if owner is not entry and _encloses(owner, entry):
                raise  # an enclosing call's timeout: its wrapper converts it
            raise DeadlineExceeded(owner.message) from None
        except BaseException:
            with lock:
                state = entry.state
                entry.state = _DONE
                if state == _ARMED:
                    self._stale += 1
            if state == _FIRED:
                self._clear(entry)
            local.current = entry.parent
            raise
        local.current = entry.parent
        if self._stale > 64 and self._stale * 2 > len(self._heap):
            self._compact()
        return result

    def _arm(self, entry: _Entry) -> None:
        with self._lock:
            heapq.heappush(self._heap, (entry.deadline, next(self._seq), entry))
            if self._thread is None:
                self._start_thread()
            elif entry.deadline < self._wake_at:
                self._wake_at = entry.deadline
                self._wake.put_nowait(None)
            self._local.current = entry

    def _clear(self, entry: _Entry) -> None:
        """Drop ``entry``'s pending exception; re-inject an enclosing one it may have hidden."""
        with self._lock:
            _clear_async_exc(entry.ident, None)
            outer = entry.parent
            while outer is not None:
                if outer.state == _FIRED:
                    _set_async_exc(outer.ident, outer.exc_type)
                    break
                outer = outer.parent

    def _compact(self) -> None:
        with self._lock:
            self._heap = [item for item in self._heap if item[2].state == _ARMED]
            heapq.heapify(self._heap)
            self._stale = 0

    def _fire(self, entry: _Entry) -> None:
        exc_type = type("DeadlineExceeded", (_Injected,), {"_entry": entry, "__slots__": ()})
        entry.exc_type = exc_type
        entry.state = _FIRED
        _set_async_exc(entry.ident, exc_type)

    def _start_thread(self) -> None:
        self._stopping = False
        thread = threading.Thread(target=self._run, name="resilience-timeout-watchdog")
        thread.daemon = True
        self._thread = thread
        thread.start()

    def _run(self) -> None:
        lock = self._lock
        idle_since = time.monotonic()
        while True:
            with lock:
                if self._stopping:
                    self._thread = None
                    return
                heap = self._heap
                now = time.monotonic()
                while heap and heap[0][0] <= now:
                    entry = heapq.heappop(heap)[2]
                    if entry.state == _ARMED:
                        self._fire(entry)
                    else:
                        self._stale -= 1
                if heap:
                    self._wake_at = heap[0][0]
                    wait = heap[0][0] - now
                    idle_since = now
                else:
                    if now - idle_since >= WATCHDOG_IDLE_SECONDS:
                        self._thread = None
                        return
                    self._wake_at = math.inf
                    wait = WATCHDOG_IDLE_SECONDS - (now - idle_since)
            with contextlib.suppress(queue.Empty):
                self._wake.get(timeout=wait)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the watchdog thread; call only when no timed call is running."""
        with self._lock:
            thread = self._thread
            self._stopping = True
        self._wake.put_nowait(None)
        if thread is not None:
            thread.join(timeout)


_WATCHDOG = _Watchdog()


def _stop_watchdog(timeout: float = 5.0) -> None:
    """Stop the shared watchdog thread (for tests that check no thread is left running)."""
    _WATCHDOG.stop(timeout)
