"""Handshake parsing and encoding, bytes in, values out."""

from __future__ import annotations

import pytest

from simscale.protocol import (
    HandshakeError,
    HandshakeRequest,
    HandshakeResponse,
    MessageTooLargeError,
    encode_handshake_request,
    encode_handshake_response,
    parse_handshake_request,
    parse_handshake_response,
)


def test_request_is_parsed_and_the_rest_returned() -> None:
    request, rest = parse_handshake_request(b'{"protocol":"json","version":1}\x1e{"type":6}\x1e')
    assert request == HandshakeRequest("json", 1)
    assert rest == b'{"type":6}\x1e'


def test_incomplete_request_returns_none_and_the_buffer() -> None:
    assert parse_handshake_request(b'{"protocol":"js') == (None, b'{"protocol":"js')


@pytest.mark.parametrize("version", [0, 1, 2, 7])
def test_any_non_negative_version_parses(version: int) -> None:
    # Whether a version is supported is the connection's decision, not the parser's.
    request, _ = parse_handshake_request(f'{{"version":{version},"protocol":"messagepack"}}\x1e'.encode())
    assert request == HandshakeRequest("messagepack", version)


@pytest.mark.parametrize(
    "record",
    [
        b"not json\x1e",
        b"[1,2]\x1e",
        b'{"version":1}\x1e',
        b'{"protocol":"json"}\x1e',
        b'{"protocol":1,"version":1}\x1e',
        b'{"protocol":"json","version":"1"}\x1e',
        b'{"protocol":"json","version":true}\x1e',
        b'{"protocol":"json","version":-1}\x1e',
        b'\xff\xfe{"protocol":"json","version":1}\x1e',
    ],
)
def test_malformed_requests_raise_handshake_error(record: bytes) -> None:
    with pytest.raises(HandshakeError) as caught:
        parse_handshake_request(record)
    assert caught.value.reason


def test_request_without_terminator_past_the_limit_is_too_large() -> None:
    with pytest.raises(MessageTooLargeError):
        parse_handshake_request(b'{"protocol":"' + b"x" * 100, max_bytes=64)


def test_encode_request_and_responses() -> None:
    assert encode_handshake_request("messagepack", 1) == b'{"protocol":"messagepack","version":1}\x1e'
    assert encode_handshake_response() == b"{}\x1e"
    assert encode_handshake_response("nope") == b'{"error":"nope"}\x1e'


def test_response_parsing() -> None:
    assert parse_handshake_response(b"{}\x1e\x02\x91\x06") == (HandshakeResponse(None), b"\x02\x91\x06")
    assert parse_handshake_response(b'{"error":"bad","minorVersion":1}\x1e') == (
        HandshakeResponse("bad"),
        b"",
    )
    assert parse_handshake_response(b"{") == (None, b"{")
    with pytest.raises(HandshakeError):
        parse_handshake_response(b'{"error":5}\x1e')
