"""Client message builders: exact wire text (PROTOCOL.md §7-§8) and argument validation."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from tvadapter.errors import ConfigurationError
from tvadapter.protocol import decode, encode, messages, parse_client_payload
from tvadapter.protocol.messages import (
    DEFAULT_QUOTE_FIELDS,
    build,
    chart_create_session,
    chart_delete_session,
    create_series,
    create_study,
    heartbeat,
    modify_series,
    modify_study,
    quote_add_symbols,
    quote_create_session,
    quote_delete_session,
    quote_fast_symbols,
    quote_hibernate_all,
    quote_remove_symbols,
    quote_set_fields,
    remove_series,
    remove_study,
    request_more_data,
    request_more_tickmarks,
    resolve_symbol,
    set_auth_token,
    set_data_quality,
    set_locale,
    switch_timezone,
    symbol_spec,
)

CS = "cs_abcdefghijkl"
QS = "qs_abcdefghijkl"

# tvDatafeed's get_hist exchange, verbatim from PROTOCOL.md §8.
TVDATAFEED_FRAMES = [
    (
        lambda: set_auth_token("unauthorized_user_token"),
        '~m~54~m~{"m":"set_auth_token","p":["unauthorized_user_token"]}',
    ),
    (
        lambda: chart_create_session(CS),
        '~m~55~m~{"m":"chart_create_session","p":["cs_abcdefghijkl",""]}',
    ),
    (
        lambda: quote_create_session(QS),
        '~m~52~m~{"m":"quote_create_session","p":["qs_abcdefghijkl"]}',
    ),
    (
        lambda: quote_set_fields(QS),
        '~m~307~m~{"m":"quote_set_fields","p":["qs_abcdefghijkl","ch","chp","current_session",'
        '"description","local_description","language","exchange","fractional","is_tradable","lp",'
        '"lp_time","minmov","minmove2","original_name","pricescale","pro_name","short_name","type",'
        '"update_mode","volume","currency_code","rchp","rtc"]}',
    ),
    (
        lambda: quote_add_symbols(QS, "NASDAQ:AAPL", force_permission=True),
        '~m~94~m~{"m":"quote_add_symbols","p":["qs_abcdefghijkl","NASDAQ:AAPL",'
        '{"flags":["force_permission"]}]}',
    ),
    (
        lambda: quote_fast_symbols(QS, "NASDAQ:AAPL"),
        '~m~64~m~{"m":"quote_fast_symbols","p":["qs_abcdefghijkl","NASDAQ:AAPL"]}',
    ),
    (
        lambda: resolve_symbol(CS, "symbol_1", "NASDAQ:AAPL"),
        '~m~139~m~{"m":"resolve_symbol","p":["cs_abcdefghijkl","symbol_1",'
        '"={\\"symbol\\":\\"NASDAQ:AAPL\\",\\"adjustment\\":\\"splits\\",\\"session\\":\\"regular\\"}"]}',
    ),
    (
        lambda: create_series(CS, "s1", "s1", "symbol_1", "1D", 10, range_=None),
        '~m~74~m~{"m":"create_series","p":["cs_abcdefghijkl","s1","s1","symbol_1","1D",10]}',
    ),
    (
        lambda: switch_timezone(CS, "exchange"),
        '~m~58~m~{"m":"switch_timezone","p":["cs_abcdefghijkl","exchange"]}',
    ),
]


@pytest.mark.parametrize(("make", "frame"), TVDATAFEED_FRAMES)
def test_tvdatafeed_frames_exactly(make: Callable[[], str], frame: str) -> None:
    """Builders reproduce tvDatafeed's recorded frames byte for byte, and decode back."""
    payload = make()
    assert encode([payload]) == frame
    assert decode(frame) == [payload]


def _p(payload: str) -> tuple[str, list[Any]]:
    obj = json.loads(payload)
    return obj["m"], obj["p"]


