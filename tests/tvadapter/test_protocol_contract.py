"""Black-box contract tests of ``tvadapter.protocol`` as issue 3 states it.

Written from the issue and PROTOCOL.md alone, as an independent checker would: only the public
names ``encode``, ``decode``, the builders, ``parse_payload``, the event classes and the two
sessions are used, and every malformed input must end in a ``tvadapter.errors.ProtocolError``
subclass that is *not* one of the builtin errors a careless parser leaks (IndexError, KeyError,
ValueError, TypeError, OverflowError...).
"""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

import tvadapter.protocol as proto
from tvadapter.errors import FramingError, MalformedPayloadError, ProtocolError, TvError

UTC = timezone.utc

FRAMES = Path(__file__).resolve().parents[2].parent / "shared" / "frames"
CS = "cs_abcdefghijkl"
QS = "qs_abcdefghijkl"

# Builtin exception types a protocol error must not be (nor inherit from).
LEAKY = (IndexError, KeyError, ValueError, TypeError, OverflowError, RecursionError)


def frame_text(name: str) -> str:
    """A recorded .txt frame without the single trailing newline that is not part of it."""
    path = FRAMES / name
    if not path.is_file():
        pytest.skip(f"recorded frame {name} not available")
    text = path.read_text(encoding="utf-8")
    return text[:-1] if text.endswith("\n") else text


def frame_json(name: str) -> Any:
    """A recorded decoded .json frame."""
    path = FRAMES / name
    if not path.is_file():
        pytest.skip(f"recorded frame {name} not available")
    return json.loads(path.read_text(encoding="utf-8"))


def u16(text: str) -> int:
    """JavaScript String.length of ``text``."""
    return len(text.encode("utf-16-le")) // 2


def pkt(payload: str) -> str:
    """One packet framed by hand (independent of the code under test)."""
    return f"~m~{u16(payload)}~m~{payload}"


def method(m: str, p: list[Any], **extra: Any) -> str:
    """A server method payload as compact raw-UTF-8 JSON."""
    return json.dumps({"m": m, "p": p, **extra}, separators=(",", ":"), ensure_ascii=False)


def assert_protocol_error(exc: BaseException, kind: type[ProtocolError]) -> None:
    """``exc`` is a ``kind`` (a ProtocolError, a TvError) and not a leaky builtin error."""
    assert isinstance(exc, kind)
    assert isinstance(exc, ProtocolError)
    assert isinstance(exc, TvError)
    assert not isinstance(exc, LEAKY), type(exc).__mro__


def test_protocol_error_classes_are_not_builtin_errors():
    """FramingError and MalformedPayloadError inherit no builtin ValueError/IndexError/KeyError."""
    for cls in (FramingError, MalformedPayloadError):
        assert issubclass(cls, ProtocolError)
        assert not issubclass(cls, LEAKY)


# --------------------------------------------------------------------------------------------
# Framing vectors, used in both directions

VECTORS: list[tuple[list[str], str]] = [
    ([], ""),
    ([""], "~m~0~m~"),
    (["abc"], "~m~3~m~abc"),
    (["~h~1"], "~m~4~m~~h~1"),
    (["~h~157"], "~m~6~m~~h~157"),
    (["é"], "~m~1~m~é"),
    (["😀"], "~m~2~m~😀"),
    (["a😀b"], "~m~4~m~a😀b"),
    (["삼성전자보통주"], "~m~7~m~삼성전자보통주"),
    (["~m~5~m~hello"], "~m~12~m~~m~5~m~hello"),
    (["x~h~1"], "~m~5~m~x~h~1"),
    (['{"m":"a","p":[]}', "~h~2", "{}"], '~m~16~m~{"m":"a","p":[]}~m~4~m~~h~2~m~2~m~{}'),
    (["😀", "😀😀"], "~m~2~m~😀~m~4~m~😀😀"),
]


@pytest.mark.parametrize(("payloads", "message"), VECTORS)
def test_encode_vectors(payloads, message):
    """encode frames each payload with its UTF-16 length, concatenated in order."""
    assert proto.encode(payloads) == message


@pytest.mark.parametrize(("payloads", "message"), VECTORS)
def test_decode_vectors(payloads, message):
    """decode walks the prefixes and returns the payloads (heartbeats included, in place)."""
    assert proto.decode(message) == payloads


def test_korean_qsd_is_framed_with_utf16_length_not_bytes():
    """A qsd with raw-UTF-8 Korean text is framed with its character count (99 ≠ 113 bytes)."""
    payload = method(
        "qsd",
        ["qs_x", {"n": "KRX:005930", "s": "ok", "v": {"local_description": "삼성전자보통주"}}],
    )
    framed = proto.encode([payload])
    assert framed.startswith(f"~m~{len(payload)}~m~")
    assert len(payload) != len(payload.encode("utf-8"))
    assert proto.decode(framed) == [payload]
    event = proto.parse_payload(proto.decode(framed)[0])
    assert isinstance(event, proto.QuoteData)
    assert event.values["local_description"] == "삼성전자보통주"


def test_emoji_counts_two_units_and_a_utf8_length_is_rejected_or_misparsed():
    """An emoji counts 2 UTF-16 units: a byte-count (4) or code-point (1) prefix is wrong."""
    assert proto.encode(["😀"]) == "~m~2~m~😀"
    with pytest.raises(FramingError):
        proto.decode("~m~4~m~😀")  # UTF-8 byte count: runs past the end
    with pytest.raises(FramingError):
        proto.decode("~m~1~m~😀")  # code points: splits the surrogate pair


def test_heartbeat_between_two_data_packets_is_kept_in_place():
    """A heartbeat packet between two data packets in one message is decoded in place."""
    a = method("series_loading", [CS, "s1", "s1"])
    b = method("quote_completed", [QS, "NASDAQ:AAPL"])
    message = pkt(a) + pkt("~h~7") + pkt(b)
    assert proto.decode(message) == [a, "~h~7", b]


