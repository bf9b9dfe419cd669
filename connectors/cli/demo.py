"""The embedded two-region demo: everything batteryloop is, running, in one command.

It starts an embedded broker per region, provisions the topics, starts the stream processors of
each region (a ``batteryloop worker`` child process each), the mirror in both directions (in
this process, one thread per direction, under the shipped policies and a secret made up for the
run), publishes the simulated supply chain (``simulator.py``) with its bad records, waits until
everything is processed (watching the outputs, not a fixed sleep) and prints a summary; with
``serve`` it then keeps both regions running and prints their dashboard URLs until Ctrl-C. Nothing
it started outlives it: children die with it (PR_SET_PDEATHSIG), and every exit path, Ctrl-C
included, stops them in order.
"""

from __future__ import annotations

import json
import logging
import secrets
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, TextIO

from prometheus_client import CollectorRegistry

from connectors.cli.processes import WorkerProcess
from connectors.ingest.simulator import publish, simulate
from connectors.kafka.admin import create_missing
from connectors.kafka.consume import assign_from_start, reader
from connectors.kafka.embedded import two_regions
from connectors.mirror import policy as sharing
from connectors.mirror.agent import MirrorAgent, MirrorMetrics, Totals
from connectors.mirror.options import MirrorOptions
from schemas.topics import DEAD_LETTER_TOPIC, DOCUMENT_TOPICS
from schemas.values import ALLIANCE_COUNTRIES, Region, operator_id_platform
from streams.domain.quantities import share
from streams.domain.summaries import (
    ledger_loops,
    open_alerts,
    recovery_rows,
    recycled_content_rows,
)

WATCHED = ("passports", "lots", "recycled-content", "recovery", "disclosure", "alerts")


@dataclass
class Outputs:
    """What one cluster's processors have published so far, read as it arrives."""

    documents: dict[str, dict[bytes, Any]] = field(default_factory=lambda: {n: {} for n in WATCHED})
    dead_letters: int = 0
    changed_at: float = field(default_factory=time.monotonic)


class Watcher:
    """A consumer per cluster on the document topics and the dead-letter topic, from the
    beginning, kept open for the whole demo so each look costs only what is new."""

    def __init__(self, config: dict[str, str]) -> None:
        self.consumer = reader(config)
        topics = [DOCUMENT_TOPICS[n].name for n in WATCHED] + [DEAD_LETTER_TOPIC.name]
        assign_from_start(self.consumer, topics, self.consumer.list_topics(timeout=10))
        self.names = {DOCUMENT_TOPICS[n].name: n for n in WATCHED}
        self.outputs = Outputs()

    def poll(self) -> Outputs:
        while True:
            batch = self.consumer.consume(2000, 0.05)
            if not batch:
                return self.outputs
            self.outputs.changed_at = time.monotonic()
            for m in batch:
                if m.error() is not None:
                    continue
                topic, key, value = m.topic(), m.key(), m.value()
                if topic == DEAD_LETTER_TOPIC.name:
                    self.outputs.dead_letters += 1
                elif topic is not None and key is not None and value is not None:
                    self.outputs.documents[self.names[topic]][key] = json.loads(value)

    def close(self) -> None:
        self.consumer.close()


