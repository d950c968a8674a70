"""A SimPy environment that counts the events it processes (reported as ``events``)."""

from __future__ import annotations

import simpy

__all__ = ["CountingEnvironment"]


class CountingEnvironment(simpy.Environment):  # type: ignore[misc]
    """``simpy.Environment`` plus ``events_processed``: the model's cost in events, not seconds."""

    def __init__(self, initial_time: float = 0.0) -> None:
        super().__init__(initial_time)
        self.events_processed = 0

    def step(self) -> None:
        self.events_processed += 1
        super().step()
