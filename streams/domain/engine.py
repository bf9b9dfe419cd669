"""Applying a batch of messages to entity states, independent of where states are kept.

The Kafka worker (:mod:`streams.worker.app`) and the in-memory ledger (:mod:`.local`) both call
:func:`process_batch`: messages are grouped per entity key, each entity is loaded once, handed
all its messages, and stored once. Batching is what keeps the per-event cost low: an entity
touched by a thousand messages in a batch is decoded, recomputed and written once, and its
document is built and compared once per call, after every round (below).

Rounds. The messages entities send each other (profiles along the genealogy, tally
contributions) go out in ``fx.messages``, one hop per call. Given ``local`` (the keys whose
partition this process holds), those addressed to local keys are applied in the same call, round
after round until none are left, and only the others are returned. A round is what one more
call would do with the previous round's messages, so with every key local a call ends with the
states of delivering its follow-ups hop by hop, each hop one call, and its documents (built once,
at the end) are the last ones that delivery publishes. Other groupings publish the same documents
too (arrival order does not matter, see :mod:`.entities`), though what an entity remembers of how
its messages came (the revision of the last notice it sent) may differ. A genealogy cycle
stops sending profiles once deeper than ``MAX_GENEALOGY_DEPTH``, so rounds end;
:data:`MAX_ROUNDS` bounds them in case they would not.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

from streams.domain.entities import MAX_GENEALOGY_DEPTH, Config, Effects, handle, publish
from streams.domain.entities.alerts import canonical_json
from streams.domain.messages import Addressed, Message
from streams.domain.states import State

#: Rounds of local messages one call applies at most: a genealogy cycle settles after about
#: ``MAX_GENEALOGY_DEPTH`` of them (a profile one step deeper each round); twice that and a
#: margin for the hops after the profiles (tallies, absence notices) is more than any needs.
MAX_ROUNDS = 2 * MAX_GENEALOGY_DEPTH + 16


class UnsettledError(RuntimeError):
    """Local messages still flowing after :data:`MAX_ROUNDS` rounds of one call."""


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
    *,
    local: Callable[[str], bool] | None = None,
) -> tuple[dict[str, State], Effects]:
    """Apply ``messages``; return the new state of every touched key and what it caused.

    With ``local``, messages the entities send to keys for which ``local(key)`` holds are
    applied within this call (see the module's docstring); ``fx.messages`` then holds only those
    to other keys, in the order they were sent.
    """
    fx = Effects(loader=load)
    states: dict[str, State] = {}
    pending: Iterable[Addressed] = messages
    outbound: list[Addressed] = []
    for _ in range(MAX_ROUNDS):
        for key, batch in group_by_key(pending).items():
            state = states[key] if key in states else load(key)
            states[key] = handle(key, state, batch, now, cfg, fx)
        if local is None:
            break
        pending = []
        for addressed in fx.messages:
            (pending if local(addressed[0]) else outbound).append(addressed)
        fx.messages = []
        if not pending:
            break
    else:
        keys = sorted({key for key, _ in pending})
        raise UnsettledError(
            f"local messages still flowing after {MAX_ROUNDS} rounds, to {len(keys)} keys "
            f"(first: {', '.join(keys[:5])}): an entity keeps changing what it sends"
        )
    if local is not None:
        fx.messages = outbound
    for key, state in states.items():
        publish(key, state, cfg, fx)
    states.update(fx.stored)  # entries stored beside an entity, in its partition
    return states, fx


def dumps(document: Any) -> bytes:
    """Published documents on the wire: compact JSON with sorted keys (ints stay exact)."""
    return canonical_json(document)


def loads(data: bytes) -> Any:
    return json.loads(data)
