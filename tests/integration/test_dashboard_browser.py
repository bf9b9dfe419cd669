"""The worker's dashboard in a real browser (headless Debian ``chromium`` driven by Playwright):
a small known scenario through a real worker, the charts drawn with the tallies' numbers, the
mirror's flows from a checkpoint, a battery looked up to its passport page, and a screenshot
kept as a test artefact (``test-artifacts/`` or ``$BATTERYLOOP_TEST_ARTIFACTS``).

Without chromium the test is skipped, naming the reason; with ``CI`` set it fails instead, so
CI cannot pass without having run it (``.ci/run`` installs chromium)."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from connectors.kafka import clients
from connectors.kafka.admin import create_missing
from connectors.kafka.embedded import EmbeddedBroker
from connectors.mirror.replication import Flows, checkpoint_key, checkpoint_value
from schemas.topics import MIRROR_CHECKPOINT_TOPIC
from schemas.values import Region
from streams.domain.summaries import ledger_loops, recovery_by_metal, recycled_content_by_metal
from tests import scenarios

from .workers import Worker, ground_truth, publish, wait_for

ARTIFACTS = Path(os.environ.get("BATTERYLOOP_TEST_ARTIFACTS", "test-artifacts"))
#: Without these Chromium keeps trying to reach Google's services from a closed network.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        reason = "no chromium on PATH (Debian: apt-get install chromium)"
        if os.environ.get("CI"):
            pytest.fail(f"{reason}; CI must run the browser test")
        pytest.skip(reason)
    return found


@pytest.fixture
def page() -> Iterator[Any]:
    executable = _chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=executable, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield browser.new_page(viewport={"width": 1280, "height": 1100})
        finally:
            browser.close()


def _drawn(page: Any, chart: str) -> dict[str, dict[str, str]]:
    """metal -> the share a bar shows and the limits drawn beside it, from the SVG."""
    return page.evaluate(
        """(chart) => {
            const out = {};
            for (const g of document.querySelectorAll(`#${chart} g.metal`)) {
                const metal = g.dataset.metal, drawn = {};
                drawn.share = g.querySelector("rect.bar").dataset.value;
                for (const line of g.querySelectorAll("line.limit")) {
                    drawn[line.dataset.limit] = line.dataset.value;
                }
                out[metal] = drawn;
            }
            return out;
        }""",
        chart,
    )


def _expected(by_metal: dict[str, dict[str, Any]], limits: tuple[str, str]) -> dict[str, Any]:
    return {m: {"share": v["share"], **{k: v[k] for k in limits}} for m, v in by_metal.items()}


def test_the_dashboard_draws_the_scenario_and_looks_up_a_passport(
    broker: EmbeddedBroker, page: Any, tmp_path: Path
) -> None:
    events = scenarios.reference() + scenarios.border_loop()
    publish(broker, events)
    expected = ground_truth(events, Region.EU)
    recycled = recycled_content_by_metal(expected.output("recycled-content").values())
    recovery = recovery_by_metal(expected.output("recovery").values())
    # hand-worked in tests/scenarios.py: 6 of 40 kg nickel recycled (15 %), 6 of 8 kg recovered
    assert recycled["nickel"]["share"] == "0.150000"
    assert recovery["nickel"]["share"] == "0.750000"
    loops = ledger_loops(expected.output("lots"))
    assert loops["recovered_crossing"]["EU->JP"]  # the border loop crossed

    with Worker(broker, tmp_path, store="memory") as worker:
        wait_for(
            broker,
            {o: expected.output(o) for o in ("recycled-content", "recovery")},
            worker,
        )
        # the JP mirror's checkpoint on this cluster, in the format it writes: its topic
        # appears after the worker started, as it does when the partner's mirror comes up
        create_missing({"bootstrap.servers": broker.bootstrap}, [MIRROR_CHECKPOINT_TOPIC])
        flows = Flows(shared=41, filtered={"uncertified": 3, "not_shared": 2}, redacted=57)
        producer = clients.producer({"bootstrap.servers": broker.bootstrap})
        clients.produce(
            producer,
            MIRROR_CHECKPOINT_TOPIC.name,
            checkpoint_value(46, 41, flows),
            checkpoint_key(Region.JP, "batteryloop.events.shipment", 0),
            partition=0,
        )
        assert producer.flush(30) == 0

        page.goto(f"http://127.0.0.1:{worker.port}/")  # redirects to /dashboard
        assert page.url.endswith("/dashboard")
        page.wait_for_selector("#status[data-state=live]", timeout=30_000)
        assert page.text_content("#region") == "EU"
        want_recycled = _expected(recycled, ("minimum_2031", "minimum_2036"))
        want_recovery = _expected(recovery, ("target_2027", "target_2031"))
        shown: dict[str, Any] = {}
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # the page polls; the feed reads as records come
            shown = {
                "recycled": _drawn(page, "recycled"),
                "recovery": _drawn(page, "recovery"),
                "flows": page.evaluate(
                    """() => Object.fromEntries([...document.querySelectorAll(
                        '[data-direction="jp-to-eu"] [data-flow]')].map(
                        (s) => [s.dataset.flow, Number(s.dataset.value)]))"""
                ),
                "loops": page.text_content("#loops") or "",
            }
            if (
                shown["recycled"] == want_recycled
                and shown["recovery"] == want_recovery
                and shown["flows"]
                and "EU->JP" in shown["loops"]
            ):
                break
            time.sleep(0.5)
        assert shown["recycled"] == want_recycled
        assert shown["recovery"] == want_recovery
        assert shown["flows"] == {"shared": 41, "filtered": 5, "redacted": 57}
        assert "EU->JP" in shown["loops"] and "nickel" in shown["loops"]
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        shot = ARTIFACTS / f"dashboard-{broker.backend}.png"
        page.screenshot(path=str(shot), full_page=True)
        assert shot.stat().st_size > 10_000

        page.fill("#battery", "PACK-1")
        page.click("#lookup button")
        page.wait_for_url("**/passport/PACK-1")
        assert page.text_content("h1") == "Battery passport PACK-1"
        assert "REF-PACK" in (page.text_content("body") or "")
