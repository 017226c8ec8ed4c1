"""resilience: retry with backoff, circuit breaker, token-bucket rate limiting, timeouts,
request tracking, composable, sync and asyncio."""

from __future__ import annotations

from .circuit import CircuitBreaker, CircuitBreakerConfig, CircuitState
from .errors import (
    BackendUnavailable,
    CircuitOpenError,
    DeadlineExceeded,
    RateLimitExceeded,
    ResilienceError,
    RetryBudgetExhausted,
    RetryError,
)

__version__ = "0.1.0"

__all__ = [
    "BackendUnavailable",
    "CircuitBreaker",
    "CircuitBreakerConfig",
    "CircuitOpenError",
    "CircuitState",
    "DeadlineExceeded",
    "RateLimitExceeded",
    "ResilienceError",
    "RetryBudgetExhausted",
    "RetryError",
    "__version__",
]
