"""TvDatafeedLive end to end against the fake TradingView server in live mode (127.0.0.1).

Live-clock tests use fast bars (``bar_seconds`` 0.25: a "1-minute" bar closes every 0.25 s);
the others drive the server's clock by hand (``tv.step()`` / ``tv.advance()``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pandas as pd
import pytest
from test_client_support import assert_same_bars, client_config, no_new_threads

from tvadapter import (
    HandshakeForbidden,
    Interval,
    SymbolNotFoundError,
    TokenExpiredError,
    TvConnectionError,
)
from tvadapter._auth import Authenticator, Credentials
from tvadapter.live import Consumer, LiveSettings, Seis, TvDatafeedLive
from tvadapter.testing import Drop, FakeTradingView, Malformed, RejectHandshake, Stall

Factory = Callable[..., FakeTradingView]

BTC = "BINANCE:BTCUSDT"
ETH = "BINANCE:ETHUSDT"


class Recorder:
    """A consumer callback recording every frame it gets (thread-safe)."""

    __name__ = "record"

    def __init__(self) -> None:
        self.frames: list[pd.DataFrame] = []
        self.seis: list[Seis] = []
        self.threads: set[str] = set()
        self._lock = threading.Lock()

    def __call__(self, seis: Seis, df: pd.DataFrame) -> None:
        with self._lock:
            self.frames.append(df)
            self.seis.append(seis)
            self.threads.add(threading.current_thread().name)

    def __len__(self) -> int:
        with self._lock:
            return len(self.frames)

    def times(self) -> list[float]:
        with self._lock:
            return [df.index[0].timestamp() for df in self.frames]

    def frame(self) -> pd.DataFrame:
        with self._lock:
            return pd.concat(self.frames)


def wait_until(predicate: Callable[[], bool], timeout: float = 15.0) -> None:
    """Poll ``predicate`` until true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.02)


def assert_matches_truth(tv: FakeTradingView, symbol: str, res: str, rec: Recorder) -> int:
    """The frames received are a contiguous run of the server's closed bars, value by value;
    returns the position of the first one in the server's history."""
    assert len(rec) > 0, "no bar received"
    truth = tv.bars(symbol, res)
    times = [b.time for b in truth]
    received = rec.times()
    first = times.index(received[0])
    assert_same_bars(rec.frame(), truth[first : first + len(received)], symbol)
    return first


def feed(tv: FakeTradingView, **options: Any) -> TvDatafeedLive:
    """A live feed on ``tv`` with short timeouts (a stall takes 3 s: machines are noisy)."""
    options.setdefault("stall_timeout", 3.0)
    options.setdefault("setup_timeout", 3.0)
    return TvDatafeedLive(config=client_config(tv, max_retry_delay=0.3), **options)


def live_threads() -> list[str]:
    """Names of the live feed's threads still running."""
    return [t.name for t in threading.enumerate() if t.name.startswith("tvadapter-live")]


@contextmanager
def server(factory: Factory, **options: Any) -> Iterator[FakeTradingView]:
    """A live-mode fake server with fast heartbeats."""
    options.setdefault("heartbeat_interval", 0.2)
    options.setdefault("heartbeat_timeout", 2.0)
    yield factory(live=True, **options)


# -- the stream across faults ----------------------------------------------------------------


def test_closed_bars_match_the_server_across_a_drop_and_a_stall(fake_tv_factory: Factory) -> None:
    """Two consumers on one Seis and a second Seis get the server's closed bars, bar for bar,
    across a 1006 drop, a stall (no data, no heartbeats), a 1005 close and a malformed
    message: no gap, no duplicate."""
    faults = (
        Drop(after=24, attempts=1),
        Stall(after=16, attempts=2),
        Drop(after=20, code=1005, attempts=3),
        Malformed(kind="bad_length", after=20, attempts=4),
    )
    with server(fake_tv_factory, bar_seconds=0.25, faults=faults) as tv, no_new_threads():
        with feed(tv, initial_bars=2, stall_timeout=1.0) as live:
            before = tv.history_depth(BTC, "1")
            btc = live.new_seis("BTCUSDT", "BINANCE", Interval.in_1_minute)
            one, two = Recorder(), Recorder()
            btc.new_consumer(one)
            live.new_consumer(btc, two)
            eth_rec = Recorder()
            eth = live.new_seis("ETHUSDT", "BINANCE", Interval.in_5_minute)
            eth.new_consumer(eth_rec)
            wait_until(lambda: live.live_stats().connections >= 5)
            marks = len(one), len(two), len(eth_rec)
            wait_until(lambda: (len(one), len(two), len(eth_rec)) >= tuple(m + 4 for m in marks))
            stats = live.live_stats()
        assert stats.stalls >= 1 and stats.connections_lost >= 4
        assert stats.backfilled_bars >= 2 and stats.backfill_rounds >= 1
        assert stats.gaps == 0
        first = assert_matches_truth(tv, BTC, "1", one)
        assert before <= first <= before + 4  # starts with the bar forming at subscription
        assert_matches_truth(tv, BTC, "1", two)
        assert_matches_truth(tv, ETH, "5", eth_rec)
        assert set(one.seis) == {btc} and one.threads == {"record_BTCUSDT_BINANCE_1"}
        assert [r.status for r in tv.connection_log()][:5] == [101] * 5