# (payload, method, params) for the builders not covered above.
CASES: list[tuple[str, str, list[Any]]] = [
    (set_locale(), "set_locale", ["en", "US"]),
    (set_locale("de", "DE"), "set_locale", ["de", "DE"]),
    (set_data_quality(), "set_data_quality", ["low"]),
    (chart_create_session(CS, flags=None), "chart_create_session", [CS]),
    (chart_delete_session(CS), "chart_delete_session", [CS]),
    (switch_timezone(CS, "Etc/UTC"), "switch_timezone", [CS, "Etc/UTC"]),
    (
        create_series(CS, "sds_1", "s1", "sds_sym_1", "1D", 300),
        "create_series",
        [CS, "sds_1", "s1", "sds_sym_1", "1D", 300, ""],
    ),
    (
        create_series(CS, "s1", "s1", "sym", "60", 5000, "r,1732838400:1766016000"),
        "create_series",
        [CS, "s1", "s1", "sym", "60", 5000, "r,1732838400:1766016000"],
    ),
    (
        create_series(CS, "s1", "s1", "sym", "1D", 10, "YTD"),
        "create_series",
        [CS, "s1", "s1", "sym", "1D", 10, "YTD"],
    ),
    (
        modify_series(CS, "s1", "s1", "sym", "188", "r,1732838400:1766016000"),
        "modify_series",
        [CS, "s1", "s1", "sym", "188", "r,1732838400:1766016000"],
    ),
    (
        modify_series(CS, "s1", "s2", "sym", "1D"),
        "modify_series",
        [CS, "s1", "s2", "sym", "1D", ""],
    ),
    (remove_series(CS, "s1"), "remove_series", [CS, "s1"]),
    (request_more_data(CS, "s1", 5000), "request_more_data", [CS, "s1", 5000]),
    (request_more_tickmarks(CS, "s1"), "request_more_tickmarks", [CS, "s1", 10]),
    (
        create_study(CS, "st1", "st1", "s1", "Volume@tv-basicstudies-246", {"length": 20}),
        "create_study",
        [CS, "st1", "st1", "s1", "Volume@tv-basicstudies-246", {"length": 20}],
    ),
    (
        modify_study(CS, "st1", "st1", "s1", "Volume@tv-basicstudies-246"),
        "modify_study",
        [CS, "st1", "st1", "s1", "Volume@tv-basicstudies-246", {}],
    ),
    (remove_study(CS, "st1"), "remove_study", [CS, "st1"]),
    (quote_delete_session(QS), "quote_delete_session", [QS]),
    (quote_set_fields(QS, ["lp", "ch"]), "quote_set_fields", [QS, "lp", "ch"]),
    (quote_add_symbols(QS, "A:B", "C:D"), "quote_add_symbols", [QS, "A:B", "C:D"]),
    (quote_remove_symbols(QS, "A:B"), "quote_remove_symbols", [QS, "A:B"]),
    (quote_hibernate_all(QS), "quote_hibernate_all", [QS]),
    (build("replay_step", ["rs_1", 1]), "replay_step", ["rs_1", 1]),
]


@pytest.mark.parametrize(("payload", "method", "params"), CASES)
def test_builders_produce_method_and_params(payload: str, method: str, params: list[Any]) -> None:
    """Each builder yields compact JSON {"m","p"} that the server role parses back."""
    assert _p(payload) == (method, params)
    assert ", " not in payload and ": " not in payload
    request = parse_client_payload(payload)
    assert request.method == method  # type: ignore[attr-defined]
    assert request.params == tuple(params)  # type: ignore[attr-defined]


def test_default_quote_fields_are_tvdatafeeds_23() -> None:
    """The default quote field list is tvDatafeed's 23 fields in its order."""
    assert len(DEFAULT_QUOTE_FIELDS) == 23
    assert DEFAULT_QUOTE_FIELDS[0] == "ch"
    assert DEFAULT_QUOTE_FIELDS[-1] == "rtc"


def test_symbol_spec_options() -> None:
    """The resolve_symbol spec carries currency-id, backadjustment and extra keys in order."""
    spec = symbol_spec(
        "NSE:JUNIPER",
        "dividends",
        "extended",
        currency_id="INR",
        backadjustment="default",
        metric="price",
    )
    assert spec.startswith("=")
    assert list(json.loads(spec[1:]).items()) == [
        ("symbol", "NSE:JUNIPER"),
        ("adjustment", "dividends"),
        ("session", "extended"),
        ("currency-id", "INR"),
        ("backadjustment", "default"),
        ("metric", "price"),
    ]
    payload = resolve_symbol(CS, "sds_sym_1", "NSE:JUNIPER", currency_id="INR")
    assert json.loads(_p(payload)[1][2][1:])["currency-id"] == "INR"


def test_client_sends_are_ascii() -> None:
    """Non-ASCII text is escaped so that every length count agrees (ensure_ascii)."""
    payload = quote_add_symbols(QS, "KRX:삼성")
    assert payload.isascii()
    assert _p(payload)[1][1] == "KRX:삼성"


def test_heartbeat_payload() -> None:
    """heartbeat(n) is the ~h~n payload."""
    assert heartbeat(1) == "~h~1"
    assert heartbeat(157) == "~h~157"


