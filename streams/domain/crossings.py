"""Closed loops across the alliance: how much recovered metal crossed the EU-Japan border each
way, computed from the events alone.

A recovery's output lots are recycled material. A shipment of such a lot from one side of the
alliance to the other (an EU member state to Japan, or back) is the moment a loop closes across
the border: what was recycled on one side goes into new batteries on the other. Shipments out
of the alliance are outflows (alerted by the processors) and count here in neither direction;
so do shipments within one side (DE to FI) and shipments of anything else (black mass is not yet
recovered material).

Pure and order-independent: a shipment read before the recovery that made its lot counts the
same, and masses are integer micrograms (shipped grams x composition ppm).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

from schemas.events import Event, RecoveryEvent, ShipmentEvent, ShipmentSubject
from schemas.values import EU_MEMBER_STATES
from streams.domain.quantities import grams, kg_from_micrograms, ppm

#: The two directions, as ``<from side>-><to side>``.
DIRECTIONS = ("EU->JP", "JP->EU")


def alliance_side(country: str) -> str | None:
    """``"EU"`` for a member state, ``"JP"`` for Japan, None outside the alliance."""
    if country == "JP":
        return "JP"
    return "EU" if country in EU_MEMBER_STATES else None


def recovered_across_alliance(events: Iterable[Event]) -> dict[str, dict[str, int]]:
    """Micrograms of each metal in recovered lots shipped across the border, per direction
    (both directions always present; metals in name order, only those that crossed)."""
    # Keyed by event id, like the processors' facts: a duplicate counts once, and of two
    # recoveries naming one output lot the lowest event id is the one (whatever the order).
    recovered: dict[str, tuple[str, dict[str, int]]] = {}  # lot id -> (event id, metal -> ppm)
    shipments: dict[str, ShipmentEvent] = {}
    for event in events:
        if isinstance(event, RecoveryEvent):
            eid = str(event.event_id)
            for output in event.outputs:
                held = recovered.get(output.lot_id)
                if held is None or eid < held[0]:
                    composition = {m.value: ppm(s) for m, s in output.composition.items() if s}
                    recovered[output.lot_id] = (eid, composition)
        elif isinstance(event, ShipmentEvent) and event.subject is ShipmentSubject.lot:
            shipments[str(event.event_id)] = event
    crossed: dict[str, dict[str, int]] = {d: {} for d in DIRECTIONS}
    for shipment in shipments.values():
        held = recovered.get(shipment.subject_id)
        here, there = alliance_side(shipment.from_country), alliance_side(shipment.to_country)
        if held is None or here is None or there is None or here == there:
            continue
        composition = held[1]
        into = crossed[f"{here}->{there}"]
        for metal, part in composition.items():
            into[metal] = into.get(metal, 0) + grams(shipment.mass_kg) * part
    return {d: dict(sorted(metals.items())) for d, metals in crossed.items()}


def crossings_view(crossed: Mapping[str, Mapping[str, int]]) -> dict[str, dict[str, str]]:
    """:func:`recovered_across_alliance` in kg of metal, as a summary prints it."""
    return {
        d: {m: kg_from_micrograms(ug) for m, ug in metals.items()} for d, metals in crossed.items()
    }


# --- the same loops read from a ledger's lot documents --------------------------------------
# What a region's processors publish is all a dashboard (or the demo) has: these read the
# crossings from the lot documents, so each region's figures come from its own ledger, and the
# two regions can be compared.


def _grams(kg: str) -> int:
    return grams(Decimal(kg))


def crossed_in_ledger(lots: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, int]]:
    """Micrograms of each metal in recovered lots that now lie on the other side of the border
    from where they were recovered (home region -> the side of their last known location), per
    direction, from one ledger's lot documents."""
    crossed: dict[str, dict[str, int]] = {d: {} for d in DIRECTIONS}
    for lot in lots.values():
        location = lot.get("location")
        if lot.get("kind") != "recovered" or not location:
            continue
        home, there = lot.get("home_region"), alliance_side(location.get("country") or "")
        if there is None or home == there:
            continue
        into = crossed[f"{home}->{there}"]
        mass = _grams(lot["mass_kg"])
        for metal, part in lot["composition"].items():
            into[metal] = into.get(metal, 0) + mass * ppm(Decimal(part))
    return {d: dict(sorted(metals.items())) for d, metals in crossed.items()}


def partner_recycling_in_ledger(
    lots: Mapping[str, Mapping[str, Any]],
) -> dict[str, dict[str, int]]:
    """Micrograms of each metal that a region's refiners took from lots recovered in the other
    region, per refining region (``"JP"``: refined in Japan from EU recycling), from one
    ledger's lot documents: the recycled content that rests on the partner's recycling."""
    rests: dict[str, dict[str, int]] = {side: {} for side in ("EU", "JP")}
    for lot in lots.values():
        region = lot.get("home_region")
        if lot.get("kind") != "refined" or region not in rests:
            continue
        for input_id, kg in lot.get("inputs", {}).items():
            source = lots.get(input_id)
            if source is None or source.get("kind") != "recovered":
                continue
            if source.get("home_region") in (None, region):
                continue
            into = rests[region]
            for metal, part in source["composition"].items():
                into[metal] = into.get(metal, 0) + _grams(kg) * ppm(Decimal(part))
    return {side: dict(sorted(metals.items())) for side, metals in rests.items()}
