"""The topic registry: every topic batteryloop uses, with its key, value, partitions and policy.

One topic per event type keeps each topic's records under one schema (readable by any Avro
consumer) and lets consumers subscribe to exactly the lifecycle steps they care about. Lot events
are keyed by lot id and battery events by battery id, so all events of one lot or one battery land
in one partition, in order; manufacture (battery id) and shredding (black mass lot id) are where
the two keyspaces meet.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from .events import EVENT_MODELS

CleanupPolicy = Literal["delete", "compact"]


@dataclass(frozen=True)
class TopicSpec:
    name: str
    key: str  # what the record key is
    value: str  # what the record value is
    partitions: int
    cleanup_policy: CleanupPolicy
    doc: str
    event_type: str | None = None  # set for event topics


EVENT_PARTITIONS = 6

_KEY_DOC = {
    "lot_id": "lot id",
    "batch_id": "refining batch id",
    "battery_id": "battery id",
    "black_mass_lot_id": "black mass lot id",
    "subject_id": "lot id or battery id (the shipped subject)",
    "subject_operator_id": "operator id of the certified company",
}


def event_topic_name(event_type: str) -> str:
    return f"batteryloop.events.{event_type}"


EVENT_TOPICS: dict[str, TopicSpec] = {
    event_type: TopicSpec(
        name=event_topic_name(event_type),
        key=_KEY_DOC[model.KEY_FIELD],
        value=f"{model.__name__} (Avro, schemas/avro/{event_type}.avsc)",
        partitions=EVENT_PARTITIONS,
        cleanup_policy="delete",
        doc=" ".join((model.__doc__ or "").split()),
        event_type=event_type,
    )
    for event_type, model in EVENT_MODELS.items()
}

DEAD_LETTER_TOPIC = TopicSpec(
    name="batteryloop.dead-letters",
    key="original key (or none)",
    value="original bytes; headers name the error, source topic, partition and offset",
    partitions=1,
    cleanup_policy="delete",
    doc="Records that could not be decoded or validated, kept with the reason.",
)

ALL_TOPICS: tuple[TopicSpec, ...] = (*EVENT_TOPICS.values(), DEAD_LETTER_TOPIC)


def spec(name: str) -> TopicSpec:
    for topic in ALL_TOPICS:
        if topic.name == name:
            return topic
    raise KeyError(f"{name!r} is not in the topic registry")
