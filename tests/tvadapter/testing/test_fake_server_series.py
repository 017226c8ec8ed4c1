"""Fake server: series rounds, pagination, caps, ranges, errors, quotes, framing variety."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from tvadapter.protocol import (
    ClientSession,
    CriticalErrorEvent,
    Heartbeat,
    ProtocolErrorEvent,
    QuoteCompleted,
    QuoteData,
    SeriesCompleted,
    SeriesErrorEvent,
    SeriesLoading,
    SeriesTimeframe,
    SymbolError,
    SymbolResolved,
    TimescaleUpdate,
    decode,
    parse_payload,
)
from tvadapter.protocol import messages as M

DAY = 86_400
# A Friday evening, UTC: the newest daily bar of US stocks is that Friday's.
DATA_END = int(datetime(2025, 6, 13, 22, 0, tzinfo=timezone.utc).timestamp())


def completed(e):
    return isinstance(e, SeriesCompleted)


def bars_of(events, sid="s1"):
    out = []
    for e in events:
        if isinstance(e, TimescaleUpdate) and sid in e.series:
            out.extend(e.series[sid].bars)
    return out


def round_of(p, *, sid="s1"):
    """Events of one round, up to its series_completed (or an error)."""
    return p.until(
        lambda e: isinstance(e, (SeriesCompleted, SeriesErrorEvent, CriticalErrorEvent)),
    )


def test_create_series_serves_exactly_the_ground_truth(server, peer):
    """create_series answers loading, bars, completed; the bars equal tv.bars(...)."""
    tv = server(data_end=DATA_END)
    p = peer(tv)
    p.open_chart("NASDAQ:AAPL")
    p.send("create_series", "cs_test", "s1", "s1", "sym_1", "1D", 10)
    events = round_of(p)
    kinds = [type(e).__name__ for e in events]
    assert kinds[0] == "Hello"
    assert (
        kinds.index("SeriesLoading")
        < kinds.index("TimescaleUpdate")
        < kinds.index("SeriesCompleted")
    )
    done = events[-1]
    assert (done.series_id, done.turnaround, done.update_mode) == ("s1", "s1", "streaming")
    assert done.rt_update_period == 5
    assert done.data_completed is None
    bars = bars_of(events)
    assert bars == tv.bars("NASDAQ:AAPL", "1D", 10)
    assert [b.index for b in bars] == list(range(10))
    assert datetime.fromtimestamp(bars[-1].time, timezone.utc) == datetime(
        2025, 6, 13, 13, 30, tzinfo=timezone.utc
    )
    update = next(e for e in events if isinstance(e, TimescaleUpdate))
    assert update.t is not None and update.t_ms is not None
    assert update.timescale["index"] == 0
    assert update.series["s1"].turnaround == "s1"
    assert update.series["s1"].node


def test_tvdatafeed_style_request_with_quotes_and_timezone(server, peer):
    """tvDatafeed's exact nine frames get the bars, quote data and no error."""
    tv = server()
    p = peer(tv)
    qs, cs = "qs_abcdefghijkl", "cs_abcdefghijkl"
    p.send("set_auth_token", "unauthorized_user_token")
    p.send("chart_create_session", cs, "")
    p.send("quote_create_session", qs)
    p.send("quote_set_fields", qs, *M.DEFAULT_QUOTE_FIELDS)
    p.send("quote_add_symbols", qs, "NSE:RELIANCE", {"flags": ["force_permission"]})
    p.send("quote_fast_symbols", qs, "NSE:RELIANCE")
    spec = '={"symbol":"NSE:RELIANCE","adjustment":"splits","session":"regular"}'
    p.send("resolve_symbol", cs, "symbol_1", spec)
    p.send("create_series", cs, "s1", "s1", "symbol_1", "1D", 10)
    p.send("switch_timezone", cs, "exchange")
    events = p.until(completed)
    assert len(bars_of(events)) == 10
    assert any(isinstance(e, QuoteData) and e.symbol == "NSE:RELIANCE" for e in events)
    assert any(isinstance(e, QuoteCompleted) for e in events)
    assert events[-1].update_mode == "delayed_streaming_900"  # anonymous NSE data is delayed
    # Daily NSE bars open at 09:15 IST = 03:45 UTC.
    assert all(
        datetime.fromtimestamp(b.time, timezone.utc).strftime("%H:%M") == "03:45"
        for b in bars_of(events)
    )


