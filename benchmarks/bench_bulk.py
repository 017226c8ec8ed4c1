"""Bulk download benchmark: ``get_hist_many`` vs a tvDatafeed-style sequential loop.

Setup: the fake TradingView server (``python -m tvadapter.testing``) in its own process on
127.0.0.1 with 50 ms added latency on every message it sends; 50 symbols x 5,000 one-minute
bars (anonymous: one round each).  Both sides obey the same rate limit (a
:class:`resilience.TokenBucket` of ``--rpm`` per minute, burst ``--burst``).

* baseline: tvDatafeed's ``get_hist`` (``_tvdatafeed_style.py``: new connection per call, the
  setup frames of PROTOCOL §8, ``recv`` until ``series_completed``, regex parsing), in a loop;
* ``TvDatafeed.get_hist`` in a loop (one reused connection), for reference;
* ``get_hist_many`` (one connection, ``--concurrency`` chart sessions in flight).

The bound: whatever the client, N requests under a bucket of rate r and burst b need at least
``(N - b) / r`` seconds after the first, plus the latency of the connection's hello and of the
last answer: ``T_min = 2 * latency + max(0, N - b) / r``.  The server's own CPU time for the run
(read from /proc when available) is printed too: on a small machine it, not the rate limit,
may be the floor.  The server's caches are warmed with the measured series first (it caches the
bars it generated), so no run pays for generating them.

Prints a markdown table.  ``python benchmarks/bench_bulk.py --help`` for the knobs; the default
run takes well under 3 minutes.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _tvdatafeed_style import tvdatafeed_get_hist

from resilience import TokenBucket
from tvadapter import NetworkConfig, TvDatafeed
from tvadapter._bulk import get_hist_many

#: A spread of exchanges from the fake server's catalogue (trading calendars differ).
BASKET = [
    "NASDAQ:AAPL", "NASDAQ:MSFT", "NASDAQ:NVDA", "NASDAQ:AMZN", "NASDAQ:GOOGL",
    "NASDAQ:META", "NASDAQ:TSLA", "NASDAQ:NFLX", "NASDAQ:AMD", "NASDAQ:INTC",
    "NYSE:JPM", "NYSE:V", "NYSE:JNJ", "NYSE:WMT", "NYSE:PG",
    "NYSE:XOM", "NYSE:KO", "NYSE:IBM", "NYSE:GE", "NYSE:BA",
    "NSE:RELIANCE", "NSE:TCS", "NSE:HDFCBANK", "NSE:INFY", "NSE:SBIN",
    "NSE:ITC", "NSE:LT", "NSE:WIPRO", "BSE:SENSEX", "NSE:NIFTY",
    "BINANCE:BTCUSDT", "BINANCE:ETHUSDT", "BINANCE:SOLUSDT", "BINANCE:XRPUSDT", "BINANCE:BNBUSDT",
    "BITSTAMP:BTCUSD", "COINBASE:ETHUSD", "OANDA:EURUSD", "FX:GBPUSD", "OANDA:USDJPY",
    "OANDA:XAUUSD", "CME_MINI:ES1!", "COMEX:GC1!", "NYMEX:CL1!", "CBOT:ZC1!",
    "XETR:SAP", "LSE:HSBA", "KRX:005930", "HOSE:VCB", "SP:SPX",
]  # fmt: skip


def start_server(latency: float) -> tuple[subprocess.Popen[str], str]:
    """The fake server in a child process; returns it and its ws URL."""
    command = [
        sys.executable, "-m", "tvadapter.testing", "--port", "0",
        "--latency", str(latency), "--heartbeat-interval", "10",
    ]  # fmt: skip
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        if line.strip().startswith("TV_WS_URL="):
            return proc, line.strip().split("=", 1)[1]
    proc.kill()
    raise RuntimeError("the fake server did not start")


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of process ``pid`` (Linux /proc), None elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def timed(func: Callable[[], Any], pid: int) -> tuple[float, float | None, Any]:
    cpu0 = cpu_seconds(pid)
    t0 = time.perf_counter()
    out = func()
    wall = time.perf_counter() - t0
    cpu1 = cpu_seconds(pid)
    return wall, (None if cpu0 is None or cpu1 is None else cpu1 - cpu0), out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--symbols", type=int, default=50, help="how many symbols (<= 50)")
    parser.add_argument("--bars", type=int, default=5_000)
    parser.add_argument("--interval", default="1")
    parser.add_argument("--latency", type=float, default=0.05, help="seconds per message")
    parser.add_argument("--rpm", type=int, default=1_200, help="rate limit, requests/minute")
    parser.add_argument("--burst", type=int, default=10, help="rate limit burst")
    parser.add_argument("--concurrency", type=int, default=8, help="get_hist_many in flight")
    parser.add_argument("--skip-loop", action="store_true", help="skip the get_hist loop")
    args = parser.parse_args(argv)
    symbols = BASKET[: args.symbols]
    n = len(symbols)
    rate = args.rpm / 60.0

    proc, ws_url = start_server(args.latency)
    try:
        config = NetworkConfig(
            ws_url=ws_url,
            requests_per_minute=args.rpm,
            burst_size=args.burst,
            progress_timeout=30.0,
            request_deadline=120.0,
            base_retry_delay=0.1,
            max_retry_delay=1.0,
        )
        origin = config.origin

        def baseline() -> dict[str, Any]:
            bucket = TokenBucket(rate, args.burst)
            out = {}
            for symbol in symbols:
                bucket.acquire()
                out[symbol] = tvdatafeed_get_hist(ws_url, origin, symbol, args.interval, args.bars)
            return out

        def loop() -> dict[str, Any]:
            with TvDatafeed(config=config) as client:
                return {
                    s: client.get_hist(s, interval=args.interval, n_bars=args.bars) for s in symbols
                }

        single: list[float] = []

        def bulk() -> Any:
            with TvDatafeed(config=config) as client:
                result = get_hist_many(
                    client,
                    symbols,
                    interval=args.interval,
                    n_bars=args.bars,
                    max_concurrency=args.concurrency,
                    progress=False,
                )
                return result

        def single_requests() -> None:
            """Single-request latency on a warm connection, for the record."""
            with TvDatafeed(config=config) as client:
                client.get_hist(symbols[0], interval=args.interval, n_bars=10)
                for symbol in symbols[:3]:
                    t0 = time.perf_counter()
                    client.get_hist(symbol, interval=args.interval, n_bars=args.bars)
                    single.append(time.perf_counter() - t0)

        # Warm the server's caches (timelines and bar values: the fake server caches what it
        # generated) with the very series measured, so that no side pays for generating them
        # and the order of the runs does not matter.
        with TvDatafeed(config=config.replace(requests_per_minute=60_000, burst_size=100)) as c:
            get_hist_many(c, symbols, interval=args.interval, n_bars=args.bars, progress=False)

        base_wall, base_cpu, base_out = timed(baseline, proc.pid)
        loop_wall = loop_cpu = None
        if not args.skip_loop:
            loop_wall, loop_cpu, _ = timed(loop, proc.pid)
        bulk_wall, bulk_cpu, result = timed(bulk, proc.pid)
        single_requests()
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()

    # Correctness: both sides got the same bars (the baseline's index is naive local time).
    mismatched = []
    for symbol in symbols:
        ours = result.ok.get(symbol)
        theirs = base_out.get(symbol)
        if (
            ours is None
            or theirs is None
            or len(ours) != len(theirs)
            or not np.array_equal(ours["close"].to_numpy(), theirs["close"].to_numpy())
        ):
            mismatched.append(symbol)
    bars = result.bars
    # The bound: first request at once, the other N - b spaced 1/r apart, plus the latency of
    # the connection's hello and of the last answer.
    spacing = max(0, n - args.burst) / rate
    bound = 2 * args.latency + spacing
    single_latency = min(single) if single else float("nan")

    print(
        f"\n### get_hist_many vs tvDatafeed-style loop: {n} symbols x {args.bars:,} bars, "
        f"{args.latency * 1000:.0f} ms latency per message, limit {args.rpm}/min burst "
        f"{args.burst}\n"
    )
    print("| method | wall time (s) | ms / symbol | speed-up vs baseline | server CPU (s) |")
    print("|---|---:|---:|---:|---:|")

    def cpu(x: float | None) -> str:
        return "n/a" if x is None else f"{x:.2f}"

    print(
        f"| tvDatafeed-style loop (new connection per call, regex) | {base_wall:.2f} | "
        f"{base_wall / n * 1000:.0f} | 1.0x | {cpu(base_cpu)} |"
    )
    if loop_wall is not None:
        print(
            f"| TvDatafeed.get_hist loop (one reused connection) | {loop_wall:.2f} | "
            f"{loop_wall / n * 1000:.0f} | {base_wall / loop_wall:.1f}x | {cpu(loop_cpu)} |"
        )
    print(
        f"| **get_hist_many** ({args.concurrency} in flight, one connection) | "
        f"**{bulk_wall:.2f}** | {bulk_wall / n * 1000:.0f} | **{base_wall / bulk_wall:.1f}x** | "
        f"{cpu(bulk_cpu)} |"
    )
    print(
        f"| bound set by rate limit + latency | {bound:.2f} | {bound / n * 1000:.0f} | "
        f"{base_wall / bound:.1f}x | - |"
    )
    print()
    print(
        f"- bound: 2 x {args.latency * 1000:.0f} ms latency + ({n} - {args.burst}) / "
        f"{rate:g} per s = {bound:.2f} s; get_hist_many took {bulk_wall:.2f} s "
        f"({bulk_wall - bound:+.2f} s, {bulk_wall / bound:.2f}x the bound)"
    )
    if bulk_cpu:
        print(
            f"- the fake server (one asyncio thread) spent {bulk_cpu:.2f} s of CPU serving the "
            f"batch (serialising and sending): no client finishes sooner on this machine; "
            f"get_hist_many took {bulk_wall / bulk_cpu:.1f}x that"
        )
    with contextlib.suppress(OSError, AttributeError):
        load = os.getloadavg()
        print(f"- machine: {os.cpu_count()} CPUs, load average {load[0]:.1f} during the run")
    print(f"- single get_hist of {args.bars:,} bars on a warm connection: {single_latency:.3f} s")
    print(f"- get_hist_many: {result.summary()}")
    print(f"- {bars:,} bars; results identical to the baseline's: {n - len(mismatched)}/{n}")
    print(f"- target >= 5x less wall time: {'met' if base_wall / bulk_wall >= 5 else 'NOT met'}")
    return 0 if not mismatched and result.all_ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
