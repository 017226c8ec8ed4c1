"""Fault objects for :class:`~tvadapter.testing.FakeTradingView`.

Every fault is a frozen dataclass. Its keyword-only ``attempts`` selects the connection attempts
it applies to (attempts are numbered 1, 2, 3... per server, counting every WebSocket upgrade
request, rejected or not):

* ``None`` (default): every attempt;
* an ``int``: that attempt only;
* a container (``{1, 2}``, ``range(1, 4)``, a ``frozenset``): the attempts it contains;
* a callable ``attempt -> bool`` (``lambda n: n % 2 == 1``).

``first(k)`` is shorthand for ``range(1, k + 1)``.

"Series packets" below are the packets of a chart series: ``series_loading``,
``symbol_resolved``, ``timescale_update``, ``series_timeframe``, ``series_completed``,
``series_error``, ``symbol_error`` and ``du``. The hello, heartbeats and quote packets are not
counted, so the counts do not depend on whether the client also opens a quote session.

Close codes used by :class:`Drop`, :class:`RequestRate` and the heartbeat check: ``1006`` means
an abrupt TCP close with no close frame (what clients report as 1006), ``1005`` a close frame
with no status code (what clients report as 1005), any other value a close frame carrying it.
"""

from __future__ import annotations

from collections.abc import Callable, Container, Iterable
from dataclasses import dataclass, field

__all__ = [
    "MALFORMED_KINDS",
    "AttemptSelector",
    "Drop",
    "Fault",
    "HugeFrame",
    "Latency",
    "Malformed",
    "RejectHandshake",
    "RequestRate",
    "SlowDrip",
    "Stall",
    "first",
    "selects",
]

AttemptSelector = int | Container[int] | Callable[[int], bool] | None

#: The malformed-message kinds :class:`Malformed` can send.
MALFORMED_KINDS = (
    "bad_length",  # "~m~<N+40>~m~payload": the length runs past the end of the message
    "no_prefix",  # a bare JSON payload without the "~m~N~m~" envelope
    "non_ascii_digits",  # "~m~١٢~m~...": Unicode digits in the length
    "trailing_garbage",  # a valid packet followed by text that is not a packet
    "not_json",  # a correctly framed payload that is not JSON
    "bad_shape",  # valid JSON of the wrong shape: timescale_update whose "p" is not a list
    "invalid_utf8",  # a WebSocket text frame whose bytes are not UTF-8
    "binary",  # a WebSocket binary frame instead of a text frame
)

_CLOSE_CODES_OK = {1000, 1001, 1002, 1003, 1005, 1006, 1007, 1008, 1009, 1010, 1011, 1012, 1013}


def first(k: int) -> range:
    """The attempts ``1..k`` (``first(2) == range(1, 3)``)."""
    if k < 0:
        raise ValueError("k must be >= 0")
    return range(1, k + 1)


def selects(selector: AttemptSelector, attempt: int) -> bool:
    """Whether ``selector`` (see the module docstring) selects connection ``attempt``."""
    if selector is None:
        return True
    if isinstance(selector, bool):
        return selector
    if isinstance(selector, int):
        return attempt == selector
    if callable(selector):
        return bool(selector(attempt))
    return attempt in selector


def _check_code(code: int, name: str = "code") -> None:
    if code not in _CLOSE_CODES_OK and not 3000 <= code <= 4999:
        raise ValueError(f"{name} must be a WebSocket close code (1000-1013 or 3000-4999)")


def _check_non_negative(value: float, name: str) -> None:
    if value < 0:
        raise ValueError(f"{name} must be >= 0")


@dataclass(frozen=True)
class Fault:
    """Base class: ``attempts`` selects the connection attempts the fault applies to.

    Faults are immutable values, safe to share between threads and servers.
    """

    attempts: AttemptSelector = field(default=None, kw_only=True)

    def applies_to(self, attempt: int) -> bool:
        """Whether this fault is active on connection ``attempt``."""
        return selects(self.attempts, attempt)


@dataclass(frozen=True)
class Latency(Fault):
    """Deliver every outgoing message ``seconds`` (+ up to ``jitter``) after it was produced.

    Pipelined like network delay: messages keep their order and delays do not add up.
    """

    seconds: float = 0.05
    jitter: float = 0.0

    def __post_init__(self) -> None:
        _check_non_negative(self.seconds, "seconds")
        _check_non_negative(self.jitter, "jitter")


@dataclass(frozen=True)
class RejectHandshake(Fault):
    """Answer the WebSocket upgrade with HTTP ``status`` (429, 403, 503...) instead of 101.

    ``retry_after`` adds a ``Retry-After`` header (seconds). Combine with ``attempts=first(k)``
    to reject the first ``k`` attempts.
    """

    status: int = 429
    retry_after: float | None = None

    def __post_init__(self) -> None:
        if not 400 <= self.status <= 599:
            raise ValueError("status must be an HTTP error status (400-599)")
        if self.retry_after is not None:
            _check_non_negative(self.retry_after, "retry_after")


