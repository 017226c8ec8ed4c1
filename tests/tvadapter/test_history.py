"""Tests of tvadapter.history: the fast timescale_update path and the DataFrame shape."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tvadapter import history
from tvadapter._request import COLUMNS, SeriesBars, bars_to_array
from tvadapter.history import (
    FRAME_COLUMNS,
    bars_frame,
    empty_frame,
    parse_timescale_update,
    result_frame,
)
from tvadapter.protocol import TimescaleUpdate, decode, parse_payload

# shared/ sits beside the repository (in CI too); the tests that read recorded frames skip
# with a reason when it is absent.
FRAMES = Path(__file__).resolve().parents[3] / "shared" / "frames"
needs_frames = pytest.mark.skipif(
    not FRAMES.is_dir(), reason=f"recorded frames not found at {FRAMES}"
)

try:
    import pyarrow  # noqa: F401

    ENGINES = ["pandas", "pyarrow"]
except ImportError:  # pragma: no cover - pyarrow is an optional accelerator
    ENGINES = ["pandas"]


@contextmanager
def csv_engine(name: str) -> Iterator[None]:
    """Run the fast path with one number reader (the module switch restored afterwards)."""
    saved = history.csv_engine
    history.csv_engine = name
    try:
        yield
    finally:
        history.csv_engine = saved


def generic(payload: str) -> dict[str, np.ndarray]:
    """Series id -> bar array, via the generic protocol parser."""
    event = parse_payload(payload)
    assert isinstance(event, TimescaleUpdate)
    return {sid: bars_to_array(p.bars) for sid, p in event.series.items()}


def fast(payload: str) -> dict[str, np.ndarray]:
    found = parse_timescale_update(payload, min_length=0)
    assert found is not None
    return {b.series_id: b.data for b in found}


def make_payload(
    bars: list[list[Any]], *, extra: dict[str, Any] | None = None, first_index: int = 0
) -> str:
    series = {
        "node": "node-1",
        "s": [{"i": first_index + k, "v": v} for k, v in enumerate(bars)],
        "ns": {"d": "", "indexes": []},
        "t": "s1",
        "lbs": {"bar_close_time": 1},
    }
    data: dict[str, Any] = {"s1": series}
    if extra:
        data.update(extra)
    return json.dumps(
        {
            "m": "timescale_update",
            "p": ["cs_x", data, {"index": 0, "changes": []}],
            "t": 1,
            "t_ms": 2,
        },
        separators=(",", ":"),
    )


@needs_frames
@pytest.mark.parametrize("engine", ENGINES)
def test_recorded_42_packet_message_fast_equals_generic(engine: str) -> None:
    """Every timescale_update of the recorded 1.46 MB message parses fast, identical to generic."""
    message = (FRAMES / "tradingview-rs__tests_data__socket_messages.txt").read_text()
    total = 0
    for payload in decode(message):
        if not payload.startswith('{"m":"timescale_update"'):
            continue
        expected = generic(payload)
        with csv_engine(engine):
            got = fast(payload)
        assert got.keys() == expected.keys()
        for sid, data in got.items():
            assert np.array_equal(data, expected[sid], equal_nan=True)
            total += len(data)
    assert total == 14_423


@needs_frames
def test_recorded_five_element_bars_have_nan_volume() -> None:
    """The recording's volume-less series come out with NaN volume and real prices."""
    message = (FRAMES / "tradingview-rs__tests_data__socket_messages.txt").read_text()
    for payload in decode(message):
        found = parse_timescale_update(payload, min_length=0) if "sds_2" in payload[:80] else None
        if found:
            data = found[0].data
            assert found[0].series_id == "sds_2" and len(data) == 2_637
            assert np.isnan(data[:, 6]).all() and not np.isnan(data[:, :6]).any()
            return
    pytest.fail("sds_2 not found")


