"""Circuit-breaker state in Redis: one breaker per name, shared by every process and host.

Selected by configuration::

    CircuitBreaker(failure_threshold=5, store="redis://127.0.0.1:6379/0", name="tradingview")
    CircuitBreaker(store="redis://127.0.0.1:6379/0?on_unavailable=closed", name="tv")

or with an explicit store object (one connection for many breakers)::

    store = RedisCircuitStore("redis://127.0.0.1:6379/0", on_unavailable="local")
    CircuitBreaker(5, 60.0, store=store, name="tradingview")

(``resilience.redis.RedisCircuitStore`` is the public name.)  Breakers built from the same URL
string share one :class:`RedisCircuitStore`.

Theory of operation
-------------------
The rules are exactly those of the in-memory breaker (the table in
:mod:`resilience._circuit_engine`); only the place where the state lives changes.  A breaker
named ``N`` keeps a hash ``<prefix>{N}`` (``state``, ``epoch``, consecutive ``failures``,
``opened_at`` in server microseconds, half-open ``admitted`` / ``succeeded`` probes, and the
rate window's ``n``, ``pos``, ``wf`` failures, ``ws`` slow calls) plus, in rate or slow-call
mode, the window's slots as a string ``<prefix>{N}:w`` (one digit per call).  Every decision
is **one Lua script, one round trip, atomic**: ``acquire`` (admit / reject / OPEN ->
HALF_OPEN), ``record`` (apply an outcome, maybe transition), ``reset`` and a read (which,
like the in-memory one, reports HALF_OPEN once an OPEN breaker's ``opened_at`` +
``recovery_timeout`` is reached by the server time, without changing anything).  Time
comes from the Redis server (``TIME``), so the clients' clocks may disagree; call durations
for the slow-call rule are measured locally with the breaker's ``clock``.  Both keys expire
after ``max(idle_ttl, 2 * recovery_timeout)`` without writes, so an idle breaker costs
nothing (it then starts CLOSED with empty counters).

Round trips per call: one (``acquire``) for a success through a closed count-mode breaker
whose failure count was zero when the call was admitted (the reply carries the count, so the
reset is skipped); two otherwise (``acquire`` + ``record``).  The one difference from the
in-memory rules follows from that: a count-mode success whose call was admitted while the
count was zero does not reset failures recorded by *overlapping* calls meanwhile (in memory,
outcomes apply in the order calls finish).  All processes sharing a name must use the same
settings (thresholds are sent with each script call; mixed settings are applied per call).

Listeners run in the process whose call caused a transition; other processes' listeners are
not told (they see the new state on their next call).

When Redis is unreachable
-------------------------
Decided by ``on_unavailable`` (:class:`~resilience._redis_common.FailMode`), default
``"local"``:

* ``"closed"``: :class:`~resilience.BackendUnavailable` is raised instead of calling (also by
  ``state`` / ``failure_count`` / ``reset``).
* ``"open"``: calls are admitted and their outcomes dropped; ``state`` reads CLOSED.
* ``"local"``: an in-process breaker with the same settings takes over (admission, outcomes,
  ``state``) until Redis answers again.  Its state is kept for the next outage.

Redis is tried again after a back-off (0.05 s doubling to 2 s; failing fast meanwhile, see
:mod:`resilience._redis_common`); every Redis call is bounded by the socket timeouts
(0.25 s by default), so a dead server never hangs a caller.  An outcome that cannot be
written after the call ran is never raised to the caller (that would hide the call's own
result): it is logged, and in ``"local"`` mode fed to the local breaker.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
from typing import TYPE_CHECKING, NamedTuple

from . import _clock
from ._circuit_engine import FAILURE, IGNORED, NORMAL, CircuitState, MemoryEngine, Notify
from ._redis_common import (
    DEFAULT_RECONNECT_INITIAL,
    DEFAULT_RECONNECT_MAX,
    FailMode,
    LuaScript,
    RedisConnection,
    RedisSettings,
    parse_redis_url,
)
from .errors import BackendUnavailable, CircuitOpenError

if TYPE_CHECKING:
    from collections.abc import Callable

    from ._clock import Clock
    from .circuit import CircuitBreakerConfig

__all__ = ["DEFAULT_CIRCUIT_PREFIX", "DEFAULT_IDLE_TTL", "RedisCircuitStore", "store_from_url"]

logger = logging.getLogger("resilience.circuit")

#: Default key prefix of breaker state.
DEFAULT_CIRCUIT_PREFIX = "resilience:circuit:"
#: Seconds without writes after which a breaker's keys expire (at least 2 x recovery_timeout).
DEFAULT_IDLE_TTL = 3600.0

_STATES = {
    b"closed": CircuitState.CLOSED,
    b"open": CircuitState.OPEN,
    b"half_open": CircuitState.HALF_OPEN,
}

# Shared Lua prelude: the time in microseconds (server TIME unless a test time is given) and
# the transition helper.  KEYS[1] = hash, KEYS[2] = window slots.
_PRELUDE = """
local function now_us(arg)
  if arg == '' then
    local t = redis.call('TIME')
    return tonumber(t[1]) * 1000000 + tonumber(t[2])
  end
  return tonumber(arg)
