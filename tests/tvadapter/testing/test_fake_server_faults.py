"""Fake server faults, each observed by a plain websocket-client peer."""

from __future__ import annotations

import time

import pytest
import websocket

from tvadapter.errors import FramingError, MalformedPayloadError
from tvadapter.protocol import (
    Heartbeat,
    Hello,
    SeriesCompleted,
    SeriesLoading,
    TimescaleUpdate,
    decode,
    parse_payload,
)
from tvadapter.testing import (
    MALFORMED_KINDS,
    Drop,
    HugeFrame,
    Latency,
    Malformed,
    RejectHandshake,
    RequestRate,
    SlowDrip,
    Stall,
    first,
)
from tvadapter.testing._faults import ActiveFaults, selects

ORIGIN = "https://www.tradingview.com"


def request_series(p, n=10, symbol="NASDAQ:AAPL"):
    p.open_chart(symbol)
    p.send("create_series", "cs_test", "s1", "s1", "sym_1", "1D", n)


def packets(texts):
    return [parse_payload(x) for t in texts for x in decode(t)]


# -- selectors ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("selector", "hits"),
    [
        (None, {1, 2, 3, 4, 5}),
        (2, {2}),
        ({1, 3}, {1, 3}),
        (first(2), {1, 2}),
        (range(3, 5), {3, 4}),
        (lambda n: n % 2 == 0, {2, 4}),
    ],
)
def test_attempt_selectors(selector, hits):
    """attempts= accepts None, an int, a container or a callable."""
    assert {n for n in range(1, 6) if selects(selector, n)} == hits


def test_first_matching_fault_of_each_kind_applies():
    """ActiveFaults picks, per kind, the first fault whose selector matches the attempt."""
    faults = [Drop(after=1, attempts=1), Drop(after=5), Latency(0.1, attempts=2)]
    one = ActiveFaults.select(faults, 1)
    two = ActiveFaults.select(faults, 2)
    assert one.drop is not None and one.drop.after == 1 and one.latency is None
    assert two.drop is not None and two.drop.after == 5 and two.latency is not None
    assert one.names() == ["Drop"]


@pytest.mark.parametrize(
    ("build", "param"),
    [
        (lambda: Latency(-1), "seconds"),
        (lambda: RejectHandshake(200), "status"),
        (lambda: Drop(after=-1), "after"),
        (lambda: Drop(code=999), "code"),
        (lambda: RequestRate(0), "max_requests"),
        (lambda: Malformed("nonsense"), "kind"),
        (lambda: HugeFrame(0), "size"),
        (lambda: SlowDrip(chunk=0), "chunk"),
        (lambda: SlowDrip(level="tcp"), "level"),
        (lambda: Stall(after_heartbeats=-1), "after_heartbeats"),
    ],
)
def test_fault_validation_names_the_parameter(build, param):
    """Bad fault parameters raise ValueError naming the parameter."""
    with pytest.raises(ValueError, match=param):
        build()


# -- faults on the wire ------------------------------------------------------------------------


def test_latency_delays_every_message(server, peer):
    """Latency: the hello and the answers arrive no sooner than the added delay."""
    tv = server(faults=[Latency(0.3)])
    start = time.monotonic()
    p = peer(tv)
    assert isinstance(p.events()[0], Hello)
    assert time.monotonic() - start >= 0.29
    request_series(p)
    sent = time.monotonic()
    p.until(lambda e: isinstance(e, SeriesCompleted))
    assert time.monotonic() - sent >= 0.29


@pytest.mark.parametrize("status", [429, 403, 503])
def test_reject_handshake_for_the_first_attempts(server, peer, status):
    """RejectHandshake(attempts=first(2)): two HTTP errors, then the third attempt connects."""
    tv = server(faults=[RejectHandshake(status, retry_after=3, attempts=first(2))])
    for _ in range(2):
        with pytest.raises(websocket.WebSocketBadStatusException) as info:
            websocket.create_connection(tv.ws_url, origin=ORIGIN, timeout=5)
        assert info.value.status_code == status
        assert info.value.resp_headers.get("retry-after") == "3"
    p = peer(tv)
    assert isinstance(p.events()[0], Hello)
    stats = tv.stats()
    assert (stats.connection_attempts, stats.handshakes_rejected) == (3, 2)
    assert [r.status for r in tv.connection_log()] == [status, status, 101]


def test_stall_sends_nothing_after_the_hello(server, peer):
    """Stall(): the hello arrives, then nothing at all, even after a request."""
    tv = server(heartbeat_interval=0.05, faults=[Stall()])
    p = peer(tv, timeout=0.5)
    assert isinstance(p.events()[0], Hello)
    request_series(p)
    with pytest.raises(websocket.WebSocketTimeoutException):
        p.recv_text()
    assert tv.open_connections == 1
    assert tv.counter("messages_withheld") >= 1
    assert tv.stats().missed_heartbeat_closes == 0  # withheld heartbeats are not owed


def test_stall_without_hello(server, peer):
    """Stall(hello=False): the socket opens and stays silent."""
    tv = server(faults=[Stall(hello=False)])
    p = peer(tv, timeout=0.3)
    with pytest.raises(websocket.WebSocketTimeoutException):
        p.recv_text()


