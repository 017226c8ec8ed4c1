"""Helpers for the fake-server tests: a plain websocket-client peer and a thread-leak guard."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import websocket

from tvadapter.protocol import Event, Heartbeat, decode, encode, parse_payload
from tvadapter.testing import FakeTradingView

ORIGIN = "https://www.tradingview.com"


@pytest.fixture(autouse=True)
def no_thread_left() -> Iterator[None]:
    """Every test must end with as many threads as it started with."""
    before = threading.active_count()
    yield
    deadline = time.monotonic() + 5
    while threading.active_count() > before and time.monotonic() < deadline:
        time.sleep(0.01)
    assert threading.active_count() <= before, [t.name for t in threading.enumerate()]


@pytest.fixture
def server() -> Iterator[Callable[..., FakeTradingView]]:
    """Factory of started servers (short heartbeats by default), all stopped after the test."""
    made: list[FakeTradingView] = []

    def make(**options: Any) -> FakeTradingView:
        options.setdefault("heartbeat_interval", 5.0)
        tv = FakeTradingView(**options)
        tv.start()
        made.append(tv)
        return tv

    yield make
    for tv in made:
        tv.stop()


class Peer:
    """A plain websocket-client connection speaking the protocol by hand."""

    def __init__(self, tv: FakeTradingView, *, timeout: float = 5.0, **kwargs: Any) -> None:
        kwargs.setdefault("origin", ORIGIN)
        self.ws = websocket.create_connection(tv.ws_url, timeout=timeout, **kwargs)
        self.raw: list[str] = []

    def send(self, method: str, *params: Any) -> None:
        """Send one method packet."""
        self.ws.send(encode([json.dumps({"m": method, "p": list(params)})]))

    def recv_text(self) -> str:
        """The next raw text message."""
        text = self.ws.recv()
        assert isinstance(text, str)
        self.raw.append(text)
        return text

    def events(self, *, echo: bool = True) -> list[Event]:
        """The events of the next message (heartbeats echoed unless ``echo=False``)."""
        out = []
        for payload in decode(self.recv_text()):
            event = parse_payload(payload)
            if isinstance(event, Heartbeat) and echo:
                self.ws.send(encode([event.payload]))
            out.append(event)
        return out

    def until(self, predicate: Callable[[Event], bool], *, echo: bool = True) -> list[Event]:
        """Events up to and including the first matching ``predicate``."""
        seen: list[Event] = []
        while True:
            for event in self.events(echo=echo):
                seen.append(event)
                if predicate(event):
                    return seen

    def open_chart(
        self, symbol: str, *, token: str = "unauthorized_user_token", cs: str = "cs_test"
    ) -> None:
        """set_auth_token, chart_create_session and resolve_symbol (symbol id ``sym_1``)."""
        self.send("set_auth_token", token)
        self.send("chart_create_session", cs, "")
        spec = json.dumps({"symbol": symbol, "adjustment": "splits", "session": "regular"})
        self.send("resolve_symbol", cs, "sym_1", "=" + spec)

    def close_code(self) -> tuple[int, list[str]]:
        """Read until the server closes: ``(code, texts received meanwhile)``.

        1005 is a close frame without status, 1006 a connection lost without a close frame.
        """
        texts: list[str] = []
        while True:
            try:
                opcode, data = self.ws.recv_data(control_frame=True)
            except (websocket.WebSocketConnectionClosedException, ConnectionError):
                return 1006, texts
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                if len(data) >= 2:
                    return int.from_bytes(data[:2], "big"), texts
                return 1005, texts
            if opcode == websocket.ABNF.OPCODE_TEXT:
                texts.append(data.decode("utf-8"))

    def close(self) -> None:
        """Close the socket."""
        self.ws.close()


@pytest.fixture
def peer() -> Iterator[Callable[..., Peer]]:
    """Factory of peers, all closed after the test."""
    made: list[Peer] = []

    def make(tv: FakeTradingView, **kwargs: Any) -> Peer:
        p = Peer(tv, **kwargs)
        made.append(p)
        return p

    yield make
    for p in made:
        p.close()
