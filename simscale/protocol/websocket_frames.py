"""RFC 6455 WebSocket framing, sans-I/O: frames to bytes, bytes to frames; no sockets, no asyncio.

A WebSocket message travels as one or more *frames*, each an envelope with a two-byte header (FIN
bit, opcode, mask bit, a 7-bit length that may be followed by a 16- or 64-bit one), an optional
four-byte masking key and the payload (RFC 6455 §5.2, https://www.rfc-editor.org/rfc/rfc6455#section-5.2).
Think of a letter cut into postcards: each card says whether it is the last (FIN), the first says
what the letter is (text or binary), and control cards (Close, Ping, Pong) may be slipped in between.

* :func:`encode_frame` / :func:`frame_header` write one frame; a client passes a ``mask_key``
  (every client-to-server frame is masked, §5.3), a server never does.
* :class:`FrameReader` turns a byte stream cut anywhere into :class:`Frame` objects and refuses
  what the RFC forbids (:class:`FrameError`); :class:`MessageReader` also joins fragments into
  whole messages, passing control frames through as they come.

The hub writes its frames with :func:`frame_header`; both clients (:mod:`simscale.client`) write
and read theirs with this module.
"""

from __future__ import annotations

import enum
import struct
from typing import NamedTuple

__all__ = [
    "CLOSE_GOING_AWAY",
    "CLOSE_MESSAGE_TOO_BIG",
    "CLOSE_NORMAL",
    "CLOSE_PROTOCOL_ERROR",
    "MAX_CONTROL_PAYLOAD_BYTES",
    "Frame",
    "FrameError",
    "FrameReader",
    "MessageReader",
    "Opcode",
    "apply_mask",
    "close_payload",
    "data_opcode",
    "encode_frame",
    "frame_header",
    "parse_close_payload",
]


class Opcode(enum.IntEnum):
    """What a frame carries (RFC 6455 §5.2); 0x8 and above are control frames."""

    CONTINUATION = 0x0
    TEXT = 0x1
    BINARY = 0x2
    CLOSE = 0x8
    PING = 0x9
    PONG = 0xA

    @property
    def is_control(self) -> bool:
        """Close, Ping and Pong: at most 125 bytes, never fragmented (§5.5)."""
        return self >= Opcode.CLOSE


CLOSE_NORMAL = 1000
"""Close status: the purpose of the connection was fulfilled (§7.4.1)."""
CLOSE_GOING_AWAY = 1001
"""Close status: the endpoint goes away (a server shutting down)."""
CLOSE_PROTOCOL_ERROR = 1002
"""Close status: the peer broke the framing rules."""
CLOSE_MESSAGE_TOO_BIG = 1009
"""Close status: a message is larger than the endpoint accepts."""

MAX_CONTROL_PAYLOAD_BYTES = 125
"""Largest payload of a Close, Ping or Pong frame (§5.5)."""

_OPCODES: tuple[Opcode | None, ...] = tuple(
    Opcode(value) if value in Opcode._value2member_map_ else None for value in range(16)
)
"""Opcode by its 4-bit value (``None`` for the reserved ones): a tuple index is cheaper than ``Opcode(x)``."""
_FIN = 0x80
_MASK_BIT = 0x80
_RSV_BITS = 0x70


class FrameError(ValueError):
    """Bytes (or arguments) that are not a valid WebSocket frame; ``close_code`` is the status to fail with."""

    def __init__(self, reason: str, close_code: int = CLOSE_PROTOCOL_ERROR) -> None:
        super().__init__(reason)
        self.reason = reason
        """What was wrong, in a sentence."""
        self.close_code = close_code
        """1002 (protocol error) or 1009 (too big)."""
        self.frames: list[Frame] = []
        """What a reader completed in the same ``feed`` before the violation: still valid, so a
        caller delivers them before it fails the connection (nothing that arrived intact is lost)."""


class Frame(NamedTuple):
    """One frame (or, from :class:`MessageReader`, one whole message); the payload is unmasked.

    A named tuple rather than a dataclass: a load generator makes one per message received.
    """

    opcode: Opcode
    payload: bytes
    fin: bool = True


def data_opcode(transfer_format: str) -> Opcode:
    """The data opcode for a hub protocol's transfer format (``"Text"`` or ``"Binary"``).

    Raises:
        ValueError: naming ``transfer_format`` when it is neither.
    """
    if transfer_format == "Text":
        return Opcode.TEXT
    if transfer_format == "Binary":
        return Opcode.BINARY
    raise ValueError(f"transfer_format must be 'Text' or 'Binary', got {transfer_format!r}")