def test_payload_containing_framing_text_is_not_split():
    """A description holding '~m~5~m~' and '~h~1' stays inside its packet."""
    info = {"description": "odd ~m~5~m~hello ~h~1 text", "name": "X"}
    a = method("symbol_resolved", [CS, "symbol_1", info])
    b = "~h~3"
    message = pkt(a) + pkt(b)
    assert proto.decode(message) == [a, b]
    event = proto.parse_payload(proto.decode(message)[0])
    assert isinstance(event, proto.SymbolResolved)
    assert event.info["description"] == info["description"]


def test_many_packets_and_leading_zero_lengths():
    """Many packets per message decode in order; a zero-padded length is still digits."""
    payloads = [f'{{"m":"x{i}","p":[]}}' for i in range(500)]
    assert proto.decode(proto.encode(payloads)) == payloads
    assert proto.decode("~m~003~m~abc~m~0~m~") == ["abc", ""]


MALFORMED_FRAMES = [
    "abc",  # no prefix
    "m~3~m~abc",
    "~x~3~m~abc",
    "~M~3~m~abc",
    " ~m~3~m~abc",  # leading whitespace
    "\r\n~m~3~m~abc",
    "~m~3~m~abc\r\n",  # trailing CRLF
    "~m~3~m~abc\n",  # trailing newline: not part of the message format
    "~m~3~m~abc ",  # trailing space
    "~m~3~m~abcd",  # trailing garbage
    "~m~3~m~abc~m~",  # a dangling prefix
    "~m~3~m~abc~m~1",  # unterminated second prefix
    "~m~3~m~abc~m~1~m~",  # length past the end of the second packet
    "~m~4~m~abc",  # length past the end
    "~m~99999999~m~abc",
    "~m~99999999999999999999999999999999~m~abc",  # absurd length
    "~m~",
    "~m~3",
    "~m~3~m",
    "~m~~m~",  # empty length
    "~m~-3~m~abc",  # sign
    "~m~+3~m~abc",
    "~m~ 3~m~abc",  # spaces
    "~m~3 ~m~abc",
    "~m~3a~m~abc",  # non-digit
    "~m~0x3~m~abc",
    "~m~3.0~m~abc",
    "~m~²~m~ab",  # Unicode digits isdigit() accepts
    "~m~٣~m~abc",
    "~m~\uff13~m~abc",  # fullwidth digit
    "~m~1~m~😀",  # splits a surrogate pair
    "~m~3~m~😀😀",
    "~j~{}",  # legacy JSON prefix
    "~h~1",  # a bare heartbeat without framing
    "\x00~m~1~m~a",
]


@pytest.mark.parametrize("message", MALFORMED_FRAMES)
def test_malformed_framing_raises_framing_error(message):
    """Bad prefix, length past the end, trailing garbage, non-digit length: FramingError only."""
    with pytest.raises(FramingError) as info:
        proto.decode(message)
    assert_protocol_error(info.value, FramingError)


@pytest.mark.parametrize("message", MALFORMED_FRAMES)
def test_malformed_framing_fails_the_client_session(message):
    """A session fed a malformed message raises the protocol error and queues nothing."""
    session = proto.ClientSession()
    with pytest.raises(ProtocolError) as info:
        session.receive_message(message)
    assert not isinstance(info.value, LEAKY)
    assert session.events_received() == []
    assert session.data_to_send() == []


def test_pathological_messages_do_not_hang():
    """Huge inputs of prefixes, digits or tiny packets finish (linear work, no loop stall)."""
    assert proto.decode("~m~1~m~a" * 100_000) == ["a"] * 100_000
    for message in ("~m~" * 200_000, "~m~" + "9" * 200_000 + "~m~x", "~m~1~m~" + "😀" * 100_000):
        with pytest.raises(FramingError):
            proto.decode(message)


# Text that stresses the framing: astral characters, surrogate-free, and the framing markers.
_framing_text = st.lists(
    st.one_of(
        st.characters(blacklist_categories=("Cs",)),
        st.sampled_from(["~", "m", "h", "~m~", "~h~", "~m~5~m~", "😀", "\U0010ffff", "1"]),
    ),
    max_size=20,
).map("".join)


@settings(max_examples=200)
@given(st.lists(_framing_text, max_size=8))
def test_roundtrip_property(payloads):
    """decode(encode(xs)) == xs for arbitrary text with astral characters and ~m~/~h~."""
    message = proto.encode(payloads)
    assert proto.decode(message) == payloads
    assert message == "".join(pkt(p) for p in payloads)


@settings(max_examples=200)
@given(
    st.one_of(
        st.text(alphabet=st.sampled_from(["~", "m", "h", "1", "0", "😀", "a", "9", "\n"])),
        st.text(),
        st.lists(_framing_text, min_size=1, max_size=4).flatmap(
            lambda xs: st.tuples(st.just(proto.encode(xs)), st.integers(0, 200)).map(
                lambda t: t[0][: t[1]] + t[0][t[1] + 1 :]
            )
        ),
    )
)
def test_fuzz_decode_gives_packets_or_framing_error(text):
    """Arbitrary strings (and damaged messages) yield packets or FramingError, nothing else."""
    try:
        packets = proto.decode(text)
    except FramingError as exc:
        assert not isinstance(exc, LEAKY)
    else:
        assert proto.encode(packets) == text


# --------------------------------------------------------------------------------------------
# Events


def parse(payload: str) -> Any:
    return proto.parse_payload(payload)


def assert_frozen(event: object) -> None:
    """Setting an attribute on the event fails."""
    assert dataclasses.is_dataclass(event)
    name = dataclasses.fields(event)[0].name
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(event, name, "changed")


