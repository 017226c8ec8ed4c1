"""Tests for tvadapter._transport and tvadapter.connection.WebSocketManager on 127.0.0.1.

Two small servers live here: ``RawServer`` (plain sockets: captures the raw upgrade request,
answers any status, then runs a scripted WebSocket conversation with hand-made frames, so close
frames without a status, abrupt drops and silence are exact) and ``WsServer`` (the
``websockets`` library: a real peer for echo, pings, heartbeats and rejections per attempt).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import random
import socket
import struct
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from http import HTTPStatus
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection, serve
from websockets.http11 import Request, Response

from resilience.testing import FakeClock
from tvadapter import (
    ConfigurationError,
    ConnectionClosed,
    HandshakeForbidden,
    HandshakeRateLimited,
    HandshakeRejected,
    NetworkConfig,
    RateLimitedError,
    TvConnectionError,
    TvTimeoutError,
    WebSocketManager,
)
from tvadapter.connection import ConnectionEvent
from tvadapter.protocol import encode
from tvadapter.testing import FakeTradingView, RejectHandshake, SlowDrip, Stall, first

_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
ORIGIN = "https://www.tradingview.com"


@pytest.fixture(autouse=True)
def _no_thread_left() -> Iterator[None]:
    """Every test must stop the threads it started."""
    before = set(threading.enumerate())
    yield
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        extra = [t for t in threading.enumerate() if t not in before and t.is_alive()]
        if not extra:
            return
        time.sleep(0.02)
    raise AssertionError(f"threads left running: {extra}")


def _config(url: str, **changes: Any) -> NetworkConfig:
    base: dict[str, Any] = {
        "ws_url": url,
        "connect_timeout": 3.0,
        "send_timeout": 3.0,
        "recv_timeout": 5.0,
        "max_retries": 3,
        "base_retry_delay": 0.01,
        "max_retry_delay": 0.05,
        "request_deadline": 60.0,
    }
    base.update(changes)
    return NetworkConfig(**base)


# ---------------------------------------------------------------------------------------------
# RawServer: scripted, byte-exact
# ---------------------------------------------------------------------------------------------


def frame(opcode: int, payload: bytes = b"") -> bytes:
    """An unmasked server frame."""
    n = len(payload)
    if n < 126:
        header = struct.pack("!BB", 0x80 | opcode, n)
    elif n < 65536:
        header = struct.pack("!BBH", 0x80 | opcode, 126, n)
    else:
        header = struct.pack("!BBQ", 0x80 | opcode, 127, n)
    return header + payload


def text(message: str) -> bytes:
    return frame(0x1, message.encode())


def read_client_frame(conn: socket.socket) -> tuple[int, bytes]:
    """Read one masked client frame (opcode, payload)."""

    def exactly(n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = conn.recv(n - len(data))
            if not chunk:
                raise EOFError
            data += chunk
        return data

    b1, b2 = exactly(2)
    n = b2 & 0x7F
    if n == 126:
        n = struct.unpack("!H", exactly(2))[0]
    elif n == 127:
        n = struct.unpack("!Q", exactly(8))[0]
    mask = exactly(4)
    data = bytes(b ^ mask[i % 4] for i, b in enumerate(exactly(n)))
    return b1 & 0x0F, data


Script = Callable[[socket.socket], None]


class RawServer:
    """Answers attempt ``i`` with ``statuses[i]`` (101 = accept, then run ``script``)."""

    def __init__(
        self,
        statuses: list[int] | None = None,
        script: Script | None = None,
        extra_headers: str = "",
        silent_handshake: bool = False,
    ) -> None:
        self.statuses = statuses or [101]
        self.script = script
        self.extra_headers = extra_headers
        self.silent_handshake = silent_handshake
        self.requests: list[bytes] = []
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(16)
        self._sock.settimeout(0.1)
        self.port = self._sock.getsockname()[1]
        self.url = f"ws://127.0.0.1:{self.port}/socket.io/websocket?from=chart%2F&type=chart"
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._conns: list[socket.socket] = []
        self._accept = threading.Thread(target=self._serve, name="raw-server")

    def __enter__(self) -> RawServer:
        self._accept.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._accept.join(5)
        for conn in list(self._conns):
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()
        for t in self._threads:
            t.join(5)
        self._sock.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self._conns.append(conn)
            t = threading.Thread(target=self._handle, args=(conn, len(self.requests)))
            self.requests.append(b"")
            self._threads.append(t)
            t.start()

    def _handle(self, conn: socket.socket, index: int) -> None:
        try:
            conn.settimeout(5)
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(4096)
                if not chunk:
                    return
                data += chunk
            self.requests[index] = data
            if self.silent_handshake:
                self._stop.wait(10)
                return
            status = self.statuses[min(index, len(self.statuses) - 1)]
            if status != 101:
                body = b"no"
                conn.sendall(
                    f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\n"
                    f"Content-Length: {len(body)}\r\n{self.extra_headers}\r\n".encode()
                    + body
                )
                return
            key = ""
            for line in data.decode().split("\r\n"):
                if line.lower().startswith("sec-websocket-key:"):
                    key = line.split(":", 1)[1].strip()
            accept = base64.b64encode(hashlib.sha1((key + _GUID).encode()).digest()).decode()
            conn.sendall(
                (
                    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                    f"Connection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
                ).encode()
            )
            if self.script is not None:
                self.script(conn)
            else:  # answer the client's close frame, ignore anything else
                while True:
                    opcode, data = read_client_frame(conn)
                    if opcode == 0x8:
                        conn.sendall(frame(0x8, data))
                        return
        except (OSError, EOFError):
            pass
        finally:
            with contextlib.suppress(OSError):
                conn.close()

    def header_lines(self, index: int, name: str) -> list[str]:
        lines = self.requests[index].decode().split("\r\n")
        return [
            line.split(":", 1)[1].strip()
            for line in lines
            if line.lower().startswith(name.lower() + ":")
        ]


# ---------------------------------------------------------------------------------------------
# WsServer: the websockets library in a background thread
# ---------------------------------------------------------------------------------------------

Handler = Callable[[ServerConnection, "WsServer"], Awaitable[None]]


async def echo_handler(ws: ServerConnection, server: WsServer) -> None:
    async for message in ws:
        server.received.append(str(message))
        await ws.send(message)


class WsServer:
    """A websockets server; ``reject(attempt)`` may refuse an upgrade with (status, headers)."""

    def __init__(
        self,
        handler: Handler = echo_handler,
        reject: Callable[[int], tuple[int, dict[str, str]] | None] | None = None,
    ) -> None:
        self.handler = handler
        self.reject = reject
        self.attempts = 0
        self.connections = 0
        self.received: list[str] = []
        self.origins: list[list[str]] = []
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stop: asyncio.Future[None] | None = None
        self._thread = threading.Thread(target=self._run, name="ws-server")
        self.port = 0

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/socket.io/websocket"

    def __enter__(self) -> WsServer:
        self._thread.start()
        assert self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        def stop() -> None:
            assert self._stop is not None
            if not self._stop.done():
                self._stop.set_result(None)

        self._loop.call_soon_threadsafe(stop)
        self._thread.join(10)
        self._loop.close()

    def call(self, coro: Awaitable[Any]) -> Any:
        """Run a coroutine on the server loop from the test thread."""
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(5)  # type: ignore[arg-type]

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        self.attempts += 1
        self.origins.append(request.headers.get_all("Origin"))
        if self.reject is not None:
            verdict = self.reject(self.attempts)
            if verdict is not None:
                status, headers = verdict
                response = connection.respond(HTTPStatus(status), "refused\n")
                for k, v in headers.items():
                    response.headers[k] = v
                return response
        return None

    async def _handle(self, ws: ServerConnection) -> None:
        self.connections += 1
        self.live.append(ws)
        await self.handler(ws, self)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self.live: list[ServerConnection] = []

        async def main() -> None:
            self._stop = self._loop.create_future()
            async with serve(
                self._handle, "127.0.0.1", 0, process_request=self._process_request
            ) as server:
                self.port = next(iter(server.sockets)).getsockname()[1]
                self._ready.set()
                await self._stop
                server.close()
                await server.wait_closed()

        self._loop.run_until_complete(main())


# ---------------------------------------------------------------------------------------------
# Origin and handshake
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [{}, {"Origin": ORIGIN, "X-Test": "1"}, {"origin": ORIGIN}],
    ids=["default", "Origin-in-ws_headers", "lowercase-origin"],
)
def test_handshake_sends_exactly_one_origin(headers: dict[str, str]) -> None:
    """The raw upgrade request carries exactly one Origin line, the TradingView one."""
    with RawServer() as server:
        manager = WebSocketManager(_config(server.url, ws_headers=headers))
        with manager:
            assert manager.is_connected()
        origins = server.header_lines(0, "Origin")
        assert origins == [ORIGIN]
        raw = server.requests[0].decode()
        assert raw.startswith("GET /socket.io/websocket?from=chart%2F&type=chart HTTP/1.1\r\n")
        assert len(server.header_lines(0, "User-Agent")) == 1
        if "X-Test" in headers:
            assert server.header_lines(0, "X-Test") == ["1"]


def test_403_fails_fast_without_retry() -> None:
    """HTTP 403 raises HandshakeForbidden (a configuration error) after one attempt, no sleep."""
    clock = FakeClock()
    events: list[ConnectionEvent] = []
    with RawServer(statuses=[403]) as server:
        manager = WebSocketManager(
            _config(server.url), clock=clock, sleep=clock.sleep, on_event=events.append
        )
        with pytest.raises(HandshakeForbidden) as info:
            manager.connect()
        assert len(server.requests) == 1
    assert info.value.status == 403
    assert isinstance(info.value, ConfigurationError)
    assert isinstance(info.value, HandshakeRejected)
    assert clock.sleeps == []
    assert manager.stats().connect_failures == 1
    assert not manager.is_connected()
    assert [e.kind for e in events] == ["connecting", "gave_up"]


@pytest.mark.parametrize("k", [1, 3])
def test_429_for_first_k_attempts_then_success(k: int) -> None:
    """429 K times then 101: connect succeeds on attempt K+1 after K recorded backoff waits."""
    clock = FakeClock()
    events: list[ConnectionEvent] = []
    with WsServer(reject=lambda n: (429, {}) if n <= k else None) as server:
        manager = WebSocketManager(
            _config(server.url, base_retry_delay=1.0, max_retry_delay=8.0),
            clock=clock,
            sleep=clock.sleep,
            rng=random.Random(7),
            on_event=events.append,
        )
        assert manager.connect() is True
        assert manager.is_connected()
        manager.disconnect()
    assert server.attempts == k + 1
    assert len(clock.sleeps) == k
    for n, wait in enumerate(clock.sleeps, start=1):
        exponential = min(1.0 * 2 ** (n - 1), 8.0)
        assert exponential / 2 <= wait <= exponential  # equal jitter
    stats = manager.stats()
    assert (stats.connect_attempts, stats.connect_failures, stats.connects) == (k + 1, k, 1)
    kinds = [e.kind for e in events]
    assert kinds.count("connect_failed") == k
    assert kinds.count("retry") == k
    assert kinds[-2:] == ["connected", "disconnected"]
    failed = [e for e in events if e.kind == "connect_failed"]
    assert all(isinstance(e.error, HandshakeRateLimited) for e in failed)


def test_429_retry_after_is_honoured() -> None:
    """A Retry-After header makes the next wait at least that long."""
    clock = FakeClock()
    with WsServer(reject=lambda n: (429, {"Retry-After": "7"}) if n == 1 else None) as server:
        manager = WebSocketManager(_config(server.url), clock=clock, sleep=clock.sleep)
        manager.connect()
        manager.disconnect()
    assert len(clock.sleeps) == 1
    assert clock.sleeps[0] >= 7.0


def test_429_forever_gives_up_with_rate_limited_error() -> None:
    """After max_retries retries, the last HandshakeRateLimited (a RateLimitedError) is raised."""
    clock = FakeClock()
    with WsServer(reject=lambda n: (429, {"Retry-After": "2"})) as server:
        manager = WebSocketManager(
            _config(server.url, max_retries=2), clock=clock, sleep=clock.sleep
        )
        with pytest.raises(HandshakeRateLimited) as info:
            manager.connect()
    assert server.attempts == 3
    assert len(clock.sleeps) == 2
    assert isinstance(info.value, RateLimitedError)
    assert isinstance(info.value, TvConnectionError)
    assert info.value.retry_after == 2.0
    assert info.value.status == 429


def test_503_is_retried() -> None:
    """A 5xx refusal is retryable (HandshakeRejected, not Forbidden)."""
    clock = FakeClock()
    with WsServer(reject=lambda n: (503, {}) if n <= 2 else None) as server:
        manager = WebSocketManager(_config(server.url), clock=clock, sleep=clock.sleep)
        manager.connect()
        manager.disconnect()
    assert server.attempts == 3
    assert len(clock.sleeps) == 2


def test_deadline_bounds_the_retries() -> None:
    """Retries stop once the next wait would pass the deadline; total waits stay within it."""
    clock = FakeClock()
    with WsServer(reject=lambda n: (503, {})) as server:
        manager = WebSocketManager(
            _config(server.url, max_retries=10, base_retry_delay=4.0, max_retry_delay=60.0),
            clock=clock,
            sleep=clock.sleep,
        )
        with pytest.raises(HandshakeRejected):
            manager.connect(deadline=20.0)
    assert server.attempts < 11
    assert sum(clock.sleeps) <= 20.0


def test_connection_refused_is_typed_and_retried() -> None:
    """Nothing listening: TvConnectionError after max_retries+1 attempts."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    clock = FakeClock()
    manager = WebSocketManager(
        _config(f"ws://127.0.0.1:{port}/x", max_retries=2), clock=clock, sleep=clock.sleep
    )
    with pytest.raises(TvConnectionError) as info:
        manager.connect()
    assert isinstance(info.value.__cause__, OSError)
    assert manager.stats().connect_attempts == 3
    assert len(clock.sleeps) == 2


