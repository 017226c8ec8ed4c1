"""Tests of the ``tvadapter`` command line (tvadapter.cli), in-process and via a subprocess."""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from tvadapter import cli
from tvadapter.errors import (
    AuthenticationError,
    CaptchaRequiredError,
    ConfigurationError,
    ConnectionClosed,
    CriticalError,
    DataIncompleteError,
    HandshakeForbidden,
    HandshakeRateLimited,
    HttpStatusError,
    MalformedPayloadError,
    RateLimitedError,
    SeriesError,
    SymbolNotFoundError,
    TokenExpiredError,
    TvCircuitOpenError,
    TvConnectionError,
    TvTimeoutError,
)
from tvadapter.testing import FakeTradingView, RejectHandshake

Factory = Callable[..., FakeTradingView]
ROOT = Path(__file__).resolve().parents[2]


def run_cli(*argv: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    """Run ``tvadapter argv`` in-process; (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(list(argv), stdout=out, stderr=err, environ=env or {})
    return code, out.getvalue(), err.getvalue()


def net(tv: FakeTradingView) -> list[str]:
    """Flags pointing the CLI at ``tv`` with a generous rate limit."""
    return ["--ws-url", tv.ws_url, "--search-url", tv.search_url, "--rpm", "6000"]


def assert_bars(frame: pd.DataFrame, truth: list[Any]) -> None:
    """``frame`` (read back from a file) holds exactly ``truth``'s times and prices."""
    assert len(frame) == len(truth)
    times = pd.to_datetime([b.time for b in truth], unit="s", utc=True)
    assert (pd.DatetimeIndex(frame.index) == times).all()
    for column in ("open", "high", "low", "close"):
        expected = np.array([getattr(b, column) for b in truth])
        assert np.array_equal(frame[column].to_numpy(dtype=float), expected), column


def read_back(path: Path) -> pd.DataFrame:
    """A file written by ``hist -o`` as a DataFrame indexed by UTC datetime."""
    frame: pd.DataFrame
    if path.suffix == ".csv":
        frame = pd.read_csv(path, index_col="datetime")
        frame.index = pd.to_datetime(frame.index, utc=True)
        return frame
    if path.suffix == ".json":
        records = json.loads(path.read_text())
        frame = pd.DataFrame(records)
        frame.index = pd.to_datetime(frame.pop("datetime"), utc=True)
        return frame
    parquet: pd.DataFrame = pd.read_parquet(path)
    return parquet


# -- help and usage -----------------------------------------------------------------------------


@pytest.mark.parametrize("command", [[], ["hist"], ["search"], ["live"], ["fake-server"], ["demo"]])
def test_help_everywhere(command: list[str]) -> None:
    """--help works for the program and every sub-command, with exit code 0."""
    code, out, _ = run_cli(*command, "--help")
    assert code == 0
    assert out.startswith("usage: tvadapter")
    if command != ["fake-server"]:
        assert "exit codes:" in out and "130" in out


def test_version() -> None:
    """--version prints the package version."""
    code, out, _ = run_cli("--version")
    assert code == 0 and out.strip().startswith("tvadapter ")


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["nope"],
        ["hist"],
        ["hist", "AAPL", "--interval", "7X"],
        ["hist", "AAPL", "--bars", "0"],
        ["hist", "AAPL", "--start", "yesterday-ish"],
        ["live", "AAPL", "--count", "-1"],
        ["search"],
    ],
)
def test_usage_errors_exit_2(argv: list[str]) -> None:
    """Bad command lines exit 2 with argparse's usage message on stderr."""
    code, out, err = run_cli(*argv)
    assert code == cli.EXIT_USAGE
    assert "usage:" in err and out == ""


