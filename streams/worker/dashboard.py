"""The region's dashboard, served by the worker: a page that polls ``/dashboard/data``.

The figures come from what the region's cluster publishes, never from this worker's stores:
with several workers per region each holds only some partitions, while every one of them can
read the whole of the compacted aggregate topics. So the worker runs a small reader of its own
(every partition by assignment, no group, from the beginning, latest value per key) over

* ``batteryloop.tallies.recycled-content`` and ``...recovery-efficiency``: the charts,
* ``batteryloop.alerts``: open alerts (resolved ones and tombstones are dropped),
* ``batteryloop.lots``: the closed loops across the border (only recovered and refined lots,
  and only the fields the loops read, so memory follows those lots, not every lot),
* ``batteryloop.mirror.checkpoints``: the flows the partner's mirror brought INTO this region,
  with what it filtered (by reason) and redacted. The checkpoints live on the target cluster,
  so a region's dashboard shows the incoming direction; the outgoing one is on the partner
  region's dashboard (its cluster holds those checkpoints).

The figures are computed by :mod:`streams.domain.summaries`, the same functions as the demo's
summary. The page itself is static HTML, CSS and a small script drawing SVG (``static/``): no
chart library, nothing fetched from elsewhere.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterable, Mapping
from importlib import resources
from typing import TYPE_CHECKING, Any

from aiohttp import web
from confluent_kafka import OFFSET_BEGINNING, KafkaException, TopicPartition

from connectors.kafka.consume import reader
from connectors.mirror import policy as sharing
from connectors.mirror.replication import Flows, parse_checkpoint
from schemas.topics import DOCUMENT_TOPICS, EVENT_TOPICS, MIRROR_CHECKPOINT_TOPIC
from streams.domain.summaries import (
    ledger_loops,
    loop_relevant,
    open_alerts,
    recovery_by_metal,
    recycled_content_by_metal,
)

if TYPE_CHECKING:
    from streams.worker.app import Processors

log = logging.getLogger(__name__)

RECYCLED = DOCUMENT_TOPICS["recycled-content"].name
RECOVERY = DOCUMENT_TOPICS["recovery"].name
ALERTS = DOCUMENT_TOPICS["alerts"].name
LOTS = DOCUMENT_TOPICS["lots"].name
CHECKPOINTS = MIRROR_CHECKPOINT_TOPIC.name
TOPICS = (RECYCLED, RECOVERY, ALERTS, LOTS, CHECKPOINTS)
_EVENT_TYPE_OF_TOPIC = {spec.name: t for t, spec in EVENT_TOPICS.items()}
#: Alerts listed on the page besides the counts per kind (the most recent open ones).
LISTED_ALERTS = 12


class DashboardState:
    """The latest value per key of the dashboard's topics, trimmed to what the page shows."""

    def __init__(self, region: str) -> None:
        self.region = region
        self.tallies: dict[str, dict[bytes, Any]] = {RECYCLED: {}, RECOVERY: {}}
        self.alerts: dict[bytes, dict[str, Any]] = {}
        self.lots: dict[str, dict[str, Any]] = {}
        self.checkpoints: dict[bytes, tuple[str, str, Flows]] = {}
        self.records = 0
        self.updated_ms: int | None = None

    def apply(self, topic: str, key: bytes | None, value: bytes | None, ms: int | None) -> None:
        """One record of a dashboard topic; a tombstone removes its key. A record that does not
        parse is logged and left out (these topics are written by batteryloop itself)."""
        if key is None:
            return
        self.records += 1
        if ms is not None and ms > 0:
            self.updated_ms = max(ms, self.updated_ms or 0)
        if topic == CHECKPOINTS:
            self._checkpoint(key, value)
            return
        try:
            doc = None if value is None else json.loads(value)
        except ValueError as exc:
            log.warning("dashboard: %s key %r: not JSON (%s); left out", topic, key[:60], exc)
            return
        if topic in self.tallies:
            _put(self.tallies[topic], key, doc)
        elif topic == ALERTS:
            _put(self.alerts, key, doc if doc and doc.get("status") == "open" else None)
        elif topic == LOTS:
            _put(self.lots, key.decode(errors="replace"), doc and loop_relevant(doc))

    def _checkpoint(self, key: bytes, value: bytes | None) -> None:
        if value is None:
            self.checkpoints.pop(key, None)
            return
        parsed = parse_checkpoint(key, value)
        if parsed is None:
            log.warning("dashboard: checkpoint %r: malformed; left out", key[:80])
            return
        source, point = parsed
        event_type = _EVENT_TYPE_OF_TOPIC.get(point.topic, point.topic)
        self.checkpoints[key] = (source, event_type, point.flows)

    def view(self) -> dict[str, Any]:
        """What the page draws, as JSON."""
        alerts = list(self.alerts.values())
        recent = sorted(alerts, key=lambda a: str(a.get("raised_at", "")), reverse=True)
        return {
            "region": self.region,
            "records_read": self.records,
            "updated_ms": self.updated_ms,
            "recycled_content": recycled_content_by_metal(self.tallies[RECYCLED].values()),
            "recycled_content_tallies": len(self.tallies[RECYCLED]),
            "recovery": recovery_by_metal(self.tallies[RECOVERY].values()),
            "recovery_tallies": len(self.tallies[RECOVERY]),
            "open_alerts": open_alerts(alerts),
            "recent_alerts": [
                {k: a.get(k) for k in ("kind", "subject", "message", "raised_at")}
                for a in recent[:LISTED_ALERTS]
            ],
            "flows": incoming_flows(self.region, self.checkpoints.values()),
            "loops": ledger_loops(self.lots),
        }


