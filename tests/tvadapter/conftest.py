"""Fixtures for the tvadapter tests: the fake TradingView server (``fake_tv``, ``fake_tv_factory``).

They come from :mod:`tvadapter.testing.pytest_plugin`; see its docstring for the ``fake_tv``
marker.
"""

from __future__ import annotations

import pytest

from tvadapter.testing.pytest_plugin import fake_tv, fake_tv_factory

__all__ = ["fake_tv", "fake_tv_factory"]


def pytest_configure(config: pytest.Config) -> None:
    """Register the ``fake_tv`` marker."""
    config.addinivalue_line(
        "markers", "fake_tv(**options): options of the fake_tv fixture's FakeTradingView"
    )
