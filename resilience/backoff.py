"""Backoff: pure delay maths (exponential growth, a cap, and jitter).

``Backoff(base, factor, cap, jitter)`` describes the waits *before* retry 1, 2, 3, ...  The
un-jittered ("exponential") value before retry ``n`` is::

    e(n) = min(base * factor ** (n - 1), cap)

and each jitter kind draws the actual wait from it (``u`` is uniform in ``[0, 1)``):

=================  ==========================================  ================================
jitter             wait before retry ``n``                     bounds
=================  ==========================================  ================================
``none``           ``e(n)``                                    exactly ``e(n)``
``full``           ``u * e(n)``                                ``[0, e(n)]``
``equal``          ``e(n) / 2 + u * e(n) / 2``                 ``[e(n) / 2, e(n)]``
``proportional``   uniform in ``[e(n)(1 - spread),``           ``[e(n)(1 - spread),
                   ``min(e(n)(1 + spread), cap)]``              min(e(n)(1 + spread), cap)]``
``decorrelated``   ``min(cap, uniform(base, 3 * d(n - 1)))``   ``[base, min(cap, 3 d(n - 1))]``
                   with ``d(0) = base`` (AWS "decorrelated
                   jitter"; ``factor`` is not used)
=================  ==========================================  ================================

**The cap is a hard ceiling for every kind**: no wait is ever above ``cap`` (nor below 0).
``proportional`` is the ±20 % jitter of the original design (``spread=0.2``); where
``e(n) * (1 + spread)`` would cross the cap, the upper end of its range is cut to ``cap``
(the original sketch could wait up to ``1.2 * max_delay``; here ``cap`` means what it says).

``decorrelated`` depends on the previous wait, so the sequence lives in :meth:`Backoff.delays`;
:meth:`Backoff.compute` (stateless) draws the ``n``-th decorrelated wait uniformly from the
range it could take, ``[base, min(cap, base * 3 ** n)]``.

The exponent is clamped, so ``compute(10_000)`` or ``compute(10 ** 9)`` is just ``cap`` (with
its jitter) and never overflows.  Instances are immutable and thread-safe; randomness comes
from the ``rng`` argument (a :class:`random.Random`) or, when it is ``None``, from the
:mod:`random` module's shared generator.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import Enum
from typing import Literal

__all__ = ["Backoff", "Jitter", "JitterName"]

#: Default first wait, growth factor and ceiling, in seconds.
DEFAULT_BASE = 1.0
DEFAULT_FACTOR = 2.0
DEFAULT_CAP = 60.0
#: Default half-width of the ``proportional`` jitter (±20 %, the original design).
DEFAULT_SPREAD = 0.2
#: Multiplier of AWS's decorrelated jitter: the next wait is at most 3 times the previous one.
DECORRELATED_MULTIPLIER = 3.0


class Jitter(str, Enum):
    """How a :class:`Backoff` randomises its waits (values are the accepted strings)."""

    NONE = "none"
    FULL = "full"
    EQUAL = "equal"
    DECORRELATED = "decorrelated"
    PROPORTIONAL = "proportional"


JitterName = Literal["none", "full", "equal", "decorrelated", "proportional"]

_JITTER_NAMES = ", ".join(repr(j.value) for j in Jitter)


def _check_real(name: str, value: object) -> float:
    """Return ``value`` as a float, raising TypeError naming ``name`` if it is not a number."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    result = float(value)
    if not math.isfinite(result):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return result


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential backoff with a cap and jitter; pure maths, immutable, thread-safe.

    ``base`` (seconds, >= 0): the un-jittered wait before retry 1.
    ``factor`` (>= 1): growth per retry.  ``cap`` (seconds, >= ``base``): ceiling for every wait.
    ``jitter``: a :class:`Jitter` or its string value.  ``spread`` (0..1): half-width of the
    ``proportional`` jitter as a fraction of the exponential value.

    All values must be finite.  ``Backoff(base=0, cap=0)`` never waits.
    """

    base: float = DEFAULT_BASE
    factor: float = DEFAULT_FACTOR
    cap: float = DEFAULT_CAP
    jitter: Jitter | JitterName = Jitter.FULL
    spread: float = DEFAULT_SPREAD
    # Retry index (0-based exponent) from which e(n) is surely the cap; None: never.
    _cap_exponent: int | None = field(init=False, repr=False, compare=False, default=None)
    _log_base: float = field(init=False, repr=False, compare=False, default=0.0)
    _log_factor: float = field(init=False, repr=False, compare=False, default=0.0)

    def __post_init__(self) -> None:
        base = _check_real("base", self.base)
        factor = _check_real("factor", self.factor)
        cap = _check_real("cap", self.cap)
        spread = _check_real("spread", self.spread)
        if base < 0:
            raise ValueError(f"base must be >= 0, got {self.base!r}")
        if factor < 1:
            raise ValueError(f"factor must be >= 1, got {self.factor!r}")
        if cap < base:
            raise ValueError(f"cap must be >= base ({self.base!r}), got {self.cap!r}")
        if not 0 <= spread <= 1:
            raise ValueError(f"spread must be within [0, 1], got {self.spread!r}")
        try:
            jitter = Jitter(self.jitter)
        except ValueError:
            raise ValueError(
                f"jitter must be one of {_JITTER_NAMES}, got {self.jitter!r}"
            ) from None
        setattr_ = object.__setattr__
        setattr_(self, "base", base)
        setattr_(self, "factor", factor)
        setattr_(self, "cap", cap)
        setattr_(self, "spread", spread)
        setattr_(self, "jitter", jitter)
        if base > 0 and factor > 1:
            log_base, log_factor = math.log(base), math.log(factor)
            # base * factor**k >= cap once k >= (log cap - log base) / log factor; +2 absorbs
            # rounding, and min(., cap) handles the few exponents below the clamp.
            setattr_(self, "_cap_exponent", int((math.log(cap) - log_base) / log_factor) + 2)
            setattr_(self, "_log_base", log_base)
            setattr_(self, "_log_factor", log_factor)

    # -- the maths --------------------------------------------------------------------------

    def exponential(self, attempt: int) -> float:
        """The un-jittered wait before retry ``attempt`` (1-based), ``e(n)`` above."""
        _check_attempt(attempt)
        return self._exponential(attempt - 1)

    def _exponential(self, k: int) -> float:
        limit = self._cap_exponent
        if limit is None:  # base == 0 or factor == 1: constant
            return self.base
        if k >= limit:
            return self.cap
        try:
            value = self.base * self.factor**k
        except OverflowError:  # tiny base, huge factor**k: go through logarithms
            value = math.exp(self._log_base + k * self._log_factor)
        return value if value < self.cap else self.cap

    def compute(self, attempt: int, rng: random.Random | None = None) -> float:
        """One jittered wait before retry ``attempt`` (1-based), always within ``[0, cap]``.

        Stateless: for ``decorrelated`` it draws from ``[base, min(cap, base * 3**attempt)]``,
        the range the ``attempt``-th wait of :meth:`delays` can take.
        """
        _check_attempt(attempt)
        if self.jitter is Jitter.DECORRELATED:
            upper = self._decorrelated_upper(attempt)
            u = (rng or random).random()
            return self._clamp(self.base + (upper - self.base) * u)
        return self._next(attempt, 0.0, rng)

    def _decorrelated_upper(self, attempt: int) -> float:
        if self.base == 0:
            return 0.0
        # base * 3**attempt >= cap once attempt >= log(cap/base)/log(3); clamp the exponent.
        if attempt * math.log(DECORRELATED_MULTIPLIER) >= math.log(self.cap) - math.log(self.base):
            return self.cap
        return min(self.cap, self.base * DECORRELATED_MULTIPLIER**attempt)

    def _clamp(self, value: float) -> float:
        if value > self.cap:
            return self.cap
        return value if value > 0.0 else 0.0

    def _next(self, attempt: int, previous: float, rng: random.Random | None) -> float:
        """The wait before retry ``attempt`` given the previous wait (used by decorrelated).

        ``previous`` is ignored by every other kind.  Internal: callers validate ``attempt``.
        """
        jitter = self.jitter
        if jitter is Jitter.DECORRELATED:
            prev = previous if previous > 0.0 else self.base
            upper = min(self.cap, prev * DECORRELATED_MULTIPLIER)
            if upper <= self.base:
                return self.base
            u = (rng or random).random()
            return self._clamp(self.base + (upper - self.base) * u)
        e = self._exponential(attempt - 1)
        if jitter is Jitter.NONE or e == 0.0:
            return e
        u = (rng or random).random()
        if jitter is Jitter.FULL:
            return self._clamp(e * u)
        if jitter is Jitter.EQUAL:
            return self._clamp(e / 2 + (e / 2) * u)
        # proportional
        low = e * (1.0 - self.spread)
        high = min(e * (1.0 + self.spread), self.cap)
        return self._clamp(low + (high - low) * u)

    def delays(self, rng: random.Random | None = None) -> Iterator[float]:
        """Yield the waits before retry 1, 2, 3, ... forever (each within ``[0, cap]``)."""
        previous = 0.0
        attempt = 1
        while True:
            previous = self._next(attempt, previous, rng)
            yield previous
            attempt += 1


def _check_attempt(attempt: int) -> None:
    if isinstance(attempt, bool) or not isinstance(attempt, int):
        raise TypeError(f"attempt must be an int, got {type(attempt).__name__}")
    if attempt < 1:
        raise ValueError(f"attempt must be >= 1, got {attempt!r}")
