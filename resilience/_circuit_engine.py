"""The circuit breaker's state machine, kept apart from the call forms in :mod:`.circuit`.

Theory of operation
-------------------
An *engine* owns a breaker's state.  The public :class:`~resilience.CircuitBreaker` asks it for
permission before a call (:meth:`Engine.acquire`, which either returns a *token* or raises
:class:`~resilience.CircuitOpenError`) and reports the outcome afterwards
(:meth:`Engine.record`).  Two engines exist: :class:`MemoryEngine` here (the default, one
process) and the Redis engine in :mod:`resilience._redis_circuit` (one breaker shared by every
process that names it).  Both follow the same table:

======================  =========================================  ==========================
state                   event                                      next state
======================  =========================================  ==========================
CLOSED                  failure rule met (see below)               OPEN
OPEN                    a call arrives >= recovery_timeout after    HALF_OPEN (that call is
                        opening                                    the first probe)
OPEN                    a call arrives earlier                     OPEN (rejected, retry_after
                                                                   = time left)
HALF_OPEN               a probe fails (or is slow)                 OPEN (timer restarts)
HALF_OPEN               ``half_open_max_calls`` probes succeeded   CLOSED (counters cleared)
HALF_OPEN               a call arrives while every probe slot is   HALF_OPEN (rejected,
                        taken                                      retry_after = 0.0)
any                     ``reset()``                                CLOSED (counters cleared)
======================  =========================================  ==========================

Reading ``state`` reports what the next call would find: ``state`` reads HALF_OPEN once
``recovery_timeout`` has elapsed (``clock() >= opened_at + recovery_timeout``, the same test
that admits the first probe), and ``retry_after`` is then 0.0, although the stored state is
still OPEN.  The read is pure: it changes nothing and calls no listener.  Listeners hear
OPEN -> HALF_OPEN when the first probe is admitted (the first OPEN row above), as does the
stored state.

Failure rules while CLOSED (any one opens the breaker):

* *count mode* (``failure_rate_threshold is None``): ``failure_threshold`` consecutive failures;
  a success resets the count.
* *rate mode*: over the last ``window_size`` recorded calls, once at least ``minimum_calls``
  are recorded, failures / calls >= ``failure_rate_threshold``.
* *slow calls* (``slow_call_duration`` set, either mode): over the same window, slow calls /
  calls >= ``slow_call_rate_threshold``.  A call is slow when it took at least
  ``slow_call_duration`` seconds, whether it succeeded or failed.

Outcomes are ``SUCCESS``, ``FAILURE`` and ``IGNORED`` (an exception that does not match
``expected_exception``: it is recorded nowhere; a half-open probe that ends this way gives
its slot back).  The outcome of a call admitted while CLOSED counts only if the breaker is
still CLOSED when it ends; a probe's outcome counts only in the half-open period that admitted
it.  Every transition bumps an *epoch* so that stale probes are recognised.

Tokens: ``NORMAL`` (0) for a call admitted while closed; a positive int (the epoch) for a probe.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable
from enum import Enum
from typing import TYPE_CHECKING, Protocol

from .errors import CircuitOpenError

if TYPE_CHECKING:
    from ._clock import Clock
    from .circuit import CircuitBreakerConfig

__all__ = [
    "FAILURE",
    "IGNORED",
    "NORMAL",
    "SUCCESS",
    "CircuitState",
    "Engine",
    "MemoryEngine",
    "Notify",
]

logger = logging.getLogger("resilience.circuit")

SUCCESS = 0
FAILURE = 1
IGNORED = 2
NORMAL = 0

# Bits of one window slot.
_FAIL_BIT = 1
_SLOW_BIT = 2


class CircuitState(str, Enum):
    """The three states of a circuit breaker.

    A ``str`` enum: ``breaker.state == "open"`` holds as well as ``is CircuitState.OPEN``, and
    ``CircuitState("half_open")`` looks a state up by value.  Immutable, hence thread-safe.
    """

    CLOSED = "closed"
    """Normal operation: calls pass and their outcomes are counted."""
    OPEN = "open"
    """Failing: calls are rejected with :class:`~resilience.CircuitOpenError`."""
    HALF_OPEN = "half_open"
    """Recovering: a limited number of probe calls pass; their outcomes decide."""


_CLOSED = CircuitState.CLOSED
_OPEN = CircuitState.OPEN
_HALF_OPEN = CircuitState.HALF_OPEN

Notify = Callable[[CircuitState, CircuitState], None]
"""Called (outside any lock) after a transition this process caused: ``(old, new)``."""


class Engine(Protocol):
    """What :class:`~resilience.CircuitBreaker` needs from a state holder.

    Implementations must be thread-safe and must not hold a lock while calling ``notify``.
    """

    @property
    def state(self) -> CircuitState:
        """The state the next call would find (HALF_OPEN once an OPEN breaker's time is up).

        A pure read: no transition, no listener call.
        """
        ...

    @property
    def failure_count(self) -> int: ...

    def acquire(self) -> object:
        """Admit a call (return its token) or raise :class:`~resilience.CircuitOpenError`."""
        ...

    def record(self, token: object, outcome: int, duration: float) -> None:
        """Report the outcome of an admitted call (``duration`` in seconds, 0.0 if untimed)."""
        ...

    async def acquire_async(self) -> object: ...

    async def record_async(self, token: object, outcome: int, duration: float) -> None: ...

    def reset(self) -> None:
        """Force CLOSED and clear the counters."""
        ...


_new_error = CircuitOpenError.__new__


def _rejection(name: str, state: CircuitState, retry_after: float) -> CircuitOpenError:
    if state is _OPEN:
        message = f"circuit breaker {name!r} is open; retry in {retry_after:.3f}s"
    else:
        message = f"circuit breaker {name!r} is half-open and its probe slots are taken"
    return CircuitOpenError(message, retry_after=retry_after, name=name)


class MemoryEngine:
    """In-process breaker state.  Thread-safe.

    The closed-state success path reads ``_state`` and ``_failures`` without the lock (plain
    attribute reads are atomic in CPython).  Every write happens under ``_lock`` except one:
    in a full rate window, a success replacing a success only moves the ring position, without
    the lock (see :meth:`record`).  ``_lock`` is never held while user code or listeners run.
    """

    __slots__ = (
        "_epoch",
        "_failures",
        "_lock",
        "_minimum",
        "_n",
        "_name",
        "_notify",
        "_opened_at",
        "_pos",
        "_probes_admitted",
        "_probes_succeeded",
        "_rate",
        "_recovery",
        "_size",
        "_slow",
        "_slow_limit",
        "_slow_rate",
        "_state",
        "_threshold",
        "_window",
        "_window_failures",
        "clock",
        "config",
        "last_failure_time",
    )

    def __init__(self, config: CircuitBreakerConfig, name: str, clock: Clock, notify: Notify):
        self.config = config
        self.clock = clock
        self._name = name
        self._notify = notify
        self._lock = threading.Lock()
        self._state = _CLOSED
        self._epoch = 0
        self._failures = 0  # consecutive failures (count mode)
        self._opened_at = 0.0
        self._probes_admitted = 0
        self._probes_succeeded = 0
        self.last_failure_time: float | None = None
        # Settings copied into slots: the hot paths read them without a config lookup.
        self._threshold = config.failure_threshold
        self._recovery = config.recovery_timeout
        self._rate = config.failure_rate_threshold
        self._minimum = min(config.minimum_calls, config.window_size)
        self._size = config.window_size
        # No slow rule: an infinite limit (no duration reaches it) and an unreachable rate.
        no_slow = config.slow_call_duration is None
        self._slow_limit = math.inf if no_slow else float(config.slow_call_duration or 0.0)
        self._slow_rate = math.inf if no_slow else config.slow_call_rate_threshold
        windowed = (
            config.failure_rate_threshold is not None or config.slow_call_duration is not None
        )
        self._window: list[int] | None = [0] * config.window_size if windowed else None
        self._pos = 0
        self._n = 0
        self._window_failures = 0
        self._slow = 0

    # -- reads --------------------------------------------------------------------------------

    @property
    def state(self) -> CircuitState:
        # Lock-free, like the OPEN rejection in acquire (the same expression decides both, so
        # a read of HALF_OPEN means the next call is admitted as a probe).  _enter sets
        # _opened_at before _state, so a fresh OPEN is never paired with an old opening time.
        state = self._state
        if state is _OPEN and self._opened_at + self._recovery - self.clock() <= 0:
            return _HALF_OPEN
        return state

    @property
    def failure_count(self) -> int:
        if self.config.failure_rate_threshold is None:
            return self._failures
        return self._window_failures

    def retry_after(self) -> float:
        """Seconds until a call could be admitted (0.0 unless OPEN, and once its time is up)."""
        if self._state is not _OPEN:
            return 0.0
        return max(0.0, self._opened_at + self._recovery - self.clock())

    # -- admission ----------------------------------------------------------------------------

    def acquire(self) -> object:
        state = self._state
        if state is _CLOSED:
            return NORMAL
        if state is _OPEN:
            # Rejections are decided without the lock: an open breaker under load must stay
            # cheap.  (A concurrent transition makes this the decision of an instant earlier.)
            # The error is made without __init__ and its message is formatted only if shown
            # (see CircuitOpenError): about half the cost of a rejection otherwise.
            left = self._opened_at + self._recovery - self.clock()
            if left > 0:
                error = _new_error(CircuitOpenError)
                error.retry_after = left
                error.name = self._name
                raise error
        transition = None
        with self._lock:
            state = self._state
            if state is _CLOSED:
                return NORMAL
            if state is _OPEN:
                now = self.clock()
                left = self._opened_at + self._recovery - now
                if left > 0:
                    raise _rejection(self._name, _OPEN, left)
                self._enter(_HALF_OPEN)
                transition = (_OPEN, _HALF_OPEN)
            if self._probes_admitted >= self.config.half_open_max_calls:
                raise _rejection(self._name, _HALF_OPEN, 0.0)
            self._probes_admitted += 1
            token = self._epoch
        if transition is not None:
            self._notify(*transition)
        return token

    async def acquire_async(self) -> object:
        return self.acquire()

    # -- outcomes -----------------------------------------------------------------------------

    def record(self, token: object, outcome: int, duration: float) -> None:
        if (
            outcome == SUCCESS
            and token == NORMAL
            and self._state is _CLOSED
            and not self._failures
            and duration < self._slow_limit
        ):
            # Lock-free exits for the healthy case.  Count mode: nothing to reset.  Window:
            # a plain success replacing a plain success in a full ring only moves the ring's
            # position (no count changes, no rule can fire).  Concurrent moves may be lost,
            # keeping a slightly older success in place of a newer one; the failure and slow
            # counts are always exact because only the locked path below writes slots.
            window = self._window
            if window is None:
                return
            if self._n == self._size:
                pos = self._pos
                if not window[pos]:
                    pos += 1
                    self._pos = 0 if pos == self._size else pos
                    return
        transition = None
        with self._lock:
            state = self._state
            if token == NORMAL:
                if state is not _CLOSED or outcome == IGNORED:
                    return
                if outcome == FAILURE:
                    self._failures += 1
                    self.last_failure_time = self.clock()
                elif self._failures:
                    self._failures = 0
                window = self._window
                if window is None:
                    if self._failures >= self._threshold:
                        self._enter(_OPEN)
                        transition = (state, _OPEN)
                else:
                    # Push this call's slot into the ring, evicting the oldest when full.
                    code = (_FAIL_BIT if outcome == FAILURE else 0) | (
                        _SLOW_BIT if duration >= self._slow_limit else 0
                    )
                    pos = self._pos
                    n = self._n
                    failures = self._window_failures
                    slow = self._slow
                    if n == self._size:
                        old = window[pos]
                        failures -= old & _FAIL_BIT
                        slow -= old >> 1
                    else:
                        n += 1
                        self._n = n
                    window[pos] = code
                    self._window_failures = failures = failures + (code & _FAIL_BIT)
                    self._slow = slow = slow + (code >> 1)
                    pos += 1
                    self._pos = 0 if pos == self._size else pos
                    rate = self._rate
                    if (rate is None and self._failures >= self._threshold) or (
                        n >= self._minimum
                        and (
                            (rate is not None and failures / n >= rate)
                            or slow / n >= self._slow_rate
                        )
                    ):
                        self._enter(_OPEN)
                        transition = (state, _OPEN)
            elif state is _HALF_OPEN and token == self._epoch:
                if outcome == IGNORED:
                    self._probes_admitted -= 1
                elif outcome == FAILURE or duration >= self._slow_limit:
                    if outcome == FAILURE:
                        self.last_failure_time = self.clock()
                    self._enter(_OPEN)
                    transition = (_HALF_OPEN, _OPEN)
                else:
                    self._probes_succeeded += 1
                    if self._probes_succeeded >= self.config.half_open_max_calls:
                        self._enter(_CLOSED)
                        transition = (_HALF_OPEN, _CLOSED)
        if transition is not None:
            self._notify(*transition)

    async def record_async(self, token: object, outcome: int, duration: float) -> None:
        self.record(token, outcome, duration)

    def reset(self, *, quiet: bool = False) -> None:
        """Force CLOSED; ``quiet`` skips the listeners (used by a store's local fallback)."""
        with self._lock:
            old = self._state
            self._enter(_CLOSED)
        if old is not _CLOSED and not quiet:
            self._notify(old, _CLOSED)

    # -- internals (called with the lock held) -------------------------------------------------

    def _enter(self, new: CircuitState) -> None:
        self._epoch += 1
        self._probes_admitted = 0
        self._probes_succeeded = 0
        if new is _OPEN:
            self._opened_at = self.clock()
        elif new is _CLOSED:
            self._failures = 0
            if self._window is not None:
                self._pos = self._n = self._window_failures = self._slow = 0
        self._state = new
