"""Passport exports, field by field, against the Catena-X Battery Pass 6.1.0 and Ouranos CFP
shapes named in the domain references."""

from __future__ import annotations

from typing import Any

import pytest

from connectors.exports.passport import catenax_battery_pass, ouranos_cfp
from connectors.ingest.simulator import simulate
from schemas.values import Region
from streams.domain.entities import Config
from streams.domain.local import LocalLedger
from tests.scenarios import reference


def passports(events: list[Any]) -> dict[str, dict[str, Any]]:
    ledger = LocalLedger(Config(grace_ms=1000))
    ledger.submit(events)
    ledger.run(batch=100)
    return ledger.output("passports")


@pytest.fixture(scope="module")
def pack() -> dict[str, Any]:
    made = passports(simulate(5).by_region(Region.EU))
    return next(p for k, p in made.items() if k.startswith("EU-PACK-2031-"))


def test_catenax_battery_pass_field_by_field(pack: dict[str, Any]) -> None:
    out = catenax_battery_pass(pack)
    assert set(out) == {
        "specVersion",
        "metadata",
        "identification",
        "operation",
        "characteristics",
        "sustainability",
        "materials",
    }
    assert out["specVersion"] == "urn:io.catenax.battery.battery_pass:6.1.0"
    assert out["metadata"] == {
        "passportIdentifier": f"urn:uuid:{pack['passport_id']}",
        "economicOperatorId": "BPNL0000000PCKDE",
        "issueDate": pack["manufactured_at"][:10],
    }  # no version, status or expiry: batteryloop has no data for them
    assert out["identification"] == {
        "category": "EV",
        "chemistry": "NMC811",
        "identification": {
            "serial": [{"key": "partInstanceId", "value": pack["battery_id"]}],
            "type": {"manufacturerPartId": pack["model"], "nameAtManufacturer": pack["model"]},
        },
    }
    assert out["operation"] == {
        "manufacturer": {
            "manufacturer": "BPNL0000000PCKDE",
            "facility": [{"facility": "BPNS0000000PCKDE"}],
            "manufacturingDate": pack["manufactured_at"][:10],
        }
    }
    weight = out["characteristics"]["physicalDimension"]["weight"]
    assert weight == {"value": float(pack["mass_kg"]), "unit": "unit:kilogram"}
    footprint = pack["carbon_footprint"]
    assert out["sustainability"] == {
        "status": "original",
        "carbonFootprint": [
            {
                "lifecycle": "raw material acquisition and pre-processing",
                "type": "Climate Change Total",
                "unit": "kg CO2 / kWh",
                "value": float(footprint["raw_material_kg_co2e_per_kwh"]),
                "manufacturingPlant": [{"facility": "BPNS0000000PCKDE"}],
            },
            {
                "lifecycle": "main product production",
                "type": "Climate Change Total",
                "unit": "kg CO2 / kWh",
                "value": float(footprint["production_kg_co2e_per_kwh"]),
                "manufacturingPlant": [{"facility": "BPNS0000000PCKDE"}],
            },
        ],
    }
    active = out["materials"]["active"]
    assert set(active) == {"cobalt", "lithium", "nickel"}
    for metal, entry in active.items():
        assert entry == {
            "recycled": round(float(pack["materials"][metal]["recycled_share"]) * 100, 4)
        }
        assert entry["recycled"] > 0


def test_reference_pack_recycled_nickel_in_percent_and_no_stage_footprint() -> None:
    made = passports(reference())
    pack1 = catenax_battery_pass(made["PACK-1"])
    assert pack1["materials"]["active"]["nickel"] == {"recycled": 15.0}  # worked by hand
    assert "carbonFootprint" not in pack1["sustainability"]  # a total without stages
    assert ouranos_cfp(made["PACK-1"]) == []
    old = catenax_battery_pass(made["OLD-PACK-1"])
    assert old["sustainability"] == {"status": "waste"}
    assert "materials" not in old  # no traced inputs: nothing to say, nothing invented


def test_predecessor_and_statuses_map_to_the_aspect_wording(pack: dict[str, Any]) -> None:
    reused = {**pack, "status": "reused", "predecessor_passport_id": "0000-1"}
    out = catenax_battery_pass(reused)
    assert out["metadata"]["predecessor"] == "urn:uuid:0000-1"
    assert out["sustainability"]["status"] == "re-used"


def test_ouranos_cfp_entries(pack: dict[str, Any]) -> None:
    footprint = pack["carbon_footprint"]
    assert ouranos_cfp(pack) == [
        {
            "ghgEmission": float(footprint["raw_material_kg_co2e_per_kwh"]),
            "ghgDeclaredUnit": "kgCO2e/kilowatt-hour",
            "cfpType": "preProduction",
        },
        {
            "ghgEmission": float(footprint["production_kg_co2e_per_kwh"]),
            "ghgDeclaredUnit": "kgCO2e/kilowatt-hour",
            "cfpType": "mainProduction",
        },
    ]
