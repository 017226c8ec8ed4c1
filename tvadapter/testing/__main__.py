"""``python -m tvadapter.testing``: run the fake TradingView server from a shell."""

from __future__ import annotations

from .cli import main

raise SystemExit(main())
