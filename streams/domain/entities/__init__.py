"""State of every entity, changed only by messages to its key, and the documents it publishes.

One module per entity kind: :mod:`.lots`, :mod:`.batteries`, :mod:`.operators`,
:mod:`.tallies`, :mod:`.disclosure`; shared pieces in :mod:`.genealogy` (profiles),
:mod:`.alerts` (alerts and publishing) and :mod:`.effects`. :func:`handle` dispatches on
the key's kind.

Why the result does not depend on arrival order
-----------------------------------------------
Each entity keeps *facts* (what events said about it) in maps keyed by event id, never running
totals of events. A fact applied twice is the same map entry, so a redelivered event changes
nothing; facts arriving in any order end as the same maps. Everything published is computed from
those maps, iterating in sorted order with integer arithmetic (:mod:`..quantities`).

What one entity needs from another (a lot's composition and origins for the battery made from
it, a cell's materials for its pack, a battery's materials for its model's tally) travels as a
*profile* message carrying a revision: the number of facts the sender's profile rests on, its
own plus the revisions of the profiles it received. Revisions only grow, and a profile that
rests on every fact is strictly newer than any that misses one, so a receiver that keeps the
highest revision per sender ends with the final profile whatever order the messages took.

Deduplication memory is therefore the state itself: an entity remembers the ids of the events
that changed it because it needs those facts to recompute; there is no time window after which
a late duplicate could slip through. Its size is bounded by the entity's own history (a lot's
creation, debits and shipments; a battery's events), which is what a passport must keep anyway.
The exceptions are bounded on purpose: a battery keeps only its latest state-of-health
reading (a maximum, so order and replays do not matter), and an operator keeps at most
``PENDING_DETAIL`` events waiting for a certificate by id (the rest counted per hour), the
``ACCEPTED_DETAIL`` newest accepted ones (older ones counted per hour) and the
``FLAGGED_DETAIL`` newest alerted ones.

An operator keeps the events its certifications covered (accepted) as facts too, because a
certification fact can change their verdict after the fact: a revocation read after the events
it concerns judges them again, so the alert is the same as had it been read first
(:mod:`.operators`).

Entity keys and what they hold (:mod:`..states`)
------------------------------------------------
``lot/<id>``                        creation fact(s), debits, shipments, input-lot profiles
``battery/<id>``                    manufacture, use, shipment, shredding facts; input profiles
``operator/<id>``                   certification facts; events accepted, waiting, flagged
``recycled-content/<m>|<p>|<model>|<year>``  totals; each battery's contribution is stored
                                             beside it under ``recycled-content-part/...``
``recovery/<recycler>|<plant>|<year>``       totals; contributions under ``recovery-part/...``
``disclosure/<maker>|<maker's country>``     counts of passports meeting the disclosure rules;
                                             each battery's status under ``disclosure-part/...``
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from streams.domain.codec import copy_state
from streams.domain.entities.alerts import (
    ALERTS,
    LOTS,
    OPERATORS,
    PASSPORTS,
    RECOVERY,
    RECYCLED_CONTENT,
)
from streams.domain.entities.batteries import (
    RECYCLED_CONTENT_MINIMUMS,
    handle_battery,
    publish_passport,
)
from streams.domain.entities.disclosure import handle_disclosure, publish_disclosure
from streams.domain.entities.effects import Config, Document, Effects
from streams.domain.entities.genealogy import MAX_GENEALOGY_DEPTH
from streams.domain.entities.lots import handle_lot, publish_lot
from streams.domain.entities.operators import (
    ACCEPTED_DETAIL,
    FLAGGED_DETAIL,
    PENDING_DETAIL,
    CertificationTimeline,
    certified_at,
    handle_operator,
    operator_certified,
    publish_operator,
    with_certification,
)
from streams.domain.entities.tallies import (
    RECOVERY_TARGETS,
    handle_recovery,
    handle_recycled_content,
    part_key,
    publish_recovery,
    publish_recycled_content,
    tally_of_part,
)
from streams.domain.messages import Message
from streams.domain.states import (
    STATE_TYPES,
    BatteryState,
    LotState,
    OperatorState,
    State,
)

__all__ = [
    "ACCEPTED_DETAIL",
    "ALERTS",
    "FLAGGED_DETAIL",
    "LOTS",
    "MAX_GENEALOGY_DEPTH",
    "OPERATORS",
    "PASSPORTS",
    "PENDING_DETAIL",
    "RECOVERY",
    "RECOVERY_TARGETS",
    "RECYCLED_CONTENT",
    "RECYCLED_CONTENT_MINIMUMS",
    "CertificationTimeline",
    "Config",
    "Effects",
    "State",
    "certified_at",
    "document",
    "due",
    "handle",
    "operator_certified",
    "part_key",
    "publish",
    "tally_of_part",
    "with_certification",
]

#: Entity kind -> how messages change its state. Parts (``*-part/...``) receive no messages:
#: their tally writes them.
#: A handler sends messages and publishes alerts; documents wait for :func:`publish`.
Handler = Callable[[str, Any, list[Message], int, Config, Effects], State]
HANDLERS: dict[str, Handler] = {
    "lot": handle_lot,
    "battery": handle_battery,
    "operator": handle_operator,
    "recycled-content": handle_recycled_content,
    "recovery": handle_recovery,
    "disclosure": handle_disclosure,
}


#: Entity kind -> how its document is published (once per batch, after every message).
Publisher = Callable[[str, Any, Config, Effects], None]
PUBLISHERS: dict[str, Publisher] = {
    "lot": publish_lot,
    "battery": publish_passport,
    "operator": publish_operator,
    "recycled-content": publish_recycled_content,
    "recovery": publish_recovery,
    "disclosure": publish_disclosure,
}


def handle(
    key: str, state: State | None, messages: list[Message], now: int, cfg: Config, fx: Effects
) -> State:
    """Apply ``messages`` (all addressed to ``key``) to its state; return the new state."""
    kind = key.split("/", 1)[0]
    handler = HANDLERS.get(kind)
    if handler is None:
        raise ValueError(f"no entity kind {kind!r} (key {key!r})")
    if state is None:
        state = STATE_TYPES[kind]()  # type: ignore[call-arg]
    elif not isinstance(state, STATE_TYPES[kind]):
        raise TypeError(f"state of {key!r} is a {type(state).__name__}")
    return handler(key, state, messages, now, cfg, fx)


def publish(key: str, state: State, cfg: Config, fx: Effects) -> None:
    """Publish ``key``'s document if it changed since last published. Called once per batch
    for every entity the batch touched, after :func:`handle` (whatever it derived is current);
    parts (``*-part/...``) publish nothing."""
    publisher = PUBLISHERS.get(key.split("/", 1)[0])
    if publisher is not None:
        publisher(key, state, cfg, fx)


def due(key: str, state: State, cfg: Config) -> int | None:
    """When (wall ms) ``key`` next needs a tick to raise a waiting alert; None if never."""
    if (
        isinstance(state, LotState | BatteryState)
        and state.waiting_since is not None
        and f"unresolved/{key}" not in state.alerts
    ):
        return state.waiting_since + cfg.grace_ms
    if isinstance(state, OperatorState):
        waiting = [p.seen_at for p in state.pending.values()]
        waiting += [h.seen_at for h in state.pending_by_hour.values()]
        if waiting:
            return min(waiting) + cfg.grace_ms
    return None


def document(key: str, state: State, now: int, cfg: Config) -> Document | None:
    """The document ``key`` publishes for ``state`` (for read views), without changing it."""
    scratch = copy_state(state)
    scratch.published = None
    fx = Effects()
    scratch = handle(key, scratch, [], now, cfg, fx)
    publish(key, scratch, cfg, fx)
    return next((doc for output, _, doc in fx.published if output != ALERTS), None)
