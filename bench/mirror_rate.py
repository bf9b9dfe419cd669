"""Mirror throughput against a raw consume->produce copy, same brokers, same run.

    python bench/mirror_rate.py [--events N] [--backend tansu|noida]

N manufacture events (two inputs each, one with a supplier id, price and contract volume to
redact) from a certified operator are published to an embedded EU broker first. Then:
  raw     confluent-kafka consumer -> producer, bytes copied as they are, same partition (what
          MirrorMaker 2 does; the ceiling)
  mirror  the mirror agent: decode, validate, certification check, redact, encode under the
          shared schema, provenance headers, checkpoints
Both read from the start of the source topic and count until every record is acknowledged
by the JP broker; the mirror's rate is measured from its first mirrored record (its recovery
before that is timed separately). Then the per-record cost of each mirror step, in process.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
import timeit
import uuid
from datetime import UTC, datetime
from pathlib import Path

from confluent_kafka import OFFSET_BEGINNING, KafkaError, TopicPartition
from prometheus_client import CollectorRegistry

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench.workload, tests.scenarios

from bench.workload import batteries, lot_inputs  # noqa: E402
from connectors.kafka import clients  # noqa: E402
from connectors.kafka.admin import create_missing  # noqa: E402
from connectors.kafka.embedded import BACKENDS, two_regions  # noqa: E402
from connectors.mirror import policy as sharing  # noqa: E402
from connectors.mirror.agent import MirrorAgent, MirrorMetrics  # noqa: E402
from connectors.mirror.options import MirrorOptions  # noqa: E402
from schemas.events import EVENT_MODELS, ManufactureEvent  # noqa: E402
from schemas.serde import Serde  # noqa: E402
from schemas.topics import EVENT_PARTITIONS, EVENT_TOPICS  # noqa: E402
from schemas.values import Region  # noqa: E402
from tests import scenarios  # noqa: E402

OPERATOR = "BPNL0000000PCK01"


def events(n: int) -> list[ManufactureEvent]:
    return batteries(
        n,
        OPERATOR,
        "BPNS0000000PCK01",
        "EU-PACK-{i:08d}",
        "pack",
        "420",
        "75",
        lot_inputs("20", "3", confidential=True),
    )


def publish(bootstrap: str, values: list[tuple[str, bytes, bytes]]) -> None:
    producer = clients.producer({"bootstrap.servers": bootstrap, "linger.ms": 20})
    for topic, key, value in values:
        clients.produce(producer, topic, value, key)
    producer.flush()


def raw_copy(source: str, target: str, topic: str, n: int) -> float:
    consumer = clients.consumer(
        {
            "bootstrap.servers": source,
            "group.id": f"raw-{uuid.uuid4()}",
            "enable.auto.commit": False,
        }
    )
    producer = clients.producer(
        {
            "bootstrap.servers": target,
            "linger.ms": 5,
            "compression.type": "lz4",
            "acks": "all",
            "enable.idempotence": True,
        }
    )
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(EVENT_PARTITIONS)])
    copied = 0
    start = time.perf_counter()
    while copied < n:
        for m in consumer.consume(5000, 0.5):
            if m.error() is not None:
                if m.error().code() != KafkaError._PARTITION_EOF:
                    raise RuntimeError(m.error().str())
                continue
            clients.produce(
                producer,
                "raw-copy." + topic,
                m.value(),
                m.key(),
                partition=m.partition(),
                headers=m.headers(),
                timestamp=m.timestamp()[1],
            )
            copied += 1
        producer.poll(0)
    producer.flush()
    elapsed = time.perf_counter() - start
    consumer.close()
    return n / elapsed


def mirror(policy: sharing.SharingPolicy, source: str, target: str, n: int) -> tuple[float, float]:
    agent = MirrorAgent(
        MirrorOptions(policy, {"bootstrap.servers": source}, {"bootstrap.servers": target}),
        MirrorMetrics(CollectorRegistry()),
    )
    stop = threading.Event()
    thread = threading.Thread(target=agent.run, args=(stop,))
    began = time.perf_counter()
    thread.start()
    first = None
    first_count = 0
    while agent.totals.mirrored + agent.totals.filtered < n + 1:  # + the certification
        time.sleep(0.005)
        if first is None and agent.totals.mirrored:
            first, first_count = time.perf_counter(), agent.totals.mirrored
    stop.set()  # the last checkpoint waits for every acknowledgement
    thread.join()
    done = time.perf_counter()
    assert first is not None
    return (agent.totals.mirrored - first_count) / (done - first), first - began


def steps(policy: sharing.SharingPolicy, sample: list[ManufactureEvent]) -> None:
    serde = Serde()
    topic = EVENT_TOPICS["manufacture"].name
    blobs = [serde.encode(e, topic) for e in sample]
    records = [serde.decode(b)[1] for b in blobs]
    shared = [policy.redact("manufacture", r) for r in records]
    schema = policy.shared_schemas["manufacture"]
    model = EVENT_MODELS["manufacture"]
    k = len(sample)

    def cost(fn) -> float:
        return min(timeit.repeat(fn, number=1, repeat=3)) / k * 1e6

    print("per record, in process:")
    print(f"  decode   {cost(lambda: [serde.decode(b) for b in blobs]):6.1f} µs")
    print(f"  validate {cost(lambda: [model.model_validate(r) for r in records]):6.1f} µs")
    print(f"  redact   {cost(lambda: [policy.redact('manufacture', r) for r in records]):6.1f} µs")
    print(f"  encode   {cost(lambda: [serde.encode_as(schema, s, 'x') for s in shared]):6.1f} µs")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--backend", choices=sorted(BACKENDS), default="tansu")
    args = parser.parse_args()
    policy = sharing.load(sharing.shipped("eu-to-jp"), b"benchmark-agreement-secret")
    serde = Serde()
    sample = events(args.events)
    cert = scenarios.certification(OPERATOR, datetime(2030, 1, 1, tzinfo=UTC), "CX-BENCH")
    topic = EVENT_TOPICS["manufacture"].name
    values = [(topic, e.key().encode(), serde.encode(e, topic)) for e in sample]
    cert_topic = EVENT_TOPICS["certification"].name
    values.append((cert_topic, cert.key().encode(), serde.encode(cert, cert_topic)))
    with two_regions(args.backend) as brokers:
        eu, jp = brokers[Region.EU].bootstrap, brokers[Region.JP].bootstrap
        for b in (eu, jp):
            create_missing({"bootstrap.servers": b})
        publish(eu, values)
        from confluent_kafka.admin import NewTopic

        admin = clients.admin({"bootstrap.servers": jp})  # kept alive until the topic exists
        created = admin.create_topics([NewTopic("raw-copy." + topic, EVENT_PARTITIONS, 1)])
        for future in created.values():
            future.result()
        print(f"{args.events:,} manufacture events, {args.backend}, EU -> JP")
        raw = raw_copy(eu, jp, topic, args.events)
        print(f"  raw copy {raw:>10,.0f} events/s")
        rate, startup = mirror(policy, eu, jp, args.events)
        share = f"{rate / raw:.2f} of raw; recovery {startup:.1f} s"
        print(f"  mirror   {rate:>10,.0f} events/s  ({share})")
    steps(policy, sample[:5000])


if __name__ == "__main__":
    main()
