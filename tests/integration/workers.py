"""A processors worker in a subprocess (the real ``batteryloop worker`` command), and helpers to
wait for what it publishes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType
from typing import Any

from batteryloop.connectors.consume import latest_by_key
from batteryloop.connectors.embedded import EmbeddedBroker, die_with_parent, free_port
from batteryloop.connectors.producer import EventProducer
from batteryloop.schemas.events import Event
from batteryloop.schemas.serde import Serde
from batteryloop.schemas.topics import DOCUMENT_TOPICS, event_topic_name
from batteryloop.streams.entities import Config
from batteryloop.streams.local import LocalLedger


class Worker:
    def __init__(
        self,
        broker: EmbeddedBroker,
        data_dir: Path,
        store: str = "rocksdb",
        loglevel: str = "info",
    ) -> None:
        self.broker = broker
        self.loglevel = loglevel
        self.data_dir = data_dir
        self.store = store
        self.port = free_port()
        self.log_path = data_dir / f"worker-{self.port}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Worker:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "batteryloop.connectors.cli",
                "worker",
                "--region",
                self.broker.region.value,
                "--bootstrap",
                self.broker.bootstrap,
                "--store",
                self.store,
                "--data-dir",
                str(self.data_dir / "tables"),
                "--web-port",
                str(self.port),
                "--grace-seconds",
                "2",
                "--session-timeout",
                "6",
                "--rebalance-timeout",
                "8",
                "--loglevel",
                self.loglevel,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            preexec_fn=die_with_parent,  # a killed test run leaves no worker behind
        )
        return self

    def kill(self) -> None:
        """SIGKILL: no flush, no commit, no goodbye to the group."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()

    def log_tail(self, lines: int = 40) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=10) as r:
            body = r.read()
        return body.decode() if path == "/metrics" else json.loads(body)

    def __enter__(self) -> Worker:
        return self.start()

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def publish(broker: EmbeddedBroker, events: Iterable[Event]) -> int:
    with EventProducer({"bootstrap.servers": broker.bootstrap}) as producer:
        count = 0
        for event in events:
            producer.publish(event)
            count += 1
        producer.flush()
    return count


def ground_truth(events: Iterable[Event]) -> LocalLedger:
    """What the processors must end with: the same events, through the same Avro round trip,
    applied in memory."""
    serde = Serde()
    decoded = [serde.decode_event(serde.encode(e, event_topic_name(e.event_type))) for e in events]
    ledger = LocalLedger(Config(grace_ms=2000))
    ledger.submit(decoded)
    ledger.run(batch=100)
    return ledger


def published(broker: EmbeddedBroker, output: str) -> dict[str, Any]:
    raw = latest_by_key(
        {"bootstrap.servers": broker.bootstrap}, DOCUMENT_TOPICS[output].name, idle=1.0
    )
    return {k.decode(): json.loads(v) for k, v in raw.items() if v is not None}


def wait_for(
    broker: EmbeddedBroker,
    expected: dict[str, dict[str, Any]],
    worker: Worker,
    timeout: float = 120,
) -> dict[str, dict[str, Any]]:
    """Poll the output topics until they hold exactly ``expected`` (output -> key -> document)."""
    deadline = time.monotonic() + timeout
    seen: dict[str, dict[str, Any]] = {}
    while time.monotonic() < deadline:
        seen = {output: published(broker, output) for output in expected}
        if seen == expected:
            return seen
        if worker.process is not None and worker.process.poll() is not None:
            raise AssertionError(
                f"worker exited ({worker.process.returncode}):\n{worker.log_tail()}"
            )
        time.sleep(1)
    diff = {
        output: sorted(
            k
            for k in {*expected[output], *seen.get(output, {})}
            if expected[output].get(k) != seen.get(output, {}).get(k)
        )
        for output in expected
    }
    raise AssertionError(f"outputs differ after {timeout}s in keys {diff}\n{worker.log_tail()}")
