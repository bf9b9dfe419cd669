"""The HTTP ingestion gateway (the real ``batteryloop gateway`` command) against a real broker:
401, 403, 409, 415, 422, 202 and 503, batches per item, idempotence by event id, and SIGTERM,
with what reached Kafka checked each time."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from connectors.kafka.consume import read_from_start
from connectors.kafka.embedded import EmbeddedBroker, free_port
from connectors.lifetime import start_bound
from schemas.serde import Serde
from schemas.topics import EVENT_TOPICS
from tests.scenarios import MAKER, MINER, RECYCLER, reference

from .conftest import config

MINER_TOKEN = "miner-token-0123456789"
MAKER_TOKEN = "maker-token-0123456789"
RECYCLER_TOKEN = "recycler-token-0123456789"  # a Japanese operator
TOPICS = [t.name for t in EVENT_TOPICS.values()]


@contextlib.contextmanager
def running_gateway(
    broker: EmbeddedBroker | str, tmp_path: Path, *options: str, scheme: str = "http"
) -> Iterator[str]:
    with gateway_process(broker, tmp_path, *options, scheme=scheme) as (url, _):
        yield url


@contextlib.contextmanager
def gateway_process(
    broker: EmbeddedBroker | str, tmp_path: Path, *options: str, scheme: str = "http"
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """The gateway command as a child process; ``broker`` may be a bootstrap nobody serves."""
    bootstrap = broker if isinstance(broker, str) else broker.bootstrap
    port = free_port()
    log_path = tmp_path / f"gateway-{port}.log"
    process = start_bound(
        [
            sys.executable,
            "-m",
            "connectors.cli",
            "gateway",
            "--region",
            "eu",
            "--bootstrap",
            bootstrap,
            "--port",
            str(port),
            *options,
        ],
        stdout=log_path.open("wb"),
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                assert process.poll() is None, log_path.read_text()
                assert time.monotonic() < deadline, "the gateway did not come up"
                time.sleep(0.2)
        yield f"{scheme}://127.0.0.1:{port}", process
    finally:
        process.terminate()
        process.wait(30)


def tokens_file(tmp_path: Path) -> Path:
    tokens = tmp_path / "tokens.toml"
    tokens.write_text(
        f'[tokens]\n"{MINER_TOKEN}" = "{MINER}"\n"{MAKER_TOKEN}" = "{MAKER}"\n'
        f'"{RECYCLER_TOKEN}" = "{RECYCLER}"\n'
    )
    return tokens


@pytest.fixture
def gateway(broker: EmbeddedBroker, tmp_path: Path) -> Iterator[str]:
    with running_gateway(broker, tmp_path, "--tokens", str(tokens_file(tmp_path))) as url:
        yield url


def post(
    url: str, body: Any, token: str | None = None, context: ssl.SSLContext | None = None
) -> tuple[int, dict[str, Any]]:
    status, answer, _ = send(url, json.dumps(body).encode(), "application/json", token, context)
    return status, answer


def send(
    url: str,
    data: bytes,
    content_type: str | None,
    token: str | None = None,
    context: ssl.SSLContext | None = None,
) -> tuple[int, dict[str, Any], dict[str, str]]:
    """POST raw bytes; the status, the JSON answer and the response headers."""
    request = urllib.request.Request(url, data=data, method="POST")
    if content_type is not None:
        request.add_header("Content-Type", content_type)
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=60, context=context) as response:
            return response.status, json.loads(response.read()), dict(response.headers)
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read()), dict(error.headers)


def published_ids(broker: EmbeddedBroker, expected: int, timeout: float = 10) -> list[str]:
    serde = Serde()
    records = read_from_start(config(broker), TOPICS, expected, timeout=timeout)
    return [str(serde.decode_event(m.value()).event_id) for m in records]


def as_json(event: Any) -> Any:
    return json.loads(event.model_dump_json())


def test_the_gateway_authenticates_authorises_validates_and_acknowledges(
    broker: EmbeddedBroker, gateway: str
) -> None:
    before = len(published_ids(broker, 10_000, timeout=3))
    chain = reference()
    ore = next(e for e in chain if e.event_type == "extraction")  # by MINER
    packs = [e for e in chain if e.event_type == "manufacture"]  # by MAKER

    status, body = post(gateway + "/events", as_json(ore))
    assert status == 401 and "credentials required" in body["error"]
    status, body = post(gateway + "/events", as_json(ore), token="not-a-token-at-all")
    assert status == 401 and "unknown bearer token" in body["error"]

    status, body = post(gateway + "/events", as_json(ore), token=MAKER_TOKEN)
    assert status == 403 and MINER in body["error"]

    broken = {**as_json(ore), "mass_kg": "-5", "country": "XX"}
    status, body = post(gateway + "/events", broken, token=MINER_TOKEN)
    assert status == 422
    assert {tuple(e["loc"])[-1] for e in body["errors"]} >= {"mass_kg", "country"}
    relabelled = {**as_json(ore), "region": "JP"}  # a BPNL cannot publish a JP event
    status, body = post(gateway + "/events", relabelled, token=MINER_TOKEN)
    assert status == 422 and body["errors"][0]["type"] == "operator_region"
    assert body["errors"][0]["loc"] == ["extraction", "region"]
    japanese = next(e for e in chain if e.region.value == "JP")  # by RECYCLER
    status, body = post(gateway + "/events", as_json(japanese), token=RECYCLER_TOKEN)
    assert status == 422 and body["errors"][0]["type"] == "wrong_region"
    assert (
        len(published_ids(broker, 10_000, timeout=3)) == before
    )  # nothing of the above reached Kafka

    status, body = post(gateway + "/events", as_json(ore), token=MINER_TOKEN)
    assert status == 202, body
    assert body["accepted"] == 1 and body["event_ids"] == [str(ore.event_id)]
    assert body["duplicate"] is False and body["topic"] == EVENT_TOPICS["extraction"].name
    assert str(ore.event_id) in published_ids(broker, before + 1)

    # Per item: the invalid pack is answered by index, the valid one is published.
    mixed = [as_json(packs[0]), {**as_json(packs[1]), "capacity_kwh": "lots"}]
    status, body = post(gateway + "/events/batch", mixed, token=MAKER_TOKEN)
    assert status == 207, body
    good, bad = body["items"]
    assert (good["index"], good["status"], good["duplicate"]) == (0, 202, False)
    assert good["event_id"] == str(packs[0].event_id)
    assert (bad["index"], bad["status"]) == (1, 422)
    assert bad["errors"][0]["loc"][:3] == [1, "manufacture", "capacity_kwh"]
    assert (body["accepted"], body["refused"]) == (1, 1)
    status, body = post(gateway + "/events/batch", [as_json(p) for p in packs], token=MAKER_TOKEN)
    assert status == 202 and body["accepted"] == len(packs)
    assert [i["duplicate"] for i in body["items"]] == [True] + [False] * (len(packs) - 1)
    after = published_ids(broker, before + 1 + len(packs))
    assert len(after) == before + 1 + len(packs)  # the first pack is in Kafka once
    assert {str(p.event_id) for p in packs} <= set(after)


def test_the_openapi_document_describes_the_endpoints(gateway: str) -> None:
    with urllib.request.urlopen(gateway + "/openapi.json", timeout=10) as response:
        document = json.loads(response.read())
    assert document["openapi"].startswith("3.")
    for path in ("/events", "/events/batch"):
        post_ = document["paths"][path]["post"]
        assert set(post_["responses"]) == {
            "202",
            "207",
            "400",
            "401",
            "403",
            "409",
            "413",
            "415",
            "422",
            "503",
        }
        assert "Retry-After" in post_["responses"]["503"]["headers"]
        assert set(post_["requestBody"]["content"]) == {
            "application/json",
            "application/x-ndjson",
            "application/jsonl",
        }
    batch = document["paths"]["/events/batch"]["post"]["responses"]["207"]
    item = batch["content"]["application/json"]["schema"]["properties"]["items"]["items"]
    assert {"index", "line", "event_id", "status", "reason", "duplicate"} <= set(item["properties"])
    assert "ManufactureEvent" in document["components"]["schemas"]


def _openssl(tmp: Path, *args: str) -> None:
    subprocess.run(["openssl", *args], cwd=tmp, check=True, capture_output=True)


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
def test_client_certificates_authenticate_operators(broker: EmbeddedBroker, tmp_path: Path) -> None:
    key = ["-newkey", "rsa:2048", "-nodes"]
    _openssl(
        tmp_path,
        "req",
        "-x509",
        *key,
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "1",
        "-subj",
        "/CN=batteryloop test CA",
    )
    (tmp_path / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    for name, subject, extra in (
        ("server", "/CN=127.0.0.1", ["-extfile", "san.ext"]),
        ("client", f"/CN={MINER}", []),
    ):
        _openssl(
            tmp_path, "req", *key, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", subject
        )
        _openssl(
            tmp_path,
            "x509",
            "-req",
            "-in",
            f"{name}.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            f"{name}.pem",
            "-days",
            "1",
            *extra,
        )
    tls = ["--tls-cert", str(tmp_path / "server.pem"), "--tls-key", str(tmp_path / "server.key")]
    ca = ["--client-ca", str(tmp_path / "ca.pem")]
    chain = reference()
    ore = next(e for e in chain if e.event_type == "extraction")  # by MINER
    ore = ore.model_copy(update={"event_id": uuid.uuid4()})  # not published by another test
    pack = next(e for e in chain if e.event_type == "manufacture")  # by MAKER
    with running_gateway(broker, tmp_path, *tls, *ca, scheme="https") as url:
        anonymous = ssl.create_default_context(cafile=str(tmp_path / "ca.pem"))
        status, body = post(url + "/events", as_json(ore), context=anonymous)
        assert status == 401
        miner = ssl.create_default_context(cafile=str(tmp_path / "ca.pem"))
        miner.load_cert_chain(tmp_path / "client.pem", tmp_path / "client.key")
        status, body = post(url + "/events", as_json(pack), context=miner)
        assert status == 403
        status, body = post(url + "/events", as_json(ore), context=miner)
        assert status == 202, body
    assert str(ore.event_id) in published_ids(broker, 10_000, timeout=3)


def fresh(event: Any) -> Any:
    """``event`` under a new event id, so that no other test (or backend run) published it."""
    return event.model_copy(update={"event_id": uuid.uuid4()})


def records_of(broker: EmbeddedBroker, event_id: str) -> int:
    return published_ids(broker, 10_000, timeout=3).count(event_id)


def test_only_json_and_json_lines_are_accepted(broker: EmbeddedBroker, gateway: str) -> None:
    chain = reference()
    ore = fresh(next(e for e in chain if e.event_type == "extraction"))
    data = json.dumps(as_json(ore)).encode()
    for content_type in ("text/plain", "application/xml", None):
        status, body, headers = send(gateway + "/events", data, content_type, MINER_TOKEN)
        assert status == 415, (content_type, body)
        assert body["accepted_types"] == [
            "application/json",
            "application/x-ndjson",
            "application/jsonl",
        ]
        assert "application/x-ndjson" in headers["Accept-Post"]
    assert records_of(broker, str(ore.event_id)) == 0

    status, body, _ = send(gateway + "/events", b"{not json", "application/json", MINER_TOKEN)
    assert status == 400 and "not JSON" in body["error"]

    # The same event as JSON with a charset, as JSON Lines of both names, and in an array on
    # /events: one record, the rest answered as duplicates.
    typed = "application/json; charset=utf-8"
    status, body, _ = send(gateway + "/events", data, typed, MINER_TOKEN)
    assert status == 202 and body["duplicate"] is False
    for content_type in ("application/x-ndjson", "application/jsonl"):
        status, body, _ = send(gateway + "/events/batch", data + b"\n", content_type, MINER_TOKEN)
        assert status == 202 and body["items"][0]["duplicate"] is True, body
        assert body["items"][0]["line"] == 1
    status, body = post(gateway + "/events", [as_json(ore)], token=MINER_TOKEN)
    assert status == 202 and body["duplicates"] == 1
    assert records_of(broker, str(ore.event_id)) == 1


def test_a_repeated_event_id_is_published_once(broker: EmbeddedBroker, gateway: str) -> None:
    chain = reference()
    ore = next(e for e in chain if e.event_type == "extraction")
    sequential, concurrent = fresh(ore), fresh(ore)

    answers = [post(gateway + "/events", as_json(sequential), token=MINER_TOKEN) for _ in range(4)]
    assert [s for s, _ in answers] == [202] * 4
    assert [b["duplicate"] for _, b in answers] == [False, True, True, True]
    receipts = {(b["topic"], b["partition"], b["offset"]) for _, b in answers}
    assert len(receipts) == 1  # every answer is the original result

    with ThreadPoolExecutor(4) as pool:
        answers = list(
            pool.map(
                lambda _: post(gateway + "/events", as_json(concurrent), token=MINER_TOKEN),
                range(4),
            )
        )
    assert [s for s, _ in answers] == [202] * 4
    assert sorted(b["duplicate"] for _, b in answers) == [False, True, True, True]
    assert len({(b["partition"], b["offset"]) for _, b in answers}) == 1

    # Twice in one batch: once published, once a duplicate.
    twice = fresh(ore)
    status, body = post(gateway + "/events/batch", [as_json(twice)] * 2, token=MINER_TOKEN)
    assert status == 202 and body["duplicates"] == 1

    # The same id with other content is a conflict, not a silent duplicate.
    other = {**as_json(sequential), "mass_kg": str(ore.mass_kg + 1)}
    status, body = post(gateway + "/events", other, token=MINER_TOKEN)
    assert status == 409 and "other content" in body["error"]

    # The same content in other JSON (trailing zeros, the same instant in another zone) is the
    # same event: a duplicate, as its derived event id would say.
    moved = sequential.occurred_at.astimezone(timezone(timedelta(hours=9)))
    same = {
        **as_json(sequential),
        "mass_kg": f"{sequential.mass_kg:.3f}0",
        "occurred_at": moved.isoformat(),
    }
    status, body = post(gateway + "/events", same, token=MINER_TOKEN)
    assert status == 202 and body["duplicate"] is True, body

    for event in (sequential, concurrent, twice):
        assert records_of(broker, str(event.event_id)) == 1


def test_a_json_lines_batch_is_answered_per_line(broker: EmbeddedBroker, gateway: str) -> None:
    chain = reference()
    ore = fresh(next(e for e in chain if e.event_type == "extraction"))  # by MINER
    pack = fresh(next(e for e in chain if e.event_type == "manufacture"))  # by MAKER
    lines = [
        json.dumps(as_json(ore)),
        "",
        "{this is not json",
        json.dumps(as_json(pack)),
        json.dumps({**as_json(fresh(ore)), "country": "XX"}),
        json.dumps({**as_json(fresh(ore)), "region": "JP"}),
    ]
    body_bytes = "\n".join(lines).encode() + b"\n\xff\xfe\n"
    status, body, _ = send(
        gateway + "/events/batch", body_bytes, "application/x-ndjson", MINER_TOKEN
    )
    assert status == 207, body
    items = body["items"]
    assert [(i["index"], i["line"], i["status"]) for i in items] == [
        (0, 1, 202),
        (1, 3, 422),
        (2, 4, 403),
        (3, 5, 422),
        (4, 6, 422),
        (5, 7, 422),
    ]
    assert "line 3 is not JSON" in items[1]["reason"]
    assert items[1]["errors"][0]["type"] == "json_invalid"
    assert MAKER in items[2]["reason"]
    assert items[3]["errors"][0]["loc"][0] == 3
    # an EU operator's event marked JP breaks the model's rule before the gateway's own check
    assert items[4]["errors"][0]["type"] == "operator_region"
    assert "not UTF-8" in items[5]["reason"]
    assert (body["accepted"], body["refused"], body["unacknowledged"]) == (1, 5, 0)
    assert records_of(broker, str(ore.event_id)) == 1
    assert records_of(broker, str(pack.event_id)) == 0


def _unreachable_gateway(tmp_path: Path, *options: str) -> Any:
    nobody = f"127.0.0.1:{free_port()}"  # a closed port: no broker ever answers
    return gateway_process(nobody, tmp_path, "--tokens", str(tokens_file(tmp_path)), *options)


def test_an_unreachable_cluster_is_answered_503_within_the_delivery_timeout(
    tmp_path: Path,
) -> None:
    ore = fresh(next(e for e in reference() if e.event_type == "extraction"))
    data = json.dumps(as_json(ore)).encode()
    with _unreachable_gateway(tmp_path, "--delivery-timeout", "2") as (url, _):
        for _attempt in range(2):  # a 503 is not remembered: the retry tries again
            started = time.monotonic()
            status, body, headers = send(url + "/events", data, "application/json", MINER_TOKEN)
            elapsed = time.monotonic() - started
            assert status == 503, body
            assert headers["Retry-After"] == "2"
            assert "did not acknowledge" in body["error"]
            # librdkafka scans for timed-out records once a second.
            assert 1.5 < elapsed < 2 + 1.5, elapsed
        status, body, headers = send(
            url + "/events/batch", b"[" + data + b"]", "application/json", MINER_TOKEN
        )
        assert status == 503 and headers["Retry-After"] == "2"
        assert body["items"][0]["status"] == 503 and body["unacknowledged"] == 1


def test_sigterm_stops_the_gateway_within_the_grace_period(tmp_path: Path) -> None:
    ore = fresh(next(e for e in reference() if e.event_type == "extraction"))
    data = json.dumps(as_json(ore)).encode()
    grace = 3.0
    options = ("--delivery-timeout", "60", "--grace-seconds", str(grace))
    with (
        _unreachable_gateway(tmp_path, *options) as (url, process),
        ThreadPoolExecutor(1) as pool,
    ):
        waiting = pool.submit(send, url + "/events", data, "application/json", MINER_TOKEN)
        time.sleep(1)  # the request is now waiting for an acknowledgement
        assert not waiting.done()
        stopped = time.monotonic()
        process.send_signal(signal.SIGTERM)
        process.wait(grace + 10)
        took = time.monotonic() - stopped
        status, body, headers = waiting.result(timeout=5)
    assert took < grace + 1.5, f"exit took {took:.2f} s"
    assert status == 503 and "stopping" in body["error"] and headers["Retry-After"]
    print(f"SIGTERM with a request in flight, broker unreachable: exit after {took:.2f} s")
