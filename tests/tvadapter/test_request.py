"""Tests of tvadapter._request: the sans-I/O history request state machine (no I/O)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tvadapter import (
    AuthenticationError,
    CriticalError,
    DataIncompleteError,
    SeriesError,
    ServerProtocolError,
    SymbolNotFoundError,
    TokenExpiredError,
    TvConnectionError,
    TvTimeoutError,
)
from tvadapter._request import (
    HeartbeatOnlySession,
    HistoryRequest,
    RequestState,
    SeriesBars,
    bars_to_array,
    server_error,
)
from tvadapter.protocol import Bar, CriticalErrorEvent, Heartbeat, SeriesErrorEvent, parse_payload
from tvadapter.protocol import SymbolError as SymbolErrorEvent

# shared/ sits beside the repository (in CI too); the tests that read recorded frames skip
# with a reason when it is absent.
FRAMES = Path(__file__).resolve().parents[3] / "shared" / "frames"
needs_frames = pytest.mark.skipif(
    not FRAMES.is_dir(), reason=f"recorded frames not found at {FRAMES}"
)
CS = "cs_testtesttest"
DAY = 86_400.0
T0 = 1_600_000_000.0


def bar_payload(
    i: int, t: float, *, volume: bool = True, close: float | None = None
) -> dict[str, Any]:
    c = 100.0 + (t - T0) / DAY if close is None else close
    v = [t, c - 1.0, c + 2.0, c - 2.0, c]
    if volume:
        v.append(1000.0 + i)
    return {"i": i, "v": v}


def packet(method: str, params: list[Any]) -> str:
    return json.dumps({"m": method, "p": params}, separators=(",", ":"))


def feed(req: HistoryRequest, method: str, params: list[Any], now: float = 0.0) -> list[str]:
    return req.receive(parse_payload(packet(method, params)), now)


def timescale(
    times: list[float], first_index: int = 0, *, sid: str = "s1", cs: str = CS, volume: bool = True
) -> list[Any]:
    bars = [bar_payload(first_index + k, t, volume=volume) for k, t in enumerate(times)]
    return [
        cs,
        {sid: {"node": "n", "s": bars, "ns": {"d": "", "indexes": []}, "t": "s1"}},
        {"index": first_index, "zoffset": 0, "changes": times},
    ]


def completed(
    data_completed: str | None = None, *, sid: str = "s1", turnaround: str = "s1", cs: str = CS
) -> list[Any]:
    info: dict[str, Any] = {"rt_update_period": 5}
    if data_completed is not None:
        info["data_completed"] = data_completed
    return [cs, sid, "streaming", turnaround, info]


def methods(payloads: list[str]) -> list[str]:
    return [json.loads(p)["m"] for p in payloads]


def new_request(**kwargs: Any) -> HistoryRequest:
    kwargs.setdefault("chart_session", CS)
    kwargs.setdefault("symbol", "NSE:TEST")
    kwargs.setdefault("resolution", "1D")
    return HistoryRequest(**kwargs)


def days(n: int, end: float = T0 + 10_000 * DAY) -> list[float]:
    return [end - (n - 1 - k) * DAY for k in range(n)]


def test_start_sends_session_symbol_and_series() -> None:
    """start() creates the chart session, resolves the symbol and asks for min(n, round) bars."""
    req = new_request(n_bars=12_000, session="extended", round_size=5_000)
    sent = req.start(0.0)
    assert methods(sent) == ["chart_create_session", "resolve_symbol", "create_series"]
    create = json.loads(sent[2])["p"]
    assert create == [CS, "s1", "s1", "symbol_1", "1D", 5_000, ""]
    spec = json.loads(json.loads(sent[1])["p"][2][1:])
    assert spec == {"symbol": "NSE:TEST", "adjustment": "splits", "session": "extended"}
    assert req.state is RequestState.LOADING


def test_single_round_collects_bars_and_finishes() -> None:
    """One create_series round with exactly n bars ends DONE with those bars, oldest first."""
    req = new_request(n_bars=10)
    req.start(0.0)
    times = days(10)
    assert feed(req, "series_loading", [CS, "s1", "s1"]) == []
    feed(req, "timescale_update", timescale(times))
    assert feed(req, "series_completed", completed()) == []
    assert req.state is RequestState.DONE
    result = req.result()
    assert list(result.times) == times
    assert len(result) == 10 and not result.exhausted
    assert methods(req.finish()) == ["chart_delete_session"]


def test_pagination_asks_for_older_bars_until_count_met() -> None:
    """Short rounds trigger request_more_data for the remainder until n_bars are held."""
    req = new_request(n_bars=12, round_size=5)
    req.start(0.0)
    all_times = days(12)
    feed(req, "timescale_update", timescale(all_times[-5:]))
    more = feed(req, "series_completed", completed())
    assert methods(more) == ["request_more_data"]
    assert json.loads(more[0])["p"] == [CS, "s1", 5]
    feed(req, "timescale_update", timescale(all_times[2:7], first_index=-5))
    more = feed(req, "series_completed", completed())
    assert json.loads(more[0])["p"] == [CS, "s1", 2]
    feed(req, "timescale_update", timescale(all_times[:2], first_index=-2))
    assert feed(req, "series_completed", completed()) == []
    assert req.state is RequestState.DONE
    assert list(req.result().times) == all_times
    assert req.result().rounds == 3


def test_round_adding_nothing_means_history_exhausted() -> None:
    """A more-data round that adds no new times ends the request with fewer bars, flagged."""
    req = new_request(n_bars=50, round_size=10)
    req.start(0.0)
    times = days(10)
    feed(req, "timescale_update", timescale(times))
    assert methods(feed(req, "series_completed", completed())) == ["request_more_data"]
    assert feed(req, "series_completed", completed()) == []  # zero bars this round
    result = req.result()
    assert result.exhausted and len(result) == 10


@pytest.mark.parametrize("flag", ["end", "limit"])
def test_data_completed_stops_pagination(flag: str) -> None:
    """series_completed with data_completed ends loading even when short of n_bars."""
    req = new_request(n_bars=50, round_size=10)
    req.start(0.0)
    feed(req, "timescale_update", timescale(days(7)))
    assert feed(req, "series_completed", completed(flag)) == []
    result = req.result()
    assert result.exhausted and result.data_completed == flag and len(result) == 7


def test_extra_bars_are_trimmed_to_the_newest_n() -> None:
    """A server sending more than asked yields only the newest n_bars."""
    req = new_request(n_bars=3)
    req.start(0.0)
    times = days(8)
    feed(req, "timescale_update", timescale(times))
    feed(req, "series_completed", completed())
    assert list(req.result().times) == times[-3:]


@needs_frames
def test_recorded_session_quirks() -> None:
    """The recorded frames (empty "s":[] first, studies, timescale-only update) give 300 bars."""
    messages = json.loads((FRAMES / "tradingview-rs__tests_data__events.json").read_text())
    req = HistoryRequest(
        chart_session="cs_tKeYG4jmczi0",
        symbol="HOSE:VCB",
        resolution="60",
        n_bars=300,
        series_id="sds_1",
        symbol_id="sds_sym_2",
        turnaround="s2",
    )
    req.start(0.0)
    states = []
    for message in messages:
        req.receive(parse_payload(json.dumps(message)), 1.0)
        states.append(req.state)
    # Not done at the empty update, nor at the timescale-only one: only at series_completed.
    index = [m["m"] for m in messages].index("series_completed")
    assert all(s is RequestState.LOADING for s in states[:index])
    assert req.state is RequestState.DONE
    result = req.result()
    assert len(result) == 300
    assert result.times[0] == 1743058800.0  # 2025-03-27 07:00 UTC
    assert result.times[-1] == 1750834800.0  # 2025-06-25 07:00 UTC
    assert np.all(np.diff(result.times) > 0)
    assert result.symbol_info is not None and result.symbol_info["name"] == "VCB"


@needs_frames
def test_recorded_session_asks_for_more_when_short() -> None:
    """With n_bars above what the recording holds, the round ends in request_more_data."""
    messages = json.loads((FRAMES / "tradingview-rs__tests_data__events.json").read_text())
    req = HistoryRequest(
        chart_session="cs_tKeYG4jmczi0",
        symbol="HOSE:VCB",
        resolution="60",
        n_bars=500,
        series_id="sds_1",
        symbol_id="sds_sym_2",
        turnaround="s2",
    )
    req.start(0.0)
    sent: list[str] = []
    for message in messages:
        sent += req.receive(parse_payload(json.dumps(message)), 1.0)
    assert methods(sent) == ["request_more_data"]
    assert json.loads(sent[0])["p"] == ["cs_tKeYG4jmczi0", "sds_1", 200]


def test_other_sessions_series_and_turnarounds_are_ignored() -> None:
    """Bars and completions of another session, series or turnaround do not touch the request."""
    req = new_request(n_bars=5)
    req.start(0.0)
    feed(req, "timescale_update", timescale(days(5), cs="cs_other"))
    feed(req, "timescale_update", timescale(days(5), sid="s2"))
    feed(req, "series_completed", completed(cs="cs_other"))
    feed(req, "series_completed", completed(sid="s2"))
    feed(req, "series_completed", completed(turnaround="s9"))
    assert req.state is RequestState.LOADING
    feed(req, "timescale_update", timescale(days(5)))
    feed(req, "series_completed", completed())
    assert len(req.result()) == 5


def test_missing_volume_becomes_nan() -> None:
    """5-element bars (no volume) keep NaN volume, not 0.0."""
    req = new_request(n_bars=3)
    req.start(0.0)
    feed(req, "timescale_update", timescale(days(3), volume=False))
    feed(req, "series_completed", completed())
    assert np.isnan(req.result().data[:, 6]).all()


def test_series_bars_event_is_accepted() -> None:
    """Pre-parsed SeriesBars (the router's fast path) count like a timescale_update."""
    req = new_request(n_bars=2)
    req.start(0.0)
    data = bars_to_array(
        [Bar(T0, 1.0, 2.0, 0.5, 1.5, 10.0, 0), Bar(T0 + DAY, 1, 2, 0.5, 1.5, None, 1)]
    )
    req.receive(SeriesBars(CS, "s1", "s1", data), 0.0)
    feed(req, "series_completed", completed())
    assert list(req.result().times) == [T0, T0 + DAY]


@pytest.mark.parametrize(
    ("method", "params", "error"),
    [
        ("symbol_error", [CS, "symbol_1", "invalid symbol"], SymbolNotFoundError),
        ("series_error", [CS, "s1", "s1", "custom_resolution"], SeriesError),
        ("critical_error", [CS, "invalid parameters", "method: create_series"], CriticalError),
        (
            "critical_error",
            [CS, "x", "y", {"error_code": "unauthorized_access"}],
            AuthenticationError,
        ),
        ("protocol_error", ["bad auth token"], TokenExpiredError),
        ("protocol_error", ["wrong data"], ServerProtocolError),
    ],
)
def test_server_errors_fail_with_typed_errors(method: str, params: list[Any], error: type) -> None:
    """Each server-reported failure becomes its typed error, carrying the server's text."""
    req = new_request()
    req.start(0.0)
    feed(req, method, params)
    assert req.state is RequestState.FAILED
    with pytest.raises(error) as info:
        req.result()
    text = params[-1] if isinstance(params[-1], str) else params[1]
    assert text in str(info.value)
    assert methods(req.finish()) == ["chart_delete_session"]


def test_errors_of_other_sessions_are_ignored() -> None:
    """A symbol_error of another chart session does not fail this request."""
    req = new_request()
    req.start(0.0)
    feed(req, "symbol_error", ["cs_other", "symbol_1", "invalid symbol"])
    assert req.state is RequestState.LOADING


def test_connection_lost_fails_with_connection_error() -> None:
    """Losing the connection fails the request with a (retryable) TvConnectionError."""
    req = new_request()
    req.start(0.0)
    req.connection_lost(None)
    with pytest.raises(TvConnectionError):
        req.result()


def test_heartbeats_are_not_progress() -> None:
    """Heartbeats never push the progress deadline back; data does."""
    req = new_request(progress_timeout=10.0)
    req.start(0.0)
    for k in range(1, 20):
        req.receive(Heartbeat(k, f"~h~{k}"), float(k) * 0.5)
    assert req.next_deadline() == 10.0
    feed(req, "series_loading", [CS, "s1", "s1"], now=4.0)
    assert req.next_deadline() == 14.0
    req.poll(13.9)
    assert req.state is RequestState.LOADING
    req.poll(14.0)
    with pytest.raises(TvTimeoutError):
        req.result()


@pytest.mark.parametrize(
    ("authenticated", "error"), [(True, HeartbeatOnlySession), (False, TvTimeoutError)]
)
def test_heartbeat_only_session(authenticated: bool, error: type) -> None:
    """Only heartbeats for the whole timeout: token expiry when signed in, else a timeout."""
    req = new_request(progress_timeout=5.0, authenticated=authenticated)
    req.start(0.0)
    for _ in range(3):
        req.heartbeat()
    req.poll(5.0)
    with pytest.raises(error) as info:
        req.result()
    assert "heartbeats" in str(info.value)
    if not authenticated:
        assert not isinstance(info.value, TokenExpiredError)


def test_silence_is_a_timeout_not_token_expiry() -> None:
    """No heartbeats and no data (a stall) is a TvTimeoutError even when signed in."""
    req = new_request(progress_timeout=5.0, authenticated=True)
    req.start(0.0)
    req.poll(6.0)
    with pytest.raises(TvTimeoutError):
        req.result()


def test_bars_out_of_order_are_rejected() -> None:
    """An update whose times do not increase fails with DataIncompleteError."""
    req = new_request(n_bars=3)
    req.start(0.0)
    times = days(3)
    feed(req, "timescale_update", timescale([times[0], times[2], times[1]]))
    with pytest.raises(DataIncompleteError, match="order"):
        req.result()


def test_index_gap_is_rejected() -> None:
    """A hole in the bar indices of one update (a lost bar) fails with DataIncompleteError."""
    req = new_request(n_bars=3)
    req.start(0.0)
    params = timescale(days(3))
    params[1]["s1"]["s"][2]["i"] = 5
    feed(req, "timescale_update", params)
    with pytest.raises(DataIncompleteError, match="gap"):
        req.result()


def test_more_data_round_contradicting_loaded_bars_is_rejected() -> None:
    """An older-bars round that repeats a loaded time with other values fails the request."""
    req = new_request(n_bars=10, round_size=5)
    req.start(0.0)
    times = days(10)
    feed(req, "timescale_update", timescale(times[5:]))
    feed(req, "series_completed", completed())
    params = timescale(times[:6], first_index=-5)
    params[1]["s1"]["s"][5]["v"][4] = 12345.0  # the loaded oldest bar, with another close
    feed(req, "timescale_update", params)
    feed(req, "series_completed", completed())
    with pytest.raises(DataIncompleteError, match="contradicts"):
        req.result()


def test_identical_overlap_is_accepted() -> None:
    """An older-bars round may repeat the oldest loaded bar unchanged."""
    req = new_request(n_bars=10, round_size=5)
    req.start(0.0)
    times = days(10)
    feed(req, "timescale_update", timescale(times[5:]))
    feed(req, "series_completed", completed())
    feed(req, "timescale_update", timescale(times[:6], first_index=-5))
    feed(req, "series_completed", completed())
    assert list(req.result().times) == times


def test_runaway_pagination_is_bounded() -> None:
    """A server that keeps adding one bar per round cannot keep the request going forever."""
    req = new_request(n_bars=20, round_size=10)
    req.start(0.0)
    t = T0 + 1_000 * DAY
    feed(req, "timescale_update", timescale([t]))
    rounds = 1
    while req.state is RequestState.LOADING:
        t -= DAY
        sent = feed(req, "series_completed", completed())
        if not sent:
            break
        feed(req, "timescale_update", timescale([t], first_index=-1))
        rounds += 1
        assert rounds < 50
    with pytest.raises(DataIncompleteError):
        req.result()


def test_range_request_uses_r_from_to_and_filters() -> None:
    """start/end go out as "r,from:to" and the result keeps only bars inside [start, end]."""
    times = days(20)
    start, end = times[5], times[14]
    req = new_request(start=start, end=end, round_size=100)
    sent = req.start(0.0)
    assert json.loads(sent[2])["p"][6] == f"r,{int(start)}:{int(end)}"
    feed(req, "timescale_update", timescale(times[3:17]))
    feed(req, "series_completed", completed())
    assert list(req.result().times) == times[5:15]


def test_range_request_pages_back_to_start() -> None:
    """A range whose first round does not reach start asks for older bars."""
    times = days(20)
    req = new_request(start=times[2], end=times[-1], round_size=8)
    req.start(0.0)
    feed(req, "timescale_update", timescale(times[-8:]))
    assert methods(feed(req, "series_completed", completed())) == ["request_more_data"]
    feed(req, "timescale_update", timescale(times[4:12], first_index=-8))
    assert methods(feed(req, "series_completed", completed())) == ["request_more_data"]
    feed(req, "timescale_update", timescale(times[0:4], first_index=-4))
    feed(req, "series_completed", completed())
    assert list(req.result().times) == times[2:]


def test_empty_range_is_an_empty_result() -> None:
    """A range with no bars at all ends DONE with zero rows, not an error."""
    req = new_request(start=T0, end=T0 + DAY)
    req.start(0.0)
    feed(req, "series_completed", completed("end"))
    assert len(req.result()) == 0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"n_bars": 0},
        {"n_bars": True},
        {"round_size": 0},
        {"progress_timeout": 0.0},
        {"progress_timeout": math.inf},
        {"start": 5.0},
        {"start": 10.0, "end": 5.0},
        {"start": -1.0, "end": 5.0},
    ],
)
def test_bad_arguments(kwargs: dict[str, Any]) -> None:
    """Invalid construction arguments raise ValueError."""
    with pytest.raises(ValueError):
        new_request(**kwargs)


