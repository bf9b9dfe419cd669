"""The processors' figures, measured from outside: the ``batteryloop worker`` command on the
telemetry and loops workloads, and the references for the telemetry job (raw passthrough,
textbook faust, Quix Streams) on the same encoded events.

Each job runs on a fresh embedded broker: started, ready, then per run the pre-encoded events
of that run produced at raw speed; the rate is events / (first produce -> output topics final).
The runs of one job use different battery and lot ids, so each run's outputs are new documents
(one start-up per job instead of one per run).
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from bench.harness import Expected, OutputWatch, Progress, produce_raw, wait_ready
from bench.processors_rate import telemetry
from bench.profiling import Sampler
from bench.report import Profile
from connectors.cli.processes import WorkerProcess
from connectors.kafka.admin import create_missing
from connectors.kafka.embedded import EmbeddedBroker, free_port
from connectors.lifetime import start_bound
from schemas import catalog
from schemas.events import Event
from schemas.serde import Serde
from schemas.topics import ALL_TOPICS, DOCUMENT_TOPICS, event_topic_name, mirrored_topics
from schemas.values import Region
from streams.domain.entities import Config
from streams.domain.local import LocalLedger
from tests import scenarios

ROOT = Path(__file__).resolve().parents[1]
PASSPORTS = DOCUMENT_TOPICS["passports"].name
#: the worker's grace period: long enough that no reference waits out under load, so the
#: documents are those of the in-memory ledger, which never ticks
GRACE_SECONDS = 3600.0
REFERENCE_TOPICS = [event_topic_name("manufacture"), event_topic_name("use_collection")]
Record = tuple[str, bytes, bytes]


@dataclass
class Workload:
    name: str
    events: list[Event]
    records: list[Record]

    @classmethod
    def encode(cls, name: str, events: list[Event]) -> Workload:
        serde = Serde()
        records = []
        for e in events:
            topic = event_topic_name(e.event_type)
            records.append((topic, e.key().encode(), serde.encode(e, topic)))
        return cls(name, events, records)


def telemetry_workload(events: int, keys: int, run: int = 0) -> Workload:
    """The telemetry events of ``bench/processors_rate.py``, battery ids marked with ``run``
    (and event ids of their own)."""
    return Workload.encode("telemetry", telemetry(events, keys, f"R{run}-PACK-{{i:06d}}", True))


def loops_workload(events: int, run: int = 0) -> Workload:
    """Random closed loops as in ``bench/processors_rate.py``; ids numbered from a range of
    their own per ``run``."""
    rng = random.Random(1 + run)
    made: list[Event] = []
    first = 1_000_000 + run * 10_000_000
    while len(made) < events:
        made += scenarios.random_loop(rng, first + len(made) * 100, certify=not made)
    return Workload.encode("loops", made)


def final_health(workload: Workload) -> dict[str, Decimal | None]:
    """Each battery's last state-of-health reading (None: manufactured, never read)."""
    health: dict[str, Decimal | None] = {}
    for e in workload.events:
        if e.event_type == "manufacture":
            health.setdefault(e.battery_id, None)  # type: ignore[attr-defined]
        elif e.event_type == "use_collection":
            value = e.state_of_health  # type: ignore[attr-defined]
            if value is not None:
                health[e.battery_id] = value  # type: ignore[attr-defined]
    return health


def health_check(topic: str, key: bytes, value: bytes | None, want: Any) -> bool:
    if value is None:
        return False
    shown = json.loads(value).get("state_of_health")
    return (shown is None and want is None) or (
        shown is not None and want is not None and Decimal(shown) == want
    )


def document_check(topic: str, key: bytes, value: bytes | None, want: Any) -> bool:
    return value is not None and json.loads(value) == want


def new_ledger() -> LocalLedger:
    return LocalLedger(Config(grace_ms=int(GRACE_SECONDS * 1000), region=Region.EU.value))


def ledger_documents(workload: Workload, ledger: LocalLedger | None = None) -> Expected:
    """Every document the in-memory ledger publishes for the same events (after the same Avro
    round trip), as the worker of region EU must publish it; with ``ledger``, on top of the
    runs it has seen (tallies add up over runs)."""
    serde = Serde()
    decoded = [serde.decode_event(value) for _, _, value in workload.records]
    ledger = ledger or new_ledger()
    ledger.submit(decoded)
    ledger.run(batch=500)
    return {
        (DOCUMENT_TOPICS[output].name, key.encode()): document
        for (output, key), document in ledger.documents.items()
    }


