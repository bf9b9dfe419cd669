"""Produce rate of the event SDK against raw confluent-kafka, same broker, same run.

    python bench/produce_rate.py [--events N] [--backend tansu|noida]

Three ways to publish the same N manufacture events to one embedded broker:
  raw      confluent-kafka Producer with bytes encoded beforehand (the ceiling)
  encode   confluent-kafka Producer + our serde on records already shaped (no validation)
  sdk      EventProducer.publish(event) on pydantic events (serde + keying + safety settings)
Events are built before timing starts; the timer covers produce + flush.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench.workload

from bench.workload import batteries, lot_inputs  # noqa: E402
from connectors.ingest.producer import DEFAULTS, ENFORCED, EventProducer  # noqa: E402
from connectors.kafka import clients  # noqa: E402
from connectors.kafka.admin import create_missing  # noqa: E402
from connectors.kafka.embedded import BACKENDS, EmbeddedBroker  # noqa: E402
from schemas.events import ManufactureEvent  # noqa: E402
from schemas.serde import Serde  # noqa: E402
from schemas.topics import EVENT_TOPICS  # noqa: E402


def make_events(n: int) -> list[ManufactureEvent]:
    return batteries(
        n,
        "1180301018771",
        "JP-CELL-PLANT-1",
        "JP-CELL-{i:08d}",
        "cell",
        "0.9",
        "0.224",
        lot_inputs("1.2", "0.2"),
    )


def timed(label: str, n: int, fn) -> float:
    start = time.perf_counter()
    fn()
    rate = n / (time.perf_counter() - start)
    print(f"  {label:8} {rate:>10,.0f} events/s")
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--backend", choices=sorted(BACKENDS), default="tansu")
    args = parser.parse_args()
    n = args.events
    events = make_events(n)
    topic = EVENT_TOPICS["manufacture"].name
    serde = Serde()
    records = [e.model_dump() for e in events]
    encoded = [(e.key().encode(), serde.encode(e, topic)) for e in events]

    with EmbeddedBroker(backend=args.backend) as broker:
        config = {"bootstrap.servers": broker.bootstrap}
        create_missing(config)
        print(f"{n:,} manufacture events ({len(encoded[0][1])} bytes each) to {args.backend}")

        def produce_all(items):
            producer = clients.producer({**config, **DEFAULTS, **ENFORCED})
            for key, value in items:
                clients.produce(producer, topic, value, key)
                producer.poll(0)
            assert producer.flush(60) == 0

        raw = timed("raw", n, lambda: produce_all(encoded))
        enc = timed(
            "encode",
            n,
            lambda: produce_all(
                (e.key().encode(), serde.encode_record("manufacture", r, topic))
                for e, r in zip(events, records, strict=True)
            ),
        )

        def sdk_run():
            with EventProducer(config, serde) as producer:
                for event in events:
                    producer.publish(event)

        sdk = timed("sdk", n, sdk_run)
        print(f"  ratios: encode/raw {enc / raw:.2f}, sdk/raw {sdk / raw:.2f}")


if __name__ == "__main__":
    main()
