"""Produce rate of the event SDK against raw confluent-kafka, same broker, same run.

    python bench/produce_rate.py [--events N] [--repeats R] [--backend tansu|noida]

Three ways to publish the same N manufacture events to one embedded broker:
  raw           confluent-kafka Producer with bytes encoded beforehand (the ceiling)
  publish       EventProducer.publish(event), one call per pydantic event
  publish_many  EventProducer.publish_many(events), the whole list in one call
The SDK runs encode (generated Avro writers), key and topic per event, with its safety
settings (acks=all, idempotence), which raw uses too. Events are built before timing starts;
the timer covers producer creation, produce and flush. The three run in turn, R rounds, so
that the machine's load changes touch all three alike; min/median/max per way.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
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

WAYS = ("raw", "publish", "publish_many")


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


def timed(n: int, fn: Callable[[], None]) -> float:
    start = time.perf_counter()
    fn()
    return n / (time.perf_counter() - start)


def rates(n: int, backend: str, repeats: int = 3) -> dict[str, list[float]]:
    """Events per second of each way, ``repeats`` rounds of the three in turn, one broker."""
    events = make_events(n)
    topic = EVENT_TOPICS["manufacture"].name
    serde = Serde()
    encoded = [(e.key().encode(), serde.encode(e, topic)) for e in events]
    out: dict[str, list[float]] = {way: [] for way in WAYS}
    with EmbeddedBroker(backend=backend) as broker:
        config = {"bootstrap.servers": broker.bootstrap}
        create_missing(config)

        def raw() -> None:
            producer = clients.producer({**config, **DEFAULTS, **ENFORCED})
            for key, value in encoded:
                clients.produce(producer, topic, value, key)
                producer.poll(0)
            if producer.flush(60) != 0:
                raise RuntimeError("raw produce: records not acknowledged after 60 s")

        def publish() -> None:
            with EventProducer(config, serde) as producer:
                for event in events:
                    producer.publish(event)

        def publish_many() -> None:
            with EventProducer(config, serde) as producer:
                report = producer.publish_many(events)
            if report.queued != n:
                raise RuntimeError(f"publish_many queued {report.queued} of {n}")

        ways = {"raw": raw, "publish": publish, "publish_many": publish_many}
        for _ in range(repeats):
            for way in WAYS:
                out[way].append(timed(n, ways[way]))
    return out


def spread(values: list[float]) -> str:
    return f"{min(values):>9,.0f} {statistics.median(values):>9,.0f} {max(values):>9,.0f}"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--backend", choices=sorted(BACKENDS), default="tansu")
    args = parser.parse_args()
    found = rates(args.events, args.backend, args.repeats)
    print(f"{args.events:,} manufacture events to {args.backend}, {args.repeats} rounds")
    print(f"  {'events/s':14} {'min':>9} {'median':>9} {'max':>9}")
    for way in WAYS:
        print(f"  {way:14} {spread(found[way])}")
    raw = statistics.median(found["raw"])
    for way in WAYS[1:]:
        ratios = [r / w for r, w in zip(found[way], found["raw"], strict=True)]
        print(
            f"  {way}/raw: median of medians {statistics.median(found[way]) / raw:.2f}, "
            f"per round {', '.join(f'{x:.2f}' for x in ratios)}"
        )


if __name__ == "__main__":
    main()
