"""A streaming live feed with tvDatafeed's ``TvDatafeedLive`` surface: closed bars as they close.

Quick start::

    from tvadapter import Interval, TvDatafeedLive

    def on_bar(seis, df):          # runs on the consumer's own thread
        print(df)                  # one row: the bar that just closed (UTC index "datetime")

    with TvDatafeedLive() as tv:   # anonymous; TvDatafeedLive(username, password) signs in
        seis = tv.new_seis("BTCUSDT", "BINANCE", Interval.in_1_minute)
        consumer = seis.new_consumer(on_bar)
        ...                        # bars arrive until del_consumer / del_seis / close()

Same names and calls as tvDatafeed's ``TvDatafeedLive`` (PROTOCOL.md §19), so existing scripts
run, but it **streams** instead of polling, and fixes that class's failures:

* One persistent WebSocket for all series (one chart session per series), fed by ``du``
  updates: when a bar with a newer time appears, the previous one has closed and is delivered
  -- to each consumer of its :class:`Seis` exactly once, in time order.  No socket per poll.
* It survives the network: a drop, a stall (no data and no heartbeat for ``stall_timeout``),
  a server close (1000/1005/1006) or an expiring token make it reconnect with backoff and
  jitter, re-create every series and **backfill**: the bars that closed while it was away are
  loaded (``create_series`` with a count covering the gap, ``request_more_data`` when that is
  not enough) and delivered in order, skipping those already delivered -- no gap, no
  duplicate.  A closed market or a symbol that does not trade just means no bars for a while;
  nothing ever shuts the feed down (tvDatafeed gave up after 5 s and stopped every consumer
  with ``None``).
* Thread-safe: series and consumers may be added and removed from any thread while bars
  flow.  The feed's lock is only held for bookkeeping (never during I/O, never while a
  callback runs), so the original's lock leak in ``new_seis`` cannot happen.  Callbacks run on
  their :class:`Consumer`'s thread, fed by a queue: a slow callback delays only itself.
* An exception in a callback is logged (with its traceback) and counted in
  :attr:`Consumer.errors`; that consumer keeps receiving the next bars and every other consumer
  and the feed carry on.  (tvDatafeed's consumer removed itself and died.)
* :meth:`TvDatafeedLive.close` (alias :meth:`~TvDatafeedLive.del_tvdatafeed`, or leaving a
  ``with`` block) stops the connection, the engine and every consumer and joins their threads.

Forming-bar updates are opt-in: ``new_consumer(seis, callback, on_update=fn)`` also calls
``fn(seis, df)`` with a one-row frame of the forming bar each time it changes (on the same
consumer thread, in order with the closed bars).

Timeouts: like the original, the methods taking ``timeout`` return ``False`` when they could
not finish within ``timeout`` seconds (``-1``, the default: no limit).  ``new_seis`` also waits
for the server to accept the series: an unknown symbol raises
:class:`~tvadapter.errors.SymbolNotFoundError` (nothing else is affected); with ``timeout=-1``
that wait is bounded by ``config.request_deadline`` (then
:class:`~tvadapter.errors.TvTimeoutError`).  ``get_hist`` never waits for the live feed (it uses
the :class:`~tvadapter.TvDatafeed` connection); its ``timeout`` bounds the request.

Frames: one row, tvDatafeed's columns (``symbol``, ``open``, ``high``, ``low``, ``close``,
``volume``), index ``datetime`` -- the bar's open time, timezone-aware UTC (see
:mod:`tvadapter.history`).  A subscription delivers the bars that close after it started; the
bar forming at that moment is the first one delivered.

Limits: bars older than the server will serve (its per-plan cap) cannot be backfilled; such a
reload is logged and counted in ``live_stats().gaps``.  Heartbeats mean "alive": a socket that
keeps sending heartbeats but no data (the "freeze" of PROTOCOL.md §18) is replaced only with
``idle_reconnect=<seconds>`` (off by default: a closed market looks the same; with it, the
reconnect is lossless thanks to the backfill).  A series the server refuses after it was
accepted (e.g. on a reconnect) is retried with backoff, never dropped.  Call :meth:`close`:
the feed's threads keep a reference to it, so it is not garbage-collected while open.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Any, Literal, overload

import pandas as pd

from ._client import TvDatafeed
from ._live_engine import LiveEngine, LiveSettings, LiveStats, Subscription
from ._request import bars_to_array
from ._symbols import format_symbol
from .config import NetworkConfig
from .errors import ConfigurationError, TvConnectionError, TvTimeoutError
from .history import bars_frame
from .interval import Interval, resolution, seconds_per_bar
from .protocol import Bar

__all__ = ["Consumer", "LiveSettings", "LiveStats", "Seis", "TvDatafeedLive"]

logger = logging.getLogger(__name__)

#: How long close() waits for each thread.
CLOSE_JOIN_TIMEOUT = 10.0

Callback = Callable[["Seis", pd.DataFrame], object]
_Key = tuple[str, str, Interval]


def _as_interval(interval: Interval | str) -> Interval:
    if isinstance(interval, Interval):
        return interval
    if isinstance(interval, str):
        try:
            return Interval(interval)
        except ValueError:
            raise ConfigurationError(
                f"interval: {interval!r} is not one of tvDatafeed's intervals"
            ) from None
    raise ConfigurationError(f"interval: expected an Interval, got {type(interval).__name__}")


def _acquire(lock: threading.Lock, timeout: float) -> bool:
    """tvDatafeed's lock convention: a negative timeout blocks, else wait at most ``timeout``."""
    if timeout is None or timeout < 0:
        return lock.acquire()
    if timeout == 0:
        return lock.acquire(blocking=False)
    return lock.acquire(timeout=timeout)


