"""The client side as a seam: what lies between a broadcast falling due and being sent, and between
a server's writes and a client reading them.

:class:`ClientHost` is that seam, with two implementations chosen by the Scenario's ``client_host``:

* ``free`` (:class:`FreeClientHost`, the default): clients cost nothing — a broadcast goes out the
  moment it is due and every client reads its message the moment it arrives. This is what a
  deployment with real, separate client devices looks like.
* ``one-loop`` (:class:`~simscale.model.loadgen_loop.OneLoopClientHost`): every client lives in one
  load-generator process with one event loop (``simscale loadgen``), which sends late and reads in
  passes when it is busy. Calibration and validation use it to predict a loopback load test.

A host is told when a broadcast is due (:meth:`ClientHost.broadcast_due`) and is handed each
fan-out as its server starts writing it (:meth:`ClientHost.write`); it records what the clients
received through the run's recorder.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Protocol

import numpy as np
import numpy.typing as npt

from simscale.model.fanout import FanOut, FanOutTiming
from simscale.model.population import ClientPopulation
from simscale.model.recorder import Recorder

__all__ = ["ClientHost", "FanOutWrite", "FreeClientHost", "SendBroadcast"]

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


class SendBroadcast(Protocol):
    """Starts a broadcast on its way from its sender to ``origin_index``'s server (after ``delay_s``)."""

    def __call__(
        self, broadcast_id: int, origin_index: int, sent_at_s: float, counted: bool, *, delay_s: float = 0.0
    ) -> None: ...


class FanOutWrite(ABC):
    """The client side's view of one fan-out while its server writes it.

    The server calls :attr:`on_start` when a core starts the writes (``None``: nothing to do then),
    :meth:`on_pause` each time a time-shared core paused the writes, :meth:`written` as soon as the
    last socket is written, and :meth:`delivered` afterwards when there was at least one recipient.
    """

    on_start: Callable[[float], None] | None = None

    @abstractmethod
    def on_pause(self, cpu_done_s: float, paused_s: float) -> None:
        """The writes stepped aside for ``paused_s`` after ``cpu_done_s`` of their CPU."""

    def written(self) -> None:  # noqa: B027 (an optional hook)
        """The server has written every socket."""

    def delivered(self, started_s: float) -> None:  # noqa: B027 (an optional hook)
        """The fan-out whose writes started at ``started_s`` is over (it had recipients)."""


class ClientHost(ABC):
    """Where the clients run. Subclasses implement :meth:`broadcast_due` and :meth:`write`; hosts
    with processes of their own start them in :meth:`start` and finish them in :meth:`finish`.

    The scenario's ``client_host`` picks one: ``free`` (clients cost nothing) or ``one-loop`` (one
    load-generator process whose CPU and event loop delay sends and reads).

    Example:

        >>> import numpy as np
        >>> from simscale import preset
        >>> from simscale.model import ClientHost, Deployment
        >>> for kind in ["free", "one-loop"]:
        ...     scenario = preset("single-server", clients=10, duration_s=3.0, warmup_s=1.0, client_host=kind)
        ...     host = Deployment(scenario, np.random.default_rng(0)).client_host
        ...     print(kind, type(host).__name__, isinstance(host, ClientHost))
        free FreeClientHost True
        one-loop OneLoopClientHost True
    """

    def start(self) -> None:  # noqa: B027 (an optional hook)
        """Start the host's own processes (called once, after the servers' processes)."""

    @abstractmethod
    def broadcast_due(
        self, broadcast_id: int, origin_index: int, due_at_s: float, counted: bool, send: SendBroadcast
    ) -> None:
        """A client's broadcast is due at ``due_at_s`` (now); the host sends it with ``send``."""

    @abstractmethod
    def write(self, fan_out: FanOut) -> FanOutWrite:
        """A server is about to write ``fan_out`` to its clients."""

    def finish(self) -> None:  # noqa: B027 (an optional hook)
        """The run's horizon is reached: settle what the clients still owe (drain, late sends)."""


class FreeClientHost(ClientHost):
    """Clients that cost nothing: sends on time, every message read on arrival."""

    def __init__(self, recorder: Recorder, population: ClientPopulation, timing: FanOutTiming) -> None:
        self.recorder = recorder
        self.population = population
        self.timing = timing

    def broadcast_due(
        self, broadcast_id: int, origin_index: int, due_at_s: float, counted: bool, send: SendBroadcast
    ) -> None:
        if counted:
            self.recorder.broadcast(broadcast_id, origin_index, due_at_s, self.population.connected)
        send(broadcast_id, origin_index, due_at_s, counted)

    def write(self, fan_out: FanOut) -> FanOutWrite:
        return ReadOnArrival(fan_out, self.timing, self.recorder)

    def written_together(
        self,
        servers: IntArray,
        recipients: IntArray,
        writes_start_s: FloatArray,
        send_s: float,
        *,
        broadcast_id: int,
        origin_index: int,
        sent_at_s: float,
    ) -> None:
        """Counted fan-outs of one send on several servers (vectorised), each writing from
        ``writes_start_s``: the clients read on arrival, so the latencies follow in one numpy step."""
        sample = self.timing.samples_per_server(len(servers))
        full = recipients > sample
        if full.any():
            # Every server with a full sample: one draw of positions and delays for all of them.
            many, counts, starts = servers[full], recipients[full], writes_start_s[full]
            arrivals_s = self.timing.arrivals_many_s(starts, counts, send_s, sample)
            self.recorder.fan_outs(many, broadcast_id, origin_index, sent_at_s, counts, arrivals_s)
        for index in np.flatnonzero(~full).tolist():
            # No more recipients than the sample: every write position, one server at a time.
            positions = self.timing.sample_positions(int(recipients[index]), sample)
            arrivals_s = self.timing.arrivals_s(float(writes_start_s[index]), positions, send_s)
            self.recorder.fan_out(
                int(servers[index]), broadcast_id, origin_index, sent_at_s, int(recipients[index]), arrivals_s
            )


class ReadOnArrival(FanOutWrite):
    """Each client reads its message when it arrives: latency is write position plus network delay."""

    def __init__(self, fan_out: FanOut, timing: FanOutTiming, recorder: Recorder) -> None:
        self.fan_out = fan_out
        self.timing = timing
        self.recorder = recorder
        self.pauses: list[tuple[float, float]] = []
        """(CPU done, time waited) for each time the fan-out stepped aside on a time-shared core."""

    def on_pause(self, cpu_done_s: float, paused_s: float) -> None:
        self.pauses.append((cpu_done_s, paused_s))

    def delivered(self, started_s: float) -> None:
        fan_out = self.fan_out
        sampled = self.timing.sample_positions(fan_out.recipients)
        arrivals_s = self.timing.arrivals_s(started_s + fan_out.overhead_s, sampled, fan_out.send_s)
        for cpu_done_s, paused_s in self.pauses:
            # The sockets written after a pause get their message that much later.
            arrivals_s[fan_out.written_by_s(sampled) > cpu_done_s] += paused_s
        if fan_out.counted:
            self.recorder.fan_out(
                fan_out.server.index,
                fan_out.broadcast_id,
                fan_out.origin_index,
                fan_out.sent_at_s,
                fan_out.recipients,
                arrivals_s,
            )
