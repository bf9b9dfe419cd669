"""The processors on a real broker: reference numbers, dead letters, a SIGKILL mid-stream."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from confluent_kafka import Producer

from connectors.kafka.admin import create_missing
from connectors.kafka.consume import read_from_start
from connectors.kafka.embedded import BACKENDS, EmbeddedBroker
from schemas.events import ShipmentSubject
from schemas.serde import Serde
from schemas.topics import DEAD_LETTER_TOPIC, event_topic_name
from schemas.values import Region
from tests import scenarios
from tests.integration.conftest import config, requires
from tests.integration.workers import Worker, ground_truth, publish, published, wait_for

pytestmark = pytest.mark.integration
STATE_OUTPUTS = ("passports", "lots", "recycled-content", "recovery")


def test_reference_scenario_and_dead_letters(broker: EmbeddedBroker, tmp_path: Path) -> None:
    events = scenarios.reference()
    serde = Serde()
    extraction = event_topic_name("extraction")
    bad_composition = serde.encode_record(
        "extraction",
        scenarios.impossible_extraction(),
        extraction,
    )
    producer = Producer(config(broker))
    # Bad records before, between and after the good ones.
    producer.produce(extraction, key=b"junk", value=b"not avro at all")
    producer.flush()
    publish(broker, events[:6])
    producer.produce(extraction, key=b"ORE-BAD", value=bad_composition)
    producer.produce(extraction, key=b"PACK-X", value=serde.encode(events[5], extraction))
    producer.flush()
    publish(broker, events[6:])
    ghost = events[-2].model_copy(  # a shipment of a lot no event ever creates
        update={
            "event_id": scenarios.uid(71),
            "subject": ShipmentSubject.lot,
            "subject_id": "GHOST-1",
        }
    )
    publish(broker, [ghost])

    expected = ground_truth(events)
    with Worker(broker, tmp_path, store="memory") as worker:
        seen = wait_for(broker, {o: expected.output(o) for o in STATE_OUTPUTS}, worker)
        passport = seen["passports"]["PACK-1"]
        # Worked by hand in tests/scenarios.py: 3 of 20 kg nickel recycled post-consumer.
        assert passport["materials"]["nickel"]["mass_kg"] == "20.000000000"
        assert passport["materials"]["nickel"]["recycled_post_consumer_share"] == "0.150000"
        tally = seen["recycled-content"][f"{scenarios.MAKER}|BPNS0000000PCK01|REF-PACK|2031"]
        assert tally["metals"]["nickel"]["meets_2036"] is True
        assert worker.get("/passports/PACK-1")["manufacturer_certified_at_manufacture"] is True
        # The URL a passport's QR code holds answers JSON, or HTML for a browser.
        assert passport["url"] == "http://127.0.0.1:6066/passport/PACK-1"
        assert worker.get("/passport/PACK-1") == worker.get("/passports/PACK-1")
        page = urllib.request.Request(
            f"http://127.0.0.1:{worker.port}/passport/PACK-1",
            headers={"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"},
        )
        with urllib.request.urlopen(page, timeout=10) as answer:
            assert answer.headers["Content-Type"].startswith("text/html")
            assert "<h1>Battery passport PACK-1</h1>" in answer.read().decode()
        with pytest.raises(urllib.error.HTTPError) as no_gtin:  # made without one
            worker.get("/01/09506000134352/21/PACK-1")
        assert no_gtin.value.code == 404 and b"PACK-1 has no GTIN" in no_gtin.value.read()
        metrics = worker.get("/metrics")
        for reason in ("undecodable", "invalid", "wrong_topic"):  # one each
            sample = f'batteryloop_dead_letters_total{{reason="{reason}",topic="{extraction}"}}'
            assert f"{sample} 1.0" in metrics, metrics
        # After the grace period (2 s here) the worker's tick raises the unresolved reference.
        deadline = time.monotonic() + 60
        while "unresolved/lot/GHOST-1" not in (alerts := published(broker, "alerts")):
            assert time.monotonic() < deadline, f"no unresolved alert: {sorted(alerts)}"
            time.sleep(1)
        assert alerts["unresolved/lot/GHOST-1"]["details"]["event_ids"] == [str(ghost.event_id)]

    def passport_command(battery_id: str, *more: str) -> subprocess.CompletedProcess[str]:
        command = ["passport", battery_id, "--region", "eu", "--bootstrap", broker.bootstrap]
        command += more
        return subprocess.run(
            [sys.executable, "-m", "connectors.cli", *command],
            capture_output=True,
            text=True,
            timeout=120,
        )

    shown = passport_command("PACK-1")
    assert shown.returncode == 0, shown.stderr
    passport = json.loads(shown.stdout)
    assert passport["materials"]["nickel"]["recycled_post_consumer_share"] == "0.150000"
    assert passport["manufacturer_certified_at_manufacture"] is True
    catenax = passport_command("PACK-1", "--format", "catenax")
    assert catenax.returncode == 0, catenax.stderr
    assert json.loads(catenax.stdout)["materials"]["active"]["nickel"] == {"recycled": 15.0}
    no_stages = passport_command("PACK-1", "--format", "ouranos-cfp")
    assert (
        no_stages.returncode == 1 and "no carbon footprint by lifecycle stage" in no_stages.stderr
    )
    missing = passport_command("NO-SUCH")
    assert missing.returncode == 1 and "no passport for battery NO-SUCH" in missing.stderr

    dead = read_from_start(config(broker), [DEAD_LETTER_TOPIC.name], expected=3, timeout=30)
    reasons = {m.key(): dict(m.headers() or []) for m in dead}
    assert set(reasons) == {b"junk", b"ORE-BAD", b"PACK-X"}
    assert b"not framed Avro" in reasons[b"junk"]["error"]
    assert b"sum to 1.2" in reasons[b"ORE-BAD"]["error"]
    assert b"a manufacture event on the extraction topic" in reasons[b"PACK-X"]["error"]
    assert all(h["topic"] == extraction.encode() for h in reasons.values())
    assert all(h["partition"].isdigit() and h["offset"].isdigit() for h in reasons.values())


@pytest.fixture(params=sorted(BACKENDS))
def own_broker(request: pytest.FixtureRequest) -> Iterator[EmbeddedBroker]:
    """A broker for one test alone: its tallies must not see other tests' events."""
    with EmbeddedBroker(Region.EU, request.param) as running:
        create_missing(config(running))
        yield running


