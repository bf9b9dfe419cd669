"""The gateway's memory of event ids: first claim publishes, later claims share its outcome,
bounded without ever forgetting an id still in flight."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connectors.ingest.recent import RecentEvents


def test_the_first_claim_publishes_and_later_ones_share_its_outcome() -> None:
    async def scenario() -> None:
        recent: RecentEvents[str] = RecentEvents(10)
        event_id = uuid.uuid4()
        first, is_first = recent.claim(event_id, "digest")
        again, is_again_first = recent.claim(event_id, "digest")
        assert is_first and not is_again_first and again is first
        first.outcome.set_result("delivered")
        assert (await again.outcome) == "delivered"
        recent.forget(event_id)
        assert recent.claim(event_id, "digest")[1]  # forgotten: the retry publishes again

    asyncio.run(scenario())


@given(capacity=st.integers(1, 8), claims=st.integers(0, 40), in_flight=st.sets(st.integers(0, 39)))
def test_the_memory_is_bounded_but_keeps_ids_in_flight(
    capacity: int, claims: int, in_flight: set[int]
) -> None:
    async def scenario() -> None:
        recent: RecentEvents[str] = RecentEvents(capacity)
        ids = [uuid.uuid4() for _ in range(claims)]
        for n, event_id in enumerate(ids):
            entry, _ = recent.claim(event_id, "d")
            if n not in in_flight:
                entry.outcome.set_result("delivered")
        flying = [i for n, i in enumerate(ids) if n in in_flight]
        assert len(recent) <= max(capacity, len(flying) + 1)
        for event_id in flying:  # still remembered: a duplicate now would wait, not publish
            assert not recent.claim(event_id, "d")[1]
        settled = [i for n, i in enumerate(ids) if n not in in_flight]
        if settled:  # the most recently settled id is remembered when there is room
            assert len(flying) >= capacity or not recent.claim(settled[-1], "d")[1]

    asyncio.run(scenario())


def test_a_memory_needs_room() -> None:
    with pytest.raises(ValueError, match="capacity of 1 or more"):
        RecentEvents(0)
