"""A tiny HTTP client on the standard library, for TradingView's HTTP endpoints.

Sign-in, the token page and symbol search are a handful of small requests, so this wraps
:mod:`urllib.request` instead of adding a dependency.  It does four things urllib leaves to the
caller:

* **Typed errors.**  Every failure leaves as a :mod:`tvadapter.errors` exception, converted at
  this boundary with ``raise ... from exc``: no answer in time -> :class:`TvTimeoutError`;
  refused / reset / DNS failure -> :class:`TvConnectionError`; HTTP 429 ->
  :class:`RateLimitedError` with ``retry_after`` parsed from ``Retry-After`` (both its
  delta-seconds and HTTP-date forms); any other non-2xx -> :class:`HttpStatusError` carrying
  ``status``.
* **Timeouts.**  ``timeout`` bounds each socket operation (connect, each read) as urllib does;
  ``total_timeout`` also bounds the whole exchange, redirects included, so a server dripping
  bytes slowly cannot hold a caller forever.
* **Redirects** are followed here (at most ``max_redirects``), not by urllib, so the count is
  ours and a redirect to a non-HTTP scheme is refused.  Cookies are attached per request by the
  cookie jar, which only sends a cookie to the host it belongs to, so a redirect to another host
  never carries the session cookie.
* **Secrets stay out of logs.**  Log lines and exception messages name the method, the URL
  *without its query string*, the status and the time taken; never headers, cookies or bodies.

Thread-safety: an :class:`HttpClient` may be shared by threads.  It keeps no per-request state;
its cookie jar (:class:`http.cookiejar.CookieJar`) is internally locked.
"""

from __future__ import annotations

import email.utils
import http.client
import json
import logging
import math
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import timezone
from http.cookiejar import Cookie, CookieJar
from typing import TYPE_CHECKING, Any

from resilience import _clock

from .errors import (
    HttpStatusError,
    MalformedPayloadError,
    ProtocolError,
    RateLimitedError,
    TvConnectionError,
    TvTimeoutError,
)

if TYPE_CHECKING:
    from .config import NetworkConfig

__all__ = [
    "DEFAULT_MAX_BODY",
    "DEFAULT_MAX_REDIRECTS",
    "DEFAULT_TIMEOUT",
    "DEFAULT_USER_AGENT",
    "HttpClient",
    "HttpResponse",
    "parse_retry_after",
    "safe_url",
]

logger = logging.getLogger(__name__)

#: Seconds allowed for each socket operation when the caller gives nothing else.
DEFAULT_TIMEOUT = 10.0
#: Redirects followed per request (TradingView-API allows 5 on the token page).
DEFAULT_MAX_REDIRECTS = 5
#: Largest response body read, in bytes; the home page is ~1 MB, a search page ~50 KB.
DEFAULT_MAX_BODY = 16 * 1024 * 1024
#: A desktop browser User-Agent, as TradingView's own front end sends.
DEFAULT_USER_AGENT = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0 Safari/537.36"
)

_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_CHUNK = 64 * 1024


def safe_url(url: str) -> str:
    """``url`` without its query string, fragment or user-info: fit for logs and messages."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return "<unparsable url>"
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urllib.parse.urlunsplit((parts.scheme, host, parts.path, "", ""))


def parse_retry_after(
    value: str | None, *, wall_clock: Callable[[], float] = time.time
) -> float | None:
    """Seconds to wait according to a ``Retry-After`` header value, or None if absent/invalid.

    Both forms of RFC 9110 are understood: delta-seconds (``"120"``) and an HTTP-date
    (``"Wed, 21 Oct 2015 07:28:00 GMT"``).  A date is compared with ``wall_clock`` (epoch
    seconds, :func:`time.time` by default: an HTTP-date is wall-clock time, so a monotonic clock
    cannot be used here); a date in the past gives 0.
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    if text.isascii() and text.replace(".", "", 1).isdigit():
        seconds = float(text)
        return seconds if math.isfinite(seconds) else None
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # "-0000" means UTC with no stated zone
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, when.timestamp() - wall_clock())


