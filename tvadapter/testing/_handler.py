"""What the fake server answers, per connection: the chart, quote and auth logic, with no I/O.

:class:`RequestHandler` takes the client's requests (:class:`tvadapter.protocol.ClientRequest`)
and returns :class:`Out` objects: the packets of one outgoing message (plus, for a malformed
token, an instruction to close). The asyncio connection (:mod:`._connection`) adds heartbeats,
faults and the actual sending.

Behaviour (PROTOCOL.md §7-§16):

* ``set_auth_token``: ``unauthorized_user_token`` / ``widget_user_token`` -> anonymous; a
  JWT-shaped token -> that plan; an expired one -> a silent session (nothing but heartbeats);
  anything else -> ``protocol_error "bad auth token"`` then close.
* ``resolve_symbol`` -> ``symbol_resolved`` or ``symbol_error "invalid symbol"``.
* ``create_series`` -> ``series_loading``, ``timescale_update``, ``series_completed`` (with
  ``data_completed`` ``"end"`` when the oldest bar was reached, ``"limit"`` when the per-series
  cap truncated the load), or ``series_error "custom_resolution"``, or ``critical_error``
  (bad parameters, a second series in an anonymous chart session).
* ``request_more_data`` -> older bars at negative indices, until history or the cap runs out.
* ``modify_series`` -> a new round; a range already covered is a zero-bar round.
* ``switch_timezone`` with an unknown zone -> ``critical_error "invalid timezone"``.
* quote sessions -> one ``qsd`` snapshot and ``quote_completed`` per symbol, an error ``qsd``
  for unknown symbols, ``qsd`` deltas in live mode.
"""

from __future__ import annotations

import bisect
import json
import logging
import zoneinfo
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from tvadapter.protocol import RANGE_PRESETS, Bar, ClientRequest, SeriesPayload
from tvadapter.protocol import server_messages as SM

from . import _replies as R
from ._catalogue import Instrument
from ._config import FakeServerConfig
from ._data import Resolution, Timeline, parse_resolution
from ._market import Market
from ._tokens import parse_token

__all__ = ["SERIES_METHODS", "Out", "RequestHandler"]

logger = logging.getLogger(__name__)

#: Packets counted as "series packets" by the faults.
SERIES_METHODS = frozenset(
    {
        "series_loading",
        "symbol_resolved",
        "timescale_update",
        "series_timeframe",
        "series_completed",
        "series_error",
        "symbol_error",
        "du",
    }
)

_NOCHANGE = {"d": "", "indexes": "nochange"}
_EMPTY_SCALE: dict[str, Any] = {"index": 0, "zoffset": 0, "changes": [], "marks": [],
                                "index_diff": []}  # fmt: skip
_ANONYMOUS_TOKENS = frozenset({"unauthorized_user_token", "widget_user_token"})
_EXTRA_TIMEZONES = frozenset({"exchange", "Etc/UTC", "UTC"})
_MINUTE = Resolution("1", "T", 1)
_DAILY = Resolution("1D", "D", 1)
_PRESET_SECONDS = {
    "1D": 86_400,
    "5d": 5 * 86_400,
    "1M": 31 * 86_400,
    "3M": 92 * 86_400,
    "6M": 183 * 86_400,
    "12M": 366 * 86_400,
    "60M": 5 * 366 * 86_400,
}


@dataclass
class Out:
    """The packets of one outgoing message: ``(method, payload)`` pairs; ``close`` afterwards.

    ``close`` is ``(code, reason)`` with the fault module's code conventions. Not thread-safe
    (built and consumed on the event loop).
    """

    packets: list[tuple[str, str]] = field(default_factory=list)
    close: tuple[int, str] | None = None

    def add(self, method: str, payload: str) -> None:
        """Append one packet."""
        self.packets.append((method, payload))


@dataclass
class _Symbol:
    inst: Instrument
    extended: bool
    spec: str


@dataclass
class _Series:
    sid: str
    turnaround: str
    symbol_id: str
    symbol: _Symbol
    resolution: Resolution
    timeline: Timeline
    count: int
    cap: int
    lo: int = 0
    hi: int = 0
    base: int = 0
    loaded: int = 0
    #: Position of the forming bar this series streams (live mode, loaded up to the head).
    live_pos: int | None = None


