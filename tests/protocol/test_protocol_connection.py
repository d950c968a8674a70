"""The server and client state machines, driven with raw bytes (no event loop)."""

from __future__ import annotations

import json

import msgpack
import pytest

from simscale.protocol import (
    ClientConnection,
    CloseMessage,
    CompletionMessage,
    ConnectionState,
    ConnectionStateError,
    InvocationMessage,
    JsonHubProtocol,
    MessagePackHubProtocol,
    PingMessage,
    ServerConnection,
)

JSON_HANDSHAKE = b'{"protocol":"json","version":1}\x1e'
MSGPACK_HANDSHAKE = b'{"protocol":"messagepack","version":1}\x1e'


def open_server(handshake: bytes = JSON_HANDSHAKE, **kwargs: int) -> ServerConnection:
    server = ServerConnection(**kwargs)
    assert server.receive_data(handshake) == []
    assert server.state is ConnectionState.OPEN
    assert server.data_to_send() == [b"{}\x1e"]
    return server


def test_starts_awaiting_the_handshake() -> None:
    server = ServerConnection()
    assert server.state is ConnectionState.AWAITING_HANDSHAKE
    assert server.data_to_send() == []
    with pytest.raises(ConnectionStateError):
        _ = server.protocol
    with pytest.raises(ConnectionStateError):
        server.send(PingMessage())


@pytest.mark.parametrize("version", [0, 1, 2])
def test_accepts_versions_zero_to_two(version: int) -> None:
    server = open_server(f'{{"protocol":"json","version":{version}}}\x1e'.encode())
    assert server.handshake is not None and server.handshake.version == version


def test_handshake_split_across_feeds_with_messages_after_it() -> None:
    server = ServerConnection()
    assert server.receive_data(MSGPACK_HANDSHAKE[:10]) == []
    assert server.state is ConnectionState.AWAITING_HANDSHAKE
    assert server.receive_data(MSGPACK_HANDSHAKE[10:] + b"\x02\x91\x06\x02\x91") == [PingMessage()]
    assert isinstance(server.protocol, MessagePackHubProtocol)
    assert server.receive_data(b"\x06") == [PingMessage()]
    assert server.data_to_send() == [b"{}\x1e"]


@pytest.mark.parametrize(
    ("handshake", "fragment"),
    [
        (b'{"protocol":"xml","version":1}\x1e', "Requested protocol 'xml' is not available."),
        (b'{"protocol":"json","version":3}\x1e', "version 3"),
        (b"garbage\x1e", "not valid UTF-8 JSON"),
        (b'{"protocol":"json"}\x1e', "'version'"),
    ],
)
def test_refused_handshake_queues_an_error_response_and_closes(handshake: bytes, fragment: str) -> None:
    server = ServerConnection()
    assert server.receive_data(handshake + b'{"type":6}\x1e') == []
    assert server.state is ConnectionState.CLOSED
    assert server.close_reason is not None and fragment in server.close_reason
    [response] = server.data_to_send()
    assert response.endswith(b"\x1e")
    assert fragment in json.loads(response[:-1])["error"]
    assert server.receive_data(b'{"type":6}\x1e') == []


def test_oversized_handshake_is_refused() -> None:
    server = ServerConnection(max_message_bytes=64)
    assert server.receive_data(b'{"protocol":"' + b"j" * 100) == []
    assert server.state is ConnectionState.CLOSED
    assert "error" in json.loads(server.data_to_send()[0][:-1])


def test_violation_queues_a_close_with_the_reason() -> None:
    server = open_server()
    messages = server.receive_data(b'{"type":6}\x1e{"type":99}\x1e')
    assert messages == []  # the connection is being torn down; nothing more is dispatched
    assert server.state is ConnectionState.CLOSED
    assert server.close_reason == "unknown message type 99"
    assert server.data_to_send() == [b'{"type":7,"error":"unknown message type 99"}\x1e']
    assert server.receive_data(b'{"type":6}\x1e') == []


def test_too_large_message_closes_in_messagepack() -> None:
    server = open_server(MSGPACK_HANDSHAKE, max_message_bytes=100)
    assert server.receive_data(b"\xc8\x01") == []  # declares 200 bytes
    assert server.state is ConnectionState.CLOSED
    [close] = server.data_to_send()
    assert msgpack.unpackb(close[1:])[0] == 7
    assert "over the 100-byte limit" in msgpack.unpackb(close[1:])[1]


