"""tvadapter: a resilient TradingView data client (a drop-in for tvDatafeed users)."""

from __future__ import annotations

import logging

from . import errors
from ._bulk import BulkItem, BulkResult, HistRequest
from ._client import TvDatafeed
from ._metrics import ClientMetrics
from .config import NetworkConfig
from .connection import WebSocketManager
from .errors import *  # noqa: F403
from .interval import Interval
from .live import Consumer, Seis, TvDatafeedLive

__version__ = "0.1.0"

__all__ = ["__version__"]
__all__ += errors.__all__
__all__ += ["NetworkConfig", "WebSocketManager"]
__all__ += ["ClientMetrics", "Interval", "TvDatafeed"]
__all__ += ["Consumer", "Seis", "TvDatafeedLive"]
__all__ += ["BulkItem", "BulkResult", "HistRequest"]

# A library leaves log output to the application (the logging HOWTO's advice).
logging.getLogger(__name__).addHandler(logging.NullHandler())
