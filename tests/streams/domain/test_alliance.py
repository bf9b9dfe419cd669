"""One ledger across the alliance: each region's ledger, fed its own events and the partner's
as the shipped policies share them, ends with the figures of one ledger over every event.

The partner's events go through what the worker does with a mirrored record: redacted under
the shipped policy, encoded with the shared schema, decoded by a serde that knows both
directions' shared schemas, validated as the model, and handed over with the agreement and
the redacted paths (:class:`streams.domain.routing.Received`).
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.mirror import policy as sharing
from schemas.events import EVENT_MODELS, Event, ExtractionEvent, ManufactureEvent
from schemas.serde import Serde
from schemas.topics import event_topic_name, mirrored_topic_name
from streams.domain.entities import Config
from streams.domain.local import LocalLedger
from streams.domain.messages import SharedUnder
from streams.domain.routing import Received
from tests import scenarios
from tests.scenarios import uid

SECRET = b"an agreement secret for the tests"
REGIONS = ("EU", "JP")
GRACE_MS = 60_000
#: Outputs compared between the regions and the reference.
OUTPUTS = ("passports", "lots", "recycled-content", "recovery")
#: Document fields that differ between ledgers by design.
BY_DESIGN = frozenset({"replica", "shared_under"})
POLICIES = {d: sharing.load(sharing.shipped(d), SECRET) for d in sharing.SHIPPED}
SERDE = Serde(shared=[s for p in POLICIES.values() for s in p.shared_schemas.values()])


def partner() -> dict[str, str]:
    return {"EU": "JP", "JP": "EU"}


def as_mirrored(event: Event, to: str) -> Received:
    """``event`` as the ledger of region ``to`` receives it from the partner's mirror."""
    policy = POLICIES[sharing.direction(event.region.value, to)]
    detailed = policy.redact_detailed(event.event_type, event.model_dump())
    assert detailed is not None, f"{event.event_type} is not shared"
    record, paths = detailed
    topic = mirrored_topic_name(event.region.value, event.event_type)
    data = SERDE.encode_as(policy.shared_schemas[event.event_type], record, topic)
    event_type, decoded = SERDE.decode(data, topic=topic)
    shared = EVENT_MODELS[event_type].model_validate(decoded)
    return Received(shared, SharedUnder(policy.name, policy.direction), tuple(paths))


def as_decoded(event: Event) -> Event:
    """``event`` as a worker decodes it from its own region's topic (the Avro round trip
    gives decimals their schema's scale: capacity 0.3 reads as 0.300)."""
    return SERDE.decode_event(SERDE.encode(event, event_topic_name(event.event_type)))


def reference(events: list[Event]) -> LocalLedger:
    ledger = LocalLedger(Config(grace_ms=GRACE_MS))
    ledger.submit(events)
    ledger.run()
    ledger.advance(GRACE_MS)
    return ledger