@dataclass
class _Chart:
    cs: str
    timezone: str = "exchange"
    symbols: dict[str, _Symbol | None] = field(default_factory=dict)
    series: dict[str, _Series] = field(default_factory=dict)


@dataclass
class _Quote:
    qs: str
    fields: tuple[str, ...] = ()
    symbols: dict[str, Instrument] = field(default_factory=dict)


class _Misuse(Exception):
    """A request the real server answers with ``critical_error "invalid parameters"``."""


class RequestHandler:
    """Protocol logic of one connection (server role).

    Not thread-safe: used from the server's event-loop thread only.
    """

    def __init__(
        self,
        config: FakeServerConfig,
        market: Market,
        *,
        now: Callable[[], float],
        issued_tokens: Callable[[str], bool],
        on_bars: Callable[[int], None],
        node: str = "fake-charts-free-1-series-1",
    ) -> None:
        self.config = config
        self.market = market
        self.now = now
        self.issued_tokens = issued_tokens
        self.on_bars = on_bars
        self.node = node
        #: Characters of padding to add to each ``timescale_update`` node (HugeFrame fault).
        self.node_padding = 0
        self.auth = "none"  # "none", "anonymous", "token", "expired", "bad"
        self.plan: str | None = None
        self.charts: dict[str, _Chart] = {}
        self.quotes: dict[str, _Quote] = {}

    # -- dispatch -----------------------------------------------------------------------------
    @property
    def silent(self) -> bool:
        """True for an expired-token session: it answers nothing."""
        return self.auth == "expired"

    @property
    def anonymous(self) -> bool:
        """True until a valid token has been set."""
        return self.plan is None

    def handle(self, request: ClientRequest) -> list[Out]:
        """The messages answering one client request (possibly none)."""
        handler = getattr(self, "_m_" + request.method, None)
        params = list(request.params)
        if handler is None:
            logger.debug("fake server ignores method %s", request.method)
            return []
        try:
            result: list[Out] = handler(params)
        except _Misuse:
            session = params[0] if params and isinstance(params[0], str) else ""
            return [self._critical(session, "invalid parameters", request.method, params[1:])]
        return result

    def _critical(self, session: str, name: str, method: str, args: Sequence[Any]) -> Out:
        out = Out()
        out.add("critical_error", SM.critical_error(session, name, R.misuse_text(method, args)))
        return out

    # -- auth ---------------------------------------------------------------------------------
    def _m_set_auth_token(self, p: list[Any]) -> list[Out]:
        token = p[0] if p else None
        if isinstance(token, str) and token in _ANONYMOUS_TOKENS:
            self.auth, self.plan = "anonymous", None
            return []
        claims = parse_token(token) if isinstance(token, str) else None
        if claims is None or (self.config.strict_tokens and not self.issued_tokens(str(token))):
            self.auth = "bad"
            out = Out(close=(1000, ""))
            out.add("protocol_error", SM.protocol_error("bad auth token"))
            return [out]
        if claims.exp <= self.now():
            self.auth = "expired"
            self.plan = claims.plan
            return []
        self.auth, self.plan = "token", claims.plan
        return []

    def _m_set_locale(self, p: list[Any]) -> list[Out]:
        return []

    def _m_set_data_quality(self, p: list[Any]) -> list[Out]:
        return []

    # -- chart sessions -----------------------------------------------------------------------
    def _chart(self, p: list[Any]) -> _Chart:
        if not p or not isinstance(p[0], str):
            raise _Misuse
        chart = self.charts.get(p[0])
        if chart is None:
            raise _Misuse
        return chart

    def _m_chart_create_session(self, p: list[Any]) -> list[Out]:
        if not p or not isinstance(p[0], str) or not p[0]:
            raise _Misuse
        self.charts.setdefault(p[0], _Chart(p[0]))
        return []

    def _m_chart_delete_session(self, p: list[Any]) -> list[Out]:
        if p and isinstance(p[0], str):
            self.charts.pop(p[0], None)
        return []

    def _m_switch_timezone(self, p: list[Any]) -> list[Out]:
        chart = self._chart(p)
        tz = p[1] if len(p) > 1 else None
        if not isinstance(tz, str) or not _valid_timezone(tz):
            return [self._critical(chart.cs, "invalid timezone", "switch_timezone", p[1:])]
        chart.timezone = tz
        return []

    def _m_resolve_symbol(self, p: list[Any]) -> list[Out]:
        chart = self._chart(p)
        if len(p) < 3 or not isinstance(p[1], str) or not isinstance(p[2], str):
            raise _Misuse
        symbol_id, spec = p[1], p[2]
        name, extended = _parse_spec(spec)
        inst = self.market.catalogue.get(name.upper()) if name else None
        if self.silent:
            chart.symbols[symbol_id] = _Symbol(inst, extended, spec) if inst else None
            return []
        out = Out()
        if inst is None:
            chart.symbols[symbol_id] = None
            out.add("symbol_error", SM.symbol_error(chart.cs, symbol_id, "invalid symbol"))
            return [out]
        symbol = _Symbol(inst, extended, spec)
        chart.symbols[symbol_id] = symbol
        info = R.symbol_info(inst, session="extended" if extended else "regular", resolution=None)
        out.add("symbol_resolved", SM.symbol_resolved(chart.cs, symbol_id, info))
        return [out]

    # -- series -------------------------------------------------------------------------------
    def _resolution_allowed(self, res: Resolution) -> bool:
        return not res.is_custom or bool(self.plan)

    def _series_request(
        self, p: list[Any], n: int
    ) -> tuple[_Chart, str, str, str, Resolution, str]:
        """``(chart, sid, turnaround, symbol_id, resolution, range)`` of create/modify_series.

        ``n`` is the number of required parameters; an optional range may follow them.
        """
        if len(p) not in (n, n + 1):
            raise _Misuse
        chart = self._chart(p)
        sid, turnaround, symbol_id, res_code = p[1:5]
        range_ = p[n] if len(p) > n else ""
        if not all(isinstance(x, str) and x for x in (sid, turnaround, symbol_id)):
            raise _Misuse
        if not isinstance(range_, str) or (range_ and not _range_syntax_ok(range_)):
            raise _Misuse
        if symbol_id not in chart.symbols:
            raise _Misuse
        res = parse_resolution(res_code)
        if res is None:
            raise _Misuse
        return chart, sid, turnaround, symbol_id, res, range_

    def _m_create_series(self, p: list[Any]) -> list[Out]:
        chart, sid, turnaround, symbol_id, res, range_ = self._series_request(p, 6)
        n_bars, to_time = _parse_count(p[5])
        symbol = chart.symbols[symbol_id]
        if symbol is None or self.silent:
            return []
        timeline = self.market.timeline(symbol.inst, res, extended=symbol.extended)
        bounds = self._bounds(range_, timeline)
        others = [s for s in chart.series if s != sid]
        if self.anonymous and others:
            return [
                self._critical(
                    chart.cs, "exceed limit of series in the session", "create_series", p[1:]
                )
            ]
        if not self._resolution_allowed(res):
            return [self._series_error(chart.cs, sid, turnaround, "custom_resolution")]
        if self.anonymous and symbol.inst.exchange in self.config.login_required_exchanges:
            return []  # the real server leaves such requests hanging
        series = _Series(
            sid=sid,
            turnaround=turnaround,
            symbol_id=symbol_id,
            symbol=symbol,
            resolution=res,
            timeline=timeline,
            count=n_bars,
            cap=self.config.cap_for(self.plan),
        )
        chart.series[sid] = series
        return [self._load(chart, series, range_, bounds, to_time)]

    def _series_error(self, cs: str, sid: str, turnaround: str, reason: str) -> Out:
        out = Out()
        now = self.now()
        out.add("series_loading", SM.series_loading(cs, sid, turnaround, t=now))
        out.add("series_error", SM.series_error(cs, sid, turnaround, reason, t=now))
        return out

    def _m_modify_series(self, p: list[Any]) -> list[Out]:
        chart, sid, turnaround, symbol_id, res, range_ = self._series_request(p, 5)
        series = chart.series.get(sid)
        if series is None:
            raise _Misuse
        symbol = chart.symbols[symbol_id]
        if symbol is None or self.silent:
            return []
        if not self._resolution_allowed(res):
            return [self._series_error(chart.cs, sid, turnaround, "custom_resolution")]
        series.turnaround = turnaround
        timeline = self.market.timeline(symbol.inst, res, extended=symbol.extended)
        bounds = self._bounds(range_, timeline)
        same = symbol is series.symbol and res.code == series.resolution.code
        if same and bounds is not None and self._covered(series, bounds):
            return [self._zero_round(chart, series, range_)]
        series.symbol_id = symbol_id
        series.symbol = symbol
        series.resolution = res
        series.timeline = timeline
        series.loaded = 0
        return [self._load(chart, series, range_, bounds, None)]

    def _covered(self, series: _Series, bounds: tuple[int, int]) -> bool:
        """Whether every bar inside ``bounds`` is already loaded in ``series``."""
        times = series.timeline.slice(0, max(series.hi, self.market.closed_end(series.timeline)))
        first = bisect.bisect_left(times, bounds[0])
        last = bisect.bisect_right(times, bounds[1])
        return series.hi > series.lo and series.lo <= first and last <= series.hi

    def _bounds(self, range_: str, timeline: Timeline) -> tuple[int, int] | None:
        """``(from, to)`` epoch seconds of a range (``None`` for ``""``)."""
        if not range_:
            return None
        parsed = _parse_range(range_)
        if parsed is not None:
            return parsed
        end = self.market.closed_end(timeline)
        end_time = timeline.slice(end - 1, end)[0] if end > 0 else 0
        bounds = preset_bounds(range_, end_time)
        if bounds is None:
            raise _Misuse
        return bounds

    def _m_remove_series(self, p: list[Any]) -> list[Out]:
        chart = self._chart(p)
        if len(p) > 1 and isinstance(p[1], str):
            chart.series.pop(p[1], None)
        return []

    def _m_request_more_tickmarks(self, p: list[Any]) -> list[Out]:
        return []

    def _m_request_more_data(self, p: list[Any]) -> list[Out]:
        chart = self._chart(p)
        if len(p) < 3 or not isinstance(p[1], str):
            raise _Misuse
        series = chart.series.get(p[1])
        n = p[2]
        if series is None or isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise _Misuse
        if self.silent:
            return []
        room = max(0, series.cap - series.loaded)
        k = min(n, series.lo, room)
        new_lo = series.lo - k
        reason: str | None = None
        if new_lo == 0:
            reason = "end"
        elif k < n:
            reason = "limit"
        now = self.now()
        out = Out()
        cs, sid, turnaround = chart.cs, series.sid, series.turnaround
        out.add("series_loading", SM.series_loading(cs, sid, turnaround, t=now))
        if k > 0:
            bars = self.market.bars(
                series.symbol.inst, series.timeline, new_lo, series.lo, base=series.base
            )
            scale = {
                "index": new_lo - series.base,
                "zoffset": k,
                "changes": [int(b.time) for b in bars],
                "marks": _marks(bars),
                "index_diff": [{"old": -1, "new": -1 - k}],
            }
            out.add("timescale_update", self._timescale(chart.cs, series, bars, scale, now))
            series.lo = new_lo
            series.loaded += k
            self.on_bars(k)
        out.add("series_completed", self._completed(chart.cs, series, reason, now))
        return [out]

    # -- series rounds ------------------------------------------------------------------------
    def _update_mode(self, inst: Instrument) -> str:
        return inst.anonymous_update_mode if self.anonymous else "streaming"

    def _completed(self, cs: str, series: _Series, reason: str | None, now: float) -> str:
        return SM.series_completed(
            cs,
            series.sid,
            self._update_mode(series.symbol.inst),
            series.turnaround,
            rt_update_period=0 if self.plan else 5,
            data_completed=reason,
            t=now,
        )

    def _timescale(
        self, cs: str, series: _Series, bars: list[Bar], scale: dict[str, Any], now: float
    ) -> str:
        node = self.node + ("x" * self.node_padding if self.node_padding and bars else "")
        close_time = int(bars[-1].time) + series.resolution.step_seconds if bars else None
        payload = SeriesPayload(
            bars=tuple(bars),
            turnaround=series.turnaround,
            node=node,
            last_bar_close_time=close_time,
            ns=SM.DEFAULT_NS,
        )
        scale = {**scale, "last_session_switches": {series.sid: {"market": 5}}}
        return SM.timescale_update(cs, {series.sid: payload}, scale, t=now)

    def _positions(
        self, series: _Series, bounds: tuple[int, int] | None, to_time: int | None
    ) -> tuple[int, int, bool]:
        """``(lo, hi, truncated)``: the positions to load, and whether the cap cut them."""
        timeline = series.timeline
        end = self.market.closed_end(timeline)
        forming = self.config.live and self.config.serve_forming_bar
        top = end + 1 if forming else end
        if bounds is not None or to_time is not None:
            times = timeline.slice(0, top)
            if bounds is not None:
                lo_t, hi_t = bounds
                lo = bisect.bisect_left(times, lo_t)
                hi = bisect.bisect_right(times, hi_t)
            else:
                assert to_time is not None
                hi = bisect.bisect_right(times, to_time)
                lo = max(0, hi - series.count)
        else:
            hi = top
            lo = max(0, hi - series.count)
        truncated = False
        if hi - lo > series.cap:
            lo = hi - series.cap
            truncated = True
        return lo, max(lo, hi), truncated

    def _load(
        self,
        chart: _Chart,
        series: _Series,
        range_: str,
        bounds: tuple[int, int] | None,
        to_time: int | None,
    ) -> Out:
        lo, hi, truncated = self._positions(series, bounds, to_time)
        end = self.market.closed_end(series.timeline)
        tick_stage = self.market.clock[1]
        forming_pos = end if (self.config.live and self.config.serve_forming_bar) else None
        bars = self.market.bars(
            series.symbol.inst,
            series.timeline,
            lo,
            hi,
            base=lo,
            forming=forming_pos,
            stage=tick_stage,
        )
        series.lo, series.hi, series.base = lo, hi, lo
        series.loaded = hi - lo
        series.live_pos = None
        if self.config.live and bounds is None and hi >= end:
            series.live_pos = end
        reason: str | None = None
        if lo == 0:
            reason = "end"
        elif truncated:
            reason = "limit"
        now = self.now()
        out = Out()
        cs, sid, turnaround = chart.cs, series.sid, series.turnaround
        out.add("series_loading", SM.series_loading(cs, sid, turnaround, t=now))
        noisy = self.config.extra_timescale_updates
        if noisy:
            # Seen in real traffic: an empty series entry before the bars (PROTOCOL.md §8).
            out.add("timescale_update", self._timescale(cs, series, [], _EMPTY_SCALE, now))
        if bars:
            scale = {
                "index": 0,
                "zoffset": 0,
                "changes": [int(b.time) for b in bars],
                "marks": _marks(bars),
                "index_diff": [],
            }
            out.add("timescale_update", self._timescale(cs, series, bars, scale, now))
            self.on_bars(len(bars))
        if noisy:
            # ...and a timescale-only update extending the time axis past the last bar.
            future = series.timeline.slice(hi, hi + 3)
            axis = {"index": len(bars), "zoffset": 0, "changes": future, "marks": [],
                    "index_diff": []}  # fmt: skip
            out.add("timescale_update", SM.timescale_update(cs, {}, axis, t=now))
        if range_:
            last = max(0, len(bars) - 1)
            out.add(
                "series_timeframe", SM.series_timeframe(cs, sid, turnaround, 0, last, range_, True)
            )
        out.add("series_completed", self._completed(cs, series, reason, now))
        return out

    def _zero_round(self, chart: _Chart, series: _Series, range_: str) -> Out:
        now = self.now()
        out = Out()
        cs, sid, turnaround = chart.cs, series.sid, series.turnaround
        out.add("series_loading", SM.series_loading(cs, sid, turnaround, t=now))
        lo, hi = series.lo - series.base, series.hi - 1 - series.base
        for flag in (False, True):
            out.add(
                "series_timeframe", SM.series_timeframe(cs, sid, turnaround, lo, hi, range_, flag)
            )
        out.add("series_completed", self._completed(cs, series, None, now))
        return out

    # -- quotes -------------------------------------------------------------------------------
    def _quote(self, p: list[Any]) -> _Quote:
        if not p or not isinstance(p[0], str):
            raise _Misuse
        quote = self.quotes.get(p[0])
        if quote is None:
            raise _Misuse
        return quote

    def _m_quote_create_session(self, p: list[Any]) -> list[Out]:
        if not p or not isinstance(p[0], str) or not p[0]:
            raise _Misuse
        self.quotes.setdefault(p[0], _Quote(p[0]))
        return []

    def _m_quote_delete_session(self, p: list[Any]) -> list[Out]:
        if p and isinstance(p[0], str):
            self.quotes.pop(p[0], None)
        return []

    def _m_quote_set_fields(self, p: list[Any]) -> list[Out]:
        quote = self._quote(p)
        quote.fields = tuple(f for f in p[1:] if isinstance(f, str))
        return []

    def _m_quote_add_symbols(self, p: list[Any]) -> list[Out]:
        quote = self._quote(p)
        names = [s for s in p[1:] if isinstance(s, str)]
        if self.silent:
            return []
        out = Out()
        for key in names:
            name, _extended = _parse_spec(key)
            inst = self.market.catalogue.get(name.upper()) if name else None
            if inst is None:
                out.add("qsd", SM.qsd(quote.qs, key, {}, status="error", error="no_such_symbol"))
                continue
            quote.symbols[key] = inst
            values = self._quote_values(inst, quote.fields)
            out.add("qsd", SM.qsd(quote.qs, key, values))
            out.add("quote_completed", SM.quote_completed(quote.qs, key))
        return [out] if out.packets else []

    def _m_quote_remove_symbols(self, p: list[Any]) -> list[Out]:
        quote = self._quote(p)
        for s in p[1:]:
            if isinstance(s, str):
                quote.symbols.pop(s, None)
        return []

    def _m_quote_fast_symbols(self, p: list[Any]) -> list[Out]:
        self._quote(p)
        return []

    def _m_quote_hibernate_all(self, p: list[Any]) -> list[Out]:
        self._quote(p)
        return []

    def _last_prices(self, inst: Instrument) -> tuple[float, float, float | None, int]:
        """``(last, previous close, volume, time)`` from the 1-minute and daily timelines."""
        tl = self.market.timeline(inst, _MINUTE, extended=False)
        end = self.market.closed_end(tl)
        live = self.config.live
        pos = end if live else end - 1
        bar = self.market.bars(inst, tl, pos, pos + 1, base=0, forming=end if live else None)[0]
        dtl = self.market.timeline(inst, _DAILY, extended=False)
        dend = self.market.closed_end(dtl)
        prev = self.market.bars(inst, dtl, max(0, dend - 2), max(1, dend - 1), base=0)[0]
        return bar.close, prev.close, bar.volume, int(bar.time)

    def _quote_values(self, inst: Instrument, fields: Sequence[str]) -> dict[str, Any]:
        last, prev, volume, t = self._last_prices(inst)
        return R.quote_values(
            inst,
            last=last,
            prev_close=prev,
            volume=volume,
            lp_time=t,
            update_mode=self._update_mode(inst),
            fields=fields or None,
        )

    # -- studies ------------------------------------------------------------------------------
    def _m_create_study(self, p: list[Any]) -> list[Out]:
        chart = self._chart(p)
        if len(p) < 3 or not isinstance(p[1], str):
            raise _Misuse
        if self.silent:
            return []
        out = Out()
        turnaround = p[2] if isinstance(p[2], str) else "st1"
        error = {"error": "Study not allowed in this connection", "ctx": {}, "stack_trace": []}
        out.add("study_error", SM.server_packet("study_error", [chart.cs, p[1], turnaround, error]))
        return [out]

    # -- live ---------------------------------------------------------------------------------
    def live_update(self, closed: bool) -> list[Out]:
        """``du`` (and quote delta) packets after one live clock step; ``closed``: a bar closed."""
        if self.silent or self.auth == "bad":
            return []
        out = Out()
        now = self.now()
        stage = self.market.clock[1]
        for chart in self.charts.values():
            for series in chart.series.values():
                if series.live_pos is None:
                    continue
                pos = series.live_pos
                inst, tl = series.symbol.inst, series.timeline
                if closed:
                    final = self.market.bars(inst, tl, pos, pos + 1, base=series.base)
                    forming = self.market.bars(
                        inst, tl, pos + 1, pos + 2, base=series.base, forming=pos + 1, stage=stage
                    )
                    bars = final + forming
                    series.live_pos = pos + 1
                    series.hi = max(series.hi, pos + 2)
                else:
                    bars = self.market.bars(
                        inst, tl, pos, pos + 1, base=series.base, forming=pos, stage=stage
                    )
                    series.hi = max(series.hi, pos + 1)
                body = SeriesPayload(
                    bars=tuple(bars),
                    turnaround=series.turnaround,
                    last_bar_close_time=int(bars[-1].time) + series.resolution.step_seconds,
                    ns=_NOCHANGE,
                )
                out.add("du", SM.du(chart.cs, {series.sid: body}, t=now))
        for quote in self.quotes.values():
            for key, inst in quote.symbols.items():
                last, prev, volume, t = self._last_prices(inst)
                delta = {"lp": last, "ch": round(last - prev, 10), "lp_time": t}
                if volume is not None:
                    delta["volume"] = volume
                out.add("qsd", SM.qsd(quote.qs, key, delta, t=now))
        return [out] if out.packets else []


