"""Client metrics: lifetime counters, plus windowed latency from a RequestTracker.

:class:`MetricsRecorder` is what the client updates as it works; :meth:`MetricsRecorder.snapshot`
returns an immutable :class:`ClientMetrics`.  Counters cover the client's whole life; the latency
percentiles, ``error_rate`` and ``recent_errors_by_kind`` cover the tracker's sliding window
(``window_seconds``, default 5 minutes).

Thread-safe: every method may be called from any thread (one lock around integer updates).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from types import MappingProxyType
from typing import Any

from resilience import _clock
from resilience.tracking import RequestTracker

__all__ = ["ClientMetrics", "MetricsRecorder"]

#: Window of the latency statistics, in seconds.
DEFAULT_METRICS_WINDOW = 300.0


@dataclass(frozen=True, slots=True)
class ClientMetrics:
    """A snapshot of a client's activity.

    Lifetime counters: ``requests`` (``get_hist`` calls), ``succeeded``, ``failed``,
    ``attempts`` (tries, retries included), ``retries``, ``rounds`` (``create_series`` and
    ``request_more_data`` rounds sent), ``bars_received`` (bars returned to callers),
    ``connections`` (connections this client set up), ``reconnects`` (``connections - 1``),
    ``connections_lost`` (ended by the server or the network), ``heartbeats_echoed``,
    ``token_refreshes``, ``rate_limited`` (times the rate limiter made a request wait) and
    ``rate_limit_wait`` (seconds waited), ``errors_by_kind`` (failed attempts per exception
    class name, whether retried or not).

    Window statistics (the last ``window`` seconds): ``p50``/``p90``/``p99``/``max_latency``
    (seconds per ``get_hist`` call, None before any), ``error_rate`` and
    ``recent_errors_by_kind`` (calls that failed, per error class name).
    ``circuit_state`` is the breaker's state now.  Immutable.
    """

    requests: int = 0
    succeeded: int = 0
    failed: int = 0
    attempts: int = 0
    retries: int = 0
    rounds: int = 0
    bars_received: int = 0
    connections: int = 0
    reconnects: int = 0
    connections_lost: int = 0
    heartbeats_echoed: int = 0
    token_refreshes: int = 0
    rate_limited: int = 0
    rate_limit_wait: float = 0.0
    errors_by_kind: Mapping[str, int] = field(default_factory=dict)
    window: float = DEFAULT_METRICS_WINDOW
    p50: float | None = None
    p90: float | None = None
    p99: float | None = None
    max_latency: float | None = None
    error_rate: float = 0.0
    recent_errors_by_kind: Mapping[str, int] = field(default_factory=dict)
    circuit_state: str = "closed"

    def as_dict(self) -> dict[str, Any]:
        """Plain ``dict`` of every field (mappings copied to plain dicts)."""
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["errors_by_kind"] = dict(self.errors_by_kind)
        data["recent_errors_by_kind"] = dict(self.recent_errors_by_kind)
        return data


class MetricsRecorder:
    """Counters and a latency tracker for one client (see the module docstring).

    Thread-safe.
    """

    def __init__(
        self,
        *,
        window_seconds: float = DEFAULT_METRICS_WINDOW,
        clock: Callable[[], float] = _clock.monotonic,
    ) -> None:
        self.tracker = RequestTracker(window_seconds, clock=clock)
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}
        self._errors: dict[str, int] = {}
        self._rate_limit_wait = 0.0

    def add(self, name: str, amount: int = 1) -> None:
        """Add ``amount`` to counter ``name``."""
        with self._lock:
            self._counts[name] = self._counts.get(name, 0) + amount

    def error(self, exc: BaseException) -> None:
        """Count one failed attempt by exception class name."""
        kind = type(exc).__name__
        with self._lock:
            self._errors[kind] = self._errors.get(kind, 0) + 1

    def waited(self, seconds: float) -> None:
        """The rate limiter made a request wait ``seconds``."""
        with self._lock:
            self._counts["rate_limited"] = self._counts.get("rate_limited", 0) + 1
            self._rate_limit_wait += seconds

    def finished(self, latency: float, error: BaseException | None) -> None:
        """One ``get_hist`` call ended after ``latency`` seconds (``error`` if it failed)."""
        self.tracker.record(
            max(0.0, latency),
            ok=error is None,
            kind=None if error is None else type(error).__name__,
        )
        self.add("succeeded" if error is None else "failed")

    def count(self, name: str) -> int:
        """Current value of counter ``name``."""
        with self._lock:
            return self._counts.get(name, 0)

    def snapshot(
        self,
        *,
        connections: int = 0,
        connections_lost: int = 0,
        heartbeats_echoed: int = 0,
        circuit_state: str = "closed",
    ) -> ClientMetrics:
        """Immutable :class:`ClientMetrics` now (connection figures come from the manager)."""
        window = self.tracker.snapshot()
        with self._lock:
            counts = dict(self._counts)
            errors = dict(self._errors)
            waited = self._rate_limit_wait
        return ClientMetrics(
            requests=counts.get("requests", 0),
            succeeded=counts.get("succeeded", 0),
            failed=counts.get("failed", 0),
            attempts=counts.get("attempts", 0),
            retries=counts.get("retries", 0),
            rounds=counts.get("rounds", 0),
            bars_received=counts.get("bars_received", 0),
            connections=connections,
            reconnects=max(0, connections - 1),
            connections_lost=connections_lost,
            heartbeats_echoed=heartbeats_echoed,
            token_refreshes=counts.get("token_refreshes", 0),
            rate_limited=counts.get("rate_limited", 0),
            rate_limit_wait=waited,
            errors_by_kind=MappingProxyType(errors),
            window=window.window,
            p50=window.p50,
            p90=window.p90,
            p99=window.p99,
            max_latency=window.max_latency,
            error_rate=window.error_rate,
            recent_errors_by_kind=MappingProxyType(dict(window.errors_by_kind)),
            circuit_state=circuit_state,
        )
