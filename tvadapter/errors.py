"""Exceptions raised by :mod:`tvadapter`.

Everything the package raises derives from :class:`TvError`::

    TvError
    ├── ConfigurationError (+ ValueError)      bad configuration or arguments
    ├── TvConnectionError (+ ConnectionError)  could not connect, or the connection was lost
    │   ├── ConnectionClosed                   the WebSocket closed (``code`` when known)
    │   └── HandshakeRejected                  the upgrade got an HTTP status (403, 429, 503...)
    │       ├── HandshakeRateLimited           HTTP 429 (+ RateLimitedError, ``retry_after``)
    │       └── HandshakeForbidden             403/401/404: not retryable (+ ConfigurationError)
    ├── TvTimeoutError (+ TimeoutError)        no progress / the request deadline passed
    ├── RateLimitedError                       server or own limiter refused (``retry_after``)
    ├── TvCircuitOpenError                     our circuit breaker is open (``retry_after``)
    ├── HttpStatusError                        an HTTP endpoint answered a non-2xx status
    ├── SymbolNotFoundError (+ LookupError)    ``symbol_error`` / no such symbol
    ├── SeriesError                            ``series_error`` (e.g. ``custom_resolution``)
    ├── CriticalError                          ``critical_error`` (misuse reported by the server)
    ├── AuthenticationError                    sign-in or token problems
    │   ├── InvalidCredentialsError            wrong username or password
    │   ├── CaptchaRequiredError               ``recaptcha_required``
    │   ├── TwoFactorRequiredError             ``2FA_required``
    │   └── TokenExpiredError                  heartbeat-only session / bad auth token
    ├── ProtocolError                          the peer broke the protocol
    │   ├── FramingError                       malformed ``~m~N~m~`` framing
    │   ├── MalformedPayloadError              a packet that is not the JSON it must be
    │   └── ServerProtocolError                the server sent ``protocol_error``
    ├── DataIncompleteError                    the data received fails the integrity checks
    └── LocalProtocolError (+ RuntimeError)    we misused the protocol core (a bug of ours)

Messages never contain secrets (passwords, tokens, cookies).
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "AuthenticationError",
    "CaptchaRequiredError",
    "ConfigurationError",
    "CriticalError",
    "DataIncompleteError",
    "FramingError",
    "HandshakeRejected",
    "InvalidCredentialsError",
    "MalformedPayloadError",
    "ProtocolError",
    "RateLimitedError",
    "SeriesError",
    "ServerProtocolError",
    "SymbolNotFoundError",
    "TokenExpiredError",
    "TvCircuitOpenError",
    "TvConnectionError",
    "TvError",
    "TvTimeoutError",
    "TwoFactorRequiredError",
]


class TvError(Exception):
    """Root of every exception :mod:`tvadapter` raises.

    Every one survives ``pickle`` and ``copy`` with its fields (bulk workers and
    multiprocessing send exceptions across), although several take keyword-only arguments.
    """

    def __reduce__(self) -> tuple[Any, ...]:
        # The default reduce calls cls(*args), which misses keyword-only arguments: rebuild
        # without __init__ and restore the fields from the instance dict instead.
        return (_restore_error, (type(self), self.args), self.__dict__ or None)


def _restore_error(cls: type[TvError], args: tuple[Any, ...]) -> TvError:
    error = cls.__new__(cls)
    error.args = args  # __new__ keeps args only for classes without their own __init__
    return error


class ConfigurationError(TvError, ValueError):
    """Bad configuration or arguments."""


class TvConnectionError(TvError, ConnectionError):
    """Could not connect to the server, or the connection was lost."""


class HandshakeRejected(TvConnectionError):
    """The WebSocket upgrade was answered with an HTTP error status (``status``)."""

    def __init__(self, message: str, *, status: int) -> None:
        super().__init__(message)
        self.status = status


class TvTimeoutError(TvError, TimeoutError):
    """No progress within the configured timeout, or the request deadline passed."""


class RateLimitedError(TvError):
    """Rate limited, by the server (HTTP 429, request-rate close) or by our own limiter."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class TvCircuitOpenError(TvError):
    """Our circuit breaker is open: calls are rejected for ``retry_after`` seconds."""

    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class SymbolNotFoundError(TvError, LookupError):
    """The server does not know the symbol (``symbol_error``)."""


