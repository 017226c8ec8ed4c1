"""Payload parsing: every server message kind, tolerated variants, and malformed shapes."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tvadapter.errors import MalformedPayloadError, ProtocolError
from tvadapter.protocol import (
    Bar,
    ClientRequest,
    CriticalErrorEvent,
    DataUpdate,
    Event,
    Heartbeat,
    HeartbeatEcho,
    Hello,
    ProtocolErrorEvent,
    QuoteCompleted,
    QuoteData,
    SeriesCompleted,
    SeriesErrorEvent,
    SeriesLoading,
    SeriesPayload,
    SeriesTimeframe,
    StudyCompleted,
    StudyDeleted,
    StudyErrorEvent,
    StudyLoading,
    StudyPayload,
    StudyPoint,
    SymbolError,
    SymbolResolved,
    TimescaleUpdate,
    UnknownMessage,
    parse_bars,
    parse_client_payload,
    parse_payload,
)

NS = {"d": "", "indexes": []}

# (payload, expected event): real shapes from PROTOCOL.md and the recorded frames.
VECTORS: list[tuple[str, Event]] = [
    ("~h~1", Heartbeat(1, "~h~1")),
    ("~h~157", Heartbeat(157, "~h~157")),
    (
        '{"session_id":"0.1_x","timestamp":1765958639,"protocol":"json"}',
        Hello({"session_id": "0.1_x", "timestamp": 1765958639, "protocol": "json"}),
    ),
    (
        '{"m":"series_loading","p":["cs_1","s1","s1"],"t":1686475613,"t_ms":1686475613189}',
        SeriesLoading("cs_1", "s1", "s1", t=1686475613, t_ms=1686475613189),
    ),
    (
        '{"m":"symbol_resolved","p":["cs_1","symbol_1",{"name":"AAPL","timezone":"America/New_York"}]}',
        SymbolResolved("cs_1", "symbol_1", {"name": "AAPL", "timezone": "America/New_York"}),
    ),
    (
        '{"m":"timescale_update","p":["cs_1",{"s1":{"node":"n1","s":[{"i":0,"v":[1685633880.0,1,2,0.5,1.5,100.0]},'
        '{"i":1,"v":[1685633940,1.5,2.5,1,2]}],"ns":{"d":"","indexes":[]},"t":"s1","lbs":{"bar_close_time":1685634000}}},'
        '{"index":0,"zoffset":0,"changes":[],"marks":[],"index_diff":[]}]}',
        TimescaleUpdate(
            "cs_1",
            {
                "s1": SeriesPayload(
                    (
                        Bar(1685633880.0, 1, 2, 0.5, 1.5, 100.0, 0),
                        Bar(1685633940.0, 1.5, 2.5, 1, 2, None, 1),
                    ),
                    "s1",
                    "n1",
                    1685634000,
                    NS,
                )
            },
            {"index": 0, "zoffset": 0, "changes": [], "marks": [], "index_diff": []},
        ),
    ),
    (
        '{"m":"timescale_update","p":["cs_1",{"sds_1":{"s":[],"ns":{"d":"","indexes":[]},"t":"s2"}},{"index":0}]}',
        TimescaleUpdate("cs_1", {"sds_1": SeriesPayload((), "s2", None, None, NS)}, {"index": 0}),
    ),
    (
        '{"m":"timescale_update","p":["cs_1",{},{"index":300,"changes":[1750903200.0]}]}',
        TimescaleUpdate("cs_1", {}, {"index": 300, "changes": [1750903200.0]}),
    ),
    (
        '{"m":"timescale_update","p":["cs_1",{"s1":{"s":[]}}]}',
        TimescaleUpdate("cs_1", {"s1": SeriesPayload(())}, None),
    ),
    (
        '{"m":"du","p":["cs_1",{"s1":{"s":[{"i":9,"v":[1.0,2,3,1,2,5]}],"ns":{"d":"","indexes":"nochange"},"t":"s1"}}]}',
        DataUpdate(
            "cs_1",
            {
                "s1": SeriesPayload(
                    (Bar(1.0, 2, 3, 1, 2, 5, 9),),
                    "s1",
                    None,
                    None,
                    {"d": "", "indexes": "nochange"},
                )
            },
        ),
    ),
    (
        '{"m":"du","p":["cs_1",{"st1":{"st":[{"i":-1000100,"v":[1740639600.0,1.5,1.0]}],"ns":{"d":"","indexes":[]},"t":"s2_st1"}}]}',
        DataUpdate(
            "cs_1",
            {},
            {
                "st1": StudyPayload(
                    (StudyPoint(-1000100, (1740639600.0, 1.5, 1.0)),), "s2_st1", None, NS
                )
            },
        ),
    ),
    (
        '{"m":"series_completed","p":["cs_1","s1","streaming","s1",{"rt_update_period":5}],"t":1,"t_ms":1000}',
        SeriesCompleted(
            "cs_1", "s1", "streaming", "s1", None, 5, {"rt_update_period": 5}, t=1, t_ms=1000
        ),
    ),
    (
        '{"m":"series_completed","p":["cs_1","s1","delayed_streaming_900","s1",{"rt_update_period":0,"data_completed":"limit"}]}',
        SeriesCompleted(
            "cs_1",
            "s1",
            "delayed_streaming_900",
            "s1",
            "limit",
            0,
            {"rt_update_period": 0, "data_completed": "limit"},
        ),
    ),
    (
        '{"m":"series_completed","p":["cs_1","s1"]}',
        SeriesCompleted("cs_1", "s1"),
    ),
    (
        '{"m":"series_timeframe","p":["cs_1","sds_2","s1",-224,299,"r,1732838400:1766016000",false]}',
        SeriesTimeframe("cs_1", "sds_2", "s1", -224, 299, "r,1732838400:1766016000", False),
    ),
    (
        '{"m":"symbol_error","p":["cs_1","symbol_1","invalid symbol"]}',
        SymbolError("cs_1", "symbol_1", "invalid symbol"),
    ),
    (
        '{"m":"series_error","p":["cs_1","s1","s1","custom_resolution"]}',
        SeriesErrorEvent("cs_1", "s1", "s1", "custom_resolution"),
    ),
    (
        '{"m":"series_error","p":["cs_1","s1","custom_resolution"]}',
        SeriesErrorEvent("cs_1", "s1", None, "custom_resolution"),
    ),
    (
        '{"m":"critical_error","p":["cs_1","invalid timezone",'
        '"method: switch_timezone. args: \\"[Nowhere/Nowhere]\\""]}',
        CriticalErrorEvent(
            "cs_1",
            "invalid timezone",
            'method: switch_timezone. args: "[Nowhere/Nowhere]"',
            None,
            ("cs_1", "invalid timezone", 'method: switch_timezone. args: "[Nowhere/Nowhere]"'),
        ),
    ),
    (
        '{"m":"critical_error","p":["cs_1","unauthorized",{"error_code":"unauthorized_access"}]}',
        CriticalErrorEvent(
            "cs_1",
            "unauthorized",
            "",
            "unauthorized_access",
            ("cs_1", "unauthorized", {"error_code": "unauthorized_access"}),
        ),
    ),
    (
        '{"m":"protocol_error","p":["bad auth token"]}',
        ProtocolErrorEvent("bad auth token"),
    ),
    (
        '{"m":"qsd","p":["qs_1",{"n":"NASDAQ:NDX","s":"ok","v":{"volume":1e+100,"lp":8004.8000000000001819}}]}',
        QuoteData("qs_1", "NASDAQ:NDX", "ok", {"volume": 1e100, "lp": 8004.8}),
    ),
    (
        '{"m":"qsd","p":["qs_1",{"n":"X:Y","s":"error","errmsg":"no_such_symbol","v":{}}]}',
        QuoteData("qs_1", "X:Y", "error", {}, "no_such_symbol"),
    ),
    (
        '{"m":"quote_completed","p":["qs_1","NASDAQ:NDX"]}',
        QuoteCompleted("qs_1", "NASDAQ:NDX"),
    ),
    (
        '{"m":"study_loading","p":["cs_1","st1","s2_st1"]}',
        StudyLoading("cs_1", "st1", "s2_st1"),
    ),
    (
        '{"m":"study_completed","p":["cs_1","st1","s2_st1"]}',
        StudyCompleted("cs_1", "st1", "s2_st1"),
    ),
    (
        '{"m":"study_deleted","p":["cs_1","st1","s2_st1"]}',
        StudyDeleted("cs_1", "st1", "s2_st1"),
    ),
    (
        '{"m":"study_error","p":["cs_1","st1","s1_st1",{"error":"Error on bar 5: x","ctx":{}},1]}',
        StudyErrorEvent(
            "cs_1",
            "st1",
            "s1_st1",
            "Error on bar 5: x",
            ({"error": "Error on bar 5: x", "ctx": {}}, 1),
        ),
    ),
    (
        '{"m":"study_error","p":["cs_1","st1","s1_st1","Study not allowed in this connection"]}',
        StudyErrorEvent(
            "cs_1",
            "st1",
            "s1_st1",
            "Study not allowed in this connection",
            ("Study not allowed in this connection",),
        ),
    ),
    (
        '{"m":"replay_point","p":["rs_1",1685633880]}',
        UnknownMessage("replay_point", ("rs_1", 1685633880)),
    ),
    (
        '{"m":"brand_new_method","p":[]}',
        UnknownMessage("brand_new_method", ()),
    ),
]


@pytest.mark.parametrize(("payload", "event"), VECTORS)
def test_parse_vectors(payload: str, event: Event) -> None:
    """Each recorded/documented payload parses to exactly the expected event."""
    assert parse_payload(payload) == event


def test_bars_are_utc_epoch_floats_and_tolerate_missing_volume() -> None:
    """Bar times are floats (even when sent as ints) and a 5-element v gives volume None."""
    bars = parse_bars(
        [{"i": 0, "v": [1685633880, 1, 2, 0, 1]}, {"i": -3, "v": [1.5, 1, 2, 0, 1, 7]}]
    )
    assert bars == (Bar(1685633880.0, 1, 2, 0, 1, None, 0), Bar(1.5, 1, 2, 0, 1, 7, -3))
    assert type(bars[0].time) is float
    assert bars[0].volume is None
    assert bars[1].index == -3


def test_bar_elements_after_the_sixth_are_ignored() -> None:
    """Extra trailing elements in v do not change the bar (forward compatibility)."""
    assert parse_bars([{"i": 0, "v": [1.0, 1, 2, 0, 1, 5, 99, 98]}]) == (
        Bar(1.0, 1, 2, 0, 1, 5, 0),
    )


def test_mixed_bar_lengths_in_one_series() -> None:
    """A series mixing 5- and 6-element bars parses each bar on its own terms."""
    bars = parse_bars([{"i": 0, "v": [1.0, 1, 2, 0, 1]}, {"i": 1, "v": [2.0, 1, 2, 0, 1, 3]}])
    assert [b.volume for b in bars] == [None, 3]


def test_long_float_literals_and_exponents_parse() -> None:
    """Long float literals, 1e+100 and float-typed ints are accepted by the JSON decoder."""
    event = parse_payload(
        '{"m":"qsd","p":["qs",{"n":"A","v":{"a":-0.010000000000000000208,"b":1e+100,"c":1E-7}}]}'
    )
    assert isinstance(event, QuoteData)
    assert event.values == {"a": -0.01, "b": 1e100, "c": 1e-7}
    assert event.status is None


def test_large_timestamps_in_bars() -> None:
    """Float-typed integer times like 1685633880.0 stay exact."""
    (bar,) = parse_bars([{"i": 0, "v": [1685633880.0, 33019.3, 33025.31, 33018.84, 33021.84]}])
    assert bar.time == 1685633880
    assert bar.close == 33021.84


def _m(method: str, params: Any) -> str:
    return json.dumps({"m": method, "p": params})


BAR = {"i": 0, "v": [1.0, 1, 2, 0, 1, 5]}

MALFORMED = [
    "",  # empty payload
    "{",  # bad JSON
    "not json",
    "[1,2]",  # not an object
    '"text"',
    "null",
    "~h~",  # heartbeat without a number
    "~h~x",
    "~h~-1",
    "~h~²",
    "~h~1 ",
    "~h~" + "9" * 40,
    '{"m":1,"p":[]}',  # m not a string
    '{"m":"","p":[]}',
    '{"m":"du"}',  # p missing
    '{"m":"du","p":{}}',  # p not a list
    '{"m":"du","p":"x"}',
    _m("series_loading", []),  # missing session
    _m("series_loading", [1, "s1", "s1"]),  # session not a string
    _m("series_loading", ["cs", None]),
    _m("symbol_resolved", ["cs", "sym"]),  # no info object
    _m("symbol_resolved", ["cs", "sym", []]),
    _m("timescale_update", ["cs"]),  # no data map
    _m("timescale_update", ["cs", []]),
    _m("timescale_update", ["cs", {"s1": []}]),  # payload not an object
    _m("timescale_update", ["cs", {"s1": {"s": {}}}]),  # bars not a list
    _m("timescale_update", ["cs", {"s1": {"s": [1]}}]),  # bar not an object
    _m("timescale_update", ["cs", {"s1": {"s": [{"v": [1, 2, 3, 4, 5]}]}}]),  # no i
    _m("timescale_update", ["cs", {"s1": {"s": [{"i": 0}]}}]),  # no v
    _m("timescale_update", ["cs", {"s1": {"s": [{"i": 0, "v": [1, 2, 3, 4]}]}}]),  # < 5
    _m("timescale_update", ["cs", {"s1": {"s": [{"i": 0, "v": []}]}}]),
    _m("timescale_update", ["cs", {"s1": {"s": [{"i": 0, "v": [1, 2, "3", 4, 5]}]}}]),
    _m("timescale_update", ["cs", {"s1": {"s": [{"i": 0, "v": [1, 2, None, 4, 5]}]}}]),
    _m("timescale_update", ["cs", {"s1": {"s": [{"i": 0, "v": [1, 2, [3], 4, 5]}]}}]),
    _m("timescale_update", ["cs", {"s1": {"s": [{"i": 0, "v": "12345"}]}}]),
    _m("timescale_update", ["cs", {"s1": {"s": [{"i": 0, "v": {"a": 1}}]}}]),
    _m("timescale_update", ["cs", {"s1": {"s": [{"i": 0.5, "v": [1, 2, 3, 4, 5]}]}}]),
    _m("timescale_update", ["cs", {"s1": {"s": [{"i": "0", "v": [1, 2, 3, 4, 5]}]}}]),
    _m("timescale_update", ["cs", {"s1": {"s": [BAR, {"i": 1, "v": [1]}]}}]),
    _m("timescale_update", ["cs", {"s1": {"s": [], "lbs": 5}}]),
    _m("timescale_update", ["cs", {"s1": {"s": [], "lbs": {"bar_close_time": "x"}}}]),
    _m("timescale_update", ["cs", {"s1": {"s": [], "ns": []}}]),
    _m("timescale_update", ["cs", {"s1": {"s": [], "t": 5}}]),
    _m("timescale_update", ["cs", {}, []]),  # timescale not an object
    _m("du", ["cs", {"st1": {"st": [{"i": 0}]}}]),  # study point without v
    _m("du", ["cs", {"st1": {"st": {}}}]),
    _m("du", ["cs", {"st1": {"st": [{"i": "x", "v": []}]}}]),
    _m("series_completed", ["cs", "s1", "streaming", "s1", []]),
    _m("series_completed", ["cs", "s1", "streaming", "s1", {"data_completed": 1}]),
    _m("series_completed", ["cs", "s1", "streaming", "s1", {"rt_update_period": "5"}]),
    _m("series_completed", ["cs", "s1", 5]),
    _m("series_timeframe", ["cs", "s1", "s1", "a", 2, "12M", True]),
    _m("series_timeframe", ["cs", "s1", "s1", 1, 2, "12M", "yes"]),
    _m("symbol_error", ["cs"]),
    _m("series_error", []),
    _m("qsd", ["qs"]),
    _m("qsd", ["qs", {"s": "ok", "v": {}}]),  # no n
    _m("qsd", ["qs", {"n": "A", "v": []}]),
    _m("qsd", ["qs", {"n": "A", "s": 1, "v": {}}]),
    _m("quote_completed", ["qs"]),
    _m("study_loading", ["cs"]),
    _m("study_error", ["cs"]),
    '{"m":"series_loading","p":["cs","s1","s1"],"t":"now"}',  # bad t
    '{"m":"series_loading","p":["cs","s1","s1"],"t_ms":1.5}',
    "[" * 100_000 + "]" * 100_000,  # deep nesting (RecursionError inside json)
]


@pytest.mark.parametrize("payload", MALFORMED)
def test_malformed_payloads_raise_malformed_payload_error(payload: str) -> None:
    """Wrong shapes raise MalformedPayloadError (a ProtocolError), never a builtin error."""
    with pytest.raises(MalformedPayloadError) as info:
        parse_payload(payload)
    assert isinstance(info.value, ProtocolError)
    assert len(str(info.value)) < 300


def test_malformed_error_excerpt_is_short_and_masks_tokens() -> None:
    """The error shows a bounded excerpt and never a JWT."""
    jwt = "eyJhbGciOiJSUzUxMiJ9." + "a" * 500 + ".sig"
    with pytest.raises(MalformedPayloadError) as info:
        parse_payload('{"m":"series_loading","p":[1,"' + jwt + '"]}' + " " * 10_000)
    assert "eyJ" not in str(info.value)
    assert len(str(info.value)) < 200


def test_error_events_are_lenient() -> None:
    """Error events with unusual reasons still parse: the server's text must reach the user."""
    event = parse_payload(_m("symbol_error", ["cs", "sym", {"reason": "odd"}]))
    assert isinstance(event, SymbolError)
    assert "odd" in event.reason
    event = parse_payload(_m("protocol_error", []))
    assert event == ProtocolErrorEvent("")
    event = parse_payload(_m("critical_error", []))
    assert isinstance(event, CriticalErrorEvent)
    assert event.session is None


