"""The MessagePack protocol: golden bytes, the VarInt prefix, 5/6-element invocations, errors."""

from __future__ import annotations

import msgpack
import pytest

from simscale.protocol import (
    AckMessage,
    CancelInvocationMessage,
    CloseMessage,
    CompletionMessage,
    HubMessage,
    InvocationMessage,
    MessagePackHubProtocol,
    MessageTooLargeError,
    PingMessage,
    ProtocolError,
    SequenceMessage,
    StreamInvocationMessage,
    StreamItemMessage,
)
from simscale.protocol.msgpack_protocol import decode_varint, encode_varint

PROTOCOL = MessagePackHubProtocol()

# Observed on the wire from @microsoft/signalr (docs/SOURCES.md#hub-protocol): a 12-byte Completion,
# id "0", kind 3, result "hello".
GOLDEN_COMPLETION = bytes.fromhex("0c 95 03 80 a1 30 03 a5 68 65 6c 6c 6f")
# The JavaScript client's 5-element Invocation: [1, {}, "0", "SendMessage", ["a", "b"]].
JS_INVOCATION_BODY = bytes.fromhex("95 01 80 a1 30 ab") + b"SendMessage" + bytes.fromhex("92 a1 61 a1 62")


def frame(body: bytes) -> bytes:
    return encode_varint(len(body)) + body


def feed_all(*chunks: bytes, limit: int = 32768) -> list[HubMessage]:
    parser = PROTOCOL.new_parser(limit)
    messages: list[HubMessage] = []
    for chunk in chunks:
        messages.extend(parser.feed(chunk))
    return messages


def test_protocol_identity() -> None:
    assert (PROTOCOL.name, PROTOCOL.transfer_format, PROTOCOL.version) == ("messagepack", "Binary", 2)


def test_golden_completion_both_ways() -> None:
    assert PROTOCOL.encode(CompletionMessage.with_result("0", "hello")) == GOLDEN_COMPLETION
    assert feed_all(GOLDEN_COMPLETION) == [CompletionMessage.with_result("0", "hello")]


def test_ping_is_exactly_91_06() -> None:
    assert PROTOCOL.encode(PingMessage()) == b"\x02\x91\x06"
    assert feed_all(b"\x02\x91\x06") == [PingMessage()]


def test_reads_the_js_five_element_invocation() -> None:
    assert feed_all(frame(JS_INVOCATION_BODY)) == [InvocationMessage("SendMessage", ("a", "b"), "0")]


def test_reads_six_element_invocations_and_writes_six() -> None:
    six = msgpack.packb([1, {"k": "v"}, None, "Receive", [1, b"\x00"], ["s1"]])
    assert feed_all(frame(six)) == [InvocationMessage("Receive", (1, b"\x00"), None, ("s1",), {"k": "v"})]
    body = PROTOCOL.encode(InvocationMessage("ReceiveMessage", ("u", "m")))[1:]
    assert msgpack.unpackb(body) == [1, {}, None, "ReceiveMessage", ["u", "m"], []]


def test_completion_result_kinds() -> None:
    assert msgpack.unpackb(PROTOCOL.encode(CompletionMessage.with_error("1", "e"))[1:]) == [
        3,
        {},
        "1",
        1,
        "e",
    ]
    assert msgpack.unpackb(PROTOCOL.encode(CompletionMessage.void("1"))[1:]) == [3, {}, "1", 2]
    assert msgpack.unpackb(PROTOCOL.encode(CompletionMessage.with_result("1", None))[1:]) == [
        3,
        {},
        "1",
        3,
        None,
    ]


def test_every_message_type_decodes() -> None:
    bodies = [
        [2, {}, "s", [1, 2]],
        [4, {}, "s", "Counter", [3]],
        [5, {}, "s"],
        [7, "bye", True],
        [7, None],
        [8, 1394],
        [9, 1234],
    ]
    data = b"".join(frame(msgpack.packb(body)) for body in bodies)
    assert feed_all(data) == [
        StreamItemMessage("s", [1, 2]),
        StreamInvocationMessage("s", "Counter", (3,)),
        CancelInvocationMessage("s"),
        CloseMessage("bye", True),
        CloseMessage(),
        AckMessage(1394),
        SequenceMessage(1234),
    ]


def test_several_messages_per_frame_split_byte_by_byte() -> None:
    data = GOLDEN_COMPLETION + b"\x02\x91\x06" + frame(JS_INVOCATION_BODY)
    expected = feed_all(data)
    assert len(expected) == 3
    assert feed_all(*(data[i : i + 1] for i in range(len(data)))) == expected


