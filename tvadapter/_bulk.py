"""Bulk download: :func:`get_hist_many` fetches many series at once through one client.

Theory of operation
-------------------
A batch is a list of requests (:class:`HistRequest`, ``(symbol, exchange, interval, n_bars)``
tuples, mappings, or plain ``"EX:SYM"`` strings that take the batch's defaults).  They are
validated up front (a malformed request is a usage error and fails the whole call before any
I/O), given stable keys (see :func:`normalize_requests`), and handed to at most
``max_concurrency`` worker threads.  Each worker repeatedly:

1. takes the next request (request order);
2. waits for *admission*: a slot in the client's rate limiter (see below);
3. calls the client's ``get_hist`` -- so every request runs through the client's whole stack:
   circuit breaker, rate limiter, retries with backoff, integrity checks;
4. records a :class:`BulkItem` (the DataFrame, or the exception) with its timings.

Concurrency comes from the client: :class:`~tvadapter.TvDatafeed` multiplexes requests from
many threads over **one** connection, each request in its **own chart session** (so
TradingView's anonymous rule of one series per chart session holds), and deletes the chart
session afterwards.  One connection also respects any account's ``max_connections`` (2 on a free
plan).  The rate limiter is the client's own (``requests_per_minute`` / ``burst_size``): a bulk
download can never go faster than the limit the client enforces for single calls.

Admission: before calling ``get_hist`` a worker waits, interruptibly, until the client's
limiter could grant a token now (one worker at a time waits at the gate; the others queue
behind it).  The token itself is still taken by ``get_hist``.  This keeps the waiting in this
module, where a cancellation (Ctrl-C) can stop it at once, instead of inside the limiter where
it cannot be interrupted; the waits are reported per item (``BulkItem.waited``) and in total.

Failures are per item: an unknown symbol (:class:`~tvadapter.errors.SymbolNotFoundError`), a
refused series, data that fails the integrity checks, a timeout -- each is kept, typed, in
:attr:`BulkResult.failed`, and the rest of the batch carries on.  When the service is down, the
client's circuit breaker opens and the remaining items fail fast with
:class:`~tvadapter.errors.TvCircuitOpenError` instead of each retrying for its whole deadline.

Progress is reported from the calling thread (never from a worker), after each item: a ``tqdm``
bar on a terminal (the optional ``progress`` extra), a plain text fallback, or your callable.

Cancellation: a ``KeyboardInterrupt`` in the calling thread (or an exception raised by the
progress callable) stops the batch: no new request starts, the ones in flight (at most
``max_concurrency``) are waited for up to ``cancel_timeout`` seconds, then the exception
propagates.  A request still running after that ends on its own when its ``get_hist`` returns
(its worker is a daemon thread and records nothing); closing the client ends it at once.

Thread-safety: :func:`get_hist_many` may be called from several threads at once, on one client
or several; each call has its own workers.  :class:`HistRequest`, :class:`BulkItem` and
:class:`BulkResult` are immutable (the DataFrames they hold are the caller's to mutate).
"""

from __future__ import annotations

import contextlib
import logging
import math
import queue
import shutil
import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import IO, Any, Protocol, TypeAlias

import pandas as pd

from resilience import _clock

from ._symbols import format_symbol
from .errors import ConfigurationError
from .interval import Interval, resolution

__all__ = [
    "DEFAULT_CANCEL_TIMEOUT",
    "DEFAULT_MAX_CONCURRENCY",
    "BulkItem",
    "BulkResult",
    "HistRequest",
    "ProgressCallback",
    "RequestSpec",
    "get_hist_many",
    "normalize_requests",
]

logger = logging.getLogger(__name__)

#: Requests in flight at once by default.  The rate limiter, not this, sets the pace; 8 keeps
#: the latency of several requests overlapped without opening dozens of chart sessions at once.
DEFAULT_MAX_CONCURRENCY = 8
#: Seconds a cancelled batch waits for the requests already in flight.
DEFAULT_CANCEL_TIMEOUT = 10.0
#: How often a waiting thread re-checks for cancellation (seconds).
_POLL = 0.2
#: How long a cancelled batch waits for a worker whose ``Thread.start()`` was interrupted to
#: show up as started (seconds; see ``_Batch.start``).
_LAUNCH_GRACE = 1.0