def test_a_quiet_market_is_not_an_error(fake_tv_factory: Factory) -> None:
    """No bars for many stall timeouts, heartbeats only: no reconnect, then bars flow again."""
    with server(fake_tv_factory) as tv, feed(tv, stall_timeout=1.5) as live:
        seis = live.new_seis("BTCUSDT", "BINANCE", Interval.in_1_minute)
        rec = Recorder()
        seis.new_consumer(rec)
        time.sleep(3.0)  # twice the stall timeout without a single data message
        stats = live.live_stats()
        assert stats.connections == 1 and stats.connections_lost == 0 and stats.connected
        assert len(rec) == 0
        tv.advance(3)
        wait_until(lambda: len(rec) == 3)
        assert_matches_truth(tv, BTC, "1", rec)
        assert rec.times()[-1] == tv.bars(BTC, "1", 1)[0].time


def test_idle_reconnect_recovers_from_a_freeze_with_heartbeats(fake_tv_factory: Factory) -> None:
    """With idle_reconnect, data stopping while heartbeats go on (a freeze) means reconnect and
    backfill; the bars still match the server's."""
    faults = (Stall(after=12, heartbeats=True, attempts=1),)
    with server(fake_tv_factory, bar_seconds=0.25, faults=faults) as tv:
        with feed(tv, idle_reconnect=1.0) as live:
            seis = live.new_seis("BTCUSDT", "BINANCE", Interval.in_1_minute)
            rec = Recorder()
            seis.new_consumer(rec)
            wait_until(lambda: live.live_stats().idle_reconnects >= 1)
            mark = len(rec)
            wait_until(lambda: len(rec) >= mark + 3)
            stats = live.live_stats()
        assert stats.stalls == 0 and stats.backfilled_bars >= 2
        assert_matches_truth(tv, BTC, "1", rec)


def test_a_forbidden_handshake_fails_new_seis_at_once(fake_tv_factory: Factory) -> None:
    """A 403 on the upgrade (wrong Origin) is a configuration error: new_seis raises it."""
    with server(fake_tv_factory, faults=(RejectHandshake(status=403),)) as tv:
        with feed(tv) as live, pytest.raises(HandshakeForbidden):
            live.new_seis("BTCUSDT", "BINANCE", Interval.in_1_minute)


def test_new_seis_returns_false_when_its_timeout_runs_out(fake_tv_factory: Factory) -> None:
    """While the server refuses connections (503), new_seis(timeout) returns False, adds
    nothing, and the feed still closes cleanly."""
    with server(fake_tv_factory, faults=(RejectHandshake(status=503),)) as tv:
        with no_new_threads(), feed(tv) as live:
            assert live.new_seis("BTCUSDT", "BINANCE", Interval.in_1_minute, 0.5) is False
            assert live.list_seis() == []
            assert live.live_stats().connections == 0


def test_close_wakes_a_waiting_new_seis(fake_tv_factory: Factory) -> None:
    """close() from another thread makes a new_seis that waits for a connection raise at once."""
    with server(fake_tv_factory, faults=(RejectHandshake(status=503),)) as tv:
        live = feed(tv)
        closer = threading.Timer(0.3, live.close)
        closer.start()
        started = time.monotonic()
        with pytest.raises(TvConnectionError, match="closed"):
            live.new_seis("BTCUSDT", "BINANCE", Interval.in_1_minute)
        assert time.monotonic() - started < 10
        closer.join(10)
        assert live_threads() == []