end
local function enter(h, w, new, now)
  redis.call('HINCRBY', h, 'epoch', 1)
  redis.call('HSET', h, 'state', new, 'admitted', 0, 'succeeded', 0)
  if new == 'open' then
    redis.call('HSET', h, 'opened_at', string.format('%.17g', now))
  elseif new == 'closed' then
    redis.call('HSET', h, 'failures', 0, 'n', 0, 'pos', 0, 'wf', 0, 'ws', 0)
    redis.call('DEL', w)
  end
end
local function touch(h, w, ttl)
  redis.call('PEXPIRE', h, ttl)
  if redis.call('EXISTS', w) == 1 then redis.call('PEXPIRE', w, ttl) end
end
"""

# ARGV: recovery_timeout_us, half_open_max_calls, ttl_ms, now ('' = server time).
# Reply: {0, failures}            admitted as a normal call (closed)
#        {1, epoch, moved}        admitted as a probe (moved = 1 if this call left OPEN)
#        {2, retry_after_us, st}  rejected
_ACQUIRE = LuaScript(
    _PRELUDE
    + """
local h = KEYS[1]
local st = redis.call('HGET', h, 'state')
if (not st) or st == 'closed' then
  return {0, tonumber(redis.call('HGET', h, 'failures') or '0')}
end
local moved = 0
if st == 'open' then
  local now = now_us(ARGV[4])
  local left = tonumber(redis.call('HGET', h, 'opened_at') or '0') + tonumber(ARGV[1]) - now
  if left > 0 then return {2, math.ceil(left), 'open'} end
  enter(h, KEYS[2], 'half_open', now)
  moved = 1
end
local admitted = tonumber(redis.call('HGET', h, 'admitted') or '0')
if admitted >= tonumber(ARGV[2]) then return {2, 0, 'half_open'} end
redis.call('HINCRBY', h, 'admitted', 1)
touch(h, KEYS[2], ARGV[3])
return {1, tonumber(redis.call('HGET', h, 'epoch')), moved}
"""
)

# ARGV: token (0 = normal, else probe epoch), outcome (s/f/i), slow (0/1),
#       failure_threshold, failure_rate ('' = count mode), minimum_calls,
#       window_size (0 = no window), slow_rate ('' = no slow rule), half_open_max_calls,
#       ttl_ms, now ('' = server time).
# Reply: '' (no transition) or the old state (the new one follows from the outcome).
_RECORD = LuaScript(
    _PRELUDE
    + """
local h, w = KEYS[1], KEYS[2]
local st = redis.call('HGET', h, 'state') or 'closed'
local token = tonumber(ARGV[1])
local outcome = ARGV[2]
local slow = ARGV[3] == '1'
if token == 0 then
  if st ~= 'closed' or outcome == 'i' then return '' end
  local failures
  if outcome == 'f' then
    failures = redis.call('HINCRBY', h, 'failures', 1)
  else
    failures = 0
    redis.call('HSET', h, 'failures', 0)
  end
  local open = false
  local size = tonumber(ARGV[7])
  if ARGV[5] == '' and failures >= tonumber(ARGV[4]) then open = true end
  if size > 0 then
    local v = redis.call('HMGET', h, 'n', 'pos', 'wf', 'ws')
    local n, pos = tonumber(v[1] or '0'), tonumber(v[2] or '0')
    local wf, ws = tonumber(v[3] or '0'), tonumber(v[4] or '0')
    local code = (outcome == 'f' and 1 or 0) + (slow and 2 or 0)
    if n >= size then
      local old = tonumber(redis.call('GETRANGE', w, pos, pos)) or 0
      wf = wf - old % 2
      ws = ws - math.floor(old / 2)
      n = size
    else
      n = n + 1
    end
    redis.call('SETRANGE', w, pos, tostring(code))
    wf = wf + code % 2
    ws = ws + math.floor(code / 2)
    pos = pos + 1
    if pos >= size then pos = 0 end
    redis.call('HSET', h, 'n', n, 'pos', pos, 'wf', wf, 'ws', ws)
    local minimum = tonumber(ARGV[6])
    if n >= minimum then
      if ARGV[5] ~= '' and wf / n >= tonumber(ARGV[5]) then open = true end
      if ARGV[8] ~= '' and ws / n >= tonumber(ARGV[8]) then open = true end
    end
  end
  local ret = ''
  if open then
    enter(h, w, 'open', now_us(ARGV[11]))
    ret = 'closed'
  end
  touch(h, w, ARGV[10])
  return ret
