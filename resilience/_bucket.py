"""Token-bucket decision maths (private): state + now -> grant, or the exact wait.

Theory of operation
-------------------
A bucket of ``capacity`` tokens refilled at ``rate`` tokens per second is stored as a single
number, ``empty_at``: the (virtual) time at which the bucket was, or will be, empty.  The
number of tokens at time ``now`` is::

    tokens(now) = min(capacity, (now - empty_at) * rate)

With ``interval = 1 / rate`` and ``fill = capacity * interval`` (the time to refill an empty
bucket), taking ``n`` tokens at ``now`` is decided by::

    start = max(empty_at, now - fill)        # a full bucket never holds more than capacity
    after = start + n * interval             # empty_at once the n tokens are taken
    granted  <=>  after <= now               # (plus a rounding slack, see EPSILON below)
    wait      =   after - now                # when refused: exact seconds until it would pass

This is the "generic cell rate algorithm" form of a token bucket: one float of state, no
refill bookkeeping, and the wait comes out of the same subtraction.

Why the window bound holds: after each grant ``k`` at time ``t_k``, ``empty_at_k <= t_k`` and
``empty_at_k >= empty_at_(k-1) + n_k * interval``.  Summing grants ``i..j``::

    t_j >= empty_at_j >= (t_i - fill) + (n_i + ... + n_j) * interval

so ``n_i + ... + n_j <= capacity + rate * (t_j - t_i)``: in any window of length ``W`` at
most ``capacity + rate * W`` tokens are granted (``t`` being the time read when deciding).
And after ``fill`` seconds without grants, ``now - fill >= empty_at``, so ``capacity``
tokens are granted at once.

``EPSILON`` absorbs float rounding (``(now - fill) + capacity * interval`` can land one ulp
above ``now``): a request passes if ``after <= now + eps`` with
``eps = EPSILON * max(1, fill)``; the bound above therefore holds up to ``rate * eps``, i.e.
at most ``1e-9 * max(rate, capacity)`` of a token, once (it does not accumulate).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["EPSILON", "BucketMath", "check_positive", "check_timeout"]

#: Relative rounding slack of a decision, in units of ``max(1 s, fill time)``.
EPSILON = 1e-9


def check_positive(name: str, value: object) -> float:
    """``value`` as a float if it is a finite number > 0; else TypeError/ValueError naming it."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    result = float(value)
    if not (math.isfinite(result) and result > 0):
        raise ValueError(f"{name} must be finite and > 0, got {value!r}")
    return result


def check_timeout(timeout: object) -> float | None:
    """``timeout`` as a float (finite, >= 0) or None; TypeError/ValueError naming ``timeout``."""
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise TypeError(f"timeout must be a real number or None, got {type(timeout).__name__}")
    result = float(timeout)
    if math.isnan(result) or result < 0:
        raise ValueError(f"timeout must be >= 0 or None, got {timeout!r}")
    return result


@dataclass(frozen=True, slots=True)
class BucketMath:
    """The constants of one bucket and its pure decision function.  Immutable, thread-safe."""

    rate: float
    capacity: float
    interval: float
    fill: float
    eps: float

    @classmethod
    def create(cls, rate: object, capacity: object) -> BucketMath:
        """Validate ``rate`` (tokens/s) and ``capacity`` (tokens) and derive the constants."""
        r = check_positive("rate", rate)
        c = check_positive("capacity", capacity)
        interval = 1.0 / r
        if not math.isfinite(interval) or interval <= 0:
            raise ValueError(f"rate must be a representable positive rate, got {rate!r}")
        fill = c * interval
        if not math.isfinite(fill):
            raise ValueError(f"capacity / rate must be finite, got {capacity!r} / {rate!r}")
        return cls(r, c, interval, fill, EPSILON * max(1.0, fill))

    def cost(self, tokens: object) -> float:
        """Seconds of refill that ``tokens`` represent; validates ``tokens`` (0 < n <= capacity)."""
        n = check_positive("tokens", tokens)
        if n > self.capacity:
            raise ValueError(
                f"tokens ({tokens!r}) exceeds capacity ({self.capacity!r}): "
                "it could never be granted"
            )
        return n * self.interval

    def initial(self, now: float) -> float:
        """``empty_at`` of a full bucket at ``now``."""
        return now - self.fill

    def decide(self, empty_at: float, now: float, cost: float) -> tuple[float, float]:
        """Return ``(after, wait)``: granted iff ``wait <= 0``, then the new state is ``after``.

        ``cost`` is ``tokens * interval`` (see :meth:`cost`).  When refused, ``wait`` is the
        exact number of seconds after which the same request would be granted, provided
        nothing else is taken meanwhile.
        """
        start = now - self.fill
        start = max(start, empty_at)
        after = start + cost
        wait = after - now
        if wait <= self.eps:
            return after, 0.0
        return after, wait

    def tokens(self, empty_at: float, now: float) -> float:
        """Tokens available at ``now`` in state ``empty_at`` (for display; never negative)."""
        return max(0.0, min(self.capacity, (now - empty_at) * self.rate))

    def queue_wait(self, empty_at: float, now: float, queued_cost: float) -> float:
        """Seconds until a request behind ``queued_cost`` of FIFO waiters (itself included)
        could be granted, if every waiter ahead is served as early as possible; 0 if now."""
        start = now - self.fill
        start = max(start, empty_at)
        wait = start + queued_cost - now
        return wait if wait > self.eps else 0.0
