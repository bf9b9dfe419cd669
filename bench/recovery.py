"""Recovery of a worker with a million batteries: its state changelog
(``batteryloop.internal.state``, compacted, 6 partitions, key = entity key as UTF-8, value =
:func:`streams.domain.codec.encode_state`, partitioned by murmur2 of the key like Java's
default partitioner) filled directly, then a fresh worker (RocksDB store, empty data dir)
timed from process start to ``/readyz`` 200, and its peak RSS (VmHWM).

The states are real: a battery and its input lot worked out by the in-memory ledger from a
manufacture event, encoded once, then copied with other ids of the same length (the encoded
bytes of a string carry its length, so a same-length id keeps the MessagePack valid). One lot
feeds :data:`BATTERIES_PER_LOT` batteries.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from bench.harness import Progress, has_readyz, http_json
from bench.workload import batteries
from connectors.cli.processes import WorkerProcess
from connectors.kafka import clients
from connectors.kafka.admin import create_missing
from connectors.kafka.embedded import EmbeddedBroker
from schemas.topics import ALL_TOPICS, mirrored_topics
from schemas.values import Region
from streams.domain.codec import encode_state
from streams.domain.entities import Config
from streams.domain.local import LocalLedger
from tests import scenarios

STATE_TOPIC = "batteryloop.internal.state"
STATE_PARTITIONS = 6
BATTERIES_PER_LOT = 1000
BATTERY = "BATT-{:09d}"
LOT = "LOT-{:09d}"


@dataclass(frozen=True)
class Templates:
    battery: bytes  # the state of battery BATTERY.format(0), made from lot LOT.format(0)
    lot: bytes


def templates() -> Templates:
    made = batteries(
        1,
        scenarios.MAKER,
        "BPNS0000000PCK01",
        BATTERY.replace("{:09d}", "{i:09d}"),
        "pack",
        "450",
        "75",
        [{"lot_id": LOT.format(0), "mass_kg": "20"}],
        model="PACK-75",
        carbon_footprint=None,
    )
    ledger = LocalLedger(Config())
    ledger.submit(made)
    ledger.run()
    return Templates(
        battery=encode_state(ledger.states[f"battery/{BATTERY.format(0)}"]),
        lot=encode_state(ledger.states[f"lot/{LOT.format(0)}"]),
    )


def changelog_records(count: int, shapes: Templates | None = None) -> Iterator[tuple[bytes, bytes]]:
    """(key, value) of ``count`` battery states and their lots' states."""
    shapes = shapes or templates()
    first_battery, first_lot = BATTERY.format(0).encode(), LOT.format(0).encode()
    for i in range(count):
        battery, lot = BATTERY.format(i).encode(), LOT.format(i // BATTERIES_PER_LOT).encode()
        yield b"battery/" + battery, shapes.battery.replace(first_lot, lot)
        if i % BATTERIES_PER_LOT == 0:
            yield b"lot/" + lot, shapes.lot.replace(first_battery, battery)


def registry_has_state_topic() -> bool:
    return any(spec.name == STATE_TOPIC for spec in ALL_TOPICS)


@dataclass
class RecoveryRun:
    seconds: float | None
    peak_rss_mb: float | None
    missing: str | None = None


def vm_hwm_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def fill(bootstrap: str, count: int, progress: Progress) -> int:
    producer = clients.producer(
        {
            "bootstrap.servers": bootstrap,
            "linger.ms": 50,
            "compression.type": "lz4",
            "partitioner": "murmur2_random",  # Java's default partitioner: same key, same partition
            "queue.buffering.max.messages": 500_000,
        }
    )
    written = 0
    for key, value in changelog_records(count):
        clients.produce(producer, STATE_TOPIC, value, key)
        written += 1
        if written % 10_000 == 0:
            producer.poll(0)
            progress.show(f"recovery: {written:,} changelog records written")
    if producer.flush(300) != 0:
        raise RuntimeError(f"{len(producer)} changelog records not acknowledged after 300 s")
    return written


def measure(count: int, backend: str, progress: Progress, runs: int = 1) -> list[RecoveryRun]:
    """``runs`` fresh workers, one after the other, each with an empty data dir, over one
    changelog filled once; a run's ``missing`` says why it has no number (later runs are not
    tried after one that failed)."""
    if not registry_has_state_topic():
        return [
            RecoveryRun(
                None,
                None,
                f"the worker keeps no state changelog {STATE_TOPIC} yet (not in the topic "
                "registry), so a restore from it cannot be timed",
            )
        ]
    results: list[RecoveryRun] = []
    with EmbeddedBroker(Region.EU, backend) as broker, tempfile.TemporaryDirectory() as tmp:
        config = {"bootstrap.servers": broker.bootstrap}
        create_missing(config, [*ALL_TOPICS, *mirrored_topics("JP")])
        fill(broker.bootstrap, count, progress)
        probes = [BATTERY.format(0), BATTERY.format(count - 1)]
        for run in range(runs):
            progress.show(f"recovery, run {run + 1}/{runs}")
            data = Path(tmp) / f"run-{run}"
            data.mkdir()
            # the previous run's worker left the group on SIGTERM, so this one gets every
            # partition, and restores it from the changelog into its empty data dir
            worker = WorkerProcess(Region.EU, broker.bootstrap, data, "rocksdb", 3600.0)
            started = time.monotonic()
            worker.start()
            try:
                result = _until_ready(worker, started, progress, probes)
            finally:
                worker.stop()
            results.append(result)
            if result.missing is not None:
                break
    return results


def _until_ready(
    worker: WorkerProcess, started: float, progress: Progress, probes: list[str]
) -> RecoveryRun:
    peak: float | None = None
    deadline = started + 1800
    while time.monotonic() < deadline:
        if not worker.alive:
            return RecoveryRun(None, peak, f"the worker exited:\n{worker.log_tail(10)}")
        peak = vm_hwm_mb(worker.pid) or peak
        answer = has_readyz(worker.port)
        if answer is False:
            return RecoveryRun(None, None, "the worker does not answer /readyz yet")
        if answer and (status := http_json(worker.port, "/readyz")) and status[0] == 200:
            seconds = time.monotonic() - started
            peak = vm_hwm_mb(worker.pid) or peak
            return RecoveryRun(seconds, peak, _restored(worker.port, status[1], probes))
        progress.show(f"recovery: {time.monotonic() - started:,.0f} s, waiting for /readyz")
        time.sleep(0.1)
    return RecoveryRun(None, peak, "the worker was not ready after 30 minutes")


def _restored(port: int, ready: object, probes: list[str]) -> str | None:
    """Why the ready worker does not hold what the changelog holds, or None: every state
    partition, and the passports of the first and last battery written."""
    partitions = ready.get("state_partitions") if isinstance(ready, dict) else None
    if partitions != list(range(STATE_PARTITIONS)):
        return (
            f"/readyz answered 200 with state_partitions {partitions}, not all {STATE_PARTITIONS}"
        )
    for battery in probes:
        answer = http_json(port, f"/passports/{battery}")
        if answer is None or answer[0] != 200:
            return f"ready, but /passports/{battery} answered {answer}: states not restored"
    return None
