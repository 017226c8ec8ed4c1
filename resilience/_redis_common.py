"""Shared Redis plumbing for the Redis backends of :mod:`resilience` (private).

Used by the token-bucket backend (:mod:`resilience.redis`) and the circuit-breaker store
(``resilience._redis_circuit``).  Importing this module does not import ``redis``; the
client library is loaded when the first connection is made (:func:`import_redis`), so the
default install needs no Redis at all.

**Failure modes** — :class:`FailMode`, decided per limiter / breaker:

* ``"closed"``: raise :class:`~resilience.BackendUnavailable` (a ConnectionError).
* ``"open"``: behave as if the shared state allowed the call.
* ``"local"``: fall back to in-process state with the same settings until Redis is back.

``FailMode.coerce(value, param=...)`` accepts the enum or its string value and raises
ValueError naming ``param`` otherwise.

**URLs** — :func:`parse_redis_url` accepts ``redis://[[user]:password@]host[:port][/db]``,
``rediss://`` (TLS) and ``unix:///path/to/socket[?db=N]``; query options
``socket_timeout`` and ``socket_connect_timeout`` (seconds) and ``on_unavailable``
(closed/open/local).  Anything else raises ValueError naming the option.  The password is
kept out of ``repr`` and logs (:meth:`RedisSettings.redacted_url`).

**Connections** — :class:`RedisConnection` owns the ``redis.Redis`` clients of one server:

* Every client has socket timeouts (connect and read) and redis-py's own retries turned off,
  so one call costs at most one timeout.  ``execute(fn, timeout=t)`` bounds the call by the
  caller's remaining budget: it picks a client whose timeouts are the largest of
  ``socket_timeout / 2**k`` (k = 0, 1, ...; never below ``MIN_IO_TIMEOUT``, 1 ms) not above
  ``t``, so a call never outlives the caller's budget by more than 1 ms.  A budget-limited
  call that times out raises :class:`~resilience.DeadlineExceeded` (the caller ran out of
  time; Redis is not marked down); a full-timeout failure raises ``BackendUnavailable``.
* **Reconnect with back-off**: after a connection failure the server is marked down for a
  back-off that starts at ``reconnect_initial`` (0.05 s) and doubles up to
  ``reconnect_max`` (2 s); while down, calls raise ``BackendUnavailable`` at once without
  touching the network.  When the back-off ends, one caller at a time probes (the others
  keep failing fast); the first success clears the back-off and logs the recovery.
  redis-py re-opens broken connections by itself on the next command.
* ``eval_script(script, keys, args)`` runs a :class:`LuaScript` with ``EVALSHA`` (one round
  trip) and falls back to ``EVAL`` (which also caches it) on ``NOSCRIPT``, e.g. after a
  server restart.  For a call repeated with the same arguments, ``prepare(...)`` encodes it
  once and ``run(prepared)`` sends it as is: the hot path of the backends.  ``run`` skips
  redis-py's client layer (connection pool checkout and its per-call socket poll, argument
  encoding, instrumentation) and talks to redis-py connections directly: a caller pops an
  idle connection of its own (a new one when none is idle, so N threads at once get N
  sockets and never queue behind one), sends, reads the one reply, and puts it back; a
  connection that failed or was interrupted between send and read is disconnected first
  (redis-py reconnects it on its next use).
* Errors: connection errors, timeouts and ``OSError`` mark the server down; other
  ``RedisError`` (e.g. ``WRONGTYPE`` on a foreign key) raise ``BackendUnavailable`` without
  back-off.  Every conversion keeps the original as ``__cause__``.

``RedisConnection`` is thread-safe and fork-aware (redis-py's connection pools check the
process id; a forked child drops the idle connections of ``run`` it inherited, through an
``os.register_at_fork`` hook, and opens its own).
"""

from __future__ import annotations

import collections
import hashlib
import inspect
import logging
import math
import os
import threading
import urllib.parse
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any, TypeVar

from . import _clock
from .errors import BackendUnavailable, DeadlineExceeded

if TYPE_CHECKING:
    import redis as redis_module

