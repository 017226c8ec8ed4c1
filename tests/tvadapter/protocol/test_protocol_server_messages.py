"""Server packet builders: wire shapes, and parse(build(x)) == x for the fake server's output."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tvadapter.protocol import (
    Bar,
    CriticalErrorEvent,
    DataUpdate,
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
    StudyLoading,
    StudyPayload,
    StudyPoint,
    SymbolError,
    SymbolResolved,
    TimescaleUpdate,
    decode,
    encode,
    parse_payload,
)
from tvadapter.protocol import server_messages as S

NS = {"d": "", "indexes": []}
CS = "cs_1"


def test_timestamps_follow_params_in_wire_order() -> None:
    """t / t_ms come after m and p, as whole seconds and milliseconds of the given time."""
    payload = S.series_loading(CS, "s1", "s1", t=1686475613.189)
    assert payload == (
        '{"m":"series_loading","p":["cs_1","s1","s1"],"t":1686475613,"t_ms":1686475613189}'
    )
    assert list(json.loads(payload)) == ["m", "p", "t", "t_ms"]
    assert S.series_loading(CS, "s1", "s1") == '{"m":"series_loading","p":["cs_1","s1","s1"]}'


def test_t_ms_rounding_keeps_seconds_consistent() -> None:
    """A time just below a whole second rounds t_ms up and t with it."""
    obj = json.loads(S.series_loading(CS, "s1", "s1", t=9.9999))
    assert (obj["t"], obj["t_ms"]) == (10, 10000)


def test_server_sends_raw_utf8_with_utf16_lengths() -> None:
    """Non-ASCII text is sent raw, and framing counts it in UTF-16 units (the 99-char qsd)."""
    payload = S.qsd("qs_1", "KRX:005930", {"local_description": "삼성전자보통주"})
    assert "삼성전자보통주" in payload
    frame = encode([payload])
    assert frame.startswith(f"~m~{len(payload)}~m~")
    assert len(payload.encode()) > len(payload)
    emoji = S.symbol_resolved(CS, "sym", {"description": "rocket 🚀"})
    assert encode([emoji]).startswith(f"~m~{len(emoji) + 1}~m~")
    assert decode(encode([emoji, payload])) == [emoji, payload]


def test_hello_default_and_custom() -> None:
    """hello() has no m; with now it carries timestamp and timestampMs."""
    event = parse_payload(S.hello())
    assert isinstance(event, Hello)
    assert event.info["protocol"] == "json"
    assert "timestamp" not in event.info
    info = S.default_hello_info(1765958639.992, session_id="0.1_x", release="release_208-91")
    event = parse_payload(S.hello(info))
    assert isinstance(event, Hello)
    assert (event.info["timestamp"], event.info["timestampMs"]) == (1765958639, 1765958639992)
    assert event.session_id == "0.1_x"
    with pytest.raises(ValueError, match="'m'"):
        S.hello({"m": "x"})


BARS = (
    Bar(1785715200.0, 63570.01, 64080.0, 62300.0, 63520.0, 15543.29743, 0),
    Bar(1785801600.0, 63520.0, 64549.16, 63322.01, 64106.56, None, 1),
    Bar(1785888000.0, 1, 2, 0, 1.5, 0, 2),
)


def test_timescale_update_shape_and_round_trip() -> None:
    """The builder writes node, s, ns, t, lbs and a third element; parsing gives it back."""
    sp = SeriesPayload(BARS, "s1", "wdc-charts-free-4", 1786233600, NS)
    payload = S.timescale_update(CS, {"sds_1": sp}, t=1.0)
    obj = json.loads(payload)
    assert list(obj["p"][1]["sds_1"]) == ["node", "s", "ns", "t", "lbs"]
    assert obj["p"][1]["sds_1"]["s"][1] == {
        "i": 1,
        "v": [1785801600.0, 63520.0, 64549.16, 63322.01, 64106.56],
    }
    assert obj["p"][2] == {
        "index": 0,
        "zoffset": 0,
        "changes": [1785715200.0, 1785801600.0, 1785888000.0],
        "marks": [],
        "index_diff": [],
    }
    event = parse_payload(payload)
    assert event == TimescaleUpdate(CS, {"sds_1": sp}, obj["p"][2], t=1, t_ms=1000)


def test_timescale_update_older_page_and_empty_forms() -> None:
    """Negative indices give index/zoffset like §12; empty maps and "s":[] round-trip."""
    older = tuple(Bar(float(t), 1, 1, 1, 1, 1, i) for t, i in ((10, -2), (20, -1)))
    third = json.loads(S.timescale_update(CS, {"s1": SeriesPayload(older, "s1")}))["p"][2]
    assert (third["index"], third["zoffset"]) == (-2, 2)
    empty = parse_payload(S.timescale_update(CS, {}, {"index": 300, "changes": [1.0]}))
    assert empty == TimescaleUpdate(CS, {}, {"index": 300, "changes": [1.0]})
    no_bars = parse_payload(S.timescale_update(CS, {"sds_1": SeriesPayload((), "s2")}))
    assert isinstance(no_bars, TimescaleUpdate)
    assert no_bars.series["sds_1"] == SeriesPayload((), "s2", None, None, NS)


def test_du_with_series_and_studies_round_trip() -> None:
    """du carries series bars and study points; parsing gives both back."""
    ns = {"d": "", "indexes": "nochange"}
    series = {"s1": SeriesPayload(BARS[:1], "s1", None, 1785801599, ns)}
    studies = {"st1": StudyPayload((StudyPoint(-5, (1.0, 2.5, None)),), "s1_st1", "node", NS)}
    event = parse_payload(S.du(CS, series, studies=studies))
    assert event == DataUpdate(CS, series, studies)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, "1.0", True, None])
def test_bar_values_must_be_finite_numbers(bad: object) -> None:
    """A NaN, infinity, string, bool or None inside a bar is refused, not sent as broken JSON."""
    bar = Bar(1.0, 1.0, bad, 1.0, 1.0, 1.0, 0)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        S.timescale_update(CS, {"s1": SeriesPayload((bar,), "s1")})


SIMPLE = [
    (S.symbol_resolved(CS, "sym", {"name": "A"}), SymbolResolved(CS, "sym", {"name": "A"})),
    (
        S.series_completed(CS, "s1", "streaming", "s1"),
        SeriesCompleted(CS, "s1", "streaming", "s1", None, 5, {"rt_update_period": 5}),
    ),
    (
        S.series_completed(CS, "s1", "streaming", "s1", rt_update_period=0, data_completed="end"),
        SeriesCompleted(
            CS, "s1", "streaming", "s1", "end", 0, {"rt_update_period": 0, "data_completed": "end"}
        ),
    ),
    (
        S.series_timeframe(CS, "s1", "s1", 0, 367, "12M", False),
        SeriesTimeframe(CS, "s1", "s1", 0, 367, "12M", False),
    ),
    (S.symbol_error(CS, "sym"), SymbolError(CS, "sym", "invalid symbol")),
    (
        S.series_error(CS, "s1", "s1", "custom_resolution"),
        SeriesErrorEvent(CS, "s1", "s1", "custom_resolution"),
    ),
    (
        S.critical_error(CS, "invalid parameters", "method: create_series"),
        CriticalErrorEvent(
            CS,
            "invalid parameters",
            "method: create_series",
            None,
            (CS, "invalid parameters", "method: create_series"),
        ),
    ),
    (S.protocol_error("bad auth token"), ProtocolErrorEvent("bad auth token")),
    (
        S.qsd("qs", "X:Y", {}, status="error", error="no_such_symbol"),
        QuoteData("qs", "X:Y", "error", {}, "no_such_symbol"),
    ),
    (S.qsd("qs", "A:B", {"lp": 1e100}), QuoteData("qs", "A:B", "ok", {"lp": 1e100})),
    (S.quote_completed("qs", "A:B"), QuoteCompleted("qs", "A:B")),
    (S.study_loading(CS, "st1", "s1_st1"), StudyLoading(CS, "st1", "s1_st1")),
    (S.study_completed(CS, "st1", "s1_st1"), StudyCompleted(CS, "st1", "s1_st1")),
    (S.series_loading(CS, "s1", "s1"), SeriesLoading(CS, "s1", "s1")),
]


@pytest.mark.parametrize(("payload", "event"), SIMPLE)
def test_simple_builders_round_trip(payload: str, event: object) -> None:
    """Each server builder parses back to the event it describes."""
    assert parse_payload(payload) == event


def test_protocol_error_matches_recorded_frame() -> None:
    """protocol_error framed is exactly the recorded '~m~45~m~...' packet."""
    assert encode([S.protocol_error("bad auth token")]) == (
        '~m~45~m~{"m":"protocol_error","p":["bad auth token"]}'
    )


finite = st.floats(allow_nan=False, allow_infinity=False)
number = st.one_of(finite, st.integers(min_value=-(2**53), max_value=2**53))
bars = st.lists(
    st.builds(
        Bar,
        st.floats(min_value=0, max_value=4e9, allow_nan=False).map(float),
        number,
        number,
        number,
        number,
        st.one_of(st.none(), number),
        st.integers(min_value=-(10**7), max_value=10**7),
    ),
    max_size=30,
).map(tuple)
label = st.text(min_size=1, max_size=10)


@settings(max_examples=80)
@given(
    bars,
    st.one_of(st.none(), label),
    st.one_of(st.none(), label),
    st.one_of(st.none(), st.integers(0, 2**40)),
    st.dictionaries(label, label, max_size=2),
)
def test_series_payload_round_trip(
    bar_tuple: tuple[Bar, ...],
    turnaround: str | None,
    node: str | None,
    close_time: int | None,
    ns: dict[str, str],
) -> None:
    """Any series payload survives build -> frame -> decode -> parse unchanged."""
    sp = SeriesPayload(bar_tuple, turnaround, node, close_time, ns)
    (payload,) = decode(encode([S.timescale_update(CS, {"sid": sp})]))
    event = parse_payload(payload)
    assert isinstance(event, TimescaleUpdate)
    assert event.series["sid"] == sp
    event_du = parse_payload(S.du(CS, {"sid": sp}))
    assert isinstance(event_du, DataUpdate)
    assert event_du.series["sid"] == sp


def test_5000_bar_update_is_about_the_documented_size() -> None:
    """A 5,000-bar timescale_update is on the order of the ~520 KB PROTOCOL.md §12 reports."""
    many = tuple(
        Bar(1.6e9 + 60.0 * i, 100.25 + i, 101.5, 99.75, 100.5, 12345.678, i) for i in range(5000)
    )
    payload = S.timescale_update(CS, {"sds_1": SeriesPayload(many, "s1", "node", 1.7e9, NS)})
    assert 300_000 < len(payload) < 700_000
    event = parse_payload(payload)
    assert isinstance(event, TimescaleUpdate)
    assert event.series["sds_1"].bars == many
