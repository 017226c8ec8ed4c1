"""Deterministic synthetic market data: resolutions, trading calendars, bar time grids and OHLCV.

Nothing here is random at run time: every value is a pure function of the symbol's seed, the
resolution and the bar's open time, so the server and a test asking for the same bars always get
the same numbers.

* :class:`Resolution` parses TradingView resolution codes (``"1"``, ``"60"``, ``"1H"``, ``"D"``,
  ``"1W"``, ``"3M"``, ``"1S"``, ``"188"`` ...) and says whether a free plan may use it.
* :class:`Calendar` is an exchange's trading week: time zone, session open (minutes after local
  midnight, negative for a session that opens the evening before), session length, extended hours.
* :class:`Timeline` is the grid of bar open times of one (calendar, resolution, session) up to the
  data anchor, newest ``depth`` bars, extendable forward for live mode.
* :func:`bar_series` computes bars' open/high/low/close/volume from their times.

Daily bars sit at the session open (NSE 03:45 UTC, US 14:30/13:30 UTC, crypto 00:00 UTC), weekly
bars at the first session of the week, monthly bars at the first session of the month.
"""

from __future__ import annotations

import math
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

__all__ = [
    "Calendar",
    "Resolution",
    "Timeline",
    "bar_series",
    "bar_values",
    "parse_resolution",
]

_MASK64 = (1 << 64) - 1

#: One bar's ``(open, high, low, close, volume)``.
Values = tuple[float, float, float, float, float | None]

#: Minute counts a free or anonymous plan may request (tvDatafeed's values and the usual ones).
STANDARD_MINUTES = frozenset({1, 3, 5, 15, 30, 45, 60, 120, 180, 240})
STANDARD_MONTHS = frozenset({1, 3, 6, 12})

_RESOLUTION_RE = re.compile(r"^(\d{1,5})?([SHDWM]?)$")


@dataclass(frozen=True)
class Resolution:
    """A parsed resolution code.

    ``unit`` is one of ``"S"`` (seconds), ``"T"`` (minutes), ``"D"``, ``"W"``, ``"M"``;
    ``count`` how many units one bar spans; ``code`` the text the client sent.
    Immutable and thread-safe.
    """

    code: str
    unit: str
    count: int

    @property
    def intraday(self) -> bool:
        """True for second and minute resolutions (bars inside a session)."""
        return self.unit in ("S", "T")

    @property
    def step_seconds(self) -> int:
        """Nominal bar length in seconds (months count 30 days, weeks 7)."""
        per_unit = {"S": 1, "T": 60, "D": 86_400, "W": 7 * 86_400, "M": 30 * 86_400}
        return per_unit[self.unit] * self.count

    @property
    def is_custom(self) -> bool:
        """True when only a paid plan may use it: seconds, or a non-standard count."""
        if self.unit == "S":
            return True
        if self.unit == "T":
            return self.count not in STANDARD_MINUTES
        if self.unit in ("D", "W"):
            return self.count != 1
        return self.count not in STANDARD_MONTHS

    @property
    def key(self) -> str:
        """Canonical form, equal for equivalent codes (``"60"``/``"1H"``, ``"D"``/``"1D"``)."""
        return f"{self.count}{self.unit}"


def parse_resolution(code: object) -> Resolution | None:
    """Parse a resolution code; ``None`` when it is not one the server understands."""
    if not isinstance(code, str):
        return None
    match = _RESOLUTION_RE.match(code)
    if match is None or code == "":
        return None
    digits, letter = match.groups()
    count = int(digits) if digits else 1
    if count <= 0:
        return None
    if letter == "":
        return Resolution(code, "T", count)
    if letter == "H":
        # Hours are minutes for the grid; "1H".."4H" map onto standard minute counts.
        return Resolution(code, "T", count * 60)
    if letter == "S":
        return Resolution(code, "S", count)
    if letter == "M" and count > 12:
        return None
    return Resolution(code, letter, count)


@dataclass(frozen=True)
class Calendar:
    """An exchange's trading calendar. Immutable and thread-safe.

    ``open_minute`` is the session open in minutes after local midnight of the trading day
    (negative: the session opens the evening before, like CME futures or forex);
    ``duration`` is the session length in minutes; ``weekdays`` the trading days (0 = Monday);
    ``extended`` an optional ``(open_minute, duration)`` for ``session="extended"``;
    ``holidays`` closes New Year's Day and Christmas.
    """

    name: str
    timezone: str
    open_minute: int
    duration: int
    weekdays: frozenset[int] = frozenset(range(5))
    extended: tuple[int, int] | None = None
    holidays: bool = True

    @property
    def zone(self) -> ZoneInfo:
        """The calendar's time zone."""
        return _zone(self.timezone)

    def is_trading_day(self, day: date) -> bool:
        """Whether ``day`` has a session."""
        if day.weekday() not in self.weekdays:
            return False
        return not (self.holidays and (day.month, day.day) in ((1, 1), (12, 25)))

    def session(self, day: date, *, extended: bool = False) -> tuple[int, int]:
        """The session of trading day ``day`` as UTC epoch seconds ``(open, close)``."""
        open_minute, duration = self.open_minute, self.duration
        if extended and self.extended is not None:
            open_minute, duration = self.extended
        wall = datetime(day.year, day.month, day.day) + timedelta(minutes=open_minute)
        start = int(wall.replace(tzinfo=self.zone).timestamp())
        return start, start + duration * 60

    def session_string(self) -> str:
        """TradingView-style session text, e.g. ``"0930-1600"``."""
        start = self.open_minute % 1440
        end = (self.open_minute + self.duration) % 1440
        if self.duration >= 1440:
            return "24x7" if len(self.weekdays) == 7 else "0000-0000"
        return f"{start // 60:02d}{start % 60:02d}-{end // 60:02d}{end % 60:02d}"


