"""The mirror agent against real brokers, on both backends: exactly once through repeated
SIGKILLs, both directions at once without a record crossing twice, a partner outage without
loss, and no confidential byte on the target."""

from __future__ import annotations

import contextlib
import hashlib
import json
import random
import re
import threading
import time
import tomllib
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from connectors.ingest.producer import EventProducer
from connectors.kafka.admin import create_missing
from connectors.kafka.consume import latest_by_key
from connectors.kafka.embedded import BACKENDS, EmbeddedBroker
from connectors.mirror import policy as sharing
from connectors.mirror.agent import MirrorAgent, MirrorMetrics
from connectors.mirror.options import MirrorOptions
from connectors.mirror.replication import Flows, Provenance, parse_checkpoint
from schemas import catalog
from schemas.events import EVENT_MODELS, EVENT_TYPES, CertificationEvent, Event
from schemas.serde import Serde
from schemas.topics import MIRROR_CHECKPOINT_TOPIC, event_topic_name
from schemas.values import Region, corporate_number_check_digit
from tests import scenarios
from tests.scenarios import random_loop, uid
from tests.strategies import events as event_strategy

from .mirrors import SECRET, Landed, Mirror, eligible, wait_landed
from .workers import publish

EU, JP = Region.EU, Region.JP
UNCERTIFIED = "BPNL00000UNCERT1"


def workload(region: Region, loops: int, seed: int, first_id: int) -> list[Event]:
    """Closed loops published in ``region``: certified operators, one uncertified miner in every
    fifth loop, a few events of the other region, and a certification under the other
    region's scheme (not the source's to share)."""
    rng = random.Random(seed)
    other = JP if region is EU else EU
    events: list[Event] = []
    for k in range(loops):
        loop = random_loop(rng, first_id + k * 20_000, certify=k == 0)
        if k % 5 == 3:
            loop = [
                e.model_copy(update={"operator_id": UNCERTIFIED})
                if e.event_type == "extraction"
                else e
                for e in loop
            ]
        events += loop
    foreign = events[0]
    assert isinstance(foreign, CertificationEvent)
    events.append(foreign.model_copy(update={"event_id": uid(first_id - 1), "scheme_region": JP}))
    if region is JP:  # the same shapes, published on the other side
        events = [_swap(e) for e in events]
    assert any(e.region == other for e in events)
    return events


def _swap(event: Event) -> Event:
    """The event as the other region would publish it: its operators there have the other
    region's kind of id (an event's operator is a participant of its region's platform)."""
    update: dict[str, Any] = {
        "region": JP if event.region == EU else EU,
        "operator_id": _counterpart(event.operator_id),
    }
    if isinstance(event, CertificationEvent):
        update["scheme_region"] = JP if event.scheme_region == EU else EU
        update["subject_operator_id"] = _counterpart(event.subject_operator_id)
    return type(event).model_validate({**event.model_dump(), **update})


def _counterpart(operator: str) -> str:
    """A BPNL for a corporate number and the reverse, the same one every time."""
    if operator.startswith("BPNL"):
        base = f"{int(hashlib.sha256(operator.encode()).hexdigest(), 16) % 10**12:012d}"
        return f"{corporate_number_check_digit(base)}{base}"
    return f"BPNLJ{operator[2:]}"


def ids(events: list[Event]) -> list[str]:
    return [str(e.event_id) for e in events]


def assert_exactly_once(found: list[Landed], expected: list[Event], source: Region) -> None:
    counts = Counter(str(r.record["event_id"]) for r in found)
    twice = sorted(
        (str(r.record["event_id"]), r.origin.topic, r.origin.partition, r.origin.offset)
        for r in found
        if counts[str(r.record["event_id"])] > 1
    )
    assert twice == [], f"events landed twice: {twice[:6]}"
    assert set(counts) == set(ids(expected)), "the target differs from the eligible events"
    places = Counter((r.origin.topic, r.origin.partition, r.origin.offset) for r in found)
    assert max(places.values()) == 1
    direction = f"{source.value.lower()}-to-{_other(source)}"
    policy = sharing.load(sharing.shipped(direction), SECRET.encode())
    serde = Serde()
    by_id = {str(e.event_id): e for e in expected}
    for r in found:  # each record is the redacted source event, from its source, marked
        assert r.origin.region == source.value and r.origin.hops == 1
        assert r.topic == f"{source.value.lower()}.{event_topic_name(r.event_type)}"
        event = by_id[str(r.record["event_id"])]
        topic = event_topic_name(event.event_type)
        private = serde.decode(serde.encode(event, topic))[1]
        assert r.record == policy.redact(event.event_type, private)
        assert "batteryloop-recognised" in dict(r.headers)


