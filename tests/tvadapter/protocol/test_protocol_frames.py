"""Regression vectors: every recorded frame in shared/frames parses exactly as its README says."""

from __future__ import annotations

import itertools
import json
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import pytest

from tvadapter.errors import FramingError
from tvadapter.protocol import (
    DataUpdate,
    Hello,
    QuoteCompleted,
    QuoteData,
    SeriesCompleted,
    SeriesLoading,
    SeriesPayload,
    SeriesTimeframe,
    StudyCompleted,
    StudyLoading,
    SymbolResolved,
    TimescaleUpdate,
    decode,
    encode,
    parse_bars,
    parse_payload,
)

BIG = "tradingview-rs__tests_data__socket_messages.txt"
EVENTS = "tradingview-rs__tests_data__events.json"
BTCUSDT = "tradingview-sdk__tests_fixtures__bars_btcusdt.json"
HELLO_PRO = "stock-tools__poc-test-runner__hello_prodata_2025-12.txt"
HELLO_WIDGET = "mockwebsocket__server_js__hello_widgetdata_2024-03.txt"
QSD_2019 = "tv-scraper__tv-decode_js__qsd_2019.txt"


def utc(text: str) -> float:
    """Epoch seconds of a 'YYYY-MM-DD HH:MM' UTC time."""
    return datetime.strptime(text, "%Y-%m-%d %H:%M").replace(tzinfo=timezone.utc).timestamp()


@pytest.fixture(scope="module")
def big_message(read_frame: Callable[[str], str]) -> str:
    """The 1.46 MB, 42-packet recorded message."""
    return read_frame(BIG)


def test_big_message_has_42_packets_and_reencodes(big_message: str) -> None:
    """The 1.46 MB message yields exactly 42 packets whose re-encoding is the message."""
    assert len(big_message) == 1_459_251
    packets = decode(big_message)
    assert len(packets) == 42
    assert max(map(len, packets)) == 333_239
    assert encode(packets) == big_message


def test_big_message_method_counts(big_message: str) -> None:
    """Per-method packet counts match the README table."""
    events = [parse_payload(p) for p in decode(big_message)]
    counts = Counter(type(e) for e in events)
    assert counts == {
        TimescaleUpdate: 6,
        SeriesTimeframe: 8,
        SeriesCompleted: 6,
        DataUpdate: 5,
        StudyCompleted: 5,
        QuoteData: 5,
        QuoteCompleted: 5,
        SymbolResolved: 2,
    }
    sessions = {e.session for e in events if isinstance(e, TimescaleUpdate)}
    assert len(sessions) == 6
    assert len({e.session for e in events if isinstance(e, QuoteData)}) == 1
    modes = Counter(e.update_mode for e in events if isinstance(e, SeriesCompleted))
    assert modes == {"streaming": 4, "delayed_streaming_900": 2}
    assert all(
        e.rt_update_period == 5 and e.data_completed is None
        for e in events
        if isinstance(e, SeriesCompleted)
    )
    ranges = {e.range_ for e in events if isinstance(e, SeriesTimeframe)}
    assert ranges == {"LASTSESSION", "12M"}
    # du packets carry study payloads only: empty point lists with graphics commands in ns.d.
    for e in events:
        if isinstance(e, DataUpdate):
            assert not e.series
            (study,) = e.studies.values()
            assert study.points == ()
            assert study.ns is not None
            assert "graphicsCmds" in study.ns["d"]


# series id -> (bars, has volume, first bar UTC, last bar UTC), from frames/README.md §1.
BIG_SERIES = {
    "sds_5": (2637, True, "2023-06-01 15:38", "2023-06-09 20:04"),
    "sds_2": (2637, False, "2023-06-01 15:10", "2023-06-09 20:00"),
    "sds_3": (2637, False, "2023-06-05 17:04", "2023-06-09 20:14"),
    "sds_4": (3507, False, "2023-06-07 06:32", "2023-06-09 20:59"),
    "sds_7": (368, True, "2021-12-22 14:30", "2023-06-09 13:30"),
    "sds_6": (2637, False, "2023-06-01 15:27", "2023-06-09 20:01"),
}


