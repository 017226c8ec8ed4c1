"""One accepted WebSocket connection of the fake server: reader, writer, heartbeats, faults.

Runs entirely on the server's event loop, driving a :class:`tvadapter.protocol.ServerSession`
(the same sans-I/O core as the client, in the server role): received messages go through
``receive_message`` / ``events_received`` (which also checks heartbeat echoes), outgoing ones
through ``send_hello`` / ``send_heartbeat`` / ``send_packets`` / ``data_to_send``.

The writer is the only task that sends data, so faults that cut, delay, replace or drip messages
act in one place, in order. Heartbeats are numbered when they are actually sent, so withheld
ones (a stall) never count as owed by the client.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from tvadapter.errors import ProtocolError
from tvadapter.protocol import ClientRequest, HeartbeatEcho, ServerSession, decode, encode
from tvadapter.protocol import server_messages as SM

from ._config import FakeServerConfig
from ._faults import ActiveFaults
from ._handler import SERIES_METHODS, Out, RequestHandler

__all__ = ["Connection", "ServerHooks"]

logger = logging.getLogger(__name__)


class ServerHooks(Protocol):
    """What a connection needs from its server (implemented by ``FakeTradingView``)."""

    def count(self, name: str, amount: int = 1) -> None:
        """Add ``amount`` to the counter ``name``."""

    def count_request(self, attempt: int, method: str) -> None:
        """Record one client request."""

    def connection_closed(self, attempt: int, code: int | None, reason: str) -> None:
        """Record how the connection ended."""

    def record_heartbeat(self, attempt: int, *, echoed: bool) -> None:
        """Record a heartbeat sent (``echoed=False``) or echoed."""

    def record_auth(self, attempt: int, auth: str) -> None:
        """Record the connection's auth state."""


@dataclass
class _Item:
    packets: list[tuple[str, str]]
    kind: str  # "hello", "heartbeat", "data"
    produced: float
    close: tuple[int, str] | None = None


