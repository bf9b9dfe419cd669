"""The README's main command, ``batteryloop demo``, run for real: what it shows, and that it leaves
no process behind, also when interrupted."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from decimal import Decimal
from pathlib import Path
from typing import Any

DEMO = [sys.executable, "-m", "connectors.cli", "demo"]


def _leftovers(stderr: str) -> list[str]:
    """Processes still running that the demo started: its brokers (by their ports) and its
    workers (by their scratch directory)."""
    ports = re.findall(r"broker on 127\.0\.0\.1:(\d+)", stderr)
    marks = [f"127.0.0.1:{p}" for p in ports] + ["batteryloop-demo-"]
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if any(mark in cmdline for mark in marks) and " demo" not in cmdline:
            found.append(f"{proc.name}: {cmdline[:160]}")
    return found


def test_the_demo_shows_the_whole_system_and_leaves_nothing_running() -> None:
    run = subprocess.run(
        [*DEMO, "--json", "--batteries", "30"], capture_output=True, text=True, timeout=400
    )
    assert run.returncode == 0, run.stderr[-4000:]
    summary = json.loads(run.stdout)
    assert summary["complete"]
    for region, r in summary["regions"].items():
        assert r["bad_records_published"] > 0
        assert r["dead_letters"] == r["bad_records_published"], region
        assert r["passports"] > 30
        shares = [
            Decimal(m["recycled_share"])
            for tally in r["recycled_content"]
            for m in tally["metals"].values()
            if m["recycled_share"] is not None
        ]
        assert shares and max(shares) > 0, f"{region}: no recycled content"
        assert r["open_alerts"].get("outflow", 0) >= 1, region
        # the EU recycler's attempt to sell black mass outside the OECD; Japan's ledger holds
        # the mirrored shipment and lot, and judges it alike
        illegal = r["legality"]["illegal_exports"]
        assert [i["subject"] for i in illegal] == ["lot/EU-BM-0000"], region
        assert r["recovery"], region
        # the same disclosure rules for every maker: makers outside the alliance (LEI or USCC)
        # disclosing everything and not, and the imports of those that do not alerted
        disclosure = r["disclosure"]
        outside = [m for m in disclosure["makers"] if m["outside_alliance"]]
        assert any(m["batteries_met"] == m["batteries"] > 0 for m in outside), region
        assert any(m["batteries_met"] < m["batteries"] for m in outside), region
        assert "CN" in disclosure["by_country"], region
        imports = disclosure["non_compliant_imports"]
        assert imports and all(i["missing"] for i in imports), region
        assert {i["manufacturer"] for i in imports} <= {m["manufacturer"] for m in outside}
    # the loops cross the border both ways, and both regions' ledgers say the same of them
    alliance = summary["alliance"]
    assert alliance["agree"], alliance
    for ledger in alliance["ledgers"].values():
        for direction, refined_in in (("EU->JP", "JP"), ("JP->EU", "EU")):
            crossed = ledger["recovered_crossing"][direction]
            assert Decimal(crossed["nickel"]) > 0, direction
            assert ledger["refined_from_partner_recycling"][refined_in] == crossed
    for direction in ("eu-to-jp", "jp-to-eu"):
        mirror = summary["mirrors"][direction]
        assert mirror["mirrored"] > 0 and mirror["confidential_values_removed"] > 0, direction
        assert mirror["filtered"].get("invalid", 0) > 0  # the bad records were not shared
    time.sleep(0.5)
    assert _leftovers(run.stderr) == []


def test_ctrl_c_stops_the_demo_and_everything_it_started() -> None:
    demo = subprocess.Popen(
        [*DEMO, "--batteries", "30"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    stderr = ""
    try:
        assert demo.stderr is not None
        deadline = time.monotonic() + 120
        while "mirror jp-to-eu started" not in stderr:
            assert time.monotonic() < deadline, stderr
            line = demo.stderr.readline()
            assert line, stderr
            stderr += line
        demo.send_signal(signal.SIGINT)
        out, rest = demo.communicate(timeout=90)
        stderr += rest
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()
    assert demo.returncode == 130, stderr[-3000:]
    assert "interrupted" in out + stderr
    time.sleep(0.5)
    assert _leftovers(stderr) == []


def _get(url: str) -> tuple[str, bytes]:
    with urllib.request.urlopen(url, timeout=10) as r:
        return r.headers.get_content_type(), r.read()


def test_serve_keeps_both_regions_up_with_their_dashboards_until_ctrl_c(tmp_path: Path) -> None:
    """``demo --serve``: the summary, then each region's dashboard URL; each dashboard shows
    its region's tallies and the flows the partner's mirror brought in, as many as the summary
    says it mirrored; Ctrl-C (to the whole process group, as a terminal sends it) ends it
    cleanly, leaving nothing running."""
    errors = tmp_path / "stderr.log"
    with errors.open("w") as err:
        demo = subprocess.Popen(
            [*DEMO, "--batteries", "20", "--serve"],
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
            start_new_session=True,
        )
    try:
        assert demo.stdout is not None
        out = ""
        deadline = time.monotonic() + 400
        while len(re.findall(r"^  (EU|JP): (http://\S+/dashboard)$", out, re.M)) < 2:
            assert time.monotonic() < deadline, out
            line = demo.stdout.readline()
            assert line, out + errors.read_text()[-3000:]
            out += line
        urls = dict(re.findall(r"^  (EU|JP): (http://\S+/dashboard)$", out, re.M))
        mirrored = {
            d: int(n) for d, n in re.findall(r"^(eu-to-jp|jp-to-eu): (\d+) mirrored", out, re.M)
        }
        assert set(urls) == {"EU", "JP"} and set(mirrored) == {"eu-to-jp", "jp-to-eu"}, out
        for region, url in urls.items():
            kind, body = _get(url)
            assert kind == "text/html" and b"/dashboard/dashboard.js" in body
            incoming = "jp-to-eu" if region == "EU" else "eu-to-jp"
            data: dict[str, Any] = {}
            until = time.monotonic() + 60
            while time.monotonic() < until:
                data = json.loads(_get(url + "/data")[1])
                flows = data["flows"].get(incoming, {}).get("total", {})
                if flows.get("shared") == mirrored[incoming] and data["recycled_content"]:
                    break
                time.sleep(1)
            assert data["region"] == region
            assert data["flows"][incoming]["total"]["shared"] == mirrored[incoming], data["flows"]
            assert data["flows"][incoming]["total"]["filtered"].get("invalid", 0) > 0
            assert data["recycled_content"] and data["recovery"], data
            assert data["open_alerts"].get("outflow", 0) >= 1
        os.killpg(demo.pid, signal.SIGINT)
        rest, _ = demo.communicate(timeout=120)
    finally:
        if demo.poll() is None:
            os.killpg(demo.pid, signal.SIGKILL)
            demo.wait()
    stderr = errors.read_text()
    assert demo.returncode == 0, stderr[-3000:]
    assert "stopped the mirrors, the processors and the brokers" in stderr
    time.sleep(0.5)
    assert _leftovers(stderr) == []
