"""Export legality: whether a shipment of waste out of the EU was allowed, and the alert when
it was not.

The rule (:data:`EU_NON_OECD_EXPORT_BAN`): Regulation (EU) 2024/1157 on shipments of waste
prohibits exporting hazardous waste from the Union to countries to which OECD Council Decision
C(2001)107/FINAL does not apply, that is to countries outside the OECD (the Basel Ban
Amendment in Union law, Art. 36 of the former Regulation (EC) No 1013/2006; cited as Art. 39
of the 2024 Regulation, a number the sources consulted here did not show verbatim: check it
against the Official Journal text before quoting it). Hazardous waste here is:

* a black mass lot classed hazardous by its shredding event (an asterisked List of Waste
  entry), or not classed at all: the List of Waste amendment the Commission adopted on
  5 March 2025 classes black mass as hazardous, so an unclassified black mass is presumed
  hazardous, and the alert says it was presumed;
* a battery whose status was ``waste`` when it was shipped (lithium-based waste batteries are
  hazardous under the same amendment; lead batteries are 16 06 01*).

A black mass lot classed non-hazardous is not covered; nor is recovered material (a product,
not waste). That China imports black mass meeting GB/T 45203-2024 as a product does not change
the exporting side's law: the Union's classification decides the export, and the alert keeps
the declared GB/T mark for whoever reviews it.

Each alert names the rule, its legal source, and the versions of the country lists it read
(``schemas/rules``), so that a decision can be checked against the data it rested on.
Exports from Japan are not judged here (Japan's Basel Act has its own lists).
"""

from __future__ import annotations

from schemas.rules.countries import alliance, oecd
from streams.domain.entities.alerts import alert
from streams.domain.entities.effects import Document
from streams.domain.messages import BlackMassClass, Shipped
from streams.domain.quantities import kg_from_grams

ILLEGAL_EXPORT = "illegal_export"
#: The rule's identifier, as alerts name it.
EU_NON_OECD_EXPORT_BAN = "eu-hazardous-waste-export-to-non-oecd"
LEGAL_SOURCE = (
    "Regulation (EU) 2024/1157 on shipments of waste, Art. 39: exports of hazardous waste "
    "from the Union to countries to which the OECD Decision C(2001)107/FINAL does not apply "
    "are prohibited"
)


def export_banned(shipment: Shipped) -> bool:
    """An export from the Union (from a member state to a country outside it) to a country
    outside the OECD. A shipment between member states is no export, although five of them
    (BG, CY, HR, MT, RO) are not OECD members."""
    eu = alliance().sides["EU"]
    return (
        shipment.from_country in eu
        and shipment.to_country not in eu
        and shipment.to_country not in oecd()
    )


def _alert(key: str, shipment: Shipped, what: str, basis: str, **more: object) -> Document:
    return alert(
        ILLEGAL_EXPORT,
        key,
        f"{what} is hazardous waste ({basis}) shipped from {shipment.from_country} to "
        f"{shipment.to_country}, outside the OECD: prohibited by Regulation (EU) 2024/1157",
        event_ids=[shipment.event_id],
        rule=EU_NON_OECD_EXPORT_BAN,
        legal_source=LEGAL_SOURCE,
        data=[oecd().cite(), alliance().cite()],
        basis=basis,
        from_country=shipment.from_country,
        to_country=shipment.to_country,
        mass_kg=kg_from_grams(shipment.grams),
        hs_code=shipment.hs_code,
        **more,
    )


def black_mass_export_alerts(
    key: str, lot_id: str, classification: BlackMassClass | None, shipments: dict[str, Shipped]
) -> dict[str, Document]:
    """Alerts for shipments of a black mass lot that the rule prohibits."""
    if classification is not None and not classification.hazardous:
        return {}
    if classification is None:
        basis = "unclassified black mass, presumed hazardous (List of Waste amendment, 2025)"
        more: dict[str, object] = {"classification": None}
    else:
        c = classification
        basis = f"classed {c.waste_code} (List of Waste), Basel {c.basel_entry}"
        more = {"classification": classification_view(classification)}
    return {
        f"{ILLEGAL_EXPORT}/{eid}": _alert(key, s, f"black mass lot {lot_id}", basis, **more)
        for eid, s in sorted(shipments.items())
        if export_banned(s)
    }


def waste_battery_export_alerts(
    key: str, battery_id: str, shipped_as_waste: dict[str, Shipped]
) -> dict[str, Document]:
    """Alerts for shipments of a battery, made while it was waste, that the rule prohibits."""
    basis = "a waste battery"
    return {
        f"{ILLEGAL_EXPORT}/{eid}": _alert(key, s, f"battery {battery_id}", basis)
        for eid, s in sorted(shipped_as_waste.items())
        if export_banned(s)
    }


def classification_view(c: BlackMassClass) -> dict[str, object]:
    """A classification as documents and alerts show it."""
    return {
        "waste_code": c.waste_code,
        "hazardous": c.hazardous,
        "basel_entry": c.basel_entry,
        "hs_code": c.hs_code,
        "chemistry_family": c.chemistry_family,
        "meets_gb_t_45203": c.meets_gb_t_45203,
    }