@settings(max_examples=100)
@given(
    total=st.integers(min_value=0, max_value=60),
    n_bars=st.integers(min_value=1, max_value=80),
    round_size=st.integers(min_value=1, max_value=25),
    overlap=st.booleans(),
)
def test_pagination_against_a_model_server(
    total: int, n_bars: int, round_size: int, overlap: bool
) -> None:
    """Against a model server holding `total` bars, the result is exactly its newest bars."""
    history = days(total) if total else []
    req = new_request(n_bars=n_bars, round_size=round_size)
    sent = req.start(0.0)
    served = 0
    asked = json.loads(sent[2])["p"][5]
    for _ in range(200):
        chunk_end = total - served
        chunk_start = max(0, chunk_end - asked)
        chunk = history[chunk_start:chunk_end]
        if overlap and served and chunk_end < total:
            chunk = [*chunk, history[chunk_end]]  # repeat the oldest loaded bar
        served += chunk_end - chunk_start
        if chunk:
            # Indices: absolute positions (consecutive within the chunk).
            feed(req, "timescale_update", timescale(chunk, first_index=chunk_start))
        sent = feed(req, "series_completed", completed())
        if req.finished:
            break
        asked = json.loads(sent[0])["p"][2]
    assert req.state is RequestState.DONE
    expected = history[-n_bars:] if n_bars <= total else history
    assert list(req.result().times) == expected
    assert req.result().exhausted == (n_bars > total)


