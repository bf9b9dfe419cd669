"""Home, replica and provenance: where a document's facts came from, and which copy of a fact
an entity keeps.

**One copy per event id.** An event can reach a ledger more than once and by more than one
path: redelivered, mirrored from the partner region, or published by a producer in both
regions (then it arrives on the ledger's own topic *and* on the mirrored one). Every copy
makes the same facts except for how it arrived: a mirrored copy names the agreement it was
shared under and the fields the partner's policy redacted. Which copy an entity keeps must not
depend on arrival order, so it is a total order (:func:`preferred`): the copy with the fewest
redacted fields, then one published on this ledger's own cluster over a mirrored one, then
the smaller encoding. The shipped policies redact only confidential fields that no fact holds,
so the copies' profiles are equal whichever is kept, and revisions (see
:mod:`streams.domain.entities`) need not change when a better copy replaces another.

**Home and replica.** A lot's or battery's home region is the ``region`` of the event that
created it; a ledger of another region holds it as a ``replica``. Which creating event counts
when two contradict each other is the same lowest-event-id choice in every ledger
(:func:`.genealogy.chosen`), and the contradiction is alerted as ``conflicting_events``.

**Provenance in documents.** ``regions``: the regions whose events the document rests on, its
own facts' and, through the genealogy profiles, everything upstream. ``shared_under``: the
agreements (and directions) under which the partner's events among the document's own facts
arrived. ``redacted``: the document's fields whose source the partner's policy redacted;
such a field is not missing data, and says so.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

import msgspec

from streams.domain.entities.effects import Config
from streams.domain.messages import Fact

_F = TypeVar("_F", bound=Fact)
_ENCODER = msgspec.msgpack.Encoder(order="deterministic")

#: Which document fields show which event fields: document kind -> event type -> event field
#: path -> document fields. A redacted event field marks the document fields it feeds.
Shows = Mapping[str, Mapping[str, tuple[str, ...]]]
_ENVELOPE_LOT = {
    "operator_id": ("created_by",),
    "site_id": ("created_by",),
    "occurred_at": ("created_by",),
}
_OUTPUTS = {
    "outputs[].form": ("form",),
    "outputs[].material": ("material",),
    "outputs[].mass_kg": ("mass_kg", "remaining_kg"),
    "outputs[].composition": ("composition", "materials"),
}
_DEBITS = {"inputs[].mass_kg": ("consumed_kg", "remaining_kg")}
_LOCATION = {"to_site_id": ("location",), "to_country": ("location",)}
LOT_SHOWS: Shows = {
    "extraction": {
        **_ENVELOPE_LOT,
        "site_id": ("created_by", "origin"),
        "form": ("form",),
        "material": ("material",),
        "mass_kg": ("mass_kg", "remaining_kg"),
        "composition": ("composition", "materials"),
        "country": ("origin",),
    },
    "refining": {
        **_ENVELOPE_LOT,
        **_OUTPUTS,
        "inputs[].lot_id": ("inputs",),
        "inputs[].mass_kg": ("inputs", "consumed_kg", "remaining_kg"),
    },
    "recovery": {
        **_ENVELOPE_LOT,
        **_OUTPUTS,
        "black_mass_lot_id": ("inputs",),
        "input_mass_kg": ("inputs", "consumed_kg", "remaining_kg"),
    },
    "shredding": {
        **_ENVELOPE_LOT,
        "mass_kg": ("mass_kg", "remaining_kg"),
        "composition": ("composition", "materials"),
        "inputs[].waste_origin": ("materials",),
    },
    "manufacture": _DEBITS,
    "shipment": _LOCATION,
}
PASSPORT_SHOWS: Shows = {
    "manufacture": {
        "passport_id": ("passport_id", "passport_history"),
        "level": ("level",),
        "category": ("category",),
        "model": ("model",),
        "chemistry": ("chemistry",),
        "mass_kg": ("mass_kg",),
        "capacity_kwh": ("capacity_kwh",),
        "carbon_footprint": ("carbon_footprint",),
        "components": ("components",),
        "operator_id": ("manufacturer_id",),
        "site_id": ("plant_id",),
        "occurred_at": ("manufactured_at",),
        "gtin": ("gtin", "url"),
    },
    "use_collection": {
        "status": ("status",),
        "state_of_health": ("state_of_health",),
        "new_passport_id": ("passport_id", "passport_history"),
        "predecessor_passport_id": ("predecessor_passport_id",),
    },
    "shredding": {"black_mass_lot_id": ("shredded_into",)},
    "shipment": {"to_site_id": ("holder",), "to_country": ("holder",)},
}


def rank(fact: Fact) -> tuple[int, bool, bytes]:
    """Lower is preferred: fewest redacted fields, own cluster's copy, smaller encoding."""
    return len(fact.redacted), fact.shared is not None, _ENCODER.encode(fact)


def preferred(held: _F, other: _F) -> _F:
    """The copy of one event's fact to keep, the same whichever arrived first."""
    if held == other:
        return held
    return other if rank(other) < rank(held) else held


def keep(facts: dict[str, _F], fact: _F) -> bool:
    """Keep ``fact`` under its event id (or the preferred copy); True when the id is new."""
    held = facts.get(fact.event_id)
    if held is None:
        facts[fact.event_id] = fact
        return True
    facts[fact.event_id] = preferred(held, fact)
    return False


def regions(facts: Iterable[Fact], upstream: Iterable[str] = ()) -> list[str]:
    return sorted({f.region for f in facts} | set(upstream))


def _covers(path: str, shown: str) -> bool:
    """Whether a redaction of ``path`` reaches the event field ``shown`` (either inside the
    other: redacting ``outputs`` redacts ``outputs[].mass_kg`` and the reverse marks it)."""
    if path == shown:
        return True
    longer, shorter = (path, shown) if len(path) > len(shown) else (shown, path)
    return longer.startswith(shorter) and longer[len(shorter)] in ".["


def redacted_fields(facts: Iterable[Fact], shows: Shows) -> list[str]:
    """Document fields fed by an event field that the partner's policy redacted."""
    out: set[str] = set()
    for fact in facts:
        table = shows.get(fact.event_type, {})
        for path in fact.redacted:
            for shown, fields in table.items():
                if _covers(path, shown):
                    out.update(fields)
    return sorted(out)


def view(
    home_region: str,
    cfg: Config,
    facts: list[Fact],
    upstream: Iterable[str],
    shows: Shows,
) -> dict[str, Any]:
    """The provenance fields of a lot or battery document."""
    agreements = sorted(
        {(f.shared.agreement, f.shared.direction) for f in facts if f.shared is not None}
    )
    return {
        "home_region": home_region,
        "replica": cfg.region is not None and home_region != cfg.region,
        "regions": regions(facts, upstream),
        "shared_under": [{"agreement": a, "direction": d} for a, d in agreements],
        "redacted": redacted_fields(facts, shows),
    }