_ZONES: dict[str, ZoneInfo] = {}


def _zone(name: str) -> ZoneInfo:
    zone = _ZONES.get(name)
    if zone is None:
        zone = ZoneInfo(name)
        _ZONES[name] = zone
    return zone


def _group_key(day: date, resolution: Resolution) -> tuple[int, int]:
    """The weekly or monthly bucket a trading day falls in."""
    if resolution.unit == "W":
        iso_year, iso_week, _ = day.isocalendar()
        index = iso_year * 53 + iso_week
        return (index // resolution.count, 0)
    months = day.year * 12 + day.month - 1
    return (months // resolution.count, 0)


class Timeline:
    """Bar open times of one (calendar, resolution, session), oldest first.

    Built backwards from ``anchor`` (UTC epoch seconds: the newest bar opens at or before it) until
    ``depth`` bars or the ``listed`` date; :meth:`extend` adds future bars for live mode.
    Thread-safe: :meth:`times` and :meth:`extend` take an internal lock (no I/O under it).
    """

    def __init__(
        self,
        calendar: Calendar,
        resolution: Resolution,
        *,
        anchor: int,
        depth: int,
        listed: date,
        extended: bool = False,
    ) -> None:
        self.calendar = calendar
        self.resolution = resolution
        self.extended = extended and calendar.extended is not None and resolution.intraday
        self._lock = threading.Lock()
        self._times = self._build_backward(anchor, depth, listed)
        #: Bar values by position, filled by the market as bars are computed (pure values, so
        #: concurrent fills are harmless).
        self.values: dict[int, Values] = {}
        #: Number of bars at or before the anchor (the live extension comes after them).
        self.history_len = len(self._times)

    # -- building -----------------------------------------------------------------------------
    def _day_times(self, day: date) -> list[int]:
        """Bar open times inside trading day ``day`` (intraday), or its session open."""
        start, end = self.calendar.session(day, extended=self.extended)
        if not self.resolution.intraday:
            return [start]
        step = self.resolution.step_seconds
        return list(range(start, end, step))

    def _build_backward(self, anchor: int, depth: int, listed: date) -> list[int]:
        zone = self.calendar.zone
        # The trading day of the anchor (overnight sessions belong to the next local day).
        day = datetime.fromtimestamp(anchor, zone).date() + timedelta(days=2)
        collected: list[int] = []  # newest first
        if self.resolution.unit in ("W", "M"):
            groups: dict[tuple[int, int], int] = {}
            order: list[tuple[int, int]] = []
            while day >= listed and len(order) <= depth + 1:
                if self.calendar.is_trading_day(day):
                    start = self.calendar.session(day)[0]
                    if start <= anchor:
                        key = _group_key(day, self.resolution)
                        if key not in groups:
                            order.append(key)
                        groups[key] = start  # iterating backwards: ends at the earliest day
                day -= timedelta(days=1)
            # The oldest group may be incomplete (cut by the listing date or the depth): drop it
            # unless the listing date cut it (then it is the true first bar).
            if len(order) > depth:
                order = order[:depth]
            collected = [groups[key] for key in order]
        else:
            while day >= listed and len(collected) < depth:
                if self.calendar.is_trading_day(day):
                    for t in reversed(self._day_times(day)):
                        if t <= anchor:
                            collected.append(t)
                            if len(collected) >= depth:
                                break
                day -= timedelta(days=1)
        collected.reverse()
        return collected

    def _forward(self, after: int, count: int) -> list[int]:
        """``count`` bar times strictly after ``after``."""
        zone = self.calendar.zone
        day = datetime.fromtimestamp(after, zone).date() - timedelta(days=2)
        out: list[int] = []
        if self.resolution.unit in ("W", "M"):
            last_key: tuple[int, int] | None = None
            while len(out) < count:
                if self.calendar.is_trading_day(day):
                    start = self.calendar.session(day)[0]
                    key = _group_key(day, self.resolution)
                    if key != last_key:
                        last_key = key
                        if start > after:
                            out.append(start)
                day += timedelta(days=1)
            return out
        while len(out) < count:
            if self.calendar.is_trading_day(day):
                for t in self._day_times(day):
                    if t > after:
                        out.append(t)
                        if len(out) >= count:
                            break
            day += timedelta(days=1)
        return out

    # -- access -------------------------------------------------------------------------------
    def times(self, upto: int) -> list[int]:
        """The first ``upto`` bar times (extending the grid forward when needed)."""
        with self._lock:
            missing = upto - len(self._times)
            if missing > 0:
                last = self._times[-1] if self._times else 0
                self._times.extend(self._forward(last, missing))
            return self._times[:upto]

    def slice(self, lo: int, hi: int) -> list[int]:
        """Bar times at positions ``[lo, hi)`` (extending the grid forward when needed)."""
        with self._lock:
            missing = hi - len(self._times)
            if missing > 0:
                last = self._times[-1] if self._times else 0
                self._times.extend(self._forward(last, missing))
            return self._times[lo:hi]

    def time_at(self, position: int) -> int:
        """The bar time at ``position`` (0 = oldest), extending forward when needed."""
        return self.times(position + 1)[position]


def _splitmix(x: int) -> int:
    x = (x + 0x9E3779B97F4A7C15) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


_TWO_PI = 2 * math.pi
_P1 = 86_400 * 365.25 * 3.1
_P2 = 86_400 * 47.3
_P3 = 3_600 * 7.7
_K = 0x100000001B3
_BITS21 = (1 << 21) - 1
_SCALE21 = 1.0 / (1 << 21)


def price_at(seed: int, base: float, t: float) -> float:
    """The synthetic mid price at epoch time ``t``: slow waves around ``base`` plus small noise."""
    return bar_series(seed, base, [int(t), int(t) + 1], pricescale=0, volume_base=None)[0][0]


def bar_series(
    seed: int,
    base: float,
    times: Sequence[int],
    *,
    pricescale: int,
    volume_base: float | None,
    volume_decimals: int = 0,
) -> list[tuple[float, float, float, float, float | None]]:
    """``(open, high, low, close, volume)`` of the bars opening at ``times[:-1]``.

    Bar ``k`` spans ``times[k]`` to ``times[k + 1]``: it opens at the price of ``times[k]`` and
    closes at the price of ``times[k + 1]`` (so a bar's close is the next bar's open). Prices are
    rounded to ``1 / pricescale`` (not at all when ``pricescale`` is 0); high >= max(open, close)
    and low <= min(open, close) always hold; volume is ``None`` when ``volume_base`` is.
    """
    sin, exp, mix = math.sin, math.exp, _splitmix
    phase1 = (seed % 997) / 997.0 * _TWO_PI
    phase2 = (seed % 991) / 991.0 * _TWO_PI
    phase3 = phase1 + phase2
    w1, w2, w3 = _TWO_PI / _P1, _TWO_PI / _P2, _TWO_PI / _P3
    prices = []
    for t in times:
        noise = (mix(seed ^ (t * _K + 7)) * 2.0**-64 - 0.5) * 0.004
        prices.append(
            base
            * exp(
                0.25 * sin(w1 * t + phase1)
                + 0.08 * sin(w2 * t + phase2)
                + 0.015 * sin(w3 * t + phase3)
                + noise
            )
        )
    out: list[tuple[float, float, float, float, float | None]] = []
    scale = float(pricescale)
    for k in range(len(times) - 1):
        t = times[k]
        span = max(1, times[k + 1] - t)
        o_raw, c_raw = prices[k], prices[k + 1]
        bits = mix(seed ^ (t * _K + 11))
        u_high = (bits & _BITS21) * _SCALE21
        u_low = ((bits >> 21) & _BITS21) * _SCALE21
        u_vol = ((bits >> 42) & _BITS21) * _SCALE21
        spread = 0.002 + 0.01 * min(1.0, span / 86_400) ** 0.5
        h_raw = (o_raw if o_raw > c_raw else c_raw) * (1 + spread * u_high)
        l_raw = (o_raw if o_raw < c_raw else c_raw) * (1 - spread * u_low)
        if scale:
            o = round(o_raw * scale) / scale
            h = round(h_raw * scale) / scale
            lo = round(l_raw * scale) / scale
            c = round(c_raw * scale) / scale
        else:
            o, h, lo, c = o_raw, h_raw, l_raw, c_raw
        h = max(h, o, c)
        lo = min(lo, o, c)
        volume: float | None = None
        if volume_base is not None:
            raw = volume_base * (span / 86_400) * (0.4 + 1.2 * u_vol)
            volume = float(round(raw, volume_decimals)) if volume_decimals else float(round(raw))
        out.append((o, h, lo, c, volume))
    return out


def bar_values(
    seed: int,
    base: float,
    t: int,
    span: int,
    *,
    pricescale: int,
    volume_base: float | None,
    volume_decimals: int = 0,
) -> tuple[float, float, float, float, float | None]:
    """One bar's ``(open, high, low, close, volume)``: :func:`bar_series` for one bar."""
    return bar_series(
        seed,
        base,
        [t, t + max(1, span)],
        pricescale=pricescale,
        volume_base=volume_base,
        volume_decimals=volume_decimals,
    )[0]