def run_demo(
    backend: str,
    out: TextIO,
    as_json: bool = False,
    batteries: int = 100,
    years: int = 1,
    seed: int = 2031,
    timeout: float = 300.0,
    serve: bool = False,
) -> int:
    """Run the demo and print its summary; with ``serve``, then keep the brokers, the
    processors and the mirrors running and print each region's dashboard URL, until Ctrl-C
    (or SIGTERM). Returns 0 when everything was processed in time (and, serving, nothing
    stopped before Ctrl-C), 1 otherwise."""
    started = time.monotonic()
    log = sys.stderr

    def step(text: str) -> None:
        log.write(f"[{time.monotonic() - started:5.1f} s] {text}\n")
        log.flush()

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    sim = simulate(batteries, years, seed)
    step(
        f"simulated {len(sim.events)} events and {len(sim.bad)} bad records "
        f"({batteries} new packs per region, seed {seed})"
    )
    stop = threading.Event()
    workers: list[WorkerProcess] = []
    agents: dict[str, MirrorAgent] = {}
    threads: list[threading.Thread] = []
    watchers: dict[Region, Watcher] = {}
    with (
        tempfile.TemporaryDirectory(prefix="batteryloop-demo-") as scratch,
        two_regions(backend) as brokers,
    ):
        try:
            configs = {r: {"bootstrap.servers": b.bootstrap} for r, b in brokers.items()}
            for region, broker in brokers.items():
                created, _ = create_missing(configs[region])
                step(
                    f"{region.value}: {backend} broker on {broker.bootstrap}, {len(created)} topics"
                )
            for region, broker in brokers.items():
                worker = WorkerProcess(region, broker.bootstrap, Path(scratch) / region.value)
                workers.append(worker.start())
                step(f"{region.value}: stream processors started (pid {worker.pid})")
            secret = secrets.token_bytes(32)
            for source, target in ((Region.EU, Region.JP), (Region.JP, Region.EU)):
                direction = sharing.direction(source.value, target.value)
                options = MirrorOptions(
                    sharing.load(sharing.shipped(direction), secret),
                    configs[source],
                    configs[target],
                    grace=3.0,
                    checkpoint_interval=0.5,
                )
                agent = MirrorAgent(options, MirrorMetrics(CollectorRegistry()))
                thread = threading.Thread(target=agent.run, args=(stop,), name=direction)
                thread.start()
                agents[direction] = agent
                threads.append(thread)
                step(
                    f"mirror {direction} started under connectors/mirror/policies/{direction}.toml"
                )
            published = publish(sim, configs, err=log)
            step("published; waiting until the processors and the mirrors are through")
            for region in Region:  # one by one: those opened are closed if a later one fails
                watchers[region] = Watcher(configs[region])
            done = _wait(sim, agents, threads, watchers, workers, started + timeout, step)
            summary = _summary(backend, sim, published.bad, agents, watchers, started, done)
            if serve:
                _report(summary, out, as_json)
                done = _serve(workers, threads, out, step) and done
        finally:
            stop.set()
            for thread in threads:
                thread.join(30)
            for watcher in watchers.values():
                watcher.close()
            for worker in workers:
                worker.stop()
            step("stopped the mirrors, the processors and the brokers")
    if not serve:
        _report(summary, out, as_json)
    return 0 if done else 1


def _report(summary: dict[str, Any], out: TextIO, as_json: bool) -> None:
    if as_json:
        out.write(json.dumps(summary, indent=2) + "\n")
    else:
        _print_summary(summary, out)
    out.flush()


def _serve(
    workers: list[WorkerProcess],
    threads: list[threading.Thread],
    out: TextIO,
    step: Callable[[str], None],
) -> bool:
    """Keep everything running and say where each region's dashboard is, until Ctrl-C;
    False when a worker or a mirror stopped on its own first."""
    out.write("\ndashboards (Ctrl-C stops the demo):\n")
    for worker in workers:
        out.write(f"  {worker.region.value}: http://127.0.0.1:{worker.port}/dashboard\n")
    out.flush()
    try:
        while True:
            if _stopped(workers, threads, step):
                return False
            time.sleep(0.5)
    except KeyboardInterrupt:
        step("Ctrl-C: stopping")
        return True


def _stopped(workers: list[WorkerProcess], threads: list[threading.Thread], step: Any) -> bool:
    """Whether a region's processors or a mirror stopped (said with ``step``)."""
    for worker in workers:
        if not worker.alive:
            step(f"{worker.region.value} processors exited:\n{worker.log_tail()}")
            return True
    for thread in threads:
        if not thread.is_alive():
            step(f"mirror {thread.name} stopped on an error (see the log above)")
            return True
    return False