def test_connect_timeout_is_typed() -> None:
    """A server that never answers the upgrade gives TvTimeoutError within connect_timeout."""
    with RawServer(silent_handshake=True) as server:
        manager = WebSocketManager(_config(server.url, connect_timeout=0.3, max_retries=0))
        with pytest.raises(TvTimeoutError):
            manager.connect()


def test_disconnect_interrupts_backoff_sleep() -> None:
    """disconnect() from another thread ends a connect that is waiting between attempts."""
    with WsServer(reject=lambda n: (503, {})) as server:
        manager = WebSocketManager(
            _config(server.url, base_retry_delay=30.0, max_retry_delay=30.0, max_retries=5)
        )
        errors: list[BaseException] = []

        def run() -> None:
            try:
                manager.connect()
            except BaseException as exc:
                errors.append(exc)

        t = threading.Thread(target=run)
        t.start()
        while server.attempts < 1:
            time.sleep(0.01)
        time.sleep(0.05)
        manager.disconnect()
        t.join(10)
        assert not t.is_alive()
    assert len(errors) == 1
    assert isinstance(errors[0], ConnectionClosed)
    assert errors[0].by_client


# ---------------------------------------------------------------------------------------------
# Basic I/O
# ---------------------------------------------------------------------------------------------


def test_send_recv_and_counters() -> None:
    """Messages round-trip whole, and the counters count messages and UTF-8 bytes."""
    with WsServer() as server, WebSocketManager(_config(server.url)) as manager:
        manager.send("hello")
        assert manager.recv() == "hello"
        manager.send("€uro 𝄞")
        assert manager.recv(timeout=2) == "€uro 𝄞"
        stats = manager.stats()
        assert stats.messages_out == 2
        assert stats.messages_in == 2
        assert stats.bytes_out == 5 + len("€uro 𝄞".encode())
        assert stats.bytes_in == stats.bytes_out
        assert stats.connected
        assert stats.connection_id == 1


