"""The faust-streaming worker: lifecycle events in; passports, lots, tallies and alerts out.

Topology (one app per region, ``batteryloop-eu`` / ``batteryloop-jp``)::

    batteryloop.events.*            --route-->  batteryloop.internal.entity-messages  --entities-->
    <partner>.batteryloop.events.*  (the partner region's events, as its mirror shared them)
        tables lots, batteries, operators, recycled_content, recovery   (changelogged)
        batteryloop.passports, .lots, .tallies.*, .operators, .alerts    (compacted)
        batteryloop.internal.entity-messages                            (profiles, contributions)
    bad records  -->  batteryloop.dead-letters  (headers: error, topic, partition, offset)

``route`` decodes and validates each event and splits it into messages per entity key
(:mod:`.routing`); ``entities`` applies them (:mod:`.entities`). Its own region's events and
the partner's mirrored ones go into one state: a mirrored record is decoded with the shared
schemas of the shipped policies (both directions, recognised by fingerprint or registry id)
and handed on with the agreement and the redacted fields its headers name
(:class:`~streams.domain.routing.Received`); an event that arrives twice, or by both paths,
counts once (:mod:`streams.domain.entities.provenance`). Both work on batches
(``take_events``): an entity touched many times in a batch is loaded, recomputed and written
once. Delivery is at least once; the entities make that effectively once (see
:mod:`.entities`), so no Kafka transactions are needed.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import faust
from confluent_kafka import KafkaError
from faust.streams import _current_event
from faust.web import Request, Response, View
from mode.supervisors import CrashingSupervisor
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from pydantic import ValidationError

from connectors.kafka import clients
from connectors.kafka.credentials import faust_credentials
from connectors.mirror import policy as sharing
from connectors.mirror.replication import read_sharing
from schemas.catalog import SchemaVersion
from schemas.events import EVENT_MODELS
from schemas.serde import (
    DecodeError,
    Serde,
    describe_validation_error,
)
from schemas.topics import (
    DEAD_LETTER_TOPIC,
    DOCUMENT_TOPICS,
    ENTITY_MESSAGES_TOPIC,
    EVENT_PARTITIONS,
    EVENT_TOPICS,
    mirrored_topic_name,
)
from schemas.values import Region
from streams.domain.codec import (
    chunked_messages,
    decode_messages,
    decode_state,
    encode_messages,
    encode_state,
)
from streams.domain.engine import dumps, group_by_key, process_batch
from streams.domain.entities import Config, State, document, due, with_certification
from streams.domain.messages import Addressed, SharedUnder, Tick
from streams.domain.routing import Received, battery_key, lot_key, operator_key, route_batch

log = logging.getLogger(__name__)

#: Entity kind (the key's prefix) -> table name.
TABLES = {
    "lot": "lots",
    "battery": "batteries",
    "operator": "operators",
    "recycled-content": "recycled_content",
    "recovery": "recovery",
    # one tally's per-source contributions, kept beside the tally (same partition)
    "recycled-content-part": "recycled_content_parts",
    "recovery-part": "recovery_parts",
}
#: Largest entity-messages record the worker writes (bytes; a lone message may exceed it).
RECORD_BYTES = 256 * 1024
_TOPIC_EVENT_TYPE = {spec.name: event_type for event_type, spec in EVENT_TOPICS.items()}
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
class WorkerOptions:
    """How one worker runs. What ``batteryloop worker`` has an option for has no default here:
    the command holds it (and its ``--help`` explains it), so it is written once."""

    region: Region
    bootstrap: str
    store: str  # "rocksdb://" or "memory://"
    data_dir: str
    web_port: int
    web_host: str
    grace_seconds: float
    tick_seconds: float
    session_timeout: float
    #: How long a rebalance waits for members to rejoin; a SIGKILLed member is waited for this
    #: long on some brokers before its partitions move.
    rebalance_timeout: float
    #: How long the worker may wait for its partitions before it warns (log, ``/healthz``).
    assignment_timeout: float
    route_batch: int = 2000
    entity_batch: int = 5000
    batch_within: float = 0.05
    schema_registry_url: str | None = None
    #: librdkafka properties for the worker's producer (SASL, TLS, tuning).
    kafka: dict[str, str] = field(default_factory=dict, repr=False)  # may hold secrets


class Metrics:
    """Prometheus metrics of one worker (own registry, so tests can run several)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.events = Counter(
            "batteryloop_events_routed_total",
            "Lifecycle events decoded, validated and routed",
            ["event_type"],
            registry=self.registry,
        )
        self.dead_letters = Counter(
            "batteryloop_dead_letters_total",
            "Records sent to the dead-letter topic",
            ["topic"],
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
            "Time to process one batch",
            ["stage"],
            registry=self.registry,
        )


