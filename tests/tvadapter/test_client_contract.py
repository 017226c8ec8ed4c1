"""Black-box contract tests of issues 4 and 5, written from the issues alone.

Only public names are used (``tvadapter``'s top level, ``tvadapter.cli.main`` and
``tvadapter.testing``), the way an outside checker would: the configuration and its ``TV_*``
variables, the one Origin header, the WebSocketManager surface, tvDatafeed's drop-in
``get_hist`` (shape, symbol rules, intervals, pagination, ranges), login variants, typed errors
for every fault of issue 4 within the deadline and with no thread left, metrics, the live feed,
the bulk download and the CLI.  Each test compares with the fake server's ground truth
(``tv.bars(...)``) value by value where data comes back.
"""

from __future__ import annotations

import dataclasses
import gc
import inspect
import io
import logging
import math
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from typing import Any

import numpy as np
import pandas as pd
import pytest

import tvadapter
from tvadapter import (
    AuthenticationError,
    CaptchaRequiredError,
    ConfigurationError,
    Interval,
    NetworkConfig,
    ProtocolError,
    RateLimitedError,
    SymbolNotFoundError,
    TokenExpiredError,
    TvConnectionError,
    TvDatafeed,
    TvDatafeedLive,
    TvError,
    TvTimeoutError,
    TwoFactorRequiredError,
    WebSocketManager,
    cli,
)
from tvadapter.testing import (
    Drop,
    FakeTradingView,
    HugeFrame,
    Latency,
    Malformed,
    RejectHandshake,
    RequestRate,
    SlowDrip,
    Stall,
    first,
)

Factory = Callable[..., FakeTradingView]

TV_ORIGIN = "https://www.tradingview.com"


# -- helpers -------------------------------------------------------------------------------------


def config_for(tv: FakeTradingView, **overrides: Any) -> NetworkConfig:
    """Point a config at the fake server, with short timeouts and a generous rate limit."""
    options: dict[str, Any] = {
        "ws_url": tv.ws_url,
        "search_url": tv.search_url,
        "signin_url": tv.signin_url,
        "connect_timeout": 2.0,
        "send_timeout": 2.0,
        "recv_timeout": 2.0,
        "max_retries": 4,
        "base_retry_delay": 0.01,
        "max_retry_delay": 0.05,
        "requests_per_minute": 100_000,
        "burst_size": 1_000,
    }
    options.update(overrides)
    return NetworkConfig(**options)


def check_frame(frame: pd.DataFrame, truth: list[Any], symbol: str) -> None:
    """``frame`` is tvDatafeed-shaped (UTC index) and equals the server's bars value by value."""
    assert isinstance(frame, pd.DataFrame)
    assert list(frame.columns) == ["symbol", "open", "high", "low", "close", "volume"]
    for column in ("open", "high", "low", "close", "volume"):
        assert frame[column].dtype == np.float64, column
    assert frame.index.name == "datetime"
    assert isinstance(frame.index, pd.DatetimeIndex)
    assert str(frame.index.tz) == "UTC"
    assert frame.index.is_monotonic_increasing and frame.index.is_unique
    assert len(frame) == len(truth), (len(frame), len(truth))
    times = pd.to_datetime([bar.time for bar in truth], unit="s", utc=True)
    assert (frame.index == times).all()
    for column in ("open", "high", "low", "close"):
        want = np.array([getattr(bar, column) for bar in truth], dtype=np.float64)
        assert np.array_equal(frame[column].to_numpy(), want), column
    volume = np.array([math.nan if b.volume is None else b.volume for b in truth])
    assert np.array_equal(frame["volume"].to_numpy(), volume, equal_nan=True)
    assert (frame["symbol"] == symbol).all()


@contextmanager
def no_thread_left(grace: float = 5.0) -> Iterator[None]:
    """Every thread started in the block has ended shortly after it."""
    before = set(threading.enumerate())
    yield
    deadline = time.monotonic() + grace
    extra: list[str] = []
    while time.monotonic() < deadline:
        extra = [t.name for t in threading.enumerate() if t not in before and t.is_alive()]
        if not extra:
            return
        time.sleep(0.02)
    raise AssertionError(f"threads left running: {extra}")


# -- NetworkConfig -------------------------------------------------------------------------------

ORIGINAL_DEFAULTS = {
    "connect_timeout": 10.0,
    "send_timeout": 5.0,
    "recv_timeout": 30.0,
    "max_retries": 3,
    "base_retry_delay": 2.0,
    "max_retry_delay": 60.0,
    "burst_size": 10,
    "reuse_connections": True,
    "max_connection_age": 300.0,
}

ISSUE_ENV = {
    "TV_WS_URL": ("ws_url", "ws://127.0.0.1:9/socket.io/websocket", "http://x"),
    "TV_SEARCH_URL": ("search_url", "http://127.0.0.1:9/search/", "ftp://x"),
    "TV_SIGNIN_URL": ("signin_url", "http://127.0.0.1:9/signin/", "not a url"),
    "TV_CONNECT_TIMEOUT": ("connect_timeout", "3.5", "-1"),
    "TV_SEND_TIMEOUT": ("send_timeout", "4", "abc"),
    "TV_RECV_TIMEOUT": ("recv_timeout", "7.25", "0"),
    "TV_MAX_RETRIES": ("max_retries", "6", "2.5"),
    "TV_BASE_RETRY_DELAY": ("base_retry_delay", "0.5", "nan"),
    "TV_MAX_RETRY_DELAY": ("max_retry_delay", "9", "-3"),
    "TV_REQUESTS_PER_MINUTE": ("requests_per_minute", "30", "0"),
    "TV_BURST_SIZE": ("burst_size", "4", "many"),
}


