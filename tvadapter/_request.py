"""Sans-I/O state machine of one history request (one series on one chart session).

Theory of operation
-------------------
A :class:`HistoryRequest` never touches a socket, a thread or a clock: the driver feeds it the
events of *its* chart session (and the connection's heartbeats), passes the current monotonic
time in, sends the payloads it returns, and reads :attr:`~HistoryRequest.state`.  It tracks only
its own chart session ``cs``, series id and turnaround; anything else is ignored.

======== =============================================== ===========================================
state    input                                           effect
======== =============================================== ===========================================
NEW      ``start(now)``                                  -> ``chart_create_session``,
                                                         ``resolve_symbol``, ``create_series``
                                                         (count = min(n_bars, round size); a date
                                                         range goes in as ``"r,from:to"``); LOADING
LOADING  bars of our series (``timescale_update`` or     collected for the current round
         :class:`SeriesBars`)
LOADING  ``series_loading``, ``symbol_resolved``,         progress (resets the progress timer)
         ``series_timeframe`` of our series
LOADING  our ``series_completed``                        round ends: checked and merged; then DONE
                                                         (count met, history exhausted, range
                                                         covered) or -> ``request_more_data``
any      ``symbol_error``                                FAILED: SymbolNotFoundError
any      ``series_error`` / ``critical_error``            FAILED: SeriesError / CriticalError
         (``unauthorized_access``)                       (AuthenticationError)
any      ``protocol_error``                              FAILED: TokenExpiredError for
                                                         "bad auth token", else ServerProtocolError
any      ``connection_lost(exc)``                        FAILED: TvConnectionError
LOADING  ``poll(now)`` past the progress timeout         FAILED: TvTimeoutError, or
                                                         :class:`HeartbeatOnlySession` (a
                                                         TokenExpiredError) when only heartbeats
                                                         came and the session is authenticated
======== =============================================== ===========================================

After DONE or FAILED, :meth:`~HistoryRequest.finish` returns ``chart_delete_session``: chart
sessions are always deleted.

Progress: heartbeats never count (an expired token yields a socket that carries only
heartbeats, PROTOCOL §5/§16); ``du`` updates do not either (a history request ignores them: its
result is the snapshot the ``series_completed`` rounds describe).

Pagination (PROTOCOL §12): rounds continue with ``request_more_data`` until the count is met,
a round adds no new bar time, or ``data_completed`` is reported; a safety cap on the number of
rounds turns a server that keeps feeding old duplicates into :class:`DataIncompleteError`.

Integrity checks, each failing with :class:`~tvadapter.errors.DataIncompleteError`:

* within one ``timescale_update``, bar times strictly increase and indices are consecutive;
* a ``request_more_data`` round only adds bars *older* than those already held; any bar it
  repeats must be identical (so the result is one consistent series, with no gap or splice);
* at the end, fewer bars than asked is only accepted when history is exhausted (a round added
  nothing, or ``data_completed``); a range result is filtered to ``[start, end]``.

Bars are held as float64 arrays with the columns of :data:`COLUMNS` (``volume`` is NaN when the
server sent none); the result is sorted oldest first, one row per time.

Not thread-safe: one driver thread (or a lock) per request.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from .errors import (
    AuthenticationError,
    CriticalError,
    DataIncompleteError,
    SeriesError,
    ServerProtocolError,
    SymbolNotFoundError,
    TokenExpiredError,
    TvConnectionError,
    TvError,
    TvTimeoutError,
)
from .interval import seconds_per_bar
from .protocol import (
    Bar,
    CriticalErrorEvent,
    Event,
    Heartbeat,
    ProtocolErrorEvent,
    SeriesCompleted,
    SeriesErrorEvent,
    SeriesLoading,
    SeriesTimeframe,
    SymbolError,
    SymbolResolved,
    TimescaleUpdate,
    messages,
)

__all__ = [
    "COLUMNS",
    "DEFAULT_ROUND_SIZE",
    "HeartbeatOnlySession",
    "HistoryRequest",
    "HistoryResult",
    "RequestState",
    "SeriesBars",
    "bars_to_array",
    "protocol_error",
    "server_error",
]

#: Column order of every bar array: the server slot ``i``, then time and OHLCV.
COLUMNS = ("index", "time", "open", "high", "low", "close", "volume")
_I, _T, _O, _H, _L, _C, _V = range(7)
#: Bars asked for per round (tradingview-sdk's figure; the free plans' per-request cap).
DEFAULT_ROUND_SIZE = 5_000
#: Extra rounds allowed beyond ceil(n_bars / round size) before giving up.
_SPARE_ROUNDS = 3

FloatArray = npt.NDArray[np.float64]


def _bar_seconds(resolution: str) -> int:
    """Nominal bar length of a resolution code (60 s when it cannot be read)."""
    try:
        return max(1, seconds_per_bar(resolution))
    except ValueError:
        return 60


class HeartbeatOnlySession(TokenExpiredError):
    """Only heartbeats arrived for the whole progress timeout: the token has probably expired."""


class RequestState(enum.Enum):
    """Where a :class:`HistoryRequest` stands."""

    NEW = "new"
    LOADING = "loading"
    DONE = "done"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class SeriesBars:
    """Bars of one series from one ``timescale_update``, already as an array.

    ``data`` has shape ``(n, 7)`` with the columns of :data:`COLUMNS`.  The router produces
    these from large updates without building :class:`~tvadapter.protocol.Bar` objects.
    Immutable by convention (do not write into ``data``).
    """

    session: str
    series_id: str
    turnaround: str | None
    data: FloatArray


def protocol_error(text: str) -> TvError:
    """The error for a ``protocol_error`` packet: TokenExpiredError for a refused token
    ("bad auth token"), else ServerProtocolError.  Both carry the server's text."""
    lowered = text.lower()
    if "auth" in lowered and "token" in lowered:
        return TokenExpiredError(f"the server refused the auth token: {text}")
    return ServerProtocolError(f"protocol_error from the server: {text}")


