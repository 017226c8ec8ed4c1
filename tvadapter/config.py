"""Network configuration for :mod:`tvadapter`: endpoints, handshake headers, timeouts, retry,
rate limit, connection reuse.

:class:`NetworkConfig` is a frozen, validated value object (all durations in seconds).  Build it
directly, from the environment with :meth:`NetworkConfig.from_env`, or derive a variant with
:meth:`NetworkConfig.replace`.  Defaults point at the real TradingView endpoints.

Origin (PROTOCOL.md §2): the WebSocket upgrade must carry exactly one
``Origin: https://www.tradingview.com``.  The transport hands :attr:`NetworkConfig.origin` to
websocket-client's ``origin=`` keyword (its ``headers=`` keyword is silently ignored, and an
``Origin`` entry in ``header=`` produces a *second* Origin line).  An ``Origin`` key given in
``ws_headers`` is therefore folded into :attr:`~NetworkConfig.origin` and removed from the
headers, so it can never be sent twice.
"""

from __future__ import annotations

import dataclasses
import math
import os
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from resilience.backoff import Backoff, Jitter, JitterName

from .errors import ConfigurationError

__all__ = [
    "DEFAULT_HOME_URL",
    "DEFAULT_ORIGIN",
    "DEFAULT_SEARCH_URL",
    "DEFAULT_SIGNIN_URL",
    "DEFAULT_TOTP_URL",
    "DEFAULT_USER_AGENT",
    "DEFAULT_WS_URL",
    "ENV_VARIABLES",
    "PRODATA_WS_URL",
    "NetworkConfig",
]

#: The free/anonymous data server, with the chart query string the web front end and several
#: clients use (PROTOCOL.md §1; ``type=chart`` is what allows studies on the connection).
DEFAULT_WS_URL = "wss://data.tradingview.com/socket.io/websocket?from=chart%2F&type=chart"
#: The server for paid plans (needed to get past the ~5,000-bar cap of ``data``, §18).
PRODATA_WS_URL = "wss://prodata.tradingview.com/socket.io/websocket?from=chart%2F&type=chart"
#: The only Origin known to be accepted by the WebSocket upgrade (§2).
DEFAULT_ORIGIN = "https://www.tradingview.com"
DEFAULT_SEARCH_URL = "https://symbol-search.tradingview.com/symbol_search/v3/"
DEFAULT_SIGNIN_URL = "https://www.tradingview.com/accounts/signin/"
DEFAULT_TOTP_URL = "https://www.tradingview.com/accounts/two-factor/signin/totp/"
#: The page whose HTML carries ``"auth_token":"…"`` for a signed-in session cookie (§16.2).
DEFAULT_HOME_URL = "https://www.tradingview.com/"
#: A desktop browser User-Agent, as several clients send (optional, §2 "Other headers").
DEFAULT_USER_AGENT = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36"
)

# Headers websocket-client writes itself during the upgrade: setting them again would send
# them twice or break the handshake.
_RESERVED_HEADERS = frozenset(
    {
        "host",
        "upgrade",
        "connection",
        "sec-websocket-key",
        "sec-websocket-version",
        "sec-websocket-extensions",
        "content-length",
    }
)
_HEADER_NAME_CHARS = frozenset(
    "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
)


# --------------------------------------------------------------------------------------------
# Validators.  Each takes the label to name in its message (a field name, or an environment
# variable name when called from from_env) and the value, and returns the normalized value.
# --------------------------------------------------------------------------------------------


def _bad(label: str, message: str) -> ConfigurationError:
    return ConfigurationError(f"{label} {message}")


def _reject_bool(label: str, value: object) -> None:
    if isinstance(value, bool):
        raise _bad(label, f"must be a number, not a bool ({value!r})")


def _positive_seconds(label: str, value: object) -> float:
    _reject_bool(label, value)
    if not isinstance(value, (int, float)):
        raise _bad(label, f"must be a number of seconds, got {type(value).__name__}")
    number = float(value)
    if not (math.isfinite(number) and number > 0):
        raise _bad(label, f"must be finite and > 0 seconds, got {value!r}")
    return number


def _non_negative_seconds(label: str, value: object) -> float:
    _reject_bool(label, value)
    if not isinstance(value, (int, float)):
        raise _bad(label, f"must be a number of seconds, got {type(value).__name__}")
    number = float(value)
    if not (math.isfinite(number) and number >= 0):
        raise _bad(label, f"must be finite and >= 0 seconds, got {value!r}")
    return number


