"""Recovered metal across the alliance, from events alone: what counts, which way, any order."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from connectors.ingest.simulator import CASTS
from schemas.events import Event, RecoveryEvent, ShipmentEvent, envelope
from schemas.values import Region
from streams.domain.crossings import (
    alliance_side,
    crossings_view,
    recovered_across_alliance,
)

EU, JP = CASTS[Region.EU], CASTS[Region.JP]
T0 = datetime(2031, 3, 1, tzinfo=UTC)


def recovery(region: Region, black_mass: str, outputs: dict[str, tuple[str, str]]) -> Event:
    """``outputs``: lot id -> (metal, share); every output lot weighs 1000 kg."""
    who = CASTS[region].recycler
    return RecoveryEvent(
        **envelope(who.operator_id, who.site_id, T0),
        black_mass_lot_id=black_mass,
        input_mass_kg=Decimal(5000),
        process="hydrometallurgical",
        outputs=[
            {
                "lot_id": lot_id,
                "form": "recovered",
                "material": f"{metal} salt",
                "mass_kg": Decimal(1000),
                "composition": {metal: Decimal(share)},
            }
            for lot_id, (metal, share) in outputs.items()
        ],
    )


def shipment(region: Region, lot_id: str, kg: str, to_site: str, to: str, n: int) -> Event:
    who = CASTS[region].recycler
    return ShipmentEvent(
        **envelope(who.operator_id, who.site_id, T0 + timedelta(days=n)),
        subject="lot",
        subject_id=lot_id,
        mass_kg=Decimal(kg),
        from_site_id=who.site_id,
        from_country=who.country,
        to_site_id=to_site,
        to_country=to,
        hs_code="283324",
    )


def scenario() -> list[Event]:
    """EU recovers NI-1 (22 % Ni) and CO-1 (21 % Co) from BM-1; JP recovers LI-2 (16.5 % Li)."""
    return [
        recovery(Region.EU, "BM-1", {"NI-1": ("nickel", "0.22"), "CO-1": ("cobalt", "0.21")}),
        recovery(Region.JP, "BM-2", {"LI-2": ("lithium", "0.165")}),
        # 100 kg of NI-1 DE -> JP: 22 kg of nickel EU->JP
        shipment(Region.EU, "NI-1", "100", JP.refiner.site_id, "JP", 1),
        # another 50.5 kg: 11.11 kg more
        shipment(Region.EU, "NI-1", "50.5", JP.refiner.site_id, "JP", 2),
        # CO-1 within the EU (DE -> FI) and out of the alliance (DE -> KR): neither way
        shipment(Region.EU, "CO-1", "1000", EU.refiner.site_id, "FI", 3),
        shipment(Region.EU, "CO-1", "1000", EU.export_to.site_id, "KR", 4),
        # black mass DE -> JP is not recovered material
        shipment(Region.EU, "BM-1", "5000", JP.recycler.site_id, "JP", 5),
        # 200 kg of LI-2 JP -> FI: 33 kg of lithium JP->EU
        shipment(Region.JP, "LI-2", "200", EU.refiner.site_id, "FI", 6),
    ]


EXPECTED = {"EU->JP": {"nickel": 33_110_000_000}, "JP->EU": {"lithium": 33_000_000_000}}


def test_recovered_lots_shipped_across_count_per_metal_and_direction() -> None:
    assert recovered_across_alliance(scenario()) == EXPECTED
    assert crossings_view(EXPECTED) == {
        "EU->JP": {"nickel": "33.110000000"},
        "JP->EU": {"lithium": "33.000000000"},
    }


def test_nothing_crossed_is_both_directions_empty() -> None:
    assert recovered_across_alliance(scenario()[:2]) == {"EU->JP": {}, "JP->EU": {}}


@given(st.permutations(scenario()))
def test_any_order_gives_the_same_figures(events: list[Event]) -> None:
    # A shipment read before the recovery that created its lot counts the same.
    assert recovered_across_alliance(events) == EXPECTED


def test_sides_of_the_alliance() -> None:
    assert [alliance_side(c) for c in ("DE", "FI", "JP", "KR", "CN")] == [
        "EU",
        "EU",
        "JP",
        None,
        None,
    ]


def test_each_regions_ledger_reads_the_same_loops_from_its_lot_documents() -> None:
    """The simulated chain through an EU and a JP ledger, each with its own events and the
    partner's as the mirror delivers them (redacted; uncertified operators' events withheld):
    both ledgers' lot documents give the crossings the events give, and agree on the
    recycled metal that rests on the partner's recycling."""
    from connectors.ingest.simulator import simulate
    from streams.domain.crossings import crossed_in_ledger, partner_recycling_in_ledger
    from streams.domain.entities import Config
    from streams.domain.local import LocalLedger
    from tests.streams.domain.test_alliance import as_mirrored

    events = simulate(20, 1, 7, 0.0).events
    certified = {
        e.subject_operator_id
        for e in events
        if e.event_type == "certification" and e.action == "certified"  # type: ignore[attr-defined]
    }
    ledgers = {}
    for region in ("EU", "JP"):
        ledger = LocalLedger(Config(grace_ms=60_000, region=region))
        ledger.submit([e for e in events if e.region.value == region])
        ledger.submit(
            [
                as_mirrored(e, region)
                for e in events
                if e.region.value != region and e.operator_id in certified
            ]
        )
        ledger.run()
        ledgers[region] = ledger.output("lots")
    crossed = {r: crossed_in_ledger(lots) for r, lots in ledgers.items()}
    assert crossed["EU"] == crossed["JP"] == recovered_across_alliance(events)
    assert all(crossed["EU"][d] for d in ("EU->JP", "JP->EU"))
    rests = {r: partner_recycling_in_ledger(lots) for r, lots in ledgers.items()}
    assert rests["EU"] == rests["JP"]
    # what Japan's refiners took from EU recycling is what crossed EU->JP, all of it refined
    assert rests["EU"]["JP"] == crossed["EU"]["EU->JP"]
    assert rests["EU"]["EU"] == crossed["EU"]["JP->EU"]


def test_a_duplicated_shipment_counts_once() -> None:
    from connectors.ingest.simulator import simulate

    events = simulate(20, 1, 7, 0.0).events
    shipments = [e for e in events if e.event_type == "shipment"]
    assert recovered_across_alliance(events + shipments) == recovered_across_alliance(events)
