"""Fake server: live mode (du updates driven by a controllable clock) and quote deltas."""

from __future__ import annotations

import pytest

from tvadapter.protocol import (
    DataUpdate,
    QuoteCompleted,
    QuoteData,
    SeriesCompleted,
    TimescaleUpdate,
)

SYMBOL = "BINANCE:BTCUSDT"


def load(p, n=10, resolution="1"):
    p.open_chart(SYMBOL)
    p.send("create_series", "cs_test", "s1", "s1", "sym_1", resolution, n)
    events = p.until(lambda e: isinstance(e, SeriesCompleted))
    return [b for e in events if isinstance(e, TimescaleUpdate) for b in e.series["s1"].bars]


def next_du(p):
    return p.until(lambda e: isinstance(e, DataUpdate))[-1].series["s1"].bars


def test_history_ends_with_the_forming_bar(server, peer):
    """In live mode a load is the closed bars plus the forming bar, as the real server sends."""
    tv = server(live=True)
    p = peer(tv)
    served = load(p, 10)
    assert served[:9] == tv.bars(SYMBOL, "1", 9)
    forming = tv.forming_bar(SYMBOL, "1")
    assert served[9][:6] == forming[:6]
    assert served[9].index == 9
    assert served[9].time > served[8].time


def test_advance_closes_the_forming_bar_with_its_final_values(server, peer):
    """advance(): a du with the forming bar's updates, then its final values and a new bar."""
    tv = server(live=True, updates_per_bar=3)
    p = peer(tv)
    served = load(p, 5)
    before = tv.bars(SYMBOL, "1")
    tv.step()
    (partial,) = next_du(p)
    assert partial.index == 4 and partial.time == served[-1].time
    assert partial.open == served[-1].open
    assert partial.volume >= served[-1].volume
    tv.step()
    tv.step()  # the third step closes the bar
    assert tv.tick == 1
    next_du(p)  # second partial update
    closing = next_du(p)
    assert [b.index for b in closing] == [4, 5]
    after = tv.bars(SYMBOL, "1")
    assert len(after) == len(before) + 1
    assert closing[0][:6] == after[-1][:6]  # the closed bar is now ground truth
    assert closing[1].time > closing[0].time
    assert closing[1][:6] == tv.forming_bar(SYMBOL, "1")[:6]


def test_partial_bars_stay_inside_the_final_range(server, peer):
    """Every forming-bar update lies within the final high/low and ends at the final close."""
    tv = server(live=True, updates_per_bar=4)
    p = peer(tv)
    load(p, 3)
    updates = []
    for _ in range(4):
        tv.step()
        updates.append(next_du(p))
    final = updates[-1][0]
    for bar, *_rest in updates[:-1]:
        assert final.low <= bar.low <= bar.high <= final.high
        assert bar.open == final.open
    assert final[:6] == tv.bars(SYMBOL, "1", 1)[0][:6]


def test_bar_seconds_drives_the_clock(server, peer):
    """With bar_seconds the server closes bars by itself."""
    tv = server(live=True, bar_seconds=0.1)
    p = peer(tv)
    load(p, 3)
    closes = 0
    while closes < 2:
        if len(next_du(p)) == 2:
            closes += 1
    assert tv.tick >= 2


def test_series_loaded_with_a_past_range_gets_no_du(server, peer):
    """Only series loaded up to the newest bar stream du updates."""
    tv = server(live=True)
    truth = tv.bars(SYMBOL, "1D", 30)
    p = peer(tv)
    p.open_chart(SYMBOL)
    p.send("create_series", "cs_test", "s1", "s1", "sym_1", "1D", 5,
           f"r,{int(truth[0].time)}:{int(truth[5].time)}")  # fmt: skip
    p.until(lambda e: isinstance(e, SeriesCompleted))
    tv.advance(1)
    p.send("quote_create_session", "qs_1")
    p.send("quote_add_symbols", "qs_1", SYMBOL)
    events = p.until(lambda e: isinstance(e, QuoteCompleted))
    assert not any(isinstance(e, DataUpdate) for e in events)


def test_quotes_get_deltas_in_live_mode(server, peer):
    """A quote session gets a snapshot, then qsd deltas with the moving last price."""
    tv = server(live=True)
    p = peer(tv)
    p.events()
    p.send("quote_create_session", "qs_1")
    p.send("quote_add_symbols", "qs_1", SYMBOL)
    p.until(lambda e: isinstance(e, QuoteCompleted))
    tv.step()
    delta = p.until(lambda e: isinstance(e, QuoteData))[-1]
    assert delta.symbol == SYMBOL
    assert set(delta.values) >= {"lp", "ch", "lp_time"}
    assert delta.values["lp"] == tv.forming_bar(SYMBOL, "1").close


def test_advance_needs_a_running_server():
    """advance() on a server that is not started raises RuntimeError."""
    from tvadapter.testing import FakeTradingView

    tv = FakeTradingView(live=True)
    with pytest.raises(RuntimeError):
        tv.advance(1)
