"""Every event type published with the SDK and read back through a real broker."""

from __future__ import annotations

import io
import uuid
from collections import Counter
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.ingest.files import read_jsonl
from connectors.ingest.producer import BatchReport, DeliveryError, EventProducer, FailedDelivery
from connectors.ingest.publishing import publish_file
from connectors.kafka.admin import create_missing, describe
from connectors.kafka.consume import read_from_start
from connectors.kafka.embedded import EmbeddedBroker
from schemas.events import EVENT_TYPES, Event
from schemas.serde import Serde
from schemas.topics import ALL_TOPICS, EVENT_TOPICS
from schemas.values import Region
from tests import scenarios
from tests.integration.conftest import config, requires
from tests.strategies import events

pytestmark = pytest.mark.integration


def test_topics_are_provisioned_idempotently(broker: EmbeddedBroker) -> None:
    created, states = create_missing(config(broker))
    assert created == []  # the fixture created them already
    assert [s.spec.name for s in states] == [t.name for t in ALL_TOPICS]
    for state in states:
        assert state.exists and state.problems == []
        assert state.partitions == state.spec.partitions


@settings(
    max_examples=3, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.tuples(*(st.lists(events(t), min_size=1, max_size=4) for t in EVENT_TYPES)),
    st.sampled_from(["publish", "publish_many"]),
)
def test_every_event_type_round_trips_keyed_to_its_topic(
    broker: EmbeddedBroker, batch, way: str
) -> None:
    # fresh ids: events already on the topics from earlier examples are told apart by them
    sent = {
        e.event_id: e
        for es in batch
        for e in (x.model_copy(update={"event_id": uuid.uuid4()}) for x in es)
    }
    with EventProducer(config(broker)) as producer:
        publish(producer, way, list(sent.values()))
    assert producer.delivered == len(sent)

    serde = Serde()
    found = {}
    for message in read_from_start(
        config(broker),
        [t.name for t in EVENT_TOPICS.values()],
        len(sent),
        timeout=20,
        keep=lambda m: serde.decode(m.value())[1]["event_id"] in sent,
    ):
        event = serde.decode_event(
            message.value(),
            topic=message.topic(),
            partition=message.partition(),
            offset=message.offset(),
        )
        if event.event_id in sent:
            assert message.topic() == EVENT_TOPICS[event.event_type].name
            assert message.key() == event.key().encode()
            found[event.event_id] = (event, message.partition())
    assert {k: v[0] for k, v in found.items()} == sent
    # one key, one partition: all events of one lot or battery stay in order
    by_key: dict[tuple[str, str], set[int]] = {}
    for event, partition in found.values():
        by_key.setdefault((event.event_type, event.key()), set()).add(partition)
    assert all(len(p) == 1 for p in by_key.values())


@settings(
    max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(events("manufacture"), min_size=1, max_size=20),
    st.sampled_from(["publish", "publish_many"]),
)
def test_many_events_of_one_battery_keep_their_order(broker: EmbeddedBroker, evs, way) -> None:
    battery = f"B-{uuid.uuid4()}"
    ordered = [e.model_copy(update={"battery_id": battery}) for e in evs]
    with EventProducer(config(broker)) as producer:
        publish(producer, way, ordered)
    topic = EVENT_TOPICS["manufacture"].name
    serde = Serde()
    got = [
        serde.decode_event(m.value())
        for m in read_from_start(
            config(broker), [topic], len(ordered), 20, keep=lambda m: m.key() == battery.encode()
        )
    ]
    assert [e.event_id for e in got] == [e.event_id for e in ordered]


def publish(producer: EventProducer, way: str, events: list[Event]) -> None:
    if way == "publish_many":
        assert producer.publish_many(events) == BatchReport(queued=len(events))
    else:
        for event in events:
            producer.publish(event)


