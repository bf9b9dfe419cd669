"""The processors' logic, without a broker: reference numbers, alerts, order and duplicates."""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.ingest.files import read_jsonl
from schemas.events import Event, ManufactureEvent, ShipmentEvent, envelope
from streams.domain.codec import chunked_messages, decode_messages
from streams.domain.entities import Config
from streams.domain.local import LocalLedger
from streams.domain.messages import CertificationCheck, CheckedEvent
from streams.domain.states import OperatorState
from tests import scenarios
from tests.scenarios import MAKER, uid

STATE_OUTPUTS = ("passports", "lots", "recycled-content", "recovery", "operators")


def run(events: list[Event], **kwargs: Any) -> LocalLedger:
    ledger = LocalLedger(Config(grace_ms=60_000))
    ledger.submit(events)
    ledger.run(**kwargs)
    return ledger


def test_reference_passport_numbers() -> None:
    ledger = run(scenarios.reference())
    passport = ledger.output("passports")["PACK-1"]
    nickel = passport["materials"]["nickel"]
    # 20 kg of nickel, 3 kg of it recovered from post-consumer black mass: 15 %.
    assert nickel["mass_kg"] == "20.000000000"
    assert nickel["recycled_share"] == "0.150000"
    assert nickel["recycled_post_consumer_share"] == "0.150000"
    assert nickel["recycled_pre_consumer_share"] == "0.000000"
    # 200 of the 215 kg refined were mined in FI.
    assert passport["origin"]["countries"] == {"FI": "0.930233"}
    assert passport["origin"]["secondary_share"] == "0.069767"
    assert passport["holder"] == {
        "site_id": "JP-CAR-PLANT-1",
        "country": "JP",
        "since": "2031-01-18T00:00:00Z",
    }
    assert passport["state_of_health"] == "0.91"
    assert passport["status"] == "original"
    assert passport["carbon_footprint"] == {"kg_co2e_per_kwh": "72.5"}
    assert passport["complete"] is True
    old = ledger.output("passports")["OLD-PACK-1"]
    assert old["status"] == "waste"
    assert old["shredded_into"] == "BM-1"


def test_reference_lots_and_tallies() -> None:
    ledger = run(scenarios.reference())
    lots = ledger.output("lots")
    assert lots["NISO4-1"]["materials"]["nickel"]["recycled_post_consumer_share"] == "0.150000"
    assert lots["NISO4-1"]["remaining_kg"] == "0.000"
    assert lots["ORE-NI-1"]["remaining_kg"] == "0.000"
    assert lots["BM-1"]["materials"]["nickel"]["recycled_post_consumer_share"] == "1.000000"
    assert lots["REC-NI-1"]["materials"]["nickel"]["mass_kg"] == "3.000000000"
    assert lots["REC-NI-1"]["origin"]["secondary_share"] == "1.000000"

    tally = ledger.output("recycled-content")[f"{MAKER}|BPNS0000000PCK01|REF-PACK|2031"]
    nickel = tally["metals"]["nickel"]
    assert tally["batteries"] == 1
    assert (nickel["total_kg"], nickel["recycled_post_consumer_kg"]) == (
        "20.000000000",
        "3.000000000",
    )
    assert nickel["recycled_share"] == "0.150000"
    assert nickel["meets_2031"] is True  # 15 % >= 6 %
    assert nickel["meets_2036"] is True  # 15 % >= 15 %, exactly
    assert tally["metals"]["cobalt"]["meets_2031"] is None  # no cobalt: nothing to judge

    recovery = ledger.output("recovery")[f"{scenarios.RECYCLER}|JP-REC-PLANT-1|2031"]
    # 4 kg of nickel in the 50 kg of black mass, 3 kg recovered: 0.75 < 0.90.
    assert recovery["metals"]["nickel"]["input_kg"] == "4.000000000"
    assert recovery["metals"]["nickel"]["efficiency"] == "0.750000"
    assert recovery["metals"]["nickel"]["meets_2027"] is False
    assert ledger.output("alerts") == {}


def test_overdrawn_lot_is_alerted_not_clamped() -> None:
    events = scenarios.reference()
    pack = next(e for e in events if isinstance(e, ManufactureEvent) and e.battery_id == "PACK-1")
    second = pack.model_copy(
        update={
            "event_id": uid(50),
            "battery_id": "PACK-2",
            "passport_id": uid(9050),
            "inputs": [pack.inputs[0].model_copy(update={"mass_kg": Decimal("10")})],
        }
    )
    events.append(second)  # 10 kg more from NISO4-1, which PACK-1 used up
    ledger = run(events)
    alert = ledger.output("alerts")["mass-balance/lot/NISO4-1"]
    assert alert["kind"] == "mass_balance" and alert["status"] == "open"
    assert alert["details"]["consumed_kg"] == "90.000"
    assert ledger.output("lots")["NISO4-1"]["remaining_kg"] == "-10.000"  # shown as it is


