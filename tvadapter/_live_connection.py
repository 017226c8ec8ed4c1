"""The live feed's connection supervisor: one persistent socket, read by one thread, kept alive.

Theory of operation
-------------------
:class:`LiveConnection` owns a :class:`~tvadapter.connection.WebSocketManager` (built with
``echo_heartbeats=False``) and runs one thread, the connection's only reader, in a loop::

    connect (the manager retries with backoff) -> set_auth_token -> post Connected(gen)
      -> read: recv -> ClientSession (parses; queues heartbeat echoes, sent at once)
               -> post Incoming(gen, data events)
      -> the connection ends -> post Lost(gen, why) -> wait (backoff with jitter) -> again

Every connection gets a new *generation* number ``gen``; whatever the subscription engine
receives is tagged with it, so that events of a dead connection are never taken for events of
the next one, and :meth:`LiveConnection.send` refuses to send for a generation that is gone.

A connection ends when:

* the server or the network closes it (a drop, a 1000/1005/1006 close, a failed send);
* it **stalls**: nothing at all -- no data and no heartbeat -- for ``stall_timeout`` seconds.
  Heartbeats alone mean "alive": a closed market, or a symbol that does not trade, sends
  nothing else for hours, and that is not an error;
* optionally (``idle_reconnect``) no *data* for that long, heartbeats or not;
* the stream is garbage (a framing or JSON error): the state of the stream is unknown;
* the engine asks for it (:meth:`request_reconnect`), e.g. for a heartbeat-only session whose
  token has expired -- optionally marking the token as refused so that the next connection
  signs in again;
* the token is about to expire (``token_margin`` seconds before its ``exp``, checked every
  ``token_check_interval`` seconds): a new token is fetched and, if it differs, the connection
  is replaced at once (no backoff wait; the backfill makes the switch lossless).

Between connections it waits ``Backoff(base_retry_delay .. max_retry_delay, full jitter)``:
the attempt number grows while connections fail or die young (before ``stable_after``
seconds with data) and falls back to 1 after a healthy one, so a flapping server is not
hammered and a one-off drop costs well under a second.  It never gives up; :meth:`stop` ends it.

Thread-safety: :meth:`send`, :meth:`request_reconnect`, :meth:`stop` and the properties may be
called from any thread.  ``post`` is called from the reader thread only, with no lock held.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from resilience.backoff import Backoff

from ._auth import Authenticator
from .connection import WebSocketManager
from .errors import (
    ConnectionClosed,
    LocalProtocolError,
    TvConnectionError,
    TvError,
    TvTimeoutError,
)
from .protocol import ClientSession, Event, Heartbeat, Hello, encode, messages

__all__ = ["Connected", "ConnectFailed", "Incoming", "LiveConnection", "Lost"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Connected:
    """A new connection ``gen`` is open and its token set: (re)create every subscription."""

    gen: int


@dataclass(frozen=True, slots=True)
class Incoming:
    """Data events (no heartbeats, no hello) received on connection ``gen``, in order."""

    gen: int
    events: tuple[Event, ...]


@dataclass(frozen=True, slots=True)
class Lost:
    """Connection ``gen`` has ended (``error`` says why)."""

    gen: int
    error: TvError


@dataclass(frozen=True, slots=True)
class ConnectFailed:
    """An attempt to open a connection failed (another follows after a backoff wait)."""

    error: BaseException
    attempt: int


Notice = Connected | Incoming | Lost | ConnectFailed


class LiveConnection:
    """Connection supervisor and reader thread of a live feed (see the module docstring)."""

    def __init__(
        self,
        manager: WebSocketManager,
        auth: Authenticator,
        post: Callable[[Notice], object],
        *,
        stall_timeout: float,
        idle_reconnect: float | None,
        stable_after: float,
        token_margin: float,
        token_check_interval: float,
        poll_interval: float,
        backoff: Backoff,
        clock: Callable[[], float],
        wall_clock: Callable[[], float],
        rng: random.Random | None = None,
    ) -> None:
        self._manager = manager
        self._auth = auth
        self._post = post
        self._stall_timeout = stall_timeout
        self._idle_reconnect = idle_reconnect
        self._stable_after = stable_after
        self._token_margin = token_margin
        self._token_check_interval = token_check_interval
        self._poll = poll_interval
        self._backoff = backoff
        self._clock = clock
        self._wall_clock = wall_clock
        self._rng = rng
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._gen = 0
        self._live_gen = 0  # the generation being read now; 0 between connections
        self._token: str | None = None
        self._reconnect_reason: str | None = None
        self._planned = False
        self._counts = {
            "connections": 0,
            "connect_failures": 0,
            "losses": 0,
            "stalls": 0,
            "idle_reconnects": 0,
            "token_renewals": 0,
            "requested_reconnects": 0,
        }
        self.last_error: BaseException | None = None
        self._thread = threading.Thread(
            target=self._run, name="tvadapter-live-connection", daemon=True
        )

    # -- control -----------------------------------------------------------------------------

    @property
    def thread(self) -> threading.Thread:
        """The reader/supervisor thread."""
        return self._thread

    @property
    def gen(self) -> int:
        """The generation of the connection being read now (0 when there is none)."""
        return self._live_gen

    def counts(self) -> dict[str, int]:
        """A copy of the counters (connections, connect_failures, losses, stalls...)."""
        with self._lock:
            return dict(self._counts)

    def start(self) -> None:
        """Start the thread (it connects at once)."""
        self._thread.start()

    def stop(self, join: float | None = 10.0) -> None:
        """Stop reading, close the connection and wait up to ``join`` seconds for the thread."""
        self._stop.set()
        self._manager.disconnect(timeout=0.5)
        if (
            join is not None
            and self._thread.is_alive()
            and threading.current_thread() is not self._thread
        ):
            self._thread.join(join)
            if self._thread.is_alive():  # pragma: no cover - a sign-in hanging past its timeout
                logger.warning("live connection thread still running after %.1f s", join)

    def send(self, gen: int, payloads: Iterable[str]) -> bool:
        """Send ``payloads`` (one message each) if connection ``gen`` is still the one being
        read; False if it is gone or the send failed (the loss is then handled by the reader)."""
        if gen == 0 or gen != self._live_gen:
            return False
        try:
            for payload in payloads:
                if gen != self._live_gen:
                    return False
                self._manager.send(encode([payload]))
        except TvError as exc:
            logger.info("live connection %d: send failed: %s", gen, exc)
            self.request_reconnect(gen, f"send failed: {exc}")
            return False
        return True

    def request_reconnect(self, gen: int, reason: str, *, invalidate_token: bool = False) -> None:
        """Replace connection ``gen`` (no-op if it is already gone).

        ``invalidate_token`` tells the authenticator that the server refused the token, so the
        next connection signs in again (or fails with TokenExpiredError for a fixed token).
        """
        with self._lock:
            if gen == 0 or gen != self._live_gen or self._reconnect_reason is not None:
                return
            self._reconnect_reason = reason
            self._counts["requested_reconnects"] += 1
            token = self._token
        logger.warning("live connection %d: reconnecting: %s", gen, reason)
        if invalidate_token and token is not None:
            self._auth.invalidate(token)
        self._manager.disconnect(timeout=0.5)

    # -- the thread --------------------------------------------------------------------------

    def _count(self, name: str) -> None:
        with self._lock:
            self._counts[name] += 1

    def _run(self) -> None:
        attempt = 0
        try:
            while not self._stop.is_set():
                if attempt > 0:
                    delay = self._backoff.compute(attempt, self._rng)
                    logger.info("live feed: reconnecting in %.2f s (attempt %d)", delay, attempt)
                    if self._stop.wait(delay):
                        break
                try:
                    gen, session, token = self._open()
                except Exception as exc:  # typed TvErrors, or a bug: retried either way
                    attempt += 1
                    self.last_error = exc
                    self._count("connect_failures")
                    logger.warning("live feed: could not connect: %s: %s", type(exc).__name__, exc)
                    self._post(ConnectFailed(exc, attempt))
                    continue
                if self._stop.is_set():
                    break
                started = self._clock()
                error, got_data = self._read(gen, session, token)
                with self._lock:
                    self._live_gen = 0
                    planned, self._planned = self._planned, False
                    self._reconnect_reason = None
                session.close()
                self._manager.disconnect(timeout=0.5)
                self._post(Lost(gen, error))
                if self._stop.is_set():
                    break
                self._count("losses")
                self.last_error = error
                healthy = got_data and self._clock() - started >= self._stable_after
                if planned:
                    attempt = 0
                elif healthy:
                    attempt = 1
                else:
                    attempt += 1
                logger.info("live connection %d ended: %s", gen, error)
        except Exception:  # a bug: log it loudly rather than die silently
            logger.exception("live connection thread failed")
            raise
        finally:
            self._manager.disconnect(timeout=0.5)

    def _open(self) -> tuple[int, ClientSession, str]:
        manager = self._manager
        manager.disconnect(timeout=0.5)
        manager.ensure_connected()
        token = self._auth.token()
        session = ClientSession()
        with self._lock:
            self._gen += 1
            gen = self._gen
            self._token = token
            self._reconnect_reason = None
            self._counts["connections"] += 1
        manager.send(encode([messages.set_auth_token(token)]))
        with self._lock:
            self._live_gen = gen
        logger.info("live connection %d open (manager connection %d)", gen, manager.connection_id)
        self._post(Connected(gen))
        return gen, session, token

    def _read(self, gen: int, session: ClientSession, token: str) -> tuple[TvError, bool]:
        """Read connection ``gen`` until it ends; returns (why it ended, whether data came)."""
        manager = self._manager
        clock = self._clock
        last_activity = last_data = clock()
        next_token_check = last_activity + self._token_check_interval  # _open just got it
        got_data = False
        while True:
            if self._stop.is_set():
                return ConnectionClosed("the live feed is closing", by_client=True), got_data
            reason = self._reconnect_reason
            if reason is not None:
                return TvConnectionError(reason), got_data
            try:
                message: str | None = manager.recv(self._poll)
            except TvTimeoutError:
                message = None
            except TvConnectionError as exc:
                reason = self._reconnect_reason
                if reason is not None and isinstance(exc, ConnectionClosed) and exc.by_client:
                    return TvConnectionError(reason), got_data
                return exc, got_data
            now = clock()
            if message is not None:
                last_activity = now
                try:
                    events = self._receive(session, message)
                except TvError as exc:
                    logger.warning("live connection %d: %s", gen, exc)
                    return exc, got_data
                if events:
                    got_data = True
                    last_data = now
                    self._post(Incoming(gen, events))
            # The timers run on every turn: heartbeats may come more often than the poll.
            if now - last_activity > self._stall_timeout:
                self._count("stalls")
                logger.warning(
                    "live connection %d stalled: no data and no heartbeat for %.1f s",
                    gen,
                    now - last_activity,
                )
                return TvTimeoutError(
                    f"stalled: nothing received for {now - last_activity:.1f} s"
                ), got_data
            if self._idle_reconnect is not None and now - last_data > self._idle_reconnect:
                self._count("idle_reconnects")
                logger.warning(
                    "live connection %d: no data for %.1f s (heartbeats only): reconnecting",
                    gen,
                    now - last_data,
                )
                return TvTimeoutError(
                    f"no data for {now - last_data:.1f} s (idle_reconnect)"
                ), got_data
            if now >= next_token_check:
                next_token_check = now + self._token_check_interval
                if self._token_renewed(token):
                    return self._renewed(), got_data

    def _receive(self, session: ClientSession, message: str) -> tuple[Event, ...]:
        """Parse ``message``, send the heartbeat echoes it calls for, return its data events.

        Raises a ProtocolError for garbage, a TvError when an echo cannot be sent.
        """
        try:
            session.receive_message(message)
        except LocalProtocolError as exc:  # pragma: no cover - receiving after close
            raise TvConnectionError(f"session closed: {exc}") from exc
        for echo in session.data_to_send():
            self._manager.send(echo)
        return tuple(e for e in session.events_received() if not isinstance(e, (Heartbeat, Hello)))

    def _renewed(self) -> TvError:
        with self._lock:
            self._planned = True
        return TvConnectionError("the auth token was renewed")

    def _token_renewed(self, token: str) -> bool:
        """Whether the token is due for renewal and a new one was obtained."""
        auth = self._auth
        if auth.is_anonymous:
            return False
        expires = auth.expires_at
        if expires is None or self._wall_clock() < expires - self._token_margin:
            return False
        try:
            fresh = auth.token()
        except TvError as exc:
            logger.warning("live feed: could not renew the auth token: %s", exc)
            return False
        if fresh == token:
            return False
        self._count("token_renewals")
        logger.info("live feed: auth token renewed; replacing the connection")
        return True