def test_stall_with_heartbeats_after_some_series_packets(server, peer):
    """Stall(after=1, heartbeats=True): one series packet, then only heartbeats."""
    tv = server(heartbeat_interval=0.05, faults=[Stall(after=1, heartbeats=True)])
    p = peer(tv)
    request_series(p)
    seen = []
    for _ in range(8):
        seen.extend(p.events())
    kinds = [type(e).__name__ for e in seen if not isinstance(e, Heartbeat)]
    assert kinds == ["Hello", "SymbolResolved"]
    assert sum(isinstance(e, Heartbeat) for e in seen) >= 4


def test_freeze_after_heartbeats(server, peer):
    """Stall(after=None, after_heartbeats=2): two heartbeats, then complete silence."""
    tv = server(heartbeat_interval=0.05, faults=[Stall(after=None, after_heartbeats=2)])
    p = peer(tv, timeout=0.5)
    texts = []
    for _ in range(3):
        texts.append(p.recv_text())
        if "~h~" in texts[-1]:
            p.ws.send(texts[-1])
    assert texts[1:] == ["~m~4~m~~h~1", "~m~4~m~~h~2"]
    with pytest.raises(websocket.WebSocketTimeoutException):
        p.recv_text()


@pytest.mark.parametrize(("code", "seen"), [(1006, 1006), (1005, 1005), (1011, 1011)])
def test_drop_after_n_series_packets(server, peer, code, seen):
    """Drop(after=3): exactly three series packets, then the connection ends as chosen."""
    tv = server(faults=[Drop(after=3, code=code)])
    p = peer(tv)
    request_series(p)
    got_code, texts = p.close_code()
    assert got_code == seen
    events = packets(texts)
    kinds = [type(e).__name__ for e in events]
    assert kinds == ["Hello", "SymbolResolved", "SeriesLoading", "TimescaleUpdate"]
    assert tv.connection_log()[0].close_code == code


def test_drop_applies_to_selected_attempts_only(server, peer):
    """Drop(attempts=1): the first connection is cut mid-series, the second is served fully."""
    tv = server(faults=[Drop(after=2, attempts=1)])
    p = peer(tv)
    request_series(p)
    assert p.close_code()[0] == 1006
    q = peer(tv)
    request_series(q)
    events = q.until(lambda e: isinstance(e, SeriesCompleted))
    bars = [b for e in events if isinstance(e, TimescaleUpdate) for b in e.series["s1"].bars]
    assert bars == tv.bars("NASDAQ:AAPL", "1D", 10)


def test_drop_after_zero_sends_no_series_packet(server, peer):
    """Drop(after=0): the connection ends before any series packet."""
    tv = server(faults=[Drop(after=0)])
    p = peer(tv)
    request_series(p)
    code, texts = p.close_code()
    assert code == 1006
    assert [type(e).__name__ for e in packets(texts)] == ["Hello"]


def test_request_rate_closes_a_flooding_client(server, peer):
    """RequestRate(5): the sixth packet within a second gets the client closed (1008)."""
    tv = server(faults=[RequestRate(5, window=1.0)])
    p = peer(tv)
    p.events()
    for i in range(8):
        p.send("chart_create_session", f"cs_{i}", "")
    code, _ = p.close_code()
    assert code == 1008
    assert tv.connection_log()[0].close_reason == "too many requests"


def test_request_rate_tolerates_a_slow_client(server, peer):
    """RequestRate: a client below the limit is served normally."""
    tv = server(faults=[RequestRate(20)])
    p = peer(tv)
    request_series(p)
    p.until(lambda e: isinstance(e, SeriesCompleted))
    assert tv.open_connections == 1


@pytest.mark.parametrize(
    "kind", ["bad_length", "no_prefix", "non_ascii_digits", "trailing_garbage"]
)
def test_malformed_framing_is_a_framing_error_for_the_core(server, peer, kind):
    """Malformed framing kinds make the protocol core's decode raise FramingError."""
    tv = server(faults=[Malformed(kind)])
    p = peer(tv)
    p.events()
    request_series(p)
    bad = p.recv_text()
    with pytest.raises(FramingError):
        decode(bad)
    assert tv.counter("malformed_sent") == 1
    # The server carries on normally afterwards.
    assert p.until(lambda e: isinstance(e, SeriesCompleted))


@pytest.mark.parametrize("kind", ["not_json", "bad_shape"])
def test_malformed_payload_is_a_payload_error_for_the_core(server, peer, kind):
    """not_json / bad_shape frame correctly but the payload fails to parse."""
    tv = server(faults=[Malformed(kind)])
    p = peer(tv)
    p.events()
    request_series(p)
    (payload,) = decode(p.recv_text())
    with pytest.raises(MalformedPayloadError):
        parse_payload(payload)


def test_malformed_invalid_utf8_breaks_the_websocket_layer(server, peer):
    """invalid_utf8: websocket-client refuses the text frame."""
    tv = server(faults=[Malformed("invalid_utf8")])
    p = peer(tv)
    p.events()
    request_series(p)
    with pytest.raises((websocket.WebSocketException, UnicodeDecodeError)):
        p.recv_text()


