"""The simulator without a broker: deterministic, consistent, and with what the demo relies on."""

from __future__ import annotations

import re
from collections import Counter
from decimal import Decimal
from typing import Any

import pytest

from connectors.ingest.simulator import (
    CASTS,
    CERTIFIED_SINCE,
    FOREIGN_MAKERS,
    GTIN_REGION,
    Simulation,
    jsonl_lines,
    pack_gtin,
    simulate,
)
from schemas.events import (
    ANY_EVENT,
    CertificationEvent,
    Event,
    ManufactureEvent,
    RefiningEvent,
    ShipmentEvent,
    ShreddingEvent,
)
from schemas.serde import DecodeError, Serde
from schemas.values import Region, gtin14, operator_id_platform
from streams.domain.crossings import crossings_view, recovered_across_alliance
from streams.domain.entities import Config
from streams.domain.local import LocalLedger


def test_same_seed_same_events_other_seed_other_events() -> None:
    a, b, c = simulate(20, seed=1), simulate(20, seed=1), simulate(20, seed=2)
    assert [e.model_dump() for e in a.events] == [e.model_dump() for e in b.events]
    assert [r.value for r in a.bad] == [r.value for r in b.bad]
    assert [e.event_id for e in a.events] != [e.event_id for e in c.events]
    assert len({e.event_id for e in a.events}) == len(a.events)


def settled(events: list[Event]) -> LocalLedger:
    """Every event processed, and the clock past the grace for alerts that wait."""
    ledger = LocalLedger(Config(grace_ms=1000))
    ledger.submit(events)
    ledger.run(batch=200)
    ledger.advance(5000)
    ledger.run(batch=200)
    return ledger


def open_alerts(ledger: LocalLedger) -> list[dict[str, Any]]:
    return [a for a in ledger.output("alerts").values() if a["status"] == "open"]


@pytest.fixture(scope="module")
def both_regions() -> tuple[Simulation, LocalLedger]:
    """The single-ledger reference: ALL events of both regions in one ledger, as each region's
    processors will see them once they join the partner's mirrored events."""
    sim = simulate(40, years=2)
    return sim, settled(sim.events)


def test_the_loops_close_across_the_border_without_an_unexplained_alert(
    both_regions: tuple[Simulation, LocalLedger],
) -> None:
    sim, ledger = both_regions
    alerts = open_alerts(ledger)
    kinds = Counter(a["kind"] for a in alerts)
    assert kinds["unresolved_reference"] == kinds["mass_balance"] == 0
    assert kinds["conflicting_events"] == 0
    # Only the black-mass lot each region sells out of the alliance; the black mass shipped
    # across the border inside the alliance (EU-XBM-0001 to Japan, JP-XBM-0001 to Germany) is not.
    outflows = {a["subject"] for a in alerts if a["kind"] == "outflow"}
    assert outflows == {"lot/EU-BM-0000", "lot/JP-BM-0000"}
    lots = ledger.output("lots")
    assert lots["EU-XBM-0001"]["location"]["country"] == "JP"
    assert lots["JP-XBM-0001"]["location"]["country"] == "DE"
    # The only uncertified operators are the mines outside the alliance: no one in a
    # cross-border loop.
    uncertified = {a["subject"] for a in alerts if a["kind"] == "uncertified_operator"}
    assert uncertified == {f"operator/{CASTS[r].mine_out.operator_id}" for r in Region}
    # The EU recycler first tries to sell that lot outside the OECD: an illegal export, and
    # one more outflow (Japan's sale to China is not judged by the EU's rule).
    illegal = [a for a in alerts if a["kind"] == "illegal_export"]
    assert [a["subject"] for a in illegal] == ["lot/EU-BM-0000"]
    assert illegal[0]["details"]["to_country"] == "IN"
    assert illegal[0]["details"]["classification"]["waste_code"] == "19 12 11*"
    assert lots["EU-BM-0000"]["classification"]["hazardous"] is True
    # and the imports of the makers outside the alliance that do not disclose everything
    assert set(kinds) == {
        "outflow",
        "illegal_export",
        "uncertified_operator",
        "non_compliant_import",
    }
    for lot in lots.values():
        assert Decimal(lot["remaining_kg"]) >= 0, lot["lot_id"]
    passports = ledger.output("passports")
    assert all(p["complete"] for p in passports.values() if p["materials"])


