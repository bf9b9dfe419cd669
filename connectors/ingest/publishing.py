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
from connectors.kafka.clients import check_reachable
from connectors.progress import Progress
from schemas.events import Event
from schemas.serde import Serde
from schemas.values import Region

#: Valid lines of a file are published in chunks of this many per region
#: (EventProducer.publish_many); lines from standard input one by one, as they come.
CHUNK = 500


class RegionMismatch(ValueError):
    """An event of one region in input destined for the other region's cluster."""


@dataclass
class PublishReport:
    """What became of every line: each queued event ends up published (acknowledged), failed
    (librdkafka reported it so, with the line), or unknown (no report before the run ended)."""

    queued: Counter[str] = field(default_factory=Counter)  # "EU extraction" -> n
    rejected: list[RejectedLine] = field(default_factory=list)
    failed: list[FailedDelivery] = field(default_factory=list)
    unknown: int = 0
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.rejected and not self.failed and not self.unknown

    @property
    def total_published(self) -> int:
        return sum(self.queued.values()) - len(self.failed) - self.unknown

    def summary(self) -> str:
        rate = self.total_published / self.seconds if self.seconds else 0.0
        return (
            f"published {self.total_published} events ({rate:,.0f}/s), "
            f"rejected {len(self.rejected)} lines, {len(self.failed)} deliveries failed, "
            f"{self.unknown} unknown"
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
    connect_timeout: float | None = None,
) -> PublishReport:
    """Publish every valid line of ``path`` (JSONL; CSV with ``csv``, whose rows are of
    ``event_type`` unless a column says) to the cluster of its region.

    ``config_for(region)`` gives the client configuration of a region's cluster, or raises
    :class:`RegionMismatch` when events of that region must not be published in this run (the
    line is then rejected with that reason). Invalid lines are written to ``err`` as they are
    met (and to ``rejects_path`` as JSONL); good lines are published all the same. A ``path``
    that cannot be opened raises :class:`~connectors.ingest.files.UnreadableSource`.

    With ``connect_timeout``, a region's cluster must answer within that many seconds before
    its first event is queued, else :class:`~connectors.kafka.clients.ClusterUnreachable` is
    raised (after the events already queued for the other region are flushed).
    """
    report = PublishReport()
    serde = Serde.for_registry(registry_url)
    producers: dict[Region, EventProducer] = {}
    started = time.monotonic()

    def reject(rejected: RejectedLine) -> None:
        report.rejected.append(rejected)
        err.write(f"{rejected}\n")
        if rejects is not None:
            rejects.write(rejected.to_json() + "\n")

    def delivery_failed(failure: FailedDelivery) -> None:
        # context is (line number, label) for a queued event, None for a flush that ended
        # with events unreported: those are counted as unknown from the producer
        if failure.context is None:
            err.write(f"{failure.error}\n")
            return
        report.failed.append(failure)
        number, _label = failure.context
        err.write(f"line {number}: delivery to {failure.topic} failed: {failure.error}\n")

    def producer_for(region: Region) -> EventProducer:
        try:
            config = config_for(region)
            if connect_timeout is not None:
                check_reachable(config, connect_timeout)
        except RegionMismatch:
            raise  # the line is rejected; the run goes on
        except Exception:
            # The run stops here; what was queued for the other region is delivered and the
            # report says what became of it, before the error is raised.
            for waiting in [r for r in pending if r in producers]:
                publish_pending(waiting)
            for other in producers.values():
                other.flush()
                report.unknown += other.unknown
            report.seconds = time.monotonic() - started
            err.write(f"stopped: {report.summary()}\n")
            raise
        producer = producers[region] = EventProducer(config, serde, on_failure=delivery_failed)
        return producer

    # region -> (events, their (line number, label)) waiting for publish_many
    pending: dict[Region, tuple[list[Event], list[tuple[int, str]]]] = {}

    def publish_pending(region: Region) -> None:
        events, contexts = pending.pop(region)
        result = producers[region].publish_many(events, contexts)
        for index, reason in result.refused:  # a value the schema cannot hold
            number, label = contexts[index]
            report.queued[label] -= 1
            reject(RejectedLine(number, reason, events[index].model_dump_json()))

    with ExitStack() as stack:
        chunk = CHUNK
        if str(path) == "-":
            stream: BinaryIO = sys.stdin.buffer
            total = None
            # a stream may pause for any time between lines: each line goes out as it comes
            chunk = 1
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
                        producer = producer_for(item.region)
                    except RegionMismatch as exc:
                        reject(RejectedLine(number, str(exc), item.model_dump_json()))
                        continue
                label = f"{item.region.value} {item.event_type}"
                events, contexts = pending.setdefault(item.region, ([], []))
                events.append(item)
                contexts.append((number, label))
                report.queued[label] += 1
                if len(events) >= chunk:
                    publish_pending(item.region)
            progress.update(
                counting.read,
                f"{sum(report.queued.values())} queued, {len(report.failed)} failed, "
                f"{len(report.rejected)} rejected",
            )
        for region in list(pending):
            publish_pending(region)
        for producer in producers.values():
            producer.flush()
            report.unknown += producer.unknown
        report.seconds = time.monotonic() - started
        progress.close(
            f"{report.total_published} acknowledged, {len(report.failed)} failed, "
            f"{report.unknown} unknown, {len(report.rejected)} rejected"
        )
    return report
