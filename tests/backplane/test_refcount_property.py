"""Property: whatever the order of subscribe/unsubscribe calls, the base class' reference counts and the
transport's subscriptions agree with a simple model (checked on the in-memory transport, no Redis)."""

from __future__ import annotations

import asyncio
from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from simscale.backplane import MemoryBackplane, MemoryBus

CHANNELS = ["hub:a", "hub:b"]
operations = st.lists(
    st.tuples(
        st.sampled_from(["subscribe", "unsubscribe", "unsubscribe-any"]),
        st.sampled_from(CHANNELS),
        st.integers(0, 2),  # which of three handlers
    ),
    max_size=30,
)


@settings(max_examples=60, deadline=None)
@given(ops=operations)
def test_reference_counts_match_a_model(ops: list[tuple[str, str, int]]) -> None:
    async def scenario() -> None:
        bus = MemoryBus()
        handlers = [lambda c, p: None, lambda c, p: None, lambda c, p: None]
        model: dict[str, Counter[int]] = {channel: Counter() for channel in CHANNELS}
        order: dict[str, list[int]] = {channel: [] for channel in CHANNELS}  # distinct handlers, added order
        async with MemoryBackplane(bus) as backplane:
            for op, channel, index in ops:
                if op == "subscribe":
                    await backplane.subscribe(channel, handlers[index])
                    if model[channel][index] == 0:
                        order[channel].append(index)
                    model[channel][index] += 1
                else:
                    chosen: int | None = index if op == "unsubscribe" else None
                    await backplane.unsubscribe(channel, None if chosen is None else handlers[chosen])
                    if chosen is None and order[channel]:
                        chosen = order[channel][-1]  # the most recently added handler
                    if chosen is not None and model[channel][chosen] > 0:
                        model[channel][chosen] -= 1
                        if model[channel][chosen] == 0:
                            order[channel].remove(chosen)
                for name in CHANNELS:
                    expected = sum(model[name].values())
                    assert backplane.subscription_count(name) == expected
                    assert bus.subscriber_count(name) == (1 if expected else 0)
                assert set(backplane.channels) == {c for c in CHANNELS if sum(model[c].values())}

    asyncio.run(scenario())