def _wait(
    sim: Any,
    agents: dict[str, MirrorAgent],
    threads: list[threading.Thread],
    watchers: dict[Region, Watcher],
    workers: list[WorkerProcess],
    deadline: float,
    step: Any,
) -> bool:
    """Until every passport and dead letter is out, each mirror has decided every record of
    its source, and the outputs have been quiet for a while (alerts after a grace period)."""
    batteries = {
        r: sum(1 for e in sim.by_region(r) if e.event_type == "manufacture") for r in Region
    }
    bad = Counter(b.region for b in sim.bad)
    records = {r: len(sim.by_region(r)) + bad[r] for r in Region}
    last = 0.0
    while time.monotonic() < deadline:
        if _stopped(workers, threads, step):
            return False
        outputs = {r: w.poll() for r, w in watchers.items()}
        parts, complete = [], True
        for r in Region:
            direction = sharing.direction(r.value, r.partner.value)
            t = agents[direction].totals
            decided = t.mirrored + t.filtered + t.skipped
            passports = len(outputs[r].documents["passports"])
            parts.append(
                f"{r.value}: passports {passports}/{batteries[r]}, dead letters "
                f"{outputs[r].dead_letters}/{bad[r]}, {direction} {decided}/{records[r]}"
            )
            complete &= (
                passports >= batteries[r]
                and outputs[r].dead_letters >= bad[r]
                and decided >= records[r]
                and t.waiting == 0
            )
        if complete and time.monotonic() - max(o.changed_at for o in outputs.values()) > 8:
            step("; ".join(parts))
            return True
        if time.monotonic() - last > 3:
            step("; ".join(parts))
            last = time.monotonic()
        time.sleep(0.5)
    step("gave up waiting: the summary below is incomplete")
    return False


def _summary(
    backend: str,
    sim: Any,
    bad: dict[str, int],
    agents: dict[str, MirrorAgent],
    watchers: dict[Region, Watcher],
    started: float,
    complete: bool,
) -> dict[str, Any]:
    regions: dict[str, Any] = {}
    for region, watcher in watchers.items():
        docs = watcher.poll().documents
        alerts = open_alerts(docs["alerts"].values())
        regions[region.value] = {
            "events_published": len(sim.by_region(region)),
            "bad_records_published": bad.get(region.value, 0),
            "dead_letters": watcher.outputs.dead_letters,
            "passports": len(docs["passports"]),
            "recycled_content": recycled_content_rows(docs["recycled-content"].values()),
            "recovery": recovery_rows(docs["recovery"].values()),
            "open_alerts": alerts,
            "outflows": [
                a["message"]
                for a in docs["alerts"].values()
                if a["kind"] == "outflow" and a.get("status") == "open"
            ],
            "legality": legality_summary(docs["alerts"].values()),
            "disclosure": disclosure_summary(docs["disclosure"].values(), docs["alerts"].values()),
        }
    mirrors = {direction: mirror_summary(agent.totals) for direction, agent in agents.items()}
    return {
        "backend": backend,
        "complete": complete,
        "regions": regions,
        "alliance": alliance_summary(
            {
                region.value: watcher.outputs.documents["lots"]
                for region, watcher in watchers.items()
            }
        ),
        "mirrors": mirrors,
        "seconds": round(time.monotonic() - started, 1),
    }


def alliance_summary(lots_by_region: dict[str, dict[bytes, Any]]) -> dict[str, Any]:
    """Closed loops across the alliance as each region's ledger has them (from its own lot
    documents, replicas included): recovered metal that crossed the border each way, and the
    recycled metal each region's refiners took from the partner's recycling, in kg; and
    whether the two ledgers agree."""
    per_region = {
        region: ledger_loops({key.decode(): doc for key, doc in lots.items()})
        for region, lots in lots_by_region.items()
    }
    figures = list(per_region.values())
    return {"ledgers": per_region, "agree": all(f == figures[0] for f in figures)}


def mirror_summary(totals: Totals) -> dict[str, Any]:
    """One mirror's part of the summary: confidential values removed (fields the schema tags
    confidential, per record) apart from the policy's other redactions."""
    return {
        "mirrored": totals.mirrored,
        "filtered": dict(sorted(totals.filtered_by_reason.items())),
        "confidential_values_removed": totals.redactions.confidential_removed,
        "other_redactions": {k: v for k, v in totals.redactions.other().items() if v},
    }


def _incomplete(tally: dict[str, Any]) -> str:
    """Batteries whose inputs this ledger does not all hold: events of operators the partner's
    mirror did not share (uncertified ones), so the figures above rest on part of the chain."""
    missing = tally.get("batteries_incomplete", 0)
    return f"; {missing} with inputs this ledger does not hold" if missing else ""


def _pct(value: str | None) -> str:
    return "   -  " if value is None else f"{100 * float(value):5.1f}%"


