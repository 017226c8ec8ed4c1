"""Sans-I/O TradingView protocol core: framing, message builders, events and sessions.

Nothing in this package touches a socket, a thread, a clock or pandas; the client
(:mod:`tvadapter.connection`) and the fake server (:mod:`tvadapter.testing`) drive it.
Framing errors raise :class:`tvadapter.errors.FramingError`.
"""

from __future__ import annotations

from tvadapter.errors import FramingError, MalformedPayloadError, ProtocolError

from . import events
from ._framing import MAX_LENGTH_DIGITS, decode, encode, utf16_len
from .events import *  # noqa: F403

__all__ = [
    *events.__all__,
    "MAX_LENGTH_DIGITS",
    "FramingError",
    "MalformedPayloadError",
    "ProtocolError",
    "decode",
    "encode",
    "utf16_len",
]
