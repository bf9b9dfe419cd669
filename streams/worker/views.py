"""The worker's read-only HTTP views, served from a thread beside the processing loop.

``/passport/ID``: the same passport at the URL its QR code holds, as an HTML page when the
request's Accept prefers ``text/html``; ``/01/GTIN/21/ID`` (GS1 Digital Link) likewise for a
battery whose passport carries that GTIN (14 digits), 404 naming the mismatch otherwise.
``/passports/ID``, ``/lots/ID``, ``/operators/ID``: the current document of an entity this
worker holds (as of its last committed window; 404 naming the worker otherwise).
``/tallies/recycled-content``, ``/tallies/recovery-efficiency``, ``/tallies/disclosure``: the
tallies it holds.
``/healthz``: whether it holds partitions (503 once it has waited past ``--assignment-timeout``).
``/readyz``: 200 once its partitions are assigned and their states restored, 503 before.
``/metrics``: Prometheus.
``/dashboard`` (``/`` redirects there): the region's dashboard (:mod:`.dashboard`).
"""

from __future__ import annotations

import asyncio
import threading
from typing import TYPE_CHECKING, Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from connectors.exports.passport_page import passport_page, prefers_html
from streams.domain.routing import lot_key, operator_key
from streams.worker.dashboard import add_dashboard

if TYPE_CHECKING:
    from streams.worker.app import Processors


def _found(doc: Any, what: str) -> web.Response:
    if doc is None:
        return web.json_response({"error": f"{what} not found on this worker"}, status=404)
    return web.json_response(doc)


def _passport_answer(request: web.Request, doc: Any, battery_id: str) -> web.Response:
    """A passport at its resolvable URL: JSON, or an HTML page when the request prefers it."""
    if doc is not None and prefers_html(request.headers.get("Accept", "")):
        return web.Response(text=passport_page(doc), content_type="text/html")
    return _found(doc, f"battery {battery_id}")


def application(processors: Processors) -> web.Application:
    async def passport(request: web.Request) -> web.Response:
        battery_id = request.match_info["id"]
        return _found(processors.passport(battery_id), f"battery {battery_id}")

    async def passport_by_url(request: web.Request) -> web.Response:
        # the URL a passport's QR code holds (streams.domain.links): HTML for a browser
        battery_id = request.match_info["id"]
        return _passport_answer(request, processors.passport(battery_id), battery_id)

    async def passport_by_digital_link(request: web.Request) -> web.Response:
        # GS1 Digital Link: /01/<GTIN>/21/<serial>, the URL of a passport whose GTIN is known
        gtin, serial = request.match_info["gtin"], request.match_info["serial"]
        doc = processors.passport(serial)
        if doc is not None and doc.get("gtin") != gtin:
            known = doc.get("gtin")
            has = f"GTIN {known}" if known else "no GTIN"
            reason = f"battery {serial} has {has}, not GTIN {gtin}"
            return web.json_response({"error": reason}, status=404)
        return _passport_answer(request, doc, serial)

    async def lot(request: web.Request) -> web.Response:
        lot_id = request.match_info["id"]
        return _found(processors.lookup(lot_key(lot_id)), f"lot {lot_id}")

    async def operator(request: web.Request) -> web.Response:
        operator_id = request.match_info["id"]
        return _found(processors.lookup(operator_key(operator_id)), f"operator {operator_id}")

    async def recycled_content(request: web.Request) -> web.Response:
        return web.json_response(processors.listing("recycled-content"))

    async def recovery(request: web.Request) -> web.Response:
        return web.json_response(processors.listing("recovery"))

    async def disclosure(request: web.Request) -> web.Response:
        return web.json_response(processors.listing("disclosure"))

    async def health(request: web.Request) -> web.Response:
        watch = processors.assignment
        watch.check()  # so the warning is logged no later than the first 503
        return web.json_response(watch.health(), status=503 if watch.overdue() else 200)

    async def ready(request: web.Request) -> web.Response:
        is_ready = processors.ready.is_set()
        body = {"ready": is_ready, "state_partitions": sorted(processors.stores)}
        return web.json_response(body, status=200 if is_ready else 503)

    async def metrics(request: web.Request) -> web.Response:
        body = generate_latest(processors.metrics.registry)
        return web.Response(body=body, content_type=CONTENT_TYPE_LATEST.split(";")[0])

    app = web.Application()
    app.router.add_get("/passports/{id}", passport)
    app.router.add_get("/passport/{id:.+}", passport_by_url)
    app.router.add_get("/01/{gtin}/21/{serial:.+}", passport_by_digital_link)
    app.router.add_get("/lots/{id}", lot)
    app.router.add_get("/operators/{id}", operator)
    app.router.add_get("/tallies/recycled-content", recycled_content)
    app.router.add_get("/tallies/recovery-efficiency", recovery)
    app.router.add_get("/tallies/disclosure", disclosure)
    app.router.add_get("/healthz", health)
    app.router.add_get("/readyz", ready)
    app.router.add_get("/metrics", metrics)
    add_dashboard(app, processors)
    return app


class ViewServer:
    """Serves :func:`application` on ``host:port`` from its own thread and event loop."""

    def __init__(self, processors: Processors, host: str, port: int) -> None:
        self.processors = processors
        self.host, self.port = host, port
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self._started = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._serve, name="worker-views", daemon=True)

    def start(self) -> None:
        self._thread.start()
        self._started.wait(30)
        if self._error is not None:
            raise RuntimeError(
                f"cannot serve the views on {self.host}:{self.port}: {self._error}"
            ) from self._error

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._runner = web.AppRunner(application(self.processors), access_log=None)
            self._loop.run_until_complete(self._runner.setup())
            site = web.TCPSite(self._runner, self.host, self.port)
            self._loop.run_until_complete(site.start())
        except BaseException as exc:  # reported by start(), in the caller's thread
            self._error = exc
            self._started.set()
            return
        self._started.set()
        self._loop.run_forever()
        self._loop.run_until_complete(self._runner.cleanup())
        self._loop.close()

    def stop(self) -> None:
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
