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

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaError, Message

from connectors.kafka import clients
from schemas.events import Event
from schemas.serde import Serde
from schemas.topics import EVENT_TOPICS

ENFORCED = {"acks": "all", "enable.idempotence": "true"}
DEFAULTS = {"linger.ms": "20", "compression.type": "lz4", "message.timeout.ms": "30000"}


@dataclass(frozen=True)
class FailedDelivery:
    context: Any  # what the caller passed to publish() to recognise the event
    topic: str
    error: str


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
        settings = {**DEFAULTS, **config, **ENFORCED}
        self._producer = clients.producer(settings)
        self.message_timeout = float(settings["message.timeout.ms"]) / 1000
        self._failures: list[FailedDelivery] = []
        self._on_failure = on_failure or self._failures.append
        self.delivered = 0  # acknowledged by the cluster
        self.failed = 0  # reported failed by librdkafka
        self.unknown = 0  # still unacknowledged when the last flush gave up

    def publish(self, event: Event, context: Any = None) -> None:
        """Queue ``event`` for its topic, keyed by its key; raise earlier failures first."""
        self._raise_failures()
        topic = EVENT_TOPICS[event.event_type].name
        self._send(topic, event.key().encode(), self.serde.encode(event, topic), context)

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
        clients.produce(
            self._producer, topic, value, key, headers=headers, on_delivery=self._callback(context)
        )
        self._producer.poll(0)

    def _callback(self, context: Any) -> Callable[[KafkaError | None, Message], None]:
        def on_delivery(error: KafkaError | None, message: Message) -> None:
            if error is None:
                self.delivered += 1
            else:
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
