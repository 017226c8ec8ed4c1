"""End-to-end tests of TvDatafeed against the fake TradingView server on 127.0.0.1."""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections.abc import Callable
from datetime import date, datetime, timedelta, timezone
from typing import Any

import numpy as np
import pytest
from test_client_support import assert_same_bars, client_config, no_new_threads

from tvadapter import (
    ClientMetrics,
    ConfigurationError,
    Interval,
    RateLimitedError,
    SeriesError,
    SymbolNotFoundError,
    TvConnectionError,
    TvDatafeed,
)
from tvadapter._request import HistoryResult
from tvadapter.testing import FakeTradingView

Factory = Callable[..., FakeTradingView]


def test_daily_bars_match_the_server(fake_tv_factory: Factory) -> None:
    """get_hist returns exactly the server's newest daily bars in tvDatafeed's shape."""
    tv = fake_tv_factory()
    with no_new_threads(), TvDatafeed(config=client_config(tv)) as client:
        frame = client.get_hist("AAPL", "NASDAQ", Interval.in_daily, n_bars=10)
        assert list(frame.columns) == ["symbol", "open", "high", "low", "close", "volume"]
        assert all(frame[c].dtype == np.float64 for c in frame.columns[1:])
        assert_same_bars(frame, tv.bars("NASDAQ:AAPL", "1D", 10), "NASDAQ:AAPL")


def test_default_exchange_and_symbol_rules(fake_tv_factory: Factory) -> None:
    """A symbol with ':' ignores the exchange; fut_contract builds the continuous contract."""
    tv = fake_tv_factory()
    with TvDatafeed(config=client_config(tv)) as client:
        frame = client.get_hist("NASDAQ:MSFT", "IGNORED", n_bars=3)
        assert_same_bars(frame, tv.bars("NASDAQ:MSFT", "1D", 3), "NASDAQ:MSFT")
        frame = client.get_hist("CRUDEOIL", "MCX", "1H", n_bars=4, fut_contract=1)
        assert_same_bars(frame, tv.bars("MCX:CRUDEOIL1!", "1H", 4), "MCX:CRUDEOIL1!")


def test_interval_spellings_reach_the_same_series(fake_tv_factory: Factory) -> None:
    """'60' and Interval.in_1_hour give the same hourly bars."""
    tv = fake_tv_factory()
    with TvDatafeed(config=client_config(tv)) as client:
        a = client.get_hist("BINANCE:BTCUSDT", interval="60", n_bars=20)
        b = client.get_hist("BINANCE:BTCUSDT", interval=Interval.in_1_hour, n_bars=20)
        assert a.equals(b)
        assert_same_bars(a, tv.bars("BINANCE:BTCUSDT", "1H", 20), "BINANCE:BTCUSDT")


def test_index_without_volume_has_nan_volume(fake_tv_factory: Factory) -> None:
    """An index (5-element bars) comes back with NaN volume, prices intact."""
    tv = fake_tv_factory()
    with TvDatafeed(config=client_config(tv)) as client:
        frame = client.get_hist("SPX", "SP", n_bars=30)
    assert frame["volume"].isna().all()
    assert_same_bars(frame, tv.bars("SP:SPX", "1D", 30), "SP:SPX")


def test_5000_bars(fake_tv_factory: Factory) -> None:
    """5,000 one-minute bars (one full round) match the server value by value."""
    tv = fake_tv_factory()
    with TvDatafeed(config=client_config(tv)) as client:
        frame = client.get_hist("AAPL", "NASDAQ", Interval.in_1_minute, n_bars=5_000)
        assert_same_bars(frame, tv.bars("NASDAQ:AAPL", "1", 5_000), "NASDAQ:AAPL")
        assert client.metrics().rounds == 1