@pytest.mark.parametrize(
    ("value", "prefix"),
    [(0, "00"), (127, "7f"), (128, "80 01"), (16384, "80 80 01"), (2**31 - 1, "ff ff ff ff 07")],
)
def test_varint_golden(value: int, prefix: str) -> None:
    assert encode_varint(value) == bytes.fromhex(prefix)
    assert decode_varint(bytes.fromhex(prefix)) == (value, len(bytes.fromhex(prefix)))


def test_varint_errors() -> None:
    assert decode_varint(b"\x80\x80") is None
    with pytest.raises(ProtocolError, match="longer than 5 bytes"):
        decode_varint(b"\x80\x80\x80\x80\x80\x01")
    with pytest.raises(ProtocolError, match="2 GB"):
        decode_varint(b"\xff\xff\xff\xff\x08")
    with pytest.raises(ValueError):
        encode_varint(2**31)


def test_declared_length_over_the_limit_is_refused_before_the_body_arrives() -> None:
    parser = PROTOCOL.new_parser(100)
    with pytest.raises(MessageTooLargeError, match="declares 101 bytes"):
        parser.feed(encode_varint(101))


def test_message_exactly_at_the_limit_is_accepted() -> None:
    body = msgpack.packb([1, {}, None, "T", ["x" * 80]])
    assert len(feed_all(frame(body), limit=len(body))) == 1


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"\xc1", "malformed MessagePack"),
        (b"\x92\x01", "malformed MessagePack"),
        (msgpack.packb([1, {}, None, "T", []]) + b"\x01", "malformed MessagePack"),
        (msgpack.packb({"type": 1}), "non-empty array"),
        (msgpack.packb([]), "non-empty array"),
        (msgpack.packb(["1"]), "must be an integer"),
        (msgpack.packb([True]), "must be an integer"),
        (msgpack.packb([42]), "unknown message type 42"),
        (msgpack.packb([1, {}, None, "T"]), "at least 5 elements"),
        (msgpack.packb([1, {}, 5, "T", []]), "'invocationId'"),
        (msgpack.packb([1, {}, None, b"T", []]), "'target'"),
        (msgpack.packb([1, {}, None, "T", "args"]), "'arguments'"),
        (msgpack.packb([1, {}, None, "T", [], [1]]), "'streamIds'"),
        (msgpack.packb([1, {"a": 1}, None, "T", []]), "'headers'"),
        (msgpack.packb([1, [], None, "T", []]), "'headers'"),
        (msgpack.packb([2, {}, "s"]), "at least 4"),
        (msgpack.packb([3, {}, "1", 4, 0]), "result kind"),
        (msgpack.packb([3, {}, "1", True, 0]), "result kind"),
        (msgpack.packb([3, {}, "1", 1]), "with an error"),
        (msgpack.packb([3, {}, "1", 1, 7]), "'error'"),
        (msgpack.packb([3, {}, "1", 3]), "with a result"),
        (msgpack.packb([4, {}, None, "T", []]), "'invocationId'"),
        (msgpack.packb([5, {}]), "at least 3"),
        (msgpack.packb([7]), "at least 2"),
        (msgpack.packb([7, None, 1]), "'allowReconnect'"),
        (msgpack.packb([8, "1"]), "'sequenceId'"),
        (msgpack.packb([9]), "at least 2"),
        (b"\xa2\xff\xfe", "malformed MessagePack"),
    ],
)
def test_error_paths_raise_protocol_error_with_a_reason(body: bytes, fragment: str) -> None:
    with pytest.raises(ProtocolError) as caught:
        feed_all(frame(body))
    assert fragment in caught.value.reason


def test_zero_length_message_is_an_error() -> None:
    with pytest.raises(ProtocolError, match="zero length"):
        feed_all(b"\x00")


def test_unencodable_values_raise_value_error() -> None:
    with pytest.raises(ValueError, match="cannot encode"):
        PROTOCOL.encode(InvocationMessage("T", (object(),)))
    with pytest.raises(ValueError, match="cannot encode"):
        PROTOCOL.encode(InvocationMessage("T", (2**70,)))


def test_a_run_of_pings_is_one_ping() -> None:
    from simscale.protocol import PingMessage
    from simscale.protocol.msgpack_protocol import MessagePackHubProtocol

    parser = MessagePackHubProtocol().new_parser(32_768)
    assert parser.feed(b"\x02\x91\x06" * 1_000 + b"\x02\x91\x06\x02") == [PingMessage()]
    assert parser.feed(b"\x91\x06") == [PingMessage()]
