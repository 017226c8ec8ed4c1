"""The live feed's engine: subscriptions over one persistent connection, closed-bar delivery.

Theory of operation
-------------------
Two threads serve a live feed:

* the *connection* thread (:class:`~tvadapter._live_connection.LiveConnection`) connects,
  reads, echoes heartbeats, detects drops and stalls and reconnects with backoff; it posts
  ``Connected`` / ``Incoming`` / ``Lost`` / ``ConnectFailed`` notices;
* the *engine* thread (:class:`LiveEngine`) owns every :class:`Subscription`.  It takes one
  queue holding those notices and the commands of user threads (subscribe, unsubscribe) and
  handles them one at a time, so subscription state needs no lock.

Per subscription and connection: one chart session (anonymous sessions allow one series each)
with ``chart_create_session``, ``resolve_symbol`` and ``create_series`` (one rate-limiter token
per ``create_series`` and per ``request_more_data``; when the limiter says wait, the setup is
retried when a token is due, never by blocking the engine).  Bars go through the subscription's
:class:`~tvadapter._live_series.SeriesTracker`, which decides what closed and what to backfill
after a reconnect; each result is handed to ``on_bar(key, bar, closed)`` (the live feed puts it
on its consumers' queues: no user code runs on this thread).

A subscription is *confirmed* when its first load completes; until then the thread that asked
for it waits (:meth:`Subscription.wait`).  Failures:

* ``symbol_error`` -> :class:`~tvadapter.errors.SymbolNotFoundError`, ``series_error`` ->
  :class:`~tvadapter.errors.SeriesError`, a session's ``critical_error`` ->
  :class:`~tvadapter.errors.CriticalError` (``AuthenticationError`` for
  ``unauthorized_access``): the same mapping as history requests.  No answer within
  ``setup_timeout`` while the connection carries data for others ->
  :class:`~tvadapter.errors.TvTimeoutError`.  An unconfirmed subscription fails with the
  error (and is dropped); a confirmed one is retried after a backoff wait: a feed never gives
  up on a series it once had.
* No answer at all on the connection -- only heartbeats -- within ``setup_timeout``: the
  heartbeat-only session of an expired token.  The token is marked refused and the connection
  replaced; a fixed token that cannot be renewed fails the unconfirmed subscriptions with
  :class:`~tvadapter.errors.TokenExpiredError`.
* A connection that cannot be opened because of the configuration or the credentials (a 403
  handshake, a refused sign-in) fails the unconfirmed subscriptions with that error at once;
  the connection thread keeps trying (at its backoff cap) for the confirmed ones.

A market that is closed, or a symbol that does not trade, only means no ``du`` for a while:
nothing times out and nothing is shut down.

Thread-safety: :meth:`LiveEngine.subscribe`, :meth:`LiveEngine.unsubscribe`,
:meth:`LiveEngine.stats` and :meth:`LiveEngine.close` may be called from any thread (they
post to the engine's queue or read counters).  ``on_bar`` runs on the engine thread.
"""

from __future__ import annotations

import logging
import math
import queue
import random
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

from resilience.ratelimit import TokenBucket

from ._auth import Authenticator
from ._live_connection import Connected, ConnectFailed, Incoming, LiveConnection, Lost, Notice
from ._live_series import Emit, SeriesTracker
from ._request import server_error
from .config import NetworkConfig
from .connection import WebSocketManager
from .errors import (
    AuthenticationError,
    ConfigurationError,
    HandshakeForbidden,
    TokenExpiredError,
    TvConnectionError,
    TvTimeoutError,
)
from .protocol import (
    Bar,
    CriticalErrorEvent,
    DataUpdate,
    Event,
    ProtocolErrorEvent,
    SeriesCompleted,
    SeriesErrorEvent,
    SymbolError,
    TimescaleUpdate,
    messages,
)

__all__ = ["LiveEngine", "LiveSettings", "LiveStats", "Subscription"]

logger = logging.getLogger(__name__)

#: Ids inside each chart session (one series per session).
SERIES_ID = "s1"
SYMBOL_ID = "sym_1"
TURNAROUND = "s1"
#: The engine wakes at least this often (seconds) to run its timers.
MAX_IDLE = 1.0


