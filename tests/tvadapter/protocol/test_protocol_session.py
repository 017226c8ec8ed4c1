"""Session state machines: client and server roles, the state table, and a full conversation."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tvadapter.errors import FramingError, LocalProtocolError, MalformedPayloadError, ProtocolError
from tvadapter.protocol import (
    Bar,
    ClientRequest,
    ClientSession,
    Event,
    Heartbeat,
    HeartbeatEcho,
    Hello,
    ProtocolErrorEvent,
    SeriesCompleted,
    SeriesLoading,
    SeriesPayload,
    ServerSession,
    SessionState,
    SymbolResolved,
    TimescaleUpdate,
    decode,
    encode,
    parse_client_payload,
)
from tvadapter.protocol import messages as M
from tvadapter.protocol import server_messages as S

CS = "cs_abcdefghijkl"


def pump(source: ClientSession | ServerSession, sink: ClientSession | ServerSession) -> int:
    """Deliver every queued message of ``source`` to ``sink``; return how many."""
    data = source.data_to_send()
    for message in data:
        sink.receive_message(message)
    return len(data)


# -- client role ---------------------------------------------------------------------------


def test_client_echoes_heartbeat_identically() -> None:
    """A server heartbeat is reported and its identical packet is queued as the echo."""
    client = ClientSession()
    for number in (1, 9, 10, 157):
        client.receive_message(f"~m~{len(str(number)) + 3}~m~~h~{number}")
        assert client.events_received() == [Heartbeat(number, f"~h~{number}")]
        assert client.data_to_send() == [f"~m~{len(str(number)) + 3}~m~~h~{number}"]
    assert client.heartbeats_received == 4
    assert client.last_heartbeat == 157


def test_client_echoes_heartbeats_inside_multi_packet_messages() -> None:
    """Heartbeats anywhere in a message are each echoed once, in order, between other events."""
    client = ClientSession()
    message = encode(["~h~3", S.series_loading(CS, "s1", "s1"), "~h~4"])
    client.receive_message(message)
    events = client.events_received()
    assert [type(e) for e in events] == [Heartbeat, SeriesLoading, Heartbeat]
    assert client.data_to_send() == ["~m~4~m~~h~3", "~m~4~m~~h~4"]


def test_client_hello_and_sends() -> None:
    """The hello marks the connection accepted; sends are framed one packet per message."""
    client = ClientSession()
    accepted_before = client.hello_received
    client.send(M.set_auth_token("unauthorized_user_token"))  # allowed before the hello
    client.receive_message(encode([S.hello()]))
    assert accepted_before is False
    assert isinstance(client.hello, Hello)
    assert client.hello_received
    client.send_all([M.chart_create_session(CS), M.switch_timezone(CS, "exchange")])
    data = client.data_to_send()
    assert len(data) == 3
    assert [len(decode(m)) for m in data] == [1, 1, 1]
    assert client.data_to_send() == []
    assert client.messages_sent == 3


def test_client_protocol_error_moves_to_closing() -> None:
    """After protocol_error the client stops sending and echoing, but still reports events."""
    client = ClientSession()
    client.receive_message(encode([S.protocol_error("bad auth token")]))
    assert client.state is SessionState.CLOSING
    assert client.protocol_error == "bad auth token"
    assert client.events_received() == [ProtocolErrorEvent("bad auth token")]
    with pytest.raises(LocalProtocolError):
        client.send(M.chart_create_session(CS))
    client.receive_message("~m~4~m~~h~1")
    assert client.events_received() == [Heartbeat(1, "~h~1")]
    assert client.data_to_send() == []


def test_heartbeat_before_protocol_error_in_one_message_is_echoed() -> None:
    """Packets are handled in order: a heartbeat ahead of protocol_error is still echoed."""
    client = ClientSession()
    client.receive_message(encode(["~h~1", S.protocol_error("bad auth token"), "~h~2"]))
    assert client.data_to_send() == ["~m~4~m~~h~1"]


@pytest.mark.parametrize(
    ("message", "error"),
    [
        ("~m~4~m~~h~1~m~", FramingError),
        ("~m~5~m~~h~1", FramingError),
        ("~m~4~m~~h~x", MalformedPayloadError),
        ("~m~4~m~~h~1" + encode(['{"m":"du","p":5}']), MalformedPayloadError),
        (encode(["~h~1", "{bad json"]), MalformedPayloadError),
    ],
)
def test_client_garbage_fails_the_session_atomically(message: str, error: type[Exception]) -> None:
    """Garbage raises the remote error, queues nothing from that message, and FAILs the session."""
    client = ClientSession()
    with pytest.raises(error):
        client.receive_message(message)
    assert client.state is SessionState.FAILED
    assert client.events_received() == []
    assert client.data_to_send() == []  # not even the heartbeat echo
    with pytest.raises(LocalProtocolError):
        client.receive_message("~m~4~m~~h~2")
    client.send(M.chart_delete_session(CS))  # a last packet is still allowed
    assert len(client.data_to_send()) == 1


def test_local_errors_are_not_protocol_errors() -> None:
    """LocalProtocolError (our misuse) is distinct from ProtocolError (peer garbage)."""
    assert not issubclass(LocalProtocolError, ProtocolError)
    assert issubclass(FramingError, ProtocolError)
    assert issubclass(MalformedPayloadError, ProtocolError)


def test_client_close_forbids_everything_but_draining() -> None:
    """After close(), sends and receives raise LocalProtocolError; queued data is still drained."""
    client = ClientSession()
    client.send(M.set_locale())
    client.close()
    client.close()  # idempotent
    assert client.state is SessionState.CLOSED
    with pytest.raises(LocalProtocolError):
        client.send(M.set_locale())
    with pytest.raises(LocalProtocolError):
        client.send_all([M.set_locale()])
    with pytest.raises(LocalProtocolError):
        client.receive_message("~m~4~m~~h~1")
    assert len(client.data_to_send()) == 1


def test_send_rejects_non_strings() -> None:
    """Sending bytes is a TypeError, and send_all queues nothing when one payload is bad."""
    client = ClientSession()
    with pytest.raises(TypeError):
        client.send(b"x")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        client.send_all([M.set_locale(), 5])  # type: ignore[list-item]
    assert client.data_to_send() == []


def test_empty_message_has_no_events() -> None:
    """An empty websocket message holds no packets: nothing is reported or echoed."""
    client = ClientSession()
    client.receive_message("")
    assert client.events_received() == []
    assert client.messages_received == 1
    assert client.packets_received == 0


# -- server role ---------------------------------------------------------------------------


def test_server_hello_then_numbered_heartbeats() -> None:
    """The hello goes first; heartbeats count from 1 and are tracked until echoed."""
    server = ServerSession()
    server.send_hello({"session_id": "x"})
    assert [server.send_heartbeat(now=t) for t in (10.0, 20.0, 30.0)] == [1, 2, 3]
    assert server.data_to_send() == [
        '~m~18~m~{"session_id":"x"}',
        "~m~4~m~~h~1",
        "~m~4~m~~h~2",
        "~m~4~m~~h~3",
    ]
    assert server.heartbeats_sent == 3
    assert server.missed_heartbeats == 3
    assert server.oldest_unechoed_sent_at() == 10.0
    server.receive_message("~m~4~m~~h~1")
    assert server.events_received() == [HeartbeatEcho(1, "~h~1")]
    assert server.oldest_unechoed_sent_at() == 20.0
    server.receive_message(encode(["~h~3", "~h~2"]))  # any order, several per message
    assert server.missed_heartbeats == 0
    assert server.last_echo == 2
    assert server.echoes_received == 3
    assert server.oldest_unechoed_sent_at() is None


def test_heartbeat_counter_restarts_per_connection() -> None:
    """Each ServerSession (one per connection) starts its heartbeats at 1."""
    first, second = ServerSession(), ServerSession()
    first.send_heartbeat()
    first.send_heartbeat()
    assert second.send_heartbeat() == 1


@pytest.mark.parametrize(
    "echo",
    ["~m~4~m~~h~9", "~m~5~m~~h~01", encode(["~h~1", "~h~1"])],
    ids=["never-sent", "not-identical", "echoed-twice"],
)
def test_server_rejects_bad_echoes(echo: str) -> None:
    """An echo of a heartbeat never sent, not identical, or already echoed is a ProtocolError."""
    server = ServerSession()
    server.send_heartbeat()
    with pytest.raises(ProtocolError):
        server.receive_message(echo)
    assert server.state is SessionState.FAILED
    assert server.events_received() == []
    assert server.missed_heartbeats == 1


def test_server_hello_rules() -> None:
    """The hello must be the first message and is sent at most once."""
    server = ServerSession()
    server.send_hello()
    with pytest.raises(LocalProtocolError):
        server.send_hello()
    late = ServerSession()
    late.send_heartbeat()
    with pytest.raises(LocalProtocolError):
        late.send_hello()


def test_server_send_forms() -> None:
    """send adds t/t_ms, send_packets packs one message, send_raw sends text as is."""
    server = ServerSession()
    server.send("series_loading", [CS, "s1", "s1"], t=1686475613.189)
    server.send_packets([S.series_loading(CS, "s1", "s1"), S.quote_completed("qs", "A:B")])
    server.send_payload(S.symbol_error(CS, "symbol_1"))
    server.send_raw("~m~99~m~broken")
    first, packed, single, raw = server.data_to_send()
    assert decode(first) == [
        '{"m":"series_loading","p":["cs_abcdefghijkl","s1","s1"],'
        '"t":1686475613,"t_ms":1686475613189}'
    ]
    assert len(decode(packed)) == 2
    assert len(decode(single)) == 1
    assert raw == "~m~99~m~broken"
    with pytest.raises(LocalProtocolError):
        server.send_packets([])


def test_server_protocol_error_then_nothing() -> None:
    """After send_protocol_error the server is CLOSING and sends nothing more."""
    server = ServerSession()
    server.send_protocol_error("bad auth token")
    assert server.state is SessionState.CLOSING
    assert server.data_to_send() == ['~m~45~m~{"m":"protocol_error","p":["bad auth token"]}']
    with pytest.raises(LocalProtocolError):
        server.send_heartbeat()
    server.receive_message(encode([M.chart_create_session(CS)]))  # late client packets parse
    assert [type(e) for e in server.events_received()] == [ClientRequest]


def test_server_rejects_client_garbage() -> None:
    """A client packet without m, or bad framing, fails the server session."""
    server = ServerSession()
    with pytest.raises(MalformedPayloadError):
        server.receive_message(encode(['{"session_id":"x"}']))
    other = ServerSession()
    with pytest.raises(FramingError):
        other.receive_message("~m~9~m~{}")


# -- both roles together -------------------------------------------------------------------


def bars_5000() -> tuple[Bar, ...]:
    """5,000 one-minute bars, alternating volume and no volume at the end."""
    start = 1_700_000_000.0
    return tuple(
        Bar(
            start + 60.0 * i,
            100.0 + i * 0.01,
            100.5 + i * 0.01,
            99.5 + i * 0.01,
            100.25 + i * 0.01,
            float(1000 + i) if i < 4990 else None,
            i,
        )
        for i in range(5000)
    )


def serve(server: ServerSession, now: float, history: tuple[Bar, ...]) -> None:
    """A minimal fake-server brain: answer the setup requests the way PROTOCOL.md §8 shows."""
    symbols: dict[str, str] = {}
    for event in server.events_received():
        if isinstance(event, HeartbeatEcho):
            continue
        assert isinstance(event, ClientRequest)
        if event.method == "resolve_symbol":
            cs, symbol_id, spec = event.params
            symbols[symbol_id] = spec
        elif event.method == "create_series":
            cs, series_id, turnaround, symbol_id, _resolution, count = event.params[:6]
            assert symbol_id in symbols
            bars = history[-count:]
            server.send_packets(
                [
                    S.series_loading(cs, series_id, turnaround, t=now),
                    S.symbol_resolved(cs, symbol_id, {"name": "SYM", "timezone": "Etc/UTC"}),
                ]
            )
            server.send_heartbeat(now=now)  # a heartbeat in the middle of the load
            server.send_packets(
                [
                    S.timescale_update(
                        cs,
                        {series_id: SeriesPayload(bars, turnaround, "fake-node", None, None)},
                        t=now,
                    ),
                    S.series_completed(
                        cs, series_id, "streaming", turnaround, data_completed="limit", t=now
                    ),
                ]
            )


def test_full_5000_bar_history_conversation() -> None:
    """Client and server sessions talk in memory: 5,000 bars are served and parsed exactly."""
    history = bars_5000()
    client, server = ClientSession(), ServerSession()
    server.send_hello()
    client.send_all(
        [
            M.set_auth_token("unauthorized_user_token"),
            M.chart_create_session(CS),
            M.resolve_symbol(CS, "symbol_1", "EX:SYM"),
            M.create_series(CS, "s1", "s1", "symbol_1", "1", 5000),
            M.switch_timezone(CS, "Etc/UTC"),
        ]
    )
    pump(server, client)
    pump(client, server)
    serve(server, 1_700_400_000.0, history)
    assert pump(server, client) == 3
    events = client.events_received()
    kinds = [type(e) for e in events]
    assert kinds == [Hello, SeriesLoading, SymbolResolved, Heartbeat, TimescaleUpdate,
                     SeriesCompleted]  # fmt: skip
    update = events[4]
    assert isinstance(update, TimescaleUpdate)
    assert update.series["s1"].bars == history
    assert sum(b.volume is None for b in update.series["s1"].bars) == 10
    completed = events[5]
    assert isinstance(completed, SeriesCompleted)
    assert (completed.series_id, completed.turnaround, completed.data_completed) == (
        "s1",
        "s1",
        "limit",
    )
    # The client echoed the heartbeat by itself; the server accepts the echo.
    pump(client, server)
    assert server.events_received() == [HeartbeatEcho(1, "~h~1")]
    assert server.missed_heartbeats == 0


server_payloads = st.lists(
    st.one_of(
        st.integers(min_value=1, max_value=10**6).map(lambda n: f"~h~{n}"),
        st.builds(S.series_loading, st.just(CS), st.text(min_size=1), st.text(min_size=1)),
        st.builds(S.quote_completed, st.just("qs"), st.text(min_size=1)),
    ),
    min_size=1,
    max_size=12,
)


@settings(max_examples=100)
@given(server_payloads, st.data())
def test_any_message_grouping_gives_the_same_events(
    payloads: list[str], data: st.DataObject
) -> None:
    """However packets are grouped into messages, the client sees the same events and echoes."""
    cuts = sorted(
        data.draw(st.sets(st.integers(1, len(payloads) - 1))) if len(payloads) > 1 else []
    )
    groups = [payloads[a:b] for a, b in zip([0, *cuts], [*cuts, len(payloads)], strict=True)]
    grouped, single = ClientSession(), ClientSession()
    for group in groups:
        grouped.receive_message(encode(group))
    for payload in payloads:
        single.receive_message(encode([payload]))
    events: list[Event] = grouped.events_received()
    assert events == single.events_received()
    assert len(events) == len(payloads)
    echoes = grouped.data_to_send()
    assert echoes == single.data_to_send()
    assert [parse_client_payload(decode(m)[0]) for m in echoes] == [
        HeartbeatEcho(e.number, e.payload) for e in events if isinstance(e, Heartbeat)
    ]
