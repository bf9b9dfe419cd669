"""Metrics and health of the long-running processes, scraped over HTTP after a small scenario
with known counts: a worker and a mirror (EU -> JP) on real brokers, and the gateway."""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.request
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from connectors.kafka import clients
from connectors.kafka.embedded import EmbeddedBroker
from connectors.mirror.replication import Reason
from schemas.events import CertificationEvent, Event, ShipmentEvent
from schemas.serde import Serde
from schemas.topics import event_topic_name
from schemas.values import Region
from tests import scenarios
from tests.integration.mirrors import Mirror, eligible
from tests.integration.test_gateway import (
    MAKER_TOKEN,
    MINER_TOKEN,
    as_json,
    post,
    running_gateway,
    tokens_file,
)
from tests.integration.workers import Worker, publish

EU, JP = Region.EU, Region.JP
UUID = re.compile(r"[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}", re.I)
#: (metric family name, sample name, labels) -> value
Samples = dict[tuple[str, str, frozenset[tuple[str, str]]], float]


def scrape(port: int) -> tuple[Samples, str]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
        text = answer.read().decode()
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples[family.name, s.name, frozenset(s.labels.items())] = s.value
    return samples, text


def by(samples: Samples, name: str, *labels: str) -> dict[tuple[str, ...], float]:
    """The samples called ``name``, keyed by the values of ``labels`` (summed over others)."""
    out: dict[tuple[str, ...], float] = {}
    for (_, sample, found), value in samples.items():
        if sample == name:
            given = dict(found)
            key = tuple(given[label] for label in labels)
            out[key] = out.get(key, 0.0) + value
    return out


def status(port: int, path: str) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def assert_no_ids_in_labels(samples: Samples, ids: set[str]) -> None:
    for _, sample, labels in samples:
        for label, value in labels:
            assert not UUID.search(value), (sample, label, value)
            assert value not in ids, (sample, label, value)


def entity_ids(events: list[Event]) -> set[str]:
    """Every battery, lot, passport, operator and event id of ``events``."""
    ids: set[str] = set()

    def walk(value: Any, name: str = "") -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(v, k)
        elif isinstance(value, list):
            for v in value:
                walk(v, name)
        elif name.endswith("_id") and value is not None:
            ids.add(str(value))

    for event in events:
        walk(event.model_dump(mode="json"))
    return ids


def outflow(events: list[Event]) -> ShipmentEvent:
    """Part of the recovered lot REC-NI-1 shipped from Germany to the United States (outside
    the alliance): an outflow alert."""
    shipment = next(e for e in events if isinstance(e, ShipmentEvent))
    return ShipmentEvent(
        **{
            **shipment.model_dump(),
            "event_id": scenarios.uid(80),
            "subject": "lot",
            "subject_id": "REC-NI-1",
            "mass_kg": Decimal("10"),
            "to_country": "US",
            "to_site_id": "US-SITE-1",
            "hs_code": "283324",
        }
    )


def mirror_expectation(
    events: list[Event], invalid: dict[str, int]
) -> tuple[dict[str, int], dict[tuple[str, str], int]]:
    """What the shipped EU -> JP policy decides for ``events`` on the EU cluster, worked out
    here: mirrored per type (as :func:`eligible` says), filtered per type and reason."""
    mirrored = Counter(e.event_type for e in eligible(events, EU))
    shared = {str(e.event_id) for e in eligible(events, EU)}
    filtered: Counter[tuple[str, str]] = Counter(
        {(t, Reason.invalid.value): n for t, n in invalid.items()}
    )
    for e in events:
        if str(e.event_id) in shared:
            continue
        if e.region != EU:
            reason = Reason.from_target_region
        elif isinstance(e, CertificationEvent) and e.scheme_region != EU:
            reason = Reason.foreign_scheme
        else:
            reason = Reason.uncertified
        filtered[e.event_type, reason.value] += 1
    return dict(mirrored), dict(filtered)