def _print_summary(s: dict[str, Any], out: TextIO) -> None:
    w = out.write
    state = "complete" if s["complete"] else "INCOMPLETE (timed out)"
    w(f"\nbatteryloop demo: {s['backend']} brokers, {s['seconds']} s, {state}\n")
    for region, r in s["regions"].items():
        w(f"\n== {region} ==\n")
        w(
            f"events {r['events_published']}, bad records {r['bad_records_published']} -> "
            f"dead letters {r['dead_letters']}; passports {r['passports']}\n"
        )
        w("recycled content (EU 2023/1542 Art. 8), per manufacturer, plant, model and year:\n")
        for tally in r["recycled_content"]:
            w(
                f"  {tally['model']} by {tally['manufacturer']} at {tally['plant']}, "
                f"{tally['year']} ({tally['batteries']} batteries{_incomplete(tally)})\n"
            )
            for metal, m in tally["metals"].items():
                w(
                    f"    {metal:9} {_pct(m['recycled_share'])}  "
                    f"(pre {_pct(m['pre_consumer_share'])}, post {_pct(m['post_consumer_share'])})"
                    f"  2031 min {_pct(m['minimum_2031'])}"
                    f" {'met' if m['meets_2031'] else 'NOT met'};  2036 min "
                    f"{_pct(m['minimum_2036'])} {'met' if m['meets_2036'] else 'NOT met'}\n"
                )
        w("material recovery (Annex XII), per recycler, plant and year:\n")
        for tally in r["recovery"]:
            w(f"  {tally['recycler']} at {tally['plant']}, {tally['year']}\n")
            for metal, m in tally["metals"].items():
                w(
                    f"    {metal:9} {_pct(m['efficiency'])}  2027 target {_pct(m['target_2027'])} "
                    f"{'met' if m['meets_2027'] else 'NOT met'};  2031 target "
                    f"{_pct(m['target_2031'])} {'met' if m['meets_2031'] else 'NOT met'}\n"
                )
        w(f"open alerts: {r['open_alerts'] or 'none'}\n")
        for outflow in r["outflows"]:
            w(f"  outflow: {outflow}\n")
    _print_legality(s["regions"], w)
    _print_disclosure(s["regions"], w)
    _print_alliance(s["alliance"], w)
    w("\n== mirrors ==\n")
    for direction, m in s["mirrors"].items():
        w(
            f"{direction}: {m['mirrored']} mirrored, {m['confidential_values_removed']} "
            f"confidential field values removed, other redactions "
            f"{m['other_redactions'] or 'none'}, filtered {m['filtered'] or 'none'}\n"
        )


