"""Server -> client packet builders, for the fake server and for tests (PROTOCOL.md §4, §9-§10).

Each builder returns one packet payload: compact JSON with raw UTF-8 (``ensure_ascii=False``),
as the real server sends it, keys in the wire order ``m``, ``p``, ``t``, ``t_ms``. Pass ``t``
(epoch seconds, a float) to add the server timestamps ``"t"`` (whole seconds) and ``"t_ms"``;
nothing here reads a clock.

The builders are the inverses of :func:`~tvadapter.protocol.parse_payload`: for a
:class:`~tvadapter.protocol.SeriesPayload` ``sp`` with an explicit ``ns``,
``parse_payload(timescale_update(cs, {"s1": sp})).series["s1"] == sp``.

:func:`timescale_update` and :func:`du` serialise bars with a hand-written fast path (5,000 bars
in a few milliseconds); bar values must be finite numbers (``ValueError`` otherwise).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ._json import dumps
from .events import Bar, SeriesPayload, StudyPayload

__all__ = [
    "DEFAULT_NS",
    "critical_error",
    "default_hello_info",
    "default_timescale",
    "du",
    "hello",
    "protocol_error",
    "qsd",
    "quote_completed",
    "series_completed",
    "series_error",
    "series_loading",
    "series_timeframe",
    "server_packet",
    "study_completed",
    "study_loading",
    "symbol_error",
    "symbol_resolved",
    "timescale_update",
]

#: The ``ns`` object of a plain series payload.
DEFAULT_NS: Mapping[str, Any] = {"d": "", "indexes": []}

# What a serialised bar list may contain: digits, number signs, and the fixed JSON skeleton.
# "nan", "inf", "None", "True" or a quoted string all contain other characters.
_NOT_BAR_TEXT = re.compile(r'[^0-9eE.+\-\[\],{}"iv:]')
_BAR_TEXT_CHARS = str.maketrans("", "", '0123456789eE.+-[],{}"iv:')


def _with_time(body: str, t: float | None) -> str:
    """Close a ``{"m":..,"p":[..]`` body, adding ``t`` / ``t_ms`` when ``t`` is given."""
    if t is None:
        return body + "}"
    t_ms = round(t * 1000)
    return f'{body},"t":{t_ms // 1000},"t_ms":{t_ms}}}'


def server_packet(method: str, params: Sequence[Any], *, t: float | None = None) -> str:
    """Any server method packet ``{"m":method,"p":params[,"t":..,"t_ms":..]}``."""
    return _with_time('{"m":' + dumps(method, ensure_ascii=False) + ',"p":' + _p(params), t)


def _p(params: Sequence[Any]) -> str:
    return dumps(list(params), ensure_ascii=False)


# --------------------------------------------------------------------------------------------
# Hello


def default_hello_info(
    now: float | None = None,
    *,
    session_id: str = "0.1.1_local-charts-fake-1",
    release: str = "release_fake-1",
) -> dict[str, Any]:
    """A realistic hello object (PROTOCOL.md §4); timestamps only when ``now`` is given."""
    info: dict[str, Any] = {"session_id": session_id}
    if now is not None:
        ms = round(now * 1000)
        info["timestamp"] = ms // 1000
        info["timestampMs"] = ms
    info.update(
        {
            "release": release,
            "studies_metadata_hash": "0" * 40,
            "auth_scheme_vsn": 2,
            "protocol": "json",
            "via": "127.0.0.1:443",
            "javastudies": ["3.66"],
        }
    )
    return info


def hello(info: Mapping[str, Any] | None = None) -> str:
    """The hello packet: a JSON object without ``m`` (default: :func:`default_hello_info`)."""
    obj = dict(default_hello_info() if info is None else info)
    if "m" in obj:
        raise ValueError("info must not contain 'm' (a hello has no method)")
    return dumps(obj, ensure_ascii=False)


# --------------------------------------------------------------------------------------------
# Series rounds


def series_loading(cs: str, series_id: str, turnaround: str, *, t: float | None = None) -> str:
    """``series_loading [cs, series_id, turnaround]``."""
    return server_packet("series_loading", [cs, series_id, turnaround], t=t)


def symbol_resolved(
    cs: str, symbol_id: str, info: Mapping[str, Any], *, t: float | None = None
) -> str:
    """``symbol_resolved [cs, symbol_id, {info}]``."""
    return server_packet("symbol_resolved", [cs, symbol_id, dict(info)], t=t)


def _bars_json(bars: Iterable[Bar]) -> str:
    """``[{"i":k,"v":[t,o,h,l,c(,vol)]},...]`` for ``bars`` (fast path, validated)."""
    parts = [
        f'{{"i":{b[6]:d},"v":[{b[0]!r},{b[1]!r},{b[2]!r},{b[3]!r},{b[4]!r},{b[5]!r}]}}'
        if b[5] is not None
        else f'{{"i":{b[6]:d},"v":[{b[0]!r},{b[1]!r},{b[2]!r},{b[3]!r},{b[4]!r}]}}'
        for b in bars
    ]
    text = "[" + ",".join(parts) + "]"
    # Deleting every allowed character leaves nothing unless a value was not a finite number.
    if text.translate(_BAR_TEXT_CHARS):
        bad = _NOT_BAR_TEXT.search(text)
        at = bad.start() if bad is not None else 0
        raise ValueError(
            "bar values must be finite int/float numbers "
            f"(found {text[max(0, at - 20) : at + 20]!r})"
        )
    return text


def _series_json(payload: SeriesPayload) -> str:
    parts: list[str] = []
    if payload.node is not None:
        parts.append('"node":' + dumps(payload.node, ensure_ascii=False))
    parts.append('"s":' + _bars_json(payload.bars))
    parts.append('"ns":' + dumps(DEFAULT_NS if payload.ns is None else payload.ns))
    if payload.turnaround is not None:
        parts.append('"t":' + dumps(payload.turnaround, ensure_ascii=False))
    if payload.last_bar_close_time is not None:
        parts.append('"lbs":{"bar_close_time":' + dumps(payload.last_bar_close_time) + "}")
    return "{" + ",".join(parts) + "}"


def _study_json(payload: StudyPayload) -> str:
    obj: dict[str, Any] = {}
    if payload.node is not None:
        obj["node"] = payload.node
    obj["st"] = [{"i": point.index, "v": list(point.values)} for point in payload.points]
    obj["ns"] = DEFAULT_NS if payload.ns is None else payload.ns
    if payload.turnaround is not None:
        obj["t"] = payload.turnaround
    return dumps(obj, ensure_ascii=False)


def _data_map(
    series: Mapping[str, SeriesPayload], studies: Mapping[str, StudyPayload] | None
) -> str:
    items = [dumps(key, ensure_ascii=False) + ":" + _series_json(p) for key, p in series.items()]
    for key, sp in (studies or {}).items():
        items.append(dumps(key, ensure_ascii=False) + ":" + _study_json(sp))
    return "{" + ",".join(items) + "}"


def default_timescale(series: Mapping[str, SeriesPayload]) -> dict[str, Any]:
    """A plausible third ``timescale_update`` element for ``series`` (PROTOCOL.md §9, §12).

    ``index`` is the lowest bar index, ``zoffset`` its shift when negative (older pages),
    ``changes`` the sorted distinct bar times, ``marks`` and ``index_diff`` empty.
    """
    times: set[float] = set()
    lowest: int | None = None
    for payload in series.values():
        if payload.bars:
            times.update(bar[0] for bar in payload.bars)
            low = min(bar[6] for bar in payload.bars)
            lowest = low if lowest is None else min(lowest, low)
    index = lowest or 0
    return {
        "index": index,
        "zoffset": -index if index < 0 else 0,
        "changes": sorted(times),
        "marks": [],
        "index_diff": [],
    }


def timescale_update(
    cs: str,
    series: Mapping[str, SeriesPayload],
    timescale: Mapping[str, Any] | None = None,
    *,
    studies: Mapping[str, StudyPayload] | None = None,
    t: float | None = None,
) -> str:
    """``timescale_update [cs, {id: payload}, {timescale}]``.

    ``series`` may be empty (a timescale-only update) and a payload may carry no bars
    (``"s":[]``). ``timescale=None`` sends :func:`default_timescale`.
    """
    third = default_timescale(series) if timescale is None else timescale
    body = (
        '{"m":"timescale_update","p":['
        + dumps(cs, ensure_ascii=False)
        + ","
        + _data_map(series, studies)
        + ","
        + dumps(third, ensure_ascii=False)
        + "]"
    )
    return _with_time(body, t)


def du(
    cs: str,
    series: Mapping[str, SeriesPayload],
    *,
    studies: Mapping[str, StudyPayload] | None = None,
    t: float | None = None,
) -> str:
    """``du [cs, {id: payload}]``: forming/new bars (use ``ns={"d":"","indexes":"nochange"}``)."""
    body = (
        '{"m":"du","p":[' + dumps(cs, ensure_ascii=False) + "," + _data_map(series, studies) + "]"
    )
    return _with_time(body, t)


def series_completed(
    cs: str,
    series_id: str,
    update_mode: str,
    turnaround: str,
    *,
    rt_update_period: float = 5,
    data_completed: str | None = None,
    t: float | None = None,
) -> str:
    """``series_completed [cs, series_id, update_mode, turnaround, {"rt_update_period":n,...}]``.

    ``data_completed`` (``"end"`` / ``"limit"``) is added when given, as 2026 servers do.
    """
    info: dict[str, Any] = {"rt_update_period": rt_update_period}
    if data_completed is not None:
        info["data_completed"] = data_completed
    return server_packet("series_completed", [cs, series_id, update_mode, turnaround, info], t=t)


def series_timeframe(  # noqa: PLR0917 - parameters mirror the wire order
    cs: str,
    series_id: str,
    turnaround: str,
    from_index: int,
    to_index: int,
    range_: str,
    flag: bool,
    *,
    t: float | None = None,
) -> str:
    """``series_timeframe [cs, series_id, turnaround, from, to, range, flag]``."""
    return server_packet(
        "series_timeframe", [cs, series_id, turnaround, from_index, to_index, range_, flag], t=t
    )


# --------------------------------------------------------------------------------------------
# Errors


def symbol_error(
    cs: str, symbol_id: str, reason: str = "invalid symbol", *, t: float | None = None
) -> str:
    """``symbol_error [cs, symbol_id, reason]``."""
    return server_packet("symbol_error", [cs, symbol_id, reason], t=t)


def series_error(
    cs: str, series_id: str, turnaround: str, reason: str, *, t: float | None = None
) -> str:
    """``series_error [cs, series_id, turnaround, reason]`` (e.g. ``"custom_resolution"``)."""
    return server_packet("series_error", [cs, series_id, turnaround, reason], t=t)


def critical_error(cs: str, name: str, description: str, *, t: float | None = None) -> str:
    """``critical_error [cs, name, description]`` (e.g. ``"invalid parameters"``)."""
    return server_packet("critical_error", [cs, name, description], t=t)


def protocol_error(text: str) -> str:
    """``protocol_error [text]`` (e.g. ``"bad auth token"``); it has no session id."""
    return server_packet("protocol_error", [text])


# --------------------------------------------------------------------------------------------
# Quotes and studies


def qsd(
    qs: str,
    symbol: str,
    values: Mapping[str, Any],
    *,
    status: str = "ok",
    error: str | None = None,
    t: float | None = None,
) -> str:
    """``qsd [qs, {"n": symbol, "s": status, "v": values}]`` (``errmsg`` when ``error``)."""
    data: dict[str, Any] = {"n": symbol, "s": status}
    if error is not None:
        data["errmsg"] = error
    data["v"] = dict(values)
    return server_packet("qsd", [qs, data], t=t)


def quote_completed(qs: str, symbol: str, *, t: float | None = None) -> str:
    """``quote_completed [qs, symbol]``."""
    return server_packet("quote_completed", [qs, symbol], t=t)


def study_loading(cs: str, study_id: str, turnaround: str, *, t: float | None = None) -> str:
    """``study_loading [cs, study_id, turnaround]``."""
    return server_packet("study_loading", [cs, study_id, turnaround], t=t)


def study_completed(cs: str, study_id: str, turnaround: str, *, t: float | None = None) -> str:
    """``study_completed [cs, study_id, turnaround]``."""
    return server_packet("study_completed", [cs, study_id, turnaround], t=t)
