"""Fake server: handshake, Origin check, hello, heartbeats, counters, lifecycle."""

from __future__ import annotations

import socket
import time

import pytest
import websocket

from tvadapter.protocol import Heartbeat, Hello, decode, parse_payload
from tvadapter.testing import FakeTradingView

ORIGIN = FakeTradingView.origin


def test_hello_is_the_first_packet_with_realistic_keys(server, peer):
    """The first message after the upgrade is a hello with the keys of a real one."""
    tv = server()
    p = peer(tv)
    (event,) = p.events()
    assert isinstance(event, Hello)
    for key in ("session_id", "timestamp", "timestampMs", "release", "protocol", "javastudies",
                "auth_scheme_vsn", "studies_metadata_hash", "via"):  # fmt: skip
        assert key in event.info
    assert event.info["protocol"] == "json"
    assert event.info["timestampMs"] // 1000 == event.info["timestamp"]


def test_urls_and_upgrade_headers(server):
    """ws_url points at /socket.io/websocket on 127.0.0.1 and the upgrade says Server: tv."""
    tv = server()
    assert tv.ws_url.startswith("ws://127.0.0.1:")
    assert tv.ws_url.endswith("/socket.io/websocket")
    assert tv.search_url.startswith("http://127.0.0.1:")
    ws = websocket.create_connection(tv.ws_url + "?from=chart%2F&type=chart", origin=ORIGIN)
    try:
        headers = ws.getheaders()
        assert headers.get("server") == "tv"
        assert "sec-websocket-extensions" not in headers
    finally:
        ws.close()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"origin": "https://data.tradingview.com"},
        {"suppress_origin": True},
        {"header": {"Origin": ORIGIN}},  # websocket-client then sends two Origin headers
    ],
    ids=["wrong", "missing", "duplicated"],
)
def test_bad_origin_gets_403(server, kwargs):
    """Without exactly one accepted Origin the upgrade fails with HTTP 403."""
    tv = server()
    with pytest.raises(websocket.WebSocketBadStatusException) as info:
        websocket.create_connection(tv.ws_url, timeout=5, **kwargs)
    assert info.value.status_code == 403
    assert tv.handshakes_rejected == 1
    assert tv.stats().rejections == {403: 1}
    assert tv.connection_log()[0].status == 403


def test_any_origin_when_allowed_origins_is_none(server, peer):
    """allowed_origins=None accepts any Origin."""
    tv = server(allowed_origins=None)
    p = peer(tv, origin="https://example.org")
    assert isinstance(p.events()[0], Hello)


def test_wrong_path_gets_404(server):
    """Only /socket.io/websocket upgrades."""
    tv = server()
    url = tv.ws_url.replace("/socket.io/websocket", "/other")
    with pytest.raises(websocket.WebSocketBadStatusException) as info:
        websocket.create_connection(url, origin=ORIGIN, timeout=5)
    assert info.value.status_code == 404


def test_max_connections_gives_429(server, peer):
    """Connections beyond max_connections are refused with HTTP 429."""
    tv = server(max_connections=1)
    peer(tv).events()
    with pytest.raises(websocket.WebSocketBadStatusException) as info:
        websocket.create_connection(tv.ws_url, origin=ORIGIN, timeout=5)
    assert info.value.status_code == 429


def test_heartbeats_count_up_from_one_and_echoes_keep_the_connection(server, peer):
    """Heartbeats ~h~1, ~h~2, ~h~3 arrive at the interval; echoing them keeps the socket open."""
    tv = server(heartbeat_interval=0.1)
    p = peer(tv)
    p.events()
    raw = []
    for _ in range(3):
        text = p.recv_text()
        raw.append(text)
        p.ws.send(text)  # echo the identical packet
    assert raw == ["~m~4~m~~h~1", "~m~4~m~~h~2", "~m~4~m~~h~3"]
    assert tv.wait_for(lambda s: s.stats().heartbeat_echoes == 3)
    assert tv.stats().missed_heartbeat_closes == 0
    assert tv.open_connections == 1


def test_client_that_does_not_echo_is_closed(server, peer):
    """A client that never echoes is closed after the grace period (a clean 1000 close)."""
    tv = server(heartbeat_interval=0.1, heartbeat_timeout=0.2)
    p = peer(tv)
    code, texts = p.close_code()
    assert code == 1000
    assert any(isinstance(parse_payload(x), Heartbeat) for t in texts for x in decode(t))
    assert tv.wait_for(lambda s: s.stats().missed_heartbeat_closes == 1)
    record = tv.connection_log()[0]
    assert record.close_code == 1000
    assert record.close_reason == "heartbeat timeout"


def test_heartbeat_check_can_be_disabled(server, peer):
    """enforce_heartbeats=False keeps a silent client connected."""
    tv = server(heartbeat_interval=0.05, enforce_heartbeats=False)
    p = peer(tv)
    for _ in range(6):
        p.events(echo=False)
    assert tv.open_connections == 1
    assert tv.stats().missed_heartbeat_closes == 0


def test_requests_are_counted_per_method(server, peer):
    """stats().requests counts client packets by method; echoes are not requests."""
    tv = server()
    p = peer(tv)
    p.events()
    p.open_chart("NASDAQ:AAPL")
    p.until(lambda e: type(e).__name__ == "SymbolResolved")
    assert tv.requests == {"set_auth_token": 1, "chart_create_session": 1, "resolve_symbol": 1}
    assert tv.connection_attempts == 1
    record = tv.connection_log()[0]
    assert (record.status, record.origin, record.requests, record.auth) == (
        101,
        ORIGIN,
        3,
        "anonymous",
    )


def test_client_garbage_gets_protocol_error_and_close(server, peer):
    """A client message that is not framed gets protocol_error, then the server closes."""
    tv = server()
    p = peer(tv)
    p.events()
    p.ws.send("this is not a packet")
    code, texts = p.close_code()
    assert texts == ['~m~41~m~{"m":"protocol_error","p":["wrong data"]}']
    assert code == 1000


def test_lifecycle_start_stop(server):
    """stop() frees the port and is idempotent; start() twice is refused."""
    tv = FakeTradingView()
    tv.start()
    port = tv.port
    with pytest.raises(RuntimeError):
        tv.start()
    tv.stop()
    tv.stop()
    with socket.socket() as s:  # the port can be bound again
        s.bind(("127.0.0.1", port))
    with pytest.raises(RuntimeError):
        _ = FakeTradingView().port


def test_stop_closes_open_connections(server, peer):
    """stop() closes connections that are still open (clients see the socket end)."""
    tv = server()
    p = peer(tv)
    p.events()
    start = time.monotonic()
    tv.stop()
    assert time.monotonic() - start < 10
    code, _ = p.close_code()
    assert code in (1001, 1006)


def test_config_validation_names_the_parameter():
    """Bad options raise ValueError naming the parameter."""
    with pytest.raises(ValueError, match="heartbeat_interval"):
        FakeTradingView(heartbeat_interval=0)
    with pytest.raises(ValueError, match="packing"):
        FakeTradingView(packing="weird")
    with pytest.raises(ValueError, match="bar_caps"):
        FakeTradingView(bar_caps={"anonymous": 0})
    with pytest.raises(TypeError):
        FakeTradingView(no_such_option=1)


def test_hello_parses_with_the_core(server, peer):
    """The hello message is one packet that the protocol core decodes."""
    tv = server()
    p = peer(tv)
    (payload,) = decode(p.recv_text())
    assert isinstance(parse_payload(payload), Hello)