class Seis:
    """A (symbol, exchange, interval) series of a live feed, as in tvDatafeed.

    ``symbol``, ``exchange`` and ``interval`` are read-only; two Seis are equal when all three
    are.  ``tvdatafeed`` is the feed it belongs to (set once by the feed; setting it again
    raises AttributeError).  The methods delegate to that feed and raise NameError when the
    Seis belongs to none (never added, or deleted).  :attr:`updated` is the open time (UTC) of
    the last closed bar delivered.

    Thread-safety: immutable identity; the methods are as thread-safe as the feed's.
    """

    def __init__(self, symbol: str, exchange: str, interval: Interval) -> None:
        self._symbol = symbol
        self._exchange = exchange
        self._interval = _as_interval(interval)
        self._tvdatafeed: TvDatafeedLive | None = None
        self._consumers: list[Consumer] = []  # guarded by the feed's lock
        self._updated: datetime | None = None

    @property
    def symbol(self) -> str:
        """The symbol, as given to ``new_seis``."""
        return self._symbol

    @property
    def exchange(self) -> str:
        """The exchange, as given to ``new_seis``."""
        return self._exchange

    @property
    def interval(self) -> Interval:
        """The bar interval."""
        return self._interval

    @property
    def updated(self) -> datetime | None:
        """Open time (UTC) of the last closed bar delivered, or None before the first."""
        return self._updated

    @property
    def tvdatafeed(self) -> TvDatafeedLive | None:
        """The feed this Seis belongs to (None when detached)."""
        return self._tvdatafeed

    @tvdatafeed.setter
    def tvdatafeed(self, value: TvDatafeedLive) -> None:
        if self._tvdatafeed is not None:
            raise AttributeError("Cannot overwrite tvdatafeed attribute, delete it first")
        self._tvdatafeed = value

    @tvdatafeed.deleter
    def tvdatafeed(self) -> None:
        self._tvdatafeed = None

    def _feed(self) -> TvDatafeedLive:
        feed = self._tvdatafeed
        if feed is None:
            raise NameError("TvDatafeedLive not provided: this Seis belongs to no live feed")
        return feed

    @overload
    def new_consumer(
        self, callback: Callback, *, on_update: Callback | None = None
    ) -> Consumer: ...

    @overload
    def new_consumer(
        self, callback: Callback, timeout: float, *, on_update: Callback | None = None
    ) -> Consumer | Literal[False]: ...

    def new_consumer(
        self, callback: Callback, timeout: float = -1, *, on_update: Callback | None = None
    ) -> Consumer | Literal[False]:
        """A started :class:`Consumer` calling ``callback(seis, df)`` for each closed bar
        (see :meth:`TvDatafeedLive.new_consumer`)."""
        return self._feed().new_consumer(self, callback, timeout, on_update=on_update)

    def del_consumer(self, consumer: Consumer, timeout: float = -1) -> bool:
        """Stop and remove ``consumer``."""
        return self._feed().del_consumer(consumer, timeout)

    def get_hist(self, n_bars: int = 10, timeout: float = -1) -> pd.DataFrame:
        """The newest ``n_bars`` bars of this series (a request, not the live stream)."""
        return self._feed().get_hist(
            self._symbol, self._exchange, self._interval, n_bars, timeout=timeout
        )

    def del_seis(self, timeout: float = -1) -> bool:
        """Remove this series from its feed (its consumers stop)."""
        return self._feed().del_seis(self, timeout)

    def get_consumers(self) -> list[Consumer]:
        """The consumers of this series (a copy)."""
        feed = self._tvdatafeed
        if feed is None:
            return list(self._consumers)
        with feed._lock:
            return list(self._consumers)

    def is_new_data(self, data: pd.DataFrame) -> bool:
        """True (and remembered) if ``data``'s first row is newer than the last one seen."""
        stamp = data.index[0].to_pydatetime()
        if self._updated is None or stamp > self._updated:
            self._updated = stamp
            return True
        return False

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Seis):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def _key(self) -> _Key:
        return (self._symbol, self._exchange, self._interval)

    def __repr__(self) -> str:
        return f"Seis({self._symbol!r}, {self._exchange!r}, {self._interval})"