def test_malformed_binary_frame(server, peer):
    """binary: a binary frame arrives where text frames are expected."""
    tv = server(faults=[Malformed("binary")])
    p = peer(tv)
    p.events()
    request_series(p)
    opcode, data = p.ws.recv_data()
    assert opcode == websocket.ABNF.OPCODE_BINARY
    assert data.startswith(b"~m~")


def test_malformed_then_close(server, peer):
    """Malformed(close=True) ends the connection right after the bad message."""
    tv = server(faults=[Malformed("bad_length", close=True)])
    p = peer(tv)
    request_series(p)
    code, texts = p.close_code()
    assert code == 1006
    with pytest.raises(FramingError):
        decode(texts[-1])


def test_every_malformed_kind_is_tested():
    """The kinds exercised above cover MALFORMED_KINDS."""
    covered = {"bad_length", "no_prefix", "non_ascii_digits", "trailing_garbage", "not_json",
               "bad_shape", "invalid_utf8", "binary"}  # fmt: skip
    assert covered == set(MALFORMED_KINDS)


def test_huge_frame_pads_the_bars_message(server, peer):
    """HugeFrame(3 MB): the timescale_update message is that big and its bars are unchanged."""
    tv = server(faults=[HugeFrame(3_000_000)])
    p = peer(tv)
    request_series(p, n=20)
    events = p.until(lambda e: isinstance(e, SeriesCompleted))
    big = next(t for t in p.raw if "timescale_update" in t)
    assert len(big) >= 3_000_000
    bars = [b for e in events if isinstance(e, TimescaleUpdate) for b in e.series["s1"].bars]
    assert bars == tv.bars("NASDAQ:AAPL", "1D", 20)


def test_slow_drip_fragments_a_message(server, peer):
    """SlowDrip(level="fragments"): a text frame then continuation frames, delay apart."""
    tv = server(faults=[SlowDrip(chunk=100, delay=0.02, min_size=500)])
    p = peer(tv)
    p.events()  # the hello is short: sent whole
    request_series(p, n=10)
    frames = []
    start = time.monotonic()
    while True:
        frame = p.ws.recv_frame()
        frames.append(frame)
        if frame.fin:
            break
    elapsed = time.monotonic() - start
    assert frames[0].opcode == websocket.ABNF.OPCODE_TEXT
    assert all(f.opcode == websocket.ABNF.OPCODE_CONT for f in frames[1:])
    assert len(frames) >= 5
    assert all(len(f.data.decode()) <= 100 for f in frames)
    assert elapsed >= 0.02 * (len(frames) - 2)
    text = b"".join(f.data for f in frames).decode()
    assert decode(text)  # the reassembled message is intact


def test_slow_drip_bytes_delivers_an_intact_message_slowly(server, peer):
    """SlowDrip(level="bytes"): one frame written a few bytes at a time, reassembled intact."""
    tv = server(faults=[SlowDrip(chunk=200, delay=0.01, min_size=1000, level="bytes")])
    p = peer(tv)
    p.events()
    start = time.monotonic()
    request_series(p, n=30)
    events = p.until(lambda e: isinstance(e, SeriesCompleted))
    big = max(len(t.encode()) for t in p.raw)
    assert time.monotonic() - start >= 0.01 * (big // 200 - 1)
    bars = [b for e in events if isinstance(e, TimescaleUpdate) for b in e.series["s1"].bars]
    assert bars == tv.bars("NASDAQ:AAPL", "1D", 30)


def test_set_faults_at_run_time(server, peer):
    """set_faults applies to new connections; clear_faults removes them."""
    tv = server()
    tv.set_faults(RejectHandshake(503))
    with pytest.raises(websocket.WebSocketBadStatusException):
        websocket.create_connection(tv.ws_url, origin=ORIGIN, timeout=5)
    tv.clear_faults()
    assert tv.faults == ()
    p = peer(tv)
    assert isinstance(p.events()[0], Hello)
    tv.add_fault(Drop(after=1))
    q = peer(tv)
    request_series(q)
    assert q.close_code()[0] == 1006
    with pytest.raises(TypeError):
        tv.set_faults("not a fault")  # type: ignore[arg-type]


def test_drop_connections_now(server, peer):
    """drop_connections() aborts every open connection."""
    tv = server()
    a, b = peer(tv), peer(tv)
    a.events()
    b.events()
    assert tv.wait_for(lambda s: s.open_connections == 2)
    assert tv.drop_connections() == 2
    assert a.close_code()[0] == 1006
    assert b.close_code()[0] == 1006
    assert tv.wait_for(lambda s: s.open_connections == 0)


def test_series_packets_count_includes_loading(server, peer):
    """Drop(after=1) lets through exactly one series packet (symbol_resolved)."""
    tv = server(faults=[Drop(after=1)])
    p = peer(tv)
    request_series(p)
    _, texts = p.close_code()
    assert [type(e).__name__ for e in packets(texts)] == ["Hello", "SymbolResolved"]
    assert not any(isinstance(e, SeriesLoading) for e in packets(texts))
