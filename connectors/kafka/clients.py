"""The one place that builds confluent-kafka clients, and the one produce-with-backpressure path.

Every ``Producer``, ``Consumer`` and ``AdminClient`` of the product comes from :func:`producer`,
:func:`consumer` or :func:`admin`, given librdkafka properties (usually
:meth:`connectors.settings.Settings.client_config`: bootstrap per region, the common and
per-region ``BATTERYLOOP_*KAFKA_*`` properties, ``-X`` overrides; SASL and TLS pass through as
librdkafka properties). What they add:

* librdkafka's log lines and error callbacks go to the Python logger ``batteryloop.kafka``,
  rate-limited: the same message at most once per :data:`LOG_INTERVAL` seconds, the next one
  saying how many repeats were suppressed. An unreachable broker makes librdkafka log a
  ``FAIL`` line per reconnect attempt (dozens a second); none of them reach stderr raw.
* an error while building a client never shows a secret property's value.

:func:`produce` is the only loop around ``BufferError`` (the local queue is full): it serves
delivery reports until there is room, and lets the caller stop the wait (``on_wait`` may raise).
:func:`check_reachable` asks the cluster for metadata within a bounded time and raises
:class:`ClusterUnreachable`, naming the bootstrap servers, when it does not answer.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer
from confluent_kafka.admin import AdminClient

# confluent-kafka's admin package re-exports it without marking it as exported
from confluent_kafka.admin import ClusterMetadata  # type: ignore[attr-defined]  # isort: skip

from connectors.settings import is_secret_property

log = logging.getLogger("batteryloop.kafka")

LOG_INTERVAL = 30.0

ErrorCallback = Callable[[KafkaError], None]
DeliveryCallback = Callable[[KafkaError | None, Message], None]

# librdkafka prefixes a log line with "FACILITY [client name] [thrd:...]: "; the rest is the
# message. Numbers vary between otherwise identical lines ("after 0ms", "3 identical error(s)").
_PREFIX = re.compile(r"^\s*\[thrd:[^\]]*\]:\s*")
_NUMBER = re.compile(r"\d+")


@dataclass
class _Seen:
    last: float
    suppressed: int = 0


class RateLimitedLog:
    """librdkafka's ``logger`` (and the clients' error callbacks) into a Python logger, each
    distinct message at most once per ``interval`` seconds.

    Two messages are the same when they differ only in numbers and in which client or thread
    logged them, so a reconnect loop on one broker shows up once per interval with a count.
    """

    def __init__(self, logger: logging.Logger = log, interval: float = LOG_INTERVAL) -> None:
        self.logger = logger
        self.interval = interval
        self._seen: dict[str, _Seen] = {}
        self._lock = threading.Lock()  # librdkafka may call from several client threads

    def log(self, level: int, fmt: str, *args: Any) -> None:
        """The method librdkafka's ``logger`` property calls (``fmt``: "%s [%s] %s",
        facility, client name, message)."""
        if len(args) == 3 and fmt == "%s [%s] %s":
            facility, _client, text = (str(a) for a in args)
            self.emit(level, _PREFIX.sub("", text), facility)
        else:
            self.emit(level, fmt % args if args else fmt)

    def emit(self, level: int, message: str, facility: str | None = None) -> None:
        if not self.logger.isEnabledFor(level):
            return
        key = _NUMBER.sub("#", message)
        now = time.monotonic()
        with self._lock:
            seen = self._seen.get(key)
            if seen is not None and now - seen.last < self.interval:
                seen.suppressed += 1
                return
            suppressed = seen.suppressed if seen is not None else 0
            self._seen[key] = _Seen(now)
        more = f" ({suppressed} more like it in {self.interval:g} s)" if suppressed else ""
        label = f"kafka {facility}" if facility else "kafka"
        self.logger.log(level, "%s: %s%s", label, message, more)

    def error_cb(self, error: KafkaError) -> None:
        """An ``error_cb`` for librdkafka: fatal errors at ERROR, the rest (a broker down,
        which librdkafka retries on its own) at WARNING."""
        self.emit(logging.ERROR if error.fatal() else logging.WARNING, error.str())


client_log = RateLimitedLog()


def _with_logging(config: Mapping[str, Any], error_cb: ErrorCallback | None) -> dict[str, Any]:
    def on_error(error: KafkaError) -> None:
        client_log.error_cb(error)
        if error_cb is not None:
            error_cb(error)

    return {**config, "logger": client_log, "error_cb": on_error}


Client = TypeVar("Client", Producer, Consumer, AdminClient)


def _build(kind: Callable[[dict[str, Any]], Client], config: dict[str, Any]) -> Client:
    try:
        return kind(config)
    except KafkaException as exc:
        # the same error, code kept (callers tell configuration errors apart by it), text scrubbed
        error = exc.args[0]
        if not isinstance(error, KafkaError):
            raise KafkaException(_scrub(str(error), config)) from None
        scrubbed = KafkaError(error.code(), _scrub(error.str(), config), fatal=error.fatal())
        raise KafkaException(scrubbed) from None
    except (ValueError, TypeError) as exc:
        raise type(exc)(_scrub(str(exc), config)) from None


def _scrub(text: str, config: Mapping[str, Any]) -> str:
    """``text`` without the value of any secret property of ``config``."""
    for name, value in config.items():
        if is_secret_property(name) and isinstance(value, str) and value:
            text = text.replace(value, "**********")
    return text


def producer(
    config: Mapping[str, Any],
    *,
    error_cb: ErrorCallback | None = None,
    on_delivery: DeliveryCallback | None = None,
) -> Producer:
    """A librdkafka producer with ``config``; ``error_cb`` is called after the error is
    logged, ``on_delivery`` is the default delivery report callback."""
    built = _with_logging(config, error_cb)
    if on_delivery is not None:
        built["on_delivery"] = on_delivery
    return _build(Producer, built)


def consumer(config: Mapping[str, Any], *, error_cb: ErrorCallback | None = None) -> Consumer:
    """A librdkafka consumer with ``config`` (``group.id`` included by the caller)."""
    return _build(Consumer, _with_logging(config, error_cb))


def admin(config: Mapping[str, Any], *, error_cb: ErrorCallback | None = None) -> AdminClient:
    """An admin client with ``config``."""
    return _build(AdminClient, _with_logging(config, error_cb))


def try_produce(
    client: Producer,
    topic: str,
    value: bytes | None,
    key: bytes | None = None,
    *,
    partition: int = -1,
    headers: list[tuple[str, bytes]] | None = None,
    timestamp: int = 0,
    on_delivery: DeliveryCallback | None = None,
) -> bool:
    """Queue one record if librdkafka's local queue has room; False when it is full (the
    caller makes room by serving delivery reports, see :func:`produce`)."""
    extra: dict[str, Any] = {"partition": partition, "timestamp": timestamp}
    if headers is not None:
        extra["headers"] = headers
    if on_delivery is not None:
        extra["on_delivery"] = on_delivery
    try:
        client.produce(topic, value, key, **extra)
    except BufferError:
        return False
    return True


def produce(
    client: Producer,
    topic: str,
    value: bytes | None,
    key: bytes | None = None,
    *,
    partition: int = -1,
    headers: list[tuple[str, bytes]] | None = None,
    timestamp: int = 0,
    on_delivery: DeliveryCallback | None = None,
    on_wait: Callable[[], None] | None = None,
    wait_seconds: float = 0.05,
) -> None:
    """Queue one record; while librdkafka's local queue is full, serve delivery reports (which
    frees room) and retry. ``on_wait`` runs after each wait and may raise to give up (a session
    that learnt its cluster is gone). A cluster that stops acknowledging ends the wait too:
    queued records fail after ``message.timeout.ms`` and leave the queue. (An asyncio server,
    whose own poller serves the reports, loops over :func:`try_produce` and awaits instead.)
    """
    while not try_produce(
        client,
        topic,
        value,
        key,
        partition=partition,
        headers=headers,
        timestamp=timestamp,
        on_delivery=on_delivery,
    ):
        client.poll(wait_seconds)
        if on_wait is not None:
            on_wait()


class ClusterUnreachable(RuntimeError):
    """The cluster did not answer within the connect timeout."""

    def __init__(self, bootstrap: str, timeout: float, reason: str) -> None:
        self.bootstrap = bootstrap
        self.timeout = timeout
        super().__init__(
            f"cannot reach the Kafka cluster at {bootstrap} within {timeout:g} s: {reason}"
        )


class _Collected:
    """Errors of a client whose failure is reported by other means (a connectivity check):
    kept to name the cause, logged at DEBUG only."""

    def __init__(self) -> None:
        self.errors: list[str] = []

    def log(self, level: int, fmt: str, *args: Any) -> None:
        log.debug(fmt, *args)

    def error_cb(self, error: KafkaError) -> None:
        self.errors.append(error.str())


def check_reachable(config: Mapping[str, Any], timeout: float) -> ClusterMetadata:
    """The cluster's metadata, or :class:`ClusterUnreachable` after ``timeout`` seconds, whose
    message gives the cause librdkafka saw (connection refused, TLS handshake, authentication).
    The attempt's own log lines are not logged above DEBUG: the exception says it all once."""
    collected = _Collected()
    client = _build(AdminClient, {**config, "logger": collected, "error_cb": collected.error_cb})
    try:
        metadata: ClusterMetadata = client.list_topics(timeout=timeout)
        return metadata
    except KafkaException as exc:
        client.poll(0)  # serves the error callbacks of the attempt
        error = exc.args[0] if exc.args else None
        causes = [e for e in collected.errors if "brokers are down" not in e]
        if causes:
            reason = causes[-1]
        else:
            reason = error.str() if isinstance(error, KafkaError) else str(exc)
        raise ClusterUnreachable(
            str(config.get("bootstrap.servers", "?")), timeout, _scrub(reason, config)
        ) from None


# --- reading records ------------------------------------------------------------------------
# confluent-kafka types a message's topic, partition, offset, key, value and headers as
# optional, because the same class carries error events. A record that was consumed or
# delivered always has its place; these give it typed, and fail loudly on an error event.


def place(message: Message) -> tuple[str, int, int]:
    """(topic, partition, offset) of a consumed or delivered record."""
    topic, partition, offset = message.topic(), message.partition(), message.offset()
    if topic is None or partition is None or offset is None:
        raise ValueError(f"not a record: {message.error()}")
    return topic, partition, offset


def headers(message: Message) -> list[tuple[str, bytes]]:
    """A record's headers as (name, bytes) pairs; a header without a value reads as b''."""
    found = message.headers() or []
    pairs = found.items() if isinstance(found, dict) else found
    return [
        (name, value.encode() if isinstance(value, str) else (value or b""))
        for name, value in pairs
    ]