def test_big_message_bars_per_series(big_message: str) -> None:
    """Bar counts, volume presence, first/last times and indices match the README per series."""
    series: dict[str, SeriesPayload] = {}
    for payload in decode(big_message):
        event = parse_payload(payload)
        if isinstance(event, TimescaleUpdate):
            assert event.timescale is not None
            assert set(event.timescale) >= {"index", "zoffset", "changes", "marks", "index_diff"}
            series.update(event.series)
    assert list(series) == list(BIG_SERIES)
    total = 0
    for sid, (count, has_volume, first, last) in BIG_SERIES.items():
        bars = series[sid].bars
        total += len(bars)
        assert len(bars) == count, sid
        assert all((b.volume is not None) == has_volume for b in bars), sid
        assert [b.index for b in bars] == list(range(count)), sid
        assert (bars[0].time, bars[-1].time) == (utc(first), utc(last)), sid
        assert all(type(b.time) is float for b in bars)
        assert all(a.time < b.time for a, b in itertools.pairwise(bars)), sid
    assert total == 14_423


def test_big_message_ndx_volume_sentinel(big_message: str) -> None:
    """The NASDAQ:NDX quote carries the 1e+100 volume sentinel as a float."""
    quotes = {
        e.symbol: e
        for e in (parse_payload(p) for p in decode(big_message))
        if isinstance(e, QuoteData)
    }
    assert set(quotes) == {
        "NASDAQ:NDX",
        "SP:SPX",
        "BITSTAMP:BTCUSD",
        "NASDAQ:AAPL",
        "NASDAQ:TSLA",
    }
    assert quotes["NASDAQ:NDX"].values["volume"] == 1e100


def test_big_message_symbols_resolved(big_message: str) -> None:
    """The two symbol_resolved packets are SP:SPX and TVC:RUT indices in New York time."""
    resolved = [e for e in map(parse_payload, decode(big_message)) if isinstance(e, SymbolResolved)]
    assert len(resolved) == 2
    assert all(e.info["type"] == "index" for e in resolved)
    assert all(e.info["timezone"] == "America/New_York" for e in resolved)


def test_big_message_with_trailing_garbage_fails(big_message: str) -> None:
    """The big message plus one stray character is a framing error, not 42 packets."""
    with pytest.raises(FramingError):
        decode(big_message + "x")
    with pytest.raises(FramingError):
        decode(big_message[:-1])


def test_events_json(frames_dir: Path) -> None:
    """events.json: 21 messages, the empty 's':[] update first, 300 bars, then a {} update."""
    messages = json.loads((frames_dir / EVENTS).read_text(encoding="utf-8"))
    assert len(messages) == 21
    # Re-frame each decoded message the way the server would (raw UTF-8) and parse it.
    payloads = [json.dumps(m, ensure_ascii=False, separators=(",", ":")) for m in messages]
    events = [parse_payload(p) for p in decode(encode(payloads))]
    counts = Counter(type(e) for e in events)
    assert counts == {
        StudyLoading: 7,
        TimescaleUpdate: 3,
        DataUpdate: 3,
        StudyCompleted: 3,
        QuoteData: 2,
        SeriesLoading: 1,
        SymbolResolved: 1,
        SeriesCompleted: 1,
    }
    updates = [e for e in events if isinstance(e, TimescaleUpdate)]
    first, bars_update, axis_only = updates
    assert first.series["sds_1"].bars == ()
    assert first.series["sds_1"].turnaround == "s2"
    bars = bars_update.series["sds_1"].bars
    assert len(bars) == 300
    assert [b.index for b in bars] == list(range(300))
    assert all(b.volume is not None for b in bars)
    assert (bars[0].time, bars[-1].time) == (utc("2025-03-27 07:00"), utc("2025-06-25 07:00"))
    assert bars_update.series["sds_1"].last_bar_close_time is not None
    assert axis_only.series == {}
    assert axis_only.timescale is not None
    assert axis_only.timescale["index"] == 300
    assert len(axis_only.timescale["changes"]) == 9
    # The bars arrive after the empty update and before the round's series_completed.
    order = [type(e) for e in events]
    assert order.index(SeriesCompleted) > events.index(bars_update) > events.index(first)
    (completed,) = [e for e in events if isinstance(e, SeriesCompleted)]
    assert (completed.update_mode, completed.rt_update_period) == ("delayed_streaming_900", 5)
    studies = [e for e in events if isinstance(e, DataUpdate)]
    assert [len(sp.points) for e in studies for sp in e.studies.values()] == [0, 400, 400]
    assert studies[1].studies["st1"].points[0].index == -1000100
    quotes = [e for e in events if isinstance(e, QuoteData)]
    assert [len(q.values) for q in quotes] == [103, 5]
    assert quotes[0].symbol.startswith("={")