def test_hello_prodata_widgetdata_and_2022_forms():
    """Hellos of 2025 and 2024, and a 2022 one with a string javastudies, parse as Hello."""
    for name in (
        "stock-tools__poc-test-runner__hello_prodata_2025-12.txt",
        "mockwebsocket__server_js__hello_widgetdata_2024-03.txt",
    ):
        (payload,) = proto.decode(frame_text(name))
        event = parse(payload)
        assert isinstance(event, proto.Hello)
        assert event.info["protocol"] == "json"
        assert_frozen(event)
    old = json.dumps(
        {
            "session_id": "<0.1.2>_x@y",
            "timestamp": 1650000000,
            "release": "r",
            "javastudies": "javastudies-3.61_2654",
        }
    )
    event = parse(old)
    assert isinstance(event, proto.Hello)
    assert event.info["javastudies"] == "javastudies-3.61_2654"
    assert isinstance(parse("{}"), proto.Hello)


@pytest.mark.parametrize(("payload", "number"), [("~h~1", 1), ("~h~10", 10), ("~h~157", 157)])
def test_heartbeat_event(payload, number):
    """~h~N becomes a frozen Heartbeat carrying the number and the exact payload to echo."""
    event = parse(payload)
    assert isinstance(event, proto.Heartbeat)
    assert (event.number, event.payload) == (number, payload)
    assert_frozen(event)


def test_series_loading_symbol_resolved_with_timestamps():
    """series_loading and symbol_resolved carry their ids and the optional t / t_ms."""
    event = parse(method("series_loading", [CS, "s1", "s1"], t=1686475613, t_ms=1686475613123))
    assert isinstance(event, proto.SeriesLoading)
    assert (event.session, event.series_id, event.turnaround) == (CS, "s1", "s1")
    assert (event.t, event.t_ms) == (1686475613, 1686475613123)
    assert_frozen(event)
    info = {"name": "삼성전자", "description": "Samsung 😀 ~m~12~m~", "timezone": "Asia/Seoul"}
    event = parse(method("symbol_resolved", [CS, "symbol_1", info]))
    assert isinstance(event, proto.SymbolResolved)
    assert (event.session, event.symbol_id) == (CS, "symbol_1")
    assert event.info["description"] == info["description"]
    assert event.t is None


def test_timescale_update_bars_keep_utc_epoch_seconds_and_missing_volume():
    """Bars keep float epoch-second times (UTC), int or float-typed, with or without volume."""
    payload = method(
        "timescale_update",
        [
            CS,
            {
                "s1": {
                    "node": "n",
                    "s": [
                        {"i": 0, "v": [1685633880.0, 1.5, 2, 1, 1.75, 100]},
                        {"i": 1, "v": [1685633940, 1.75, 2.5, 1.5, 2.0]},
                        {"i": 2, "v": [1685634000.0, 2, 3, 1, 2, 1e100]},
                    ],
                    "ns": {"d": "", "indexes": []},
                    "t": "s1",
                    "lbs": {"bar_close_time": 1685634060},
                }
            },
            {"index": 0, "zoffset": 0, "changes": [], "marks": [], "index_diff": []},
        ],
        t=1686475613,
        t_ms=1686475613001,
    )
    event = parse(payload)
    assert isinstance(event, proto.TimescaleUpdate)
    assert event.session == CS
    assert event.timescale is not None and event.timescale["index"] == 0
    bars = event.series["s1"].bars
    assert [b.time for b in bars] == [1685633880.0, 1685633940.0, 1685634000.0]
    assert all(isinstance(b.time, float) for b in bars)
    assert datetime.fromtimestamp(bars[0].time, UTC) == datetime(2023, 6, 1, 15, 38, tzinfo=UTC)
    assert (bars[0].open, bars[0].high, bars[0].low, bars[0].close) == (1.5, 2, 1, 1.75)
    assert [b.volume for b in bars] == [100, None, 1e100]
    assert [b.index for b in bars] == [0, 1, 2]
    assert event.series["s1"].turnaround == "s1"
    assert_frozen(event)
    with pytest.raises(AttributeError):
        bars[0].time = 0.0  # type: ignore[misc]


def test_timescale_update_empty_series_and_timescale_only():
    """A series with "s":[] has no bars; an empty map {} is a timescale-only update."""
    event = parse(method("timescale_update", [CS, {"sds_1": {"node": "x", "s": [], "t": "s2"}}]))
    assert isinstance(event, proto.TimescaleUpdate)
    assert event.series["sds_1"].bars == ()
    event = parse(
        method("timescale_update", [CS, {}, {"index": 300, "zoffset": 0, "changes": [1, 2]}])
    )
    assert isinstance(event, proto.TimescaleUpdate)
    assert dict(event.series) == {}
    assert event.timescale is not None and event.timescale["index"] == 300


def test_null_volume_is_a_missing_volume():
    """A bar whose volume slot is null is read as a bar without volume, not rejected."""
    event = parse(method("du", [CS, {"s1": {"s": [{"i": 5, "v": [1.0, 1, 2, 0.5, 1.5, None]}]}}]))
    assert isinstance(event, proto.DataUpdate)
    (bar,) = event.series["s1"].bars
    assert bar.volume is None
    assert (bar.time, bar.close, bar.index) == (1.0, 1.5, 5)


def test_du_with_several_series_and_study_data():
    """du maps several series ids to bars and study ids to points, all kept apart."""
    payload = method(
        "du",
        [
            CS,
            {
                "s1": {
                    "s": [{"i": 9, "v": [1700000000.0, 1, 2, 0.5, 1.5, 10.0]}],
                    "ns": {"d": "", "indexes": "nochange"},
                    "t": "s1",
                    "lbs": {"bar_close_time": 1700000060},
                },
                "s2": {"s": [{"i": 3, "v": [1700000000.0, 5, 6, 4, 5.5]}], "t": "s1"},
                "st1": {
                    "st": [{"i": -1000100, "v": [1700000000.0, 1.0, 2.0]}],
                    "ns": {"d": '{"graphicsCmds":{}}', "indexes": [1, 2]},
                },
            },
        ],
    )
    event = parse(payload)
    assert isinstance(event, proto.DataUpdate)
    assert event.series["s1"].bars[0].index == 9
    assert event.series["s1"].bars[0].volume == 10.0
    assert event.series["s2"].bars[0].volume is None
    assert "st1" not in event.series
    assert event.studies["st1"].points[0].index == -1000100
    assert list(event.studies["st1"].points[0].values) == [1700000000.0, 1.0, 2.0]


