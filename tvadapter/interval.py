"""Bar intervals: tvDatafeed's :class:`Interval` enum and the resolution codes TradingView accepts.

:class:`Interval` keeps tvDatafeed's 13 member names and values (PROTOCOL §14), so
``Interval.in_daily.value == "1D"`` as before.  It also accepts the other spellings the server
understands, by value lookup::

    Interval("1H") is Interval("60") is Interval("1h") is Interval.in_1_hour
    Interval("D") is Interval.in_daily

:func:`resolution` turns an :class:`Interval` or a string into the code sent in ``create_series``:
members keep their tvDatafeed value; other valid codes (seconds ``"5S"``, custom minute counts
``"188"``, ``"3M"``...) are normalised and passed through, since paid plans can use them (a free
plan gets ``series_error "custom_resolution"``).  :func:`seconds_per_bar` gives the nominal bar
length, used to size date-range requests.

Pure and thread-safe (no state).
"""

from __future__ import annotations

import enum
import re

from .errors import ConfigurationError

__all__ = ["Interval", "resolution", "seconds_per_bar"]

_MINUTE = 60
_HOUR = 3_600
_DAY = 86_400
_WEEK = 7 * _DAY
#: A nominal month, only used to estimate how many bars a date range spans.
_MONTH = 30 * _DAY

_UNIT_SECONDS = {"S": 1, "": _MINUTE, "H": _HOUR, "D": _DAY, "W": _WEEK, "M": _MONTH}

# A resolution code: an optional count followed by an optional unit.  No unit means minutes.
_CODE = re.compile(r"(?P<count>[0-9]{0,5})(?P<unit>[SsHhDdWwM]?)")


class Interval(enum.Enum):
    """tvDatafeed's bar intervals (same member names and values).

    Value lookup also accepts equivalent spellings: ``Interval("60")``, ``Interval("1h")``,
    ``Interval("D")``, ``Interval("240")``...  An unknown spelling raises ``ValueError``.
    Immutable and thread-safe.
    """

    in_1_minute = "1"
    in_3_minute = "3"
    in_5_minute = "5"
    in_15_minute = "15"
    in_30_minute = "30"
    in_45_minute = "45"
    in_1_hour = "1H"
    in_2_hour = "2H"
    in_3_hour = "3H"
    in_4_hour = "4H"
    in_daily = "1D"
    in_weekly = "1W"
    in_monthly = "1M"

    @classmethod
    def _missing_(cls, value: object) -> Interval | None:
        if not isinstance(value, str):
            return None
        try:
            return _BY_KEY.get(_key(*_split(value)))
        except ConfigurationError:
            return None

    @property
    def seconds(self) -> int:
        """Nominal length of one bar in seconds (a month counts 30 days)."""
        return _parse_seconds(self.value)


def _split(code: str) -> tuple[int, str]:
    """``"15"`` -> (15, ""), ``"4h"`` -> (4, "H"), ``"D"`` -> (1, "D"); invalid -> error."""
    text = code.strip()
    match = _CODE.fullmatch(text)
    if match is None or not text:
        raise ConfigurationError(f"interval: not a TradingView resolution: {code!r}")
    unit = match["unit"].upper()
    count_text = match["count"]
    if not count_text and not unit:
        raise ConfigurationError(f"interval: not a TradingView resolution: {code!r}")
    count = int(count_text) if count_text else 1
    if count <= 0:
        raise ConfigurationError(f"interval: the bar count must be positive, got {code!r}")
    return count, unit


def _parse_seconds(code: str) -> int:
    count, unit = _split(code)
    return count * _UNIT_SECONDS[unit]


def _key(count: int, unit: str) -> tuple[str, int]:
    """Identity of a resolution: minutes and hours are one family ("60" is "1H"); days, weeks,
    months and seconds are each their own ("1440" minutes is not "1D": daily bars start at the
    session open)."""
    family = "intraday" if unit in ("", "H") else unit
    return family, count * _UNIT_SECONDS[unit]


# Lowercase "m" is refused on purpose: "1m" could mean one minute or one month.
_BY_KEY: dict[tuple[str, int], Interval] = {_key(*_split(m.value)): m for m in Interval}


def resolution(interval: Interval | str) -> str:
    """The resolution code to send for ``interval`` (an :class:`Interval` or a code string).

    Codes equivalent to an :class:`Interval` member become that member's value (``"60"`` ->
    ``"1H"``, ``"D"`` -> ``"1D"``); other valid codes are normalised (``"5s"`` -> ``"5S"``).
    Raises :class:`~tvadapter.errors.ConfigurationError` (a ``ValueError``) for anything else.
    """
    if isinstance(interval, Interval):
        return interval.value
    if not isinstance(interval, str):
        raise ConfigurationError(
            f"interval: expected an Interval or a resolution string, got {type(interval).__name__}"
        )
    count, unit = _split(interval)
    member = _BY_KEY.get(_key(count, unit))
    if member is not None:
        return member.value
    return f"{count}{unit}"


def seconds_per_bar(interval: Interval | str) -> int:
    """Nominal bar length in seconds of ``interval`` (months count 30 days)."""
    return _parse_seconds(resolution(interval))