@contextmanager
def fresh_broker(backend: str) -> Iterator[EmbeddedBroker]:
    with EmbeddedBroker(Region.EU, backend) as broker:
        create_missing(
            {"bootstrap.servers": broker.bootstrap}, [*ALL_TOPICS, *mirrored_topics("JP")]
        )
        yield broker


def _exited(process: subprocess.Popen[bytes] | None, log: Path, what: str) -> str | None:
    if process is not None and process.poll() is not None:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-20:]) if log.exists() else ""
        return f"{what} exited with code {process.returncode}:\n{tail}"
    return None


def _timed(
    broker: EmbeddedBroker,
    workload: Workload,
    watch: OutputWatch,
    progress: Progress,
    label: str,
    alive: Callable[[], str | None],
    timeout: float,
) -> float:
    start = time.monotonic()
    produce_raw(broker.bootstrap, workload.records)
    end = watch.wait(timeout, progress, label, alive)
    return len(workload.records) / (end - start)


def run_worker(
    runs: list[tuple[Workload, Expected]],
    backend: str,
    progress: Progress,
    timeout: float,
    profiled: tuple[Workload, Expected] | None = None,
) -> tuple[list[float], Profile | None]:
    """``batteryloop worker`` (RocksDB store) on each run's workload: events per second until
    every expected document is on its topic and equal. With ``profiled``, one more run on the
    same worker, sampled by py-spy and not counted in the rates, gives the profile."""
    rates = []
    profile = None
    with fresh_broker(backend) as broker, tempfile.TemporaryDirectory() as tmp:
        worker = WorkerProcess(
            Region.EU, broker.bootstrap, Path(tmp), "rocksdb", GRACE_SECONDS, "warning"
        )
        worker.start()
        alive = lambda: _exited(worker.process, worker.log_path, "the worker")  # noqa: E731
        every = [*runs, profiled] if profiled is not None else runs
        try:
            for i, (workload, expected) in enumerate(every):
                sampled = profiled is not None and i == len(runs)
                label = f"worker {workload.name}, " + (
                    "profiled run" if sampled else f"run {i + 1}/{len(runs)}"
                )
                check = health_check if workload.name == "telemetry" else document_check
                topics = sorted({topic for topic, _ in expected})
                wait_ready(worker.port, 180, alive, progress, label)
                watch = OutputWatch(broker.bootstrap, topics, expected, check).start()
                try:
                    if sampled:
                        with Sampler(worker.pid, Path(tmp) / "profile.txt") as sampler:
                            _timed(broker, workload, watch, progress, label, alive, timeout)
                        profile = sampler.profile
                    else:
                        rates.append(
                            _timed(broker, workload, watch, progress, label, alive, timeout)
                        )
                except TimeoutError as exc:
                    log = worker.log_tail(20)
                    raise MismatchError(f"{exc}\nworker log:\n{log}") from None
                finally:
                    watch.close()
        finally:
            worker.stop()
    return rates, profile


class MismatchError(RuntimeError):
    """The job's outputs never became what the reference computation says they must be."""


PROBE = "PROBE-000000"


def _probe(workload: Workload) -> Record:
    """A manufacture record for a battery outside the workload: its document on the output
    says the job has its partitions and is processing."""
    made = next(e for e in workload.events if e.event_type == "manufacture")
    event = made.model_copy(update={"battery_id": PROBE, "event_id": uuid.uuid4()})
    topic = event_topic_name("manufacture")
    return topic, PROBE.encode(), Serde().encode(event, topic)


@dataclass
class Reference:
    """A reference job started as a child: ``argv`` given the output topic and a scratch dir."""

    name: str
    argv: Callable[[str, Path, str], list[str]]
    check: Callable[[str, bytes, bytes | None, Any], bool]
    expected: Callable[[Workload], dict[bytes, Any]]
    sticky: bool = False  # an expected value seen once counts (see bench.passthrough)