def test_bad_environment_value_exits_2_naming_the_variable() -> None:
    """A bad TV_* variable is a one-line configuration error naming it."""
    code, _, err = run_cli("hist", "AAPL", env={"TV_REQUESTS_PER_MINUTE": "lots"})
    assert code == cli.EXIT_USAGE
    assert err.count("\n") == 1 and "TV_REQUESTS_PER_MINUTE" in err


def test_half_credentials_in_environment_exit_2_without_echoing_them() -> None:
    """TV_USERNAME without TV_PASSWORD is a usage error; the name's value is not needed."""
    code, _, err = run_cli("hist", "AAPL", env={"TV_USERNAME": "s3cr3t-user"})
    assert code == cli.EXIT_USAGE
    assert "TV_PASSWORD" in err and err.count("\n") == 1


def test_output_format_must_be_known(tmp_path: Path) -> None:
    """An output file with an unknown extension is rejected before any network I/O."""
    code, _, err = run_cli("hist", "AAPL", "-o", str(tmp_path / "x.xlsx"), "--ws-url", "ws://x")
    assert code == cli.EXIT_USAGE and "--output" in err


# -- hist -----------------------------------------------------------------------------------


def test_hist_one_symbol_prints_a_table(fake_tv_factory: Factory) -> None:
    """One symbol prints the server's bars as a table, oldest first."""
    tv = fake_tv_factory()
    code, out, err = run_cli("hist", "NASDAQ:AAPL", "-i", "1H", "-n", "7", *net(tv))
    assert code == 0, err
    lines = out.strip().splitlines()
    assert len(lines) == 2 + 7  # column header, index header, rows
    truth = tv.bars("NASDAQ:AAPL", "1H", 7)
    assert f"{truth[-1].close}" in lines[-1] and "NASDAQ:AAPL" in lines[-1]
    assert pd.Timestamp(truth[0].time, unit="s", tz="UTC").isoformat(sep=" ") in lines[2]


@pytest.mark.parametrize("suffix", [".csv", ".json", ".parquet"])
def test_hist_writes_files(fake_tv_factory: Factory, tmp_path: Path, suffix: str) -> None:
    """-o writes csv, json and parquet that read back to the server's bars."""
    if suffix == ".parquet":
        pytest.importorskip("pyarrow")
    tv = fake_tv_factory()
    path = tmp_path / "sub" / f"bars{suffix}"
    code, out, err = run_cli(
        "hist", "RELIANCE", "-e", "NSE", "-i", "15", "-n", "40", "-o", str(path), *net(tv)
    )
    assert code == 0, err
    assert out == "" and "wrote 40 bars" in err
    frame = read_back(path)
    assert_bars(frame, tv.bars("NSE:RELIANCE", "15", 40))
    assert set(frame["symbol"]) == {"NSE:RELIANCE"}


def test_hist_date_range(fake_tv_factory: Factory, tmp_path: Path) -> None:
    """--start/--end fetch exactly the server's bars inside the range."""
    tv = fake_tv_factory()
    newest = tv.bars("NASDAQ:MSFT", "1H", 1)[0].time
    start = pd.Timestamp(newest - 10 * 86_400, unit="s", tz="UTC")
    end = pd.Timestamp(newest - 3 * 86_400, unit="s", tz="UTC")
    path = tmp_path / "range.csv"
    code, _, err = run_cli(
        "hist", "NASDAQ:MSFT", "-i", "1H", "--start", start.isoformat(),
        "--end", end.isoformat(), "-o", str(path), *net(tv),
    )  # fmt: skip
    assert code == 0, err
    truth = tv.bars("NASDAQ:MSFT", "1H", start=start.timestamp(), end=end.timestamp())
    assert len(truth) > 10
    assert_bars(read_back(path), truth)