@pytest.mark.parametrize(
    ("info", "data_completed", "period"),
    [
        ({"rt_update_period": 5}, None, 5),
        ({"rt_update_period": 0, "data_completed": "end"}, "end", 0),
        ({"rt_update_period": 5, "data_completed": "limit"}, "limit", 5),
        ({}, None, None),
    ],
)
def test_series_completed_variants(info, data_completed, period):
    """series_completed exposes update mode, turnaround, data_completed and rt_update_period."""
    event = parse(
        method(
            "series_completed",
            [CS, "s1", "delayed_streaming_900", "s1", info],
            t=1750870230,
            t_ms=1750870230123,
        )
    )
    assert isinstance(event, proto.SeriesCompleted)
    assert (event.session, event.series_id) == (CS, "s1")
    assert (event.update_mode, event.turnaround) == ("delayed_streaming_900", "s1")
    assert event.data_completed == data_completed
    assert event.rt_update_period == period
    assert (event.t, event.t_ms) == (1750870230, 1750870230123)
    assert_frozen(event)


def test_series_completed_old_short_form():
    """A series_completed without its trailing object still parses (optional trailing params)."""
    event = parse(method("series_completed", [CS, "s1", "streaming", "s1"]))
    assert isinstance(event, proto.SeriesCompleted)
    assert event.data_completed is None


def test_series_timeframe():
    """series_timeframe carries the indices, the range text and the flag."""
    event = parse(
        method("series_timeframe", [CS, "sds_2", "s1", -224, 299, "r,1732838400:1766016000", True])
    )
    assert isinstance(event, proto.SeriesTimeframe)
    assert (event.session, event.series_id, event.turnaround) == (CS, "sds_2", "s1")
    assert (event.from_index, event.to_index, event.flag) == (-224, 299, True)
    assert event.range_ == "r,1732838400:1766016000"


def test_error_events():
    """symbol_error, series_error, critical_error (3 params or a dict) and protocol_error."""
    ev = parse(method("symbol_error", [CS, "symbol_1", "invalid symbol"]))
    assert isinstance(ev, proto.SymbolError)
    assert (ev.session, ev.symbol_id, ev.reason) == (CS, "symbol_1", "invalid symbol")
    ev = parse(method("series_error", [CS, "s1", "s1", "custom_resolution"]))
    assert isinstance(ev, proto.SeriesErrorEvent)
    assert (ev.session, ev.series_id, ev.reason) == (CS, "s1", "custom_resolution")
    ev = parse(
        method(
            "critical_error",
            [CS, "invalid timezone", 'method: switch_timezone. args: "[Nowhere/Nowhere]"'],
        )
    )
    assert isinstance(ev, proto.CriticalErrorEvent)
    assert (ev.session, ev.name) == (CS, "invalid timezone")
    assert "Nowhere" in ev.description
    ev = parse(method("critical_error", [CS, {"error_code": "unauthorized_access", "msg": "nope"}]))
    assert isinstance(ev, proto.CriticalErrorEvent)
    assert ev.error_code == "unauthorized_access"
    ev = parse('{"m":"protocol_error","p":["bad auth token"]}')
    assert isinstance(ev, proto.ProtocolErrorEvent)
    assert ev.text == "bad auth token"
    assert proto.decode('~m~45~m~{"m":"protocol_error","p":["bad auth token"]}') == [
        '{"m":"protocol_error","p":["bad auth token"]}'
    ]
    for event in (ev,):
        assert_frozen(event)


def test_quote_events_ok_error_and_numeric_literals():
    """qsd ok/error and quote_completed; 1e+100 and long float literals parse as floats."""
    ev = parse(
        '{"m":"qsd","p":["qs_1",{"n":"NASDAQ:NDX","s":"ok","v":{"volume":1e+100,'
        '"lp":8004.8000000000001819}}]}'
    )
    assert isinstance(ev, proto.QuoteData)
    assert (ev.session, ev.symbol, ev.status) == ("qs_1", "NASDAQ:NDX", "ok")
    assert ev.values["volume"] == 1e100
    assert ev.values["lp"] == pytest.approx(8004.8)
    ev = parse(
        method("qsd", ["qs_1", {"n": "X:NOPE", "s": "error", "errmsg": "no_such_symbol", "v": {}}])
    )
    assert isinstance(ev, proto.QuoteData)
    assert ev.status == "error"
    assert ev.error == "no_such_symbol"
    ev = parse(method("quote_completed", ["qs_1", "NASDAQ:NDX"]))
    assert isinstance(ev, proto.QuoteCompleted)
    assert (ev.session, ev.symbol) == ("qs_1", "NASDAQ:NDX")


def test_study_events():
    """study_loading / study_completed / study_deleted / study_error parse to study events."""
    for m, cls in (
        ("study_loading", proto.StudyLoading),
        ("study_completed", proto.StudyCompleted),
        ("study_deleted", proto.StudyDeleted),
    ):
        ev = parse(method(m, [CS, "st1", "s1_st1"]))
        assert isinstance(ev, cls)
        assert (ev.session, ev.study_id, ev.turnaround) == (CS, "st1", "s1_st1")
    ev = parse(
        method(
            "study_error",
            [CS, "st1", "s1_st1", {"error": "Error on bar 3: x", "ctx": {}, "stack_trace": []}],
        )
    )
    assert isinstance(ev, proto.StudyErrorEvent)
    assert "Error on bar 3" in ev.error


@pytest.mark.parametrize("kind", ["replay_ok", "replay_point", "brand_new_method", "notify"])
def test_unknown_kinds_become_a_generic_event(kind):
    """A method the core does not model becomes UnknownMessage, not an error."""
    ev = parse(method(kind, ["rs_1", {"x": 1}, 2]))
    assert isinstance(ev, proto.UnknownMessage)
    assert ev.method == kind
    assert list(ev.params) == ["rs_1", {"x": 1}, 2]


