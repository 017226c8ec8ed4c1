"""Sans-I/O TradingView protocol core: framing, message builders, events and sessions.

Nothing in this package touches a socket, a thread, a clock or pandas; the client
(:mod:`tvadapter.connection`) and the fake server (:mod:`tvadapter.testing`) drive it.
Framing errors raise :class:`tvadapter.errors.FramingError`; payloads of the wrong shape raise
:class:`tvadapter.errors.MalformedPayloadError`.
"""

from __future__ import annotations

from tvadapter.errors import FramingError, MalformedPayloadError, ProtocolError

from ._framing import MAX_LENGTH_DIGITS, decode, encode, utf16_len
from .events import (
    Bar,
    ClientRequest,
    CriticalErrorEvent,
    DataUpdate,
    Event,
    Heartbeat,
    HeartbeatEcho,
    Hello,
    ProtocolErrorEvent,
    QuoteCompleted,
    QuoteData,
    SeriesCompleted,
    SeriesErrorEvent,
    SeriesLoading,
    SeriesPayload,
    SeriesTimeframe,
    ServerMessage,
    StudyCompleted,
    StudyDeleted,
    StudyErrorEvent,
    StudyLoading,
    StudyPayload,
    StudyPoint,
    SymbolError,
    SymbolResolved,
    TimescaleUpdate,
    UnknownMessage,
    parse_bars,
    parse_client_payload,
    parse_heartbeat,
    parse_payload,
)

__all__ = [
    # framing
    "MAX_LENGTH_DIGITS",
    "decode",
    "encode",
    "utf16_len",
    # errors (from tvadapter.errors)
    "FramingError",
    "MalformedPayloadError",
    "ProtocolError",
    # events
    "Bar",
    "ClientRequest",
    "CriticalErrorEvent",
    "DataUpdate",
    "Event",
    "Heartbeat",
    "HeartbeatEcho",
    "Hello",
    "ProtocolErrorEvent",
    "QuoteCompleted",
    "QuoteData",
    "SeriesCompleted",
    "SeriesErrorEvent",
    "SeriesLoading",
    "SeriesPayload",
    "SeriesTimeframe",
    "ServerMessage",
    "StudyCompleted",
    "StudyDeleted",
    "StudyErrorEvent",
    "StudyLoading",
    "StudyPayload",
    "StudyPoint",
    "SymbolError",
    "SymbolResolved",
    "TimescaleUpdate",
    "UnknownMessage",
    "parse_bars",
    "parse_client_payload",
    "parse_heartbeat",
    "parse_payload",
]