# -- helpers ----------------------------------------------------------------------------------
_TIMEZONES: frozenset[str] | None = None


def _valid_timezone(tz: str) -> bool:
    global _TIMEZONES
    if tz in _EXTRA_TIMEZONES:
        return True
    if _TIMEZONES is None:
        _TIMEZONES = frozenset(zoneinfo.available_timezones())
    return tz in _TIMEZONES


def _parse_spec(spec: str) -> tuple[str, bool]:
    """``(symbol name, extended session)`` from a resolve_symbol / quote spec string."""
    if not spec.startswith("="):
        return spec, False
    try:
        obj = json.loads(spec[1:])
    except ValueError as exc:
        raise _Misuse from exc
    if not isinstance(obj, dict):
        raise _Misuse
    inner = obj.get("symbol")
    if isinstance(inner, dict):  # chart-type wrapper {"symbol": {...spec...}, "type": ...}
        obj = inner
        inner = obj.get("symbol")
    if not isinstance(inner, str):
        raise _Misuse
    return inner, obj.get("session") == "extended"


def _parse_count(count: Any) -> tuple[int, int | None]:
    """``(bars, to_time)`` from create_series' count: an int, or ``["bar_count", to, n]``."""
    if isinstance(count, bool):
        raise _Misuse
    if isinstance(count, int) and count > 0:
        return count, None
    if isinstance(count, float) and count.is_integer() and count > 0:
        return int(count), None
    if (
        isinstance(count, list)
        and len(count) == 3
        and count[0] == "bar_count"
        and isinstance(count[1], (int, float))
        and isinstance(count[2], int)
        and not isinstance(count[2], bool)
        and count[2] > 0
    ):
        return count[2], int(count[1])
    raise _Misuse


