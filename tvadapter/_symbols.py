"""tvDatafeed's symbol formatting rules (PROTOCOL §15), reproduced exactly, plus validation.

1. A symbol containing ``:`` is used as is (``exchange`` is ignored).
2. Otherwise, without ``fut_contract``: ``f"{exchange}:{symbol}"``.
3. With an integer ``fut_contract``: ``f"{exchange}:{symbol}{fut_contract}!"`` (``MCX:CRUDEOIL1!``).
4. Anything else raises ``ValueError("not a valid contract")`` (here a
   :class:`~tvadapter.errors.ConfigurationError`, which is a ``ValueError``).

Deviations, all rejecting input tvDatafeed would have sent to the server only to time out:
an empty symbol or exchange, ``True``/``False`` as a contract (``bool`` is an ``int``), and a
contract number below 1.

Pure and thread-safe.
"""

from __future__ import annotations

from .errors import ConfigurationError

__all__ = ["format_symbol", "session_name"]


def format_symbol(symbol: str, exchange: str = "NSE", fut_contract: int | None = None) -> str:
    """The ``EX:SYM`` string TradingView expects, by tvDatafeed's rules (see module docstring)."""
    if not isinstance(symbol, str) or not symbol.strip():
        raise ConfigurationError(f"symbol: expected a non-empty string, got {symbol!r}")
    symbol = symbol.strip()
    if ":" in symbol:
        return symbol
    if not isinstance(exchange, str) or not exchange.strip():
        raise ConfigurationError(f"exchange: expected a non-empty string, got {exchange!r}")
    exchange = exchange.strip()
    if fut_contract is None:
        return f"{exchange}:{symbol}"
    if isinstance(fut_contract, bool) or not isinstance(fut_contract, int):
        raise ConfigurationError(f"fut_contract: not a valid contract: {fut_contract!r}")
    if fut_contract < 1:
        raise ConfigurationError(
            f"fut_contract: not a valid contract: {fut_contract!r} (1 is the front contract)"
        )
    return f"{exchange}:{symbol}{fut_contract}!"


def session_name(extended_session: bool) -> str:
    """The ``session`` value of the ``resolve_symbol`` spec: ``"extended"`` or ``"regular"``."""
    return "extended" if extended_session else "regular"
