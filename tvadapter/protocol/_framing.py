"""The ``~m~N~m~payload`` envelope: one websocket text message <-> a list of payload strings.

PROTOCOL.md §3 is the reference. Points worth knowing:

* ``N`` is the payload's JavaScript ``String.length``: UTF-16 code units, so a character above
  U+FFFF (an emoji) counts 2. A lone surrogate code point, which only a Python ``str`` can hold
  (never a websocket text message), counts 1, as it would in JavaScript.
* A message carries one or more packets. :func:`decode` walks the prefixes; it never splits on a
  pattern, so a payload may itself contain ``~m~5~m~`` or ``~h~1``.
* Heartbeats are ordinary packets whose payload is ``~h~<k>``; :func:`decode` returns them as such.

Decoding rules (anything else raises :class:`~tvadapter.errors.FramingError`):

* every packet starts with ``~m~``, then 1 to :data:`MAX_LENGTH_DIGITS` ASCII digits ``0-9`` (no
  sign, no spaces, no other Unicode digits), then ``~m~``; leading zeros are accepted;
* exactly ``N`` UTF-16 units follow; running out of text, or a last character that would split a
  surrogate pair, is an error;
* the message must be fully consumed: trailing text that is not another packet is an error;
* the legacy ``~j~`` prefix and binary packets are errors;
* the empty message holds no packets: ``decode("") == []``, the inverse of ``encode([])``.
  (The real server never sends one; a session simply has nothing to report for it.)

Performance: pure-ASCII and all-BMP messages are cut with plain slicing (linear time overall);
only messages with astral characters pay for a per-packet count, by binary search over the
positions of those characters.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from collections.abc import Iterable

from tvadapter.errors import FramingError

from ._excerpt import excerpt

__all__ = ["MAX_LENGTH_DIGITS", "decode", "encode", "utf16_len"]

PREFIX = "~m~"
_PREFIX_LEN = len(PREFIX)

#: The longest length prefix accepted (digits), enough for a petabyte-sized packet.
MAX_LENGTH_DIGITS = 16

_ASTRAL = re.compile("[\U00010000-\U0010ffff]")


def utf16_len(text: str) -> int:
    """Length of ``text`` in UTF-16 code units (JavaScript ``String.length``)."""
    if text.isascii():
        return len(text)
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def encode(payloads: Iterable[str]) -> str:
    """Frame ``payloads`` into one message: ``~m~N~m~payload`` for each, concatenated.

    Raises :class:`TypeError` when ``payloads`` is a bare string or holds a non-string (a local
    programming error, not a protocol one).
    """
    if isinstance(payloads, str):
        raise TypeError("payloads must be an iterable of str, not a str")
    parts: list[str] = []
    for payload in payloads:
        if not isinstance(payload, str):
            raise TypeError(f"payload must be str, not {type(payload).__name__}")
        parts.append(f"~m~{utf16_len(payload)}~m~{payload}")
    return "".join(parts)


def _error(reason: str, message: str, position: int) -> FramingError:
    return FramingError(f"{reason} at character {position}: {excerpt(message, position)}")


def decode(message: str) -> list[str]:
    """Split one websocket text message into its packet payloads (heartbeats included).

    Raises :class:`~tvadapter.errors.FramingError` for any malformed message, and
    :class:`TypeError` when ``message`` is not a ``str``.
    """
    if not isinstance(message, str):
        raise TypeError(f"message must be str, not {type(message).__name__}")
    size = len(message)
    # Positions of astral characters; empty for ASCII and all-BMP messages (the common case).
    astral: list[int] = [] if message.isascii() else [m.start() for m in _ASTRAL.finditer(message)]
    payloads: list[str] = []
    pos = 0
    while pos < size:
        if not message.startswith(PREFIX, pos):
            what = "trailing text after the last packet" if payloads else "missing '~m~' prefix"
            raise _error(what, message, pos)
        digits_start = pos + _PREFIX_LEN
        # Bounded search: a run of digits longer than MAX_LENGTH_DIGITS is an error anyway.
        digits_end = message.find(PREFIX, digits_start, digits_start + MAX_LENGTH_DIGITS + 3)
        if digits_end < 0:
            raise _error("length prefix not closed by '~m~'", message, pos)
        digits = message[digits_start:digits_end]
        if not digits or not digits.isascii() or not digits.isdigit():
            raise _error("length prefix is not ASCII digits", message, pos)
        units = int(digits)
        start = digits_end + _PREFIX_LEN
        if astral:
            end = _end_of_packet(message, astral, start, units, pos)
        else:
            end = start + units
            if end > size:
                raise _error(
                    f"packet length {units} runs past the end of the message", message, pos
                )
        payloads.append(message[start:end])
        pos = end
    return payloads


def _end_of_packet(message: str, astral: list[int], start: int, units: int, pos: int) -> int:
    """Index just past ``units`` UTF-16 units from ``start``, with astral characters present."""
    size = len(message)
    first = bisect_left(astral, start)

    def units_to(end: int) -> int:
        # UTF-16 units in message[start:end]: one per character, plus one per astral character.
        return end - start + bisect_left(astral, end, first) - first

    # Fast path: no astral character inside the naive slice.
    naive_end = start + units
    if naive_end <= size and units_to(naive_end) == units:
        return naive_end
    # units_to is increasing; find the largest end with units_to(end) <= units.
    lo, hi = start, min(size, naive_end)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if units_to(mid) <= units:
            lo = mid
        else:
            hi = mid - 1
    got = units_to(lo)
    if got == units:
        return lo
    if lo >= size:
        raise _error(f"packet length {units} runs past the end of the message", message, pos)
    raise _error(f"packet length {units} splits a surrogate pair", message, pos)