def test_anonymous_second_series_is_a_critical_error_but_a_new_chart_works(server, peer):
    """Anonymous: one series per chart session; a second chart session works."""
    tv = server()
    p = peer(tv)
    p.open_chart("NASDAQ:AAPL")
    p.send("create_series", "cs_test", "s1", "s1", "sym_1", "1D", 5)
    round_of(p)
    p.send("create_series", "cs_test", "s2", "s1", "sym_1", "60", 5)
    error = round_of(p)[-1]
    assert isinstance(error, CriticalErrorEvent)
    assert error.name == "exceed limit of series in the session"
    p.send("chart_create_session", "cs_other", "")
    p.send("resolve_symbol", "cs_other", "sym_1", "NASDAQ:MSFT")
    p.send("create_series", "cs_other", "s1", "s1", "sym_1", "60", 5)
    events = round_of(p)
    assert isinstance(events[-1], SeriesCompleted)
    assert bars_of(events) == tv.bars("NASDAQ:MSFT", "60", 5)


def test_token_session_allows_several_series(server, peer):
    """With a valid token a chart session may hold several series."""
    tv = server(user_plans={"alice": "pro_premium"})
    p = peer(tv)
    p.open_chart("NASDAQ:AAPL", token=tv.issue_token("alice"))
    p.send("create_series", "cs_test", "s1", "s1", "sym_1", "1D", 5)
    p.send("create_series", "cs_test", "s2", "s2", "sym_1", "1W", 5)
    first = round_of(p)
    second = round_of(p)
    assert isinstance(first[-1], SeriesCompleted) and isinstance(second[-1], SeriesCompleted)
    assert first[-1].rt_update_period == 0  # premium
    assert bars_of(second, "s2") == tv.bars("NASDAQ:AAPL", "1W", 5)


def test_bad_token_gets_protocol_error_then_close(server, peer):
    """A malformed token: protocol_error "bad auth token", then the server closes."""
    tv = server()
    p = peer(tv)
    p.events()
    p.send("set_auth_token", "not-a-jwt")
    code, texts = p.close_code()
    assert code == 1000
    events = [parse_payload(x) for t in texts for x in decode(t)]
    assert isinstance(events[0], ProtocolErrorEvent)
    assert events[0].text == "bad auth token"
    assert texts[0] == '~m~45~m~{"m":"protocol_error","p":["bad auth token"]}'


def test_strict_tokens_refuse_foreign_tokens(server, peer):
    """strict_tokens=True: a well-formed token this server did not issue is a bad token."""
    tv = server(strict_tokens=True)
    other = server()
    p = peer(tv)
    p.events()
    p.send("set_auth_token", other.issue_token("mallory"))
    code, texts = p.close_code()
    assert code == 1000
    assert "bad auth token" in texts[0]


def test_expired_token_session_only_carries_heartbeats(server, peer):
    """An expired token: every request is accepted and only heartbeats come back."""
    tv = server(heartbeat_interval=0.05)
    p = peer(tv)
    p.open_chart("NASDAQ:AAPL", token=tv.issue_token("alice", lifetime=-10))
    p.send("create_series", "cs_test", "s1", "s1", "sym_1", "1D", 5)
    seen = []
    for _ in range(6):
        seen.extend(p.events())
    assert all(isinstance(e, Heartbeat) for e in seen[1:])  # after the hello
    assert tv.connection_log()[0].auth == "expired"
    assert tv.stats().bars_served == 0


def test_unknown_symbol_gets_symbol_error(server, peer):
    """resolve_symbol of an unknown symbol answers symbol_error "invalid symbol"."""
    tv = server()
    p = peer(tv)
    p.open_chart("NASDAQ:NOPE")
    p.send("create_series", "cs_test", "s1", "s1", "sym_1", "1D", 5)
    error = p.until(lambda e: isinstance(e, SymbolError))[-1]
    assert (error.session, error.symbol_id, error.reason) == ("cs_test", "sym_1", "invalid symbol")


