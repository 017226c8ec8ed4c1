"""End to end: 20 symbols x 5,000 bars fetched one after another, against a slow server.

The fake TradingView server (``python -m tvadapter.testing``, run as a separate process so that
its CPU time is not ours) adds 50 ms of latency to every message it sends.  Compared side by
side, in one run, with the same generous rate limit (a token bucket of 100 requests/s):

* **tvadapter**: one ``TvDatafeed``, ``get_hist`` called 20 times in a row; it keeps its
  connection and chart sessions are created and deleted per request;
* **tvDatafeed-style**: ``benchmarks/_tvdatafeed_style.py`` -- a new websocket-client
  connection per call, the nine setup frames of PROTOCOL.md §8, ``recv`` until a message
  contains ``series_completed``, regex parsing.

Both are run twice, alternately; the table shows the best and the median of the runs, the
per-request latency (median over all requests, and the first request of a run, which for
tvadapter includes opening the connection) and single-request latency for a 10-bar request.
Results are checked: both clients must return the same closes for every symbol.

Target: tvadapter at least 2x less wall time.  Run: ``.venv/bin/python benchmarks/bench_e2e.py``.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _tvdatafeed_style import tvdatafeed_get_hist

from resilience import TokenBucket
from tvadapter import NetworkConfig, TvDatafeed

_TICKERS = (
    "AAPL", "MSFT", "NVDA", "AMZN", "GOOGL", "GOOG", "META", "TSLA", "AVGO", "COST",
    "NFLX", "AMD", "PEP", "ADBE", "CSCO", "INTC", "CMCSA", "QCOM", "TXN", "AMGN",
)  # fmt: skip
SYMBOLS = [f"NASDAQ:{ticker}" for ticker in _TICKERS]
INTERVAL = "1"
N_BARS = 5_000
LATENCY = 0.05
RUNS = 2
ORIGIN = "https://www.tradingview.com"
RATE = 100.0  # requests per second, both clients


def start_server() -> tuple[subprocess.Popen[str], str]:
    """The fake server in its own process; returns it and its WebSocket URL."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-u",
            "-m",
            "tvadapter.testing",
            "--port",
            "0",
            "--latency",
            str(LATENCY),
            "--heartbeat-interval",
            "10",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    url = line.split()[-1]
    if not url.startswith("ws://127.0.0.1:"):
        proc.kill()
        raise RuntimeError(f"fake server did not start: {line!r}")
    return proc, url


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, value


def run_ours(url: str, n_bars: int) -> tuple[float, list[float], dict[str, Any]]:
    """Total seconds, per-request seconds and the frames, for the 20 symbols."""
    config = NetworkConfig(
        ws_url=url,
        requests_per_minute=int(RATE * 60),
        burst_size=int(RATE),
        request_deadline=60.0,
    )
    latencies: list[float] = []
    frames: dict[str, Any] = {}
    start = time.perf_counter()
    with TvDatafeed(config=config) as client:
        for symbol in SYMBOLS:
            seconds, frame = timed(
                lambda s=symbol: client.get_hist(s, interval=INTERVAL, n_bars=n_bars)
            )
            latencies.append(seconds)
            frames[symbol] = frame
    return time.perf_counter() - start, latencies, frames


def run_baseline(url: str, n_bars: int) -> tuple[float, list[float], dict[str, Any]]:
    bucket = TokenBucket(RATE, RATE)
    latencies: list[float] = []
    frames: dict[str, Any] = {}
    start = time.perf_counter()
    for symbol in SYMBOLS:
        bucket.acquire()
        seconds, frame = timed(
            lambda s=symbol: tvdatafeed_get_hist(url, ORIGIN, s, INTERVAL, n_bars)
        )
        latencies.append(seconds)
        frames[symbol] = frame
    return time.perf_counter() - start, latencies, frames


def single_latency(url: str, runs: int = 7) -> tuple[float, float]:
    """Median seconds of one 10-bar request: tvadapter (warm connection) and the baseline."""
    config = NetworkConfig(ws_url=url, requests_per_minute=6000, burst_size=100)
    ours: list[float] = []
    theirs: list[float] = []
    with TvDatafeed(config=config) as client:
        client.get_hist("NASDAQ:AAPL", n_bars=10)  # connect
        for _ in range(runs):
            ours.append(timed(lambda: client.get_hist("NASDAQ:AAPL", n_bars=10))[0])
            theirs.append(
                timed(lambda: tvdatafeed_get_hist(url, ORIGIN, "NASDAQ:AAPL", "1D", 10))[0]
            )
    return statistics.median(ours), statistics.median(theirs)


def check_same(ours: dict[str, Any], theirs: dict[str, Any]) -> None:
    for symbol in SYMBOLS:
        a, b = ours[symbol], theirs[symbol]
        assert b is not None, f"baseline got no data for {symbol}"
        assert len(a) == len(b) == N_BARS, (symbol, len(a), len(b))
        assert np.array_equal(a["close"].to_numpy(), b["close"].to_numpy()), symbol


def main() -> None:
    proc, url = start_server()
    try:
        results: dict[str, list[tuple[float, list[float]]]] = {
            "tvadapter": [],
            "tvDatafeed-style": [],
        }
        checked = False
        for _ in range(RUNS):
            total, per, ours_frames = run_ours(url, N_BARS)
            results["tvadapter"].append((total, per))
            total, per, their_frames = run_baseline(url, N_BARS)
            results["tvDatafeed-style"].append((total, per))
            if not checked:
                check_same(ours_frames, their_frames)
                checked = True
        small_ours, small_theirs = single_latency(url)
    finally:
        proc.terminate()
        proc.wait(timeout=10)

    load = Path("/proc/loadavg").read_text()[:14]
    print(
        f"# bench_e2e: {len(SYMBOLS)} symbols x {N_BARS:,} one-minute bars, sequential, "
        f"{LATENCY * 1000:.0f} ms server latency per message"
    )
    print(f"\n{RUNS} runs each, alternating; load average {load}; results checked equal.\n")
    print(
        "| client | best total (s) | median total (s) | per request, median (ms) "
        "| first request (ms) |"
    )
    print("|---|---:|---:|---:|---:|")
    summary: dict[str, float] = {}
    for name, runs in results.items():
        totals = [t for t, _ in runs]
        per = [x for _, p in runs for x in p]
        firsts = [p[0] for _, p in runs]
        summary[name] = statistics.median(totals)
        print(
            f"| {name} | {min(totals):.2f} | {statistics.median(totals):.2f} | "
            f"{statistics.median(per) * 1000:.0f} | {statistics.median(firsts) * 1000:.0f} |"
        )
    ratio = summary["tvDatafeed-style"] / summary["tvadapter"]
    best_ratio = min(t for t, _ in results["tvDatafeed-style"]) / min(
        t for t, _ in results["tvadapter"]
    )
    verdict = "meets" if ratio >= 2 else "MISSES"
    print(
        f"\ntvadapter takes **{ratio:.2f}x** less wall time (median; {best_ratio:.2f}x best "
        f"vs best); target >= 2x: {verdict}."
    )
    print("\n| single 10-bar request | median latency (ms) |")
    print("|---|---:|")
    print(f"| tvadapter (connection reused) | {small_ours * 1000:.0f} |")
    print(f"| tvDatafeed-style (new connection) | {small_theirs * 1000:.0f} |")


if __name__ == "__main__":
    main()