def test_forming_bar_updates_are_opt_in(fake_tv_factory: Factory) -> None:
    """Only a consumer with on_update gets forming-bar frames, each equal to the server's."""
    with server(fake_tv_factory, updates_per_bar=3) as tv, feed(tv) as live:
        seis = live.new_seis("BTCUSDT", "BINANCE", Interval.in_1_minute)
        plain, closed, forming = Recorder(), Recorder(), Recorder()
        seis.new_consumer(plain)
        seis.new_consumer(closed, on_update=forming)
        for expected in (1, 2):
            tv.step()
            wait_until(lambda n=expected: len(forming) == n)  # type: ignore[misc]
            bar = tv.forming_bar(BTC, "1")
            assert_same_bars(forming.frames[-1], [bar], BTC)
        tv.step()  # closes the bar
        wait_until(lambda: len(closed) == 1 and len(plain) == 1 and len(forming) == 3)
        assert_same_bars(closed.frames[0], tv.bars(BTC, "1", 1), BTC)
        assert_same_bars(plain.frames[0], tv.bars(BTC, "1", 1), BTC)
        assert_same_bars(forming.frames[-1], [tv.forming_bar(BTC, "1")], BTC)
        assert tv.connection_attempts == 1  # streamed: no socket per bar (tvDatafeed polled)


# -- errors and isolation --------------------------------------------------------------------


def test_unknown_symbol_raises_symbol_not_found_and_nothing_else_breaks(
    fake_tv_factory: Factory,
) -> None:
    """new_seis on an unknown symbol raises SymbolNotFoundError; the other series carry on."""
    with server(fake_tv_factory) as tv, feed(tv) as live:
        seis = live.new_seis("BTCUSDT", "BINANCE", Interval.in_1_minute)
        rec = Recorder()
        seis.new_consumer(rec)
        with pytest.raises(SymbolNotFoundError, match="NASDAQ:NOPE"):
            live.new_seis("NOPE", "NASDAQ", Interval.in_1_minute)
        assert live.list_seis() == [seis]
        tv.advance(2)
        wait_until(lambda: len(rec) == 2)
        assert_matches_truth(tv, BTC, "1", rec)
        assert live.live_stats().connections == 1


def test_a_raising_callback_is_logged_and_isolated(
    fake_tv_factory: Factory, caplog: pytest.LogCaptureFixture
) -> None:
    """A callback that raises is logged and counted; it and the other consumers keep going."""

    def broken(seis: Seis, df: pd.DataFrame) -> None:
        raise RuntimeError("boom")

    with server(fake_tv_factory) as tv, feed(tv) as live:
        seis = live.new_seis("BTCUSDT", "BINANCE", Interval.in_1_minute)
        rec = Recorder()
        bad = seis.new_consumer(broken)
        seis.new_consumer(rec)
        with caplog.at_level(logging.ERROR, logger="tvadapter.live"):
            tv.advance(3)
            wait_until(lambda: len(rec) == 3 and bad.errors == 3)
            logged = [r for r in caplog.records if "callback raised" in r.getMessage()]
        assert bad.is_alive() and isinstance(bad.last_error, RuntimeError)
        assert len(logged) == 3 and all(r.exc_info for r in logged)
        assert_matches_truth(tv, BTC, "1", rec)


def test_expired_fixed_token_fails_new_seis_with_token_expired(fake_tv_factory: Factory) -> None:
    """A token the server treats as expired (only heartbeats) fails new_seis, typed, quickly."""
    with server(fake_tv_factory) as tv:
        expired = tv.issue_token("alice", lifetime=-1)
        auth = Authenticator(
            Credentials(token=expired), config=client_config(tv), wall_clock=lambda: 0.0
        )
        with feed(tv, authenticator=auth, setup_timeout=0.8) as live:
            started = time.monotonic()
            with pytest.raises(TokenExpiredError):
                live.new_seis("BTCUSDT", "BINANCE", Interval.in_1_minute)
            assert time.monotonic() - started < 10
            assert live.live_stats().heartbeat_only_sessions >= 1


def test_expired_token_is_renewed_when_a_password_is_known(fake_tv_factory: Factory) -> None:
    """A heartbeat-only session makes the feed sign in again and stream on a new connection."""
    with server(fake_tv_factory, users={"alice": "secret"}) as tv:
        expired = tv.issue_token("alice", lifetime=-1)
        credentials = Credentials(username="alice", password="secret", token=expired)
        auth = Authenticator(credentials, config=client_config(tv), wall_clock=lambda: 0.0)
        with feed(tv, authenticator=auth, setup_timeout=0.8) as live:
            seis = live.new_seis("BTCUSDT", "BINANCE", Interval.in_1_minute)
            rec = Recorder()
            seis.new_consumer(rec)
            tv.advance(2)
            wait_until(lambda: len(rec) == 2)
            stats = live.live_stats()
        assert stats.heartbeat_only_sessions == 1 and stats.connections == 2
        assert auth.sign_ins == 1
        assert_matches_truth(tv, BTC, "1", rec)