def legality_summary(alerts: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Open ``illegal_export`` alerts: shipments of hazardous waste the rules prohibit, each with
    the rule, the data versions it read and why the goods were hazardous; and how many
    outflows were judged (every outflow of waste is, whatever the verdict)."""
    illegal = [
        {
            "subject": a["subject"],
            "message": a["message"],
            "rule": a["details"]["rule"],
            "basis": a["details"]["basis"],
            "data": [f"{d['name']} {d['version']}" for d in a["details"]["data"]],
        }
        for a in alerts
        if a["kind"] == "illegal_export" and a.get("status") == "open"
    ]
    return {"illegal_exports": sorted(illegal, key=lambda i: (i["subject"], i["message"]))}


def _print_legality(regions: dict[str, Any], w: Callable[[str], Any]) -> None:
    w("\n== export legality ==\n")
    w("hazardous waste from the EU to outside the OECD (Regulation (EU) 2024/1157):\n")
    for region, r in regions.items():
        illegal = r["legality"]["illegal_exports"]
        w(f"  {region}: {len(illegal)} illegal export(s)\n")
        for item in illegal:
            w(f"    {item['message']}\n")
            w(f"      rule {item['rule']}; data {', '.join(item['data'])}\n")


def disclosure_summary(
    tallies: Iterable[dict[str, Any]], alerts: Iterable[dict[str, Any]], most: int = 3
) -> dict[str, Any]:
    """Battery passport disclosure under the alliance's rules, which hold for every maker: per
    maker and maker's country the batteries, those meeting every rule and the attributes
    missed most; the same per maker's country; and the open ``non_compliant_import`` alerts
    (batteries of makers outside the alliance shipped into it without full disclosure)."""
    makers = []
    missing: dict[str, Counter[str]] = {}
    for t in sorted(tallies, key=lambda t: (t["country"], t["manufacturer"])):
        missing.setdefault(t["country"], Counter()).update(t["missing"])
        missed = sorted(t["missing"].items(), key=lambda kv: (-kv[1], kv[0]))[:most]
        makers.append(
            {
                "manufacturer": t["manufacturer"],
                "country": t["country"],
                "outside_alliance": operator_id_platform(t["manufacturer"]) is None
                or t["country"] not in ALLIANCE_COUNTRIES,
                "batteries": t["batteries"],
                "batteries_met": t["batteries_met"],
                "completeness": t["completeness"],
                "most_missed": dict(missed),
                "rules": sorted(t["rules"]),
            }
        )
    countries: dict[str, dict[str, Any]] = {}
    for m in makers:
        c = countries.setdefault(m["country"], {"makers": 0, "batteries": 0, "batteries_met": 0})
        c["makers"] += 1
        c["batteries"] += m["batteries"]
        c["batteries_met"] += m["batteries_met"]
    by_country = {
        country: {
            "makers": c["makers"],
            "batteries": c["batteries"],
            "batteries_met": c["batteries_met"],
            "completeness": share(c["batteries_met"], c["batteries"]),
            "most_missed": dict(
                sorted(missing[country].items(), key=lambda kv: (-kv[1], kv[0]))[:most]
            ),
        }
        for country, c in sorted(countries.items())
    }
    imports = [
        {
            "subject": a["subject"],
            "manufacturer": a["details"]["manufacturer"],
            "from_country": a["details"]["from_country"],
            "to_country": a["details"]["to_country"],
            "missing": a["details"]["missing"],
            "message": a["message"],
        }
        for a in alerts
        if a["kind"] == "non_compliant_import" and a.get("status") == "open"
    ]
    return {
        "makers": makers,
        "by_country": by_country,
        "non_compliant_imports": sorted(imports, key=lambda i: (i["subject"], i["message"])),
    }


def _print_disclosure(regions: dict[str, Any], w: Callable[[str], Any]) -> None:
    w("\n== disclosure ==\n")
    w("battery passport disclosure (EU 2023/1542 Annex XIII), the same rules for every maker:\n")
    for region, r in regions.items():
        d = r["disclosure"]
        w(f"  {region}: per maker's country\n")
        for country, c in d["by_country"].items():
            missed = ", ".join(f"{k} {v}" for k, v in c["most_missed"].items()) or "none"
            w(
                f"    {country}  {c['batteries_met']}/{c['batteries']} batteries meet every "
                f"rule ({_pct(c['completeness'])}), {c['makers']} maker(s); most missed: "
                f"{missed}\n"
            )
            for m in d["makers"]:
                if m["country"] == country:
                    outside = ", outside the alliance" if m["outside_alliance"] else ""
                    w(
                        f"      {m['manufacturer']}{outside}: {m['batteries_met']}/"
                        f"{m['batteries']} ({_pct(m['completeness'])})\n"
                    )
        imports = d["non_compliant_imports"]
        w(f"  {region}: {len(imports)} non-compliant import(s)\n")
        for item in imports:
            w(f"    {item['message']}\n")


def _print_alliance(alliance: dict[str, Any], w: Callable[[str], Any]) -> None:
    ledgers = alliance["ledgers"]
    regions = list(ledgers)
    w("\n== closed loops across the alliance ==\n")
    w(f"kg of metal, as each region's ledger computes it ({' | '.join(regions)}):\n")
    labels: dict[str, tuple[str, Callable[[str], str]]] = {
        "recovered_crossing": ("recovered material crossing", lambda d: d.replace("->", " -> ")),
        "refined_from_partner_recycling": (
            "recycled metal refined from the partner's recycling",
            lambda side: f"refined in {side}",
        ),
    }
    for name, (title, label) in labels.items():
        w(f"  {title}:\n")
        for key in ledgers[regions[0]][name]:
            metals = sorted({m for r in regions for m in ledgers[r][name][key]})
            for metal in metals:
                values = [ledgers[r][name][key].get(metal, "0") for r in regions]
                same = "agree" if len(set(values)) == 1 else "DIFFER"
                shown = " | ".join(f"{Decimal(v):>10.3f}" for v in values)
                w(f"    {label(key):16} {metal:8} {shown}  {same}\n")
    w("  the regions' ledgers " + ("agree\n" if alliance["agree"] else "DO NOT agree\n"))