@needs_frames
def test_recorded_empty_and_timescale_only_updates_fall_back() -> None:
    """The empty "s":[] and the timescale-only {} updates are left to the generic parser."""
    messages = json.loads((FRAMES / "tradingview-rs__tests_data__events.json").read_text())
    updates = [
        json.dumps(m, separators=(",", ":")) for m in messages if m["m"] == "timescale_update"
    ]
    assert parse_timescale_update(updates[0], min_length=0) is None
    assert parse_timescale_update(updates[2], min_length=0) is None
    found = parse_timescale_update(updates[1], min_length=0)
    assert found is not None and len(found[0].data) == 300
    assert found[0].session == "cs_tKeYG4jmczi0" and found[0].turnaround == "s2"


def test_short_payloads_use_the_generic_parser() -> None:
    """Below min_length the fast path declines (the generic one is fast enough)."""
    payload = make_payload([[1.0, 2.0, 3.0, 1.0, 2.0, 5.0]])
    assert parse_timescale_update(payload) is None
    assert parse_timescale_update(payload, min_length=0) is not None


def test_other_series_in_the_map_are_returned_too() -> None:
    """A second series entry (and a study entry) in the same update is not lost."""
    other = {"s": [{"i": 0, "v": [10.0, 1, 2, 0, 1]}], "t": "s9"}
    study = {"st": [{"i": 0, "v": [1.0, 2.0]}], "t": "s1_st1"}
    payload = make_payload([[1.0, 2.0, 3.0, 1.0, 2.0, 5.0]], extra={"s2": other, "st1": study})
    found = parse_timescale_update(payload, min_length=0)
    assert found is not None
    assert [(b.series_id, b.turnaround, len(b.data)) for b in found] == [
        ("s1", "s1", 1),
        ("s2", "s9", 1),
    ]
    assert np.isnan(found[1].data[0, 6])


@pytest.mark.parametrize(
    "mutate",
    [
        lambda p: p.replace('"v":[1.0', '"v":["1.0"', 1),  # a string number
        lambda p: p.replace("5.0]", "true]", 1),  # a boolean
        lambda p: p.replace("5.0]", "null]", 1),  # a null
        lambda p: p.replace('{"i":1,', '{"i":1,"x":2,', 1),  # an extra key
        lambda p: p.replace('{"i":1,', '{"i":1,"iv":2,', 1),  # a key of deleted letters
        lambda p: p.replace("5.0]", '5.0,""]', 1),  # an empty string
        lambda p: p.replace("3.0,", '3.0,"",', 1),  # an empty string between numbers
        lambda p: p.replace('"v":[1.0', '"v":[[1.0]', 1),  # a nested list
        lambda p: p.replace('{"i":1,"v":[', '{"v":[', 1),  # a missing index
        lambda p: p.replace('"i":1', '"i":1.5', 1),  # a non-integer index
        lambda p: p.replace(',"t":"s1"', ',"t":5', 1),  # a non-string turnaround
        lambda p: p.replace("1.0,4.0,", "", 1),  # a bar with four numbers
        lambda p: p.replace('"ns":{', '"ns":[', 1),  # broken JSON after the bars
        lambda p: p.replace('"node":"node-1",', '"node":"node-1" ,', 1),  # unusual spacing
        lambda p: p.replace('{"m":"timescale_update"', '{"m":"du"', 1),  # another method
    ],
)
@pytest.mark.parametrize("engine", ENGINES)
def test_anything_unexpected_falls_back(mutate: Any, engine: str) -> None:
    """Each deviation from the plain layout makes the fast path decline (None)."""
    payload = make_payload([[1.0, 2.0, 3.0, 1.0, 2.0, 5.0], [2.0, 2.0, 3.0, 1.0, 4.0, 5.0]])
    with csv_engine(engine):
        assert parse_timescale_update(payload, min_length=0) is not None
        changed = mutate(payload)
        assert changed != payload
        assert parse_timescale_update(changed, min_length=0) is None


numbers = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False, width=64),
    st.integers(min_value=-(10**15), max_value=10**15),
)


