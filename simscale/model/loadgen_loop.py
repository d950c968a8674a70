"""The one-loop client host: every client in one load-generator process with one asyncio event loop.

This is how ``simscale loadgen`` measures the real hub on one machine, and so what calibration and
validation must predict. The loop works pass by pass, as asyncio runs it:

* A pass asks ``select`` which sockets are ready (waiting only when nothing is ready and the
  broadcast task is not runnable), runs the broadcast task first if an earlier pass woke it, then
  reads every socket that was ready, one read per socket taking every message waiting in it.
* Timers are looked at after ``select``: a broadcast whose time came during a pass has its timer
  noticed at the next pass, which wakes the task, and the task sends at the start of the pass after
  that — so a busy loop sends late (together with any other broadcast overdue by then) and, like the
  real load generator, stamps the send when it happens.
* A pass that reads costs a wake-up (select, the loop's own work) plus ``per_read +
  messages × per_delivery`` per read: a loop that keeps up sees few sockets per pass and one message
  per read; one that falls behind sees hundreds of sockets per pass and several messages per read,
  which bounds how far it falls behind.
* Woken by a server's writes, the loop may land on that server's core and wait there until the
  fan-out is written or it is moved to a free core (an exponential stall, shorter when the loop is
  busier), as traced on the real load generator.

The loop's costs are the Scenario's ``loadgen_*`` fields, measured by ``simscale calibrate``.
"""

from __future__ import annotations

import math
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import simpy

from simscale.model.client_host import ClientHost, FanOutWrite, ReadOnArrival, SendBroadcast
from simscale.model.cpu import Cpu
from simscale.model.fanout import FanOut, FanOutTiming
from simscale.model.loadgen_reads import PendingFanOut, plan_read_pass, unread_arrivals_s
from simscale.model.population import ClientPopulation
from simscale.model.recorder import Recorder

__all__ = ["LoopCosts", "OneLoopClientHost"]

_LOOP_BUSY_WINDOW_S = 0.5
"""The loop's recent busy fraction (what its stalls depend on) is averaged over about this long."""
_DRAIN_STEP_S = 0.01
"""While broadcasts are still due at the end, the run steps on this far at a time until they are sent."""


@dataclass(frozen=True, slots=True)
class LoopCosts:
    """What the load generator's loop costs (seconds of CPU) and how its stalls behave."""

    per_delivery_s: float
    per_read_s: float
    per_wakeup_s: float
    per_send_s: float
    stall_mean_s: float
    stall_busy_scale: float
    drain_s: float
    """How long the load generator goes on reading after its last send."""


@dataclass(frozen=True, slots=True)
class _DueSend:
    """A broadcast whose time has come, waiting for the loop to send it."""

    broadcast_id: int
    origin_index: int
    counted: bool
    send: SendBroadcast


