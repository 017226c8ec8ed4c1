"""Tests for tvadapter._search: v3 symbol search, paging, headers, typed errors, retries."""

from __future__ import annotations

import http.server
import json
import logging
import socket
import threading
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from resilience.testing import FakeClock
from tvadapter._http import HttpClient
from tvadapter._search import full_symbol, search_symbol
from tvadapter.config import NetworkConfig
from tvadapter.errors import (
    ConfigurationError,
    HttpStatusError,
    MalformedPayloadError,
    RateLimitedError,
    TvConnectionError,
    TvTimeoutError,
)

ORIGIN = "https://www.tradingview.com"
PAGE = 50


def catalogue() -> list[dict[str, Any]]:
    """120 symbols: AAPLnn on NASDAQ, some on NYSE, a few with a BATS prefix."""
    items = []
    for i in range(120):
        exchange = "NYSE" if i % 3 == 0 else "NASDAQ"
        item: dict[str, Any] = {
            "symbol": f"AAPL{i:03d}",
            "description": f"Apple number {i}",
            "type": "stock",
            "exchange": exchange,
            "currency_code": "USD",
        }
        if i % 10 == 0:
            item["prefix"] = "BATS"
        items.append(item)
    return items


@dataclass
class MiniSearch:
    """A v3 search endpoint enforcing Origin/Referer, with switchable faults."""

    items: list[dict[str, Any]] = field(default_factory=catalogue)
    requests: list[dict[str, str]] = field(default_factory=list)
    status: int | None = None
    fail_first: int = 0  # answer this many requests with `status`, then normally
    retry_after: str | None = None
    delay: float = 0.0
    body: bytes | None = None  # a raw body instead of the normal answer
    always_em: bool = False
    liar: bool = False  # announce more results but send an empty page
    url: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def config(self, **kw: Any) -> NetworkConfig:
        return NetworkConfig(search_url=self.url + "/symbol_search/v3/", **kw)


