"""Keep-alive and timeouts on a timing wheel: each sweep looks only at the connections that are due.

A post office does not check every letter every morning; it sorts letters by delivery day and
opens one pigeonhole a day. The wheel files each connection under the sweep tick at which it next
needs attention: its handshake deadline, its next ping (``keepalive_interval_s`` after the server
last wrote to it) or its client timeout (``client_timeout_s`` after it last sent anything),
whichever comes first. Traffic does not refile a connection (that would cost a dictionary operation
per message): when its tick comes, its clocks are read again and, if the client or the server spoke
meanwhile, it is filed again under its new deadline. So a sweep costs nothing for connections that
are not due, whatever their number, and an idle connection is looked at about once (at most twice)
per keep-alive interval.

A connection is filed exactly once at any time, and only its own visit refiles it, so it is never
looked at twice in one sweep. A connection that ends is taken out at once (:meth:`discard`), so the
wheel never keeps a dead connection, or a burst of them, alive until its tick.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from simscale.hub.connection import HubConnection

__all__ = ["KeepAliveWheel"]


class KeepAliveWheel:
    """Connections filed by the tick (``floor(due_s / tick_s)``) at which they next need a look.

    Args:
        tick_s: the sweep period; a connection is looked at no later than one tick after it is due.
    """

    __slots__ = ("_buckets", "tick_s")

    def __init__(self, tick_s: float) -> None:
        if not tick_s > 0:
            raise ValueError(f"tick_s must be > 0, got {tick_s!r}")
        self.tick_s = tick_s
        # Insertion-ordered dictionaries used as sets: O(1) removal, deterministic order.
        self._buckets: dict[int, dict[HubConnection, None]] = {}

    def __len__(self) -> int:
        """Connections filed."""
        return sum(len(bucket) for bucket in self._buckets.values())

    def file(self, connection: HubConnection, due_s: float) -> None:
        """Have ``connection`` returned by the first :meth:`pop_due` at or after ``due_s``'s tick."""
        tick = math.floor(due_s / self.tick_s)
        bucket = self._buckets.get(tick)
        if bucket is None:
            self._buckets[tick] = {connection: None}
        else:
            bucket[connection] = None
        connection.wheel_tick = tick

    def discard(self, connection: HubConnection) -> None:
        """Take ``connection`` out wherever it is filed (no error if it is not)."""
        tick = connection.wheel_tick
        if tick is None:
            return
        connection.wheel_tick = None
        bucket = self._buckets.get(tick)
        if bucket is not None:
            bucket.pop(connection, None)
            if not bucket:  # buckets are never kept empty
                del self._buckets[tick]

    def pop_due(self, now_s: float) -> list[HubConnection]:
        """Take out every connection filed under a tick up to ``now_s``'s, oldest tick first.

        A connection may come out up to one tick before its deadline: the caller checks its clocks
        and files it again, and the next sweep finds it due.
        """
        current = math.floor(now_s / self.tick_s)
        buckets = self._buckets
        due: list[HubConnection] = []
        for tick in sorted(tick for tick in buckets if tick <= current):
            due.extend(buckets.pop(tick))
        for connection in due:
            connection.wheel_tick = None
        return due