@pytest.mark.parametrize("resolution", ["1S", "188", "6H", "2D"])
def test_custom_resolution_needs_a_paid_plan(server, peer, resolution):
    """Seconds and non-standard counts: series_error custom_resolution unless the plan is paid."""
    tv = server(user_plans={"paid": "pro"})
    p = peer(tv)
    p.open_chart("NASDAQ:AAPL")
    p.send("create_series", "cs_test", "s1", "s1", "sym_1", resolution, 5)
    error = round_of(p)[-1]
    assert isinstance(error, SeriesErrorEvent)
    assert error.reason == "custom_resolution"
    q = peer(tv)
    q.open_chart("NASDAQ:AAPL", token=tv.issue_token("paid"))
    q.send("create_series", "cs_test", "s1", "s1", "sym_1", resolution, 5)
    events = round_of(q)
    assert bars_of(events) == tv.bars("NASDAQ:AAPL", resolution, 5)


@pytest.mark.parametrize(
    ("method", "params", "name"),
    [
        ("create_series", ["cs_test", "s1", "s1", "sym_1", "1D", -5], "invalid parameters"),
        ("create_series", ["cs_test", "s1", "s1", "sym_1", "XX", 100], "invalid parameters"),
        ("create_series", ["cs_test", "s1", "s1", "sym_9", "1D", 10], "invalid parameters"),
        ("create_series", ["cs_test", "s1"], "invalid parameters"),
        ("create_series", ["cs_none", "s1", "s1", "sym_1", "1D", 5], "invalid parameters"),
        ("request_more_data", ["cs_test", "s9", 100], "invalid parameters"),
        ("switch_timezone", ["cs_test", "Nowhere/Nowhere"], "invalid timezone"),
    ],
)
def test_misuse_gets_critical_error(server, peer, method, params, name):
    """Bad parameters and an unknown timezone are answered with critical_error."""
    tv = server()
    p = peer(tv)
    p.open_chart("NASDAQ:AAPL")
    p.send(method, *params)
    error = p.until(lambda e: isinstance(e, CriticalErrorEvent))[-1]
    assert error.name == name
    assert error.description.startswith(f"method: {method}. args: ")


def test_critical_error_wording_matches_the_real_server(server, peer):
    """The description reads 'method: switch_timezone. args: "[Nowhere/Nowhere]"'."""
    tv = server()
    p = peer(tv)
    p.open_chart("NASDAQ:AAPL")
    p.send("switch_timezone", "cs_test", "Nowhere/Nowhere")
    error = p.until(lambda e: isinstance(e, CriticalErrorEvent))[-1]
    assert error.description == 'method: switch_timezone. args: "[Nowhere/Nowhere]"'


def test_request_more_data_pages_back_to_the_end_of_history(server, peer):
    """request_more_data serves older bars at negative indices until data_completed "end"."""
    tv = server(history_depth=1200)
    p = peer(tv)
    p.open_chart("BINANCE:BTCUSDT.P")
    p.send("create_series", "cs_test", "s1", "s1", "sym_1", "1", 500)
    rounds = [round_of(p)]
    for _ in range(3):
        p.send("request_more_data", "cs_test", "s1", 500)
        rounds.append(round_of(p))
    sizes = [len(bars_of(r)) for r in rounds]
    assert sizes == [500, 500, 200, 0]
    flags = [r[-1].data_completed for r in rounds]
    assert flags == [None, None, "end", "end"]
    second = bars_of(rounds[1])
    assert [b.index for b in second] == list(range(-500, 0))
    everything = sorted((b for r in rounds for b in bars_of(r)), key=lambda b: b.time)
    truth = tv.bars("BINANCE:BTCUSDT.P", "1")
    assert len(truth) == 1200
    assert [b[:6] for b in everything] == [b[:6] for b in truth]
    update = next(e for e in rounds[1] if isinstance(e, TimescaleUpdate))
    assert (update.timescale["index"], update.timescale["zoffset"]) == (-500, 500)
    assert all(isinstance(e, SeriesLoading) for e in rounds[3][:1])


