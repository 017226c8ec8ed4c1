"""Tests of the main job, ``tvadapter demo`` (tvadapter._demo), end to end and offline."""

from __future__ import annotations

import io
import json
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tvadapter import cli
from tvadapter._demo import DEFAULT_BARS, DEFAULT_BASKET, DEFAULT_INTERVAL, run_demo
from tvadapter.testing import FakeTradingView


def assert_file_matches_server(frame: pd.DataFrame, tv: FakeTradingView, n: int, res: str) -> None:
    """Every symbol's rows in ``frame`` equal the server's bars, value by value."""
    for symbol, rows in frame.groupby("symbol", sort=False):
        truth = tv.bars(str(symbol), res, n)
        assert len(rows) == len(truth), symbol
        times = pd.to_datetime([b.time for b in truth], unit="s", utc=True)
        assert (pd.DatetimeIndex(rows.index) == times).all(), symbol
        for column in ("open", "high", "low", "close"):
            expected = np.array([getattr(b, column) for b in truth])
            assert np.array_equal(rows[column].to_numpy(dtype=float), expected), symbol
        volume = np.array([np.nan if b.volume is None else b.volume for b in truth])
        assert np.array_equal(rows["volume"].to_numpy(dtype=float), volume, equal_nan=True)


@pytest.mark.slow
def test_demo_end_to_end_with_faults(tmp_path: Path) -> None:
    """The full demo survives its 429, drop and latency, verifies 12/12 and writes the truth."""
    data_end = time.time() - 3 * 3600  # pinned, so the ground truth can be rebuilt below
    out, err = io.StringIO(), io.StringIO()
    path = tmp_path / "out" / "demo.csv"
    before = set(threading.enumerate())
    report = run_demo(output=path, data_end=data_end, out=out, err=err)
    text = out.getvalue()
    assert report.exit_code == 0, text
    assert f"verified: {len(DEFAULT_BASKET)}/{len(DEFAULT_BASKET)} series identical" in text
    # The faults happened and the resilience layer handled them.
    assert report.handshakes_rejected == 1
    assert report.connection_attempts == 3
    assert report.metrics.reconnects >= 1 and report.metrics.retries >= 1
    assert "connection attempt 1: refused with HTTP 429" in text
    assert "cut by the server (close 1006)" in text
    assert "circuit breaker: closed" in text
    # The summary table has one row per symbol with its last close.
    for item in report.result:
        assert item.frame is not None
        line = next(li for li in text.splitlines() if li.strip().startswith(item.key + " "))
        assert f"{item.frame['close'].iloc[-1]:,.4f}" in line
    # The file holds exactly the server's data (an independent server with the same data end).
    frame = pd.read_csv(path, index_col="datetime")
    frame.index = pd.to_datetime(frame.index, utc=True)
    assert list(frame["symbol"].unique()) == list(DEFAULT_BASKET)
    assert len(frame) == report.rows_written == len(DEFAULT_BASKET) * DEFAULT_BARS
    assert_file_matches_server(frame, FakeTradingView(data_end=data_end), DEFAULT_BARS, "1H")
    assert DEFAULT_INTERVAL == "1H"
    # No thread outlives the demo.
    deadline = time.monotonic() + 5
    while [t for t in threading.enumerate() if t not in before and t.is_alive()]:
        assert time.monotonic() < deadline, threading.enumerate()
        time.sleep(0.02)


def test_demo_command_small_basket_json(tmp_path: Path) -> None:
    """`tvadapter demo` with a small basket writes JSON and exits 0 with the report printed."""
    out, err = io.StringIO(), io.StringIO()
    path = tmp_path / "demo.json"
    code = cli.main(
        ["demo", "--symbols", "NASDAQ:AAPL", "NSE:TCS", "BINANCE:ETHUSDT", "--bars", "60",
         "--interval", "15", "-o", str(path), "--no-progress"],
        stdout=out,
        stderr=err,
        environ={},
    )  # fmt: skip
    text = out.getvalue()
    assert code == 0, text + err.getvalue()
    assert "verified: 3/3 series identical to the server" in text
    assert "what the resilience layer did:" in text and "rate limiter (" in text
    records = json.loads(path.read_text())
    assert len(records) == 180
    assert {r["symbol"] for r in records} == {"NASDAQ:AAPL", "NSE:TCS", "BINANCE:ETHUSDT"}


def test_demo_without_faults_parquet(tmp_path: Path) -> None:
    """--no-faults runs clean (one connection, no retries); parquet output when pyarrow exists."""
    pytest.importorskip("pyarrow")
    out = io.StringIO()
    path = tmp_path / "demo.parquet"
    data_end = time.time() - 86_400
    report = run_demo(
        symbols=["NYSE:KO", "OANDA:EURUSD"],
        n_bars=25,
        output=path,
        faults=False,
        progress=False,
        data_end=data_end,
        out=out,
        err=io.StringIO(),
    )
    assert report.exit_code == 0
    assert report.metrics.retries == 0 and report.connection_attempts == 1
    frame = pd.read_parquet(path)
    assert_file_matches_server(frame, FakeTradingView(data_end=data_end), 25, "1H")


def test_demo_unknown_symbol_exits_1(tmp_path: Path) -> None:
    """A basket with an unknown symbol still writes the rest but exits 1."""
    out = io.StringIO()
    code = cli.main(
        ["demo", "--symbols", "NASDAQ:AAPL", "NASDAQ:NOPE", "--bars", "5", "--no-faults",
         "-o", str(tmp_path / "d.csv"), "--no-progress"],
        stdout=out,
        stderr=io.StringIO(),
        environ={},
    )  # fmt: skip
    assert code == 1
    assert "verified: 1/2" in out.getvalue() and "FAILED NASDAQ:NOPE" in out.getvalue()
    assert len(pd.read_csv(tmp_path / "d.csv")) == 5


def test_demo_bad_output_is_a_usage_error(tmp_path: Path) -> None:
    """An output file the demo cannot write as a known format exits 2 before starting."""
    err = io.StringIO()
    code = cli.main(
        ["demo", "-o", str(tmp_path / "demo.xlsx")], stdout=io.StringIO(), stderr=err, environ={}
    )
    assert code == cli.EXIT_USAGE and "--output" in err.getvalue()
