"""An in-memory ledger: the processors' exact logic, with states in a dict and a message queue.

Used to work a scenario out without a broker (tests, what-if runs): events in, passports, lots
and tallies out. Which queued message is delivered next can be chosen at random, which is how
the tests show that arrival order does not change the result.

By default every message an entity sends waits in the queue for a later delivery (one hop per
batch, as across partitions). Given ``local``, messages to keys it holds true for are applied
within the same delivery, as a process applies those to its own partitions
(:func:`~streams.domain.engine.process_batch`); ``local=lambda key: True`` is a ledger whose
every key is local.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from typing import Any

from schemas.events import Event
from streams.domain.engine import process_batch
from streams.domain.entities import Config, State, due
from streams.domain.messages import Addressed, Tick
from streams.domain.routing import route_batch


class LocalLedger:
    def __init__(
        self, config: Config | None = None, local: Callable[[str], bool] | None = None
    ) -> None:
        self.config = config or Config()
        self.local = local
        self.states: dict[str, State] = {}
        self.queue: list[Addressed] = []
        #: latest document per (output, key), as a compacted topic would hold it
        self.documents: dict[tuple[str, str], dict[str, Any]] = {}
        self.now = 0  # wall clock in ms; advanced by the caller

    def submit(self, events: Iterable[Event]) -> None:
        self.queue.extend(route_batch(events))

    def deliver(self, count: int = 1, rng: random.Random | None = None) -> None:
        """Deliver ``count`` queued messages as one batch, in queue order or picked at random."""
        batch: list[Addressed] = []
        for _ in range(min(count, len(self.queue))):
            index = rng.randrange(len(self.queue)) if rng else 0
            batch.append(self.queue.pop(index))
        states, fx = process_batch(batch, self.states.get, self.now, self.config, local=self.local)
        self.states.update(states)
        self.queue.extend(fx.messages)
        for output, key, document in fx.published:
            self.documents[output, key] = document

    def run(self, rng: random.Random | None = None, batch: int = 1, limit: int = 1_000_000) -> int:
        """Deliver until the queue is empty; return how many batches it took."""
        rounds = 0
        while self.queue:
            self.deliver(batch, rng)
            rounds += 1
            if rounds > limit:
                raise RuntimeError(f"messages still flowing after {limit} batches")
        return rounds

    def advance(self, ms: int) -> None:
        """Move the clock on and tick every entity whose waiting alert is due."""
        self.now += ms
        for key, state in sorted(self.states.items()):
            when = due(key, state, self.config)
            if when is not None and when <= self.now:
                self.queue.append((key, Tick()))
        self.run()

    def output(self, name: str) -> dict[str, dict[str, Any]]:
        return {key: doc for (out, key), doc in sorted(self.documents.items()) if out == name}
