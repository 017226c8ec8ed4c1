"""Symbol search against TradingView's v3 search API (PROTOCOL.md §17).

``GET search_url`` with ``text``, ``hl=0``, ``exchange``, ``lang``, ``search_type``, ``start``
and ``domain=production``, carrying the two headers the endpoint has required since about
2024-04: ``Origin: https://www.tradingview.com`` and ``Referer: https://www.tradingview.com/``
(the legacy v1 endpoint tvDatafeed used is gone, which is why its ``search_symbol`` returns
``[]`` for everything).  Pages are fetched with ``start`` while ``symbols_remaining > 0``.

Unlike tvDatafeed, failures are never an empty list: an HTTP error, a timeout, a refused
connection or an answer of the wrong shape raises a :mod:`tvadapter.errors` exception.  An
empty list means the server found nothing.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any

from resilience import Deadline, retrying
from resilience import _clock as clocks

from ._http import HttpClient, HttpResponse, safe_url
from .config import NetworkConfig
from .errors import (
    ConfigurationError,
    HttpStatusError,
    MalformedPayloadError,
    RateLimitedError,
    TvConnectionError,
    TvTimeoutError,
)

__all__ = ["DEFAULT_MAX_PAGES", "full_symbol", "search_symbol"]

logger = logging.getLogger(__name__)

#: Pages fetched at most per search (50 results each on the real server).
DEFAULT_MAX_PAGES = 20

_EM_RE = re.compile(r"</?em>", re.IGNORECASE)


def full_symbol(item: dict[str, Any]) -> str:
    """``prefix:symbol`` when the result has a prefix, else ``exchange:symbol`` (§17)."""
    symbol = str(item.get("symbol", ""))
    prefix = item.get("prefix") or item.get("exchange")
    return f"{prefix}:{symbol}" if prefix else symbol


def _clean(item: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``item`` with ``<em>`` highlighting removed from its text fields."""
    out: dict[str, Any] = {}
    for key, value in item.items():
        out[key] = _EM_RE.sub("", value) if isinstance(value, str) else value
    out["full_symbol"] = full_symbol(out)
    return out


def _is_transient(exc: BaseException) -> bool:
    """Worth another try: network trouble, a timeout, a 429 or a retryable status."""
    if isinstance(exc, HttpStatusError):
        return exc.retryable
    return isinstance(exc, (TvConnectionError, TvTimeoutError, RateLimitedError))


def _check_text(name: str, value: object, *, empty_ok: bool) -> str:
    if not isinstance(value, str):
        raise ConfigurationError(f"{name} must be a str, got {type(value).__name__}")
    if not empty_ok and not value.strip():
        raise ConfigurationError(f"{name} must not be empty")
    if any(ch in value for ch in "\r\n\x00"):
        raise ConfigurationError(f"{name} must not contain CR, LF or NUL characters")
    return value.strip()


def _page(response: HttpResponse) -> tuple[list[dict[str, Any]], int]:
    """(symbols, symbols_remaining) from one answer; MalformedPayloadError on a bad shape."""
    data = response.json()
    where = safe_url(response.url)
    if isinstance(data, list):  # the legacy v1 shape: a bare list, no paging
        symbols, remaining = data, 0
    elif isinstance(data, dict) and isinstance(data.get("symbols"), list):
        symbols = data["symbols"]
        remaining = data.get("symbols_remaining", 0)
        if isinstance(remaining, bool) or not isinstance(remaining, int):
            raise MalformedPayloadError(f"search answer from {where}: bad symbols_remaining")
    else:
        raise MalformedPayloadError(f"search answer from {where} has no 'symbols' list")
    for item in symbols:
        if not isinstance(item, dict) or not isinstance(item.get("symbol"), str):
            raise MalformedPayloadError(
                f"search answer from {where}: an entry is not an object with a 'symbol'"
            )
    return symbols, max(0, remaining)


