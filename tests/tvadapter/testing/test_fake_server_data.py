"""Fake server data: resolutions, calendars, timelines, bar values, catalogue, tokens."""

from __future__ import annotations

import itertools
from datetime import date, datetime, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tvadapter.testing import FakeTradingView
from tvadapter.testing._catalogue import default_catalogue
from tvadapter.testing._data import Timeline, bar_series, parse_resolution
from tvadapter.testing._http import search
from tvadapter.testing._tokens import make_token, parse_token


def utc(t: float) -> datetime:
    return datetime.fromtimestamp(t, timezone.utc)


@pytest.mark.parametrize(
    ("code", "key", "custom"),
    [
        ("1", "1T", False),
        ("45", "45T", False),
        ("60", "60T", False),
        ("1H", "60T", False),
        ("4H", "240T", False),
        ("240", "240T", False),
        ("188", "188T", True),
        ("6H", "360T", True),
        ("D", "1D", False),
        ("1D", "1D", False),
        ("2D", "2D", True),
        ("W", "1W", False),
        ("1M", "1M", False),
        ("3M", "3M", False),
        ("12M", "12M", False),
        ("5M", "5M", True),
        ("1S", "1S", True),
        ("30S", "30S", True),
    ],
)
def test_parse_resolution(code, key, custom):
    """Resolution codes parse to canonical keys; seconds and odd counts are custom."""
    res = parse_resolution(code)
    assert res is not None
    assert (res.key, res.is_custom) == (key, custom)


@pytest.mark.parametrize("code", ["", "XX", "0", "-1", "1X", "13M", 60, None, "1.5"])
def test_parse_resolution_rejects_garbage(code):
    """Anything else is not a resolution."""
    assert parse_resolution(code) is None


def timeline(symbol: str, code: str, anchor: datetime, depth: int = 400) -> list[int]:
    inst = default_catalogue().get(symbol)
    assert inst is not None
    res = parse_resolution(code)
    assert res is not None
    tl = Timeline(inst.calendar, res, anchor=int(anchor.timestamp()), depth=depth,
                  listed=inst.listed)  # fmt: skip
    return tl.times(tl.history_len)


def test_daily_bars_sit_at_the_session_open_with_dst():
    """US daily bars open 13:30 UTC in summer, 14:30 UTC in winter; NSE 03:45; crypto 00:00."""
    summer = timeline("NASDAQ:AAPL", "1D", datetime(2025, 6, 13, 22, tzinfo=timezone.utc), 5)
    winter = timeline("NASDAQ:AAPL", "1D", datetime(2025, 1, 17, 22, tzinfo=timezone.utc), 5)
    assert {utc(t).strftime("%H:%M") for t in summer} == {"13:30"}
    assert {utc(t).strftime("%H:%M") for t in winter} == {"14:30"}
    nse = timeline("NSE:RELIANCE", "1D", datetime(2025, 6, 13, 22, tzinfo=timezone.utc), 5)
    assert {utc(t).strftime("%H:%M") for t in nse} == {"03:45"}
    crypto = timeline("BINANCE:BTCUSDT", "1D", datetime(2025, 6, 15, 22, tzinfo=timezone.utc), 7)
    assert {utc(t).strftime("%H:%M") for t in crypto} == {"00:00"}
    assert {utc(t).weekday() for t in crypto} == set(range(7))  # weekends included


def test_stocks_skip_weekends_and_holidays():
    """Stock calendars have no Saturday, Sunday, New Year's Day or Christmas bars."""
    times = timeline("NYSE:IBM", "1D", datetime(2025, 1, 10, 22, tzinfo=timezone.utc), 400)
    days = {utc(t).date() for t in times}
    assert all(d.weekday() < 5 for d in days)
    assert date(2024, 12, 25) not in days and date(2025, 1, 1) not in days
    assert date(2024, 12, 24) in days


def test_intraday_bars_stay_inside_the_session():
    """Hourly US bars run 13:30..19:30 UTC in summer (09:30..15:30 New York), 7 per day."""
    times = timeline("NASDAQ:AAPL", "60", datetime(2025, 6, 13, 22, tzinfo=timezone.utc), 70)
    per_day: dict[date, list[str]] = {}
    for t in times:
        per_day.setdefault(utc(t).date(), []).append(utc(t).strftime("%H:%M"))
    for hours in per_day.values():
        assert hours == ["13:30", "14:30", "15:30", "16:30", "17:30", "18:30", "19:30"]


def test_weekly_and_monthly_bars_open_the_period():
    """Weekly bars open on the week's first session, monthly on the month's first session."""
    anchor = datetime(2025, 6, 13, 22, tzinfo=timezone.utc)
    weekly = timeline("NASDAQ:AAPL", "1W", anchor, 10)
    assert all(utc(t).weekday() == 0 for t in weekly)
    monthly = timeline("NASDAQ:AAPL", "1M", anchor, 12)
    assert all(utc(t).day <= 3 for t in monthly)
    assert len({(utc(t).year, utc(t).month) for t in monthly}) == 12
    quarterly = timeline("NASDAQ:AAPL", "3M", anchor, 4)
    assert [utc(t).month for t in quarterly] == [7, 10, 1, 4]