def test_recovering_more_than_the_black_mass_held_is_alerted() -> None:
    events = scenarios.reference()
    recovery = next(e for e in events if e.event_type == "recovery")
    too_much = recovery.model_copy(
        update={
            "event_id": uid(51),
            "outputs": [
                recovery.outputs[0].model_copy(
                    update={"lot_id": "REC-NI-2", "mass_kg": Decimal(30)}
                )
            ],
            "input_mass_kg": Decimal("0"),
        }
    )
    ledger = run([*events, too_much])
    alert = ledger.output("alerts")[f"mass-balance/recovery/{uid(51)}"]
    assert alert["details"]["metals"]["nickel"] == {
        "input_kg": "0.000000000",
        "recovered_kg": "6.000000000",
    }


def test_outflow_of_black_mass_and_of_a_waste_battery() -> None:
    shipment = dict(
        **envelope(MAKER, "BPNS0000000PCK01", scenarios.T0.replace(month=12)),
        from_site_id="BPNS0000000PCK01",
        from_country="DE",
        to_site_id="CN-SITE-7",
        to_country="CN",
        hs_code="262099",
    )
    events = [
        *scenarios.reference(),
        ShipmentEvent(event_id=uid(60), subject="lot", subject_id="BM-1", mass_kg=1, **shipment),
        ShipmentEvent(
            event_id=uid(61), subject="battery", subject_id="OLD-PACK-1", mass_kg=1, **shipment
        ),
        ShipmentEvent(
            event_id=uid(62), subject="battery", subject_id="PACK-1", mass_kg=1, **shipment
        ),
        ShipmentEvent(
            event_id=uid(63), subject="lot", subject_id="ORE-NI-1", mass_kg=1, **shipment
        ),
    ]
    alerts = run(events).output("alerts")
    # not a new pack, not ore; from DE to CN, outside the OECD, the black mass (unclassified:
    # presumed hazardous) and the waste battery are also illegal exports
    outflows = {f"outflow/{uid(60)}", f"outflow/{uid(61)}"}
    illegal = {f"illegal_export/{uid(60)}", f"illegal_export/{uid(61)}"}
    assert set(alerts) == outflows | illegal
    assert alerts[f"outflow/{uid(61)}"]["subject"] == "battery/OLD-PACK-1"
    assert alerts[f"illegal_export/{uid(61)}"]["subject"] == "battery/OLD-PACK-1"


def test_unresolved_reference_waits_for_the_grace_period_then_resolves_late() -> None:
    events = scenarios.reference()
    manufacture_old = next(e for e in events if getattr(e, "battery_id", "") == "OLD-PACK-1")
    ledger = LocalLedger(Config(grace_ms=60_000))
    ledger.submit([e for e in events if e is not manufacture_old])
    ledger.run()
    ledger.advance(30_000)
    assert "unresolved/battery/OLD-PACK-1" not in ledger.output("alerts")
    ledger.advance(30_000)
    assert ledger.output("alerts")["unresolved/battery/OLD-PACK-1"]["status"] == "open"
    ledger.submit([manufacture_old])
    ledger.run()
    assert ledger.output("alerts")["unresolved/battery/OLD-PACK-1"]["status"] == "resolved"


def test_uncertified_operator_is_alerted_after_grace_unless_certified_meanwhile() -> None:
    events = [e for e in scenarios.reference() if e.event_type != "certification"]
    late = scenarios.certifications([scenarios.MINER])
    ledger = LocalLedger(Config(grace_ms=60_000))
    ledger.submit(events)
    ledger.run()
    ledger.advance(10_000)
    ledger.submit(late)  # the miner's certificate arrives late, but within the grace period
    ledger.run()
    ledger.advance(60_000)
    alerts = ledger.output("alerts")
    assert f"uncertified/operator/{scenarios.MINER}" not in alerts
    maker = alerts[f"uncertified/operator/{MAKER}"]
    assert maker["details"]["events"] == 5


