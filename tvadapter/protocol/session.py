"""Sans-I/O session state machines: :class:`ClientSession` and :class:`ServerSession`.

Theory of operation
===================

A session is the protocol's half of one websocket connection, in the style of ``websockets`` and
``h11``: it never touches a socket, a thread or a clock. Its driver does the I/O:

1. every websocket text message received goes into ``receive_message(text)``;
2. the driver then drains ``events_received()`` (typed events, in arrival order) and
   ``data_to_send()`` (whole websocket text messages to write, in order);
3. the driver sends with the ``send*`` methods and drains ``data_to_send()`` again;
4. when the connection ends, the driver calls ``close()``.

The session answers for itself where the protocol says so: a :class:`ClientSession` queues the
echo of every server heartbeat (the identical ``~h~N`` payload, re-framed) the moment it parses
it, so a driver that always drains ``data_to_send()`` after ``receive_message()`` never misses
one. The heartbeat is still reported as an event, but it is not progress (PROTOCOL.md §5).

One core serves both roles; only the parser and the reactions differ:

* client role: payloads parse with :func:`~tvadapter.protocol.parse_payload` into server events;
* server role: payloads parse with :func:`~tvadapter.protocol.parse_client_payload` into
  :class:`~tvadapter.protocol.ClientRequest` and :class:`~tvadapter.protocol.HeartbeatEcho`; the
  session numbers its heartbeats from 1 per connection and checks that every echo matches one it
  sent and has not yet seen echoed.

Each received message is handled atomically: all its packets are decoded and parsed first, and
only then are events queued and replies generated. A malformed message queues nothing.

State table
-----------

========  ===============  ==========  =================================================
state     receive_message  send*       entered when
========  ===============  ==========  =================================================
OPEN      yes              yes         the session is created
CLOSING   yes              no          ``protocol_error`` received (client) / sent (server):
                                       the server closes the connection next
FAILED    no               yes         the peer sent garbage: ``receive_message`` raised
                                       :class:`FramingError`, :class:`MalformedPayloadError` or
                                       another :class:`ProtocolError`. The driver must close;
                                       it may still send a last packet (e.g. ``protocol_error``)
CLOSED    no               no          ``close()`` (the connection is gone); final
========  ===============  ==========  =================================================

Anything a state forbids raises :class:`~tvadapter.errors.LocalProtocolError`: that is *our*
bug, distinct from the remote errors above. ``events_received()``, ``data_to_send()`` and
``close()`` work in every state. In CLOSING and later, a client no longer echoes heartbeats.

Timestamps: nothing reads a clock. :meth:`ServerSession.send_heartbeat` takes an optional
``now`` so that a driver can ask :meth:`ServerSession.oldest_unechoed_sent_at` how long the
client has owed an echo.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from tvadapter.errors import LocalProtocolError, ProtocolError

from ._excerpt import excerpt
from ._framing import decode, encode
from .events import (
    Event,
    Heartbeat,
    HeartbeatEcho,
    Hello,
    ProtocolErrorEvent,
    parse_client_payload,
    parse_payload,
)
from .server_messages import hello as hello_payload
from .server_messages import protocol_error as protocol_error_payload
from .server_messages import server_packet

__all__ = ["ClientSession", "ServerSession", "SessionState"]


class SessionState(enum.Enum):
    """Where a session is in its life (see the state table in the module docstring)."""

    OPEN = "open"
    CLOSING = "closing"
    FAILED = "failed"
    CLOSED = "closed"


_CAN_RECEIVE = frozenset({SessionState.OPEN, SessionState.CLOSING})
_CAN_SEND = frozenset({SessionState.OPEN, SessionState.FAILED})


class _SessionCore:
    """The state shared by both roles: queues, state, counters. Not thread-safe."""

    def __init__(self, parse: Callable[[str], Event]) -> None:
        self._parse = parse
        self._state = SessionState.OPEN
        self._events: list[Event] = []
        self._outgoing: list[str] = []
        self._messages_received = 0
        self._packets_received = 0
        self._messages_sent = 0

    # -- public, both roles -------------------------------------------------------------------

    @property
    def state(self) -> SessionState:
        """The current :class:`SessionState`."""
        return self._state

    @property
    def messages_received(self) -> int:
        """Websocket messages accepted by :meth:`receive_message`."""
        return self._messages_received

    @property
    def packets_received(self) -> int:
        """Packets (heartbeats included) in those messages."""
        return self._packets_received

    @property
    def messages_sent(self) -> int:
        """Websocket messages queued for sending so far."""
        return self._messages_sent

    def receive_message(self, text: str) -> None:
        """Feed one whole websocket text message received from the peer.

        Raises :class:`~tvadapter.errors.FramingError`,
        :class:`~tvadapter.errors.MalformedPayloadError` (or another
        :class:`~tvadapter.errors.ProtocolError`) for garbage, after which the session is FAILED;
        :class:`~tvadapter.errors.LocalProtocolError` when the state forbids receiving.
        """
        if self._state not in _CAN_RECEIVE:
            raise LocalProtocolError(f"cannot receive in state {self._state.value}")
        try:
            events = [self._parse(payload) for payload in decode(text)]
            self._check(events)
        except ProtocolError:
            self._state = SessionState.FAILED
            raise
        self._messages_received += 1
        self._packets_received += len(events)
        for event in events:
            self._events.append(event)
            self._react(event)

    def events_received(self) -> list[Event]:
        """Events parsed since the last call, oldest first (the queue is emptied)."""
        events, self._events = self._events, []
        return events

    def data_to_send(self) -> list[str]:
        """Whole websocket text messages to write, in order (the queue is emptied)."""
        data, self._outgoing = self._outgoing, []
        return data

    def close(self) -> None:
        """The connection is gone (or being closed by the driver): the session becomes CLOSED.

        Idempotent. Messages still queued stay available from :meth:`data_to_send`.
        """
        self._state = SessionState.CLOSED

    # -- hooks and helpers --------------------------------------------------------------------

    def _check(self, events: list[Event]) -> None:
        """Role-specific validation of a whole message's events before anything is queued."""

    def _react(self, event: Event) -> None:
        """Role-specific reaction to one accepted event."""

    def _require_send(self) -> None:
        if self._state not in _CAN_SEND:
            raise LocalProtocolError(f"cannot send in state {self._state.value}")

    def _queue(self, message: str) -> None:
        self._outgoing.append(message)
        self._messages_sent += 1