def test_the_gs1_digital_link_url_of_a_passport_answers_with_it(
    own_broker: EmbeddedBroker, tmp_path: Path
) -> None:
    """PACK-1 made with a GTIN: its passport's URL is GS1 Digital Link, and the worker answers
    that URL with the passport (JSON, HTML for a browser); another GTIN gets a 404 naming it."""
    events = scenarios.reference_with_gtin()
    gtin = scenarios.PACK_GTIN.zfill(14)
    publish(own_broker, events)
    expected = ground_truth(events)
    with Worker(own_broker, tmp_path, store="memory") as worker:
        seen = wait_for(own_broker, {"passports": expected.output("passports")}, worker)
        passport = seen["passports"]["PACK-1"]
        assert passport["gtin"] == gtin
        assert passport["url"] == f"http://127.0.0.1:6066/01/{gtin}/21/PACK-1"
        path = urlsplit(passport["url"]).path
        assert worker.get(path) == worker.get("/passports/PACK-1")
        page = urllib.request.Request(
            f"http://127.0.0.1:{worker.port}{path}",
            headers={"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"},
        )
        with urllib.request.urlopen(page, timeout=10) as answer:
            assert answer.headers["Content-Type"].startswith("text/html")
            assert "<h1>Battery passport PACK-1</h1>" in answer.read().decode()
        other = "09506000134352"  # GS1 Digital Link's example GTIN: not PACK-1's
        with pytest.raises(urllib.error.HTTPError) as refused:
            worker.get(f"/01/{other}/21/PACK-1")
        assert refused.value.code == 404
        assert json.loads(refused.value.read()) == {
            "error": f"battery PACK-1 has GTIN {gtin}, not GTIN {other}"
        }
        with pytest.raises(urllib.error.HTTPError) as missing:
            worker.get(f"/01/{gtin}/21/NO-SUCH")
        assert missing.value.code == 404 and b"battery NO-SUCH not found" in missing.value.read()