MALFORMED_PAYLOADS = [
    "",  # ~m~0~m~ gives an empty payload: not JSON
    "{",
    "not json",
    "{'m':'du'}",
    "[1,2]",
    "null",
    "42",
    '"text"',
    '{"m":"du","p":[1}',
    '{"m":"timescale_update","p":["cs",{"s1":{"s":[{"i":0,"v":[1,2]}]}}]}',  # short bar
    '{"m":"timescale_update","p":["cs",{"s1":{"s":[{"v":[1,2,3,4,5]}]}}]}',  # no "i"
    '{"m":"timescale_update","p":["cs",{"s1":{"s":[{"i":0,"v":"x"}]}}]}',
    '{"m":"timescale_update","p":["cs",{"s1":{"s":[{"i":0,"v":[1,"a",3,4,5]}]}}]}',
    '{"m":"timescale_update","p":["cs",{"s1":{"s":[{"i":0,"v":[1e999999,1,1,1,1]}]}}]}',
    '{"m":"du","p":["cs",{"s1":{"s":[{"i":0,"v":[' + "9" * 400 + ",1,1,1,1]}]}}]}",  # huge int
    '{"m":"du","p":["cs",{"s1":{"s":[{"i":0,"v":[NaN,1,1,1,1]}]}}]}',  # NaN is not JSON
    '{"m":"du","p":["cs",[]]}',
    '{"m":"du","p":{}}',
    '{"m":"du"}',
    '{"m":5,"p":[]}',
    '{"m":"series_completed","p":[]}',
    '{"m":"series_completed","p":[1,2]}',
    '{"m":"series_loading","p":["cs"]}',
    '{"m":"symbol_resolved","p":["cs","sym",[]]}',
    '{"m":"qsd","p":["qs",{"s":"ok"}]}',
    '{"m":"qsd","p":["qs"]}',
    "~h~",
    "~h~x",
    "~h~-1",
    "~h~1.5",
    "~h~" + "1" * 40,
    "~h~\u0661",  # Arabic-Indic digit
    "[" * 100_000 + "]" * 100_000,  # deep nesting
]


@pytest.mark.parametrize("payload", MALFORMED_PAYLOADS)
def test_malformed_payload_raises_malformed_payload_error(payload):
    """Non-JSON where JSON is required, and wrong shapes, raise MalformedPayloadError only."""
    with pytest.raises(MalformedPayloadError) as info:
        proto.parse_payload(payload)
    assert_protocol_error(info.value, MalformedPayloadError)


def test_infinite_float_bar_is_rejected_or_parsed_never_leaks():
    """1e999 (an overflowing literal) in a bar is either a protocol error or a float."""
    payload = '{"m":"du","p":["cs",{"s1":{"s":[{"i":0,"v":[1,1e999,1,1,1]}]}}]}'
    try:
        proto.parse_payload(payload)
    except ProtocolError as exc:
        assert not isinstance(exc, LEAKY)


_json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**20), 10**20),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=5),
)
_json_values = st.recursive(
    _json_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.sampled_from(list("isvtnp")) | st.text(max_size=3), inner, max_size=4),
    ),
    max_leaves=12,
)
_METHODS = [
    "series_loading",
    "symbol_resolved",
    "timescale_update",
    "du",
    "series_completed",
    "series_timeframe",
    "symbol_error",
    "series_error",
    "critical_error",
    "protocol_error",
    "qsd",
    "quote_completed",
    "study_loading",
    "study_completed",
    "study_deleted",
    "study_error",
    "replay_ok",
]
_bar = st.fixed_dictionaries(
    {"i": _json_values, "v": st.lists(_json_scalars | st.integers(), max_size=7)}
)
_params = st.lists(
    st.one_of(
        _json_values,
        st.dictionaries(
            st.sampled_from(["s1", "st1"]),
            st.fixed_dictionaries(
                {"s": st.lists(_bar, max_size=3)},
                optional={
                    "st": st.lists(_bar, max_size=2),
                    "lbs": _json_values,
                    "ns": _json_values,
                    "t": _json_values,
                },
            ),
        ),
        st.fixed_dictionaries(
            {},
            optional={
                "n": _json_values,
                "s": _json_values,
                "v": _json_values,
                "errmsg": _json_values,
                "data_completed": _json_values,
                "rt_update_period": _json_values,
                "error_code": _json_values,
            },
        ),
    ),
    max_size=7,
)


@settings(max_examples=200)
@given(
    st.fixed_dictionaries(
        {"m": st.sampled_from(_METHODS), "p": _params},
        optional={"t": _json_values, "t_ms": _json_values},
    )
)
@example({"m": "du", "p": ["cs", {"s1": {"s": [{"i": 0, "v": [10**400, 1, 1, 1, 1]}]}}]})
def test_fuzz_parse_payload_gives_event_or_malformed_error(obj):
    """Any JSON method packet parses to an Event or raises MalformedPayloadError, nothing else."""
    payload = json.dumps(obj)
    try:
        event = proto.parse_payload(payload)
    except MalformedPayloadError as exc:
        assert not isinstance(exc, LEAKY)
    else:
        assert isinstance(event, proto.Event)


# --------------------------------------------------------------------------------------------
# Recorded frames (PROTOCOL.md frames/README.md)