def apply_mask(payload: bytes, key: bytes) -> bytes:
    """``payload`` XOR the repeated four-byte ``key`` (§5.3); applying it twice gives ``payload`` back.

    Raises:
        ValueError: ``key`` is not four bytes.
    """
    if len(key) != 4:
        raise ValueError(f"key must be 4 bytes, got {len(key)}")
    length = len(payload)
    if not length:
        return b""
    repeated = (bytes(key) * (length // 4 + 1))[:length]
    # One big-integer XOR: far faster in CPython than a loop over the bytes.
    return (int.from_bytes(payload, "big") ^ int.from_bytes(repeated, "big")).to_bytes(length, "big")


def frame_header(opcode: int, length: int, *, fin: bool = True, mask_key: bytes | None = None) -> bytes:
    """The header of a frame with a ``length``-byte payload (the masking key included when given).

    The length takes 7 bits up to 125, then 126 + 16 bits up to 65535, then 127 + 64 bits (§5.2).

    Raises:
        FrameError: unknown opcode, negative or over-long length, a control frame over 125 bytes or
            not final, or a masking key that is not four bytes.
    """
    if not 0 <= opcode <= 0xF or _OPCODES[opcode] is None:
        raise FrameError(f"opcode must be one of {[int(o) for o in Opcode]}, got {opcode!r}")
    if length < 0 or length >= 1 << 63:
        raise FrameError(f"length must be between 0 and 2**63 - 1, got {length!r}")
    if opcode >= Opcode.CLOSE and (length > MAX_CONTROL_PAYLOAD_BYTES or not fin):
        raise FrameError(
            f"a control frame must be final and carry at most {MAX_CONTROL_PAYLOAD_BYTES} bytes, "
            f"got {length} bytes, fin={fin}"
        )
    first = (_FIN if fin else 0) | opcode
    mask_bit = 0
    if mask_key is not None:
        if len(mask_key) != 4:
            raise FrameError(f"mask_key must be 4 bytes, got {len(mask_key)}")
        mask_bit = _MASK_BIT
    if length < 126:
        header = bytes((first, mask_bit | length))
    elif length < 65536:
        header = struct.pack("!BBH", first, mask_bit | 126, length)
    else:
        header = struct.pack("!BBQ", first, mask_bit | 127, length)
    return header if mask_key is None else header + bytes(mask_key)


def encode_frame(opcode: int, payload: bytes, *, fin: bool = True, mask_key: bytes | None = None) -> bytes:
    """One whole frame; with ``mask_key`` (a client) the payload is masked with it.

    Raises:
        FrameError: as :func:`frame_header`.
        TypeError: ``payload`` is not bytes-like.
    """
    if not isinstance(payload, bytes | bytearray | memoryview):
        raise TypeError(f"payload must be bytes, got {type(payload).__name__}")
    header = frame_header(opcode, len(payload), fin=fin, mask_key=mask_key)
    body = bytes(payload) if mask_key is None else apply_mask(bytes(payload), mask_key)
    return header + body


def close_payload(code: int = CLOSE_NORMAL, reason: str = "") -> bytes:
    """A Close frame's payload: the two-byte status, then the UTF-8 reason (§5.5.1).

    Raises:
        FrameError: a status outside 1000-4999, or a payload over 125 bytes.
    """
    if not 1000 <= code <= 4999:
        raise FrameError(f"code must be between 1000 and 4999, got {code!r}")
    payload = struct.pack("!H", code) + reason.encode()
    if len(payload) > MAX_CONTROL_PAYLOAD_BYTES:
        raise FrameError(f"a close reason may take {MAX_CONTROL_PAYLOAD_BYTES - 2} bytes, got {len(payload) - 2}")
    return payload


def parse_close_payload(payload: bytes) -> tuple[int | None, str]:
    """``(status, reason)`` of a Close frame's payload (``(None, "")`` for an empty one).

    Raises:
        FrameError: one byte only, or a reason that is not UTF-8.
    """
    if not payload:
        return None, ""
    if len(payload) == 1:
        raise FrameError("a close payload of one byte has no room for the status code")
    (code,) = struct.unpack_from("!H", payload)
    try:
        reason = bytes(payload[2:]).decode()
    except UnicodeDecodeError:
        raise FrameError("the close reason is not valid UTF-8") from None
    return code, reason


class FrameReader:
    """Bytes in, frames out, for one direction of one connection.

    Args:
        masked: whether the peer must mask its frames: ``True`` when reading a client (the server's
            side), ``False`` when reading a server (a client's side, §5.1).
        max_payload_bytes: the largest frame payload accepted; a larger declared length raises
            :class:`FrameError` with close code 1009 before the payload is buffered.

    After a :class:`FrameError` the stream cannot be trusted: fail the connection, do not feed again.
    """

    __slots__ = ("_buffer", "masked", "max_payload_bytes")

    def __init__(self, *, masked: bool, max_payload_bytes: int = 1 << 20) -> None:
        if max_payload_bytes < MAX_CONTROL_PAYLOAD_BYTES:
            raise ValueError(f"max_payload_bytes must be >= {MAX_CONTROL_PAYLOAD_BYTES}, got {max_payload_bytes!r}")
        self.masked = masked
        self.max_payload_bytes = max_payload_bytes
        self._buffer = bytearray()

    @property
    def buffered_bytes(self) -> int:
        """Bytes received that do not make a whole frame yet."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[Frame]:
        """Add ``data``; every frame it completes, in order.

        Raises:
            FrameError: reserved bits set (no extension is negotiated), a reserved opcode, a control
                frame over 125 bytes or fragmented, a mask bit that does not match ``masked``, or a
                payload over ``max_payload_bytes``.
        """
        buffer = self._buffer
        buffer += data
        frames: list[Frame] = []
        position = 0
        end = len(buffer)
        masked = self.masked
        try:
            position = self._parse(buffer, position, end, masked, frames)
        except FrameError as error:
            error.frames = frames
            raise
        if position:
            del buffer[:position]
        return frames

    def _parse(self, buffer: bytearray, position: int, end: int, masked: bool, frames: list[Frame]) -> int:
        """Append every whole frame from ``position`` on to ``frames``; where the next one starts."""
        while end - position >= 2:
            first, second = buffer[position], buffer[position + 1]
            length = second & 0x7F
            offset = position + 2
            if length == 126:
                if end - offset < 2:
                    break
                (length,) = struct.unpack_from("!H", buffer, offset)
                offset += 2
            elif length == 127:
                if end - offset < 8:
                    break
                (length,) = struct.unpack_from("!Q", buffer, offset)
                offset += 8
            opcode = self._check_header(first, second, length)
            key_end = offset + 4 if masked else offset
            if end - key_end < length:
                break
            payload = bytes(buffer[key_end : key_end + length])
            if masked:
                payload = apply_mask(payload, bytes(buffer[offset:key_end]))
            frames.append(Frame(opcode, payload, bool(first & _FIN)))
            position = key_end + length
        return position

    def _check_header(self, first: int, second: int, length: int) -> Opcode:
        if first & _RSV_BITS:
            raise FrameError("reserved bits are set, but no extension was negotiated")
        opcode = _OPCODES[first & 0x0F]
        if opcode is None:
            raise FrameError(f"reserved opcode {first & 0x0F:#x}")
        if bool(second & _MASK_BIT) is not self.masked:
            side = "a client must mask its frames" if self.masked else "a server must not mask its frames"
            raise FrameError(side)
        if opcode >= Opcode.CLOSE:
            if length > MAX_CONTROL_PAYLOAD_BYTES:
                raise FrameError(f"a control frame may carry {MAX_CONTROL_PAYLOAD_BYTES} bytes, got {length}")
            if not first & _FIN:
                raise FrameError("a control frame must not be fragmented")
        if length > self.max_payload_bytes:
            raise FrameError(
                f"a frame of {length} bytes is over the limit of {self.max_payload_bytes}", CLOSE_MESSAGE_TOO_BIG
            )
        return opcode


class MessageReader(FrameReader):
    """A :class:`FrameReader` that joins fragments: whole messages out, control frames as they come.

    Every returned data frame is final, TEXT or BINARY (a fragmented message takes the opcode of its
    first fragment). ``max_payload_bytes`` bounds a whole message as well as each frame.
    """

    __slots__ = ("_fragment_bytes", "_fragment_opcode", "_fragments")

    def __init__(self, *, masked: bool, max_payload_bytes: int = 1 << 20) -> None:
        super().__init__(masked=masked, max_payload_bytes=max_payload_bytes)
        self._fragments: list[bytes] = []
        self._fragment_opcode: Opcode | None = None
        self._fragment_bytes = 0

    def feed(self, data: bytes) -> list[Frame]:
        """Add ``data``; every whole message and control frame it completes, in order.

        Raises:
            FrameError: as :meth:`FrameReader.feed`, or a continuation without a message to
                continue, a new message before the previous one ended, or a message over the limit.
        """
        try:
            frames = super().feed(data)
        except FrameError as error:
            error.frames = self._join(error.frames)
            raise
        if not self._fragments and all(f.fin and f.opcode is not Opcode.CONTINUATION for f in frames):
            return frames  # the common case: nothing fragmented
        return self._join(frames)

    def _join(self, frames: list[Frame]) -> list[Frame]:
        messages: list[Frame] = []
        try:
            self._join_into(frames, messages)
        except FrameError as error:
            error.frames = messages
            raise
        return messages

    def _join_into(self, frames: list[Frame], messages: list[Frame]) -> None:
        for frame in frames:
            opcode = frame.opcode
            if opcode >= Opcode.CLOSE:
                messages.append(frame)
            elif opcode is Opcode.CONTINUATION:
                if self._fragment_opcode is None:
                    raise FrameError("a continuation frame without a message to continue")
                self._add_fragment(frame.payload)
                if frame.fin:
                    messages.append(Frame(self._fragment_opcode, b"".join(self._fragments)))
                    self._fragments = []
                    self._fragment_opcode = None
                    self._fragment_bytes = 0
            elif self._fragment_opcode is not None:
                raise FrameError("a new message started before the fragmented one ended")
            elif frame.fin:
                messages.append(frame)
            else:
                self._fragment_opcode = opcode
                self._add_fragment(frame.payload)

    def _add_fragment(self, payload: bytes) -> None:
        self._fragment_bytes += len(payload)
        if self._fragment_bytes > self.max_payload_bytes:
            raise FrameError(
                f"a fragmented message passed the limit of {self.max_payload_bytes} bytes", CLOSE_MESSAGE_TOO_BIG
            )
        self._fragments.append(payload)
