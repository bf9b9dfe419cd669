"""What is missing upstream: lot and passport documents name the uncreated lots and batteries
their genealogy rests on, how far up, who names them, and where they are expected from."""

from __future__ import annotations

import random
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas.events import (
    Event,
    ExtractionEvent,
    ManufactureEvent,
    RefiningEvent,
    ShipmentEvent,
)
from streams.domain.entities import Config
from streams.domain.entities.upstream import MAX_MISSING_UPSTREAM, describe_missing
from streams.domain.local import LocalLedger
from tests import scenarios
from tests.scenarios import MAKER, MINER, REFINER, _env, uid

JP_MINER, JP_MINE_SITE = scenarios.OPERATORS["JP"]["miner"]


def ore(lot_id: str, n: int, miner: str = MINER, site: str = "BPNS0000000MIN02") -> Event:
    return ExtractionEvent(
        **_env(n, 1, miner, site),
        lot_id=lot_id,
        form="concentrate",
        material="cobalt hydroxide",
        mass_kg=Decimal("100"),
        composition={"cobalt": Decimal("0.3")},
        country="CL",
    )


def refined(lot_id: str, ores: list[str], n: int) -> Event:
    return RefiningEvent(
        **_env(n, 2, REFINER, "BPNS0000000REF01"),
        batch_id=f"B-{lot_id}",
        process="hydrometallurgical",
        inputs=[{"lot_id": o, "mass_kg": Decimal("100"), "supplier_id": MINER} for o in ores],
        outputs=[
            {
                "lot_id": lot_id,
                "form": "refined",
                "material": "cobalt sulphate",
                "mass_kg": Decimal("50"),
                "composition": {"cobalt": Decimal("0.2")},
            }
        ],
    )


def pack(battery_id: str, lots: list[str], n: int) -> Event:
    return ManufactureEvent(
        **_env(n, 3, MAKER, "BPNS0000000PCK01"),
        battery_id=battery_id,
        passport_id=uid(n + 50_000),
        level="pack",
        category="ev",
        model="UP-PACK",
        chemistry="NMC811",
        mass_kg=Decimal("300"),
        capacity_kwh=Decimal("60"),
        inputs=[{"lot_id": lot, "mass_kg": Decimal("50")} for lot in lots],
        components=[],
    )


def shipped(lot_id: str, n: int, from_country: str, day: int = 1) -> Event:
    site = JP_MINE_SITE + "1" if from_country == "JP" else "BPNS0000000MIN02"
    operator = JP_MINER if from_country == "JP" else MINER
    return ShipmentEvent(
        **_env(n, day, operator, site),
        subject="lot",
        subject_id=lot_id,
        mass_kg=Decimal("100"),
        from_site_id=site,
        from_country=from_country,
        to_site_id="BPNS0000000REF01",
        to_country="DE",
        hs_code="282200",
    )


def certified() -> list[Event]:
    return scenarios.certifications([MINER, REFINER, MAKER])


def chain_without_ore() -> list[Event]:
    """Mine -> refined lot NISO4-2 -> pack P-1, the mine's extraction of ORE-CL-1 left out."""
    return [*certified(), refined("NISO4-2", ["ORE-CL-1"], 2), pack("P-1", ["NISO4-2"], 3)]


def ledger_of(events: list[Event], seed: int | None = None) -> LocalLedger:
    ledger = LocalLedger(Config(grace_ms=60_000))
    ledger.submit(events)
    ledger.run(rng=None if seed is None else random.Random(seed))
    return ledger


def missing(lot_id: str, hops: int, referenced_by: str, side: str | None) -> dict[str, Any]:
    return {
        "kind": "lot",
        "id": lot_id,
        "hops": hops,
        "referenced_by": referenced_by,
        "expected_from": side,
    }


