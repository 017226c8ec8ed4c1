"""A thin websocket-client wrapper: one open WebSocket, typed errors, per-call timeouts.

Theory of operation
-------------------
:class:`Transport` owns one ``websocket.WebSocket`` (websocket-client) after a successful
upgrade.  It adds three things the library lacks:

* **Typed errors.**  Every websocket-client, socket and SSL exception is converted at this
  boundary with ``raise ... from exc``: a refused upgrade becomes
  :class:`~tvadapter.errors.HandshakeRateLimited` (429, carrying ``Retry-After``),
  :class:`~tvadapter.errors.HandshakeForbidden` (403 and other 4xx that retrying cannot fix) or
  :class:`~tvadapter.errors.HandshakeRejected` (5xx...); timeouts become
  :class:`~tvadapter.errors.TvTimeoutError`; a lost or closed connection becomes
  :class:`~tvadapter.errors.ConnectionClosed` with its close code (1000, 1005, 1006...).
* **Per-call timeouts that do not interfere.**  A socket has *one* timeout, shared by the
  reading and the writing thread, so setting it per call races.  Instead the socket keeps a fixed
  backstop timeout, and each low-level read or write first waits for readiness with the
  caller's own deadline (``recv(timeout)`` and ``send(text, timeout)`` are whole-call
  deadlines).  A recv that times out leaves the connection usable (websocket-client's frame
  buffer resumes a half-read frame); a send that times out may have written half a frame, so
  it fails the connection.
* **Control frames and closing handled here.**  Pings are answered, pongs are matched to
  :meth:`Transport.ping`, close frames end the connection with their code, and :meth:`close`
  may be called from any thread: it sends a close frame, waits briefly for the server's reply
  and then shuts the socket down, which wakes a thread blocked in :meth:`recv`.

Threading: any number of threads may call :meth:`send` (serialized by websocket-client's send
lock); one thread at a time receives (:meth:`recv` and the reading part of :meth:`ping` take the
read lock); :meth:`close` is safe from any thread.  No lock of ours is held while waiting for the
network except the read lock, which only other readers wait for.
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import logging
import selectors
import socket
import ssl
import struct
import threading
import urllib.parse
from dataclasses import dataclass
from typing import Any

import websocket
from websocket import ABNF

from resilience import _clock

from ._http import parse_retry_after
from .errors import (
    ConfigurationError,
    ConnectionClosed,
    HandshakeForbidden,
    HandshakeRateLimited,
    HandshakeRejected,
    TvConnectionError,
    TvTimeoutError,
)

__all__ = ["IoCounters", "Transport", "classify_status", "safe_ws_url"]

logger = logging.getLogger(__name__)

# Close codes (RFC 6455 §7.4).
CLOSE_NORMAL = 1000
CLOSE_PROTOCOL_ERROR = 1002
CLOSE_NO_STATUS = 1005
CLOSE_ABNORMAL = 1006
CLOSE_INVALID_DATA = 1007

#: 4xx statuses that retrying can fix (timeout, too early, too many requests).
_RETRYABLE_4XX = frozenset({408, 425, 429})


def safe_ws_url(url: str) -> str:
    """``url`` without query, fragment or user-info: fit for logs and exception messages."""
    try:
        parts = urllib.parse.urlsplit(url)
        host = parts.hostname or ""
        if parts.port is not None:
            host = f"{host}:{parts.port}"
    except ValueError:
        return "<unparsable url>"
    return urllib.parse.urlunsplit((parts.scheme, host, parts.path, "", ""))


def classify_status(status: int, url: str, retry_after: float | None) -> HandshakeRejected:
    """The typed error for an upgrade answered with HTTP ``status``."""
    where = safe_ws_url(url)
    if status == 429:
        return HandshakeRateLimited(
            f"WebSocket upgrade to {where} refused with HTTP 429 (too many connections)",
            retry_after=retry_after,
        )
    if 400 <= status < 500 and status not in _RETRYABLE_4XX:
        hint = " (is the Origin right?)" if status == 403 else ""
        return HandshakeForbidden(
            f"WebSocket upgrade to {where} refused with HTTP {status}{hint}", status=status
        )
    error = HandshakeRejected(
        f"WebSocket upgrade to {where} refused with HTTP {status}", status=status
    )
    # 5xx / 408: retryable; keep the server's hint for the retry loop.
    error.retry_after = retry_after  # type: ignore[attr-defined]
    return error


class IoCounters:
    """Traffic counters shared by a manager and its successive transports.  Thread-safe."""

    __slots__ = (
        "_lock",
        "bytes_in",
        "bytes_out",
        "messages_in",
        "messages_out",
        "pings_sent",
        "pongs_received",
    )

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.bytes_in = 0
        self.bytes_out = 0
        self.messages_in = 0
        self.messages_out = 0
        self.pings_sent = 0
        self.pongs_received = 0

    def add_in(self, nbytes: int) -> None:
        with self._lock:
            self.bytes_in += nbytes
            self.messages_in += 1

    def add_out(self, nbytes: int) -> None:
        with self._lock:
            self.bytes_out += nbytes
            self.messages_out += 1

    def add_ping(self) -> None:
        with self._lock:
            self.pings_sent += 1

    def add_pong(self) -> None:
        with self._lock:
            self.pongs_received += 1


class _DeadlineWebSocket(websocket.WebSocket):
    """websocket-client's WebSocket whose low-level reads and writes honour per-call deadlines.

    ``recv_deadline`` is set by the one reader (under the transport's read lock); the send
    deadline is per thread, because sends come from several threads and websocket-client
    serializes them with its own lock.  Both are monotonic times; None means "backstop only".
    """

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.recv_deadline: float | None = None
        self.default_send_timeout = 5.0
        self._local = threading.local()
        self._read_selector: selectors.BaseSelector | None = None
        self._write_selector: selectors.BaseSelector | None = None

    def set_send_deadline(self, deadline: float | None) -> None:
        self._local.deadline = deadline

    def _wait(self, events: int, deadline: float) -> bool:
        sock = self.sock
        if sock is None:
            return True  # let the library raise its "closed" error
        if events == selectors.EVENT_READ:
            if isinstance(sock, ssl.SSLSocket) and sock.pending():
                return True
            if self._read_selector is None:
                self._read_selector = selectors.DefaultSelector()
                self._read_selector.register(sock, selectors.EVENT_READ)
            selector = self._read_selector
        else:
            if self._write_selector is None:
                self._write_selector = selectors.DefaultSelector()
                self._write_selector.register(sock, selectors.EVENT_WRITE)
            selector = self._write_selector
        remaining = deadline - _clock.monotonic()
        if remaining <= 0:
            return False
        return bool(selector.select(remaining))

    def _recv(self, bufsize: int) -> bytes:
        deadline = self.recv_deadline
        if deadline is not None and not self._wait(selectors.EVENT_READ, deadline):
            raise websocket.WebSocketTimeoutException("timed out waiting for data")
        data: bytes = super()._recv(bufsize)  # type: ignore[no-untyped-call]
        return data

    def _send(self, data: str | bytes) -> int:
        deadline: float | None = getattr(self._local, "deadline", None)
        if deadline is None:
            deadline = _clock.monotonic() + self.default_send_timeout
        if not self._wait(selectors.EVENT_WRITE, deadline):
            raise websocket.WebSocketTimeoutException("timed out sending")
        return super()._send(data)

    def close_selectors(self) -> None:
        for selector in (self._read_selector, self._write_selector):
            if selector is not None:
                with contextlib.suppress(OSError, ValueError, KeyError):
                    selector.close()
        self._read_selector = self._write_selector = None


@dataclass(frozen=True)
class _Closed:
    code: int | None
    reason: str
    by_client: bool


class Transport:
    """One open WebSocket connection (see the module docstring for its theory of operation).

    Thread-safety: ``send`` from any threads; one reader at a time for ``recv``/``ping``
    (others wait for the read lock up to their timeout); ``close`` from any thread, idempotent.
    """

    def __init__(
        self, ws: _DeadlineWebSocket, *, url: str, counters: IoCounters | None = None
    ) -> None:
        self._ws = ws
        self._url = url
        self._where = safe_ws_url(url)
        self.counters = counters if counters is not None else IoCounters()
        # Re-entrant: the reader itself may shut the connection down (close frame, bad frame).
        self._read_lock = threading.RLock()
        self._state_lock = threading.Lock()
        self._pong = threading.Condition(self._state_lock)
        self._pongs: set[bytes] = set()
        self._ping_ids = itertools.count(1)
        self._pending: collections.deque[str] = collections.deque()
        self._closed: _Closed | None = None
        self._close_sent = False

    # -- opening ----------------------------------------------------------------------------

    @classmethod
    def connect(
        cls,
        url: str,
        *,
        origin: str,
        headers: list[str] | None = None,
        connect_timeout: float = 10.0,
        send_timeout: float = 5.0,
        counters: IoCounters | None = None,
    ) -> Transport:
        """Open a WebSocket to ``url`` sending exactly one ``Origin: origin`` header.

        ``headers`` are extra ``"Name: value"`` lines (no Origin: that is ``origin``'s job).
        ``connect_timeout`` bounds TCP connect, TLS and the upgrade; ``send_timeout`` becomes the
        default per-message send deadline and the socket's backstop timeout.
        Raises HandshakeRateLimited / HandshakeForbidden / HandshakeRejected, TvTimeoutError,
        TvConnectionError or ConfigurationError (bad TLS certificate, unusable URL).
        """
        lines = list(headers or ())
        if any(line.split(":", 1)[0].strip().lower() == "origin" for line in lines):
            raise ConfigurationError("headers must not contain Origin: pass origin= instead")
        ws = _DeadlineWebSocket(skip_utf8_validation=True, enable_multithread=True)
        ws.default_send_timeout = send_timeout
        ws.settimeout(connect_timeout)
        where = safe_ws_url(url)
        try:
            ws.connect(  # type: ignore[no-untyped-call]
                url, origin=origin, header=lines, suppress_origin=False
            )
        except websocket.WebSocketBadStatusException as exc:
            resp_headers = {str(k).lower(): str(v) for k, v in (exc.resp_headers or {}).items()}
            retry_after = parse_retry_after(resp_headers.get("retry-after"))
            raise classify_status(exc.status_code, url, retry_after) from exc
        except (websocket.WebSocketTimeoutException, TimeoutError) as exc:
            raise TvTimeoutError(
                f"WebSocket connect to {where} timed out after {connect_timeout:g} s"
            ) from exc
        except ssl.SSLCertVerificationError as exc:
            raise ConfigurationError(
                f"TLS certificate verification failed for {where}: {exc.verify_message}"
            ) from exc
        except websocket.WebSocketAddressException as exc:
            raise TvConnectionError(f"cannot resolve the host of {where}") from exc
        except (websocket.WebSocketException, OSError) as exc:
            raise TvConnectionError(
                f"WebSocket connect to {where} failed: {type(exc).__name__}: {_short(exc)}"
            ) from exc
        except ValueError as exc:  # websocket-client's URL parser
            raise ConfigurationError(f"unusable WebSocket URL {where}: {exc}") from exc
        # After the upgrade the socket timeout is only a backstop for one low-level call
        # that selectors reported ready (e.g. the rest of a TLS record); see the docstring.
        ws.settimeout(max(send_timeout, connect_timeout))
        return cls(ws, url=url, counters=counters)

    # -- state -------------------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        """True once the connection is closed or broken (cheap; no network traffic)."""
        return self._closed is not None

    @property
    def close_code(self) -> int | None:
        closed = self._closed
        return None if closed is None else closed.code

    def _closed_error(self) -> ConnectionClosed:
        closed = self._closed
        assert closed is not None
        if closed.by_client:
            text = f"connection to {self._where} was closed by the client"
        else:
            text = f"connection to {self._where} closed (code {closed.code})"
            if closed.reason:
                text += f": {closed.reason}"
        return ConnectionClosed(
            text, code=closed.code, reason=closed.reason, by_client=closed.by_client
        )

    def _mark_closed(self, code: int | None, reason: str = "", *, by_client: bool = False) -> bool:
        """Record the end of the connection; False if it was already recorded."""
        with self._state_lock:
            if self._closed is not None:
                return False
            self._closed = _Closed(code, reason, by_client)
            self._pong.notify_all()
            return True

    # -- sending -----------------------------------------------------------------------------

    def send(self, text: str, timeout: float) -> int:
        """Send one text message within ``timeout`` seconds; returns its size in bytes.

        A timeout or error fails the connection (a frame may be half written).
        """
        if self._closed is not None:
            raise self._closed_error()
        data = text.encode("utf-8")
        self._send_frame(data, ABNF.OPCODE_TEXT, timeout)
        self.counters.add_out(len(data))
        return len(data)

    def _send_frame(self, data: bytes, opcode: int, timeout: float) -> None:
        ws = self._ws
        ws.set_send_deadline(_clock.monotonic() + timeout)
        try:
            ws.send(data, opcode)
        except (websocket.WebSocketTimeoutException, TimeoutError) as exc:
            # Part of a frame may be on the wire: the stream is unusable.
            if self._mark_closed(CLOSE_ABNORMAL, "send timed out"):
                self._shutdown()
            raise TvTimeoutError(f"sending to {self._where} timed out after {timeout:g} s") from exc
        except (websocket.WebSocketException, OSError) as exc:
            if self._mark_closed(CLOSE_ABNORMAL, _short(exc)):
                self._shutdown()
            raise self._closed_error() from exc
        finally:
            ws.set_send_deadline(None)

    # -- receiving ---------------------------------------------------------------------------

    def recv(self, timeout: float) -> str:
        """The next whole text message, waiting at most ``timeout`` seconds in all.

        Raises TvTimeoutError (the connection stays usable) or ConnectionClosed.
        """
        deadline = _clock.monotonic() + timeout
        if not self._read_lock.acquire(timeout=max(timeout, 0.0)):
            raise TvTimeoutError(f"no message within {timeout:g} s (another thread was receiving)")
        try:
            if self._pending:
                return self._pending.popleft()
            while True:
                message = self._read_frame(deadline, timeout)
                if message is not None:
                    return message
        finally:
            self._read_lock.release()

    def _read_frame(self, deadline: float, timeout: float) -> str | None:
        """Read one frame (caller holds the read lock): a whole message, or None."""
        if self._closed is not None:
            raise self._closed_error()
        ws = self._ws
        ws.recv_deadline = deadline
        try:
            frame = ws.recv_frame()  # type: ignore[no-untyped-call]
            opcode = frame.opcode
            if opcode in (ABNF.OPCODE_TEXT, ABNF.OPCODE_BINARY, ABNF.OPCODE_CONT):
                ws.cont_frame.validate(frame)
                ws.cont_frame.add(frame)
                if not ws.cont_frame.is_fire(frame):
                    return None
                _kind, whole = ws.cont_frame.extract(frame)
                data: bytes = whole.data
                self.counters.add_in(len(data))
                return data.decode("utf-8")
        except (websocket.WebSocketTimeoutException, TimeoutError) as exc:
            if self._closed is not None:
                raise self._closed_error() from exc
            raise TvTimeoutError(f"no message from {self._where} within {timeout:g} s") from exc
        except UnicodeDecodeError as exc:
            self._fail(CLOSE_INVALID_DATA, "invalid UTF-8 in a text message")
            raise self._closed_error() from exc
        except (websocket.WebSocketProtocolException, websocket.WebSocketPayloadException) as exc:
            self._fail(CLOSE_PROTOCOL_ERROR, f"WebSocket protocol error: {_short(exc)}")
            raise self._closed_error() from exc
        except (websocket.WebSocketException, OSError) as exc:
            # EOF without a close frame, reset, or our own shutdown() from close().
            if self._mark_closed(CLOSE_ABNORMAL, "connection lost"):
                self._shutdown()
            raise self._closed_error() from exc
        finally:
            ws.recv_deadline = None
        self._control_frame(frame)
        return None

    def _control_frame(self, frame: Any) -> None:
        opcode = frame.opcode
        if opcode == ABNF.OPCODE_PING:
            self._send_frame(bytes(frame.data), ABNF.OPCODE_PONG, self._ws.default_send_timeout)
        elif opcode == ABNF.OPCODE_PONG:
            self.counters.add_pong()
            with self._pong:
                self._pongs.add(bytes(frame.data))
                self._pong.notify_all()
        elif opcode == ABNF.OPCODE_CLOSE:
            code, reason = _parse_close(bytes(frame.data))
            by_client = self._close_sent
            if not by_client:
                # Answer the close handshake, then let the server close the TCP connection.
                self._send_close(code if code not in (None, CLOSE_NO_STATUS) else CLOSE_NORMAL)
            self._mark_closed(code, reason, by_client=by_client)
            self._shutdown()
            raise self._closed_error()

    # -- ping (health check) ---------------------------------------------------------------

    def ping(self, timeout: float) -> float:
        """Send a WebSocket ping and wait for its pong; returns the round trip in seconds.

        Works whether or not another thread is receiving: if nobody holds the read lock this
        call reads frames itself (keeping any text message for the next :meth:`recv`),
        otherwise the reader delivers the pong.  Raises TvTimeoutError or ConnectionClosed.
        """
        start = _clock.monotonic()
        deadline = start + timeout
        payload = f"tvadapter-{next(self._ping_ids)}".encode()
        if self._closed is not None:
            raise self._closed_error()
        self._send_frame(payload, ABNF.OPCODE_PING, timeout)
        self.counters.add_ping()
        while True:
            with self._pong:
                if payload in self._pongs:
                    self._pongs.discard(payload)
                    return _clock.monotonic() - start
                if self._closed is not None:
                    raise self._closed_error()
            remaining = deadline - _clock.monotonic()
            if remaining <= 0:
                raise TvTimeoutError(f"no pong from {self._where} within {timeout:g} s")
            if self._read_lock.acquire(blocking=False):
                try:
                    message = self._read_frame(deadline, timeout)
                    if message is not None:
                        self._pending.append(message)
                finally:
                    self._read_lock.release()
            else:
                with self._pong:
                    if payload not in self._pongs and self._closed is None:
                        self._pong.wait(min(remaining, 0.05))

    # -- closing -----------------------------------------------------------------------------

    def _send_close(self, code: int) -> bool:
        """Send a close frame once (best effort); True if it went out now."""
        with self._state_lock:
            if self._close_sent:
                return False
            self._close_sent = True
        if code in (CLOSE_NO_STATUS, CLOSE_ABNORMAL):  # reserved: never sent on the wire
            code = CLOSE_NORMAL
        ws = self._ws
        ws.set_send_deadline(_clock.monotonic() + min(ws.default_send_timeout, 2.0))
        try:
            ws.send(struct.pack("!H", code), ABNF.OPCODE_CLOSE)
        except (websocket.WebSocketException, OSError):
            return False
        finally:
            ws.set_send_deadline(None)
        return True

    def close(self, timeout: float = 2.0, code: int = CLOSE_NORMAL) -> None:
        """Close gracefully: send a close frame, wait up to ``timeout`` s for the reply, shut down.

        Safe from any thread and idempotent; wakes a thread blocked in :meth:`recv` (it gets
        ConnectionClosed with ``by_client=True``).
        """
        if self._closed is None and self._send_close(code):
            deadline = _clock.monotonic() + timeout
            if self._read_lock.acquire(blocking=False):
                # Nobody is reading: read (and drop) frames until the server's close reply.
                try:
                    while self._closed is None:
                        try:
                            self._read_frame(deadline, timeout)
                        except (TvTimeoutError, ConnectionClosed):
                            break
                finally:
                    self._read_lock.release()
            elif self._read_lock.acquire(timeout=max(timeout, 0.0)):
                # The blocked reader saw the server's close reply and left.
                self._read_lock.release()
        self._mark_closed(code, "", by_client=True)
        self._shutdown()

    def abort(self) -> None:
        """Drop the connection at once (no close handshake); wakes a blocked reader."""
        self._mark_closed(CLOSE_ABNORMAL, "aborted", by_client=True)
        self._shutdown()

    def _fail(self, code: int, reason: str) -> None:
        """Fail the connection after a protocol problem: close frame, then shut down."""
        if self._mark_closed(code, reason):
            self._send_close(code)
            self._shutdown()

    def _shutdown(self) -> None:
        """Shut the socket down (waking blocked threads); close it once nobody reads."""
        ws = self._ws
        sock = ws.sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        if self._read_lock.acquire(timeout=1.0):
            try:
                with ws.lock:  # no send is using the write selector or the socket now
                    ws.close_selectors()
                    ws.shutdown()  # type: ignore[no-untyped-call]
            finally:
                self._read_lock.release()
        # else: a stuck reader; it sees the shut-down socket, and the library closes it then.

    def __repr__(self) -> str:
        state = "open" if self._closed is None else f"closed({self._closed.code})"
        return f"<Transport {self._where} {state}>"


def _parse_close(data: bytes) -> tuple[int, str]:
    if len(data) < 2:
        return CLOSE_NO_STATUS, ""
    code = int(struct.unpack("!H", data[:2])[0])
    reason = data[2:].decode("utf-8", errors="replace")
    return code, reason


def _short(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."
