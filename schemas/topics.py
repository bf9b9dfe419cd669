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

from schemas.events import EVENT_MODELS

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

ENTITY_MESSAGES_TOPIC = TopicSpec(
    name="batteryloop.internal.entity-messages",
    key="entity key: lot/<id>, battery/<id>, operator/<id>, recycled-content/..., recovery/..., "
    "disclosure/...",
    value="JSON list of messages to that entity (facts from events, profiles, contributions)",
    # The processors' tables are partitioned like this topic: keep the counts equal.
    partitions=EVENT_PARTITIONS,
    cleanup_policy="delete",
    doc="The processors' own repartition topic: events split into messages per entity.",
)


STATE_CHANGELOG_TOPIC = TopicSpec(
    name="batteryloop.internal.state",
    key="entity key, as on the entity-messages topic",
    value="the entity's state (MessagePack, tagged name/version; streams/domain/states.py)",
    # a state lives in the partition of its entity key: the same count as entity messages
    partitions=EVENT_PARTITIONS,
    cleanup_policy="compact",
    doc="The processors' state changelog: what a worker restores a partition's states from.",
)


def _document_topic(name: str, key: str, doc: str) -> TopicSpec:
    return TopicSpec(
        name=name,
        key=key,
        value="JSON document, the latest state (compacted: the last value per key wins)",
        partitions=EVENT_PARTITIONS,
        cleanup_policy="compact",
        doc=doc,
    )


#: The processors' published state, by the output name the processors use.
DOCUMENT_TOPICS: dict[str, TopicSpec] = {
    "passports": _document_topic(
        "batteryloop.passports", "battery id", "Battery passports, republished on every change."
    ),
    "lots": _document_topic(
        "batteryloop.lots", "lot id", "Material lots: mass, composition, origin, recycled share."
    ),
    "recycled-content": _document_topic(
        "batteryloop.tallies.recycled-content",
        "manufacturer|plant|model|year",
        "Recycled content per metal against the EU 2023/1542 Art. 8 minimums.",
    ),
    "recovery": _document_topic(
        "batteryloop.tallies.recovery-efficiency",
        "recycler|plant|year",
        "Material recovery per metal against the EU 2023/1542 Annex XII targets.",
    ),
    "disclosure": _document_topic(
        "batteryloop.tallies.disclosure",
        "manufacturer|maker's country",
        "Battery passport disclosure completeness per maker and maker's country, against the "
        "disclosure rule set (schemas/rules).",
    ),
    "operators": _document_topic(
        "batteryloop.operators", "operator id", "Certifications of each operator, both regions."
    ),
    "alerts": _document_topic(
        "batteryloop.alerts",
        "alert id (kind/subject or kind/event id)",
        "Outflows, mass-balance violations, uncertified operators, unresolved references; "
        "status open or resolved.",
    ),
}


def mirrored_topic_name(source_region: str, event_type: str) -> str:
    """Where the partner's cluster receives a region's events: prefixed like MirrorMaker 2."""
    return f"{source_region.lower()}.{event_topic_name(event_type)}"


def mirrored_topics(
    source_region: str, partitions: dict[str, int] | None = None
) -> list[TopicSpec]:
    """The topics a mirror from ``source_region`` writes on the partner's cluster; partition
    counts follow the source topics' (``partitions`` by event type), since each source
    partition is mirrored to the target partition of the same number."""
    out = []
    for event_type, source in EVENT_TOPICS.items():
        out.append(
            TopicSpec(
                name=mirrored_topic_name(source_region, event_type),
                key=source.key,
                value=f"{source.value.split(' (')[0]} as shared under the data-sharing policy "
                f"(Avro, schemas/avro/shared/{source_region.lower()}-to-*/{event_type}.avsc); "
                "headers name the origin region, topic, partition and offset",
                partitions=(partitions or {}).get(event_type, source.partitions),
                cleanup_policy="delete",
                doc=f"{event_type} events of the {source_region.upper()} region, mirrored.",
                event_type=event_type,
            )
        )
    return out


MIRROR_CHECKPOINT_TOPIC = TopicSpec(
    name="batteryloop.mirror.checkpoints",
    key="<source region>/<source topic>/<partition>",
    value=(
        "JSON {position, target_offset, flows}: the mirror's position, kept on the target "
        "cluster, and what it shared, filtered (by reason) and redacted below that position"
    ),
    partitions=1,
    cleanup_policy="compact",
    doc="Where each mirror into this cluster stands in each source partition.",
)

ALL_TOPICS: tuple[TopicSpec, ...] = (
    *EVENT_TOPICS.values(),
    DEAD_LETTER_TOPIC,
    ENTITY_MESSAGES_TOPIC,
    STATE_CHANGELOG_TOPIC,
    *DOCUMENT_TOPICS.values(),
)


def spec(name: str) -> TopicSpec:
    for topic in ALL_TOPICS:
        if topic.name == name:
            return topic
    raise KeyError(f"{name!r} is not in the topic registry")
