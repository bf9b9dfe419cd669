"""The KafkaTopic resources a region's overlay must hold, from the topic registry: the registry's
topics, the partner's mirrored event topics and the mirror checkpoints written into this
region's cluster. ``python -m tests.deploy.strimzi_topics eu > deploy/overlays/eu/topics.yaml``
writes them; tests/deploy/test_kubernetes.py checks the files against the registry."""

from __future__ import annotations

import sys
from typing import Any

import yaml

from schemas.topics import ALL_TOPICS, MIRROR_CHECKPOINT_TOPIC, TopicSpec, mirrored_topics

CLUSTER = "batteryloop"
REPLICAS = 3
MIN_INSYNC_REPLICAS = 2


def registry_topics(region: str) -> list[TopicSpec]:
    partner = {"eu": "jp", "jp": "eu"}[region]
    return [*ALL_TOPICS, *mirrored_topics(partner.upper()), MIRROR_CHECKPOINT_TOPIC]


def kafka_topic(spec: TopicSpec) -> dict[str, Any]:
    return {
        "apiVersion": "kafka.strimzi.io/v1beta2",
        "kind": "KafkaTopic",
        # a resource name is a DNS subdomain (no "_"); the topic keeps its own name
        "metadata": {
            "name": spec.name.replace("_", "-"),
            "labels": {"strimzi.io/cluster": CLUSTER},
        },
        "spec": {
            "topicName": spec.name,
            "partitions": spec.partitions,
            "replicas": REPLICAS,
            "config": {
                "cleanup.policy": spec.cleanup_policy,
                "min.insync.replicas": MIN_INSYNC_REPLICAS,
            },
        },
    }


def main(region: str) -> None:
    sys.stdout.write(
        f"# The topics of the {region.upper()} cluster, from schemas/topics.py "
        f"(python -m tests.deploy.strimzi_topics {region} > this file).\n"
    )
    docs = [kafka_topic(spec) for spec in registry_topics(region)]
    sys.stdout.write(yaml.safe_dump_all(docs, sort_keys=False, explicit_start=True))


if __name__ == "__main__":
    main(sys.argv[1])
