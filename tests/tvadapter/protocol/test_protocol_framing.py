"""Framing: ``~m~N~m~payload`` packets, UTF-16 lengths, and malformed input."""

from __future__ import annotations

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tvadapter.errors import FramingError, ProtocolError
from tvadapter.protocol import decode, encode, utf16_len

# (payloads, frame): used in both directions.
VECTORS: list[tuple[list[str], str]] = [
    ([], ""),
    ([""], "~m~0~m~"),
    (["~h~1"], "~m~4~m~~h~1"),
    (["~h~10"], "~m~5~m~~h~10"),
    (["~h~157"], "~m~6~m~~h~157"),
    (
        ['{"m":"protocol_error","p":["bad auth token"]}'],
        '~m~45~m~{"m":"protocol_error","p":["bad auth token"]}',
    ),
    (
        ['{"m":"set_auth_token","p":["unauthorized_user_token"]}'],
        '~m~54~m~{"m":"set_auth_token","p":["unauthorized_user_token"]}',
    ),
    (["a", "bc"], "~m~1~m~a~m~2~m~bc"),
    (["~m~5~m~"], "~m~7~m~~m~5~m~"),
    (["x~m~12~m~y", "~h~3"], "~m~10~m~x~m~12~m~y~m~4~m~~h~3"),
    (["삼성전자보통주"], "~m~7~m~삼성전자보통주"),
    (["😀"], "~m~2~m~😀"),
    (["a😀b", "é"], "~m~4~m~a😀b~m~1~m~é"),
    (["\U0010ffff\U00010000"], "~m~4~m~\U0010ffff\U00010000"),
]


@pytest.mark.parametrize(("payloads", "frame"), VECTORS)
def test_encode_vectors(payloads: list[str], frame: str) -> None:
    """encode() produces exactly the recorded frame for each vector."""
    assert encode(payloads) == frame


@pytest.mark.parametrize(("payloads", "frame"), VECTORS)
def test_decode_vectors(payloads: list[str], frame: str) -> None:
    """decode() returns exactly the payloads for each vector frame."""
    assert decode(frame) == payloads


@pytest.mark.parametrize(("payloads", "frame"), VECTORS)
def test_decode_vectors_with_trailing_garbage(payloads: list[str], frame: str) -> None:
    """A valid frame followed by text that is not a packet is a framing error."""
    for garbage in ("x", "~", "~m~", "~m~9~m~", "~h~1", " ", "\n"):
        with pytest.raises(FramingError):
            decode(frame + garbage)


@pytest.mark.parametrize(("payloads", "frame"), [v for v in VECTORS if v[1]])
def test_every_proper_prefix_of_a_single_packet_is_rejected(
    payloads: list[str], frame: str
) -> None:
    """Cutting the last packet short anywhere gives a framing error, never a shorter packet."""
    last = encode(payloads[-1:])
    head = frame[: len(frame) - len(last)]
    for cut in range(1, len(last)):
        truncated = head + last[:cut]
        with pytest.raises(FramingError):
            decode(truncated)


MALFORMED = [
    "~m~",
    "~m~x~m~",
    "~m~²~m~a",  # a Unicode digit that str.isdigit() accepts
    "~m~٣~m~abc",  # an Arabic-Indic digit
    "~m~5~m~ab",  # length past the end
    "~m~1~m~ab",  # trailing garbage
    "~j~{}",  # legacy JSON prefix
    "~h~1",  # a heartbeat without its envelope
    "~m~~m~",  # no digits
    "~m~-1~m~",  # a sign
    "~m~+1~m~a",
    "~m~ 1~m~a",  # a space
    "~m~1 ~m~a",
    "~m~1.0~m~a",
    "~m~1e1~m~aaaaaaaaaa",
    "~m~99999999999999999999999~m~a",  # too many digits
    "~m~1~m~😀",  # splits a surrogate pair
    "~m~3~m~😀😀",  # splits the second pair
    "~m~4~m~~h~1~m~",  # a dangling prefix
    "~m~4~m~~h~1~m~4",
    "~m~4~m~~h~1~m~4~m~~h~",
    "m~1~m~a",
    "x~m~1~m~a",
    "~M~1~M~a",
    "\x00",
    "~m~1~m",
    "~m~1~",
]


@pytest.mark.parametrize("message", MALFORMED)
def test_malformed_messages_raise_framing_error(message: str) -> None:
    """Each malformed message raises FramingError (a ProtocolError), nothing else."""
    with pytest.raises(FramingError) as info:
        decode(message)
    assert isinstance(info.value, ProtocolError)


def test_payload_containing_prefixes_is_not_split() -> None:
    """A payload that contains '~m~5~m~' text survives intact (prefix walking, not splitting)."""
    payload = '{"m":"qsd","p":["qs",{"n":"X","v":{"description":"~m~5~m~hello ~h~1"}}]}'
    assert decode(encode([payload, "~h~2"])) == [payload, "~h~2"]


def test_leading_zeros_are_accepted() -> None:
    """A length written with leading zeros is read as its decimal value."""
    assert decode("~m~004~m~~h~1") == ["~h~1"]


