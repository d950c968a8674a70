"""The RFC 6455 framer: bytes in, frames out, no event loop.

Known-answer bytes come from RFC 6455 §5.7 (https://www.rfc-editor.org/rfc/rfc6455#section-5.7).
"""

from __future__ import annotations

import itertools
import os
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simscale.protocol.websocket_frames import (
    CLOSE_MESSAGE_TOO_BIG,
    CLOSE_PROTOCOL_ERROR,
    Frame,
    FrameError,
    FrameReader,
    MessageReader,
    Opcode,
    apply_mask,
    close_payload,
    data_opcode,
    encode_frame,
    frame_header,
    parse_close_payload,
)

KEY = bytes.fromhex("37fa213d")


def test_rfc_examples() -> None:
    # §5.7: a single-frame unmasked text "Hello", and the same masked with 0x37fa213d.
    assert encode_frame(Opcode.TEXT, b"Hello") == bytes.fromhex("810548656c6c6f")
    assert encode_frame(Opcode.TEXT, b"Hello", mask_key=KEY) == bytes.fromhex("818537fa213d7f9f4d5158")
    # A fragmented unmasked text: "Hel" then "lo".
    assert encode_frame(Opcode.TEXT, b"Hel", fin=False) == bytes.fromhex("010348656c")
    assert encode_frame(Opcode.CONTINUATION, b"lo") == bytes.fromhex("80026c6f")
    # An unmasked Ping carrying "Hello"; 256 and 65536 bytes of binary.
    assert encode_frame(Opcode.PING, b"Hello") == bytes.fromhex("890548656c6c6f")
    assert frame_header(Opcode.BINARY, 256) == bytes.fromhex("827e0100")
    assert frame_header(Opcode.BINARY, 65536) == bytes.fromhex("827f0000000000010000")


@pytest.mark.parametrize(
    ("length", "header_bytes", "marker"),
    [(0, 2, 0), (125, 2, 125), (126, 4, 126), (65535, 4, 126), (65536, 10, 127), (70000, 10, 127)],
)
def test_length_encodings(length: int, header_bytes: int, marker: int) -> None:
    payload = os.urandom(length)
    for mask_key in (None, KEY):
        frame = encode_frame(Opcode.BINARY, payload, mask_key=mask_key)
        extra = 4 if mask_key else 0
        assert len(frame) == header_bytes + extra + length
        assert frame[1] & 0x7F == marker
        reader = FrameReader(masked=mask_key is not None, max_payload_bytes=1 << 17)
        assert reader.feed(frame) == [Frame(Opcode.BINARY, payload)]
        assert reader.buffered_bytes == 0


def test_mask_is_its_own_inverse_and_checks_the_key() -> None:
    payload = b"any payload at all"
    assert apply_mask(apply_mask(payload, KEY), KEY) == payload
    assert apply_mask(b"", KEY) == b""
    with pytest.raises(ValueError, match="key must be 4 bytes"):
        apply_mask(payload, b"abc")


frames_strategy = st.lists(
    st.one_of(
        st.tuples(st.sampled_from([Opcode.TEXT, Opcode.BINARY]), st.binary(max_size=70_000)),
        st.tuples(st.sampled_from([Opcode.PING, Opcode.PONG, Opcode.CLOSE]), st.binary(max_size=125)),
    ),
    max_size=8,
)


@settings(max_examples=80, deadline=None)
@given(frames=frames_strategy, masked=st.booleans(), cuts=st.lists(st.integers(0, 200_000), max_size=6))
def test_round_trip_through_any_cut(frames: list[tuple[Opcode, bytes]], masked: bool, cuts: list[int]) -> None:
    stream = b"".join(encode_frame(op, p, mask_key=os.urandom(4) if masked else None) for op, p in frames)
    reader = FrameReader(masked=masked)
    received: list[Frame] = []
    points = sorted({0, len(stream), *(c % (len(stream) + 1) for c in cuts)})
    for start, end in itertools.pairwise(points):
        received.extend(reader.feed(stream[start:end]))
    assert received == [Frame(op, p) for op, p in frames]
    assert reader.buffered_bytes == 0