def _parse_range(range_: str) -> tuple[int, int] | None:
    """``(from, to)`` epoch seconds for ``r,from:to`` or a preset; ``None`` when invalid."""
    if range_.startswith("r,"):
        body = range_[2:]
        parts = body.split(":")
        if len(parts) != 2 or not all(x.isascii() and x.isdigit() for x in parts):
            return None
        lo, hi = int(parts[0]), int(parts[1])
        return (lo, hi) if lo <= hi else None
    if range_ == "ALL":
        return (0, 2**53)
    return None


def _range_syntax_ok(range_: str) -> bool:
    return _parse_range(range_) is not None or range_ in RANGE_PRESETS


def _marks(bars: list[Bar]) -> list[list[int]]:
    step = max(1, len(bars) // 20)
    return [[10, int(b.time), b.index] for b in bars[::step]]


def preset_bounds(range_: str, end_time: int) -> tuple[int, int] | None:
    """Bounds of a preset range (``"12M"``, ``"YTD"``...) ending at ``end_time``."""
    if range_ == "LASTSESSION":
        range_ = "1D"
    if range_ in _PRESET_SECONDS:
        return end_time - _PRESET_SECONDS[range_], end_time
    if range_ == "YTD":
        year = datetime.fromtimestamp(end_time, timezone.utc).year
        return int(datetime(year, 1, 1, tzinfo=timezone.utc).timestamp()), end_time
    return None
