"""The HTTP ingestion gateway: factory systems and recyclers POST events as JSON.

* ``POST /events`` takes one event (``application/json`` object), or a batch like
  ``POST /events/batch``: a JSON array (``application/json``) or JSON Lines
  (``application/x-ndjson``, ``application/jsonl``). Any other content type: **415**.
* Every operator authenticates with a bearer token from the tokens file (see
  :mod:`connectors.ingest.tokens`), or, with TLS and a client CA configured, with a client
  certificate whose subject common name is its operator id. No or unknown credentials: **401**.
  An event whose ``operator_id`` is not the caller's own: **403**.
* An event that does not validate, or belongs to another region than this gateway's cluster:
  **422** with the validation errors.
* **202** only after the cluster acknowledged the event (acks=all, idempotent producer). No
  acknowledgement within the delivery timeout: **503** with ``Retry-After``; librdkafka's
  ``message.timeout.ms`` is that same timeout, so a record is never delivered after its 503.
* Idempotent by ``event_id``: an id seen before (a bounded memory) answers 202 with the
  original result and publishes nothing; a duplicate arriving while the first is in flight
  waits for its result; the same id with other content is **409**.
* Batches are per item: every item is answered (index, JSON Lines line, event id, status,
  reason, duplicate or not) and the valid ones are published whatever the others are.
* SIGTERM or SIGINT: the gateway stops accepting connections, waits up to the grace period for
  deliveries in flight, answers what is still waiting with 503, and exits.
* ``GET /openapi.json`` describes all of this. Without credentials: ``GET /healthz`` (and
  ``/health``) answers 200 while the process serves; ``GET /readyz`` 200 once the producer has
  reached the cluster (503 before, and while stopping); ``GET /metrics`` is Prometheus
  (requests by route and status, events by type and outcome, request seconds by route).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web
from confluent_kafka import KafkaError, KafkaException, Message, Producer
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from pydantic import ValidationError

from connectors.ingest.producer import DEFAULTS, ENFORCED
from connectors.ingest.recent import RecentEvents
from connectors.ingest.tokens import TokensFile
from connectors.kafka import clients
from schemas.events import ANY_EVENT, EVENT_MODELS, Event
from schemas.serde import Serde
from schemas.topics import EVENT_TOPICS
from schemas.values import Region
from schemas.writer import AvroWriteError

MAX_BATCH = 10_000
JSON = "application/json"
JSON_LINES = ("application/x-ndjson", "application/jsonl")
ACCEPTED_TYPES = (JSON, *JSON_LINES)
#: librdkafka names of the delivery timeout; the gateway sets it from its own option.
TIMEOUT_PROPERTIES = ("message.timeout.ms", "delivery.timeout.ms")


def build_producer(kafka: Mapping[str, str], delivery_timeout: float) -> Producer:
    """The gateway's producer: acks=all, idempotent, and giving up on a record exactly when
    the gateway answers 503 for it, so that no record is delivered behind a client's back."""
    overridden = {k: v for k, v in kafka.items() if k in TIMEOUT_PROPERTIES}
    if overridden:
        raise ValueError(f"the gateway sets {overridden} from --delivery-timeout; drop -X for it")
    timeout_ms = str(max(1, round(delivery_timeout * 1000)))
    return clients.producer(
        {**DEFAULTS, "linger.ms": "5", **kafka, "message.timeout.ms": timeout_ms, **ENFORCED}
    )