def test_20000_bars_paginate_with_request_more_data(fake_tv_factory: Factory) -> None:
    """20,000 bars on a premium token arrive over 4 rounds and match the server exactly."""
    tv = fake_tv_factory()
    token = tv.issue_token("alice", plan="pro_premium")
    with TvDatafeed(config=client_config(tv), token=token) as client:
        frame = client.get_hist("BTCUSDT", "BINANCE", "1", n_bars=20_000)
        assert_same_bars(frame, tv.bars("BINANCE:BTCUSDT", "1", 20_000), "BINANCE:BTCUSDT")
        assert client.metrics().rounds == 4
    assert tv.requests.get("request_more_data") == 3


def test_anonymous_request_past_the_cap_gets_the_cap(fake_tv_factory: Factory) -> None:
    """Anonymous access is capped at 5,000: asking 12,000 returns the newest 5,000, no error."""
    tv = fake_tv_factory()
    with TvDatafeed(config=client_config(tv)) as client:
        frame = client.get_hist("AAPL", "NASDAQ", "5", n_bars=12_000)
    assert_same_bars(frame, tv.bars("NASDAQ:AAPL", "5", 5_000), "NASDAQ:AAPL")


def test_short_history_returns_what_exists(fake_tv_factory: Factory) -> None:
    """A series with fewer bars than asked returns all of them (history exhausted)."""
    tv = fake_tv_factory(history_depth=37)
    with TvDatafeed(config=client_config(tv)) as client:
        frame = client.get_hist("AAPL", "NASDAQ", "15", n_bars=500)
    assert len(frame) == 37
    assert_same_bars(frame, tv.bars("NASDAQ:AAPL", "15"), "NASDAQ:AAPL")


def test_date_range(fake_tv_factory: Factory) -> None:
    """start/end return exactly the server's bars whose open time is inside the range."""
    tv = fake_tv_factory()
    newest = tv.bars("NASDAQ:AAPL", "1H", 1)[0].time
    end = datetime.fromtimestamp(newest - 3 * 86_400, tz=timezone.utc)
    start = end - timedelta(days=20)
    with TvDatafeed(config=client_config(tv)) as client:
        frame = client.get_hist("AAPL", "NASDAQ", "1H", start=start, end=end)
        truth = tv.bars("NASDAQ:AAPL", "1H", start=start.timestamp(), end=end.timestamp())
        assert len(truth) > 50
        assert_same_bars(frame, truth, "NASDAQ:AAPL")
        # Naive datetimes are UTC; strings and epoch seconds work too.
        naive = client.get_hist(
            "AAPL", "NASDAQ", "1H", start=start.replace(tzinfo=None), end=end.timestamp()
        )
        assert naive.equals(frame)
        text = client.get_hist("AAPL", "NASDAQ", "1H", start=start.isoformat(), end=end)
        assert text.equals(frame)


def test_date_range_longer_than_a_round(fake_tv_factory: Factory) -> None:
    """A range of ~8,000 minute bars on a premium token comes back complete."""
    tv = fake_tv_factory()
    token = tv.issue_token("alice", plan="pro_premium")
    newest = tv.bars("BINANCE:BTCUSDT", "1", 1)[0].time
    start, end = newest - 8_000 * 60, newest - 30 * 60
    with TvDatafeed(config=client_config(tv), token=token) as client:
        frame = client.get_hist("BINANCE:BTCUSDT", interval="1", start=start, end=end)
    assert_same_bars(
        frame, tv.bars("BINANCE:BTCUSDT", "1", start=start, end=end), "BINANCE:BTCUSDT"
    )


def test_date_range_past_the_cap_is_loaded_in_parts(fake_tv_factory: Factory) -> None:
    """An anonymous range of ~3 caps' worth of minute bars: several range requests, one exact,
    gap-free series."""
    tv = fake_tv_factory()
    cap = tv.bar_cap(None)
    newest = tv.bars("BINANCE:BTCUSDT", "1", 1)[0].time
    start, end = newest - 3 * cap * 60 + 0.5, newest - 60
    with TvDatafeed(config=client_config(tv)) as client:
        frame = client.get_hist("BINANCE:BTCUSDT", interval="1", start=start, end=end)
    truth = tv.bars("BINANCE:BTCUSDT", "1", start=start, end=end)
    assert len(truth) > 2 * cap
    assert_same_bars(frame, truth, "BINANCE:BTCUSDT")
    assert tv.requests.get("create_series") == 3


