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
    #: The source partitions this process mirrors (the same numbers in every event topic);
    #: None: all of them. Several processes of one direction each take their share.
    partitions: frozenset[int] | None = None

    def owns(self, partition: int) -> bool:
        return self.partitions is None or partition in self.partitions


def parse_partitions(text: str) -> frozenset[int]:
    """``"0,2,4"`` or ``"0-3,8"`` as a set of partition numbers; ValueError naming the part
    that is not one."""
    found: set[int] = set()
    for part in text.split(","):
        part = part.strip()
        low, dash, high = part.partition("-")
        try:
            first = int(low)
            last = int(high) if dash else first
        except ValueError:
            raise ValueError(
                f"--partitions {text!r}: {part!r} is not a partition number or a range like 0-3"
            ) from None
        if first < 0 or last < first:
            raise ValueError(
                f"--partitions {text!r}: {part!r} is not a range of partition numbers (0 or more, "
                "low-high)"
            )
        found.update(range(first, last + 1))
    return frozenset(found)