def test_rocksdb_state_survives_kill_9_twenty_times(
    own_broker: EmbeddedBroker, tmp_path: Path
) -> None:
    """SIGKILL at random points while events keep arriving, 20 times in a row: every document
    ends equal to the ground truth (tallies included: nothing counted twice)."""
    broker = own_broker
    rng = random.Random(13)
    events = [e for n in range(16) for e in scenarios.random_loop(rng, 400_000 + n * 10_000)]
    rng.shuffle(events)
    expected = ground_truth(events)
    outputs = {o: expected.output(o) for o in STATE_OUTPUTS}
    chunks = [events[i::20] for i in range(20)]
    # a static member: restarted, it takes its partitions back, also on a broker that never
    # drops a dead member (noida)
    worker = Worker(broker, tmp_path, store="rocksdb", instance_id="worker-1")
    mid_work = 0
    try:
        for n, chunk in enumerate(chunks):
            worker.start()  # same data dir, same member id
            worker.wait_ready()
            publish(broker, chunk)
            # somewhere in the middle of processing it: every other kill within 50 ms of the
            # chunk (a window closes every 0.1 s), so that a fast worker still gets caught
            # mid-work, the others anywhere in half a second
            time.sleep(rng.uniform(0.0, 0.5 if n % 2 else 0.05))
            worker.kill()
            so_far = ground_truth([e for c in chunks[: n + 1] for e in c]).output("passports")
            mid_work += published(broker, "passports") != so_far
        worker.start()
        wait_for(broker, outputs, worker, timeout=150)
    finally:
        worker.stop()
    # kills landed with work in flight, not only after the worker had caught up
    assert mid_work >= 5, f"only {mid_work} of 20 kills landed mid-work"
    assert "restored" in worker.log_tail(2000)


def test_two_workers_split_the_partitions_and_take_over_from_a_killed_one(
    own_broker: EmbeddedBroker, tmp_path: Path
) -> None:
    """Two processes of one group end with the documents one worker (the ground truth) ends
    with; killed, one's partitions move to the other, which restores them from the changelog."""
    broker = own_broker
    rng = random.Random(21)
    events = [e for n in range(12) for e in scenarios.random_loop(rng, 500_000 + n * 10_000)]
    rng.shuffle(events)
    first, second = events[: len(events) // 2], events[len(events) // 2 :]
    workers = [Worker(broker, tmp_path / name, store="rocksdb") for name in ("a", "b")]
    try:
        for worker in workers:
            worker.start()
        publish(broker, first)
        partial = ground_truth(first)
        wait_for(broker, {o: partial.output(o) for o in STATE_OUTPUTS}, workers[0], timeout=120)
        held = [set(w.wait_ready()["state_partitions"]) for w in workers]
        assert held[0] and held[1] and not held[0] & held[1], held
        assert held[0] | held[1] == set(range(6)), held

        requires(broker, "evicts_dead_members")  # the survivor must get the dead one's share
        workers[1].kill()
        publish(broker, second)
        expected = ground_truth(events)
        wait_for(broker, {o: expected.output(o) for o in STATE_OUTPUTS}, workers[0], timeout=150)
        assert set(workers[0].wait_ready()["state_partitions"]) == set(range(6))
    finally:
        for worker in workers:
            worker.stop()


def test_a_worker_that_gets_no_partitions_says_so(
    own_broker: EmbeddedBroker, tmp_path: Path
) -> None:
    """Restarted after SIGKILL: where the broker evicts the dead member, the new one gets the
    partitions and is healthy; where it does not (noida), it warns within the bound."""
    broker = own_broker
    # Where dead members are evicted, the restart waits for the session timeout (6 s) first.
    timeout = 30.0 if broker.capabilities.evicts_dead_members else 4.0
    publish(broker, scenarios.reference())
    worker = Worker(broker, tmp_path, store="memory", assignment_timeout=timeout).start()
    try:
        deadline = time.monotonic() + 90
        while (answer := worker.health()) is None or not answer[1]["assigned"]:
            assert time.monotonic() < deadline, f"never assigned: {answer}\n{worker.log_tail()}"
            time.sleep(0.5)
        assert answer[0] == 200 and answer[1]["partitions"] > 0
        worker.kill()
        restarted = time.monotonic()
        worker.start()
        warning = "no partitions assigned after"
        if broker.capabilities.evicts_dead_members:
            deadline = restarted + 90
            while (answer := worker.health()) is None or not answer[1]["assigned"]:
                assert time.monotonic() < deadline, f"not reassigned: {answer}"
                time.sleep(0.5)
            assert answer[0] == 200 and answer[1]["waiting_for_partitions_seconds"] == 0
            assert warning not in worker.log_tail(400)
            return
        bound = restarted + timeout + 15  # the timeout, plus the worker's start-up
        while (answer := worker.health()) is None or answer[0] != 503:
            assert time.monotonic() < bound, f"no 503 within the bound: {answer}"
            time.sleep(0.5)
        assert answer[1]["assigned"] is False and answer[1]["partitions"] == 0
        assert answer[1]["waiting_for_partitions_seconds"] >= timeout
        assert answer[1]["assignment_timeout_seconds"] == timeout
        lines = [line for line in worker.log_tail(400).splitlines() if warning in line]
        assert len(lines) == 1 and "WARNING" in lines[0], worker.log_tail()
    finally:
        worker.stop()