def test_large_message_round_trip() -> None:
    """A 600 KB message (a 5,000-bar reply is ~520 KB) arrives whole."""
    big = "~m~" + "x" * 600_000
    with WsServer() as server, WebSocketManager(_config(server.url)) as manager:
        manager.send(big)
        assert manager.recv() == big


def test_disconnect_is_idempotent_and_recv_after_raises() -> None:
    """disconnect() twice is fine; recv/send afterwards raise ConnectionClosed (by_client)."""
    with WsServer() as server:
        manager = WebSocketManager(_config(server.url))
        manager.connect()
        manager.disconnect()
        manager.disconnect()
        assert not manager.is_connected()
        with pytest.raises(ConnectionClosed) as info:
            manager.recv(timeout=1)
        assert info.value.by_client
        with pytest.raises(TvConnectionError):
            manager.send("x")
    assert manager.stats().disconnects == 1


def test_recv_before_connect_is_typed() -> None:
    """recv() on a never-connected manager raises a TvConnectionError, not AttributeError."""
    manager = WebSocketManager(_config("ws://127.0.0.1:9/x"))
    with pytest.raises(TvConnectionError):
        manager.recv(timeout=0.1)


def test_recv_timeout_is_typed_and_connection_survives() -> None:
    """A recv timeout raises TvTimeoutError and the connection still works afterwards."""
    with WsServer() as server, WebSocketManager(_config(server.url)) as manager:
        with pytest.raises(TvTimeoutError):
            manager.recv(timeout=0.2)
        assert manager.is_connected()
        manager.send("after")
        assert manager.recv() == "after"


