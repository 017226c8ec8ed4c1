"""Tests of tvadapter._symbols: tvDatafeed's symbol formatting rules (PROTOCOL §15)."""

from __future__ import annotations

import pytest

from tvadapter import ConfigurationError
from tvadapter._symbols import format_symbol, session_name


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("AAPL", "NASDAQ", None), "NASDAQ:AAPL"),
        (("RELIANCE", "NSE", None), "NSE:RELIANCE"),
        (("BINANCE:BTCUSDT.P", "NSE", None), "BINANCE:BTCUSDT.P"),
        (("NASDAQ:AAPL", "IGNORED", 1), "NASDAQ:AAPL"),
        (("CRUDEOIL", "MCX", 1), "MCX:CRUDEOIL1!"),
        (("NIFTY", "NSE", 2), "NSE:NIFTY2!"),
    ],
)
def test_format_symbol_follows_tvdatafeed(args: tuple[str, str, int | None], expected: str) -> None:
    """The EX:SYM string follows tvDatafeed's four rules."""
    assert format_symbol(*args) == expected


def test_default_exchange_is_nse() -> None:
    """Without an exchange the symbol goes to NSE, as in tvDatafeed."""
    assert format_symbol("TCS") == "NSE:TCS"


@pytest.mark.parametrize("contract", ["1", 1.0, True, False, 0, -1, [1]])
def test_bad_contract_is_a_value_error(contract: object) -> None:
    """A contract that is not a positive int raises a ValueError saying it is not valid."""
    with pytest.raises(ValueError, match="not a valid contract"):
        format_symbol("CRUDEOIL", "MCX", contract)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("symbol", "exchange", "param"),
    [
        ("", "NSE", "symbol"),
        ("  ", "NSE", "symbol"),
        ("X", "", "exchange"),
        (None, "NSE", "symbol"),
    ],
)
def test_empty_names_are_rejected(symbol: object, exchange: str, param: str) -> None:
    """An empty symbol or exchange is a ConfigurationError naming the parameter."""
    with pytest.raises(ConfigurationError, match=param):
        format_symbol(symbol, exchange)  # type: ignore[arg-type]


def test_session_name() -> None:
    """extended_session=True selects the 'extended' session, else 'regular'."""
    assert session_name(True) == "extended"
    assert session_name(False) == "regular"