def _payload(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"payload must be str, not {type(value).__name__}")
    return value


class ClientSession(_SessionCore):
    """The client role: parses server messages, echoes heartbeats, frames client packets.

    Not thread-safe: one driver thread (or one asyncio task) owns a session; it must not be
    called concurrently.
    """

    def __init__(self) -> None:
        super().__init__(parse_payload)
        self._hello: Hello | None = None
        self._last_heartbeat: int | None = None
        self._heartbeats_received = 0
        self._protocol_error: str | None = None

    @property
    def hello(self) -> Hello | None:
        """The server's hello, once received (``None`` before)."""
        return self._hello

    @property
    def hello_received(self) -> bool:
        """Whether the hello has arrived (the connection is accepted)."""
        return self._hello is not None

    @property
    def heartbeats_received(self) -> int:
        """Server heartbeats received (each one echoed while the session was OPEN)."""
        return self._heartbeats_received

    @property
    def last_heartbeat(self) -> int | None:
        """The number of the last server heartbeat, if any."""
        return self._last_heartbeat

    @property
    def protocol_error(self) -> str | None:
        """The text of the server's ``protocol_error``, once received."""
        return self._protocol_error

    def send(self, payload: str) -> None:
        """Queue one packet payload (e.g. from :mod:`tvadapter.protocol.messages`) as a message.

        One packet per message, as every observed client does.
        """
        self._require_send()
        self._queue(encode([_payload(payload)]))

    def send_all(self, payloads: Iterable[str]) -> None:
        """Queue several payloads, one message each, in order (all or nothing)."""
        self._require_send()
        framed = [encode([_payload(p)]) for p in payloads]
        for message in framed:
            self._queue(message)

    def _react(self, event: Event) -> None:
        if isinstance(event, Heartbeat):
            self._heartbeats_received += 1
            self._last_heartbeat = event.number
            if self._state is SessionState.OPEN:
                # Echo the identical payload, re-framed (PROTOCOL.md §5).
                self._queue(encode([event.payload]))
        elif isinstance(event, Hello):
            if self._hello is None:
                self._hello = event
        elif isinstance(event, ProtocolErrorEvent):
            self._protocol_error = event.text
            self._state = SessionState.CLOSING


