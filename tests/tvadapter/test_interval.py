"""Tests of tvadapter.interval: tvDatafeed's Interval enum and resolution codes."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tvadapter import ConfigurationError
from tvadapter.interval import Interval, resolution, seconds_per_bar

TVDATAFEED_INTERVALS = {
    "in_1_minute": "1",
    "in_3_minute": "3",
    "in_5_minute": "5",
    "in_15_minute": "15",
    "in_30_minute": "30",
    "in_45_minute": "45",
    "in_1_hour": "1H",
    "in_2_hour": "2H",
    "in_3_hour": "3H",
    "in_4_hour": "4H",
    "in_daily": "1D",
    "in_weekly": "1W",
    "in_monthly": "1M",
}


def test_members_match_tvdatafeed() -> None:
    """Interval has exactly tvDatafeed's 13 member names with the same values, in order."""
    assert {m.name: m.value for m in Interval} == TVDATAFEED_INTERVALS
    assert [m.name for m in Interval] == list(TVDATAFEED_INTERVALS)


@pytest.mark.parametrize(
    ("text", "member"),
    [
        ("1H", Interval.in_1_hour),
        ("60", Interval.in_1_hour),
        ("1h", Interval.in_1_hour),
        ("120", Interval.in_2_hour),
        ("240", Interval.in_4_hour),
        ("D", Interval.in_daily),
        ("1d", Interval.in_daily),
        ("W", Interval.in_weekly),
        ("M", Interval.in_monthly),
        ("45", Interval.in_45_minute),
        (" 15 ", Interval.in_15_minute),
    ],
)
def test_value_lookup_accepts_equivalent_spellings(text: str, member: Interval) -> None:
    """Interval(text) maps the server's equivalent spellings onto the tvDatafeed member."""
    assert Interval(text) is member


@pytest.mark.parametrize("text", ["1m", "1440", "7D", "abc", "", "0", "-5", "1.5H", "5S", "H1"])
def test_value_lookup_rejects_non_members(text: str) -> None:
    """Spellings that are no member (or ambiguous like '1m') raise ValueError."""
    with pytest.raises(ValueError):
        Interval(text)


@pytest.mark.parametrize(
    ("value", "code"),
    [
        (Interval.in_daily, "1D"),
        (Interval.in_1_minute, "1"),
        ("60", "1H"),
        ("D", "1D"),
        ("5s", "5S"),
        ("188", "188"),
        ("1440", "1440"),
        ("3M", "3M"),
        ("12M", "12M"),
        ("2w", "2W"),
    ],
)
def test_resolution_codes(value: Interval | str, code: str) -> None:
    """resolution() sends member values for members and normalised codes otherwise."""
    assert resolution(value) == code


@pytest.mark.parametrize("value", ["", "x", "1.5", "H1", "0", "1m", 60, None, "1HH"])
def test_resolution_rejects_garbage(value: object) -> None:
    """Anything that is not a resolution raises ConfigurationError naming 'interval'."""
    with pytest.raises(ConfigurationError, match="interval"):
        resolution(value)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (Interval.in_1_minute, 60),
        (Interval.in_45_minute, 2_700),
        (Interval.in_4_hour, 14_400),
        (Interval.in_daily, 86_400),
        (Interval.in_weekly, 604_800),
        (Interval.in_monthly, 2_592_000),
        ("5S", 5),
        ("188", 11_280),
    ],
)
def test_seconds_per_bar(value: Interval | str, seconds: int) -> None:
    """seconds_per_bar gives the nominal bar length (months as 30 days)."""
    assert seconds_per_bar(value) == seconds
    if isinstance(value, Interval):
        assert value.seconds == seconds


@given(
    count=st.integers(min_value=1, max_value=99_999),
    unit=st.sampled_from(["", "S", "s", "H", "h", "D", "d", "W", "w", "M"]),
)
def test_resolution_is_idempotent(count: int, unit: str) -> None:
    """Normalising a normalised code changes nothing, and it keeps the bar length."""
    code = resolution(f"{count}{unit}")
    assert resolution(code) == code
    assert seconds_per_bar(code) == seconds_per_bar(f"{count}{unit}")
