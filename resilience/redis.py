"""Redis backends: rate limits (and breaker state) shared across processes and machines.

Needs the optional ``redis`` package (``pip install 'tvadapter[redis]'``); importing this
module does not import it, creating a backend does.

Token buckets
-------------
Select by configuration, no code change::

    TokenBucket(50, 5, backend="redis://127.0.0.1:6379/0", name="tv")
    RateLimiter(60, 10, backend="redis://127.0.0.1:6379/0?on_unavailable=closed", name="tv")

or share one connection among many limits::

    shared = RedisBucketBackend("redis://127.0.0.1:6379/0", on_unavailable="local")
    a = TokenBucket(50, 5, backend=shared, name="tv-history")
    b = TokenBucket(5, 1, backend=shared, name="tv-search")

Same semantics and API as the in-memory bucket (``try_acquire``, ``acquire``,
``acquire_async``, decorator, the window bound): every decision is **one atomic Lua script,
one round trip** (``EVALSHA``; ``EVAL`` when the server lost its script cache).  The script
reads the time from the Redis server (``TIME``), so the clients' clocks may disagree; the
bucket lives in the key ``<key_prefix><name>`` (default prefix ``resilience:bucket:``) as one
number (the bucket's "empty at" time in server microseconds, see :mod:`resilience._bucket`)
with a ``PEXPIRE`` at the moment it would be full again, so an idle limit costs nothing and
vanishes.  All processes sharing a name must use the same rate and capacity.

A refused request gets the exact wait back; a blocked ``acquire`` sleeps that long and asks
again.  Within a process waiters are FIFO; between processes they are not (each process's
head competes), so the window bound holds globally but fairness is per process.

The bound is exact in server time: grants decided at server times ``t_i <= t_j`` satisfy
``sum(tokens) <= capacity + rate * (t_j - t_i)`` up to one microsecond of rate (the server
clock's resolution).  If the server's clock steps backwards, the stored state is clamped to
"empty now" (no burst is created by a clock step).  :meth:`RedisBucketBackend.last_server_time`
tells a thread the server time of its last decision.

When Redis is unreachable, the limiter's ``on_unavailable`` applies — ``"closed"`` raises
:class:`~resilience.BackendUnavailable`, ``"open"`` grants, ``"local"`` (default) uses an
in-process bucket with the same rate — and Redis is tried again after a short back-off
(0.05 s doubling to 2 s), so a dead server is not hammered.  Calls never outlive the
caller's ``timeout`` by more than 1 ms; ``try_acquire`` is bounded by the socket timeout
(0.25 s by default).  Details in :mod:`resilience._redis_common`.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable

from . import _clock
from ._redis_common import (
    DEFAULT_RECONNECT_INITIAL,
    DEFAULT_RECONNECT_MAX,
    FailMode,
    LuaScript,
    PreparedScript,
    RedisConnection,
    RedisSettings,
    parse_redis_url,
)

__all__ = ["FailMode", "RedisBucketBackend", "RedisSettings", "parse_redis_url"]

#: Default key prefix of token buckets.
DEFAULT_BUCKET_PREFIX = "resilience:bucket:"
#: Key lifetime used when a test time source drives the script (real TTLs would not match).
TEST_TIME_TTL_MS = 600_000

# KEYS[1]: the bucket.  ARGV: interval (us per token), capacity, tokens, then optional: peek
# ("1" = take nothing; absent or "0" = take), now in us (absent or "" = server TIME), ttl in ms
# (absent or "" = until the bucket is full again).  Production calls send only the first three
# (or four, to peek).  Returns, granted: the time in us (one reply element: an integer, the
# server's TIME; or the ARGV[5] text given); refused: {wait in whole us (rounded up), time
# in us (same two forms)}.  The reply's type tells them apart.  Written for the server's
# time per call: numbers are handed to SET as Lua numbers (Redis converts them exactly: 17
# significant digits as ``string.format('%.17g')`` would, or the shortest exact form since
# Redis 7.2; at a fraction of the cost of formatting in Lua), and the server time goes back
# as an integer.
_BUCKET_SCRIPT = LuaScript(
    """
local interval = tonumber(ARGV[1])
local fill = tonumber(ARGV[2]) * interval
local given = ARGV[5]
if given == '' then given = nil end
local now
if given == nil then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
else
  now = tonumber(given)
end
local start = now - fill
local stored = tonumber(redis.call('GET', KEYS[1]) or '')
if stored ~= nil and stored > start then
  start = stored
  if start > now then start = now end
end
local after = start + tonumber(ARGV[3]) * interval
if after - now <= 1 then
  if ARGV[4] ~= '1' then
    local ttl = ARGV[6]
    if ttl == nil or ttl == '' then
      ttl = math.ceil((after + fill - now) / 1000) + 1
    end
    redis.call('SET', KEYS[1], after, 'PX', ttl)
  end
  return given or now
