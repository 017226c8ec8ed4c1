"""Shared helpers for the TvDatafeed end-to-end tests (no tests here).

A client configuration with short timeouts for the fake server, a value-by-value comparison
with the server's ground truth, and a guard that no thread outlives the client.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import pandas as pd

from tvadapter import NetworkConfig
from tvadapter.testing import FakeTradingView

__all__ = ["assert_same_bars", "client_config", "no_new_threads"]


def client_config(tv: FakeTradingView, **overrides: Any) -> NetworkConfig:
    """A config pointing at ``tv`` with short timeouts, fast retries and a generous limit."""
    options: dict[str, Any] = {
        "ws_url": tv.ws_url,
        "search_url": tv.search_url,
        "signin_url": tv.signin_url,
        "totp_url": tv.totp_url,
        "home_url": tv.homepage_url,
        "connect_timeout": 2.0,
        "send_timeout": 2.0,
        "recv_timeout": 2.0,
        # Generous: the machines are shared and noisy (tests needing a short one set it).
        "progress_timeout": 5.0,
        "ping_timeout": 1.0,
        "request_deadline": 30.0,
        "max_retries": 4,
        "base_retry_delay": 0.02,
        "max_retry_delay": 0.1,
        "requests_per_minute": 60_000,
        "burst_size": 1_000,
    }
    options.update(overrides)
    return NetworkConfig(**options)


def assert_same_bars(frame: pd.DataFrame, truth: list[Any], symbol: str) -> None:
    """``frame`` holds exactly the bars of ``truth`` (tvadapter.protocol.Bar), value by value."""
    assert len(frame) == len(truth), (len(frame), len(truth))
    assert frame.index.name == "datetime"
    assert str(frame.index.dtype) == "datetime64[ns, UTC]"
    assert frame.index.is_monotonic_increasing and frame.index.is_unique
    expected_times = pd.to_datetime([b.time for b in truth], unit="s", utc=True)
    assert (frame.index == expected_times).all()
    for column in ("open", "high", "low", "close"):
        expected = np.array([getattr(b, column) for b in truth], dtype=np.float64)
        assert np.array_equal(frame[column].to_numpy(), expected), column
    volume = np.array([np.nan if b.volume is None else b.volume for b in truth], dtype=np.float64)
    assert np.array_equal(frame["volume"].to_numpy(), volume, equal_nan=True)
    assert (frame["symbol"] == symbol).all()


@contextmanager
def no_new_threads(grace: float = 5.0) -> Iterator[None]:
    """Assert that every thread started inside the block has ended shortly after it."""
    before = set(threading.enumerate())
    yield
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        extra = [t for t in threading.enumerate() if t not in before and t.is_alive()]
        if not extra:
            return
        time.sleep(0.02)
    extra = [t.name for t in threading.enumerate() if t not in before and t.is_alive()]
    assert extra == [], f"threads left running: {extra}"