@pytest.mark.parametrize("bad", [0, -1, float("nan"), float("inf"), "1"])
def test_bad_timeout_arguments(bad: Any) -> None:
    """Invalid per-call timeouts raise ConfigurationError naming `timeout`."""
    with WsServer() as server, WebSocketManager(_config(server.url)) as manager:
        with pytest.raises(ConfigurationError, match="timeout"):
            manager.recv(timeout=bad)
        with pytest.raises(ConfigurationError, match="timeout"):
            manager.send("x", timeout=bad)


def test_send_timeout_when_peer_never_reads() -> None:
    """A peer that stops reading makes send() raise TvTimeoutError; the connection is failed."""
    release = threading.Event()
    with RawServer(script=lambda conn: release.wait(10) and None) as server:
        manager = WebSocketManager(_config(server.url))
        manager.connect()
        chunk = "x" * (4 << 20)
        with pytest.raises(TvTimeoutError):
            for _ in range(50):
                manager.send(chunk, timeout=0.3)
        assert not manager.is_connected()
        manager.disconnect()
        release.set()


# ---------------------------------------------------------------------------------------------
# Heartbeats
# ---------------------------------------------------------------------------------------------


def test_heartbeat_echo_seen_by_server() -> None:
    """A heartbeat-only message is echoed exactly and skipped; recv returns the data after it."""
    echoes: list[str] = []

    async def handler(ws: ServerConnection, server: WsServer) -> None:
        await ws.send("~m~4~m~~h~1")
        echoes.append(str(await ws.recv()))
        await ws.send(encode(['{"m":"data"}']))
        await ws.wait_closed()

    with WsServer(handler) as server, WebSocketManager(_config(server.url)) as manager:
        assert manager.recv() == encode(['{"m":"data"}'])
        assert manager.heartbeats_echoed == 1
    assert echoes == ["~m~4~m~~h~1"]