def test_bars_btcusdt(frames_dir: Path) -> None:
    """The tradingview-sdk fixture: 6 daily bars of BTCUSDT with volume, 2026-08-03..08."""
    params = json.loads((frames_dir / BTCUSDT).read_text(encoding="utf-8"))
    assert params[0] == "cs_nibldyin8v0q"
    entry = params[1]["sds_1"]
    bars = parse_bars(entry["s"])
    assert len(bars) == 6
    assert [b.index for b in bars] == list(range(6))
    assert bars[0].time == utc("2026-08-03 00:00")
    assert bars[-1].time == utc("2026-08-08 00:00")
    assert all(b.volume is not None for b in bars)
    assert entry["lbs"]["bar_close_time"] == utc("2026-08-09 00:00")
    # The whole p array as a packet parses too.
    payload = json.dumps({"m": "timescale_update", "p": params})
    event = parse_payload(payload)
    assert isinstance(event, TimescaleUpdate)
    assert event.series["sds_1"].bars == bars
    assert event.series["sds_1"].node == "wdc-charts-free-4-series-dp2v4-1"


@pytest.mark.parametrize(
    ("name", "length", "session_id", "timestamp"),
    [
        (HELLO_PRO, 292, "0.28583.1563_mum1-charts-pro-4-tvbs-dr7ok-3", 1765958639),
        (HELLO_WIDGET, 346, "<0.4949.2378>_dal-charts-5-wgt-webchart-4@dal-compute-5", 1709512185),
    ],
)
def test_hellos(
    read_frame: Callable[[str], str], name: str, length: int, session_id: str, timestamp: int
) -> None:
    """Both recorded hellos are one packet of the stated length that parses to Hello."""
    message = read_frame(name)
    (payload,) = decode(message)
    assert len(payload) == length
    event = parse_payload(payload)
    assert isinstance(event, Hello)
    assert event.session_id == session_id
    assert event.info["timestamp"] == timestamp
    assert event.info["protocol"] == "json"


def test_qsd_2019_long_floats(read_frame: Callable[[str], str]) -> None:
    """The 2019 message: 2 qsd packets (141 and 883 units), 4 then 32 fields, long floats."""
    message = read_frame(QSD_2019)
    assert len(message) == 1042
    packets = decode(message)
    assert [len(p) for p in packets] == [141, 883]
    first, second = (parse_payload(p) for p in packets)
    assert isinstance(first, QuoteData)
    assert isinstance(second, QuoteData)
    assert (first.session, first.symbol) == ("qs_NxbX6Jfp7lFA", "BITSTAMP:BTCUSD")
    assert set(first.values) == {"ask", "ask_size", "bid", "bid_size"}
    assert first.values["ask"] == 8004.8
    assert len(second.values) == 32
    assert second.values["chp"] == -0.01
    assert second.values["open_time"] == 1558396800
    assert second.values["update_mode"] == "streaming"
    assert second.values["type"] == "bitcoin"