end
if st ~= 'half_open' or tonumber(redis.call('HGET', h, 'epoch') or '0') ~= token then
  return ''
end
local ret = ''
if outcome == 'i' then
  redis.call('HINCRBY', h, 'admitted', -1)
elseif outcome == 'f' or slow then
  enter(h, w, 'open', now_us(ARGV[11]))
  ret = 'half_open'
else
  local ok = redis.call('HINCRBY', h, 'succeeded', 1)
  if ok >= tonumber(ARGV[9]) then
    enter(h, w, 'closed', 0)
    ret = 'half_open'
  end
end
touch(h, w, ARGV[10])
return ret
"""
)

# Reply: the old state.
_RESET = LuaScript(
    _PRELUDE
    + """
local old = redis.call('HGET', KEYS[1], 'state') or 'closed'
enter(KEYS[1], KEYS[2], 'closed', 0)
touch(KEYS[1], KEYS[2], ARGV[1])
return old
"""
)

# ARGV: recovery_timeout_us, now ('' = server time).
# Reply: {state, failures, window failures}; state is what the next acquire would find:
# 'half_open' for a stored 'open' whose recovery time is up (the acquire script's test).
# Read-only: the transition itself is left to the next acquire.
_READ = LuaScript(
    _PRELUDE
    + """
local v = redis.call('HMGET', KEYS[1], 'state', 'failures', 'wf', 'opened_at')
local st = v[1]
if st == 'open' then
  local left = tonumber(v[4] or '0') + tonumber(ARGV[1]) - now_us(ARGV[2])
  if left <= 0 then st = 'half_open' end
end
return {st, v[2], v[3]}
"""
)


class _Ticket(NamedTuple):
    """A Redis engine's token: ``kind`` 0 normal, 1 probe, 2 local fallback, 3 untracked."""

    kind: int
    value: object  # failures seen (normal), epoch (probe), local token (local)


_UNTRACKED = _Ticket(3, None)


