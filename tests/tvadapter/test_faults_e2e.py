"""Every fault the fake server can inject, end to end: exact bars or the right typed error.

Each test runs a TvDatafeed against a FakeTradingView with a fault switched on, and proves
either that the client returns exactly the bars the server holds (value by value) or that it
raises the right typed error within the configured deadline; and that no thread is left
running once the client is closed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from test_client_support import assert_same_bars, client_config, no_new_threads

from tvadapter import (
    HandshakeForbidden,
    ProtocolError,
    SymbolNotFoundError,
    TokenExpiredError,
    TvCircuitOpenError,
    TvConnectionError,
    TvDatafeed,
    TvTimeoutError,
    _router,
)
from tvadapter._auth import Authenticator, Credentials
from tvadapter.testing import (
    MALFORMED_KINDS,
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

AAPL = "NASDAQ:AAPL"
BTC = "BINANCE:BTCUSDT"


def fetch_and_check(
    tv: FakeTradingView,
    client: TvDatafeed,
    symbol: str = AAPL,
    interval: str = "1",
    n_bars: int = 5_000,
) -> None:
    frame = client.get_hist(symbol, interval=interval, n_bars=n_bars)
    assert_same_bars(frame, tv.bars(symbol, interval, n_bars), symbol)


def test_latency(fake_tv_factory: Factory) -> None:
    """50 ms added to every message: the bars are exact, nothing is retried."""
    tv = fake_tv_factory(faults=[Latency(0.05)])
    with no_new_threads(), TvDatafeed(config=client_config(tv)) as client:
        fetch_and_check(tv, client)
        fetch_and_check(tv, client, "NASDAQ:MSFT", "1D", 50)
        assert client.metrics().retries == 0


@pytest.mark.parametrize("code", [1005, 1006])
def test_drop_mid_series_during_pagination(fake_tv_factory: Factory, code: int) -> None:
    """A close (1005/1006) in the middle of a paginated load is retried from scratch: exact."""
    tv = fake_tv_factory(faults=[Drop(after=6, code=code, attempts=1)])
    token = tv.issue_token("alice", plan="pro_premium")
    with no_new_threads(), TvDatafeed(config=client_config(tv), token=token) as client:
        fetch_and_check(tv, client, BTC, "1", 12_000)
        metrics = client.metrics()
    assert tv.connection_attempts == 2
    assert metrics.retries == 1 and metrics.connections == 2
    assert metrics.errors_by_kind == {"ConnectionClosed": 1}


@pytest.mark.parametrize("code", [1005, 1006])
def test_idle_connection_closed_by_server(fake_tv_factory: Factory, code: int) -> None:
    """A reused connection that the server cut while idle is replaced transparently."""
    tv = fake_tv_factory()
    with no_new_threads(), TvDatafeed(config=client_config(tv)) as client:
        fetch_and_check(tv, client, AAPL, "1D", 10)
        assert tv.drop_connections(code) == 1
        assert tv.wait_for(lambda s: s.open_connections == 0, timeout=5.0)
        fetch_and_check(tv, client, AAPL, "1D", 10)
    assert tv.connection_attempts == 2


@pytest.mark.parametrize("heartbeats", [False, True])
def test_stall_mid_series(fake_tv_factory: Factory, heartbeats: bool) -> None:
    """A connection that goes silent mid-series (with or without heartbeats) is abandoned
    after the progress timeout and the series is loaded again on a new one."""
    tv = fake_tv_factory(
        heartbeat_interval=0.2, faults=[Stall(after=2, heartbeats=heartbeats, attempts=1)]
    )
    with no_new_threads(), TvDatafeed(config=client_config(tv, progress_timeout=2.0)) as client:
        fetch_and_check(tv, client)
        assert client.metrics().errors_by_kind == {"TvTimeoutError": 1}
    assert tv.connection_attempts == 2


def test_permanent_stall_times_out_within_the_deadline(fake_tv_factory: Factory) -> None:
    """A server that never answers gives TvTimeoutError by the deadline, not a hang."""
    tv = fake_tv_factory(faults=[Stall(after=0)])
    config = client_config(tv, progress_timeout=0.5, request_deadline=2.5)
    with no_new_threads(), TvDatafeed(config=config) as client:
        started = time.monotonic()
        with pytest.raises(TvTimeoutError):
            client.get_hist("AAPL", "NASDAQ")
        elapsed = time.monotonic() - started
    assert elapsed < 2.5 + 5.0  # bounded by the deadline (slack for a loaded machine)


@pytest.mark.parametrize("status", [429, 503])
def test_handshake_rejected_for_the_first_attempts(fake_tv_factory: Factory, status: int) -> None:
    """HTTP 429/503 on the first two upgrades is retried (after Retry-After): exact bars."""
    tv = fake_tv_factory(faults=[RejectHandshake(status, retry_after=0.1, attempts=first(2))])
    with no_new_threads(), TvDatafeed(config=client_config(tv)) as client:
        started = time.monotonic()
        fetch_and_check(tv, client, AAPL, "1D", 20)
        assert time.monotonic() - started >= 0.2  # Retry-After honoured twice
    assert tv.connection_attempts == 3 and tv.handshakes_rejected == 2


def test_handshake_forbidden_is_not_retried(fake_tv_factory: Factory) -> None:
    """A 403 upgrade is a configuration problem: raised at once, one attempt only."""
    tv = fake_tv_factory(faults=[RejectHandshake(403)])
    with no_new_threads(), TvDatafeed(config=client_config(tv)) as client:
        with pytest.raises(HandshakeForbidden):
            client.get_hist("AAPL", "NASDAQ")
        assert client.metrics().retries == 0
    assert tv.connection_attempts == 1


def test_circuit_opens_after_repeated_connection_failures(fake_tv_factory: Factory) -> None:
    """Persistent 503s open the breaker: the next call fails fast without touching the server."""
    tv = fake_tv_factory(faults=[RejectHandshake(503)])
    config = client_config(tv, max_retries=2, request_deadline=5.0)
    with no_new_threads(), TvDatafeed(config=config) as client:
        # 3 attempts per call: the fifth consecutive failure opens the breaker during call 2.
        with pytest.raises(TvConnectionError):
            client.get_hist("AAPL", "NASDAQ")
        with pytest.raises(TvCircuitOpenError):
            client.get_hist("AAPL", "NASDAQ")
        attempts = tv.connection_attempts
        with pytest.raises(TvCircuitOpenError) as info:
            client.get_hist("AAPL", "NASDAQ")
        assert info.value.retry_after > 0
        assert tv.connection_attempts == attempts
        assert client.metrics().circuit_state == "open"


def test_request_rate_close_is_survived(fake_tv_factory: Factory) -> None:
    """A server closing clients that send too fast: each call still returns exact bars."""
    tv = fake_tv_factory(faults=[RequestRate(max_requests=6, window=1.0)])
    with no_new_threads(), TvDatafeed(config=client_config(tv)) as client:
        for symbol in ("NASDAQ:AAPL", "NASDAQ:MSFT", "NASDAQ:NVDA"):
            fetch_and_check(tv, client, symbol, "1D", 30)
        assert client.metrics().connections_lost >= 1
    assert tv.counter("rate_closes") >= 1 or tv.connection_attempts > 1


def test_rate_limiter_keeps_under_the_server_limit(fake_tv_factory: Factory) -> None:
    """With the limiter set below the server's rate, the close never happens at all."""
    tv = fake_tv_factory(faults=[RequestRate(max_requests=8, window=1.0)])
    config = client_config(tv, requests_per_minute=40, burst_size=1)
    with no_new_threads(), TvDatafeed(config=config) as client:
        for symbol in ("NASDAQ:AAPL", "NASDAQ:MSFT", "NASDAQ:NVDA"):
            fetch_and_check(tv, client, symbol, "1D", 30)
        metrics = client.metrics()
    assert tv.connection_attempts == 1
    assert metrics.rate_limited >= 1 and metrics.rate_limit_wait > 0