def bars_to_array(bars: Sequence[Bar]) -> FloatArray:
    """``(n, 7)`` float64 array of ``bars`` (columns :data:`COLUMNS`, NaN for no volume)."""
    if not bars:
        return np.empty((0, 7), dtype=np.float64)
    nan = math.nan
    rows = [
        (b.index, b.time, b.open, b.high, b.low, b.close, nan if b.volume is None else b.volume)
        for b in bars
    ]
    return np.array(rows, dtype=np.float64)


@dataclass(frozen=True, slots=True)
class HistoryResult:
    """The checked outcome of a request: bars oldest first, one row per time.

    ``exhausted`` is True when the server had fewer bars than asked (history ended or the plan
    cap was reached); ``data_completed`` is the server's last word on that, if any.
    Immutable (do not write into ``data``); safe to share between threads.
    """

    symbol: str
    resolution: str
    data: FloatArray
    exhausted: bool
    rounds: int
    data_completed: str | None = None
    symbol_info: Mapping[str, Any] | None = None

    def __len__(self) -> int:
        return int(self.data.shape[0])

    @property
    def times(self) -> FloatArray:
        """Bar open times, UTC epoch seconds."""
        return self.data[:, _T]


class HistoryRequest:
    """One history request as a state machine (see the module docstring for the table).

    Parameters: ``chart_session`` (a fresh id per request), ``symbol`` (``EX:SYM``),
    ``resolution`` (a code from :func:`tvadapter.interval.resolution`), ``n_bars`` (>= 1) or a
    range ``start``/``end`` (UTC epoch seconds, inclusive, ``start <= end``; ``n_bars`` is then
    ignored), ``session`` (``"regular"``/``"extended"``),
    ``progress_timeout`` (seconds without progress before failing), ``authenticated`` (whether
    a real token is in use: decides what a heartbeat-only session means), ``round_size`` (bars
    per round).

    Not thread-safe.
    """

    def __init__(
        self,
        *,
        chart_session: str,
        symbol: str,
        resolution: str,
        n_bars: int = 10,
        start: float | None = None,
        end: float | None = None,
        session: str = "regular",
        adjustment: str = "splits",
        progress_timeout: float = 30.0,
        authenticated: bool = False,
        round_size: int = DEFAULT_ROUND_SIZE,
        series_id: str = "s1",
        symbol_id: str = "symbol_1",
        turnaround: str = "s1",
    ) -> None:
        if isinstance(n_bars, bool) or not isinstance(n_bars, int) or n_bars < 1:
            raise ValueError(f"n_bars must be an int >= 1, got {n_bars!r}")
        if isinstance(round_size, bool) or not isinstance(round_size, int) or round_size < 1:
            raise ValueError(f"round_size must be an int >= 1, got {round_size!r}")
        if not (math.isfinite(progress_timeout) and progress_timeout > 0):
            raise ValueError(f"progress_timeout must be > 0 seconds, got {progress_timeout!r}")
        if (start is None) != (end is None):
            raise ValueError("start and end must be given together")
        if start is not None and end is not None:
            if not (math.isfinite(start) and math.isfinite(end)) or start < 0:
                raise ValueError("start and end must be finite epoch seconds >= 0")
            if start > end:
                raise ValueError(f"start must not be after end ({start!r} > {end!r})")
        self.chart_session = chart_session
        self.symbol = symbol
        self.resolution = resolution
        self.n_bars = n_bars
        self.start_time = start
        self.end_time = end
        self.session = session
        self.adjustment = adjustment
        self.progress_timeout = float(progress_timeout)
        self.authenticated = authenticated
        self.round_size = round_size
        self.series_id = series_id
        self.symbol_id = symbol_id
        self.turnaround = turnaround

        self.state = RequestState.NEW
        self.error: TvError | None = None
        self.symbol_info: Mapping[str, Any] | None = None
        self.rounds = 0
        expected = n_bars
        if start is not None and end is not None:
            # At most one bar per nominal bar length in the range (fewer on closed days).
            expected = math.ceil((end - start) / _bar_seconds(resolution)) + 1
        self.max_rounds = -(-expected // round_size) + _SPARE_ROUNDS
        self._bars: FloatArray = np.empty((0, 7), dtype=np.float64)
        self._round_blocks: list[FloatArray] = []
        self._round_open = False
        self._exhausted = False
        self._data_completed: str | None = None
        self._last_progress = 0.0
        self._any_event = False
        self._heartbeats_since_progress = 0
        self._result: HistoryResult | None = None

    # ----------------------------------------------------------------------------------------
    # driver interface

    @property
    def finished(self) -> bool:
        """True once DONE or FAILED."""
        return self.state in (RequestState.DONE, RequestState.FAILED)

    @property
    def is_range(self) -> bool:
        """True for a ``start``/``end`` request."""
        return self.start_time is not None

    def start(self, now: float) -> list[str]:
        """Begin: the payloads that create the chart session, resolve the symbol and load."""
        if self.state is not RequestState.NEW:
            raise RuntimeError("start() called twice")
        self.state = RequestState.LOADING
        self._last_progress = now
        self._round_open = True
        self.rounds = 1
        range_ = ""
        count = min(self.n_bars, self.round_size)
        if self.start_time is not None and self.end_time is not None:
            range_ = f"r,{math.floor(self.start_time)}:{math.ceil(self.end_time)}"
            count = self.round_size
        return [
            messages.chart_create_session(self.chart_session),
            messages.resolve_symbol(
                self.chart_session,
                self.symbol_id,
                self.symbol,
                adjustment=self.adjustment,
                session=self.session,
            ),
            messages.create_series(
                self.chart_session,
                self.series_id,
                self.turnaround,
                self.symbol_id,
                self.resolution,
                count,
                range_,
            ),
        ]

    def finish(self) -> list[str]:
        """The payloads that clean up after DONE/FAILED (delete the chart session)."""
        return [messages.chart_delete_session(self.chart_session)]

    def next_deadline(self) -> float:
        """Monotonic time at which :meth:`poll` fails the request unless progress comes."""
        return self._last_progress + self.progress_timeout

    def heartbeat(self) -> None:
        """A heartbeat arrived on the connection (it is not progress)."""
        self._heartbeats_since_progress += 1

    def connection_lost(self, exc: BaseException | None = None) -> None:
        """The connection carrying this request is gone."""
        if self.finished:
            return
        if isinstance(exc, TvError):
            self._fail(exc)
        else:
            self._fail(TvConnectionError(f"connection lost while loading {self.symbol}"))

    def poll(self, now: float) -> None:
        """Fail the request if no progress was made for ``progress_timeout`` seconds."""
        if self.state is not RequestState.LOADING or now < self.next_deadline():
            return
        if not self._any_event and self._heartbeats_since_progress > 0:
            if self.authenticated:
                self._fail(
                    HeartbeatOnlySession(
                        f"only heartbeats for {self.progress_timeout:g} s after requesting "
                        f"{self.symbol}: the auth token has probably expired"
                    )
                )
                return
            self._fail(
                TvTimeoutError(
                    f"only heartbeats for {self.progress_timeout:g} s after requesting "
                    f"{self.symbol}: the server is not answering"
                )
            )
            return
        self._fail(
            TvTimeoutError(
                f"no progress for {self.progress_timeout:g} s while loading {self.symbol} "
                f"(round {self.rounds}, {len(self._bars)} bars so far)"
            )
        )

    def receive(self, event: Event | SeriesBars, now: float) -> list[str]:
        """Feed one event; returns the payloads to send (possibly none)."""
        if self.finished:
            return []
        if isinstance(event, Heartbeat):
            self.heartbeat()
            return []
        if isinstance(event, ProtocolErrorEvent):
            # No session id: it concerns the whole connection, hence this request too.
            self._any_event = True
            self._fail(protocol_error(event.text))
            return []
        session = getattr(event, "session", None)
        if session != self.chart_session:
            return []
        self._any_event = True
        if isinstance(event, SeriesBars):
            if event.series_id == self.series_id:
                self._progress(now)
                self._add_block(event.data)
            return []
        if isinstance(event, TimescaleUpdate):
            payload = event.series.get(self.series_id)
            if payload is not None:
                self._progress(now)
                self._add_block(bars_to_array(payload.bars))
            return []
        if isinstance(event, SeriesCompleted):
            if event.series_id != self.series_id or (
                event.turnaround is not None and event.turnaround != self.turnaround
            ):
                return []
            self._progress(now)
            return self._complete_round(event)
        if isinstance(event, (SeriesLoading, SeriesTimeframe)):
            if event.series_id == self.series_id:
                self._progress(now)
            return []
        if isinstance(event, SymbolResolved):
            if event.symbol_id == self.symbol_id:
                self.symbol_info = event.info
                self._progress(now)
            return []
        if isinstance(event, (SymbolError, SeriesErrorEvent, CriticalErrorEvent)):
            self._fail(server_error(event, self.symbol, self.resolution))
            return []
        return []

    def result(self) -> HistoryResult:
        """The checked result; only valid in state DONE (else raises the failure, or
        RuntimeError when still loading)."""
        if self.state is RequestState.FAILED:
            assert self.error is not None
            raise self.error
        if self._result is None:
            raise RuntimeError("the request is not finished")
        return self._result

    # ----------------------------------------------------------------------------------------
    # internals

    def _progress(self, now: float) -> None:
        self._last_progress = max(self._last_progress, now)
        self._heartbeats_since_progress = 0

    def _fail(self, error: TvError) -> None:
        self.state = RequestState.FAILED
        self.error = error
        self._round_open = False

    def _add_block(self, block: FloatArray) -> None:
        if block.shape[0] == 0:
            return
        if block.ndim != 2 or block.shape[1] != 7:
            self._fail(DataIncompleteError("a bar block of the wrong shape"))
            return
        times = block[:, _T]
        if not np.all(np.isfinite(block[:, _I:_V])):
            self._fail(DataIncompleteError(f"{self.symbol}: a bar holds a non-finite number"))
            return
        if block.shape[0] > 1:
            if not np.all(np.diff(times) > 0):
                self._fail(
                    DataIncompleteError(f"{self.symbol}: bar times out of order within an update")
                )
                return
            if not np.all(np.diff(block[:, _I]) == 1):
                self._fail(DataIncompleteError(f"{self.symbol}: a gap in the bar indices"))
                return
        if not self._round_open:
            # Bars after our round completed (a late timescale_update): not part of a round.
            return
        self._round_blocks.append(block)

    def _round_bars(self) -> FloatArray | None:
        """This round's bars sorted by time, one per time; None (after failing) if they
        contradict each other."""
        blocks = self._round_blocks
        self._round_blocks = []
        if not blocks:
            return np.empty((0, 7), dtype=np.float64)
        data = blocks[0] if len(blocks) == 1 else np.concatenate(blocks)
        if len(blocks) == 1:
            return data
        order = np.argsort(data[:, _T], kind="stable")
        data = data[order]
        dup = np.flatnonzero(np.diff(data[:, _T]) == 0)
        if dup.size:
            differ = ~np.all(
                (data[dup, _T:] == data[dup + 1, _T:])
                | (np.isnan(data[dup, _T:]) & np.isnan(data[dup + 1, _T:])),
                axis=1,
            )
            conflicts = dup[differ]
            # Only the newest bar may change between two updates (it is still forming).
            if conflicts.size and not (conflicts.size == 1 and conflicts[0] + 2 == len(data)):
                self._fail(DataIncompleteError(f"{self.symbol}: one bar time with two values"))
                return None
            keep = np.ones(len(data), dtype=bool)
            keep[dup] = False  # keep the later arrival
            data = data[keep]
        return data

    def _complete_round(self, event: SeriesCompleted) -> list[str]:
        if not self._round_open:
            return []  # a completion we did not ask for
        self._round_open = False
        new = self._round_bars()
        if new is None:
            return []
        added = self._merge(new)
        if added is None:
            return []
        if event.data_completed is not None:
            self._data_completed = event.data_completed
        count_met = not self.is_range and len(self._bars) >= self.n_bars
        range_met = (
            self.is_range
            and len(self._bars) > 0
            and self.start_time is not None
            and self._bars[0, _T] <= self.start_time
        )
        if count_met or range_met:
            return self._done(exhausted=False)
        if added == 0 or event.data_completed is not None:
            return self._done(exhausted=True)
        if self.rounds >= self.max_rounds:
            self._fail(
                DataIncompleteError(
                    f"{self.symbol}: still short of {self.n_bars} bars after {self.rounds} rounds"
                )
            )
            return []
        self.rounds += 1
        self._round_open = True
        wanted = self.round_size if self.is_range else self.n_bars - len(self._bars)
        return [
            messages.request_more_data(
                self.chart_session, self.series_id, max(1, min(self.round_size, wanted))
            )
        ]

    def _merge(self, new: FloatArray) -> int | None:
        """Merge a round's bars; returns how many new times it added (None after failing)."""
        if new.shape[0] == 0:
            return 0
        if self._bars.shape[0] == 0:
            self._bars = new
            return int(new.shape[0])
        oldest = self._bars[0, _T]
        older = new[new[:, _T] < oldest]
        repeated = new[new[:, _T] >= oldest]
        if repeated.shape[0]:
            pos = np.searchsorted(self._bars[:, _T], repeated[:, _T])
            pos = np.minimum(pos, self._bars.shape[0] - 1)
            known = self._bars[pos]
            if not np.array_equal(known[:, _T], repeated[:, _T]) or not np.array_equal(
                known[:, _T:], repeated[:, _T:], equal_nan=True
            ):
                self._fail(
                    DataIncompleteError(
                        f"{self.symbol}: an older-bars round contradicts the bars already "
                        "loaded (a gap or a different series)"
                    )
                )
                return None
        if older.shape[0]:
            self._bars = np.concatenate([older, self._bars])
        return int(older.shape[0])

    def _done(self, *, exhausted: bool) -> list[str]:
        data = self._bars
        if self.is_range:
            assert self.start_time is not None and self.end_time is not None
            times = data[:, _T]
            data = data[(times >= self.start_time) & (times <= self.end_time)]
        elif data.shape[0] > self.n_bars:
            data = data[-self.n_bars :]
        if not self.is_range and data.shape[0] < self.n_bars and not exhausted:
            self._fail(DataIncompleteError(f"{self.symbol}: fewer bars than asked"))
            return []
        self._exhausted = exhausted
        self._result = HistoryResult(
            symbol=self.symbol,
            resolution=self.resolution,
            data=data,
            exhausted=exhausted,
            rounds=self.rounds,
            data_completed=self._data_completed,
            symbol_info=self.symbol_info,
        )
        self.state = RequestState.DONE
        return []


def server_error(
    event: SymbolError | SeriesErrorEvent | CriticalErrorEvent, symbol: str, resolution: str
) -> TvError:
    """The typed error for a server-reported failure of ``symbol``'s series.

    Shared by history requests and the live feed so both raise the same types and messages:
    ``symbol_error`` -> SymbolNotFoundError, ``series_error`` -> SeriesError, ``critical_error``
    -> AuthenticationError when its ``error_code`` is ``unauthorized_access``, else CriticalError.
    """
    if isinstance(event, SymbolError):
        return SymbolNotFoundError(
            f"TradingView does not know {symbol!r}: {event.reason or 'symbol_error'}"
        )
    if isinstance(event, SeriesErrorEvent):
        return SeriesError(
            f"series {symbol} {resolution} refused: {event.reason or 'series_error'}"
        )
    text = " ".join(x for x in (event.name, event.description) if x) or "critical_error"
    if event.error_code == "unauthorized_access":
        return AuthenticationError(f"unauthorized access to {symbol}: {text}")
    return CriticalError(f"critical_error for {symbol}: {text}")