def test_every_cross_border_step_is_its_operators_own_and_certified() -> None:
    sim = simulate(40)
    certified = {e.subject_operator_id for e in sim.events if isinstance(e, CertificationEvent)}
    cross = [e for e in sim.events if re.match(r"(EU|JP)-(EXPORT-|X)", e.key())]
    assert len(cross) > 50
    for event in cross:
        kind = "BPNL" if event.region is Region.EU else "13 digits"
        assert event.operator_id in certified and event.occurred_at > CERTIFIED_SINCE, event
        assert event.operator_id.startswith("BPNL") == (kind == "BPNL"), event
    shipments = [e for e in cross if isinstance(e, ShipmentEvent)]
    by_way = Counter(
        (e.subject.value, e.from_country, e.to_country, e.hs_code, e.region.value)
        for e in shipments
    )
    # JP packs sold in France, EU packs in Japan (shipped by their makers); recovered salts
    # back to the makers' refiners and black mass to their recyclers (by the recyclers).
    assert by_way == {
        ("battery", "JP", "FR", "850760", "JP"): 2,
        ("battery", "DE", "JP", "850760", "EU"): 2,
        ("lot", "DE", "JP", "283324", "EU"): 1,
        ("lot", "DE", "JP", "283329", "EU"): 1,
        ("lot", "DE", "JP", "282520", "EU"): 1,
        ("lot", "JP", "FI", "283324", "JP"): 1,
        ("lot", "JP", "FI", "283329", "JP"): 1,
        ("lot", "JP", "FI", "282520", "JP"): 1,
        ("lot", "DE", "JP", "382499", "EU"): 1,
        ("lot", "JP", "DE", "382499", "JP"): 1,
    }
    shredded = {
        e.black_mass_lot_id: (e.region, {i.battery_id[:3] for i in e.inputs})
        for e in cross
        if isinstance(e, ShreddingEvent)
    }
    assert shredded == {
        "EU-XBM-0000": (Region.EU, {"JP-"}),
        "EU-XBM-0001": (Region.EU, {"JP-"}),
        "JP-XBM-0000": (Region.JP, {"EU-"}),
        "JP-XBM-0001": (Region.JP, {"EU-"}),
    }
    refined_from = {
        e.batch_id: (e.region, sorted(i.lot_id for i in e.inputs))
        for e in cross
        if isinstance(e, RefiningEvent)
    }
    assert refined_from["JP-XBATCH-NI"] == (
        Region.JP,
        ["EU-XREC-NI-EU0000", "JP-XORE-NI", "JP-XREC-NI-EU0001"],
    )
    assert refined_from["EU-XBATCH-NI"] == (
        Region.EU,
        ["EU-XORE-NI", "EU-XREC-NI-JP0001", "JP-XREC-NI-JP0000"],
    )


