"""Throughput of the stream processors: one worker, one embedded broker, events published first.

    python bench/processors_rate.py [--workload telemetry|loops] [--events N] [--keys K]
                                    [--mirrored-share F]

Workloads:
  telemetry  K batteries manufactured, then state-of-health reports spread over them (the shape
             of the "per-key totals, 20k keys" job): each event changes one passport.
  loops      random closed loops (mine, refining, cells, pack, shredding, recovery, refining,
             cells): each event touches several entities and sends profiles along the genealogy.

``--mirrored-share F`` writes that share of the events (whole keys: a battery's or a lot's
events all go one way) to the partner's mirrored topics instead (``jp.batteryloop.events.*``
on the EU cluster), as the mirror writes them: redacted under the shipped jp-to-eu policy,
encoded with its shared schemas, with the provenance and agreement headers.

The events are encoded and produced before the worker starts. The worker's own Prometheus
counters time it: from the first routed event until every event is routed ("route") and until
the entity messages stop flowing ("end to end": passports, lots and tallies all published).
Then the same events go through the in-memory ledger, stage by stage, to show where time goes.
"""

from __future__ import annotations

import argparse
import random
import re
import sys
import tempfile
import time
import urllib.request
import uuid
import zlib
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tests' scenario generator

from bench.workload import batteries  # noqa: E402
from connectors.kafka import clients  # noqa: E402
from connectors.kafka.admin import create_missing  # noqa: E402
from connectors.kafka.embedded import BACKENDS, EmbeddedBroker  # noqa: E402
from connectors.mirror import policy as sharing  # noqa: E402
from connectors.mirror.replication import Provenance, sharing_headers  # noqa: E402
from schemas.events import (  # noqa: E402
    EVENT_MODELS,
    Event,
    UseCollectionEvent,
    envelope,
)
from schemas.serde import Serde  # noqa: E402
from schemas.topics import (  # noqa: E402
    ALL_TOPICS,
    event_topic_name,
    mirrored_topic_name,
    mirrored_topics,
)
from schemas.values import Region  # noqa: E402
from streams.domain.codec import (  # noqa: E402
    decode_messages,
    decode_state,
    encode_messages,
    encode_state,
)
from streams.domain.engine import process_batch  # noqa: E402
from streams.domain.entities import Config  # noqa: E402
from streams.domain.ingest import EventIngest  # noqa: E402
from streams.domain.routing import route_batch  # noqa: E402
from tests import scenarios  # noqa: E402
from tests.integration.workers import Worker  # noqa: E402

T0 = datetime(2031, 1, 1, tzinfo=UTC)


def telemetry(
    n: int, keys: int, battery: str = "PACK-{i:06d}", given_ids: bool = False
) -> list[Event]:
    """Certification, ``keys`` packs, then state-of-health reports over them; with
    ``given_ids`` the reports carry random event ids (seeded by ``battery``) instead of ids
    derived from their content, which costs ~50 µs per event to build."""
    ids = random.Random(battery)
    events: list[Event] = [
        *scenarios.certifications([scenarios.MAKER]),
        *batteries(
            keys,
            scenarios.MAKER,
            "BPNS0000000PCK01",
            battery,
            "pack",
            "450",
            "75",
            [],
            model="PACK-75",
            carbon_footprint=None,
            at=T0,
        ),
    ]
    rng = random.Random(1)
    for i in range(n - len(events)):
        events.append(
            UseCollectionEvent(
                **envelope(
                    scenarios.MAKER,
                    "BPNS0000000PCK01",
                    T0 + timedelta(minutes=i),
                    uuid.UUID(int=ids.getrandbits(128), version=4) if given_ids else None,
                ),
                battery_id=battery.format(i=rng.randrange(keys)),
                action="state_of_health",
                status="original",
                state_of_health=Decimal(rng.randint(700_000, 1_000_000)) / 1_000_000,
            )
        )
    return events


def loops(n: int) -> list[Event]:
    rng = random.Random(1)
    events: list[Event] = []
    while len(events) < n:
        events += scenarios.random_loop(rng, 1_000_000 + len(events) * 100, certify=not events)
    return events


def metric(text: str, name: str, stage: str | None = None) -> float:
    labels = r"[^}]*" if stage is None else f'stage="{stage}"'
    return sum(float(v) for v in re.findall(rf"^{name}{{{labels}}} (\S+)$", text, re.M))


def mirrored_record(
    event: Event, policy: sharing.SharingPolicy, serde: Serde, offset: int
) -> tuple[str, bytes, list[tuple[str, bytes]]]:
    """(topic, value, headers) of ``event`` as the partner's mirror writes it."""
    detailed = policy.redact_detailed(event.event_type, event.model_dump())
    assert detailed is not None
    record, paths = detailed
    topic = mirrored_topic_name(policy.source.value, event.event_type)
    value = serde.encode_as(policy.shared_schemas[event.event_type], record, topic)
    origin = Provenance(policy.source.value, event_topic_name(event.event_type), 0, offset, 1)
    return topic, value, origin.headers() + sharing_headers(policy.name, paths)


