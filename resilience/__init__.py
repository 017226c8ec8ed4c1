"""resilience: retry with backoff, circuit breaker, token-bucket rate limiting, timeouts,
request tracking, composable, sync and asyncio."""

from __future__ import annotations

import logging

from .backoff import Backoff, Jitter
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
from .policy import Policy
from .ratelimit import RateLimiter, TokenBucket
from .retry import (
    Attempt,
    AttemptRecord,
    RetryBudget,
    Retrying,
    exponential_backoff_retry,
    retry,
    retrying,
)
from .timeout import Deadline, timeout
from .tracking import RequestTracker, TrackerSnapshot

__version__ = "0.1.0"

__all__ = [
    "Attempt",
    "AttemptRecord",
    "Backoff",
    "Deadline",
    "Jitter",
    "RetryBudget",
    "Retrying",
    "exponential_backoff_retry",
    "retry",
    "retrying",
    "timeout",
    "BackendUnavailable",
    "CircuitBreaker",
    "CircuitBreakerConfig",
    "CircuitOpenError",
    "CircuitState",
    "Policy",
    "DeadlineExceeded",
    "RateLimitExceeded",
    "ResilienceError",
    "RetryBudgetExhausted",
    "RetryError",
    "RateLimiter",
    "TokenBucket",
    "RequestTracker",
    "TrackerSnapshot",
    "__version__",
]

# A library leaves log output to the application (the logging HOWTO's advice).
logging.getLogger(__name__).addHandler(logging.NullHandler())
