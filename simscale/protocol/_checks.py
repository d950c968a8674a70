"""Field checks shared by the JSON and MessagePack decoders (wrong type -> ``ProtocolError``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from simscale.protocol.errors import ProtocolError
from simscale.protocol.messages import _no_headers


def is_int(value: Any) -> bool:
    """True for an integer that is not a bool (JSON and MessagePack both have a distinct bool)."""
    return isinstance(value, int) and not isinstance(value, bool)


def as_str(value: Any, name: str) -> str:
    """``value`` if it is a string, else a ``ProtocolError`` naming the field."""
    if not isinstance(value, str):
        raise ProtocolError(f"'{name}' must be a string, got {type(value).__name__}")
    return value


def as_optional_str(value: Any, name: str) -> str | None:
    """``value`` if it is a string or ``None``."""
    if value is None:
        return None
    return as_str(value, name)


def as_arguments(value: Any, name: str = "arguments") -> tuple[Any, ...]:
    """A list of arguments as a tuple."""
    if not isinstance(value, list):
        raise ProtocolError(f"'{name}' must be an array, got {type(value).__name__}")
    return tuple(value)


def as_stream_ids(value: Any) -> tuple[str, ...]:
    """A list of stream ids (``None`` means none)."""
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ProtocolError("'streamIds' must be an array of strings")
    return tuple(value)


def as_headers(value: Any) -> Mapping[str, str]:
    """A headers map of strings to strings (``None`` means no headers)."""
    if value is None or (isinstance(value, dict) and not value):
        return _no_headers()
    if not isinstance(value, dict) or not all(
        isinstance(key, str) and isinstance(item, str) for key, item in value.items()
    ):
        raise ProtocolError("'headers' must be a map of strings to strings")
    return value


def as_sequence_id(value: Any) -> int:
    """A non-negative integer sequence id."""
    if not is_int(value) or value < 0:
        raise ProtocolError(f"'sequenceId' must be a non-negative integer, got {repr(value)[:40]}")
    return int(value)