@settings(max_examples=60, deadline=None)
@given(
    message=st.binary(max_size=5000),
    pieces=st.integers(1, 6),
    opcode=st.sampled_from([Opcode.TEXT, Opcode.BINARY]),
    ping_between=st.booleans(),
)
def test_fragments_join_into_one_message_with_control_frames_passed_through(
    message: bytes, pieces: int, opcode: Opcode, ping_between: bool
) -> None:
    size = max(1, len(message) // pieces + 1)
    chunks = [message[i : i + size] for i in range(0, len(message), size)] or [b""]
    wire = b""
    for index, chunk in enumerate(chunks):
        last = index == len(chunks) - 1
        wire += encode_frame(opcode if index == 0 else Opcode.CONTINUATION, chunk, fin=last, mask_key=KEY)
        if ping_between and not last:
            wire += encode_frame(Opcode.PING, b"hi", mask_key=KEY)
    reader = MessageReader(masked=True)
    received = [frame for byte in range(0, len(wire), 7) for frame in reader.feed(wire[byte : byte + 7])]
    pings = [Frame(Opcode.PING, b"hi")] * (len(chunks) - 1 if ping_between else 0)
    assert received[:-1] == pings
    assert received[-1] == Frame(opcode, message)


@pytest.mark.parametrize(
    ("wire", "masked", "match"),
    [
        (bytes([0x81 | 0x40, 0x00]), False, "reserved bits"),
        (bytes([0x83, 0x00]), False, "reserved opcode 0x3"),
        (bytes([0x8B, 0x00]), False, "reserved opcode 0xb"),
        (bytes([0x81, 0x00]), True, "a client must mask"),
        (bytes([0x81, 0x80]) + KEY, False, "a server must not mask"),
        (bytes([0x89, 126, 0, 126]) + bytes(126), False, "control frame may carry 125"),
        (bytes([0x09, 0x00]), False, "must not be fragmented"),
    ],
)
def test_bad_frames_raise_a_clear_error(wire: bytes, masked: bool, match: str) -> None:
    with pytest.raises(FrameError, match=match) as failure:
        FrameReader(masked=masked).feed(wire)
    assert failure.value.close_code == CLOSE_PROTOCOL_ERROR


def test_oversized_frames_and_messages_are_refused_before_buffering() -> None:
    reader = FrameReader(masked=False, max_payload_bytes=1000)
    with pytest.raises(FrameError, match="1001 bytes is over the limit of 1000") as failure:
        reader.feed(frame_header(Opcode.BINARY, 1001))  # the header alone: no payload needed to refuse
    assert failure.value.close_code == CLOSE_MESSAGE_TOO_BIG
    messages = MessageReader(masked=False, max_payload_bytes=1000)
    messages.feed(encode_frame(Opcode.TEXT, bytes(600), fin=False))
    with pytest.raises(FrameError, match="fragmented message passed the limit of 1000"):
        messages.feed(encode_frame(Opcode.CONTINUATION, bytes(600)))


def test_fragmentation_rules() -> None:
    with pytest.raises(FrameError, match="continuation frame without a message"):
        MessageReader(masked=False).feed(encode_frame(Opcode.CONTINUATION, b"x"))
    reader = MessageReader(masked=False)
    reader.feed(encode_frame(Opcode.TEXT, b"a", fin=False))
    with pytest.raises(FrameError, match="new message started before"):
        reader.feed(encode_frame(Opcode.TEXT, b"b"))


def test_bad_arguments_to_the_writer() -> None:
    with pytest.raises(FrameError, match="opcode must be one of"):
        encode_frame(0x3, b"")
    with pytest.raises(FrameError, match="control frame must be final and carry at most 125 bytes"):
        encode_frame(Opcode.PING, bytes(126))
    with pytest.raises(FrameError, match="control frame must be final"):
        encode_frame(Opcode.CLOSE, b"", fin=False)
    with pytest.raises(FrameError, match="mask_key must be 4 bytes"):
        encode_frame(Opcode.TEXT, b"x", mask_key=b"12345")
    with pytest.raises(FrameError, match="length must be between"):
        frame_header(Opcode.TEXT, -1)
    with pytest.raises(TypeError, match="payload must be bytes"):
        encode_frame(Opcode.TEXT, "text")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_payload_bytes"):
        FrameReader(masked=True, max_payload_bytes=10)
    with pytest.raises(ValueError, match="transfer_format"):
        data_opcode("Json")
    assert (data_opcode("Text"), data_opcode("Binary")) == (Opcode.TEXT, Opcode.BINARY)
    assert Opcode.PING.is_control and not Opcode.BINARY.is_control


def test_close_payloads() -> None:
    assert close_payload() == struct.pack("!H", 1000)
    assert parse_close_payload(close_payload(1001, "going away")) == (1001, "going away")
    assert parse_close_payload(b"") == (None, "")
    with pytest.raises(FrameError, match="one byte"):
        parse_close_payload(b"\x03")
    with pytest.raises(FrameError, match="not valid UTF-8"):
        parse_close_payload(b"\x03\xe8\xff")
    with pytest.raises(FrameError, match="code must be between 1000 and 4999"):
        close_payload(999)
    with pytest.raises(FrameError, match="close reason may take 123 bytes, got 124"):
        close_payload(1000, "x" * 124)


@pytest.mark.parametrize("reader_class", [FrameReader, MessageReader])
def test_frames_before_a_violation_come_with_the_error(reader_class: type[FrameReader]) -> None:
    good = encode_frame(Opcode.TEXT, b"first") + encode_frame(Opcode.BINARY, b"second")
    bad = bytes((0x80 | 0x3, 0))  # a reserved opcode
    reader = reader_class(masked=False)
    with pytest.raises(FrameError, match="reserved opcode") as caught:
        reader.feed(good + bad + encode_frame(Opcode.TEXT, b"never"))
    assert [frame.payload for frame in caught.value.frames] == [b"first", b"second"]


def test_whole_messages_before_a_fragmentation_violation_come_with_the_error() -> None:
    reader = MessageReader(masked=False)
    wire = encode_frame(Opcode.TEXT, b"whole") + encode_frame(Opcode.CONTINUATION, b"orphan")
    with pytest.raises(FrameError, match="continuation") as caught:
        reader.feed(wire)
    assert [frame.payload for frame in caught.value.frames] == [b"whole"]
