"""The main job, offline: ``tvadapter demo`` (what ``make demo`` runs).

1. Starts the bundled fake TradingView server (:mod:`tvadapter.testing`) in this process, on
   127.0.0.1, with faults switched on: the first connection attempt is refused with HTTP 429
   (``Retry-After: 1``), the first accepted connection is cut mid-stream (an abrupt 1006 drop
   after a few series packets), and every message is delayed by 20-50 ms.
2. Points a :class:`~tvadapter.TvDatafeed` at it (a :class:`~tvadapter.NetworkConfig` with the
   fake's URLs and Origin, and a rate limit of 240 requests/minute with a burst of 4 so the
   limiter visibly paces the batch yet the demo stays well under 20 s).
3. Downloads a basket of symbols across exchanges through the full stack with
   ``get_hist_many`` (progress bar on a terminal): rate limiter, circuit breaker, retries with
   backoff, reconnects, integrity checks.
4. Prints what the resilience layer did (from ``client.metrics()`` and the server's counters),
   a summary table, and verifies every series against the server's ground truth.
5. Writes the data to a file (CSV by default; ``.json``, or ``.parquet`` when pyarrow is
   installed) and exits 0 -- or 1 if anything failed or differed.

Needs no network access: nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
import pandas as pd

from ._bulk import BulkResult
from ._client import TvDatafeed
from ._metrics import ClientMetrics
from .cli import FORMATS, UsageError, write_frame
from .config import NetworkConfig
from .interval import resolution

__all__ = [
    "DEFAULT_BARS",
    "DEFAULT_BASKET",
    "DEFAULT_INTERVAL",
    "DEFAULT_OUTPUT",
    "DemoReport",
    "add_arguments",
    "run",
    "run_demo",
]

#: Twelve symbols on eleven exchanges: US stocks, India, crypto, forex, futures, Europe, Korea.
DEFAULT_BASKET = (
    "NASDAQ:AAPL",
    "NASDAQ:MSFT",
    "NYSE:JPM",
    "NSE:RELIANCE",
    "BSE:TCS",
    "BINANCE:BTCUSDT",
    "COINBASE:ETHUSD",
    "OANDA:EURUSD",
    "COMEX:GC1!",
    "XETR:SAP",
    "LSE:HSBA",
    "KRX:005930",
)
DEFAULT_INTERVAL = "1H"
DEFAULT_BARS = 1_000
DEFAULT_OUTPUT = "out/demo.csv"
#: The rate limit of the demo's client (requests/minute, burst).
DEMO_RPM = 240
DEMO_BURST = 4
#: The first accepted connection is cut after this many series packets (mid-stream).
DROP_AFTER = 10


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The demo's options (``tvadapter demo --help``)."""
    parser.add_argument(
        "-o",
        "--output",
        default=DEFAULT_OUTPUT,
        metavar="FILE",
        help=f"where to write the data: .csv, .json or .parquet ({DEFAULT_OUTPUT})",
    )
    parser.add_argument(
        "--format", choices=("csv", "json", "parquet"), help="override the file format"
    )
    parser.add_argument(
        "--symbols",
        nargs="+",
        metavar="EX:SYM",
        default=list(DEFAULT_BASKET),
        help="the basket (default: 12 symbols on 11 exchanges)",
    )
    parser.add_argument("--interval", default=DEFAULT_INTERVAL, help="bar interval (1H)")
    parser.add_argument(
        "--bars", type=int, default=DEFAULT_BARS, metavar="N", help="bars per symbol (1000)"
    )
    parser.add_argument(
        "--no-faults", action="store_true", help="run without the 429, the drop and the latency"
    )
    bar = parser.add_mutually_exclusive_group()
    bar.add_argument("--progress", action="store_true", default=None, help="always show progress")
    bar.add_argument(
        "--no-progress", dest="progress", action="store_false", help="never show progress"
    )


@dataclass(frozen=True, eq=False)
class DemoReport:
    """What a demo run did (for tests and callers). Immutable."""

    result: BulkResult
    metrics: ClientMetrics
    verified: int
    mismatched: tuple[str, ...]
    output: Path
    rows_written: int
    elapsed: float
    connection_attempts: int
    handshakes_rejected: int
    exit_code: int


def _faults(enabled: bool) -> tuple[Any, ...]:
    if not enabled:
        return ()
    from .testing import Drop, Latency, RejectHandshake  # noqa: PLC0415 - needs websockets

    return (
        RejectHandshake(429, retry_after=1.0, attempts=1),
        Drop(after=DROP_AFTER, code=1006, attempts=2),
        Latency(0.02, jitter=0.03),
    )