def test_hist_many_symbols_partial_failure(fake_tv_factory: Factory, tmp_path: Path) -> None:
    """Several symbols use the bulk path; one unknown symbol gives exit 1, the rest written."""
    tv = fake_tv_factory()
    path = tmp_path / "many.csv"
    code, _, err = run_cli(
        "hist", "NASDAQ:AAPL", "NYSE:KO", "NASDAQ:NOPE", "BINANCE:ETHUSDT",
        "-n", "12", "-o", str(path), "--no-progress", *net(tv),
    )  # fmt: skip
    assert code == cli.EXIT_PARTIAL
    assert "NASDAQ:NOPE failed: SymbolNotFoundError" in err
    assert "1 of 4 symbols failed" in err
    frame = read_back(path)
    for symbol in ("NASDAQ:AAPL", "NYSE:KO", "BINANCE:ETHUSDT"):
        assert_bars(frame[frame["symbol"] == symbol], tv.bars(symbol, "1D", 12))
    assert "NASDAQ:NOPE" not in set(frame["symbol"])


def test_hist_many_symbols_progress_text(fake_tv_factory: Factory) -> None:
    """--progress draws progress on stderr and the stacked table goes to stdout."""
    tv = fake_tv_factory()
    code, out, err = run_cli("hist", "AAPL", "MSFT", "-e", "NASDAQ", "-n", "3", "--progress",
                             *net(tv))  # fmt: skip
    assert code == 0, err
    assert "2/2" in err
    assert out.count("NASDAQ:AAPL") == 3 and out.count("NASDAQ:MSFT") == 3


def test_hist_all_failed_uses_the_error_code(fake_tv_factory: Factory) -> None:
    """A batch where every symbol is unknown exits 3, not 1."""
    tv = fake_tv_factory()
    code, out, err = run_cli("hist", "X:NOPE1", "X:NOPE2", "--no-progress", *net(tv))
    assert code == cli.EXIT_NOT_FOUND and out == ""
    assert err.count("SymbolNotFoundError") >= 2


def test_unknown_symbol_is_one_line_exit_3(fake_tv_factory: Factory) -> None:
    """An unknown symbol prints one error line (no traceback) and exits 3."""
    tv = fake_tv_factory()
    code, out, err = run_cli("hist", "NASDAQ:NOSUCH", *net(tv))
    assert code == cli.EXIT_NOT_FOUND and out == ""
    assert err.startswith("tvadapter: error: SymbolNotFoundError:")
    assert err.count("\n") == 1 and "Traceback" not in err


def test_verbose_shows_traceback_and_logs(fake_tv_factory: Factory) -> None:
    """-v adds log lines and the traceback; the exit code is unchanged."""
    tv = fake_tv_factory()
    code, _, err = run_cli("hist", "NASDAQ:NOSUCH", "-v", *net(tv))
    assert code == cli.EXIT_NOT_FOUND
    assert "Traceback" in err and "INFO" in err
    assert err.strip().splitlines()[-1].startswith("tvadapter: error: SymbolNotFoundError")


