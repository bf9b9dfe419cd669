"""The worker: lifecycle events in; passports, lots, tallies and alerts out.

One process of a region's consumer group (``batteryloop-<region>-worker``), a confluent-kafka
batch loop::

    batteryloop.events.*  +  <partner>.batteryloop.events.*       (ingest: decode, route)
    batteryloop.internal.entity-messages                          (messages for keys held here)
        -> entity states, one store per partition, changelog batteryloop.internal.state
        -> batteryloop.passports, .lots, .tallies.*, .operators, .alerts   (compacted)
        -> batteryloop.internal.entity-messages   (messages for keys held by other workers)
    bad records  -->  batteryloop.dead-letters  (headers: error, topic, partition, offset)

**A batch.** Records are consumed in batches; events are decoded and split into messages per
entity key (:mod:`.ingest`). A message for a key whose partition this worker holds is applied
here and now, and so is whatever it causes for other held keys (a genealogy walks several hops
within one batch); only messages for keys held elsewhere go through the entity-messages topic.
An entity touched many times is loaded, changed and kept once.

**A window.** Every ``commit_interval`` (0.1 s) the worker closes a window: the latest document
of each changed entity is published and flushed with the entity messages sent meanwhile (all
acknowledged by the cluster); then the changed states are written to the changelog and
flushed; then the stores are written (states and changelog position in one atomic batch); only
then are the input offsets committed. A state on the changelog therefore never claims a
document or a message that is not out.
A crash anywhere in between redoes the window from the last committed offsets; the entities
keep facts keyed by event id (:mod:`streams.domain.entities`), so a redone window changes
nothing twice. No Kafka transactions are needed, and none are used.

**Restore.** When partitions are assigned, each store reads the changelog from its own position
to the end that fetch responses report (partition EOF, never a ListOffsets answer, which some
brokers get wrong). A ``rocksdb`` store survives restarts and ``kill -9`` and reads only the
tail; a ``memory`` store reads all. ``/readyz`` answers 200 once every assigned partition is
restored.

**Membership.** Partitions are split by the range assignor, so a worker holding entity-messages
partition *p* holds state partition *p*. A member that is gone longer than the session timeout
loses its partitions to the others, which restore them from the changelog. With
``--instance-id`` the worker is a static member (``group.instance.id``): restarted under the
same id, it takes its partitions back at once, without a rebalance (and on brokers that never
drop a dead member, at all).
"""

from __future__ import annotations

import gc
import logging
import signal
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from confluent_kafka import KafkaError, KafkaException, Message, TopicPartition
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from connectors.kafka import clients
from connectors.kafka.consume import read_to_end
from connectors.kafka.partitioner import Partitioner
from connectors.mirror import policy as sharing
from connectors.telemetry import BatchHistogram
from schemas.catalog import SchemaVersion
from schemas.serde import Serde
from schemas.topics import (
    DEAD_LETTER_TOPIC,
    DOCUMENT_TOPICS,
    ENTITY_MESSAGES_TOPIC,
    EVENT_TOPICS,
    STATE_CHANGELOG_TOPIC,
    mirrored_topic_name,
)
from schemas.values import Region
from streams.domain.codec import chunked_messages, decode_messages, decode_state, encode_state
from streams.domain.engine import dumps, group_by_key, process_batch
from streams.domain.entities import Config, State, document, due, tally_of_part, with_certification
from streams.domain.ingest import EventIngest, IngestRecord
from streams.domain.messages import Addressed, Tick
from streams.domain.routing import battery_key, operator_key
from streams.worker.store import PartitionStore, open_store

log = logging.getLogger(__name__)