def test_config_has_the_original_fields_and_defaults() -> None:
    """NetworkConfig keeps the original design's fields and defaults, real endpoints, frozen."""
    config = NetworkConfig()
    names = {f.name for f in dataclasses.fields(config)}
    assert set(ORIGINAL_DEFAULTS) | {"ws_url", "ws_headers", "requests_per_minute"} <= names
    assert {"search_url", "signin_url"} <= names
    for name, value in ORIGINAL_DEFAULTS.items():
        assert getattr(config, name) == value, name
    assert config.ws_url.startswith("wss://data.tradingview.com/socket.io/websocket")
    assert "tradingview.com" in config.search_url and "tradingview.com" in config.signin_url
    # Deliberately lower than the original 60/min: TradingView blocks clients that loop.
    assert 1 <= config.requests_per_minute <= 60
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.connect_timeout = 1.0  # type: ignore[misc]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("connect_timeout", -1.0),
        ("send_timeout", 0),
        ("recv_timeout", math.nan),
        ("max_retries", -1),
        ("base_retry_delay", -0.5),
        ("max_retry_delay", math.inf),
        ("requests_per_minute", 0),
        ("burst_size", 0),
        ("max_connection_age", 0),
        ("reuse_connections", "yes"),
        ("ws_url", "http://not-a-websocket"),
        ("search_url", "nowhere"),
        ("signin_url", 42),
    ],
)
def test_config_rejects_bad_values_naming_the_field(field: str, value: object) -> None:
    """A bad value raises ValueError whose message names the field."""
    with pytest.raises(ValueError, match=field):
        NetworkConfig(**{field: value})


def test_from_env_reads_every_variable_of_the_issue(monkeypatch: pytest.MonkeyPatch) -> None:
    """NetworkConfig.from_env() (no argument) reads each TV_* variable issue 4 lists."""
    for variable, (_, good, _) in ISSUE_ENV.items():
        monkeypatch.setenv(variable, good)
    config = NetworkConfig.from_env()
    for variable, (field, good, _) in ISSUE_ENV.items():
        value = getattr(config, field)
        expected = type(value)(good) if not isinstance(value, str) else good
        assert value == expected, variable


@pytest.mark.parametrize("variable", sorted(ISSUE_ENV))
def test_from_env_rejects_a_bad_value_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    """A bad TV_* value raises ValueError naming that variable."""
    for name in ISSUE_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(variable, ISSUE_ENV[variable][2])
    with pytest.raises(ValueError, match=variable):
        NetworkConfig.from_env()


def _capture_upgrade(config: NetworkConfig) -> bytes:
    """The raw upgrade request a WebSocketManager sends (to a listener that then hangs up)."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    received: list[bytes] = []

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(4096)
                if not chunk:
                    break
                data += chunk
            received.append(data)
            conn.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")

    server = threading.Thread(target=serve)
    server.start()
    try:
        manager = WebSocketManager(
            config.replace(ws_url=f"ws://127.0.0.1:{port}/socket.io/websocket", max_retries=0)
        )
        with pytest.raises(TvError):
            manager.connect()
        manager.disconnect()
    finally:
        server.join(10)
        listener.close()
    return received[0]


@pytest.mark.parametrize(
    "headers", [{}, {"Origin": TV_ORIGIN}, {"origin": TV_ORIGIN, "Accept-Language": "en"}]
)
def test_exactly_one_origin_header(headers: dict[str, str]) -> None:
    """The upgrade carries exactly one Origin, https://www.tradingview.com (also when the
    headers name it again)."""
    raw = _capture_upgrade(NetworkConfig(ws_headers=headers, connect_timeout=5.0))
    lines = raw.decode("latin-1").split("\r\n")
    origins = [line for line in lines if line.lower().startswith("origin:")]
    assert origins == [f"Origin: {TV_ORIGIN}"]


# -- WebSocketManager ----------------------------------------------------------------------------


def test_websocket_manager_surface(fake_tv_factory: Factory) -> None:
    """connect/is_connected/send/recv/disconnect and the context manager work as designed."""
    tv = fake_tv_factory(heartbeat_interval=0.1)
    config = config_for(tv)
    with no_thread_left():
        manager = WebSocketManager(config)
        assert not manager.is_connected()
        assert manager.connect() is True
        assert manager.is_connected()
        hello = manager.recv(timeout=5)
        assert hello.startswith("~m~") and "session_id" in hello
        payload = '{"m":"set_auth_token","p":["unauthorized_user_token"]}'
        manager.send(f"~m~{len(payload)}~m~{payload}")
        time.sleep(0.5)  # several heartbeats: the manager answers them
        assert manager.is_connected()
        manager.disconnect()
        assert not manager.is_connected()
        with pytest.raises(TvConnectionError):
            manager.send(f"~m~{len(payload)}~m~{payload}")
        with WebSocketManager(config) as managed:
            assert managed.is_connected()
        assert not managed.is_connected()
    assert tv.wait_for(lambda s: s.open_connections == 0, timeout=5.0)
    assert all(r.status == 101 for r in tv.connection_log())


def test_websocket_manager_connect_retries_a_429(fake_tv_factory: Factory) -> None:
    """connect() retries handshake 429s with backoff; past max_retries it raises typed."""
    tv = fake_tv_factory(faults=[RejectHandshake(429, attempts=first(2))])
    with WebSocketManager(config_for(tv, max_retries=3)) as manager:
        assert manager.is_connected()
    assert tv.connection_attempts == 3
    tv.set_faults(RejectHandshake(429))
    manager = WebSocketManager(config_for(tv, max_retries=1))
    with pytest.raises(RateLimitedError):
        manager.connect()
    manager.disconnect()


def test_websocket_manager_reconnects_and_reuses(fake_tv_factory: Factory) -> None:
    """connect() reuses a live connection, replaces one the server dropped (health check on
    reuse) and one older than max_connection_age."""
    tv = fake_tv_factory()
    config = config_for(tv, health_check_after=0.0, ping_timeout=1.0)
    with WebSocketManager(config) as manager:
        manager.connect()
        assert tv.connection_attempts == 1
        tv.drop_connections(1006)
        assert tv.wait_for(lambda s: s.open_connections == 0, timeout=5.0)
        manager.connect()
        assert manager.is_connected() and tv.connection_attempts == 2
    with WebSocketManager(config.replace(max_connection_age=0.2)) as aging:
        time.sleep(0.3)
        aging.connect()
        assert aging.is_connected()
    assert tv.connection_attempts == 4


# -- TvDatafeed: surface, shape, symbols, intervals ---------------------------------------------

INTERVALS = {
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


def test_interval_is_tvdatafeeds() -> None:
    """Interval has exactly tvDatafeed's member names and values."""
    assert {m.name: m.value for m in Interval} == INTERVALS