def test_date_range_part_refused_is_a_warning(
    fake_tv_factory: Factory, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """If the server serves nothing older than a cut range ("limit" and no bars), the range is
    returned from its oldest bar and a warning says so."""
    tv = fake_tv_factory()
    cap = tv.bar_cap(None)
    newest = tv.bars("BINANCE:BTCUSDT", "1", 1)[0].time
    with TvDatafeed(config=client_config(tv)) as client:
        real_fetch = client._fetch
        queries: list[Any] = []

        def fetch(query: Any, budget: Any) -> HistoryResult:
            queries.append(query)
            if len(queries) == 1:
                return real_fetch(query, budget)
            empty = np.empty((0, 7), dtype=np.float64)
            return HistoryResult(query.symbol, query.resolution, empty, True, 1, "limit")

        monkeypatch.setattr(client, "_fetch", fetch)
        with caplog.at_level(logging.WARNING, logger="tvadapter"):
            frame = client.get_hist("BINANCE:BTCUSDT", "", "1", start=newest - 2 * cap * 60)
    assert len(queries) == 2 and queries[1].end < frame.index[0].timestamp()
    assert_same_bars(frame, tv.bars("BINANCE:BTCUSDT", "1", cap), "BINANCE:BTCUSDT")
    assert "serves no bars before" in caplog.text


def test_date_range_until_now_and_empty_range(fake_tv_factory: Factory) -> None:
    """start without end runs to now; a range with no bars gives an empty frame, not None."""
    tv = fake_tv_factory()
    newest = tv.bars("NASDAQ:AAPL", "1D", 1)[0].time
    with TvDatafeed(config=client_config(tv)) as client:
        recent = client.get_hist("AAPL", "NASDAQ", start=newest - 10 * 86_400)
        assert_same_bars(
            recent, tv.bars("NASDAQ:AAPL", "1D", start=newest - 10 * 86_400), "NASDAQ:AAPL"
        )
        empty = client.get_hist("AAPL", "NASDAQ", start=date(1990, 1, 1), end=date(1990, 2, 1))
    assert len(empty) == 0 and empty.columns[0] == "symbol"
    assert str(empty.index.dtype) == "datetime64[ns, UTC]"


def test_connection_is_reused(fake_tv_factory: Factory) -> None:
    """Sequential calls share one connection and delete their chart sessions."""
    tv = fake_tv_factory()
    with TvDatafeed(config=client_config(tv)) as client:
        for symbol in ("AAPL", "MSFT", "NVDA", "AMZN"):
            client.get_hist(symbol, "NASDAQ", n_bars=5)
        metrics = client.metrics()
    assert tv.connection_attempts == 1
    assert metrics.connections == 1 and metrics.reconnects == 0
    # The server may still be reading the last one when the client's close returns.
    assert tv.wait_for(lambda s: s.requests.get("chart_delete_session") == 4)
    assert tv.requests.get("set_auth_token") == 1


def test_heartbeats_answered_on_a_held_connection(fake_tv_factory: Factory) -> None:
    """Idle for several heartbeat periods, the connection survives (echoes) and is reused."""
    tv = fake_tv_factory(heartbeat_interval=0.2, heartbeat_timeout=0.3)
    with TvDatafeed(config=client_config(tv, health_check_after=60.0)) as client:
        first = client.get_hist("AAPL", "NASDAQ", n_bars=5)
        time.sleep(1.5)
        second = client.get_hist("AAPL", "NASDAQ", n_bars=5)
        metrics = client.metrics()
    assert first.equals(second)
    assert tv.connection_attempts == 1
    assert metrics.heartbeats_echoed >= 5
    assert metrics.connections_lost == 0


def test_many_threads_share_one_connection(fake_tv_factory: Factory) -> None:
    """16 threads calling get_hist at once on one client all get their own, exact bars."""
    tv = fake_tv_factory()
    symbols = tv.symbols()[:16]
    results: dict[str, Any] = {}
    errors: list[BaseException] = []

    with no_new_threads(), TvDatafeed(config=client_config(tv)) as client:
        barrier = threading.Barrier(len(symbols))

        def work(symbol: str) -> None:
            try:
                barrier.wait()
                results[symbol] = client.get_hist(symbol, interval="15", n_bars=300)
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(s,)) for s in symbols]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
    assert errors == []
    for symbol in symbols:
        assert_same_bars(results[symbol], tv.bars(symbol, "15", 300), symbol)
    assert tv.connection_attempts == 1


