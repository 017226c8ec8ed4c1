"""Tests of the bulk download (tvadapter._bulk.get_hist_many), against the fake server and fakes."""

from __future__ import annotations

import _thread
import io
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_client_support import assert_same_bars, client_config, no_new_threads

from tvadapter import (
    ConfigurationError,
    NetworkConfig,
    SymbolNotFoundError,
    TvCircuitOpenError,
    TvConnectionError,
    TvDatafeed,
    TvTimeoutError,
    _bulk,
)
from tvadapter._bulk import BulkItem, BulkResult, HistRequest, get_hist_many, normalize_requests
from tvadapter.testing import FakeTradingView, Latency

Factory = Callable[..., FakeTradingView]


class FakeClient:
    """A stand-in client: get_hist sleeps ``delay`` and records concurrency (thread-safe)."""

    def __init__(self, delay: float = 0.0, fail: dict[str, BaseException] | None = None) -> None:
        self.delay = delay
        self.fail = fail or {}
        self.lock = threading.Lock()
        self.calls: list[tuple[Any, ...]] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.release = threading.Event()
        self.release.set()

    def get_hist(  # noqa: PLR0917 - tvDatafeed's signature
        self,
        symbol: str,
        exchange: str = "NSE",
        interval: Any = "1D",
        n_bars: int = 10,
        fut_contract: int | None = None,
        extended_session: bool = False,
        *,
        start: object = None,
        end: object = None,
        timeout: float | None = None,
    ) -> pd.DataFrame:
        with self.lock:
            self.calls.append((symbol, exchange, interval, n_bars, extended_session, start, end))
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            self.release.wait(10)
            time.sleep(self.delay)
            if symbol in self.fail:
                raise self.fail[symbol]
            index = pd.DatetimeIndex([pd.Timestamp(0, tz="UTC")], name="datetime")
            frame: pd.DataFrame = pd.DataFrame({"symbol": [symbol], "close": [1.0]}, index=index)
            return frame
        finally:
            with self.lock:
                self.in_flight -= 1


# -- against the fake server ------------------------------------------------------------------


def test_results_equal_the_servers_bars(fake_tv_factory: Factory) -> None:
    """Every series of a mixed batch equals the server's ground truth, keyed by EX:SYM."""
    tv = fake_tv_factory()
    requests: list[Any] = [
        "NASDAQ:AAPL",
        ("RELIANCE", "NSE", "1H", 50),
        HistRequest("BTCUSDT", "BINANCE", interval="15", n_bars=120),
        {"symbol": "EURUSD", "exchange": "OANDA", "n_bars": 7},
        ("SPX", "SP"),
    ]
    with no_new_threads(), TvDatafeed(config=client_config(tv)) as client:
        result = get_hist_many(client, requests, n_bars=30, progress=False)
    assert result.all_ok and len(result) == 5
    assert result.keys() == [
        "NASDAQ:AAPL",
        "NSE:RELIANCE",
        "BINANCE:BTCUSDT",
        "OANDA:EURUSD",
        "SP:SPX",
    ]
    assert_same_bars(result["NASDAQ:AAPL"], tv.bars("NASDAQ:AAPL", "1D", 30), "NASDAQ:AAPL")
    assert_same_bars(result["NSE:RELIANCE"], tv.bars("NSE:RELIANCE", "1H", 50), "NSE:RELIANCE")
    assert_same_bars(
        result["BINANCE:BTCUSDT"], tv.bars("BINANCE:BTCUSDT", "15", 120), "BINANCE:BTCUSDT"
    )
    assert_same_bars(result.ok["OANDA:EURUSD"], tv.bars("OANDA:EURUSD", "1D", 7), "OANDA:EURUSD")
    assert_same_bars(result.ok["SP:SPX"], tv.bars("SP:SPX", "1D", 30), "SP:SPX")
    assert result.bars == 30 + 50 + 120 + 7 + 30
    stacked = result.concat()
    assert len(stacked) == result.bars and list(stacked["symbol"].unique()) == result.keys()


def test_unknown_symbol_fails_alone(fake_tv_factory: Factory) -> None:
    """One unknown symbol fails with SymbolNotFoundError; the others succeed exactly."""
    tv = fake_tv_factory()
    symbols = ["NASDAQ:MSFT", "NASDAQ:NOSUCH", "NYSE:IBM", "BINANCE:ETHUSDT"]
    with TvDatafeed(config=client_config(tv)) as client:
        result = get_hist_many(client, symbols, n_bars=15, progress=False)
    assert list(result.failed) == ["NASDAQ:NOSUCH"]
    assert isinstance(result.failed["NASDAQ:NOSUCH"], SymbolNotFoundError)
    with pytest.raises(SymbolNotFoundError):
        result["NASDAQ:NOSUCH"]
    assert sorted(result.ok) == ["BINANCE:ETHUSDT", "NASDAQ:MSFT", "NYSE:IBM"]
    for key, frame in result.ok.items():
        assert_same_bars(frame, tv.bars(key, "1D", 15), key)
    assert result.errors_by_kind() == {"SymbolNotFoundError": 1}
    assert "3/4 ok" in result.summary() and "SymbolNotFoundError x1" in result.summary()
    assert not result.all_ok