def _age_seconds(label: str, value: object) -> float:
    """> 0; ``math.inf`` allowed (never retire a connection for age)."""
    _reject_bool(label, value)
    if not isinstance(value, (int, float)):
        raise _bad(label, f"must be a number of seconds, got {type(value).__name__}")
    number = float(value)
    if math.isnan(number) or number <= 0:
        raise _bad(label, f"must be > 0 seconds (inf for no limit), got {value!r}")
    return number


def _optional_seconds(label: str, value: object) -> float | None:
    return None if value is None else _positive_seconds(label, value)


def _int_at_least(minimum: int) -> Callable[[str, object], int]:
    def check(label: str, value: object) -> int:
        _reject_bool(label, value)
        if not isinstance(value, int):
            raise _bad(label, f"must be an int, got {type(value).__name__}")
        if value < minimum:
            raise _bad(label, f"must be >= {minimum}, got {value!r}")
        return value

    return check


def _boolean(label: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise _bad(label, f"must be a bool, got {type(value).__name__}")
    return value


def _check_text(label: str, value: object) -> str:
    if not isinstance(value, str):
        raise _bad(label, f"must be a str, got {type(value).__name__}")
    if any(ch in value for ch in "\r\n\x00"):
        raise _bad(label, "must not contain CR, LF or NUL characters")
    return value


def _url(schemes: tuple[str, ...]) -> Callable[[str, object], str]:
    def check(label: str, value: object) -> str:
        text = _check_text(label, value)
        if any(ch.isspace() for ch in text):
            raise _bad(label, "must not contain whitespace")
        try:
            parts = urllib.parse.urlsplit(text)
            parts.port  # noqa: B018 - raises ValueError for a bad port
        except ValueError as exc:
            raise _bad(label, f"is not a valid URL ({exc})") from None
        if parts.scheme.lower() not in schemes:
            wanted = " or ".join(f"{s}://" for s in schemes)
            raise _bad(label, f"must start with {wanted}, got scheme {parts.scheme!r}")
        if not parts.hostname:
            raise _bad(label, "must name a host")
        return text

    return check


_ws_url = _url(("ws", "wss"))
_http_url = _url(("http", "https"))


def _origin(label: str, value: object) -> str:
    text = _http_url(label, value)
    parts = urllib.parse.urlsplit(text)
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
        raise _bad(label, "must be scheme://host[:port] only (an Origin has no path or query)")
    return text.rstrip("/")


def _optional_redis_url(label: str, value: object) -> str | None:
    if value is None:
        return None
    return _url(("redis", "rediss", "unix"))(label, value)


def _optional_user_agent(label: str, value: object) -> str | None:
    if value is None:
        return None
    text = _check_text(label, value).strip()
    if not text:
        raise _bad(label, "must not be empty (use None to send no User-Agent)")
    return text


def _headers(label: str, value: object) -> dict[str, str]:
    """A plain dict copy of a mapping or an iterable of (name, value) pairs, checked."""
    items: Iterable[Any]
    if value is None:
        items = ()
    elif isinstance(value, Mapping):
        items = value.items()
    elif isinstance(value, (str, bytes)):
        raise _bad(label, "must be a mapping or (name, value) pairs, not a string")
    elif isinstance(value, Iterable):
        items = value
    else:
        raise _bad(
            label, f"must be a mapping of header names to values, got {type(value).__name__}"
        )
    result: dict[str, str] = {}
    seen: set[str] = set()
    for item in items:
        try:
            name, header_value = item
        except (TypeError, ValueError):
            raise _bad(label, "must contain (name, value) pairs") from None
        if not isinstance(name, str) or not isinstance(header_value, str):
            raise _bad(label, "header names and values must be str")
        if not name or not set(name) <= _HEADER_NAME_CHARS:
            raise _bad(label, f"has an invalid header name {name!r}")
        if any(ch in header_value for ch in "\r\n\x00"):
            # Never echo the value: it may be a cookie.
            raise _bad(label, f"header {name!r} has a value with CR, LF or NUL")
        lowered = name.lower()
        if lowered in _RESERVED_HEADERS:
            raise _bad(label, f"must not set {name!r}: the WebSocket handshake writes it itself")
        if lowered in seen:
            raise _bad(label, f"sets header {name!r} more than once")
        seen.add(lowered)
        result[name] = header_value
    return result


def _redact_url(url: str | None) -> str | None:
    """``url`` with any password replaced by ``***`` (for reprs)."""
    if url is None:
        return None
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    user = parts.username or ""
    return urllib.parse.urlunsplit(
        (parts.scheme, f"{user}:***@{host}", parts.path, parts.query, parts.fragment)
    )


# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, repr=False)
class NetworkConfig:
    """Network settings for the TradingView client; frozen and validated (seconds everywhere).

    Immutable, hence safe to share between threads.  Invalid values raise
    :class:`~tvadapter.errors.ConfigurationError` (a :class:`ValueError`) naming the field.

    Endpoints
        ``ws_url`` (``ws://``/``wss://``; :data:`DEFAULT_WS_URL` is the free ``data`` server,
        :data:`PRODATA_WS_URL` the paid-plan one), ``origin`` (the single Origin header of the
        upgrade), ``search_url``, ``signin_url``, ``totp_url``, ``home_url`` (HTTP side).
    ``ws_headers``
        Extra upgrade headers (a mapping or ``(name, value)`` pairs; stored read-only).  An
        ``Origin`` entry replaces ``origin`` and is removed, so exactly one Origin is sent;
        handshake headers (Host, Upgrade, Sec-WebSocket-*) are refused.  ``user_agent`` is sent
        as ``User-Agent`` unless ``ws_headers`` has its own (None: send none).
    Timeouts
        ``connect_timeout`` (TCP + TLS + upgrade, one attempt), ``send_timeout`` (one message),
        ``recv_timeout`` (waiting for one data message), ``progress_timeout`` (the longest a
        request may go without *data*; heartbeats do not count), ``ping_timeout`` (the health
        check's pong), ``request_deadline`` (the whole of one user request, retries included;
        None for no limit).
    Retry
        ``max_retries`` retries after the first attempt, waits growing from
        ``base_retry_delay`` by x2 up to ``max_retry_delay``, with jitter.
    Rate limit
        ``requests_per_minute`` sustained and ``burst_size`` at once, per client (or shared by
        every process using ``redis_url``).
    Reuse
        ``reuse_connections``: keep one socket for successive requests, replaced after
        ``max_connection_age`` seconds (inf: never) and health-checked with a WebSocket ping
        when it has been silent for ``health_check_after`` seconds.
    """

    ws_url: str = DEFAULT_WS_URL
    ws_headers: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    origin: str = DEFAULT_ORIGIN
    user_agent: str | None = DEFAULT_USER_AGENT

    connect_timeout: float = 10.0
    send_timeout: float = 5.0
    recv_timeout: float = 30.0
    # 30 s = three heartbeat periods (PROTOCOL.md §5): a live socket always says something by
    # then, and a socket carrying only heartbeats (expired token, §16) is caught in 30 s.
    progress_timeout: float = 30.0
    ping_timeout: float = 5.0
    # A 20,000-bar request is four or five 520 KB rounds; two minutes covers that on a slow
    # link with a retry or two, and still bounds a stuck request.
    request_deadline: float | None = 120.0

    max_retries: int = 3
    base_retry_delay: float = 2.0
    max_retry_delay: float = 60.0

    # TradingView blocks clients that loop on get_hist (PROTOCOL.md §18: rongardF#18, #39);
    # users who avoid it space calls 7-11 s apart (StreamAlpha#82).  10 per minute (one every
    # 6 s sustained) stays near that proven spacing, and a burst of 10 still lets a short
    # script fetch a handful of symbols at once.  The original design's 60/min is what gets
    # accounts blocked.  Raise both for the fake server or a known-generous plan.
    requests_per_minute: int = 10
    burst_size: int = 10

    reuse_connections: bool = True
    # TradingView cuts long-lived sockets (1005 "after a while") and one report saw data stop
    # after ~30 heartbeats, i.e. ~5 min (§18): retire a socket after 5 minutes.
    max_connection_age: float = 300.0
    # Heartbeats come every 10 s: 10 s of silence on a kept connection earns a ping first.
    health_check_after: float = 10.0

    search_url: str = DEFAULT_SEARCH_URL
    signin_url: str = DEFAULT_SIGNIN_URL
    totp_url: str = DEFAULT_TOTP_URL
    home_url: str = DEFAULT_HOME_URL

    # Shared rate limits / breaker state across processes (resilience Redis backend).
    redis_url: str | None = None

    def __post_init__(self) -> None:
        values: dict[str, Any] = {}
        for name, check in _FIELD_CHECKS.items():
            values[name] = check(name, getattr(self, name))
        headers: dict[str, str] = values["ws_headers"]
        origin_keys = [k for k in headers if k.lower() == "origin"]
        for key in origin_keys:
            # Fold the Origin header into `origin` (validated as an origin) so it is sent once.
            values["origin"] = _origin(f"ws_headers[{key!r}]", headers.pop(key))
        values["ws_headers"] = MappingProxyType(headers)
        if values["max_retry_delay"] < values["base_retry_delay"]:
            raise ConfigurationError(
                f"max_retry_delay ({values['max_retry_delay']!r}) must be >= "
                f"base_retry_delay ({values['base_retry_delay']!r})"
            )
        for name, value in values.items():
            object.__setattr__(self, name, value)

    # -- derived values -------------------------------------------------------------------

    def handshake_headers(self) -> list[str]:
        """The extra upgrade header lines (``"Name: value"``), never including Origin.

        Pass them as websocket-client's ``header=`` list together with ``origin=self.origin``.
        """
        lines = [f"{name}: {value}" for name, value in self.ws_headers.items()]
        if self.user_agent is not None and not any(
            name.lower() == "user-agent" for name in self.ws_headers
        ):
            lines.append(f"User-Agent: {self.user_agent}")
        return lines

    def retry_backoff(self, jitter: Jitter | JitterName = "full") -> Backoff:
        """The wait between retries: ``base_retry_delay`` growing x2 up to ``max_retry_delay``."""
        return Backoff(
            base=self.base_retry_delay, factor=2.0, cap=self.max_retry_delay, jitter=jitter
        )

    def replace(self, **changes: Any) -> NetworkConfig:
        """A copy with ``changes`` applied (validated like the constructor)."""
        return dataclasses.replace(self, **changes)

    # -- environment ----------------------------------------------------------------------

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> NetworkConfig:
        """A config from ``TV_*`` environment variables (``os.environ`` by default).

        Variables (see :data:`ENV_VARIABLES`): ``TV_WS_URL``, ``TV_ORIGIN``, ``TV_SEARCH_URL``,
        ``TV_SIGNIN_URL``, ``TV_CONNECT_TIMEOUT``, ``TV_SEND_TIMEOUT``, ``TV_RECV_TIMEOUT``,
        ``TV_PROGRESS_TIMEOUT``, ``TV_REQUEST_DEADLINE`` (``none`` for no limit),
        ``TV_MAX_RETRIES``, ``TV_BASE_RETRY_DELAY``, ``TV_MAX_RETRY_DELAY``,
        ``TV_REQUESTS_PER_MINUTE``, ``TV_BURST_SIZE``, ``TV_REUSE_CONNECTIONS`` (true/false),
        ``TV_MAX_CONNECTION_AGE``, ``TV_REDIS_URL``.  Unset or empty variables keep the
        default; keyword ``overrides`` win over the environment.  A bad value raises
        :class:`~tvadapter.errors.ConfigurationError` naming the variable (never echoing a
        value that may hold a secret, such as a Redis password).
        """
        env = os.environ if environ is None else environ
        kwargs: dict[str, Any] = {}
        used: dict[str, str] = {}
        for variable, (name, parse) in ENV_VARIABLES.items():
            if name in overrides:
                continue
            raw = env.get(variable)
            if raw is None or not raw.strip():
                continue
            value = parse(variable, raw.strip())
            kwargs[name] = _FIELD_CHECKS[name](variable, value)
            used[name] = variable
        kwargs.update(overrides)
        try:
            return cls(**kwargs)
        except ConfigurationError as exc:
            # Cross-field problems: say which variables were involved.
            involved = ", ".join(sorted(used[n] for n in used if n in str(exc)))
            if involved:
                raise ConfigurationError(f"{exc} (from environment: {involved})") from None
            raise

    # -- dunder -----------------------------------------------------------------------------

    def __hash__(self) -> int:
        return hash(
            tuple(
                tuple(sorted(v.items())) if isinstance(v, Mapping) else v
                for v in (getattr(self, f.name) for f in dataclasses.fields(self))
            )
        )

    def __repr__(self) -> str:
        parts = []
        for f in dataclasses.fields(self):
            value: Any = getattr(self, f.name)
            if f.name == "ws_headers":
                # Header values may be cookies: show names only.
                value = sorted(value)
            elif f.name == "redis_url":
                value = _redact_url(value)
            parts.append(f"{f.name}={value!r}")
        return f"NetworkConfig({', '.join(parts)})"


_FIELD_CHECKS: dict[str, Callable[[str, Any], Any]] = {
    "ws_url": _ws_url,
    "ws_headers": _headers,
    "origin": _origin,
    "user_agent": _optional_user_agent,
    "connect_timeout": _positive_seconds,
    "send_timeout": _positive_seconds,
    "recv_timeout": _positive_seconds,
    "progress_timeout": _positive_seconds,
    "ping_timeout": _positive_seconds,
    "request_deadline": _optional_seconds,
    "max_retries": _int_at_least(0),
    "base_retry_delay": _non_negative_seconds,
    "max_retry_delay": _non_negative_seconds,
    "requests_per_minute": _int_at_least(1),
    "burst_size": _int_at_least(1),
    "reuse_connections": _boolean,
    "max_connection_age": _age_seconds,
    "health_check_after": _non_negative_seconds,
    "search_url": _http_url,
    "signin_url": _http_url,
    "totp_url": _http_url,
    "home_url": _http_url,
    "redis_url": _optional_redis_url,
}


def _parse_float(variable: str, raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ConfigurationError(f"{variable} must be a number of seconds") from None
    if not math.isfinite(value):
        raise ConfigurationError(f"{variable} must be a finite number of seconds")
    return value


def _parse_age(variable: str, raw: str) -> float:
    if raw.lower() in ("inf", "infinity", "none"):
        return math.inf
    return _parse_float(variable, raw)


def _parse_optional_float(variable: str, raw: str) -> float | None:
    if raw.lower() in ("none", "null", "off"):
        return None
    return _parse_float(variable, raw)


def _parse_int(variable: str, raw: str) -> int:
    try:
        return int(raw, 10)
    except ValueError:
        raise ConfigurationError(f"{variable} must be a whole number") from None


_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


def _parse_bool(variable: str, raw: str) -> bool:
    lowered = raw.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ConfigurationError(f"{variable} must be true or false (1/0, yes/no, on/off)")


def _parse_str(variable: str, raw: str) -> str:
    del variable
    return raw


def _parse_secret_url(variable: str, raw: str) -> str:
    """A URL that may embed a password: validation errors must not echo it."""
    try:
        return _optional_redis_url(variable, raw) or raw
    except ConfigurationError:
        raise ConfigurationError(
            f"{variable} must be a redis://, rediss:// or unix:// URL naming a host"
        ) from None


#: Environment variable -> (NetworkConfig field, parser).
ENV_VARIABLES: Mapping[str, tuple[str, Callable[[str, str], Any]]] = MappingProxyType(
    {
        "TV_WS_URL": ("ws_url", _parse_str),
        "TV_ORIGIN": ("origin", _parse_str),
        "TV_SEARCH_URL": ("search_url", _parse_str),
        "TV_SIGNIN_URL": ("signin_url", _parse_str),
        "TV_CONNECT_TIMEOUT": ("connect_timeout", _parse_float),
        "TV_SEND_TIMEOUT": ("send_timeout", _parse_float),
        "TV_RECV_TIMEOUT": ("recv_timeout", _parse_float),
        "TV_PROGRESS_TIMEOUT": ("progress_timeout", _parse_float),
        "TV_REQUEST_DEADLINE": ("request_deadline", _parse_optional_float),
        "TV_MAX_RETRIES": ("max_retries", _parse_int),
        "TV_BASE_RETRY_DELAY": ("base_retry_delay", _parse_float),
        "TV_MAX_RETRY_DELAY": ("max_retry_delay", _parse_float),
        "TV_REQUESTS_PER_MINUTE": ("requests_per_minute", _parse_int),
        "TV_BURST_SIZE": ("burst_size", _parse_int),
        "TV_REUSE_CONNECTIONS": ("reuse_connections", _parse_bool),
        "TV_MAX_CONNECTION_AGE": ("max_connection_age", _parse_age),
        "TV_REDIS_URL": ("redis_url", _parse_secret_url),
    }
)
