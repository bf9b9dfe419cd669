"""Local messages applied within one call, and the shortcuts that make a batch cheap: the same
states and documents as delivering every message hop by hop, one batch per hop."""

from __future__ import annotations

import json
import random
import zlib
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas.events import Event, ManufactureEvent, RefiningEvent, UseCollectionEvent
from streams.domain import engine
from streams.domain.codec import decode_state, encode_state
from streams.domain.engine import UnsettledError, process_batch
from streams.domain.entities import Config, provenance
from streams.domain.entities.alerts import canonical_json
from streams.domain.entities.batteries import status_timeline
from streams.domain.entities.operators import (
    ACCEPTED_DETAIL,
    CertificationTimeline,
    _fold_accepted,
)
from streams.domain.local import LocalLedger
from streams.domain.messages import Certification
from streams.domain.routing import route_batch
from streams.domain.states import AcceptedEvent, AcceptedHour, BatteryState, OperatorState
from tests import scenarios
from tests.scenarios import MAKER, REFINER, _env

OUTPUTS = ("passports", "lots", "recycled-content", "recovery", "operators", "alerts")


def outputs(ledger: LocalLedger) -> dict[str, dict[str, Any]]:
    return {name: ledger.output(name) for name in OUTPUTS}


class ColdLedger(LocalLedger):
    """States through the codec after every delivery: nothing derived survives a batch."""

    def deliver(self, count: int = 1, rng: random.Random | None = None) -> None:
        super().deliver(count, rng)
        self.states = {k: decode_state(k, encode_state(s)) for k, s in self.states.items()}


def health_readings(events: list[Event], rng: random.Random, first_id: int) -> list[Event]:
    """Random state-of-health reports (a few saying "waste") for the batteries made."""
    made = [e for e in events if isinstance(e, ManufactureEvent)]
    out: list[Event] = []
    for n, battery in enumerate(made):
        for k in range(rng.randint(0, 4)):
            out.append(
                UseCollectionEvent(
                    **_env(first_id + 10 * n + k, rng.randrange(400), MAKER, "BPNS0000000PCK01"),
                    battery_id=battery.battery_id,
                    action="state_of_health",
                    status=rng.choice(["original", "original", "repurposed", "waste"]),
                    state_of_health=Decimal(rng.randint(500, 1000)) / 1000,
                )
            )
    return out


def loop_events(seed: int) -> list[Event]:
    rng = random.Random(seed)
    events = [*scenarios.reference(), *scenarios.random_loop(rng, 200_000)]
    split = {role: rng.choice(["EU", "JP"]) for role in scenarios.ROLES}
    events += scenarios.random_loop(rng, 300_000, split=split)
    return events + health_readings(events, rng, 900_000)


def trickle(ledger: LocalLedger, events: list[Event], order: random.Random, batch: int) -> None:
    """Submit in chunks while delivering random batches in random order, then drain."""
    for start in range(0, len(events), batch):
        ledger.submit(events[start : start + batch])
        for _ in range(order.randint(0, 3)):
            ledger.deliver(order.randint(1, batch), order)
    ledger.run(rng=order, batch=batch)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    chain_seed=st.integers(0, 2**32),
    order_seed=st.integers(0, 2**32),
    chunks=st.lists(st.integers(1, 80), min_size=1, max_size=30),
)
def test_one_call_with_every_key_local_ends_as_hop_by_hop_delivery(
    chain_seed: int, order_seed: int, chunks: list[int]
) -> None:
    """The events arrive in the same order and the same batches; hop by hop, each batch's
    follow-up messages are delivered one hop per batch until none are left; with every key
    local, each batch is one call. Same states (every field), same documents."""
    events = loop_events(chain_seed)
    random.Random(order_seed).shuffle(events)
    hop_by_hop = LocalLedger(Config(grace_ms=60_000))
    in_call = LocalLedger(Config(grace_ms=60_000), local=lambda key: True)
    cold = ColdLedger(Config(grace_ms=60_000), local=lambda key: True)
    start, sizes = 0, iter(chunks * len(events))
    while start < len(events):
        size = next(sizes)
        for ledger in (hop_by_hop, in_call, cold):
            ledger.submit(events[start : start + size])
            ledger.run(batch=len(events) * 100)  # the whole queue: one hop per delivery
        start += size
        assert in_call.states == hop_by_hop.states
    for ledger in (hop_by_hop, in_call, cold):
        ledger.advance(60_000)
    assert outputs(in_call) == outputs(hop_by_hop)
    assert in_call.states == hop_by_hop.states
    assert outputs(cold) == outputs(hop_by_hop)
    assert cold.states == hop_by_hop.states


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    chain_seed=st.integers(0, 2**32),
    order_seed=st.integers(0, 2**32),
    batch=st.integers(1, 60),
    share=st.integers(0, 3),
)
def test_local_messages_in_any_order_and_any_share_publish_what_hop_by_hop_does(
    chain_seed: int, order_seed: int, batch: int, share: int
) -> None:
    """Events in any order, batches of any size, any share of the keys local: the documents
    are those of hop-by-hop delivery in the events' own order (what an entity remembers of
    how its messages came, such as the revision of the last notice it sent, may differ)."""
    events = loop_events(chain_seed)
    hop_by_hop = LocalLedger(Config(grace_ms=60_000))
    hop_by_hop.submit(events)
    hop_by_hop.run(batch=50)
    hop_by_hop.advance(60_000)

    def local(key: str) -> bool:  # every key, or about a quarter, half or three quarters
        return share == 0 or zlib.crc32(key.encode()) % 4 < share

    order = random.Random(order_seed)
    shuffled = list(events)
    order.shuffle(shuffled)
    for ledger in (
        LocalLedger(Config(grace_ms=60_000), local=local),
        ColdLedger(Config(grace_ms=60_000), local=local),
    ):
        trickle(ledger, shuffled, order, batch)
        ledger.advance(60_000)
        assert outputs(ledger) == outputs(hop_by_hop)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(chain_seed=st.integers(0, 2**32), order_seed=st.integers(0, 2**32))