__all__ = [
    "DEFAULT_CONNECT_TIMEOUT",
    "DEFAULT_SOCKET_TIMEOUT",
    "MIN_IO_TIMEOUT",
    "FailMode",
    "LuaScript",
    "PreparedScript",
    "RedisConnection",
    "RedisSettings",
    "import_redis",
    "parse_redis_url",
]

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: Default read/write timeout of one Redis call, in seconds.
DEFAULT_SOCKET_TIMEOUT = 0.25
#: Default TCP connect timeout, in seconds.
DEFAULT_CONNECT_TIMEOUT = 0.25
#: Shortest socket timeout used when a caller's budget is nearly spent, in seconds.
MIN_IO_TIMEOUT = 0.001
#: Reconnect back-off after a failure: first wait and ceiling, in seconds.
DEFAULT_RECONNECT_INITIAL = 0.05
DEFAULT_RECONNECT_MAX = 2.0


class FailMode(str, Enum):
    """What a Redis-backed primitive does when Redis cannot be reached."""

    CLOSED = "closed"
    OPEN = "open"
    LOCAL = "local"

    @classmethod
    def coerce(cls, value: object, *, param: str = "on_unavailable") -> FailMode:
        """``value`` as a FailMode (enum or string); ValueError naming ``param`` otherwise."""
        if isinstance(value, cls):
            return value
        if isinstance(value, str):
            try:
                return cls(value.lower())
            except ValueError:
                pass
        choices = ", ".join(repr(m.value) for m in cls)
        raise ValueError(f"{param} must be one of {choices}, got {value!r}")


def import_redis() -> Any:
    """The ``redis`` module, or ImportError telling how to install the optional extra."""
    try:
        import redis  # noqa: PLC0415 - optional dependency, loaded on first use
    except ImportError as exc:  # pragma: no cover - the dev extra installs it
        raise ImportError(
            "Redis backends need the 'redis' package: pip install 'tvadapter[redis]'"
        ) from exc
    return redis


def _check_timeout_value(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number of seconds, got {type(value).__name__}")
    result = float(value)
    if not (math.isfinite(result) and result > 0):
        raise ValueError(f"{name} must be finite and > 0, got {value!r}")
    return result


@dataclass(frozen=True)
class RedisSettings:
    """Where and how to connect to Redis (immutable and thread-safe; the password never
    appears in repr)."""

    host: str = "127.0.0.1"
    port: int = 6379
    db: int = 0
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ssl: bool = False
    unix_path: str | None = None
    socket_timeout: float = DEFAULT_SOCKET_TIMEOUT
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
    on_unavailable: FailMode | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.port, int) or not 0 < self.port < 65536:
            raise ValueError(f"port must be an integer in 1..65535, got {self.port!r}")
        if not isinstance(self.db, int) or self.db < 0:
            raise ValueError(f"db must be an integer >= 0, got {self.db!r}")
        _check_timeout_value("socket_timeout", self.socket_timeout)
        _check_timeout_value("connect_timeout", self.connect_timeout)
        if self.on_unavailable is not None:
            object.__setattr__(self, "on_unavailable", FailMode.coerce(self.on_unavailable))

    def redacted_url(self) -> str:
        """The server's address as a URL, with any password replaced by ``***``."""
        auth = ""
        if self.username or self.password:
            auth = f"{self.username or ''}{':***' if self.password else ''}@"
        if self.unix_path is not None:
            return f"unix://{auth}{self.unix_path}?db={self.db}"
        scheme = "rediss" if self.ssl else "redis"
        return f"{scheme}://{auth}{self.host}:{self.port}/{self.db}"


_QUERY_OPTIONS = {"socket_timeout", "socket_connect_timeout", "connect_timeout", "on_unavailable"}