def test_heartbeat_inside_mixed_message() -> None:
    """Heartbeats mixed with data are echoed in order and removed from the returned message."""
    echoes: list[str] = []

    async def handler(ws: ServerConnection, server: WsServer) -> None:
        await ws.send(encode(['{"a":1}', "~h~12", '{"b":"~h~3"}', "~h~13"]))
        echoes.append(str(await ws.recv()))
        echoes.append(str(await ws.recv()))
        await ws.wait_closed()

    with WsServer(handler) as server, WebSocketManager(_config(server.url)) as manager:
        assert manager.recv() == encode(['{"a":1}', '{"b":"~h~3"}'])
        deadline = time.monotonic() + 5
        while len(echoes) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
    assert echoes == ["~m~5~m~~h~12", "~m~5~m~~h~13"]


def test_include_heartbeats_returns_them_unchanged() -> None:
    """include_heartbeats=True returns heartbeat-only messages as received (already echoed)."""

    async def handler(ws: ServerConnection, server: WsServer) -> None:
        await ws.send("~m~4~m~~h~7")
        server.received.append(str(await ws.recv()))
        await ws.wait_closed()

    with WsServer(handler) as server, WebSocketManager(_config(server.url)) as manager:
        assert manager.recv(include_heartbeats=True) == "~m~4~m~~h~7"
        assert manager.heartbeats_echoed == 1


def test_echo_heartbeats_off_passes_through() -> None:
    """With echo_heartbeats=False nothing is echoed and heartbeats are returned."""

    async def handler(ws: ServerConnection, server: WsServer) -> None:
        await ws.send("~m~4~m~~h~1")
        with contextlib.suppress(TimeoutError):
            server.received.append(str(await asyncio.wait_for(ws.recv(), 0.3)))
        await ws.send("done")
        await ws.wait_closed()

    with (
        WsServer(handler) as server,
        WebSocketManager(_config(server.url), echo_heartbeats=False) as manager,
    ):
        assert manager.recv() == "~m~4~m~~h~1"
        assert manager.recv() == "done"
        assert manager.heartbeats_echoed == 0
    assert server.received == []


def test_heartbeats_are_not_progress() -> None:
    """Heartbeats alone never satisfy recv(): it times out while echoing every one."""

    async def handler(ws: ServerConnection, server: WsServer) -> None:
        for n in range(1, 1000):
            await ws.send(encode([f"~h~{n}"]))
            await asyncio.sleep(0.05)

    with WsServer(handler) as server, WebSocketManager(_config(server.url)) as manager:
        with pytest.raises(TvTimeoutError):
            manager.recv(timeout=0.5)
        assert manager.heartbeats_echoed >= 3


def test_malformed_framing_passes_through() -> None:
    """A message whose framing is broken is returned as-is for the protocol layer to reject."""

    async def handler(ws: ServerConnection, server: WsServer) -> None:
        await ws.send("~m~99~m~~h~1")
        await ws.wait_closed()

    with WsServer(handler) as server, WebSocketManager(_config(server.url)) as manager:
        assert manager.recv() == "~m~99~m~~h~1"


# ---------------------------------------------------------------------------------------------
# Close codes and reconnect
# ---------------------------------------------------------------------------------------------


def _close_then_idle(payload: bytes | None) -> Script:
    def script(conn: socket.socket) -> None:
        conn.sendall(text("~m~2~m~{}"))
        if payload is None:
            conn.shutdown(socket.SHUT_RDWR)  # abrupt: no close frame
            return
        conn.sendall(frame(0x8, payload))
        with contextlib.suppress(OSError, EOFError):
            read_client_frame(conn)  # the client's close reply

    return script


@pytest.mark.parametrize(
    ("payload", "code"),
    [(b"", 1005), (None, 1006), (struct.pack("!H", 1000), 1000), (struct.pack("!H", 4001), 4001)],
    ids=["1005-no-status", "1006-abrupt", "1000-clean", "4001-private"],
)
def test_server_close_codes_then_reconnect(payload: bytes | None, code: int) -> None:
    """A server close surfaces as ConnectionClosed(code); ensure_connected() opens a new one."""
    events: list[ConnectionEvent] = []
    with RawServer(script=_close_then_idle(payload)) as server:
        manager = WebSocketManager(_config(server.url), on_event=events.append)
        manager.connect()
        assert manager.recv() == "~m~2~m~{}"
        with pytest.raises(ConnectionClosed) as info:
            manager.recv(timeout=5)
        assert info.value.code == code
        assert not info.value.by_client
        assert not manager.is_connected()
        assert manager.ensure_connected() is True
        assert manager.connection_id == 2
        assert manager.recv() == "~m~2~m~{}"
        assert manager.ensure_connected() is False
        manager.disconnect()
    stats = manager.stats()
    assert stats.connections_lost >= 1
    assert stats.reconnects >= 1
    assert len(server.requests) >= 2
    assert "lost" in [e.kind for e in events]


