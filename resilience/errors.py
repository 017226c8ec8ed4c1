"""Exceptions raised by :mod:`resilience`.

The tree::

    ResilienceError                       root of everything this package raises itself
    ├── RetryError                        retrying on *results* ran out (exceptions re-raise as-is)
    ├── RetryBudgetExhausted              the shared retry budget refused a retry
    ├── CircuitOpenError                  a circuit breaker rejected the call (has ``retry_after``)
    ├── RateLimitExceeded                 a limiter could not grant in time (has ``retry_after``)
    ├── DeadlineExceeded (+ TimeoutError) a timeout or a Deadline ran out
    └── BackendUnavailable (+ ConnectionError)
                                          a shared-state backend (Redis) is unreachable and the
                                          configured failure mode is "fail closed"

Exceptions raised by the protected call itself always pass through unchanged: this package
never wraps or swallows them.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "BackendUnavailable",
    "CircuitOpenError",
    "DeadlineExceeded",
    "RateLimitExceeded",
    "ResilienceError",
    "RetryBudgetExhausted",
    "RetryError",
]


class ResilienceError(Exception):
    """Root of every exception :mod:`resilience` raises itself.

    Every one of them survives ``pickle`` and ``copy`` with its fields (multiprocessing
    sends exceptions between processes), although several take keyword-only arguments.
    """

    def __reduce__(self) -> tuple[Any, ...]:
        # The default reduce calls cls(*args), which misses keyword-only arguments: rebuild
        # without __init__ and restore the fields from the instance dict instead.
        return (_restore_error, (type(self), self.args), self.__dict__ or None)


def _restore_error(cls: type[ResilienceError], args: tuple[Any, ...]) -> ResilienceError:
    error = cls.__new__(cls)
    error.args = args  # __new__ keeps args only for classes without their own __init__
    return error


class RetryError(ResilienceError):
    """Retrying on results gave up; ``last_result`` holds the final unacceptable value."""

    def __init__(self, message: str, *, attempts: int, last_result: object = None) -> None:
        super().__init__(message)
        self.attempts = attempts
        self.last_result = last_result


class RetryBudgetExhausted(ResilienceError):
    """The shared retry budget refused another retry (too many retries fleet-wide)."""


class CircuitOpenError(ResilienceError):
    """A circuit breaker rejected the call without running it.

    ``retry_after`` is the number of seconds until the breaker will let a probe through
    (0.0 when it is half-open and its probe slots are taken); ``name`` is the breaker's.

    An open breaker raises it on every call, so the in-memory breaker creates it without
    ``__init__`` and without formatting (``CircuitOpenError.__new__(CircuitOpenError)``, then
    sets ``retry_after`` and ``name``): ``str()`` and ``repr()`` then make the message
    (``"circuit breaker 'name' is open; retry in 1.234s"``) when it is shown, and ``args``
    is empty.
    """

    __slots__ = ("name", "retry_after")  # cheaper to set than instance-dict entries

    def __init__(self, message: str, *, retry_after: float, name: str = "") -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.name = name

    def __str__(self) -> str:
        if self.args:
            return super().__str__()
        return f"circuit breaker {self.name!r} is open; retry in {self.retry_after:.3f}s"

    def __repr__(self) -> str:
        if self.args:
            return super().__repr__()
        return f"{type(self).__name__}({str(self)!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        # pickle and copy: the fields are keyword-only and live in slots.
        return (
            _restore_circuit_open_error,
            (type(self), self.args, self.retry_after, self.name),
            self.__dict__ or None,
        )


def _restore_circuit_open_error(
    cls: type[CircuitOpenError], args: tuple[Any, ...], retry_after: float, name: str
) -> CircuitOpenError:
    error = cls.__new__(cls, *args)
    error.retry_after = retry_after
    error.name = name
    return error


class RateLimitExceeded(ResilienceError):
    """A rate limiter could not grant permits within the allowed wait.

    ``retry_after`` is the number of seconds after which the request could be granted.
    """

    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class DeadlineExceeded(ResilienceError, TimeoutError):
    """A timeout or a :class:`~resilience.Deadline` ran out."""


class BackendUnavailable(ResilienceError, ConnectionError):
    """A shared-state backend (such as Redis) could not be reached."""