class SeriesError(TvError):
    """The server refused the series (``series_error``), e.g. ``custom_resolution``."""


class CriticalError(TvError):
    """The server reported misuse (``critical_error``)."""


class AuthenticationError(TvError):
    """Signing in failed, or the token is not accepted."""


class InvalidCredentialsError(AuthenticationError):
    """Wrong username or password."""


class CaptchaRequiredError(AuthenticationError):
    """TradingView asks for a captcha (``recaptcha_required``): sign in with a session cookie."""


class TwoFactorRequiredError(AuthenticationError):
    """TradingView asks for a second factor (``2FA_required``)."""


class TokenExpiredError(AuthenticationError):
    """The auth token was refused or has expired (a heartbeat-only session)."""


class ProtocolError(TvError):
    """The peer broke the TradingView protocol."""


class FramingError(ProtocolError):
    """Malformed ``~m~N~m~`` framing."""


class MalformedPayloadError(ProtocolError):
    """A packet whose payload is not the JSON it must be."""


class ServerProtocolError(ProtocolError):
    """The server sent ``protocol_error`` (for example ``bad auth token``)."""


class DataIncompleteError(TvError):
    """The received data failed the integrity checks (count, order, gaps)."""


# --- appended by the auth/search helper (HTTP endpoints: sign-in, token page, symbol search) ---


class HttpStatusError(TvError):
    """An HTTP endpoint (sign-in, token page, symbol search) answered with an error ``status``.

    ``retry_after`` holds the server's ``Retry-After`` in seconds when it sent one (503s often
    do), else None.  ``retryable`` is true for statuses worth retrying (408, 425, 5xx).  HTTP 429
    is not this class: it is :class:`RateLimitedError`.
    """

    def __init__(self, message: str, *, status: int, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after

    @property
    def retryable(self) -> bool:
        """True for statuses where trying again later may succeed (408, 425 and 5xx)."""
        return self.status in (408, 425) or self.status >= 500


__all__ += ["HttpStatusError"]


# --- appended by the connection helper (WebSocket transport and WebSocketManager) ---


class ConnectionClosed(TvConnectionError):
    """The WebSocket closed; ``code`` is its close code when known.

    1000 clean close, 1005 a close frame without a status (TradingView cuts long-lived sockets
    this way), 1006 abnormal (the TCP connection dropped without a close frame), 1002/1007 the
    peer broke the WebSocket protocol.  ``by_client`` is true when our side closed it
    (``WebSocketManager.disconnect()``), false when the server or the network did.
    """

    def __init__(
        self, message: str, *, code: int | None = None, reason: str = "", by_client: bool = False
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.by_client = by_client


class HandshakeRateLimited(HandshakeRejected, RateLimitedError):
    """The WebSocket upgrade got HTTP 429 (too many connections): retry after ``retry_after``."""

    def __init__(
        self, message: str, *, status: int = 429, retry_after: float | None = None
    ) -> None:
        HandshakeRejected.__init__(self, message, status=status)
        self.retry_after = retry_after


class HandshakeForbidden(HandshakeRejected, ConfigurationError):
    """The WebSocket upgrade was refused for good (403 wrong Origin, 401, 404 wrong URL...).

    Retrying cannot help: the configuration (``origin``, ``ws_url``, headers) must change.
    """


__all__ += ["ConnectionClosed", "HandshakeForbidden", "HandshakeRateLimited"]


class LocalProtocolError(TvError, RuntimeError):
    """We asked the protocol core for something its state forbids (e.g. sending after close).

    A local programming error, deliberately *not* a :class:`ProtocolError` (which means the peer
    sent garbage), so that ``except ProtocolError`` never hides a bug of ours.
    """


__all__ += ["LocalProtocolError"]