@dataclass(frozen=True, slots=True)
class HistRequest:
    """One series to fetch: the arguments of ``TvDatafeed.get_hist``, as a value.

    Fields left ``None`` take the batch's defaults (``exchange``, ``interval``, ``n_bars``,
    ``start``, ``end`` of :func:`get_hist_many`).  ``key`` names the result (default: the
    ``"EX:SYM"`` symbol, see :func:`normalize_requests`).  Immutable and hashable.
    """

    symbol: str
    exchange: str | None = None
    interval: Interval | str | None = None
    n_bars: int | None = None
    fut_contract: int | None = None
    extended_session: bool = False
    start: Any = None
    end: Any = None
    key: str | None = None

    @classmethod
    def parse(cls, spec: RequestSpec) -> HistRequest:
        """A request from a :class:`HistRequest`, a string (``"EX:SYM"`` or a bare symbol),
        a tuple ``(symbol[, exchange[, interval[, n_bars]]])`` or a mapping of field names."""
        if isinstance(spec, HistRequest):
            return spec
        if isinstance(spec, str):
            return cls(spec)
        if isinstance(spec, tuple):
            if not 1 <= len(spec) <= 4:
                raise ConfigurationError(
                    "requests: a tuple must be (symbol[, exchange[, interval[, n_bars]]]), "
                    f"got {len(spec)} items: {spec!r}"
                )
            return cls(*spec)
        if isinstance(spec, Mapping):
            unknown = set(spec) - set(cls.__dataclass_fields__)
            if unknown:
                raise ConfigurationError(
                    f"requests: unknown request field(s) {sorted(map(str, unknown))}"
                )
            return cls(**spec)
        raise ConfigurationError(
            "requests: expected HistRequest, 'EX:SYM' strings, tuples or mappings, "
            f"got {type(spec).__name__}"
        )

    @property
    def full_symbol(self) -> str:
        """``"EX:SYM"`` as sent to the server (tvDatafeed's formatting rules)."""
        return format_symbol(self.symbol, self.exchange or "NSE", self.fut_contract)


#: What :func:`get_hist_many` accepts as one request.
RequestSpec: TypeAlias = "HistRequest | str | tuple[Any, ...] | Mapping[str, Any]"


@dataclass(frozen=True, slots=True, eq=False)
class BulkItem:
    """The outcome of one request of a batch.

    ``frame`` is the DataFrame (``error`` None) or ``error`` the exception it raised (``frame``
    None).  ``started``: seconds after the batch began when ``get_hist`` was called;
    ``elapsed``: seconds it took; ``waited``: seconds spent waiting for the rate limiter before
    it.  Immutable.
    """

    key: str
    request: HistRequest
    frame: pd.DataFrame | None = None
    error: BaseException | None = None
    started: float = 0.0
    elapsed: float = 0.0
    waited: float = 0.0

    @property
    def ok(self) -> bool:
        """True when the request returned data."""
        return self.error is None

    @property
    def bars(self) -> int:
        """Rows received (0 for a failure)."""
        return 0 if self.frame is None else len(self.frame)

    @property
    def outcome(self) -> str:
        """``"ok"`` or the error's class name."""
        return "ok" if self.error is None else type(self.error).__name__

    def result(self) -> pd.DataFrame:
        """The DataFrame, or raise the request's error."""
        if self.error is not None:
            raise self.error
        assert self.frame is not None
        return self.frame


