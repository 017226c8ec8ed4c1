"""WebSocketManager: one TradingView WebSocket connection, kept healthy and shared by threads.

What it does
------------
* :meth:`WebSocketManager.connect` opens the connection with exactly one correct Origin
  (``config.origin``), retrying failed attempts with :func:`resilience.retry.retrying` and
  exponential backoff with jitter (:class:`resilience.backoff.Backoff` from
  ``base_retry_delay`` doubling to ``max_retry_delay``, ``equal`` jitter: every wait is at
  least half the exponential value, so a refused client never hammers the server) up to
  ``config.max_retries`` retries and within a deadline (``config.request_deadline`` unless
  given).  HTTP 429 is retried after at least its ``Retry-After``; 403 and other permanent
  refusals (:class:`~tvadapter.errors.HandshakeForbidden`, a ConfigurationError) fail at once.
* Reuse: with ``config.reuse_connections`` a later :meth:`connect` keeps the open connection
  while it is younger than ``config.max_connection_age``; if nothing was received on it for
  ``config.health_check_after`` seconds it is first checked with a WebSocket ping (pong within
  ``config.ping_timeout``).  An old, dead or unhealthy connection is closed and replaced.
  Without reuse, every :meth:`connect` opens a fresh connection.
* :meth:`ensure_connected` is the automatic reconnect: it opens a new connection only when
  there is none usable (lost, closed, too old, failed health check) and returns True when it
  did, because the caller must then resend its whole setup (token, sessions, series: a new
  TradingView connection knows nothing of the old one).  :attr:`connection_id` changes with
  each new connection.
* :meth:`recv` returns whole text messages.  It recognises TradingView heartbeats (``~h~N``
  packets, wherever they appear in a message) and echoes each one at once and exactly
  (PROTOCOL.md §5), counting them in :attr:`heartbeats_echoed`.  The manager owns the
  heartbeats: it removes them from what it returns, so a protocol session (``ClientSession``)
  fed with :meth:`recv`'s output never sees one and never echoes one twice.  A message made
  only of heartbeats is swallowed, so ``recv(timeout)`` measures time without *data* (a
  heartbeat is not progress); a mixed message comes back with its data packets only.
  ``recv(include_heartbeats=True)`` returns every message exactly as received (already
  echoed), and ``WebSocketManager(echo_heartbeats=False)`` turns all of this off for a caller
  that echoes heartbeats itself.
* :meth:`send` and :meth:`recv` raise typed errors, never return None:
  :class:`~tvadapter.errors.TvTimeoutError` (a recv timeout leaves the connection usable),
  :class:`~tvadapter.errors.ConnectionClosed` (with ``code``: 1000, 1005, 1006...;
  ``by_client`` when :meth:`disconnect` or a replacement closed it), and
  :class:`~tvadapter.errors.TvConnectionError` when not connected.  Nothing reconnects behind
  the caller's back in the middle of a request.

Threads
-------
One manager (one connection) may be shared by several threads.  :meth:`send` may be called
from any thread (messages are serialized, never interleaved).  :meth:`recv` is for one reader
at a time -- higher layers run a single reader thread that routes messages -- and a second
concurrent reader waits for the first, up to its own timeout.  :meth:`connect`,
:meth:`ensure_connected` and :meth:`disconnect` may be called from any thread: concurrent
connects share one attempt (single flight), and :meth:`disconnect` wakes a thread blocked in
:meth:`recv` (it gets ConnectionClosed with ``by_client=True``).  A recv blocked on a connection
that a connect replaces (too old, unhealthy) gets the same error; the reader then simply calls
:meth:`recv` again.  No lock is held while waiting for the network, except inside the
transport's read lock (only readers wait for it) and during a connect, where other
connecting threads wait on a condition rather than a lock.  ``on_event`` callbacks run in the
thread that caused the event, with no lock held; their exceptions are logged and ignored.

Logging: ``tvadapter.connection`` logs connects, retries, closes and losses (the URL without
its query; never headers, cookies or tokens).
"""

