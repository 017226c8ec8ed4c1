"""Content of the fake server's replies: hello, symbol info, quote values, error wording.

The packets themselves are built with :mod:`tvadapter.protocol.server_messages` (raw UTF-8, as
the real server sends, so that clients must count UTF-16 units, PROTOCOL.md §3.2).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

from tvadapter.protocol.server_messages import default_hello_info

from ._catalogue import Instrument
from ._data import Resolution

__all__ = ["hello_info", "misuse_text", "quote_values", "symbol_info"]

_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _arg_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return _ENCODER.encode(value)


def misuse_text(method: str, args: Sequence[Any]) -> str:
    """``method: M. args: "[a, b]"``: the description of a ``critical_error``, as the real one."""
    return f'method: {method}. args: "[{", ".join(_arg_text(a) for a in args)}]"'


def hello_info(
    *, session_id: str, now: float, extra: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The hello object (no ``m``), with the keys a 2025 ``prodata`` hello has."""
    info = default_hello_info(now, session_id=session_id, release="release_208-91")
    info["studies_metadata_hash"] = hashlib.sha1(b"tvadapter-fake").hexdigest()
    if extra:
        info.update(extra)
    return info


def symbol_info(inst: Instrument, *, session: str, resolution: Resolution | None) -> dict[str, Any]:
    """The ``symbol_resolved`` info object (about 40 keys, PROTOCOL.md §9)."""
    cal = inst.calendar
    kind = inst.type
    info: dict[str, Any] = {
        "name": inst.symbol,
        "full_name": inst.full_name,
        "pro_name": inst.full_name,
        "base_name": [inst.full_name],
        "description": inst.description,
        "short_description": inst.description,
        "exchange": inst.exchange,
        "listed_exchange": inst.exchange,
        "provider_id": "fake",
        "type": kind,
        "typespecs": list(inst.typespecs),
        "currency_code": inst.currency,
        "currency_id": inst.currency,
        "timezone": cal.timezone,
        "session": cal.session_string(),
        "session_display": cal.session_string(),
        "session_holidays": "",
        "subsessions": [
            {
                "id": session,
                "description": "Regular Trading Hours" if session == "regular" else "Extended",
                "session": cal.session_string(),
                "private": False,
            }
        ],
        "subsession_id": session,
        "pricescale": inst.pricescale,
        "minmov": 1,
        "minmove2": 0,
        "fractional": False,
        "has_intraday": True,
        "has_seconds": True,
        "has_daily": True,
        "has_weekly_and_monthly": True,
        "has_empty_bars": False,
        "has_no_volume": not inst.has_volume,
        "visible_plots_set": "ohlcv" if inst.has_volume else "ohlc",
        "volume_type": "base" if inst.has_volume else None,
        "is_tradable": True,
        "is_replayable": True,
        "has_adjustment": kind == "stock",
        "has_extended_hours": cal.extended is not None,
        "allowed_adjustment": "any" if kind == "stock" else "none",
        "variable_tick_size": "",
        "source2": {"id": inst.exchange, "name": inst.exchange, "description": inst.exchange},
        "source_id": inst.exchange,
        "pro_perm": "",
        "country": inst.country,
        "isin": inst.isin,
        "figi": {"country-composite": None, "exchange-level": None},
        "first_bar_time_1d": None,
        "local_description": inst.local_description or inst.description,
        "language": "en",
        "data_frequency": resolution.code if resolution is not None else "1D",
    }
    if inst.root is not None:
        info["root"] = inst.root
        info["continuous_contract"] = True
    return info


def quote_values(
    inst: Instrument,
    *,
    last: float,
    prev_close: float,
    volume: float | None,
    lp_time: int,
    update_mode: str,
    fields: Sequence[str] | None,
) -> dict[str, Any]:
    """The ``v`` object of a ``qsd`` snapshot, restricted to ``fields`` when given."""
    ch = round(last - prev_close, 10)
    chp = round(100.0 * ch / prev_close, 2) if prev_close else 0.0
    values: dict[str, Any] = {
        "ch": ch,
        "chp": chp,
        "current_session": "market",
        "description": inst.description,
        "local_description": inst.local_description or inst.description,
        "language": "en",
        "exchange": inst.exchange,
        "fractional": False,
        "is_tradable": True,
        "lp": last,
        "lp_time": lp_time,
        "minmov": 1,
        "minmove2": 0,
        "original_name": inst.full_name,
        "pricescale": inst.pricescale,
        "pro_name": inst.full_name,
        "short_name": inst.symbol,
        "type": inst.type,
        "update_mode": update_mode,
        # The real server sends 1e+100 as a sentinel for an index's volume.
        "volume": volume if volume is not None else 1e100,
        "currency_code": inst.currency,
        "rchp": None,
        "rtc": None,
        "prev_close_price": prev_close,
        "open_price": prev_close,
        "high_price": max(last, prev_close),
        "low_price": min(last, prev_close),
        "status": "streaming",
    }
    if fields:
        return {k: values[k] for k in fields if k in values}
    return values