def last_values(workload: Workload) -> dict[bytes, Any]:
    """Per key, the last record of the use topic (the manufacture record for a battery never
    read): what the passthrough must have passed on once it has processed everything."""
    made, used = REFERENCE_TOPICS
    latest: dict[bytes, Any] = {}
    for topic, key, value in workload.records:
        if topic == used or (topic == made and key not in latest):
            latest[key] = value
    return latest


def run_reference(
    reference: Reference, runs: list[Workload], backend: str, progress: Progress, timeout: float
) -> list[float]:
    rates = []
    output = f"bench.{reference.name}.passports"
    with fresh_broker(backend) as broker, tempfile.TemporaryDirectory() as tmp:
        from confluent_kafka.admin import NewTopic  # type: ignore[attr-defined]

        from connectors.kafka import clients

        admin = clients.admin({"bootstrap.servers": broker.bootstrap})
        for future in admin.create_topics([NewTopic(output, 6, 1)]).values():
            future.result()
        log = Path(tmp) / f"{reference.name}.log"
        with log.open("ab") as out:
            process = start_bound(
                reference.argv(broker.bootstrap, Path(tmp), output),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                # the references import ``bench``, which is not installed: the checkout is
                env={**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(ROOT)},
            )
        alive = lambda: _exited(process, log, reference.name)  # noqa: E731
        try:
            label = reference.name
            probe = _probe(runs[0])
            ready = OutputWatch(
                broker.bootstrap, [output], {(output, probe[1]): None}, lambda *a: True
            ).start()
            try:
                produce_raw(broker.bootstrap, [probe])
                progress.show(f"{label}: starting")
                ready.wait(180, None, label, alive)
            finally:
                ready.close()
            for i, workload in enumerate(runs):
                label = f"{reference.name}, run {i + 1}/{len(runs)}"
                expected = {(output, k): v for k, v in reference.expected(workload).items()}
                watch = OutputWatch(
                    broker.bootstrap, [output], expected, reference.check, sticky=reference.sticky
                ).start()
                try:
                    rates.append(_timed(broker, workload, watch, progress, label, alive, timeout))
                finally:
                    watch.close()
        finally:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(30)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
    return rates


def passthrough() -> Reference:
    return Reference(
        "raw_passthrough",
        lambda bootstrap, tmp, output: [
            sys.executable,
            "-m",
            "bench.passthrough",
            "--bootstrap",
            bootstrap,
            "--topics",
            ",".join(REFERENCE_TOPICS),
            "--output",
            output,
            "--group",
            f"bench-raw-{uuid.uuid4().hex[:8]}",
        ],
        lambda topic, key, value, want: value == want,
        last_values,
        sticky=True,
    )


def _health_by_key(workload: Workload) -> dict[bytes, Any]:
    return {k.encode(): v for k, v in final_health(workload).items()}


def faust_textbook() -> Reference:
    return Reference(
        "faust_textbook",
        lambda bootstrap, tmp, output: [
            sys.executable,
            "-m",
            "bench.faust_textbook",
            "--bootstrap",
            bootstrap,
            "--topics",
            ",".join(REFERENCE_TOPICS),
            "--output",
            output,
            "--data-dir",
            str(tmp / "faust"),
            "--web-port",
            str(free_port()),
            "--app-id",
            f"bench-faust-{uuid.uuid4().hex[:8]}",
        ],
        health_check,
        _health_by_key,
    )


def quixstreams(python: Path) -> Reference:
    def argv(bootstrap: str, tmp: Path, output: str) -> list[str]:
        schemas = tmp / "schemas.json"
        schemas.write_text(
            json.dumps({v.fingerprint.hex(): v.raw for v in catalog.by_fingerprint().values()})
        )
        return [
            str(python),
            str(Path(__file__).with_name("quix_job.py")),
            "--bootstrap",
            bootstrap,
            "--topics",
            ",".join(REFERENCE_TOPICS),
            "--output",
            output,
            "--group",
            f"bench-quix-{uuid.uuid4().hex[:8]}",
            "--state-dir",
            str(tmp / "quix"),
            "--schemas",
            str(schemas),
        ]

    return Reference("quixstreams", argv, health_check, _health_by_key)