@settings(max_examples=150)
@given(
    rows=st.lists(st.lists(numbers, min_size=5, max_size=6), min_size=1, max_size=40),
    first_index=st.integers(min_value=-(10**6), max_value=10**6),
    engine=st.sampled_from(ENGINES),
)
def test_fast_path_matches_generic_parser(
    rows: list[list[float]], first_index: int, engine: str
) -> None:
    """For arbitrary numbers (ints, floats, exponents, 5 or 6 per bar, mixed) fast == generic,
    exactly, with either number reader."""
    payload = make_payload(rows, first_index=first_index)
    expected = generic(payload)["s1"]
    with csv_engine(engine):
        got = parse_timescale_update(payload, min_length=0)
    assert got is not None
    assert np.array_equal(got[0].data, expected, equal_nan=True)


def test_second_series_with_ns_uses_the_forward_search() -> None:
    """When the backward search for the end of the bars lands in a later series, the forward
    search still finds the first series' bars exactly."""
    other = {"s": [{"i": 0, "v": [10.0, 1, 2, 0, 1]}], "ns": {"d": "", "indexes": []}, "t": "s1"}
    payload = make_payload([[1.0, 2.0, 3.0, 1.0, 2.0, 5.0]], extra={"s2": other})
    found = parse_timescale_update(payload, min_length=0)
    assert found is not None
    assert {b.series_id: len(b.data) for b in found} == {"s1": 1, "s2": 1}
    assert found[0].data[0, 1] == 1.0


@pytest.mark.parametrize(
    "literal",
    [
        "8004.8000000000001819",
        "-0.010000000000000000208",
        "1e+100",
        "1685633880.0",
        "2.2250738585072014e-308",
        "9007199254740993",
        "0.1",
    ],
)
@pytest.mark.parametrize("engine", ENGINES)
def test_unusual_literals_parse_like_float(literal: str, engine: str) -> None:
    """Long, exponent and float-typed-integer literals parse to exactly float(literal)."""
    payload = make_payload([[1.0, 2.0, 3.0, 1.0, 2.0, 5.0]]).replace("5.0]", literal + "]")
    with csv_engine(engine):
        got = parse_timescale_update(payload, min_length=0)
    assert got is not None
    assert got[0].data[0, 6] == float(literal)


def test_frame_shape_dtypes_and_utc_index() -> None:
    """The frame has tvDatafeed's columns, float64 prices, and a UTC 'datetime' index."""
    data = bars_to_array([])
    rows = np.array(
        [[0, 1_600_000_000.0, 1, 2, 0.5, 1.5, 10], [1, 1_600_086_400.0, 2, 3, 1, 2, np.nan]],
        dtype=np.float64,
    )
    frame = bars_frame("NSE:TEST", rows)
    assert list(frame.columns) == list(FRAME_COLUMNS)
    assert frame.index.name == "datetime"
    assert str(frame.index.dtype) == "datetime64[ns, UTC]"
    assert frame.index[0] == pd.Timestamp("2020-09-13 12:26:40", tz="UTC")
    assert frame.index.is_monotonic_increasing and frame.index.is_unique
    assert all(frame[c].dtype == np.float64 for c in FRAME_COLUMNS[1:])
    assert frame["symbol"].dtype == object and set(frame["symbol"]) == {"NSE:TEST"}
    assert frame["close"].tolist() == [1.5, 2.0]
    assert np.isnan(frame["volume"].iloc[1])
    assert data.shape == (0, len(COLUMNS))


def test_frame_does_not_alias_the_array() -> None:
    """By default, mutating the source array afterwards does not change the frame."""
    rows = np.array([[0, 1_600_000_000.0, 1, 2, 0.5, 1.5, 10]], dtype=np.float64)
    frame = bars_frame("X:Y", rows)
    shared = bars_frame("X:Y", rows, copy=False)
    rows[0, 5] = 99.0
    assert frame["close"].iloc[0] == 1.5
    assert shared["close"].iloc[0] in (1.5, 99.0)  # copy=False may share memory


