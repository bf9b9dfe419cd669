"""What handling a batch of messages needs (configuration) and causes (effects)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from streams.domain.messages import Addressed, Message
from streams.domain.states import State

#: A published document: JSON-ready values, keyed by field name.
Document = dict[str, Any]


@dataclass
class Config:
    #: How long a reference to an unknown lot or battery, or an event from an operator without
    #: a valid certification, may wait for the missing event before it is alerted.
    grace_ms: int = 3_600_000
    #: The ledger's own region (``"EU"``, ``"JP"``): documents of lots and batteries created in
    #: the other region say ``replica``. None for a ledger of every region (a reference).
    region: str | None = None
    #: Base of the passports' resolvable URLs (:mod:`streams.domain.links`): where the
    #: worker's views, or a resolver in front of them, answer.
    passport_base_url: str = "http://127.0.0.1:6066"


@dataclass
class Effects:
    """What handling a batch of messages caused: messages to other entities, documents."""

    messages: list[Addressed] = field(default_factory=list)
    #: (output, key, document). A passport shares its nested values with the parts its battery
    #: keeps in memory (:class:`.batteries.PassportParts`): read documents, never change them.
    published: list[tuple[str, str, Document]] = field(default_factory=list)
    #: Entries a handler stores beside its entity's state (same partition): key -> value.
    stored: dict[str, State] = field(default_factory=dict)
    #: How to read such entries (set by the engine); None reads nothing.
    loader: Callable[[str], State | None] | None = None
    #: Alerts that became open (new, or open again after being resolved), by kind.
    raised: dict[str, int] = field(default_factory=dict)

    def get(self, key: str) -> State | None:
        if key in self.stored:
            return self.stored[key]
        return self.loader(key) if self.loader else None

    def put(self, key: str, value: State) -> None:
        self.stored[key] = value

    def send(self, key: str, message: Message) -> None:
        self.messages.append((key, message))

    def publish(self, output: str, key: str, document: Document) -> None:
        self.published.append((output, key, document))
