"""The simulator without a broker: deterministic, consistent, and with what the demo relies on."""

from __future__ import annotations

from collections import Counter
from decimal import Decimal

import pytest

from connectors.ingest.simulator import jsonl_lines, simulate
from schemas.events import ANY_EVENT
from schemas.serde import DecodeError, Serde
from schemas.values import Region
from streams.domain.entities import Config
from streams.domain.local import LocalLedger


def test_same_seed_same_events_other_seed_other_events() -> None:
    a, b, c = simulate(20, seed=1), simulate(20, seed=1), simulate(20, seed=2)
    assert [e.model_dump() for e in a.events] == [e.model_dump() for e in b.events]
    assert [r.value for r in a.bad] == [r.value for r in b.bad]
    assert [e.event_id for e in a.events] != [e.event_id for e in c.events]
    assert len({e.event_id for e in a.events}) == len(a.events)


@pytest.mark.parametrize("region", list(Region))
def test_each_region_closes_its_loop_without_overdrawing_a_lot(region: Region) -> None:
    sim = simulate(40, years=2)
    ledger = LocalLedger(Config(grace_ms=1000))
    ledger.submit(sim.by_region(region))
    ledger.run(batch=200)
    ledger.advance(5000)
    ledger.run(batch=200)
    alerts = Counter(a["kind"] for a in ledger.output("alerts").values() if a["status"] == "open")
    assert alerts["mass_balance"] == 0
    assert alerts["outflow"] == 1  # the exported black-mass lot
    assert alerts["uncertified_operator"] >= 1  # the mine outside the alliance
    assert alerts["unresolved_reference"] == 0
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