def test_timelines_extend_forward_continuing_the_grid():
    """Extending a timeline forward continues the same grid (for live mode)."""
    inst = default_catalogue().get("NSE:TCS")
    res = parse_resolution("15")
    assert inst is not None and res is not None
    anchor = int(datetime(2025, 6, 13, 22, tzinfo=timezone.utc).timestamp())
    tl = Timeline(inst.calendar, res, anchor=anchor, depth=100, listed=inst.listed)
    n = tl.history_len
    extended = tl.times(n + 30)
    assert extended[:n] == tl.times(n)
    assert all(a < b for a, b in itertools.pairwise(extended))
    assert utc(extended[n]).date() == date(2025, 6, 16)  # Monday after the Friday anchor
    assert utc(extended[n]).strftime("%H:%M") == "03:45"


def test_history_is_finite_and_starts_at_listing():
    """Daily history starts at the listing date, intraday at the configured depth."""
    tv = FakeTradingView(data_end=datetime(2025, 6, 13, 22, tzinfo=timezone.utc).timestamp())
    inst = tv.instrument("NASDAQ:AAPL")
    daily = tv.bars("NASDAQ:AAPL", "1D")
    assert utc(daily[0].time).date() >= inst.listed
    assert (utc(daily[0].time).date() - inst.listed).days < 7
    assert tv.history_depth("NASDAQ:AAPL", "1") == 30_000
    small = FakeTradingView(history_depth=lambda sym, res: 123 if res == "5" else None)
    assert small.history_depth("NYSE:IBM", "5") == 123
    assert small.history_depth("NYSE:IBM", "15") == 30_000


@settings(max_examples=150)
@given(
    seed=st.integers(0, 2**64 - 1),
    base=st.floats(1e-5, 1e6),
    start=st.integers(0, 2_000_000_000),
    steps=st.lists(st.integers(1, 40 * 86_400), min_size=1, max_size=20),
    pricescale=st.sampled_from([1, 100, 10_000, 100_000_000]),
)
def test_bar_values_are_consistent(seed, base, start, steps, pricescale):
    """OHLC are positive-or-zero with low <= open, close <= high; each close is the next open."""
    times = [start]
    for step in steps:
        times.append(times[-1] + step)
    bars = bar_series(seed, base, times, pricescale=pricescale, volume_base=1e6)
    assert len(bars) == len(steps)
    for o, h, low, c, v in bars:
        assert low <= min(o, c) <= max(o, c) <= h
        assert low >= 0 and v is not None and v >= 0
    for (_, _, _, c, _), (o, _, _, _, _) in itertools.pairwise(bars):
        assert c == o
    assert bar_series(seed, base, times, pricescale=pricescale, volume_base=1e6) == bars


def test_same_data_end_gives_the_same_bars():
    """Two servers with the same data_end serve identical data (determinism)."""
    end = datetime(2025, 3, 7, 22, tzinfo=timezone.utc).timestamp()
    a = FakeTradingView(data_end=end).bars("NSE:INFY", "30", 300)
    b = FakeTradingView(data_end=end).bars("NSE:INFY", "30", 300)
    assert a == b
    assert len(a) == 300


def test_catalogue_spans_exchanges_and_special_symbols():
    """A few hundred symbols including the ones the protocol notes call out."""
    cat = default_catalogue()
    assert len(cat) >= 300
    for name in ("NASDAQ:AAPL", "NYSE:IBM", "NSE:RELIANCE", "BINANCE:BTCUSDT.P", "BITSTAMP:BTCUSD",
                 "OANDA:EURUSD", "FX:EURUSD", "CME_MINI:ES1!", "CME_MINI:ES2!", "MCX:CRUDEOIL1!",
                 "SP:SPX", "NASDAQ:NDX", "HOSE:VCB", "KRX:005930"):  # fmt: skip
        assert name in cat, name
    assert cat.get("SP:SPX").volume_base is None  # type: ignore[union-attr]
    assert {"NASDAQ", "NYSE", "NSE", "BINANCE", "BITSTAMP", "OANDA", "MCX"} <= set(cat.exchanges())


def test_search_function_filters_and_pages():
    """search(): exchange and type filters, paging past the end returns nothing."""
    cat = default_catalogue()
    result = search(cat, "EURUSD", exchange="OANDA")
    assert [s["symbol"] for s in result["symbols"]] == ["EURUSD"]
    assert search(cat, "", search_type="index")["symbols"]
    assert all(s["type"] == "index" for s in search(cat, "", search_type="index")["symbols"])
    assert search(cat, "AAPL", start=10_000) == {"symbols_remaining": 0, "symbols": []}


def test_tokens_round_trip_and_reject_garbage():
    """make_token/parse_token agree; malformed tokens parse to None."""
    token = make_token(user_id=7, iat=1_700_000_000, plan="pro")
    claims = parse_token(token)
    assert claims is not None
    assert (claims.user_id, claims.plan, claims.exp - claims.iat) == (7, "pro", 14_400)
    for bad in ("", "a.b", "a.b.c", "x" * 50, token.replace(".", "", 1), "..."):
        assert parse_token(bad) is None


@given(st.text(max_size=200))
def test_parse_token_never_raises(text):
    """parse_token returns claims or None for any text."""
    parse_token(text)


def test_ground_truth_argument_errors():
    """bars() rejects unknown symbols and resolutions."""
    tv = FakeTradingView()
    with pytest.raises(KeyError):
        tv.bars("NASDAQ:NOPE", "1D")
    with pytest.raises(ValueError, match="resolution"):
        tv.bars("NASDAQ:AAPL", "XX")
    with pytest.raises(ValueError, match="n must"):
        tv.bars("NASDAQ:AAPL", "1D", -1)