def checkpointed_flows(target: EmbeddedBroker, source: Region) -> Flows:
    """The flows of every source partition, summed, as the latest checkpoints on the target
    have them."""
    total = Flows()
    raw = latest_by_key({"bootstrap.servers": target.bootstrap}, MIRROR_CHECKPOINT_TOPIC.name)
    for key, value in raw.items():
        parsed = parse_checkpoint(key, value)
        assert parsed is not None, (key, value)
        if parsed[0] == source.value:
            total.add(parsed[1].flows)
    return total


def assert_flows_exact(
    target: EmbeddedBroker, source: Region, events: list[Event], expected: list[Event]
) -> None:
    """The checkpoints count every record once: each published one decided (shared or
    filtered), the shared ones exactly those eligible, with the values their redaction
    removed; waiting first for the last records held by the grace period to be decided."""
    deadline = time.monotonic() + 60
    while True:
        flows = checkpointed_flows(target, source)
        decided = flows.shared + sum(flows.filtered.values())
        if decided >= len(events) or time.monotonic() > deadline:
            break
        time.sleep(1)
    direction = f"{source.value.lower()}-to-{_other(source)}"
    policy = sharing.load(sharing.shipped(direction), SECRET.encode())
    serde = Serde()
    redacted = 0
    for event in expected:
        private = serde.decode(serde.encode(event, event_topic_name(event.event_type)))[1]
        tallied = policy.redact_tallied(event.event_type, private)
        assert tallied is not None
        redacted += tallied[1].total
    assert (decided, flows.shared, flows.redacted) == (len(events), len(expected), redacted)
    assert flows.filtered.get("uncertified", 0) > 0, flows


def _other(region: Region) -> str:
    return "jp" if region is EU else "eu"


def test_exactly_once_through_repeated_sigkill(
    regions: dict[Region, EmbeddedBroker], tmp_path: Path
) -> None:
    eu, jp = regions[EU], regions[JP]
    events = workload(EU, loops=150, seed=7, first_id=1_000_000)
    expected = eligible(events, EU)
    assert 0 < len(expected) < len(events)
    done = threading.Event()

    def publish_slowly() -> None:  # the stream keeps flowing while the agent is killed
        with EventProducer({"bootstrap.servers": eu.bootstrap}) as producer:
            for i in range(0, len(events), 25):
                for event in events[i : i + 25]:
                    producer.publish(event)
                producer.flush()
                time.sleep(0.08)
        done.set()

    rng = random.Random(11)
    # Checkpoints far apart: most kills fall between records landing and their checkpoint.
    mirror = Mirror(eu, jp, tmp_path, checkpoint_interval=2.0)
    publisher = threading.Thread(target=publish_slowly)
    kills = 0
    try:
        publisher.start()
        while kills < 12 or not done.is_set():
            mirror.start()
            time.sleep(rng.uniform(1.0, 3.5))
            mirror.kill()
            kills += 1
        publisher.join()
        mirror.start()
        found = wait_landed(jp, EU, ids(expected), mirror=mirror)
        # while it runs: the last records held by the grace period get decided
        assert_flows_exact(jp, EU, events, expected)
    finally:
        mirror.stop()
        publisher.join()
    assert kills >= 10
    log = mirror.log_path.read_text()
    resumed = [int(n) for n in re.findall(r"(\d+) records already on the target", log)]
    # some kills fell between records landing and their checkpoint: recovery found them there
    assert sum(resumed) > 0, log[-3000:]
    assert_exactly_once(found, expected, EU)