def _positive(name: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ConfigurationError(f"{name}: must be a number > 0, got {value!r}")
    if math.isinf(value) or math.isnan(value):
        raise ConfigurationError(f"{name}: must be finite, got {value!r}")


def _count(name: str, value: int, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigurationError(f"{name}: must be an int >= {minimum}, got {value!r}")


@dataclass(frozen=True, slots=True)
class LiveSettings:
    """Tuning of a live feed (seconds; validated).

    ``stall_timeout``: nothing at all (no data, no heartbeat) that long -> reconnect.
    ``setup_timeout``: no answer to ``create_series`` that long -> the series (or, with only
    heartbeats on the connection, the token) is at fault.  ``idle_reconnect``: reconnect after
    that long without *data* even though heartbeats come (None: never; heartbeats mean alive).
    ``initial_bars``: bars loaded when a series is created (the backfill asks for more when a
    gap needs it).  ``round_size``: most bars asked per request.  ``max_backfill_rounds``:
    ``request_more_data`` rounds per reload.  ``stable_after``: a connection that lived that
    long with data resets the reconnect backoff.  ``token_margin``: renew the token (and replace
    the connection) that long before it expires, checking every ``token_check_interval``.
    ``poll_interval``: the reader's longest
    ``recv`` wait (how fast it notices a stall or a stop request without traffic).

    Immutable; safe to share between threads.
    """

    stall_timeout: float = 30.0
    setup_timeout: float = 30.0
    idle_reconnect: float | None = None
    initial_bars: int = 10
    round_size: int = 5_000
    max_backfill_rounds: int = 20
    stable_after: float = 30.0
    token_margin: float = 60.0
    token_check_interval: float = 30.0
    poll_interval: float = 0.25

    def __post_init__(self) -> None:
        _positive("stall_timeout", self.stall_timeout)
        _positive("setup_timeout", self.setup_timeout)
        if self.idle_reconnect is not None:
            _positive("idle_reconnect", self.idle_reconnect)
        _count("initial_bars", self.initial_bars, 2)
        _count("round_size", self.round_size, 2)
        if self.initial_bars > self.round_size:
            raise ConfigurationError("initial_bars: must not exceed round_size")
        _count("max_backfill_rounds", self.max_backfill_rounds, 0)
        _positive("stable_after", self.stable_after)
        _positive("token_margin", self.token_margin)
        _positive("token_check_interval", self.token_check_interval)
        _positive("poll_interval", self.poll_interval)


@dataclass(frozen=True, slots=True)
class LiveStats:
    """A snapshot of a live feed's activity (counters since it started).

    ``connections`` opened, ``reconnects`` (``connections - 1``), ``connect_failures``,
    ``connections_lost`` (drops, closes, stalls, requested replacements), ``stalls``,
    ``idle_reconnects``, ``heartbeat_only_sessions``, ``token_renewals``; ``subscriptions``
    (series now), ``series_created`` (``create_series`` sent), ``backfill_rounds``
    (``request_more_data`` sent), ``closed_bars`` (closed bars emitted, per series),
    ``backfilled_bars`` (of those, bars that closed while disconnected), ``forming_updates``,
    ``gaps`` (reloads that could not reach back far enough), ``series_failures``;
    ``connected`` now and ``last_error`` (text of the last connection problem, or None).
    Immutable.
    """

    connections: int
    reconnects: int
    connect_failures: int
    connections_lost: int
    stalls: int
    idle_reconnects: int
    heartbeat_only_sessions: int
    token_renewals: int
    subscriptions: int
    series_created: int
    backfill_rounds: int
    closed_bars: int
    backfilled_bars: int
    forming_updates: int
    gaps: int
    series_failures: int
    connected: bool
    last_error: str | None

    @classmethod
    def idle(cls) -> LiveStats:
        """The stats of a feed that has not started."""
        values: dict[str, Any] = {f.name: 0 for f in fields(cls)}
        values.update(connected=False, last_error=None)
        return cls(**values)


class Subscription:
    """One live series as the engine sees it.

    Created by the caller, then owned by the engine thread (after :meth:`LiveEngine.subscribe`
    only the engine touches its state).  :meth:`wait`, :attr:`error` and :attr:`confirmed` may
    be read from any thread.
    """

    def __init__(
        self, key: object, symbol: str, resolution: str, session: str, bar_seconds: float
    ) -> None:
        self.key = key
        self.symbol = symbol
        self.resolution = resolution
        self.session = session
        self.bar_seconds = bar_seconds
        self.tracker = SeriesTracker()
        self.error: BaseException | None = None
        self.confirmed = False
        self._ready = threading.Event()
        # Engine-thread state:
        self.cs: str | None = None
        self.phase = "idle"  # idle | queued | loading | more | live | backoff | removed
        self.round_started = 0.0
        self.retry_at = 0.0
        self.failures = 0
        self.rounds = 0

    def wait(self, timeout: float | None) -> bool:
        """Wait until confirmed or failed; False if ``timeout`` seconds passed first."""
        return self._ready.wait(timeout)

    def resolve(self, error: BaseException | None) -> None:
        """Confirm (``error`` None) or fail it, waking the waiting thread (engine thread)."""
        if self._ready.is_set():
            return
        if error is None:
            self.confirmed = True
        else:
            self.error = error
        self._ready.set()

    def __repr__(self) -> str:
        return f"<Subscription {self.symbol} {self.resolution} {self.phase}>"


@dataclass(frozen=True, slots=True)
class _Subscribe:
    sub: Subscription


@dataclass(frozen=True, slots=True)
class _Unsubscribe:
    sub: Subscription


class _Stop:
    pass


_Item = Notice | _Subscribe | _Unsubscribe | _Stop


def _fatal(error: BaseException) -> bool:
    """Connect failures that retrying cannot fix (the configuration or credentials must change)."""
    return isinstance(error, (HandshakeForbidden, ConfigurationError, AuthenticationError))


class LiveEngine:
    """Subscriptions and delivery over one persistent connection (see the module docstring).

    Thread-safety: :meth:`subscribe`, :meth:`unsubscribe`, :meth:`stats` and :meth:`close`
    from any thread; everything else runs on the engine thread.
    """

    def __init__(
        self,
        config: NetworkConfig,
        auth: Authenticator,
        limiter: TokenBucket,
        settings: LiveSettings,
        *,
        on_bar: Callable[[object, Bar, bool], object],
        clock: Callable[[], float],
        wall_clock: Callable[[], float],
        rng: random.Random | None = None,
    ) -> None:
        self._auth = auth
        self._limiter = limiter
        self._settings = settings
        self._on_bar = on_bar
        self._clock = clock
        self._wall_clock = wall_clock
        self._rng = rng
        self._backoff = config.retry_backoff("full")
        self._inbox: queue.SimpleQueue[_Item] = queue.SimpleQueue()
        self._manager = WebSocketManager(config, clock=clock, rng=rng, echo_heartbeats=False)
        self._conn = LiveConnection(
            self._manager,
            auth,
            self._inbox.put,
            stall_timeout=settings.stall_timeout,
            idle_reconnect=settings.idle_reconnect,
            stable_after=settings.stable_after,
            token_margin=settings.token_margin,
            token_check_interval=settings.token_check_interval,
            poll_interval=settings.poll_interval,
            backoff=self._backoff,
            clock=clock,
            wall_clock=wall_clock,
            rng=rng,
        )
        self._subs: list[Subscription] = []
        self._by_cs: dict[str, Subscription] = {}
        self._gen = 0
        self._data_seen = False
        self._closed = False
        self._stats_lock = threading.Lock()
        self._counts = {
            "heartbeat_only_sessions": 0,
            "series_created": 0,
            "backfill_rounds": 0,
            "closed_bars": 0,
            "backfilled_bars": 0,
            "forming_updates": 0,
            "gaps": 0,
            "series_failures": 0,
            "subscriptions": 0,
        }
        self._last_error: str | None = None
        self._thread = threading.Thread(target=self._run, name="tvadapter-live-engine", daemon=True)

    # -- any thread ----------------------------------------------------------------------------

    @property
    def threads(self) -> tuple[threading.Thread, threading.Thread]:
        """The engine and connection threads."""
        return self._thread, self._conn.thread

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called."""
        return self._closed

    def start(self) -> None:
        """Start both threads (the connection opens at once)."""
        self._thread.start()
        self._conn.start()

    def subscribe(self, sub: Subscription) -> None:
        """Add ``sub``: it is created on the current connection and on every later one."""
        if self._closed:
            raise TvConnectionError("the live feed is closed")
        self._inbox.put(_Subscribe(sub))
        if self.closed and not self._thread.is_alive():  # close() won the race
            sub.resolve(TvConnectionError("the live feed is closed"))

    def unsubscribe(self, sub: Subscription) -> None:
        """Remove ``sub`` (its chart session is deleted; idempotent)."""
        if not self._closed:
            self._inbox.put(_Unsubscribe(sub))

    def close(self, join: float = 10.0) -> None:
        """Stop both threads and wait up to ``join`` seconds for each (idempotent)."""
        self._closed = True
        self._conn.stop(join=join)
        self._inbox.put(_Stop())
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(join)

    def stats(self) -> LiveStats:
        """A snapshot of the counters."""
        conn = self._conn.counts()
        with self._stats_lock:
            counts = dict(self._counts)
            last_error = self._last_error
        connections = conn["connections"]
        return LiveStats(
            connections=connections,
            reconnects=max(0, connections - 1),
            connect_failures=conn["connect_failures"],
            connections_lost=conn["losses"],
            stalls=conn["stalls"],
            idle_reconnects=conn["idle_reconnects"],
            heartbeat_only_sessions=counts["heartbeat_only_sessions"],
            token_renewals=conn["token_renewals"],
            subscriptions=counts["subscriptions"],
            series_created=counts["series_created"],
            backfill_rounds=counts["backfill_rounds"],
            closed_bars=counts["closed_bars"],
            backfilled_bars=counts["backfilled_bars"],
            forming_updates=counts["forming_updates"],
            gaps=counts["gaps"],
            series_failures=counts["series_failures"],
            connected=self._conn.gen != 0,
            last_error=last_error,
        )

    def _add(self, name: str, amount: int = 1) -> None:
        with self._stats_lock:
            self._counts[name] += amount

    # -- the engine thread -----------------------------------------------------------------------

    def _run(self) -> None:
        try:
            while True:
                now = self._clock()
                wait = max(0.0, min(self._next_wakeup(now) - now, MAX_IDLE))
                try:
                    item: _Item | None = self._inbox.get(timeout=wait)
                except queue.Empty:
                    item = None
                if isinstance(item, _Stop):
                    break
                try:
                    if item is not None:
                        self._handle(item)
                    self._timers(self._clock())
                except Exception:  # a bug: keep the feed running, say so loudly
                    logger.exception("live engine: unexpected error")
        finally:
            closed = TvConnectionError("the live feed is closed")
            for sub in self._subs:
                sub.resolve(closed)
            while True:  # subscriptions posted while closing: nobody will serve them
                try:
                    item = self._inbox.get_nowait()
                except queue.Empty:
                    break
                if isinstance(item, _Subscribe):
                    item.sub.resolve(closed)

    def _handle(self, item: _Item) -> None:
        if isinstance(item, Incoming):
            if item.gen == self._gen:
                self._data_seen = True
                for event in item.events:
                    self._route(event)
        elif isinstance(item, _Subscribe):
            sub = item.sub
            if sub not in self._subs:
                self._subs.append(sub)
                self._add("subscriptions")
                if self._gen:
                    self._setup(sub, self._clock())
        elif isinstance(item, _Unsubscribe):
            self._remove(item.sub)
        elif isinstance(item, Connected):
            self._connected(item.gen)
        elif isinstance(item, Lost):
            self._lost(item)
        elif isinstance(item, ConnectFailed):
            self._connect_failed(item)

    def _remove(self, sub: Subscription) -> None:
        if sub not in self._subs:
            return
        self._subs.remove(sub)
        self._add("subscriptions", -1)
        self._drop_session(sub)
        sub.phase = "removed"
        sub.resolve(TvConnectionError(f"{sub.symbol}: the subscription was cancelled"))

    def _drop_session(self, sub: Subscription) -> None:
        cs, sub.cs = sub.cs, None
        if cs is None:
            return
        self._by_cs.pop(cs, None)
        if self._gen:
            self._conn.send(self._gen, [messages.chart_delete_session(cs)])

    def _connected(self, gen: int) -> None:
        self._gen = gen
        self._data_seen = False
        self._by_cs.clear()
        now = self._clock()
        for sub in self._subs:
            sub.cs = None
            if sub.phase != "backoff":
                sub.phase = "idle"
        for sub in list(self._subs):
            self._setup(sub, now)

    def _lost(self, item: Lost) -> None:
        if item.gen != self._gen:
            return
        self._gen = 0
        self._by_cs.clear()
        with self._stats_lock:
            self._last_error = f"{type(item.error).__name__}: {item.error}"
        for sub in self._subs:
            sub.cs = None
            if sub.phase != "backoff":
                sub.phase = "idle"

    def _connect_failed(self, item: ConnectFailed) -> None:
        error = item.error
        with self._stats_lock:
            self._last_error = f"{type(error).__name__}: {error}"
        if _fatal(error):
            for sub in list(self._subs):
                if not sub.confirmed:
                    self._fail(sub, error)

    # -- series setup and rounds ---------------------------------------------------------------

    def _setup(self, sub: Subscription, now: float) -> None:
        """Create ``sub``'s chart session and series on the current connection if allowed."""
        if not self._gen or sub.phase in ("loading", "more", "more_queued", "live", "removed"):
            return
        if sub.phase == "backoff" and now < sub.retry_at:
            return
        if not self._limiter.try_acquire():
            sub.phase = "queued"
            return
        settings = self._settings
        cs = "cs_" + uuid.uuid4().hex[:12]
        count = sub.tracker.reload_count(
            self._wall_clock(), sub.bar_seconds, settings.initial_bars, settings.round_size
        )
        sub.tracker.begin_load()
        sub.cs = cs
        sub.phase = "loading"
        sub.round_started = now
        sub.rounds = 0
        self._by_cs[cs] = sub
        self._add("series_created")
        logger.debug(
            "live: create_series %s %s (%d bars) in %s", sub.symbol, sub.resolution, count, cs
        )
        self._conn.send(
            self._gen,
            [
                messages.chart_create_session(cs),
                messages.resolve_symbol(cs, SYMBOL_ID, sub.symbol, session=sub.session),
                messages.create_series(cs, SERIES_ID, TURNAROUND, SYMBOL_ID, sub.resolution, count),
            ],
        )

    def _more(self, sub: Subscription, now: float) -> None:
        """Send the next ``request_more_data`` round of a backfill if the limiter allows."""
        if sub.cs is None or not self._gen:
            return
        if not self._limiter.try_acquire():
            sub.phase = "more_queued"
            return
        tracker = sub.tracker
        n = tracker.round_size(self._settings.initial_bars, self._settings.round_size)
        tracker.begin_round()
        sub.rounds += 1
        sub.phase = "more"
        sub.round_started = now
        self._add("backfill_rounds")
        logger.info(
            "live: %s %s: backfill round %d (%d older bars)",
            sub.symbol,
            sub.resolution,
            sub.rounds,
            n,
        )
        self._conn.send(self._gen, [messages.request_more_data(sub.cs, SERIES_ID, n)])

    def _route(self, event: Event) -> None:
        if isinstance(event, ProtocolErrorEvent):
            logger.error("live: protocol_error from the server: %s", event.text)
            self._conn.request_reconnect(
                self._gen, f"protocol_error: {event.text}", invalidate_token="auth" in event.text
            )
            return
        session = getattr(event, "session", None)
        if not isinstance(session, str):
            if isinstance(event, CriticalErrorEvent):
                logger.error("live: critical_error: %s %s", event.name, event.description)
            return
        sub = self._by_cs.get(session)
        if sub is None:
            return
        if isinstance(event, (DataUpdate, TimescaleUpdate)):
            payload = event.series.get(SERIES_ID)
            if payload is not None and payload.bars:
                self._deliver(sub, sub.tracker.update(payload.bars))
        elif isinstance(event, SeriesCompleted):
            if event.series_id == SERIES_ID and sub.phase in ("loading", "more"):
                self._round_done(sub, event)
        elif isinstance(event, (SymbolError, SeriesErrorEvent, CriticalErrorEvent)):
            self._fail(sub, server_error(event, sub.symbol, sub.resolution))

    def _round_done(self, sub: Subscription, event: SeriesCompleted) -> None:
        tracker = sub.tracker
        now = self._clock()
        if (
            tracker.needs_more(event.data_completed)
            and sub.rounds < self._settings.max_backfill_rounds
        ):
            self._more(sub, now)
            return
        gaps = tracker.gaps
        backfilled = tracker.backfilled
        emits = tracker.finish_load()
        sub.phase = "live"
        sub.failures = 0
        if tracker.gaps > gaps:
            self._add("gaps")
            logger.warning(
                "live: %s %s: the server's history does not reach back to the last delivered "
                "bar; bars may be missing",
                sub.symbol,
                sub.resolution,
            )
        if tracker.backfilled > backfilled:
            self._add("backfilled_bars", tracker.backfilled - backfilled)
            logger.info(
                "live: %s %s: %d bar(s) closed while disconnected, delivered now",
                sub.symbol,
                sub.resolution,
                tracker.backfilled - backfilled,
            )
        self._deliver(sub, emits)
        if not sub.confirmed:  # after delivering: consumers added next start with the next bar
            sub.resolve(None)
            logger.info("live: subscribed to %s %s", sub.symbol, sub.resolution)

    def _fail(self, sub: Subscription, error: BaseException) -> None:
        self._add("series_failures")
        self._drop_session(sub)
        if not sub.confirmed:
            if sub in self._subs:
                self._subs.remove(sub)
                self._add("subscriptions", -1)
            sub.phase = "removed"
            sub.resolve(error)
            logger.info("live: %s %s refused: %s", sub.symbol, sub.resolution, error)
            return
        sub.failures += 1
        delay = self._backoff.compute(sub.failures, self._rng)
        sub.phase = "backoff"
        sub.retry_at = self._clock() + delay
        logger.error(
            "live: %s %s failed (%s: %s); retrying in %.1f s",
            sub.symbol,
            sub.resolution,
            type(error).__name__,
            error,
            delay,
        )

    def _deliver(self, sub: Subscription, emits: list[Emit]) -> None:
        for emit in emits:
            self._add("closed_bars" if emit.closed else "forming_updates")
            try:
                self._on_bar(sub.key, emit.bar, emit.closed)
            except Exception:
                logger.exception("live: delivering a bar of %s failed", sub.symbol)

    # -- timers ----------------------------------------------------------------------------------

    def _next_wakeup(self, now: float) -> float:
        wake = now + MAX_IDLE
        timeout = self._settings.setup_timeout
        for sub in self._subs:
            if sub.phase in ("loading", "more"):
                wake = min(wake, sub.round_started + timeout)
            elif sub.phase == "backoff":
                wake = min(wake, sub.retry_at)
            elif sub.phase in ("queued", "more_queued") and self._gen:
                wake = min(wake, now + max(0.01, self._limiter.retry_after()))
        return wake

    def _timers(self, now: float) -> None:
        if not self._gen:
            return
        timeout = self._settings.setup_timeout
        for sub in list(self._subs):
            if sub.phase in ("idle", "queued") or (sub.phase == "backoff" and now >= sub.retry_at):
                self._setup(sub, now)
            elif sub.phase == "more_queued":
                self._more(sub, now)
            elif sub.phase in ("loading", "more") and now - sub.round_started > timeout:
                self._setup_timed_out(sub)
                if not self._gen:
                    return

    def _setup_timed_out(self, sub: Subscription) -> None:
        timeout = self._settings.setup_timeout
        if self._data_seen:
            self._fail(
                sub,
                TvTimeoutError(
                    f"{sub.symbol} {sub.resolution}: no answer within {timeout:g} s "
                    "(the symbol may need a login)"
                ),
            )
            return
        # Nothing but heartbeats on this connection: the expired-token symptom (PROTOCOL §16).
        self._add("heartbeat_only_sessions")
        auth = self._auth
        renewable = auth.is_anonymous or auth.credentials.can_sign_in
        if not renewable:
            error = TokenExpiredError(
                "the server sends only heartbeats: the auth token has probably expired"
            )
            for other in list(self._subs):
                if not other.confirmed:
                    self._fail(other, error)
        gen, self._gen = self._gen, 0
        self._conn.request_reconnect(
            gen,
            f"only heartbeats for {timeout:g} s after create_series (expired token?)",
            invalidate_token=not auth.is_anonymous,
        )
        for other in self._subs:
            other.cs = None
            if other.phase != "backoff":
                other.phase = "idle"
        self._by_cs.clear()