@pytest.mark.fake_tv(faults=[Latency(0.15)])
def test_requests_overlap_one_series_per_chart_session(fake_tv: FakeTradingView) -> None:
    """The server sees several chart sessions in flight at once, each with a single series."""
    symbols = fake_tv.symbols()[:8]
    samples: list[int] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            counts = fake_tv.requests
            samples.append(
                counts.get("chart_create_session", 0) - counts.get("chart_delete_session", 0)
            )
            time.sleep(0.005)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        with TvDatafeed(config=client_config(fake_tv)) as client:
            result = get_hist_many(client, symbols, n_bars=20, max_concurrency=4, progress=False)
    finally:
        stop.set()
        sampler.join()
    assert result.all_ok
    assert max(samples) > 1  # concurrency really overlaps on the server
    assert max(samples) <= 4  # ... within max_concurrency
    counts = fake_tv.requests
    # Anonymous rule: one create_series per chart session, no "exceed limit" refusals.
    assert counts["create_series"] == counts["chart_create_session"] == len(symbols)
    assert fake_tv.connection_attempts == 1  # all multiplexed over one connection
    for key, frame in result.ok.items():
        assert_same_bars(frame, fake_tv.bars(key, "1D", 20), key)


def test_rate_limit_respected_as_counted_by_the_server(fake_tv_factory: Factory) -> None:
    """Series requests reaching the server never exceed burst + rate x window."""
    tv = fake_tv_factory()
    rate, burst, n = 10.0, 2, 9
    samples: list[tuple[float, int]] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            samples.append((time.monotonic(), tv.requests.get("create_series", 0)))
            time.sleep(0.003)

    config = client_config(tv, requests_per_minute=int(rate * 60), burst_size=burst)
    with TvDatafeed(config=config) as client:
        client.get_hist("NASDAQ:AAPL", n_bars=2)  # connect first; leaves the bucket one short
        sampler = threading.Thread(target=sample)
        sampler.start()
        began = time.monotonic()
        try:
            result = get_hist_many(
                client, tv.symbols()[1 : n + 1], n_bars=5, max_concurrency=n, progress=False
            )
        finally:
            stop.set()
            sampler.join()
        elapsed = time.monotonic() - began
    assert result.all_ok and len(result) == n
    assert elapsed >= (n - burst) / rate * 0.95
    assert result.rate_limit_wait > 0
    # The server counts arrivals, not grants: a request may reach it up to ~0.2 s after its
    # token on a loaded machine, so allow rate x 0.2 s more (an unlimited client would put
    # all 9 requests into a few milliseconds and fail this by far).
    slack = rate * 0.2 + 1
    for i, (t1, c1) in enumerate(samples):
        for t2, c2 in samples[i + 1 :]:
            assert c2 - c1 <= burst + rate * (t2 - t1) + slack, (t2 - t1, c2 - c1)


def test_progress_callback_once_per_item_in_calling_thread(fake_tv_factory: Factory) -> None:
    """The progress callable gets (done, total, key, item) once per item, from the caller."""
    tv = fake_tv_factory()
    calls: list[tuple[int, int, str, BulkItem, threading.Thread]] = []

    def progress(done: int, total: int, key: str, item: BulkItem) -> None:
        calls.append((done, total, key, item, threading.current_thread()))

    symbols = ["NASDAQ:AAPL", "NASDAQ:NOPE", "NYSE:KO", "NSE:TCS", "FX:EURUSD"]
    with TvDatafeed(config=client_config(tv)) as client:
        result = get_hist_many(client, symbols, n_bars=3, progress=progress)
    assert [c[0] for c in calls] == [1, 2, 3, 4, 5]
    assert {c[1] for c in calls} == {5}
    assert sorted(c[2] for c in calls) == sorted(symbols)
    assert all(c[4] is threading.current_thread() for c in calls)
    by_key = {c[2]: c[3] for c in calls}
    assert not by_key["NASDAQ:NOPE"].ok and by_key["NYSE:KO"].bars == 3
    assert len(result) == 5