BAD_CALLS: list[tuple[Callable[[], object], str]] = [
    (lambda: set_auth_token(""), "token"),
    (lambda: set_auth_token(" tok"), "token"),
    (lambda: set_auth_token(5), "token"),  # type: ignore[arg-type]
    (lambda: chart_create_session(""), "cs"),
    (lambda: chart_create_session(None), "cs"),  # type: ignore[arg-type]
    (lambda: chart_create_session(CS, flags=1), "flags"),  # type: ignore[arg-type]
    (lambda: switch_timezone(CS, ""), "tz"),
    (lambda: resolve_symbol(CS, "", "A:B"), "symbol_id"),
    (lambda: resolve_symbol(CS, "s", ""), "symbol"),
    (lambda: resolve_symbol(CS, "s", "A:B", adjustment="none"), "adjustment"),
    (lambda: resolve_symbol(CS, "s", "A:B", session="night"), "session"),
    (lambda: resolve_symbol(CS, "s", "A:B", currency_id=""), "currency_id"),
    (lambda: create_series(CS, "s1", "s1", "sym", "1D", 0), "count"),
    (lambda: create_series(CS, "s1", "s1", "sym", "1D", -5), "count"),
    (lambda: create_series(CS, "s1", "s1", "sym", "1D", True), "count"),
    (lambda: create_series(CS, "s1", "s1", "sym", "1D", 10.0), "count"),  # type: ignore[arg-type]
    (lambda: create_series(CS, "s1", "s1", "sym", "", 10), "resolution"),
    (lambda: create_series(CS, "", "s1", "sym", "1D", 10), "series_id"),
    (lambda: create_series(CS, "s1", "", "sym", "1D", 10), "turnaround"),
    (lambda: create_series(CS, "s1", "s1", "sym", "1D", 10, "r,5:1"), "range_"),
    (lambda: create_series(CS, "s1", "s1", "sym", "1D", 10, "r,a:b"), "range_"),
    (lambda: create_series(CS, "s1", "s1", "sym", "1D", 10, "r,1:2:3"), "range_"),
    (lambda: create_series(CS, "s1", "s1", "sym", "1D", 10, "2Y"), "range_"),
    (lambda: create_series(CS, "s1", "s1", "sym", "1D", 10, 5), "range_"),  # type: ignore[arg-type]
    (lambda: modify_series(CS, "s1", "s1", "sym", "1D", "bogus"), "range_"),
    (lambda: request_more_data(CS, "s1", 0), "n"),
    (lambda: request_more_tickmarks(CS, "s1", -1), "n"),
    (lambda: create_study(CS, "st1", "st1", "s1", ""), "script"),
    (lambda: create_study(CS, "st1", "st1", "s1", "V@x", [1]), "inputs"),  # type: ignore[arg-type]
    (lambda: quote_set_fields(QS, []), "fields"),
    (lambda: quote_set_fields(QS, "lp"), "fields"),
    (lambda: quote_add_symbols(QS), "symbols"),
    (lambda: quote_add_symbols(QS, ["A:B"]), "symbols"),  # type: ignore[arg-type]
    (lambda: quote_fast_symbols(QS, ""), "symbols"),
    (lambda: quote_remove_symbols(""), "qs"),
    (lambda: heartbeat(-1), "number"),
    (lambda: build("", []), "method"),
    (lambda: build("x", "abc"), "params"),
    (lambda: build("x", [float("nan")]), "params"),
    (lambda: build("x", [object()]), "params"),
]


@pytest.mark.parametrize(("call", "param"), BAD_CALLS)
def test_builders_validate_and_name_the_parameter(call: Callable[[], object], param: str) -> None:
    """Bad arguments raise ConfigurationError (a ValueError) whose message names the parameter."""
    with pytest.raises(ConfigurationError) as info:
        call()
    assert isinstance(info.value, ValueError)
    assert param in str(info.value)


def test_token_never_appears_in_errors() -> None:
    """A rejected token is not repeated in the error message."""
    with pytest.raises(ConfigurationError) as info:
        set_auth_token(" eyJsecret ")
    assert "secret" not in str(info.value)


def test_every_public_builder_is_exported() -> None:
    """messages.__all__ lists only existing names, and every public function is in it."""
    public = {n for n in dir(messages) if not n.startswith("_") and callable(getattr(messages, n))}
    public -= {
        "Any",
        "Iterable",
        "Mapping",
        "Sequence",
        "ConfigurationError",
        "dumps",
        "annotations",
    }
    assert public <= set(messages.__all__)
    for name in messages.__all__:
        assert hasattr(messages, name)