def _same(frame: pd.DataFrame, truth: Sequence[Any]) -> bool:
    """``frame`` holds exactly the bars of ``truth`` (protocol Bars), value by value."""
    if len(frame) != len(truth):
        return False
    times = np.array([b.time for b in truth], dtype=np.float64)
    got = pd.DatetimeIndex(frame.index).asi8.astype(np.float64) / 1e9
    if not np.array_equal(got, times):
        return False
    for column in ("open", "high", "low", "close"):
        expected = np.array([getattr(b, column) for b in truth], dtype=np.float64)
        if not np.array_equal(frame[column].to_numpy(dtype=np.float64), expected):
            return False
    volume = np.array([np.nan if b.volume is None else b.volume for b in truth], dtype=np.float64)
    return bool(np.array_equal(frame["volume"].to_numpy(dtype=np.float64), volume, equal_nan=True))


def _fmt_seconds(value: float | None) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:.2f} s"


def _table(rows: list[list[str]], out: IO[str]) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    right = {1, 4}
    for n, row in enumerate(rows):
        cells = [
            cell.rjust(widths[i]) if i in right else cell.ljust(widths[i])
            for i, cell in enumerate(row)
        ]
        out.write("  " + "  ".join(cells).rstrip() + "\n")
        if n == 0:
            out.write("  " + "  ".join("-" * w for w in widths) + "\n")


