"""The JSON protocol: records as the official clients write them, framing, every error path."""

from __future__ import annotations

import pytest

from simscale.protocol import (
    AckMessage,
    CancelInvocationMessage,
    CloseMessage,
    CompletionMessage,
    HubMessage,
    InvocationMessage,
    JsonHubProtocol,
    MessageTooLargeError,
    PingMessage,
    ProtocolError,
    SequenceMessage,
    StreamInvocationMessage,
    StreamItemMessage,
)

PROTOCOL = JsonHubProtocol()


def feed_all(*chunks: bytes, limit: int = 32768) -> list[HubMessage]:
    parser = PROTOCOL.new_parser(limit)
    messages: list[HubMessage] = []
    for chunk in chunks:
        messages.extend(parser.feed(chunk))
    return messages


def test_protocol_identity() -> None:
    assert (PROTOCOL.name, PROTOCOL.transfer_format, PROTOCOL.version) == ("json", "Text", 2)


def test_js_client_invocation_with_type_last() -> None:
    record = b'{"arguments":["alice","hi"],"invocationId":"0","target":"SendMessage","type":1}\x1e'
    assert feed_all(record) == [InvocationMessage("SendMessage", ("alice", "hi"), "0")]


def test_non_blocking_invocation_has_no_id() -> None:
    [message] = feed_all(b'{"type":1,"target":"Send","arguments":[]}\x1e')
    assert message == InvocationMessage("Send", ())
    assert isinstance(message, InvocationMessage) and message.invocation_id is None


def test_signalrcore_headers_and_unknown_properties_are_accepted() -> None:
    record = (
        b'{"type":1,"headers":{"Content-Type":"application/json"},"target":"Echo",'
        b'"arguments":[1],"invocationId":"5","somethingNew":[1,2]}\x1e'
    )
    [message] = feed_all(record)
    assert isinstance(message, InvocationMessage)
    assert message.headers == {"Content-Type": "application/json"}
    assert message.arguments == (1,)


def test_several_messages_per_frame_and_split_across_feeds() -> None:
    frame = (
        b'{"type":6}\x1e{"type":3,"invocationId":"1","result":null}\x1e'
        b'{"type":3,"invocationId":"2"}\x1e{"type":3,"invocationId":"3","error":"boom"}\x1e'
    )
    expected = [
        PingMessage(),
        CompletionMessage.with_result("1", None),
        CompletionMessage.void("2"),
        CompletionMessage.with_error("3", "boom"),
    ]
    assert feed_all(frame) == expected
    assert feed_all(*(frame[i : i + 1] for i in range(len(frame)))) == expected
    assert feed_all(frame[:13], frame[13:50], frame[50:]) == expected


def test_every_message_type_decodes() -> None:
    frame = (
        b'{"type":2,"invocationId":"s","item":{"a":[1]}}\x1e'
        b'{"type":4,"invocationId":"s","target":"Counter","arguments":[3],"streamIds":["u1"]}\x1e'
        b'{"type":5,"invocationId":"s"}\x1e'
        b'{"type":7,"error":"bye","allowReconnect":true}\x1e'
        b'{"type":7}\x1e{"type":8,"sequenceId":1394}\x1e{"type":9,"sequenceId":1234}\x1e'
    )
    assert feed_all(frame) == [
        StreamItemMessage("s", {"a": [1]}),
        StreamInvocationMessage("s", "Counter", (3,), ("u1",)),
        CancelInvocationMessage("s"),
        CloseMessage("bye", True),
        CloseMessage(),
        AckMessage(1394),
        SequenceMessage(1234),
    ]


def test_encode_shapes() -> None:
    assert PROTOCOL.encode(PingMessage()) == b'{"type":6}\x1e'
    assert PROTOCOL.encode(InvocationMessage("Receive", ("a", "b"))) == (
        b'{"type":1,"target":"Receive","arguments":["a","b"]}\x1e'
    )
    assert PROTOCOL.encode(CompletionMessage.with_result("0", None)) == (
        b'{"type":3,"invocationId":"0","result":null}\x1e'
    )
    assert PROTOCOL.encode(CompletionMessage.void("0")) == b'{"type":3,"invocationId":"0"}\x1e'
    assert PROTOCOL.encode(CloseMessage("x", True)) == b'{"type":7,"error":"x","allowReconnect":true}\x1e'
    assert PROTOCOL.encode(AckMessage(3)) == b'{"type":8,"sequenceId":3}\x1e'
    assert PROTOCOL.encode(SequenceMessage(4)) == b'{"type":9,"sequenceId":4}\x1e'
    # Control characters inside strings are escaped, so 0x1E never appears inside a record.
    assert PROTOCOL.encode(InvocationMessage("T", ("\x1e",))).count(b"\x1e") == 1