def test_error_message_has_a_short_excerpt() -> None:
    """The framing error names the position and shows a bounded excerpt of the message."""
    with pytest.raises(FramingError) as info:
        decode("~m~1~m~a" + "b" * 10_000)
    text = str(info.value)
    assert "character 8" in text
    assert len(text) < 200


def test_error_excerpt_masks_tokens() -> None:
    """A token inside a malformed client message never appears in the error text."""
    token = "eyJhbGciOiJSUzUxMiJ9.eyJ1c2VyX2lkIjoxfQ.c2lnbmF0dXJlc2VjcmV0"
    payload = '{"m":"set_auth_token","p":["' + token + '"]}'
    with pytest.raises(FramingError) as info:
        decode("~m~999~m~" + payload)
    assert "eyJ" not in str(info.value)
    assert "c2lnbmF0dXJlc2VjcmV0" not in str(info.value)


def test_wrong_argument_types_are_type_errors() -> None:
    """Passing bytes or a bare string is a local programming error (TypeError)."""
    with pytest.raises(TypeError):
        decode(b"~m~1~m~a")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        encode("abc")
    with pytest.raises(TypeError):
        encode([1])  # type: ignore[list-item]


@pytest.mark.parametrize(
    ("text", "units"),
    [("", 0), ("abc", 3), ("é", 1), ("삼성", 2), ("😀", 2), ("a😀b", 4), ("\ud800", 1)],
)
def test_utf16_len(text: str, units: int) -> None:
    """utf16_len counts UTF-16 code units like JavaScript's String.length."""
    assert utf16_len(text) == units


# Text including astral characters, framing look-alikes and heartbeats.
payload_text = st.one_of(
    st.text(),
    st.text(alphabet=st.sampled_from(["~", "m", "h", "5", "1", "😀", "é", "{", "}"])),
    st.sampled_from(["~m~5~m~", "~h~1", "~m~", "~m~0~m~", "~j~{}", ""]),
    st.builds(lambda a, b: a + "~m~5~m~" + b, st.text(), st.text()),
)


@given(st.lists(payload_text, max_size=8))
@example(["~m~5~m~"])
@example(["😀" * 3, "~h~1"])
def test_round_trip(payloads: list[str]) -> None:
    """decode(encode(xs)) == xs for arbitrary text, astral characters and prefix look-alikes."""
    assert decode(encode(payloads)) == payloads


@given(
    st.lists(
        st.text(
            alphabet=st.one_of(
                st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF),
                st.sampled_from(["a", "😀", "~"]),
            )
        ),
        max_size=5,
    )
)
def test_round_trip_with_lone_surrogates(payloads: list[str]) -> None:
    """Lone surrogate code points count one unit each and survive the round trip."""
    assert decode(encode(payloads)) == payloads


@settings(max_examples=200)
@given(
    st.one_of(
        st.text(),
        st.text(alphabet=st.sampled_from(["~", "m", "h", "j", "0", "1", "5", "9", "😀", "x", "²"])),
        st.builds(
            lambda xs, tail: encode(xs) + tail, st.lists(payload_text, max_size=3), st.text()
        ),
    )
)
def test_fuzz_packets_or_framing_error(message: str) -> None:
    """Arbitrary strings give a list of strings or a FramingError, nothing else, and never hang."""
    try:
        result = decode(message)
    except FramingError:
        return
    assert all(isinstance(p, str) for p in result)
    if "~m~0" not in message:  # no leading zeros: the message was canonical
        assert encode(result) == message


@given(st.lists(payload_text, min_size=1, max_size=4), st.data())
def test_truncation_is_always_an_error(payloads: list[str], data: st.DataObject) -> None:
    """Any cut inside the last packet raises FramingError."""
    frame = encode(payloads)
    last = encode(payloads[-1:])
    cut = data.draw(st.integers(min_value=len(frame) - len(last) + 1, max_value=len(frame) - 1))
    with pytest.raises(FramingError):
        decode(frame[:cut])


def test_many_small_packets_decode() -> None:
    """200,000 one-character packets in one message decode (linear walk, no quadratic slicing)."""
    message = "~m~1~m~a" * 200_000
    assert decode(message) == ["a"] * 200_000


def test_many_astral_packets_decode() -> None:
    """Thousands of packets full of astral characters decode to the exact payloads."""
    payloads = [("😀x" * (i % 7)) + "é" for i in range(3000)]
    assert decode(encode(payloads)) == payloads


def test_one_huge_astral_packet() -> None:
    """A 400,000-character packet of emoji (800,000 units) decodes exactly."""
    payload = "🚀" * 400_000
    frame = encode([payload])
    assert frame.startswith("~m~800000~m~")
    assert decode(frame) == [payload]
    with pytest.raises(FramingError):
        decode("~m~799999~m~" + payload)


@pytest.mark.parametrize(
    "message",
    ["~m~" * 100_000, "~m~1" + "0" * 100_000, "~m~" + "9" * 5000 + "~m~x", "~m~5~m~" + "~" * 10**6],
    ids=["prefixes", "endless-digits", "int-limit-digits", "long-trailer"],
)
def test_pathological_inputs_fail_fast(message: str) -> None:
    """Pathological messages end in FramingError without huge ints or quadratic work."""
    with pytest.raises(FramingError):
        decode(message)