_STOP = object()


class Consumer(threading.Thread):
    """A thread calling ``callback(seis, df)`` for every bar put on its queue, as in tvDatafeed.

    Named ``<callback.__name__>_<symbol>_<exchange>_<interval.value>``.  The feed puts each
    closed bar of its Seis on the queue (and, with ``on_update``, each change of the forming bar,
    which goes to ``on_update(seis, df)`` instead).  An exception raised by a callback is logged
    and counted in :attr:`errors` (the last one kept in :attr:`last_error`); the consumer goes on
    with the next bar.  :meth:`stop` ends the thread after the callback in progress; bars still
    queued are dropped.

    Thread-safety: :meth:`put`, :meth:`stop` and :meth:`del_consumer` may be called from any
    thread; the callbacks run on this thread only, one at a time, in queue order.
    """

    def __init__(
        self, seis: Seis, callback: Callback, *, on_update: Callback | None = None
    ) -> None:
        if not callable(callback):
            raise TypeError("callback must be callable")
        if on_update is not None and not callable(on_update):
            raise TypeError("on_update must be callable or None")
        name = getattr(callback, "__name__", type(callback).__name__)
        super().__init__(
            name=f"{name}_{seis.symbol}_{seis.exchange}_{seis.interval.value}", daemon=True
        )
        self.seis = seis
        self.callback = callback
        self.on_update = on_update
        self.errors = 0
        self.last_error: BaseException | None = None
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._halt = threading.Event()

    @property
    def backlog(self) -> int:
        """Items waiting in the queue."""
        return self._queue.qsize()

    def put(self, data: pd.DataFrame) -> None:
        """Queue ``data`` for ``callback`` (None is refused: use :meth:`stop`)."""
        if data is None:
            raise ValueError("Consumer.put(None): use stop() to stop a consumer")
        self._queue.put((True, data))

    def _put_forming(self, data: pd.DataFrame) -> None:
        self._queue.put((False, data))

    def stop(self) -> None:
        """Ask the thread to exit after the callback in progress (idempotent)."""
        self._halt.set()
        self._queue.put(_STOP)

    def del_consumer(self, timeout: float = -1) -> bool:
        """Remove this consumer from its Seis and stop it."""
        return self.seis.del_consumer(self, timeout)

    def run(self) -> None:
        """Deliver queued bars until stopped."""
        while True:
            item = self._queue.get()
            if item is _STOP or self._halt.is_set():
                break
            assert isinstance(item, tuple)
            closed, frame = item
            function = self.callback if closed else self.on_update
            if function is None:  # pragma: no cover - forming bars are only queued with on_update
                continue
            try:
                function(self.seis, frame)
            except Exception as exc:
                logger.exception(
                    "consumer %s: the callback raised; it keeps receiving bars", self.name
                )
                self.last_error = exc
                self.errors += 1