end
return {math.ceil(after - now), given or now}
"""
)

#: Most distinct (name, rate, capacity, tokens, peek) calls kept encoded per backend.
_CALL_CACHE_SIZE = 256


class RedisBucketBackend:
    """Token-bucket state in Redis, shared by every process using the same server and name.

    Implements :class:`resilience.ratelimit.BucketBackend`.  ``url`` is a redis:// URL (see
    :func:`parse_redis_url`) or :class:`RedisSettings`; ``on_unavailable`` overrides the
    URL's option (default ``"local"``); ``socket_timeout`` / ``connect_timeout`` override
    the URL's (seconds).  ``test_time`` (tests only) is a clock whose seconds the script
    uses instead of the server's ``TIME``, with keys kept for ``TEST_TIME_TTL_MS``.

    Thread-safe; one instance may serve many buckets (each :class:`TokenBucket` passes its
    name, rate and capacity).
    """

    def __init__(
        self,
        url: str | RedisSettings = "redis://127.0.0.1:6379/0",
        *,
        on_unavailable: FailMode | str | None = None,
        key_prefix: str = DEFAULT_BUCKET_PREFIX,
        socket_timeout: float | None = None,
        connect_timeout: float | None = None,
        reconnect_initial: float = DEFAULT_RECONNECT_INITIAL,
        reconnect_max: float = DEFAULT_RECONNECT_MAX,
        clock: _clock.Clock = _clock.monotonic,
        test_time: Callable[[], float] | None = None,
    ) -> None:
        settings = parse_redis_url(url) if isinstance(url, str) else url
        if not isinstance(settings, RedisSettings):
            raise TypeError(
                f"url must be a redis:// URL or RedisSettings, got {type(url).__name__}"
            )
        overrides: dict[str, float] = {}
        if socket_timeout is not None:
            overrides["socket_timeout"] = socket_timeout
        if connect_timeout is not None:
            overrides["connect_timeout"] = connect_timeout
        if overrides:
            settings = RedisSettings(
                **{**{f: getattr(settings, f) for f in settings.__dataclass_fields__}, **overrides}
            )
        if on_unavailable is not None:
            mode = FailMode.coerce(on_unavailable)
        elif settings.on_unavailable is not None:
            mode = settings.on_unavailable
        else:
            mode = FailMode.LOCAL
        if not isinstance(key_prefix, str):
            raise TypeError("key_prefix must be a string")
        if test_time is not None and not callable(test_time):
            raise TypeError("test_time must be a callable returning seconds")
        self._mode = mode
        self._prefix = key_prefix
        self._test_time = test_time
        self._local = threading.local()
        # (name, rate, capacity, tokens, peek) -> the script call, encoded once.
        self._calls: dict[tuple[str, float, float, float, bool], PreparedScript] = {}
        self.connection = RedisConnection(
            settings,
            clock=clock,
            reconnect_initial=reconnect_initial,
            reconnect_max=reconnect_max,
        )

    def __repr__(self) -> str:
        return (
            f"RedisBucketBackend({self.connection.settings.redacted_url()!r}, "
            f"on_unavailable={self._mode.value!r})"
        )

    @property
    def on_unavailable(self) -> FailMode:
        """The default failure mode of buckets using this backend."""
        return self._mode

    @property
    def available(self) -> bool:
        """False while Redis is marked down (within the reconnect back-off)."""
        return self.connection.available

    def key(self, name: str) -> str:
        """The Redis key holding bucket ``name``."""
        return self._prefix + name

    def last_server_time(self) -> float | None:
        """Server time (seconds) of the calling thread's last answered decision, or None."""
        value: float | None = getattr(self._local, "server_time", None)
        return value

    def decide(
        self,
        name: str,
        rate: float,
        capacity: float,
        tokens: float,
        *,
        timeout: float | None = None,
        peek: bool = False,
    ) -> float:
        """Take ``tokens`` from bucket ``name`` in one round trip: 0.0 if granted, else the
        wait in seconds.  Raises BackendUnavailable / DeadlineExceeded (see the protocol)."""
        if self._test_time is None:
            call = self._calls.get((name, rate, capacity, tokens, peek))
            if call is None:
                call = self._prepare(name, rate, capacity, tokens, peek)
        else:
            now_arg = repr(self._test_time() * 1e6)
            args = self._args(rate, capacity, tokens)
            call = self.connection.prepare(
                _BUCKET_SCRIPT,
                (self._prefix + name,),
                (*args, "1" if peek else "0", now_arg, str(TEST_TIME_TTL_MS)),
            )
        reply = self.connection.run(call, timeout=timeout)
        if type(reply) is not list:  # granted: the time (int, or the text given)
            self._local.server_time = float(reply) / 1e6
            return 0.0
        wait_us, now = reply
        self._local.server_time = float(now) / 1e6
        wait = int(wait_us) / 1e6
        return wait if math.isfinite(wait) and wait > 0 else 1e-6

    @staticmethod
    def _args(rate: float, capacity: float, tokens: float) -> tuple[str, str, str]:
        return (repr(1e6 / rate), repr(float(capacity)), repr(float(tokens)))

    def _prepare(
        self, name: str, rate: float, capacity: float, tokens: float, peek: bool
    ) -> PreparedScript:
        args = self._args(rate, capacity, tokens)
        call = self.connection.prepare(
            _BUCKET_SCRIPT, (self._prefix + name,), (*args, "1") if peek else args
        )
        if len(self._calls) >= _CALL_CACHE_SIZE:
            self._calls.clear()  # a race only re-encodes a call
        self._calls[(name, rate, capacity, tokens, peek)] = call
        return call

    def close(self) -> None:
        """Close the connections (reopened on next use)."""
        self.connection.close()


# --- BEGIN R3 circuit-breaker store -------------------------------------------------------
# Owned by helper R3 (resilience/_redis_circuit.py): its imports and `__all__ += [...]` go
# between these markers only.
from ._redis_circuit import RedisCircuitStore  # noqa: E402

__all__ += ["RedisCircuitStore"]
# --- END R3 circuit-breaker store ---------------------------------------------------------
