"""Property tests: round trips in both protocols; random and mutated bytes only ever raise
``ProtocolError`` (and always return)."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from simscale.protocol import (
    AckMessage,
    CancelInvocationMessage,
    CloseMessage,
    CompletionMessage,
    HubMessage,
    HubProtocol,
    InvocationMessage,
    JsonHubProtocol,
    MessagePackHubProtocol,
    PingMessage,
    ProtocolError,
    SequenceMessage,
    ServerConnection,
    StreamInvocationMessage,
    StreamItemMessage,
)

SETTINGS = settings(max_examples=150, deadline=None)
PROTOCOLS: list[HubProtocol] = [JsonHubProtocol(), MessagePackHubProtocol()]

text = st.text(max_size=20)
ids = st.text(min_size=1, max_size=8)
# Values both protocols carry unchanged: lists (not tuples), string keys, finite floats, no bytes.
scalars = (
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.floats(allow_nan=False, allow_infinity=False) | text
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=4),
    max_leaves=12,
)
arguments = st.lists(values, max_size=4).map(tuple)
headers = st.dictionaries(text, text, max_size=3)
stream_ids = st.lists(ids, max_size=2).map(tuple)
sequence_ids = st.integers(0, 2**53)


def completions() -> st.SearchStrategy[CompletionMessage]:
    return st.one_of(
        st.builds(CompletionMessage.void, ids),
        st.builds(CompletionMessage.with_error, ids, text),
        st.builds(CompletionMessage.with_result, ids, values),
    ).flatmap(lambda m: headers.map(lambda h: _with_headers(m, h)))


def _with_headers(message: CompletionMessage, value: dict[str, str]) -> CompletionMessage:
    return CompletionMessage(message.invocation_id, message.result, message.error, message.has_result, value)


messages: st.SearchStrategy[HubMessage] = st.one_of(
    st.builds(InvocationMessage, text, arguments, st.none() | ids, stream_ids, headers),
    st.builds(StreamItemMessage, ids, values, headers),
    completions(),
    st.builds(StreamInvocationMessage, ids, text, arguments, stream_ids, headers),
    st.builds(CancelInvocationMessage, ids, headers),
    st.just(PingMessage()),
    st.builds(CloseMessage, st.none() | text, st.booleans()),
    st.builds(AckMessage, sequence_ids),
    st.builds(SequenceMessage, sequence_ids),
)


def _normalised(message: Any) -> Any:
    # Headers compare as plain dicts (the empty default is a read-only mapping).
    if hasattr(message, "headers"):
        return (message, dict(message.headers))
    return (message, None)


@SETTINGS
@given(st.lists(messages, min_size=1, max_size=5), st.integers(1, 50))
def test_round_trip_in_both_protocols(batch: list[HubMessage], chunk: int) -> None:
    for protocol in PROTOCOLS:
        data = b"".join(protocol.encode(message) for message in batch)
        parser = protocol.new_parser(len(data) + 1)
        decoded: list[HubMessage] = []
        for start in range(0, len(data), chunk):
            decoded.extend(parser.feed(data[start : start + chunk]))
        assert _without_repeated_pings(decoded) == _without_repeated_pings(batch)


def _without_repeated_pings(batch: list[HubMessage]) -> list[Any]:
    """Normalised messages, a run of Pings as one (a parser may return a run of Pings as one Ping)."""
    kept: list[Any] = []
    for message in batch:
        if isinstance(message, PingMessage) and kept and kept[-1][0] == message:
            continue
        kept.append(_normalised(message))
    return kept


def _feed_expecting_only_protocol_errors(protocol: HubProtocol, data: bytes) -> None:
    parser = protocol.new_parser(4096)
    try:
        parser.feed(data)
    except ProtocolError as error:
        assert error.reason


@SETTINGS
@given(st.binary(max_size=300))
def test_random_bytes_only_raise_protocol_error(data: bytes) -> None:
    for protocol in PROTOCOLS:
        _feed_expecting_only_protocol_errors(protocol, data)
        _feed_expecting_only_protocol_errors(protocol, data + b"\x1e")


@SETTINGS
@given(messages, st.data())
def test_mutated_frames_only_raise_protocol_error(message: HubMessage, data: st.DataObject) -> None:
    for protocol in PROTOCOLS:
        frame = bytearray(protocol.encode(message))
        for _ in range(data.draw(st.integers(1, 4))):
            position = data.draw(st.integers(0, len(frame) - 1))
            action = data.draw(st.sampled_from(["flip", "delete", "insert"]))
            if action == "flip":
                frame[position] = data.draw(st.integers(0, 255))
            elif action == "delete" and len(frame) > 1:
                del frame[position]
            else:
                frame.insert(position, data.draw(st.integers(0, 255)))
        _feed_expecting_only_protocol_errors(protocol, bytes(frame))


@SETTINGS
@given(
    st.sampled_from([b'{"protocol":"json","version":1}\x1e', b'{"protocol":"messagepack","version":2}\x1e']),
    st.binary(max_size=200),
)
def test_server_connection_never_raises_on_garbage(handshake: bytes, garbage: bytes) -> None:
    server = ServerConnection(max_message_bytes=1024)
    server.receive_data(handshake)
    server.receive_data(garbage)
    server.receive_data(garbage)
    assert server.data_to_send()