def test_two_processes_split_the_partitions_exactly_once_through_repeated_sigkill(
    regions: dict[Region, EmbeddedBroker], tmp_path: Path
) -> None:
    """Two mirror processes of one direction, each with half the source partitions, each
    SIGKILLed at random points again and again while events keep flowing: the target ends with
    every shareable record exactly once. The certification gate of each sees every
    certification, also those in the other's partitions."""
    eu, jp = regions[EU], regions[JP]
    events = workload(EU, loops=120, seed=17, first_id=7_000_000)
    expected = eligible(events, EU)
    done = threading.Event()

    def publish_slowly() -> None:
        with EventProducer({"bootstrap.servers": eu.bootstrap}) as producer:
            for i in range(0, len(events), 25):
                for event in events[i : i + 25]:
                    producer.publish(event)
                producer.flush()
                # slow enough that the stream still flows while most of the kills land
                time.sleep(0.25)
        done.set()

    rng = random.Random(23)
    halves = ("0,2,4", "1,3,5")
    mirrors = [
        Mirror(eu, jp, tmp_path, "--partitions", share, checkpoint_interval=2.0, name=f"-{i}")
        for i, share in enumerate(halves)
    ]
    publisher = threading.Thread(target=publish_slowly)
    kills = Counter[int]()
    try:
        for mirror in mirrors:
            mirror.start()
        publisher.start()
        while min(kills.values(), default=0) < 6 or not done.is_set():
            time.sleep(rng.uniform(0.5, 2.0))
            victim = rng.randrange(2)
            mirrors[victim].kill()
            kills[victim] += 1
            mirrors[victim].start()
        publisher.join()
        found = wait_landed(jp, EU, ids(expected), mirror=mirrors[0])
        for mirror in mirrors:
            assert mirror.alive, mirror.log_tail()
    finally:
        for mirror in mirrors:
            mirror.stop()
        publisher.join()
    logs = [m.log_path.read_text() for m in mirrors]
    for log, share in zip(logs, halves, strict=True):
        assert f"partitions {share}" in log
        assert "Traceback" not in log, log[-3000:]
    resumed = [int(n) for log in logs for n in re.findall(r"(\d+) records already on", log)]
    assert sum(resumed) > 0, logs[0][-2000:] + logs[1][-2000:]
    assert {r.origin.partition for r in found} == set(range(6))
    assert_exactly_once(found, expected, EU)


def test_a_partition_no_topic_has_is_refused(
    regions: dict[Region, EmbeddedBroker], tmp_path: Path
) -> None:
    eu, jp = regions[EU], regions[JP]
    mirror = Mirror(eu, jp, tmp_path, "--partitions", "1,6-7").start()
    assert mirror.process is not None
    assert mirror.process.wait(60) == 2, mirror.log_tail()
    assert "no mirrored topic of the source cluster has partition 6, 7" in mirror.log_tail()


def test_both_directions_at_once_no_record_crosses_twice(
    regions: dict[Region, EmbeddedBroker], tmp_path: Path
) -> None:
    eu, jp = regions[EU], regions[JP]
    eu_events = workload(EU, loops=20, seed=1, first_id=2_000_000)
    jp_events = workload(JP, loops=20, seed=2, first_id=3_000_000)
    # An event of the EU side that carries provenance from JP (as if a mirrored record had been
    # republished into the source topic): it came from JP and must not go back there.
    bounced = next(e for e in eligible(eu_events, EU) if e.event_type == "manufacture")
    bounced = bounced.model_copy(update={"event_id": uid(2_999_999)})
    serde = Serde()
    topic = event_topic_name(bounced.event_type)
    with Mirror(eu, jp, tmp_path) as there, Mirror(jp, eu, tmp_path) as back:
        publish(eu, eu_events)
        publish(jp, jp_events)
        with EventProducer({"bootstrap.servers": eu.bootstrap}) as producer:
            producer.publish_raw(
                topic,
                bounced.key().encode(),
                serde.encode(bounced, topic),
                Provenance("JP", "batteryloop.events.manufacture", 0, 7, 1).headers(),
            )
        on_jp = wait_landed(jp, EU, ids(eligible(eu_events, EU)), mirror=there)
        on_eu = wait_landed(eu, JP, ids(eligible(jp_events, JP)), mirror=back)
    assert_exactly_once(on_jp, eligible(eu_events, EU), EU)
    assert_exactly_once(on_eu, eligible(jp_events, JP), JP)
    assert str(bounced.event_id) not in {str(r.record["event_id"]) for r in on_jp}
    # nothing went round: no JP event came back to JP, no EU event back to EU
    assert not set(ids(jp_events)) & {str(r.record["event_id"]) for r in on_jp}
    assert not set(ids(eu_events)) & {str(r.record["event_id"]) for r in on_eu}
    from confluent_kafka.admin import AdminClient

    for broker in (eu, jp):
        names = AdminClient({"bootstrap.servers": broker.bootstrap}).list_topics(timeout=10).topics
        assert not [n for n in names if n.startswith(("eu.jp.", "jp.eu.", "eu.eu.", "jp.jp."))]


