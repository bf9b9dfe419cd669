"""A processors worker in a subprocess (the real ``batteryloop worker`` command), and helpers to
wait for what it publishes."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from connectors.cli.processes import WorkerProcess
from connectors.ingest.producer import EventProducer
from connectors.kafka.consume import latest_by_key
from connectors.kafka.embedded import EmbeddedBroker
from schemas.events import Event
from schemas.serde import Serde
from schemas.topics import DOCUMENT_TOPICS, event_topic_name
from schemas.values import Region
from streams.domain.entities import Config
from streams.domain.local import LocalLedger


class Worker(WorkerProcess):
    def __init__(
        self,
        broker: EmbeddedBroker,
        data_dir: Path,
        store: str = "rocksdb",
        loglevel: str = "info",
        assignment_timeout: float | None = None,
        instance_id: str | None = None,
    ) -> None:
        super().__init__(
            broker.region,
            broker.bootstrap,
            data_dir,
            store,
            2.0,
            loglevel,
            assignment_timeout,
            instance_id,
        )
        self.broker = broker

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=10) as r:
            body = r.read()
        return body.decode() if path == "/metrics" else json.loads(body)

    def readiness(self) -> tuple[int, dict[str, Any]] | None:
        """``/readyz``: (HTTP status, answer), or None while nothing listens."""
        return self._status("/readyz")

    def wait_ready(self, timeout: float = 90) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while (answer := self.readiness()) is None or answer[0] != 200:
            if self.process is not None and self.process.poll() is not None:
                raise AssertionError(f"worker exited:\n{self.log_tail()}")
            assert time.monotonic() < deadline, f"not ready: {answer}\n{self.log_tail()}"
            time.sleep(0.2)
        return answer[1]

    def health(self) -> tuple[int, dict[str, Any]] | None:
        """``/healthz``: (HTTP status, answer), or None while nothing listens."""
        return self._status("/healthz")

    def _status(self, path: str) -> tuple[int, dict[str, Any]] | None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=5) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())
        except OSError:
            return None


def publish(broker: EmbeddedBroker, events: Iterable[Event]) -> int:
    with EventProducer({"bootstrap.servers": broker.bootstrap}) as producer:
        count = 0
        for event in events:
            producer.publish(event)
            count += 1
        producer.flush()
    return count


def ground_truth(events: Iterable[Event], region: Region | None = Region.EU) -> LocalLedger:
    """What the processors of ``region`` must end with: the same events, through the same
    Avro round trip, applied in memory (``region`` None: a ledger of every region, whose
    documents are never replicas)."""
    serde = Serde()
    decoded = [serde.decode_event(serde.encode(e, event_topic_name(e.event_type))) for e in events]
    ledger = LocalLedger(Config(grace_ms=2000, region=None if region is None else region.value))
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
