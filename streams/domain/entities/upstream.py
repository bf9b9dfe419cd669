"""What is missing upstream: the lots and batteries a genealogy names but this ledger holds no
creation of, and where their creation is expected from.

A profile lists the nearest :data:`MAX_MISSING_UPSTREAM` of them, sorted by hops, kind, id,
referencing entity and region, and counts the rest, so that profile messages stay small however
wide the gap. An entity reached by several paths is listed once, by its nearest path (ties
broken by the same order); one beyond the bound is counted once per path it is counted on.

Where a missing creation is expected from (``expected_from``):

1. If this ledger holds a shipment of the missing lot or battery from a country of the
   alliance, the side of that country (an EU member state: ``"EU"``, Japan: ``"JP"``); of
   several such shipments, the earliest by (time, event id). Whoever shipped it from there is
   where it existed before, so its creation is that side's event. The missing entity's own
   state holds its shipments; it tells the entities made from it in an :class:`Absence`.
2. Otherwise the region of the event that named it (the creation of ``referenced_by``): a
   supplier is most often on the referencing operator's side, and for a replica it is the
   partner whose mirrored event names an input the mirror withheld.

Both rules are functions of facts held, so the lists are the same in every arrival order.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from schemas.values import EU_MEMBER_STATES
from streams.domain.entities.effects import Effects
from streams.domain.messages import Absence, MissingUpstream, Shipped
from streams.domain.states import HeldProfile

#: At most this many missing entities are listed in a profile or document; the rest are counted.
MAX_MISSING_UPSTREAM = 20


def alliance_side(country: str) -> str | None:
    """The region whose ledger an operator in ``country`` publishes to, None outside both."""
    if country in EU_MEMBER_STATES:
        return "EU"
    if country == "JP":
        return "JP"
    return None


def shipped_from_side(shipments: Iterable[Shipped]) -> str | None:
    """The alliance side of the earliest shipment from inside the alliance (rule 1)."""
    inside = [s for s in shipments if alliance_side(s.from_country) is not None]
    if not inside:
        return None
    first = min(inside, key=lambda s: (s.occurred_at, s.event_id))
    return alliance_side(first.from_country)


def hold_absence(absent: dict[str, Absence], notice: Absence) -> None:
    """Keep the newest notice per sender (the one resting on more shipments)."""
    held = absent.get(notice.source)
    if held is None or held.revision < notice.revision:
        absent[notice.source] = notice


def absence_revision(absent: dict[str, Absence]) -> int:
    """What the notices held add to a profile's revision: every notice counts, also once its
    sender is created, so that a revision never goes down."""
    return sum(notice.revision for notice in absent.values())


def send_absence(
    key: str,
    shipments: dict[str, Shipped],
    last_sent: int | None,
    consumers: list[str],
    new_consumers: set[str],
    fx: Effects,
) -> int | None:
    """An uncreated entity tells those made from it where it is expected from (rule 1): a
    changed notice to all of them, an unchanged one to new ones. Returns the revision sent."""
    side = shipped_from_side(shipments.values())
    if side is None:
        return last_sent  # rule 2 applies; the consumers know their own region
    current = len(shipments)
    targets = consumers if last_sent != current else sorted(new_consumers)
    for consumer in targets:
        fx.send(consumer, Absence(source=key, revision=current, expected_from=side))
    return current


def _order(entry: MissingUpstream) -> tuple[int, str, str, str, str]:
    return (entry.hops, entry.kind, entry.id, entry.referenced_by, entry.expected_from or "")


def missing_upstream(
    sources: Iterable[str],
    inputs: dict[str, HeldProfile],
    absent: dict[str, Absence],
    referenced_by: str,
    region: str,
) -> tuple[list[MissingUpstream], int]:
    """The nearest missing entities upstream of an entity made from ``sources`` (input keys),
    created by an event of ``region``, and how many more there are."""
    nearest: dict[tuple[str, str], MissingUpstream] = {}
    more = 0
    for source in sources:
        held = inputs.get(source)
        if held is None:
            kind, _, entity_id = source.partition("/")
            notice = absent.get(source)
            side = notice.expected_from if notice is not None else None
            found = [MissingUpstream(kind, entity_id, 1, referenced_by, side or region)]
        else:
            more += held.profile.missing_upstream_more
            found = [
                MissingUpstream(e.kind, e.id, e.hops + 1, e.referenced_by, e.expected_from)
                for e in held.profile.missing_upstream
            ]
        for entry in found:
            known = nearest.get((entry.kind, entry.id))
            if known is None or _order(entry) < _order(known):
                nearest[entry.kind, entry.id] = entry
    ordered = sorted(nearest.values(), key=_order)
    return ordered[:MAX_MISSING_UPSTREAM], more + max(0, len(ordered) - MAX_MISSING_UPSTREAM)


def missing_view(entries: list[MissingUpstream]) -> list[dict[str, object]]:
    """The entries as a document shows them."""
    return [
        {
            "kind": e.kind,
            "id": e.id,
            "hops": e.hops,
            "referenced_by": e.referenced_by,
            "expected_from": e.expected_from,
        }
        for e in entries
    ]


#: How many missing entities :func:`describe_missing` names one by one before counting the rest.
DESCRIBED = 5


def describe_missing(document: dict[str, Any]) -> list[str]:
    """Lines for a person reading an incomplete lot or passport document: what is missing,
    how far up, via which entity, and where it is expected from; none for a complete one."""
    if document.get("complete", True):
        return []
    entries = document.get("missing_upstream") or []
    lines = []
    for e in entries[:DESCRIBED]:
        steps = "1 hop" if e["hops"] == 1 else f"{e['hops']} hops"
        side = e["expected_from"] or "an unknown region"
        lines.append(
            f"incomplete: {e['kind']} {e['id']} ({steps} upstream, via {e['referenced_by']}) "
            f"never arrived here; expected from {side}"
        )
    more = len(entries) - len(lines) + int(document.get("missing_upstream_more") or 0)
    if more:
        lines.append(f"incomplete: {more} more missing upstream")
    if not lines:
        # A document written before missing_upstream existed, or a genealogy cut as a cycle.
        lines.append("incomplete: not every input's genealogy is known here")
    return lines