def test_socket_messages_frame_counts():
    """The 42-packet message: 42 packets, the README's method counts and bar counts per series."""
    message = frame_text("tradingview-rs__tests_data__socket_messages.txt")
    payloads = proto.decode(message)
    assert len(payloads) == 42
    events = [proto.parse_payload(p) for p in payloads]
    kinds = Counter(type(e).__name__ for e in events)
    assert kinds == {
        "TimescaleUpdate": 6,
        "SeriesTimeframe": 8,
        "SeriesCompleted": 6,
        "DataUpdate": 5,
        "StudyCompleted": 5,
        "QuoteData": 5,
        "QuoteCompleted": 5,
        "SymbolResolved": 2,
    }
    bars: dict[str, tuple[proto.Bar, ...]] = {}
    for e in events:
        if isinstance(e, proto.TimescaleUpdate):
            for sid, sp in e.series.items():
                bars[sid] = bars.get(sid, ()) + sp.bars
    assert {k: len(v) for k, v in bars.items()} == {
        "sds_5": 2637,
        "sds_2": 2637,
        "sds_3": 2637,
        "sds_4": 3507,
        "sds_7": 368,
        "sds_6": 2637,
    }
    assert sum(len(v) for v in bars.values()) == 14423
    assert all(b.volume is None for b in bars["sds_2"])
    assert all(b.volume is not None for b in bars["sds_5"])

    def utc(t: float) -> str:
        return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M")

    assert (utc(bars["sds_5"][0].time), utc(bars["sds_5"][-1].time)) == (
        "2023-06-01 15:38",
        "2023-06-09 20:04",
    )
    assert (utc(bars["sds_7"][0].time), utc(bars["sds_7"][-1].time)) == (
        "2021-12-22 14:30",
        "2023-06-09 13:30",
    )
    assert [b.index for b in bars["sds_4"]] == list(range(3507))
    modes = Counter(e.update_mode for e in events if isinstance(e, proto.SeriesCompleted))
    assert modes == {"streaming": 4, "delayed_streaming_900": 2}
    ndx = [e for e in events if isinstance(e, proto.QuoteData) and e.symbol == "NASDAQ:NDX"]
    assert ndx and ndx[0].values["volume"] == 1e100


def test_socket_messages_through_the_client_session():
    """The big message fed to a ClientSession yields 42 events and nothing to send."""
    session = proto.ClientSession()
    session.receive_message(frame_text("tradingview-rs__tests_data__socket_messages.txt"))
    assert len(session.events_received()) == 42
    assert session.data_to_send() == []


def test_events_json_messages_parse():
    """The 21 decoded messages of events.json, re-encoded, parse with the README's counts."""
    messages = frame_json("tradingview-rs__tests_data__events.json")
    assert len(messages) == 21
    payloads = [json.dumps(m, ensure_ascii=False, separators=(",", ":")) for m in messages]
    session = proto.ClientSession()
    session.receive_message(proto.encode(payloads))
    events = session.events_received()
    kinds = Counter(type(e).__name__ for e in events)
    assert kinds == {
        "StudyLoading": 7,
        "TimescaleUpdate": 3,
        "DataUpdate": 3,
        "StudyCompleted": 3,
        "QuoteData": 2,
        "SeriesLoading": 1,
        "SymbolResolved": 1,
        "SeriesCompleted": 1,
    }
    ts = [e for e in events if isinstance(e, proto.TimescaleUpdate)]
    assert ts[0].series["sds_1"].bars == ()
    assert len(ts[1].series["sds_1"].bars) == 300
    assert dict(ts[2].series) == {}
    assert ts[2].timescale is not None and ts[2].timescale["index"] == 300
    study_points = sorted(
        len(sp.points)
        for e in events
        if isinstance(e, proto.DataUpdate)
        for sp in e.studies.values()
    )
    assert study_points == [0, 400, 400]


def test_btcusdt_fixture_bars():
    """The sdk fixture's p array: 6 daily bars at 00:00 UTC with volume, i 0-5."""
    p = frame_json("tradingview-sdk__tests_fixtures__bars_btcusdt.json")
    event = proto.parse_payload(json.dumps({"m": "timescale_update", "p": p}))
    assert isinstance(event, proto.TimescaleUpdate)
    bars = event.series["sds_1"].bars
    assert [b.index for b in bars] == list(range(6))
    assert datetime.fromtimestamp(bars[0].time, UTC) == datetime(2026, 8, 3, tzinfo=UTC)
    assert datetime.fromtimestamp(bars[-1].time, UTC) == datetime(2026, 8, 8, tzinfo=UTC)
    assert all(b.volume is not None for b in bars)
    assert event.series["sds_1"].turnaround == "s1"


def test_qsd_2019_long_float_literals():
    """The 2019 two-qsd message: 2 packets, long float literals read as floats."""
    payloads = proto.decode(frame_text("tv-scraper__tv-decode_js__qsd_2019.txt"))
    assert len(payloads) == 2
    a, b = (proto.parse_payload(p) for p in payloads)
    assert isinstance(a, proto.QuoteData) and isinstance(b, proto.QuoteData)
    assert set(a.values) == {"ask", "ask_size", "bid", "bid_size"}
    assert len(b.values) == 32
    assert b.values["chp"] == pytest.approx(-0.01)
    assert b.values["open_time"] == 1558396800


def test_frames_with_a_trailing_newline_are_not_messages():
    """Unstripped, a frame file's trailing newline is trailing garbage (a FramingError)."""
    path = FRAMES / "stock-tools__poc-test-runner__hello_prodata_2025-12.txt"
    if not path.is_file():
        pytest.skip("frame not available")
    with pytest.raises(FramingError):
        proto.decode(path.read_text(encoding="utf-8"))


# --------------------------------------------------------------------------------------------
# Builders (PROTOCOL.md §7, §8)

TVDATAFEED_FRAMES = [
    '~m~54~m~{"m":"set_auth_token","p":["unauthorized_user_token"]}',
    '~m~55~m~{"m":"chart_create_session","p":["cs_abcdefghijkl",""]}',
    '~m~52~m~{"m":"quote_create_session","p":["qs_abcdefghijkl"]}',
    '~m~307~m~{"m":"quote_set_fields","p":["qs_abcdefghijkl","ch","chp","current_session",'
    '"description","local_description","language","exchange","fractional","is_tradable","lp",'
    '"lp_time","minmov","minmove2","original_name","pricescale","pro_name","short_name","type",'
    '"update_mode","volume","currency_code","rchp","rtc"]}',
    '~m~94~m~{"m":"quote_add_symbols","p":["qs_abcdefghijkl","NASDAQ:AAPL",'
    '{"flags":["force_permission"]}]}',
    '~m~64~m~{"m":"quote_fast_symbols","p":["qs_abcdefghijkl","NASDAQ:AAPL"]}',
    '~m~139~m~{"m":"resolve_symbol","p":["cs_abcdefghijkl","symbol_1",'
    '"={\\"symbol\\":\\"NASDAQ:AAPL\\",\\"adjustment\\":\\"splits\\",\\"session\\":\\"regular\\"}"]}',
    '~m~74~m~{"m":"create_series","p":["cs_abcdefghijkl","s1","s1","symbol_1","1D",10]}',
    '~m~58~m~{"m":"switch_timezone","p":["cs_abcdefghijkl","exchange"]}',
]