class RedisCircuitStore:
    """Keeps :class:`~resilience.CircuitBreaker` state in Redis (see the module docstring).

    ``url`` is a redis:// URL (see :func:`resilience.redis.parse_redis_url`; its
    ``on_unavailable`` option is honoured) or :class:`~resilience.redis.RedisSettings`;
    ``on_unavailable`` overrides it (default ``"local"``).  ``test_time`` (tests only) is a
    clock whose seconds the scripts use instead of the server's ``TIME``.

    Thread-safe; one store serves any number of breakers (each passes its name and settings).
    """

    def __init__(
        self,
        url: str | RedisSettings = "redis://127.0.0.1:6379/0",
        *,
        on_unavailable: FailMode | str | None = None,
        key_prefix: str = DEFAULT_CIRCUIT_PREFIX,
        idle_ttl: float = DEFAULT_IDLE_TTL,
        reconnect_initial: float = DEFAULT_RECONNECT_INITIAL,
        reconnect_max: float = DEFAULT_RECONNECT_MAX,
        clock: Clock = _clock.monotonic,
        test_time: Callable[[], float] | None = None,
    ) -> None:
        settings = parse_redis_url(url) if isinstance(url, str) else url
        if not isinstance(settings, RedisSettings):
            raise TypeError(
                f"url must be a redis:// URL or RedisSettings, got {type(url).__name__}"
            )
        if on_unavailable is not None:
            mode = FailMode.coerce(on_unavailable)
        elif settings.on_unavailable is not None:
            mode = settings.on_unavailable
        else:
            mode = FailMode.LOCAL
        if not isinstance(key_prefix, str):
            raise TypeError(f"key_prefix must be a string, got {type(key_prefix).__name__}")
        if isinstance(idle_ttl, bool) or not isinstance(idle_ttl, (int, float)):
            raise TypeError(f"idle_ttl must be a number of seconds, got {idle_ttl!r}")
        if not (math.isfinite(idle_ttl) and idle_ttl > 0):
            raise ValueError(f"idle_ttl must be finite and > 0, got {idle_ttl!r}")
        if test_time is not None and not callable(test_time):
            raise TypeError("test_time must be a callable returning seconds")
        self.on_unavailable = mode
        self.key_prefix = key_prefix
        self.idle_ttl = float(idle_ttl)
        self.test_time = test_time
        self.connection = RedisConnection(
            settings,
            clock=clock,
            reconnect_initial=reconnect_initial,
            reconnect_max=reconnect_max,
        )

    def __repr__(self) -> str:
        return (
            f"RedisCircuitStore({self.connection.settings.redacted_url()!r}, "
            f"on_unavailable={self.on_unavailable.value!r})"
        )

    @property
    def available(self) -> bool:
        """False while Redis is marked down (within the reconnect back-off)."""
        return self.connection.available

    def keys(self, name: str) -> tuple[str, str]:
        """The Redis keys of breaker ``name``: the state hash and the window slots."""
        base = f"{self.key_prefix}{{{name}}}"
        return base, base + ":w"

    def engine(
        self, config: CircuitBreakerConfig, name: str, clock: Clock, notify: Notify
    ) -> RedisEngine:
        """The state holder for breaker ``name`` (called by :class:`~resilience.CircuitBreaker`)."""
        return RedisEngine(self, config, name, clock, notify)

    def close(self) -> None:
        """Close the connections (reopened on next use)."""
        self.connection.close()


_stores: dict[str, RedisCircuitStore] = {}
_stores_lock = threading.Lock()


def store_from_url(url: str) -> RedisCircuitStore:
    """The shared :class:`RedisCircuitStore` for ``url`` (one per distinct URL string)."""
    with _stores_lock:
        store = _stores.get(url)
    if store is not None:
        return store
    created = RedisCircuitStore(url)
    with _stores_lock:
        return _stores.setdefault(url, created)