def test_client_answers_server_close_frame() -> None:
    """On a server close frame the client replies with a close frame echoing the code."""
    replies: list[tuple[int, bytes]] = []

    def script(conn: socket.socket) -> None:
        conn.sendall(frame(0x8, struct.pack("!H", 1001)))
        replies.append(read_client_frame(conn))

    with RawServer(script=script) as server:
        manager = WebSocketManager(_config(server.url))
        manager.connect()
        with pytest.raises(ConnectionClosed):
            manager.recv(timeout=5)
        deadline = time.monotonic() + 5
        while not replies and time.monotonic() < deadline:
            time.sleep(0.01)
        manager.disconnect()
    assert replies == [(0x8, struct.pack("!H", 1001))]


def test_graceful_disconnect_sends_close_1000() -> None:
    """disconnect() sends a close frame with code 1000 and the server sees it."""
    seen: list[tuple[int, bytes]] = []

    def script(conn: socket.socket) -> None:
        opcode, data = read_client_frame(conn)
        seen.append((opcode, data))
        conn.sendall(frame(0x8, data))

    with RawServer(script=script) as server:
        manager = WebSocketManager(_config(server.url))
        manager.connect()
        manager.disconnect()
    assert seen == [(0x8, struct.pack("!H", 1000))]


def test_invalid_utf8_fails_the_connection() -> None:
    """A text frame that is not UTF-8 closes the connection with 1007 (typed, not a crash)."""

    def script(conn: socket.socket) -> None:
        conn.sendall(frame(0x1, b"\xff\xfe"))
        with contextlib.suppress(OSError, EOFError):
            read_client_frame(conn)

    with RawServer(script=script) as server:
        manager = WebSocketManager(_config(server.url))
        manager.connect()
        with pytest.raises(ConnectionClosed) as info:
            manager.recv(timeout=5)
        assert info.value.code == 1007
        manager.disconnect()


def test_fragmented_message_is_reassembled() -> None:
    """A message split in continuation frames comes back as one message."""

    def script(conn: socket.socket) -> None:
        conn.sendall(struct.pack("!BB", 0x01, 3) + b"~m~")  # text, not final
        time.sleep(0.05)
        conn.sendall(struct.pack("!BB", 0x00, 3) + b"2~m")  # continuation
        conn.sendall(struct.pack("!BB", 0x80, 3) + b"~{}")  # final continuation
        read_client_frame(conn)  # wait for the client's close

    with RawServer(script=script) as server, WebSocketManager(_config(server.url)) as manager:
        assert manager.recv() == "~m~2~m~{}"


# ---------------------------------------------------------------------------------------------
# Reuse, age and health check
# ---------------------------------------------------------------------------------------------


def test_reuse_keeps_one_connection() -> None:
    """Successive connect() calls reuse the open connection."""
    with WsServer() as server:
        manager = WebSocketManager(_config(server.url))
        for _ in range(3):
            manager.connect()
            manager.send("x")
            assert manager.recv() == "x"
        manager.disconnect()
    assert server.connections == 1
    assert manager.stats().connects == 1


def test_no_reuse_opens_fresh_connections() -> None:
    """With reuse_connections=False every connect() opens a new connection."""
    with WsServer() as server:
        manager = WebSocketManager(_config(server.url, reuse_connections=False))
        manager.connect()
        manager.connect()
        assert manager.ensure_connected() is False  # keeps the live one
        manager.disconnect()
    assert server.connections == 2
    assert manager.connection_id == 2


def test_max_connection_age_replaces_old_connection() -> None:
    """Past max_connection_age (fake clock) the next connect() opens a new connection."""
    clock = FakeClock()
    events: list[ConnectionEvent] = []
    with WsServer() as server:
        manager = WebSocketManager(
            _config(server.url, max_connection_age=300.0, health_check_after=1000.0),
            clock=clock,
            sleep=clock.sleep,
            on_event=events.append,
        )
        manager.connect()
        clock.advance(299.0)
        manager.connect()
        assert manager.connection_id == 1
        assert manager.connection_age() == 299.0
        clock.advance(1.0)
        assert manager.ensure_connected() is True
        assert manager.connection_id == 2
        assert manager.connection_age() == 0.0
        manager.send("still works")
        assert manager.recv() == "still works"
        manager.disconnect()
    assert server.connections == 2
    assert "expired" in [e.kind for e in events]


def test_health_check_pings_idle_connection() -> None:
    """An idle reused connection is pinged before reuse and kept when the pong comes."""
    clock = FakeClock()
    with WsServer() as server:
        manager = WebSocketManager(
            _config(server.url, health_check_after=10.0), clock=clock, sleep=clock.sleep
        )
        manager.connect()
        clock.advance(5.0)
        manager.connect()
        assert manager.stats().health_checks == 0
        clock.advance(6.0)
        manager.connect()
        stats = manager.stats()
        assert stats.health_checks == 1
        assert stats.health_check_failures == 0
        assert manager.connection_id == 1
        manager.disconnect()
    assert server.connections == 1