def test_unknown_symbol_fails_fast(fake_tv_factory: Factory) -> None:
    """symbol_error becomes SymbolNotFoundError at once: no retry, breaker still closed."""
    tv = fake_tv_factory()
    with TvDatafeed(config=client_config(tv)) as client:
        with pytest.raises(SymbolNotFoundError, match="NASDAQ:NOPE"):
            client.get_hist("NOPE", "NASDAQ")
        for _ in range(6):
            with pytest.raises(SymbolNotFoundError):
                client.get_hist("NOPE", "NASDAQ")
        metrics = client.metrics()
        assert metrics.retries == 0 and metrics.circuit_state == "closed"
        assert metrics.errors_by_kind["SymbolNotFoundError"] == 7
        # The connection is still fine for a good symbol.
        assert len(client.get_hist("AAPL", "NASDAQ", n_bars=2)) == 2
    assert tv.requests.get("create_series") == 8  # one per call: nothing retried


def test_custom_resolution_refused_anonymously(fake_tv_factory: Factory) -> None:
    """A seconds resolution on an anonymous session is a SeriesError, not retried."""
    tv = fake_tv_factory()
    with TvDatafeed(config=client_config(tv)) as client, pytest.raises(SeriesError):
        client.get_hist("AAPL", "NASDAQ", "5S")
    assert client.metrics().retries == 0


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"n_bars": 0}, "n_bars"),
        ({"interval": "bogus"}, "interval"),
        ({"fut_contract": "1"}, "fut_contract"),
        ({"start": 2_000_000_000, "end": 1_000_000_000}, "start"),
        ({"end": 1_000_000_000}, "end"),
        ({"start": "not a date"}, "start"),
        ({"timeout": 0}, "timeout"),
    ],
)
def test_bad_arguments_fail_before_any_request(
    fake_tv_factory: Factory, kwargs: dict[str, Any], param: str
) -> None:
    """Invalid arguments raise ConfigurationError naming the parameter, with no traffic."""
    tv = fake_tv_factory()
    with (
        TvDatafeed(config=client_config(tv)) as client,
        pytest.raises(ConfigurationError, match=param),
    ):
        client.get_hist("AAPL", "NASDAQ", **kwargs)
    assert tv.connection_attempts == 0


def test_search_symbol(fake_tv_factory: Factory) -> None:
    """search_symbol goes to the v3 search and returns ready-to-use full symbols."""
    tv = fake_tv_factory()
    with TvDatafeed(config=client_config(tv)) as client:
        found = client.search_symbol("AAPL", "NASDAQ")
    assert any(item["full_symbol"] == "NASDAQ:AAPL" for item in found)


