"""``TvDatafeed``: tvDatafeed's public surface on a resilient, reusable, thread-safe connection.

Theory of operation
-------------------
One client owns one :class:`~tvadapter.connection.WebSocketManager` (one socket at a time) and,
while connected, one :class:`~tvadapter._router.Router` whose reader thread demultiplexes the
server's events by chart session.  Each :meth:`TvDatafeed.get_hist` call runs in the caller's
thread as a series of *attempts*, each being::

    circuit breaker permit
      -> rate limiter token (one per round: create_series and each request_more_data)
        -> the connection (reused; opened, and the token set, only when there is none)
          -> a fresh chart session running a HistoryRequest state machine (_request.py)
            -> chart_delete_session, always

Attempts are retried (:func:`resilience.retrying`) with exponential backoff and full jitter
(``config.base_retry_delay`` .. ``config.max_retry_delay``), at most ``config.max_retries``
times and never past the call's deadline (``timeout`` or ``config.request_deadline``), on:
connection failures and losses (a drop, a 1005/1006 close, a request-rate close), handshake
429/503 (after at least their ``Retry-After``), timeouts without progress, a framing or JSON
error in the stream (the connection is then dropped), and failed integrity checks.  They fail
fast, without retry, on ``symbol_error`` (:class:`SymbolNotFoundError`), ``series_error``,
``critical_error``, a refused token (``protocol_error "bad auth token"``:
:class:`TokenExpiredError`), captcha/2FA/password errors, a 403 handshake, and an open circuit
(:class:`TvCircuitOpenError`).  The breaker counts only connection-level failures (and
timeouts), at most once per connection however many requests it carried: a wrong symbol
never opens it, and one dropped connection under 16 threads counts once, not 16 times.

A connection lost mid-series costs that attempt: the next attempt loads the series again, from
scratch, on a new connection.  Resuming with ``request_more_data`` is impossible (a new
connection knows no series) and a partial first load cannot be spliced safely onto a second
one, whose newest bars may differ; so every result comes from one series, checked by the state
machine (order, no duplicates, no gaps between rounds, count) before it is returned.

An expired token shows as a session that carries only heartbeats: after ``progress_timeout``
the request fails with a heartbeat-only verdict; the client then asks the authenticator for a
new token once (if it can sign in again) and retries on a new connection; otherwise, or if the
new token fares no better, :class:`TokenExpiredError` is raised.

Connections: reused across calls (``config.reuse_connections``), replaced when older than
``config.max_connection_age`` (only while no request is running on them), dropped when a request
times out on a socket that went silent.  Anonymous sessions are respected: one series per chart
session; chart sessions are deleted after each request.

Threads: every public method may be called from any thread; many threads may run
:meth:`get_hist` at once over the one connection.  No lock is held during I/O or while waiting.
``close()`` (or leaving the ``with`` block, or garbage collection of the client) disconnects
and stops the reader thread.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import threading
import time
import uuid
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from types import TracebackType
from typing import Any

import numpy as np
import pandas as pd

from resilience import _clock
from resilience.circuit import CircuitBreaker
from resilience.errors import CircuitOpenError
from resilience.ratelimit import TokenBucket
from resilience.retry import AttemptRecord, retrying
from resilience.timeout import Deadline

from . import _bulk, _search
from ._auth import Authenticator, Credentials
from ._metrics import ClientMetrics, MetricsRecorder
from ._request import DEFAULT_ROUND_SIZE, HeartbeatOnlySession, HistoryRequest, HistoryResult
from ._router import ConnectionLost, Router
from ._symbols import format_symbol, session_name
from .config import NetworkConfig
from .connection import ConnectionEvent, WebSocketManager
from .errors import (
    ConfigurationError,
    ConnectionClosed,
    DataIncompleteError,
    HandshakeForbidden,
    ProtocolError,
    RateLimitedError,
    ServerProtocolError,
    TokenExpiredError,
    TvCircuitOpenError,
    TvConnectionError,
    TvError,
    TvTimeoutError,
)
from .history import result_frame
from .interval import Interval, resolution
from .protocol import messages

__all__ = ["TvDatafeed"]

logger = logging.getLogger(__name__)

#: Consecutive connection-level failures that open the circuit breaker.
BREAKER_FAILURE_THRESHOLD = 5
#: Seconds the breaker stays open before letting a probe through.
BREAKER_RECOVERY_TIMEOUT = 30.0
#: How long close() waits for the reader thread.
CLOSE_JOIN_TIMEOUT = 5.0
#: How long a failed send waits for the reader to tell why the connection ended (seconds).
SERVER_ERROR_WAIT = 1.0


@dataclass(eq=False)
class _Shared:
    """State shared by the client, its finalizer and its callbacks (never the client itself,
    so that the reader thread does not keep the client alive).

    Thread-safe by discipline: ``router``, ``token``, ``connecting`` and ``closed`` are read
    and written only under ``cond``.
    """

    manager: WebSocketManager
    metrics: MetricsRecorder
    cond: threading.Condition = field(default_factory=lambda: threading.Condition(threading.Lock()))
    router: Router | None = None
    token: str | None = None
    connecting: bool = False
    closed: bool = False


@dataclass(frozen=True, slots=True)
class _Query:
    """One get_hist request, validated.  Immutable."""

    symbol: str
    resolution: str
    n_bars: int
    start: float | None
    end: float | None
    session: str


def _is_closed(shared: _Shared) -> bool:
    return shared.closed


def _shutdown(shared: _Shared) -> None:
    """Close the connection and stop the reader (idempotent; used by close() and the finalizer)."""
    with shared.cond:
        shared.closed = True
        router, shared.router = shared.router, None
        shared.cond.notify_all()
    try:
        shared.manager.disconnect()
    except Exception:  # pragma: no cover - disconnect is not supposed to raise
        logger.exception("disconnect failed while closing")
    if router is not None:
        router.stop(join=CLOSE_JOIN_TIMEOUT)


def _on_connection_event(metrics: MetricsRecorder, event: ConnectionEvent) -> None:
    if event.kind == "lost":
        metrics.add("connections_lost_events")


def _is_breaker_failure(exc: BaseException) -> bool:
    """What counts against the circuit breaker: the service being unreachable or unresponsive."""
    if isinstance(exc, HandshakeForbidden):
        return False
    return isinstance(exc, (TvConnectionError, TvTimeoutError)) and not isinstance(
        exc, HeartbeatOnlySession
    )


def _to_epoch(value: object, name: str) -> float:
    """Epoch seconds of a datetime / date / Timestamp / number; naive datetimes are UTC."""
    if isinstance(value, bool):
        raise ConfigurationError(f"{name}: expected a datetime or epoch seconds, got a bool")
    if isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, pd.Timestamp):
        stamp = value if value.tzinfo is not None else value.tz_localize("UTC")
        seconds = stamp.timestamp()
    elif isinstance(value, datetime):
        moment = value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)
        seconds = moment.timestamp()
    elif isinstance(value, date):
        seconds = datetime(value.year, value.month, value.day, tzinfo=timezone.utc).timestamp()
    elif isinstance(value, str):
        try:
            stamp = pd.Timestamp(value)
        except ValueError as exc:
            raise ConfigurationError(f"{name}: not a date/time: {value!r}") from exc
        return _to_epoch(stamp, name)
    else:
        raise ConfigurationError(
            f"{name}: expected a datetime, date, string or epoch seconds, "
            f"got {type(value).__name__}"
        )
    if not math.isfinite(seconds) or seconds < 0:
        raise ConfigurationError(f"{name}: must be a time after 1970, got {value!r}")
    return seconds


class TvDatafeed:
    """A drop-in replacement for tvDatafeed's ``TvDatafeed``, resilient and thread-safe.

    ``TvDatafeed()`` is anonymous; ``TvDatafeed(username, password)`` signs in (at once, so bad
    credentials, a captcha or a 2FA demand raise here, never a silent anonymous fallback);
    ``session_cookie="<sessionid>"`` or ``("<sessionid>", "<sessionid_sign>")`` uses a browser
    session (no captcha); ``token=`` uses a ready auth token.  ``authenticator=`` replaces all of
    these.  ``config`` is a :class:`~tvadapter.config.NetworkConfig` (default: the real
    TradingView endpoints).  ``rate_limiter`` / ``circuit_breaker`` replace the ones built from
    the config (a :class:`resilience.TokenBucket` of ``requests_per_minute`` / ``burst_size``,
    shared through ``config.redis_url`` when set; a breaker opening after
    ``BREAKER_FAILURE_THRESHOLD`` consecutive connection failures).  ``round_size`` is the
    number of bars asked per round.  ``clock``/``sleep``/``wall_clock``/``rng`` are injectable
    for tests.

    Thread-safety: all methods may be called from any thread at once (see the module
    docstring).  Use as a context manager, or call :meth:`close`.
    """

    def __init__(
        self,
        username: str | None = None,
        password: str | None = None,
        *,
        config: NetworkConfig | None = None,
        session_cookie: str | tuple[str, str] | None = None,
        token: str | None = None,
        authenticator: Authenticator | None = None,
        rate_limiter: TokenBucket | None = None,
        circuit_breaker: CircuitBreaker | None = None,
        round_size: int = DEFAULT_ROUND_SIZE,
        sign_in: bool = True,
        clock: Callable[[], float] = _clock.monotonic,
        sleep: Callable[[float], object] = _clock.sleep,
        wall_clock: Callable[[], float] = time.time,
        rng: Any = None,
    ) -> None:
        if config is None:
            config = NetworkConfig()
        if not isinstance(config, NetworkConfig):
            raise ConfigurationError(
                f"config: expected a NetworkConfig, got {type(config).__name__}"
            )
        if isinstance(round_size, bool) or not isinstance(round_size, int) or round_size < 1:
            raise ConfigurationError(f"round_size: must be an int >= 1, got {round_size!r}")
        self._config = config
        self._clock = clock
        self._sleep = sleep
        self._wall_clock = wall_clock
        self._rng = rng
        self._round_size = round_size
        if authenticator is None:
            session_id: str | None
            session_sign: str | None = None
            if isinstance(session_cookie, tuple):
                session_id, session_sign = session_cookie
            else:
                session_id = session_cookie
            credentials = Credentials(
                username=username,
                password=password,
                session_id=session_id,
                session_id_sign=session_sign,
                token=token,
            )
            authenticator = Authenticator(credentials, config=config, clock=clock)
        elif username is not None or password is not None or session_cookie or token:
            raise ConfigurationError("authenticator: give either an authenticator or credentials")
        self._auth = authenticator
        self._limiter = rate_limiter or TokenBucket(
            config.requests_per_minute / 60.0,
            config.burst_size,
            clock=clock,
            sleep=sleep,
            backend=config.redis_url,
            name="tvadapter",
        )
        self._breaker = circuit_breaker or CircuitBreaker(
            BREAKER_FAILURE_THRESHOLD,
            BREAKER_RECOVERY_TIMEOUT,
            _is_breaker_failure,
            name="tradingview",
            clock=clock,
            store=config.redis_url,
        )
        self._backoff = config.retry_backoff("full")
        metrics = MetricsRecorder(clock=clock)
        manager = WebSocketManager(
            config,
            clock=clock,
            sleep=sleep,
            on_event=lambda event: _on_connection_event(metrics, event),
        )
        self._metrics = metrics
        self._shared = _Shared(manager=manager, metrics=metrics)
        self._finalizer = weakref.finalize(self, _shutdown, self._shared)
        if sign_in and not self._auth.is_anonymous:
            self._auth.token()  # fail fast: captcha, 2FA, wrong password
        logger.info(
            "TvDatafeed ready (%s)", "anonymous" if self._auth.is_anonymous else "signed in"
        )

    # -- public surface ------------------------------------------------------------------

    @property
    def config(self) -> NetworkConfig:
        """The network configuration (immutable)."""
        return self._config

    @property
    def authenticator(self) -> Authenticator:
        """The authenticator holding this client's token."""
        return self._auth

    @property
    def closed(self) -> bool:
        """True after :meth:`close`."""
        return self._shared.closed

    def get_hist(  # noqa: PLR0917 - tvDatafeed's signature
        self,
        symbol: str,
        exchange: str = "NSE",
        interval: Interval | str = Interval.in_daily,
        n_bars: int = 10,
        fut_contract: int | None = None,
        extended_session: bool = False,
        *,
        start: object = None,
        end: object = None,
        timeout: float | None = None,
    ) -> pd.DataFrame:
        """Historical bars as a DataFrame, tvDatafeed's shape with a UTC index.

        ``symbol``/``exchange``/``fut_contract`` follow tvDatafeed's formatting rules
        (``"NASDAQ:AAPL"`` as is; ``MCX`` + ``CRUDEOIL`` + 1 -> ``MCX:CRUDEOIL1!``).  ``interval``
        is an :class:`~tvadapter.interval.Interval` or a resolution code (``"1H"``, ``"60"``,
        ``"D"``...).  ``n_bars`` (>= 1) newest bars, fetched over as many rounds as needed;
        fewer only when the server has no more (history start or the plan's cap).  Or a date
        range: ``start`` (and optionally ``end``, default now): datetimes (naive = UTC),
        dates, ISO strings or epoch seconds; every bar whose open time is in
        ``[start, end]`` is returned (a range longer than the plan's bar cap is loaded in
        parts) and ``n_bars`` is ignored.  ``timeout`` bounds the whole
        call, retries included (default ``config.request_deadline``).

        Returns a DataFrame (see :mod:`tvadapter.history`: index ``datetime`` in UTC, oldest
        first, unique; columns ``symbol, open, high, low, close, volume``; volume NaN where the
        server sends none) -- possibly empty for a range without bars, never None.  Raises
        the typed errors of :mod:`tvadapter.errors`.
        """
        started = self._clock()
        self._metrics.add("requests")
        error: BaseException | None = None
        try:
            query = self._query(
                symbol, exchange, interval, n_bars, fut_contract, extended_session, start, end
            )
            result = self._get_hist(query, timeout)
            if result.exhausted and query.start is None:
                logger.info(
                    "%s: %d of %d bars (%s)",
                    query.symbol,
                    len(result),
                    query.n_bars,
                    "the plan's bar cap was reached"
                    if result.data_completed == "limit"
                    else "no older history",
                )
            frame = result_frame(result, copy=False)  # the result is dropped
            self._metrics.add("bars_received", len(frame))
            return frame
        except BaseException as exc:
            error = exc
            raise
        finally:
            self._metrics.finished(self._clock() - started, error)

    #: Fetch many series at once over this client's connection, inside its rate limiter:
    #: ``client.get_hist_many(requests, *, max_concurrency=, progress=, ...)`` -> ``BulkResult``
    #: (one failing symbol does not fail the batch).  See :func:`tvadapter._bulk.get_hist_many`.
    get_hist_many = _bulk.get_hist_many

    def search_symbol(self, text: str, exchange: str = "") -> list[dict[str, Any]]:
        """Search TradingView's symbols (v3 API with the Origin/Referer it requires).

        Returns the result dicts (``symbol``, ``description``, ``type``, ``exchange``...,
        plus ``full_symbol`` ready for :meth:`get_hist`).  Failures raise typed errors (never
        the ``[]`` tvDatafeed returned for them).
        """
        return _search.search_symbol(self._config, text, exchange, clock=self._clock)

    def metrics(self) -> ClientMetrics:
        """Counters and latency statistics of this client (an immutable snapshot)."""
        stats = self._shared.manager.stats()
        return self._metrics.snapshot(
            connections=stats.connects,
            connections_lost=stats.connections_lost,
            heartbeats_echoed=stats.heartbeats_echoed,
            circuit_state=self._breaker.state.value,
        )

    def close(self) -> None:
        """Disconnect and stop the reader thread (idempotent, any thread)."""
        self._finalizer()

    def __enter__(self) -> TvDatafeed:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        who = "anonymous" if self._auth.is_anonymous else "signed in"
        state = "closed" if self.closed else "open"
        return f"<TvDatafeed {who} {state}>"

    # -- the request ---------------------------------------------------------------------

    def _query(  # noqa: PLR0917 - get_hist's arguments, checked
        self,
        symbol: str,
        exchange: str,
        interval: Interval | str,
        n_bars: int,
        fut_contract: int | None,
        extended_session: bool,
        start: object,
        end: object,
    ) -> _Query:
        full_symbol = format_symbol(symbol, exchange, fut_contract)
        code = resolution(interval)
        if isinstance(n_bars, bool) or not isinstance(n_bars, int) or n_bars < 1:
            raise ConfigurationError(f"n_bars: must be an int >= 1, got {n_bars!r}")
        if not isinstance(extended_session, bool):
            raise ConfigurationError("extended_session: must be a bool")
        start_s: float | None = None
        end_s: float | None = None
        if start is not None:
            start_s = _to_epoch(start, "start")
            end_s = _to_epoch(end, "end") if end is not None else self._wall_clock()
            if start_s > end_s:
                raise ConfigurationError("start: must not be after end")
        elif end is not None:
            raise ConfigurationError("end: needs a start (a date range is start..end)")
        return _Query(full_symbol, code, n_bars, start_s, end_s, session_name(extended_session))

    def _get_hist(self, query: _Query, timeout: float | None) -> HistoryResult:
        if self._shared.closed:
            raise TvConnectionError("the client is closed")
        if timeout is not None and (
            isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0
        ):
            raise ConfigurationError(f"timeout: must be > 0 seconds, got {timeout!r}")
        budget = Deadline(
            timeout if timeout is not None else self._config.request_deadline, clock=self._clock
        )
        result = self._fetch(query, budget)
        if query.start is not None:
            result = self._rest_of_range(query, result, budget)
        return result

    def _rest_of_range(
        self, query: _Query, result: HistoryResult, budget: Deadline
    ) -> HistoryResult:
        """Complete a range the plan's bar cap cut short.

        A range holding more bars than the cap comes back as its newest ``cap`` bars, the load
        stopped by the cap (``data_completed`` other than ``"end"``).  The server still serves
        the older part when asked for it as a range of its own (tvkit's segmenting, PROTOCOL
        §13), so ask for ``[start, oldest - 1]`` until the range start is covered, the server
        says history ended, or a part brings nothing (logged as a warning when the server
        said "limit": a cap in time, not only in count).  Each part is a checked request of its
        own (retries, rate limiter, one deadline for all); parts never overlap, so the result
        is one series, oldest first.
        """
        assert query.start is not None
        parts = [result]
        part = result
        while (
            part.exhausted
            and part.data_completed != "end"
            and len(part) > 0
            and part.times[0] > query.start
        ):
            oldest = float(part.times[0])
            logger.info(
                "%s: the bar cap cut the range at %s; loading the older part",
                query.symbol,
                datetime.fromtimestamp(oldest, tz=timezone.utc).isoformat(),
            )
            part = self._fetch(dataclasses.replace(query, end=oldest - 1.0), budget)
            parts.append(part)
            if len(part) == 0 and part.data_completed == "limit":
                logger.warning(
                    "%s: the server serves no bars before %s (its bar cap): the range is "
                    "returned from there",
                    query.symbol,
                    datetime.fromtimestamp(oldest, tz=timezone.utc).isoformat(),
                )
        if len(parts) == 1:
            return result
        return HistoryResult(
            symbol=result.symbol,
            resolution=result.resolution,
            data=np.concatenate([p.data for p in reversed(parts)]),
            exhausted=part.exhausted,
            rounds=sum(p.rounds for p in parts),
            data_completed=part.data_completed,
            symbol_info=result.symbol_info,
        )

    def _fetch(self, query: _Query, budget: Deadline) -> HistoryResult:
        """One checked history request, with retries, within ``budget``."""
        full_symbol = query.symbol
        refreshed = False
        lock = threading.Lock()

        def retryable(exc: BaseException) -> bool:
            nonlocal refreshed
            if self._shared.closed:
                return False
            if isinstance(exc, HeartbeatOnlySession):
                with lock:
                    if refreshed or not self._auth.credentials.can_sign_in:
                        return False
                    refreshed = True
                logger.warning("%s: only heartbeats came back; renewing the token", full_symbol)
                self._auth.invalidate(self._shared.token)
                self._metrics.add("token_refreshes")
                return True
            if isinstance(exc, (HandshakeForbidden, ServerProtocolError, TokenExpiredError)):
                return False
            return isinstance(
                exc,
                (
                    TvConnectionError,
                    TvTimeoutError,
                    RateLimitedError,
                    ProtocolError,
                    DataIncompleteError,
                ),
            )

        def before_sleep(record: AttemptRecord) -> None:
            self._metrics.add("retries")
            logger.info(
                "%s: attempt %d failed (%s: %s); retrying in %.2f s",
                full_symbol,
                record.number,
                type(record.exception).__name__,
                record.exception,
                record.next_wait or 0.0,
            )

        def on_giveup(record: AttemptRecord) -> None:
            logger.warning(
                "%s: giving up after %d attempt(s): %s: %s",
                full_symbol,
                record.number,
                type(record.exception).__name__,
                record.exception,
            )

        for attempt in retrying(
            on=retryable,
            attempts=self._config.max_retries + 1,
            deadline=budget,
            backoff=self._backoff,
            before_sleep=before_sleep,
            on_giveup=on_giveup,
            clock=self._clock,
            sleep=self._sleep,
            rng=self._rng,
            name=f"get_hist {full_symbol}",
        ):
            with attempt:
                self._metrics.add("attempts")
                try:
                    return self._attempt(query, budget)
                except TvError as exc:
                    self._metrics.error(exc)
                    raise
        raise AssertionError("unreachable: retrying() returns or raises")  # pragma: no cover

    def _attempt(self, query: _Query, budget: Deadline) -> HistoryResult:
        try:
            permit = self._breaker.acquire()
        except CircuitOpenError as exc:
            raise TvCircuitOpenError(
                f"too many connection failures: not calling TradingView for "
                f"{exc.retry_after:.1f} s",
                retry_after=exc.retry_after,
            ) from exc
        used: list[Router] = []
        try:
            result = self._run(query, budget, used)
        except BaseException as exc:
            if (
                used
                and isinstance(exc, (TvConnectionError, TvTimeoutError))
                and not used[0].claim_loss()
            ):
                # Another request on the same connection already counted its failure: one
                # broken or stuck connection is one failure, however many requests it carried.
                permit.release()
            else:
                permit.record(exc)
            raise
        permit.success()
        return result

    def _take_token(self, budget: Deadline) -> None:
        """One rate-limiter token, waiting at most what is left of the deadline."""
        limiter = self._limiter
        if limiter.try_acquire():
            return
        remaining = budget.remaining()
        wait = limiter.retry_after()
        if wait > remaining or not limiter.acquire(
            timeout=None if math.isinf(remaining) else remaining
        ):
            raise RateLimitedError(
                f"rate limit ({self._config.requests_per_minute}/min): no request slot within "
                "the deadline",
                retry_after=limiter.retry_after(),
            )
        logger.debug("rate limiter delayed a request by %.2f s", wait)
        self._metrics.waited(wait)

    def _run(self, query: _Query, budget: Deadline, used: list[Router]) -> HistoryResult:
        self._take_token(budget)
        router = self._connection(budget)
        used.append(router)
        chart_session = "cs_" + uuid.uuid4().hex[:12]
        inbox = router.register(chart_session)
        request = HistoryRequest(
            chart_session=chart_session,
            symbol=query.symbol,
            resolution=query.resolution,
            n_bars=query.n_bars,
            start=query.start,
            end=query.end,
            session=query.session,
            progress_timeout=self._config.progress_timeout,
            authenticated=not self._auth.is_anonymous,
            round_size=self._round_size,
        )
        clock = self._clock
        try:
            self._send(router, request.start(clock()), budget)
            self._metrics.add("rounds")
            while not request.finished:
                remaining = budget.remaining()
                if remaining <= 0:
                    raise TvTimeoutError(
                        f"{query.symbol}: no complete answer within the deadline "
                        f"({request.rounds} round(s), still loading)"
                    )
                now = clock()
                item = inbox.get(min(request.next_deadline() - now, remaining))
                now = clock()
                if item is None:
                    request.poll(now)
                    continue
                if isinstance(item, ConnectionLost):
                    request.connection_lost(item.error)
                    break
                out = request.receive(item, now)
                if out:
                    self._take_token(budget)
                    self._metrics.add("rounds")
                    self._send(router, out, budget)
            result = request.result()
        except TvTimeoutError as exc:
            self._after_timeout(router, request, exc)
            raise
        except TokenExpiredError:
            self._auth.invalidate(self._shared.token)
            self._drop(router, "the auth token was refused")
            raise
        finally:
            router.unregister(chart_session)
            if router.alive:
                try:
                    router.send(request.finish())
                except TvError as exc:
                    logger.debug("could not delete chart session %s: %s", chart_session, exc)
        return result

    @staticmethod
    def _send(router: Router, payloads: list[str], budget: Deadline) -> None:
        """Send on ``router``; a send failing because the connection is gone raises why it
        went, when the reader knows (a refused token, a malformed stream), not the close."""
        try:
            router.send(payloads)
        except ConnectionClosed as exc:
            reason = router.failure(wait=min(SERVER_ERROR_WAIT, budget.remaining()))
            if reason is None:
                raise
            raise reason from exc

    def _after_timeout(self, router: Router, request: HistoryRequest, exc: TvTimeoutError) -> None:
        """Drop the connection if it went silent (nothing for anybody since our last progress)."""
        last_progress = request.next_deadline() - request.progress_timeout
        if isinstance(exc, HeartbeatOnlySession) or router.last_data_at <= last_progress:
            self._drop(router, f"no data on the connection ({exc})")

    # -- the connection ------------------------------------------------------------------

    def _connection(self, budget: Deadline) -> Router:
        """A live router on a connection with our token set; connects when needed."""
        shared = self._shared
        while True:
            with shared.cond:
                if shared.closed:
                    raise TvConnectionError("the client is closed")
                router = shared.router
                if shared.connecting:
                    waited = shared.cond.wait(timeout=min(budget.remaining(), 1.0))
                    if not waited and budget.expired:
                        raise TvTimeoutError("no connection within the deadline")
                    continue
                if (
                    router is not None
                    and router.alive
                    and (router.inflight > 0 or not self._should_retire(router))
                ):
                    return router
                shared.router = None
                shared.connecting = True
            try:
                new = self._open(router, budget)
            except BaseException:
                with shared.cond:
                    shared.connecting = False
                    shared.cond.notify_all()
                raise
            with shared.cond:
                shared.connecting = False
                shared.cond.notify_all()
                # close() may have run while we connected (no lock was held).
                closing = _is_closed(shared)
                if not closing:
                    shared.router = new
            if closing:
                new.stop(join=CLOSE_JOIN_TIMEOUT)
                raise TvConnectionError("the client is closed")
            return new

    def _should_retire(self, router: Router) -> bool:
        """An idle router whose connection is too old, or reuse is off."""
        if not self._config.reuse_connections:
            return True
        age = self._shared.manager.connection_age()
        return age is not None and age >= self._config.max_connection_age

    def _open(self, old: Router | None, budget: Deadline) -> Router:
        """Retire ``old`` and set up a router on a (new) connection (caller set ``connecting``)."""
        manager = self._shared.manager
        if old is not None:
            if old.alive:
                logger.info("retiring connection %d", old.connection_id)
                manager.disconnect()
            old.stop(join=CLOSE_JOIN_TIMEOUT)
        remaining = budget.remaining()
        manager.ensure_connected(deadline=None if math.isinf(remaining) else remaining)
        token = self._auth.token()
        router = Router(manager, clock=self._clock)
        router.start()
        try:
            router.send([messages.set_auth_token(token)])
        except BaseException:
            manager.disconnect()
            router.stop(join=CLOSE_JOIN_TIMEOUT)
            raise
        with self._shared.cond:
            self._shared.token = token
        return router

    def _drop(self, router: Router, why: str) -> None:
        """Close ``router``'s connection (unless a newer one already replaced it)."""
        shared = self._shared
        with shared.cond:
            if shared.router is not router or shared.connecting:
                return
            shared.router = None
            shared.connecting = True
        try:
            if shared.manager.connection_id == router.connection_id:
                logger.warning("dropping connection %d: %s", router.connection_id, why)
                shared.manager.disconnect()
            router.stop(join=CLOSE_JOIN_TIMEOUT)
        finally:
            with shared.cond:
                shared.connecting = False
                shared.cond.notify_all()
