"""Sans-I/O bookkeeping of one live series: which bars have closed, what to deliver, backfill.

Theory of operation
-------------------
TradingView streams a series as ``du`` packets keyed by bar *time*: a known time updates that
bar (the forming bar changes in place), a newer time starts a new bar -- which means the
previous newest bar has closed (PROTOCOL.md §9, "Merging").  A :class:`SeriesTracker` holds,
for one subscription and across every connection it lives on:

* ``forming``: the newest bar seen, still open as far as we know;
* ``delivered_through``: the time of the newest bar handed out as *closed* (or the point before
  which nothing is ever delivered).

Bars reach it in two ways:

1. **Loads** (``create_series``, then ``request_more_data`` rounds when a backfill needs more):
   :meth:`begin_load`, :meth:`add` for every ``timescale_update`` or ``du`` bar of the series
   while the load runs, :meth:`needs_more` at each ``series_completed``, :meth:`finish_load`
   once enough is loaded.  The *first* load sets the baseline: its newest bar is the forming bar
   and nothing older is delivered (a subscription delivers the bars that close after it began).
   A later load -- after a reconnect -- delivers every loaded bar newer than
   ``delivered_through`` except the newest (still forming), oldest first: the bars that closed
   while the connection was down.  Bars at or before ``delivered_through`` are skipped, so
   nothing is delivered twice.
2. **Live updates** (``du`` after the load): :meth:`update`.

A load *covers* the outage when its oldest bar is at or before the *anchor*: the forming bar we
knew before the drop (or ``delivered_through`` without one).  Loads are the newest N bars of a
contiguous series, so a covering load holds every bar that closed since.  When it does not
cover, :meth:`needs_more` asks for another ``request_more_data`` round, until the load covers,
the server says there is no more (``data_completed`` ``"end"``/``"limit"``) or a round adds
nothing older; a load that still does not cover is counted in :attr:`gaps` (the bars between
were beyond the server's reach).

Emitted bars are :class:`Emit` values: ``closed=True`` for a closed bar (delivered once, in
time order), ``closed=False`` for the forming bar after it changed (opt-in updates).

Pure: no clock, no I/O, no threads.  Not thread-safe: one thread (the live engine) owns each
tracker.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from .protocol import Bar

__all__ = ["Emit", "SeriesTracker"]

#: ``data_completed`` values saying that no older bars can be loaded.
_EXHAUSTED = frozenset({"end", "limit"})


@dataclass(frozen=True, slots=True)
class Emit:
    """A bar to hand to consumers: ``closed`` (final, once) or the forming bar's new values."""

    bar: Bar
    closed: bool


def _same_values(a: Bar, b: Bar) -> bool:
    """Equal time, OHLC and volume (the index may differ between loads)."""
    return a[:6] == b[:6]