def test_drop_in_signatures() -> None:
    """TvDatafeed(username=None, password=None, *, config=None) and tvDatafeed's get_hist."""
    init = inspect.signature(TvDatafeed.__init__).parameters
    assert list(init)[:3] == ["self", "username", "password"]
    assert init["username"].default is None and init["password"].default is None
    assert init["config"].kind is inspect.Parameter.KEYWORD_ONLY
    assert init["config"].default is None
    hist = inspect.signature(TvDatafeed.get_hist).parameters
    expected = [
        ("symbol", inspect.Parameter.empty),
        ("exchange", "NSE"),
        ("interval", Interval.in_daily),
        ("n_bars", 10),
        ("fut_contract", None),
        ("extended_session", False),
    ]
    assert [(n, hist[n].default) for n, _ in expected] == expected
    assert list(hist)[1:7] == [n for n, _ in expected]
    assert {"TvDatafeed", "TvDatafeedLive", "Interval", "Seis", "Consumer"} <= set(
        tvadapter.__all__
    )


def test_defaults_fetch_ten_daily_nse_bars_at_the_session_open(fake_tv_factory: Factory) -> None:
    """get_hist("RELIANCE") = 10 daily NSE bars (delayed for anonymous), stamped 03:45 UTC."""
    tv = fake_tv_factory()
    with TvDatafeed(config=config_for(tv)) as client:
        frame = client.get_hist("RELIANCE")
    check_frame(frame, tv.bars("NSE:RELIANCE", "1D", 10), "NSE:RELIANCE")
    assert {(t.hour, t.minute) for t in frame.index} == {(3, 45)}


@pytest.mark.parametrize(
    ("call", "expected_symbol", "resolution"),
    [
        ({"symbol": "CRUDEOIL", "exchange": "MCX", "fut_contract": 1}, "MCX:CRUDEOIL1!", "1D"),
        ({"symbol": "NIFTY", "exchange": "NSE", "fut_contract": 2}, "NSE:NIFTY2!", "1D"),
        ({"symbol": "BINANCE:BTCUSDT.P", "exchange": "NSE"}, "BINANCE:BTCUSDT.P", "1D"),
        ({"symbol": "NYMEX:CL1!", "interval": "1H"}, "NYMEX:CL1!", "1H"),
        ({"symbol": "AAPL", "exchange": "NASDAQ", "interval": "60"}, "NASDAQ:AAPL", "1H"),
        ({"symbol": "AAPL", "exchange": "NASDAQ", "interval": Interval("1H")}, "NASDAQ:AAPL", "1H"),
        ({"symbol": "SPX", "exchange": "SP", "interval": Interval.in_weekly}, "SP:SPX", "1W"),
        ({"symbol": "BTCUSD", "exchange": "BITSTAMP", "interval": "1M"}, "BITSTAMP:BTCUSD", "1M"),
        ({"symbol": "NSE:NIFTY", "interval": Interval.in_15_minute}, "NSE:NIFTY", "15"),
    ],
)
def test_symbol_and_interval_forms(
    fake_tv_factory: Factory, call: dict[str, Any], expected_symbol: str, resolution: str
) -> None:
    """tvDatafeed's symbol rules and interval spellings reach the right series, exactly."""
    tv = fake_tv_factory()
    with TvDatafeed(config=config_for(tv)) as client:
        frame = client.get_hist(n_bars=30, **call)
    check_frame(frame, tv.bars(expected_symbol, resolution, 30), expected_symbol)


def test_index_without_volume_has_a_float_volume_column(fake_tv_factory: Factory) -> None:
    """5-element bars (an index) still give a float64 volume column (NaN: no volume)."""
    tv = fake_tv_factory()
    with TvDatafeed(config=config_for(tv)) as client:
        frame = client.get_hist("DJI", "DJ", n_bars=5)
    assert all(bar.volume is None for bar in tv.bars("DJ:DJI", "1D", 5))
    check_frame(frame, tv.bars("DJ:DJI", "1D", 5), "DJ:DJI")
    assert frame["volume"].isna().all()