def make_handler(s: MiniSearch) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _send(self, status: int, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            if s.retry_after is not None:
                self.send_header("Retry-After", s.retry_after)
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            url = urllib.parse.urlsplit(self.path)
            params = {
                k: v[0] for k, v in urllib.parse.parse_qs(url.query, keep_blank_values=True).items()
            }
            with s.lock:
                s.requests.append(params)
                number = len(s.requests)
            if s.delay:
                time.sleep(s.delay)
            if s.status is not None and (s.fail_first == 0 or number <= s.fail_first):
                self._send(s.status, b'{"error":"fault"}')
                return
            if url.path != "/symbol_search/v3/":
                self._send(404, b"{}")
                return
            if self.headers.get_all("Origin") != [ORIGIN] or not (
                self.headers.get("Referer") or ""
            ).startswith(ORIGIN + "/"):
                self._send(403, b"Forbidden")
                return
            if s.body is not None:
                self._send(200, s.body)
                return
            needle = params.get("text", "").upper()
            exchange = params.get("exchange", "")
            hits = [
                dict(item)
                for item in s.items
                if item["symbol"].startswith(needle)
                and (not exchange or item["exchange"] == exchange)
            ]
            if params.get("hl") == "1" or s.always_em:
                for item in hits:
                    item["symbol"] = item["symbol"].replace(needle, f"<em>{needle}</em>", 1)
                    item["description"] = "<em>Apple</em>" + item["description"][5:]
            start = int(params.get("start", "0"))
            page = hits[start : start + PAGE]
            remaining = max(0, len(hits) - start - len(page))
            if s.liar:
                page, remaining = [], 10
            answer = {"symbols_remaining": remaining, "symbols": page}
            self._send(200, json.dumps(answer).encode())

    return Handler


class QuietServer(http.server.ThreadingHTTPServer):
    """Threading HTTP server, quiet about client disconnects; closing joins handler threads."""

    daemon_threads = False
    block_on_close = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass


@pytest.fixture
def srv() -> Iterator[MiniSearch]:
    """A MiniSearch server on 127.0.0.1."""
    state = MiniSearch()
    server = QuietServer(("127.0.0.1", 0), make_handler(state))
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_pages_until_nothing_remains(srv: MiniSearch) -> None:
    """120 hits arrive over three pages (start 0, 50, 100), in order, nothing lost."""
    results = search_symbol(srv.config(), "AAPL")
    assert [r["symbol"] for r in results] == [f"AAPL{i:03d}" for i in range(120)]
    assert [r["start"] for r in srv.requests] == ["0", "50", "100"]


def test_sends_the_v3_parameters(srv: MiniSearch) -> None:
    """The query carries text, hl=0, exchange, lang, search_type, start, domain=production."""
    search_symbol(srv.config(), "aapl01", "NASDAQ", search_type="stocks", country="US")
    params = srv.requests[0]
    assert params == {
        "text": "aapl01",
        "hl": "0",
        "exchange": "NASDAQ",
        "lang": "en",
        "search_type": "stocks",
        "start": "0",
        "domain": "production",
        "sort_by_country": "US",
    }


def test_results_keep_fields_and_get_full_symbol(srv: MiniSearch) -> None:
    """Each result keeps the server's fields and gains prefix:symbol or exchange:symbol."""
    results = search_symbol(srv.config(), "AAPL01")
    by_symbol = {r["symbol"]: r for r in results}
    assert by_symbol["AAPL010"]["full_symbol"] == "BATS:AAPL010"
    assert by_symbol["AAPL011"]["full_symbol"] == "NASDAQ:AAPL011"
    assert by_symbol["AAPL012"]["full_symbol"] == "NYSE:AAPL012"
    assert by_symbol["AAPL011"]["currency_code"] == "USD"


def test_highlight_tags_are_removed(srv: MiniSearch) -> None:
    """<em> tags the server adds are stripped from the text fields."""
    srv.always_em = True
    results = search_symbol(srv.config(), "AAPL")
    assert results[0]["symbol"] == "AAPL000"
    assert results[0]["description"] == "Apple number 0"
    assert not any("<em>" in r["symbol"] + r["description"] for r in results)
    assert results[0]["full_symbol"] == "BATS:AAPL000"


def test_exchange_filter(srv: MiniSearch) -> None:
    """With an exchange, only that exchange's symbols come back (40 of 120)."""
    results = search_symbol(srv.config(), "AAPL", "NYSE")
    assert len(results) == 40 and {r["exchange"] for r in results} == {"NYSE"}


def test_max_results_limits_results_and_requests(srv: MiniSearch) -> None:
    """max_results=60 returns exactly 60 and stops after the second page."""
    results = search_symbol(srv.config(), "AAPL", max_results=60)
    assert len(results) == 60 and len(srv.requests) == 2
    assert len(search_symbol(srv.config(), "AAPL", max_results=10)) == 10


def test_max_pages_bounds_paging_and_is_logged(
    srv: MiniSearch, caplog: pytest.LogCaptureFixture
) -> None:
    """max_pages stops paging and a warning says how many results were left."""
    with caplog.at_level(logging.WARNING, logger="tvadapter._search"):
        results = search_symbol(srv.config(), "AAPL", max_pages=2)
    assert len(results) == 100 and len(srv.requests) == 2
    assert "20 more on the server" in caplog.text


def test_lying_server_cannot_loop_forever(srv: MiniSearch) -> None:
    """An empty page announcing more results ends the search instead of looping."""
    srv.liar = True
    assert search_symbol(srv.config(), "AAPL") == []
    assert len(srv.requests) == 1


def test_no_hits_is_an_empty_list(srv: MiniSearch) -> None:
    """An empty list only when the server truly found nothing."""
    assert search_symbol(srv.config(), "ZZZZ") == []
    assert len(srv.requests) == 1


def test_origin_and_referer_are_required(srv: MiniSearch) -> None:
    """With another Origin the server answers 403, raised as HttpStatusError naming Origin."""
    config = srv.config(origin="https://data.tradingview.com")
    with pytest.raises(HttpStatusError, match="Origin") as info:
        search_symbol(config, "AAPL")
    assert info.value.status == 403 and not info.value.retryable


def test_http_429_is_rate_limited_with_retry_after(srv: MiniSearch) -> None:
    """HTTP 429 raises RateLimitedError with Retry-After seconds."""
    srv.status, srv.retry_after = 429, "12"
    with pytest.raises(RateLimitedError) as info:
        search_symbol(srv.config(), "AAPL")
    assert info.value.retry_after == 12.0


def test_http_500_is_a_typed_error(srv: MiniSearch) -> None:
    """HTTP 500 raises HttpStatusError(status=500), never an empty list."""
    srv.status = 500
    with pytest.raises(HttpStatusError) as info:
        search_symbol(srv.config(), "AAPL")
    assert info.value.status == 500 and info.value.retryable


def test_timeout_is_a_typed_error(srv: MiniSearch) -> None:
    """A server slower than the timeout raises TvTimeoutError."""
    srv.delay = 1.0
    with pytest.raises(TvTimeoutError):
        search_symbol(srv.config(), "AAPL", http=HttpClient(timeout=0.2))


def test_connection_refused_is_a_typed_error() -> None:
    """Nothing listening raises TvConnectionError."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = NetworkConfig(search_url=f"http://127.0.0.1:{port}/symbol_search/v3/")
    with pytest.raises(TvConnectionError):
        search_symbol(config, "AAPL")


@pytest.mark.parametrize(
    "body",
    [
        b"<html>not json</html>",
        b'{"symbols": "nope"}',
        b'{"error": "x"}',
        b'{"symbols": [1, 2]}',
        b'{"symbols": [{"description": "no symbol"}]}',
        b'{"symbols": [], "symbols_remaining": "3"}',
    ],
)
def test_malformed_answers_raise(srv: MiniSearch, body: bytes) -> None:
    """An answer that is not the v3 shape raises MalformedPayloadError."""
    srv.body = body
    with pytest.raises(MalformedPayloadError):
        search_symbol(srv.config(), "AAPL")


def test_legacy_bare_list_is_accepted(srv: MiniSearch) -> None:
    """A bare JSON list (the v1 shape) is read as one page of results."""
    srv.body = json.dumps([{"symbol": "<em>X</em>", "exchange": "NYSE"}]).encode()
    assert search_symbol(srv.config(), "X") == [
        {"symbol": "X", "exchange": "NYSE", "full_symbol": "NYSE:X"}
    ]


def test_transient_failures_are_retried_when_asked(srv: MiniSearch) -> None:
    """attempts=3: two 503s then success returns all results, with backoff sleeps recorded."""
    srv.status, srv.fail_first = 503, 2
    clock = FakeClock()
    results = search_symbol(srv.config(), "AAPL", attempts=3, clock=clock, sleep=clock.sleep)
    assert len(results) == 120
    assert len(clock.sleeps) == 2 and len(srv.requests) == 5


def test_permanent_failures_are_not_retried(srv: MiniSearch) -> None:
    """A 403 is not retried even with attempts=3."""
    srv.status = 403
    clock = FakeClock()
    with pytest.raises(HttpStatusError):
        search_symbol(srv.config(), "AAPL", attempts=3, clock=clock, sleep=clock.sleep)
    assert len(srv.requests) == 1 and clock.sleeps == []


def test_retries_give_up_with_the_last_error(srv: MiniSearch) -> None:
    """Persistent 429s: attempts are spent, waits honour Retry-After, the error is raised."""
    srv.status, srv.retry_after = 429, "4"
    clock = FakeClock()
    with pytest.raises(RateLimitedError):
        search_symbol(srv.config(), "AAPL", attempts=3, clock=clock, sleep=clock.sleep)
    assert len(srv.requests) == 3
    assert len(clock.sleeps) == 2 and all(s >= 4 for s in clock.sleeps)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"text": "  "}, "text"),
        ({"text": 5}, "text"),
        ({"text": "A", "exchange": None}, "exchange"),
        ({"text": "A", "max_results": 0}, "max_results"),
        ({"text": "A", "max_pages": 0}, "max_pages"),
        ({"text": "A", "attempts": 0}, "attempts"),
        ({"text": "A\r\nX"}, "text"),
    ],
)
def test_bad_arguments_raise_configuration_error(kwargs: dict[str, Any], name: str) -> None:
    """Bad arguments raise ConfigurationError (a ValueError) naming the parameter, no I/O."""
    with pytest.raises(ConfigurationError, match=name):
        search_symbol(NetworkConfig(search_url="http://127.0.0.1:9/"), **kwargs)


@given(
    symbol=st.text(min_size=1, max_size=8),
    exchange=st.text(max_size=6),
    prefix=st.one_of(st.none(), st.just(""), st.text(min_size=1, max_size=6)),
)
def test_full_symbol_rule(symbol: str, exchange: str, prefix: str | None) -> None:
    """full_symbol is prefix:symbol if a prefix is present, else exchange:symbol."""
    item: dict[str, Any] = {"symbol": symbol, "exchange": exchange}
    if prefix is not None:
        item["prefix"] = prefix
    expected_head = prefix or exchange
    expected = f"{expected_head}:{symbol}" if expected_head else symbol
    assert full_symbol(item) == expected


# -- against the project's fake TradingView server (tvadapter.testing) --------------------------


@pytest.fixture(scope="module")
def fake() -> Iterator[Any]:
    """A tvadapter.testing.FakeTradingView (its HTTP side serves search v3)."""
    from tvadapter.testing import FakeTradingView

    with FakeTradingView() as server:
        yield server


def fake_config(server: Any, **kw: Any) -> NetworkConfig:
    return NetworkConfig(search_url=server.search_url, **kw)


def test_fake_server_search_finds_aapl(fake: Any) -> None:
    """Searching AAPL on the fake server finds NASDAQ:AAPL with its full symbol."""
    results = search_symbol(fake_config(fake), "AAPL")
    assert results, "the fake catalogue lists AAPL"
    assert "NASDAQ:AAPL" in {r["full_symbol"] for r in results}
    assert all("<em>" not in r["symbol"] for r in results)


def test_fake_server_exchange_filter(fake: Any) -> None:
    """The exchange filter returns only that exchange's listings."""
    results = search_symbol(fake_config(fake), "A", "NYSE")
    assert results and {r["exchange"] for r in results} == {"NYSE"}


def test_fake_server_paging_matches_ground_truth(fake: Any) -> None:
    """A broad query pages through everything the server holds, without duplicates."""
    from tvadapter.testing._http import search as server_search

    expected: list[str] = []
    start = 0
    while True:
        page = server_search(fake.catalogue, "A", start=start)
        expected += [s["symbol"] for s in page["symbols"]]
        if not page["symbols_remaining"]:
            break
        start += len(page["symbols"])
    assert len(expected) > 100  # several pages of 50
    results = search_symbol(fake_config(fake), "A")
    assert [r["symbol"] for r in results] == expected


def test_fake_server_rejects_a_wrong_origin(fake: Any) -> None:
    """The fake server enforces Origin/Referer: a wrong origin is a 403 HttpStatusError."""
    with pytest.raises(HttpStatusError) as info:
        search_symbol(fake_config(fake, origin="https://example.com"), "AAPL")
    assert info.value.status == 403


def test_fake_server_legacy_endpoint_fails_loudly(fake: Any) -> None:
    """Pointing at the dead legacy endpoint raises (403) instead of returning []."""
    config = NetworkConfig(search_url=fake.legacy_search_url)
    with pytest.raises(HttpStatusError):
        search_symbol(config, "AAPL")