class ServerSession(_SessionCore):
    """The server role (used by :mod:`tvadapter.testing`): hello, heartbeats, server packets.

    Parses client messages into :class:`~tvadapter.protocol.ClientRequest` and
    :class:`~tvadapter.protocol.HeartbeatEcho` events, numbering heartbeats from 1 per connection
    and checking every echo. Not thread-safe: one driver task owns a session.
    """

    def __init__(self) -> None:
        super().__init__(parse_client_payload)
        self._hello_sent = False
        self._next_heartbeat = 1
        # Heartbeats sent and not yet echoed: number -> (payload, sent_at or None), oldest first.
        self._unechoed: dict[int, tuple[str, float | None]] = {}
        self._last_echo: int | None = None
        self._echoes_received = 0

    # -- heartbeats ---------------------------------------------------------------------------

    @property
    def heartbeats_sent(self) -> int:
        """Heartbeats sent on this connection."""
        return self._next_heartbeat - 1

    @property
    def last_echo(self) -> int | None:
        """The number of the last heartbeat the client echoed, if any."""
        return self._last_echo

    @property
    def echoes_received(self) -> int:
        """Valid heartbeat echoes received."""
        return self._echoes_received

    @property
    def missed_heartbeats(self) -> int:
        """Heartbeats sent and not (yet) echoed."""
        return len(self._unechoed)

    @property
    def unechoed_heartbeats(self) -> tuple[int, ...]:
        """Numbers of the heartbeats sent and not yet echoed, oldest first."""
        return tuple(self._unechoed)

    def oldest_unechoed_sent_at(self) -> float | None:
        """The ``now`` given when the oldest unechoed heartbeat was sent (``None`` if none, or if
        it was sent without ``now``). Compare with your clock to enforce a grace period."""
        for _payload_text, sent_at in self._unechoed.values():
            return sent_at
        return None

    def send_heartbeat(self, now: float | None = None) -> int:
        """Queue the next heartbeat ``~h~N`` (N = 1, 2, ... per connection) and return N.

        ``now`` (any monotonic or epoch seconds of the caller's clock) is remembered for
        :meth:`oldest_unechoed_sent_at`.
        """
        self._require_send()
        number = self._next_heartbeat
        payload = f"~h~{number}"
        self._queue(encode([payload]))
        self._next_heartbeat += 1
        self._unechoed[number] = (payload, now)
        return number

    # -- sending ------------------------------------------------------------------------------

    def send_hello(self, info: Mapping[str, Any] | None = None) -> None:
        """Queue the hello (default :func:`~tvadapter.protocol.server_messages.default_hello_info`).

        It must be the first message and is sent at most once (``LocalProtocolError`` otherwise).
        """
        self._require_send()
        if self._hello_sent:
            raise LocalProtocolError("the hello was already sent")
        if self._messages_sent:
            raise LocalProtocolError("the hello must be the first message")
        self._queue(encode([hello_payload(info)]))
        self._hello_sent = True

    def send(self, method: str, params: Sequence[Any], *, t: float | None = None) -> None:
        """Queue one message with the packet ``{"m":method,"p":params}`` (``t``/``t_ms`` when
        ``t`` epoch seconds is given)."""
        self._require_send()
        self._queue(encode([server_packet(method, params, t=t)]))

    def send_payload(self, payload: str) -> None:
        """Queue one message with one ready-made payload (from ``server_messages``)."""
        self._require_send()
        self._queue(encode([_payload(payload)]))

    def send_packets(self, payloads: Sequence[str]) -> None:
        """Queue ONE message packing several payloads (as the real server often does)."""
        self._require_send()
        if isinstance(payloads, str) or not payloads:
            raise LocalProtocolError("send_packets needs a non-empty list of payloads")
        self._queue(encode([_payload(p) for p in payloads]))

    def send_raw(self, message: str) -> None:
        """Queue an arbitrary websocket text message as is (fault injection: bad framing...)."""
        self._require_send()
        self._queue(_payload(message))

    def send_protocol_error(self, text: str) -> None:
        """Queue ``protocol_error [text]``; the session becomes CLOSING (close the socket next)."""
        self._require_send()
        self._queue(encode([protocol_error_payload(text)]))
        self._state = SessionState.CLOSING

    # -- receiving ----------------------------------------------------------------------------

    def _check(self, events: list[Event]) -> None:
        pending = dict(self._unechoed)
        for event in events:
            if isinstance(event, HeartbeatEcho):
                sent = pending.pop(event.number, None)
                if sent is None or sent[0] != event.payload:
                    raise ProtocolError(
                        "heartbeat echo does not match an unechoed heartbeat: "
                        + excerpt(event.payload)
                    )

    def _react(self, event: Event) -> None:
        if isinstance(event, HeartbeatEcho):
            del self._unechoed[event.number]
            self._last_echo = event.number
            self._echoes_received += 1