def test_hello_session_id_property() -> None:
    """Hello exposes session_id when it is a string, else None."""
    assert Hello({"session_id": "x"}).session_id == "x"
    assert Hello({"session_id": 5}).session_id is None


def test_events_are_frozen() -> None:
    """Events are immutable values."""
    event = parse_payload('{"m":"quote_completed","p":["qs","A"]}')
    assert isinstance(event, QuoteCompleted)
    with pytest.raises(AttributeError):
        event.symbol = "B"  # type: ignore[misc]


def test_unknown_message_keeps_params() -> None:
    """Unknown methods become UnknownMessage with their params and timestamps, not errors."""
    event = parse_payload('{"m":"replay_ok","p":["rs_1","x",{"a":1}],"t":5,"t_ms":5000}')
    assert event == UnknownMessage("replay_ok", ("rs_1", "x", {"a": 1}), t=5, t_ms=5000)


CLIENT_VECTORS: list[tuple[str, Event]] = [
    ("~h~3", HeartbeatEcho(3, "~h~3")),
    (
        '{"m":"set_auth_token","p":["unauthorized_user_token"]}',
        ClientRequest("set_auth_token", ("unauthorized_user_token",)),
    ),
    (
        '{"m":"create_series","p":["cs","s1","s1","symbol_1","1D",10]}',
        ClientRequest("create_series", ("cs", "s1", "s1", "symbol_1", "1D", 10)),
    ),
]


@pytest.mark.parametrize(("payload", "event"), CLIENT_VECTORS)
def test_parse_client_payload(payload: str, event: Event) -> None:
    """Server role: client packets parse into ClientRequest / HeartbeatEcho."""
    assert parse_client_payload(payload) == event


@pytest.mark.parametrize("payload", ['{"session_id":"x"}', "~h~", "{", '{"m":"x","p":5}', "[]"])
def test_parse_client_payload_rejects_garbage(payload: str) -> None:
    """Server role: a hello-like object, bad JSON or a bad heartbeat is malformed."""
    with pytest.raises(MalformedPayloadError):
        parse_client_payload(payload)


def test_client_request_repr_masks_the_token() -> None:
    """The repr of a set_auth_token request never shows the token."""
    request = ClientRequest("set_auth_token", ("eyJsecret.token.value",))
    assert "secret" not in repr(request)
    assert "set_auth_token" in repr(request)
