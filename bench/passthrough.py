"""The raw passthrough reference (the limit of the telemetry job on this broker): a plain
confluent-kafka batch loop that decodes nothing, keeps the latest value per key of each batch
and produces one record per touched key per batch, flushed once per batch. A key is kept per
input topic: the order between two topics is not defined, so one topic's latest record must
not hide another's.

    python -m bench.passthrough --bootstrap HOST:PORT --topics T1,T2 --output TOPIC --group G

Runs until SIGTERM.
"""

from __future__ import annotations

import argparse
import signal
import sys
from types import FrameType

from connectors.kafka import clients


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topics", required=True, help="comma-separated input topics")
    parser.add_argument("--output", required=True)
    parser.add_argument("--group", required=True)
    args = parser.parse_args()
    stopping = False

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    consumer = clients.consumer(
        {
            "bootstrap.servers": args.bootstrap,
            "group.id": args.group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": True,
            "session.timeout.ms": 6000,
        }
    )
    producer = clients.producer(
        {"bootstrap.servers": args.bootstrap, "linger.ms": 5, "compression.type": "lz4"}
    )
    consumer.subscribe(args.topics.split(","))
    try:
        while not stopping:
            latest: dict[tuple[str, bytes], bytes] = {}
            for message in consumer.consume(5000, 0.1):
                topic, key, value = message.topic(), message.key(), message.value()
                if message.error() is None and topic and key is not None and value is not None:
                    latest[topic, key] = value
            for (_, key), value in latest.items():
                clients.produce(producer, args.output, value, key)
            if latest:
                producer.flush(30)
    finally:
        producer.flush(30)
        consumer.close()
    sys.exit(0)


if __name__ == "__main__":
    main()