#: Largest entity-messages record the worker writes (bytes; a lone message may exceed it).
RECORD_BYTES = 256 * 1024
#: Kinds whose states may wait for a grace period (and need a tick).
WAITING_KINDS = ("lot", "battery", "operator")


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
class WorkerOptions:
    """How one worker runs. What ``batteryloop worker`` has an option for has no default here:
    the command holds it (and its ``--help`` explains it), so it is written once."""

    region: Region
    bootstrap: str
    store: str  # "rocksdb" or "memory"
    data_dir: Path
    web_port: int
    web_host: str
    grace_seconds: float
    tick_seconds: float
    session_timeout: float
    #: How long a rebalance waits for members to rejoin (librdkafka's max.poll.interval.ms).
    rebalance_timeout: float
    #: How long the worker may wait for its partitions before it warns (log, ``/healthz``).
    assignment_timeout: float
    instance_id: str | None = None
    batch_size: int = 5000
    commit_interval: float = 0.1
    #: Decoded states kept between windows; beyond it the memory is dropped whole.
    cache_entries: int = 200_000
    schema_registry_url: str | None = None
    #: Base of the passports' resolvable URLs (``BATTERYLOOP_PASSPORT_BASE_URL``); None: the
    #: default of :class:`Config`.
    passport_base_url: str | None = None
    #: librdkafka properties for the worker's clients (SASL, TLS, tuning).
    kafka: dict[str, str] = field(default_factory=dict, repr=False)  # may hold secrets

    @property
    def group_id(self) -> str:
        return f"batteryloop-{self.region.value.lower()}-worker"


class Metrics:
    """Prometheus metrics of one worker (own registry, so tests can run several).

    The loop counts into its window and adds to these once per window (one ``inc`` per label
    set), never per event: see :meth:`Processors._count_window`.
    """

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.processed = Counter(
            "batteryloop_events_processed_total",
            "Lifecycle events decoded, validated and applied (counted once their window is stored)",
            ["event_type"],
            registry=self.registry,
        )
        self.failed = Counter(
            "batteryloop_events_failed_total",
            "Lifecycle events that failed to decode or validate (event_type unknown when "
            "undecodable), by reason category; each went to the dead-letter topic",
            ["event_type", "reason"],
            registry=self.registry,
        )
        self.dead_letters = Counter(
            "batteryloop_dead_letters_total",
            "Records sent to the dead-letter topic, by the topic they came from and reason "
            "category",
            ["topic", "reason"],
            registry=self.registry,
        )
        self.lag = Gauge(
            "batteryloop_consumer_lag_records",
            "Records not yet read in the partitions this worker holds, summed per topic (from "
            "the high watermarks of fetch responses)",
            ["topic"],
            registry=self.registry,
        )
        self.latency = BatchHistogram(
            "batteryloop_event_latency_seconds",
            "From an event record's timestamp to its window being stored (state updated)",
        )
        self.registry.register(self.latency)
        self.alerts = Counter(
            "batteryloop_alerts_raised_total",
            "Alerts that became open (new, or again after being resolved), by kind",
            ["kind"],
            registry=self.registry,
        )
        self.messages = Counter(
            "batteryloop_entity_messages_total",
            "Messages applied to entities",
            ["entity"],
            registry=self.registry,
        )
        self.documents = Counter(
            "batteryloop_documents_published_total",
            "Documents published (passports, lots, tallies, operators, alerts)",
            ["output"],
            registry=self.registry,
        )
        self.batch_seconds = Histogram(
            "batteryloop_batch_seconds",
            "Time to process one batch (stage handle) or close one window (stage commit)",
            ["stage"],
            registry=self.registry,
        )
        self.restored = Counter(
            "batteryloop_state_records_restored_total",
            "State changelog records read while restoring partitions",
            registry=self.registry,
        )
        self.partitions = Gauge(
            "batteryloop_state_partitions",
            "State partitions held by this worker",
            registry=self.registry,
        )


class AssignmentWatch:
    """Whether the worker holds partitions, and for how long it has waited for them.

    A worker that gets no partitions processes nothing and, left alone, says nothing: on a
    broker that never evicts a group member that died without leaving (noida, see the README's
    "Embedded brokers"), a restarted worker without a static instance id waits for ever. After
    ``timeout`` seconds of waiting this logs one WARNING, and ``/healthz`` answers 503 with how
    long it has waited.
    """

    def __init__(self, timeout: float, clock: Any = time.monotonic) -> None:
        self.timeout = timeout
        self._clock = clock
        self._lock = threading.Lock()
        self.partitions = 0
        self.waiting_since: float | None = clock()  # not assigned until the first assignment
        self.warned = False

    def assigned(self, partitions: int) -> None:
        with self._lock:
            self.partitions = partitions
            if partitions:
                if self.warned and self.waiting_since is not None:
                    log.warning(
                        "%d partition(s) assigned after %.0f s of waiting",
                        partitions,
                        self._clock() - self.waiting_since,
                    )
                self.waiting_since, self.warned = None, False
            elif self.waiting_since is None:
                self.waiting_since = self._clock()

    def waited(self) -> float:
        with self._lock:
            since = self.waiting_since
        return 0.0 if since is None else self._clock() - since

    def overdue(self) -> bool:
        return self.waiting_since is not None and self.waited() >= self.timeout

    def check(self) -> None:
        """Log the warning once a wait passes the timeout (once per wait)."""
        if self.overdue() and not self.warned:
            self.warned = True
            log.warning(
                "no partitions assigned after %.0f s (--assignment-timeout %.0f): this worker "
                "processes nothing. Another member of the consumer group holds them, or a "
                "member that died is still counted by the broker; a broker that never evicts "
                "dead members keeps it so until the group is reset.",
                self.waited(),
                self.timeout,
            )

    def health(self) -> dict[str, Any]:
        return {
            "assigned": self.waiting_since is None,
            "partitions": self.partitions,
            "waiting_for_partitions_seconds": round(self.waited(), 1),
            "assignment_timeout_seconds": self.timeout,
        }