from __future__ import annotations

import logging
import math
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType

from resilience import _clock
from resilience.retry import AttemptRecord, retrying
from resilience.timeout import Deadline

from ._transport import IoCounters, Transport, safe_ws_url
from .config import NetworkConfig
from .errors import (
    ConfigurationError,
    ConnectionClosed,
    FramingError,
    HandshakeForbidden,
    TvConnectionError,
    TvError,
    TvTimeoutError,
)
from .protocol import decode, encode

__all__ = ["ConnectionEvent", "ConnectionStats", "WebSocketManager"]

logger = logging.getLogger(__name__)

#: How long disconnect() waits for the server's close reply before shutting the socket down.
DEFAULT_CLOSE_TIMEOUT = 2.0


@dataclass(frozen=True, slots=True)
class ConnectionEvent:
    """A network event, passed to ``on_event``.

    ``kind`` is one of ``"connecting"`` (an attempt starts), ``"connected"``,
    ``"connect_failed"`` (one attempt failed: ``error``), ``"retry"`` (waiting ``delay`` s before
    attempt ``attempt``), ``"gave_up"`` (connect failed for good: ``error``),
    ``"health_check_failed"``, ``"expired"`` (retired for age), ``"lost"`` (closed by the server
    or the network: ``error``) and ``"disconnected"`` (closed by us).
    """

    kind: str
    connection_id: int
    attempt: int = 0
    delay: float | None = None
    error: BaseException | None = None


@dataclass(frozen=True, slots=True)
class ConnectionStats:
    """A snapshot of a manager's counters (for metrics)."""

    connects: int
    reconnects: int
    connect_attempts: int
    connect_failures: int
    disconnects: int
    connections_lost: int
    health_checks: int
    health_check_failures: int
    heartbeats_echoed: int
    messages_in: int
    messages_out: int
    bytes_in: int
    bytes_out: int
    connected: bool
    connection_id: int
    connection_age: float | None


def _retryable(exc: BaseException) -> bool:
    """Connect failures worth another attempt: not 403-like refusals, bad config, or our close."""
    if isinstance(exc, (HandshakeForbidden, ConfigurationError)):
        return False
    if isinstance(exc, ConnectionClosed) and exc.by_client:
        return False
    return isinstance(exc, (TvConnectionError, TvTimeoutError))


def _check_timeout(name: str, value: float | None, default: float) -> float:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigurationError(f"{name} must be a number of seconds, got {type(value).__name__}")
    if not (math.isfinite(value) and value > 0):
        raise ConfigurationError(f"{name} must be finite and > 0 seconds, got {value!r}")
    return float(value)