def test_partner_outage_loses_nothing(
    regions: dict[Region, EmbeddedBroker], tmp_path: Path
) -> None:
    eu, jp = regions[EU], regions[JP]
    first = workload(EU, loops=10, seed=3, first_id=4_000_000)
    second = workload(EU, loops=10, seed=4, first_id=4_500_000)
    with Mirror(
        eu, jp, tmp_path, "-T", "message.timeout.ms=2000", "-T", "reconnect.backoff.max.ms=500"
    ) as mirror:
        publish(eu, first)
        wait_landed(jp, EU, ids(eligible(first, EU)), mirror=mirror)
        assert mirror.metric("batteryloop_mirror_target_available") == 1
        port, data_dir, backend = jp.port, jp.data_dir, jp.backend
        jp.stop()
        publish(eu, second)  # the source side goes on as usual
        deadline = time.monotonic() + 60
        while mirror.metric("batteryloop_mirror_target_available") != 0:
            assert time.monotonic() < deadline, mirror.log_tail()
            time.sleep(0.3)
        time.sleep(2)  # down a while longer; the agent keeps retrying
        assert mirror.alive
        with EmbeddedBroker(JP, backend, port=port, data_dir=data_dir) as restarted:
            expected = eligible(first + second, EU)
            found = wait_landed(restarted, EU, ids(expected), mirror=mirror)
            assert mirror.metric("batteryloop_mirror_target_available") == 1
            mirror.stop()
    assert "unavailable" in mirror.log_path.read_text()
    assert_exactly_once(found, expected, EU)


def test_certifications_not_shared_still_gate_the_events_across_a_restart(
    regions: dict[Region, EmbeddedBroker], tmp_path: Path
) -> None:
    """A policy with certification ``share = false``: the agent used to crash on the first
    certification it read, and again on every restart. Now certifications stay home, are
    counted as not shared, and still let the certified operators' events through."""
    eu, jp = regions[EU], regions[JP]
    data = tomllib.loads(sharing.shipped("eu-to-jp").read_text())
    data["events"]["certification"] = {"share": False}
    policy_file = tmp_path / "no-certifications.toml"
    policy_file.write_text(_toml(data))
    first = workload(EU, loops=6, seed=5, first_id=5_000_000)
    second = workload(EU, loops=6, seed=6, first_id=5_500_000)
    mirror = Mirror(eu, jp, tmp_path, "--policy", str(policy_file))

    def events_only(events: list[Event]) -> list[Event]:
        return [e for e in eligible(events, EU) if e.event_type != "certification"]

    try:
        publish(eu, first)
        mirror.start()
        wait_landed(jp, EU, ids(events_only(first)), mirror=mirror)
        mirror.stop()  # and again, from the checkpoints, with more to mirror
        assert mirror.process is not None and mirror.process.returncode == 0, mirror.log_tail()
        publish(eu, second)
        mirror.start()
        expected = events_only(first + second)
        found = wait_landed(jp, EU, ids(expected), mirror=mirror)
        assert mirror.alive, mirror.log_tail()
        certifications = sum(1 for e in first + second if e.event_type == "certification")
        deadline = time.monotonic() + 10
        while (mirror.metric("batteryloop_mirror_filtered_total", reason="not_shared") or 0) < sum(
            1 for e in second if e.event_type == "certification"
        ):
            assert time.monotonic() < deadline, mirror.log_tail()
            time.sleep(0.3)
    finally:
        mirror.stop()
    assert certifications > 0
    assert "Traceback" not in mirror.log_path.read_text()
    assert_exactly_once(found, expected, EU)
    from confluent_kafka.admin import AdminClient

    topics = AdminClient({"bootstrap.servers": jp.bootstrap}).list_topics(timeout=10).topics
    assert "eu.batteryloop.events.certification" not in topics