def test_health_check_keeps_messages_that_arrive_meanwhile() -> None:
    """A data message read while waiting for the pong is kept for the next recv()."""

    async def handler(ws: ServerConnection, server: WsServer) -> None:
        await ws.send("queued")
        await ws.wait_closed()

    clock = FakeClock()
    with WsServer(handler) as server:
        manager = WebSocketManager(
            _config(server.url, health_check_after=1.0), clock=clock, sleep=clock.sleep
        )
        manager.connect()
        time.sleep(0.1)  # let "queued" arrive before the ping's pong
        clock.advance(2.0)
        manager.connect()
        assert manager.stats().health_checks == 1
        assert manager.recv(timeout=2) == "queued"
        manager.disconnect()


def test_dead_idle_connection_is_replaced() -> None:
    """A connection the server dropped while idle fails its health check and is replaced."""

    async def handler(ws: ServerConnection, server: WsServer) -> None:
        if server.connections == 1:
            ws.transport.abort()  # drop the TCP connection, no close frame
            return
        await echo_handler(ws, server)

    clock = FakeClock()
    with WsServer(handler) as server:
        manager = WebSocketManager(
            _config(server.url, health_check_after=1.0, ping_timeout=2.0),
            clock=clock,
            sleep=clock.sleep,
        )
        manager.connect()
        time.sleep(0.2)
        clock.advance(5.0)
        manager.connect()
        assert manager.connection_id == 2
        assert manager.stats().health_check_failures == 1
        manager.send("alive")
        assert manager.recv() == "alive"
        manager.disconnect()


# ---------------------------------------------------------------------------------------------
# Threads
# ---------------------------------------------------------------------------------------------


def test_threads_share_one_manager() -> None:
    """Eight sender threads and one reader share a connection; no message is lost or mangled."""
    with WsServer() as server, WebSocketManager(_config(server.url)) as manager:
        sent = {f"t{i}-m{j}-" + "p" * (j * 97 % 3000) for i in range(8) for j in range(40)}
        got: list[str] = []
        errors: list[BaseException] = []

        def reader() -> None:
            try:
                while len(got) < len(sent):
                    got.append(manager.recv(timeout=10))
            except BaseException as exc:
                errors.append(exc)

        def sender(i: int) -> None:
            try:
                for message in sorted(m for m in sent if m.startswith(f"t{i}-")):
                    manager.send(message)
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=reader)] + [
            threading.Thread(target=sender, args=(i,)) for i in range(8)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert errors == []
        assert sorted(got) == sorted(sent)
        assert sorted(server.received) == sorted(sent)


def test_disconnect_unblocks_a_blocked_recv() -> None:
    """disconnect() from another thread wakes a reader blocked in recv()."""
    with WsServer() as server:
        manager = WebSocketManager(_config(server.url))
        manager.connect()
        errors: list[BaseException] = []

        def reader() -> None:
            try:
                manager.recv(timeout=30)
            except BaseException as exc:
                errors.append(exc)

        t = threading.Thread(target=reader)
        t.start()
        time.sleep(0.2)
        manager.disconnect()
        t.join(10)
        assert not t.is_alive()
    assert len(errors) == 1
    assert isinstance(errors[0], ConnectionClosed)
    assert errors[0].by_client


def test_concurrent_connects_share_one_connection() -> None:
    """Eight threads calling connect() at once open a single connection."""
    with WsServer() as server:
        manager = WebSocketManager(_config(server.url))
        barrier = threading.Barrier(8)
        errors: list[BaseException] = []

        def run() -> None:
            try:
                barrier.wait()
                manager.connect()
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=run) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
        assert errors == []
        assert manager.is_connected()
        manager.disconnect()
    assert server.connections == 1


def test_concurrent_connects_share_a_failure() -> None:
    """When the shared connect attempt fails, waiting threads get a typed error too."""
    clock = FakeClock()
    with WsServer(reject=lambda n: (403, {})) as server:
        manager = WebSocketManager(_config(server.url), clock=clock, sleep=clock.sleep)
        barrier = threading.Barrier(4)
        errors: list[BaseException] = []

        def run() -> None:
            barrier.wait()
            try:
                manager.connect()
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=run) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
    assert len(errors) == 4
    assert all(isinstance(e, TvConnectionError) for e in errors)
    assert server.attempts <= 4


def test_on_event_errors_do_not_break_the_manager() -> None:
    """An exception in the on_event callback is logged, not raised."""

    def boom(event: ConnectionEvent) -> None:
        raise RuntimeError("user bug")

    with WsServer() as server, WebSocketManager(_config(server.url), on_event=boom) as manager:
        manager.send("ok")
        assert manager.recv() == "ok"


def test_repr_and_logs_do_not_leak_headers(caplog: pytest.LogCaptureFixture) -> None:
    """Cookie headers never appear in logs or the manager's repr."""
    caplog.set_level("DEBUG", logger="tvadapter")
    with WsServer() as server:
        config = _config(server.url + "?auth=QUERYSECRET", ws_headers={"Cookie": "s=SECRET"})
        with WebSocketManager(config) as manager:
            text_repr = repr(manager)
            manager.send("x")
            manager.recv()
    assert "SECRET" not in caplog.text
    assert "SECRET" not in text_repr
    assert "connected to" in caplog.text