def test_lower_case_exchange_and_symbol(fake_tv_factory: Factory) -> None:
    """A lower-case "nasdaq"/"aapl" is passed on as given (tvDatafeed's rule) and served."""
    tv = fake_tv_factory()
    with TvDatafeed(config=config_for(tv)) as client:
        frame = client.get_hist("aapl", "nasdaq", n_bars=3)
    check_frame(frame, tv.bars("NASDAQ:AAPL", "1D", 3), frame["symbol"].iloc[0])
    assert frame["symbol"].iloc[0].upper() == "NASDAQ:AAPL"


@pytest.mark.parametrize("contract", ["1", 1.0, "front"])
def test_non_int_contract_is_not_a_valid_contract(fake_tv_factory: Factory, contract: Any) -> None:
    """A non-int fut_contract raises ValueError("... not a valid contract") before any I/O."""
    tv = fake_tv_factory()
    with TvDatafeed(config=config_for(tv)) as client:
        with pytest.raises(ValueError, match="not a valid contract"):
            client.get_hist("CRUDEOIL", "MCX", fut_contract=contract)
    assert tv.connection_attempts == 0


def test_n_bars_one_is_the_newest_bar(fake_tv_factory: Factory) -> None:
    """n_bars=1 returns exactly the newest bar the server holds."""
    tv = fake_tv_factory()
    with TvDatafeed(config=config_for(tv)) as client:
        frame = client.get_hist("BTCUSDT", "BINANCE", Interval.in_1_minute, n_bars=1)
    check_frame(frame, tv.bars("BINANCE:BTCUSDT", "1", 1), "BINANCE:BTCUSDT")


def test_extended_session_is_a_different_series(fake_tv_factory: Factory) -> None:
    """extended_session=True asks for the extended session (more intraday bars per day)."""
    tv = fake_tv_factory()
    with TvDatafeed(config=config_for(tv)) as client:
        regular = client.get_hist("AAPL", "NASDAQ", "15", 200)
        extended = client.get_hist("AAPL", "NASDAQ", "15", 200, None, True)
    check_frame(regular, tv.bars("NASDAQ:AAPL", "15", 200), "NASDAQ:AAPL")
    check_frame(extended, tv.bars("NASDAQ:AAPL", "15", 200, session="extended"), "NASDAQ:AAPL")
    assert not regular.index.equals(extended.index)


# -- pagination, ranges, history limits ----------------------------------------------------------


def test_n_bars_beyond_the_cap_is_paginated(fake_tv_factory: Factory) -> None:
    """12,000 bars for a premium account come in several rounds, equal to the server's."""
    tv = fake_tv_factory(users={"alice": "secret"}, user_plans={"alice": "pro_premium"})
    with TvDatafeed("alice", "secret", config=config_for(tv)) as client:
        frame = client.get_hist("BTCUSDT", "BINANCE", "1", 12_000)
    check_frame(frame, tv.bars("BINANCE:BTCUSDT", "1", 12_000), "BINANCE:BTCUSDT")
    assert tv.requests.get("request_more_data", 0) >= 1


def test_anonymous_request_past_the_plan_cap_returns_the_cap(fake_tv_factory: Factory) -> None:
    """Anonymous users get the newest 5,000 (the cap), not an error and not a partial mix."""
    tv = fake_tv_factory()
    cap = tv.bar_cap(None)
    with TvDatafeed(config=config_for(tv)) as client:
        frame = client.get_hist("ETHUSDT", "BINANCE", "5", cap + 1_500)
    check_frame(frame, tv.bars("BINANCE:ETHUSDT", "5", cap), "BINANCE:ETHUSDT")


def test_huge_n_bars_returns_all_history(fake_tv_factory: Factory) -> None:
    """n_bars far beyond the history returns every bar there is (no error)."""
    tv = fake_tv_factory(history_depth=777)
    with TvDatafeed(config=config_for(tv)) as client:
        frame = client.get_hist("MSFT", "NASDAQ", Interval.in_daily, 1_000_000)
    truth = tv.bars("NASDAQ:MSFT", "1D")
    assert len(truth) == 777
    check_frame(frame, truth, "NASDAQ:MSFT")


def test_date_range(fake_tv_factory: Factory) -> None:
    """start/end return exactly the bars whose open time lies in the range."""
    tv = fake_tv_factory()
    newest = tv.bars("NASDAQ:AAPL", "1H", 1)[0].time
    end = datetime.fromtimestamp(newest, tz=timezone.utc) - timedelta(days=3)
    start = end - timedelta(days=20)
    with TvDatafeed(config=config_for(tv)) as client:
        frame = client.get_hist("AAPL", "NASDAQ", Interval.in_1_hour, start=start, end=end)
        naive = client.get_hist(
            "AAPL", "NASDAQ", "1H", start=start.replace(tzinfo=None), end=end.replace(tzinfo=None)
        )
    truth = tv.bars("NASDAQ:AAPL", "1H", start=start.timestamp(), end=end.timestamp())
    assert len(truth) > 50
    check_frame(frame, truth, "NASDAQ:AAPL")
    assert naive.equals(frame)  # naive datetimes are UTC


