"""The load generator's reads: which sockets one pass of its event loop reads, and when.

Sockets are identified by write position (a server writes its clients in a fixed order), grouped
by server, and read in the order they became ready; a sampled position stands for
``recipients / samples`` sockets. A read takes every message that has arrived in its socket by the
time it happens, so its cost depends on when it happens: the plan is first estimated with one
message per read, then with the messages that arrived by the estimated times.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import simpy

from simscale.model.fanout import FanOut

__all__ = ["PendingFanOut", "ReadPass", "plan_read_pass", "unread_arrivals_s"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(slots=True)
class PendingFanOut:
    """One fan-out's messages on their way to, or waiting in, the load generator's sockets."""

    fan_out: FanOut
    arrivals_s: FloatArray
    """Arrival time at each sampled socket, in the order the server writes them."""
    received_s: FloatArray
    """When the loop read each of them (NaN: not yet)."""
    written: simpy.Event
    """Succeeds when the server has written the whole fan-out."""


def unread_arrivals_s(pending: PendingFanOut) -> FloatArray:
    """Arrival times of the sampled messages not read yet (inf for those already read)."""
    return np.where(np.isnan(pending.received_s), pending.arrivals_s, np.inf)


class ReadPass:
    """The reads one pass of the loop will make, committed when they have happened."""

    __slots__ = ("_pauses", "_plan", "end_s", "started_s")

    def __init__(self, plan: list[tuple[list[PendingFanOut], IntArray, FloatArray]], started_s: float, end_s: float):
        self._plan = plan
        """Per group of fan-outs (same server, same sample): the sample columns read and when."""
        self.started_s = started_s
        self.end_s = end_s
        """When the pass ends if it is not paused."""
        self._pauses: list[tuple[float, float]] = []

    def pause(self, cpu_done_s: float, paused_s: float) -> None:
        """The pass stepped aside for ``paused_s`` after ``cpu_done_s`` of its work."""
        self._pauses.append((self.started_s + cpu_done_s, paused_s))

    def commit(self) -> None:
        """Record the reads: each takes what has arrived in its socket by the time it happens."""
        for members, columns, planned_s in self._plan:
            read_s = planned_s.copy()
            for at_planned_s, paused_s in self._pauses:
                read_s[planned_s > at_planned_s] += paused_s
            for pending in members:
                taken = unread_arrivals_s(pending)[columns] <= read_s
                pending.received_s[columns[taken]] = read_s[taken]


def plan_read_pass(
    pending: list[PendingFanOut],
    select_s: float,
    start_s: float,
    wakeup_s: float,
    per_read_s: float,
    per_delivery_s: float,
) -> ReadPass | None:
    """Plan the reads, from ``start_s``, of every socket that was ready at ``select_s`` (None: none was).

    The pass costs ``wakeup_s`` plus, per read, ``per_read_s + messages × per_delivery_s``.
    """
    readable: list[tuple[FloatArray, list[PendingFanOut]]] = []
    groups: dict[tuple[int, int], list[PendingFanOut]] = {}
    for fan_out in pending:
        groups.setdefault((fan_out.fan_out.server.index, len(fan_out.arrivals_s)), []).append(fan_out)
    for members in groups.values():
        readable.append((np.stack([unread_arrivals_s(f) for f in members]), members))
    firsts = [unread.min(axis=0) for unread, _ in readable]
    ready_s = np.concatenate(firsts)
    owner = np.concatenate([np.full(len(first), g) for g, first in enumerate(firsts)])
    block = np.concatenate([np.arange(len(first)) for first in firsts])
    scale = np.concatenate(
        [
            np.full(len(first), max(f.fan_out.recipients for f in members) / len(first))
            for first, (_, members) in zip(firsts, readable, strict=True)
        ]
    )
    order = np.argsort(ready_s, kind="stable")
    order = order[ready_s[order] <= select_s]
    if not len(order):
        return None
    owner, block, scale = owner[order], block[order], scale[order]
    start_s += wakeup_s

    def reads_at(messages: FloatArray) -> FloatArray:
        return start_s + np.cumsum(scale * (per_read_s + messages * per_delivery_s))

    messages = np.ones(len(order))
    for _ in range(2):
        read_s = reads_at(messages)
        for g, (unread, _) in enumerate(readable):
            mine = owner == g
            messages[mine] = np.maximum(np.count_nonzero(unread[:, block[mine]] <= read_s[mine], axis=0), 1)
    read_s = reads_at(messages)
    plan = [
        (members, block[mine], read_s[mine])
        for g, (_, members) in enumerate(readable)
        if len(mine := np.flatnonzero(owner == g))
    ]
    return ReadPass(plan, select_s, float(read_s[-1]))