@pytest.mark.parametrize("kind", MALFORMED_KINDS)
def test_malformed_frame(fake_tv_factory: Factory, kind: str) -> None:
    """A malformed message mid-series on the first connection is detected, the connection
    dropped and the load redone on a new one: exact bars."""
    tv = fake_tv_factory(packing="split", faults=[Malformed(kind=kind, after=1, attempts=1)])
    with no_new_threads(), TvDatafeed(config=client_config(tv)) as client:
        fetch_and_check(tv, client, AAPL, "1", 2_000)
    # A binary frame holding a well-formed (harmless) packet is read like a text frame; every
    # other kind breaks the stream, so the connection is replaced.
    assert tv.connection_attempts == (1 if kind == "binary" else 2)


def test_persistently_malformed_stream_raises_protocol_error(fake_tv_factory: Factory) -> None:
    """If every connection sends garbage, a ProtocolError is raised after the retries."""
    tv = fake_tv_factory(faults=[Malformed(kind="not_json", after=1)])
    with no_new_threads(), TvDatafeed(config=client_config(tv, max_retries=2)) as client:
        with pytest.raises(ProtocolError):
            client.get_hist("AAPL", "NASDAQ")
    assert tv.connection_attempts == 3


def test_huge_frame(fake_tv_factory: Factory) -> None:
    """A 4 MB timescale_update message is parsed correctly."""
    tv = fake_tv_factory(faults=[HugeFrame(size=4_000_000)])
    with no_new_threads(), TvDatafeed(config=client_config(tv)) as client:
        fetch_and_check(tv, client, AAPL, "1", 5_000)