@pytest.mark.parametrize("plan", [None, "pro"])
def test_range_longer_than_the_bar_cap_is_complete(
    fake_tv_factory: Factory, plan: str | None
) -> None:
    """A range holding several caps' worth of bars returns all of them (not the newest cap)."""
    tv = fake_tv_factory(users={"dave": "pw-dave-1"}, user_plans={"dave": plan or ""})
    newest = tv.bars("BINANCE:ETHUSDT", "1", 1)[0].time
    start, end = newest - 15 * 86_400, newest - 86_400
    truth = tv.bars("BINANCE:ETHUSDT", "1", start=start, end=end)
    assert len(truth) > 2 * tv.bar_cap(plan)
    client = (
        TvDatafeed("dave", "pw-dave-1", config=config_for(tv))
        if plan
        else TvDatafeed(config=config_for(tv))
    )
    with client:
        frame = client.get_hist("ETHUSDT", "BINANCE", "1", start=start, end=end)
    check_frame(frame, truth, "BINANCE:ETHUSDT")


def test_range_reaching_before_the_listing(fake_tv_factory: Factory) -> None:
    """A range starting before the history starts returns the history from its first bar."""
    tv = fake_tv_factory(history_depth=300)
    newest = tv.bars("NASDAQ:META", "1D", 1)[0].time
    with TvDatafeed(config=config_for(tv)) as client:
        frame = client.get_hist("META", "NASDAQ", start="1990-01-01", end=newest)
        empty = client.get_hist("META", "NASDAQ", start="1990-01-01", end="1990-06-01")
    check_frame(frame, tv.bars("NASDAQ:META", "1D"), "NASDAQ:META")
    assert len(empty) == 0 and list(empty.columns) == list(frame.columns)
    assert str(empty.index.tz) == "UTC" and empty.index.name == "datetime"


# -- server variations ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "options",
    [
        {"packing": "split"},
        {"mix_heartbeats": True, "heartbeat_interval": 0.05},
        {"extra_timescale_updates": True},
        {"packing": "split", "mix_heartbeats": True, "extra_timescale_updates": True},
    ],
)
def test_server_message_layouts(fake_tv_factory: Factory, options: dict[str, Any]) -> None:
    """Split packets, heartbeats mixed into data and empty/timescale-only updates: same bars."""
    tv = fake_tv_factory(**options)
    with TvDatafeed(config=config_for(tv)) as client:
        frame = client.get_hist("TSLA", "NASDAQ", "5", 6_000)
        daily = client.get_hist("TCS")
    check_frame(frame, tv.bars("NASDAQ:TSLA", "5", tv.bar_cap(None)), "NASDAQ:TSLA")
    check_frame(daily, tv.bars("NSE:TCS", "1D", 10), "NSE:TCS")


def test_heartbeats_faster_than_the_request(fake_tv_factory: Factory) -> None:
    """Heartbeats every 20 ms, slow replies, a held connection: answered, nothing lost."""
    tv = fake_tv_factory(heartbeat_interval=0.02, heartbeat_timeout=0.5, faults=[Latency(0.05)])
    with TvDatafeed(config=config_for(tv, health_check_after=60.0)) as client:
        one = client.get_hist("AMD", "NASDAQ", "1", 3_000)
        time.sleep(0.3)
        two = client.get_hist("AMD", "NASDAQ", "1", 3_000)
        metrics = client.metrics()
    check_frame(one, tv.bars("NASDAQ:AMD", "1", 3_000), "NASDAQ:AMD")
    assert one.equals(two)
    assert tv.connection_attempts == 1 and metrics.heartbeats_echoed >= 10


# -- login and secrets ---------------------------------------------------------------------------


def test_login_variants_reach_the_data(fake_tv_factory: Factory) -> None:
    """username/password and a ready token each authenticate the series (no anonymous)."""
    tv = fake_tv_factory(users={"alice": "s3cret-pw"}, user_plans={"alice": "pro"})
    token = tv.issue_token("alice")
    for client in (
        TvDatafeed("alice", "s3cret-pw", config=config_for(tv)),
        TvDatafeed(config=config_for(tv), token=token),
    ):
        with client:
            frame = client.get_hist("AAPL", "NASDAQ", n_bars=3)
        check_frame(frame, tv.bars("NASDAQ:AAPL", "1D", 3), "NASDAQ:AAPL")
    auths = [r.auth for r in tv.connection_log()]
    assert auths == ["token", "token"]


@pytest.mark.parametrize(
    ("options", "password", "error"),
    [
        ({"captcha_users": frozenset({"bob"})}, "pw-bob-123", CaptchaRequiredError),
        ({"twofa_users": frozenset({"bob"})}, "pw-bob-123", TwoFactorRequiredError),
        ({}, "wrong-password-9", AuthenticationError),
    ],
)
def test_sign_in_problems_are_clear_errors(
    fake_tv_factory: Factory,
    caplog: pytest.LogCaptureFixture,
    options: dict[str, Any],
    password: str,
    error: type[Exception],
) -> None:
    """Captcha, 2FA and a wrong password raise their error at once; never anonymous; the
    password appears in no log or message."""
    tv = fake_tv_factory(users={"bob": "pw-bob-123"}, **options)
    caplog.set_level(logging.DEBUG)
    with pytest.raises(error) as raised:
        TvDatafeed("bob", password, config=config_for(tv))
    assert password not in str(raised.value) and password not in repr(raised.value)
    assert password not in caplog.text
    assert tv.connection_attempts == 0  # no silent anonymous session