def test_empty_frame_has_the_full_shape() -> None:
    """No bars still gives the index name, UTC dtype and column dtypes."""
    for frame in (empty_frame(), bars_frame("X:Y", bars_to_array([]))):
        assert len(frame) == 0
        assert list(frame.columns) == list(FRAME_COLUMNS)
        assert frame.index.name == "datetime"
        assert str(frame.index.dtype) == "datetime64[ns, UTC]"
        assert frame["open"].dtype == np.float64 and frame["symbol"].dtype == object


def test_fractional_times_round_to_the_nanosecond() -> None:
    """Times are converted exactly (to the nanosecond), not truncated to seconds."""
    rows = np.array([[0, 1_600_000_000.5, 1, 2, 0.5, 1.5, 10]], dtype=np.float64)
    frame = bars_frame("X:Y", rows)
    assert frame.index[0] == pd.Timestamp(1_600_000_000_500_000_000, tz="UTC")


def test_bad_array_shape_is_rejected() -> None:
    """A bar array without 7 columns raises ValueError."""
    with pytest.raises(ValueError, match="bar array"):
        bars_frame("X:Y", np.zeros((2, 6)))


def test_result_frame_uses_result_symbol() -> None:
    """result_frame labels rows with the request's symbol."""
    from tvadapter._request import HistoryResult

    rows = np.array([[0, 1_600_000_000.0, 1, 2, 0.5, 1.5, 10]], dtype=np.float64)
    result = HistoryResult(
        symbol="BINANCE:BTCUSDT", resolution="1D", data=rows, exhausted=False, rounds=1
    )
    assert result_frame(result)["symbol"].iloc[0] == "BINANCE:BTCUSDT"
    assert isinstance(SeriesBars("cs", "s1", None, rows).data, np.ndarray)


def test_fast_and_public_frame_constructors_agree() -> None:
    """The internal array-to-frame constructor and the public one give identical frames."""
    from tvadapter.history import _assemble, _assemble_public

    rows = np.array(
        [[0, 1_600_000_000.0, 1, 2, 0.5, 1.5, 10], [1, 1_600_086_400.0, 2, 3, 1, 2, np.nan]]
    )
    frame = bars_frame("NSE:TEST", rows)
    index = frame.index
    columns = [frame[name].to_numpy() for name in FRAME_COLUMNS]
    fast_frame = _assemble(index, columns)
    public_frame = _assemble_public(index, columns)
    pd.testing.assert_frame_equal(fast_frame, public_frame, check_exact=True)
    pd.testing.assert_frame_equal(frame, public_frame, check_exact=True)
    assert list(public_frame.columns) == list(FRAME_COLUMNS)
    assert public_frame["symbol"].dtype == object


def test_utc_index_equals_the_public_constructor() -> None:
    """The index wrapped with pandas' internal constructors equals the public one exactly."""
    from tvadapter.history import _utc_index

    nanoseconds = np.array([-1, 0, 1_600_000_000_500_000_000, 2**62], dtype=np.int64)
    public = pd.DatetimeIndex(nanoseconds.view("datetime64[ns]"), name="datetime")
    pd.testing.assert_index_equal(_utc_index(nanoseconds), public.tz_localize("UTC"), exact=True)


def test_column_major_bars_are_used_in_place_only_without_copy() -> None:
    """A column-major array (what the fast path returns) gives the same frame either way, and
    copy=True never shares memory with it."""
    rows = np.asfortranarray(
        [[0, 1_600_000_000.0, 1, 2, 0.5, 1.5, 10], [1, 1_600_086_400.0, 2, 3, 1, 2, np.nan]]
    )
    copied = bars_frame("X:Y", rows)
    shared = bars_frame("X:Y", rows, copy=False)
    pd.testing.assert_frame_equal(copied, shared, check_exact=True)
    pd.testing.assert_frame_equal(copied, bars_frame("X:Y", np.ascontiguousarray(rows)))
    assert not np.shares_memory(copied["close"].to_numpy(), rows)