def test_health_readings_on_remembered_passports_match_a_cold_start(
    chain_seed: int, order_seed: int
) -> None:
    """Readings applied to states kept in memory (passport parts remembered) and to states
    decoded every batch publish the same passports, digests and alerts."""
    events = loop_events(chain_seed)
    order = random.Random(order_seed)
    settled = [e for e in events if not isinstance(e, UseCollectionEvent)]
    readings = [e for e in events if isinstance(e, UseCollectionEvent)]
    order.shuffle(readings)
    warm, cold = LocalLedger(Config(grace_ms=60_000)), ColdLedger(Config(grace_ms=60_000))
    for ledger in (warm, cold):
        ledger.submit(settled)
        ledger.run(batch=40)
    for start in range(0, len(readings), 3):
        for ledger in (warm, cold):
            ledger.submit(readings[start : start + 3])
            ledger.run(batch=7)
        assert warm.documents == cold.documents
    assert warm.states == cold.states
    for key, state in warm.states.items():
        if isinstance(state, BatteryState) and state.manufactured:
            assert_varying_fields_from_all_facts(key, state, warm.output("passports"))


def assert_varying_fields_from_all_facts(
    key: str, state: BatteryState, passports: dict[str, Any]
) -> None:
    """The fields a reading changes, worked out from every fact at once."""
    passport = passports[key.split("/", 1)[1]]
    made = state.manufactured[min(state.manufactured)]
    timeline = status_timeline(state, made)
    assert passport["status"] == timeline[-1][2]
    readings = [u for u in state.uses.values() if u.state_of_health is not None]
    readings += [state.latest_health] if state.latest_health is not None else []
    latest = max(readings, key=lambda u: (u.occurred_at, u.event_id), default=None)
    assert passport["state_of_health"] == (latest.state_of_health if latest else None)
    facts = [*state.manufactured.values(), *state.uses.values(), *state.shipments.values()]
    facts += [*state.shredded.values(), *state.parents.values(), *readings]
    upstream = [r for held in state.inputs.values() for r in held.profile.regions]
    assert set(passport["regions"]) == {f.region for f in facts} | set(upstream)
    assert passport["redacted"] == provenance.redacted_fields(facts, provenance.PASSPORT_SHOWS)


def cycle() -> list[Event]:
    """LOT-A refined from ore and LOT-B, LOT-B refined from LOT-A: a genealogy cycle."""

    def refining(n: int, output: str, inputs: list[tuple[str, str]]) -> RefiningEvent:
        return RefiningEvent(
            **_env(n, 20 + n, REFINER, "BPNS0000000REF01"),
            batch_id=f"REF-{n}",
            process="hydrometallurgical",
            inputs=[{"lot_id": lot, "mass_kg": Decimal(kg)} for lot, kg in inputs],
            outputs=[
                {
                    "lot_id": output,
                    "form": "refined",
                    "material": "nickel sulphate",
                    "mass_kg": Decimal("10"),
                    "composition": {"nickel": Decimal("0.2")},
                }
            ],
        )

    reference = scenarios.reference()
    ore = [e for e in reference if e.event_type in ("certification", "extraction")]
    return [
        *ore,
        refining(1, "LOT-A", [("ORE-NI-1", "20"), ("LOT-B", "1")]),
        refining(2, "LOT-B", [("LOT-A", "5")]),
    ]