@dataclass(frozen=True)
class Stall(Fault):
    """Go silent: the socket stays open but nothing more is sent.

    The stall starts once ``after`` series packets have been sent (``0``: right after the hello),
    or once ``after_heartbeats`` heartbeats have been sent, whichever comes first (``None``
    disables that trigger). ``heartbeats=True`` keeps heartbeats flowing during the stall (the
    "data stopped but the socket looks alive" case); ``hello=False`` withholds even the hello.
    Requests are still read (and counted) during a stall.
    """

    after: int | None = 0
    after_heartbeats: int | None = None
    heartbeats: bool = False
    hello: bool = True

    def __post_init__(self) -> None:
        if self.after is not None:
            _check_non_negative(self.after, "after")
        if self.after_heartbeats is not None:
            _check_non_negative(self.after_heartbeats, "after_heartbeats")


@dataclass(frozen=True)
class Drop(Fault):
    """Close the connection right after the ``after``-th series packet has been sent.

    A message holding more packets is cut at that packet (the rest is never sent). ``after=0``
    drops the connection instead of sending the first series packet. ``code`` picks how (see the
    module docstring): 1006 (default, abrupt TCP close), 1005 (close frame without status) or a
    close code.
    """

    after: int = 1
    code: int = 1006
    reason: str = ""

    def __post_init__(self) -> None:
        _check_non_negative(self.after, "after")
        _check_code(self.code)


@dataclass(frozen=True)
class RequestRate(Fault):
    """Close a client that sends more than ``max_requests`` packets within ``window`` seconds.

    Heartbeat echoes do not count. ``code`` as for :class:`Drop` (default 1008, policy violation).
    """

    max_requests: int = 20
    window: float = 1.0
    code: int = 1008
    reason: str = "too many requests"

    def __post_init__(self) -> None:
        if self.max_requests < 1:
            raise ValueError("max_requests must be >= 1")
        if self.window <= 0:
            raise ValueError("window must be > 0")
        _check_code(self.code)


@dataclass(frozen=True)
class Malformed(Fault):
    """Send one malformed message (``kind`` from :data:`MALFORMED_KINDS`).

    It goes out just before the first data message sent once ``after`` series packets have been
    sent; with ``close=True`` the server then drops the connection (code 1006), otherwise it
    carries on normally.
    """

    kind: str = "bad_length"
    after: int = 0
    close: bool = False

    def __post_init__(self) -> None:
        if self.kind not in MALFORMED_KINDS:
            raise ValueError(f"kind must be one of {', '.join(MALFORMED_KINDS)}")
        _check_non_negative(self.after, "after")


@dataclass(frozen=True)
class HugeFrame(Fault):
    """Make every ``timescale_update`` message at least ``size`` characters long.

    The padding goes into the series payload's ``node`` field (a string clients ignore), so the
    bars are unchanged and the message stays a valid, single packet.
    """

    size: int = 4_000_000

    def __post_init__(self) -> None:
        if self.size < 1:
            raise ValueError("size must be >= 1")


@dataclass(frozen=True)
class SlowDrip(Fault):
    """Deliver each message of at least ``min_size`` characters slowly, ``chunk`` at a time.

    ``level="fragments"`` (default) sends the message as a fragmented WebSocket message (a text
    frame then continuation frames of ``chunk`` characters, RFC 6455 §5.4), waiting ``delay``
    seconds between frames; clients see one message once the last fragment arrives.
    ``level="bytes"`` writes one unfragmented frame ``chunk`` bytes at a time, ``delay`` apart,
    so the client's socket sees a partial frame for a while (a slow network).
    """

    chunk: int = 1024
    delay: float = 0.05
    min_size: int = 0
    level: str = "fragments"

    def __post_init__(self) -> None:
        if self.chunk < 1:
            raise ValueError("chunk must be >= 1")
        _check_non_negative(self.delay, "delay")
        _check_non_negative(self.min_size, "min_size")
        if self.level not in ("fragments", "bytes"):
            raise ValueError("level must be 'fragments' or 'bytes'")


@dataclass(frozen=True)
class ActiveFaults:
    """The faults in force on one connection (first of each kind that applies). Immutable."""

    latency: Latency | None = None
    stall: Stall | None = None
    drop: Drop | None = None
    rate: RequestRate | None = None
    malformed: Malformed | None = None
    huge: HugeFrame | None = None
    drip: SlowDrip | None = None

    @classmethod
    def select(cls, faults: Iterable[Fault], attempt: int) -> ActiveFaults:
        """The faults of ``faults`` that apply to ``attempt``."""
        found: dict[str, Fault] = {}
        names = {
            Latency: "latency",
            Stall: "stall",
            Drop: "drop",
            RequestRate: "rate",
            Malformed: "malformed",
            HugeFrame: "huge",
            SlowDrip: "drip",
        }
        for fault in faults:
            name = names.get(type(fault))
            if name is not None and name not in found and fault.applies_to(attempt):
                found[name] = fault
        return cls(**found)  # type: ignore[arg-type]

    def names(self) -> list[str]:
        """Class names of the active faults (for logs and the connection log)."""
        return [
            type(f).__name__
            for f in (
                self.latency,
                self.stall,
                self.drop,
                self.rate,
                self.malformed,
                self.huge,
                self.drip,
            )
            if f is not None
        ]