def run_demo(
    *,
    symbols: Sequence[str] = DEFAULT_BASKET,
    interval: str = DEFAULT_INTERVAL,
    n_bars: int = DEFAULT_BARS,
    output: str | Path = DEFAULT_OUTPUT,
    fmt: str | None = None,
    faults: bool = True,
    progress: bool | None = None,
    data_end: float | None = None,
    out: IO[str],
    err: IO[str],
) -> DemoReport:
    """Run the demo (see the module docstring), printing to ``out`` (progress on ``err``).

    ``data_end`` pins the fake server's newest bar (epoch seconds; default: now), so that a
    test can rebuild the same ground truth afterwards.
    """
    try:
        from .testing import FakeTradingView  # noqa: PLC0415 - the testing extra
    except ImportError as exc:
        raise UsageError(
            f"the demo needs the testing extra (pip install 'tvadapter[testing]'): {exc}"
        ) from None
    code = resolution(interval)
    if isinstance(n_bars, bool) or not isinstance(n_bars, int) or n_bars < 1:
        raise UsageError(f"--bars: must be an int >= 1, got {n_bars!r}")
    path = Path(output)
    file_format = fmt or FORMATS.get(path.suffix.lower())
    if file_format is None:
        raise UsageError(f"--output: use .csv, .json or .parquet, or --format (got {path})")
    if file_format == "parquet":
        try:
            import pyarrow  # noqa: F401, PLC0415 - optional extra
        except ImportError:
            raise UsageError(
                "parquet output needs pyarrow: pip install 'tvadapter[parquet]'"
            ) from None
    began = time.monotonic()
    with FakeTradingView(heartbeat_interval=1.0, faults=_faults(faults), data_end=data_end) as tv:
        config = NetworkConfig(
            ws_url=tv.ws_url,
            origin=tv.origin,
            search_url=tv.search_url,
            signin_url=tv.signin_url,
            totp_url=tv.totp_url,
            home_url=tv.homepage_url,
            requests_per_minute=DEMO_RPM,
            burst_size=DEMO_BURST,
            connect_timeout=3.0,
            recv_timeout=5.0,
            progress_timeout=5.0,
            request_deadline=30.0,
            max_retries=4,
            base_retry_delay=0.25,
            max_retry_delay=2.0,
        )
        out.write(f"tvadapter demo: a fake TradingView server on {tv.ws_url} (offline)\n")
        if faults:
            out.write(
                "  faults on: HTTP 429 (Retry-After 1 s) on connection attempt 1, an abrupt "
                f"drop (1006) after {DROP_AFTER} series packets\n  on attempt 2, 20-50 ms "
                "latency on every message\n"
            )
        out.write(
            f"downloading {len(symbols)} symbols x {n_bars:,} bars ({code}) with "
            f"TvDatafeed.get_hist_many: one connection, rate limit {DEMO_RPM}/min "
            f"(burst {DEMO_BURST})\n"
        )
        out.flush()
        with TvDatafeed(config=config) as client:
            result = client.get_hist_many(
                list(symbols), interval=code, n_bars=n_bars, progress=progress, progress_stream=err
            )
            metrics = client.metrics()
        stats = tv.stats()
        log = tv.connection_log()
        mismatched: list[str] = []
        verified = 0
        for key, frame in result.ok.items():
            if _same(frame, tv.bars(key, code, n_bars)):
                verified += 1
            else:
                mismatched.append(key)

    # -- what the resilience layer did --------------------------------------------------------
    out.write("\nwhat the resilience layer did:\n")
    for record in log:
        if record.status != 101:
            what = f"refused with HTTP {record.status} -> waited and retried"
        elif record.close_code is not None:
            what = (
                f"accepted, {record.requests} requests, then cut by the server "
                f"(close {record.close_code}) -> in-flight requests retried on a new connection"
            )
        else:
            what = f"accepted, {record.requests} requests, heartbeats echoed"
        out.write(f"  connection attempt {record.attempt}: {what}\n")
    errors = ", ".join(f"{k} x{v}" for k, v in sorted(metrics.errors_by_kind.items())) or "none"
    admission_waits = sum(1 for item in result if item.waited > 0.001)
    out.write(
        f"  requests: {metrics.requests} get_hist calls, {metrics.attempts} attempts, "
        f"{metrics.retries} retries (errors: {errors})\n"
        f"  connections: {metrics.connections} opened, {metrics.reconnects} reconnect(s), "
        f"{metrics.connections_lost} lost; handshakes rejected by the server: "
        f"{stats.handshakes_rejected}\n"
        f"  rate limiter ({DEMO_RPM}/min, burst {DEMO_BURST}): {metrics.rounds} rounds sent; "
        f"{admission_waits} request(s) waited for a slot before starting and "
        f"the client's limiter held back {metrics.rate_limited} round(s) (retries)\n"
        f"    (waits summed over requests: "
        f"{result.rate_limit_wait + metrics.rate_limit_wait:.2f} s)\n"
        f"  circuit breaker: {metrics.circuit_state}\n"
        f"  heartbeats echoed: {metrics.heartbeats_echoed}; latency per series: p50 "
        f"{_fmt_seconds(metrics.p50)}, p90 {_fmt_seconds(metrics.p90)}, max "
        f"{_fmt_seconds(metrics.max_latency)}\n"
    )

    # -- summary table --------------------------------------------------------------------------
    out.write("\nsummary:\n")
    rows = [["symbol", "bars", "first (UTC)", "last (UTC)", "last close"]]
    for item in result:
        if item.frame is not None and len(item.frame):
            frame = item.frame
            rows.append(
                [
                    item.key,
                    f"{len(frame):,}",
                    frame.index[0].strftime("%Y-%m-%d %H:%M"),
                    frame.index[-1].strftime("%Y-%m-%d %H:%M"),
                    f"{frame['close'].iloc[-1]:,.4f}",
                ]
            )
        else:
            rows.append([item.key, "0", "-", "-", item.outcome])
    _table(rows, out)

    total = len(result)
    out.write(f"\nverified: {verified}/{total} series identical to the server\n")
    for key, error in result.failed.items():
        out.write(f"  FAILED {key}: {type(error).__name__}: {error}\n")
    for key in mismatched:
        out.write(f"  DIFFERENT {key}: the data does not match the server's\n")

    frame_all = result.concat()
    write_frame(frame_all, path, file_format)
    elapsed = time.monotonic() - began
    out.write(f"wrote {len(frame_all):,} rows to {path} ({file_format}) in {elapsed:.1f} s\n")
    out.flush()
    ok = result.all_ok and not mismatched and verified == total
    return DemoReport(
        result=result,
        metrics=metrics,
        verified=verified,
        mismatched=tuple(mismatched),
        output=path,
        rows_written=len(frame_all),
        elapsed=elapsed,
        connection_attempts=stats.connection_attempts,
        handshakes_rejected=stats.handshakes_rejected,
        exit_code=0 if ok else 1,
    )


def run(args: argparse.Namespace, *, out: IO[str], err: IO[str]) -> int:
    """``tvadapter demo``: run and return the exit code."""
    report = run_demo(
        symbols=args.symbols,
        interval=args.interval,
        n_bars=args.bars,
        output=args.output,
        fmt=args.format,
        faults=not args.no_faults,
        progress=args.progress,
        out=out,
        err=err,
    )
    return report.exit_code