def test_refused_token_fails_new_seis_with_an_authentication_error(
    fake_tv_factory: Factory,
) -> None:
    """protocol_error "bad auth token" for a fixed token fails new_seis with TokenExpiredError."""
    with server(fake_tv_factory, strict_tokens=True) as tv:
        forged = FakeTradingView().issue_token("alice")  # not issued by this server
        with feed(tv, token=forged) as live:
            with pytest.raises(TokenExpiredError):
                live.new_seis("BTCUSDT", "BINANCE", Interval.in_1_minute)
            assert live.list_seis() == []


def test_token_renewal_replaces_the_connection_without_losing_bars(
    fake_tv_factory: Factory,
) -> None:
    """A token close to expiry is renewed and the connection replaced at once, gap-free."""
    with server(fake_tv_factory, users={"alice": "secret"}, token_lifetime=2) as tv:
        # Tokens live 2 s; the authenticator renews them in their second half.
        settings = LiveSettings(
            stall_timeout=3.0, setup_timeout=3.0, token_margin=300, token_check_interval=0.3
        )
        with feed(tv, username="alice", password="secret", live_settings=settings) as live:
            auth = live.authenticator
            seis = live.new_seis("BTCUSDT", "BINANCE", Interval.in_1_minute)
            rec = Recorder()
            seis.new_consumer(rec)
            for _ in range(2):
                renewals = live.live_stats().token_renewals
                tv.advance(1)
                wait_until(lambda r=renewals: live.live_stats().token_renewals > r)  # type: ignore[misc]
            tv.advance(1)
            wait_until(lambda: len(rec) == 3)
            stats = live.live_stats()
        assert stats.connections >= 3 and stats.connect_failures == 0
        assert auth.sign_ins >= 3
        assert_matches_truth(tv, BTC, "1", rec)


# -- threads ---------------------------------------------------------------------------------


def test_series_added_and_removed_from_other_threads_while_bars_flow(
    fake_tv_factory: Factory,
) -> None:
    """Threads adding and deleting series and consumers never disturb a running series."""
    symbols = ["ETHUSDT", "SOLUSDT", "XRPUSDT", "ADAUSDT"]
    errors: list[BaseException] = []
    with server(fake_tv_factory, bar_seconds=0.25) as tv, no_new_threads():
        with feed(tv) as live:
            main = live.new_seis("BTCUSDT", "BINANCE", Interval.in_1_minute)
            rec = Recorder()
            main.new_consumer(rec)

            def churn(symbol: str) -> None:
                try:
                    for _ in range(3):
                        seis = live.new_seis(symbol, "BINANCE", Interval.in_1_minute)
                        assert live.new_seis(symbol, "BINANCE", "1") is seis
                        consumer = seis.new_consumer(Recorder())
                        time.sleep(0.1)
                        assert consumer.del_consumer() is True
                        assert live.del_seis(seis) is True
                except BaseException as exc:  # reported below
                    errors.append(exc)

            workers = [threading.Thread(target=churn, args=(s,)) for s in symbols]
            for w in workers:
                w.start()
            for w in workers:
                w.join(30)
            mark = len(rec)
            wait_until(lambda: len(rec) >= mark + 2)
            assert errors == []
            assert live.list_seis() == [main]
            assert live.live_stats().subscriptions == 1
        assert_matches_truth(tv, BTC, "1", rec)


def test_same_triple_from_many_threads_gives_one_seis(fake_tv_factory: Factory) -> None:
    """Concurrent new_seis calls for one triple return the same Seis and one subscription."""
    with server(fake_tv_factory) as tv, feed(tv) as live:
        results: list[Seis] = []
        workers = [
            threading.Thread(
                target=lambda: results.append(
                    live.new_seis("BTCUSDT", "BINANCE", Interval.in_1_minute)
                )
            )
            for _ in range(6)
        ]
        for w in workers:
            w.start()
        for w in workers:
            w.join(20)
        assert len(results) == 6 and all(r is results[0] for r in results)
        assert live.live_stats().series_created == 1


def test_close_joins_every_thread(fake_tv_factory: Factory) -> None:
    """close() stops the connection, the engine and every consumer: no thread is left."""
    with server(fake_tv_factory, bar_seconds=0.25) as tv:
        live = feed(tv)
        seis = live.new_seis("BTCUSDT", "BINANCE", Interval.in_1_minute)
        consumers = [seis.new_consumer(Recorder()) for _ in range(3)]
        assert len(live_threads()) == 2 and all(c.is_alive() for c in consumers)
        live.close()
        assert live_threads() == []
        assert not any(c.is_alive() for c in consumers)
        live.close()  # idempotent
        with pytest.raises(TvConnectionError):
            live.new_seis("ETHUSDT", "BINANCE", Interval.in_1_minute)
        assert seis.tvdatafeed is None and seis.get_consumers() == []
        with pytest.raises(NameError):
            seis.del_seis()