def test_builders_reproduce_tvdatafeed_frames_exactly():
    """The builders rebuild tvDatafeed's nine get_hist frames byte for byte (PROTOCOL §8)."""
    built = [
        proto.set_auth_token("unauthorized_user_token"),
        proto.chart_create_session(CS),
        proto.quote_create_session(QS),
        proto.quote_set_fields(QS),
        proto.quote_add_symbols(QS, "NASDAQ:AAPL", force_permission=True),
        proto.quote_fast_symbols(QS, "NASDAQ:AAPL"),
        proto.resolve_symbol(CS, "symbol_1", "NASDAQ:AAPL"),
        proto.create_series(CS, "s1", "s1", "symbol_1", "1D", 10, range_=None),
        proto.switch_timezone(CS, "exchange"),
    ]
    assert [proto.encode([p]) for p in built] == TVDATAFEED_FRAMES
    assert proto.decode("".join(TVDATAFEED_FRAMES)) == built


def compact(payload: str) -> Any:
    """The payload parsed, after checking it is compact JSON (no spaces after , or :)."""
    obj = json.loads(payload)
    assert json.dumps(obj, separators=(",", ":")) == payload
    return obj


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (lambda: proto.set_locale("en", "US"), {"m": "set_locale", "p": ["en", "US"]}),
        (lambda: proto.set_data_quality("low"), {"m": "set_data_quality", "p": ["low"]}),
        (lambda: proto.chart_delete_session(CS), {"m": "chart_delete_session", "p": [CS]}),
        (
            lambda: proto.switch_timezone(CS, "Etc/UTC"),
            {"m": "switch_timezone", "p": [CS, "Etc/UTC"]},
        ),
        (
            lambda: proto.create_series(CS, "sds_1", "s1", "sds_sym_1", "1D", 300, ""),
            {"m": "create_series", "p": [CS, "sds_1", "s1", "sds_sym_1", "1D", 300, ""]},
        ),
        (
            lambda: proto.create_series(
                CS, "s1", "s1", "symbol_1", "60", 5000, "r,1732838400:1766016000"
            ),
            {
                "m": "create_series",
                "p": [CS, "s1", "s1", "symbol_1", "60", 5000, "r,1732838400:1766016000"],
            },
        ),
        (
            lambda: proto.modify_series(
                CS, "sds_1", "s1", "sds_sym_1", "188", "r,1732838400:1766016000"
            ),
            {
                "m": "modify_series",
                "p": [CS, "sds_1", "s1", "sds_sym_1", "188", "r,1732838400:1766016000"],
            },
        ),
        (lambda: proto.remove_series(CS, "s1"), {"m": "remove_series", "p": [CS, "s1"]}),
        (
            lambda: proto.request_more_data(CS, "s1", 5000),
            {"m": "request_more_data", "p": [CS, "s1", 5000]},
        ),
        (
            lambda: proto.request_more_tickmarks(CS, "s1", 10),
            {"m": "request_more_tickmarks", "p": [CS, "s1", 10]},
        ),
        (
            lambda: proto.create_study(
                CS, "st1", "st1", "s1", "Volume@tv-basicstudies-246", {"length": 20}
            ),
            {
                "m": "create_study",
                "p": [CS, "st1", "st1", "s1", "Volume@tv-basicstudies-246", {"length": 20}],
            },
        ),
        (lambda: proto.remove_study(CS, "st1"), {"m": "remove_study", "p": [CS, "st1"]}),
        (lambda: proto.quote_delete_session(QS), {"m": "quote_delete_session", "p": [QS]}),
        (
            lambda: proto.quote_remove_symbols(QS, "NASDAQ:AAPL"),
            {"m": "quote_remove_symbols", "p": [QS, "NASDAQ:AAPL"]},
        ),
        (
            lambda: proto.quote_add_symbols(QS, "NASDAQ:AAPL", "SP:SPX"),
            {"m": "quote_add_symbols", "p": [QS, "NASDAQ:AAPL", "SP:SPX"]},
        ),
        (lambda: proto.quote_hibernate_all(QS), {"m": "quote_hibernate_all", "p": [QS]}),
    ],
)
def test_builders_compact_json(payload, expected):
    """Each §7 builder emits compact JSON {"m","p"} with the documented parameter order."""
    assert compact(payload()) == expected


def test_resolve_symbol_spec_is_equals_prefixed_json():
    """resolve_symbol's third param is '=' + JSON with symbol, adjustment and session."""
    obj = compact(proto.resolve_symbol(CS, "sds_sym_1", "NSE:JUNIPER", "dividends", "extended"))
    assert obj["m"] == "resolve_symbol"
    assert obj["p"][:2] == [CS, "sds_sym_1"]
    spec = obj["p"][2]
    assert spec.startswith("=")
    assert json.loads(spec[1:]) == {
        "symbol": "NSE:JUNIPER",
        "adjustment": "dividends",
        "session": "extended",
    }


def test_builders_refuse_bad_arguments_with_value_errors():
    """Bad builder arguments raise a ValueError subclass naming the parameter (local error)."""
    with pytest.raises(ValueError, match="count"):
        proto.create_series(CS, "s1", "s1", "symbol_1", "1D", 0)
    with pytest.raises(ValueError, match="range"):
        proto.modify_series(CS, "s1", "s1", "symbol_1", "1D", "r,20:10")
    with pytest.raises(ValueError, match="n"):
        proto.request_more_data(CS, "s1", -5)


