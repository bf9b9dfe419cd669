"""The mirror agent: a region's events, filtered and redacted under the data-sharing policy,
republished to the partner region's cluster exactly once, without broker transactions.

It reads the source cluster's event topics by assignment (no consumer group, no commits: the
source cluster's other consumers see nothing of it) and writes ``<source>.batteryloop.events.*``
on the target cluster with confluent-kafka; decisions are in :mod:`.replication`, redaction in
:mod:`.policy`. For the certification gate it also reads, never mirrors, the partner's
certifications as the partner's mirror wrote them into the source cluster
(``<target>.batteryloop.events.certification``): either region's scheme certifies.

**Exactly once.** One idempotent producer (acks=all) writes each source partition to the target
partition of the same number, in source-offset order. Every ``checkpoint_interval`` the producer
is flushed (everything acknowledged) and a checkpoint per source partition goes to the target's
``batteryloop.mirror.checkpoints``: the first source offset not yet decided and landed, and the
target partition's end. On start, and after any failure, the agent throws its clients away and
recovers from the target alone: the latest checkpoints, then every mirrored record from the
checkpointed target offset on, whose provenance headers name the source offsets that landed
after the checkpoint. It resumes each source partition at its checkpoint and skips those. What
the target holds is the truth; source-side commits are never used. Reads for recovery run to
the end that fetch responses report (partition EOF), never to a ListOffsets answer.

**Partner outage.** A failed delivery (after librdkafka's own retries for
``message.timeout.ms``), an unreachable target during recovery, or librdkafka reporting all
target brokers down, ends the session: the agent logs it, sets
``batteryloop_mirror_target_available`` to 0, waits with exponential backoff and recovers, which
also puts it back exactly where the target says it was.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter as Tally
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import (
    OFFSET_BEGINNING,
    KafkaError,
    KafkaException,
    Message,
    TopicPartition,
)
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram
from pydantic import ValidationError

from connectors.kafka import clients
from connectors.kafka.admin import create_missing
from connectors.kafka.consume import ReadIncomplete, read_to_end
from connectors.mirror.checks import checks
from connectors.mirror.options import MirrorOptions
from connectors.mirror.policy import RedactionTally, partner_shared_schema
from connectors.mirror.replication import (
    RECOGNISED,
    Action,
    KnownCertifications,
    Lane,
    Provenance,
    Reason,
    Waiting,
    checkpoint_key,
    checkpoint_value,
    judge,
    lane_headers,
    read_checkpoint,
    sharing_headers,
)
from connectors.mirror.transcode import shared_key, writers
from schemas import catalog
from schemas.events import EVENT_MODELS
from schemas.plain import PlainDecodeError
from schemas.serde import SINGLE_OBJECT_MAGIC, DecodeError, Serde
from schemas.topics import (
    EVENT_TOPICS,
    MIRROR_CHECKPOINT_TOPIC,
    mirrored_topic_name,
    mirrored_topics,
)

log = logging.getLogger("batteryloop.mirror")

CERTIFICATION = "certification"
_FRAME = len(SINGLE_OBJECT_MAGIC) + 8  # magic and CRC-64 fingerprint before the Avro body
PRODUCER_DEFAULTS = {"linger.ms": "5", "compression.type": "lz4", "message.timeout.ms": "30000"}
PRODUCER_ENFORCED = {"acks": "all", "enable.idempotence": "true"}


class Unavailable(RuntimeError):
    """The session cannot go on (a cluster unreachable, a delivery failed); recover and retry."""


class PartitionsMissing(ValueError):
    """``--partitions`` names a partition no mirrored topic has: retrying will not help."""


class MirrorMetrics:
    """The mirror's Prometheus metrics, labelled by direction (``eu-to-jp``) and event type."""

    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        by_type = ["direction", "event_type"]
        self.mirrored = Counter(
            "batteryloop_mirror_records_total",
            "Records mirrored to the partner region (acknowledged or not yet)",
            by_type,
            registry=registry,
        )
        self.filtered = Counter(
            "batteryloop_mirror_filtered_total",
            "Records read from the source and not mirrored, by reason",
            [*by_type, "reason"],
            registry=registry,
        )
        self.redacted = Counter(
            "batteryloop_mirror_fields_redacted_total",
            "Field values dropped or transformed by the data-sharing policy",
            by_type,
            registry=registry,
        )
        self.skipped = Counter(
            "batteryloop_mirror_already_on_target_total",
            "Records found on the target at recovery and not mirrored again",
            ["direction"],
            registry=registry,
        )
        self.latency = Histogram(
            "batteryloop_mirror_replication_latency_seconds",
            "From the source record's timestamp to the target's acknowledgement",
            ["direction"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
            registry=registry,
        )
        self.lag = Gauge(
            "batteryloop_mirror_source_lag_records",
            "Records in the source topic not yet read by the mirror",
            by_type,
            registry=registry,
        )
        self.waiting = Gauge(
            "batteryloop_mirror_waiting_records",
            "Records waiting for their operator's certification (and records behind them)",
            ["direction"],
            registry=registry,
        )
        self.target_available = Gauge(
            "batteryloop_mirror_target_available",
            "1 while the mirror is writing to the target cluster, 0 while it waits for it",
            ["direction"],
            registry=registry,
        )
        self.recoveries = Counter(
            "batteryloop_mirror_recoveries_total",
            "Sessions started (recovering the position from the target)",
            ["direction"],
            registry=registry,
        )


@dataclass
class Totals:
    """Counts of this process's life, for progress lines and the demo's summary."""

    mirrored: int = 0
    filtered: int = 0
    filtered_by_reason: Tally[str] = field(default_factory=Tally)
    redacted: int = 0
    redactions: RedactionTally = field(default_factory=RedactionTally)  # ``redacted`` by kind
    skipped: int = 0
    waiting: int = 0
    lag: int = 0


class MirrorAgent:
    def __init__(self, options: MirrorOptions, metrics: MirrorMetrics | None = None) -> None:
        self.options = options
        self.policy = options.policy
        self.direction = self.policy.direction
        self.source_region = self.policy.source
        # The partner's certifications, as its mirror brought them here: gate input only.
        self.partner_certification_topic = mirrored_topic_name(
            self.policy.target.value, CERTIFICATION
        )
        self.metrics = metrics or MirrorMetrics()
        self.totals = Totals()
        #: Set while a session runs: the position is recovered from the target and the
        #: source is being read (``/readyz``).
        self.ready = threading.Event()
        self._failure: str | None = None
        self._target_end: dict[tuple[str, int], int] = {}
        self._observe_latency = self.metrics.latency.labels(self.direction).observe
        # Source timestamp (ms) of the latest acknowledged record: the latency histogram takes
        # one sample per loop turn, not one per record (a per-record observation cost more
        # than the rest of the delivery report).
        self._acknowledged_at: int | None = None
        # Shared bodies written from the private bytes (see transcode.py), for records framed
        # in single-object encoding under the current private schema.
        self.writers = writers(self.policy)
        self.current_frames = {
            t: SINGLE_OBJECT_MAGIC + catalog.current(t).fingerprint for t in self.policy.events
        }
        # ... read with the plain readers, checked on the fields the policy shares (checks.py)
        self.checks = checks(self.policy)
        self.shared_key = {t: shared_key(self.policy, t) for t in self.policy.events}
        self._invalid_logged = 0.0

    # --- the outer loop: sessions, with backoff between them ---------------------------------

    def run(self, stop: threading.Event) -> None:
        """Mirror until ``stop`` is set; never gives up on an unreachable cluster."""
        backoff = self.options.backoff_initial
        available = self.metrics.target_available.labels(self.direction)
        while not stop.is_set():
            try:
                session = self._recover()
            except (Unavailable, ReadIncomplete, KafkaException) as exc:
                if isinstance(exc, KafkaException) and _code(exc) == KafkaError._INVALID_ARG:
                    raise  # a configuration error: retrying will not help
                available.set(0)
                log.warning(
                    "%s: cannot start: %s; retrying in %.1f s", self.direction, exc, backoff
                )
                stop.wait(backoff)
                backoff = min(backoff * 2, self.options.backoff_max)
                continue
            available.set(1)
            self.ready.set()
            log.info("%s: mirroring (%s)", self.direction, session.describe())
            try:
                session.run(stop)
                backoff = self.options.backoff_initial
            except (Unavailable, KafkaException) as exc:
                self.ready.clear()
                available.set(0)
                log.warning(
                    "%s: target %s unavailable: %s; recovering in %.1f s",
                    self.direction,
                    self.policy.target.value,
                    exc,
                    backoff,
                )
                stop.wait(backoff)
                backoff = min(backoff * 2, self.options.backoff_max)
            finally:
                self.ready.clear()
                # Nothing may still be in flight when the next session reads the target.
                session.close(5 if stop.is_set() else _message_timeout(self.options.target) + 5)

    # --- recovery: everything about the position comes from the target -----------------------

    def _recover(self) -> Session:
        self.metrics.recoveries.labels(self.direction).inc()
        self._failure = None
        self._target_end.clear()
        o = self.options
        types = [t for t in EVENT_TOPICS if self.policy.shares(t) or t == CERTIFICATION]
        partitions, partner_certifications = self._source_partitions(types)
        # Certifications are read for the gate even when not shared; only shared types get a
        # topic on the target.
        self._check_partitions(partitions)
        shared = {t: n for t, n in partitions.items() if self.policy.shares(t)}
        specs = mirrored_topics(self.source_region.value, shared)
        try:
            _, states = create_missing(
                o.target,
                [s for s in specs if s.event_type in shared] + [MIRROR_CHECKPOINT_TOPIC],
            )
        except (KafkaException, RuntimeError) as exc:
            raise Unavailable(f"target cluster: {_reason(exc)}") from exc
        for state in states:
            if state.partitions is not None and state.partitions < state.spec.partitions:
                raise RuntimeError(
                    f"target topic {state.spec.name} has {state.partitions} partitions, fewer "
                    f"than its source ({state.spec.partitions}); add partitions to it"
                )
        lanes = {
            (EVENT_TOPICS[t].name, p): Lane(
                t, EVENT_TOPICS[t].name, p, mirrored_topic_name(self.source_region.value, t)
            )
            for t, count in partitions.items()
            for p in range(count)
            if o.owns(p)
        }
        # Another process's certification partitions: read for the gate, never decided here.
        gate_only = [
            (EVENT_TOPICS[CERTIFICATION].name, p)
            for p in range(partitions[CERTIFICATION])
            if not o.owns(p)
        ]
        for record in read_to_end(
            o.target, [TopicPartition(MIRROR_CHECKPOINT_TOPIC.name, 0, OFFSET_BEGINNING)]
        ):
            point = read_checkpoint(self.source_region, record.key(), record.value())
            lane = None if point is None else lanes.get((point.topic, point.partition))
            if point is not None and lane is not None:  # the latest one wins
                lane.start, lane.target_from = point.position, point.target_offset
                lane.flows = point.flows
        landed = 0
        reads = [
            TopicPartition(lane.target_topic, lane.partition, lane.target_from)
            for lane in lanes.values()
            if self.policy.shares(lane.event_type)  # nothing of another type is on the target
        ]
        for record in read_to_end(o.target, reads, o.recovery_timeout):
            topic, partition, offset = clients.place(record)
            self._target_end[topic, partition] = offset + 1
            origin = Provenance.read(clients.headers(record))
            lane = None if origin is None else lanes.get((origin.topic, origin.partition))
            if origin is not None and lane is not None and origin.offset >= lane.start:
                lane.landed.add(origin.offset)
                landed += 1
        for lane in lanes.values():
            lane.next_offset = lane.consumed = lane.start
            self._target_end.setdefault((lane.target_topic, lane.partition), lane.target_from)
        return Session(self, lanes, landed, partner_certifications, gate_only)

    def _check_partitions(self, partitions: dict[str, int]) -> None:
        """Refuse ``partitions`` naming a partition that none of the mirrored topics has."""
        wanted = self.options.partitions
        if wanted is None:
            return
        most = max(partitions.values())
        missing = sorted(p for p in wanted if p >= most)
        if missing:
            counts = ", ".join(f"{EVENT_TOPICS[t].name} {n}" for t, n in sorted(partitions.items()))
            raise PartitionsMissing(
                f"--partitions: no mirrored topic of the source cluster has partition "
                f"{', '.join(map(str, missing))} (partitions: {counts})"
            )

    def _source_partitions(self, types: list[str]) -> tuple[dict[str, int], int]:
        """Partitions of the source's topics of ``types``, and of the partner's certification
        topic as mirrored into the source cluster (0 while there is none)."""
        try:
            metadata = clients.admin(self.options.source).list_topics(timeout=15)
        except KafkaException as exc:
            raise Unavailable(f"source cluster: {_reason(exc)}") from exc
        found = {}
        for t in types:
            topic = metadata.topics.get(EVENT_TOPICS[t].name)
            if topic is not None and topic.error is None and topic.partitions:
                found[t] = len(topic.partitions)
        if CERTIFICATION not in found:
            raise Unavailable(
                f"source cluster has no {EVENT_TOPICS[CERTIFICATION].name} topic yet: without "
                "certifications nothing can be mirrored (run 'batteryloop topics create')"
            )
        partner = metadata.topics.get(self.partner_certification_topic)
        ok = partner is not None and partner.error is None
        return found, len(partner.partitions) if ok and partner is not None else 0

    # --- delivery reports ------------------------------------------------------------------

    def delivered(self, error: KafkaError | None, message: Message) -> None:
        if error is not None:
            self._failure = f"{message.topic()}[{message.partition()}]: {error.str()}"
            return
        topic, partition, offset = clients.place(message)
        end = offset + 1
        if end > self._target_end.get((topic, partition), 0):
            self._target_end[topic, partition] = end
        if topic != MIRROR_CHECKPOINT_TOPIC.name:
            self._acknowledged_at = message.timestamp()[1]

    def sample_latency(self) -> None:
        """Observe the latency of the latest acknowledged record, if one came since the last."""
        acknowledged = self._acknowledged_at
        if acknowledged is not None:
            self._acknowledged_at = None
            self._observe_latency(max(0.0, time.time() - acknowledged / 1000))

    def client_error(self, error: KafkaError) -> None:
        if error.code() == KafkaError._ALL_BROKERS_DOWN or error.fatal():
            self._failure = error.str()
        else:
            log.debug("%s: %s", self.direction, error.str())


def _reason(exc: BaseException) -> str:
    if isinstance(exc, KafkaException) and exc.args and isinstance(exc.args[0], KafkaError):
        return str(exc.args[0].str())
    return str(exc)


def _code(exc: KafkaException) -> int | None:
    error = exc.args[0] if exc.args else None
    return error.code() if isinstance(error, KafkaError) else None


class Session:
    """One stretch of mirroring with one consumer and one producer, from a recovered position."""

    def __init__(
        self,
        agent: MirrorAgent,
        lanes: dict[tuple[str, int], Lane],
        landed: int,
        partner_certifications: int = 0,
        gate_only: list[tuple[str, int]] | None = None,
    ) -> None:
        self.agent = agent
        self.o = agent.options
        self.policy = agent.policy
        self.lanes = lanes
        self.landed = landed
        self.certifications = KnownCertifications()
        self.cert_topic = EVENT_TOPICS[CERTIFICATION].name
        self.cert_lanes = {k for k, lane in lanes.items() if lane.event_type == CERTIFICATION}
        # The partner's certification partitions on the source cluster: read, never mirrored.
        self.partner_cert_topic = agent.partner_certification_topic
        partner = [(self.partner_cert_topic, p) for p in range(partner_certifications)]
        partner += gate_only or []  # ours, owned by another process: gate input here too
        shared = partner_shared_schema(self.policy, CERTIFICATION)
        self.partner_serde = Serde(self.o.source_serde.registry, [] if shared is None else [shared])
        # certification partitions (own and partner's) not yet read through
        self.cert_pending = set(self.cert_lanes) | set(partner)
        self.holding: set[Lane] = set()
        direction = agent.direction
        m = agent.metrics
        self._mirrored = {t: m.mirrored.labels(direction, t) for t in EVENT_MODELS}
        self._redacted = {t: m.redacted.labels(direction, t) for t in EVENT_MODELS}
        # counted per record, added to the metrics once per consumed batch (a labelled
        # counter's inc takes a lock: per record it showed in the profile)
        self._batch_mirrored: Tally[str] = Tally()
        self._batch_redacted: Tally[str] = Tally()
        self._frames: dict[str, bytes] = {}  # event type -> the target's framing of its records
        self._sharing: dict[tuple[str, ...], list[tuple[str, bytes]]] = {}
        self._filtered = m.filtered
        self._lag = {t: m.lag.labels(direction, t) for t in EVENT_MODELS}
        self._waiting = m.waiting.labels(direction)
        self._skipped = m.skipped.labels(direction)
        # The producer first: a consumer built before a producer that fails to build would be
        # left open, one more on every retry.
        self.producer = clients.producer(
            {**PRODUCER_DEFAULTS, **self.o.target, **PRODUCER_ENFORCED},
            on_delivery=agent.delivered,
            error_cb=agent.client_error,
        )
        self.consumer = clients.consumer(
            {
                "auto.offset.reset": "earliest",
                # A fetch of partitions at their end waits this long on the broker; partitions
                # resumed meanwhile (the events, once certifications are read) wait behind it:
                # librdkafka's 500 ms default held every session's first events ~1 s.
                "fetch.wait.max.ms": "100",
                **self.o.source,
                "group.id": f"batteryloop-mirror-{direction}",  # never joined, never committed
                "enable.auto.commit": False,
                "enable.partition.eof": True,
            }
        )
        # Certification partitions are read from the beginning (the certification state is
        # rebuilt each session); the others wait until they are read through.
        self.consumer.assign(
            [
                TopicPartition(lane.topic, lane.partition, _offset(lane.start))
                if lane.event_type != CERTIFICATION
                else TopicPartition(lane.topic, lane.partition, OFFSET_BEGINNING)
                for lane in lanes.values()
            ]
            + [TopicPartition(topic, p, OFFSET_BEGINNING) for topic, p in partner]
        )
        self._pause([lane for k, lane in lanes.items() if k not in self.cert_lanes])

    def describe(self) -> str:
        resumed = sum(1 for lane in self.lanes.values() if lane.start)
        owned = self.o.partitions
        share = "" if owned is None else f" (partitions {','.join(map(str, sorted(owned)))})"
        return (
            f"{len(self.lanes)} source partitions{share}, {resumed} resumed from checkpoints, "
            f"{self.landed} records already on the target"
        )

    def close(self, timeout: float) -> None:
        try:
            self.producer.flush(timeout)
        finally:
            self.consumer.close()

    # --- the loop ---------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        interval = self.o.checkpoint_interval
        next_checkpoint = time.monotonic() + interval
        certifications_due = time.monotonic() + self.o.recovery_timeout
        next_progress = time.monotonic() + 10
        consume, poll = self.consumer.consume, self.producer.poll
        while not stop.is_set():
            messages = consume(self.o.batch_size, 0.1)
            if self.agent._failure is not None:
                raise Unavailable(self.agent._failure)
            now = time.monotonic()
            self._take(messages, now)
            if self.holding:
                self._release(now)
            self._count_batch()
            poll(0)
            self.agent.sample_latency()
            if now >= next_checkpoint:
                self.checkpoint()
                next_checkpoint = now + interval
            if now >= next_progress:
                self._progress()
                next_progress = now + 10
            if self.cert_pending and now >= certifications_due:
                log.warning(
                    "%s: certification partitions %s not read through within %.0f s; "
                    "mirroring events with the certifications read so far",
                    self.agent.direction,
                    sorted(self.cert_pending),
                    self.o.recovery_timeout,
                )
                self.cert_pending.clear()
                self._resume([lane for k, lane in self.lanes.items() if k not in self.cert_lanes])
        self.checkpoint()

    def _take(self, messages: list[Message], now: float) -> None:
        lanes = self.lanes
        for message in messages:  # certifications first: events of this batch may need them
            if message.error() is not None:
                continue
            if message.topic() == self.cert_topic:
                self._certification(message)
            elif message.topic() == self.partner_cert_topic:
                self._partner_certification(message)
        for message in messages:
            if message.error() is not None:
                self._consumer_event(message)
                continue
            if message.topic() == self.partner_cert_topic:
                continue  # gate input only: never decided, never mirrored back
            topic, partition, offset = clients.place(message)
            lane = lanes.get((topic, partition))
            if lane is None:
                continue  # a certification partition of another process: gate input only
            lane.consumed = offset + 1
            if offset < lane.start:
                continue  # a certification read again for the state; decided long ago
            if lane.waiting:
                lane.waiting.append(Waiting(message, now))
                if len(lane.waiting) >= self.o.max_waiting and not lane.paused:
                    self._pause([lane])
                continue
            if not self._decide(lane, message, 0.0):
                lane.waiting.append(Waiting(message, now))
                self.holding.add(lane)

    def _certification(self, message: Message) -> None:
        try:
            event_type, record = self.o.source_serde.decode(message.value())
            if event_type == CERTIFICATION:
                EVENT_MODELS[event_type].model_validate(record)
                self.certifications.add(record)
        except (DecodeError, ValidationError):
            pass  # counted as invalid when it is decided

    def _partner_certification(self, message: Message) -> None:
        """A certification of the partner's scheme, as the partner's mirror wrote it here."""
        topic, partition, offset = clients.place(message)
        try:
            event_type, record = self.partner_serde.decode(
                message.value(), topic=topic, partition=partition, offset=offset
            )
            if event_type != CERTIFICATION:
                raise DecodeError(
                    f"a {event_type} record", topic=topic, partition=partition, offset=offset
                )
            self.certifications.add(record)
        except (DecodeError, KeyError) as exc:
            # Not ours to dead-letter (the partner's mirror wrote it); the gate goes without it.
            reason = exc.reason if isinstance(exc, DecodeError) else f"no field {exc}"
            log.warning(
                "%s: partner certification not used: %s[%d]@%d: %s",
                self.agent.direction,
                topic,
                partition,
                offset,
                reason,
            )

    def _consumer_event(self, message: Message) -> None:
        error = message.error()
        if error is not None and error.code() != KafkaError._PARTITION_EOF:
            log.warning("%s: source: %s", self.agent.direction, error.str())
            return
        key = (message.topic() or "", message.partition() or 0)
        if key in self.cert_pending:
            self.cert_pending.discard(key)
            if not self.cert_pending:  # certifications read through: let the events come
                self._resume([lane for k, lane in self.lanes.items() if k not in self.cert_lanes])

    def _decide(self, lane: Lane, message: Message, waited: float) -> bool:
        """Mirror or filter one record; False when it has to wait for a certification."""
        offset = clients.place(message)[2]
        if offset in lane.landed:
            lane.landed.discard(offset)
            lane.next_offset = offset + 1
            self.agent.totals.skipped += 1
            self._skipped.inc()
            self._count_landed(lane, message)
            return True
        private = message.value() or b""
        agent = self.agent
        fast = private[:_FRAME] == agent.current_frames.get(lane.event_type)
        try:
            if fast:  # the current private schema: read plain and write shared in one pass
                event_type = lane.event_type
                record, body, tally = self._read_fast(lane, private, offset)
            else:
                event_type, record = self.o.source_serde.decode(
                    private, topic=lane.topic, partition=lane.partition, offset=offset
                )
                if event_type != lane.event_type:
                    raise DecodeError(f"a {event_type} event in the {lane.event_type} topic")
                EVENT_MODELS[event_type].model_validate(record)
            origin = Provenance.read(clients.headers(message))
        except (DecodeError, ValidationError, ValueError) as exc:
            self._filter(lane, offset, Reason.invalid, exc)
            return True
        verdict = judge(
            self.policy, self.certifications, event_type, record, origin, waited, self.o.grace
        )
        if verdict.action is Action.hold:
            return False
        if verdict.action is Action.filter:
            assert verdict.reason is not None
            self._filter(lane, offset, verdict.reason)
            return True
        if fast:
            value = self._frame(event_type, lane.target_topic) + body
            key = agent.shared_key[event_type](record)
        else:
            value, tally, key = self._reencoded(event_type, record, lane.target_topic)
        redacted = tally.total
        if origin is None:
            headers = lane_headers(lane, agent.source_region.value, offset)
        else:
            headers = Provenance(
                origin.region, lane.topic, lane.partition, offset, origin.hops + 1
            ).headers()
        if verdict.recognised:
            headers.append((RECOGNISED, verdict.recognised.encode()))
        headers += self._sharing_headers(tuple(tally.paths))
        self._produce(
            lane.target_topic,
            value,
            None if key is None else str(key).encode(),
            lane.partition,
            headers,
            message.timestamp()[1],
        )
        lane.next_offset = offset + 1
        lane.flows.shared += 1
        lane.flows.redacted += redacted
        totals = self.agent.totals
        totals.mirrored += 1
        totals.redacted += redacted
        totals.redactions.add(tally)
        self._batch_mirrored[event_type] += 1
        self._batch_redacted[event_type] += redacted
        return True

    def _count_landed(self, lane: Lane, message: Message) -> None:
        """Count in the lane's flows a record an earlier session mirrored after its last
        checkpoint (so the checkpoint's counts lack it), with the values redaction removes."""
        lane.flows.shared += 1
        try:
            event_type, record = self.o.source_serde.decode(message.value())
            tallied = self.policy.redact_tallied(event_type, record)
        except (DecodeError, ValueError, KeyError):
            tallied = None  # it decoded when it was mirrored; a changed schema leaves it at 0
        if tallied is not None:
            lane.flows.redacted += tallied[1].total

    def _read_fast(
        self, lane: Lane, private: bytes, offset: int
    ) -> tuple[dict[str, Any], bytes, RedactionTally]:
        """(plain record, shared body, tally) of a record under the current private schema, its
        shared fields checked (checks.py): the shared body written from the private bytes,
        redacted in the same pass (transcode.py: the kept fields' bytes are the same in both
        schemas). Raises :class:`DecodeError` naming the record and the reason."""
        event_type = lane.event_type
        try:
            record, body, tally = self.agent.writers[event_type].read_and_transcode(private, _FRAME)
            self.agent.checks[event_type](record)
        except PlainDecodeError as exc:
            reason = f"Avro body does not match the {event_type} schema: {exc}"
            raise DecodeError(
                reason, topic=lane.topic, partition=lane.partition, offset=offset
            ) from None
        except ValueError as exc:
            reason = f"invalid {event_type} event: {exc}"
            raise DecodeError(
                reason, topic=lane.topic, partition=lane.partition, offset=offset
            ) from None
        return record, body, tally

    def _frame(self, event_type: str, topic: str) -> bytes:
        """The target's framing of ``event_type``'s shared records, worked out once."""
        header = self._frames.get(event_type)
        if header is None:
            schema = self.policy.shared_schemas[event_type]
            header = self._frames[event_type] = self.o.target_serde.header(schema, topic)
        return header

    def _reencoded(
        self, event_type: str, record: dict[str, Any], topic: str
    ) -> tuple[bytes, RedactionTally, Any]:
        """(value, tally, key) of a record under an older schema version or another framing
        (resolved on decoding): the redacted record encoded under the shared schema."""
        tallied = self.policy.redact_tallied(event_type, record)
        assert tallied is not None  # judge() filters the types the policy does not share
        shared, tally = tallied
        schema = self.policy.shared_schemas[event_type]
        value = self.o.target_serde.encode_as(schema, shared, topic)
        return value, tally, shared.get(EVENT_MODELS[event_type].KEY_FIELD)

    def _sharing_headers(self, paths: tuple[str, ...]) -> list[tuple[str, bytes]]:
        """:func:`sharing_headers` of the redacted paths, worked out once per distinct list
        (records of one type redact the same few lists over and over)."""
        found = self._sharing.get(paths)
        if found is None:
            if len(self._sharing) > 10_000:
                self._sharing.clear()
            found = self._sharing[paths] = sharing_headers(self.policy.name, list(paths))
        return list(found)

    def _count_batch(self) -> None:
        """Add what this batch mirrored and redacted to the metrics, once per event type."""
        for event_type, n in self._batch_mirrored.items():
            self._mirrored[event_type].inc(n)
        for event_type, n in self._batch_redacted.items():
            if n:
                self._redacted[event_type].inc(n)
        self._batch_mirrored.clear()
        self._batch_redacted.clear()

    def _produce(
        self,
        topic: str,
        value: bytes,
        key: bytes | None,
        partition: int,
        headers: list[tuple[str, bytes]] | None = None,
        timestamp: int = 0,
    ) -> None:
        clients.produce(
            self.producer,
            topic,
            value,
            key,
            partition=partition,
            headers=headers,
            timestamp=timestamp,
            on_wait=self._give_up_on_failure,
            wait_seconds=0.1,
        )

    def _give_up_on_failure(self) -> None:
        if self.agent._failure is not None:
            raise Unavailable(self.agent._failure)

    def _filter(
        self, lane: Lane, offset: int, reason: Reason, error: Exception | None = None
    ) -> None:
        lane.next_offset = offset + 1
        lane.flows.filtered[reason.value] = lane.flows.filtered.get(reason.value, 0) + 1
        self.agent.totals.filtered += 1
        self.agent.totals.filtered_by_reason[reason.value] += 1
        self._filtered.labels(self.agent.direction, lane.event_type, reason.value).inc()
        if error is not None and time.monotonic() - self.agent._invalid_logged > 10:
            self.agent._invalid_logged = time.monotonic()
            log.warning(
                "%s: not mirrored, invalid (more are counted in batteryloop_mirror_filtered_total"
                '{reason="invalid"}, not logged for 10 s): %s',
                self.agent.direction,
                error,
            )

    def _release(self, now: float) -> None:
        for lane in list(self.holding):
            while lane.waiting:
                head = lane.waiting[0]
                if not self._decide(lane, head.message, now - head.arrived):
                    break
                lane.waiting.popleft()
            if not lane.waiting:
                self.holding.discard(lane)
            if lane.paused and len(lane.waiting) < self.o.max_waiting // 2:
                self._resume([lane])

    def _pause(self, lanes: list[Lane]) -> None:
        if lanes:
            self.consumer.pause([TopicPartition(lane.topic, lane.partition) for lane in lanes])
            for lane in lanes:
                lane.paused = True

    def _resume(self, lanes: list[Lane]) -> None:
        lanes = [lane for lane in lanes if lane.paused and len(lane.waiting) < self.o.max_waiting]
        if lanes:
            self.consumer.resume([TopicPartition(lane.topic, lane.partition) for lane in lanes])
            for lane in lanes:
                lane.paused = False

    # --- checkpoints ------------------------------------------------------------------------

    def checkpoint(self) -> None:
        """Wait for every acknowledgement, then record each partition's position on the target."""
        self._count_batch()
        remaining = self.producer.flush(_message_timeout(self.o.target) + 5)
        if self.agent._failure is not None or remaining:
            raise Unavailable(self.agent._failure or f"{remaining} records unacknowledged")
        ends = self.agent._target_end
        waiting = lag = 0
        for lane in self.lanes.values():
            position, target_offset = lane.checkpoint(
                ends.get((lane.target_topic, lane.partition), 0)
            )
            if position != lane.checkpointed:
                self._produce(
                    MIRROR_CHECKPOINT_TOPIC.name,
                    checkpoint_value(position, target_offset, lane.flows),
                    checkpoint_key(self.agent.source_region, lane.topic, lane.partition),
                    0,
                )
                lane.checkpointed = position
            waiting += len(lane.waiting)
        lags: Tally[str] = Tally()
        for lane in self.lanes.values():
            _, high = self.consumer.get_watermark_offsets(
                TopicPartition(lane.topic, lane.partition), cached=True
            )
            if high >= 0:
                lags[lane.event_type] += max(0, high - lane.consumed)
        for event_type, behind in lags.items():
            self._lag[event_type].set(behind)
            lag += behind
        self._waiting.set(waiting)
        self.agent.totals.waiting, self.agent.totals.lag = waiting, lag
        self.producer.poll(0)

    def _progress(self) -> None:
        t = self.agent.totals
        log.info(
            "%s: %d mirrored, %d filtered, %d fields redacted, %d waiting, source lag %d",
            self.agent.direction,
            t.mirrored,
            t.filtered,
            t.redacted,
            t.waiting,
            t.lag,
        )


def _offset(start: int) -> int:
    return OFFSET_BEGINNING if start == 0 else start


def _message_timeout(config: Mapping[str, str]) -> float:
    value = config.get("message.timeout.ms", PRODUCER_DEFAULTS["message.timeout.ms"])
    return int(value) / 1000


def run_mirror(
    options: MirrorOptions,
    stop: threading.Event | None = None,
    agent: MirrorAgent | None = None,
) -> MirrorAgent:
    """Run an agent (``agent``, or a new one for ``options``) in this thread until ``stop`` is
    set (SIGTERM and Ctrl-C set it)."""
    import signal

    stop = stop or threading.Event()

    def handler(signum: int, frame: object) -> None:
        stop.set()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)
    agent = agent or MirrorAgent(options)
    agent.run(stop)
    return agent
