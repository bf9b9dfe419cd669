"""Publishing a file of events (JSON Lines or CSV): per-line validation, per-region routing, a
report."""

from __future__ import annotations

import os
import sys
import time
from collections import Counter
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, TextIO

from connectors.ingest.files import RejectedLine, byte_lines, open_source, read_csv, read_jsonl
from connectors.ingest.producer import EventProducer, FailedDelivery
from connectors.progress import Progress
from schemas.serde import Serde, schema_registry_client
from schemas.values import Region


class RegionMismatch(ValueError):
    """An event of one region in input destined for the other region's cluster."""


@dataclass
class PublishReport:
    published: Counter[str] = field(default_factory=Counter)  # "EU extraction" -> n
    rejected: list[RejectedLine] = field(default_factory=list)
    failed: list[FailedDelivery] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.rejected and not self.failed

    @property
    def total_published(self) -> int:
        return sum(self.published.values())

    def summary(self) -> str:
        rate = self.total_published / self.seconds if self.seconds else 0.0
        return (
            f"published {self.total_published} events ({rate:,.0f}/s), "
            f"rejected {len(self.rejected)} lines, {len(self.failed)} deliveries failed"
        )


class _CountingReader:
    """A binary stream counting the bytes read from it, for the progress line."""

    def __init__(self, stream: BinaryIO) -> None:
        self.stream = stream
        self.read = 0

    def readline(self, size: int = -1, /) -> bytes:
        line = self.stream.readline(size)
        self.read += len(line)
        return line


def publish_file(
    path: str | Path,
    config_for: Callable[[Region], dict[str, str]],
    registry_url: str | None = None,
    rejects_path: Path | None = None,
    err: TextIO = sys.stderr,
    csv: bool = False,
    event_type: str | None = None,
) -> PublishReport:
    """Publish every valid line of ``path`` (JSONL; CSV with ``csv``, whose rows are of
    ``event_type`` unless a column says) to the cluster of its region.

    ``config_for(region)`` gives the client configuration of a region's cluster, or raises
    :class:`RegionMismatch` when events of that region must not be published in this run (the
    line is then rejected with that reason). Invalid lines are written to ``err`` as they are
    met (and to ``rejects_path`` as JSONL); good lines are published all the same. A ``path``
    that cannot be opened raises :class:`~connectors.ingest.files.UnreadableSource`.
    """
    report = PublishReport()
    serde = Serde(schema_registry_client(registry_url) if registry_url else None)
    producers: dict[Region, EventProducer] = {}
    started = time.monotonic()

    def reject(rejected: RejectedLine) -> None:
        report.rejected.append(rejected)
        err.write(f"{rejected}\n")
        if rejects is not None:
            rejects.write(rejected.to_json() + "\n")

    def delivery_failed(failure: FailedDelivery) -> None:
        # context is (line number, label) for a queued event, None for a timed-out flush
        report.failed.append(failure)
        if failure.context is None:
            err.write(f"delivery failed: {failure.error}\n")
            return
        number, label = failure.context
        report.published[label] -= 1
        err.write(f"line {number}: delivery to {failure.topic} failed: {failure.error}\n")

    with ExitStack() as stack:
        if str(path) == "-":
            stream: BinaryIO = sys.stdin.buffer
            total = None
        else:
            stream = stack.enter_context(open_source(path))
            total = os.fstat(stream.fileno()).st_size or None
        rejects = stack.enter_context(open(rejects_path, "w")) if rejects_path else None
        progress = Progress(f"publishing {path}", total)
        counting = _CountingReader(stream)
        lines = byte_lines(counting)
        records = read_csv(lines, event_type) if csv else read_jsonl(lines)
        for number, item in records:
            if isinstance(item, RejectedLine):
                reject(item)
            else:
                producer = producers.get(item.region)
                if producer is None:
                    try:
                        config = config_for(item.region)
                    except RegionMismatch as exc:
                        reject(RejectedLine(number, str(exc), item.model_dump_json()))
                        continue
                    producer = EventProducer(config, serde, on_failure=delivery_failed)
                    producers[item.region] = producer
                label = f"{item.region.value} {item.event_type}"
                producer.publish(item, context=(number, label))
                report.published[label] += 1
            done = f"{report.total_published} published, {len(report.rejected)} rejected"
            progress.update(counting.read, done)
        for producer in producers.values():
            producer.flush()
        report.seconds = time.monotonic() - started
        progress.close(f"{report.total_published} acknowledged, {len(report.rejected)} rejected")
    return report