@dataclass(frozen=True, slots=True, eq=False)
class BulkResult:
    """What :func:`get_hist_many` returns: one :class:`BulkItem` per request, in request order.

    ``result.ok`` maps key -> DataFrame for the successes, ``result.failed`` key -> exception
    (typed :mod:`tvadapter.errors`) for the failures; ``result[key]`` is the DataFrame or raises
    the item's error; iterating yields the items; ``len(result)`` counts them.  ``elapsed`` is
    the batch's wall time in seconds.  Immutable.
    """

    items: tuple[BulkItem, ...] = ()
    elapsed: float = 0.0
    max_concurrency: int = 0
    _index: Mapping[str, BulkItem] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_index", {item.key: item for item in self.items})

    @property
    def ok(self) -> dict[str, pd.DataFrame]:
        """Key -> DataFrame of every request that succeeded (request order)."""
        return {i.key: i.frame for i in self.items if i.frame is not None and i.error is None}

    @property
    def failed(self) -> dict[str, BaseException]:
        """Key -> exception of every request that failed (request order)."""
        return {i.key: i.error for i in self.items if i.error is not None}

    @property
    def all_ok(self) -> bool:
        """True when no request failed."""
        return all(i.ok for i in self.items)

    @property
    def bars(self) -> int:
        """Rows received in total."""
        return sum(i.bars for i in self.items)

    @property
    def rate_limit_wait(self) -> float:
        """Seconds the requests waited for the rate limiter, summed over the items."""
        return sum(i.waited for i in self.items)

    def keys(self) -> list[str]:
        """The keys, in request order."""
        return [i.key for i in self.items]

    def errors_by_kind(self) -> dict[str, int]:
        """Failures per exception class name."""
        return dict(Counter(type(i.error).__name__ for i in self.items if i.error is not None))

    def concat(self) -> pd.DataFrame:
        """Every successful frame stacked in request order (the ``symbol`` column tells them
        apart); an empty history-shaped frame when nothing succeeded."""
        frames = [f for f in self.ok.values() if len(f)]
        if not frames:
            from .history import empty_frame  # noqa: PLC0415 - only needed in this corner

            return empty_frame()
        return pd.concat(frames)

    def summary(self) -> str:
        """One line: successes, failures by kind, bars, wall time."""
        failed = self.errors_by_kind()
        parts = [f"{len(self.items) - sum(failed.values())}/{len(self.items)} ok"]
        if failed:
            kinds = ", ".join(f"{kind} x{n}" for kind, n in sorted(failed.items()))
            parts.append(f"{sum(failed.values())} failed ({kinds})")
        parts.append(f"{self.bars:,} bars in {self.elapsed:.2f} s")
        if self.rate_limit_wait > 0:
            parts.append(f"{self.rate_limit_wait:.2f} s waited for the rate limiter")
        return ", ".join(parts)

    def __iter__(self) -> Iterator[BulkItem]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    def __contains__(self, key: object) -> bool:
        return key in self._index

    def __getitem__(self, key: str) -> pd.DataFrame:
        """The DataFrame for ``key``, or raise that request's error (KeyError if unknown)."""
        return self._index[key].result()

    def __repr__(self) -> str:
        return f"<BulkResult {self.summary()}>"


class ProgressCallback(Protocol):
    """``progress(done, total, key, item)``: called in the calling thread after each item."""

    def __call__(self, done: int, total: int, key: str, item: BulkItem) -> object: ...


class _Client(Protocol):
    """What the bulk path needs from a client (``TvDatafeed`` provides it)."""

    def get_hist(  # noqa: PLR0917 - tvDatafeed's signature
        self,
        symbol: str,
        exchange: str = ...,
        interval: Interval | str = ...,
        n_bars: int = ...,
        fut_contract: int | None = ...,
        extended_session: bool = ...,
        *,
        start: object = ...,
        end: object = ...,
        timeout: float | None = ...,
    ) -> pd.DataFrame: ...


class _Limiter(Protocol):
    def retry_after(self, tokens: float = 1) -> float: ...


def _limiter_of(client: object) -> _Limiter | None:
    """The client's rate limiter, if it has one we can ask about waits (package-internal)."""
    for name in ("rate_limiter", "_limiter"):
        limiter = getattr(client, name, None)
        if limiter is not None and callable(getattr(limiter, "retry_after", None)):
            return limiter  # type: ignore[no-any-return]
    return None


