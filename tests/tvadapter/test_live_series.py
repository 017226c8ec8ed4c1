"""SeriesTracker (sans-I/O): closed-bar detection from du updates and gap-free backfill."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from tvadapter._live_series import Emit, SeriesTracker
from tvadapter.protocol import Bar

STEP = 60.0


def final(pos: int) -> Bar:
    """The closed bar at ``pos`` (a made-up deterministic series)."""
    o = 100.0 + pos
    return Bar(pos * STEP, o, o + 2.0, o - 1.0, o + 1.0, 10.0 + pos, pos)


def partial(pos: int, stage: int) -> Bar:
    """The forming bar at ``pos`` after ``stage`` updates (differs from the final values)."""
    o = 100.0 + pos
    return Bar(pos * STEP, o, o + 0.5, o - 0.5, o + 0.25 * (stage % 3), 1.0 + stage, pos)


class Server:
    """A live series: closed bars ``[0, pos)`` with final values, forming bar ``pos``."""

    def __init__(self, pos: int, depth: int | None = None) -> None:
        self.pos = pos
        self.stage = 0
        self.depth = depth  # the oldest position a load can reach is pos - depth

    def forming(self) -> Bar:
        return partial(self.pos, self.stage)

    def load(self, count: int) -> tuple[list[Bar], str | None]:
        lo = max(0, self.pos - count + 1)
        reason = "end" if lo == 0 else None
        if self.depth is not None and lo < self.pos - self.depth:
            lo, reason = self.pos - self.depth, "limit"
        return [final(p) for p in range(lo, self.pos)] + [self.forming()], reason

    def more(self, oldest: int, n: int) -> tuple[list[Bar], str | None]:
        floor = 0 if self.depth is None else max(0, self.pos - self.depth)
        lo = max(floor, oldest - n)
        reason = "end" if lo == 0 else ("limit" if lo == floor and self.depth is not None else None)
        return [final(p) for p in range(lo, oldest)], reason

    def update(self) -> list[Bar]:
        self.stage += 1
        return [self.forming()]

    def close(self) -> list[Bar]:
        closed = final(self.pos)
        self.pos += 1
        self.stage = 0
        return [closed, self.forming()]


def run_load(
    tracker: SeriesTracker, server: Server, count: int, closes_during: int = 0, n_more: int = 5
) -> list[Emit]:
    """A (re)load as the engine runs it: create_series, du during the load, more rounds."""
    tracker.begin_load()
    bars, reason = server.load(count)
    tracker.add(bars)
    out: list[Emit] = []
    for _ in range(closes_during):
        out += tracker.update(server.close())  # buffered while loading: returns nothing
    rounds = 0
    while tracker.needs_more(reason) and rounds < 20:  # the engine's max_backfill_rounds
        oldest = tracker.oldest_loaded
        assert oldest is not None
        tracker.begin_round()
        rounds += 1
        bars, reason = server.more(int(oldest // STEP), tracker.round_size(n_more, 5000))
        tracker.add(bars)
    return out + tracker.finish_load()


def closed_positions(emits: list[Emit]) -> list[int]:
    return [int(e.bar.time // STEP) for e in emits if e.closed]


def test_first_load_sets_the_baseline_and_delivers_nothing_closed() -> None:
    """The first load's newest bar is the forming bar; older bars are never delivered."""
    tracker = SeriesTracker()
    server = Server(pos=50)
    emits = run_load(tracker, server, 10)
    assert [e.closed for e in emits] == [False]
    assert tracker.forming == server.forming()
    assert tracker.delivered_through == final(49).time


def test_a_newer_bar_closes_the_forming_one_with_its_final_values() -> None:
    """du [final k, forming k+1] delivers bar k once, with the final values, then the update."""
    tracker = SeriesTracker()
    server = Server(pos=5)
    run_load(tracker, server, 3)
    assert tracker.update(server.update()) == [Emit(server.forming(), closed=False)]
    emits = tracker.update(server.close())
    assert emits == [Emit(final(5), closed=True), Emit(server.forming(), closed=False)]
    assert tracker.update([final(5)]) == []  # a late update of a delivered bar: ignored
    assert tracker.update([server.forming()]) == []  # unchanged forming bar: no update


def test_reload_after_an_outage_backfills_exactly_the_missed_bars() -> None:
    """Bars that closed while away are delivered once, in order; delivered ones are skipped."""
    tracker = SeriesTracker()
    server = Server(pos=100)
    run_load(tracker, server, 10)
    delivered = closed_positions(tracker.update(server.close()))
    for _ in range(7):  # the connection is down: these du never arrive
        server.close()
    delivered += closed_positions(run_load(tracker, server, 20))
    assert delivered == list(range(100, 108))
    assert tracker.backfilled == 7 and tracker.gaps == 0


