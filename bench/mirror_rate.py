"""Mirror throughput against a raw consume->produce copy, same brokers, same run.

    python bench/mirror_rate.py [--events N] [--backend tansu|noida] [--runs R] [--instances K]

N manufacture events (two inputs each, one with a supplier id, price and contract volume to
redact) from a certified operator are published to an embedded EU broker first. Then:
  raw     confluent-kafka consumer -> producer, bytes copied as they are, same partition (what
          MirrorMaker 2 does; the ceiling)
  mirror  the mirror agent: read and check the shared fields, certification check, redact
          and write under the shared schema (one pass), provenance headers, checkpoints
Both read from the start of the source topic and count until every record is acknowledged
by the JP broker; the mirror's rate is measured from its first mirrored record (its recovery
before that is timed separately). With ``--instances K`` the mirror is K processes, each with
its share of the source partitions (``--partitions``). Each of the R runs starts fresh brokers;
the ratio mirror/raw is taken within a run, and min/median/max over the runs printed. Then the
per-record cost of each mirror step, in process.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import statistics
import sys
import threading
import time
import timeit
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from confluent_kafka import OFFSET_BEGINNING, KafkaError, TopicPartition
from prometheus_client import CollectorRegistry

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench.workload, tests.scenarios

from bench.workload import batteries, lot_inputs  # noqa: E402
from connectors.kafka import clients  # noqa: E402
from connectors.kafka.admin import create_missing  # noqa: E402
from connectors.kafka.embedded import BACKENDS, two_regions  # noqa: E402
from connectors.mirror import policy as sharing  # noqa: E402
from connectors.mirror.agent import MirrorAgent, MirrorMetrics  # noqa: E402
from connectors.mirror.checks import SharedCheck  # noqa: E402
from connectors.mirror.options import MirrorOptions  # noqa: E402
from connectors.mirror.transcode import SharedWriter  # noqa: E402
from schemas.events import EVENT_MODELS, ManufactureEvent  # noqa: E402
from schemas.serde import Serde  # noqa: E402
from schemas.topics import EVENT_PARTITIONS, EVENT_TOPICS  # noqa: E402
from schemas.values import Region  # noqa: E402
from tests import scenarios  # noqa: E402

OPERATOR = "BPNL0000000PCK01"


def events(n: int) -> list[ManufactureEvent]:
    return batteries(
        n,
        OPERATOR,
        "BPNS0000000PCK01",
        "EU-PACK-{i:08d}",
        "pack",
        "420",
        "75",
        lot_inputs("20", "3", confidential=True),
    )


def publish(bootstrap: str, values: list[tuple[str, bytes, bytes]]) -> None:
    producer = clients.producer({"bootstrap.servers": bootstrap, "linger.ms": 20})
    for topic, key, value in values:
        clients.produce(producer, topic, value, key)
    producer.flush()


def raw_copy(source: str, target: str, topic: str, n: int, timeout: float = 600.0) -> float:
    consumer = clients.consumer(
        {
            "bootstrap.servers": source,
            "group.id": f"raw-{uuid.uuid4()}",
            "enable.auto.commit": False,
        }
    )
    producer = clients.producer(
        {
            "bootstrap.servers": target,
            "linger.ms": 5,
            "compression.type": "lz4",
            "acks": "all",
            "enable.idempotence": True,
        }
    )
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(EVENT_PARTITIONS)])
    copied = 0
    start = time.perf_counter()
    deadline = time.monotonic() + timeout
    while copied < n:
        if time.monotonic() > deadline:  # a broker gone must fail the run, not hang it
            raise TimeoutError(f"raw copy: {copied:,} of {n:,} copied after {timeout:.0f} s")
        progress(f"raw copy: {copied:,} of {n:,}")
        for m in consumer.consume(5000, 0.5):
            if m.error() is not None:
                if m.error().code() != KafkaError._PARTITION_EOF:
                    raise RuntimeError(m.error().str())
                continue
            clients.produce(
                producer,
                "raw-copy." + topic,
                m.value(),
                m.key(),
                partition=m.partition(),
                headers=m.headers(),
                timestamp=m.timestamp()[1],
            )
            copied += 1
        producer.poll(0)
    producer.flush()
    elapsed = time.perf_counter() - start
    consumer.close()
    del producer  # destroyed before its broker stops
    return n / elapsed


SECRET = b"benchmark-agreement-secret"


def mirror_process(
    source: str,
    target: str,
    partitions: frozenset[int] | None,
    counts: mp.Array,  # type: ignore[type-arg]  # [mirrored, filtered] of this process
    stop: mp.Event,  # type: ignore[valid-type]
) -> None:
    """One mirror process (with ``--instances``): the agent, its counts shared with the parent."""
    policy = sharing.load(sharing.shipped("eu-to-jp"), SECRET)
    options = MirrorOptions(
        policy, {"bootstrap.servers": source}, {"bootstrap.servers": target}, partitions=partitions
    )
    agent = MirrorAgent(options, MirrorMetrics(CollectorRegistry()))
    halt = threading.Event()
    thread = threading.Thread(target=agent.run, args=(halt,))
    thread.start()
    while not stop.wait(0.005):
        counts[0], counts[1] = agent.totals.mirrored, agent.totals.filtered
    halt.set()  # the last checkpoint waits for every acknowledgement
    thread.join()
    counts[0], counts[1] = agent.totals.mirrored, agent.totals.filtered


def mirror(source: str, target: str, n: int, instances: int) -> tuple[float, float]:
    """(events/s from the first mirrored record until all are acknowledged, recovery seconds)."""
    if not 1 <= instances <= EVENT_PARTITIONS:
        raise ValueError(f"instances must be 1..{EVENT_PARTITIONS} (one per partition at most)")
    context = mp.get_context("spawn")  # no fork of a process with librdkafka threads
    stop = context.Event()
    counts = [context.Array("q", 2, lock=False) for _ in range(instances)]
    shares = [
        None if instances == 1 else frozenset(range(i, EVENT_PARTITIONS, instances))
        for i in range(instances)
    ]
    processes = [
        context.Process(target=mirror_process, args=(source, target, share, c, stop))
        for share, c in zip(shares, counts, strict=True)
    ]
    began = time.perf_counter()
    for process in processes:
        process.start()
    first = None
    first_count = 0
    shown = 0.0
    while (done := sum(c[0] + c[1] for c in counts)) < n + 1:  # + the certification
        time.sleep(0.005)
        if not any(p.is_alive() for p in processes):  # a mirror that died must not hang us
            raise RuntimeError(f"mirror: every process exited with {done:,} of {n + 1:,} decided")
        mirrored = sum(c[0] for c in counts)
        if first is None and mirrored:
            first, first_count = time.perf_counter(), mirrored
        if time.perf_counter() >= shown + 0.25:
            shown = time.perf_counter()
            progress(f"mirror: {done:,} of {n + 1:,} decided")
    stop.set()
    for process in processes:
        process.join()
    finished = time.perf_counter()
    assert first is not None
    return (sum(c[0] for c in counts) - first_count) / (finished - first), first - began


def progress(text: str) -> None:
    """One line, rewritten in place."""
    sys.stdout.write(f"\r\033[K  {text}")
    sys.stdout.flush()


def steps(policy: sharing.SharingPolicy, sample: list[ManufactureEvent]) -> None:
    serde = Serde()
    topic = EVENT_TOPICS["manufacture"].name
    blobs = [serde.encode(e, topic) for e in sample]
    records = [serde.decode(b)[1] for b in blobs]
    shared = [policy.redact("manufacture", r) for r in records]
    schema = policy.shared_schemas["manufacture"]
    model = EVENT_MODELS["manufacture"]
    k = len(sample)

    def cost(fn) -> float:
        return min(timeit.repeat(fn, number=1, repeat=3)) / k * 1e6

    print("per record, in process:")
    print(f"  decode   {cost(lambda: [serde.decode(b) for b in blobs]):6.1f} µs")
    print(f"  validate {cost(lambda: [model.model_validate(r) for r in records]):6.1f} µs")
    print(f"  redact   {cost(lambda: [policy.redact('manufacture', r) for r in records]):6.1f} µs")
    print(f"  encode   {cost(lambda: [serde.encode_as(schema, s, 'x') for s in shared]):6.1f} µs")
    writer = SharedWriter(policy, "manufacture")
    pairs = list(zip(blobs, shared, strict=True))
    written = cost(lambda: [writer.body(b, 10, s) for b, s in pairs])
    print(f"  shared body from the private bytes (replaces encode) {written:6.1f} µs")
    print("the fast path (records under the current schema), per record:")
    fused = cost(lambda: [writer.read_and_transcode(b, 10) for b in blobs])
    print(f"  read plain + redact + write shared, one pass {fused:6.1f} µs")
    check = SharedCheck(policy, "manufacture")
    plain = [writer.read_and_transcode(b, 10)[0] for b in blobs]
    print(f"  check the shared fields (plain) {cost(lambda: [check(r) for r in plain]):6.1f} µs")


def one_run(backend: str, values: list[tuple[str, bytes, bytes]], n: int, instances: int) -> Run:
    """Fresh brokers, the raw copy, then the mirror; clients are gone before the brokers stop."""
    topic = EVENT_TOPICS["manufacture"].name
    with two_regions(backend) as brokers:
        eu, jp = brokers[Region.EU].bootstrap, brokers[Region.JP].bootstrap
        for b in (eu, jp):
            create_missing({"bootstrap.servers": b})
        progress("publishing")
        publish(eu, values)
        from confluent_kafka.admin import NewTopic

        admin = clients.admin({"bootstrap.servers": jp})  # kept alive until the topic exists
        created = admin.create_topics([NewTopic("raw-copy." + topic, EVENT_PARTITIONS, 1)])
        for future in created.values():
            future.result()
        del admin
        raw = raw_copy(eu, jp, topic, n)
        rate, startup = mirror(eu, jp, n, instances)
    return Run(raw, rate, startup)


@dataclass(frozen=True)
class Run:
    raw: float
    mirror: float
    recovery: float

    @property
    def ratio(self) -> float:
        return self.mirror / self.raw


def spread(values: list[float], fmt: str) -> str:
    return " / ".join(format(v, fmt) for v in (min(values), statistics.median(values), max(values)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--backend", choices=sorted(BACKENDS), default="tansu")
    parser.add_argument("--runs", type=int, default=3, help="runs, each on fresh brokers")
    parser.add_argument(
        "--instances", type=int, default=1, help="mirror processes splitting the partitions"
    )
    args = parser.parse_args()
    policy = sharing.load(sharing.shipped("eu-to-jp"), SECRET)
    serde = Serde()
    sample = events(args.events)
    cert = scenarios.certification(OPERATOR, datetime(2030, 1, 1, tzinfo=UTC), "CX-BENCH")
    topic = EVENT_TOPICS["manufacture"].name
    values = [(topic, e.key().encode(), serde.encode(e, topic)) for e in sample]
    cert_topic = EVENT_TOPICS["certification"].name
    values.append((cert_topic, cert.key().encode(), serde.encode(cert, cert_topic)))
    print(
        f"{args.events:,} manufacture events, {args.backend}, EU -> JP, "
        f"{args.instances} mirror process(es), {args.runs} runs"
    )
    runs = []
    for i in range(args.runs):
        run = one_run(args.backend, values, args.events, args.instances)
        runs.append(run)
        progress(
            f"run {i + 1}: raw {run.raw:,.0f}/s, mirror {run.mirror:,.0f}/s, "
            f"{run.ratio:.2f} of raw, recovery {run.recovery:.1f} s"
        )
    print()
    print("  min / median / max over the runs")
    print(f"  raw copy  {spread([r.raw for r in runs], ',.0f')} events/s")
    print(f"  mirror    {spread([r.mirror for r in runs], ',.0f')} events/s")
    print(f"  mirror/raw {spread([r.ratio for r in runs], '.2f')} (within each run)")
    steps(policy, sample[:5000])


if __name__ == "__main__":
    main()