class Connection:
    """Serves one client. Not thread-safe: every method runs on the server's event loop."""

    def __init__(
        self,
        ws: ServerConnection,
        *,
        attempt: int,
        config: FakeServerConfig,
        faults: ActiveFaults,
        handler: RequestHandler,
        hooks: ServerHooks,
        hello: dict[str, Any],
    ) -> None:
        self.ws = ws
        self.attempt = attempt
        self.config = config
        self.faults = faults
        self.handler = handler
        self.hooks = hooks
        self.loop = asyncio.get_running_loop()
        self.queue: asyncio.Queue[_Item] = asyncio.Queue()
        self.session = ServerSession()
        self.closing = False
        self.refused = False
        self.series_sent = 0
        self.stalled = False
        self.malformed_done = False
        self.drop_done = False
        self.recent: deque[float] = deque()
        self.rng = random.Random(attempt)
        if faults.huge is not None:
            handler.node_padding = faults.huge.size
        self._hello = hello

    # -- lifecycle ----------------------------------------------------------------------------
    async def run(self) -> None:
        """Serve until the connection closes."""
        tasks = [asyncio.create_task(self._writer(), name=f"fake-tv-writer-{self.attempt}")]
        tasks.append(asyncio.create_task(self._heartbeats(), name=f"fake-tv-hb-{self.attempt}"))
        if self.config.echo_timeout is not None:
            tasks.append(asyncio.create_task(self._watchdog(), name=f"fake-tv-wd-{self.attempt}"))
        self._put(_Item([], "hello", self.loop.time()))
        try:
            await self._reader()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self.session.close()
            if not self.closing:
                code = self.ws.close_code
                self.hooks.connection_closed(self.attempt, None, f"client closed ({code})")

    def enqueue(self, outs: list[Out]) -> None:
        """Queue the messages ``outs`` (packing, mixed heartbeats and ``close`` honoured)."""
        now = self.loop.time()
        for out in outs:
            packets = list(out.packets)
            if self.config.mix_heartbeats and any(m == "timescale_update" for m, _ in packets):
                # A placeholder: the heartbeat is numbered (and owed) when actually sent.
                at = next(i for i, (m, _) in enumerate(packets) if m == "timescale_update")
                packets.insert(at, ("heartbeat", ""))
            if self.config.packing == "split":
                for i, packet in enumerate(packets):
                    last = i == len(packets) - 1
                    self._put(_Item([packet], "data", now, out.close if last else None))
                if not packets and out.close is not None:
                    self._put(_Item([], "data", now, out.close))
            else:
                self._put(_Item(packets, "data", now, out.close))

    def _put(self, item: _Item) -> None:
        self.queue.put_nowait(item)

    # -- reading ------------------------------------------------------------------------------
    async def _reader(self) -> None:
        try:
            async for message in self.ws:
                self.hooks.count("messages_received")
                if self.closing or self.refused:
                    continue
                if isinstance(message, bytes):
                    self._refuse("wrong data")
                    continue
                try:
                    self.session.receive_message(message)
                except ProtocolError:
                    # Bad framing, a packet that is not JSON, or an echo of a heartbeat we
                    # never sent (or already saw echoed).
                    self._refuse("wrong data")
                    continue
                for event in self.session.events_received():
                    if not await self._on_event(event):
                        break
        except ConnectionClosed:
            pass

    async def _on_event(self, event: object) -> bool:
        if isinstance(event, HeartbeatEcho):
            self.hooks.record_heartbeat(self.attempt, echoed=True)
            return True
        if not isinstance(event, ClientRequest):  # pragma: no cover - the core yields no other
            return True
        self.hooks.count_request(self.attempt, event.method)
        rate = self.faults.rate
        if rate is not None:
            now = self.loop.time()
            self.recent.append(now)
            while self.recent and self.recent[0] <= now - rate.window:
                self.recent.popleft()
            if len(self.recent) > rate.max_requests:
                await self.close(rate.code, rate.reason)
                return False
        outs = self.handler.handle(event)
        self.hooks.record_auth(self.attempt, self.handler.auth)
        self.enqueue(outs)
        return not any(out.close for out in outs)

    def _refuse(self, text: str) -> None:
        """A client that breaks the protocol gets ``protocol_error`` and is closed."""
        self.refused = True
        self.hooks.count("clients_refused")
        out = Out(close=(1000, ""))
        out.add("protocol_error", SM.protocol_error(text))
        self.enqueue([out])

    # -- heartbeats ---------------------------------------------------------------------------
    async def _heartbeats(self) -> None:
        interval = self.config.heartbeat_interval
        while True:
            await asyncio.sleep(interval)
            self._put(_Item([("heartbeat", "")], "heartbeat", self.loop.time()))

    async def _watchdog(self) -> None:
        timeout = self.config.echo_timeout
        assert timeout is not None
        period = min(timeout / 4, 0.25)
        while True:
            await asyncio.sleep(period)
            oldest = self.session.oldest_unechoed_sent_at()
            if oldest is not None and not self.closing and self.loop.time() - oldest > timeout:
                self.hooks.count("missed_heartbeat_closes")
                await self.close(self.config.heartbeat_close_code, "heartbeat timeout")
                return

    # -- writing ------------------------------------------------------------------------------
    async def _writer(self) -> None:
        latency = self.faults.latency
        while True:
            item = await self.queue.get()
            if latency is not None:
                delay = latency.seconds + latency.jitter * self.rng.random()
                wait = item.produced + delay - self.loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
            if self.closing:
                return
            try:
                keep_going = await self._deliver(item)
            except ConnectionClosed:
                return
            if not keep_going:
                return
            if item.close is not None:
                await self.close(*item.close)
                return

    def _stall_due(self, kind: str) -> bool:
        stall = self.faults.stall
        if stall is None:
            return False
        if kind == "hello":
            return not stall.hello
        if not self.stalled:
            by_heartbeats = (
                stall.after_heartbeats is not None
                and self.session.heartbeats_sent >= stall.after_heartbeats
            )
            by_packets = stall.after is not None and self.series_sent >= stall.after
            if by_heartbeats or (by_packets and kind == "data"):
                self.stalled = True
        if not self.stalled:
            return False
        return not (kind == "heartbeat" and stall.heartbeats)

    async def _deliver(self, item: _Item) -> bool:
        """Send one queued message, applying the faults; False when the connection is done."""
        if self._stall_due(item.kind):
            self.hooks.count("messages_withheld")
            return True
        if item.kind == "hello":
            self.session.send_hello(self._hello)
            await self._flush()
            return True
        packets = item.packets
        malformed = self.faults.malformed
        if (
            malformed is not None
            and not self.malformed_done
            and item.kind == "data"
            and self.series_sent >= malformed.after
        ):
            self.malformed_done = True
            await self._send_malformed(malformed.kind)
            if malformed.close:
                await self.close(1006, "")
                return False
        cut = self._cut_index(packets)
        stall = self.faults.stall
        stall_cut = None
        if stall is not None and stall.after is not None and not self.stalled:
            stall_cut = self._nth_series(packets, stall.after)
        if cut is not None:
            if cut > 0:
                await self._send(packets[:cut], item)
            self.drop_done = True
            assert self.faults.drop is not None
            await self.close(self.faults.drop.code, self.faults.drop.reason)
            return False
        if stall_cut is not None:
            if stall_cut > 0:
                await self._send(packets[:stall_cut], item)
            self.stalled = True
            return True
        if packets:
            await self._send(packets, item)
        return True

    def _nth_series(self, packets: list[tuple[str, str]], target: int) -> int | None:
        """Index just past the packet that brings the series count to ``target`` (or None)."""
        count = self.series_sent
        if count >= target:
            return None
        for i, (method, _) in enumerate(packets):
            if method in SERIES_METHODS:
                count += 1
                if count >= target:
                    return i + 1 if i + 1 < len(packets) else None
        return None

    def _cut_index(self, packets: list[tuple[str, str]]) -> int | None:
        drop = self.faults.drop
        if drop is None or self.drop_done:
            return None
        count = self.series_sent
        for i, (method, _) in enumerate(packets):
            if method in SERIES_METHODS:
                if drop.after == 0 or count >= drop.after:
                    return i
                count += 1
                if count >= drop.after:
                    return i + 1
        return None

    async def _send(self, packets: list[tuple[str, str]], item: _Item) -> None:
        """Frame ``packets`` as one message through the session and send it."""
        payloads: list[str] = []
        now = self.loop.time()
        for method, payload in packets:
            if method == "heartbeat":
                self.session.send_heartbeat(now)
                (text,) = self.session.data_to_send()
                if len(packets) == 1:
                    await self._write(text)
                    self.hooks.record_heartbeat(self.attempt, echoed=False)
                    return
                payloads.extend(decode(text))
                self.hooks.record_heartbeat(self.attempt, echoed=False)
            else:
                payloads.append(payload)
                if method in SERIES_METHODS:
                    self.series_sent += 1
        self.session.send_packets(payloads)
        await self._flush()

    async def _flush(self) -> None:
        for text in self.session.data_to_send():
            await self._write(text)

    async def _write(self, text: str) -> None:
        drip = self.faults.drip
        if drip is not None and len(text) >= drip.min_size:
            if drip.level == "fragments":
                await self.ws.send(self._fragments(text, drip.chunk, drip.delay))
            else:
                await self._drip_bytes(text, drip.chunk, drip.delay)
        else:
            await self.ws.send(text)

    @staticmethod
    async def _fragments(text: str, chunk: int, delay: float) -> AsyncIterator[str]:
        for start in range(0, len(text), chunk):
            if start:
                await asyncio.sleep(delay)
            yield text[start : start + chunk]

    async def _drip_bytes(self, text: str, chunk: int, delay: float) -> None:
        """Write one unfragmented text frame to the socket ``chunk`` bytes at a time."""
        data = text.encode("utf-8")
        size = len(data)
        if size < 126:
            header = bytes([0x81, size])
        elif size < 65536:
            header = bytes([0x81, 126]) + size.to_bytes(2, "big")
        else:
            header = bytes([0x81, 127]) + size.to_bytes(8, "big")
        frame = header + data
        transport = self.ws.transport
        # No pong may slip into the middle of our frame: stop reading while dripping.
        transport.pause_reading()
        try:
            for start in range(0, len(frame), chunk):
                if transport.is_closing():
                    raise ConnectionClosed(None, None)
                transport.write(frame[start : start + chunk])
                await asyncio.sleep(delay)
        finally:
            if not transport.is_closing():
                transport.resume_reading()

    async def _send_malformed(self, kind: str) -> None:
        self.hooks.count("malformed_sent")
        payload = SM.du("cs_malformed", {})
        if kind == "invalid_utf8":
            await self.ws.send(b"~m~4~m~\xff\xfe\xfd\xfc", text=True)
            return
        if kind == "binary":
            await self.ws.send(encode([payload]).encode("utf-8"))
            return
        texts: dict[str, Callable[[], str]] = {
            "bad_length": lambda: f"~m~{len(payload) + 40}~m~{payload}",
            "no_prefix": lambda: payload,
            "non_ascii_digits": lambda: f"~m~\u0662\u0664~m~{payload}",
            "trailing_garbage": lambda: encode([payload]) + "garbage",
            "not_json": lambda: encode(['{"m":"du","p":[']),
            "bad_shape": lambda: encode(['{"m":"timescale_update","p":"oops"}']),
        }
        self.session.send_raw(texts[kind]())
        await self._flush()

    # -- closing ------------------------------------------------------------------------------
    async def close(self, code: int, reason: str = "") -> None:
        """Close the connection (1006: abort the TCP connection; 1005: close frame, no status)."""
        if self.closing:
            return
        self.closing = True
        self.hooks.connection_closed(self.attempt, code, reason)
        try:
            if code == 1006:
                self.ws.transport.abort()
            elif code == 1005:
                async with self.ws.send_context():
                    self.ws.protocol.send_close()
            else:
                await self.ws.close(code, reason)
        except ConnectionClosed:
            pass
        except Exception:  # pragma: no cover - defensive: a close must never crash the loop
            logger.debug("fake server: error while closing attempt %d", self.attempt, exc_info=True)
            self.ws.transport.abort()