def _put(table: dict[Any, Any], key: Any, doc: Any) -> None:
    if doc is None:
        table.pop(key, None)
    else:
        table[key] = doc


def incoming_flows(
    region: str, checkpoints: Iterable[tuple[str, str, Flows]]
) -> dict[str, dict[str, Any]]:
    """Per direction into ``region`` (``jp-to-eu`` on the EU cluster): records shared, filtered
    by reason and field values redacted, in total and per event type, summed over the source
    partitions' latest checkpoints."""
    out: dict[str, dict[str, Any]] = {}
    for source, event_type, flows in checkpoints:
        direction = sharing.direction(source, region)
        entry = out.setdefault(direction, {"total": Flows(), "by_event_type": {}})
        entry["total"].add(flows)
        entry["by_event_type"].setdefault(event_type, Flows()).add(flows)
    return {
        direction: {
            "total": _flows_json(entry["total"]),
            "by_event_type": {t: _flows_json(f) for t, f in sorted(entry["by_event_type"].items())},
        }
        for direction, entry in sorted(out.items())
    }


def _flows_json(flows: Flows) -> dict[str, Any]:
    body = flows.as_json()
    body.pop("version")
    body["filtered_total"] = sum(flows.filtered.values())
    return body


class DashboardFeed:
    """Reads the dashboard's topics into a :class:`DashboardState` from a thread of its own.

    Topics that do not exist yet (the checkpoint topic appears with the partner's mirror) are
    looked for again every few seconds and read from the beginning once they do."""

    def __init__(self, config: Mapping[str, str], region: str) -> None:
        self.config = dict(config)
        self.state = DashboardState(region)
        self.lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="dashboard-feed", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(10)

    def view(self) -> dict[str, Any]:
        with self.lock:
            return self.state.view()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._read()
            except KafkaException as exc:
                log.warning("dashboard: reading the aggregate topics: %s; again in 5 s", exc)
                self._stop.wait(5)

    def _read(self) -> None:
        consumer = reader(self.config, fetch_wait_max_ms=200)
        # a new reader starts over: the state is rebuilt from the beginning
        with self.lock:
            self.state = DashboardState(self.state.region)
        try:
            assigned: set[tuple[str, int]] = set()
            look_at = 0.0
            while not self._stop.is_set():
                if time.monotonic() >= look_at:
                    metadata = consumer.list_topics(timeout=10)
                    new = [
                        (t, p)
                        for t in TOPICS
                        if t in metadata.topics
                        for p in metadata.topics[t].partitions
                        if (t, p) not in assigned
                    ]
                    if new:
                        consumer.incremental_assign(
                            [TopicPartition(t, p, OFFSET_BEGINNING) for t, p in new]
                        )
                        assigned.update(new)
                    complete = {t for t, _ in assigned} == set(TOPICS)
                    look_at = time.monotonic() + (30 if complete else 2)
                batch = consumer.consume(2000, 0.5)
                if not batch:
                    continue
                with self.lock:
                    apply = self.state.apply
                    for m in batch:
                        if m.error() is None:
                            apply(m.topic() or "", m.key(), m.value(), m.timestamp()[1])
        finally:
            consumer.close()


def _static(name: str) -> str:
    return resources.files("streams.worker").joinpath("static", name).read_text("utf-8")


_CONTENT_TYPES = {"dashboard.js": "text/javascript", "dashboard.css": "text/css"}


def add_dashboard(app: web.Application, processors: Processors) -> None:
    """The dashboard's routes on the worker's views: ``/`` redirects to ``/dashboard``, the page
    and its two files, and ``/dashboard/data``; the reader runs while the views are served."""
    feed = DashboardFeed(processors.restore_config, processors.options.region.value)

    async def root(request: web.Request) -> web.Response:
        raise web.HTTPFound("/dashboard")

    async def page(request: web.Request) -> web.Response:
        return web.Response(text=_static("dashboard.html"), content_type="text/html")

    async def asset(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in _CONTENT_TYPES:
            raise web.HTTPNotFound(text=f"no dashboard file {name!r}")
        return web.Response(text=_static(name), content_type=_CONTENT_TYPES[name])

    async def data(request: web.Request) -> web.Response:
        return web.json_response(feed.view(), headers={"Cache-Control": "no-store"})

    async def start(app: web.Application) -> None:
        feed.start()

    async def stop(app: web.Application) -> None:
        feed.stop()

    app.router.add_get("/", root)
    app.router.add_get("/dashboard", page)
    app.router.add_get("/dashboard/data", data)
    app.router.add_get("/dashboard/{name}", asset)
    app.on_startup.append(start)
    app.on_cleanup.append(stop)
