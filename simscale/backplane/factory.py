"""`create_backplane`: a backplane from a one-word spec, as given on the command line."""

from __future__ import annotations

from simscale.backplane.base import Backplane
from simscale.backplane.channels import DEFAULT_PREFIX
from simscale.backplane.memory import MemoryBackplane, MemoryBus

__all__ = ["create_backplane"]


def create_backplane(
    spec: str,
    *,
    prefix: str = DEFAULT_PREFIX,
    server_name: str | None = None,
    bus: MemoryBus | None = None,
) -> Backplane:
    """Builds a (not yet started) backplane.

    Args:
        spec: ``"memory"`` (in-process; servers in one process share `MemoryBus.shared` unless ``bus``
            is given), or a ``redis://…`` / ``rediss://…`` URL (password in the URL).
        prefix: hub name for the channel names.
        server_name: this server's name; generated when omitted.
        bus: the bus for ``memory``.

    Raises:
        ValueError: naming the spec when it is none of these.

    Example:

        >>> from simscale.backplane import create_backplane
        >>> type(create_backplane("memory")).__name__, type(create_backplane("redis://127.0.0.1:6379")).__name__
        ('MemoryBackplane', 'RedisBackplane')
    """
    text = spec.strip() if isinstance(spec, str) else spec
    if text == "memory":
        return MemoryBackplane(bus, prefix=prefix, server_name=server_name)
    if isinstance(text, str) and text.lower().startswith(("redis://", "rediss://")):
        if bus is not None:
            raise ValueError(f"bus is only for the 'memory' backplane, not {spec!r}")
        # Imported here so 'memory' works without redis-py installed.
        from simscale.backplane.redis_backplane import RedisBackplane

        return RedisBackplane(text, prefix=prefix, server_name=server_name)
    raise ValueError(f"unknown backplane {spec!r}: use 'memory', 'redis://host:port' or 'rediss://host:port'")