class SeriesTracker:
    """Closed-bar detection and gap-free backfill for one subscription (see module docstring)."""

    __slots__ = (
        "_baseline",
        "_loaded",
        "_loading",
        "_oldest_before_round",
        "_rounds",
        "backfilled",
        "delivered_through",
        "forming",
        "gaps",
    )

    def __init__(self) -> None:
        #: Time of the newest bar delivered as closed; bars at or before it are never delivered.
        #: ``None`` until the first load finished.
        self.delivered_through: float | None = None
        #: The newest bar seen (still forming as far as we know), or None.
        self.forming: Bar | None = None
        #: Loads after which bars may be missing (the server could not reach back far enough).
        self.gaps = 0
        #: Closed bars delivered by reloads (bars that closed while the connection was down).
        self.backfilled = 0
        self._baseline = False
        self._loading = False
        self._loaded: dict[float, Bar] = {}
        self._oldest_before_round: float | None = None
        self._rounds = 0

    # -- state -------------------------------------------------------------------------------

    @property
    def loading(self) -> bool:
        """True between :meth:`begin_load` and :meth:`finish_load`."""
        return self._loading

    @property
    def has_baseline(self) -> bool:
        """True once a first load has finished."""
        return self._baseline

    @property
    def anchor(self) -> float | None:
        """The time a reload must reach back to (None: any load covers)."""
        if not self._baseline:
            return None
        if self.forming is not None:
            return self.forming.time
        dt = self.delivered_through
        return None if dt is None or math.isinf(dt) else dt

    @property
    def loaded(self) -> int:
        """Distinct bar times collected by the current load."""
        return len(self._loaded)

    @property
    def oldest_loaded(self) -> float | None:
        """Time of the oldest bar of the current load (None if it has none)."""
        return min(self._loaded) if self._loaded else None

    def reload_count(self, wall_now: float, bar_seconds: float, minimum: int, maximum: int) -> int:
        """Bars to ask for in ``create_series``: enough to reach the anchor, by wall-clock
        estimate, within ``[minimum, maximum]`` (``request_more_data`` fixes an underestimate)."""
        anchor = self.anchor
        if anchor is None or bar_seconds <= 0:
            return minimum
        estimate = math.ceil(max(0.0, wall_now - anchor) / bar_seconds) + 2
        return max(minimum, min(maximum, estimate))

    def round_size(self, minimum: int, maximum: int) -> int:
        """Bars to ask for in the next ``request_more_data``: as many as loaded so far (the
        load doubles each round, so a gap of N bars takes O(log N) rounds), within bounds."""
        return max(1, min(maximum, max(minimum, len(self._loaded))))

    # -- loads -------------------------------------------------------------------------------

    def begin_load(self) -> None:
        """A new load starts (``create_series`` on a new chart session); its bars come next."""
        self._loading = True
        self._loaded = {}
        self._oldest_before_round = None
        self._rounds = 0

    def begin_round(self) -> None:
        """Another round of the same load starts (``request_more_data``)."""
        self._oldest_before_round = self.oldest_loaded
        self._rounds += 1

    def add(self, bars: Iterable[Bar]) -> None:
        """Bars of the series received while loading (``timescale_update`` or ``du``)."""
        loaded = self._loaded
        for bar in bars:
            loaded[bar.time] = bar

    def added_older(self) -> int:
        """Bars of the current round older than what the load held before it."""
        before = self._oldest_before_round
        if before is None:
            return len(self._loaded)
        return sum(1 for t in self._loaded if t < before)

    def covers(self) -> bool:
        """Whether the load holds every bar newer than the anchor."""
        anchor = self.anchor
        if anchor is None or not self._loaded:
            return True
        return min(self._loaded) <= anchor

    def needs_more(self, data_completed: str | None) -> bool:
        """After a ``series_completed``: should another ``request_more_data`` round follow?"""
        if not self._loading or self.covers():
            return False
        if data_completed in _EXHAUSTED:
            return False
        return not (self._rounds > 0 and self.added_older() == 0)

    def finish_load(self) -> list[Emit]:
        """The load is over: what to deliver (closed bars in order, then the forming bar)."""
        if not self._loading:
            return []
        self._loading = False
        bars = [self._loaded[t] for t in sorted(self._loaded)]
        self._loaded = {}
        if not self._baseline:
            self._baseline = True
            if not bars:
                self.delivered_through = -math.inf
                return []
            self.forming = bars[-1]
            self.delivered_through = bars[-2].time if len(bars) >= 2 else -math.inf
            return [Emit(bars[-1], closed=False)]
        through = self.delivered_through
        assert through is not None
        if not bars:
            return []
        if not self._covered(bars):
            self.gaps += 1
        fresh = [b for b in bars if b.time > through]
        if not fresh:
            return []
        emits = [Emit(b, closed=True) for b in fresh[:-1]]
        if emits:
            self.delivered_through = fresh[-2].time
            self.backfilled += len(emits)
        newest = fresh[-1]
        old = self.forming
        self.forming = newest
        if old is None or not _same_values(old, newest):
            emits.append(Emit(newest, closed=False))
        return emits

    def _covered(self, bars: list[Bar]) -> bool:
        anchor = self.anchor
        return anchor is None or bars[0].time <= anchor

    # -- live updates ------------------------------------------------------------------------

    def update(self, bars: Iterable[Bar]) -> list[Emit]:
        """Bars of a ``du`` (or a live ``timescale_update``): closed bars and forming changes."""
        if self._loading or not self._baseline:
            self.add(bars)
            return []
        through = self.delivered_through
        assert through is not None
        emits: list[Emit] = []
        changed = False
        for bar in sorted(bars, key=lambda b: b.time):
            forming = self.forming
            if forming is None:
                if bar.time > through:
                    self.forming = bar
                    changed = True
                continue
            if bar.time > forming.time:
                if forming.time > through:
                    emits.append(Emit(forming, closed=True))
                    through = forming.time
                    self.delivered_through = through
                self.forming = bar
                changed = True
            elif bar.time == forming.time and not _same_values(bar, forming):
                self.forming = bar
                changed = True
            # else: an update of an older bar, already delivered or never ours: ignored.
        if changed and self.forming is not None:
            emits.append(Emit(self.forming, closed=False))
        return emits