def test_worker_and_mirror_count_a_scenario(
    regions: dict[Region, EmbeddedBroker], tmp_path: Path
) -> None:
    eu, jp = regions[EU], regions[JP]
    events = [*scenarios.reference(), outflow(scenarios.reference())]
    serde = Serde()
    extraction = event_topic_name("extraction")
    impossible = serde.encode_record(
        "extraction",
        scenarios.impossible_extraction(),
        extraction,
    )
    producer = clients.producer({"bootstrap.servers": eu.bootstrap})
    producer.produce(extraction, key=b"junk", value=b"not avro at all")
    producer.produce(extraction, key=b"ORE-BAD", value=impossible)
    producer.flush(30)
    publish(eu, events)
    processed = Counter(e.event_type for e in events)
    mirrored, filtered = mirror_expectation(events, {"extraction": 2})
    ids = entity_ids(events) | {"ORE-BAD", "junk"}

    with Worker(eu, tmp_path, store="memory") as worker, Mirror(eu, jp, tmp_path) as mirror:
        assert worker.wait_ready()["ready"] is True
        assert status(worker.port, "/healthz")[0] == 200
        deadline = time.monotonic() + 120
        while True:
            samples, text = scrape(worker.port)
            done = sum(by(samples, "batteryloop_events_processed_total").values())
            if done >= len(events) and by(samples, "batteryloop_alerts_raised_total"):
                break
            assert time.monotonic() < deadline, f"{done}/{len(events)} processed\n{text}"
            time.sleep(0.5)
        time.sleep(1.5)  # anything counted twice would show by now
        samples, text = scrape(worker.port)
        assert by(samples, "batteryloop_events_processed_total", "event_type") == {
            (t,): float(n) for t, n in processed.items()
        }
        assert by(samples, "batteryloop_events_failed_total", "event_type", "reason") == {
            ("unknown", "undecodable"): 1.0,
            ("extraction", "invalid"): 1.0,
        }
        assert by(samples, "batteryloop_dead_letters_total", "topic", "reason") == {
            (extraction, "undecodable"): 1.0,
            (extraction, "invalid"): 1.0,
        }
        assert by(samples, "batteryloop_alerts_raised_total", "kind") == {("outflow",): 1.0}
        documents = by(samples, "batteryloop_documents_published_total", "output")
        assert documents[("passports",)] > 0 and documents[("alerts",)] >= 1
        # one latency per processed event, each from its record's timestamp
        assert by(samples, "batteryloop_event_latency_seconds_count") == {(): len(events)}
        assert by(samples, "batteryloop_event_latency_seconds_sum")[()] > 0
        lag = by(samples, "batteryloop_consumer_lag_records", "topic")
        assert lag[(extraction,)] == 0 and sum(lag.values()) == 0  # everything read
        assert_no_ids_in_labels(samples, ids)

        # the mirror: every record of the source decided, as the policy says
        mirror_port = mirror.metrics_port
        total = len(events) + 2
        deadline = time.monotonic() + 120
        while True:
            answer = status(mirror_port, "/readyz") if mirror.alive else (0, {})
            if answer[0] == 200:
                samples, text = scrape(mirror_port)
                decided = sum(by(samples, "batteryloop_mirror_records_total").values()) + sum(
                    by(samples, "batteryloop_mirror_filtered_total").values()
                )
                if decided >= total:
                    break
            assert time.monotonic() < deadline, f"mirror: {answer}\n{mirror.log_tail()}"
            time.sleep(0.5)
        time.sleep(1.5)
        samples, text = scrape(mirror_port)
        assert status(mirror_port, "/healthz") == (200, {"direction": "eu-to-jp", "ready": True})
        direction = ("eu-to-jp",)
        # (the agent creates a series for every type up front: those left at 0 say nothing)
        records = by(samples, "batteryloop_mirror_records_total", "direction", "event_type")
        assert {k: v for k, v in records.items() if v} == {
            (*direction, t): float(n) for t, n in mirrored.items()
        }
        assert by(
            samples, "batteryloop_mirror_filtered_total", "direction", "event_type", "reason"
        ) == {(*direction, t, r): float(n) for (t, r), n in filtered.items()}
        assert by(samples, "batteryloop_mirror_target_available", "direction") == {direction: 1}
        replicated = by(samples, "batteryloop_mirror_replication_latency_seconds_count")
        assert replicated[()] >= 1
        assert_no_ids_in_labels(samples, ids)


def test_the_gateway_counts_requests_and_events(broker: EmbeddedBroker, tmp_path: Path) -> None:
    chain = scenarios.reference()
    ore = next(e for e in chain if e.event_type == "extraction")  # by the miner
    packs = [e for e in chain if e.event_type == "manufacture"]  # by the maker
    with running_gateway(broker, tmp_path, "--tokens", str(tokens_file(tmp_path))) as url:
        port = int(url.rsplit(":", 1)[1])
        deadline = time.monotonic() + 60
        while (answer := status(port, "/readyz"))[0] != 200:  # no token needed
            assert time.monotonic() < deadline, answer
            time.sleep(0.2)
        assert answer[1]["cluster_reached"] is True
        assert status(port, "/healthz")[0] == 200

        assert post(url + "/events", as_json(ore))[0] == 401
        broken = {**as_json(ore), "mass_kg": "-5"}
        assert post(url + "/events", broken, token=MINER_TOKEN)[0] == 422
        assert post(url + "/events", as_json(ore), token=MINER_TOKEN)[0] == 202
        assert post(url + "/events", as_json(ore), token=MINER_TOKEN)[0] == 202  # duplicate
        mixed = [as_json(packs[0]), {**as_json(packs[1]), "capacity_kwh": "lots"}, [1]]
        assert post(url + "/events/batch", mixed, token=MAKER_TOKEN)[0] == 207
        samples, text = scrape(port)

    requests = by(samples, "batteryloop_gateway_requests_total", "route", "status")
    requests.pop(("/readyz", "503"), None)  # as often as it was asked before it was ready
    assert requests == {
        ("/readyz", "200"): 1.0,
        ("/healthz", "200"): 1.0,
        ("/events", "401"): 1.0,
        ("/events", "422"): 1.0,
        ("/events", "202"): 2.0,
        ("/events/batch", "207"): 1.0,
    }
    assert by(samples, "batteryloop_gateway_events_total", "event_type", "outcome") == {
        ("extraction", "rejected"): 1.0,
        ("extraction", "accepted"): 2.0,
        ("manufacture", "accepted"): 1.0,
        ("manufacture", "rejected"): 1.0,
        ("unknown", "rejected"): 1.0,
    }
    timed = by(samples, "batteryloop_gateway_request_seconds_count", "route")
    assert timed[("/events",)] == 4 and timed[("/events/batch",)] == 1
    assert_no_ids_in_labels(samples, entity_ids(chain))
