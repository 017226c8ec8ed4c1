"""Black-box contract tests of the fake TradingView server (issue 3's list), seen by strangers.

Only public names of ``tvadapter.testing``, a plain ``websocket-client`` connection and
``urllib`` are used; frames are split and parsed by a few lines of code here, not by the
project's protocol core, so that the server is checked against the protocol itself.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import websocket

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

ORIGIN = "https://www.tradingview.com"
ANON = "unauthorized_user_token"
CS = "cs_contract0001"


def split(message: str) -> list[str]:
    """Payloads of one message, walking ``~m~N~m~`` prefixes with UTF-16 lengths."""
    out: list[str] = []
    pos = 0
    while pos < len(message):
        assert message.startswith("~m~", pos), message[pos : pos + 40]
        end_digits = message.index("~m~", pos + 3)
        n = int(message[pos + 3 : end_digits])
        start = end = end_digits + 3
        units = 0
        while units < n:
            units += 2 if ord(message[end]) > 0xFFFF else 1
            end += 1
        assert units == n
        out.append(message[start:end])
        pos = end
    return out


def frame(payload: str) -> str:
    return f"~m~{len(payload.encode('utf-16-le')) // 2}~m~{payload}"


class Peer:
    """A plain websocket-client connection that speaks the protocol by hand."""

    def __init__(self, url: str, *, origin: str = ORIGIN, timeout: float = 5.0) -> None:
        self.ws = websocket.create_connection(url, origin=origin, timeout=timeout)
        self.heartbeats: list[str] = []

    def send(self, method: str, *params: Any) -> None:
        self.ws.send(frame(json.dumps({"m": method, "p": list(params)}, separators=(",", ":"))))

    def packets(self, *, echo: bool = True) -> list[Any]:
        """The packets of the next message: heartbeats as '~h~N' strings, the rest as JSON."""
        text = self.ws.recv()
        assert isinstance(text, str)
        out: list[Any] = []
        for payload in split(text):
            if payload.startswith("~h~"):
                self.heartbeats.append(payload)
                if echo:
                    self.ws.send(frame(payload))
                out.append(payload)
            else:
                out.append(json.loads(payload))
        return out

    def until(self, m: str, *, echo: bool = True, **match: Any) -> list[Any]:
        """Packets up to and including the first with method ``m`` (and ``p`` items ``match``)."""
        seen: list[Any] = []
        while True:
            for packet in self.packets(echo=echo):
                seen.append(packet)
                if (
                    isinstance(packet, dict)
                    and packet.get("m") == m
                    and all(packet["p"][int(k[1:])] == v for k, v in match.items())
                ):
                    return seen

    def hello(self) -> dict[str, Any]:
        (packet,) = self.packets()
        assert isinstance(packet, dict) and "m" not in packet
        return packet

    def chart(self, symbol: str, *, token: str = ANON, cs: str = CS, sym: str = "sym_1") -> None:
        self.send("set_auth_token", token)
        self.send("chart_create_session", cs, "")
        spec = json.dumps({"symbol": symbol, "adjustment": "splits", "session": "regular"})
        self.send("resolve_symbol", cs, sym, "=" + spec)

    def close_code(self) -> int:
        """Read until the server closes; 1005 = close frame without status, 1006 = no frame."""
        while True:
            try:
                opcode, data = self.ws.recv_data(control_frame=True)
            except (websocket.WebSocketConnectionClosedException, ConnectionError):
                return 1006
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                return int.from_bytes(data[:2], "big") if len(data) >= 2 else 1005

    def close(self) -> None:
        self.ws.close()


def bars_of(packets: list[Any], sid: str = "s1") -> list[dict[str, Any]]:
    """All bars of ``sid`` in the timescale_update packets among ``packets``."""
    out: list[dict[str, Any]] = []
    for p in packets:
        if isinstance(p, dict) and p.get("m") in ("timescale_update", "du"):
            entry = p["p"][1].get(sid)
            if entry is not None:
                out.extend(entry.get("s", []))
    return out


def methods(packets: list[Any]) -> list[str]:
    return [p["m"] for p in packets if isinstance(p, dict) and "m" in p]


@pytest.fixture
def make() -> Iterator[Callable[..., FakeTradingView]]:
    """Factory of started servers, all stopped (and their peers closed) after the test."""
    servers: list[FakeTradingView] = []

    def factory(**options: Any) -> FakeTradingView:
        tv = FakeTradingView(**options)
        tv.__enter__()
        servers.append(tv)
        return tv

    yield factory
    for tv in servers:
        tv.__exit__(None, None, None)


@pytest.fixture
def peers() -> Iterator[Callable[..., Peer]]:
    made: list[Peer] = []

    def factory(url: str, **kwargs: Any) -> Peer:
        peer = Peer(url, **kwargs)
        made.append(peer)
        return peer

    yield factory
    for peer in made:
        peer.close()


# --------------------------------------------------------------------------------------------
# Starting it


def test_context_manager_serves_on_an_ephemeral_localhost_port_and_stops():
    """`with FakeTradingView()` listens on 127.0.0.1 at a fresh port and refuses after exit."""
    with FakeTradingView() as tv:
        match = re.fullmatch(r"ws://127\.0\.0\.1:(\d+)/socket\.io/websocket", tv.ws_url)
        assert match and int(match.group(1)) not in (0, 80, 443)
        assert tv.origin == ORIGIN
        assert tv.config.heartbeat_interval == 10.0  # the real server's period by default
        peer = Peer(tv.ws_url)
        assert peer.hello()
        peer.close()
        url = tv.ws_url
    with pytest.raises((ConnectionError, OSError)):
        websocket.create_connection(url, origin=ORIGIN, timeout=2)


def test_python_dash_m_starts_servers_on_ephemeral_ports():
    """Two `python -m tvadapter.testing` at once print ws:// URLs on distinct ephemeral ports
    that answer with a hello; SIGTERM stops each cleanly."""
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "tvadapter.testing"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    try:
        urls = []
        for proc in procs:
            assert proc.stdout is not None
            url = None
            for _ in range(10):
                found = re.search(r"ws://127\.0\.0\.1:\d+/\S*", proc.stdout.readline())
                if found:
                    url = found.group(0)
                    break
            assert url, proc.stderr.read() if proc.stderr else ""
            urls.append(url)
        assert urls[0] != urls[1]
        for url in urls:
            peer = Peer(url)
            assert "session_id" in peer.hello()
            peer.close()
    finally:
        codes = []
        for proc in procs:
            proc.terminate()
            try:
                codes.append(proc.wait(timeout=10))
            finally:
                proc.kill()
                for stream in (proc.stdout, proc.stderr):
                    if stream is not None:
                        stream.close()
    assert codes == [0, 0]


# --------------------------------------------------------------------------------------------
# Connection behaviour


def test_hello_comes_first_then_heartbeats_at_the_interval(make, peers):
    """The hello is the first packet; ~h~1, ~h~2, ~h~3 follow about one interval apart."""
    tv = make(heartbeat_interval=0.25)
    peer = peers(tv.ws_url)
    opened = time.monotonic()
    hello = peer.hello()
    assert {"session_id", "timestamp", "protocol", "javastudies"} <= set(hello)
    times = []
    while len(peer.heartbeats) < 3:
        peer.packets()
        times.append(time.monotonic())
    assert peer.heartbeats == ["~h~1", "~h~2", "~h~3"]
    assert times[0] - opened >= 0.2  # not before the first interval
    assert times[2] - times[0] >= 0.4


def test_a_client_that_does_not_echo_is_closed(make, peers):
    """Without echoes the server closes the connection; an echoing client stays open."""
    tv = make(heartbeat_interval=0.25, heartbeat_timeout=1.0)
    silent = peers(tv.ws_url)
    polite = peers(tv.ws_url)
    silent.hello()
    polite.hello()
    while len(polite.heartbeats) < 6:  # 1.5 s of heartbeats, each echoed at once
        polite.packets()
    assert polite.heartbeats == [f"~h~{n}" for n in range(1, 7)]
    assert silent.close_code() in (1000, 1001, 1005, 1006, 1008, 1011)
    polite.packets()
    assert polite.ws.connected
    # A client that stops echoing is closed as well.
    assert polite.close_code() in (1000, 1001, 1005, 1006, 1008, 1011)


@pytest.mark.parametrize("origin", ["https://evil.example.com", "http://127.0.0.1", None])
def test_wrong_origin_gets_403(make, origin):
    """An upgrade with another Origin (or none) is refused with HTTP 403."""
    tv = make()
    options: dict[str, Any] = {"suppress_origin": True} if origin is None else {"origin": origin}
    with pytest.raises(websocket.WebSocketBadStatusException) as info:
        websocket.create_connection(tv.ws_url, timeout=5, **options)
    assert info.value.status_code == 403


TVDATAFEED_INTERVALS = ["1", "3", "5", "15", "30", "45", "1H", "2H", "3H", "4H", "1D", "1W", "1M"]


def test_catalogue_and_every_interval_served_deterministically(make, peers):
    """Hundreds of symbols across exchanges; every tvDatafeed interval is served over the wire
    exactly as the ground truth says, identically by two servers with the same data end."""
    tv = make(data_end=1_750_000_000)
    twin = make(data_end=1_750_000_000)
    symbols = tv.symbols()
    assert len(symbols) >= 200
    assert len({s.split(":")[0] for s in symbols}) >= 10
    peer = peers(tv.ws_url)
    peer.hello()
    peer.send("set_auth_token", ANON)
    spec = json.dumps({"symbol": "NSE:RELIANCE", "adjustment": "splits", "session": "regular"})
    for k, res in enumerate(TVDATAFEED_INTERVALS):
        cs = f"cs_interval{k:02d}"
        peer.send("chart_create_session", cs, "")
        peer.send("resolve_symbol", cs, "sym_1", "=" + spec)
        peer.send("create_series", cs, "s1", "s1", "sym_1", res, 20, "")
        got = peer.until("series_completed", p0=cs)
        served = bars_of([p for p in got if isinstance(p, dict) and p["p"][0] == cs])
        truth = tv.bars("NSE:RELIANCE", res, 20)
        assert truth == twin.bars("NSE:RELIANCE", res, 20)
        assert len(truth) == 20
        assert [b["v"][0] for b in served[:20]] == [b.time for b in truth], res
        assert all(b.low <= min(b.open, b.close) <= max(b.open, b.close) <= b.high for b in truth)


# --------------------------------------------------------------------------------------------
# Sessions and series


def test_anonymous_one_series_per_chart_session(make, peers):
    """Anonymous: a second series in one chart session gets critical_error; a new session works."""
    tv = make()
    peer = peers(tv.ws_url)
    peer.hello()
    peer.chart("NASDAQ:AAPL")
    peer.send("create_series", CS, "s1", "s1", "sym_1", "1D", 10, "")
    got = peer.until("series_completed")
    assert len(bars_of(got)) >= 10
    peer.send("create_series", CS, "s2", "s1", "sym_1", "60", 10, "")
    err = peer.until("critical_error")[-1]
    assert err["p"][0] == CS
    assert "exceed limit of series" in json.dumps(err["p"])
    peer.send("chart_create_session", "cs_second", "")
    spec = json.dumps({"symbol": "NASDAQ:AAPL", "adjustment": "splits", "session": "regular"})
    peer.send("resolve_symbol", "cs_second", "sym_1", "=" + spec)
    peer.send("create_series", "cs_second", "s1", "s1", "sym_1", "60", 10, "")
    done = peer.until("series_completed", p0="cs_second")
    assert len(bars_of([p for p in done if isinstance(p, dict) and p["p"][0] == "cs_second"])) >= 10


def test_bad_auth_token_gets_protocol_error_then_close(make, peers):
    """A malformed token is answered with protocol_error "bad auth token", then a close."""
    tv = make()
    peer = peers(tv.ws_url)
    peer.hello()
    peer.send("set_auth_token", "not-a-jwt")
    got = peer.until("protocol_error")
    assert got[-1]["p"] == ["bad auth token"]
    assert peer.close_code() in (1000, 1005, 1006, 1008)


def test_expired_token_gives_a_heartbeat_only_session(make, peers):
    """An expired token: requests are accepted, nothing but heartbeats come back."""
    tv = make(heartbeat_interval=0.2)
    token = tv.issue_token("alice", lifetime=-1)
    peer = peers(tv.ws_url)
    peer.hello()
    peer.chart("NASDAQ:AAPL", token=token)
    peer.send("create_series", CS, "s1", "s1", "sym_1", "1D", 10, "")
    seen: list[Any] = []
    while len(peer.heartbeats) < 4:
        seen.extend(peer.packets())
    assert all(isinstance(p, str) and p.startswith("~h~") for p in seen)


def test_symbol_error_series_error_and_critical_errors(make, peers):
    """Unknown symbol -> symbol_error; custom resolution -> series_error; misuse -> critical."""
    tv = make()
    peer = peers(tv.ws_url)
    peer.hello()
    peer.chart("NOWHERE:NOSUCH")
    err = peer.until("symbol_error")[-1]
    assert err["p"] == [CS, "sym_1", "invalid symbol"]

    spec = json.dumps({"symbol": "NASDAQ:AAPL", "adjustment": "splits", "session": "regular"})
    peer.send("chart_create_session", "cs_b", "")
    peer.send("resolve_symbol", "cs_b", "sym_2", "=" + spec)
    peer.send("create_series", "cs_b", "s1", "s1", "sym_2", "188", 10, "")
    err = peer.until("series_error")[-1]
    assert err["p"][0] == "cs_b" and err["p"][1] == "s1" and err["p"][-1] == "custom_resolution"

    peer.send("switch_timezone", "cs_b", "Nowhere/Nowhere")
    crit = peer.until("critical_error")[-1]
    assert crit["p"][0] == "cs_b" and crit["p"][1] == "invalid timezone"
    peer.send("create_series", "cs_b", "s9", "s1", "sym_2", "1D")  # too few params
    crit = peer.until("critical_error")[-1]
    assert crit["p"][1] == "invalid parameters"
    peer.send("request_more_data", "cs_unknown", "s1", 10)
    crit = peer.until("critical_error")[-1]
    assert crit["p"][1] == "invalid parameters"


def test_request_more_data_pages_back_at_negative_indices_until_exhausted(make, peers):
    """request_more_data answers with older bars at negative i until history runs out."""
    tv = make(history_depth=250)
    truth = tv.bars("NASDAQ:AAPL", "1D")
    assert len(truth) == 250
    peer = peers(tv.ws_url)
    peer.hello()
    peer.chart("NASDAQ:AAPL")
    peer.send("create_series", CS, "s1", "s1", "sym_1", "1D", 100, "")
    loaded = bars_of(peer.until("series_completed"))
    assert [b["i"] for b in loaded] == list(range(100))
    assert [b["v"][0] for b in loaded] == [b.time for b in truth[-100:]]
    rounds = []
    for _ in range(3):
        peer.send("request_more_data", CS, "s1", 100)
        rounds.append(peer.until("series_completed"))
    assert [b["i"] for b in bars_of(rounds[0])] == list(range(-100, 0))
    assert [b["v"][0] for b in bars_of(rounds[0])] == [b.time for b in truth[50:150]]
    assert [b["i"] for b in bars_of(rounds[1])] == list(range(-150, -100))
    assert [b["v"][0] for b in bars_of(rounds[1])] == [b.time for b in truth[:50]]
    assert rounds[1][-1]["p"][4].get("data_completed") == "end"
    assert bars_of(rounds[2]) == []  # exhausted: an empty round, not an error
    assert methods(rounds[2])[-1] == "series_completed"


def test_bar_cap_truncates_silently(make, peers):
    """Past the plan cap the load is cut without any error packet; more data adds nothing."""
    tv = make(bar_caps={"anonymous": 120})
    peer = peers(tv.ws_url)
    peer.hello()
    peer.chart("NASDAQ:AAPL")
    peer.send("create_series", CS, "s1", "s1", "sym_1", "60", 500, "")
    got = peer.until("series_completed")
    assert not {"series_error", "critical_error", "protocol_error"} & set(methods(got))
    assert len(bars_of(got)) == 120
    peer.send("request_more_data", CS, "s1", 100)
    more = peer.until("series_completed")
    assert not {"series_error", "critical_error", "protocol_error"} & set(methods(more))
    assert bars_of(more) == []


def test_range_request_returns_bars_inside_the_range(make, peers):
    """create_series with "r,from:to" serves exactly the bars whose times fall in the range."""
    tv = make()
    truth = tv.bars("NASDAQ:AAPL", "1D", 200)
    start, end = int(truth[50].time), int(truth[120].time)
    peer = peers(tv.ws_url)
    peer.hello()
    peer.chart("NASDAQ:AAPL")
    peer.send("create_series", CS, "s1", "s1", "sym_1", "1D", 5000, f"r,{start}:{end}")
    got = bars_of(peer.until("series_completed"))
    times = [b["v"][0] for b in got]
    inside = [t for t in times if start <= t <= end]
    assert inside == [b.time for b in truth[50:121]]
    peer.send("modify_series", CS, "s1", "s2", "sym_1", "1D", f"r,{start}:{int(truth[60].time)}")
    again = peer.until("series_completed")
    assert again[-1]["p"][3] == "s2"


def test_live_du_updates_for_a_subscribed_series(make, peers):
    """In live mode, advancing the clock sends du packets for the subscribed series."""
    tv = make(live=True)
    peer = peers(tv.ws_url)
    peer.hello()
    peer.chart("BINANCE:BTCUSDT")
    peer.send("create_series", CS, "s1", "s1", "sym_1", "1", 10, "")
    loaded = bars_of(peer.until("series_completed"))
    tv.advance(1)
    du = peer.until("du")[-1]
    assert du["p"][0] == CS
    new = du["p"][1]["s1"]["s"]
    assert new and new[-1]["v"][0] >= loaded[-1]["v"][0]


# --------------------------------------------------------------------------------------------
# HTTP side


def http(url: str, *, data: bytes | None = None, headers: dict[str, str] | None = None) -> Any:
    request = urllib.request.Request(url, data=data, headers=headers or {})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read().decode("utf-8"))


def test_symbol_search_v3_shape_and_origin_check(make):
    """Search v3 returns {symbols_remaining, symbols:[...]}; without Origin/Referer: refused."""
    tv = make()
    url = (
        tv.search_url
        + "?"
        + urllib.parse.urlencode(
            {
                "text": "AAPL",
                "exchange": "",
                "lang": "en",
                "search_type": "",
                "domain": "production",
            }
        )
    )
    body = http(url, headers={"Origin": ORIGIN, "Referer": ORIGIN + "/"})
    assert isinstance(body["symbols_remaining"], int)
    assert body["symbols"]
    item = body["symbols"][0]
    assert {"symbol", "description", "type", "exchange"} <= set(item)
    assert any(
        s["symbol"].replace("<em>", "").replace("</em>", "") == "AAPL" for s in body["symbols"]
    )
    with pytest.raises(urllib.error.HTTPError) as info:
        http(url)
    assert info.value.code in (400, 403)
    info.value.close()


def test_sign_in_variants(make):
    """Sign-in: success JSON with user.auth_token, recaptcha_required, 2FA_required, wrong pw."""
    tv = make(
        users={"alice": "pw", "bob": "pw", "carol": "pw"},
        captcha_users=frozenset({"bob"}),
        twofa_users=frozenset({"carol"}),
    )
    headers = {"Referer": ORIGIN}

    def signin(user: str, password: str) -> Any:
        data = urllib.parse.urlencode(
            {"username": user, "password": password, "remember": "on"}
        ).encode()
        return http(tv.signin_url, data=data, headers=headers)

    ok = signin("alice", "pw")
    assert ok["error"] == "" and ok["user"]["auth_token"].count(".") == 2
    assert signin("bob", "pw")["code"] == "recaptcha_required"
    assert signin("carol", "pw")["error"] == "2FA_required"
    wrong = signin("alice", "nope")
    assert wrong["error"] and "user" not in wrong
    # The token it issued opens a data session.
    token = ok["user"]["auth_token"]
    peer = Peer(tv.ws_url)
    try:
        peer.hello()
        peer.chart("NASDAQ:AAPL", token=token)
        peer.send("create_series", CS, "s1", "s1", "sym_1", "1D", 10, "")
        assert len(bars_of(peer.until("series_completed"))) >= 10
        # A signed-in session may hold a second series in the same chart session.
        peer.send("create_series", CS, "s2", "s1", "sym_1", "60", 10, "")
        got = peer.until("series_completed", p1="s2")
        assert "critical_error" not in methods(got)
        assert len(bars_of(got, "s2")) >= 10
    finally:
        peer.close()


# --------------------------------------------------------------------------------------------
# Faults, each seen by a plain websocket-client connection


def load(peer: Peer, n: int = 50, resolution: str = "1D") -> None:
    peer.chart("NASDAQ:AAPL")
    peer.send("create_series", CS, "s1", "s1", "sym_1", resolution, n, "")


def test_fault_latency_delays_messages(make, peers):
    """Latency: the hello arrives no sooner than the added delay."""
    tv = make(faults=(Latency(0.4),))
    started = time.monotonic()
    peer = peers(tv.ws_url)
    peer.hello()
    assert time.monotonic() - started >= 0.35


@pytest.mark.parametrize("status", [429, 403, 503])
def test_fault_reject_handshake_first_k_attempts(make, status):
    """RejectHandshake: the first K upgrades get the status, the next one succeeds."""
    tv = make(faults=(RejectHandshake(status, attempts=first(2)),))
    for _ in range(2):
        with pytest.raises(websocket.WebSocketBadStatusException) as info:
            websocket.create_connection(tv.ws_url, origin=ORIGIN, timeout=5)
        assert info.value.status_code == status
    peer = Peer(tv.ws_url)
    try:
        assert peer.hello()
    finally:
        peer.close()


def test_fault_stall_keeps_the_socket_open_and_silent(make, peers):
    """Stall: the socket stays open after the hello and nothing more arrives."""
    tv = make(faults=(Stall(after=0),), heartbeat_interval=0.2, enforce_heartbeats=False)
    peer = peers(tv.ws_url, timeout=1.0)
    peer.hello()
    load(peer)
    with pytest.raises(websocket.WebSocketTimeoutException):
        peer.packets()
    assert peer.ws.connected


@pytest.mark.parametrize("code", [1006, 1005])
def test_fault_drop_closes_mid_stream(make, peers, code):
    """Drop: the connection is closed (1006 abort / 1005 no status) after N series packets."""
    tv = make(faults=(Drop(after=1, code=code),), packing="split")
    peer = peers(tv.ws_url)
    peer.hello()
    load(peer)
    assert peer.close_code() == code


def test_fault_request_rate_closes_a_flooding_client(make, peers):
    """RequestRate: more than R requests per window closes the connection."""
    tv = make(faults=(RequestRate(5, 1.0, code=1008),))
    peer = peers(tv.ws_url)
    peer.hello()
    for i in range(20):
        peer.send("set_locale", "en", f"US{i}")
    assert peer.close_code() == 1008


def well_formed(text: str | bytes) -> bool:
    """Whether a received message is a text message of valid packets of the right shape."""
    if not isinstance(text, str):
        return False
    try:
        for payload in split(text):
            if payload.startswith("~h~"):
                continue
            obj = json.loads(payload)
            if not isinstance(obj, dict) or ("m" in obj and not isinstance(obj.get("p"), list)):
                return False
    except (AssertionError, ValueError, IndexError):
        return False
    return True


@pytest.mark.parametrize(
    "kind",
    [
        "bad_length",
        "no_prefix",
        "non_ascii_digits",
        "trailing_garbage",
        "not_json",
        "bad_shape",
        "invalid_utf8",
        "binary",
    ],
)
def test_fault_malformed_frames(make, peers, kind):
    """Malformed: one message arrives that does not frame or parse as the protocol requires."""
    tv = make(faults=(Malformed(kind),))
    peer = peers(tv.ws_url)
    load(peer)
    texts: list[Any] = []
    for _ in range(4):
        try:
            text = peer.ws.recv()
        except websocket.WebSocketPayloadException:  # a text frame that is not UTF-8
            assert kind == "invalid_utf8"
            return
        texts.append(text)
        if not well_formed(text):
            return
    pytest.fail(f"no malformed message among {texts!r}")


def test_fault_huge_frame(make, peers):
    """HugeFrame: the timescale_update message is at least the configured size."""
    tv = make(faults=(HugeFrame(600_000),))
    peer = peers(tv.ws_url)
    peer.hello()
    load(peer, 10)
    sizes = []
    while True:
        text = peer.ws.recv()
        sizes.append(len(text))
        if "series_completed" in text:
            break
    assert max(sizes) >= 600_000


def test_fault_slow_drip_still_delivers_whole_messages(make, peers):
    """SlowDrip: messages come in small pieces, slowly, and still reassemble into valid frames."""
    tv = make(faults=(SlowDrip(chunk=64, delay=0.02),))
    started = time.monotonic()
    peer = peers(tv.ws_url)
    hello = peer.hello()
    elapsed = time.monotonic() - started
    text = json.dumps(hello, separators=(",", ":"))
    assert elapsed >= 0.02 * (len(text) // 64 - 1)