def test_encode_is_a_pure_function_of_the_message() -> None:
    message = InvocationMessage("ReceiveMessage", ("u", "é" * 10))
    assert PROTOCOL.encode(message) == PROTOCOL.encode(message)


@pytest.mark.parametrize("value", [float("nan"), object(), b"bytes"])
def test_unencodable_values_raise_value_error(value: object) -> None:
    with pytest.raises(ValueError, match="cannot encode"):
        PROTOCOL.encode(InvocationMessage("T", (value,)))


@pytest.mark.parametrize(
    ("record", "fragment"),
    [
        (b"{not json}", "malformed JSON"),
        (b"\xff\xff", "malformed JSON"),
        (b"[1]", "must be an object"),
        (b'{"target":"x"}', "'type'"),
        (b'{"type":"1"}', "'type' must be an integer"),
        (b'{"type":true}', "'type' must be an integer"),
        (b'{"type":10}', "unknown message type 10"),
        (b'{"type":0}', "unknown message type 0"),
        (b'{"type":1,"arguments":[]}', "'target'"),
        (b'{"type":1,"target":"x"}', "'arguments'"),
        (b'{"type":1,"target":5,"arguments":[]}', "'target' must be a string"),
        (b'{"type":1,"target":"x","arguments":{}}', "'arguments' must be an array"),
        (b'{"type":1,"target":"x","arguments":[],"invocationId":1}', "'invocationId'"),
        (b'{"type":1,"target":"x","arguments":[],"streamIds":[1]}', "'streamIds'"),
        (b'{"type":1,"target":"x","arguments":[],"headers":{"a":1}}', "'headers'"),
        (b'{"type":1,"target":"x","arguments":[],"headers":[]}', "'headers'"),
        (b'{"type":2,"invocationId":"1"}', "'item'"),
        (b'{"type":2,"item":1}', "'invocationId'"),
        (b'{"type":3,"invocationId":"1","result":1,"error":"e"}', "mutually exclusive"),
        (b'{"type":3,"invocationId":"1","error":3}', "'error'"),
        (b'{"type":4,"target":"x","arguments":[]}', "'invocationId'"),
        (b'{"type":5}', "'invocationId'"),
        (b'{"type":7,"allowReconnect":"yes"}', "'allowReconnect'"),
        (b'{"type":8}', "'sequenceId'"),
        (b'{"type":9,"sequenceId":-1}', "'sequenceId'"),
        (b'{"type":6,"x":NaN}', "NaN"),
        (b"", "empty JSON record"),
    ],
)
def test_error_paths_raise_protocol_error_with_a_reason(record: bytes, fragment: str) -> None:
    with pytest.raises(ProtocolError) as caught:
        feed_all(record + b"\x1e")
    assert fragment in caught.value.reason


def test_unterminated_record_is_refused_as_soon_as_it_passes_the_limit() -> None:
    parser = PROTOCOL.new_parser(100)
    assert parser.feed(b'{"type":1,"target":"x","arguments":["' + b"a" * 40) == []
    with pytest.raises(MessageTooLargeError, match="100-byte limit"):
        parser.feed(b"a" * 80)


def test_one_huge_chunk_is_refused_before_being_buffered() -> None:
    parser = PROTOCOL.new_parser(100)
    with pytest.raises(MessageTooLargeError):
        parser.feed(b"a" * 10_000)
    assert len(parser._buffer) == 0


def test_complete_record_over_the_limit_is_too_large() -> None:
    record = b'{"type":1,"target":"x","arguments":["' + b"a" * 200 + b'"]}\x1e'
    with pytest.raises(MessageTooLargeError):
        feed_all(record, limit=100)
    assert feed_all(record, limit=len(record) - 1) != []


def test_parser_rejects_a_non_positive_limit() -> None:
    with pytest.raises(ValueError, match="max_message_bytes"):
        PROTOCOL.new_parser(0)


def test_a_run_of_pings_is_one_ping_and_skipped_without_decoding() -> None:
    from simscale.protocol import InvocationMessage, PingMessage
    from simscale.protocol.json_protocol import JsonHubProtocol

    parser = JsonHubProtocol().new_parser(32_768)
    echo = b'{"type":1,"target":"Echo","arguments":[1]}\x1e'
    data = b'{"type":6}\x1e' * 1_000 + echo + b'{"type":6}\x1e' * 3
    assert parser.feed(data) == [PingMessage(), InvocationMessage("Echo", (1,)), PingMessage()]
    assert parser.feed(b'{"type":6}\x1e{"type":6}\x1e{"typ') == [PingMessage()]
    assert parser.feed(b'e":6}\x1e') == [PingMessage()]  # a record split across feeds still counts