def parse_redis_url(url: str) -> RedisSettings:
    """Parse a ``redis://``, ``rediss://`` or ``unix://`` URL into :class:`RedisSettings`."""
    if not isinstance(url, str):
        raise TypeError(f"url must be a string, got {type(url).__name__}")
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("redis", "rediss", "unix"):
        raise ValueError("url must start with redis://, rediss:// or unix://")
    options: dict[str, Any] = {}
    query = urllib.parse.parse_qs(parts.query, keep_blank_values=True)
    for key, values in query.items():
        value = values[-1]
        if key == "db":
            continue
        if key not in _QUERY_OPTIONS:
            raise ValueError(f"url has an unknown option {key!r}")
        if key == "on_unavailable":
            options["on_unavailable"] = FailMode.coerce(value, param="on_unavailable")
            continue
        try:
            seconds = float(value)
        except ValueError:
            raise ValueError(f"url option {key} must be a number of seconds") from None
        name = "socket_timeout" if key == "socket_timeout" else "connect_timeout"
        options[name] = _check_timeout_value(key, seconds)
    username = urllib.parse.unquote(parts.username) if parts.username else None
    password = urllib.parse.unquote(parts.password) if parts.password is not None else None
    db_text = query.get("db", [""])[-1]
    if scheme == "unix":
        if not parts.path:
            raise ValueError("url: unix:// needs a socket path")
        db = _parse_db(db_text or "0")
        return RedisSettings(
            unix_path=parts.path, db=db, username=username, password=password, **options
        )
    path = parts.path.lstrip("/")
    db = _parse_db(db_text or path or "0")
    try:
        port = parts.port or 6379
    except ValueError:
        raise ValueError("url has an invalid port") from None
    return RedisSettings(
        host=parts.hostname or "127.0.0.1",
        port=port,
        db=db,
        username=username,
        password=password,
        ssl=scheme == "rediss",
        **options,
    )


def _parse_db(text: str) -> int:
    try:
        db = int(text)
    except ValueError:
        raise ValueError(f"url database must be an integer, got {text!r}") from None
    if db < 0:
        raise ValueError(f"url database must be >= 0, got {db}")
    return db


def _no_client_setinfo(redis_mod: Any) -> dict[str, None]:
    """Keyword arguments that stop redis-py sending CLIENT SETINFO on each new connection
    (``driver_info=None`` since redis-py 7.1, ``lib_name``/``lib_version=None`` before)."""
    params = inspect.signature(redis_mod.Redis.__init__).parameters
    if "driver_info" in params:
        return {"driver_info": None}
    if "lib_name" in params:
        return {"lib_name": None, "lib_version": None}
    return {}


@dataclass(frozen=True)
class LuaScript:
    """A server-side Lua script and its SHA1 (what ``EVALSHA`` names it by); immutable."""

    source: str
    sha: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "sha", hashlib.sha1(self.source.encode()).hexdigest())


def _resp(parts: Sequence[str | bytes | int | float]) -> bytes:
    """One command in the Redis protocol (RESP), encoded as redis-py encodes arguments:
    str in UTF-8, numbers by ``repr``."""
    out = [b"*%d\r\n" % len(parts)]
    for part in parts:
        if isinstance(part, bytes):
            data = part
        elif isinstance(part, str):
            data = part.encode()
        elif isinstance(part, (int, float)) and not isinstance(part, bool):
            data = repr(part).encode()
        else:
            raise TypeError(f"a script argument must be str, bytes or a number, not {part!r}")
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


@dataclass(frozen=True)
class PreparedScript:
    """A script call with its keys and arguments, encoded once (the ``EVALSHA`` command, and
    the ``EVAL`` fallback for a server that lost its script cache); immutable.

    Build with :meth:`RedisConnection.prepare`, run with :meth:`RedisConnection.run`:
    a call repeated with the same arguments then costs no encoding at all."""

    script: LuaScript
    evalsha: tuple[bytes]  # as redis-py's packed commands: a sequence of byte chunks
    eval: tuple[bytes]


#: Every live RedisConnection, so that a forked child drops its parent's sockets.
_LIVE: weakref.WeakSet[RedisConnection] = weakref.WeakSet()


def _after_fork_in_child() -> None:  # pragma: no cover - runs in forked children
    for connection in list(_LIVE):
        connection._forget_connections()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