@pytest.mark.parametrize("region", list(Region))
def test_alone_a_region_misses_exactly_the_partners_side_of_the_loops(region: Region) -> None:
    """Each region's own events close its own loop (as before the border was crossed); what it
    cannot resolve alone is the partner's side of the cross-border loops, which the partner's
    mirrored events bring."""
    partner = Region.JP if region is Region.EU else Region.EU
    ledger = settled(simulate(40, years=2).by_region(region))
    alerts = open_alerts(ledger)
    kinds = Counter(a["kind"] for a in alerts)
    assert kinds["mass_balance"] == 0
    # the exported black-mass lot, and in the EU the attempt to sell it outside the OECD
    assert kinds["outflow"] == (2 if region is Region.EU else 1)
    assert kinds["illegal_export"] == (1 if region is Region.EU else 0)
    assert kinds["uncertified_operator"] == 1  # the mine outside the alliance
    unresolved = {a["subject"] for a in alerts if a["kind"] == "unresolved_reference"}
    p = partner.value
    assert unresolved == {
        f"battery/{p}-EXPORT-PACK-00000",
        f"battery/{p}-EXPORT-PACK-00001",
        f"lot/{p}-XBM-0001",
        f"lot/{p}-XREC-NI-{p}0000",
        f"lot/{p}-XREC-CO-{p}0000",
        f"lot/{p}-XREC-LI-{p}0000",
    }
    years = set()
    for tally in ledger.output("recycled-content").values():
        for metal in ("nickel", "cobalt", "lithium"):
            share = tally["metals"][metal]["recycled_share"]
            if share is not None and tally["model"].endswith(("-A", "-B")):
                assert Decimal(share) > 0
                years.add(tally["year"])
    assert years == {2031, 2032}
    pre = [
        m["pre_consumer_share"]
        for t in ledger.output("recycled-content").values()
        for m in t["metals"].values()
        if m["pre_consumer_share"] not in (None, "0.000000")
    ]
    assert pre  # factory scrap counts as pre-consumer recycled content


@pytest.fixture(scope="module")
def small() -> tuple[Simulation, LocalLedger]:
    """Seed 7, 20 packs per region: 2 packs exported each way, 12 packs of each X model."""
    sim = simulate(20, seed=7)
    return sim, settled(sim.events)


def _batch_inputs(sim: Simulation, batch_id: str) -> dict[str, Decimal]:
    batch = next(e for e in sim.events if isinstance(e, RefiningEvent) and e.batch_id == batch_id)
    return {i.lot_id: i.mass_kg for i in batch.inputs}


def _x_tally(ledger: LocalLedger, region: Region) -> dict[str, Any]:
    maker = CASTS[region].maker
    key = f"{maker.operator_id}|{maker.site_id}|{region.value}-PACK-NMC811-X|2031"
    return ledger.output("recycled-content")[key]


def test_jp_packs_from_eu_recovered_nickel_carry_the_hand_computed_share(
    small: tuple[Simulation, LocalLedger],
) -> None:
    """JP-PACK-NMC811-X, 2031, seed 7, 20 packs per region. The JP batch JP-XBATCH-NI takes

    * EU-XREC-NI-EU0000, 203.100 kg nickel sulphate at 22 % Ni, recovered in the EU from
      JP-EXPORT-PACK-00000 (shredded in the EU) and shipped DE -> JP: 44.682 kg Ni;
    * JP-XREC-NI-EU0001, 221.955 kg at 22 %, recovered in Japan from the EU black mass of
      JP-EXPORT-PACK-00001 shipped DE -> JP: 48.8301 kg Ni;
    * JP-XORE-NI, 3293.161 kg of virgin concentrate at 12 % Ni: 395.17932 kg Ni.

    Recycled, all post-consumer: 44.682 + 48.8301 = 93.5121 kg of 93.5121 + 395.17932 =
    488.69142 kg Ni: 93.5121 / 488.69142 = 0.191352 (to 6 places). The 12 packs take
    172.727 kg of the refined lot each (38 kg Ni / 0.22): 12 x 37.99994 = 455.99928 kg Ni, of
    it 455.99928 x 0.191352.. = 87.256 kg post-consumer."""
    sim, ledger = small
    inputs = _batch_inputs(sim, "JP-XBATCH-NI")
    assert inputs == {
        "EU-XREC-NI-EU0000": Decimal("203.100"),
        "JP-XREC-NI-EU0001": Decimal("221.955"),
        "JP-XORE-NI": Decimal("3293.161"),
    }
    recycled = (inputs["EU-XREC-NI-EU0000"] + inputs["JP-XREC-NI-EU0001"]) * Decimal("0.22")
    virgin = inputs["JP-XORE-NI"] * Decimal("0.12")
    assert (recycled, recycled + virgin) == (Decimal("93.51210"), Decimal("488.69142"))
    by_hand = (recycled / (recycled + virgin)).quantize(Decimal("0.000001"))
    assert str(by_hand) == "0.191352"
    nickel = _x_tally(ledger, Region.JP)["metals"]["nickel"]
    assert _x_tally(ledger, Region.JP)["batteries"] == 12
    assert nickel["total_kg"] == "455.999280000"
    assert nickel["post_consumer_share"] == nickel["recycled_share"] == str(by_hand)
    assert Decimal(nickel["recycled_post_consumer_kg"]).quantize(Decimal("0.001")) == Decimal(
        "87.256"
    )
    passport = ledger.output("passports")["JP-XPACK-2031-000000"]
    assert passport["region"] == "JP" and passport["complete"]
    assert Decimal(passport["materials"]["nickel"]["recycled_post_consumer_share"]) > 0