# --------------------------------------------------------------------------------------------
# Requests
# --------------------------------------------------------------------------------------------


def normalize_requests(
    requests: Iterable[RequestSpec] | RequestSpec,
    *,
    exchange: str = "NSE",
    interval: Interval | str = Interval.in_daily,
    n_bars: int = 10,
    start: object = None,
    end: object = None,
) -> list[HistRequest]:
    """Validated, fully specified requests with unique keys, in order.

    Missing fields take the defaults given here.  Keys: the ``"EX:SYM"`` symbol; when several
    requests share a symbol, ``"EX:SYM@<interval>"`` for each of them; an explicit ``key`` is
    kept as given.  Identical requests are fetched once.  Two different requests that would get
    the same key raise :class:`~tvadapter.errors.ConfigurationError` (give them ``key=``).
    Bad symbols, intervals or bar counts raise ``ConfigurationError`` too.
    """
    if isinstance(requests, (str, HistRequest, tuple, Mapping)):
        requests = [requests]
    if not isinstance(exchange, str) or not exchange.strip():
        raise ConfigurationError(f"exchange: expected a non-empty string, got {exchange!r}")
    default_resolution = resolution(interval)
    _check_n_bars(n_bars, "n_bars")
    resolved: list[HistRequest] = []
    seen: set[HistRequest] = set()
    for position, spec in enumerate(requests):
        request = HistRequest.parse(spec)
        try:
            full = format_symbol(request.symbol, request.exchange or exchange, request.fut_contract)
            code = default_resolution if request.interval is None else resolution(request.interval)
            count = n_bars if request.n_bars is None else request.n_bars
            _check_n_bars(count, "n_bars")
        except ConfigurationError as exc:
            raise ConfigurationError(f"requests[{position}]: {exc}") from None
        if not isinstance(request.extended_session, bool):
            raise ConfigurationError(f"requests[{position}]: extended_session must be a bool")
        if request.key is not None and (not isinstance(request.key, str) or not request.key):
            raise ConfigurationError(f"requests[{position}]: key must be a non-empty string")
        # The full symbol carries the exchange and contract: send it as is.
        filled = replace(
            request,
            symbol=full,
            exchange=full.split(":", 1)[0],
            fut_contract=None,
            interval=code,
            n_bars=count,
            start=start if request.start is None and request.end is None else request.start,
            end=end if request.start is None and request.end is None else request.end,
        )
        try:
            if filled in seen:
                continue
            seen.add(filled)
        except TypeError:  # unhashable start/end: keep it, it cannot be a known duplicate
            pass
        resolved.append(filled)
    by_symbol = Counter(r.symbol for r in resolved if r.key is None)
    keyed: list[HistRequest] = []
    taken: dict[str, int] = {}
    for position, request in enumerate(resolved):
        key = request.key
        if key is None:
            key = request.symbol
            if by_symbol[request.symbol] > 1:
                key = f"{request.symbol}@{request.interval}"
        if key in taken:
            raise ConfigurationError(
                f"requests[{position}]: two different requests for {key!r}; give them key="
            )
        taken[key] = position
        keyed.append(replace(request, key=key))
    return keyed