def test_a_callback_may_close_the_feed(fake_tv_factory: Factory) -> None:
    """del_tvdatafeed() from inside a callback stops everything without deadlock."""
    with server(fake_tv_factory) as tv:
        live = feed(tv)
        done = threading.Event()

        def stop_all(seis: Seis, df: pd.DataFrame) -> None:
            live.del_tvdatafeed()
            done.set()

        seis = live.new_seis("BTCUSDT", "BINANCE", Interval.in_1_minute)
        consumer = seis.new_consumer(stop_all)
        tv.advance(1)
        assert done.wait(10)
        consumer.join(5)
        assert live_threads() == [] and not consumer.is_alive()


# -- tvDatafeed's surface --------------------------------------------------------------------


def test_tvdatafeed_surface(fake_tv_factory: Factory) -> None:
    """Seis/Consumer keep tvDatafeed's names, attributes, errors and timeout convention."""
    with server(fake_tv_factory) as tv, feed(tv) as live:
        seis = live.new_seis("BTCUSDT", "BINANCE", Interval.in_1_minute)
        assert live.new_seis("BTCUSDT", "BINANCE", Interval.in_1_minute) is seis
        assert not live._lock.locked()  # tvDatafeed leaked it on this path
        assert seis == Seis("BTCUSDT", "BINANCE", Interval.in_1_minute)
        assert hash(seis) == hash(Seis("BTCUSDT", "BINANCE", Interval.in_1_minute))
        assert seis != Seis("BTCUSDT", "BINANCE", Interval.in_5_minute)
        assert (seis.symbol, seis.exchange, seis.interval) == (
            "BTCUSDT",
            "BINANCE",
            Interval.in_1_minute,
        )
        with pytest.raises(AttributeError):
            seis.symbol = "ETHUSDT"  # type: ignore[misc]
        with pytest.raises(AttributeError):
            seis.tvdatafeed = live
        stranger = Seis("ETHUSDT", "BINANCE", Interval.in_1_minute)
        with pytest.raises(ValueError, match="Seis is not listed"):
            live.del_seis(stranger)
        with pytest.raises(ValueError, match="Seis is not listed"):
            live.new_consumer(stranger, Recorder())
        with pytest.raises(NameError):
            stranger.new_consumer(Recorder())
        assert not live._lock.locked()

        def on_bar(seis: Seis, df: pd.DataFrame) -> None:
            pass

        consumer = seis.new_consumer(on_bar)
        assert isinstance(consumer, Consumer) and consumer.is_alive()
        assert consumer.name == "on_bar_BTCUSDT_BINANCE_1"
        assert seis.get_consumers() == [consumer]
        with pytest.raises(ValueError):
            consumer.put(None)  # type: ignore[arg-type]

        # The lock-timeout convention: False when the lock cannot be had in time.
        with live._lock:
            assert live.new_seis("ETHUSDT", "BINANCE", Interval.in_1_minute, 0.05) is False
            assert live.del_seis(seis, timeout=0) is False
            assert live.new_consumer(seis, on_bar, 0.05) is False
            assert live.del_consumer(consumer, 0.05) is False

        assert seis.del_consumer(consumer) is True
        consumer.join(5)
        assert not consumer.is_alive() and seis.get_consumers() == []
        with pytest.raises(ValueError, match="Consumer is not listed"):
            live.del_consumer(consumer)
        assert seis.del_seis() is True
        assert seis.tvdatafeed is None and live.list_seis() == []


def test_get_hist_goes_through_the_client(fake_tv_factory: Factory) -> None:
    """get_hist (feed and Seis) returns the server's history, timeout=-1 meaning the default."""
    with server(fake_tv_factory) as tv, feed(tv) as live:
        frame = live.get_hist("AAPL", "NASDAQ", Interval.in_daily, 5)  # ends with the forming bar
        assert_same_bars(frame.iloc[:4], tv.bars("NASDAQ:AAPL", "1D", 4), "NASDAQ:AAPL")
        seis = live.new_seis("BTCUSDT", "BINANCE", Interval.in_1_minute)
        frame = seis.get_hist(n_bars=3, timeout=10)
        assert_same_bars(frame.iloc[:2], tv.bars(BTC, "1", 2), BTC)