class WebSocketManager:
    """One TradingView WebSocket connection with retry, reuse, health checks and heartbeats.

    See the module docstring for the full behaviour.  Thread-safety: ``send`` from any thread;
    ``recv`` from one reader thread at a time; ``connect``/``ensure_connected``/``disconnect``
    from any thread; counters and :meth:`stats` from any thread.

    ``clock`` (monotonic seconds) and ``sleep`` drive connection age, idle time, backoff waits
    and the connect deadline (tests pass a :class:`resilience.testing.FakeClock`); socket waits
    always use real time.  ``rng`` seeds the backoff jitter.
    """

    def __init__(
        self,
        config: NetworkConfig | None = None,
        *,
        clock: Callable[[], float] = _clock.monotonic,
        sleep: Callable[[float], object] = _clock.sleep,
        rng: random.Random | None = None,
        on_event: Callable[[ConnectionEvent], object] | None = None,
        echo_heartbeats: bool = True,
    ) -> None:
        if config is None:
            config = NetworkConfig()
        if not isinstance(config, NetworkConfig):
            raise TypeError(f"config must be a NetworkConfig, got {type(config).__name__}")
        self._config = config
        self._clock = clock
        self._sleep = sleep
        self._rng = rng
        self._on_event = on_event
        self._echo_heartbeats = bool(echo_heartbeats)
        self._where = safe_ws_url(config.ws_url)
        self._backoff = config.retry_backoff("equal")
        self._io = IoCounters()

        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._transport: Transport | None = None
        self._connected_at = 0.0
        self._last_inbound = 0.0
        self._connection_id = 0
        self._connecting = False
        self._connect_seq = 0  # number of connect operations started
        self._connect_failure: tuple[int, BaseException] | None = None
        self._epoch = 0  # bumped by disconnect(): stale connects must not install
        self._interrupt = threading.Event()  # wakes real-time backoff sleeps on disconnect

        self._counts_lock = threading.Lock()
        self._connects = 0
        self._connect_attempts = 0
        self._connect_failures = 0
        self._disconnects = 0
        self._lost = 0
        self._health_checks = 0
        self._health_check_failures = 0
        self._heartbeats_echoed = 0
        self._loss_reported: Transport | None = None

    # -- properties ----------

    @property
    def config(self) -> NetworkConfig:
        """The (immutable) configuration."""
        return self._config

    @property
    def connection_id(self) -> int:
        """1 for the first connection, +1 for each new one; 0 before any."""
        return self._connection_id

    @property
    def heartbeats_echoed(self) -> int:
        """How many heartbeat packets :meth:`recv` has echoed so far."""
        return self._heartbeats_echoed

    def is_connected(self) -> bool:
        """True if a connection is open (cheap: no network traffic, unlike a ping).

        A drop is noticed by the next :meth:`recv`/:meth:`send` or by the health check that
        :meth:`connect`/:meth:`ensure_connected` run on an idle connection.
        """
        transport = self._transport
        return transport is not None and not transport.closed

    def connection_age(self) -> float | None:
        """Seconds since the current connection opened (per ``clock``), or None."""
        if self._transport is None:
            return None
        return self._clock() - self._connected_at

    def stats(self) -> ConnectionStats:
        """A consistent-enough snapshot of the counters."""
        io = self._io
        with self._counts_lock:
            connects = self._connects
            return ConnectionStats(
                connects=connects,
                reconnects=max(0, connects - 1),
                connect_attempts=self._connect_attempts,
                connect_failures=self._connect_failures,
                disconnects=self._disconnects,
                connections_lost=self._lost,
                health_checks=self._health_checks,
                health_check_failures=self._health_check_failures,
                heartbeats_echoed=self._heartbeats_echoed,
                messages_in=io.messages_in,
                messages_out=io.messages_out,
                bytes_in=io.bytes_in,
                bytes_out=io.bytes_out,
                connected=self.is_connected(),
                connection_id=self._connection_id,
                connection_age=self.connection_age(),
            )

    # -- connecting ----------

    def connect(self, deadline: float | None = None) -> bool:
        """Make sure a usable connection is open; returns True (failures raise).

        Reuses the open connection when ``config.reuse_connections`` allows (see the module
        docstring), else opens a new one with retries.  ``deadline`` is the time budget in
        seconds for the whole operation (default ``config.request_deadline``).  Raises
        HandshakeForbidden (403...: no retry), HandshakeRateLimited, HandshakeRejected,
        TvTimeoutError or TvConnectionError after the last attempt.
        """
        self._establish(deadline, fresh=not self._config.reuse_connections)
        return True

    def ensure_connected(self, deadline: float | None = None) -> bool:
        """Reconnect if needed; True when a *new* connection was opened (redo your setup).

        Keeps a live connection (even with ``reuse_connections=False``), replaces a lost,
        closed, too old or unhealthy one.
        """
        return self._establish(deadline, fresh=False)

    def _establish(self, deadline: float | None, *, fresh: bool) -> bool:
        budget = Deadline(
            self._config.request_deadline if deadline is None else deadline, clock=self._clock
        )
        while True:
            with self._cond:
                if self._connecting:
                    seq = self._connect_seq
                    self._cond.wait_for(lambda: not self._connecting)
                    failure = self._connect_failure
                    if failure is not None and failure[0] == seq:
                        raise TvConnectionError(
                            f"connecting to {self._where} failed in another thread: {failure[1]}"
                        ) from failure[1]
                    if not fresh:
                        continue  # re-evaluate the connection the other thread left
                    fresh = False  # another thread just made a fresh one: share it
                    continue
                old = self._transport
                action = self._decide(old, fresh)
                if action == "keep":
                    return False
                self._connecting = True
                self._connect_seq += 1
                seq = self._connect_seq
                epoch = self._epoch
            try:
                opened = self._replace(old, action, budget, epoch)
            except BaseException as exc:
                with self._cond:
                    self._connect_failure = (seq, exc)
                    self._connecting = False
                    self._cond.notify_all()
                raise
            with self._cond:
                self._connect_failure = None
                self._connecting = False
                self._cond.notify_all()
            return opened

    def _decide(self, transport: Transport | None, fresh: bool) -> str:
        """What to do with the current connection (caller holds the lock)."""
        if transport is None or transport.closed:
            return "open"
        if fresh:
            return "replace"
        if self._clock() - self._connected_at >= self._config.max_connection_age:
            return "expired"
        if self._clock() - self._last_inbound >= self._config.health_check_after:
            return "check"
        return "keep"

    def _replace(self, old: Transport | None, action: str, budget: Deadline, epoch: int) -> bool:
        """Carry out ``action`` outside the lock; True if a new connection was installed."""
        if old is not None and action == "check":
            if self._health_check(old):
                return False
            action = "unhealthy"
        if old is not None and not old.closed:
            if action == "expired":
                logger.info(
                    "connection %d to %s is %.0f s old: replacing it",
                    self._connection_id,
                    self._where,
                    self._clock() - self._connected_at,
                )
                self._emit("expired", self._connection_id)
            old.close(timeout=min(DEFAULT_CLOSE_TIMEOUT, self._config.send_timeout))
        new = self._open_with_retry(budget, epoch)
        with self._cond:
            if self._epoch != epoch:
                stale = True
            else:
                stale = False
                self._transport = new
                self._connection_id += 1
                now = self._clock()
                self._connected_at = now
                self._last_inbound = now
                connection_id = self._connection_id
        if stale:
            new.close(timeout=0.5)
            raise ConnectionClosed(
                "disconnect() was called while connecting", code=1000, by_client=True
            )
        with self._counts_lock:
            self._connects += 1
        logger.info("connected to %s (connection %d)", self._where, connection_id)
        self._emit("connected", connection_id)
        return True

    def _health_check(self, transport: Transport) -> bool:
        with self._counts_lock:
            self._health_checks += 1
        try:
            rtt = transport.ping(self._config.ping_timeout)
        except TvError as exc:
            with self._counts_lock:
                self._health_check_failures += 1
            logger.warning(
                "health check of connection %d to %s failed: %s",
                self._connection_id,
                self._where,
                exc,
            )
            self._emit("health_check_failed", self._connection_id, error=exc)
            return False
        self._last_inbound = self._clock()
        logger.debug("health check ok (%.1f ms)", rtt * 1000)
        return True

    def _open_with_retry(self, budget: Deadline, epoch: int) -> Transport:
        """Open a transport, retried by :func:`resilience.retry.retrying` (see the module doc)."""
        config = self._config
        attempts = config.max_retries + 1
        interrupt = self._interrupt

        def before_sleep(record: AttemptRecord) -> None:
            logger.info(
                "retrying connect to %s in %.2f s (attempt %d of %d)",
                self._where,
                record.next_wait,
                record.number + 1,
                attempts,
            )
            self._emit(
                "retry", self._connection_id, attempt=record.number + 1, delay=record.next_wait
            )

        def on_giveup(record: AttemptRecord) -> None:
            logger.warning(
                "giving up connecting to %s after %d attempt(s) (%s)",
                self._where,
                record.number,
                record.reason,
            )
            self._emit(
                "gave_up", self._connection_id, attempt=record.number, error=record.exception
            )

        for attempt in retrying(
            on=_retryable,
            attempts=attempts,
            deadline=budget,
            backoff=self._backoff,
            before_sleep=before_sleep,
            on_giveup=on_giveup,
            clock=self._clock,
            sleep=lambda delay: self._wait(delay, interrupt),
            rng=self._rng,
            name="WebSocketManager.connect",
        ):
            with attempt:
                if self._epoch != epoch:
                    raise ConnectionClosed(
                        "disconnect() was called while connecting", code=1000, by_client=True
                    )
                remaining = attempt.remaining
                timeout = config.connect_timeout
                if remaining is not None:
                    if remaining <= 0:
                        raise TvTimeoutError(f"no time left to connect to {self._where}")
                    timeout = min(timeout, remaining)
                with self._counts_lock:
                    self._connect_attempts += 1
                self._emit("connecting", self._connection_id, attempt=attempt.number)
                try:
                    return Transport.connect(
                        config.ws_url,
                        origin=config.origin,
                        headers=config.handshake_headers(),
                        connect_timeout=timeout,
                        send_timeout=config.send_timeout,
                        counters=self._io,
                    )
                except TvError as exc:
                    with self._counts_lock:
                        self._connect_failures += 1
                    if _retryable(exc):
                        logger.warning(
                            "connect attempt %d/%d to %s failed: %s",
                            attempt.number,
                            attempts,
                            self._where,
                            exc,
                        )
                        self._emit(
                            "connect_failed", self._connection_id, attempt=attempt.number, error=exc
                        )
                    else:
                        # Raised to the caller, who decides how loud to be.
                        logger.warning("cannot connect to %s: %s (not retrying)", self._where, exc)
                        self._emit(
                            "gave_up", self._connection_id, attempt=attempt.number, error=exc
                        )
                    raise
        raise AssertionError("unreachable: retrying either returns or raises")  # pragma: no cover

    def _wait(self, delay: float, interrupt: threading.Event) -> None:
        if self._sleep is _clock.sleep:
            interrupt.wait(delay)  # real time, but disconnect() can cut it short
        else:
            self._sleep(delay)

    # -- disconnecting ----------

    def disconnect(self, timeout: float | None = None) -> None:
        """Close the connection gracefully (idempotent; any thread; wakes a blocked recv).

        Sends a close frame and waits up to ``timeout`` seconds (default 2 s) for the server's
        reply before shutting the socket down.  Also aborts a connect in progress in another
        thread (it raises ConnectionClosed).
        """
        close_timeout = _check_timeout("timeout", timeout, DEFAULT_CLOSE_TIMEOUT)
        with self._cond:
            transport = self._transport
            self._transport = None
            self._epoch += 1
            interrupt, self._interrupt = self._interrupt, threading.Event()
            connection_id = self._connection_id
            self._cond.notify_all()
        interrupt.set()
        if transport is None:
            return
        was_open = not transport.closed
        transport.close(timeout=close_timeout)
        if was_open:
            with self._counts_lock:
                self._disconnects += 1
            logger.info("disconnected from %s (connection %d)", self._where, connection_id)
            self._emit("disconnected", connection_id)

    def close(self) -> None:
        """Alias of :meth:`disconnect`."""
        self.disconnect()

    def __enter__(self) -> WebSocketManager:
        self.connect()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.disconnect()

    # -- I/O ----------

    def _current(self) -> Transport:
        transport = self._transport
        if transport is None:
            raise ConnectionClosed(
                f"not connected to {self._where}: call connect() first",
                code=None,
                by_client=self._connection_id > 0,
            )
        return transport

    def send(self, message: str, timeout: float | None = None) -> None:
        """Send one text message (timeout default ``config.send_timeout``).

        Raises TvTimeoutError (the connection is then unusable) or ConnectionClosed.
        """
        if not isinstance(message, str):
            raise TypeError(f"message must be a str, got {type(message).__name__}")
        limit = _check_timeout("timeout", timeout, self._config.send_timeout)
        transport = self._current()
        try:
            transport.send(message, limit)
        except ConnectionClosed as exc:
            self._lost_connection(transport, exc)
            raise
        except TvTimeoutError as exc:
            self._lost_connection(transport, exc)
            raise

    def recv(self, timeout: float | None = None, *, include_heartbeats: bool = False) -> str:
        """The next text message with data (timeout default ``config.recv_timeout``).

        Heartbeat packets are echoed at once and removed: a heartbeat-only message is skipped,
        a mixed one comes back with its data packets only (re-framed, in order).  With
        ``include_heartbeats`` every message comes back exactly as received (heartbeats
        already echoed: do not echo them again).  With ``echo_heartbeats=False`` on the
        manager, messages pass through untouched and nothing is echoed.  Raises
        TvTimeoutError if no data message came within ``timeout`` (the connection stays
        usable) or ConnectionClosed.  Never returns None.
        """
        limit = _check_timeout("timeout", timeout, self._config.recv_timeout)
        transport = self._current()
        deadline = _clock.monotonic() + limit
        while True:
            remaining = deadline - _clock.monotonic()
            if remaining <= 0:
                raise TvTimeoutError(
                    f"no data message from {self._where} within {limit:g} s (heartbeats only)"
                )
            try:
                message = transport.recv(remaining)
            except ConnectionClosed as exc:
                self._lost_connection(transport, exc)
                raise
            except TvTimeoutError as exc:
                raise TvTimeoutError(
                    f"no data message from {self._where} within {limit:g} s"
                ) from exc
            self._last_inbound = self._clock()
            if not self._echo_heartbeats or "~h~" not in message:
                return message
            try:
                payloads = decode(message)
            except FramingError:
                # Not ours to judge: the protocol layer raises on this message.
                logger.debug("message with unparsable framing passed on (%d chars)", len(message))
                return message
            beats = [p for p in payloads if p.startswith("~h~")]
            if not beats:
                return message
            for payload in beats:
                self._echo(transport, payload)
            if include_heartbeats:
                return message
            data = [p for p in payloads if not p.startswith("~h~")]
            if data:
                return encode(data)

    def _echo(self, transport: Transport, payload: str) -> None:
        try:
            transport.send(encode([payload]), self._config.send_timeout)
        except TvError as exc:
            # The connection is now closed: the next recv/send reports it.
            logger.warning("could not echo heartbeat %s: %s", payload, exc)
            return
        with self._counts_lock:
            self._heartbeats_echoed += 1
        logger.debug("echoed heartbeat %s", payload)

    def _lost_connection(self, transport: Transport, exc: TvError) -> None:
        if isinstance(exc, ConnectionClosed) and exc.by_client:
            return
        with self._counts_lock:
            if self._loss_reported is transport:
                return  # the reader and a sender both saw the same loss
            self._loss_reported = transport
            self._lost += 1
        code = exc.code if isinstance(exc, ConnectionClosed) else None
        logger.warning(
            "connection %d to %s lost (code %s): %s", self._connection_id, self._where, code, exc
        )
        self._emit("lost", self._connection_id, error=exc)

    # -- events ----------

    def _emit(
        self,
        kind: str,
        connection_id: int,
        *,
        attempt: int = 0,
        delay: float | None = None,
        error: BaseException | None = None,
    ) -> None:
        callback = self._on_event
        if callback is None:
            return
        try:
            callback(ConnectionEvent(kind, connection_id, attempt, delay, error))
        except Exception:
            logger.exception("on_event callback failed for %s", kind)

    def __repr__(self) -> str:
        state = "connected" if self.is_connected() else "disconnected"
        return f"<WebSocketManager {self._where} {state} connection={self._connection_id}>"