class GatewayMetrics:
    """The gateway's Prometheus metrics, in a registry of its own (tests run several)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.requests = Counter(
            "batteryloop_gateway_requests_total",
            "HTTP requests answered, by route (its pattern, never an id) and status",
            ["route", "status"],
            registry=self.registry,
        )
        self.events = Counter(
            "batteryloop_gateway_events_total",
            "Events of requests, by type (unknown when unreadable) and outcome: accepted "
            "(202, duplicates too) or rejected",
            ["event_type", "outcome"],
            registry=self.registry,
        )
        self.request_seconds = Histogram(
            "batteryloop_gateway_request_seconds",
            "Time to answer a request, by route",
            ["route"],
            registry=self.registry,
        )


#: Route label of a request no route matched (its path is not a label: it is unbounded).
UNMATCHED = "unmatched"


@dataclass(frozen=True)
class Delivered:
    topic: str
    partition: int
    offset: int


@dataclass(frozen=True)
class Undelivered:
    reason: str


@dataclass
class ItemResult:
    """The answer for one event of a request."""

    index: int
    status: int
    line: int | None = None  # 1-based line of a JSON Lines body
    event_type: str = "unknown"  # for metrics only; unknown until the item is readable
    event_id: str | None = None
    duplicate: bool = False
    reason: str | None = None
    errors: list[dict[str, Any]] | None = None
    delivered: Delivered | None = None

    def as_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"index": self.index}
        if self.line is not None:
            body["line"] = self.line
        body |= {"event_id": self.event_id, "status": self.status, "duplicate": self.duplicate}
        if self.delivered is not None:
            body |= {
                "topic": self.delivered.topic,
                "partition": self.delivered.partition,
                "offset": self.delivered.offset,
            }
        if self.reason is not None:
            body["reason"] = self.reason
        if self.errors is not None:
            body["errors"] = self.errors
        return body


@dataclass
class RawItem:
    """One item of a request body before validation: parsed JSON, or why it is not JSON."""

    index: int
    value: Any = None
    line: int | None = None
    not_json: str | None = None


@dataclass(frozen=True)
class _Claim:
    """An event this request claimed the id of: the first claim publishes it, a later one
    (a duplicate) waits for the same outcome."""

    event: Event
    topic: str
    value: bytes
    outcome: asyncio.Future[Delivered | Undelivered]
    first: bool


@dataclass
class Refusal(Exception):
    status: int
    reason: str
    errors: list[dict[str, Any]] | None = field(default=None)


def parse_json_lines(body: bytes) -> list[RawItem]:
    """Items of a JSON Lines body; blank lines are skipped, a line that is not JSON becomes an
    item that says why (by line), and the others are still parsed."""
    items: list[RawItem] = []
    for number, raw in enumerate(body.split(b"\n"), start=1):
        if not raw.strip():
            continue
        item = RawItem(index=len(items), line=number)
        try:
            item.value = json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError as exc:
            item.not_json = f"line {number} is not UTF-8: {exc.reason} at byte {exc.start}"
        except json.JSONDecodeError as exc:
            item.not_json = f"line {number} is not JSON: {exc.msg} at column {exc.colno}"
        items.append(item)
    return items


class Gateway:
    def __init__(
        self,
        region: Region,
        kafka: Mapping[str, str],
        tokens: TokensFile | None,
        serde: Serde,
        *,
        # no defaults here: `batteryloop gateway` holds them, with its --help
        delivery_timeout: float,
        dedup_capacity: int,
        grace: float,
        registry: CollectorRegistry | None = None,
    ) -> None:
        if delivery_timeout <= 0 or grace < 0:
            raise ValueError("the delivery timeout must be positive and the grace period >= 0")
        self.region = region
        self.tokens = tokens
        self.serde = serde
        self.delivery_timeout = delivery_timeout
        self.grace = grace
        self.recent: RecentEvents[Delivered | Undelivered] = RecentEvents(dedup_capacity)
        self.producer = build_producer(kafka, delivery_timeout)
        self.metrics = GatewayMetrics(registry)
        #: Whether the producer has reached the cluster (``/readyz``).
        self.reached = False
        self._poller: asyncio.Task[None] | None = None
        self._reaching: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    # --- the app ------------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application(
            client_max_size=64 * 1024 * 1024, middlewares=[self._measure, self._refusals]
        )
        app.router.add_post("/events", self.post_event)
        app.router.add_post("/events/batch", self.post_batch)
        app.router.add_get("/openapi.json", self.openapi)
        # no credentials on these: probes and scrapers carry none
        app.router.add_get("/health", self.health)
        app.router.add_get("/healthz", self.health)
        app.router.add_get("/readyz", self.readiness)
        app.router.add_get("/metrics", self.scrape)
        app.on_startup.append(self._start)
        app.on_shutdown.append(self._shutdown)
        app.on_cleanup.append(self._stop)
        return app

    async def _start(self, app: web.Application) -> None:
        self._poller = asyncio.create_task(self._poll())
        self._reaching = asyncio.create_task(self._reach())

    async def _reach(self) -> None:
        """Ask the cluster for its metadata until it answers: the gateway is ready then."""
        loop = asyncio.get_running_loop()
        while not self.reached and not self._stopping.is_set():
            try:
                await loop.run_in_executor(None, self._metadata)
            except KafkaException:
                await asyncio.sleep(1)  # not reachable yet; librdkafka keeps trying too
                continue
            self.reached = True

    def _metadata(self) -> None:
        self.producer.list_topics(timeout=2)  # short: a stop waits for this thread

    async def _shutdown(self, app: web.Application) -> None:
        # Runs once the listening socket is closed; requests waiting for a delivery now wait
        # at most until the end of the grace period (see _settle_all).
        self._stopping.set()

    async def _stop(self, app: web.Application) -> None:
        for task in (self._poller, self._reaching):
            if task is not None:
                task.cancel()
        # Whatever is still queued was answered 503 (or its client is gone): drop it rather
        # than deliver it after the answer.
        self.producer.purge()
        self.producer.flush(0)

    async def _poll(self) -> None:  # serves delivery reports, which resolve the futures
        while True:
            self.producer.poll(0)
            await asyncio.sleep(0.005)

    # --- authentication ------------------------------------------------------------------------

    def caller(self, request: web.Request) -> str:
        """The authenticated operator id; raises 401."""
        header = request.headers.get("Authorization", "")
        if header.startswith("Bearer "):
            given = header[len("Bearer ") :].strip()
            operator = self.tokens.operator_for(given) if self.tokens else None
            if operator is None:
                raise _error(web.HTTPUnauthorized, "unknown bearer token")
            return operator
        peer = request.transport.get_extra_info("peercert") if request.transport else None
        if peer:
            for rdn in peer.get("subject", ()):
                for key, value in rdn:
                    if key == "commonName":
                        return str(value)
        raise _error(
            web.HTTPUnauthorized,
            "credentials required: 'Authorization: Bearer <token>' or a client certificate",
        )

    # --- handlers -------------------------------------------------------------------------------

    async def post_event(self, request: web.Request) -> web.Response:
        operator = self.caller(request)
        body = await _body(request)
        if isinstance(body, list):
            return await self._answer_batch(body, operator)
        return await self._answer_one(body, operator)

    async def post_batch(self, request: web.Request) -> web.Response:
        operator = self.caller(request)
        body = await _body(request)
        if not isinstance(body, list):
            raise Refusal(422, "expected a JSON array of events or JSON Lines")
        return await self._answer_batch(body, operator)

    async def _answer_one(self, value: Any, operator: str) -> web.Response:
        [result] = await self._handle_many(
            [RawItem(index=0, value=value)], operator, by_index=False
        )
        if result.status != 202:
            raise Refusal(result.status, result.reason or "refused", result.errors)
        body = {"accepted": 1, "event_ids": [result.event_id], **result.as_json()}
        for key in ("index", "event_id", "status"):
            del body[key]
        return web.json_response(body, status=202)

    async def _answer_batch(self, items: list[RawItem], operator: str) -> web.Response:
        if not items:
            raise Refusal(422, "expected at least one event")
        if len(items) > MAX_BATCH:
            raise Refusal(413, f"at most {MAX_BATCH} events per request, not {len(items)}")
        results = await self._handle_many(items, operator, by_index=True)
        statuses = {r.status for r in results}
        status = 503 if 503 in statuses else statuses.pop() if len(statuses) == 1 else 207
        accepted = [r for r in results if r.status == 202]
        body = {
            "accepted": len(accepted),
            "duplicates": sum(r.duplicate for r in accepted),
            "refused": sum(r.status in (403, 409, 422) for r in results),
            "unacknowledged": sum(r.status == 503 for r in results),
            "event_ids": [r.event_id for r in accepted],
            "items": [r.as_json() for r in results],
        }
        headers = {"Retry-After": self.retry_after()} if status == 503 else {}
        return web.json_response(body, status=status, headers=headers)

    async def _handle_many(
        self, items: list[RawItem], operator: str, *, by_index: bool
    ) -> list[ItemResult]:
        """Answer every item: validate and claim each (in order, so a repeated id within the
        request is a duplicate of its first), queue the first claims in one pass, then wait
        for all their delivery reports at once."""
        results = [ItemResult(index=item.index, status=422, line=item.line) for item in items]
        claimed: list[tuple[ItemResult, _Claim]] = []
        for item, result in zip(items, results, strict=True):
            claim = self._claim(item, operator, [item.index] if by_index else [], result)
            if claim is not None:
                claimed.append((result, claim))
        for _, claim in claimed:
            if claim.first:
                await self._produce(claim)
        outcomes = await self._settle_all([claim.outcome for _, claim in claimed])
        for (result, claim), outcome in zip(claimed, outcomes, strict=True):
            if not claim.first:
                result.duplicate = isinstance(outcome, Delivered)
            elif isinstance(outcome, Undelivered):
                self.recent.forget(claim.event.event_id)  # the client's retry publishes again
            if isinstance(outcome, Undelivered):
                result.status, result.reason = 503, outcome.reason
            else:
                result.status, result.delivered = 202, outcome
                self.reached = True
        self._count_events(results)
        return results

    def _count_events(self, results: list[ItemResult]) -> None:
        """One ``inc`` per type and outcome of a request."""
        counts: dict[tuple[str, str], int] = {}
        for result in results:
            labels = (result.event_type, "accepted" if result.status == 202 else "rejected")
            counts[labels] = counts.get(labels, 0) + 1
        for (event_type, outcome), count in counts.items():
            self.metrics.events.labels(event_type, outcome).inc(count)

    def _claim(
        self, item: RawItem, operator: str, at: list[Any], result: ItemResult
    ) -> _Claim | None:
        """Validate and encode an item and claim its event id; None (with ``result`` saying
        why) for an item refused here."""
        if isinstance(item.value, dict) and item.value.get("event_type") in EVENT_MODELS:
            result.event_type = item.value["event_type"]  # one of a bounded set
        if item.not_json is not None:
            result.reason = item.not_json
            result.errors = [{"loc": at, "msg": item.not_json, "type": "json_invalid"}]
            return None
        try:
            event = self._validate(item.value, operator, at)
            topic = EVENT_TOPICS[event.event_type].name
            value = self._encode(event, topic, at)
        except Refusal as refusal:
            result.status, result.reason = refusal.status, refusal.reason
            result.errors = refusal.errors
            return None
        result.event_id = str(event.event_id)
        # The content is the Avro record: the same event in other JSON (trailing zeros, another
        # time zone for the same instant) is the same content, as its derived event id says.
        digest = hashlib.sha256(value).hexdigest()
        entry, first = self.recent.claim(event.event_id, digest)
        if entry.digest != digest:
            result.status = 409
            result.reason = "this event_id was already used for an event with other content"
            return None
        return _Claim(event, topic, value, entry.outcome, first)

    def _validate(self, body: Any, operator: str, at: list[Any]) -> Event:
        where = "event" + "".join(f" {p}" for p in at)
        try:
            event: Event = ANY_EVENT.validate_python(body)
        except ValidationError as exc:
            errors = [
                {"loc": [*at, *err["loc"]], "msg": err["msg"], "type": err["type"]}
                for err in exc.errors(include_url=False, include_input=False)
            ]
            raise Refusal(422, f"{where} is invalid", errors) from None
        if event.operator_id != operator:
            raise Refusal(
                403,
                f"{where} has operator_id {event.operator_id!r}; you may publish only your own "
                f"({operator!r})",
            )
        if event.region != self.region:
            message = f"this gateway publishes to the {self.region.value} cluster"
            raise Refusal(
                422,
                f"{where}: {message}",
                [{"loc": [*at, "region"], "msg": message, "type": "wrong_region"}],
            )
        return event

    def _encode(self, event: Event, topic: str, at: list[Any]) -> bytes:
        try:
            return self.serde.encode(event, topic)
        except AvroWriteError as exc:
            where = "event" + "".join(f" {p}" for p in at)
            errors = [{"loc": at, "msg": str(exc), "type": "avro_value"}]
            raise Refusal(422, f"{where} cannot be written in its schema", errors) from None

    async def _produce(self, claim: _Claim) -> None:
        """Queue a claimed event; its delivery report resolves ``claim.outcome``. A full local
        queue waits for the poller to make room, until the delivery timeout."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.delivery_timeout
        key, outcome = claim.event.key().encode(), claim.outcome
        while not outcome.done():
            try:
                if clients.try_produce(
                    self.producer, claim.topic, claim.value, key, on_delivery=_resolver(outcome)
                ):
                    break
            except KafkaException as exc:
                outcome.set_result(Undelivered(f"the producer refused it: {exc.args[0].str()}"))
                break
            # the local queue is full: the poller makes room, unless time is up
            if loop.time() > deadline or self._stopping.is_set():
                outcome.set_result(Undelivered("the producer queue stayed full"))
            await asyncio.sleep(0.01)

    async def _settle_all(
        self, outcomes: list[asyncio.Future[Delivered | Undelivered]]
    ) -> list[Delivered | Undelivered]:
        """The delivery reports, which librdkafka gives within the delivery timeout (plus its
        once-a-second timeout scan); a shutdown cuts the wait short at the grace period's end.
        One wait for them all; an outcome is never cancelled here, since another request may
        wait for it too (a duplicate in flight)."""
        waiting = [o for o in outcomes if not o.done()]
        if waiting:
            every: asyncio.Future[Any] = asyncio.gather(*waiting)
            stopping: asyncio.Future[Any] = asyncio.ensure_future(self._grace_over())
            try:
                await asyncio.wait(
                    [every, stopping],
                    timeout=self.delivery_timeout + 5,  # a backstop only; the reports come first
                    return_when=asyncio.FIRST_COMPLETED,
                )
            finally:
                stopping.cancel()
        if all(o.done() for o in outcomes):
            return [o.result() for o in outcomes]
        missing = (
            Undelivered("the gateway is stopping and the cluster has not acknowledged")
            if self._stopping.is_set()
            else Undelivered(f"no acknowledgement within {self.delivery_timeout:g} s")
        )
        return [o.result() if o.done() else missing for o in outcomes]

    async def _grace_over(self) -> None:
        await self._stopping.wait()
        # Leave a moment to write the 503 before the server closes connections at the end.
        await asyncio.sleep(max(0.0, self.grace - 0.5))

    async def openapi(self, request: web.Request) -> web.Response:
        return web.json_response(openapi_document(self.region))

    async def health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "region": self.region.value})

    async def readiness(self, request: web.Request) -> web.Response:
        ready = self.reached and not self._stopping.is_set()
        body = {"ready": ready, "cluster_reached": self.reached, "region": self.region.value}
        return web.json_response(body, status=200 if ready else 503)

    async def scrape(self, request: web.Request) -> web.Response:
        body = generate_latest(self.metrics.registry)
        return web.Response(body=body, content_type=CONTENT_TYPE_LATEST.split(";")[0])

    def retry_after(self) -> str:
        """Seconds a client should wait after a 503: one delivery timeout."""
        return str(math.ceil(self.delivery_timeout))

    @web.middleware
    async def _measure(self, request: web.Request, handler: Any) -> web.StreamResponse:
        """Middleware: count every answer by route and status, and time it."""
        started = time.perf_counter()
        status = 500  # an unexpected error, answered 500 by aiohttp
        try:
            response: web.StreamResponse = await handler(request)
            status = response.status
            return response
        except web.HTTPException as answer:
            status = answer.status
            raise
        except asyncio.CancelledError:
            status = 499  # the client went away before its answer
            raise
        finally:
            resource = request.match_info.route.resource
            route = UNMATCHED if resource is None else resource.canonical
            self.metrics.requests.labels(route, str(status)).inc()
            self.metrics.request_seconds.labels(route).observe(time.perf_counter() - started)

    @web.middleware
    async def _refusals(self, request: web.Request, handler: Any) -> web.StreamResponse:
        """Middleware: a :class:`Refusal` raised anywhere becomes its JSON error answer."""
        try:
            return await handler(request)  # type: ignore[no-any-return]
        except Refusal as refusal:
            extra: dict[str, Any] = {}
            headers: dict[str, str] = {}
            if refusal.status == 415:
                extra["accepted_types"] = list(ACCEPTED_TYPES)
                headers["Accept-Post"] = ", ".join(ACCEPTED_TYPES)
            if refusal.status == 503:
                headers["Retry-After"] = self.retry_after()
            raise _error(
                _KINDS[refusal.status], refusal.reason, refusal.errors, headers, **extra
            ) from None