def test_long_range_may_take_many_rounds() -> None:
    """A range spanning many rounds is not cut short by the round cap meant for n_bars."""
    times = days(60)
    req = new_request(start=times[0], end=times[-1], round_size=5)
    req.start(0.0)
    feed(req, "timescale_update", timescale(times[-5:]))
    sent = feed(req, "series_completed", completed())
    served = 5
    while sent:
        chunk = times[-served - 5 : -served]
        feed(req, "timescale_update", timescale(chunk, first_index=-5))
        served += 5
        sent = feed(req, "series_completed", completed())
    assert list(req.result().times) == times
    assert req.result().rounds == 12


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        (SymbolErrorEvent("cs_a", "sym_1", "invalid symbol"), SymbolNotFoundError),
        (SeriesErrorEvent("cs_a", "s1", "s1", "custom_resolution"), SeriesError),
        (CriticalErrorEvent("cs_a", "invalid parameters", "method: create_series"), CriticalError),
        (
            CriticalErrorEvent("cs_a", "access denied", "", error_code="unauthorized_access"),
            AuthenticationError,
        ),
    ],
)
def test_server_error_maps_each_server_failure_to_its_type(event: Any, expected: type) -> None:
    """History and the live feed share one mapping: each server failure gets its typed error."""
    error = server_error(event, "MCX:CRUDEOIL1!", "1D")
    assert type(error) is expected
    assert "MCX:CRUDEOIL1!" in str(error)
