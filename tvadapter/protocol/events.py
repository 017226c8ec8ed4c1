"""Typed events for every server message (PROTOCOL.md §4-§11), and the payload parser.

:func:`parse_payload` turns one packet payload (a string from :func:`~tvadapter.protocol.decode`)
into one event:

* ``~h~N``                         -> :class:`Heartbeat`
* a JSON object without ``"m"``     -> :class:`Hello`
* ``{"m": method, "p": [...]}``     -> the event for ``method``, or :class:`UnknownMessage`
  for methods this module does not model (``replay_*`` and anything new). Unknown methods are
  not errors.

Server-reported failures (``symbol_error``, ``critical_error``...) are events here; deciding what
to raise is the I/O layer's job. Payloads that are not the JSON they must be (bad JSON, ``p`` not
a list, a bar whose ``v`` has fewer than 5 numbers, a session id that is not a string...) raise
:class:`~tvadapter.errors.MalformedPayloadError` with a short, token-masked excerpt.

Trailing, optional parameters are tolerated when missing (older servers omit them); the
parameters a client routes on (session ids, series ids) are required.

All event classes are frozen, slotted dataclasses (``Bar`` and ``StudyPoint`` are named tuples,
for speed). Mapping-typed fields hold the parsed JSON objects as they came: treat them as
read-only. Events are immutable values, safe to share between threads.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from math import isfinite
from operator import itemgetter
from typing import Any, NamedTuple

from ._json import loads, malformed

__all__ = [
    "Bar",
    "ClientRequest",
    "CriticalErrorEvent",
    "DataUpdate",
    "Event",
    "Heartbeat",
    "HeartbeatEcho",
    "Hello",
    "ProtocolErrorEvent",
    "QuoteCompleted",
    "QuoteData",
    "SeriesCompleted",
    "SeriesErrorEvent",
    "SeriesLoading",
    "SeriesPayload",
    "SeriesTimeframe",
    "ServerMessage",
    "StudyCompleted",
    "StudyDeleted",
    "StudyErrorEvent",
    "StudyLoading",
    "StudyPayload",
    "StudyPoint",
    "SymbolError",
    "SymbolResolved",
    "TimescaleUpdate",
    "UnknownMessage",
    "parse_bars",
    "parse_client_payload",
    "parse_heartbeat",
    "parse_payload",
]


# --------------------------------------------------------------------------------------------
# Values


class Bar(NamedTuple):
    """One OHLCV bar: ``time`` is the bar's open time in UTC epoch seconds.

    ``volume`` is ``None`` when the server sent a 5-element ``v`` (indices and the like).
    ``index`` is the server's slot ``i`` (0...N-1 on a first load, negative for older pages);
    key bars by ``time``, not by ``index``.
    """

    time: float
    open: float
    high: float
    low: float
    close: float
    volume: float | None
    index: int  # type: ignore[assignment]  # shadows tuple.index on purpose


class StudyPoint(NamedTuple):
    """One study data point: the slot ``index`` and the raw ``values`` (``v``)."""

    index: int  # type: ignore[assignment]  # shadows tuple.index on purpose
    values: tuple[Any, ...]


_EMPTY: Mapping[str, Any] = {}


@dataclass(frozen=True, slots=True)
class SeriesPayload:
    """The data for one series id inside a ``timescale_update`` or ``du``.

    ``bars`` is empty for an ``"s": []`` entry. ``last_bar_close_time`` is ``lbs.bar_close_time``
    (do not derive anything from it, PROTOCOL.md §11). ``ns`` is the raw ``ns`` object, if any.
    """

    bars: tuple[Bar, ...]
    turnaround: str | None = None
    node: str | None = None
    last_bar_close_time: float | None = None
    ns: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class StudyPayload:
    """The data for one study id inside a ``timescale_update`` or ``du`` (the ``st`` list)."""

    points: tuple[StudyPoint, ...]
    turnaround: str | None = None
    node: str | None = None
    ns: Mapping[str, Any] | None = None


# --------------------------------------------------------------------------------------------
# Events


@dataclass(frozen=True, slots=True)
class Event:
    """Base class of everything :func:`parse_payload` and the sessions report."""


@dataclass(frozen=True, slots=True)
class Hello(Event):
    """The first packet of a connection: a JSON object without ``m`` (PROTOCOL.md §4)."""

    info: Mapping[str, Any]

    @property
    def session_id(self) -> str | None:
        """The server-side session id, when present."""
        value = self.info.get("session_id")
        return value if isinstance(value, str) else None


@dataclass(frozen=True, slots=True)
class Heartbeat(Event):
    """A server heartbeat ``~h~<number>``; ``payload`` is the exact text to echo."""

    number: int
    payload: str


@dataclass(frozen=True, slots=True)
class HeartbeatEcho(Event):
    """Server role: the client echoed heartbeat ``number`` (``payload`` as received)."""

    number: int
    payload: str


@dataclass(frozen=True, slots=True, repr=False)
class ClientRequest(Event):
    """Server role: a client method packet ``{"m": method, "p": params}``.

    The repr masks the token of ``set_auth_token``.
    """

    method: str
    params: tuple[Any, ...]

    def __repr__(self) -> str:
        params = ("<redacted>",) if self.method == "set_auth_token" else self.params
        return f"ClientRequest(method={self.method!r}, params={params!r})"


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerMessage(Event):
    """Base of the events parsed from ``{"m":...,"p":[...]}`` packets.

    ``t`` / ``t_ms`` are the server's optional timestamps (epoch seconds / milliseconds).
    """

    t: float | None = None
    t_ms: int | None = None


@dataclass(frozen=True, slots=True)
class SeriesLoading(ServerMessage):
    """``series_loading``: a ``create_series`` / ``modify_series`` / more-data round started."""

    session: str
    series_id: str
    turnaround: str | None = None


@dataclass(frozen=True, slots=True)
class SymbolResolved(ServerMessage):
    """``symbol_resolved``: metadata for ``symbol_id`` (name, timezone, session, pricescale...)."""

    session: str
    symbol_id: str
    info: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class TimescaleUpdate(ServerMessage):
    """``timescale_update``: historical bars per series id (and study points per study id).

    ``series`` may be empty (a timescale-only update) and a payload may hold no bars.
    ``timescale`` is the raw third element (``index``, ``zoffset``, ``changes``...), or ``None``.
    """

    session: str
    series: Mapping[str, SeriesPayload]
    timescale: Mapping[str, Any] | None = None
    studies: Mapping[str, StudyPayload] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class DataUpdate(ServerMessage):
    """``du``: forming or new bars per series id, and study points per study id."""

    session: str
    series: Mapping[str, SeriesPayload]
    studies: Mapping[str, StudyPayload] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SeriesCompleted(ServerMessage):
    """``series_completed``: one load round of ``series_id`` ended.

    ``data_completed`` is ``"end"`` (no older history), ``"limit"`` (the cap stopped the load) or
    ``None`` (older servers). ``info`` is the raw trailing object.
    """

    session: str
    series_id: str
    update_mode: str | None = None
    turnaround: str | None = None
    data_completed: str | None = None
    rt_update_period: float | None = None
    info: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SeriesTimeframe(ServerMessage):
    """``series_timeframe``: the loaded/visible span of ``series_id`` (``range_`` as sent)."""

    session: str
    series_id: str
    turnaround: str | None = None
    from_index: int | None = None
    to_index: int | None = None
    range_: str | None = None
    flag: bool | None = None


@dataclass(frozen=True, slots=True)
class SymbolError(ServerMessage):
    """``symbol_error``: the server could not resolve ``symbol_id`` (``reason``, e.g.
    ``"invalid symbol"``)."""

    session: str
    symbol_id: str
    reason: str = ""


@dataclass(frozen=True, slots=True)
class SeriesErrorEvent(ServerMessage):
    """``series_error``: the series was refused (``reason``, e.g. ``"custom_resolution"``)."""

    session: str
    series_id: str
    turnaround: str | None = None
    reason: str = ""


@dataclass(frozen=True, slots=True)
class CriticalErrorEvent(ServerMessage):
    """``critical_error``: misuse reported by the server (``name``, ``description``).

    ``error_code`` is taken from a trailing object's ``error_code`` (e.g.
    ``"unauthorized_access"``), when there is one.
    """

    session: str | None
    name: str = ""
    description: str = ""
    error_code: str | None = None
    params: tuple[Any, ...] = ()


@dataclass(frozen=True, slots=True)
class ProtocolErrorEvent(ServerMessage):
    """``protocol_error``: e.g. ``"bad auth token"``; the server closes right after."""

    text: str


@dataclass(frozen=True, slots=True)
class QuoteData(ServerMessage):
    """``qsd``: quote fields for ``symbol`` (a snapshot first, then deltas: merge by key).

    ``status`` is ``"ok"`` or ``"error"``; ``error`` holds ``errmsg`` (``"no_such_symbol"``).
    """

    session: str
    symbol: str
    status: str | None
    values: Mapping[str, Any]
    error: str | None = None


@dataclass(frozen=True, slots=True)
class QuoteCompleted(ServerMessage):
    """``quote_completed``: the first snapshot for ``symbol`` has been delivered."""

    session: str
    symbol: str


@dataclass(frozen=True, slots=True)
class StudyLoading(ServerMessage):
    """``study_loading``: study ``study_id`` started loading (turnaround ``s1_st1``)."""

    session: str
    study_id: str
    turnaround: str | None = None


@dataclass(frozen=True, slots=True)
class StudyCompleted(ServerMessage):
    """``study_completed``: study ``study_id`` finished loading."""

    session: str
    study_id: str
    turnaround: str | None = None


@dataclass(frozen=True, slots=True)
class StudyDeleted(ServerMessage):
    """``study_deleted``: study ``study_id`` was removed."""

    session: str
    study_id: str
    turnaround: str | None = None


@dataclass(frozen=True, slots=True)
class StudyErrorEvent(ServerMessage):
    """``study_error``: the study failed; ``error`` is the reason text, ``details`` the rest."""

    session: str
    study_id: str
    turnaround: str | None = None
    error: str = ""
    details: tuple[Any, ...] = ()


@dataclass(frozen=True, slots=True)
class UnknownMessage(ServerMessage):
    """A method this module does not model (``replay_*``, anything new): not an error."""

    method: str
    params: tuple[Any, ...]


# --------------------------------------------------------------------------------------------
# Parsing helpers

_get_v = itemgetter("v")
_get_i = itemgetter("i")
_MAX_HEARTBEAT_DIGITS = 18


def parse_heartbeat(payload: str) -> int:
    """The number in a ``~h~N`` payload; :class:`MalformedPayloadError` when it is not one."""
    digits = payload[3:]
    if (
        not payload.startswith("~h~")
        or not digits
        or len(digits) > _MAX_HEARTBEAT_DIGITS
        or not digits.isascii()
        or not digits.isdigit()
    ):
        raise malformed("malformed heartbeat", payload)
    return int(digits)


def _checked_number(value: Any) -> float:
    """``value`` if it is a finite number (JSON numbers only: int or float), else ValueError."""
    if not isinstance(value, (int, float)):
        raise ValueError("a bar 'v' holds something that is not a number")
    try:
        finite = isfinite(value)
    except OverflowError:  # an integer literal too large for a float
        finite = False
    if not finite:
        raise ValueError("a bar 'v' holds a number that is not finite")
    return value


def _checked_bar(v: list[Any], i: int) -> Bar:
    """One bar, value by value (the slow path of :func:`parse_bars`)."""
    volume = v[5] if len(v) > 5 else None
    return Bar(
        float(_checked_number(v[0])),
        _checked_number(v[1]),
        _checked_number(v[2]),
        _checked_number(v[3]),
        _checked_number(v[4]),
        None if volume is None else _checked_number(volume),
        i,
    )


def parse_bars(entries: Any) -> tuple[Bar, ...]:
    """Bars from a list of ``{"i": k, "v": [t, o, h, l, c(, vol)]}`` entries.

    Raises :class:`ValueError` (turned into :class:`MalformedPayloadError` by callers) when an
    entry is not such an object, ``i`` is not an integer, ``v`` has fewer than 5 numbers or a
    number is not finite (an overflowing literal). A missing or ``null`` volume is ``None``.
    Elements after the sixth are ignored.
    """
    if type(entries) is not list:
        raise ValueError("bars are not a list")
    if not entries:
        return ()
    try:
        values = list(map(_get_v, entries))
        indexes = list(map(_get_i, entries))
    except (KeyError, TypeError) as exc:
        raise ValueError("a bar is not an object with 'i' and 'v'") from exc
    if not set(map(type, indexes)) <= {int}:
        raise ValueError("a bar index 'i' is not an integer")
    if not set(map(type, values)) <= {list}:
        raise ValueError("a bar 'v' is not a list")
    lengths = set(map(len, values))
    if min(lengths) < 5:
        raise ValueError("a bar 'v' has fewer than 5 numbers")
    try:
        # sum() raises TypeError for anything that is not a number (None, str, list, dict) and
        # OverflowError for an integer too large for a float; a float total is finite only when
        # every value is. Anything else takes the value-by-value path.
        total: Any = sum(map(sum, values))
        fast = type(total) is float and isfinite(total)
    except (TypeError, OverflowError):
        fast = False
    if fast:
        try:
            return _fast_bars(values, indexes, lengths)
        except OverflowError:  # cancelling huge integers hid one from the sum
            pass
    return tuple([_checked_bar(v, i) for v, i in zip(values, indexes, strict=True)])


def _fast_bars(values: list[list[Any]], indexes: list[int], lengths: set[int]) -> tuple[Bar, ...]:
    """Bars from checked ``v`` lists of finite numbers (the hot path of :func:`parse_bars`)."""
    new = tuple.__new__
    if lengths == {6}:
        return tuple(
            [
                new(Bar, (float(v[0]), v[1], v[2], v[3], v[4], v[5], i))
                for v, i in zip(values, indexes, strict=True)
            ]
        )
    if lengths == {5}:
        return tuple(
            [
                new(Bar, (float(v[0]), v[1], v[2], v[3], v[4], None, i))
                for v, i in zip(values, indexes, strict=True)
            ]
        )
    return tuple(
        [
            new(Bar, (float(v[0]), v[1], v[2], v[3], v[4], v[5] if len(v) > 5 else None, i))
            for v, i in zip(values, indexes, strict=True)
        ]
    )


def _parse_points(entries: Any) -> tuple[StudyPoint, ...]:
    if type(entries) is not list:
        raise ValueError("study points are not a list")
    try:
        points = [StudyPoint(e["i"], tuple(e["v"])) for e in entries]
    except (KeyError, TypeError) as exc:
        raise ValueError("a study point is not an object with 'i' and a list 'v'") from exc
    if not set(type(p.index) for p in points) <= {int}:
        raise ValueError("a study point index 'i' is not an integer")
    return tuple(points)


def _opt_str(value: Any, what: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise ValueError(f"{what} is not a string")


def _opt_number(value: Any, what: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    raise ValueError(f"{what} is not a number")


def _opt_int(value: Any, what: str) -> int | None:
    if value is None:
        return None
    if type(value) is int:
        return value
    raise ValueError(f"{what} is not an integer")


def _payload_maps(
    data: Any,
) -> tuple[dict[str, SeriesPayload], dict[str, StudyPayload]]:
    """Split ``{id: payload}`` into series payloads (``s``) and study payloads (``st``)."""
    if type(data) is not dict:
        raise ValueError("the data map is not an object")
    series: dict[str, SeriesPayload] = {}
    studies: dict[str, StudyPayload] = {}
    for key, entry in data.items():
        if type(entry) is not dict:
            raise ValueError(f"the payload of {key!r} is not an object")
        ns = entry.get("ns")
        if ns is not None and type(ns) is not dict:
            raise ValueError(f"'ns' of {key!r} is not an object")
        turnaround = _opt_str(entry.get("t"), "turnaround 't'")
        node = _opt_str(entry.get("node"), "'node'")
        if "st" in entry and "s" not in entry:
            studies[key] = StudyPayload(_parse_points(entry["st"]), turnaround, node, ns)
            continue
        lbs = entry.get("lbs")
        close_time: float | None = None
        if lbs is not None:
            if type(lbs) is not dict:
                raise ValueError(f"'lbs' of {key!r} is not an object")
            close_time = _opt_number(lbs.get("bar_close_time"), "'lbs.bar_close_time'")
        series[key] = SeriesPayload(
            parse_bars(entry.get("s", [])), turnaround, node, close_time, ns
        )
    return series, studies


def _str_at(p: list[Any], index: int, what: str) -> str:
    if index >= len(p):
        raise ValueError(f"missing {what} (parameter {index})")
    value = p[index]
    if not isinstance(value, str):
        raise ValueError(f"{what} (parameter {index}) is not a string")
    return value


def _opt_str_at(p: list[Any], index: int, what: str) -> str | None:
    return _opt_str(p[index], what) if index < len(p) else None


def _text_at(p: list[Any], index: int) -> str:
    """Lenient text for error reasons: whatever is there, as a string."""
    if index >= len(p):
        return ""
    value = p[index]
    return value if isinstance(value, str) else repr(value)


# Each parser takes (params, t, t_ms) and raises ValueError for a wrong shape.
_Parser = Callable[[list[Any], Any, Any], ServerMessage]


def _series_loading(p: list[Any], t: Any, t_ms: Any) -> ServerMessage:
    return SeriesLoading(
        _str_at(p, 0, "session"),
        _str_at(p, 1, "series id"),
        _opt_str_at(p, 2, "turnaround"),
        t=t,
        t_ms=t_ms,
    )


def _symbol_resolved(p: list[Any], t: Any, t_ms: Any) -> ServerMessage:
    info = p[2] if len(p) > 2 else None
    if type(info) is not dict:
        raise ValueError("symbol info (parameter 2) is not an object")
    return SymbolResolved(
        _str_at(p, 0, "session"), _str_at(p, 1, "symbol id"), info, t=t, t_ms=t_ms
    )


def _timescale_update(p: list[Any], t: Any, t_ms: Any) -> ServerMessage:
    session = _str_at(p, 0, "session")
    series, studies = _payload_maps(p[1] if len(p) > 1 else None)
    timescale = p[2] if len(p) > 2 else None
    if timescale is not None and type(timescale) is not dict:
        raise ValueError("the timescale (parameter 2) is not an object")
    return TimescaleUpdate(session, series, timescale, studies, t=t, t_ms=t_ms)


def _du(p: list[Any], t: Any, t_ms: Any) -> ServerMessage:
    session = _str_at(p, 0, "session")
    series, studies = _payload_maps(p[1] if len(p) > 1 else None)
    return DataUpdate(session, series, studies, t=t, t_ms=t_ms)


def _series_completed(p: list[Any], t: Any, t_ms: Any) -> ServerMessage:
    session = _str_at(p, 0, "session")
    series_id = _str_at(p, 1, "series id")
    update_mode = _opt_str_at(p, 2, "update mode")
    turnaround = _opt_str_at(p, 3, "turnaround")
    info = p[4] if len(p) > 4 else {}
    if type(info) is not dict:
        raise ValueError("the completion info (parameter 4) is not an object")
    return SeriesCompleted(
        session,
        series_id,
        update_mode,
        turnaround,
        _opt_str(info.get("data_completed"), "'data_completed'"),
        _opt_number(info.get("rt_update_period"), "'rt_update_period'"),
        info,
        t=t,
        t_ms=t_ms,
    )


def _series_timeframe(p: list[Any], t: Any, t_ms: Any) -> ServerMessage:
    flag = p[6] if len(p) > 6 else None
    if flag is not None and not isinstance(flag, bool):
        raise ValueError("the timeframe flag (parameter 6) is not a boolean")
    return SeriesTimeframe(
        _str_at(p, 0, "session"),
        _str_at(p, 1, "series id"),
        _opt_str_at(p, 2, "turnaround"),
        _opt_int(p[3] if len(p) > 3 else None, "from index"),
        _opt_int(p[4] if len(p) > 4 else None, "to index"),
        _opt_str_at(p, 5, "range"),
        flag,
        t=t,
        t_ms=t_ms,
    )


def _symbol_error(p: list[Any], t: Any, t_ms: Any) -> ServerMessage:
    return SymbolError(
        _str_at(p, 0, "session"), _str_at(p, 1, "symbol id"), _text_at(p, 2), t=t, t_ms=t_ms
    )


def _series_error(p: list[Any], t: Any, t_ms: Any) -> ServerMessage:
    session = _str_at(p, 0, "session")
    series_id = _str_at(p, 1, "series id")
    if len(p) > 3:
        return SeriesErrorEvent(
            session, series_id, _opt_str_at(p, 2, "turnaround"), _text_at(p, 3), t=t, t_ms=t_ms
        )
    return SeriesErrorEvent(session, series_id, None, _text_at(p, 2), t=t, t_ms=t_ms)


def _critical_error(p: list[Any], t: Any, t_ms: Any) -> ServerMessage:
    session = p[0] if p and isinstance(p[0], str) else None
    texts = [x for x in p[1:] if isinstance(x, str)]
    error_code = None
    for x in p:
        if isinstance(x, dict) and isinstance(x.get("error_code"), str):
            error_code = x["error_code"]
    return CriticalErrorEvent(
        session,
        texts[0] if texts else "",
        texts[1] if len(texts) > 1 else "",
        error_code,
        tuple(p),
        t=t,
        t_ms=t_ms,
    )


def _protocol_error(p: list[Any], t: Any, t_ms: Any) -> ServerMessage:
    return ProtocolErrorEvent(_text_at(p, 0), t=t, t_ms=t_ms)


def _qsd(p: list[Any], t: Any, t_ms: Any) -> ServerMessage:
    session = _str_at(p, 0, "quote session")
    data = p[1] if len(p) > 1 else None
    if type(data) is not dict:
        raise ValueError("quote data (parameter 1) is not an object")
    symbol = data.get("n")
    if not isinstance(symbol, str):
        raise ValueError("quote data has no string 'n'")
    values = data.get("v", {})
    if type(values) is not dict:
        raise ValueError("quote values 'v' are not an object")
    return QuoteData(
        session,
        symbol,
        _opt_str(data.get("s"), "quote status 's'"),
        values,
        _opt_str(data.get("errmsg"), "'errmsg'"),
        t=t,
        t_ms=t_ms,
    )


def _quote_completed(p: list[Any], t: Any, t_ms: Any) -> ServerMessage:
    return QuoteCompleted(_str_at(p, 0, "quote session"), _str_at(p, 1, "symbol"), t=t, t_ms=t_ms)


def _study(cls: type[StudyLoading] | type[StudyCompleted] | type[StudyDeleted]) -> _Parser:
    def parse(p: list[Any], t: Any, t_ms: Any) -> ServerMessage:
        return cls(
            _str_at(p, 0, "session"),
            _str_at(p, 1, "study id"),
            _opt_str_at(p, 2, "turnaround"),
            t=t,
            t_ms=t_ms,
        )

    return parse


def _study_error(p: list[Any], t: Any, t_ms: Any) -> ServerMessage:
    session = _str_at(p, 0, "session")
    study_id = _str_at(p, 1, "study id")
    turnaround = p[2] if len(p) > 2 and isinstance(p[2], str) else None
    details = tuple(p[3:] if turnaround is not None else p[2:])
    error = ""
    for x in details:
        if isinstance(x, str):
            error = x
            break
        if isinstance(x, dict) and isinstance(x.get("error"), str):
            error = x["error"]
            break
    return StudyErrorEvent(session, study_id, turnaround, error, details, t=t, t_ms=t_ms)


_PARSERS: dict[str, _Parser] = {
    "series_loading": _series_loading,
    "symbol_resolved": _symbol_resolved,
    "timescale_update": _timescale_update,
    "du": _du,
    "series_completed": _series_completed,
    "series_timeframe": _series_timeframe,
    "symbol_error": _symbol_error,
    "series_error": _series_error,
    "critical_error": _critical_error,
    "protocol_error": _protocol_error,
    "qsd": _qsd,
    "quote_completed": _quote_completed,
    "study_loading": _study(StudyLoading),
    "study_completed": _study(StudyCompleted),
    "study_deleted": _study(StudyDeleted),
    "study_error": _study_error,
}


def _method_packet(payload: str) -> tuple[str, list[Any], dict[str, Any]]:
    """``(method, params, whole object)`` of a JSON payload; ``("", [], obj)`` for a hello."""
    obj = loads(payload)
    if type(obj) is not dict:
        raise malformed("payload is not a JSON object", payload)
    if "m" not in obj:
        return "", [], obj
    method = obj["m"]
    if not isinstance(method, str) or not method:
        raise malformed("'m' is not a non-empty string", payload)
    params = obj.get("p")
    if type(params) is not list:
        raise malformed(f"{method}: 'p' is not a list", payload)
    return method, params, obj


def parse_payload(payload: str) -> Event:
    """Parse one server packet payload into an :class:`Event` (see the module docstring).

    Raises :class:`~tvadapter.errors.MalformedPayloadError` for payloads of the wrong shape.
    """
    if payload.startswith("~h~"):
        return Heartbeat(parse_heartbeat(payload), payload)
    method, params, obj = _method_packet(payload)
    if not method:
        return Hello(obj)
    t = obj.get("t")
    t_ms = obj.get("t_ms")
    try:
        t = _opt_number(t, "'t'")
        t_ms = _opt_int(t_ms, "'t_ms'")
        parser = _PARSERS.get(method)
        if parser is None:
            return UnknownMessage(method, tuple(params), t=t, t_ms=t_ms)
        return parser(params, t, t_ms)
    except ValueError as exc:
        raise malformed(f"{method}: {exc}", payload) from exc


def parse_client_payload(payload: str) -> Event:
    """Server role: parse one client packet into :class:`ClientRequest` or :class:`HeartbeatEcho`.

    A JSON object without ``m`` is malformed here (clients send no hello).
    """
    if payload.startswith("~h~"):
        return HeartbeatEcho(parse_heartbeat(payload), payload)
    method, params, _obj = _method_packet(payload)
    if not method:
        raise malformed("client packet has no 'm'", payload)
    return ClientRequest(method, tuple(params))
