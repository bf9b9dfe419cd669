"""Passports in the partner platforms' shapes, for ``batteryloop passport --format``.

* ``catenax``: shaped after the Catena-X Battery Pass aspect
  ``urn:samm:io.catenax.battery.battery_pass:6.1.0`` (eclipse-tractusx/sldt-semantic-models,
  ``gen/BatteryPass.json``): ``metadata``, ``identification``, ``operation``,
  ``characteristics``, ``sustainability``, ``materials``, as far as the passport has data. A
  property without data is left out, never filled with a placeholder, so the result is a
  partial aspect: the aspect's other mandatory parts (conformity, safety, performance, ...) are
  not data batteryloop tracks.
* ``ouranos-cfp``: the carbon footprint as the Ouranos data-transaction-system's CFP entries
  (``ghgEmission``, ``ghgDeclaredUnit``, ``cfpType``; docs/openapi.yaml), one per lifecycle stage
  the manufacturer declared. ``dqrType``/``dqrValue`` (data quality ratings) and the Ouranos
  ``traceId`` are not data batteryloop has, so they are left out.

Pure functions over the passport document the processors publish.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

CATENAX_ASPECT = "urn:samm:io.catenax.battery.battery_pass:6.1.0"
CATENAX_SPEC_VERSION = "urn:io.catenax.battery.battery_pass:6.1.0"  # as the aspect's example
#: batteryloop's battery categories -> the aspect's CategoryEnumeration
CATENAX_CATEGORY = {
    "ev": "EV",
    "lmt": "LMT",
    "industrial": "industrial",
    "sli": "SLI",
    "portable": "portable",
}
#: battery status (EU 2023/1542 Annex XIII) -> the aspect's sustainability status wording
CATENAX_STATUS = {
    "original": "original",
    "repurposed": "repurposed",
    "reused": "re-used",
    "remanufactured": "remanufactured",
    "waste": "waste",
}
#: passport carbon-footprint fields -> Catena-X lifecycle stage, Ouranos cfpType
STAGES = (
    (
        "raw_material_kg_co2e_per_kwh",
        "raw material acquisition and pre-processing",
        "preProduction",
    ),
    ("production_kg_co2e_per_kwh", "main product production", "mainProduction"),
)
CATENAX_ACTIVE = ("cobalt", "lithium", "nickel", "lead")


def _number(value: str | int | float | Decimal) -> float:
    return float(Decimal(str(value)))


def _date(iso: str) -> str:
    return iso[:10]


def catenax_battery_pass(passport: dict[str, Any]) -> dict[str, Any]:
    """The passport as a (partial) Catena-X BatteryPass 6.1.0 aspect."""
    metadata: dict[str, Any] = {
        "passportIdentifier": f"urn:uuid:{passport['passport_id']}",
        "economicOperatorId": passport["manufacturer_id"],
        "issueDate": _date(passport["manufactured_at"]),  # issued with the manufacture event
    }
    if passport.get("predecessor_passport_id"):
        metadata["predecessor"] = f"urn:uuid:{passport['predecessor_passport_id']}"
    identification: dict[str, Any] = {
        "identification": {
            "serial": [{"key": "partInstanceId", "value": passport["battery_id"]}],
            "type": {
                "manufacturerPartId": passport["model"],
                "nameAtManufacturer": passport["model"],
            },
        },
        "chemistry": passport["chemistry"],
    }
    if passport.get("category") in CATENAX_CATEGORY:
        identification["category"] = CATENAX_CATEGORY[passport["category"]]
    out: dict[str, Any] = {
        "specVersion": CATENAX_SPEC_VERSION,
        "metadata": metadata,
        "identification": identification,
        "operation": {
            "manufacturer": {
                "manufacturer": passport["manufacturer_id"],
                "facility": [{"facility": passport["plant_id"]}],
                "manufacturingDate": _date(passport["manufactured_at"]),
            }
        },
    }
    if passport.get("mass_kg") is not None:
        out["characteristics"] = {
            "physicalDimension": {
                "weight": {"value": _number(passport["mass_kg"]), "unit": "unit:kilogram"}
            }
        }
    sustainability: dict[str, Any] = {}
    if passport.get("status") in CATENAX_STATUS:
        sustainability["status"] = CATENAX_STATUS[passport["status"]]
    footprints = []
    for field, lifecycle, _ in STAGES:
        value = (passport.get("carbon_footprint") or {}).get(field)
        if value is not None:
            footprints.append(
                {
                    "lifecycle": lifecycle,
                    "type": "Climate Change Total",
                    "unit": "kg CO2 / kWh",
                    "value": _number(value),
                    "manufacturingPlant": [{"facility": passport["plant_id"]}],
                }
            )
    if footprints:
        sustainability["carbonFootprint"] = footprints
    if sustainability:
        out["sustainability"] = sustainability
    active = {
        metal: {"recycled": round(_number(m["recycled_share"]) * 100, 4)}
        for metal, m in (passport.get("materials") or {}).items()
        if metal in CATENAX_ACTIVE and m.get("recycled_share") is not None
    }
    if active:
        out["materials"] = {"active": active}
    return out


def ouranos_cfp(passport: dict[str, Any]) -> list[dict[str, Any]]:
    """The passport's carbon footprint as Ouranos CFP entries, one per declared stage."""
    footprint = passport.get("carbon_footprint") or {}
    return [
        {
            "ghgEmission": _number(footprint[field]),
            "ghgDeclaredUnit": "kgCO2e/kilowatt-hour",
            "cfpType": cfp_type,
        }
        for field, _, cfp_type in STAGES
        if footprint.get(field) is not None
    ]