def _toml(data: dict[str, Any]) -> str:
    """A policy as TOML (string, boolean and table values are all a policy has)."""
    lines: list[str] = []

    def table(prefix: str, section: dict[str, Any]) -> None:
        lines.append(f"[{prefix}]")
        nested = {k: v for k, v in section.items() if isinstance(v, dict)}
        for key, value in section.items():
            if not isinstance(value, dict):
                lines.append(f"{json.dumps(key)} = {json.dumps(value)}")
        for key, value in nested.items():
            table(f"{prefix}.{key}", value)

    for name, section in data.items():
        table(name, section)
    return "\n".join(lines) + "\n"


# --- no confidential byte reaches the target ----------------------------------------------------

CERTIFIED = "BPNL00000CERTOK1"
_SCALE = {"price": 4, "procurement_amount": 3}


@pytest.fixture(scope="module", params=sorted(BACKENDS))
def live_mirror(request: pytest.FixtureRequest) -> Iterator[dict[Region, EmbeddedBroker]]:
    """An agent running in this process for a whole module's examples."""
    with contextlib.ExitStack() as stack:
        brokers = {r: stack.enter_context(EmbeddedBroker(r, request.param)) for r in Region}
        for broker in brokers.values():
            create_missing({"bootstrap.servers": broker.bootstrap})
        certification = scenarios.certification(
            CERTIFIED, datetime(1980, 1, 1, tzinfo=UTC), "CX-LEAK-TEST"
        )
        publish(brokers[EU], [certification])
        policy = sharing.load(sharing.shipped("eu-to-jp"), SECRET.encode())
        options = MirrorOptions(
            policy,
            {"bootstrap.servers": brokers[EU].bootstrap},
            {"bootstrap.servers": brokers[JP].bootstrap},
            grace=0.5,
            checkpoint_interval=0.2,
        )
        agent = MirrorAgent(options, MirrorMetrics(CollectorRegistry()))
        stop = threading.Event()
        thread = threading.Thread(target=agent.run, args=(stop,))
        thread.start()
        try:
            yield brokers
        finally:
            stop.set()
            thread.join(30)


def _tokens(draw: st.DrawFn, kind: str) -> Any:
    if kind == "supplier_identity":
        return draw(st.from_regex(r"\ABPNL[A-Z0-9]{12}\Z"))
    unscaled = draw(st.integers(10**12, 10**15))
    amount = Decimal(unscaled).scaleb(-_SCALE[kind])
    if kind == "price":
        return {"amount": amount, "currency": draw(st.sampled_from(["EUR", "JPY", "USD"]))}
    return amount


@st.composite
def confidential_events(draw: st.DrawFn) -> list[Event]:
    """One or two events of every type, from a certified EU operator, with every confidential
    field set to a random value (drawn wide enough that it cannot turn up by chance)."""
    out = []
    for event_type in EVENT_TYPES:
        for event in draw(st.lists(event_strategy(event_type), min_size=1, max_size=2)):
            data = event.model_dump()
            data.update(operator_id=CERTIFIED, region="EU")
            if event_type == "certification":
                data["scheme_region"] = "EU"
            for path, kind in catalog.current(event_type).confidential_fields.items():
                head, _, leaf = path.partition("[].")
                if leaf:
                    for item in data[head]:
                        item[leaf] = _tokens(draw, kind)
                else:
                    data[head] = _tokens(draw, kind)
            out.append(EVENT_MODELS[event_type].model_validate(data))
    return out


def _secrets(event: Event) -> list[tuple[str, list[bytes]]]:
    """Each confidential value of ``event`` with the byte forms it could take on the wire: its
    text, and for a decimal the Avro encoding of its unscaled value."""
    data = event.model_dump()
    out = []
    for path, kind in catalog.current(event.event_type).confidential_fields.items():
        head, _, leaf = path.partition("[].")
        found = [item[leaf] for item in data[head]] if leaf else [data[head]]
        for value in found:
            if isinstance(value, dict):
                value = value["amount"]
            if isinstance(value, Decimal):
                out.append((str(value), [_unscaled(value, _SCALE[kind]), str(value).encode()]))
            elif value is not None:
                out.append((str(value), [str(value).encode()]))
    return out


