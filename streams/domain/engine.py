"""Applying a batch of messages to entity states, independent of where states are kept.

The Kafka worker (:mod:`streams.worker.app`) and the in-memory ledger (:mod:`.local`) both call
:func:`process_batch`: messages are grouped per entity key, each entity is loaded once, handed
all its messages, and stored once. Batching is what keeps the per-event cost low: an entity
touched by a thousand messages in a batch is decoded, recomputed and written once.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

from streams.domain.entities import Config, Effects, handle
from streams.domain.messages import Addressed, Message
from streams.domain.states import State


def group_by_key(messages: Iterable[Addressed]) -> dict[str, list[Message]]:
    grouped: dict[str, list[Message]] = {}
    for key, message in messages:
        grouped.setdefault(key, []).append(message)
    return grouped


def process_batch(
    messages: Iterable[Addressed],
    load: Callable[[str], State | None],
    now: int,
    cfg: Config,
) -> tuple[dict[str, State], Effects]:
    """Apply ``messages``; return the new state of every touched key and what it caused."""
    fx = Effects(loader=load)
    states = {}
    for key, batch in group_by_key(messages).items():
        states[key] = handle(key, load(key), batch, now, cfg, fx)
    states.update(fx.stored)  # entries stored beside an entity, in its partition
    return states, fx


def dumps(document: Any) -> bytes:
    """Published documents on the wire: compact JSON with sorted keys (ints stay exact)."""
    return json.dumps(document, separators=(",", ":"), sort_keys=True).encode()


def loads(data: bytes) -> Any:
    return json.loads(data)
