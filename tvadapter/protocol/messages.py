"""Client -> server packet builders: one function per method of PROTOCOL.md §7.

Each builder returns one packet *payload* (compact JSON, ``ensure_ascii=True`` so that the three
possible length counts agree); frame it with :func:`~tvadapter.protocol.encode` or hand it to
:meth:`~tvadapter.protocol.session.ClientSession.send`. Builders validate their arguments and
raise :class:`~tvadapter.errors.ConfigurationError` (a ``ValueError``) naming the parameter.

Example, tvDatafeed's daily-bars request::

    set_auth_token("unauthorized_user_token")
    chart_create_session("cs_abcdefghijkl")
    resolve_symbol("cs_abcdefghijkl", "symbol_1", "NASDAQ:AAPL")
    create_series("cs_abcdefghijkl", "s1", "s1", "symbol_1", "1D", 10, range_=None)
    switch_timezone("cs_abcdefghijkl", "exchange")
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from tvadapter.errors import ConfigurationError

from ._json import dumps

__all__ = [
    "ADJUSTMENTS",
    "DEFAULT_QUOTE_FIELDS",
    "RANGE_PRESETS",
    "SESSIONS",
    "build",
    "chart_create_session",
    "chart_delete_session",
    "create_series",
    "create_study",
    "heartbeat",
    "modify_series",
    "modify_study",
    "quote_add_symbols",
    "quote_create_session",
    "quote_delete_session",
    "quote_fast_symbols",
    "quote_hibernate_all",
    "quote_remove_symbols",
    "quote_set_fields",
    "remove_series",
    "remove_study",
    "request_more_data",
    "request_more_tickmarks",
    "resolve_symbol",
    "set_auth_token",
    "set_data_quality",
    "set_locale",
    "switch_timezone",
    "symbol_spec",
    "validate_range",
]

#: The 23 quote fields tvDatafeed, tvkit and tradingview-scraper request (PROTOCOL.md §7).
DEFAULT_QUOTE_FIELDS: tuple[str, ...] = (
    "ch",
    "chp",
    "current_session",
    "description",
    "local_description",
    "language",
    "exchange",
    "fractional",
    "is_tradable",
    "lp",
    "lp_time",
    "minmov",
    "minmove2",
    "original_name",
    "pricescale",
    "pro_name",
    "short_name",
    "type",
    "update_mode",
    "volume",
    "currency_code",
    "rchp",
    "rtc",
)

#: ``adjustment`` values of the resolve_symbol spec.
ADJUSTMENTS = frozenset({"splits", "dividends"})
#: ``session`` values of the resolve_symbol spec.
SESSIONS = frozenset({"regular", "extended", "premarket", "postmarket"})
#: Range presets accepted by create_series / modify_series besides ``""`` and ``"r,from:to"``.
RANGE_PRESETS = frozenset({"1D", "5d", "1M", "3M", "6M", "YTD", "12M", "60M", "ALL", "LASTSESSION"})

_RANGE = re.compile(r"r,(\d{1,12}):(\d{1,12})")


# --------------------------------------------------------------------------------------------
# Validation helpers (each names the offending parameter)


def _name(value: Any, param: str) -> str:
    """A non-empty id/name string without surrounding whitespace."""
    if not isinstance(value, str):
        raise ConfigurationError(f"{param} must be a str, got {type(value).__name__}")
    if not value or value.strip() != value:
        raise ConfigurationError(f"{param} must be a non-empty string without outer spaces")
    return value


def _count(value: Any, param: str, *, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigurationError(f"{param} must be an int, got {type(value).__name__}")
    if value < minimum:
        raise ConfigurationError(f"{param} must be >= {minimum}, got {value}")
    return value


def validate_range(range_: str) -> str:
    """Check a series range: ``""``, ``"r,<from>:<to>"`` (epoch s, from <= to) or a preset."""
    if not isinstance(range_, str):
        raise ConfigurationError(f"range_ must be a str, got {type(range_).__name__}")
    if range_ == "" or range_ in RANGE_PRESETS:
        return range_
    match = _RANGE.fullmatch(range_)
    if match is None:
        raise ConfigurationError(
            f"range_ must be '', 'r,<from>:<to>' or one of {sorted(RANGE_PRESETS)}, got {range_!r}"
        )
    if int(match.group(1)) > int(match.group(2)):
        raise ConfigurationError(f"range_ must have from <= to, got {range_!r}")
    return range_


def _symbols(symbols: Sequence[Any], param: str = "symbols") -> list[str]:
    if not symbols:
        raise ConfigurationError(f"{param} must name at least one symbol")
    return [_name(s, param) for s in symbols]


# --------------------------------------------------------------------------------------------
# Generic


def build(method: str, params: Sequence[Any]) -> str:
    """The payload ``{"m": method, "p": params}`` as compact ASCII JSON (any method)."""
    _name(method, "method")
    if isinstance(params, (str, bytes)) or not isinstance(params, Sequence):
        raise ConfigurationError("params must be a list or tuple")
    try:
        return dumps({"m": method, "p": list(params)})
    except (TypeError, ValueError) as exc:
        raise ConfigurationError(f"params of {method} are not JSON-serialisable: {exc}") from exc


def heartbeat(number: int) -> str:
    """The heartbeat payload ``~h~<number>`` (servers send it; clients echo the received text)."""
    return f"~h~{_count(number, 'number', minimum=0)}"


# --------------------------------------------------------------------------------------------
# Connection-level


def set_auth_token(token: str) -> str:
    """``set_auth_token [token]``: a JWT, ``"unauthorized_user_token"`` or ``"widget_user_token"``.

    The error for a bad token never repeats the token.
    """
    if not isinstance(token, str) or not token or token.strip() != token:
        raise ConfigurationError("token must be a non-empty string without outer spaces")
    return build("set_auth_token", [token])


def set_locale(language: str = "en", country: str = "US") -> str:
    """``set_locale [language, country]``."""
    return build("set_locale", [_name(language, "language"), _name(country, "country")])


def set_data_quality(quality: str = "low") -> str:
    """``set_data_quality [quality]``."""
    return build("set_data_quality", [_name(quality, "quality")])


# --------------------------------------------------------------------------------------------
# Chart sessions and series


def chart_create_session(cs: str, flags: str | None = "") -> str:
    """``chart_create_session [cs, ""]`` (``flags=None`` sends the one-element form ``[cs]``)."""
    params: list[Any] = [_name(cs, "cs")]
    if flags is not None:
        if not isinstance(flags, str):
            raise ConfigurationError("flags must be a str or None")
        params.append(flags)
    return build("chart_create_session", params)


def chart_delete_session(cs: str) -> str:
    """``chart_delete_session [cs]``."""
    return build("chart_delete_session", [_name(cs, "cs")])


def switch_timezone(cs: str, tz: str) -> str:
    """``switch_timezone [cs, tz]``: ``"exchange"``, ``"Etc/UTC"`` or an IANA name."""
    return build("switch_timezone", [_name(cs, "cs"), _name(tz, "tz")])


def symbol_spec(
    symbol: str,
    adjustment: str = "splits",
    session: str = "regular",
    *,
    currency_id: str | None = None,
    backadjustment: str | None = None,
    **extra: str,
) -> str:
    """The ``=``-prefixed JSON spec string of ``resolve_symbol`` (and spec-form quote symbols).

    Keys in tvDatafeed's order: ``symbol``, ``adjustment``, ``session``, then ``currency-id``,
    ``backadjustment`` and any ``extra`` keys (e.g. ``metric="price"``, ``replay="rs_..."``).
    """
    spec: dict[str, str] = {
        "symbol": _name(symbol, "symbol"),
        "adjustment": adjustment,
        "session": session,
    }
    if adjustment not in ADJUSTMENTS:
        raise ConfigurationError(f"adjustment must be one of {sorted(ADJUSTMENTS)}")
    if session not in SESSIONS:
        raise ConfigurationError(f"session must be one of {sorted(SESSIONS)}")
    if currency_id is not None:
        spec["currency-id"] = _name(currency_id, "currency_id")
    if backadjustment is not None:
        spec["backadjustment"] = _name(backadjustment, "backadjustment")
    for key, value in extra.items():
        spec[key] = _name(value, key)
    return "=" + dumps(spec)


def resolve_symbol(
    cs: str,
    symbol_id: str,
    symbol: str,
    adjustment: str = "splits",
    session: str = "regular",
    *,
    currency_id: str | None = None,
    backadjustment: str | None = None,
    **extra: str,
) -> str:
    """``resolve_symbol [cs, symbol_id, "=" + spec]`` (see :func:`symbol_spec`)."""
    spec = symbol_spec(
        symbol,
        adjustment,
        session,
        currency_id=currency_id,
        backadjustment=backadjustment,
        **extra,
    )
    return build("resolve_symbol", [_name(cs, "cs"), _name(symbol_id, "symbol_id"), spec])


def create_series(  # noqa: PLR0917 - parameters mirror the wire order
    cs: str,
    series_id: str,
    turnaround: str,
    symbol_id: str,
    resolution: str,
    count: int,
    range_: str | None = "",
) -> str:
    """``create_series [cs, series_id, turnaround, symbol_id, resolution, count, range]``.

    ``range_=None`` sends tvDatafeed's 6-parameter form; otherwise ``""`` (the latest ``count``
    bars), ``"r,<from>:<to>"`` (epoch seconds) or a preset (:data:`RANGE_PRESETS`).
    """
    params: list[Any] = [
        _name(cs, "cs"),
        _name(series_id, "series_id"),
        _name(turnaround, "turnaround"),
        _name(symbol_id, "symbol_id"),
        _name(resolution, "resolution"),
        _count(count, "count"),
    ]
    if range_ is not None:
        params.append(validate_range(range_))
    return build("create_series", params)


def modify_series(  # noqa: PLR0917 - parameters mirror the wire order
    cs: str,
    series_id: str,
    turnaround: str,
    symbol_id: str,
    resolution: str,
    range_: str = "",
) -> str:
    """``modify_series [cs, series_id, turnaround, symbol_id, resolution, range]``."""
    return build(
        "modify_series",
        [
            _name(cs, "cs"),
            _name(series_id, "series_id"),
            _name(turnaround, "turnaround"),
            _name(symbol_id, "symbol_id"),
            _name(resolution, "resolution"),
            validate_range(range_),
        ],
    )


def remove_series(cs: str, series_id: str) -> str:
    """``remove_series [cs, series_id]``."""
    return build("remove_series", [_name(cs, "cs"), _name(series_id, "series_id")])


def request_more_data(cs: str, series_id: str, n: int) -> str:
    """``request_more_data [cs, series_id, n]``: ``n`` bars older than the oldest loaded."""
    return build(
        "request_more_data", [_name(cs, "cs"), _name(series_id, "series_id"), _count(n, "n")]
    )


def request_more_tickmarks(cs: str, series_id: str, n: int = 10) -> str:
    """``request_more_tickmarks [cs, series_id, n]`` (the browser sends 10)."""
    return build(
        "request_more_tickmarks",
        [_name(cs, "cs"), _name(series_id, "series_id"), _count(n, "n")],
    )


# --------------------------------------------------------------------------------------------
# Studies


def _study(
    method: str,
    *,
    cs: str,
    study_id: str,
    turnaround: str,
    series_id: str,
    script: str,
    inputs: Mapping[str, Any] | None,
) -> str:
    if inputs is not None and not isinstance(inputs, Mapping):
        raise ConfigurationError("inputs must be a mapping or None")
    return build(
        method,
        [
            _name(cs, "cs"),
            _name(study_id, "study_id"),
            _name(turnaround, "turnaround"),
            _name(series_id, "series_id"),
            _name(script, "script"),
            dict(inputs or {}),
        ],
    )


def create_study(  # noqa: PLR0917 - parameters mirror the wire order
    cs: str,
    study_id: str,
    turnaround: str,
    series_id: str,
    script: str,
    inputs: Mapping[str, Any] | None = None,
) -> str:
    """``create_study [cs, study_id, turnaround, series_id, "Name@provider-version", inputs]``."""
    return _study(
        "create_study",
        cs=cs,
        study_id=study_id,
        turnaround=turnaround,
        series_id=series_id,
        script=script,
        inputs=inputs,
    )


def modify_study(  # noqa: PLR0917 - parameters mirror the wire order
    cs: str,
    study_id: str,
    turnaround: str,
    series_id: str,
    script: str,
    inputs: Mapping[str, Any] | None = None,
) -> str:
    """``modify_study`` with the same parameters as :func:`create_study`."""
    return _study(
        "modify_study",
        cs=cs,
        study_id=study_id,
        turnaround=turnaround,
        series_id=series_id,
        script=script,
        inputs=inputs,
    )


def remove_study(cs: str, study_id: str) -> str:
    """``remove_study [cs, study_id]``."""
    return build("remove_study", [_name(cs, "cs"), _name(study_id, "study_id")])


# --------------------------------------------------------------------------------------------
# Quote sessions


def quote_create_session(qs: str) -> str:
    """``quote_create_session [qs]``."""
    return build("quote_create_session", [_name(qs, "qs")])


def quote_delete_session(qs: str) -> str:
    """``quote_delete_session [qs]``."""
    return build("quote_delete_session", [_name(qs, "qs")])


def quote_set_fields(qs: str, fields: Iterable[str] = DEFAULT_QUOTE_FIELDS) -> str:
    """``quote_set_fields [qs, field, ...]`` (default: tvDatafeed's 23 fields)."""
    if isinstance(fields, str):
        raise ConfigurationError("fields must be an iterable of field names, not a str")
    names = [_name(f, "fields") for f in fields]
    if not names:
        raise ConfigurationError("fields must name at least one field")
    return build("quote_set_fields", [_name(qs, "qs"), *names])


def quote_add_symbols(qs: str, *symbols: str, force_permission: bool = False) -> str:
    """``quote_add_symbols [qs, sym, ...]``, ending with ``{"flags":["force_permission"]}``
    when ``force_permission`` (as tvDatafeed sends it)."""
    params: list[Any] = [_name(qs, "qs"), *_symbols(symbols)]
    if force_permission:
        params.append({"flags": ["force_permission"]})
    return build("quote_add_symbols", params)


def quote_remove_symbols(qs: str, *symbols: str) -> str:
    """``quote_remove_symbols [qs, sym, ...]``."""
    return build("quote_remove_symbols", [_name(qs, "qs"), *_symbols(symbols)])


def quote_fast_symbols(qs: str, *symbols: str) -> str:
    """``quote_fast_symbols [qs, sym, ...]``."""
    return build("quote_fast_symbols", [_name(qs, "qs"), *_symbols(symbols)])


def quote_hibernate_all(qs: str) -> str:
    """``quote_hibernate_all [qs]``."""
    return build("quote_hibernate_all", [_name(qs, "qs")])
