"""Configuration and statistics value objects of the fake server."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from ._faults import Fault
from ._market import HistoryDepth

__all__ = [
    "DEFAULT_BAR_CAPS",
    "TRADINGVIEW_ORIGIN",
    "ConnectionRecord",
    "FakeServerConfig",
    "ServerStats",
]

#: The only Origin known to be accepted by the real server (PROTOCOL.md §2).
TRADINGVIEW_ORIGIN = "https://www.tradingview.com"

#: Bars per series by plan (PROTOCOL.md §18); ``"anonymous"`` is the unauthenticated cap.
DEFAULT_BAR_CAPS: Mapping[str, int] = MappingProxyType(
    {
        "anonymous": 5_000,
        "": 5_000,
        "pro": 10_000,
        "pro_plus": 10_000,
        "pro_premium": 20_000,
        "expert": 25_000,
        "elite": 30_000,
        "ultimate": 40_000,
    }
)

_PACKINGS = ("round", "split")


@dataclass(frozen=True)
class FakeServerConfig:
    """Everything :class:`~tvadapter.testing.FakeTradingView` can be configured with.

    All durations are in seconds. Immutable; validated on construction (ValueError naming the
    parameter). See the :mod:`tvadapter.testing` docstring for the meaning of each field.
    Passwords and the TOTP code are kept out of the repr.
    """

    host: str = "127.0.0.1"
    port: int = 0
    http_port: int = 0
    heartbeat_interval: float = 10.0
    heartbeat_timeout: float | None = None
    enforce_heartbeats: bool = True
    heartbeat_close_code: int = 1000
    allowed_origins: tuple[str, ...] | None = (TRADINGVIEW_ORIGIN,)
    max_connections: int | None = None
    users: Mapping[str, str] = field(default_factory=dict, repr=False)
    user_plans: Mapping[str, str] = field(default_factory=dict)
    captcha_users: frozenset[str] = frozenset()
    twofa_users: frozenset[str] = frozenset()
    totp_code: str = field(default="123456", repr=False)
    token_lifetime: float = 14_400.0
    strict_tokens: bool = False
    bar_caps: Mapping[str, int] = field(default_factory=lambda: dict(DEFAULT_BAR_CAPS))
    intraday_depth: int = 30_000
    history_depth: HistoryDepth = None
    data_end: float | None = None
    live: bool = False
    bar_seconds: float | None = None
    updates_per_bar: int = 2
    serve_forming_bar: bool = True
    packing: str = "round"
    mix_heartbeats: bool = False
    extra_timescale_updates: bool = False
    login_required_exchanges: frozenset[str] = frozenset()
    faults: tuple[Fault, ...] = ()
    close_timeout: float = 2.0
    hello_extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.port, int) or not 0 <= self.port <= 65535:
            raise ValueError("port must be an int in 0..65535")
        if not isinstance(self.http_port, int) or not 0 <= self.http_port <= 65535:
            raise ValueError("http_port must be an int in 0..65535")
        _positive(self.heartbeat_interval, "heartbeat_interval")
        if self.heartbeat_timeout is not None:
            _positive(self.heartbeat_timeout, "heartbeat_timeout")
        if self.max_connections is not None and self.max_connections < 1:
            raise ValueError("max_connections must be >= 1 or None")
        _positive(self.token_lifetime, "token_lifetime")
        if self.intraday_depth < 1:
            raise ValueError("intraday_depth must be >= 1")
        if isinstance(self.history_depth, int) and self.history_depth < 1:
            raise ValueError("history_depth must be >= 1")
        for plan, cap in self.bar_caps.items():
            if not isinstance(cap, int) or cap < 1:
                raise ValueError(f"bar_caps[{plan!r}] must be an int >= 1")
        if self.bar_seconds is not None:
            _positive(self.bar_seconds, "bar_seconds")
        if self.updates_per_bar < 1:
            raise ValueError("updates_per_bar must be >= 1")
        if self.packing not in _PACKINGS:
            raise ValueError(f"packing must be one of {', '.join(_PACKINGS)}")
        if not all(isinstance(f, Fault) for f in self.faults):
            raise TypeError("faults must be Fault objects")
        _positive(self.close_timeout, "close_timeout")
        if self.data_end is not None and not math.isfinite(self.data_end):
            raise ValueError("data_end must be a finite epoch time")
        if not self.totp_code:
            raise ValueError("totp_code must not be empty")

    @property
    def echo_timeout(self) -> float | None:
        """Seconds a client has to echo a heartbeat; ``None`` when not enforced."""
        if not self.enforce_heartbeats:
            return None
        return (
            self.heartbeat_timeout
            if self.heartbeat_timeout is not None
            else (self.heartbeat_interval)
        )

    def cap_for(self, plan: str | None) -> int:
        """Bars per series for ``plan`` (``None`` = anonymous)."""
        key = "anonymous" if plan is None else plan
        if key in self.bar_caps:
            return self.bar_caps[key]
        return self.bar_caps.get("", DEFAULT_BAR_CAPS[""])


def _positive(value: float, name: str) -> None:
    if not isinstance(value, (int, float)) or not value > 0 or not math.isfinite(value):
        raise ValueError(f"{name} must be a positive number of seconds")


@dataclass(frozen=True)
class ConnectionRecord:
    """What happened to one connection attempt (see ``FakeTradingView.connection_log()``).

    ``status`` is the HTTP status of the upgrade (101 when accepted); ``close_code`` the code the
    server closed with (1005/1006 as for faults; ``None`` when the client closed first or the
    connection is still open); ``faults`` the class names of the faults in force.
    """

    attempt: int
    origin: str | None
    path: str
    status: int
    faults: tuple[str, ...] = ()
    auth: str = "none"
    close_code: int | None = None
    close_reason: str = ""
    requests: int = 0
    heartbeats_sent: int = 0
    heartbeats_echoed: int = 0


@dataclass(frozen=True)
class ServerStats:
    """A consistent snapshot of the server's counters. Immutable."""

    connection_attempts: int
    handshakes_accepted: int
    handshakes_rejected: int
    rejections: Mapping[int, int]
    open_connections: int
    messages_received: int
    requests: Mapping[str, int]
    heartbeats_sent: int
    heartbeat_echoes: int
    missed_heartbeat_closes: int
    bars_served: int
    series_rounds: int
    http_requests: Mapping[str, int]