def test_close_from_the_client_is_returned_last_and_closes() -> None:
    server = open_server()
    messages = server.receive_data(b'{"type":6}\x1e{"type":7,"error":"bye"}\x1e{"type":6}\x1e')
    assert messages == [PingMessage(), CloseMessage("bye")]
    # CLOSING: nothing more is read, but what came before the goodbye may still be answered.
    assert server.state is ConnectionState.CLOSING
    assert server.receive_data(b'{"type":6}\x1e') == []
    server.send(CompletionMessage.with_result("1", "late answer"))
    assert server.data_to_send() == [b'{"type":3,"invocationId":"1","result":"late answer"}\x1e']
    server.close("the server's own words")
    assert server.state is ConnectionState.CLOSED
    assert server.close_reason == "bye"  # the client's reason stays
    assert server.data_to_send() == []  # a client that said goodbye gets no Close back


def test_send_encodes_with_the_negotiated_protocol() -> None:
    server = open_server(MSGPACK_HANDSHAKE)
    server.send(CompletionMessage.with_result("0", "hello"))
    shared = MessagePackHubProtocol().encode(InvocationMessage("Receive", ("x",)))
    server.send_encoded(shared)
    assert server.data_to_send() == [bytes.fromhex("0c 95 03 80 a1 30 03 a5 68 65 6c 6c 6f"), shared]
    assert server.data_to_send() == []


def test_close_is_idempotent_and_later_sends_are_dropped() -> None:
    server = open_server()
    server.close("server shutting down", allow_reconnect=True)
    server.close("again")
    server.send(PingMessage())
    server.send_encoded(b"x")
    assert server.state is ConnectionState.CLOSED
    assert server.close_reason == "server shutting down"
    assert server.data_to_send() == [b'{"type":7,"error":"server shutting down","allowReconnect":true}\x1e']


def test_sending_a_close_message_closes() -> None:
    server = open_server()
    server.send(CloseMessage())
    assert server.state is ConnectionState.CLOSED


def test_rejects_a_non_positive_limit() -> None:
    with pytest.raises(ValueError, match="max_message_bytes"):
        ServerConnection(max_message_bytes=0)


def test_client_and_server_talk_to_each_other() -> None:
    for name in ("json", "messagepack"):
        client = ClientConnection(name)
        server = ServerConnection()
        assert client.state is ConnectionState.AWAITING_HANDSHAKE
        for chunk in client.data_to_send():
            server.receive_data(chunk)
        assert server.state is ConnectionState.OPEN
        server.send(InvocationMessage("ReceiveMessage", ("u", "m")))
        received = [m for chunk in server.data_to_send() for m in client.receive_data(chunk)]
        assert client.state is ConnectionState.OPEN
        assert received == [InvocationMessage("ReceiveMessage", ("u", "m"))]
        client.send(InvocationMessage("SendMessage", ("u", "m"), "0"))
        [record] = client.data_to_send()
        assert server.receive_data(record) == [InvocationMessage("SendMessage", ("u", "m"), "0")]


def test_client_sees_a_handshake_error() -> None:
    client = ClientConnection(JsonHubProtocol())
    assert client.receive_data(b'{"error":"Requested protocol \'json\' is not available."}\x1e') == []
    assert client.state is ConnectionState.CLOSED
    assert client.close_reason is not None and "not available" in client.close_reason


def test_client_handshake_response_split_and_followed_by_messages() -> None:
    client = ClientConnection("messagepack", version=2)
    assert client.data_to_send() == [b'{"protocol":"messagepack","version":2}\x1e']
    assert client.receive_data(b"{") == []
    assert client.receive_data(b"}\x1e\x02\x91\x06") == [PingMessage()]


def test_client_violation_and_server_close() -> None:
    client = ClientConnection("json")
    client.receive_data(b"{}\x1e")
    assert client.receive_data(b'{"type":7,"error":"bye"}\x1e') == [CloseMessage("bye")]
    assert (client.state, client.close_reason) == (ConnectionState.CLOSED, "bye")
    broken = ClientConnection("json")
    assert broken.receive_data(b"{}\x1e[]\x1e") == []
    assert broken.state is ConnectionState.CLOSED
    assert broken.close_reason is not None and "object" in broken.close_reason
    bad_handshake = ClientConnection("json")
    bad_handshake.receive_data(b"[1]\x1e")
    assert bad_handshake.state is ConnectionState.CLOSED


def test_a_text_only_transport_refuses_a_binary_protocol_and_accepts_json() -> None:
    text_only = ServerConnection(transfer_formats=("Text",))
    text_only.receive_data(b'{"protocol":"messagepack","version":1}\x1e')
    assert text_only.state is ConnectionState.CLOSED
    reply = json.loads(b"".join(text_only.data_to_send()).rstrip(b"\x1e"))
    assert reply["error"] == (
        "Cannot use the 'messagepack' protocol on the current transport. "
        "The transport does not support 'Binary' transfer format."
    )
    json_ok = ServerConnection(transfer_formats=("Text",))
    json_ok.receive_data(b'{"protocol":"json","version":1}\x1e')
    assert json_ok.state is ConnectionState.OPEN
