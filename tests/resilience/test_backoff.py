"""Tests for resilience.backoff: bounds of every jitter kind, clamping, validation."""

from __future__ import annotations

import itertools
import math
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from resilience import Backoff, Jitter

KINDS = [j.value for j in Jitter]

bases = st.floats(min_value=0.0, max_value=100.0, allow_nan=False)
factors = st.floats(min_value=1.0, max_value=10.0, allow_nan=False)
extra_caps = st.floats(min_value=0.0, max_value=1e6, allow_nan=False)
spreads = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)
attempts = st.one_of(
    st.integers(min_value=1, max_value=200),
    st.integers(min_value=1, max_value=10**12),
    st.sampled_from([1, 2, 10_000, 10**9]),
)


@st.composite
def backoffs(draw: st.DrawFn, kind: str | None = None) -> Backoff:
    base = draw(bases)
    return Backoff(
        base=base,
        factor=draw(factors),
        cap=base + draw(extra_caps),
        jitter=kind or draw(st.sampled_from(KINDS)),
        spread=draw(spreads),
    )


def exact_exponential(b: Backoff, n: int) -> float:
    """Reference e(n) = min(base * factor**(n-1), cap) computed in log space."""
    if b.base == 0:
        return 0.0
    if b.factor == 1:
        return b.base
    log_value = math.log(b.base) + (n - 1) * math.log(b.factor)
    return b.cap if log_value >= math.log(b.cap) else min(b.cap, math.exp(log_value))


def bounds(b: Backoff, n: int) -> tuple[float, float]:
    """The documented range of compute(n) for each jitter kind."""
    e = exact_exponential(b, n)
    if b.jitter is Jitter.NONE:
        return e, e
    if b.jitter is Jitter.FULL:
        return 0.0, e
    if b.jitter is Jitter.EQUAL:
        return e / 2, e
    if b.jitter is Jitter.PROPORTIONAL:
        return e * (1 - b.spread), min(e * (1 + b.spread), b.cap)
    if b.base == 0:
        return 0.0, 0.0
    log_upper = math.log(b.base) + n * math.log(3.0)
    upper = b.cap if log_upper >= math.log(b.cap) else math.exp(log_upper)
    return b.base, upper


def close_le(a: float, b: float) -> bool:
    """a <= b up to float rounding."""
    return a <= b + 1e-9 * max(1.0, abs(b))


@given(backoffs(), attempts, st.integers(0, 2**32))
def test_compute_stays_within_documented_bounds(b: Backoff, n: int, seed: int) -> None:
    """compute(n) lies within the documented range of its jitter kind, and within [0, cap]."""
    low, high = bounds(b, n)
    delay = b.compute(n, random.Random(seed))
    assert 0.0 <= delay <= b.cap
    assert close_le(low, delay)
    assert close_le(delay, high)


@given(backoffs(), st.integers(0, 2**32))
def test_delays_stay_within_documented_bounds(b: Backoff, seed: int) -> None:
    """Each of the first 60 delays lies within its kind's range (decorrelated: vs previous)."""
    previous = b.base
    for n, delay in enumerate(itertools.islice(b.delays(random.Random(seed)), 60), start=1):
        assert 0.0 <= delay <= b.cap
        if b.jitter is Jitter.DECORRELATED:
            assert close_le(b.base, delay)
            assert close_le(delay, min(b.cap, 3 * previous))
            previous = delay
        else:
            low, high = bounds(b, n)
            assert close_le(low, delay) and close_le(delay, high)


@given(backoffs(kind="none"), attempts)
def test_no_jitter_is_exactly_the_exponential(b: Backoff, n: int) -> None:
    """Without jitter, compute(n) equals min(base*factor**(n-1), cap)."""
    assert b.compute(n) == pytest.approx(exact_exponential(b, n), rel=1e-9)
    assert b.exponential(n) == b.compute(n)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("n", [10_000, 10**9, 10**18])
def test_huge_attempt_numbers_do_not_overflow(kind: str, n: int) -> None:
    """compute() at attempt 10,000, 10**9 and 10**18 returns a finite value <= cap."""
    b = Backoff(base=0.5, factor=3.0, cap=30.0, jitter=kind)
    delay = b.compute(n, random.Random(1))
    assert math.isfinite(delay) and 0.0 <= delay <= 30.0
    if kind == "none":
        assert delay == 30.0