@pytest.mark.parametrize("level", ["fragments", "bytes"])
def test_slow_drip(fake_tv_factory: Factory, level: str) -> None:
    """Messages trickling in small pieces are reassembled exactly."""
    tv = fake_tv_factory(faults=[SlowDrip(chunk=16_384, delay=0.005, level=level)])
    with no_new_threads(), TvDatafeed(config=client_config(tv)) as client:
        fetch_and_check(tv, client, AAPL, "1", 3_000)


def test_drip_slower_than_the_deadline_times_out(fake_tv_factory: Factory) -> None:
    """A drip too slow to finish in time raises TvTimeoutError within the deadline."""
    tv = fake_tv_factory(faults=[SlowDrip(chunk=256, delay=0.05, min_size=10_000)])
    config = client_config(tv, progress_timeout=1.0, request_deadline=2.5)
    with no_new_threads(), TvDatafeed(config=config) as client:
        started = time.monotonic()
        with pytest.raises(TvTimeoutError):
            client.get_hist("AAPL", "NASDAQ", "1", n_bars=5_000)
        assert time.monotonic() - started < 2.5 + 5.0  # the deadline, plus slack


def expired_token(tv: FakeTradingView) -> str:
    return tv.issue_token("alice", issued_at=time.time() - 5 * 3600, lifetime=4 * 3600)


def test_expired_token_without_renewal_raises_token_expired(fake_tv_factory: Factory) -> None:
    """A heartbeat-only session on a token that cannot be renewed: TokenExpiredError, no retry."""
    tv = fake_tv_factory(heartbeat_interval=0.2)
    config = client_config(tv, progress_timeout=2.0)
    # The client's clock is 2 h behind, so it believes the token valid; the server knows better.
    auth = Authenticator(
        Credentials(token=expired_token(tv)),
        config=config,
        wall_clock=lambda: time.time() - 2 * 3600,
    )
    with no_new_threads(), TvDatafeed(config=config, authenticator=auth) as client:
        started = time.monotonic()
        with pytest.raises(TokenExpiredError, match="heartbeats"):
            client.get_hist("AAPL", "NASDAQ")
        # Detected by the progress timeout, long before the request deadline.
        assert time.monotonic() - started < config.request_deadline
        assert client.metrics().retries == 0


def test_expired_token_is_renewed_once(fake_tv_factory: Factory) -> None:
    """With a password to sign in again, the heartbeat-only session leads to one renewal and
    then the exact bars."""
    tv = fake_tv_factory(heartbeat_interval=0.2, users={"alice": "secret"})
    config = client_config(tv, progress_timeout=2.0)
    credentials = Credentials(username="alice", password="secret", token=expired_token(tv))
    auth = Authenticator(credentials, config=config, wall_clock=lambda: time.time() - 2 * 3600)
    with no_new_threads(), TvDatafeed(config=config, authenticator=auth) as client:
        fetch_and_check(tv, client, AAPL, "1D", 25)
        metrics = client.metrics()
    assert metrics.token_refreshes == 1 and metrics.retries == 1
    assert auth.sign_ins == 1


