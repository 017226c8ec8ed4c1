"""tvadapter: a resilient TradingView data client (a drop-in for tvDatafeed users)."""

from __future__ import annotations

from .errors import *  # noqa: F403
from .errors import __all__ as _errors_all

__version__ = "0.1.0"

__all__ = [*_errors_all, "__version__"]
