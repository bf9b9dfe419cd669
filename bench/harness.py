"""The pieces every figure of ``python -m bench`` uses: a one-line progress display, a watcher
that reads output topics as they fill and says when they hold what is expected, producing
pre-encoded records at raw speed, and waiting for a worker to be ready."""

from __future__ import annotations

import json
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, TopicPartition

from connectors.kafka import clients
from connectors.kafka.consume import reader

#: (topic, key) -> whatever the check compares with
Expected = dict[tuple[str, bytes], Any]
Check = Callable[[str, bytes, bytes | None, Any], bool]


class Progress:
    """One line, rewritten in place (``\\r``) on a terminal; plain lines, at most one every
    few seconds, when stdout is not one (a log file, CI)."""

    def __init__(self, stream: Any = None) -> None:
        self.stream = stream if stream is not None else sys.stdout
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._width = 0
        self._last_plain = 0.0
        self.prefix = ""

    def show(self, text: str, force: bool = False) -> None:
        line = f"{self.prefix}{text}"
        if self.tty:
            pad = max(0, self._width - len(line))
            self.stream.write("\r" + line + " " * pad)
            self._width = len(line)
            self.stream.flush()
        elif force or time.monotonic() - self._last_plain > 5:
            self._last_plain = time.monotonic()
            self.stream.write(line + "\n")
            self.stream.flush()

    def done(self, text: str) -> None:
        """A line that stays (a result)."""
        if self.tty:
            self.stream.write("\r" + " " * self._width + "\r")
            self._width = 0
        self.stream.write(f"{self.prefix}{text}\n")
        self.stream.flush()


class OutputWatch:
    """Reads ``topics`` from the start in a thread; ``finished_at`` is the moment every
    expected (topic, key) holds a value that ``check`` accepts (the latest value counts, as on a
    compacted topic; with ``sticky``, any value accepted once counts). ``on_record`` sees every
    record with its arrival time."""

    def __init__(
        self,
        bootstrap: str,
        topics: Iterable[str],
        expected: Expected,
        check: Check,
        on_record: Callable[[str, bytes, bytes | None, float], None] | None = None,
        sticky: bool = False,
    ) -> None:
        self.sticky = sticky
        self.topics = list(topics)
        self.expected = expected
        self.check = check
        self.on_record = on_record
        self.pending = set(expected)
        self.seen = 0
        self.finished_at: float | None = None if expected else time.monotonic()
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._consumer = reader({"bootstrap.servers": bootstrap}, fetch_wait_max_ms=10)
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> OutputWatch:
        metadata = self._consumer.list_topics(timeout=10)
        missing = [t for t in self.topics if t not in metadata.topics]
        if missing:
            raise RuntimeError(f"output topic(s) {missing} do not exist on the broker")
        self._consumer.assign(
            [
                TopicPartition(t, p, OFFSET_BEGINNING)
                for t in self.topics
                for p in metadata.topics[t].partitions
            ]
        )
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                for message in self._consumer.consume(2000, 0.1):
                    if message.error() is not None:
                        continue
                    now = time.monotonic()
                    topic, key, value = message.topic() or "", message.key() or b"", message.value()
                    self.seen += 1
                    if self.on_record is not None:
                        self.on_record(topic, key, value, now)
                    wanted = (topic, key)
                    if wanted in self.expected:
                        if self.check(topic, key, value, self.expected[wanted]):
                            self.pending.discard(wanted)
                        elif not self.sticky:
                            self.pending.add(wanted)
                        if not self.pending and self.finished_at is None:
                            self.finished_at = now
        except BaseException as exc:  # surfaced by wait()
            self.error = exc

    def wait(
        self,
        timeout: float,
        progress: Progress | None = None,
        label: str = "",
        alive: Callable[[], str | None] | None = None,
    ) -> float:
        """The moment the outputs were complete; raises with the missing keys on timeout, or
        when ``alive`` names a reason the job cannot finish (it exited)."""
        deadline = time.monotonic() + timeout
        while self.finished_at is None:
            if self.error is not None:
                raise RuntimeError(f"reading {self.topics} failed: {self.error}")
            if alive is not None and (reason := alive()) is not None:
                raise RuntimeError(reason)
            if time.monotonic() > deadline:
                sample = sorted(self.pending)[:5]
                raise TimeoutError(
                    f"{label}: {len(self.pending):,} of {len(self.expected):,} expected "
                    f"documents not (or not equal) on {self.topics} after {timeout:.0f} s, "
                    f"e.g. {sample}"
                )
            if progress is not None:
                done = len(self.expected) - len(self.pending)
                progress.show(f"{label}: {done:,}/{len(self.expected):,} documents final")
            time.sleep(0.1)
        return self.finished_at

    def mismatches(self) -> list[tuple[str, bytes]]:
        return sorted(self.pending)

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(10)
        self._consumer.close()


def produce_raw(bootstrap: str, records: Iterable[tuple[str, bytes, bytes]], **config: Any) -> int:
    """Produce pre-encoded ``(topic, key, value)`` records as fast as librdkafka takes them."""
    producer = clients.producer(
        {"bootstrap.servers": bootstrap, "linger.ms": 20, "compression.type": "lz4", **config}
    )
    count = 0
    for topic, key, value in records:
        clients.produce(producer, topic, value, key)
        count += 1
        if count % 1000 == 0:
            producer.poll(0)
    if producer.flush(120) != 0:
        raise RuntimeError(f"{len(producer)} records not acknowledged after 120 s")
    return count


def http_json(port: int, path: str) -> tuple[int, Any] | None:
    """(status, JSON body) of GET ``path``, or None while nothing listens."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as error:
        try:
            body = json.loads(error.read() or b"null")
        except ValueError:
            body = None
        return error.code, body
    except (OSError, ValueError):
        return None


def wait_ready(
    port: int, timeout: float, alive: Callable[[], str | None], progress: Progress, label: str
) -> str:
    """Wait for the worker on ``port``: ``/readyz`` 200 where it answers, otherwise ``/healthz``
    200 with ``assigned: true``. Returns which of the two said so."""
    deadline = time.monotonic() + timeout
    readyz = True  # until it answers 404
    while time.monotonic() < deadline:
        if (reason := alive()) is not None:
            raise RuntimeError(reason)
        if readyz:
            answer = http_json(port, "/readyz")
            if answer is not None and answer[0] == 200:
                return "/readyz"
            if answer is not None and answer[0] == 404:
                readyz = False
        if not readyz:
            health = http_json(port, "/healthz")
            if health is not None and health[0] == 200 and (health[1] or {}).get("assigned"):
                return "/healthz"
        progress.show(f"{label}: waiting for the worker to be ready")
        time.sleep(0.2)
    raise TimeoutError(f"{label}: the worker was not ready after {timeout:.0f} s")


def has_readyz(port: int) -> bool | None:
    """Whether the worker answers ``/readyz`` (None: nothing listens yet)."""
    answer = http_json(port, "/readyz")
    return None if answer is None else answer[0] != 404


def expected_json(check: Mapping[str, Any]) -> Check:
    """A check that a JSON document holds ``check``'s fields (unused fields ignored)."""

    def matches(topic: str, key: bytes, value: bytes | None, want: Any) -> bool:
        if value is None:
            return False
        document = json.loads(value)
        return all(document.get(k) == v for k, v in check.items())

    return matches