def run_worker(
    events: list[Event], backend: str, mirrored_share: float = 0.0
) -> tuple[float, float]:
    serde = Serde()
    policy = sharing.load(sharing.shipped("jp-to-eu"), b"a secret for the benchmark")
    with EmbeddedBroker(Region.EU, backend) as broker, tempfile.TemporaryDirectory() as tmp:
        create_missing(
            {"bootstrap.servers": broker.bootstrap}, [*ALL_TOPICS, *mirrored_topics("JP")]
        )
        producer = clients.producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 20})
        cut = int(mirrored_share * 1000)
        mirrored = 0
        for i, e in enumerate(events):
            key = e.key().encode()
            if zlib.crc32(key) % 1000 < cut:
                topic, value, headers = mirrored_record(e, policy, serde, i)
                clients.produce(producer, topic, value, key, headers=headers)
                mirrored += 1
            else:
                topic = event_topic_name(e.event_type)
                clients.produce(producer, topic, serde.encode(e, topic), key)
            producer.poll(0)
        producer.flush()
        print(f"  {mirrored:,} of {len(events):,} events on the partner's mirrored topics")
        worker = Worker(broker, Path(tmp), store="memory", loglevel="warning").start()
        try:
            first = routed_at = None
            last_messages, last_change = -1.0, time.monotonic()
            while True:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{worker.port}/metrics") as r:
                        text = r.read().decode()
                except OSError:
                    if worker.process is not None and worker.process.poll() is not None:
                        raise RuntimeError(f"the worker exited:\n{worker.log_tail()}") from None
                    time.sleep(0.5)
                    continue
                if worker.process is not None and worker.process.poll() is not None:
                    raise RuntimeError(f"the worker exited:\n{worker.log_tail()}")
                now = time.monotonic()
                routed = metric(text, "batteryloop_events_processed_total")
                messages = metric(text, "batteryloop_entity_messages_total")
                if routed and first is None:
                    first = now
                if routed >= len(events) and routed_at is None:
                    routed_at = now
                if messages != last_messages:
                    last_messages, last_change = messages, now
                elif routed_at is not None and now - last_change > 3:
                    break
                print(
                    f"\r  routed {routed:,.0f}/{len(events):,}, messages {messages:,.0f}",
                    end="",
                    flush=True,
                )
                time.sleep(0.2)
            print()
            for stage in ("route", "entities"):
                count = metric(text, "batteryloop_batch_seconds_count", stage)
                total = metric(text, "batteryloop_batch_seconds_sum", stage)
                work = routed if stage == "route" else messages
                print(
                    f"  {stage}: {count:,.0f} batches, {work / max(count, 1):,.0f} per batch, "
                    f"{total / max(count, 1) * 1000:,.1f} ms per batch, {total:,.1f} s in all"
                )
            problems = [line for line in worker.log_tail(400).splitlines() if "ERROR" in line]
            if problems:
                print("  worker errors:\n    " + "\n    ".join(problems[:10]))
            assert first is not None and routed_at is not None
            return len(events) / (routed_at - first), len(events) / (last_change - first)
        finally:
            worker.stop()


def stages(events: list[Event]) -> None:
    serde = Serde()
    blobs = [serde.encode(e, event_topic_name(e.event_type)) for e in events]
    n = len(events)

    def timed(label: str, fn):  # type: ignore[no-untyped-def]
        start = time.perf_counter()
        out = fn()
        print(f"  {label:34} {(time.perf_counter() - start) / n * 1e6:8.1f} us/event")
        return out

    records = timed("Avro decode (fastavro)", lambda: [serde.decode(b) for b in blobs])
    valid = timed(
        "validate (pydantic)", lambda: [EVENT_MODELS[t].model_validate(r) for t, r in records]
    )
    messages = timed("route to entity messages", lambda: route_batch(valid))
    topics = [event_topic_name(e.event_type) for e in events]
    records = [(t, b, None) for t, b in zip(topics, blobs, strict=True)]
    ingest = EventIngest(serde)
    ingested = timed("ingest: decode + route (plain)", lambda: ingest.ingest(records))
    assert ingested.messages == messages, "ingest and route_batch disagree"

    def entities() -> int:
        states: dict[str, bytes] = {}
        queue, batches = list(messages), 0
        while queue:
            batch, queue = queue[:5000], queue[5000:]
            wire = [(k, m) for k, m in batch for m in decode_messages(k, encode_messages([m]))]
            new, fx = process_batch(
                wire,
                lambda k: None if k not in states else decode_state(k, states[k]),
                0,
                Config(),
            )
            states.update((k, encode_state(s)) for k, s in new.items())
            queue.extend(fx.messages)
            batches += 1
        return batches

    timed("entities, all hops, MessagePack states", entities)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workload", choices=["telemetry", "loops"], default="telemetry")
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--keys", type=int, default=20_000, help="telemetry: batteries")
    parser.add_argument("--backend", choices=sorted(BACKENDS), default="tansu")
    parser.add_argument(
        "--mirrored-share",
        type=float,
        default=0.0,
        help="share of the events (by key) written to the partner's mirrored topics (0-1)",
    )
    parser.add_argument(
        "--stages-only",
        type=int,
        metavar="RUNS",
        help="no broker or worker: the in-process costs per stage alone, RUNS times",
    )
    args = parser.parse_args()
    events = (
        telemetry(args.events, args.keys) if args.workload == "telemetry" else loops(args.events)
    )
    print(f"{args.workload}: {len(events):,} events")
    if args.stages_only:
        for run in range(args.stages_only):
            print(f"in-process cost per event, by stage (run {run + 1}):")
            stages(events)
        return
    route_rate, end_rate = run_worker(events, args.backend, args.mirrored_share)
    print(f"  worker, route stage:  {route_rate:>10,.0f} events/s")
    print(f"  worker, end to end:   {end_rate:>10,.0f} events/s")
    print("in-process cost per event, by stage:")
    stages(events)


if __name__ == "__main__":
    main()