class RedisEngine:
    """One breaker's view of its Redis state (implements the engine protocol).

    Thread-safe: all shared state is in Redis and changed only by atomic scripts; the local
    fallback engine is itself thread-safe.
    """

    def __init__(
        self,
        store: RedisCircuitStore,
        config: CircuitBreakerConfig,
        name: str,
        clock: Clock,
        notify: Notify,
    ) -> None:
        self.store = store
        self.config = config
        self._name = name
        self._notify = notify
        self._conn = store.connection
        self._mode = store.on_unavailable
        self._keys = store.keys(name)
        self._local = MemoryEngine(config, name, clock, notify)
        self._clock = clock
        self.last_failure_time: float | None = None
        ttl_ms = math.ceil(max(store.idle_ttl, 2 * config.recovery_timeout) * 1000)
        self._ttl = str(ttl_ms)
        windowed = (
            config.failure_rate_threshold is not None or config.slow_call_duration is not None
        )
        self._windowed = windowed
        self._rate_mode = config.failure_rate_threshold is not None
        self._slow_limit = (
            math.inf if config.slow_call_duration is None else config.slow_call_duration
        )
        self._acquire_args = (
            repr(config.recovery_timeout * 1e6),
            str(config.half_open_max_calls),
            self._ttl,
        )
        rate = config.failure_rate_threshold
        self._record_args = (
            str(config.failure_threshold),
            "" if rate is None else repr(float(rate)),
            str(min(config.minimum_calls, config.window_size)),
            str(config.window_size if windowed else 0),
            "" if config.slow_call_duration is None else repr(config.slow_call_rate_threshold),
            str(config.half_open_max_calls),
            self._ttl,
        )

    def _now_arg(self) -> str:
        test_time = self.store.test_time
        return "" if test_time is None else repr(test_time() * 1e6)

    def _unavailable(self, exc: BackendUnavailable) -> object:
        """Admission when Redis is down, per the failure mode."""
        if self._mode is FailMode.CLOSED:
            raise exc
        if self._mode is FailMode.OPEN:
            return _UNTRACKED
        return _Ticket(2, self._local.acquire())

    # -- reads --------------------------------------------------------------------------------

    def _read(self) -> tuple[CircuitState, int] | None:
        try:
            raw_state, failures, window_failures = self._conn.eval_script(
                _READ, self._keys, (self._acquire_args[0], self._now_arg())
            )
        except BackendUnavailable:
            if self._mode is FailMode.CLOSED:
                raise
            return None
        state = _STATES.get(raw_state or b"closed", CircuitState.CLOSED)
        count = window_failures if self._rate_mode else failures
        return state, int(count or 0)

    @property
    def state(self) -> CircuitState:
        read = self._read()
        if read is None:
            return self._local.state if self._mode is FailMode.LOCAL else CircuitState.CLOSED
        return read[0]

    @property
    def failure_count(self) -> int:
        read = self._read()
        if read is None:
            return self._local.failure_count if self._mode is FailMode.LOCAL else 0
        return read[1]

    # -- admission ----------------------------------------------------------------------------

    def acquire(self) -> object:
        try:
            reply = self._conn.eval_script(
                _ACQUIRE, self._keys, (*self._acquire_args, self._now_arg())
            )
        except BackendUnavailable as exc:
            return self._unavailable(exc)
        code = int(reply[0])
        if code == 0:
            return _Ticket(0, int(reply[1]))
        if code == 1:
            if int(reply[2]):
                self._notify(CircuitState.OPEN, CircuitState.HALF_OPEN)
            return _Ticket(1, int(reply[1]))
        state = _STATES.get(reply[2], CircuitState.OPEN)
        retry_after = int(reply[1]) / 1e6
        if state is CircuitState.OPEN:
            message = f"circuit breaker {self._name!r} is open; retry in {retry_after:.3f}s"
        else:
            message = f"circuit breaker {self._name!r} is half-open and its probe slots are taken"
        raise CircuitOpenError(message, retry_after=retry_after, name=self._name)

    async def acquire_async(self) -> object:
        return await asyncio.to_thread(self.acquire)

    # -- outcomes -----------------------------------------------------------------------------

    def record(self, token: object, outcome: int, duration: float) -> None:
        assert isinstance(token, _Ticket)
        kind = token.kind
        if kind == 3:
            return
        if kind == 2:
            self._local.record(token.value, outcome, duration)
            return
        if outcome == FAILURE:
            self.last_failure_time = self._clock()
        slow = duration >= self._slow_limit
        if kind == 0:
            if outcome == IGNORED:
                return
            # A success through a closed count-mode breaker with no failures changes nothing.
            if outcome != FAILURE and not self._windowed and token.value == 0:
                return
            wire_token = "0"
        else:
            wire_token = str(token.value)
        code = "f" if outcome == FAILURE else ("i" if outcome == IGNORED else "s")
        try:
            old = self._conn.eval_script(
                _RECORD,
                self._keys,
                (wire_token, code, "1" if slow else "0", *self._record_args, self._now_arg()),
            )
        except BackendUnavailable:
            logger.warning(
                "circuit breaker %s: outcome not recorded, redis unavailable", self._name
            )
            if self._mode is FailMode.LOCAL and kind == 0:
                self._local.record(NORMAL, outcome, duration)
            return
        if old:
            old_state = _STATES[old]
            if old_state is CircuitState.CLOSED or outcome == FAILURE or slow:
                new_state = CircuitState.OPEN
            else:
                new_state = CircuitState.CLOSED
            self._notify(old_state, new_state)

    async def record_async(self, token: object, outcome: int, duration: float) -> None:
        if isinstance(token, _Ticket) and token.kind >= 2:
            self.record(token, outcome, duration)  # no I/O
            return
        await asyncio.to_thread(self.record, token, outcome, duration)

    def reset(self) -> None:
        try:
            old = self._conn.eval_script(_RESET, self._keys, (self._ttl,))
        except BackendUnavailable:
            if self._mode is FailMode.CLOSED:
                raise
            self._local.reset()
            return
        self._local.reset(quiet=True)
        old_state = _STATES.get(old, CircuitState.CLOSED)
        if old_state is not CircuitState.CLOSED:
            self._notify(old_state, CircuitState.CLOSED)