def search_symbol(
    config: NetworkConfig | None,
    text: str,
    exchange: str = "",
    *,
    search_type: str = "",
    lang: str = "en",
    country: str = "",
    max_results: int | None = None,
    max_pages: int = DEFAULT_MAX_PAGES,
    http: HttpClient | None = None,
    attempts: int = 1,
    clock: Callable[[], float] = clocks.monotonic,
    sleep: Callable[[float], object] = clocks.sleep,
) -> list[dict[str, Any]]:
    """Search TradingView's symbols for ``text`` (optionally on one ``exchange``).

    Returns the server's result objects (``symbol``, ``description``, ``type``,
    ``exchange``, ``currency_code``, ``prefix``, ``contracts``... as sent, ``<em>`` tags
    removed), each with ``"full_symbol"`` added: ``prefix:symbol`` or ``exchange:symbol``,
    ready for ``get_hist``.  ``search_type`` filters (``stocks``, ``futures``, ``forex``,
    ``cfd``, ``crypto``, ``index``, ``economic``; empty for all); ``country`` sets
    ``sort_by_country`` (e.g. ``"US"``).  At most ``max_results`` results (None: all) from at
    most ``max_pages`` pages; reaching ``max_pages`` with results left is logged.

    ``attempts`` > 1 retries each page on transient failures (connection, timeout, 429,
    5xx) with the configured backoff and within ``config.request_deadline``; callers that
    wrap the call in their own resilience policy leave it at 1.  ``http`` lets a client share
    one :class:`HttpClient`; by default one is built from ``config``.

    Raises :class:`ConfigurationError` for bad arguments, and for failures
    :class:`TvConnectionError`, :class:`TvTimeoutError`, :class:`RateLimitedError`,
    :class:`HttpStatusError` (403 when the Origin/Referer are not accepted) or
    :class:`MalformedPayloadError`.  Never returns ``[]`` for a failure.

    Thread-safe (no shared state besides ``http``, which is thread-safe).
    """
    config = config if config is not None else NetworkConfig()
    query = _check_text("text", text, empty_ok=False)
    exchange = _check_text("exchange", exchange, empty_ok=True)
    search_type = _check_text("search_type", search_type, empty_ok=True)
    lang = _check_text("lang", lang, empty_ok=True) or "en"
    country = _check_text("country", country, empty_ok=True)
    if max_results is not None and (
        isinstance(max_results, bool) or not isinstance(max_results, int) or max_results < 1
    ):
        raise ConfigurationError(f"max_results must be None or an int >= 1, got {max_results!r}")
    if isinstance(max_pages, bool) or not isinstance(max_pages, int) or max_pages < 1:
        raise ConfigurationError(f"max_pages must be an int >= 1, got {max_pages!r}")
    if isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 1:
        raise ConfigurationError(f"attempts must be an int >= 1, got {attempts!r}")

    client = http if http is not None else HttpClient.from_config(config)
    origin = config.origin.rstrip("/")
    headers = {
        "Origin": origin,
        "Referer": origin + "/",
        "Accept": "application/json",
    }
    deadline = Deadline(config.request_deadline, clock=clock)
    backoff = config.retry_backoff()

    def fetch(start: int) -> tuple[list[dict[str, Any]], int]:
        params = {
            "text": query,
            "hl": "0",
            "exchange": exchange,
            "lang": lang,
            "search_type": search_type,
            "start": str(start),
            "domain": "production",
        }
        if country:
            params["sort_by_country"] = country
        try:
            response = client.get(config.search_url, params=params, headers=headers)
        except HttpStatusError as exc:
            if exc.status == 403:
                raise HttpStatusError(
                    f"{exc}: the search API refused the request; it requires "
                    f"Origin {origin} and Referer {origin}/ (is config.origin right?)",
                    status=403,
                ) from exc
            raise
        return _page(response)

    def fetch_with_retry(start: int) -> tuple[list[dict[str, Any]], int]:
        if attempts == 1:
            return fetch(start)
        for attempt in retrying(
            on=_is_transient,
            attempts=attempts,
            deadline=deadline,
            backoff=backoff,
            clock=clock,
            sleep=sleep,
            name="symbol search",
        ):
            with attempt:
                return fetch(start)
        raise AssertionError("unreachable: retrying re-raises the last error")  # pragma: no cover

    results: list[dict[str, Any]] = []
    start = 0
    pages = 0
    remaining = 0
    while True:
        symbols, remaining = fetch_with_retry(start)
        pages += 1
        results.extend(_clean(item) for item in symbols)
        if max_results is not None and len(results) >= max_results:
            del results[max_results:]
            break
        if remaining <= 0 or not symbols:
            if remaining > 0:
                logger.warning(
                    "symbol search %r: empty page with %d results announced; stopping",
                    query,
                    remaining,
                )
            break
        if pages >= max_pages:
            logger.warning(
                "symbol search %r: stopped after %d pages (%d results, %d more on the server)",
                query,
                pages,
                len(results),
                remaining,
            )
            break
        start += len(symbols)
    logger.debug(
        "symbol search %r exchange=%r type=%r: %d results in %d pages",
        query,
        exchange,
        search_type,
        len(results),
        pages,
    )
    return results