def test_publish_many_reports_refusals_and_failures_per_item(sample_event) -> None:
    too_big = sample_event.model_copy(update={"schema_version": 2**40})  # valid, not an Avro int
    broker = EmbeddedBroker(backend="tansu").start()
    failed: list[FailedDelivery] = []
    producer = EventProducer(
        {"bootstrap.servers": broker.bootstrap, "message.timeout.ms": "1500"},
        on_failure=failed.append,
    )
    broker.stop()
    report = producer.publish_many([sample_event, too_big, sample_event], ["a", "b", "c"])
    assert report.queued == 2
    [(index, reason)] = report.refused
    assert index == 1 and "does not fit an Avro int" in reason
    producer.flush(10)
    assert sorted(f.context for f in failed) == ["a", "c"]
    assert {f.topic for f in failed} == {"batteryloop.events.extraction"}


def test_delivery_failure_is_raised_not_swallowed(sample_event) -> None:
    broker = EmbeddedBroker(backend="tansu").start()
    producer = EventProducer({"bootstrap.servers": broker.bootstrap, "message.timeout.ms": "1500"})
    broker.stop()
    producer.publish(sample_event)
    with pytest.raises(DeliveryError) as info:
        producer.flush(10)
    assert info.value.failures and "batteryloop.events.extraction" in str(info.value)


def test_safety_settings_cannot_be_switched_off() -> None:
    with pytest.raises(ValueError, match="acks"):
        EventProducer({"bootstrap.servers": "127.0.0.1:1", "acks": "1"})


def test_aborted_transactions_stay_invisible_to_read_committed(broker: EmbeddedBroker) -> None:
    """What 'transactions' promises: the mirror may use them in addition where they work."""
    requires(broker, "transactions")
    topic = "batteryloop.test.transactions"
    create_missing(config(broker), [])
    producer = Producer({**config(broker), "transactional.id": f"t-{uuid.uuid4()}"})
    producer.init_transactions(10)
    producer.begin_transaction()
    producer.produce(topic, b"aborted")
    producer.flush()
    producer.abort_transaction(10)
    producer.begin_transaction()
    producer.produce(topic, b"committed")
    producer.commit_transaction(10)
    consumer = Consumer(
        {
            **config(broker),
            "group.id": f"g-{uuid.uuid4()}",
            "isolation.level": "read_committed",
            "auto.offset.reset": "earliest",
        }
    )
    consumer.assign([TopicPartition(topic, 0, 0)])
    seen = [m.value() for m in consumer.consume(10, 3) if m.error() is None]
    consumer.close()
    assert seen == [b"committed"]


def test_cluster_listing_reports_missing_topics() -> None:
    with EmbeddedBroker(backend="tansu") as empty:
        states = describe({"bootstrap.servers": empty.bootstrap})
    assert all(s.problems == ["missing"] for s in states)


def test_a_file_without_event_ids_published_twice_gives_the_same_ids(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    eu = [e for e in scenarios.reference() if e.region == Region.EU]
    lines = [(e.model_dump_json(exclude={"event_id"}) + "\n").encode() for e in eu]
    lines.insert(2, b'{"material": "qualit\xe9"}\n')  # not UTF-8: rejected, the rest published
    source = tmp_path / "no-ids.jsonl"
    source.write_bytes(b"".join(lines))
    expected = [e.event_id for _, e in read_jsonl(lines) if isinstance(e, Event)]
    assert len(expected) == len(eu) and set(expected).isdisjoint(e.event_id for e in eu)

    for _ in range(2):  # e.g. the run is repeated after a crash
        report = publish_file(source, lambda region: config(broker), err=io.StringIO())
        assert [(r.line, r.reason[:10]) for r in report.rejected] == [(3, "not UTF-8:")]
        assert report.total_published == len(eu) and not report.failed

    serde = Serde()
    records = read_from_start(
        config(broker),
        [t.name for t in EVENT_TOPICS.values()],
        2 * len(expected),
        timeout=20,
        keep=lambda m: serde.decode(m.value())[1]["event_id"] in expected,
    )
    published = Counter(serde.decode_event(m.value()).event_id for m in records)
    assert published == {event_id: 2 for event_id in expected}