def test_cap_truncates_silently_with_limit(server, peer):
    """Past the per-series cap the load is cut silently: data_completed "limit", then nothing."""
    tv = server(bar_caps={"anonymous": 1000})
    p = peer(tv)
    p.open_chart("NASDAQ:AAPL")
    p.send("create_series", "cs_test", "s1", "s1", "sym_1", "5", 1500)
    first_round = round_of(p)
    assert len(bars_of(first_round)) == 1000
    assert first_round[-1].data_completed == "limit"
    assert bars_of(first_round) == tv.bars("NASDAQ:AAPL", "5", 1000)
    p.send("request_more_data", "cs_test", "s1", 500)
    more = round_of(p)
    assert bars_of(more) == []
    assert more[-1].data_completed == "limit"


def test_cap_reached_by_pagination(server, peer):
    """The cap counts every round of a series: more data stops at the cap."""
    tv = server(bar_caps={"anonymous": 700})
    p = peer(tv)
    p.open_chart("NASDAQ:AAPL")
    p.send("create_series", "cs_test", "s1", "s1", "sym_1", "1", 500)
    round_of(p)
    p.send("request_more_data", "cs_test", "s1", 500)
    more = round_of(p)
    assert len(bars_of(more)) == 200
    assert more[-1].data_completed == "limit"


def test_range_request_and_zero_bar_modify(server, peer):
    """r,from:to serves the bars inside; a modify_series for a loaded range adds no bars."""
    tv = server(data_end=DATA_END)
    start, end = DATA_END - 30 * DAY, DATA_END - 10 * DAY
    p = peer(tv)
    p.open_chart("NASDAQ:AAPL")
    p.send("create_series", "cs_test", "s1", "s1", "sym_1", "1D", 300, f"r,{start}:{end}")
    events = round_of(p)
    bars = bars_of(events)
    assert bars == tv.bars("NASDAQ:AAPL", "1D", start=start, end=end)
    assert 10 <= len(bars) <= 16
    assert all(start <= b.time <= end for b in bars)
    assert any(isinstance(e, SeriesTimeframe) for e in events)
    inner = f"r,{start + 3 * DAY}:{end - 3 * DAY}"
    p.send("modify_series", "cs_test", "s1", "s2", "sym_1", "1D", inner)
    events = round_of(p)
    assert bars_of(events) == []
    assert [type(e).__name__ for e in events if not isinstance(e, Heartbeat)] == [
        "SeriesLoading",
        "SeriesTimeframe",
        "SeriesTimeframe",
        "SeriesCompleted",
    ]
    assert events[-1].turnaround == "s2"


def test_two_step_range_as_tvkit_does(server, peer):
    """create_series then modify_series with an older range: the second round has its bars."""
    tv = server(data_end=DATA_END)
    start, end = DATA_END - 400 * DAY, DATA_END - 300 * DAY
    p = peer(tv)
    p.open_chart("NASDAQ:AAPL")
    p.send("create_series", "cs_test", "s1", "s1", "sym_1", "1D", 50, "")
    round_of(p)
    p.send("modify_series", "cs_test", "s1", "s1", "sym_1", "1D", f"r,{start}:{end}")
    events = round_of(p)
    assert bars_of(events) == tv.bars("NASDAQ:AAPL", "1D", start=start, end=end)


def test_modify_series_changes_resolution(server, peer):
    """modify_series to another resolution reloads the series at that resolution."""
    tv = server()
    p = peer(tv)
    p.open_chart("NASDAQ:AAPL")
    p.send("create_series", "cs_test", "s1", "s1", "sym_1", "1D", 20)
    round_of(p)
    p.send("modify_series", "cs_test", "s1", "s2", "sym_1", "1W", "")
    events = round_of(p)
    assert bars_of(events) == tv.bars("NASDAQ:AAPL", "1W", 20)