def test_secrets_never_in_logs_or_reprs(
    fake_tv_factory: Factory, caplog: pytest.LogCaptureFixture
) -> None:
    """The password, the token and a cookie header appear in no log record, repr or str."""
    tv = fake_tv_factory(users={"carol": "pa55-word-xyz"})
    caplog.set_level(logging.DEBUG)
    config = config_for(tv, ws_headers={"Cookie": "sessionid=cookie-secret-123"})
    with TvDatafeed("carol", "pa55-word-xyz", config=config) as client:
        client.get_hist("AAPL", "NASDAQ", n_bars=2)
        token = client.authenticator.token()
        texts = [repr(client), str(client), repr(config), repr(client.authenticator)]
        texts.append(repr(client.metrics()))
        with pytest.raises(SymbolNotFoundError) as raised:
            client.get_hist("NOPE", "NASDAQ")
        texts.append(repr(raised.value))
    # The client's own logs (the fake server's websockets library logs what it receives).
    texts += [
        record.getMessage()
        for record in caplog.records
        if record.name.startswith(("tvadapter", "resilience"))
        and not record.name.startswith("tvadapter.testing")
    ]
    signature = token.rsplit(".", 1)[-1]
    assert len(signature) > 20
    for text in texts:
        for secret in ("pa55-word-xyz", "cookie-secret-123", signature):
            assert secret not in text


# -- faults of issue 4: exact bars or the right typed error, in time, no thread left ------------

RECOVERABLE = [
    pytest.param([Latency(0.05)], id="latency"),
    pytest.param([Drop(after=3, code=1006, attempts=1)], id="drop-1006-mid-series"),
    pytest.param([Drop(after=3, code=1005, attempts=1)], id="close-1005-mid-series"),
    pytest.param([Stall(after=3, heartbeats=True, attempts=1)], id="stall"),
    pytest.param([RejectHandshake(429, attempts=first(2))], id="handshake-429-first-2"),
    pytest.param([RequestRate(max_requests=6, window=1.0, attempts=1)], id="request-rate"),
    pytest.param([Malformed(kind="not_json", after=2, attempts=1)], id="malformed"),
    pytest.param([HugeFrame(size=1_500_000)], id="huge-frame"),
    pytest.param([SlowDrip(chunk=16_384, delay=0.01)], id="slow-drip"),
]


@pytest.mark.parametrize("faults", RECOVERABLE)
def test_recoverable_faults_give_the_exact_bars(
    fake_tv_factory: Factory, faults: list[Any]
) -> None:
    """Each recoverable fault of issue 4: the client returns exactly the server's bars."""
    tv = fake_tv_factory(heartbeat_interval=0.2, faults=faults)
    config = config_for(tv, progress_timeout=1.0, request_deadline=20.0)
    with no_thread_left(), TvDatafeed(config=config) as client:
        frame = client.get_hist("NVDA", "NASDAQ", "1", 8_000)
        again = client.get_hist("NVDA", "NASDAQ", "1", 8_000)
    check_frame(frame, tv.bars("NASDAQ:NVDA", "1", tv.bar_cap(None)), "NASDAQ:NVDA")
    assert again.equals(frame)


PERMANENT = [
    pytest.param([Stall(after=0, heartbeats=True)], TvTimeoutError, id="stall-forever"),
    pytest.param([Drop(after=2)], TvConnectionError, id="drop-every-time"),
    pytest.param([RejectHandshake(429)], RateLimitedError, id="handshake-429-always"),
    pytest.param([RejectHandshake(403)], ConfigurationError, id="handshake-403"),
    pytest.param([Malformed(kind="bad_length")], ProtocolError, id="malformed-always"),
    pytest.param(
        [SlowDrip(chunk=512, delay=0.05, min_size=10_000)], TvTimeoutError, id="drip-too-slow"
    ),
]


@pytest.mark.parametrize(("faults", "error"), PERMANENT)
def test_permanent_faults_raise_typed_errors_within_the_deadline(
    fake_tv_factory: Factory, faults: list[Any], error: type[Exception]
) -> None:
    """A fault that never clears raises its typed error (a TvError, never None or partial
    data) within the configured deadline, and leaves no thread behind."""
    tv = fake_tv_factory(heartbeat_interval=0.2, faults=faults)
    deadline = 3.0
    config = config_for(tv, progress_timeout=0.5, request_deadline=deadline, max_retries=2)
    with no_thread_left(), TvDatafeed(config=config) as client:
        began = time.monotonic()
        with pytest.raises(error) as raised:
            client.get_hist("NVDA", "NASDAQ", "1", 3_000)
        elapsed = time.monotonic() - began
    assert isinstance(raised.value, TvError)
    assert elapsed < deadline + 5.0  # generous: shared machines are noisy


def test_expired_and_bad_tokens_fail_fast(fake_tv_factory: Factory) -> None:
    """An expired token and a token the server refuses raise TokenExpiredError, no retries."""
    tv = fake_tv_factory()
    with no_thread_left():
        with pytest.raises(TokenExpiredError):
            TvDatafeed(config=config_for(tv), token=tv.issue_token("alice", lifetime=-1))
        with TvDatafeed(config=config_for(tv), token="garbage-token") as client:
            with pytest.raises(AuthenticationError):
                client.get_hist("AAPL", "NASDAQ")
            assert client.metrics().retries == 0


def test_unknown_symbol_fails_fast_and_typed(fake_tv_factory: Factory) -> None:
    """symbol_error: SymbolNotFoundError (a LookupError) naming the symbol, one try."""
    tv = fake_tv_factory()
    with TvDatafeed(config=config_for(tv)) as client:
        with pytest.raises(SymbolNotFoundError, match="NOPE") as raised:
            client.get_hist("NOPE", "NASDAQ")
        assert isinstance(raised.value, LookupError)
        assert client.metrics().retries == 0
    assert tv.requests.get("create_series") == 1


