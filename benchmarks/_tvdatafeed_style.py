"""A tvDatafeed-style ``get_hist``, reimplemented from its description (PROTOCOL.md §8, §19).

The baseline the end-to-end benchmarks compare ``tvadapter`` against:

* a **new** websocket-client connection per call (5 s timeout), never reused;
* the nine setup frames of §8 sent back to back (token, chart session, quote session and its
  fields/symbols, ``resolve_symbol``, ``create_series``, ``switch_timezone``);
* ``recv()`` in a loop, each message plus ``"\\n"`` appended to one string, until a message
  contains the substring ``series_completed`` (or any exception, which ends the loop);
* regex parsing: ``re.search(r'"s":\\[(.+?)\\}\\]', raw)``, the match split on ``',{"'``, each
  piece on ``[``, ``:``, ``,``, ``]``; time is element 4, open..volume elements 5..9; a volume
  that fails to parse makes it (and every later one) 0.0; naive local-time index;
* no heartbeat echo, no session deletion.

One deliberate difference: it sends the correct, single ``Origin`` header (tvDatafeed's
``headers=`` is ignored by websocket-client, §2), otherwise the fake server -- like the real one
-- refuses the upgrade and there is nothing to measure.  It closes its socket after each call
(tvDatafeed leaks it) so a long benchmark does not exhaust file descriptors; closing only makes
the baseline cheaper.

Shared by ``bench_bulk.py`` and ``bench_e2e.py``.  Not part of the package.
"""

from __future__ import annotations

import json
import random
import re
import string
from datetime import datetime
from typing import Any

import pandas as pd
import websocket

__all__ = ["tvdatafeed_get_hist", "tvdatafeed_parse"]

_QUOTE_FIELDS = [
    "ch",
    "chp",
    "current_session",
    "description",
    "local_description",
    "language",
    "exchange",
    "fractional",
    "is_tradable",
    "lp",
    "lp_time",
    "minmov",
    "minmove2",
    "original_name",
    "pricescale",
    "pro_name",
    "short_name",
    "type",
    "update_mode",
    "volume",
    "currency_code",
    "rchp",
    "rtc",
]


def _session_id(prefix: str) -> str:
    return prefix + "".join(random.choice(string.ascii_lowercase) for _ in range(12))


def _frame(method: str, params: list[Any]) -> str:
    body = json.dumps({"m": method, "p": params}, separators=(",", ":"))
    return f"~m~{len(body)}~m~{body}"


def _setup_frames(symbol: str, interval: str, n_bars: int) -> list[str]:
    cs = _session_id("cs_")
    qs = _session_id("qs_")
    spec = "=" + json.dumps({"symbol": symbol, "adjustment": "splits", "session": "regular"})
    return [
        _frame("set_auth_token", ["unauthorized_user_token"]),
        _frame("chart_create_session", [cs, ""]),
        _frame("quote_create_session", [qs]),
        _frame("quote_set_fields", [qs, *_QUOTE_FIELDS]),
        _frame("quote_add_symbols", [qs, symbol, {"flags": ["force_permission"]}]),
        _frame("quote_fast_symbols", [qs, symbol]),
        _frame("resolve_symbol", [cs, "symbol_1", spec]),
        _frame("create_series", [cs, "s1", "s1", "symbol_1", interval, n_bars]),
        _frame("switch_timezone", [cs, "exchange"]),
    ]


def tvdatafeed_parse(raw: str, symbol: str) -> pd.DataFrame | None:
    """tvDatafeed's regex parse of the accumulated stream (None when nothing matches)."""
    match = re.search(r'"s":\[(.+?)\}\]', raw)
    if match is None:
        return None
    rows = []
    volume_ok = True
    for piece in match.group(1).split(',{"'):
        parts = re.split(r"\[|:|,|\]", piece)
        row: list[Any] = [datetime.fromtimestamp(float(parts[4]))]
        for i in range(5, 10):
            if not volume_ok and i == 9:
                row.append(0.0)
                continue
            try:
                row.append(float(parts[i]))
            except (ValueError, IndexError):
                volume_ok = False
                row.append(0.0)
        rows.append(row)
    table = pd.DataFrame(rows, columns=["datetime", "open", "high", "low", "close", "volume"])
    frame: pd.DataFrame = table.set_index("datetime")
    frame.insert(0, "symbol", value=symbol)
    return frame


def tvdatafeed_get_hist(
    ws_url: str, origin: str, symbol: str, interval: str, n_bars: int
) -> pd.DataFrame | None:
    """One tvDatafeed-style ``get_hist`` of ``symbol`` (``"EX:SYM"``) on a new connection."""
    ws = websocket.create_connection(ws_url, timeout=5, origin=origin)
    try:
        for frame in _setup_frames(symbol, interval, n_bars):
            ws.send(frame)
        raw = ""
        while True:
            try:
                message = ws.recv()
            except Exception:  # tvDatafeed logs and swallows every exception here
                break
            raw += str(message) + "\n"
            if "series_completed" in str(message):
                break
    finally:
        ws.close()
    return tvdatafeed_parse(raw, symbol)