def test_extreme_ranges_do_not_overflow() -> None:
    """A tiny base with a huge cap goes through log space instead of overflowing."""
    b = Backoff(base=1e-300, factor=10.0, cap=1e300, jitter="none")
    assert b.compute(400) == pytest.approx(1e99, rel=1e-9)
    assert b.compute(10_000) == 1e300


def test_none_sequence_matches_the_original_design() -> None:
    """Default growth is 1, 2, 4, ... capped at 60."""
    b = Backoff(jitter="none")
    assert list(itertools.islice(b.delays(), 8)) == [1, 2, 4, 8, 16, 32, 60, 60]


def test_jitter_draws_cover_their_range() -> None:
    """Full jitter actually spreads (not a constant), so the randomness is wired in."""
    b = Backoff(base=10.0, cap=10.0, jitter="full")
    draws = [b.compute(1, random.Random(i)) for i in range(200)]
    assert min(draws) < 2.0 and max(draws) > 8.0


def test_proportional_never_exceeds_cap() -> None:
    """At the cap the ±spread range is cut at the cap (documented choice)."""
    b = Backoff(base=60.0, cap=60.0, jitter="proportional", spread=0.2)
    draws = [b.compute(5, random.Random(i)) for i in range(300)]
    assert max(draws) <= 60.0
    assert min(draws) >= 48.0
    assert min(draws) < 50.0


def test_seeded_rng_is_reproducible() -> None:
    """The same seed gives the same sequence (deterministic tests)."""
    b = Backoff(jitter="decorrelated")
    first = list(itertools.islice(b.delays(random.Random(7)), 20))
    second = list(itertools.islice(b.delays(random.Random(7)), 20))
    assert first == second


def test_jitter_accepts_enum_and_string_and_normalises() -> None:
    """The jitter field is normalised to the Jitter enum; equal configs compare equal."""
    assert Backoff(jitter="equal").jitter is Jitter.EQUAL
    assert Backoff(jitter=Jitter.EQUAL) == Backoff(jitter="equal")
    assert hash(Backoff(jitter="equal")) == hash(Backoff(jitter=Jitter.EQUAL))


def test_backoff_is_frozen_and_slotted() -> None:
    """Backoff cannot be mutated and has no instance __dict__."""
    b = Backoff()
    with pytest.raises(AttributeError):
        b.base = 3.0  # type: ignore[misc]
    assert not hasattr(b, "__dict__")


@pytest.mark.parametrize(
    ("kwargs", "error", "param"),
    [
        ({"base": -1.0}, ValueError, "base"),
        ({"base": math.nan}, ValueError, "base"),
        ({"base": math.inf, "cap": math.inf}, ValueError, "base"),
        ({"factor": 0.5}, ValueError, "factor"),
        ({"factor": math.nan}, ValueError, "factor"),
        ({"factor": math.inf}, ValueError, "factor"),
        ({"cap": 0.5}, ValueError, "cap"),
        ({"cap": math.inf}, ValueError, "cap"),
        ({"cap": -1.0}, ValueError, "cap"),
        ({"jitter": "gaussian"}, ValueError, "jitter"),
        ({"spread": 1.5}, ValueError, "spread"),
        ({"spread": -0.1}, ValueError, "spread"),
        ({"base": "1"}, TypeError, "base"),
        ({"factor": True}, TypeError, "factor"),
        ({"cap": None}, TypeError, "cap"),
    ],
)
def test_invalid_values_name_the_parameter(
    kwargs: dict[str, object], error: type[Exception], param: str
) -> None:
    """Each bad value raises ValueError/TypeError whose message names the parameter."""
    with pytest.raises(error, match=param):
        Backoff(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(("bad", "error"), [(0, ValueError), (-3, ValueError), (1.5, TypeError)])
def test_compute_rejects_bad_attempt(bad: object, error: type[Exception]) -> None:
    """compute() needs a 1-based int attempt and names the parameter."""
    with pytest.raises(error, match="attempt"):
        Backoff().compute(bad)  # type: ignore[arg-type]


def test_zero_backoff_never_waits() -> None:
    """Backoff(base=0, cap=0) yields zeros for every kind."""
    for kind in KINDS:
        b = Backoff(base=0.0, cap=0.0, jitter=kind)
        assert set(itertools.islice(b.delays(), 10)) == {0.0}
        assert b.compute(10**6) == 0.0