def test_bad_token_fails_fast(fake_tv_factory: Factory) -> None:
    """A token the server calls bad (protocol_error) raises TokenExpiredError without retry."""
    tv = fake_tv_factory()
    with no_new_threads(), TvDatafeed(config=client_config(tv), token="not-a-token") as client:
        with pytest.raises(TokenExpiredError, match="bad auth token"):
            client.get_hist("AAPL", "NASDAQ")
        assert client.metrics().retries == 0
    assert tv.connection_attempts == 1


def test_send_meeting_a_refused_token_raises_token_expired(
    fake_tv_factory: Factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A request whose first send fails on the connection the server closed after "bad auth
    token" (before the reader reported why) raises TokenExpiredError: no retry, one connection."""
    real_register = _router.Router.register
    real_die = _router.Router._die

    def register(self: _router.Router, chart_session: str) -> Any:
        deadline = time.monotonic() + 5.0
        while self.manager.is_connected() and time.monotonic() < deadline:
            time.sleep(0.005)  # until the server's close has been seen...
        return real_register(self, chart_session)

    def die(self: _router.Router, reason: Any) -> None:
        time.sleep(0.3)  # ...but before the reader has reported why
        real_die(self, reason)

    monkeypatch.setattr(_router.Router, "register", register)
    monkeypatch.setattr(_router.Router, "_die", die)
    tv = fake_tv_factory()
    with no_new_threads(), TvDatafeed(config=client_config(tv), token="not-a-token") as client:
        with pytest.raises(TokenExpiredError, match="bad auth token"):
            client.get_hist("AAPL", "NASDAQ")
        assert client.metrics().retries == 0
    assert tv.connection_attempts == 1


def test_send_meeting_a_malformed_stream_raises_protocol_error(
    fake_tv_factory: Factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When the reader drops a connection for a malformed message while the request is still
    sending its setup, the request fails with the ProtocolError, not "not connected"."""
    real_send = _router.Router.send

    def slow_send(self: _router.Router, payloads: Any) -> None:
        for payload in payloads:
            real_send(self, [payload])
            time.sleep(0.1)  # the server answers (malformed) while we are still sending

    monkeypatch.setattr(_router.Router, "send", slow_send)
    tv = fake_tv_factory(faults=[Malformed(kind="bad_length", after=0)])
    with no_new_threads(), TvDatafeed(config=client_config(tv, max_retries=0)) as client:
        with pytest.raises(ProtocolError, match="packet length"):
            client.get_hist("AAPL", "NASDAQ")
    assert tv.connection_attempts == 1


def test_unknown_symbol(fake_tv_factory: Factory) -> None:
    """symbol_error: SymbolNotFoundError at once, one request, no thread left."""
    tv = fake_tv_factory()
    with no_new_threads(), TvDatafeed(config=client_config(tv)) as client:
        with pytest.raises(SymbolNotFoundError):
            client.get_hist("DOESNOTEXIST", "NYSE")
        assert client.metrics().retries == 0
    assert tv.requests.get("create_series") == 1


def test_faults_with_many_threads(fake_tv_factory: Factory) -> None:
    """A drop hitting 8 concurrent requests: every one of them still gets its exact bars."""
    import threading

    tv = fake_tv_factory(faults=[Drop(after=10, code=1006, attempts=1), Latency(0.01)])
    symbols = tv.symbols()[:8]
    results: dict[str, Any] = {}
    errors: list[BaseException] = []
    with no_new_threads(), TvDatafeed(config=client_config(tv)) as client:

        def work(symbol: str) -> None:
            try:
                results[symbol] = client.get_hist(symbol, interval="5", n_bars=1_000)
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(s,)) for s in symbols]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
    assert errors == []
    for symbol in symbols:
        assert_same_bars(results[symbol], tv.bars(symbol, "5", 1_000), symbol)
    assert tv.connection_attempts == 2