def test_network_failure_exits_5() -> None:
    """Nothing listening on the URL: exit 5 with one line."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code, _, err = run_cli(
        "hist", "NASDAQ:AAPL", "--ws-url", f"ws://127.0.0.1:{port}/socket.io/websocket",
        "--retries", "0", "--timeout", "2", "--connect-timeout", "0.5",
    )  # fmt: skip
    assert code == cli.EXIT_NETWORK, err
    assert err.count("\n") == 1


def test_handshake_429_exits_6(fake_tv_factory: Factory) -> None:
    """A server answering every upgrade with 429 gives exit 6 (rate limited)."""
    tv = fake_tv_factory(faults=(RejectHandshake(429, retry_after=0.05),))
    code, _, err = run_cli(
        "hist", "NASDAQ:AAPL", *net(tv), "--retries", "0", "--timeout", "3",
        "--connect-timeout", "1",
    )  # fmt: skip
    assert code == cli.EXIT_RATE_LIMITED, err
    assert err.count("\n") == 1


def test_handshake_403_exits_2_with_one_line(fake_tv_factory: Factory) -> None:
    """A refused Origin (HTTP 403) is a configuration error: exit 2, one line, no log noise."""
    tv = fake_tv_factory(faults=(RejectHandshake(403),))
    code, _, err = run_cli("hist", "NASDAQ:AAPL", *net(tv), "--timeout", "3")
    assert code == cli.EXIT_USAGE, err
    assert err.count("\n") == 1 and "HandshakeForbidden" in err


def test_wrong_password_exits_4_and_never_prints_it(fake_tv_factory: Factory) -> None:
    """A refused sign-in exits 4; the password appears nowhere in the output."""
    tv = fake_tv_factory(users={"alice": "secret"})
    secret = "hunter2-not-it"
    code, out, err = run_cli(
        "hist", "NASDAQ:AAPL", *net(tv), "--signin-url", tv.signin_url, "--username", "alice",
        "-v", env={"TV_PASSWORD": secret},
    )  # fmt: skip
    assert code == cli.EXIT_AUTH, err
    assert secret not in out and secret not in err


def test_environment_configures_and_flags_override(fake_tv_factory: Factory) -> None:
    """TV_WS_URL alone works; a --ws-url flag wins over a wrong TV_WS_URL."""
    tv = fake_tv_factory()
    env = {"TV_WS_URL": tv.ws_url, "TV_REQUESTS_PER_MINUTE": "6000"}
    code, out, err = run_cli("hist", "NYSE:IBM", "-n", "2", env=env)
    assert code == 0, err
    assert "NYSE:IBM" in out
    wrong = {"TV_WS_URL": "ws://127.0.0.1:9/socket.io/websocket", "TV_MAX_RETRIES": "0"}
    code, out, err = run_cli("hist", "NYSE:IBM", "-n", "2", "--ws-url", tv.ws_url, env=wrong)
    assert code == 0, err
    assert "NYSE:IBM" in out


def test_keyboard_interrupt_exits_130(monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C during a command exits 130 with one line."""

    def interrupted(args: Any, ctx: Any) -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "_cmd_search", interrupted)
    code, _, err = run_cli("search", "AAPL")
    assert code == cli.EXIT_INTERRUPTED and err == "tvadapter: interrupted\n"


# -- search ---------------------------------------------------------------------------------


def test_search_lists_symbols(fake_tv_factory: Factory) -> None:
    """search prints one matching symbol per line; an exchange filter narrows it."""
    tv = fake_tv_factory()
    code, out, err = run_cli("search", "BTC", "--exchange", "BINANCE", *net(tv))
    assert code == 0, err
    lines = out.strip().splitlines()
    assert lines and all(line.startswith("BINANCE:") for line in lines)
    assert any(line.split()[0] == "BINANCE:BTCUSDT" for line in lines)
    code, out, _ = run_cli("search", "BTC", "--limit", "2", *net(tv))
    assert code == 0 and len(out.strip().splitlines()) == 2


def test_search_without_match_exits_3(fake_tv_factory: Factory) -> None:
    """A search with no results exits 3."""
    tv = fake_tv_factory()
    code, out, err = run_cli("search", "ZZZZNOTHING", *net(tv))
    assert code == cli.EXIT_NOT_FOUND and out == "" and "no symbols" in err


# -- live -----------------------------------------------------------------------------------


def test_live_prints_closed_bars_then_stops(fake_tv_factory: Factory) -> None:
    """live prints a CSV header and --count closed bars equal to the server's, then exits 0."""
    pytest.importorskip("tvadapter.live")
    tv = fake_tv_factory(live=True, bar_seconds=0.3)
    code, out, err = run_cli(
        "live", "BTCUSDT", "-e", "BINANCE", "-i", "1", "--count", "3", *net(tv)
    )
    assert code == 0, err
    lines = out.strip().splitlines()
    assert lines[0] == "datetime,symbol,open,high,low,close,volume"
    assert len(lines) == 4
    truth = {pd.Timestamp(b.time, unit="s", tz="UTC").isoformat(): b for b in
             tv.bars("BINANCE:BTCUSDT", "1", 50)}  # fmt: skip
    for line in lines[1:]:
        stamp, symbol, _o, _h, _l, close, _v = line.split(",")
        assert symbol == "BINANCE:BTCUSDT"
        assert float(close) == truth[stamp].close


