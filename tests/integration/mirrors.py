"""A mirror agent in a subprocess (the real ``batteryloop mirror`` command), and what the tests
need to check the target: every mirrored record, decoded under the shared schemas."""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from confluent_kafka import TopicPartition

from connectors.cli.processes import ChildProcess
from connectors.kafka.consume import read_to_end
from connectors.kafka.embedded import EmbeddedBroker, free_port
from connectors.mirror import policy as sharing
from connectors.mirror.replication import Provenance
from schemas.events import CertificationEvent, Event
from schemas.serde import Serde
from schemas.topics import EVENT_TOPICS, mirrored_topic_name
from schemas.values import Region

SECRET = "the-agreement-secret-for-tests"


class Mirror(ChildProcess):
    """``batteryloop mirror`` from ``source`` to ``target``, with the test agreement's secret."""

    def __init__(
        self,
        source: EmbeddedBroker,
        target: EmbeddedBroker,
        log_dir: Path,
        *extra: str,
        checkpoint_interval: float = 0.3,
        name: str = "",
    ) -> None:
        self.checkpoint_interval = checkpoint_interval
        self.source = source
        self.target = target
        self.extra = extra
        self.metrics_port = free_port()
        # ``name`` tells apart the logs of several processes of one direction
        super().__init__(log_dir / f"mirror-{source.region}-{target.region}{name}.log")

    def arguments(self) -> list[str]:
        return [
            "mirror",
            "--source",
            self.source.region.value,
            "--target",
            self.target.region.value,
            "--source-bootstrap",
            self.source.bootstrap,
            "--target-bootstrap",
            self.target.bootstrap,
            "--grace",
            "1",
            "--checkpoint-interval",
            str(self.checkpoint_interval),
            "--metrics-port",
            str(self.metrics_port),
            *self.extra,
        ]

    def environment(self) -> dict[str, str]:
        return {"BATTERYLOOP_SHARING_SECRET": SECRET}

    def metric(self, name: str, **labels: str) -> float | None:
        """One sample of the agent's metrics, summed over the series carrying ``labels`` (all
        series when none are given); None if it does not answer or has no such series."""
        try:
            url = f"http://127.0.0.1:{self.metrics_port}/metrics"
            with urllib.request.urlopen(url, timeout=2) as r:
                text = r.read().decode()
        except OSError:
            return None
        wanted = [f'{k}="{v}"' for k, v in labels.items()]
        values = [
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if (line.startswith(name + "{") or line.startswith(name + " "))
            and all(w in line for w in wanted)
        ]
        return sum(values) if values else None


@dataclass(frozen=True)
class Landed:
    """One record found on the target."""

    topic: str
    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes]]
    origin: Provenance
    event_type: str
    record: dict[str, Any]


def shared_serde(direction: str) -> Serde:
    policy = sharing.load(sharing.shipped(direction), SECRET.encode())
    return Serde(shared=policy.shared_schemas.values())


def landed(target: EmbeddedBroker, source_region: Region) -> list[Landed]:
    """Everything mirrored from ``source_region`` that is on ``target`` now."""
    config = {"bootstrap.servers": target.bootstrap}
    from confluent_kafka.admin import AdminClient

    metadata = AdminClient(config).list_topics(timeout=10)
    topics = [mirrored_topic_name(source_region.value, t) for t in EVENT_TOPICS]
    parts = [
        TopicPartition(t, p, 0)
        for t in topics
        if t in metadata.topics
        for p in metadata.topics[t].partitions
    ]
    other = "jp" if source_region is Region.EU else "eu"
    serde = shared_serde(f"{source_region.value.lower()}-to-{other}")
    out = []
    for m in read_to_end(config, parts, timeout=60):
        origin = Provenance.read(m.headers())
        assert origin is not None, f"record without provenance on {m.topic()}"
        event_type, record = serde.decode(m.value())
        out.append(
            Landed(m.topic(), m.key(), m.value(), m.headers() or [], origin, event_type, record)
        )
    return out


def wait_landed(
    target: EmbeddedBroker,
    source_region: Region,
    expected: Iterable[str],
    timeout: float = 90.0,
    mirror: Mirror | None = None,
    settle: float = 1.5,
) -> list[Landed]:
    """Read the target until every expected event id is there, then once more after the agent
    had ``settle`` seconds to write anything extra (a duplicate would show up in that read)."""
    wanted = set(expected)
    deadline = time.monotonic() + timeout
    while True:
        found = landed(target, source_region)
        if wanted <= {str(r.record["event_id"]) for r in found}:
            if not settle:
                return found
            time.sleep(settle)
            return landed(target, source_region)
        if time.monotonic() > deadline:
            missing = wanted - {str(r.record["event_id"]) for r in found}
            tail = mirror.log_tail() if mirror else ""
            raise AssertionError(
                f"{len(missing)} events never arrived, e.g. {sorted(missing)[:3]}\n{tail}"
            )
        time.sleep(0.5)


def eligible(events: Iterable[Event], source: Region) -> list[Event]:
    """What a mirror from ``source`` must deliver, worked out here independently of the agent:
    events of the source region, by operators holding a source-region certification that was
    granted at or before the event and never revoked or expired (the workloads here do neither),
    and the source region's certifications themselves."""
    events = list(events)
    granted: dict[str, datetime] = {}
    for e in events:
        if isinstance(e, CertificationEvent) and e.scheme_region == source:
            assert e.action == "certified" and e.valid_until is None  # what this rule assumes
            granted[e.subject_operator_id] = min(
                e.occurred_at, granted.get(e.subject_operator_id, e.occurred_at)
            )
    out = []
    for e in events:
        if e.region != source:
            continue
        if isinstance(e, CertificationEvent):
            if e.scheme_region == source:
                out.append(e)
        elif e.operator_id in granted and granted[e.operator_id] <= e.occurred_at:
            out.append(e)
    return out
