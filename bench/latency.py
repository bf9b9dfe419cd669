"""Latency of the worker: state-of-health reports produced at a held rate, each timed from its
produce call to the first passport record (``batteryloop.passports``) that shows it or a later
reading of the same battery (a later reading in the same batch supersedes it: the passport then
already reflects it).

Every reading carries a unique value (its sequence number in millionths), so the passport's
``state_of_health`` field names the reading it shows.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

from bench.harness import OutputWatch, Progress, produce_raw, wait_ready
from bench.processors import PASSPORTS, Workload, fresh_broker
from bench.processors_rate import T0, telemetry
from connectors.cli.processes import WorkerProcess
from connectors.kafka import clients
from schemas.events import UseCollectionEvent, envelope
from schemas.serde import Serde
from schemas.topics import event_topic_name
from schemas.values import Region
from tests import scenarios

SCALE = 1_000_000  # state of health in millionths: reading n has value n / SCALE


@dataclass
class Window:
    p50_ms: float
    p99_ms: float
    achieved_per_s: float
    readings: int
    unanswered: int


class Pending:
    """Readings produced and not yet shown, per battery, in produce order."""

    def __init__(self, first_counted: int = 0) -> None:
        self.first_counted = first_counted  # readings before it are the warm-up: not counted
        self.by_battery: dict[bytes, deque[tuple[int, float]]] = defaultdict(deque)
        self.latencies: list[float] = []
        self.lock = threading.Lock()

    def sent(self, battery: bytes, sequence: int, at: float) -> None:
        with self.lock:
            self.by_battery[battery].append((sequence, at))

    def shown(self, topic: str, key: bytes, value: bytes | None, at: float) -> None:
        if value is None:
            return
        health = json.loads(value).get("state_of_health")
        if health is None:
            return
        sequence = int(Decimal(health) * SCALE)
        with self.lock:
            queue = self.by_battery.get(key)
            while queue and queue[0][0] <= sequence:
                shown, sent = queue.popleft()
                if shown >= self.first_counted:
                    self.latencies.append(at - sent)

    def open(self) -> int:
        with self.lock:
            return sum(len(q) for q in self.by_battery.values())


def readings(first: int, count: int, keys: int) -> list[tuple[bytes, int, bytes]]:
    """(battery key, sequence, encoded event) for readings ``first`` .. ``first + count - 1``,
    round robin over the batteries."""
    serde = Serde()
    topic = event_topic_name("use_collection")
    out = []
    for n in range(first, first + count):
        battery = f"PACK-{n % keys:06d}"
        event = UseCollectionEvent(
            **envelope(scenarios.MAKER, "BPNS0000000PCK01", T0 + timedelta(days=1, seconds=n)),
            battery_id=battery,
            action="state_of_health",
            status="original",
            state_of_health=Decimal(n) / SCALE,
        )
        out.append((battery.encode(), n, serde.encode(event, topic)))
    return out


def paced(
    bootstrap: str, items: list[tuple[bytes, int, bytes]], rate: float, pending: Pending
) -> float:
    """Produce ``items`` at ``rate`` per second (in 10 ms steps); the achieved rate of the
    counted ones (after the warm-up)."""
    producer = clients.producer({"bootstrap.servers": bootstrap, "linger.ms": 2})
    topic = event_topic_name("use_collection")
    start = time.monotonic()
    counted_from: tuple[int, float] | None = None
    for i, (battery, sequence, value) in enumerate(items):
        if counted_from is None and sequence >= pending.first_counted:
            counted_from = (i, time.monotonic())
        due = start + i / rate
        now = time.monotonic()
        if due > now + 0.01:
            producer.poll(due - now)
        pending.sent(battery, sequence, time.monotonic())
        clients.produce(producer, topic, value, battery)
        if i % 100 == 0:
            producer.poll(0)
    first, since = counted_from or (0, start)
    elapsed = time.monotonic() - since
    producer.flush(60)
    return (len(items) - first) / elapsed


def measure(
    keys: int,
    rate: float,
    seconds: float,
    windows: int,
    backend: str,
    progress: Progress,
    warmup: float = 0.0,
) -> list[Window]:
    """``windows`` consecutive windows of ``seconds`` at ``rate`` on one ready worker, each
    drained before the next and each preceded by ``warmup`` seconds at the same rate whose
    readings are not counted (the worker's first batches after a pause, caches, the
    producer's connection)."""
    setup = Workload.encode("latency", telemetry(1 + keys, keys))  # the certification and packs
    per_window = int(rate * seconds)
    warm = int(rate * warmup)
    results = []
    with fresh_broker(backend) as broker, tempfile.TemporaryDirectory() as tmp:
        worker = WorkerProcess(Region.EU, broker.bootstrap, Path(tmp), "rocksdb", 3600.0)
        worker.start()
        try:

            def alive() -> str | None:
                return None if worker.alive else f"the worker exited:\n{worker.log_tail(10)}"

            wait_ready(worker.port, 180, alive, progress, "latency")
            made = {(PASSPORTS, f"PACK-{i:06d}".encode()): None for i in range(keys)}
            watch = OutputWatch(broker.bootstrap, [PASSPORTS], made, lambda *a: True).start()
            try:
                produce_raw(broker.bootstrap, setup.records)
                watch.wait(300, progress, "latency: packs manufactured", alive)
            finally:
                watch.close()
            for w in range(windows):
                first = 1 + w * (warm + per_window)
                items = readings(first, warm + per_window, keys)
                pending = Pending(first + warm)
                shown = OutputWatch(
                    broker.bootstrap, [PASSPORTS], {}, lambda *a: True, on_record=pending.shown
                ).start()
                try:
                    progress.show(f"latency: window {w + 1}/{windows}, producing at {rate:,.0f}/s")
                    achieved = paced(broker.bootstrap, items, rate, pending)
                    deadline = time.monotonic() + 300
                    while pending.open() and time.monotonic() < deadline:
                        if (reason := alive()) is not None:
                            raise RuntimeError(reason)
                        progress.show(
                            f"latency: window {w + 1}/{windows}, "
                            f"{pending.open():,} readings not shown yet"
                        )
                        time.sleep(0.2)
                finally:
                    shown.close()
                ms = sorted(x * 1000 for x in pending.latencies)
                if not ms:
                    raise RuntimeError("latency: no reading reached a passport")
                results.append(
                    Window(
                        statistics.median(ms),
                        ms[min(len(ms) - 1, int(len(ms) * 0.99))],
                        achieved,
                        per_window,
                        sum(
                            1
                            for q in pending.by_battery.values()
                            for n, _ in q
                            if n >= first + warm
                        ),
                    )
                )
        finally:
            worker.stop()
    return results
