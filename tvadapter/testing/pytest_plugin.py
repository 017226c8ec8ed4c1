"""pytest fixtures for the fake TradingView server.

Enable with ``pytest_plugins = ["tvadapter.testing.pytest_plugin"]`` in a top-level
``conftest.py`` (or ``-p tvadapter.testing.pytest_plugin``). Fixtures:

* ``fake_tv``: a started :class:`~tvadapter.testing.FakeTradingView`, stopped after the test.
  Configure it with the ``fake_tv`` marker, whose keyword arguments are the server's options::

      @pytest.mark.fake_tv(heartbeat_interval=0.2, faults=[Drop(after=2, attempts=1)])
      def test_reconnects(fake_tv): ...

* ``fake_tv_factory``: ``fake_tv_factory(**options)`` starts another server; every server it
  made is stopped after the test.

Each server binds ephemeral ports on 127.0.0.1; nothing outlives the test.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from ._server import FakeTradingView

__all__ = ["fake_tv", "fake_tv_factory", "pytest_configure"]


def pytest_configure(config: pytest.Config) -> None:
    """Register the ``fake_tv`` marker."""
    config.addinivalue_line(
        "markers", "fake_tv(**options): options of the fake_tv fixture's FakeTradingView"
    )


@pytest.fixture
def fake_tv_factory() -> Iterator[Callable[..., FakeTradingView]]:
    """Start fake servers on demand (``fake_tv_factory(**options)``); all stopped at teardown."""
    started: list[FakeTradingView] = []

    def make(**options: Any) -> FakeTradingView:
        server = FakeTradingView(**options)
        server.start()
        started.append(server)
        return server

    yield make
    for server in reversed(started):
        server.stop()


@pytest.fixture
def fake_tv(
    request: pytest.FixtureRequest, fake_tv_factory: Callable[..., FakeTradingView]
) -> FakeTradingView:
    """A started fake TradingView server configured by the ``fake_tv`` marker's kwargs."""
    options: dict[str, Any] = {}
    for marker in reversed(list(request.node.iter_markers("fake_tv"))):
        options.update(marker.kwargs)
    if "faults" in options:
        options["faults"] = tuple(options["faults"])
    return fake_tv_factory(**options)
