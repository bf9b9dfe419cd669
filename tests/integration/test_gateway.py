"""The HTTP ingestion gateway (the real ``batteryloop gateway`` command) against a real broker:
401, 403, 422 and 202, with what reached Kafka checked each time."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
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
    broker: EmbeddedBroker, tmp_path: Path, *options: str, scheme: str = "http"
) -> Iterator[str]:
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
            broker.bootstrap,
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
        yield f"{scheme}://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(30)


@pytest.fixture
def gateway(broker: EmbeddedBroker, tmp_path: Path) -> Iterator[str]:
    tokens = tmp_path / "tokens.toml"
    tokens.write_text(
        f'[tokens]\n"{MINER_TOKEN}" = "{MINER}"\n"{MAKER_TOKEN}" = "{MAKER}"\n'
        f'"{RECYCLER_TOKEN}" = "{RECYCLER}"\n'
    )
    with running_gateway(broker, tmp_path, "--tokens", str(tokens)) as url:
        yield url


def post(
    url: str, body: Any, token: str | None = None, context: ssl.SSLContext | None = None
) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=30, context=context) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


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
    assert status == 202 and body == {"accepted": 1, "event_ids": [str(ore.event_id)]}
    assert str(ore.event_id) in published_ids(broker, before + 1)

    mixed = [as_json(packs[0]), {**as_json(packs[1]), "capacity_kwh": "lots"}]
    status, body = post(gateway + "/events/batch", mixed, token=MAKER_TOKEN)
    assert status == 422 and body["errors"][0]["loc"][:3] == [1, "manufacture", "capacity_kwh"]
    assert "none published" in body["error"]
    status, body = post(gateway + "/events/batch", [as_json(p) for p in packs], token=MAKER_TOKEN)
    assert status == 202 and body["accepted"] == len(packs)
    after = published_ids(broker, before + 1 + len(packs))
    assert len(after) == before + 1 + len(packs)  # the refused batch left nothing behind
    assert {str(p.event_id) for p in packs} <= set(after)


def test_the_openapi_document_describes_the_endpoints(gateway: str) -> None:
    with urllib.request.urlopen(gateway + "/openapi.json", timeout=10) as response:
        document = json.loads(response.read())
    assert document["openapi"].startswith("3.")
    for path in ("/events", "/events/batch"):
        assert set(document["paths"][path]["post"]["responses"]) == {
            "202",
            "401",
            "403",
            "422",
            "503",
        }
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