class RedisConnection:
    """Clients for one Redis server, with bounded timeouts and reconnect back-off.

    See the module docstring for the timeout and back-off rules.  Thread-safe: one instance
    may be shared by any number of threads (and by several backends).
    """

    def __init__(
        self,
        settings: RedisSettings | str,
        *,
        clock: _clock.Clock = _clock.monotonic,
        reconnect_initial: float = DEFAULT_RECONNECT_INITIAL,
        reconnect_max: float = DEFAULT_RECONNECT_MAX,
    ) -> None:
        if isinstance(settings, str):
            settings = parse_redis_url(settings)
        elif not isinstance(settings, RedisSettings):
            raise TypeError("settings must be RedisSettings or a redis:// URL")
        self.settings = settings
        self._initial = _check_timeout_value("reconnect_initial", reconnect_initial)
        self._max = _check_timeout_value("reconnect_max", reconnect_max)
        if self._max < self._initial:
            raise ValueError("reconnect_max must be >= reconnect_initial")
        self._clock = clock
        self._redis = import_redis()
        self._lock = threading.Lock()
        self._clients: dict[float, redis_module.Redis] = {}
        self._down_until = -math.inf
        self._backoff = 0.0  # 0 while up
        self._probing = False
        grid = [settings.socket_timeout]
        while grid[-1] / 2 >= MIN_IO_TIMEOUT:
            grid.append(grid[-1] / 2)
        self._grid = grid  # decreasing socket timeouts
        # Idle connections per socket timeout, for run(): a thread pops one, uses it alone and
        # appends it back (deque.pop/append are atomic), so concurrent callers get their
        # own sockets (the set grows to the number of callers at once) and no pool lock or
        # per-call pool checks are paid.
        self._idle: dict[float, collections.deque[Any]] = {}
        self._default_idle = self._idle_for(grid[0])
        _LIVE.add(self)

    def __repr__(self) -> str:
        return f"RedisConnection({self.settings.redacted_url()!r})"

    @property
    def available(self) -> bool:
        """False while the server is marked down (inside a reconnect back-off)."""
        return self._backoff == 0.0

    def close(self) -> None:
        """Close every client's connections (they reopen if used again)."""
        with self._lock:
            clients = list(self._clients.values())
            self._clients.clear()
            idle = [conn for queue in self._idle.values() for conn in queue]
            for queue in self._idle.values():
                queue.clear()
        for conn in idle:
            conn.disconnect()
        for client in clients:
            client.close()

    def _forget_connections(self) -> None:
        """In a forked child: drop the parent's connections without touching them."""
        self._lock = threading.Lock()
        self._clients = {}
        self._idle = {}
        self._default_idle = self._idle_for(self._grid[0])

    def _idle_for(self, io_timeout: float) -> collections.deque[Any]:
        queue = self._idle.get(io_timeout)
        if queue is None:
            queue = self._idle.setdefault(io_timeout, collections.deque())
        return queue

    def _client(self, io_timeout: float) -> redis_module.Redis:
        client = self._clients.get(io_timeout)  # a dict read needs no lock
        if client is not None:
            return client
        s = self.settings
        retry_mod = self._redis.retry
        backoff_mod = self._redis.backoff
        client = self._redis.Redis(
            host=s.host,
            port=s.port,
            db=s.db,
            username=s.username,
            password=s.password,
            ssl=s.ssl,
            unix_socket_path=s.unix_path,
            socket_timeout=io_timeout,
            socket_connect_timeout=min(s.connect_timeout, io_timeout),
            retry=retry_mod.Retry(backoff_mod.NoBackoff(), 0),
            health_check_interval=0,
            **_no_client_setinfo(self._redis),
        )
        with self._lock:
            return self._clients.setdefault(io_timeout, client)

    def _io_timeout(self, budget: float | None) -> float:
        if budget is None:
            return self._grid[0]
        for t in self._grid:
            if t <= budget:
                return t
        return self._grid[-1]

    def _admit(self) -> bool:
        """Called while marked down: raise at once inside the back-off or while another
        caller probes; else become the prober (True)."""
        with self._lock:
            if self._backoff:
                now = self._clock()
                if now < self._down_until or self._probing:
                    raise BackendUnavailable(
                        f"redis at {self.settings.redacted_url()} is unavailable "
                        f"(next attempt in {max(0.0, self._down_until - now):.3f}s)"
                    )
                self._probing = True
                return True
        return False

    def _failed(self, exc: BaseException, io_timeout: float, probe: bool) -> BaseException:
        """The exception to raise for ``exc`` from a call (records the outcome)."""
        errors = self._redis.exceptions
        if isinstance(exc, errors.TimeoutError):
            if io_timeout < self.settings.socket_timeout:
                self._end_probe(probe, ok=None)
                error: BaseException = DeadlineExceeded(
                    f"redis at {self.settings.redacted_url()} did not answer within "
                    f"the remaining {io_timeout:.3f}s"
                )
            else:
                self._end_probe(probe, ok=False)
                error = self._unavailable(exc)
        elif isinstance(exc, (errors.ConnectionError, OSError)):
            self._end_probe(probe, ok=False)
            error = self._unavailable(exc)
        elif isinstance(exc, errors.RedisError):
            self._end_probe(probe, ok=None)
            error = BackendUnavailable(
                f"redis at {self.settings.redacted_url()} refused the command: {type(exc).__name__}"
            )
        else:
            self._end_probe(probe, ok=None)
            return exc
        error.__cause__ = exc
        return error

    def execute(self, fn: Callable[[redis_module.Redis], T], *, timeout: float | None = None) -> T:
        """Run ``fn(client)`` within ``timeout`` seconds (None: the configured socket timeout).

        Raises ``BackendUnavailable`` (server down or refusing) or ``DeadlineExceeded`` (a
        budget-limited call timed out).
        """
        probe = self._admit() if self._backoff else False
        io_timeout = self._io_timeout(timeout)
        try:
            result = fn(self._client(io_timeout))
        except BaseException as exc:
            error = self._failed(exc, io_timeout, probe)
            if error is exc:
                raise
            raise error from exc
        if probe or self._backoff:
            self._end_probe(probe, ok=True)
        return result

    def prepare(
        self, script: LuaScript, keys: Sequence[str], args: Sequence[str | int | float]
    ) -> PreparedScript:
        """``script`` called with ``keys`` and ``args``, encoded once for :meth:`run`."""
        tail = (len(keys), *keys, *args)
        return PreparedScript(
            script,
            (_resp(("EVALSHA", script.sha, *tail)),),
            (_resp(("EVAL", script.source, *tail)),),
        )

    def run(self, prepared: PreparedScript, *, timeout: float | None = None) -> Any:
        """Run a prepared script: ``EVALSHA`` (one round trip), ``EVAL`` on ``NOSCRIPT``.

        Same timeouts, errors and back-off as :meth:`execute`.  The hot path of the Redis
        backends: a connection of its own for the call (no pool checkout), the command sent
        as prepared, one reply read.
        """
        probe = self._admit() if self._backoff else False
        if timeout is None:
            io_timeout = self._grid[0]
            idle = self._default_idle
        else:
            io_timeout = self._io_timeout(timeout)
            idle = self._idle_for(io_timeout)
        try:
            conn = idle.pop()
        except IndexError:
            conn = None
        try:
            if conn is None:
                conn = self._client(io_timeout).connection_pool.make_connection()
            conn.send_packed_command(prepared.evalsha, check_health=False)
            try:
                reply = conn.read_response()
            except self._redis.exceptions.NoScriptError:
                conn.send_packed_command(prepared.eval, check_health=False)
                reply = conn.read_response()
        except BaseException as exc:
            if conn is not None:
                if not isinstance(exc, self._redis.exceptions.ResponseError):
                    # A reply may still be on its way (an exception between send and read):
                    # the connection cannot be trusted with the next command.
                    conn.disconnect()
                idle.append(conn)
            error = self._failed(exc, io_timeout, probe)
            if error is exc:
                raise
            raise error from exc
        idle.append(conn)
        if probe or self._backoff:
            self._end_probe(probe, ok=True)
        return reply

    def eval_script(
        self,
        script: LuaScript,
        keys: Sequence[str],
        args: Sequence[str | int | float],
        *,
        timeout: float | None = None,
    ) -> Any:
        """Run ``script`` by ``EVALSHA`` (one round trip), falling back to ``EVAL``."""
        return self.run(self.prepare(script, keys, args), timeout=timeout)

    def _unavailable(self, exc: BaseException) -> BackendUnavailable:
        with self._lock:
            first = self._backoff == 0.0
            self._backoff = self._initial if first else min(self._max, self._backoff * 2)
            self._down_until = self._clock() + self._backoff
            backoff = self._backoff
        if first:
            logger.warning(
                "redis at %s unavailable (%s); retrying in %.3fs",
                self.settings.redacted_url(),
                type(exc).__name__,
                backoff,
            )
        return BackendUnavailable(
            f"redis at {self.settings.redacted_url()} is unavailable: {type(exc).__name__}"
        )

    def _end_probe(self, probe: bool, *, ok: bool | None) -> None:
        """Record the outcome of a call (ok None: says nothing about reachability)."""
        recovered = False
        with self._lock:
            if probe:
                self._probing = False
            if ok and self._backoff:
                self._backoff = 0.0
                self._down_until = -math.inf
                recovered = True
        if recovered:
            logger.info("redis at %s reachable again", self.settings.redacted_url())