def outputs(ledger: LocalLedger) -> dict[str, dict[str, Any]]:
    return {name: ledger.output(name) for name in (*STATE_OUTPUTS, "alerts")}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    chain_seed=st.integers(0, 2**32),
    order_seed=st.integers(0, 2**32),
    batch=st.integers(1, 25),
    duplicates=st.floats(0, 0.5),
)
def test_final_state_does_not_depend_on_arrival_order_or_duplicates(
    chain_seed: int, order_seed: int, batch: int, duplicates: float
) -> None:
    rng = random.Random(chain_seed)
    events = [
        *scenarios.reference(),
        *scenarios.random_loop(rng),
        *scenarios.random_loop(rng, 200_000),
    ]
    expected = outputs(run(events, batch=50))

    order = random.Random(order_seed)
    shuffled = events + [e for e in events if order.random() < duplicates]  # redelivered
    order.shuffle(shuffled)
    ledger = LocalLedger(Config(grace_ms=60_000))
    # Events trickle in while earlier messages are still being delivered in random order.
    for start in range(0, len(shuffled), batch):
        ledger.submit(shuffled[start : start + batch])
        for _ in range(order.randint(0, 3)):
            ledger.deliver(order.randint(1, batch), order)
    ledger.run(rng=order, batch=batch)
    assert outputs(ledger) == expected


checked_events = st.builds(
    CheckedEvent, st.text(max_size=8), st.integers(0, 2**62), st.text(max_size=5), st.text()
)


@given(st.lists(st.lists(checked_events, max_size=4), max_size=60), st.integers(1, 200))
def test_chunked_messages_keep_every_message_in_order_within_the_limit(
    events: list[list[CheckedEvent]], limit: int
) -> None:
    messages = [CertificationCheck(events=e) for e in events]
    chunks = list(chunked_messages(list(messages), limit))
    assert [m for chunk in chunks for m in decode_messages("operator/x", chunk)] == messages
    for chunk in chunks:
        assert len(chunk) <= limit or len(decode_messages("operator/x", chunk)) == 1


def test_a_burst_before_the_certificate_keeps_the_operator_state_small() -> None:
    from streams.domain.entities import PENDING_DETAIL
    from streams.domain.routing import operator_key

    events = [e for e in scenarios.reference() if e.event_type == "use_collection"]
    burst = [
        e.model_copy(update={"event_id": uid(100_000 + i)})
        for i in range(3 * PENDING_DETAIL)
        for e in events[:1]
    ]
    ledger = LocalLedger(Config(grace_ms=60_000))
    ledger.submit(burst)
    ledger.run(batch=500)
    state = ledger.states[operator_key(MAKER)]
    assert isinstance(state, OperatorState)
    assert len(state.pending) == PENDING_DETAIL
    assert sum(hour.count for hour in state.pending_by_hour.values()) == 2 * PENDING_DETAIL
    ledger.advance(60_000)  # nobody certified the maker: every event is flagged, by count
    alert = ledger.output("alerts")[f"uncertified/operator/{MAKER}"]
    assert alert["details"]["events"] == 3 * PENDING_DETAIL
    state = ledger.states[operator_key(MAKER)]
    assert isinstance(state, OperatorState) and len(state.flagged) == 100


def id_less_jsonl(events: list[Event]) -> list[bytes]:
    """The events as a JSONL file whose lines carry no event id."""
    return [(e.model_dump_json(exclude={"event_id"}) + "\n").encode() for e in events]


def test_replaying_a_file_without_event_ids_changes_nothing() -> None:
    lines = id_less_jsonl(scenarios.reference())

    def read() -> list[Event]:
        out = [item for _, item in read_jsonl(lines)]
        assert all(isinstance(e, Event) for e in out)
        return out  # type: ignore[return-value]

    once = run(read())
    twice = run([*read(), *read()])  # the file published again after a crash, say
    assert outputs(twice) == outputs(once)
    lots = twice.output("lots")
    # ORE-NI-1 holds 200 kg, all of it refined once: replayed, it is not consumed twice.
    assert lots["ORE-NI-1"]["remaining_kg"] == "0.000"
    assert twice.output("alerts") == {}
    assert twice.output("passports")["PACK-1"]["materials"]["nickel"]["mass_kg"] == ("20.000000000")


def test_a_passport_read_says_whether_its_maker_is_certified_now_and_at_manufacture() -> None:
    from streams.domain.entities import with_certification
    from streams.domain.quantities import micros

    ledger = run(scenarios.reference())
    passport = ledger.output("passports")["PACK-1"]
    maker = ledger.output("operators")[MAKER]
    made = datetime.fromisoformat(passport["manufactured_at"])
    read = with_certification(passport, maker, micros(made))
    assert read["manufacturer_certified"] is True
    assert read["manufacturer_certified_at_manufacture"] is True
    assert "manufacturer_certified" not in passport  # the stored document is left as it is
    # before the certificate was issued, and for an operator nobody certified
    early = with_certification(passport, maker, micros(scenarios.T0 - timedelta(days=1)))
    assert early["manufacturer_certified"] is False
    unknown = with_certification(passport, None, micros(made))
    assert unknown["manufacturer_certified"] is unknown["manufacturer_certified_at_manufacture"]
    assert unknown["manufacturer_certified"] is False
