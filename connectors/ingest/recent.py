"""The gateway's memory of recent event ids, which makes a repeated POST idempotent.

Each event id maps to the outcome of its first publication (a future while it is in flight,
so that concurrent duplicates wait for it) and to a digest of its content (the same id with
other content is a conflict, not a duplicate). The memory is bounded: beyond ``capacity`` the
least recently seen settled ids are forgotten; ids still in flight are never evicted, or a
duplicate arriving meanwhile would be published twice. A failed publication is forgotten at
once so that the client's retry publishes again.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from dataclasses import dataclass
from typing import Generic, TypeVar
from uuid import UUID

Outcome = TypeVar("Outcome")


@dataclass(frozen=True)
class Entry(Generic[Outcome]):
    digest: str
    outcome: asyncio.Future[Outcome]


class RecentEvents(Generic[Outcome]):
    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"the event id memory needs a capacity of 1 or more, not {capacity}")
        self.capacity = capacity
        self._entries: OrderedDict[UUID, Entry[Outcome]] = OrderedDict()

    def claim(self, event_id: UUID, digest: str) -> tuple[Entry[Outcome], bool]:
        """The entry for ``event_id`` and whether the caller is first (and must publish)."""
        entry = self._entries.get(event_id)
        if entry is not None:
            self._entries.move_to_end(event_id)
            return entry, False
        entry = Entry(digest, asyncio.get_running_loop().create_future())
        self._entries[event_id] = entry
        self._evict()
        return entry, True

    def forget(self, event_id: UUID) -> None:
        self._entries.pop(event_id, None)

    def __len__(self) -> int:
        return len(self._entries)

    def _evict(self) -> None:
        excess = len(self._entries) - self.capacity
        if excess <= 0:
            return
        settled: list[UUID] = []
        for event_id, entry in self._entries.items():  # oldest first; stops once enough
            if entry.outcome.done():
                settled.append(event_id)
                if len(settled) == excess:
                    break
        for event_id in settled:
            del self._entries[event_id]