@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(batch=confidential_events())
def test_no_confidential_byte_reaches_the_target(
    live_mirror: dict[Region, EmbeddedBroker], batch: list[Event]
) -> None:
    eu, jp = live_mirror[EU], live_mirror[JP]
    publish(eu, batch)
    mine = set(ids(batch))  # earlier examples' records may carry these values in the open
    on_target = [
        r
        for r in wait_landed(jp, EU, mine, timeout=60, settle=0)
        if str(r.record["event_id"]) in mine
    ]
    blobs = [
        b"".join([r.key or b"", r.value, *(k.encode() + v for k, v in r.headers)])
        for r in on_target
    ]
    # A value the batch also carries in a field that is not confidential (a supplier that is
    # certified in another event, say) may appear; no other confidential value may.
    public = [v for event in batch for v in _scalars(_public(event))]
    shared_anyway = {str(v) for v in public}
    # a public decimal at any schema scale (masses 3, money 4, shares 6) has the same bytes
    public_bytes = {_unscaled(v, n) for v in public if isinstance(v, Decimal) for n in (3, 4, 6)}
    public_bytes |= {text.encode() for text in shared_anyway}
    for event in batch:
        for text, forms in _secrets(event):
            if text in shared_anyway:
                continue
            for form in forms:
                # inside a public value's bytes it cannot be told apart: the unscaled bytes of
                # 2**47 - 1 (a price) are inside those of 2**55 - 1 (a public mass), say
                if any(form in p for p in public_bytes):
                    continue
                assert not any(form in blob for blob in blobs), (
                    f"a confidential value of {event.event_type} {event.event_id} is on the target"
                )


def _unscaled(value: Decimal, scale: int) -> bytes:
    """The Avro bytes of a decimal at ``scale``: its unscaled value, big-endian two's complement."""
    unscaled = int(value.scaleb(scale))
    return unscaled.to_bytes((unscaled.bit_length() + 8) // 8, "big", signed=True)


def _public(event: Event) -> dict[str, Any]:
    data = event.model_dump()
    for path in catalog.current(event.event_type).confidential_fields:
        head, _, leaf = path.partition("[].")
        if leaf:
            for item in data[head]:
                item.pop(leaf)
        else:
            data.pop(head)
    return data


def _scalars(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return [s for v in value.values() for s in _scalars(v)]
    if isinstance(value, list):
        return [s for v in value for s in _scalars(v)]
    return [value]


def test_an_operator_certified_only_under_the_partner_scheme_is_recognised(
    regions: dict[Region, EmbeddedBroker], tmp_path: Path
) -> None:
    """Mutual recognition at the gate: an EU company certified by the Ouranos scheme alone.
    Its certification reaches the EU cluster through the JP->EU mirror; the EU->JP mirror reads
    it there and lets the company's EU events cross, naming the JP certificate."""
    eu, jp = regions[EU], regions[JP]
    operator = "BPNL0000000MUT01"
    [certification] = scenarios.certifications([operator], start=6_100_000, regions=["JP"])
    assert isinstance(certification, CertificationEvent)
    ore = scenarios.reference()[4].model_copy(
        update={"event_id": uid(6_100_001), "operator_id": operator, "lot_id": "ORE-MUT-1"}
    )
    assert ore.event_type == "extraction" and ore.region is EU
    publish(jp, [certification])
    publish(eu, [ore])
    with Mirror(jp, eu, tmp_path) as back:
        # known on the EU cluster first: an event waits only --grace for its certification
        wait_landed(eu, JP, [str(certification.event_id)], mirror=back)
        with Mirror(eu, jp, tmp_path) as forth:
            found = wait_landed(jp, EU, [str(ore.event_id)], mirror=forth)
    [crossed] = [x for x in found if x.event_type == "extraction"]
    recognised = dict(crossed.headers)["batteryloop-recognised"]
    assert recognised == f"JP:{certification.certificate_id}".encode()