def test_eu_packs_from_jp_recovered_material_carry_the_hand_computed_share(
    small: tuple[Simulation, LocalLedger],
) -> None:
    """EU-PACK-NMC811-X, 2031, seed 7, 20 packs per region. The EU batch EU-XBATCH-NI takes
    JP-XREC-NI-JP0000 (206.350 kg at 22 %, recovered in Japan from EU-EXPORT-PACK-00000 and
    shipped JP -> FI: 45.397 kg Ni), EU-XREC-NI-JP0001 (210.177 kg at 22 %, recovered in the
    EU from the Japanese black mass shipped JP -> DE: 46.23894 kg Ni) and EU-XORE-NI
    (3308.796 kg at 12 %: 397.05552 kg Ni). Recycled: 91.63594 of 488.69146 kg Ni =
    0.187513. Cobalt the same way: (72.848 + 71.986) x 0.21 = 30.41514 kg recycled Co,
    105.330 x 0.30 = 31.599 kg virgin: 30.41514 / 62.01414 = 0.490455."""
    sim, ledger = small
    metals = _x_tally(ledger, Region.EU)["metals"]
    for metal, content, ore_share, recovered, ore, expected in (
        (
            "nickel",
            "0.22",
            "0.12",
            ("JP-XREC-NI-JP0000", "EU-XREC-NI-JP0001"),
            "EU-XORE-NI",
            "0.187513",
        ),
        (
            "cobalt",
            "0.21",
            "0.30",
            ("JP-XREC-CO-JP0000", "EU-XREC-CO-JP0001"),
            "EU-XORE-CO",
            "0.490455",
        ),
    ):
        inputs = _batch_inputs(sim, f"EU-XBATCH-{metal[:2].upper()}")
        assert set(inputs) == {*recovered, ore}
        recycled = sum(inputs[lot] for lot in recovered) * Decimal(content)
        total = recycled + inputs[ore] * Decimal(ore_share)
        by_hand = str((recycled / total).quantize(Decimal("0.000001")))
        assert by_hand == expected
        assert metals[metal]["post_consumer_share"] == metals[metal]["recycled_share"] == by_hand


def test_recovered_metal_across_the_alliance_from_the_simulated_events(
    small: tuple[Simulation, LocalLedger],
) -> None:
    """The recovered lots shipped across (seed 7): EU -> JP EU-XREC-NI-EU0000 203.100 kg x 22 %
    = 44.682 kg Ni, EU-XREC-CO-EU0000 71.786 kg x 21 % = 15.07506 kg Co, EU-XREC-LI-EU0000
    39.024 kg x 16.5 % = 6.43896 kg Li; JP -> EU JP-XREC-NI-JP0000 206.350 x 22 % = 45.397 kg
    Ni. The black mass that crossed (EU-XBM-0001, JP-XBM-0001) is not recovered material."""
    sim, _ = small
    crossed = crossings_view(recovered_across_alliance(sim.events))
    assert crossed["EU->JP"] == {
        "cobalt": "15.075060000",
        "lithium": "6.438960000",
        "nickel": "44.682000000",
    }
    assert crossed["JP->EU"]["nickel"] == "45.397000000"
    assert set(crossed["JP->EU"]) == {"cobalt", "lithium", "nickel"}


