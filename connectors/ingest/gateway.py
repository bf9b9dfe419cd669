"""The HTTP ingestion gateway: factory systems and recyclers POST events as JSON.

* ``POST /events`` one event, ``POST /events/batch`` a JSON array of events.
* Every operator authenticates with a bearer token from the tokens file (TOML: a table
  ``[tokens]`` of ``"<token>" = "<operator id>"``), or, with TLS and a client CA configured,
  with a client certificate whose subject common name is its operator id. No or unknown
  credentials: **401**. An event whose ``operator_id`` is not the caller's own: **403**.
* An event that does not validate, or belongs to another region than this gateway's cluster:
  **422** with the validation errors (for a batch, by index; nothing of it is published).
* **202** only after the cluster acknowledged every event (acks=all, idempotent producer); a
  failed delivery is **503** and says so.
* ``GET /openapi.json`` describes all of this; ``GET /health`` answers 200.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import ssl
import tomllib
from pathlib import Path
from typing import Any

from aiohttp import web
from confluent_kafka import KafkaError, Message
from pydantic import ValidationError

from connectors.ingest.producer import DEFAULTS, ENFORCED
from connectors.kafka import clients
from schemas.events import ANY_EVENT, EVENT_MODELS, Event
from schemas.serde import Serde
from schemas.topics import EVENT_TOPICS
from schemas.values import Region

MAX_BATCH = 10_000


class TokenError(ValueError):
    pass


def load_tokens(path: Path) -> dict[str, str]:
    """Bearer token -> operator id, from a TOML file with a ``[tokens]`` table."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise TokenError(f"{path}: cannot read the tokens file: {exc}") from exc
    tokens = data.get("tokens")
    if not isinstance(tokens, dict) or not tokens:
        raise TokenError(f'{path}: expected a [tokens] table of "<token>" = "<operator id>"')
    for token, operator in tokens.items():
        if len(token) < 16 or not isinstance(operator, str):
            raise TokenError(f"{path}: token for {operator!r}: tokens must be 16+ characters")
    return dict(tokens)


class Gateway:
    def __init__(
        self, region: Region, kafka: dict[str, str], tokens: dict[str, str], serde: Serde
    ) -> None:
        self.region = region
        self.tokens = tokens
        self.serde = serde
        self.producer = clients.producer({**DEFAULTS, "linger.ms": "5", **kafka, **ENFORCED})
        self._poller: asyncio.Task[None] | None = None

    # --- the app ------------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024, middlewares=[_invalid_as_422])
        app.router.add_post("/events", self.post_event)
        app.router.add_post("/events/batch", self.post_batch)
        app.router.add_get("/openapi.json", self.openapi)
        app.router.add_get("/health", self.health)
        app.on_startup.append(self._start)
        app.on_cleanup.append(self._stop)
        return app

    async def _start(self, app: web.Application) -> None:
        self._poller = asyncio.create_task(self._poll())

    async def _stop(self, app: web.Application) -> None:
        if self._poller is not None:
            self._poller.cancel()
        await asyncio.to_thread(self.producer.flush, 10)

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
            for token, operator in self.tokens.items():
                if hmac.compare_digest(token.encode(), given.encode()):
                    return operator
            raise _error(web.HTTPUnauthorized, "unknown bearer token")
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
        body = await _json(request)
        event = self._validate(body, operator, where=None)
        await self._publish([event])
        return web.json_response({"accepted": 1, "event_ids": [str(event.event_id)]}, status=202)

    async def post_batch(self, request: web.Request) -> web.Response:
        operator = self.caller(request)
        body = await _json(request)
        if not isinstance(body, list) or not body:
            raise _error(web.HTTPUnprocessableEntity, "expected a non-empty JSON array of events")
        if len(body) > MAX_BATCH:
            raise _error(web.HTTPRequestEntityTooLarge, f"at most {MAX_BATCH} events per batch")
        errors: list[dict[str, Any]] = []
        events: list[Event] = []
        for i, item in enumerate(body):
            try:
                events.append(self._validate(item, operator, where=i))
            except _Invalid as exc:
                errors.extend(exc.errors)
        if errors:
            raise _error(web.HTTPUnprocessableEntity, "invalid events; none published", errors)
        await self._publish(events)
        return web.json_response(
            {"accepted": len(events), "event_ids": [str(e.event_id) for e in events]},
            status=202,
        )

    def _validate(self, body: Any, operator: str, where: int | None) -> Event:
        at: list[Any] = [] if where is None else [where]
        try:
            event: Event = ANY_EVENT.validate_python(body)
        except ValidationError as exc:
            raise _Invalid(
                [
                    {"loc": [*at, *err["loc"]], "msg": err["msg"], "type": err["type"]}
                    for err in exc.errors(include_url=False, include_input=False)
                ]
            ) from None
        if event.operator_id != operator:
            raise _error(
                web.HTTPForbidden,
                f"event{'' if where is None else f' {where}'} has operator_id "
                f"{event.operator_id!r}; you may publish only your own ({operator!r})",
            )
        if event.region != self.region:
            raise _Invalid(
                [
                    {
                        "loc": [*at, "region"],
                        "msg": f"this gateway publishes to the {self.region.value} cluster",
                        "type": "wrong_region",
                    }
                ]
            )
        return event

    async def _publish(self, events: list[Event]) -> None:
        loop = asyncio.get_running_loop()
        futures = []
        for event in events:
            future: asyncio.Future[None] = loop.create_future()
            topic = EVENT_TOPICS[event.event_type].name
            # a full local queue blocks here while delivery reports (served in this thread,
            # so the futures resolve on the loop) make room
            clients.produce(
                self.producer,
                topic,
                self.serde.encode(event, topic),
                event.key().encode(),
                on_delivery=_resolver(loop, future),
            )
            futures.append(future)
        failures = [r for r in await asyncio.gather(*futures, return_exceptions=True) if r]
        if failures:
            raise _error(
                web.HTTPServiceUnavailable,
                f"the cluster did not acknowledge {len(failures)} of {len(events)} events "
                f"({failures[0]}); retry them (event ids make retries safe)",
            )

    async def openapi(self, request: web.Request) -> web.Response:
        return web.json_response(openapi_document(self.region))

    async def health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "region": self.region.value})