def test_method_on_the_client(fake_tv_factory: Factory) -> None:
    """TvDatafeed.get_hist_many delegates to the bulk path."""
    tv = fake_tv_factory()
    with TvDatafeed(config=client_config(tv)) as client:
        result = client.get_hist_many(["NYSE:GE", ("TCS", "NSE", "1H", 4)], progress=False)
    assert isinstance(result, BulkResult) and result.all_ok
    assert_same_bars(result["NSE:TCS"], tv.bars("NSE:TCS", "1H", 4), "NSE:TCS")


def test_two_batches_at_once_on_one_client(fake_tv_factory: Factory) -> None:
    """Two threads running get_hist_many on one client both get exact results."""
    tv = fake_tv_factory()
    outcomes: dict[int, BulkResult] = {}
    with no_new_threads(), TvDatafeed(config=client_config(tv)) as client:

        def run(n: int, symbols: list[str]) -> None:
            outcomes[n] = get_hist_many(client, symbols, n_bars=8, progress=False)

        threads = [
            threading.Thread(target=run, args=(0, tv.symbols()[:6])),
            threading.Thread(target=run, args=(1, tv.symbols()[100:106])),
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
    for result in outcomes.values():
        assert result.all_ok and len(result) == 6
        for key, frame in result.ok.items():
            assert_same_bars(frame, tv.bars(key, "1D", 8), key)


def test_connection_failure_is_typed_per_item() -> None:
    """With no server at all every item fails with a typed connection error, none lost."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens there once the socket is closed
    config = NetworkConfig(
        ws_url=f"ws://127.0.0.1:{port}/socket.io/websocket",
        connect_timeout=0.5,
        request_deadline=1.0,
        max_retries=1,
        base_retry_delay=0.01,
        max_retry_delay=0.02,
        requests_per_minute=6000,
        burst_size=100,
    )
    with TvDatafeed(config=config) as client:
        result = get_hist_many(client, ["NASDAQ:AAPL", "NYSE:IBM", "NSE:TCS"], progress=False)
    assert len(result.failed) == 3
    for error in result.failed.values():
        assert isinstance(error, (TvConnectionError, TvCircuitOpenError, TvTimeoutError))


# -- with a fake client -----------------------------------------------------------------------


def test_max_concurrency_is_a_ceiling_and_reached() -> None:
    """At most max_concurrency get_hist calls run at once, and that many do overlap."""
    client = FakeClient(delay=0.05)
    result = get_hist_many(
        client, [f"NASDAQ:S{i}" for i in range(12)], max_concurrency=3, progress=False
    )
    assert len(result) == 12 and result.all_ok
    assert client.max_in_flight == 3
    assert result.max_concurrency == 3


def test_arbitrary_exceptions_are_kept_not_raised() -> None:
    """A non-TvError exception from get_hist is stored as that item's failure."""
    boom = RuntimeError("boom")
    client = FakeClient(fail={"NYSE:BAD": boom, "NYSE:GONE": SymbolNotFoundError("gone")})
    result = get_hist_many(client, ["NYSE:OK", "NYSE:BAD", "NYSE:GONE"], progress=False)
    assert result.failed["NYSE:BAD"] is boom
    assert isinstance(result.failed["NYSE:GONE"], SymbolNotFoundError)
    assert list(result.ok) == ["NYSE:OK"]
    item = next(i for i in result if i.key == "NYSE:BAD")
    assert item.outcome == "RuntimeError" and item.frame is None and item.elapsed >= 0


def test_keyboard_interrupt_cancels_cleanly() -> None:
    """Ctrl-C (here raised by the progress callback) stops new requests and joins the workers."""
    client = FakeClient(delay=0.05)
    symbols = [f"NASDAQ:S{i}" for i in range(40)]

    def progress(done: int, total: int, key: str, item: BulkItem) -> None:
        raise KeyboardInterrupt

    before = set(threading.enumerate())
    with pytest.raises(KeyboardInterrupt):
        get_hist_many(client, symbols, max_concurrency=4, progress=progress, cancel_timeout=5)
    assert len(client.calls) < len(symbols)
    left = [t for t in threading.enumerate() if t not in before and t.is_alive()]
    assert left == []


def _interrupt_second_start(
    monkeypatch: pytest.MonkeyPatch, launch_after: float | None
) -> list[threading.Thread]:
    """Make the real ``_Batch.start`` meet a Ctrl-C inside the second worker's Thread.start().

    ``launch_after=None``: the interrupt lands before the OS thread is launched (it never
    runs); a number: after (the thread begins that many seconds later, as when the interrupt
    hits ``start()``'s wait for the new thread).  Returns the batch's threads once started.
    """
    real_start = _bulk._Batch.start
    threads: list[threading.Thread] = []

    def start(self: Any) -> None:
        victim = self.threads[1]
        threads.extend(self.threads)

        def interrupted_start() -> None:
            if launch_after is not None:
                timer = threading.Timer(launch_after, threading.Thread.start, (victim,))
                timer.daemon = True
                timer.start()
            raise KeyboardInterrupt

        victim.start = interrupted_start
        real_start(self)

    monkeypatch.setattr(_bulk._Batch, "start", start)
    return threads


@pytest.mark.parametrize("launch_after", [None, 0.05])
def test_interrupt_inside_thread_start(
    monkeypatch: pytest.MonkeyPatch, launch_after: float | None
) -> None:
    """Ctrl-C inside a worker's Thread.start() propagates as KeyboardInterrupt (never the
    "cannot join thread before it is started" RuntimeError) and no worker outlives the call."""
    threads = _interrupt_second_start(monkeypatch, launch_after)
    client = FakeClient(delay=0.01)
    with pytest.raises(KeyboardInterrupt):
        get_hist_many(client, [f"X:S{i}" for i in range(6)], max_concurrency=3, progress=False)
    first, victim, never = threads
    assert first.ident is not None and not first.is_alive()
    assert never.ident is None  # the loop stopped at the interrupted start()
    if launch_after is None:
        assert victim.ident is None
    else:  # launched late, but joined before get_hist_many returned
        assert victim.ident is not None and not victim.is_alive()


def test_interrupt_waits_at_most_cancel_timeout() -> None:
    """A request stuck in flight does not hold the interrupt longer than cancel_timeout."""
    client = FakeClient()
    client.release.clear()  # every get_hist blocks until released

    def progress(done: int, total: int, key: str, item: BulkItem) -> None:
        raise AssertionError("unreachable")

    began = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        with _interrupt_after(0.2):
            get_hist_many(client, ["A:B", "C:D"], progress=progress, cancel_timeout=0.3)
    assert time.monotonic() - began < 3.0
    client.release.set()  # let the stuck workers finish
    deadline = time.monotonic() + 5
    while any(t.name.startswith("tvadapter-bulk") for t in threading.enumerate()):
        assert time.monotonic() < deadline
        time.sleep(0.01)


class _interrupt_after:
    """Raise KeyboardInterrupt in the main thread after ``seconds`` (like Ctrl-C)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.timer: threading.Timer | None = None

    def __enter__(self) -> None:
        self.timer = threading.Timer(self.seconds, _thread.interrupt_main)
        self.timer.start()

    def __exit__(self, *exc: object) -> None:
        assert self.timer is not None
        self.timer.cancel()
        self.timer.join()


def test_admission_waits_for_the_limiter_and_records_it() -> None:
    """With a limiter that is empty, workers wait at the gate and report the wait."""

    class Limiter:
        def __init__(self) -> None:
            self.free_at = time.monotonic() + 0.2

        def retry_after(self, tokens: float = 1) -> float:
            return max(0.0, self.free_at - time.monotonic())

    client = FakeClient()
    client._limiter = Limiter()  # type: ignore[attr-defined]
    result = get_hist_many(client, ["A:X", "A:Y"], progress=False)
    assert result.all_ok
    assert all(item.waited >= 0.15 for item in result)
    assert result.rate_limit_wait >= 0.3


def test_empty_batch() -> None:
    """No requests: an empty result, no threads, no calls."""
    client = FakeClient()
    result = get_hist_many(client, [], progress=True)
    assert len(result) == 0 and result.all_ok and client.calls == []
    assert result.concat().empty


def test_text_progress_without_tqdm(monkeypatch: pytest.MonkeyPatch) -> None:
    """progress=True without tqdm writes one line per item to a non-terminal stream."""
    monkeypatch.setattr(_bulk, "_tqdm_class", lambda: None)
    out = io.StringIO()
    client = FakeClient(fail={"X:BAD": SymbolNotFoundError("no")})
    get_hist_many(client, ["X:A", "X:BAD", "X:C"], progress=True, progress_stream=out)
    lines = out.getvalue().splitlines()
    assert len(lines) == 3
    assert lines[-1].startswith("[3/3]")
    assert any("X:BAD: SymbolNotFoundError" in line for line in lines)


def test_auto_progress_is_silent_off_a_terminal() -> None:
    """progress=None shows nothing when the stream is not a terminal."""
    out = io.StringIO()
    get_hist_many(FakeClient(), ["X:A", "X:B"], progress=None, progress_stream=out)
    assert out.getvalue() == ""


def test_tqdm_progress_when_asked() -> None:
    """progress=True with tqdm installed draws a bar that reaches total."""
    pytest.importorskip("tqdm")
    out = io.StringIO()
    get_hist_many(FakeClient(), ["X:A", "X:B", "X:C"], progress=True, progress_stream=out)
    assert "3/3" in out.getvalue()


def test_defaults_fill_requests() -> None:
    """Batch defaults (exchange, interval, n_bars, start/end) reach get_hist for bare items."""
    client = FakeClient()
    get_hist_many(
        client,
        ["AAPL", ("TCS", "NSE", "1H"), HistRequest("X:Y", n_bars=3, start=5.0)],
        exchange="NASDAQ",
        interval="15",
        n_bars=42,
        start=1.0,
        end=2.0,
        max_concurrency=1,
        progress=False,
    )
    assert client.calls == [
        ("NASDAQ:AAPL", "NASDAQ", "15", 42, False, 1.0, 2.0),
        ("NSE:TCS", "NSE", "1H", 42, False, 1.0, 2.0),
        ("X:Y", "X", "15", 3, False, 5.0, None),
    ]


# -- request normalisation --------------------------------------------------------------------


def test_keys_disambiguate_intervals_and_collapse_duplicates() -> None:
    """Same symbol at two intervals gets EX:SYM@res keys; exact duplicates are fetched once."""
    reqs = normalize_requests(
        ["NASDAQ:AAPL", ("AAPL", "NASDAQ", "1H"), "NASDAQ:AAPL", "NYSE:KO"],
    )
    assert [r.key for r in reqs] == ["NASDAQ:AAPL@1D", "NASDAQ:AAPL@1H", "NYSE:KO"]
    explicit = normalize_requests([HistRequest("A:B", key="mine"), "A:B"])
    assert [r.key for r in explicit] == ["mine", "A:B"]


@pytest.mark.parametrize(
    ("requests", "message"),
    [
        ([("A:B", "X", "1D", 5, "extra")], "tuple"),
        ([42], "expected HistRequest"),
        ([("", "NSE")], "requests[0]"),
        ([("A:B", None, "7X")], "interval"),
        ([("A:B", None, None, 0)], "n_bars"),
        ([{"symbol": "A:B", "bogus": 1}], "unknown request field"),
        ([HistRequest("A:B", n_bars=5), HistRequest("A:B", n_bars=6)], "key="),
        ([HistRequest("A:B", key="")], "key"),
    ],
)
def test_malformed_requests_fail_before_any_io(requests: list[Any], message: str) -> None:
    """Malformed requests raise ConfigurationError naming the problem, with no call made."""
    client = FakeClient()
    with pytest.raises(ConfigurationError, match=message.replace("[", r"\[")):
        get_hist_many(client, requests, progress=False)
    assert client.calls == []


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"max_concurrency": 0}, "max_concurrency"),
        ({"max_concurrency": True}, "max_concurrency"),
        ({"cancel_timeout": -1}, "cancel_timeout"),
        ({"progress": "yes"}, "progress"),
        ({"n_bars": 0}, "n_bars"),
        ({"interval": "bogus"}, "interval"),
        ({"exchange": ""}, "exchange"),
    ],
)
def test_bad_arguments(kwargs: dict[str, Any], name: str) -> None:
    """Bad arguments raise ConfigurationError naming the parameter."""
    with pytest.raises(ConfigurationError, match=name):
        get_hist_many(FakeClient(), ["A:B"], **kwargs)


_symbols = st.sampled_from(["NASDAQ:AAPL", "NYSE:KO", "NSE:TCS", "AAPL", "KO"])
_intervals = st.sampled_from([None, "1D", "D", "1H", "60", "15"])


@settings(max_examples=150)
@given(st.lists(st.tuples(_symbols, st.sampled_from([None, "NASDAQ", "NYSE"]), _intervals)))
def test_normalized_keys_are_unique_and_order_kept(specs: list[tuple[Any, ...]]) -> None:
    """Keys are unique, first occurrences keep their order, and equal requests collapse."""
    reqs = normalize_requests(specs)
    keys = [r.key for r in reqs]
    assert len(set(keys)) == len(keys)
    identities = [(r.symbol, r.interval) for r in reqs]
    assert len(set(identities)) == len(identities)
    expected: list[tuple[str, str]] = []
    for symbol, exchange, interval in specs:
        full = symbol if ":" in symbol else f"{exchange or 'NSE'}:{symbol}"
        code = {None: "1D", "D": "1D", "60": "1H"}.get(interval, interval)
        if (full, code) not in expected:
            expected.append((full, code))
    assert identities == expected
