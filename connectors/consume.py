"""Reading topics back without a consumer group (no group join wait, no committed offsets)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable, Mapping

from confluent_kafka import OFFSET_BEGINNING, Consumer, Message, TopicPartition


def read_from_start(
    config: Mapping[str, str],
    topics: Iterable[str],
    expected: int,
    timeout: float = 30.0,
    keep: Callable[[Message], bool] | None = None,
) -> list[Message]:
    """Every record of ``topics`` from the beginning (that ``keep`` accepts, if given), until
    ``expected`` have arrived.

    Stops at ``expected`` records or after ``timeout`` seconds, whichever comes first; the
    caller compares the count. Counting what arrives, rather than trusting the broker's end
    offsets, works on brokers whose ListOffsets answer is wrong.
    """
    consumer = Consumer(
        {
            **config,
            "group.id": f"batteryloop-reader-{uuid.uuid4()}",
            "enable.auto.commit": False,
            "enable.partition.eof": False,
        }
    )
    try:
        metadata = consumer.list_topics(timeout=10)
        partitions = [
            TopicPartition(t, p, OFFSET_BEGINNING)
            for t in topics
            if t in metadata.topics
            for p in metadata.topics[t].partitions
        ]
        consumer.assign(partitions)
        records: list[Message] = []
        deadline = time.monotonic() + timeout
        while len(records) < expected and time.monotonic() < deadline:
            for message in consumer.consume(1000, 0.2):
                if message.error() is None and (keep is None or keep(message)):
                    records.append(message)
        return records
    finally:
        consumer.close()