def _resolver(outcome: asyncio.Future[Delivered | Undelivered]) -> Any:
    # Called by producer.poll() in the poller task, so on the event loop's thread.
    def on_delivery(error: KafkaError | None, message: Message) -> None:
        if outcome.done():
            return
        if error is None:
            outcome.set_result(
                Delivered(message.topic() or "", message.partition() or 0, message.offset() or 0)
            )
        else:
            outcome.set_result(Undelivered(f"the cluster did not acknowledge: {error.str()}"))

    return on_delivery


def _error(
    kind: type[web.HTTPException],
    message: str,
    errors: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> web.HTTPException:
    body: dict[str, Any] = {"error": message, **extra}
    if errors is not None:
        body["errors"] = errors
    return kind(text=json.dumps(body), content_type=JSON, headers=headers)


async def _body(request: web.Request) -> Any | list[RawItem]:
    """A JSON object (one event) or the items of a batch; 415 for another content type."""
    if request.content_type in JSON_LINES:
        return parse_json_lines(await request.read())
    if request.content_type != JSON:
        raise Refusal(
            415,
            f"unsupported content type {request.content_type!r}: send one of "
            + ", ".join(ACCEPTED_TYPES),
        )
    try:
        body = json.loads(await request.read())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise Refusal(400, f"body is not JSON: {exc}") from None
    if isinstance(body, list):
        return [RawItem(index=i, value=v) for i, v in enumerate(body)]
    return body


_KINDS: dict[int, type[web.HTTPException]] = {
    400: web.HTTPBadRequest,
    403: web.HTTPForbidden,
    409: web.HTTPConflict,
    413: web.HTTPRequestEntityTooLarge,
    415: web.HTTPUnsupportedMediaType,
    422: web.HTTPUnprocessableEntity,
    503: web.HTTPServiceUnavailable,
}


def openapi_document(region: Region) -> dict[str, Any]:
    event_schema = {
        "oneOf": [{"$ref": f"#/components/schemas/{m.__name__}"} for m in EVENT_MODELS.values()]
    }
    schemas = ANY_EVENT.json_schema(ref_template="#/components/schemas/{model}")["$defs"]
    error = {
        "type": "object",
        "properties": {
            "error": {"type": "string"},
            "errors": {"type": "array", "items": {"type": "object"}},
        },
    }
    receipt = {
        "event_id": {"type": "string", "format": "uuid"},
        "duplicate": {"type": "boolean", "description": "published before; nothing new"},
        "topic": {"type": "string"},
        "partition": {"type": "integer"},
        "offset": {"type": "integer"},
    }
    accepted = {
        "type": "object",
        "properties": {
            "accepted": {"type": "integer"},
            "event_ids": {"type": "array", "items": {"type": "string"}},
            **{k: v for k, v in receipt.items() if k != "event_id"},
        },
    }
    item = {
        "type": "object",
        "required": ["index", "status", "duplicate"],
        "properties": {
            "index": {"type": "integer", "description": "position of the item, from 0"},
            "line": {"type": "integer", "description": "JSON Lines only: line, from 1"},
            "status": {"type": "integer", "enum": [202, 403, 409, 422, 503]},
            "reason": {"type": "string"},
            "errors": {"type": "array", "items": {"type": "object"}},
            **receipt,
        },
    }
    batch = {
        "type": "object",
        "properties": {
            "accepted": {"type": "integer", "description": "items answered 202"},
            "duplicates": {"type": "integer"},
            "refused": {"type": "integer", "description": "items answered 403, 409 or 422"},
            "unacknowledged": {"type": "integer", "description": "items answered 503"},
            "event_ids": {"type": "array", "items": {"type": "string"}},
            "items": {"type": "array", "items": item},
        },
    }
    lines = {kind: {"schema": event_schema} for kind in JSON_LINES}  # one event per line
    array = {"type": "array", "items": event_schema}
    retry = {"Retry-After": {"description": "seconds to wait", "schema": {"type": "integer"}}}
    stopping = "no acknowledgement within the delivery timeout, or the gateway is stopping"
    common = {
        "400": _answer("an application/json body that is not JSON", error),
        "401": _answer("no or unknown credentials", error),
        "413": _answer(f"more than {MAX_BATCH} events", error),
        "415": _answer("a content type other than " + ", ".join(ACCEPTED_TYPES), error),
    }
    one = {
        **common,
        "202": _answer(
            "published, or published before (duplicate): the cluster acknowledged it; "
            "an array or JSON Lines is answered as by /events/batch",
            {"oneOf": [accepted, batch]},
        ),
        "207": _answer("a batch whose items have different statuses", batch),
        "403": _answer("an event of another operator", error),
        "409": _answer("event_id already used for other content", error),
        "422": _answer("an invalid event or another region's", error),
        "503": _answer(f"{stopping}; resending is safe (idempotent by event_id)", error, retry),
    }
    per_item = "per item, each answered in items[] by index"
    open_: dict[str, Any] = {"security": []}  # probes and scrapers carry no credentials
    ok = {"200": {"description": "ok"}}
    many = {
        **common,
        "202": _answer("every item published (or a duplicate)", batch),
        "207": _answer(f"items with different statuses; {per_item}", batch),
        "403": _answer("every item another operator's", batch),
        "409": _answer("every item a conflicting event_id", batch),
        "422": _answer("every item invalid or not JSON (by line), or none", batch),
        "503": _answer(
            f"some items: {stopping}; the others are published. Resend the batch: published "
            "items come back as duplicates",
            batch,
            retry,
        ),
    }
    return {
        "openapi": "3.0.3",
        "info": {
            "title": f"batteryloop ingestion gateway ({region.value})",
            "version": "2",
            "description": "Publish lifecycle events to the "
            f"{region.value} cluster. Authenticate with a bearer token or a client certificate "
            "whose common name is your operator id; you may publish only your own events. "
            "Idempotent by event_id: resending an event is safe.",
        },
        "security": [{"bearer": []}],
        "paths": {
            "/events": {
                "post": {
                    "summary": "publish one event (or a batch, as /events/batch)",
                    "requestBody": {
                        "required": True,
                        "content": {JSON: {"schema": {"oneOf": [event_schema, array]}}, **lines},
                    },
                    "responses": one,
                }
            },
            "/events/batch": {
                "post": {
                    "summary": f"publish up to {MAX_BATCH} events, {per_item}",
                    "requestBody": {
                        "required": True,
                        "content": {JSON: {"schema": array}, **lines},
                    },
                    "responses": many,
                }
            },
            "/health": {"get": {**open_, "summary": "liveness", "responses": ok}},
            "/healthz": {"get": {**open_, "summary": "liveness", "responses": ok}},
            "/readyz": {
                "get": {
                    **open_,
                    "summary": "readiness: the producer has reached the cluster",
                    "responses": {
                        "200": {"description": "ready"},
                        "503": {"description": "not reached yet, or stopping"},
                    },
                }
            },
            "/metrics": {
                "get": {
                    **open_,
                    "summary": "Prometheus metrics",
                    "responses": {"200": {"description": "text exposition format"}},
                }
            },
        },
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


def _answer(
    description: str, schema: dict[str, Any], headers: dict[str, Any] | None = None
) -> dict[str, Any]:
    answer: dict[str, Any] = {"description": description, "content": {JSON: {"schema": schema}}}
    if headers:
        answer["headers"] = headers
    return answer


def tls_context(cert: Path, key: Path, client_ca: Path | None) -> ssl.SSLContext:
    """Server TLS; with ``client_ca``, client certificates are requested and verified (a
    request without one still needs a bearer token)."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    if client_ca is not None:
        context.load_verify_locations(client_ca)
        context.verify_mode = ssl.CERT_OPTIONAL
    return context


def run_gateway(
    gateway: Gateway, host: str, port: int, context: ssl.SSLContext | None = None
) -> None:
    """Serve until SIGTERM or SIGINT, then stop within the gateway's grace period."""
    web.run_app(
        gateway.app(),
        host=host,
        port=port,
        ssl_context=context,
        print=None,
        shutdown_timeout=gateway.grace,
        access_log=None,
    )
