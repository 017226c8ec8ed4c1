"""One reader thread per connection, routing server events to the requests waiting for them.

Theory of operation
-------------------
A :class:`Router` serves one connection of a :class:`~tvadapter.connection.WebSocketManager`
(one ``connection_id``).  Its reader thread is the connection's only reader: it calls
``manager.recv(include_heartbeats=True)`` in a loop (the manager echoes heartbeats itself),
decodes each message into packets and routes them:

* a heartbeat goes to every waiting request (it is not progress, but the request must know
  that the socket is alive and silent: that is how an expired token shows, PROTOCOL §16);
* a large ``timescale_update`` takes the fast path
  (:func:`tvadapter.history.parse_timescale_update`) and becomes
  :class:`~tvadapter._request.SeriesBars`; everything else goes through
  :func:`tvadapter.protocol.parse_payload`;
* an event with a chart-session id goes to the request registered for that session;
  ``protocol_error`` (which has none) and a session-less ``critical_error`` go to every request.

Each request has a :class:`Pending` inbox (a queue) that its own thread drains, so a request's
state machine only ever runs in its thread, and many threads can run requests over one socket.

When the connection ends (a close, a drop, or a framing/JSON error that leaves the stream in an
unknown state) the reader tells every waiting request (:class:`ConnectionLost` in its inbox),
marks the router dead and exits: it never reads from a later connection of the same manager.
New requests then need a new router on a new connection.

Thread-safety: :meth:`Router.register`, :meth:`Router.unregister`, :meth:`Router.send` and
:meth:`Router.stop` may be called from any thread.  The router's lock guards only its table of
pending requests; it is never held while receiving, sending or parsing.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import queue
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from resilience import _clock

from ._request import SeriesBars, protocol_error
from .connection import WebSocketManager
from .errors import (
    ConnectionClosed,
    MalformedPayloadError,
    ProtocolError,
    TvConnectionError,
    TvError,
    TvTimeoutError,
)
from .history import parse_timescale_update
from .protocol import (
    CriticalErrorEvent,
    Event,
    Heartbeat,
    Hello,
    ProtocolErrorEvent,
    decode,
    encode,
    parse_heartbeat,
    parse_payload,
)

__all__ = ["ConnectionLost", "Pending", "Router", "fresh_copy"]

logger = logging.getLogger(__name__)

#: How long one ``recv`` of the reader waits before checking whether it should stop.
READER_POLL = 0.5

_router_numbers = itertools.count(1)


@dataclass(frozen=True, slots=True)
class ConnectionLost:
    """Inbox item: the connection this request was running on is gone (``error`` says why)."""

    error: TvError


Item = Event | SeriesBars | ConnectionLost


def fresh_copy(error: TvError) -> TvError:
    """A new exception like ``error`` (same class and text, chained to it), so that threads
    never raise one shared exception object (its traceback would be mutated by each)."""
    try:
        copy = type(error)(str(error))
    except TypeError:  # a subclass with required keyword arguments
        copy = TvConnectionError(str(error))
    for name in ("code", "reason", "by_client", "status", "retry_after"):
        if hasattr(error, name):
            with contextlib.suppress(AttributeError):  # a read-only attribute
                setattr(copy, name, getattr(error, name))
    copy.__cause__ = error
    return copy


class Pending:
    """The inbox of one request (one chart session) on a router.

    Filled by the reader thread, drained by the request's thread with :meth:`get`.
    Thread-safe (a :class:`queue.SimpleQueue`).
    """

    __slots__ = ("_queue", "chart_session")

    def __init__(self, chart_session: str) -> None:
        self.chart_session = chart_session
        self._queue: queue.SimpleQueue[Item] = queue.SimpleQueue()

    def put(self, item: Item) -> None:
        """Deliver one item (reader thread)."""
        self._queue.put(item)

    def get(self, timeout: float) -> Item | None:
        """The next item, or None after ``timeout`` seconds without one."""
        try:
            return self._queue.get(timeout=max(0.0, timeout))
        except queue.Empty:
            return None

    def get_nowait(self) -> Item | None:
        """The next item if one is waiting, else None."""
        try:
            return self._queue.get_nowait()
        except queue.Empty:
            return None


class Router:
    """Reader thread and request table for one connection (see the module docstring).

    ``manager`` must be connected; the router reads only from the connection whose
    ``connection_id`` it saw when created.  ``clock`` stamps :attr:`last_data_at`.
    ``on_lost`` is called once (in the reader thread, no lock held) when the connection ends.

    Thread-safe: register/unregister/send/stop/claim_loss from any thread; the lock guards the
    table of pending requests only and is never held during I/O or parsing.
    """

    def __init__(
        self,
        manager: WebSocketManager,
        *,
        clock: Callable[[], float] = _clock.monotonic,
        poll_interval: float = READER_POLL,
        on_lost: Callable[[Router, TvError], object] | None = None,
    ) -> None:
        self.manager = manager
        self.connection_id = manager.connection_id
        self.number = next(_router_numbers)
        self._clock = clock
        self._poll = poll_interval
        self._on_lost = on_lost
        self._lock = threading.Lock()
        self._pending: dict[str, Pending] = {}
        self._alive = True
        self._stopping = False
        self._error: TvError | None = None
        self._loss_claimed = False
        self._server_error: TvError | None = None
        self.heartbeats = 0
        self.messages = 0
        self.last_data_at = clock()
        self.created_at = self.last_data_at
        self._thread = threading.Thread(
            target=self._run,
            name=f"tvadapter-reader-{self.number}",
            daemon=True,
        )

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        """Start the reader thread."""
        self._thread.start()
        logger.debug("router %d reading connection %d", self.number, self.connection_id)

    @property
    def alive(self) -> bool:
        """True while the reader runs on a live connection."""
        return self._alive and self.manager.connection_id == self.connection_id

    @property
    def error(self) -> TvError | None:
        """Why the connection ended (None while alive)."""
        return self._error

    @property
    def inflight(self) -> int:
        """Requests registered right now."""
        with self._lock:
            return len(self._pending)

    @property
    def thread(self) -> threading.Thread:
        """The reader thread."""
        return self._thread

    def stop(self, *, join: float | None = 5.0) -> None:
        """Ask the reader to exit (it does within one poll interval; ``disconnect()`` on the
        manager wakes it at once) and wait up to ``join`` seconds for it."""
        self._stopping = True
        if (
            join is not None
            and self._thread.is_alive()
            and threading.current_thread() is not self._thread
        ):
            self._thread.join(join)

    def failure(self, wait: float = 0.0) -> TvError | None:
        """Why the reader ended this connection, if it did: the server's ``protocol_error``
        or the broken stream (framing, JSON) -- else None (still alive, or a plain close).

        A send can fail on a connection that the reader has just torn down, or that the
        server has just closed, before the reader has reported why (``protocol_error "bad
        auth token"`` then a close; a malformed message): ``wait`` gives the reader up to
        that many seconds to read what is left and stop.  Returns a fresh copy (never a
        shared exception object).
        """
        if wait > 0 and self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(wait)
        error = self._server_error or self._error
        if error is None or isinstance(error, ConnectionClosed):
            return None
        return fresh_copy(error)

    def claim_loss(self) -> bool:
        """True for the first caller only: lets one request count this connection's loss
        (e.g. against a circuit breaker) when several requests saw it."""
        with self._lock:
            if self._loss_claimed:
                return False
            self._loss_claimed = True
            return True

    # -- requests --------------------------------------------------------------------------

    def register(self, chart_session: str) -> Pending:
        """Route events of ``chart_session`` to a new inbox; TvConnectionError if dead."""
        with self._lock:
            if not self._alive:
                if self._error is None:  # pragma: no cover - set together with _alive
                    raise TvConnectionError("the connection is closed")
                raise fresh_copy(self._error)
            if chart_session in self._pending:
                raise ValueError(f"chart session {chart_session!r} is already registered")
            pending = Pending(chart_session)
            self._pending[chart_session] = pending
            return pending

    def unregister(self, chart_session: str) -> None:
        """Stop routing ``chart_session`` (idempotent)."""
        with self._lock:
            self._pending.pop(chart_session, None)

    def send(self, payloads: Iterable[str]) -> None:
        """Send each payload as its own message (as every observed client does)."""
        for payload in payloads:
            self.manager.send(encode([payload]))

    # -- the reader ------------------------------------------------------------------------

    def _run(self) -> None:
        error: TvError | None = None
        try:
            while not self._stopping:
                if self.manager.connection_id != self.connection_id:
                    error = ConnectionClosed("the connection was replaced", by_client=True)
                    break
                try:
                    message = self.manager.recv(self._poll, include_heartbeats=True)
                except TvTimeoutError:
                    continue
                except TvConnectionError as exc:
                    error = exc
                    break
                self.messages += 1
                try:
                    self._route(message)
                except ProtocolError as exc:
                    # The stream is in an unknown state: someone may have lost data.
                    logger.warning(
                        "router %d: unusable message on connection %d: %s",
                        self.number,
                        self.connection_id,
                        exc,
                    )
                    error = exc
                    self.manager.disconnect(timeout=0.5)
                    break
        except Exception as exc:  # a bug: never leave requests hanging
            logger.exception("router %d: reader failed", self.number)
            error = TvConnectionError(f"the reader thread failed: {exc!r}")
        finally:
            if error is None:
                error = ConnectionClosed("the client stopped reading", by_client=True)
            self._die(error)

    def _die(self, error: TvError) -> None:
        if self._server_error is not None:
            # The server said why before closing (protocol_error): that is the real cause,
            # also for requests that registered too late to see the packet itself.
            error = self._server_error
        with self._lock:
            self._alive = False
            self._error = error
            pending = list(self._pending.values())
        for inbox in pending:
            inbox.put(ConnectionLost(fresh_copy(error)))
        logger.debug("router %d stopped: %s", self.number, error)
        if self._on_lost is not None:
            try:
                self._on_lost(self, error)
            except Exception:
                logger.exception("router %d: on_lost callback failed", self.number)

    def _route(self, message: str) -> None:
        for payload in decode(message):
            if payload.startswith("~h~"):
                parse_heartbeat(payload)
                self.heartbeats += 1
                beat = Heartbeat(0, payload)
                with self._lock:
                    inboxes = list(self._pending.values())
                for inbox in inboxes:
                    inbox.put(beat)
                continue
            self.last_data_at = self._clock()
            fast = parse_timescale_update(payload)
            if fast is not None:
                for bars in fast:
                    self._deliver(bars.session, bars)
                continue
            try:
                event = parse_payload(payload)
            except MalformedPayloadError:
                raise
            if isinstance(event, Hello):
                continue
            if isinstance(event, ProtocolErrorEvent):
                self._server_error = protocol_error(event.text)
            if isinstance(event, ProtocolErrorEvent) or (
                isinstance(event, CriticalErrorEvent) and event.session is None
            ):
                logger.warning("router %d: %s from the server", self.number, type(event).__name__)
                with self._lock:
                    inboxes = list(self._pending.values())
                for inbox in inboxes:
                    inbox.put(event)
                continue
            session = getattr(event, "session", None)
            if isinstance(session, str):
                self._deliver(session, event)

    def _deliver(self, session: str, item: Item) -> None:
        with self._lock:
            inbox = self._pending.get(session)
        if inbox is not None:
            inbox.put(item)

    def __repr__(self) -> str:
        state = "alive" if self.alive else "dead"
        return (
            f"<Router {self.number} connection={self.connection_id} {state} "
            f"inflight={len(self._pending)}>"
        )
