"""Reading topics back without a consumer group (no group join wait, no committed offsets)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Message, TopicPartition

from connectors.kafka import clients


def reader(config: Mapping[str, str], **overrides: str | int | bool) -> Consumer:
    """A consumer that reads by assignment: a fresh group id, no commits, no EOF events
    (unless ``overrides``, librdkafka properties with underscores for dots, say otherwise)."""
    return clients.consumer(
        {
            **config,
            "group.id": f"batteryloop-reader-{uuid.uuid4()}",
            "enable.auto.commit": False,
            "enable.partition.eof": False,
            **{name.replace("_", "."): value for name, value in overrides.items()},
        }
    )


def assign_from_start(consumer: Consumer, topics: Iterable[str], metadata: Any) -> None:
    consumer.assign(
        [
            TopicPartition(t, p, OFFSET_BEGINNING)
            for t in topics
            if t in metadata.topics
            for p in metadata.topics[t].partitions
        ]
    )


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
    consumer = reader(config)
    try:
        assign_from_start(consumer, topics, consumer.list_topics(timeout=10))
        records: list[Message] = []
        deadline = time.monotonic() + timeout
        while len(records) < expected and time.monotonic() < deadline:
            for message in consumer.consume(1000, 0.2):
                if message.error() is None and (keep is None or keep(message)):
                    records.append(message)
        return records
    finally:
        consumer.close()


def latest_by_key(
    config: Mapping[str, str],
    topic: str,
    keys: Iterable[bytes] | None = None,
    idle: float = 1.5,
    timeout: float = 60.0,
) -> dict[bytes, bytes | None]:
    """The last value per key of a (compacted) topic, read from the start until ``idle`` seconds
    pass without a record. ``keys`` limits what is kept. Idleness, not end offsets, ends the
    read, for the same reason as above.
    """
    wanted = None if keys is None else set(keys)
    consumer = reader(config)
    try:
        metadata = consumer.list_topics(topic, timeout=10)
        if topic not in metadata.topics or metadata.topics[topic].error is not None:
            raise RuntimeError(f"topic {topic} does not exist (are the processors running?)")
        assign_from_start(consumer, [topic], metadata)
        latest: dict[bytes, bytes | None] = {}
        deadline = time.monotonic() + timeout
        quiet_since = time.monotonic()
        while time.monotonic() < deadline and time.monotonic() - quiet_since < idle:
            batch = consumer.consume(1000, 0.2)
            if batch:
                quiet_since = time.monotonic()
            for message in batch:
                key = message.key()
                if (
                    message.error() is None
                    and key is not None
                    and (wanted is None or key in wanted)
                ):
                    latest[key] = message.value()
        return latest
    finally:
        consumer.close()


class ReadIncomplete(RuntimeError):
    """A read to the end of partitions did not get there in time."""


def read_to_end(
    config: Mapping[str, str], partitions: Iterable[TopicPartition], timeout: float = 60.0
) -> Iterator[Message]:
    """Every record from the given offsets to the end of each partition, the end being what
    the fetch responses report (librdkafka's partition EOF), not the broker's ListOffsets
    answer. Meant for partitions nobody else is writing to at the time (the mirror's recovery).
    Raises :class:`ReadIncomplete` when a partition has not reached its end within ``timeout``.
    """
    wanted = list(partitions)
    if not wanted:
        return
    # an empty fetch is how the end shows: do not let the broker hold it for long
    consumer = reader(
        config, enable_partition_eof=True, auto_offset_reset="earliest", fetch_wait_max_ms=20
    )
    try:
        consumer.assign(wanted)
        remaining = {(tp.topic, tp.partition) for tp in wanted}
        deadline = time.monotonic() + timeout
        last_error = ""
        while remaining:
            if time.monotonic() > deadline:
                topic, partition = sorted(remaining)[0]
                cause = f"; last error: {last_error}" if last_error else ""
                raise ReadIncomplete(
                    f"{len(remaining)} partition(s) did not reach their end within "
                    f"{timeout:.0f} s (e.g. {topic}[{partition}]){cause}"
                )
            for message in consumer.consume(1000, 0.2):
                error = message.error()
                if error is None:
                    yield message
                elif error.code() == KafkaError._PARTITION_EOF:
                    remaining.discard((message.topic(), message.partition()))
                else:
                    last_error = error.str()
    finally:
        consumer.close()