def test_bad_records_are_bad_in_both_ways_and_every_region_gets_some() -> None:
    sim = simulate(20)
    serde = Serde()
    assert {b.region for b in sim.bad} == set(Region)
    for record in sim.bad:
        with pytest.raises(DecodeError):
            serde.decode_event(record.value, topic=record.topic)
    lines = list(jsonl_lines(sim))
    valid = 0
    for line in lines:
        try:
            ANY_EVENT.validate_json(line)
            valid += 1
        except ValueError:
            pass
    assert valid == len(sim.events) < len(lines)


def test_makers_outside_the_alliance_are_tallied_and_their_incomplete_imports_alerted(
    both_regions: tuple[Simulation, LocalLedger],
) -> None:
    sim, ledger = both_regions
    tallies = ledger.output("disclosure")
    for f in FOREIGN_MAKERS:
        who = f.company.operator_id
        assert operator_id_platform(who) is None  # an LEI or a USCC
        made = [e for e in sim.events if e.event_type == "manufacture" and e.operator_id == who]
        assert made and {e.region for e in made} == {f.into}
        tally = tallies[f"{who}|{f.company.country}"]
        assert tally["batteries"] == len(made)
        # a vertically integrated maker's genealogy is complete: only what it leaves out misses
        assert tally["batteries_met"] == (0 if f.undisclosed else len(made)), f.tag
        assert set(tally["missing"]) == set(f.undisclosed), f.tag
    assert {f.into for f in FOREIGN_MAKERS if f.undisclosed} == set(Region)
    assert {f.into for f in FOREIGN_MAKERS if not f.undisclosed} == set(Region)
    imports = [a for a in open_alerts(ledger) if a["kind"] == "non_compliant_import"]
    incomplete = {f.company.operator_id for f in FOREIGN_MAKERS if f.undisclosed}
    assert {a["details"]["manufacturer"] for a in imports} == incomplete
    assert len(imports) == sum(
        1
        for e in sim.events
        if isinstance(e, ShipmentEvent)
        and e.subject.value == "battery"
        and e.operator_id in incomplete
    )
    # the alliance's makers disclose everything for their new packs, with complete genealogy
    for region in Region:
        maker = CASTS[region].maker
        tally = tallies[f"{maker.operator_id}|{maker.country}"]
        new = sum(
            1
            for e in sim.by_region(region)
            if e.event_type == "manufacture" and e.operator_id == maker.operator_id and e.inputs  # type: ignore[attr-defined]
        )
        assert tally["batteries_met"] == new


def test_the_eu_makers_new_packs_carry_a_gtin_per_model_and_their_passports_its_url(
    both_regions: tuple[Simulation, LocalLedger],
) -> None:
    sim, ledger = both_regions
    made = [e for e in sim.events if isinstance(e, ManufactureEvent) and e.level == "pack"]
    maker = CASTS[GTIN_REGION].maker.operator_id
    new_packs = [e for e in made if e.operator_id == maker and e.inputs]
    assert new_packs and all(e.gtin == pack_gtin(e.model) for e in new_packs)
    by_model = {e.model: e.gtin for e in new_packs}
    assert len(set(by_model.values())) == len(by_model) > 1  # one GTIN per model
    assert all(g is not None and gtin14(g) == g and g.startswith("0952") for g in by_model.values())
    # everyone else's packs (the other region's, earlier ones, imports) have none
    assert all(e.gtin is None for e in made if e not in new_packs)
    passports = ledger.output("passports")
    for e in new_packs[:5]:
        assert passports[e.battery_id]["url"].endswith(f"/01/{e.gtin}/21/{e.battery_id}")
    other = next(e for e in made if e.gtin is None)
    assert passports[other.battery_id]["url"].endswith(f"/passport/{other.battery_id}")