def test_a_genealogy_cycle_settles_within_one_call_as_it_does_hop_by_hop() -> None:
    hop_by_hop = LocalLedger(Config(grace_ms=60_000))
    hop_by_hop.submit(cycle())
    batches = hop_by_hop.run(batch=1000)
    assert batches > engine.MAX_GENEALOGY_DEPTH  # one hop per batch, round the cycle
    ledger = LocalLedger(Config(grace_ms=60_000), local=lambda key: True)
    ledger.submit(cycle())
    assert ledger.run(batch=1000) == 1
    assert outputs(ledger) == outputs(hop_by_hop)
    assert ledger.states == hop_by_hop.states
    assert ledger.output("alerts")["genealogy-cycle/lot/LOT-A"]["status"] == "open"


def test_rounds_that_would_not_settle_stop_with_the_keys_still_receiving(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(engine, "MAX_ROUNDS", 20)
    with pytest.raises(UnsettledError, match=r"after 20 rounds, to \d+ keys \(first: lot/LOT-"):
        process_batch(route_batch(cycle()), {}.get, 0, Config(), local=lambda key: True)


def test_only_messages_to_other_keys_are_returned() -> None:
    def local(key: str) -> bool:
        return not key.startswith("recycled-content/")

    states, fx = process_batch(route_batch(scenarios.reference()), {}.get, 0, Config(), local=local)
    assert fx.messages and all(key.startswith("recycled-content/") for key, _ in fx.messages)
    # Every entity touched in any round is returned: PACK-1 heard from NISO4-1 in a later one.
    assert {"lot/NISO4-1", "battery/PACK-1", "lot/ORE-NI-1"} <= set(states)
    passports = {key for output, key, _ in fx.published if output == "passports"}
    assert passports == {"PACK-1", "OLD-PACK-1"}
    pack = next(d for o, k, d in fx.published if (o, k) == ("passports", "PACK-1"))
    assert pack["materials"]["nickel"]["recycled_share"] == "0.150000"  # profile arrived


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@given(json_values)
def test_canonical_json_is_the_standard_librarys(document: Any) -> None:
    expected = json.dumps(document, sort_keys=True, separators=(",", ":")).encode()
    assert canonical_json(document) == expected


@given(st.text(alphabet=st.characters(max_codepoint=0x7F)), st.integers(-(2**80), 2**80))
def test_canonical_json_of_ascii_and_big_integers(text: str, number: int) -> None:
    document = {"b": text, "a": [number, None, True], text: {"z": 1, "y": text}}
    expected = json.dumps(document, sort_keys=True, separators=(",", ":")).encode()
    assert canonical_json(document) == expected


certification_facts = st.builds(
    Certification,
    event_id=st.sampled_from(["e1", "e2", "e3", "e4", "e5", "e6"]),
    event_type=st.just("certification"),
    occurred_at=st.integers(0, 30),
    operator_id=st.just("BPNL0000000PCK01"),
    site_id=st.just("S"),
    region=st.just("EU"),
    action=st.sampled_from(["certified", "certified", "revoked"]),
    scheme_region=st.sampled_from(["EU", "JP"]),
    scheme=st.sampled_from(["Catena-X", "Ouranos"]),
    certificate_id=st.just("C-1"),
    valid_until=st.none() | st.integers(0, 30),
)


@given(st.lists(certification_facts, max_size=8), st.integers(-2, 35))
def test_covered_intervals_answer_as_the_standing_facts_do(
    facts: list[Certification], at: int
) -> None:
    unique = list({f.event_id: f for f in facts}.values())  # one fact per event id
    timeline = CertificationTimeline(unique)
    assert timeline.covers(at) == (timeline.covering(at) is not None)


def test_old_accepted_events_fold_into_their_hours_in_one_pass() -> None:
    hour = 3600 * 10**6
    state = OperatorState(
        accepted={
            f"e{i:05d}": AcceptedEvent((i % 7) * hour + i, "use_collection", f"battery/B{i}")
            for i in range(ACCEPTED_DETAIL + 500)
        }
    )
    by_time = sorted(state.accepted.items(), key=lambda kv: (kv[1].occurred_at, kv[0]))
    kept, folded = dict(by_time[500:]), by_time[:500]
    _fold_accepted(state)
    assert state.accepted == kept
    for h in range(7):
        times = [e.occurred_at for _, e in folded if e.occurred_at // hour == h]
        if times:
            expected = AcceptedHour(len(times), min(times), max(times))
            assert state.accepted_by_hour[str(h)] == expected
    assert sum(h.count for h in state.accepted_by_hour.values()) == 500