class OneLoopClientHost(ClientHost):
    """The modelled ``simscale loadgen`` process (see the module docstring)."""

    def __init__(
        self,
        env: simpy.Environment,
        rng: np.random.Generator,
        cpu: Cpu,
        recorder: Recorder,
        population: ClientPopulation,
        timing: FanOutTiming,
        costs: LoopCosts,
    ) -> None:
        self.env = env
        self.rng = rng
        self.cpu = cpu
        """The loop's core: the shared host's cores, or one of its own."""
        self.recorder = recorder
        self.population = population
        self.timing = timing
        self.costs = costs
        self._pending: list[PendingFanOut] = []
        """Fan-outs whose messages the loop has not all read yet."""
        self._due_sends: list[_DueSend] = []
        """Broadcasts whose time has come and that the loop has not sent yet."""
        self._wakeup: simpy.Event | None = None
        self._in_pass = False
        self._stopped: simpy.Event | None = None
        """Set when the drain is over: the loop finishes ``_passes_left`` more passes, then this."""
        self._passes_left = 0
        self._stalled_on: simpy.Event | None = None
        """What the woken loop waits for on a writing server's core before it can read anything."""
        self._busy = 0.0
        """The loop's busy fraction (exponential average) as of ``_busy_at_s``."""
        self._busy_at_s = 0.0
        self._last_send_s = 0.0

    # --- the seam --------------------------------------------------------------------------------
    def start(self) -> None:
        self.env.process(self._loop())

    def broadcast_due(
        self, broadcast_id: int, origin_index: int, due_at_s: float, counted: bool, send: SendBroadcast
    ) -> None:
        # The broadcast task is due: the loop sends when it gets to it.
        self._due_sends.append(_DueSend(broadcast_id, origin_index, counted, send))
        self._poke()

    def write(self, fan_out: FanOut) -> FanOutWrite:
        if fan_out.recipients == 0:
            return ReadOnArrival(fan_out, self.timing, self.recorder)
        return _ReadByLoop(self, fan_out, self.timing.sample_positions(fan_out.recipients))

    def finish(self) -> None:
        """Run on as the load generator does: it waits ``drain_s`` after its last send, however late
        its busy loop sent it; then record what the fan-outs still being read have delivered so far."""
        drain_s = self.costs.drain_s
        while self._due_sends or self._last_send_s + drain_s > self.env.now:
            # Broadcasts still due are sent once the loop gets to them: step on until it has.
            self.env.run(until=max(self._last_send_s + drain_s, float(self.env.now) + _DRAIN_STEP_S))
        if drain_s > 0:
            # The real load generator checks its deadline in its broadcast task, which a timer wakes:
            # the timer is noticed at the select after the deadline, and the task runs in the pass
            # after that. So the pass in progress is finished and one more reads every socket ready
            # by then. (With no drain it stops right after its last send, reading nothing more.)
            self._passes_left = 2 if self._in_pass else 1
            stopped = self._stopped = self.env.event()
            self._poke()
            self.env.run(until=stopped)
        for fan_out in self._pending:
            read = ~np.isnan(fan_out.received_s)
            if fan_out.fan_out.counted and read.any():
                self._record_read(fan_out, read)
        self._pending = []

    # --- the loop --------------------------------------------------------------------------------
    def arrive(self, pending: PendingFanOut) -> None:
        """A fan-out's first messages are on their way to the loop's sockets."""
        self._pending.append(pending)
        mean_s = self.costs.stall_mean_s
        wakeup = self._wakeup
        if mean_s > 0 and wakeup is not None and not wakeup.triggered:
            # Woken by the server's writes, the loop lands on the writing server's core and waits there
            # until the fan-out is written, or until it is moved to a free core (sooner when busier).
            busy = self._recent_busy()
            stall_s = self.rng.exponential(mean_s * math.exp(-busy / self.costs.stall_busy_scale))
            self._stalled_on = pending.written | self.env.timeout(stall_s)
        self._poke()

    def _recent_busy(self) -> float:
        """The loop's busy fraction, averaged exponentially over the last ``_LOOP_BUSY_WINDOW_S``."""
        return self._busy * math.exp(-(float(self.env.now) - self._busy_at_s) / _LOOP_BUSY_WINDOW_S)

    def _note_pass(self, started_s: float, ended_s: float) -> None:
        """Fold a pass into the busy average: idle until ``started_s``, busy until ``ended_s``."""
        before = self._busy * math.exp(-(started_s - self._busy_at_s) / _LOOP_BUSY_WINDOW_S)
        kept = math.exp(-(ended_s - started_s) / _LOOP_BUSY_WINDOW_S)
        self._busy = before * kept + (1.0 - kept)
        self._busy_at_s = ended_s

    def _poke(self) -> None:
        """Wake the loop if it is waiting: it has something new to look at."""
        wakeup = self._wakeup
        if wakeup is not None and not wakeup.triggered:
            wakeup.succeed()

    def _loop(self) -> Generator[Any, Any, None]:
        costs, cpu = self.costs, self.cpu
        task_runnable = False
        while True:
            stalled_on, self._stalled_on = self._stalled_on, None
            if stalled_on is not None and not stalled_on.processed:
                yield stalled_on
            if not task_runnable:
                next_s = min(self._next_arrival_s(), math.inf if not self._due_sends else 0.0)
                if next_s > self.env.now:
                    if self._stopped is not None:
                        self._stopped.succeed()  # the drain is over and nothing is left to read
                        return
                    wakeup = self._wakeup = self.env.event()
                    if math.isfinite(next_s):
                        yield wakeup | self.env.timeout(next_s - self.env.now)
                    else:
                        yield wakeup
                    self._wakeup = None
                    continue
            self._in_pass = True
            lane = cpu.lanes.request()
            yield lane
            select_s = float(self.env.now)
            # The broadcast task's timer is noticed now; the task itself runs in the next pass.
            timer_due = bool(self._due_sends) and not task_runnable
            at_s = select_s
            if task_runnable:
                for due in self._due_sends:
                    at_s += costs.per_send_s
                    self._send(due, at_s)
                self._due_sends = []
                task_runnable = False
            reads = (
                plan_read_pass(
                    self._pending, select_s, at_s, costs.per_wakeup_s, costs.per_read_s, costs.per_delivery_s
                )
                if self._pending
                else None
            )
            if reads is not None:
                at_s = reads.end_s
            if at_s > select_s:
                # On time-shared cores a long pass steps aside for waiting work; its reads happen that much later.
                lane = yield from cpu.hold(lane, at_s - select_s, on_pause=None if reads is None else reads.pause)
            cpu.lanes.release(lane)
            if reads is not None:
                reads.commit()
            self._in_pass = False
            self._note_pass(select_s, float(self.env.now))
            task_runnable = timer_due
            self._record_finished()
            if self._stopped is not None:
                self._passes_left -= 1
                if self._passes_left <= 0:
                    self._stopped.succeed()
                    return

    def _next_arrival_s(self) -> float:
        """When the earliest message the loop has not read reaches its socket (inf: none)."""
        if not self._pending:
            return math.inf
        return min(float(unread_arrivals_s(f).min()) for f in self._pending)

    def _send(self, due: _DueSend, sent_at_s: float) -> None:
        self._last_send_s = sent_at_s
        if due.counted:
            self.recorder.broadcast(due.broadcast_id, due.origin_index, sent_at_s, self.population.connected)
        due.send(due.broadcast_id, due.origin_index, sent_at_s, due.counted, delay_s=sent_at_s - float(self.env.now))

    def _record_finished(self) -> None:
        done: list[PendingFanOut] = []
        still_pending: list[PendingFanOut] = []
        for fan_out in self._pending:
            (still_pending if np.isnan(fan_out.received_s).any() else done).append(fan_out)
        if not done:
            return
        self._pending = still_pending
        for fan_out in done:
            if fan_out.fan_out.counted:
                self._record_read(fan_out)

    def _record_read(self, pending: PendingFanOut, read: npt.NDArray[np.bool_] | None = None) -> None:
        """Record what the loop read of a fan-out: all of it, or the sampled sockets ``read``."""
        fan_out = pending.fan_out
        received_s = pending.received_s if read is None else pending.received_s[read]
        self.recorder.fan_out(
            fan_out.server.index,
            fan_out.broadcast_id,
            fan_out.origin_index,
            fan_out.sent_at_s,
            fan_out.recipients,
            received_s,
            delivered=None if read is None else round(fan_out.recipients * float(read.mean())),
        )


class _ReadByLoop(FanOutWrite):
    """A fan-out the loop reads while its server is still writing it."""

    def __init__(self, host: OneLoopClientHost, fan_out: FanOut, positions: npt.NDArray[np.float64]) -> None:
        self.host = host
        self.fan_out = fan_out
        self.positions = positions
        self.pending: PendingFanOut | None = None
        self.on_start = self._announce

    def _announce(self, started_s: float) -> None:
        fan_out = self.fan_out
        arrivals_s = self.host.timing.arrivals_s(started_s + fan_out.overhead_s, self.positions, fan_out.send_s)
        self.pending = PendingFanOut(fan_out, arrivals_s, np.full(len(arrivals_s), np.nan), self.host.env.event())
        self.host.arrive(self.pending)

    def on_pause(self, cpu_done_s: float, paused_s: float) -> None:
        if self.pending is None:
            return
        # The sockets written after the pause get their message that much later.
        later = (self.fan_out.written_by_s(self.positions) > cpu_done_s) & np.isnan(self.pending.received_s)
        self.pending.arrivals_s[later] += paused_s

    def written(self) -> None:
        if self.pending is not None:
            self.pending.written.succeed()