def test_metrics_counters_and_latency(fake_tv_factory: Factory) -> None:
    """metrics() counts requests, bars and errors and reports latency percentiles."""
    tv = fake_tv_factory()
    with TvDatafeed(config=client_config(tv)) as client:
        assert client.metrics().p50 is None
        client.get_hist("AAPL", "NASDAQ", n_bars=7)
        client.get_hist("MSFT", "NASDAQ", n_bars=3)
        with pytest.raises(SymbolNotFoundError):
            client.get_hist("NOPE", "NASDAQ")
        metrics = client.metrics()
    assert isinstance(metrics, ClientMetrics)
    assert (metrics.requests, metrics.succeeded, metrics.failed) == (3, 2, 1)
    assert metrics.bars_received == 10
    assert metrics.attempts == 3 and metrics.retries == 0
    assert metrics.p50 is not None and metrics.p99 is not None and metrics.max_latency is not None
    assert 0 < metrics.p50 <= metrics.p99 <= metrics.max_latency * 1.02
    assert metrics.recent_errors_by_kind == {"SymbolNotFoundError": 1}
    assert abs(metrics.error_rate - 1 / 3) < 1e-9
    data = metrics.as_dict()
    assert data["requests"] == 3 and isinstance(data["errors_by_kind"], dict)


def test_close_stops_everything(fake_tv_factory: Factory) -> None:
    """close() disconnects and ends the reader; later calls raise TvConnectionError."""
    tv = fake_tv_factory()
    with no_new_threads():
        client = TvDatafeed(config=client_config(tv))
        client.get_hist("AAPL", "NASDAQ", n_bars=2)
        client.close()
        client.close()  # idempotent
        assert client.closed
        with pytest.raises(TvConnectionError, match="closed"):
            client.get_hist("AAPL", "NASDAQ", n_bars=2)
    assert tv.wait_for(lambda s: s.open_connections == 0, timeout=5.0)


def test_garbage_collected_client_stops_its_thread(fake_tv_factory: Factory) -> None:
    """A client dropped without close() is finalised: the reader thread ends, socket closes."""
    tv = fake_tv_factory()
    with no_new_threads():
        client = TvDatafeed(config=client_config(tv))
        client.get_hist("AAPL", "NASDAQ", n_bars=2)
        assert any(t.name.startswith("tvadapter-reader") for t in threading.enumerate())
        del client
        gc.collect()
    assert tv.wait_for(lambda s: s.open_connections == 0, timeout=5.0)


def test_repr_has_no_secrets(fake_tv_factory: Factory) -> None:
    """The client's repr says whether it is signed in, never the token."""
    tv = fake_tv_factory()
    token = tv.issue_token("alice")
    with TvDatafeed(config=client_config(tv), token=token) as client:
        assert token not in repr(client) and "signed in" in repr(client)


def test_password_sign_in_uses_the_token(fake_tv_factory: Factory) -> None:
    """username/password sign in at construction; the session then gets the plan's cap."""
    tv = fake_tv_factory(users={"alice": "secret"}, user_plans={"alice": "pro"})
    config = client_config(tv)
    with TvDatafeed("alice", "secret", config=config) as client:
        assert not client.authenticator.is_anonymous
        assert client.authenticator.plan == "pro"
        frame = client.get_hist("BTCUSDT", "BINANCE", "1", n_bars=8_000)
    assert_same_bars(frame, tv.bars("BINANCE:BTCUSDT", "1", 8_000), "BINANCE:BTCUSDT")
    assert tv.requests.get("set_auth_token") == 1


@pytest.mark.parametrize(
    ("options", "password", "error"),
    [
        ({"captcha_users": frozenset({"alice"})}, "secret", "CaptchaRequiredError"),
        ({"twofa_users": frozenset({"alice"})}, "secret", "TwoFactorRequiredError"),
        ({}, "wrong", "InvalidCredentialsError"),
    ],
)
def test_sign_in_failures_are_clear_errors(
    fake_tv_factory: Factory, options: dict[str, Any], password: str, error: str
) -> None:
    """Captcha, 2FA and a wrong password raise their typed error at construction: no silent
    anonymous fallback, no connection, and the password never appears in the message."""
    import tvadapter

    tv = fake_tv_factory(users={"alice": "secret"}, **options)
    with no_new_threads(), pytest.raises(getattr(tvadapter, error)) as info:
        TvDatafeed("alice", password, config=client_config(tv))
    assert password not in str(info.value)
    assert tv.connection_attempts == 0