@dataclass(frozen=True)
class HttpResponse:
    """One HTTP answer: ``status``, the final ``url`` (after redirects), ``headers``, ``body``.

    ``headers`` and ``body`` are left out of the repr (they may hold ``Set-Cookie`` or a token).
    Immutable; safe to share.
    """

    status: int
    url: str = field(repr=False)
    headers: Mapping[str, str] = field(repr=False)
    body: bytes = field(repr=False)

    def header(self, name: str) -> str | None:
        """The value of header ``name`` (case-insensitive), or None."""
        lowered = name.lower()
        for key, value in self.headers.items():
            if key.lower() == lowered:
                return value
        return None

    def text(self) -> str:
        """The body decoded with the charset the server declared (UTF-8 by default)."""
        charset = "utf-8"
        content_type = self.header("Content-Type") or ""
        for part in content_type.split(";")[1:]:
            key, _, val = part.strip().partition("=")
            if key.lower() == "charset" and val:
                charset = val.strip('"')
        try:
            return self.body.decode(charset, errors="replace")
        except LookupError:
            return self.body.decode("utf-8", errors="replace")

    def json(self) -> Any:
        """The body parsed as JSON; :class:`MalformedPayloadError` if it is not JSON."""
        try:
            return json.loads(self.text())
        except ValueError as exc:
            raise MalformedPayloadError(
                f"HTTP {self.status} from {safe_url(self.url)}: the body is not JSON"
            ) from exc

    def __repr__(self) -> str:
        return f"HttpResponse(status={self.status}, url={safe_url(self.url)!r})"


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Makes urllib hand 3xx answers back (as HTTPError) so :class:`HttpClient` follows them."""

    def redirect_request(  # noqa: PLR0917 - urllib's signature
        self,
        req: urllib.request.Request,
        fp: Any,
        code: int,
        msg: str,
        headers: Any,
        newurl: str,
    ) -> urllib.request.Request | None:
        return None


class HttpClient:
    """Small, typed-error HTTP client with a cookie jar (see the module docstring).

    ``timeout`` bounds each socket operation, ``total_timeout`` (None: no bound) the whole
    request including redirects and reading the body, measured on ``clock`` (monotonic
    seconds).  ``wall_clock`` is only used to turn an HTTP-date ``Retry-After`` into seconds.

    Thread-safety: safe to share between threads (no per-request state; the cookie jar locks).
    """

    def __init__(
        self,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        total_timeout: float | None = None,
        user_agent: str | None = DEFAULT_USER_AGENT,
        max_redirects: int = DEFAULT_MAX_REDIRECTS,
        max_body: int = DEFAULT_MAX_BODY,
        cookies: CookieJar | None = None,
        clock: Callable[[], float] = _clock.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        if not (isinstance(timeout, (int, float)) and math.isfinite(timeout) and timeout > 0):
            raise ValueError(f"timeout must be a finite number > 0, got {timeout!r}")
        if total_timeout is not None and not (
            isinstance(total_timeout, (int, float))
            and math.isfinite(total_timeout)
            and total_timeout > 0
        ):
            raise ValueError(f"total_timeout must be None or a number > 0, got {total_timeout!r}")
        if not isinstance(max_redirects, int) or max_redirects < 0:
            raise ValueError(f"max_redirects must be an int >= 0, got {max_redirects!r}")
        if not isinstance(max_body, int) or max_body <= 0:
            raise ValueError(f"max_body must be an int > 0, got {max_body!r}")
        self.timeout = float(timeout)
        self.total_timeout = None if total_timeout is None else float(total_timeout)
        self.user_agent = user_agent
        self.max_redirects = max_redirects
        self.max_body = max_body
        self.cookies = cookies if cookies is not None else CookieJar()
        self._clock = clock
        self._wall_clock = wall_clock
        self._opener = urllib.request.build_opener(
            _NoRedirect(), urllib.request.HTTPCookieProcessor(self.cookies)
        )

    def __repr__(self) -> str:
        return (
            f"HttpClient(timeout={self.timeout!r}, total_timeout={self.total_timeout!r}, "
            f"max_redirects={self.max_redirects!r})"
        )

    @classmethod
    def from_config(cls, config: NetworkConfig, **overrides: Any) -> HttpClient:
        """A client using ``config``'s timeouts and User-Agent.

        ``connect_timeout`` bounds each socket operation (these endpoints answer in well under
        a second when healthy) and ``request_deadline`` the whole exchange.
        """
        kwargs: dict[str, Any] = {
            "timeout": config.connect_timeout,
            "total_timeout": config.request_deadline,
            "user_agent": config.user_agent,
        }
        kwargs.update(overrides)
        return cls(**kwargs)

    def fork(self) -> HttpClient:
        """A client with the same settings and an empty cookie jar of its own.

        Sign-in uses one per attempt, so each attempt starts clean and its cookies (the
        session it creates) can be read back without mixing with other requests.
        """
        return HttpClient(
            timeout=self.timeout,
            total_timeout=self.total_timeout,
            user_agent=self.user_agent,
            max_redirects=self.max_redirects,
            max_body=self.max_body,
            clock=self._clock,
            wall_clock=self._wall_clock,
        )

    # -- cookies (values are secrets: never logged) -------------------------------------------

    def cookie(self, name: str) -> str | None:
        """The value of the cookie ``name`` (from any host), or None."""
        for item in self._iter_cookies():
            if item.name == name:
                return item.value
        return None

    def set_cookie(self, name: str, value: str, url: str) -> None:
        """Store cookie ``name`` for the host of ``url`` only (a host-only cookie, path ``/``)."""
        host = urllib.parse.urlsplit(url).hostname
        if not host:
            raise ValueError(f"url must name a host, got {safe_url(url)!r}")
        self.cookies.set_cookie(
            Cookie(
                version=0,
                name=name,
                value=value,
                port=None,
                port_specified=False,
                domain=host,
                domain_specified=False,
                domain_initial_dot=False,
                path="/",
                path_specified=True,
                secure=False,
                expires=None,
                discard=True,
                comment=None,
                comment_url=None,
                rest={},
            )
        )

    def clear_cookies(self) -> None:
        """Forget every cookie."""
        self.cookies.clear()

    def _iter_cookies(self) -> Iterator[Cookie]:
        return iter(list(self.cookies))

    # -- requests ------------------------------------------------------------------------------

    def get(
        self,
        url: str,
        *,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        raise_for_status: bool = True,
    ) -> HttpResponse:
        """GET ``url`` with ``params`` appended to its query string."""
        if params:
            sep = "&" if urllib.parse.urlsplit(url).query else "?"
            url = f"{url}{sep}{urllib.parse.urlencode(params)}"
        return self.request("GET", url, headers=headers, raise_for_status=raise_for_status)

    def post_form(
        self,
        url: str,
        fields: Mapping[str, str],
        *,
        headers: Mapping[str, str] | None = None,
        multipart: bool = False,
        raise_for_status: bool = True,
    ) -> HttpResponse:
        """POST ``fields`` as ``application/x-www-form-urlencoded`` or ``multipart/form-data``."""
        all_headers = dict(headers or {})
        if multipart:
            body, content_type = _multipart(fields)
        else:
            body = urllib.parse.urlencode(fields).encode("ascii")
            content_type = "application/x-www-form-urlencoded"
        all_headers["Content-Type"] = content_type
        return self.request(
            "POST", url, headers=all_headers, data=body, raise_for_status=raise_for_status
        )

    def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        data: bytes | None = None,
        raise_for_status: bool = True,
    ) -> HttpResponse:
        """Send one request, following redirects; return the final answer.

        With ``raise_for_status`` (the default) a non-2xx answer raises
        :class:`RateLimitedError` (429) or :class:`HttpStatusError`; without it the answer is
        returned whatever its status (callers that read error bodies, such as sign-in).
        """
        start = self._clock()
        hops = 0
        while True:
            response = self._send_once(method, url, headers, data, start)
            if response.status not in _REDIRECT_STATUSES:
                break
            location = response.header("Location")
            if location is None:
                break
            if hops >= self.max_redirects:
                raise HttpStatusError(
                    f"{method} {safe_url(url)}: more than {self.max_redirects} redirects",
                    status=response.status,
                )
            next_url = urllib.parse.urljoin(url, location)
            if urllib.parse.urlsplit(next_url).scheme not in ("http", "https"):
                raise HttpStatusError(
                    f"{method} {safe_url(url)}: redirect to a non-HTTP URL refused",
                    status=response.status,
                )
            hops += 1
            logger.debug(
                "HTTP redirect %d: %s -> %s", response.status, safe_url(url), safe_url(next_url)
            )
            if response.status in (301, 302, 303) and method != "HEAD":
                method, data = "GET", None
                headers = {k: v for k, v in (headers or {}).items() if k.lower() != "content-type"}
            url = next_url
        if raise_for_status:
            self.raise_for_status(response)
        return response

    def raise_for_status(self, response: HttpResponse) -> None:
        """Raise the typed error for a non-2xx ``response``; do nothing for 2xx."""
        status = response.status
        if 200 <= status < 300:
            return
        retry_after = parse_retry_after(response.header("Retry-After"), wall_clock=self._wall_clock)
        where = safe_url(response.url)
        if status == 429:
            raise RateLimitedError(
                f"HTTP 429 Too Many Requests from {where}", retry_after=retry_after
            )
        reason = http.client.responses.get(status, "")
        raise HttpStatusError(
            f"HTTP {status} {reason} from {where}".replace("  ", " "),
            status=status,
            retry_after=retry_after,
        )

    # -- internals -----------------------------------------------------------------------------

    def _remaining(self, start: float, what: str) -> float:
        """Socket timeout for the next operation; raises once the total budget is spent."""
        if self.total_timeout is None:
            return self.timeout
        left = self.total_timeout - (self._clock() - start)
        if left <= 0:
            raise TvTimeoutError(f"{what}: no complete answer within {self.total_timeout:g} s")
        return min(self.timeout, left)

    def _send_once(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str] | None,
        data: bytes | None,
        start: float,
    ) -> HttpResponse:
        where = f"{method} {safe_url(url)}"
        all_headers = {"Accept": "*/*"}
        if self.user_agent is not None:
            all_headers["User-Agent"] = self.user_agent
        all_headers.update(headers or {})
        try:
            req = urllib.request.Request(url, data=data, headers=all_headers, method=method)
        except ValueError as exc:
            raise TvConnectionError(f"{where}: invalid URL") from exc
        sent = self._clock()
        try:
            try:
                raw = self._opener.open(req, timeout=self._remaining(start, where))
            except urllib.error.HTTPError as exc:  # non-2xx and 3xx: still an answer
                raw = exc
            with raw:
                status = int(raw.status)
                final_url = raw.geturl() or url
                response_headers = {k: v for k, v in raw.headers.items()}
                body = self._read_body(raw, start, where)
                declared = raw.headers.get("Content-Length")
                chunked = "chunked" in (raw.headers.get("Transfer-Encoding") or "").lower()
                if (
                    method != "HEAD"
                    and not chunked
                    and declared is not None
                    and declared.strip().isdigit()
                    and len(body) < int(declared)
                ):
                    # http.client's partial reads do not raise on a short body: we do.
                    raise http.client.IncompleteRead(body, int(declared) - len(body))
        except TvTimeoutError:
            raise
        except TimeoutError as exc:
            raise TvTimeoutError(f"{where}: timed out") from exc
        except urllib.error.URLError as exc:
            if isinstance(exc.reason, (TimeoutError, socket.timeout)):
                raise TvTimeoutError(f"{where}: timed out connecting") from exc
            raise TvConnectionError(f"{where}: {_reason(exc.reason)}") from exc
        except (OSError, http.client.HTTPException) as exc:
            raise TvConnectionError(f"{where}: {_reason(exc)}") from exc
        logger.debug(
            "HTTP %s %s -> %d (%d bytes, %.3f s)",
            method,
            safe_url(url),
            status,
            len(body),
            self._clock() - sent,
        )
        return HttpResponse(status=status, url=final_url, headers=response_headers, body=body)

    def _read_body(self, raw: Any, start: float, where: str) -> bytes:
        """Read the whole body, chunk by chunk, within ``max_body`` and the total budget.

        ``read1`` returns after one socket read, so a server dripping bytes slowly is noticed
        at the next chunk: the total budget is overshot by at most one ``timeout``.
        """
        chunks: list[bytes] = []
        size = 0
        while True:
            self._remaining(start, where)
            chunk = raw.read1(_CHUNK)
            if not chunk:
                break
            size += len(chunk)
            if size > self.max_body:
                raise ProtocolError(f"{where}: response body larger than {self.max_body} bytes")
            chunks.append(chunk)
        return b"".join(chunks)


def _reason(reason: object) -> str:
    """A short, secret-free description of a low-level failure."""
    if isinstance(reason, http.client.RemoteDisconnected):  # a ConnectionResetError too
        return "server closed the connection without answering"
    if isinstance(reason, ConnectionRefusedError):
        return "connection refused"
    if isinstance(reason, ConnectionResetError):
        return "connection reset by peer"
    if isinstance(reason, socket.gaierror):
        return "host name not resolved"
    if isinstance(reason, http.client.IncompleteRead):
        return "connection closed before the whole body arrived"
    if isinstance(reason, BaseException):
        return type(reason).__name__
    return "connection failed"


def _multipart(fields: Mapping[str, str]) -> tuple[bytes, str]:
    """Encode ``fields`` as ``multipart/form-data``; returns (body, content type)."""
    boundary = "----tvadapter" + _boundary_token()
    lines: list[bytes] = []
    for name, value in fields.items():
        lines.append(f"--{boundary}".encode())
        lines.append(f'Content-Disposition: form-data; name="{_quote(name)}"'.encode())
        lines.append(b"")
        lines.append(value.encode("utf-8"))
    lines.append(f"--{boundary}--".encode())
    lines.append(b"")
    return b"\r\n".join(lines), f"multipart/form-data; boundary={boundary}"


def _boundary_token() -> str:
    import secrets  # noqa: PLC0415 - only needed for multipart bodies

    return secrets.token_hex(12)


def _quote(name: str) -> str:
    return name.replace("\\", "\\\\").replace('"', '\\"').replace("\r", "").replace("\n", "")