class _Invalid(Exception):
    def __init__(self, errors: list[dict[str, Any]]) -> None:
        self.errors = errors


def _resolver(loop: asyncio.AbstractEventLoop, future: asyncio.Future[None]) -> Any:
    def on_delivery(error: KafkaError | None, message: Message) -> None:
        if not future.done():
            future.set_result(None if error is None else error.str())  # type: ignore[arg-type]

    return on_delivery


def _error(
    kind: type[web.HTTPException], message: str, errors: list[dict[str, Any]] | None = None
) -> web.HTTPException:
    body: dict[str, Any] = {"error": message}
    if errors is not None:
        body["errors"] = errors
    return kind(text=json.dumps(body), content_type="application/json")


async def _json(request: web.Request) -> Any:
    try:
        return await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise _error(web.HTTPBadRequest, f"body is not JSON: {exc}") from None


@web.middleware
async def _invalid_as_422(request: web.Request, handler: Any) -> web.StreamResponse:
    try:
        return await handler(request)  # type: ignore[no-any-return]
    except _Invalid as exc:
        raise _error(
            web.HTTPUnprocessableEntity, "invalid event; not published", exc.errors
        ) from None


def openapi_document(region: Region) -> dict[str, Any]:
    event_schema = {
        "oneOf": [{"$ref": f"#/components/schemas/{m.__name__}"} for m in EVENT_MODELS.values()]
    }
    schemas = ANY_EVENT.json_schema(ref_template="#/components/schemas/{model}")["$defs"]
    error = {
        "type": "object",
        "properties": {"error": {"type": "string"}, "errors": {"type": "array"}},
    }
    accepted = {
        "type": "object",
        "properties": {"accepted": {"type": "integer"}, "event_ids": {"type": "array"}},
    }

    def responses(batch: bool) -> dict[str, Any]:
        return {
            "202": {
                "description": "published: the cluster acknowledged every event",
                "content": {"application/json": {"schema": accepted}},
            },
            "401": {"description": "no or unknown credentials", "content": _json_of(error)},
            "403": {"description": "an event of another operator", "content": _json_of(error)},
            "422": {
                "description": "invalid event(s) or another region's"
                + ("; errors by index, nothing published" if batch else ""),
                "content": _json_of(error),
            },
            "503": {"description": "the cluster did not acknowledge", "content": _json_of(error)},
        }

    return {
        "openapi": "3.0.3",
        "info": {
            "title": f"batteryloop ingestion gateway ({region.value})",
            "version": "1",
            "description": "Publish lifecycle events to the "
            f"{region.value} cluster. Authenticate with a bearer token or a client certificate "
            "whose common name is your operator id; you may publish only your own events.",
        },
        "security": [{"bearer": []}],
        "paths": {
            "/events": {
                "post": {
                    "summary": "publish one event",
                    "requestBody": {"required": True, "content": _json_of(event_schema)},
                    "responses": responses(False),
                }
            },
            "/events/batch": {
                "post": {
                    "summary": f"publish up to {MAX_BATCH} events, all or none",
                    "requestBody": {
                        "required": True,
                        "content": _json_of({"type": "array", "items": event_schema}),
                    },
                    "responses": responses(True),
                }
            },
            "/health": {
                "get": {"summary": "liveness", "responses": {"200": {"description": "ok"}}}
            },
        },
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


def _json_of(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


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
    web.run_app(gateway.app(), host=host, port=port, ssl_context=context, print=None)