def test_a_pack_whose_ore_never_arrived_names_it_two_hops_up_via_the_refined_lot() -> None:
    ledger = ledger_of(chain_without_ore())
    passport = ledger.output("passports")["P-1"]
    assert passport["complete"] is False
    assert passport["missing_inputs"] == []  # its direct input is there
    # No shipment of the ore: expected from the region of the refining event that names it.
    assert passport["missing_upstream"] == [missing("ORE-CL-1", 2, "NISO4-2", "EU")]
    assert passport["missing_upstream_more"] == 0
    lot = ledger.output("lots")["NISO4-2"]
    assert lot["missing_inputs"] == ["ORE-CL-1"]
    assert lot["missing_upstream"] == [missing("ORE-CL-1", 1, "NISO4-2", "EU")]


def test_the_ore_arriving_late_clears_the_gap_and_completes_the_passport() -> None:
    ledger = ledger_of(chain_without_ore())
    ledger.submit([ore("ORE-CL-1", 1)])
    ledger.run()
    passport = ledger.output("passports")["P-1"]
    assert passport["complete"] is True
    assert passport["missing_upstream"] == []
    assert ledger.output("lots")["NISO4-2"]["missing_upstream"] == []


def test_a_shipped_but_never_created_lot_is_expected_from_the_side_it_was_shipped_from() -> None:
    # An EU refiner names the ore; a Japanese miner shipped it from Japan: its creation is
    # Japan's, whatever order the events arrive in (the shipment before or after the refining).
    events = [
        *certified(),
        shipped("ORE-CL-1", 10, "CL", day=0),  # from outside the alliance: says nothing
        shipped("ORE-CL-1", 11, "JP"),
        refined("NISO4-2", ["ORE-CL-1"], 2),
        pack("P-1", ["NISO4-2"], 3),
    ]
    for seed in (None, 1, 2, 3, 4, 5):
        ledger = ledger_of(events, seed)
        assert ledger.output("passports")["P-1"]["missing_upstream"] == [
            missing("ORE-CL-1", 2, "NISO4-2", "JP")
        ], seed
        assert ledger.output("lots")["NISO4-2"]["missing_upstream"] == [
            missing("ORE-CL-1", 1, "NISO4-2", "JP")
        ], seed


def test_an_entity_reached_by_two_paths_is_listed_once_by_the_nearer() -> None:
    events = [
        *certified(),
        refined("MID-1", ["ORE-X"], 2),
        refined("TOP-1", ["MID-1"], 4),
        pack("P-1", ["TOP-1", "ORE-X"], 3),
    ]
    passport = ledger_of(events).output("passports")["P-1"]
    assert passport["missing_upstream"] == [missing("ORE-X", 1, "P-1", "EU")]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(width=st.integers(0, 2 * MAX_MISSING_UPSTREAM + 5), seed=st.integers(0, 2**16))
def test_the_list_keeps_the_nearest_and_counts_the_rest(width: int, seed: int) -> None:
    # A refined lot from ``width`` ores that never arrived, one from a present ore, and a pack
    # from it and directly from ``width // 3`` more absent lots (nearer: one hop).
    ores = [f"ORE-{i:03d}" for i in range(width)]
    direct = [f"LOT-{i:03d}" for i in range(width // 3)]
    events = [
        *certified(),
        ore("ORE-OK", 1),
        refined("MID", ["ORE-OK", *ores], 2),
        pack("P-1", ["MID", *direct], 3),
    ]
    passport = ledger_of(events, seed).output("passports")["P-1"]
    expected = [missing(lot, 1, "P-1", "EU") for lot in direct]
    expected += [missing(lot, 2, "MID", "EU") for lot in ores]
    assert passport["missing_upstream"] == expected[:MAX_MISSING_UPSTREAM]
    assert passport["missing_upstream_more"] == max(0, len(expected) - MAX_MISSING_UPSTREAM)
    assert passport["complete"] is (width == 0)


def test_the_passport_command_says_in_a_line_what_is_missing_and_from_where() -> None:
    ledger = ledger_of(chain_without_ore())
    assert describe_missing(ledger.output("passports")["P-1"]) == [
        "incomplete: lot ORE-CL-1 (2 hops upstream, via NISO4-2) never arrived here; "
        "expected from EU"
    ]
    ledger.submit([ore("ORE-CL-1", 1)])
    ledger.run()
    assert describe_missing(ledger.output("passports")["P-1"]) == []
