"""Benchmark: the Redis token bucket vs pyrate-limiter's and limits' Redis storages (issue 6).

Run:  .venv/bin/python benchmarks/bench_redis.py  [--quick] [--rounds N]

Starts a private ``redis-server`` on 127.0.0.1 on a free port (no persistence), measures every
contender against that same server in the same run, and stops it at the end.

* **Round trips per decision**, two ways: on the client, every reply read by redis-py in the
  calling thread (``AbstractConnection.read_response``, wrapped); on the server, the commands
  that ``MONITOR`` shows from clients (commands run inside a Lua script are marked ``lua``
  and are not round trips), for all threads of the process (background threads included).
* **Latency per decision** (one thread): median and p99 over interleaved rounds, and the
  process CPU time per decision (least noisy on a shared machine: it ignores time spent
  descheduled; it includes redis-py's work and any background thread of the library).
* **Server time per decision**: ``INFO commandstats`` usec of the script commands (best of a
  few rounds): what each decision costs the shared, single-threaded server.
* **Decisions per second** with 1 thread (1 / median latency: robust to the machine's noise)
  and 8 threads (best round).  The limit is far above what can be reached,
  so every call should be granted: a refusal is an error or a local lock refusing the call
  (pyrate-limiter's ``Limiter`` refuses ``blocking=False`` calls while another thread holds
  its lock, which it does during the Redis round trip).  The target compares *granted*
  decisions per second, the ones the shared limit actually answered.

Contenders: ``resilience.TokenBucket`` with ``RedisBucketBackend`` (failure mode "closed": an
unreachable server raises instead of silently falling back to a local bucket);
pyrate-limiter's ``RedisBucket`` (sliding log in a sorted set) and its ``StateBucket`` with
``RedisStateStore`` (token bucket, the closest to ours); limits' ``RedisStorage`` with the
fixed window, sliding window counter and moving window strategies.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import logging
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _peers_util import (
    Target,
    fmt_ns,
    fmt_rate,
    machine_line,
    md_table,
    median,
    paired_ratio,
    percentile,
    ratio,
    verdict_table,
)

perf_counter = time.perf_counter
TARGETS: list[Target] = []
OURS = "resilience TokenBucket (Redis backend)"


def progress(msg: str) -> None:
    print(f"[bench_redis] {msg}", file=sys.stderr, flush=True)


def emit(text: str = "") -> None:
    print(text, flush=True)


# =============================================================================================
# A private redis-server
# =============================================================================================


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def redis_server() -> Iterator[int]:
    """Run ``redis-server`` on 127.0.0.1 on a free port; yield the port; stop it."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise FileNotFoundError("redis-server")
    port = free_port()
    proc = subprocess.Popen(
        [
            binary,
            "--bind",
            "127.0.0.1",
            "--port",
            str(port),
            "--save",
            "",
            "--appendonly",
            "no",
            "--protected-mode",
            "yes",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        break
            except OSError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("redis-server did not start")
            time.sleep(0.02)
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# =============================================================================================
# Counting round trips
# =============================================================================================


class ReplyCounter:
    """Counts redis-py replies read, per thread (wraps ``AbstractConnection.read_response``)."""

    def __init__(self) -> None:
        import redis.connection

        self._cls = redis.connection.AbstractConnection
        self._orig = self._cls.read_response
        self.counts: Counter[int] = Counter()
        counts = self.counts
        orig = self._orig
        get_ident = threading.get_ident

        @functools.wraps(orig)
        def read_response(conn: object, *args: object, **kwargs: object) -> object:
            counts[get_ident()] += 1
            return orig(conn, *args, **kwargs)

        self._wrapped = read_response

    def __enter__(self) -> ReplyCounter:
        self._cls.read_response = self._wrapped  # type: ignore[method-assign]
        return self

    def __exit__(self, *exc: object) -> None:
        self._cls.read_response = self._orig  # type: ignore[method-assign]

    def mine(self) -> int:
        return self.counts[threading.get_ident()]


class Monitor:
    """``MONITOR`` on a raw socket: counts commands sent by clients (not from Lua scripts)."""

    def __init__(self, port: int) -> None:
        self._sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self._sock.sendall(b"MONITOR\r\n")
        self._buf = b""
        self.lines: list[str] = []
        self._stop = threading.Event()
        first = self._read_line()
        assert first.startswith("+OK"), first
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _read_line(self) -> str:
        while b"\r\n" not in self._buf:
            chunk = self._sock.recv(65536)
            if not chunk:
                raise EOFError
            self._buf += chunk
        line, self._buf = self._buf.split(b"\r\n", 1)
        return line.decode("utf-8", "replace")

    def _run(self) -> None:
        self._sock.settimeout(0.05)
        while not self._stop.is_set():
            try:
                self.lines.append(self._read_line())
            except TimeoutError:
                continue
            except (OSError, EOFError):
                return

    def stop(self) -> None:
        time.sleep(0.1)  # let the last commands arrive
        self._stop.set()
        self._thread.join()
        self._sock.close()

    def client_commands(self, marker: str) -> int:
        """Top-level commands (not run by a script) mentioning ``marker`` anywhere."""
        return sum(1 for line in self.lines if " lua]" not in line and marker in line)

    def all_client_commands(self) -> int:
        return sum(1 for line in self.lines if " lua]" not in line)


# =============================================================================================
# Contenders
# =============================================================================================


def build(port: int) -> tuple[dict[str, tuple[Callable[[], bool], str]], list[Callable[[], None]]]:
    """name -> (try-acquire callable, a string found in every command it sends)."""
    import redis
    from limits import RateLimitItemPerSecond, strategies
    from limits.storage import RedisStorage
    from pyrate_limiter import Duration, Limiter, Rate, RedisBucket, RedisStateStore, StateBucket
    from pyrate_limiter import TokenBucket as PyrateTokenBucket

    from resilience import TokenBucket
    from resilience.redis import RedisBucketBackend

    url = f"redis://127.0.0.1:{port}/0"
    limit = 10**6  # per second: never reached, every decision should grant
    closers: list[Callable[[], None]] = []

    backend = RedisBucketBackend(url, on_unavailable="closed")
    closers.append(backend.close)
    ours = TokenBucket(float(limit), float(limit), backend=backend, name="bench-ours")

    client = redis.Redis(host="127.0.0.1", port=port, db=0)
    closers.append(client.close)
    pyrate_log = Limiter(
        RedisBucket.init([Rate(limit, Duration.SECOND)], client, "bench-pyrate-log")
    )
    pyrate_tb = Limiter(
        StateBucket(
            [Rate(limit, Duration.SECOND, burst=limit)],
            algorithm=PyrateTokenBucket(),
            store=RedisStateStore(client, "bench-pyrate-tb"),
        )
    )
    closers += [pyrate_log.close, pyrate_tb.close]

    storage = RedisStorage(url)
    item = RateLimitItemPerSecond(limit)
    fixed = strategies.FixedWindowRateLimiter(storage)
    counter = strategies.SlidingWindowCounterRateLimiter(storage)
    moving = strategies.MovingWindowRateLimiter(storage)

    contenders: dict[str, tuple[Callable[[], bool], str]] = {
        OURS: (ours.try_acquire, "bench-ours"),
        "pyrate-limiter RedisStateStore token bucket": (
            functools.partial(pyrate_tb.try_acquire, "x", blocking=False),
            "bench-pyrate-tb",
        ),
        "pyrate-limiter RedisBucket (sliding log)": (
            functools.partial(pyrate_log.try_acquire, "x", blocking=False),
            "bench-pyrate-log",
        ),
        "limits RedisStorage fixed window": (
            functools.partial(fixed.hit, item, "bench-limits-fixed"),
            "bench-limits-fixed",
        ),
        "limits RedisStorage sliding window counter": (
            functools.partial(counter.hit, item, "bench-limits-counter"),
            "bench-limits-counter",
        ),
        "limits RedisStorage moving window": (
            functools.partial(moving.hit, item, "bench-limits-moving"),
            "bench-limits-moving",
        ),
    }
    return contenders, closers


ERRORS: Counter[str] = Counter()


def rotated(
    calls: dict[str, Callable[[], bool]], number: int
) -> list[tuple[str, Callable[[], bool]]]:
    """The contenders in round ``number``'s order: rotated, so none always follows the same
    one (pyrate-limiter's background leak thread, for one, may run just after its turn)."""
    items = list(calls.items())
    shift = number % len(items)
    return items[shift:] + items[:shift]


def guarded(name: str, fn: Callable[[], bool]) -> Callable[[], bool]:
    """``fn`` with exceptions counted as refusals (an unreachable server must not crash)."""

    def call() -> bool:
        try:
            return bool(fn())
        except Exception as exc:
            ERRORS[f"{name}: {type(exc).__name__}"] += 1
            return False

    return call


# =============================================================================================
# Measurements
# =============================================================================================


def round_trips(
    port: int, name: str, fn: Callable[[], bool], marker: str, n: int
) -> tuple[float, float, int]:
    """(client replies per decision in this thread, server-side client commands per decision
    naming the key, grants)."""
    for _ in range(20):  # warm up: script loading, connections
        fn()
    monitor = Monitor(port)
    try:
        with ReplyCounter() as replies:
            grants = sum(fn() for _ in range(n))
            mine = replies.mine()
    finally:
        monitor.stop()
    return mine / n, monitor.client_commands(marker) / n, grants


def server_time(port: int, fn: Callable[[], bool], n: int) -> float:
    """Server-side execution time per decision (seconds), from ``INFO commandstats``: the
    ``usec`` of top-level script commands (``EVALSHA``/``EVAL``, which include the commands
    the script runs) after ``CONFIG RESETSTAT``."""
    import redis

    admin = redis.Redis(host="127.0.0.1", port=port)
    try:
        for _ in range(20):
            fn()
        admin.config_resetstat()
        for _ in range(n):
            fn()
        stats = admin.info("commandstats")
    finally:
        admin.close()
    usec = sum(v["usec"] for k, v in stats.items() if k in ("cmdstat_evalsha", "cmdstat_eval"))
    return usec / 1e6 / n


def latencies(fn: Callable[[], bool], n: int) -> tuple[list[float], float, float, int]:
    """Per-call latencies (s), wall time of the batch, process CPU time of the batch, grants."""
    out = []
    grants = 0
    cpu = time.process_time()
    start = perf_counter()
    for _ in range(n):
        t = perf_counter()
        grants += fn()
        out.append(perf_counter() - t)
    return out, perf_counter() - start, time.process_time() - cpu, grants


def hammer(fn: Callable[[], bool], nthreads: int, duration: float) -> tuple[int, int, float]:
    barrier = threading.Barrier(nthreads + 1)
    stop = threading.Event()
    results: list[tuple[int, int]] = []
    lock = threading.Lock()

    def worker() -> None:
        calls = grants = 0
        barrier.wait()
        while not stop.is_set():
            grants += fn()
            calls += 1
        with lock:
            results.append((calls, grants))

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(nthreads)]
    for t in threads:
        t.start()
    barrier.wait()
    start = perf_counter()
    time.sleep(duration)
    stop.set()
    for t in threads:
        t.join()
    elapsed = perf_counter() - start
    return sum(c for c, _ in results), sum(g for _, g in results), elapsed


def run(port: int, rounds: int, per_round: int, threaded_rounds: int, duration: float) -> None:
    contenders, closers = build(port)
    calls = {name: guarded(name, fn) for name, (fn, _) in contenders.items()}
    try:
        progress("round trips (MONITOR + client reply count)")
        trips = {
            name: round_trips(port, name, calls[name], marker, 200)
            for name, (_, marker) in contenders.items()
        }
        progress("server time per decision (INFO commandstats)")
        server_t: dict[str, list[float]] = {name: [] for name in contenders}
        for number in range(max(1, rounds // 3)):
            for name, fn in rotated(calls, number):
                server_t[name].append(server_time(port, fn, 300))
        progress("latency, 1 thread")
        lat: dict[str, list[float]] = {name: [] for name in contenders}
        lat_rounds: dict[str, list[float]] = {name: [] for name in contenders}
        cpu1: dict[str, list[float]] = {name: [] for name in contenders}
        grants1: dict[str, list[tuple[int, int]]] = {name: [] for name in contenders}
        for number in range(rounds):
            for name, fn in rotated(calls, number):
                values, _, cpu, grants = latencies(fn, per_round)
                lat[name] += values
                lat_rounds[name].append(percentile(values, 0.5))
                cpu1[name].append(cpu / per_round)
                grants1[name].append((per_round, grants))
        progress("8 threads")
        multi: dict[str, list[tuple[int, int, float]]] = {name: [] for name in contenders}
        for number in range(threaded_rounds):
            for name, fn in rotated(calls, number):
                multi[name].append(hammer(fn, 8, duration))
    finally:
        for close in closers:
            with contextlib.suppress(Exception):
                close()

    p50 = {name: percentile(v, 0.5) for name, v in lat.items()}
    best1 = {name: 1.0 / p50[name] for name in contenders}
    p99 = {name: percentile(v, 0.99) for name, v in lat.items()}
    frac1 = {n: sum(g for _, g in v) / sum(c for c, _ in v) for n, v in grants1.items()}
    dec8 = {name: max(c / e for c, _, e in v) for name, v in multi.items()}
    granted8 = {name: max(g / e for _, g, e in v) for name, v in multi.items()}
    granted8_med = {name: median([g / e for _, g, e in v]) for name, v in multi.items()}
    frac8 = {n: sum(g for _, g, _ in v) / max(1, sum(c for c, _, _ in v)) for n, v in multi.items()}

    rows = []
    for name in contenders:
        client, server, _ = trips[name]
        rows.append(
            (
                name,
                f"{client:.2f}",
                f"{server:.2f}",
                fmt_ns(p50[name] * 1e9),
                fmt_ns(p99[name] * 1e9),
                fmt_ns(min(cpu1[name]) * 1e9),
                fmt_ns(min(server_t[name]) * 1e9),
                fmt_rate(best1[name]),
                ratio(best1[name], best1[OURS]),
                f"{frac1[name] * 100:.1f} %",
            )
        )
    emit(
        f"### Redis rate limiters, 1 thread: round trips and latency per decision "
        f"({rounds} interleaved rounds of {per_round} calls)"
    )
    emit()
    emit(
        md_table(
            (
                "limiter",
                "replies read per decision (client)",
                "client commands per decision (server MONITOR)",
                "latency median",
                "latency p99",
                "client CPU per decision",
                "server time per decision",
                "decisions/s (1 / median latency)",
                "vs resilience",
                "granted",
            ),
            rows,
        )
    )
    emit()
    rows = []
    for name in contenders:
        rows.append(
            (
                name,
                fmt_rate(dec8[name]),
                f"{fmt_rate(granted8[name])} (median {fmt_rate(granted8_med[name])})",
                ratio(granted8[name], granted8[OURS]),
                f"{frac8[name] * 100:.1f} %",
            )
        )
    emit(f"### Redis rate limiters, 8 threads (best of {threaded_rounds} rounds of {duration:g} s)")
    emit()
    emit(
        md_table(
            (
                "limiter",
                "decisions/s",
                "granted decisions/s",
                "vs resilience",
                "granted / allowed",
            ),
            rows,
        )
    )
    emit()
    emit(
        "> Same redis-server (private, 127.0.0.1, no persistence), same run, limit 10^6/s so "
        "that every call is allowed.  Server-side counts name the contender's key, so they "
        "cover what each decision sends; pyrate-limiter's background leak thread and "
        "limits' connection setup are outside the timed calls.  A decision through "
        "pyrate-limiter's `Limiter` that finds its lock taken is refused locally without "
        "asking Redis: hence its granted share under 8 threads."
    )
    emit()
    if ERRORS:
        emit("> Errors (counted as refusals): " + ", ".join(f"{k} x{v}" for k, v in ERRORS.items()))
        emit()

    client, server, _ = trips[OURS]
    TARGETS.append(
        Target(
            "exactly one round trip per decision",
            f"{client:.2f} replies read per decision (client), "
            f"{server:.2f} commands per decision (server)",
            abs(client - 1.0) < 1e-9 and abs(server - 1.0) < 1e-9,
        )
    )
    # Verdicts on per-round paired ratios (ours / peer throughput), against the strongest peer.
    peers = [n for n in contenders if n != OURS]
    vs1 = {n: paired_ratio(lat_rounds[n], lat_rounds[OURS]) for n in peers}
    worst1 = min(peers, key=lambda n: vs1[n])
    TARGETS.append(
        Target(
            "throughput >= every peer, 1 thread",
            f"{fmt_rate(best1[OURS])} vs {fmt_rate(best1[worst1])} ({worst1}; per-round median "
            f"ratio {vs1[worst1]:.2f}x)",
            vs1[worst1] >= 1.0,
        )
    )
    per_round8 = {n: [g / e for _, g, e in multi[n]] for n in contenders}
    vs8 = {n: paired_ratio(per_round8[OURS], per_round8[n]) for n in peers}
    worst8 = min(peers, key=lambda n: vs8[n])
    TARGETS.append(
        Target(
            "granted decisions/s >= every peer, 8 threads",
            f"{fmt_rate(granted8[OURS])} vs {fmt_rate(granted8[worst8])} ({worst8}; per-round "
            f"median ratio {vs8[worst8]:.2f}x)",
            vs8[worst8] >= 1.0,
        )
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=12, help="interleaved rounds (default 12)")
    parser.add_argument("--quick", action="store_true", help="fewer rounds, shorter runs")
    args = parser.parse_args(argv)
    logging.disable(logging.WARNING)
    started = perf_counter()
    emit("## bench_redis: shared rate limits on Redis (resilience vs pyrate-limiter, limits)")
    emit()
    emit(f"> {machine_line()}")
    emit()
    try:
        server = redis_server()
        port = server.__enter__()
    except FileNotFoundError:
        emit("> Skipped: no `redis-server` binary on PATH (apt-get install redis-server).")
        return 0
    try:
        out = subprocess.run(
            ["redis-server", "--version"], capture_output=True, text=True, check=False
        ).stdout.split()
        version = next((w for w in out if w.startswith("v=")), "v=?")[2:]
        emit(f"> redis-server {version} on 127.0.0.1:{port} (private, started by this script)")
        emit()
        if args.quick:
            run(port, rounds=2, per_round=300, threaded_rounds=1, duration=0.5)
        else:
            run(port, rounds=args.rounds, per_round=300, threaded_rounds=6, duration=0.4)
    finally:
        server.__exit__(None, None, None)
    emit("### Targets (issue 6)")
    emit()
    emit(verdict_table(TARGETS))
    emit()
    emit(f"> bench_redis ran in {perf_counter() - started:.0f} s.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