def test_bar_count_form_ends_at_the_given_time(server, peer):
    """count may be ["bar_count", to, n]: n bars ending at time ``to``."""
    tv = server(data_end=DATA_END)
    to = DATA_END - 50 * DAY
    p = peer(tv)
    p.open_chart("NASDAQ:AAPL")
    p.send("create_series", "cs_test", "s1", "s1", "sym_1", "1D", ["bar_count", to, 7])
    bars = bars_of(round_of(p))
    assert bars == tv.bars("NASDAQ:AAPL", "1D", 7, end=to)


def test_index_bars_have_no_volume(server, peer):
    """SP:SPX sends 5-element bars: volume None in the core's Bar."""
    tv = server()
    p = peer(tv)
    p.open_chart("SP:SPX")
    p.send("create_series", "cs_test", "s1", "s1", "sym_1", "1D", 5)
    events = round_of(p)
    assert all(b.volume is None for b in bars_of(events))
    raw = "".join(p.raw)
    assert '"v":[' in raw
    update = next(x for t in p.raw for x in decode(t) if "timescale_update" in x)
    first_v = json.loads(update)["p"][1]["s1"]["s"][0]["v"]
    assert len(first_v) == 5


def test_equivalent_resolution_codes_give_the_same_bars(server):
    """'60' and '1H', 'D' and '1D' name the same bars."""
    tv = server()
    assert tv.bars("NYSE:IBM", "60", 50) == tv.bars("NYSE:IBM", "1H", 50)
    assert tv.bars("NYSE:IBM", "D", 50) == tv.bars("NYSE:IBM", "1D", 50)


def test_five_thousand_bars_served_and_parsed_by_the_core(server, peer):
    """A 5,000-bar history round trip: served, framed and parsed with ClientSession."""
    tv = server()
    p = peer(tv)
    session = ClientSession()
    cs = "cs_abcdefghijkl"
    session.send_all(
        [
            M.set_auth_token("unauthorized_user_token"),
            M.chart_create_session(cs),
            M.resolve_symbol(cs, "symbol_1", "BINANCE:BTCUSDT"),
            M.create_series(cs, "s1", "s1", "symbol_1", "1", 5000),
        ]
    )
    for message in session.data_to_send():
        p.ws.send(message)
    bars = []
    done = None
    while done is None:
        session.receive_message(p.recv_text())
        for message in session.data_to_send():
            p.ws.send(message)
        for event in session.events_received():
            if isinstance(event, TimescaleUpdate) and "s1" in event.series:
                bars.extend(event.series["s1"].bars)
            if isinstance(event, SeriesCompleted):
                done = event
    assert len(bars) == 5000
    assert bars == tv.bars("BINANCE:BTCUSDT", "1", 5000)
    assert max(len(t) for t in p.raw) > 300_000  # about 520 KB on the real server


def test_quote_snapshot_and_error_for_unknown(server, peer):
    """quote_add_symbols: qsd snapshot then quote_completed; unknown symbols get an error qsd."""
    tv = server()
    p = peer(tv)
    p.events()
    p.send("quote_create_session", "qs_1")
    p.send("quote_set_fields", "qs_1", "lp", "ch", "description", "volume")
    p.send("quote_add_symbols", "qs_1", "NASDAQ:AAPL", "NASDAQ:NOPE")
    events = p.until(lambda e: isinstance(e, QuoteData) and e.status == "error")
    ok = next(e for e in events if isinstance(e, QuoteData) and e.status == "ok")
    assert ok.symbol == "NASDAQ:AAPL"
    assert set(ok.values) == {"lp", "ch", "description", "volume"}
    assert ok.values["lp"] == tv.bars("NASDAQ:AAPL", "1", 1)[0].close
    assert any(isinstance(e, QuoteCompleted) and e.symbol == "NASDAQ:AAPL" for e in events)
    error = events[-1]
    assert error.symbol == "NASDAQ:NOPE"
    assert error.error == "no_such_symbol"


