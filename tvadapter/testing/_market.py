"""The fake server's market: timelines per (symbol, resolution, session), bar values, live clock.

Positions: a timeline's bar ``p`` (0 = oldest). ``history_len`` bars exist at start-up; in live
mode every tick closes one more bar per timeline, so the closed bars are positions
``[0, history_len + tick)`` and the forming bar is position ``history_len + tick``.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import cast

from tvadapter.protocol import Bar

from ._catalogue import Catalogue, Instrument
from ._data import Resolution, Timeline, Values, bar_series

__all__ = ["HistoryDepth", "Market"]

#: ``history_depth``: bars per timeline; an int for all, or ``f(symbol, resolution) -> int|None``.
HistoryDepth = int | Callable[[str, str], int | None] | None

_MAX_DAILY_DEPTH = 100_000
_CACHE_SIZE = 64


class Market:
    """Timelines, bar values and the live clock.

    Thread-safe: one lock guards the timeline cache and the live clock; bar values are pure.
    """

    def __init__(
        self,
        catalogue: Catalogue,
        *,
        anchor: int,
        intraday_depth: int,
        history_depth: HistoryDepth,
        updates_per_bar: int,
    ) -> None:
        self.catalogue = catalogue
        self.anchor = anchor
        self.intraday_depth = intraday_depth
        self.history_depth = history_depth
        self.updates_per_bar = updates_per_bar
        self._lock = threading.Lock()
        self._timelines: OrderedDict[tuple[str, str, bool], Timeline] = OrderedDict()
        self._tick = 0
        self._stage = 0

    # -- live clock ---------------------------------------------------------------------------
    @property
    def clock(self) -> tuple[int, int]:
        """``(tick, stage)``: closed live bars so far, and forming-bar updates since the last."""
        with self._lock:
            return self._tick, self._stage

    def step(self) -> bool:
        """Advance the live clock by one forming-bar update; True when a bar closed."""
        with self._lock:
            self._stage += 1
            if self._stage >= self.updates_per_bar:
                self._stage = 0
                self._tick += 1
                return True
            return False

    # -- timelines ----------------------------------------------------------------------------
    def depth_for(self, inst: Instrument, resolution: Resolution) -> int:
        """How many bars of history ``inst`` has at ``resolution`` (before the listing cut)."""
        depth: int | None = None
        if callable(self.history_depth):
            depth = self.history_depth(inst.full_name, resolution.code)
        elif isinstance(self.history_depth, int):
            depth = self.history_depth
        if depth is None:
            depth = self.intraday_depth if resolution.intraday else _MAX_DAILY_DEPTH
        return max(1, depth)

    def timeline(self, inst: Instrument, resolution: Resolution, *, extended: bool) -> Timeline:
        """The (cached) timeline of ``inst`` at ``resolution``."""
        key = (inst.full_name, resolution.code, extended)
        with self._lock:
            found = self._timelines.get(key)
            if found is not None:
                self._timelines.move_to_end(key)
                return found
        built = Timeline(
            inst.calendar,
            resolution,
            anchor=self.anchor,
            depth=self.depth_for(inst, resolution),
            listed=inst.listed,
            extended=extended,
        )
        with self._lock:
            found = self._timelines.setdefault(key, built)
            while len(self._timelines) > _CACHE_SIZE:
                self._timelines.popitem(last=False)
            return found

    def closed_end(self, timeline: Timeline) -> int:
        """Position just past the newest closed bar."""
        with self._lock:
            return timeline.history_len + self._tick

    # -- bars ---------------------------------------------------------------------------------
    def bars(
        self,
        inst: Instrument,
        timeline: Timeline,
        lo: int,
        hi: int,
        *,
        base: int,
        forming: int | None = None,
        stage: int | None = None,
    ) -> list[Bar]:
        """Bars at positions ``[lo, hi)`` with ``index = position - base``, oldest first.

        The bar at position ``forming`` (if inside the span) gets its partial, forming-bar values
        for live ``stage`` (the current stage when ``None``).
        """
        if hi <= lo:
            return []
        times = timeline.slice(lo, hi + 1)
        cache = timeline.values
        cached = [cache.get(p) for p in range(lo, hi)]
        if all(v is not None for v in cached):
            values = cast("list[Values]", cached)
        else:
            values = bar_series(
                inst.seed,
                inst.base_price,
                times,
                pricescale=inst.pricescale,
                volume_base=inst.volume_base,
                volume_decimals=inst.volume_decimals,
            )
            cache.update(zip(range(lo, hi), values, strict=True))
        out: list[Bar] = []
        for k, final in enumerate(values):
            p = lo + k
            o, h, low, c, v = self.partial(inst, final, stage) if p == forming else final
            out.append(Bar(float(times[k]), o, h, low, c, v, p - base))
        return out

    def partial(
        self,
        inst: Instrument,
        final: tuple[float, float, float, float, float | None],
        stage: int | None = None,
    ) -> tuple[float, float, float, float, float | None]:
        """A forming bar's values at live ``stage``: moving from its open towards ``final``."""
        if stage is None:
            stage = self.clock[1]
        o, h, low, c, v = final
        f = (stage + 1) / (self.updates_per_bar + 1)
        scale = inst.pricescale

        def towards(x: float) -> float:
            return round((o + (x - o) * f) * scale) / scale

        pc = towards(c)
        ph = max(towards(h), o, pc)
        pl = min(towards(low), o, pc)
        pv = None if v is None else round(v * f, inst.volume_decimals)
        return o, ph, pl, pc, pv
