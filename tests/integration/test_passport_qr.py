"""``batteryloop passport ID --qr FILE`` against a real broker: the QR code it writes, PNG or
SVG, decodes (zxing-cpp) to the URL the passport document carries (the GS1 Digital Link one
for a battery with a GTIN)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import zxingcpp
from PIL import Image

from connectors.kafka import clients
from connectors.kafka.embedded import EmbeddedBroker
from schemas.events import Event
from schemas.topics import DOCUMENT_TOPICS
from streams.domain.entities.effects import Config
from streams.domain.local import LocalLedger
from tests import scenarios
from tests.connectors.exports.test_passport_page import _rasterized

BASE = "https://dpp.example/eu"


def _published_passport(
    broker: EmbeddedBroker, events: list[Event] | None = None
) -> dict[str, object]:
    """PACK-1's passport as the processors compute it from ``events`` (the reference scenario
    by default), published on the passports topic."""
    ledger = LocalLedger(Config(grace_ms=60_000, passport_base_url=BASE))
    ledger.submit(scenarios.reference() if events is None else events)
    ledger.run()
    passport: dict[str, object] = ledger.output("passports")["PACK-1"]
    producer = clients.producer({"bootstrap.servers": broker.bootstrap})
    clients.produce(
        producer, DOCUMENT_TOPICS["passports"].name, json.dumps(passport).encode(), b"PACK-1"
    )
    assert producer.flush(30) == 0
    return passport


@pytest.mark.parametrize(
    ("suffix", "gtin"), [(".png", None), (".svg", None), (".png", scenarios.PACK_GTIN)]
)
def test_the_qr_code_written_decodes_to_the_passport_url(
    broker: EmbeddedBroker, tmp_path: Path, suffix: str, gtin: str | None
) -> None:
    if gtin is None:
        passport = _published_passport(broker)
        assert passport["url"] == f"{BASE}/passport/PACK-1"
    else:  # a battery with a GTIN: the GS1 Digital Link URL, the GTIN as 14 digits
        passport = _published_passport(broker, scenarios.reference_with_gtin(gtin))
        assert passport["url"] == f"{BASE}/01/{gtin.zfill(14)}/21/PACK-1"
    path = tmp_path / f"qr{suffix}"
    result = subprocess.run(
        [sys.executable, "-m", "connectors.cli", "passport", "PACK-1", "--region", "eu"]
        + ["--bootstrap", broker.bootstrap, "--qr", str(path), "--timeout", "30"],
        capture_output=True,
        text=True,
        timeout=120,
        env=os.environ.copy(),
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout)["url"] == passport["url"]  # stdout stays the document
    assert f"wrote the QR code of {passport['url']}" in result.stderr
    image = Image.open(path) if suffix == ".png" else _rasterized(path.read_text())
    assert [r.text for r in zxingcpp.read_barcodes(image.convert("L"))] == [passport["url"]]


def test_an_unknown_qr_extension_is_refused_before_reading(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "connectors.cli", "passport", "PACK-1", "--region", "eu"]
        + ["--bootstrap", "127.0.0.1:1", "--qr", str(tmp_path / "qr.gif")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2 and ".png or an .svg" in result.stderr
