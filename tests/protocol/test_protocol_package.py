"""The package's public surface and its promise to stay free of I/O."""

from __future__ import annotations

import ast
from pathlib import Path

import simscale.protocol

PACKAGE_DIR = Path(simscale.protocol.__file__).parent


def test_public_api_is_pinned() -> None:
    assert sorted(simscale.protocol.__all__) == sorted(
        [
            "DEFAULT_MAX_MESSAGE_BYTES",
            "SUPPORTED_PROTOCOLS",
            "AckMessage",
            "CancelInvocationMessage",
            "ClientConnection",
            "CloseMessage",
            "CompletionMessage",
            "ConnectionState",
            "ConnectionStateError",
            "FrameParser",
            "HandshakeError",
            "HandshakeRequest",
            "HandshakeResponse",
            "HubMessage",
            "HubProtocol",
            "InvocationMessage",
            "JsonHubProtocol",
            "MessagePackHubProtocol",
            "MessageTooLargeError",
            "MessageType",
            "PingMessage",
            "ProtocolError",
            "SequenceMessage",
            "ServerConnection",
            "StreamInvocationMessage",
            "StreamItemMessage",
            "TransferFormat",
            "encode_handshake_request",
            "encode_handshake_response",
            "get_protocol",
            "parse_handshake_request",
            "parse_handshake_response",
        ]
    )
    for name in simscale.protocol.__all__:
        assert hasattr(simscale.protocol, name)


def test_imports_only_stdlib_msgpack_and_itself() -> None:
    allowed = {
        "__future__",
        "abc",
        "collections",
        "dataclasses",
        "enum",
        "json",
        "struct",  # RFC 6455 frame headers (websocket_frames)
        "types",
        "typing",
        "msgpack",
    }
    for path in PACKAGE_DIR.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                assert top in allowed or name.startswith("simscale.protocol"), f"{path.name} imports {name}"


def test_get_protocol() -> None:
    import pytest

    assert simscale.protocol.get_protocol("json").name == "json"
    assert set(simscale.protocol.SUPPORTED_PROTOCOLS) == {"json", "messagepack"}
    with pytest.raises(simscale.protocol.HandshakeError, match="'xml' is not available"):
        simscale.protocol.get_protocol("xml")