def _check_n_bars(value: object, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigurationError(f"{name}: must be an int >= 1, got {value!r}")


# --------------------------------------------------------------------------------------------
# Progress
# --------------------------------------------------------------------------------------------


class _Reporter(Protocol):
    def update(self, done: int, total: int, item: BulkItem) -> None: ...

    def close(self) -> None: ...


class _CallbackReporter:
    def __init__(self, callback: ProgressCallback) -> None:
        self._callback = callback

    def update(self, done: int, total: int, item: BulkItem) -> None:
        self._callback(done, total, item.key, item)

    def close(self) -> None:
        pass


class _TqdmReporter:
    def __init__(self, tqdm_class: Any, total: int, stream: IO[str]) -> None:
        # A pseudo-terminal without a size (0 x 0) would make tqdm draw nothing.
        shape = shutil.get_terminal_size((0, 0))
        size: dict[str, Any] = (
            {"dynamic_ncols": True} if shape.columns > 0 and shape.lines > 0 else
            {"ncols": 80, "nrows": 24}
        )  # fmt: skip
        self._bar = tqdm_class(total=total, file=stream, unit="series", desc="downloading", **size)
        self._failed = 0

    def update(self, done: int, total: int, item: BulkItem) -> None:
        if not item.ok:
            self._failed += 1
        status = f"{item.key} {item.outcome}"
        if self._failed:
            status += f" | failed: {self._failed}"
        self._bar.set_postfix_str(status, refresh=False)
        self._bar.update(1)

    def close(self) -> None:
        self._bar.close()


class _TextReporter:
    """Minimal progress without tqdm: one rewritten line on a terminal, else a line per item."""

    def __init__(self, stream: IO[str], tty: bool) -> None:
        self._stream = stream
        self._tty = tty
        self._failed = 0
        self._width = 0

    def update(self, done: int, total: int, item: BulkItem) -> None:
        if not item.ok:
            self._failed += 1
        what = f"{item.bars} bars" if item.ok else item.outcome
        line = f"[{done}/{total}] {item.key}: {what}"
        if self._failed:
            line += f" (failed so far: {self._failed})"
        if self._tty:
            padded = line.ljust(self._width)
            self._width = len(line)
            self._stream.write("\r" + padded)
        else:
            self._stream.write(line + "\n")
        self._stream.flush()

    def close(self) -> None:
        if self._tty and self._width:
            self._stream.write("\n")
            self._stream.flush()


def _isatty(stream: IO[str]) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


def _tqdm_class() -> Any:
    try:
        from tqdm import tqdm  # noqa: PLC0415 - optional extra
    except ImportError:
        return None
    return tqdm


def _reporter(
    progress: bool | ProgressCallback | None, total: int, stream: IO[str] | None
) -> _Reporter | None:
    """The progress display ``progress`` asks for (see :func:`get_hist_many`)."""
    if progress is False:
        return None
    if progress is None or progress is True:
        stream = stream if stream is not None else sys.stderr
        tty = _isatty(stream)
        if progress is None and not tty:
            return None
        tqdm_class = _tqdm_class()
        if tqdm_class is not None:
            return _TqdmReporter(tqdm_class, total, stream)
        return _TextReporter(stream, tty)
    return _CallbackReporter(progress)


# --------------------------------------------------------------------------------------------
# The batch
# --------------------------------------------------------------------------------------------


class _Batch:
    """Workers, their shared queue and the admission gate of one get_hist_many call.

    Thread-safety: the work queue, result queue, gate and stop event are thread-safe
    primitives; no lock is held while calling the client or user code.
    """

    def __init__(
        self,
        client: _Client,
        requests: list[HistRequest],
        concurrency: int,
        timeout: float | None,
        clock: Callable[[], float],
    ) -> None:
        self.client = client
        self.limiter = _limiter_of(client)
        self.clock = clock
        self.timeout = timeout
        self.began = clock()
        self.stop = threading.Event()
        self.work: queue.SimpleQueue[HistRequest] = queue.SimpleQueue()
        for request in requests:
            self.work.put(request)
        self.results: queue.SimpleQueue[BulkItem] = queue.SimpleQueue()
        # The admission baton: one worker at a time waits for the limiter (see module doc).
        self.gate = threading.Semaphore(1)
        self.threads = [
            threading.Thread(target=self._worker, name=f"tvadapter-bulk-{n}", daemon=True)
            for n in range(1, concurrency + 1)
        ]
        self.launched: list[threading.Thread] = []  # start() was called (see start())
        self.started = 0  # how many of those start() calls returned

    def start(self) -> None:
        """Start the workers.

        A Ctrl-C can land *inside* ``Thread.start()`` (the CLI's batch is interrupted as it
        begins): before the OS thread was launched (it never runs) or after, while ``start()``
        waits for the new thread to mark itself started (it runs a moment later, finds
        ``stop`` set and leaves).  So each thread is recorded in ``launched`` before its
        ``start()``, and ``started`` counts the calls that returned; :meth:`join` handles the
        one thread in between.
        """
        for thread in self.threads:
            self.launched.append(thread)
            thread.start()
            self.started += 1

    def alive(self) -> bool:
        return any(t.is_alive() for t in self.launched)

    def join(self, timeout: float | None) -> list[str]:
        """Join the workers (within ``timeout`` seconds overall); names of those still alive."""
        now = _clock.monotonic  # real time even when a test injected ``clock``
        deadline = None if timeout is None else now() + timeout
        for position, thread in enumerate(self.launched):
            if position < self.started:
                thread.join(None if deadline is None else max(0.0, deadline - now()))
            else:
                self._join_interrupted(thread, deadline)
        return [t.name for t in self.launched if t.is_alive()]

    def _join_interrupted(self, thread: threading.Thread, deadline: float | None) -> None:
        """Join a worker whose ``start()`` was interrupted: it may be about to run, or never.

        ``Thread.join`` refuses (RuntimeError) until the new thread has marked itself started;
        give it up to :data:`_LAUNCH_GRACE` seconds to do so, then join it like the others.
        A thread that was never launched costs that grace once (only on this Ctrl-C path).
        """
        now = _clock.monotonic
        limit = now() + _LAUNCH_GRACE
        if deadline is not None:
            limit = min(limit, deadline)
        while True:
            try:
                thread.join(None if deadline is None else max(0.0, deadline - now()))
            except RuntimeError:  # "cannot join thread before it is started": not marked yet
                if now() >= limit:
                    logger.debug("bulk: worker %s was never launched", thread.name)
                    return
                _clock.sleep(0.005)
            else:
                return

    def _admit(self) -> float | None:
        """Wait until the limiter could grant a token now; seconds waited, None if stopped."""
        if self.stop.is_set():
            return None
        limiter = self.limiter
        if limiter is None:
            return 0.0
        began = self.clock()
        while not self.gate.acquire(timeout=_POLL):
            if self.stop.is_set():
                return None
        try:
            while True:
                if self.stop.is_set():
                    return None
                wait = limiter.retry_after()
                if not wait > 0:
                    break
                self.stop.wait(min(wait, 60.0))
        finally:
            self.gate.release()
        return self.clock() - began

    def _worker(self) -> None:
        while not self.stop.is_set():
            try:
                request = self.work.get_nowait()
            except queue.Empty:
                return
            waited = self._admit()
            if waited is None:
                return
            started = self.clock()
            key = request.key or request.symbol
            try:
                frame = self.client.get_hist(
                    request.symbol,
                    request.exchange or "NSE",
                    request.interval or Interval.in_daily,
                    request.n_bars or 10,
                    None,
                    request.extended_session,
                    start=request.start,
                    end=request.end,
                    timeout=self.timeout,
                )
            except BaseException as exc:  # kept in the result, typed, never lost
                item = BulkItem(
                    key,
                    request,
                    error=exc,
                    started=started - self.began,
                    elapsed=self.clock() - started,
                    waited=waited,
                )
                logger.info("bulk: %s failed: %s: %s", key, type(exc).__name__, exc)
            else:
                item = BulkItem(
                    key,
                    request,
                    frame=frame,
                    started=started - self.began,
                    elapsed=self.clock() - started,
                    waited=waited,
                )
                logger.debug("bulk: %s: %d bars in %.3f s", key, len(frame), item.elapsed)
            self.results.put(item)


def get_hist_many(
    client: _Client,
    requests: Iterable[RequestSpec] | RequestSpec,
    *,
    max_concurrency: int | None = None,
    progress: bool | ProgressCallback | None = None,
    exchange: str = "NSE",
    interval: Interval | str = Interval.in_daily,
    n_bars: int = 10,
    start: object = None,
    end: object = None,
    timeout: float | None = None,
    cancel_timeout: float = DEFAULT_CANCEL_TIMEOUT,
    progress_stream: IO[str] | None = None,
    clock: Callable[[], float] = _clock.monotonic,
) -> BulkResult:
    """Fetch many series at once through ``client`` (see the module docstring).

    ``requests``: :class:`HistRequest` objects, ``"EX:SYM"`` strings, ``(symbol, exchange,
    interval, n_bars)`` tuples (trailing items optional) or mappings; fields not given take
    ``exchange`` / ``interval`` / ``n_bars`` / ``start`` / ``end`` from here.
    ``max_concurrency``: requests in flight at once (default :data:`DEFAULT_MAX_CONCURRENCY`).
    ``progress``: ``None`` (a bar on a terminal, nothing otherwise), ``True`` (always, on
    ``progress_stream``, default stderr), ``False`` (never) or a callable
    ``(done, total, key, item)``.  ``timeout``: per request, as ``get_hist``'s.
    ``cancel_timeout``: how long an interrupted batch waits for the requests in flight.

    Returns a :class:`BulkResult`; a failing request never fails the batch.  Raises
    :class:`~tvadapter.errors.ConfigurationError` for malformed requests or arguments (before
    any I/O), and re-raises ``KeyboardInterrupt`` or an exception of the progress callable
    after cancelling the batch.
    """
    if max_concurrency is None:
        max_concurrency = DEFAULT_MAX_CONCURRENCY
    if isinstance(max_concurrency, bool) or not isinstance(max_concurrency, int):
        raise ConfigurationError(f"max_concurrency: must be an int >= 1, got {max_concurrency!r}")
    if max_concurrency < 1:
        raise ConfigurationError(f"max_concurrency: must be an int >= 1, got {max_concurrency!r}")
    if isinstance(cancel_timeout, bool) or not isinstance(cancel_timeout, (int, float)):
        raise ConfigurationError(f"cancel_timeout: must be >= 0 seconds, got {cancel_timeout!r}")
    if not (cancel_timeout >= 0 and math.isfinite(cancel_timeout)):
        raise ConfigurationError(f"cancel_timeout: must be >= 0 seconds, got {cancel_timeout!r}")
    if progress is not None and not isinstance(progress, bool) and not callable(progress):
        raise ConfigurationError(
            f"progress: expected True, False, None or a callable, got {type(progress).__name__}"
        )
    items = normalize_requests(
        requests, exchange=exchange, interval=interval, n_bars=n_bars, start=start, end=end
    )
    total = len(items)
    concurrency = min(max_concurrency, total)
    if total == 0:
        return BulkResult((), 0.0, 0)
    batch = _Batch(client, items, concurrency, timeout, clock)
    reporter = _reporter(progress, total, progress_stream)
    logger.info("bulk: %d request(s), %d at a time", total, concurrency)
    done: dict[str, BulkItem] = {}
    interrupted = True
    try:
        batch.start()
        while len(done) < total:
            try:
                item = batch.results.get(timeout=_POLL)
            except queue.Empty:
                if not batch.alive() and batch.results.empty():
                    raise RuntimeError(  # pragma: no cover - a worker died without a result
                        "bulk: workers ended before every request had a result"
                    ) from None
                continue
            done[item.key] = item
            if reporter is not None:
                reporter.update(len(done), total, item)
        interrupted = False
    finally:
        batch.stop.set()
        if reporter is not None:
            with contextlib.suppress(Exception):
                reporter.close()
        left = batch.join(cancel_timeout if interrupted else None)
        if left:
            logger.warning(
                "bulk: cancelled; %d request(s) still in flight end on their own", len(left)
            )
    result = BulkResult(
        tuple(done[r.key or r.symbol] for r in items),
        clock() - batch.began,
        concurrency,
    )
    logger.info("bulk: %s", result.summary())
    return result