def test_a_short_reload_asks_for_more_until_it_covers_the_outage() -> None:
    """A create_series count smaller than the gap is completed by request_more_data rounds."""
    tracker = SeriesTracker()
    server = Server(pos=10)
    run_load(tracker, server, 2)
    for _ in range(30):
        server.close()
    assert tracker.reload_count(0.0, STEP, 2, 5000) == 2  # bar times ahead of the wall clock
    emits = run_load(tracker, server, 2, n_more=2)
    assert closed_positions(emits) == list(range(10, 40))
    assert tracker.gaps == 0
    assert tracker.round_size(2, 5000) == 2 and tracker.round_size(2, 1) == 1


def test_reload_count_estimates_the_gap_from_the_wall_clock() -> None:
    """The first reload asks for about as many bars as fit between the anchor and now."""
    tracker = SeriesTracker()
    run_load(tracker, Server(pos=10), 3)
    anchor = final(10).time
    assert tracker.reload_count(anchor + 25 * STEP, STEP, 10, 5000) == 27
    assert tracker.reload_count(anchor + 10**9, STEP, 10, 5000) == 5000
    assert SeriesTracker().reload_count(1e9, STEP, 10, 5000) == 10


def test_history_that_cannot_reach_back_is_counted_as_a_gap() -> None:
    """When the server's cap stops the backfill, the gap is counted and nothing repeats."""
    tracker = SeriesTracker()
    server = Server(pos=10, depth=5)
    run_load(tracker, server, 3)
    for _ in range(20):
        server.close()
    emits = run_load(tracker, server, 3)
    assert tracker.gaps == 1
    assert closed_positions(emits) == list(range(25, 30))


def test_empty_first_load_delivers_from_the_first_bar_seen() -> None:
    """A series without bars yet starts with the first bar that appears."""
    tracker = SeriesTracker()
    tracker.begin_load()
    assert tracker.finish_load() == []
    assert tracker.delivered_through == -math.inf
    assert tracker.update([partial(0, 0)]) == [Emit(partial(0, 0), closed=False)]
    assert closed_positions(tracker.update([final(0), partial(1, 0)])) == [0]


def test_du_during_a_load_is_buffered_and_counted_in_the_load() -> None:
    """Bars arriving between create_series and series_completed are part of the load."""
    tracker = SeriesTracker()
    server = Server(pos=20)
    run_load(tracker, server, 5)
    server.close()
    emits = run_load(tracker, server, 5, closes_during=2)
    assert closed_positions(emits) == [20, 21, 22]
    assert tracker.forming == server.forming()


OPS = st.lists(
    st.one_of(
        st.tuples(st.just("update"), st.just(0)),
        st.tuples(st.just("close"), st.just(0)),
        st.tuples(st.just("outage"), st.integers(0, 40)),
        st.tuples(st.just("reload"), st.integers(0, 3)),
    ),
    max_size=40,
)


@settings(max_examples=150)
@given(
    start=st.integers(1, 200),
    first_count=st.integers(2, 30),
    counts=st.lists(st.integers(2, 60), min_size=1, max_size=5),
    more=st.integers(1, 40),
    ops=OPS,
)
def test_model_every_closed_bar_once_in_order_with_final_values(
    start: int, first_count: int, counts: list[int], more: int, ops: list[tuple[str, int]]
) -> None:
    """Any updates, outages and reload sizes: closed bars p0.. come once, in order, final."""
    tracker = SeriesTracker()
    server = Server(pos=start)
    p0 = server.pos
    emits = run_load(tracker, server, first_count)
    connected = True
    reloads = 0
    for op, arg in ops:
        if op == "update" and connected:
            emits += tracker.update(server.update())
        elif op == "close":
            bars = server.close()
            if connected:
                emits += tracker.update(bars)
        elif op == "outage":
            connected = False
            for _ in range(arg):
                server.close()
        elif op == "reload":
            count = counts[reloads % len(counts)]
            reloads += 1
            emits += run_load(tracker, server, count, closes_during=arg, n_more=more)
            connected = True
    if not connected:
        emits += run_load(tracker, server, counts[0], n_more=more)
    closed = [e.bar for e in emits if e.closed]
    assert closed == [final(p) for p in range(p0, server.pos)]
    assert tracker.gaps == 0
    forming = [e.bar for e in emits if not e.closed]
    assert forming and forming[-1] == server.forming()


@settings(max_examples=100)
@given(
    depth=st.integers(1, 30),
    outages=st.lists(st.integers(0, 60), min_size=1, max_size=6),
    count=st.integers(2, 40),
)
def test_model_capped_history_never_repeats_or_reorders(
    depth: int, outages: list[int], count: int
) -> None:
    """With a history cap, bars beyond reach are counted as gaps; none repeats or goes back."""
    tracker = SeriesTracker()
    server = Server(pos=100, depth=depth)
    emits = run_load(tracker, server, count)
    for missed in outages:
        emits += tracker.update(server.close())
        for _ in range(missed):
            server.close()
        emits += run_load(tracker, server, count, n_more=7)
    times = [e.bar.time for e in emits if e.closed]
    assert times == sorted(set(times))
    assert times[-1] == final(server.pos - 1).time
    lost = (server.pos - 100) - len(times)
    assert (lost > 0) == (tracker.gaps > 0)