def chunks(items: list[Any], rng: random.Random, count: int) -> list[list[Any]]:
    cuts = sorted(rng.randrange(len(items) + 1) for _ in range(count - 1))
    bounds = [0, *cuts, len(items)]
    return [items[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]


def regional(
    events: list[Event],
    region: str,
    rng: random.Random,
    *,
    duplicates: float,
    both_paths: float,
    delay_after: int,
    own_chunks: int,
    tick_ms: int,
) -> LocalLedger:
    """The ledger of ``region``: its own events (plus a share of the partner's a producer
    published here too), the partner's mirrored copies arriving after ``delay_after`` chunks
    of its own, duplicates, random order within each stream, ticks between chunks."""
    own: list[Event | Received] = [e for e in events if e.region.value == region]
    # A producer of the partner region that also publishes here publishes its operators'
    # certifications here too (an event waiting for a certification that comes only later
    # is the certification rules' subject, not this test's).
    own += [
        e
        for e in events
        if e.region.value != region
        and (rng.random() < both_paths or (both_paths and e.event_type == "certification"))
    ]
    mirrored: list[Event | Received] = [
        as_mirrored(e, region) for e in events if e.region.value != region
    ]
    streams = []
    for stream in (own, mirrored):
        stream = stream + [x for x in stream if rng.random() < duplicates]
        rng.shuffle(stream)
        # A region's certifications come first: they are its operators' standing, not the
        # subject of this test (see the mirror for certifications arriving late).
        stream.sort(key=lambda x: _event(x).event_type != "certification")
        streams.append(stream)
    own_parts = chunks(streams[0], rng, own_chunks)
    partner_parts = chunks(streams[1], rng, rng.randint(1, 3))
    at = min(delay_after, len(own_parts))
    arrivals = own_parts[:at] + partner_parts + own_parts[at:]
    ledger = LocalLedger(Config(grace_ms=GRACE_MS, region=region))
    for part in arrivals:
        ledger.submit(part)
        ledger.run(rng=rng, batch=rng.randint(1, 8))
        ledger.advance(tick_ms)
    ledger.advance(GRACE_MS)
    return ledger


def _event(x: Event | Received) -> Event:
    return x.event if isinstance(x, Received) else x


def comparable(document: dict[str, Any]) -> dict[str, Any]:
    """A document without the fields that differ by design: ``replica``, ``shared_under``
    and every field marked redacted."""
    hidden = BY_DESIGN | set(document.get("redacted", ()))
    return {k: v for k, v in document.items() if k not in hidden}


def open_alerts(ledger: LocalLedger) -> dict[str, Any]:
    return {k: a for k, a in ledger.output("alerts").items() if a["status"] == "open"}


def assert_same_ledger(ledgers: dict[str, LocalLedger], ref: LocalLedger) -> None:
    for output in OUTPUTS:
        expected = {k: comparable(d) for k, d in ref.output(output).items()}
        assert expected, f"the reference published no {output}"
        for region, ledger in ledgers.items():
            got = {k: comparable(d) for k, d in ledger.output(output).items()}
            assert got == expected, f"{region} {output} differ in {_differing(got, expected)}"
            for doc in ledger.output(output).values():
                if "home_region" in doc:
                    assert doc["replica"] is (doc["home_region"] != region)
    for region, ledger in ledgers.items():
        assert open_alerts(ledger) == open_alerts(ref), region
        # An alert the reference never raised was a wait for the partner's late data: it
        # must have resolved once the data came.
        for key, found in ledger.output("alerts").items():
            if key not in ref.output("alerts"):
                assert found["status"] == "resolved", (region, key, found)
                assert found["kind"] == "unresolved_reference", (region, key, found)


def _differing(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    return sorted(k for k in {*a, *b} if a.get(k) != b.get(k))[:5]


def alliance(rng: random.Random, loops: int) -> Iterator[Event]:
    for k in range(loops):
        split = {role: rng.choice(REGIONS) for role in scenarios.ROLES}
        yield from scenarios.random_loop(rng, 100_000 + 20_000 * k, certify=k == 0, split=split)


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    seed=st.integers(0, 2**32 - 1),
    loops=st.integers(1, 2),
    duplicates=st.sampled_from([0.0, 0.2, 0.5]),
    both_paths=st.sampled_from([0.0, 0.0, 0.3]),
    delay_after=st.integers(0, 4),
    own_chunks=st.integers(1, 4),
    tick_ms=st.sampled_from([0, GRACE_MS // 2, GRACE_MS * 2]),
)
def test_each_region_ends_with_the_figures_of_one_ledger_over_every_event(
    seed: int,
    loops: int,
    duplicates: float,
    both_paths: float,
    delay_after: int,
    own_chunks: int,
    tick_ms: int,
) -> None:
    rng = random.Random(seed)
    events = [as_decoded(e) for e in alliance(rng, loops)]
    ledgers = {
        region: regional(
            events,
            region,
            random.Random(rng.random()),
            duplicates=duplicates,
            both_paths=both_paths,
            delay_after=delay_after,
            own_chunks=own_chunks,
            tick_ms=tick_ms,
        )
        for region in REGIONS
    }
    assert_same_ledger(ledgers, reference(events))


def split_loop(seed: int = 7) -> list[Event]:
    """A loop whose miner and maker are Japanese and whose refiner and recycler European."""
    split = {"miner": "JP", "refiner": "EU", "maker": "JP", "recycler": "EU"}
    return [as_decoded(e) for e in scenarios.random_loop(random.Random(seed), 100_000, split=split)]


def test_partner_data_an_hour_late_resolves_the_unresolved_reference_alert() -> None:
    events = split_loop()
    ledger = LocalLedger(Config(grace_ms=GRACE_MS, region="EU"))
    ledger.submit([e for e in events if e.region.value == "EU"])
    ledger.run()
    ledger.advance(3_600_000)  # the partner is down for an hour
    waiting = open_alerts(ledger)
    assert waiting and {a["kind"] for a in waiting.values()} == {"unresolved_reference"}
    ledger.submit([as_mirrored(e, "EU") for e in events if e.region.value == "JP"])
    ledger.run()
    ledger.advance(GRACE_MS)
    ref = reference(events)
    assert open_alerts(ledger) == open_alerts(ref)  # random compositions break mass balances
    assert "unresolved_reference" not in {a["kind"] for a in open_alerts(ledger).values()}
    assert {ledger.output("alerts")[k]["status"] for k in waiting} == {"resolved"}
    for output in OUTPUTS:
        assert {k: comparable(d) for k, d in ledger.output(output).items()} == {
            k: comparable(d) for k, d in ref.output(output).items()
        }


def test_documents_say_home_replica_regions_and_agreement() -> None:
    events = split_loop()
    eu = regional(events, "EU", random.Random(1), **_plain())
    jp = regional(events, "JP", random.Random(2), **_plain())
    cells = [e for e in events if isinstance(e, ManufactureEvent) and e.inputs]
    battery = cells[-1].battery_id  # second generation: recycled in the EU, made in JP
    in_eu, in_jp = eu.output("passports")[battery], jp.output("passports")[battery]
    assert (in_eu["home_region"], in_eu["replica"]) == ("JP", True)
    assert (in_jp["home_region"], in_jp["replica"]) == ("JP", False)
    assert in_eu["regions"] == in_jp["regions"] == ["EU", "JP"]
    agreement = POLICIES["jp-to-eu"].name
    assert in_eu["shared_under"] == [{"agreement": agreement, "direction": "jp-to-eu"}]
    assert in_jp["shared_under"] == []
    # The shipped policies drop confidential fields only, which no document shows.
    assert in_eu["redacted"] == in_jp["redacted"] == []
    ore = next(e for e in events if isinstance(e, ExtractionEvent)).lot_id
    assert eu.output("lots")[ore]["replica"] is True
    # Mined in JP, and debited by the EU refiner: the document rests on both regions' events.
    assert jp.output("lots")[ore]["regions"] == ["EU", "JP"]
    assert jp.output("lots")[ore]["home_region"] == "JP"


def _plain() -> dict[str, Any]:
    return {
        "duplicates": 0.0,
        "both_paths": 0.0,
        "delay_after": 1,
        "own_chunks": 1,
        "tick_ms": 0,
    }


def test_a_partner_event_contradicting_the_home_record_is_a_conflict_in_both_regions() -> None:
    events = split_loop()
    ore = next(e for e in events if isinstance(e, ExtractionEvent))
    assert ore.region.value == "JP"
    # An EU miner claims to have created the JP lot, with another composition.
    rival = ExtractionEvent.model_validate(
        {
            **ore.model_dump(),
            "event_id": uid(1),
            "region": "EU",
            "operator_id": scenarios.MINER,
            "site_id": "BPNS00000MINE999",
            "composition": {"cobalt": Decimal("0.001")},
        }
    )
    everything = [*events, rival]
    ledgers = {r: regional(everything, r, random.Random(3), **_plain()) for r in REGIONS}
    key = f"conflict/lot/{ore.lot_id}"
    found = {r: ledger.output("alerts")[key] for r, ledger in ledgers.items()}
    assert found["EU"] == found["JP"]
    assert found["EU"]["status"] == "open"
    assert found["EU"]["kind"] == "conflicting_events"
    assert found["EU"]["details"]["regions"] == ["EU", "JP"]
    assert found["EU"]["details"]["event_ids"] == sorted([str(uid(1)), str(ore.event_id)])
    # Both keep the same creation (the lowest event id) and name the same home region.
    lots = {r: ledger.output("lots")[ore.lot_id] for r, ledger in ledgers.items()}
    assert lots["EU"]["created_by"] == lots["JP"]["created_by"]
    assert lots["EU"]["home_region"] == lots["JP"]["home_region"] == "EU"


def test_a_copy_from_the_own_cluster_and_a_mirrored_copy_keep_the_same_fact_in_any_order() -> None:
    events = split_loop()
    refining = next(e for e in events if e.event_type == "refining" and e.region.value == "EU")
    supplied = [{**i.model_dump(), "supplier_id": "BPNL0000000SUP01"} for i in refining.inputs]
    with_supplier = type(refining).model_validate({**refining.model_dump(), "inputs": supplied})
    mirrored = as_mirrored(with_supplier, "JP")
    assert "inputs[].supplier_id" in mirrored.redacted
    states = []
    for order in ([with_supplier, mirrored], [mirrored, with_supplier]):
        ledger = LocalLedger(Config(grace_ms=GRACE_MS, region="JP"))
        for arrival in order:
            ledger.submit([arrival])
            ledger.run()
        states.append(ledger.states)
    assert states[0] == states[1]
    output = refining.outputs[0].lot_id
    assert states[0][f"lot/{output}"].created[str(refining.event_id)].shared is None