@dataclass
class Window:
    """What changed since the last commit: written out together when the window closes."""

    states: dict[str, State] = field(default_factory=dict)
    documents: dict[tuple[str, str], Any] = field(default_factory=dict)
    offsets: dict[tuple[str, int], int] = field(default_factory=dict)  # next offset to read
    produced: int = 0  # records produced in the window (entity messages, dead letters)
    # counted while the window is open, added to the metrics once it is stored
    processed: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    failed: dict[tuple[str, str], int] = field(default_factory=lambda: defaultdict(int))
    dead_letters: dict[tuple[str, str], int] = field(default_factory=lambda: defaultdict(int))
    raised: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    #: Kafka timestamps (ms) of the events applied in the window.
    timestamps: list[int] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.states or self.documents or self.offsets or self.produced)


class Processors:
    """The stream processors of one region: the loop, its stores and what the views read."""

    def __init__(self, options: WorkerOptions, serde: Serde | None = None) -> None:
        self.options = options
        self.config = Config(
            grace_ms=int(options.grace_seconds * 1000), region=options.region.value
        )
        if options.passport_base_url is not None:
            self.config.passport_base_url = options.passport_base_url
        if serde is None:
            serde = Serde.for_registry(options.schema_registry_url, shipped_shared_schemas())
        partner = options.region.partner
        self.ingest = EventIngest(
            serde,
            mirrored_event_topics(partner),
            sharing.direction(partner.value, options.region.value),
        )
        self.metrics = Metrics()
        self.assignment = AssignmentWatch(options.assignment_timeout)
        self.partition = Partitioner(ENTITY_MESSAGES_TOPIC.partitions)
        self.stores: dict[int, PartitionStore] = {}
        self.ready = threading.Event()
        self.stopping = threading.Event()
        self.window = Window()
        self._cache: dict[str, State] = {}
        self._due: dict[str, int] = {}
        self._scans: list[Iterator[tuple[bytes, bytes]]] = []
        self._changelog_end: dict[int, int] = {}
        self._delivery_errors: list[str] = []
        self._assigned: list[TopicPartition] = []  # what the consumer holds, for the lag
        self._lag_topics: set[str] = set()
        client = {**options.kafka, "bootstrap.servers": options.bootstrap}
        consumer = {
            **client,
            "group.id": options.group_id,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            # partition p of the entity messages and state partition p go together
            "partition.assignment.strategy": "range",
            "session.timeout.ms": int(options.session_timeout * 1000),
            "heartbeat.interval.ms": int(max(1.0, options.session_timeout / 4) * 1000),
            "max.poll.interval.ms": int(max(options.rebalance_timeout, 1.0) * 1000),
        }
        if options.instance_id:
            consumer["group.instance.id"] = options.instance_id
        self.consumer = clients.consumer(consumer)
        self.restore_config = client
        self.producer = clients.producer(
            {
                **client,
                "linger.ms": 5,
                "acks": "all",
                "enable.idempotence": True,
                "compression.type": "lz4",
                # the partition of a key as Java clients compute it (and :mod:`.partitioner`)
                "partitioner": "murmur2_random",
                "queue.buffering.max.messages": 500_000,
            },
            on_delivery=self._on_delivery,
        )

    # --- the loop ---------------------------------------------------------------------------

    def run(self) -> None:
        """Consume, process and commit until :attr:`stopping` is set."""
        topics = [*self.ingest.topic_event_type, ENTITY_MESSAGES_TOPIC.name]
        self.consumer.subscribe(
            topics, on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_lost
        )
        interval = self.options.commit_interval
        next_commit = time.monotonic() + interval
        next_tick = time.monotonic() + self.options.tick_seconds
        clean = False
        try:
            while not self.stopping.is_set():
                records = self.consumer.consume(self.options.batch_size, 0.05)
                if records:
                    self._handle(records)
                self._scan_some()
                now = time.monotonic()
                if now >= next_tick:
                    self._tick()
                    next_tick = now + self.options.tick_seconds
                if now >= next_commit:
                    self._commit()
                    next_commit = now + interval
                self.assignment.check()
            self._commit(wait=True)
            clean = True
        finally:
            if not clean:
                log.error("the worker stops on an error; its last window is not committed")
            self.ready.clear()
            self.consumer.close()
            self.producer.flush(10)
            for store in self.stores.values():
                store.close()

    def _handle(self, records: list[Message]) -> None:
        started = time.perf_counter()
        events: list[Message] = []
        addressed: list[Addressed] = []
        offsets = self.window.offsets
        for record in records:
            error = record.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    continue
                if error.code() == KafkaError._MAX_POLL_EXCEEDED:
                    # a batch outlasted --rebalance-timeout: the group went on without this
                    # worker, which rejoins with its next poll; what it did since its last
                    # commit is redone by whoever holds the partitions now
                    log.warning("%s; rejoining the group", error.str())
                    self._on_lost(self.consumer, [])
                    return
                raise KafkaException(error)
            topic, partition, offset = clients.place(record)
            offsets[topic, partition] = offset + 1
            if topic == ENTITY_MESSAGES_TOPIC.name:
                addressed.extend(self._entity_messages(record))
            else:
                events.append(record)
        if events:
            # consumed records without an error: a topic, and headers as a list of pairs
            batch = [(r.topic(), r.value(), r.headers()) for r in events]
            ingested = self.ingest.ingest(cast(list[IngestRecord], batch))
            addressed.extend(ingested.messages)
            window = self.window
            for rejected in ingested.rejected:
                self._dead_letter(events[rejected.index], rejected.reason, rejected.category)
                window.failed[rejected.event_type, rejected.category] += 1
            for event_type, count in ingested.routed.items():
                window.processed[event_type] += count
            if ingested.rejected:
                dropped = {rejected.index for rejected in ingested.rejected}
                events = [r for i, r in enumerate(events) if i not in dropped]
            window.timestamps.extend([r.timestamp()[1] for r in events])
        self._apply(addressed)
        self.metrics.batch_seconds.labels("handle").observe(time.perf_counter() - started)

    def _entity_messages(self, record: Message) -> list[Addressed]:
        topic, partition, offset = clients.place(record)
        key = (record.key() or b"").decode()
        where = f"{topic}[{partition}]@{offset}"
        if self._home(key) != partition:
            # only this program writes the topic, by the same partitioner: a record elsewhere
            # would be applied to a state other workers also hold
            raise RuntimeError(
                f"entity messages at {where}: key {key!r} belongs to partition {self._home(key)}"
            )
        try:
            return [(key, message) for message in decode_messages(key, record.value() or b"")]
        except ValueError as exc:
            # a record this program cannot read is a bug or a newer version: stop (offsets
            # uncommitted) rather than skip state changes
            raise RuntimeError(f"entity messages at {where}: {exc}") from exc

    def _home(self, key: str) -> int:
        """The partition of an entity key; a tally's contributions live with their tally."""
        kind = key.partition("/")[0]
        return self.partition(tally_of_part(key) if kind.endswith("-part") else key)

    def _held(self, key: str) -> bool:
        return self._home(key) in self.stores

    def _apply(self, addressed: list[Addressed]) -> None:
        """Apply what is for keys held here, with all it causes for held keys (a genealogy
        walks its hops within the call); send the rest to the workers holding it."""
        held = self._keep_held(addressed)
        if not held:
            return
        window = self.window
        states, fx = process_batch(held, self._load, _now_ms(), self.config, local=self._held)
        window.states.update(states)
        self._cache.update(states)
        for output, key, doc in fx.published:
            window.documents[output, key] = doc
        for kind, count in fx.raised.items():
            window.raised[kind] += count
        self._send(fx.messages)
        per_kind: dict[str, int] = defaultdict(int)
        for key, _ in held:
            per_kind[key.partition("/")[0]] += 1
        for kind, count in per_kind.items():
            self.metrics.messages.labels(kind).inc(count)

    def _keep_held(self, addressed: list[Addressed]) -> list[Addressed]:
        held: list[Addressed] = []
        elsewhere: list[Addressed] = []
        for item in addressed:
            (held if self._held(item[0]) else elsewhere).append(item)
        if elsewhere:
            self._send(elsewhere)
        return held

    def _send(self, addressed: list[Addressed]) -> None:
        # one record per entity per batch, split so that no record nears the 1 MB default limit
        for key, batch in group_by_key(addressed).items():
            for record in chunked_messages(batch, RECORD_BYTES):
                self._produce(ENTITY_MESSAGES_TOPIC.name, key.encode(), record)

    def _load(self, key: str) -> State | None:
        state = self.window.states.get(key)
        if state is None:
            state = self._cache.get(key)
        if state is not None:
            return state
        store = self.stores.get(self._home(key))
        raw = None if store is None else store.get(key.encode())
        if raw is None:
            return None
        state = self._cache[key] = decode_state(key, raw)
        return state

    # --- closing a window -------------------------------------------------------------------

    def _commit(self, wait: bool = False) -> None:
        """Close the window (see the module's docstring). The offset commit is sent without
        waiting for its answer unless ``wait`` (partitions about to go): a commit that fails
        only means the window is redone, which changes nothing."""
        window = self.window
        if not window:
            return
        started = time.perf_counter()
        # Documents (and the entity messages already queued) first, then the states: a state
        # on the changelog says its document is published and its messages are sent (it keeps
        # what it published, to publish only changes), so it must not get there before them.
        published: dict[str, int] = defaultdict(int)
        for (output, key), doc in window.documents.items():
            self._produce(DOCUMENT_TOPICS[output].name, key.encode(), dumps(doc))
            published[output] += 1
        self._flush()
        values: dict[int, dict[bytes, bytes]] = defaultdict(dict)
        for key, state in window.states.items():
            partition = self._home(key)
            value = encode_state(state)
            values[partition][key.encode()] = value
            self._produce(
                STATE_CHANGELOG_TOPIC.name,
                key.encode(),
                value,
                partition=partition,
                on_delivery=self._on_changelog,
            )
        self._flush()
        for partition, changed in values.items():
            store = self.stores.get(partition)
            if store is not None:
                store.write(changed, self._changelog_end[partition])
        if window.offsets:
            offsets = [TopicPartition(t, p, o) for (t, p), o in window.offsets.items()]
            try:
                if wait:
                    self.consumer.commit(offsets=offsets, asynchronous=False)
                else:
                    self.consumer.commit(offsets=offsets, asynchronous=True)
            except KafkaException as exc:
                # the window's output is durable; a redo after a rebalance changes nothing
                log.warning("offset commit failed (the window will be redone): %s", exc)
        for key, state in window.states.items():
            if key.partition("/")[0] in WAITING_KINDS:
                self._track_due(key, state)
        if len(self._cache) > self.options.cache_entries:
            self._cache.clear()
        self.window = Window()
        self._count_window(window, published)
        self.metrics.batch_seconds.labels("commit").observe(time.perf_counter() - started)

    def _count_window(self, window: Window, published: dict[str, int]) -> None:
        """Add a stored window's counts to the metrics: one ``inc`` per label set, the
        latencies of all its events in one go, and the consumer lag as of now."""
        m = self.metrics
        m.latency.add_ages(int(time.time() * 1000), window.timestamps)
        for event_type, count in window.processed.items():
            m.processed.labels(event_type).inc(count)
        for (event_type, reason), count in window.failed.items():
            m.failed.labels(event_type, reason).inc(count)
        for (topic, reason), count in window.dead_letters.items():
            m.dead_letters.labels(topic, reason).inc(count)
        for kind, count in window.raised.items():
            m.alerts.labels(kind).inc(count)
        for output, count in published.items():
            m.documents.labels(output).inc(count)
        self._measure_lag()

    def _measure_lag(self) -> None:
        """Consumer lag per topic over the partitions held: the high watermark the last fetch
        response reported (cached: no request, and never a ListOffsets answer, which some
        brokers get wrong) minus the position."""
        lag: dict[str, int] = defaultdict(int)
        for tp in self.consumer.position(self._assigned) if self._assigned else []:
            _, high = self.consumer.get_watermark_offsets(tp, cached=True)
            if high >= 0 and tp.offset >= 0:  # else not fetched yet: nothing known
                lag[tp.topic] += max(0, high - tp.offset)
        for topic in self._lag_topics - set(lag):
            self.metrics.lag.remove(topic)
        for topic, behind in lag.items():
            self.metrics.lag.labels(topic).set(behind)
        self._lag_topics = set(lag)

    def _produce(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: list[tuple[str, bytes]] | None = None,
        partition: int = -1,
        on_delivery: Any = None,
    ) -> None:
        # the common case straight to librdkafka (one call per record on the hot path); a full
        # local queue takes the shared backpressure path
        try:
            if headers is None and on_delivery is None:
                self.producer.produce(topic, value, key, partition)
            else:
                extra: dict[str, Any] = {"on_delivery": on_delivery, "headers": headers}
                self.producer.produce(topic, value, key, partition, **extra)
        except BufferError:
            clients.produce(
                self.producer,
                topic,
                value,
                key,
                partition=partition,
                headers=headers,
                on_delivery=on_delivery,
                wait_seconds=0.1,
            )
        self.window.produced += 1

    def _on_delivery(self, error: KafkaError | None, message: Message) -> None:
        if error is not None:
            self._delivery_errors.append(f"{message.topic()}: {error.str()}")

    def _on_changelog(self, error: KafkaError | None, message: Message) -> None:
        if error is not None:
            self._delivery_errors.append(f"{message.topic()}: {error.str()}")
            return
        _, partition, offset = clients.place(message)
        if offset > self._changelog_end.get(partition, -1):
            self._changelog_end[partition] = offset

    def _flush(self) -> None:
        """Wait until every record of the window is acknowledged; fail loudly if one was not.

        A failure stops the worker before the window's offsets are committed, so a restart
        redoes the window (idempotently) instead of losing its output.
        """
        remaining = self.producer.flush(60)
        if remaining or self._delivery_errors:
            errors, self._delivery_errors = self._delivery_errors, []
            raise RuntimeError(
                f"{remaining} record(s) undelivered after 60 s; delivery errors: {errors[:5]}"
            )

    def _dead_letter(self, record: Message, reason: str, category: str) -> None:
        topic, partition, offset = clients.place(record)
        log.warning("dead letter from %s[%s]@%s: %s", topic, partition, offset, reason)
        self._produce(
            DEAD_LETTER_TOPIC.name,
            record.key(),
            record.value(),
            headers=[
                ("error", reason.encode()),
                ("topic", topic.encode()),
                ("partition", str(partition).encode()),
                ("offset", str(offset).encode()),
                ("stage", b"processors"),
            ],
        )
        self.window.dead_letters[topic, category] += 1

    # --- partitions coming and going --------------------------------------------------------

    def _on_assign(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        wanted = {tp.partition for tp in partitions if tp.topic == ENTITY_MESSAGES_TOPIC.name}
        self._scans = []  # may be over stores about to close; _restore scans anew
        for partition in sorted(set(self.stores) - wanted):
            self.stores.pop(partition).close()
        self._cache.clear()
        self._due = {k: when for k, when in self._due.items() if self._home(k) in wanted}
        self._restore(wanted)
        self._assigned = [TopicPartition(tp.topic, tp.partition) for tp in partitions]
        self.metrics.partitions.set(len(self.stores))
        self.assignment.assigned(len(partitions))
        self.ready.set()

    def _on_revoke(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        # what was done so far is committed while the partitions are still ours; the stores
        # stay open, in case the next assignment gives them back
        self.ready.clear()
        self._commit(wait=True)
        self._assigned = []
        self.assignment.assigned(0)

    def _on_lost(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        # the group went on without this worker: whatever it did since its last commit is
        # someone else's to redo, and its stores may be stale
        log.warning("partitions lost to the group (session timed out); the window is dropped")
        self.ready.clear()
        self.producer.flush(10)
        self._delivery_errors.clear()
        self.window = Window()
        self._scans = []  # over stores about to close; the next assignment scans anew
        for partition in list(self.stores):
            self.stores.pop(partition).close()
        self._cache.clear()
        self._due = {}
        self._assigned = []
        self.assignment.assigned(0)

    def _restore(self, partitions: set[int]) -> None:
        """Bring the stores of ``partitions`` to the end of their changelogs."""
        started = time.monotonic()
        stores = {
            p: self.stores.get(p) or open_store(self.options.store, self.options.data_dir, p)
            for p in sorted(partitions)
        }
        positions = {p: store.position() for p, store in stores.items()}
        tail = [
            TopicPartition(STATE_CHANGELOG_TOPIC.name, p, position + 1)
            for p, position in positions.items()
        ]
        pending: dict[int, dict[bytes, bytes]] = defaultdict(dict)
        restored = 0
        for record in read_to_end(self.restore_config, tail, timeout=600):
            _, partition, offset = clients.place(record)
            key, value = record.key(), record.value()
            positions[partition] = offset
            if key is None or value is None:
                continue  # states are never deleted; a tombstone is not ours
            values = pending[partition]
            values[key] = value
            restored += 1
            if len(values) >= 10_000:
                stores[partition].write(values, positions[partition])
                pending[partition] = {}
        for partition, values in pending.items():
            if values:
                stores[partition].write(values, positions[partition])
        self.stores.update(stores)
        self._changelog_end.update(positions)
        self.metrics.restored.inc(restored)
        # the index of waiting entities is rebuilt from the stores, a little per loop turn
        self._scans = [
            store.items(kind.encode() + b"/") for store in stores.values() for kind in WAITING_KINDS
        ]
        log.info(
            "state partitions %s restored: %d changelog record(s) in %.1f s",
            sorted(partitions),
            restored,
            time.monotonic() - started,
        )

    # --- ticks: alerts that wait for a grace period -----------------------------------------

    def _scan_some(self, budget: int = 2000) -> None:
        while self._scans and budget > 0:
            try:
                raw_key, raw = next(self._scans[0])
            except StopIteration:
                self._scans.pop(0)
                continue
            key = raw_key.decode()
            self._track_due(key, decode_state(key, raw))
            budget -= 1

    def _track_due(self, key: str, state: State) -> None:
        when = due(key, state, self.config)
        if when is None:
            self._due.pop(key, None)
        else:
            self._due[key] = when

    def _tick(self) -> None:
        now = _now_ms()
        ticks: list[Addressed] = []
        for key, when in sorted(self._due.items()):
            if when <= now:
                del self._due[key]
                ticks.append((key, Tick()))
        if ticks:
            self._apply(ticks)

    # --- read views -------------------------------------------------------------------------

    def lookup(self, key: str) -> dict[str, Any] | None:
        """The current document of an entity held by this worker (as last committed), or None."""
        store = self.stores.get(self._home(key))
        raw = None if store is None else store.get(key.encode())
        if raw is None:
            return None
        return document(key, decode_state(key, raw), _now_ms(), self.config)

    def passport(self, battery_id: str) -> dict[str, Any] | None:
        doc = self.lookup(battery_key(battery_id))
        if doc is None:
            return None
        # operators are keyed apart from batteries: this answers for operators this worker
        # holds (all of them with one worker per region)
        operator = self.lookup(operator_key(doc["manufacturer_id"]))
        return with_certification(doc, operator, _now_us())

    def listing(self, kind: str) -> list[dict[str, Any]]:
        now = _now_ms()
        docs = []
        for store in list(self.stores.values()):
            for raw_key, raw in store.items(kind.encode() + b"/"):
                key = raw_key.decode()
                doc = document(key, decode_state(key, raw), now, self.config)
                if doc is not None:
                    docs.append(doc)
        return docs


def _now_ms() -> int:
    return int(time.time() * 1000)


def _now_us() -> int:
    return int(time.time() * 1_000_000)


def run_worker(options: WorkerOptions) -> None:
    """Run the processors until SIGTERM or SIGINT; the last window is committed on the way out."""
    from streams.worker.views import ViewServer

    processors = Processors(options)
    # What the loop keeps (decoded states, their messages) lives long and forms no cycles;
    # the collector's full passes over it cost a fifth of the time on genealogy-heavy input.
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)

    def stop(signum: int, frame: object) -> None:
        log.info("signal %d: finishing the current window and stopping", signum)
        processors.stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    views = ViewServer(processors, options.web_host, options.web_port)
    views.start()
    try:
        processors.run()
    finally:
        views.stop()