@dataclass(eq=False)
class _Entry:
    seis: Seis
    sub: Subscription


class TvDatafeedLive(TvDatafeed):
    """tvDatafeed's ``TvDatafeedLive``, streaming over one resilient connection.

    Arguments are :class:`~tvadapter.TvDatafeed`'s (credentials, ``config``, ``rate_limiter``,
    ``round_size``, ``clock``...) plus the live feed's tuning (seconds): ``stall_timeout``
    (default ``config.progress_timeout``), ``setup_timeout`` (the same default),
    ``idle_reconnect`` (None) and ``initial_bars`` (10); or ``live_settings``, a
    :class:`LiveSettings` with every knob (it replaces those four).  Series creation shares
    the client's rate limiter with ``get_hist``.  The connection opens with the first
    :meth:`new_seis`.

    Thread-safety: every method may be called from any thread, including from a consumer's
    callback (a callback may add or delete series and consumers, or even close the feed).
    """

    def __init__(
        self,
        username: str | None = None,
        password: str | None = None,
        *,
        config: NetworkConfig | None = None,
        stall_timeout: float | None = None,
        setup_timeout: float | None = None,
        idle_reconnect: float | None = None,
        initial_bars: int = 10,
        live_settings: LiveSettings | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(username, password, config=config, **kwargs)
        cfg = self.config
        if live_settings is None:
            live_settings = LiveSettings(
                stall_timeout=cfg.progress_timeout if stall_timeout is None else stall_timeout,
                setup_timeout=cfg.progress_timeout if setup_timeout is None else setup_timeout,
                idle_reconnect=idle_reconnect,
                initial_bars=initial_bars,
                round_size=max(self._round_size, initial_bars),
            )
        elif not isinstance(live_settings, LiveSettings):
            raise ConfigurationError(
                f"live_settings: expected a LiveSettings, got {type(live_settings).__name__}"
            )
        self._settings = live_settings
        self._lock = threading.Lock()
        self._entries: dict[_Key, _Entry] = {}
        self._consumers: list[Consumer] = []  # every consumer started, for close()
        self._engine: LiveEngine | None = None
        self._live_closed = False

    # -- series ------------------------------------------------------------------------------

    @overload
    def new_seis(self, symbol: str, exchange: str, interval: Interval | str) -> Seis: ...

    @overload
    def new_seis(
        self, symbol: str, exchange: str, interval: Interval | str, timeout: float
    ) -> Seis | Literal[False]: ...

    def new_seis(
        self, symbol: str, exchange: str, interval: Interval | str, timeout: float = -1
    ) -> Seis | Literal[False]:
        """The :class:`Seis` for (symbol, exchange, interval): the existing one, or a new one
        once the server has accepted the series.

        Raises :class:`~tvadapter.errors.SymbolNotFoundError` for an unknown symbol,
        :class:`~tvadapter.errors.SeriesError` for an interval the plan does not allow, the
        connection's configuration/authentication errors, and, with ``timeout=-1``,
        :class:`~tvadapter.errors.TvTimeoutError` after ``config.request_deadline``.  Returns
        False when ``timeout`` (>= 0) seconds pass first (the series is then not added).
        """
        key: _Key = (symbol, exchange, _as_interval(interval))
        full_symbol = format_symbol(symbol, exchange)
        bounded = timeout is not None and timeout >= 0
        limit = timeout if bounded else self.config.request_deadline
        started = self._clock()
        if not _acquire(self._lock, timeout):
            return False
        created = False
        try:
            self._check_open()
            entry = self._entries.get(key)
            if entry is None:
                seis = Seis(symbol, exchange, key[2])
                seis.tvdatafeed = self
                sub = Subscription(
                    seis,
                    full_symbol,
                    resolution(key[2]),
                    "regular",
                    float(seconds_per_bar(key[2])),
                )
                entry = _Entry(seis, sub)
                self._entries[key] = entry
                engine = self._engine_locked()
                created = True
        finally:
            self._lock.release()
        if created:
            engine.subscribe(entry.sub)
        remaining = None if limit is None else max(0.0, limit - (self._clock() - started))
        if not entry.sub.wait(remaining):
            if created:
                self._forget(entry)
            if bounded:
                return False
            raise TvTimeoutError(
                f"{full_symbol}: the live series was not set up within {limit:g} s"
            )
        if entry.sub.error is not None:
            self._forget(entry)
            raise entry.sub.error
        return entry.seis

    def del_seis(self, seis: Seis, timeout: float = -1) -> bool:
        """Remove ``seis`` and stop its consumers; ValueError("Seis is not listed") if unknown."""
        if not _acquire(self._lock, timeout):
            return False
        try:
            entry = self._entries.get(seis._key())
            if entry is None or not entry.sub.confirmed:
                raise ValueError("Seis is not listed")
            del self._entries[seis._key()]
            consumers, entry.seis._consumers = entry.seis._consumers, []
            engine = self._engine
        finally:
            self._lock.release()
        if engine is not None:
            engine.unsubscribe(entry.sub)
        for consumer in consumers:
            consumer.stop()
        del entry.seis.tvdatafeed
        logger.info("live: removed %r", entry.seis)
        return True

    def list_seis(self) -> list[Seis]:
        """The series of this feed."""
        with self._lock:
            return [e.seis for e in self._entries.values() if e.sub.confirmed]

    # -- consumers ---------------------------------------------------------------------------

    @overload
    def new_consumer(
        self, seis: Seis, callback: Callback, *, on_update: Callback | None = None
    ) -> Consumer: ...

    @overload
    def new_consumer(
        self,
        seis: Seis,
        callback: Callback,
        timeout: float,
        *,
        on_update: Callback | None = None,
    ) -> Consumer | Literal[False]: ...

    def new_consumer(
        self,
        seis: Seis,
        callback: Callback,
        timeout: float = -1,
        *,
        on_update: Callback | None = None,
    ) -> Consumer | Literal[False]:
        """A started :class:`Consumer` calling ``callback(seis, df)`` for each closed bar of
        ``seis`` (and ``on_update(seis, df)`` for each forming-bar change, if given).

        ValueError("Seis is not listed") for an unknown Seis; False if the lock wait timed out.
        """
        if not callable(callback):
            raise TypeError("callback must be callable")
        if not _acquire(self._lock, timeout):
            return False
        try:
            self._check_open()
            entry = self._entries.get(seis._key())
            if entry is None or not entry.sub.confirmed:
                raise ValueError("Seis is not listed")
            consumer = Consumer(entry.seis, callback, on_update=on_update)
            entry.seis._consumers.append(consumer)
            self._consumers = [c for c in self._consumers if c.is_alive()]
            self._consumers.append(consumer)
        finally:
            self._lock.release()
        consumer.start()
        return consumer

    def del_consumer(self, consumer: Consumer, timeout: float = -1) -> bool:
        """Stop ``consumer`` and remove it from its Seis.

        ValueError("Seis is not listed") / ("Consumer is not listed") when unknown; False if
        the lock wait timed out.  The consumer finishes the callback in progress, if any.
        """
        if not _acquire(self._lock, timeout):
            return False
        try:
            entry = self._entries.get(consumer.seis._key())
            if entry is None:
                raise ValueError("Seis is not listed")
            if consumer not in entry.seis._consumers:
                raise ValueError("Consumer is not listed")
            entry.seis._consumers.remove(consumer)
        finally:
            self._lock.release()
        consumer.stop()
        return True

    # -- history -----------------------------------------------------------------------------

    def get_hist(  # noqa: PLR0917 - tvDatafeed's signature
        self,
        symbol: str,
        exchange: str = "NSE",
        interval: Interval | str = Interval.in_daily,
        n_bars: int = 10,
        fut_contract: int | None = None,
        extended_session: bool = False,
        timeout: float | None = -1,
        *,
        start: object = None,
        end: object = None,
    ) -> pd.DataFrame:
        """:meth:`TvDatafeed.get_hist <tvadapter.TvDatafeed.get_hist>`; ``timeout`` -1 (or
        None) means ``config.request_deadline``, else it bounds the request (seconds)."""
        deadline = None if timeout is None or timeout < 0 else timeout
        return super().get_hist(
            symbol,
            exchange,
            interval,
            n_bars,
            fut_contract,
            extended_session,
            start=start,
            end=end,
            timeout=deadline,
        )

    # -- lifecycle ---------------------------------------------------------------------------

    def live_stats(self) -> LiveStats:
        """Counters of the live feed (connections, reconnects, stalls, bars, backfill...)."""
        engine = self._engine
        if engine is None:
            return LiveStats.idle()
        return engine.stats()

    def close(self) -> None:
        """Stop the live feed (connection, engine, consumers; every thread joined) and the
        history client.  Idempotent; any thread (also a consumer's callback)."""
        with self._lock:
            self._live_closed = True
            engine, self._engine = self._engine, None
            entries = list(self._entries.values())
            self._entries.clear()
            consumers, self._consumers = self._consumers, []
            for entry in entries:
                entry.seis._consumers = []
        if engine is not None:
            engine.close(join=CLOSE_JOIN_TIMEOUT)
        for consumer in consumers:
            consumer.stop()
        me = threading.current_thread()
        for consumer in consumers:
            if consumer is not me and consumer.is_alive():
                consumer.join(CLOSE_JOIN_TIMEOUT)
                if consumer.is_alive():
                    logger.warning("consumer %s still running after close()", consumer.name)
        for entry in entries:
            del entry.seis.tvdatafeed
        super().close()

    def del_tvdatafeed(self) -> None:
        """tvDatafeed's name for :meth:`close`."""
        self.close()

    def __enter__(self) -> TvDatafeedLive:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        who = "anonymous" if self.authenticator.is_anonymous else "signed in"
        state = "closed" if self._live_closed else "open"
        return f"<TvDatafeedLive {who} {state} series={len(self._entries)}>"

    # -- internals ---------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._live_closed or self.closed:
            raise TvConnectionError("the live feed is closed")

    def _engine_locked(self) -> LiveEngine:
        engine = self._engine
        if engine is None:
            engine = LiveEngine(
                self.config,
                self.authenticator,
                self._limiter,
                self._settings,
                on_bar=self._on_bar,
                clock=self._clock,
                wall_clock=self._wall_clock,
                rng=self._rng,
            )
            engine.start()
            self._engine = engine
        return engine

    def _forget(self, entry: _Entry) -> None:
        """Drop a series that failed or was not set up in time."""
        key = entry.seis._key()
        with self._lock:
            if self._entries.get(key) is entry:
                del self._entries[key]
            engine = self._engine
        if engine is not None:
            engine.unsubscribe(entry.sub)

    def _on_bar(self, key: object, bar: Bar, closed: bool) -> None:
        """Engine thread: queue ``bar`` for the consumers of Seis ``key`` (no user code here)."""
        assert isinstance(key, Seis)
        seis = key
        with self._lock:
            if closed:
                consumers = list(seis._consumers)
            else:
                consumers = [c for c in seis._consumers if c.on_update is not None]
        frame = bars_frame(self._full_symbol(seis), bars_to_array([bar]))
        if closed:
            seis.is_new_data(frame)
        for consumer in consumers:
            if closed:
                consumer.put(frame.copy())
            else:
                consumer._put_forming(frame.copy())

    @staticmethod
    def _full_symbol(seis: Seis) -> str:
        return format_symbol(seis.symbol, seis.exchange)