# -- threads, lifecycle, metrics -----------------------------------------------------------------


def test_many_threads_on_one_client(fake_tv_factory: Factory) -> None:
    """24 threads call get_hist at once (some the same symbol): all exact, one connection."""
    tv = fake_tv_factory(faults=[Latency(0.01)])
    symbols = tv.symbols()[:12] * 2
    results: list[tuple[str, pd.DataFrame]] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    with no_thread_left(), TvDatafeed(config=config_for(tv)) as client:
        barrier = threading.Barrier(len(symbols))

        def work(symbol: str) -> None:
            try:
                barrier.wait(10)
                frame = client.get_hist(symbol, interval="30", n_bars=400)
                with lock:
                    results.append((symbol, frame))
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(s,)) for s in symbols]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    assert errors == []
    assert len(results) == len(symbols)
    for symbol, frame in results:
        check_frame(frame, tv.bars(symbol, "30", 400), symbol)
    assert tv.connection_attempts == 1


def test_get_hist_after_close_is_a_typed_error(fake_tv_factory: Factory) -> None:
    """After close(), get_hist raises a TvError (the client does not silently reopen)."""
    tv = fake_tv_factory()
    client = TvDatafeed(config=config_for(tv))
    client.get_hist("AAPL", "NASDAQ", n_bars=2)
    client.close()
    with pytest.raises(TvError, match="closed"):
        client.get_hist("AAPL", "NASDAQ", n_bars=2)
    assert tv.connection_attempts == 1


def test_unclosed_client_is_collected_cleanly(fake_tv_factory: Factory) -> None:
    """A client used without a with block and dropped leaves no thread and no socket."""
    tv = fake_tv_factory()
    with no_thread_left():
        client = TvDatafeed(config=config_for(tv))
        client.get_hist("AAPL", "NASDAQ", n_bars=2)
        del client
        gc.collect()
    assert tv.wait_for(lambda s: s.open_connections == 0, timeout=5.0)


def test_metrics_content(fake_tv_factory: Factory) -> None:
    """metrics(): requests, retries, reconnects, errors by kind, bars received, latencies."""
    tv = fake_tv_factory(faults=[Drop(after=3, attempts=1)])
    with TvDatafeed(config=config_for(tv)) as client:
        client.get_hist("AAPL", "NASDAQ", "1", 2_000)
        client.get_hist("MSFT", "NASDAQ", n_bars=5)
        with pytest.raises(SymbolNotFoundError):
            client.get_hist("NOPE", "NASDAQ")
        metrics = client.metrics()
    assert metrics.requests == 3
    assert metrics.retries >= 1 and metrics.reconnects >= 1
    assert metrics.bars_received == 2_005
    assert metrics.errors_by_kind.get("SymbolNotFoundError") == 1
    assert sum(metrics.errors_by_kind.values()) >= 2  # the drop counted too
    assert metrics.p50 is not None and metrics.p99 is not None
    assert 0 < metrics.p50 <= metrics.p99


def test_search_symbol(fake_tv_factory: Factory) -> None:
    """search_symbol(text, exchange="") returns dicts listing the matching symbols."""
    tv = fake_tv_factory()
    with TvDatafeed(config=config_for(tv)) as client:
        anywhere = client.search_symbol("BTCUSDT")
        binance = client.search_symbol("BTCUSDT", "BINANCE")
        nothing = client.search_symbol("ZZZZNOTHINGZZZZ")
    assert anywhere and all(isinstance(item, dict) for item in anywhere)
    assert binance and {item["exchange"] for item in binance} == {"BINANCE"}
    assert any(item["symbol"] == "BTCUSDT" for item in binance)
    assert nothing == []


# -- bulk ----------------------------------------------------------------------------------------


def test_get_hist_many_partial_failure(fake_tv_factory: Factory) -> None:
    """One unknown symbol does not fail the batch: the rest are exact, the failure typed."""
    tv = fake_tv_factory(faults=[Latency(0.01)])
    requests = [("AAPL", "NASDAQ"), ("NOPE", "NASDAQ"), "BINANCE:ETHUSDT", ("TCS",)]
    with no_thread_left(), TvDatafeed(config=config_for(tv)) as client:
        result = client.get_hist_many(requests, max_concurrency=3, progress=False, n_bars=20)
    assert set(result.ok) == {"NASDAQ:AAPL", "BINANCE:ETHUSDT", "NSE:TCS"}
    assert set(result.failed) == {"NASDAQ:NOPE"}
    assert isinstance(result.failed["NASDAQ:NOPE"], SymbolNotFoundError)
    for key, frame in result.ok.items():
        check_frame(frame, tv.bars(key, "1D", 20), key)


# -- live feed -----------------------------------------------------------------------------------