def test_non_ascii_is_sent_raw_with_utf16_lengths(server, peer):
    """Korean text and an emoji go out as raw UTF-8; lengths count UTF-16 units."""
    tv = server()
    p = peer(tv)
    p.events()
    p.send("chart_create_session", "cs_test", "")
    p.send("resolve_symbol", "cs_test", "sym_1", "KRX:005930")
    p.send("resolve_symbol", "cs_test", "sym_2", "NYSE:RKT")
    resolved = p.until(lambda e: isinstance(e, SymbolResolved) and e.symbol_id == "sym_2")
    raw = "".join(p.raw)
    assert "삼성전자보통주" in raw and "\\u" not in raw
    assert "🚀" in raw
    rkt = resolved[-1]
    assert "🚀" in rkt.info["description"]
    # The packet length prefix counts the emoji as 2 units: more than len() of the payload.
    message = next(t for t in p.raw if "RKT" in t)
    (payload,) = decode(message)
    assert payload.count("🚀") >= 1
    assert message.startswith(f"~m~{len(payload) + payload.count('🚀')}~m~")


def test_payload_containing_framing_text_is_carried_intact(server, peer):
    """A description holding "~m~12~m~" survives framing (the core walks the prefixes)."""
    tv = server()
    p = peer(tv)
    p.events()
    p.send("chart_create_session", "cs_test", "")
    p.send("resolve_symbol", "cs_test", "sym_1", "NASDAQ:TLDE")
    resolved = p.until(lambda e: isinstance(e, SymbolResolved))[-1]
    assert "~m~12~m~" in resolved.info["description"]


def test_split_packing_sends_one_packet_per_message(server, peer):
    """packing="split": every message holds exactly one packet."""
    tv = server(packing="split")
    p = peer(tv)
    p.open_chart("NASDAQ:AAPL")
    p.send("create_series", "cs_test", "s1", "s1", "sym_1", "1D", 5)
    round_of(p)
    assert all(len(decode(t)) == 1 for t in p.raw)
    assert len(p.raw) >= 5


def test_round_packing_and_mixed_heartbeats(server, peer):
    """Default packing puts a round in one message; mix_heartbeats adds a heartbeat inside it."""
    tv = server(mix_heartbeats=True)
    p = peer(tv)
    p.open_chart("NASDAQ:AAPL")
    p.send("create_series", "cs_test", "s1", "s1", "sym_1", "1D", 5)
    round_of(p)
    message = next(t for t in p.raw if "timescale_update" in t)
    payloads = decode(message)
    assert len(payloads) == 4  # series_loading, ~h~1, timescale_update, series_completed
    assert payloads[1] == "~h~1"
    assert tv.wait_for(lambda s: s.stats().heartbeat_echoes == 1)  # Peer echoed it


def test_login_required_exchange_hangs_for_anonymous(server, peer):
    """login_required_exchanges: an anonymous MCX series gets no answer at all."""
    tv = server(login_required_exchanges=frozenset({"MCX"}), heartbeat_interval=0.05)
    p = peer(tv)
    p.open_chart("MCX:CRUDEOIL1!")
    p.send("create_series", "cs_test", "s1", "s1", "sym_1", "1D", 5)
    seen = []
    for _ in range(5):
        seen.extend(p.events())
    assert not any(isinstance(e, (SeriesLoading, TimescaleUpdate, SeriesCompleted)) for e in seen)


def test_extra_timescale_updates_surround_the_bars(server, peer):
    """extra_timescale_updates: an empty series update before the bars, a timescale-only after."""
    tv = server(extra_timescale_updates=True)
    p = peer(tv)
    p.open_chart("NASDAQ:AAPL")
    p.send("create_series", "cs_test", "s1", "s1", "sym_1", "1D", 8)
    events = round_of(p)
    updates = [e for e in events if isinstance(e, TimescaleUpdate)]
    assert len(updates) == 3
    assert updates[0].series["s1"].bars == ()
    assert len(updates[1].series["s1"].bars) == 8
    assert updates[2].series == {}
    assert len(updates[2].timescale["changes"]) == 3
    assert updates[2].timescale["changes"][0] > updates[1].series["s1"].bars[-1].time
    assert bars_of(events) == tv.bars("NASDAQ:AAPL", "1D", 8)


def test_config_repr_hides_secrets():
    """Passwords and the TOTP code never appear in the configuration's repr."""
    from tvadapter.testing import FakeServerConfig

    text = repr(FakeServerConfig(users={"alice": "hunter2"}, totp_code="987654"))
    assert "hunter2" not in text and "987654" not in text
