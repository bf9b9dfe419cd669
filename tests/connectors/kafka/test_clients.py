"""The client layer without a cluster: librdkafka's log into a rate-limited Python logger,
no secret in a construction error, a bounded connectivity check."""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Iterator

import pytest
from confluent_kafka import KafkaError, KafkaException

from connectors.kafka import clients
from connectors.kafka.clients import ClusterUnreachable, RateLimitedLog, check_reachable


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.fixture
def records() -> Iterator[Records]:
    handler = Records()
    logger = logging.getLogger("batteryloop.kafka")
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)


@pytest.fixture
def closed_port() -> Iterator[str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
        yield f"127.0.0.1:{sock.getsockname()[1]}"


def test_the_same_message_at_most_once_per_interval_with_a_count(records: Records) -> None:
    log = RateLimitedLog(interval=0.3)
    for attempt in range(50):
        # librdkafka's shape: facility, client name, "[thrd:...]: message"
        log.log(
            logging.ERROR,
            "%s [%s] %s",
            "FAIL",
            f"rdkafka#producer-{attempt % 3}",
            f"[thrd:b/bootstrap]: b: Connect failed (after {attempt}ms in state CONNECT)",
        )
    log.log(logging.WARNING, "%s [%s] %s", "REQTMOUT", "rdkafka#producer-1", "[thrd:x]: other")
    assert records.messages == [
        "kafka FAIL: b: Connect failed (after 0ms in state CONNECT)",
        "kafka REQTMOUT: other",
    ]
    time.sleep(0.35)
    for attempt in (7, 8):
        text = f"[thrd:b]: b: Connect failed (after {attempt}ms in state CONNECT)"
        log.log(logging.ERROR, "%s [%s] %s", "FAIL", "c", text)
    assert records.messages[2:] == [
        "kafka FAIL: b: Connect failed (after 7ms in state CONNECT) (49 more like it in 0.3 s)",
    ]


def test_a_refusing_broker_does_not_flood_the_log(records: Records, closed_port: str) -> None:
    producer = clients.producer({"bootstrap.servers": closed_port, "reconnect.backoff.ms": "1"})
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        producer.poll(0.1)
    refused = [m for m in records.messages if "Connection refused" in m]
    assert len(refused) == 1, records.messages
    assert closed_port in refused[0]
    assert len(records.messages) <= 3, records.messages  # the refusal, "brokers are down"


def test_the_connectivity_check_is_bounded_and_names_the_address(
    records: Records, closed_port: str
) -> None:
    started = time.monotonic()
    with pytest.raises(ClusterUnreachable) as info:
        check_reachable({"bootstrap.servers": closed_port}, timeout=1.0)
    assert time.monotonic() - started < 3
    assert info.value.bootstrap == closed_port
    assert f"at {closed_port} within 1 s" in str(info.value)
    assert "Connection refused" in str(info.value)
    assert records.messages == []  # the exception says it once; the attempts are DEBUG only


def test_a_construction_error_does_not_show_a_secret() -> None:
    with pytest.raises(KafkaException) as info:
        clients.producer(
            {
                "bootstrap.servers": "127.0.0.1:1",
                "sasl.password": "pw<hunter2>",
                "no.such.property": "pw<hunter2>",
            }
        )
    assert "pw<hunter2>" not in str(info.value)
    # still librdkafka's error with its code: callers tell a configuration error by it
    error = info.value.args[0]
    assert isinstance(error, KafkaError) and error.code() == KafkaError._INVALID_ARG
    assert "no.such.property" in error.str()


def test_produce_waits_for_room_when_the_local_queue_is_full(closed_port: str) -> None:
    producer = clients.producer(
        {
            "bootstrap.servers": closed_port,
            "queue.buffering.max.messages": "5",
            "message.timeout.ms": "300",
        }
    )
    delivered: list[str | None] = []

    def report(error: object, message: object) -> None:
        delivered.append(None if error is None else "failed")

    waits = []
    for _ in range(12):  # more than the queue holds: room comes from failed deliveries
        clients.produce(producer, "t", b"v", on_delivery=report, on_wait=lambda: waits.append(1))
    producer.flush(5)
    assert delivered == ["failed"] * 12
    assert waits


def test_on_wait_can_give_up(closed_port: str) -> None:
    producer = clients.producer(
        {"bootstrap.servers": closed_port, "queue.buffering.max.messages": "1"}
    )
    clients.produce(producer, "t", b"v")

    class GiveUp(Exception):
        pass

    def give_up() -> None:
        raise GiveUp

    with pytest.raises(GiveUp):
        clients.produce(producer, "t", b"v", on_wait=give_up)
