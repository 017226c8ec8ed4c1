"""Fake server entry points: the command line and the pytest fixtures."""

from __future__ import annotations

import io
import subprocess
import sys
import threading

import pytest
import websocket

from tvadapter.protocol import Hello, decode, parse_payload
from tvadapter.testing import (
    Drop,
    FakeTradingView,
    HugeFrame,
    Latency,
    Malformed,
    RejectHandshake,
    RequestRate,
    SlowDrip,
    Stall,
)
from tvadapter.testing.cli import build_parser, config_from_args, parse_attempts, run


def test_fault_flags_build_the_faults():
    """Every fault flag becomes the matching fault object, with --fault-attempts applied."""
    args = build_parser().parse_args(
        [
            "--port",
            "0",
            "--latency",
            "0.05",
            "--reject",
            "429:2",
            "--stall-after",
            "3",
            "--stall-heartbeats",
            "--drop-after",
            "4:1005",
            "--rate-limit",
            "10/2",
            "--malformed",
            "not_json:1",
            "--huge-frame",
            "5000000",
            "--slow-drip",
            "512:0.01",
            "--fault-attempts",
            "1-3",
        ]
    )
    config = config_from_args(args)
    faults = {type(f): f for f in config.faults}
    assert faults[Latency].seconds == 0.05
    assert (faults[RejectHandshake].status, faults[RejectHandshake].attempts) == (429, range(1, 3))
    assert faults[Stall].after == 3 and faults[Stall].heartbeats
    assert (faults[Drop].after, faults[Drop].code) == (4, 1005)
    assert (faults[RequestRate].max_requests, faults[RequestRate].window) == (10, 2.0)
    assert (faults[Malformed].kind, faults[Malformed].after) == ("not_json", 1)
    assert faults[HugeFrame].size == 5_000_000
    assert (faults[SlowDrip].chunk, faults[SlowDrip].delay) == (512, 0.01)
    assert faults[Latency].attempts == range(1, 4)


def test_account_and_protocol_flags():
    """Users, plans, 2FA/captcha users, heartbeat and cap options reach the config."""
    args = build_parser().parse_args(
        [
            "--user",
            "alice:s3cret",
            "--plan",
            "alice:pro",
            "--twofa-user",
            "bob",
            "--captcha-user",
            "eve",
            "--heartbeat-interval",
            "0.5",
            "--anonymous-cap",
            "1000",
            "--any-origin",
            "--live",
            "--bar-seconds",
            "1",
            "--packing",
            "split",
        ]
    )
    config = config_from_args(args)
    assert config.users == {"alice": "s3cret"}
    assert config.user_plans == {"alice": "pro"}
    assert config.twofa_users == frozenset({"bob"})
    assert config.captcha_users == frozenset({"eve"})
    assert config.heartbeat_interval == 0.5
    assert config.cap_for(None) == 1000
    assert config.allowed_origins is None
    assert (config.live, config.bar_seconds, config.packing) == (True, 1.0, "split")


@pytest.mark.parametrize(
    ("text", "expected"),
    [("all", None), ("3", 3), ("1-3", range(1, 4)), ("1,4", frozenset({1, 4}))],
)
def test_parse_attempts(text, expected):
    """--fault-attempts accepts all, N, A-B and lists."""
    assert parse_attempts(text) == expected


def test_run_serves_until_stopped():
    """run() prints the URLs, serves, and returns 0 once the stop event is set."""
    args = build_parser().parse_args(["--port", "0", "--heartbeat-interval", "5"])
    stop = threading.Event()
    out = io.StringIO()
    seen = []

    def started(tv: FakeTradingView) -> None:
        ws = websocket.create_connection(tv.ws_url, origin=tv.origin, timeout=5)
        try:
            seen.append(parse_payload(decode(ws.recv())[0]))
        finally:
            ws.close()
        stop.set()

    assert run(args, stop=stop, out=out, on_started=started) == 0
    assert isinstance(seen[0], Hello)
    assert "TV_WS_URL=ws://127.0.0.1:" in out.getvalue()


def test_run_reports_bad_values():
    """A bad option value makes run() return 2 instead of starting."""
    args = build_parser().parse_args(["--port", "0", "--heartbeat-interval", "-1"])
    assert run(args, stop=threading.Event(), out=io.StringIO()) == 2


def test_module_help():
    """python -m tvadapter.testing --help works."""
    result = subprocess.run(
        [sys.executable, "-m", "tvadapter.testing", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0
    assert "--drop-after" in result.stdout


@pytest.mark.fake_tv(heartbeat_interval=0.1, faults=[Drop(after=1, attempts=1)])
def test_fake_tv_fixture_takes_marker_options(fake_tv):
    """The fake_tv fixture is started and configured from the fake_tv marker."""
    assert fake_tv.config.heartbeat_interval == 0.1
    assert isinstance(fake_tv.faults[0], Drop)
    ws = websocket.create_connection(fake_tv.ws_url, origin=fake_tv.origin, timeout=5)
    try:
        assert isinstance(parse_payload(decode(ws.recv())[0]), Hello)
    finally:
        ws.close()


def test_fake_tv_factory_starts_several(fake_tv_factory):
    """fake_tv_factory makes independent servers on different ports."""
    a = fake_tv_factory()
    b = fake_tv_factory(packing="split")
    assert a.port != b.port
    assert b.config.packing == "split"