# ---------------------------------------------------------------------------------------------
# Against the fake TradingView server (tvadapter.testing)
# ---------------------------------------------------------------------------------------------


def _tv_config(tv: FakeTradingView, **changes: Any) -> NetworkConfig:
    return _config(tv.ws_url, **changes)


def test_fake_tv_accepts_our_origin_and_says_hello() -> None:
    """The fake server (which 403s a missing, wrong or doubled Origin) accepts us; hello first."""
    with FakeTradingView(heartbeat_interval=5.0) as tv:
        with WebSocketManager(_tv_config(tv)) as manager:
            hello = manager.recv()
            assert '"session_id"' in hello
        log = tv.connection_log()
    assert [(r.status, r.origin) for r in log] == [(101, ORIGIN)]


def test_fake_tv_wrong_origin_is_forbidden_at_once() -> None:
    """A wrong Origin gets 403 from the fake server: HandshakeForbidden after one attempt."""
    clock = FakeClock()
    with FakeTradingView() as tv:
        manager = WebSocketManager(
            _tv_config(tv, origin="https://data.tradingview.com"), clock=clock, sleep=clock.sleep
        )
        with pytest.raises(HandshakeForbidden):
            manager.connect()
        assert tv.connection_attempts == 1
    assert clock.sleeps == []


def test_fake_tv_429_first_two_attempts() -> None:
    """RejectHandshake(429, retry_after=3) on attempts 1-2: success on 3 after waits >= 3 s."""
    clock = FakeClock()
    fault = RejectHandshake(status=429, retry_after=3, attempts=first(2))
    with FakeTradingView(faults=(fault,)) as tv:
        with WebSocketManager(_tv_config(tv), clock=clock, sleep=clock.sleep) as manager:
            assert '"session_id"' in manager.recv()
        assert tv.connection_attempts == 3
    assert len(clock.sleeps) == 2
    assert all(wait >= 3.0 for wait in clock.sleeps)


def test_fake_tv_heartbeats_answered_over_many_periods() -> None:
    """Held past many heartbeat periods, every heartbeat is echoed and the server keeps us."""
    with FakeTradingView(heartbeat_interval=0.1) as tv:
        with WebSocketManager(_tv_config(tv)) as manager:
            manager.recv()  # hello
            end = time.monotonic() + 1.0
            while time.monotonic() < end:
                with pytest.raises(TvTimeoutError):
                    manager.recv(timeout=0.25)  # heartbeats only: no data
            assert manager.is_connected()
            echoed = manager.heartbeats_echoed
        record = tv.connection_log()[0]
    assert echoed >= 5
    assert record.heartbeats_echoed >= 5
    assert record.close_code is None  # we closed first; the server never dropped us


def test_fake_tv_drops_a_client_that_does_not_echo() -> None:
    """Control: without echoes the fake server closes the connection (so the echo matters)."""
    with FakeTradingView(heartbeat_interval=0.1) as tv:
        with WebSocketManager(_tv_config(tv), echo_heartbeats=False) as manager:
            with pytest.raises(ConnectionClosed) as info:
                for _ in range(100):
                    manager.recv(timeout=1.0)
            assert not info.value.by_client
            assert manager.heartbeats_echoed == 0


@pytest.mark.parametrize("code", [1005, 1006])
def test_fake_tv_drop_then_reconnect(code: int) -> None:
    """A server drop (1005 / 1006) surfaces with its code; ensure_connected() reconnects."""
    with FakeTradingView(heartbeat_interval=5.0, close_timeout=0.2) as tv:
        with WebSocketManager(_tv_config(tv)) as manager:
            manager.recv()  # hello
            assert tv.drop_connections(code=code) == 1
            with pytest.raises(ConnectionClosed) as info:
                manager.recv(timeout=5)
            assert info.value.code == code
            assert manager.ensure_connected() is True
            assert '"session_id"' in manager.recv()
            assert manager.stats().connections_lost == 1
        assert tv.connection_attempts == 2


def test_fake_tv_stall_times_out_typed() -> None:
    """A server that sends nothing (not even the hello) gives TvTimeoutError, not a hang."""
    with FakeTradingView(faults=(Stall(hello=False),)) as tv:
        with WebSocketManager(_tv_config(tv)) as manager:
            with pytest.raises(TvTimeoutError):
                manager.recv(timeout=0.3)
            assert manager.is_connected()


def test_fake_tv_slow_drip_bytes_respects_recv_timeout() -> None:
    """A frame trickling in bytes cannot hold recv() much past its timeout."""
    fault = SlowDrip(chunk=16, delay=0.05, level="bytes")
    with FakeTradingView(faults=(fault,)) as tv:
        with WebSocketManager(_tv_config(tv)) as manager:
            start = time.monotonic()
            with pytest.raises(TvTimeoutError):
                manager.recv(timeout=0.3)
            assert time.monotonic() - start < 3.0