# -- exit code table --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (SymbolNotFoundError("x"), 3),
        (SeriesError("custom_resolution"), 3),
        (CaptchaRequiredError("x"), 4),
        (TokenExpiredError("x"), 4),
        (AuthenticationError("x"), 4),
        (HandshakeRateLimited("x", retry_after=1.0), 6),
        (RateLimitedError("x"), 6),
        (TvCircuitOpenError("x", retry_after=3.0), 6),
        (HandshakeForbidden("x", status=403), 2),
        (ConfigurationError("x"), 2),
        (ValueError("TV_PASSWORD is required"), 2),
        (TvConnectionError("x"), 5),
        (ConnectionClosed("x", code=1006), 5),
        (TvTimeoutError("x"), 5),
        (MalformedPayloadError("x"), 5),
        (DataIncompleteError("x"), 5),
        (HttpStatusError("x", status=503), 5),
        (CriticalError("x"), 7),
        (RuntimeError("x"), 7),
        (KeyboardInterrupt(), 130),
    ],
)
def test_exit_code_table(error: BaseException, code: int) -> None:
    """Every error kind maps to its documented exit code."""
    assert cli.exit_code_for(error) == code


# -- as a real program ------------------------------------------------------------------------


@pytest.mark.slow
def test_console_script_end_to_end_in_subprocesses(tmp_path: Path) -> None:
    """`python -m tvadapter fake-server` serves `python -m tvadapter hist` in other processes."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TV_")}
    env["PYTHONPATH"] = str(ROOT)
    server = subprocess.Popen(
        [sys.executable, "-m", "tvadapter", "fake-server", "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    try:
        assert server.stdout is not None
        ws_url = ""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not ws_url:
            line = server.stdout.readline()
            if line.strip().startswith("TV_WS_URL="):
                ws_url = line.strip().split("=", 1)[1]
            if not line:
                break
        assert ws_url, "the fake server did not start"
        out = tmp_path / "aapl.csv"
        done = subprocess.run(
            [sys.executable, "-m", "tvadapter", "hist", "NASDAQ:AAPL", "-n", "5",
             "-o", str(out)],
            env={**env, "TV_WS_URL": ws_url},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert len(read_back(out)) == 5
        bad = subprocess.run(
            [sys.executable, "-m", "tvadapter", "hist", "NASDAQ:NOPE"],
            env={**env, "TV_WS_URL": ws_url},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert bad.returncode == 3
        assert bad.stderr.count("\n") == 1 and "Traceback" not in bad.stderr
        # Ctrl-C in the middle of a slow (rate-limited) batch: exit 130 promptly.
        slow = subprocess.Popen(
            [sys.executable, "-m", "tvadapter", "hist", "AAPL", "MSFT", "NVDA", "AMZN",
             "-e", "NASDAQ", "-v", "--rpm", "6", "--burst", "1", "--no-progress"],
            env={**env, "TV_WS_URL": ws_url},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        assert slow.stderr is not None
        lines = []
        for line in slow.stderr:
            lines.append(line)
            if "bulk:" in line:  # the batch has started
                break
        slow.send_signal(signal.SIGINT)
        interrupted_at = time.monotonic()
        rest = slow.stderr.read()
        assert slow.wait(30) == cli.EXIT_INTERRUPTED, "".join(lines) + rest
        assert time.monotonic() - interrupted_at < 15
        assert rest.rstrip().endswith("tvadapter: interrupted")
    finally:
        server.terminate()
        assert server.wait(30) == 0