def test_builder_output_roundtrips_through_the_server_parser():
    """A server session parses every builder payload back into the same method and params."""
    payload = proto.create_series(CS, "s1", "s1", "symbol_1", "1D", 10, "")
    server = proto.ServerSession()
    server.receive_message(proto.encode([payload]))
    (request,) = server.events_received()
    assert isinstance(request, proto.ClientRequest)
    assert request.method == "create_series"
    assert list(request.params) == [CS, "s1", "s1", "symbol_1", "1D", 10, ""]


# --------------------------------------------------------------------------------------------
# Sessions


def test_client_session_answers_heartbeats_itself():
    """The client echoes each heartbeat (identical payload, re-framed) and reports it in place."""
    client = proto.ClientSession()
    hello = '{"session_id":"x","protocol":"json"}'
    a = method("series_loading", [CS, "s1", "s1"])
    b = method("series_completed", [CS, "s1", "streaming", "s1", {"rt_update_period": 5}])
    client.receive_message(pkt(hello))
    client.receive_message(pkt(a) + pkt("~h~1") + pkt(b))
    client.receive_message("~m~6~m~~h~157")
    events = client.events_received()
    assert [type(e).__name__ for e in events] == [
        "Hello",
        "SeriesLoading",
        "Heartbeat",
        "SeriesCompleted",
        "Heartbeat",
    ]
    assert client.data_to_send() == ["~m~4~m~~h~1", "~m~6~m~~h~157"]
    assert client.events_received() == []
    assert client.data_to_send() == []


def test_client_session_sends_framed_packets():
    """ClientSession.send queues one framed message per payload."""
    client = proto.ClientSession()
    client.send(proto.set_auth_token("unauthorized_user_token"))
    client.send(proto.chart_create_session(CS))
    assert client.data_to_send() == TVDATAFEED_FRAMES[:2]


def test_malformed_message_leaves_no_partial_events():
    """A message whose second packet is bad raises, and its first packet's event is not queued."""
    client = proto.ClientSession()
    good = method("series_loading", [CS, "s1", "s1"])
    with pytest.raises(ProtocolError) as info:
        client.receive_message(pkt(good) + pkt("~h~1") + pkt("{not json"))
    assert isinstance(info.value, MalformedPayloadError)
    assert client.events_received() == []
    assert client.data_to_send() == []


def test_server_session_is_the_same_core_in_the_server_role():
    """Server hello, heartbeats and packed packets reach a client; echoes and requests return."""
    server = proto.ServerSession()
    client = proto.ClientSession()
    server.send_hello()
    server.send_heartbeat()
    server.send_packets(
        [method("series_loading", [CS, "s1", "s1"]), method("quote_completed", [QS, "X:Y"])]
    )
    outgoing = server.data_to_send()
    assert outgoing[1] == "~m~4~m~~h~1"
    assert len(proto.decode(outgoing[2])) == 2
    assert server.missed_heartbeats == 1
    for message in outgoing:
        client.receive_message(message)
    kinds = [type(e).__name__ for e in client.events_received()]
    assert kinds == ["Hello", "Heartbeat", "SeriesLoading", "QuoteCompleted"]
    client.send(proto.set_auth_token("unauthorized_user_token"))
    for message in client.data_to_send():
        server.receive_message(message)
    events = server.events_received()
    assert [type(e).__name__ for e in events] == ["HeartbeatEcho", "ClientRequest"]
    assert events[0].number == 1
    assert events[1].method == "set_auth_token"
    assert server.missed_heartbeats == 0


def test_server_session_refuses_a_wrong_echo():
    """An echo of a heartbeat never sent is a protocol error (not a builtin error)."""
    server = proto.ServerSession()
    server.send_hello()
    server.send_heartbeat()
    server.data_to_send()
    with pytest.raises(ProtocolError) as info:
        server.receive_message("~m~4~m~~h~9")
    assert not isinstance(info.value, LEAKY)


def test_full_history_conversation_of_5000_bars():
    """tvDatafeed's request goes client -> server; 5,000 bars come back parsed by the same core."""
    client, server = proto.ClientSession(), proto.ServerSession()
    server.send_hello({"session_id": "0.1.2_fake", "protocol": "json"})
    for message in server.data_to_send():
        client.receive_message(message)
    for frame in TVDATAFEED_FRAMES:
        client.send(proto.decode(frame)[0])
    for message in client.data_to_send():
        server.receive_message(message)
    requests = server.events_received()
    assert [r.method for r in requests] == [
        "set_auth_token",
        "chart_create_session",
        "quote_create_session",
        "quote_set_fields",
        "quote_add_symbols",
        "quote_fast_symbols",
        "resolve_symbol",
        "create_series",
        "switch_timezone",
    ]
    bars = [
        proto.Bar(
            1.6e9 + 60.0 * i,
            1.0 + i,
            2.0 + i,
            0.5 + i,
            1.5 + i,
            None if i % 7 == 0 else float(i),
            i,
        )
        for i in range(5000)
    ]
    server.send_packets(
        [
            proto.series_loading(CS, "s1", "s1", t=1.7e9),
            proto.symbol_resolved(CS, "symbol_1", {"name": "AAPL", "description": "Apple 😀"}),
            proto.timescale_update(CS, {"s1": proto.SeriesPayload(tuple(bars), "s1")}, t=1.7e9),
            "~h~1",
            proto.series_completed(CS, "s1", "streaming", "s1", t=1.7e9),
        ]
    )
    server.send_heartbeat()
    for message in server.data_to_send():
        client.receive_message(message)
    events = client.events_received()
    ts = next(e for e in events if isinstance(e, proto.TimescaleUpdate))
    assert list(ts.series["s1"].bars) == bars
    assert isinstance(events[-2], proto.SeriesCompleted)
    assert client.data_to_send() == ["~m~4~m~~h~1"] * 2