class AssignmentWatch:
    """Whether the worker holds partitions, and for how long it has waited for them.

    A worker that gets no partitions processes nothing and, left alone, says nothing: on a
    broker that never evicts a group member that died without leaving (noida, see the README's
    "Embedded brokers"), a restarted worker waits for ever. After ``timeout`` seconds of waiting
    this logs one WARNING, and ``/healthz`` answers 503 with how long it has waited.
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

    def run(self, stop: threading.Event, interval: float = 0.5) -> None:
        """Check until ``stop`` is set (in a thread: faust starts its timers only once the
        tables are recovered, which needs partitions)."""
        while not stop.wait(interval):
            self.check()


class Processors:
    """The faust app with its topics, tables, agents, timer and web views."""

    def __init__(self, options: WorkerOptions, serde: Serde | None = None) -> None:
        self.options = options
        region = options.region
        self.config = Config(grace_ms=int(options.grace_seconds * 1000), region=region.value)
        if serde is None:
            serde = Serde.for_registry(options.schema_registry_url, shipped_shared_schemas())
        self.serde = serde
        self.partner = region.partner
        self.mirrored = mirrored_event_topics(self.partner)
        self.topic_event_type = {**_TOPIC_EVENT_TYPE, **self.mirrored}
        self.shared_direction = sharing.direction(self.partner.value, region.value)
        self.metrics = Metrics()
        self._due: dict[str, int] = {}
        self._scanned = False
        app = self.app = faust.App(
            f"batteryloop-{options.region.value.lower()}",
            broker=f"kafka://{options.bootstrap}",
            # faust's own clients (aiokafka) get the security settings librdkafka's get
            broker_credentials=faust_credentials(options.kafka),
            store=options.store,
            datadir=options.data_dir,
            web_port=options.web_port,
            web_bind=options.web_host,
            web_host=options.web_host,
            canonical_url=f"http://{options.web_host}:{options.web_port}",
            topic_partitions=EVENT_PARTITIONS,
            topic_replication_factor=1,
            topic_allow_declare=True,
            broker_session_timeout=options.session_timeout,
            broker_rebalance_timeout=options.rebalance_timeout,
            broker_heartbeat_interval=max(1.0, options.session_timeout / 4),
            consumer_auto_offset_reset="earliest",
            producer_linger_ms=20,
            producer_acks=-1,
            key_serializer="raw",
            value_serializer="raw",
            table_standby_replicas=0,
            autodiscover=False,
        )
        own_topics = [s.name for s in EVENT_TOPICS.values()]
        self.event_topics = app.topic(*own_topics, *self.mirrored, key_type=bytes, value_type=bytes)
        self.entity_topic = app.topic(
            ENTITY_MESSAGES_TOPIC.name,
            partitions=ENTITY_MESSAGES_TOPIC.partitions,
            key_type=bytes,
            value_type=bytes,
        )
        self.tables = {
            kind: app.Table(
                name,
                default=None,
                partitions=ENTITY_MESSAGES_TOPIC.partitions,
                key_type=bytes,
                value_type=bytes,
            )
            for kind, name in TABLES.items()
        }
        # Records the agents write (entity messages, documents, changelogs, dead letters) go
        # through librdkafka: with faust's own producer, record by record, end-to-end
        # throughput was half (BENCHMARKS.md). Each batch is flushed
        # before the agent takes the next one, so no offset is committed for input whose
        # output is not yet durable (faust commits only offsets of events already processed).
        self.producer = clients.producer(
            {
                **options.kafka,
                "bootstrap.servers": options.bootstrap,
                "linger.ms": 5,
                "acks": "all",
                "enable.idempotence": True,
                "compression.type": "lz4",
                # Same partition for a key as Java clients and faust (murmur2).
                "partitioner": "murmur2_random",
            }
        )
        self._delivery_errors: list[str] = []
        self.assignment = self._watch_assignment(options.assignment_timeout)
        self._changelogs = {
            table.name: table.changelog_topic.get_topic_name() for table in self.tables.values()
        }
        # An agent that crashes stops the worker: restarting just the agent would carry on
        # after the failed batch, whose offsets then get committed with later ones. A restarted
        # worker instead resumes from the last committed offset and redoes the batch.
        crash = CrashingSupervisor
        app.agent(self.event_topics, name="route", supervisor_strategy=crash)(self._route)
        app.agent(self.entity_topic, name="entities", supervisor_strategy=crash)(self._entities)
        app.timer(options.tick_seconds)(self._tick)
        self._add_views()

    def _watch_assignment(self, timeout: float) -> AssignmentWatch:
        watch = AssignmentWatch(timeout)

        @self.app.on_partitions_assigned.connect
        async def on_assigned(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
            # faust calls receivers as (sender, assigned partitions, signal=...)
            watch.assigned(len(args[0]) if args else 0)

        @self.app.on_partitions_revoked.connect
        async def on_revoked(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
            watch.assigned(0)  # a rebalance began: waiting again until it ends

        return watch

    # --- route: events -> entity messages -------------------------------------------------

    async def _route(self, stream: Any) -> Any:
        async for events in stream.take_events(self.options.route_batch, self.options.batch_within):
            started = time.perf_counter()
            valid = [e for e in (self._decode(ev.message) for ev in events) if e is not None]
            self._send_messages(route_batch(valid))
            per_type: dict[str, int] = defaultdict(int)
            for arrival in valid:
                per_type[arrival.event.event_type] += 1
            for event_type, count in per_type.items():
                self.metrics.events.labels(event_type).inc(count)
            self._flush()
            self.metrics.batch_seconds.labels("route").observe(time.perf_counter() - started)
            yield len(events)

    def _decode(self, message: Any) -> Received | None:
        """The event in a record, or None after dead-lettering the record with the reason."""
        where = {"topic": message.topic, "partition": message.partition, "offset": message.offset}
        try:
            event_type, record = self.serde.decode(message.value, **where)
            expected = self.topic_event_type.get(message.topic)
            if expected is not None and event_type != expected:
                raise DecodeError(f"a {event_type} event on the {expected} topic", **where)
            event = EVENT_MODELS[event_type].model_validate(record)
            if message.topic not in self.mirrored:
                return Received(event)
            agreement, redacted = read_sharing(message.headers)
            shared = SharedUnder(agreement or UNNAMED_AGREEMENT, self.shared_direction)
            return Received(event, shared, redacted)
        except DecodeError as exc:
            reason = exc.reason
        except ValidationError as exc:
            reason = f"invalid {event_type} event: {describe_validation_error(exc)}"
        self._dead_letter(message, reason)
        return None

    def _dead_letter(self, message: Any, reason: str) -> None:
        log.warning(
            "dead letter from %s[%s]@%s: %s",
            message.topic,
            message.partition,
            message.offset,
            reason,
        )
        self._produce(
            DEAD_LETTER_TOPIC.name,
            message.key,
            message.value,
            headers=[
                ("error", reason.encode()),
                ("topic", message.topic.encode()),
                ("partition", str(message.partition).encode()),
                ("offset", str(message.offset).encode()),
                ("stage", b"processors"),
            ],
        )
        self.metrics.dead_letters.labels(message.topic).inc()

    def _produce(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: list[tuple[str, bytes]] | None = None,
        partition: int = -1,  # -1: by key
    ) -> None:
        clients.produce(
            self.producer,
            topic,
            value,
            key,
            partition=partition,
            headers=headers,
            on_delivery=self._on_delivery,
            wait_seconds=0.1,
        )

    def _on_delivery(self, error: KafkaError | None, message: Any) -> None:
        if error is not None:
            self._delivery_errors.append(f"{message.topic()}: {error.str()}")

    def _flush(self) -> None:
        """Wait until every record of this batch is acknowledged; fail loudly if one was not.

        A failure stops the worker before the batch's offsets are committed, so a restart
        processes the batch again (idempotently) instead of losing its output.
        """
        remaining = self.producer.flush(60)
        if remaining or self._delivery_errors:
            errors, self._delivery_errors = self._delivery_errors, []
            raise RuntimeError(
                f"{remaining} record(s) undelivered after 60 s; delivery errors: {errors[:5]}"
            )

    def _send_messages(self, messages: Iterable[Addressed]) -> None:
        # One record per entity per batch (fewer, larger records for the next stage), split
        # so that no record comes near the brokers' default 1 MB limit.
        for key, batch in group_by_key(messages).items():
            for record in chunked_messages(batch, RECORD_BYTES):
                self._produce(ENTITY_MESSAGES_TOPIC.name, key.encode(), record)

    # --- entities: messages -> state, documents, more messages ------------------------------

    async def _entities(self, stream: Any) -> Any:
        batch_size, within = self.options.entity_batch, self.options.batch_within
        async for events in stream.take_events(batch_size, within):
            started = time.perf_counter()
            by_partition: dict[int, list[Any]] = defaultdict(list)
            for event in events:
                by_partition[event.message.partition].append(event)
            now = _now_ms()
            for partition_events in by_partition.values():
                self._apply(partition_events, now)
            self._flush()
            self.metrics.batch_seconds.labels("entities").observe(time.perf_counter() - started)
            yield len(events)

    def _apply(self, events: list[Any], now: int) -> None:
        partition = events[-1].message.partition
        point_store_at(events[-1])
        addressed = [
            (key, message)
            for event in events
            for key in (event.message.key.decode(),)
            for message in self._messages(key, event.message)
        ]
        loaded: dict[str, bytes | None] = {}

        def load(key: str) -> State | None:
            raw = loaded[key] = self._table(key).data.get(key.encode())
            return None if raw is None else decode_state(key, raw)

        states, fx = process_batch(addressed, load, now, self.config)
        for key, state in states.items():
            value = encode_state(state)
            if value != loaded.get(key):
                # What Table.__setitem__ does, with the changelog record sent through
                # librdkafka to the same partition: through faust's producer, record by
                # record, end-to-end throughput was half (BENCHMARKS.md). faust has no public
                # call that writes a table's store without also producing the changelog
                # record, so the store is written as its own changelog recovery would.
                table = self._table(key)
                table.data[key.encode()] = value
                self._produce(
                    self._changelogs[table.name], key.encode(), value, partition=partition
                )
            self._track_due(key, state)
        per_kind: dict[str, int] = defaultdict(int)
        for key, _ in addressed:
            per_kind[key.split("/", 1)[0]] += 1
        for kind, count in per_kind.items():
            self.metrics.messages.labels(kind).inc(count)
        self._send_messages(fx.messages)
        for output, key, doc in fx.published:
            self._produce(DOCUMENT_TOPICS[output].name, key.encode(), dumps(doc))
            self.metrics.documents.labels(output).inc()

    @staticmethod
    def _messages(key: str, message: Any) -> list[Any]:
        try:
            return decode_messages(key, message.value)
        except ValueError as exc:
            # Only this worker writes the topic: a record it cannot read is a bug or a newer
            # version. Stop (offsets uncommitted) rather than skip state changes.
            where = f"{message.topic}[{message.partition}]@{message.offset}"
            raise RuntimeError(f"entity messages at {where}: {exc}") from exc

    def _table(self, key: str) -> Any:
        try:
            return self.tables[key.split("/", 1)[0]]
        except KeyError:
            raise ValueError(f"no table for entity key {key!r}") from None

    def _track_due(self, key: str, state: State) -> None:
        when = due(key, state, self.config)
        if when is None:
            self._due.pop(key, None)
        else:
            self._due[key] = when

    # --- tick: alerts that wait for a grace period -------------------------------------------

    async def _tick(self) -> None:
        if not self._scanned:
            # After a restart the index of waiting entities is rebuilt from the local tables.
            for kind in ("lot", "battery", "operator"):
                for key, raw in self.tables[kind].items():
                    self._track_due(key.decode(), decode_state(key.decode(), raw))
            self._scanned = True
        now = _now_ms()
        for key, when in sorted(self._due.items()):
            if when <= now:
                # Through the topic, so the tick is applied in order with the entity's messages.
                tick = encode_messages([Tick()])
                self._produce(ENTITY_MESSAGES_TOPIC.name, key.encode(), tick)
                del self._due[key]
        self._flush()

    # --- read views ------------------------------------------------------------------------

    def lookup(self, key: str) -> dict[str, Any] | None:
        """The current document of an entity held by this worker, or None."""
        raw = self._table(key).get(key.encode())
        if raw is None:
            return None
        return document(key, decode_state(key, raw), _now_ms(), self.config)

    def passport(self, battery_id: str) -> dict[str, Any] | None:
        doc = self.lookup(battery_key(battery_id))
        if doc is None:
            return None
        # Operators are keyed apart from batteries: this answers for operators this worker
        # holds (all of them with one worker per region).
        operator = self.lookup(operator_key(doc["manufacturer_id"]))
        return with_certification(doc, operator, _now_us())

    def listing(self, kind: str) -> list[dict[str, Any]]:
        now = _now_ms()
        docs = (
            document(k.decode(), decode_state(k.decode(), v), now, self.config)
            for k, v in self.tables[kind].items()
        )
        return [d for d in docs if d is not None]

    def _add_views(self) -> None:
        processors = self
        app = self.app

        def found(view: View, doc: Any, what: str) -> Response:
            if doc is None:
                return view.json({"error": f"{what} not found on this worker"}, status=404)
            return view.json(doc)

        @app.page("/passports/{battery_id}")
        class PassportView(View):
            async def get(self, request: Request, battery_id: str) -> Response:
                doc = processors.passport(battery_id)
                return found(self, doc, f"battery {battery_id}")

        @app.page("/lots/{lot_id}")
        class LotView(View):
            async def get(self, request: Request, lot_id: str) -> Response:
                return found(self, processors.lookup(lot_key(lot_id)), f"lot {lot_id}")

        @app.page("/operators/{operator_id}")
        class OperatorView(View):
            async def get(self, request: Request, operator_id: str) -> Response:
                doc = processors.lookup(operator_key(operator_id))
                return found(self, doc, f"operator {operator_id}")

        @app.page("/tallies/recycled-content")
        class RecycledContentView(View):
            async def get(self, request: Request) -> Response:
                return self.json(processors.listing("recycled-content"))

        @app.page("/tallies/recovery-efficiency")
        class RecoveryView(View):
            async def get(self, request: Request) -> Response:
                return self.json(processors.listing("recovery"))

        @app.page("/healthz")
        class HealthView(View):
            async def get(self, request: Request) -> Response:
                watch = processors.assignment
                watch.check()  # so the warning is logged no later than the first 503
                return self.json(watch.health(), status=503 if watch.overdue() else 200)

        @app.page("/metrics")
        class MetricsView(View):
            async def get(self, request: Request) -> Response:
                body = generate_latest(processors.metrics.registry)
                return self.bytes(body, content_type=CONTENT_TYPE_LATEST.split(";")[0])


def point_store_at(event: Any) -> None:
    """Make ``event`` faust's current event, so that table stores use its partition.

    faust's RocksDB store picks the partition database of a read or a write from the current
    event (``faust.current_event()``), which faust sets only while a stream hands out one event
    at a time. A ``take_events`` batch spans partitions and faust offers no public way to say
    which one is meant, so this sets faust's own context variable;
    ``tests/streams/worker/test_faust_seams.py`` fails if faust renames it or stops using it.
    """
    _current_event.set(weakref.ref(event))


def _now_ms() -> int:
    return int(time.time() * 1000)


def _now_us() -> int:
    return int(time.time() * 1_000_000)


def run_worker(options: WorkerOptions, loglevel: str = "info") -> None:
    """Run the processors until SIGTERM or SIGINT (faust's worker handles both)."""
    processors = Processors(options)
    worker = faust.Worker(processors.app, loglevel=loglevel, quiet=True)
    stop = threading.Event()
    watch = threading.Thread(
        target=processors.assignment.run, args=(stop,), name="assignment-watch", daemon=True
    )
    watch.start()
    try:
        worker.execute_from_commandline()
    finally:
        stop.set()
