"""The producer SDK: publish typed events to their topics, keyed per event type.

Safety is not optional here: ``acks=all`` and ``enable.idempotence=true`` are always set (a
retried send is never duplicated or reordered within a partition), a failed delivery is raised
as :class:`DeliveryError` on the next call rather than logged and forgotten, and leaving the
``with`` block flushes. Every other librdkafka property (SASL, TLS, linger, batching) is
passed through unchanged; the client itself comes from :mod:`connectors.kafka.clients`.

``message.timeout.ms`` defaults to 30 s (librdkafka's own default is 5 minutes): an event the
cluster does not acknowledge within it is reported failed, so a cluster lost mid-run ends a
run in bounded time, and :meth:`EventProducer.flush` waits just past it by default.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import KafkaError, Message

from connectors.kafka import clients
from schemas.events import Event
from schemas.serde import Serde
from schemas.topics import EVENT_TOPICS
from schemas.writer import AvroWriteError

ENFORCED = {"acks": "all", "enable.idempotence": "true"}
DEFAULTS = {"linger.ms": "20", "compression.type": "lz4", "message.timeout.ms": "30000"}
#: publish_many serves delivery reports once per this many events rather than after each.
POLL_EVERY = 1000
_TOPIC_NAMES = {event_type: topic.name for event_type, topic in EVENT_TOPICS.items()}


@dataclass(frozen=True)
class FailedDelivery:
    context: Any  # what the caller passed to publish() to recognise the event
    topic: str
    error: str


@dataclass
class BatchReport:
    """What :meth:`EventProducer.publish_many` did with each event: queued, or refused before
    queueing because its schema cannot hold a value (index in the batch, and why). Delivery
    is reported later, like :meth:`EventProducer.publish`'s."""

    queued: int = 0
    refused: list[tuple[int, str]] = field(default_factory=list)


class DeliveryError(RuntimeError):
    """One or more events were not acknowledged by the cluster."""

    def __init__(self, failures: list[FailedDelivery]) -> None:
        self.failures = failures
        first = failures[0]
        more = f" (and {len(failures) - 1} more)" if len(failures) > 1 else ""
        super().__init__(f"delivery to {first.topic} failed: {first.error}{more}")


class EventProducer:
    """Publishes events; use as a context manager so that exit flushes and reports failures.

    ``config``: librdkafka properties, at least ``bootstrap.servers``. ``on_failure``: a
    caller that reports failed deliveries itself (the CLI, per input line) receives them here
    instead of having them raised.
    """

    def __init__(
        self,
        config: Mapping[str, str],
        serde: Serde | None = None,
        on_failure: Callable[[FailedDelivery], None] | None = None,
    ) -> None:
        conflicting = {k: v for k, v in config.items() if k in ENFORCED and str(v) != ENFORCED[k]}
        if conflicting:
            raise ValueError(
                f"the event producer always runs with {ENFORCED}; refusing {conflicting}"
            )
        self.serde = serde or Serde()
        # Reports of failed deliveries only: an acknowledged event then costs no Python call
        # (acknowledged = queued - failed - still in flight, see `delivered`).
        settings: dict[str, Any] = {**DEFAULTS, **config, **ENFORCED}
        self._producer = clients.producer({"delivery.report.only.error": True, **settings})
        self.message_timeout = float(settings["message.timeout.ms"]) / 1000
        self._failures: list[FailedDelivery] = []
        self._on_failure = on_failure or self._failures.append
        self._no_context = self._report(None)
        self._queued = 0
        self.failed = 0  # reported failed by librdkafka
        self.unknown = 0  # still unacknowledged when the last flush gave up

    def publish(self, event: Event, context: Any = None) -> None:
        """Queue ``event`` for its topic, keyed by its key; raise earlier failures first.

        Raises :class:`~schemas.writer.AvroWriteError` for a value its schema cannot hold.
        """
        self._raise_failures()
        topic = _TOPIC_NAMES[event.event_type]
        self._send(topic, event.key().encode(), self.serde.encode(event, topic), context)

    def publish_many(
        self, events: Iterable[Event], contexts: Iterable[Any] | None = None
    ) -> BatchReport:
        """Queue every event of ``events`` (with its context from ``contexts``, in the same
        order, when given); raise earlier failures first.

        Cheaper per event than :meth:`publish`: delivery reports are served once per
        :data:`POLL_EVERY` events (and whenever librdkafka's queue is full), and an event
        without a context shares one delivery callback. An event whose schema cannot hold a
        value is refused, with its index and reason in the report; the others are queued.
        """
        self._raise_failures()
        report = BatchReport()
        producer, encode, produce = self._producer, self.serde.encode, clients.produce
        shared = self._no_context
        items = (
            zip(events, contexts, strict=True)
            if contexts is not None
            else ((e, None) for e in events)
        )
        for index, (event, context) in enumerate(items):
            topic = _TOPIC_NAMES[event.event_type]
            try:
                value = encode(event, topic)
            except AvroWriteError as exc:
                report.refused.append((index, str(exc)))
                continue
            callback = shared if context is None else self._report(context)
            produce(producer, topic, value, event.key().encode(), on_delivery=callback)
            report.queued += 1
            self._queued += 1
            if report.queued % POLL_EVERY == 0:
                producer.poll(0)
        producer.poll(0)
        return report

    def publish_raw(
        self,
        topic: str,
        key: bytes | None,
        value: bytes,
        headers: list[tuple[str, bytes]] | None = None,
        context: Any = None,
    ) -> None:
        """Queue bytes already encoded (dead letters, mirrored records)."""
        self._raise_failures()
        self._send(topic, key, value, context, headers)

    def _send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes,
        context: Any,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> None:
        callback = self._no_context if context is None else self._report(context)
        clients.produce(self._producer, topic, value, key, headers=headers, on_delivery=callback)
        self._queued += 1
        self._producer.poll(0)

    @property
    def delivered(self) -> int:
        """Events acknowledged by the cluster: queued, neither failed nor still in flight."""
        return self._queued - self.failed - len(self._producer)

    def _report(self, context: Any) -> Callable[[KafkaError | None, Message], None]:
        def on_delivery(error: KafkaError | None, message: Message) -> None:
            if error is not None:  # success is reported too if the caller's config asks
                self.failed += 1
                self._on_failure(FailedDelivery(context, message.topic() or "?", error.str()))

        return on_delivery

    def poll(self, timeout: float = 0) -> None:
        """Serve delivery reports (called by publish; call it in idle loops too)."""
        self._producer.poll(timeout)

    def flush(self, timeout: float | None = None) -> None:
        """Wait until every queued event is acknowledged or failed; raise
        :class:`DeliveryError` if any failed.

        By default the wait lasts just past ``message.timeout.ms``, by when librdkafka has
        reported every event one way or the other. Events still unreported when the wait ends
        are counted in :attr:`unknown` (they may yet arrive) and reported as one failure with
        context None.
        """
        if timeout is None:
            timeout = self.message_timeout + 5.0
        remaining = self._producer.flush(timeout)
        self.unknown = remaining
        if remaining:
            self._on_failure(
                FailedDelivery(
                    None,
                    "*",
                    f"{remaining} events neither acknowledged nor failed after {timeout:.0f} s "
                    "(unknown whether the cluster has them)",
                )
            )
        self._raise_failures()

    def _raise_failures(self) -> None:
        if self._failures:
            failures = list(self._failures)
            self._failures.clear()
            raise DeliveryError(failures)

    def __enter__(self) -> EventProducer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if exc_info[0] is None:
            self.flush()
        else:
            self._producer.flush(10.0)  # best effort; the original exception wins
