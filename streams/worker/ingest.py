"""Event records in, messages per entity key out: the worker's first step on every batch.

Its own region's events and the partner's mirrored ones go into one state: a mirrored record is
decoded with the shared schemas of the shipped policies (both directions, recognised by
fingerprint or registry id) and handed on with the agreement and the redacted fields its headers
name (:class:`~streams.domain.routing.Received`). A record that cannot be decoded, or holds
another event type than its topic's, is rejected with the reason (the worker dead-letters it).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from connectors.mirror import policy as sharing
from connectors.mirror.replication import read_sharing
from schemas.catalog import SchemaVersion
from schemas.events import EVENT_MODELS
from schemas.serde import DecodeError, Serde, describe_validation_error
from schemas.topics import EVENT_TOPICS, mirrored_topic_name
from schemas.values import Region
from streams.domain.messages import Addressed, SharedUnder
from streams.domain.routing import Received, route_batch

#: Agreement named for a mirrored record whose headers name none (a mirror of before the
#: ``batteryloop-agreement`` header).
UNNAMED_AGREEMENT = "unnamed"


def shipped_shared_schemas() -> list[SchemaVersion]:
    """The shared schemas of both shipped policies: what the partner's mirror writes."""
    return [
        schema
        for direction in sharing.SHIPPED
        for schema in sharing.load(sharing.shipped(direction), secret=None).shared_schemas.values()
    ]


def mirrored_event_topics(partner: Region) -> dict[str, str]:
    """The partner's mirrored topics on this region's cluster: topic -> event type."""
    return {mirrored_topic_name(partner.value, t): t for t in EVENT_TOPICS}


@dataclass(frozen=True)
class Rejected:
    record: Any  # the confluent_kafka.Message
    reason: str


@dataclass
class Ingested:
    messages: list[Addressed]
    rejected: list[Rejected]
    per_type: Counter[str]


class Ingest:
    """Decodes and routes a batch of event records for one region's worker."""

    def __init__(self, region: Region, serde: Serde) -> None:
        self.serde = serde
        self.mirrored = mirrored_event_topics(region.partner)
        self.topic_event_type = {
            **{spec.name: event_type for event_type, spec in EVENT_TOPICS.items()},
            **self.mirrored,
        }
        self.direction = sharing.direction(region.partner.value, region.value)

    @property
    def topics(self) -> list[str]:
        return list(self.topic_event_type)

    def __call__(self, records: list[Any]) -> Ingested:
        received: list[Received] = []
        rejected: list[Rejected] = []
        per_type: Counter[str] = Counter()
        for record in records:
            outcome = self._decode(record)
            if isinstance(outcome, str):
                rejected.append(Rejected(record, outcome))
            else:
                received.append(outcome)
                per_type[outcome.event.event_type] += 1
        return Ingested(route_batch(received), rejected, per_type)

    def _decode(self, record: Any) -> Received | str:
        """The event in a record, or the reason it is rejected."""
        topic = record.topic()
        where = {"topic": topic, "partition": record.partition(), "offset": record.offset()}
        event_type = "?"
        try:
            event_type, fields = self.serde.decode(record.value(), **where)
            expected = self.topic_event_type.get(topic)
            if expected is not None and event_type != expected:
                raise DecodeError(f"a {event_type} event on the {expected} topic", **where)
            event = EVENT_MODELS[event_type].model_validate(fields)
        except DecodeError as exc:
            return exc.reason
        except ValidationError as exc:
            return f"invalid {event_type} event: {describe_validation_error(exc)}"
        if topic not in self.mirrored:
            return Received(event)
        agreement, redacted = read_sharing(record.headers() or [])
        shared = SharedUnder(agreement or UNNAMED_AGREEMENT, self.direction)
        return Received(event, shared, redacted)