def test_rate_limiter_waits_on_the_injected_clock(fake_tv_factory: Factory) -> None:
    """With a fake clock, the limiter's waits (1 request/s, burst 1) are decided exactly and
    slept on the injected sleep, and reported in metrics."""
    from resilience.testing import FakeClock

    tv = fake_tv_factory()
    clock = FakeClock(1_000.0)
    config = client_config(tv, requests_per_minute=60, burst_size=1)
    with TvDatafeed(config=config, clock=clock, sleep=clock.sleep) as client:
        for symbol in ("NASDAQ:AAPL", "NASDAQ:MSFT", "NASDAQ:NVDA"):
            assert len(client.get_hist(symbol, n_bars=5)) == 5
        metrics = client.metrics()
    assert clock.sleeps == pytest.approx([1.0, 1.0])
    assert metrics.rate_limited == 2 and metrics.rate_limit_wait == pytest.approx(2.0)


@pytest.mark.redis
def test_redis_shares_the_rate_limit_between_clients(
    fake_tv_factory: Factory, redis_url: str
) -> None:
    """Two clients with the same redis_url share one bucket: together they get one burst."""
    import uuid

    tv = fake_tv_factory()
    # A private key space per test run: the bucket name is fixed, the redis db is shared.
    config = client_config(tv, requests_per_minute=6, burst_size=2, redis_url=redis_url)
    name = uuid.uuid4().hex
    from resilience import TokenBucket

    def bucket() -> TokenBucket:
        return TokenBucket(0.1, 2, backend=redis_url, name=name)

    with (
        TvDatafeed(config=config, rate_limiter=bucket()) as a,
        TvDatafeed(config=config, rate_limiter=bucket()) as b,
    ):
        a.get_hist("AAPL", "NASDAQ", n_bars=2)
        b.get_hist("MSFT", "NASDAQ", n_bars=2)
        # The shared burst of 2 is spent: a third request cannot get a slot within 1 s.
        with pytest.raises(RateLimitedError) as info:
            a.get_hist("NVDA", "NASDAQ", n_bars=2, timeout=1.0)
    assert info.value.retry_after is not None and info.value.retry_after > 1.0


@pytest.mark.redis
def test_redis_url_in_config_builds_a_shared_limiter(
    fake_tv_factory: Factory, redis_url: str
) -> None:
    """config.redis_url alone makes the client's limiter and breaker live in Redis."""
    tv = fake_tv_factory()
    with TvDatafeed(config=client_config(tv, redis_url=redis_url)) as client:
        assert client._limiter.backend is not None
        assert len(client.get_hist("AAPL", "NASDAQ", n_bars=3)) == 3


def test_old_idle_connection_is_replaced(fake_tv_factory: Factory) -> None:
    """An idle connection older than max_connection_age is closed and a fresh one opened."""
    tv = fake_tv_factory()
    with no_new_threads(), TvDatafeed(config=client_config(tv, max_connection_age=0.3)) as client:
        first = client.get_hist("AAPL", "NASDAQ", n_bars=5)
        time.sleep(0.5)
        second = client.get_hist("AAPL", "NASDAQ", n_bars=5)
        assert first.equals(second)
    assert tv.connection_attempts == 2


def test_without_reuse_each_call_has_its_own_connection(fake_tv_factory: Factory) -> None:
    """reuse_connections=False opens a connection per call (and closes the previous one)."""
    tv = fake_tv_factory()
    with no_new_threads(), TvDatafeed(config=client_config(tv, reuse_connections=False)) as client:
        for _ in range(3):
            client.get_hist("AAPL", "NASDAQ", n_bars=5)
    assert tv.connection_attempts == 3
    assert tv.wait_for(lambda s: s.open_connections == 0, timeout=5.0)
