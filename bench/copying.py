"""The mirror and the producer SDK against their raw references, through the functions of
``bench/mirror_rate.py`` and ``bench/produce_rate.py`` (their own comparisons, same run)."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from confluent_kafka.admin import NewTopic  # type: ignore[attr-defined]

from bench import mirror_rate, produce_rate
from connectors.ingest.producer import DEFAULTS, ENFORCED, EventProducer
from connectors.kafka import clients
from connectors.kafka.admin import create_missing
from connectors.kafka.embedded import EmbeddedBroker, two_regions
from schemas.events import ManufactureEvent
from schemas.serde import Serde
from schemas.topics import EVENT_PARTITIONS, EVENT_TOPICS
from schemas.values import Region
from tests import scenarios

Record = tuple[str, bytes, bytes]


def mirror_values(n: int) -> list[Record]:
    """``n`` encoded manufacture events with confidential fields, and their maker's
    certification (built once for every run: building is slower than mirroring)."""
    serde = Serde()
    topic = EVENT_TOPICS["manufacture"].name
    values = [(topic, e.key().encode(), serde.encode(e, topic)) for e in mirror_rate.events(n)]
    cert = scenarios.certification(mirror_rate.OPERATOR, datetime(2030, 1, 1, tzinfo=UTC), "CX-B")
    cert_topic = EVENT_TOPICS["certification"].name
    values.append((cert_topic, cert.key().encode(), serde.encode(cert, cert_topic)))
    return values


def mirror_once(values: list[Record], backend: str) -> tuple[float, float]:
    """(mirror, raw copy) events per second on ``values``, one pair of fresh brokers."""
    topic = EVENT_TOPICS["manufacture"].name
    n = len(values) - 1  # the certification is not mirrored as an event of the count
    with two_regions(backend) as brokers:
        eu, jp = brokers[Region.EU].bootstrap, brokers[Region.JP].bootstrap
        for b in (eu, jp):
            create_missing({"bootstrap.servers": b})
        mirror_rate.publish(eu, values)
        admin = clients.admin({"bootstrap.servers": jp})
        for future in admin.create_topics(
            [NewTopic("raw-copy." + topic, EVENT_PARTITIONS, 1)]
        ).values():
            future.result()
        raw = mirror_rate.raw_copy(eu, jp, topic, n)
        rate, _ = mirror_rate.mirror(eu, jp, n, 1)
    return rate, raw


def sdk_events(n: int) -> tuple[list[ManufactureEvent], list[tuple[bytes, bytes]]]:
    """``bench/produce_rate.py``'s events, and the same encoded (built once for every run)."""
    events = produce_rate.make_events(n)
    topic = EVENT_TOPICS["manufacture"].name
    serde = Serde()
    return events, [(e.key().encode(), serde.encode(e, topic)) for e in events]


def sdk_once(
    events: list[ManufactureEvent], encoded: list[tuple[bytes, bytes]], backend: str
) -> tuple[float, float]:
    """(SDK ``publish``, raw produce of the same encoded events) events per second."""
    n = len(events)
    topic = EVENT_TOPICS["manufacture"].name
    serde = Serde()
    with EmbeddedBroker(backend=backend) as broker:
        config = {"bootstrap.servers": broker.bootstrap}
        create_missing(config)
        producer = clients.producer({**config, **DEFAULTS, **ENFORCED})
        start = time.perf_counter()
        for key, value in encoded:
            clients.produce(producer, topic, value, key)
            producer.poll(0)
        if producer.flush(60) != 0:
            raise RuntimeError("raw produce: records not acknowledged after 60 s")
        raw = n / (time.perf_counter() - start)
        start = time.perf_counter()
        with EventProducer(config, serde) as sdk:
            for event in events:
                sdk.publish(event)
        sdk_rate = n / (time.perf_counter() - start)
    return sdk_rate, raw
