"""What one mirror run is told, and every default of it in one place: the agent runs on it,
and ``batteryloop mirror`` reads its defaults from here without loading the agent."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from connectors.mirror.policy import SharingPolicy
    from schemas.serde import Serde


def _single_object_serde() -> Serde:
    from schemas.serde import Serde  # the Avro machinery, only when a run starts

    return Serde()


@dataclass(frozen=True)
class MirrorOptions:
    policy: SharingPolicy
    source: Mapping[str, str]  # librdkafka properties of the source cluster's consumer
    target: Mapping[str, str]  # ... and of the target cluster's clients
    grace: float = 10.0  # how long an event waits for its operator's certification
    checkpoint_interval: float = 1.0
    batch_size: int = 5000
    max_waiting: int = 20_000  # per partition; beyond it the partition is paused
    backoff_initial: float = 0.5
    backoff_max: float = 30.0
    recovery_timeout: float = 60.0
    source_serde: Serde = field(default_factory=_single_object_serde)
    target_serde: Serde = field(default_factory=_single_object_serde)