def test_live_feed_surface_and_closed_bars(fake_tv_factory: Factory) -> None:
    """new_seis/new_consumer stream the closed bars equal to the server's across a drop;
    del_consumer/del_seis/get_hist/del_tvdatafeed work; no thread is left."""
    tv = fake_tv_factory(live=True, heartbeat_interval=0.2, faults=[Drop(after=12, attempts=1)])
    got: list[pd.DataFrame] = []
    lock = threading.Lock()

    def on_bar(seis: Any, df: pd.DataFrame) -> None:
        with lock:
            got.append(df)

    def received() -> int:
        with lock:
            return len(got)

    with no_thread_left():
        feed = TvDatafeedLive(config=config_for(tv))
        seis = feed.new_seis("BTCUSDT", "BINANCE", Interval.in_1_minute)
        assert (seis.symbol, seis.exchange, seis.interval) == (
            "BTCUSDT",
            "BINANCE",
            Interval.in_1_minute,
        )
        assert feed.new_seis("BTCUSDT", "BINANCE", Interval.in_1_minute) == seis
        consumer = feed.new_consumer(seis, on_bar)
        first_tick = tv.tick
        for _ in range(8):
            tv.advance(1)
            time.sleep(0.05)
        deadline = time.monotonic() + 20
        while received() < 8 and time.monotonic() < deadline:
            time.sleep(0.05)
        hist = feed.get_hist("BTCUSDT", "BINANCE", Interval.in_1_minute, n_bars=5)
        assert feed.del_consumer(consumer) is True
        assert feed.del_seis(seis) is True
        with pytest.raises(ValueError, match="not listed"):
            feed.del_seis(seis)
        feed.del_tvdatafeed()
    assert tv.tick - first_tick == 8
    truth = tv.bars("BINANCE:BTCUSDT", "1")
    with lock:
        frames = list(got)
    assert len(frames) == 8
    stream = pd.concat(frames)
    check_frame(stream, truth[-8:], "BINANCE:BTCUSDT")
    assert len(hist) == 5 and hist.index.is_monotonic_increasing


# -- CLI -----------------------------------------------------------------------------------------


def run_cli(argv: list[str], environ: dict[str, str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(argv, stdout=out, stderr=err, environ=environ)
    return code, out.getvalue(), err.getvalue()


def test_cli_exit_codes_and_one_line_errors(fake_tv_factory: Factory, tmp_path: Any) -> None:
    """0 ok, 1 partial batch, 2 bad TV_* value (named), 3 unknown symbol; errors in one line."""
    tv = fake_tv_factory()
    env = {
        "TV_WS_URL": tv.ws_url,
        "TV_SEARCH_URL": tv.search_url,
        "TV_REQUESTS_PER_MINUTE": "100000",
        "TV_BURST_SIZE": "1000",
        "TV_BASE_RETRY_DELAY": "0.01",
        "TV_MAX_RETRY_DELAY": "0.05",
    }
    out_file = tmp_path / "bars.csv"
    code, _, err = run_cli(["hist", "AAPL", "-e", "NASDAQ", "-n", "7", "-o", str(out_file)], env)
    assert code == 0, err
    written = pd.read_csv(out_file)
    assert len(written) == 7 and list(written.columns)[:2] == ["datetime", "symbol"]

    code, _, err = run_cli(["hist", "NOPE", "-e", "NASDAQ"], env)
    assert code == 3
    assert err.count("\n") == 1 and "Traceback" not in err and "NOPE" in err

    code, out, err = run_cli(["hist", "NASDAQ:AAPL", "NASDAQ:NOPE", "--no-progress"], env)
    assert code == 1 and "NASDAQ:NOPE" in err and "NASDAQ:AAPL" in out

    code, _, err = run_cli(["hist", "AAPL"], {**env, "TV_CONNECT_TIMEOUT": "soon"})
    assert code == 2 and "TV_CONNECT_TIMEOUT" in err and err.count("\n") == 1

    code, _, err = run_cli(["hist", "AAPL", "--interval", "7X"], env)
    assert code == 2

    code, out, _ = run_cli(["search", "AAPL", "-e", "NASDAQ"], env)
    assert code == 0 and "NASDAQ:AAPL" in out


def test_cli_range_and_live(fake_tv_factory: Factory, tmp_path: Any) -> None:
    """`hist --start/--end` writes exactly the range; `live --count N` prints N closed bars."""
    tv = fake_tv_factory(live=True, bar_seconds=0.05, heartbeat_interval=0.2)
    env = {"TV_WS_URL": tv.ws_url, "TV_REQUESTS_PER_MINUTE": "100000", "TV_BURST_SIZE": "100"}
    newest = tv.bars("NASDAQ:AAPL", "1D", 1)[0].time
    start = datetime.fromtimestamp(newest - 40 * 86_400, tz=timezone.utc)
    end = datetime.fromtimestamp(newest - 10 * 86_400, tz=timezone.utc)
    target = tmp_path / "range.json"
    argv = ["hist", "NASDAQ:AAPL", "--start", start.isoformat(), "--end", end.isoformat()]
    code, _, err = run_cli([*argv, "-o", str(target)], env)
    assert code == 0, err
    written = pd.read_json(target)
    truth = tv.bars("NASDAQ:AAPL", "1D", start=start.timestamp(), end=end.timestamp())
    assert len(written) == len(truth) > 10
    assert np.allclose(written["close"].to_numpy(), [b.close for b in truth])

    code, out, err = run_cli(["live", "BTCUSDT", "-e", "BINANCE", "-i", "1", "--count", "3"], env)
    assert code == 0, err
    lines = out.strip().splitlines()
    assert lines[0] == "datetime,symbol,open,high,low,close,volume"
    assert len(lines) == 4 and all(",BINANCE:BTCUSDT," in line for line in lines[1:])
    closed = {b.time: b for b in tv.bars("BINANCE:BTCUSDT", "1")}
    stamps = [datetime.fromisoformat(line.split(",")[0]).timestamp() for line in lines[1:]]
    assert stamps == sorted(stamps) and all(t in closed for t in stamps)
    assert [float(line.split(",")[5]) for line in lines[1:]] == [closed[t].close for t in stamps]
