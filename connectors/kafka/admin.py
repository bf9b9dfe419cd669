"""Provisioning the registry's topics on a cluster, idempotently.

The first request of each function waits at most ``connect_timeout`` seconds for the cluster
and raises :class:`~connectors.kafka.clients.ClusterUnreachable` (naming the bootstrap servers)
when it does not answer.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from confluent_kafka import KafkaException

# confluent-kafka's admin package re-exports these without marking them as exported
from confluent_kafka.admin import ConfigResource, NewTopic  # type: ignore[attr-defined]

from connectors.kafka import clients
from schemas.topics import ALL_TOPICS, TopicSpec

_TIMEOUT = 15.0


@dataclass(frozen=True)
class TopicState:
    spec: TopicSpec
    exists: bool
    partitions: int | None = None
    cleanup_policy: str | None = None  # None: the broker did not say

    @property
    def problems(self) -> list[str]:
        out = []
        if not self.exists:
            out.append("missing")
            return out
        if self.partitions is not None and self.partitions < self.spec.partitions:
            out.append(f"{self.partitions} partitions, registry wants {self.spec.partitions}")
        if self.cleanup_policy is not None and self.cleanup_policy != self.spec.cleanup_policy:
            out.append(
                f"cleanup.policy={self.cleanup_policy}, registry wants {self.spec.cleanup_policy}"
            )
        return out


def describe(
    config: Mapping[str, str],
    topics: Iterable[TopicSpec] = ALL_TOPICS,
    connect_timeout: float = _TIMEOUT,
) -> list[TopicState]:
    """What the cluster has of each registry topic."""
    metadata = clients.check_reachable(config, connect_timeout)
    admin = clients.admin(config)
    topics = list(topics)
    present = [t for t in topics if t.name in metadata.topics]
    policies: dict[str, str | None] = {}
    if present:
        futures = admin.describe_configs([ConfigResource("topic", t.name) for t in present])
        for resource, future in futures.items():
            try:
                entry = future.result(timeout=_TIMEOUT).get("cleanup.policy")
                policies[resource.name] = entry.value if entry is not None else None
            except KafkaException:
                policies[resource.name] = None  # the broker does not answer DescribeConfigs
    return [
        TopicState(
            spec=t,
            exists=t.name in metadata.topics,
            partitions=len(metadata.topics[t.name].partitions)
            if t.name in metadata.topics
            else None,
            cleanup_policy=policies.get(t.name),
        )
        for t in topics
    ]


def create_missing(
    config: Mapping[str, str],
    topics: Iterable[TopicSpec] = ALL_TOPICS,
    replication_factor: int | None = None,
    connect_timeout: float = _TIMEOUT,
) -> tuple[list[str], list[TopicState]]:
    """Create the registry topics the cluster lacks; returns (created, states after).

    Existing topics are left alone (partitions are never reduced, configs never rewritten);
    differences from the registry are reported in the states. A topic created concurrently by
    someone else counts as present.
    """
    metadata = clients.check_reachable(config, connect_timeout)
    admin = clients.admin(config)
    topics = list(topics)
    if replication_factor is None:
        replication_factor = min(3, len(metadata.brokers))
    missing = [t for t in topics if t.name not in metadata.topics]
    created = []
    if missing:
        futures = admin.create_topics(
            [
                NewTopic(
                    t.name,
                    t.partitions,
                    replication_factor,
                    config={"cleanup.policy": t.cleanup_policy},
                )
                for t in missing
            ],
            request_timeout=_TIMEOUT,
        )
        for name, future in futures.items():
            try:
                future.result(timeout=_TIMEOUT)
                created.append(name)
            except KafkaException as exc:
                if exc.args[0].name() != "TOPIC_ALREADY_EXISTS":
                    raise RuntimeError(f"cannot create topic {name}: {exc.args[0].str()}") from exc
    return created, describe(config, topics, connect_timeout)
