"""Alerts and published documents: built from state, published only when they change.

An entity remembers the digest of what it last published (a document, each open alert), so a
batch that changes nothing visible publishes nothing, and an alert that no longer holds is
published once more as resolved.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Protocol

import msgspec

from schemas.rules.countries import alliance
from schemas.values import ALLIANCE_COUNTRIES
from streams.domain.entities.effects import Config, Document, Effects
from streams.domain.messages import Shipped
from streams.domain.quantities import iso, kg_from_grams
from streams.domain.states import AlertMemory, EntityState

#: Published documents go to these outputs (see the topic registry for their topics).
PASSPORTS, LOTS, RECYCLED_CONTENT, RECOVERY, OPERATORS, ALERTS = (
    "passports",
    "lots",
    "recycled-content",
    "recovery",
    "operators",
    "alerts",
)
#: Disclosure completeness per maker (its own output: see :mod:`.disclosure`).
DISCLOSURE = "disclosure"
RESOLVED = "resolved"


class Alerting(Protocol):
    """A state that remembers its published alerts."""

    alerts: dict[str, AlertMemory]


class Waiting(Protocol):
    """A state that can be referenced before it is created."""

    waiting_since: int | None


_JSON = msgspec.json.Encoder(order="sorted")


def canonical_json(document: Any) -> bytes:
    """``document`` as compact JSON with sorted keys and non-ASCII escaped: the bytes of
    ``json.dumps(document, sort_keys=True, separators=(",", ":"))``, which digests (stored in
    states) and published documents have always been.

    msgspec writes the same bytes ~7x faster for what documents hold (string keys; strings,
    integers, booleans, None; quantities are strings, never floats), except that it writes
    non-ASCII characters and DEL unescaped, and cannot write integers beyond 64 bits: those
    documents take the standard library's way.
    """
    try:
        text = _JSON.encode(document)
    except (OverflowError, TypeError):
        text = b"\x7f"  # not written: take the fallback below
    if text.isascii() and b"\x7f" not in text:
        return text
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


def digest(document: Any) -> str:
    return hashlib.blake2b(canonical_json(document), digest_size=12).hexdigest()


def publish_if_changed(
    state: EntityState, fx: Effects, output: str, key: str, document: Document
) -> None:
    d = digest(document)
    if state.published != d:
        state.published = d
        fx.publish(output, key, document)


def alert(kind: str, subject: str, message: str, **details: Any) -> Document:
    return {"kind": kind, "subject": subject, "message": message, "details": details}


def _resolved(alert_id: str, memory: AlertMemory) -> Document:
    return {
        "alert_id": alert_id,
        "status": RESOLVED,
        "kind": memory.kind,
        "subject": memory.subject,
        "message": "resolved by later events",
        "details": {},
    }


def publish_alerts(state: Alerting, fx: Effects, current: dict[str, Document]) -> None:
    """Publish alerts that opened or changed; a vanished one is published as resolved."""
    known = state.alerts
    for alert_id, open_alert in sorted(current.items()):
        document = {"alert_id": alert_id, "status": "open", **open_alert}
        d = digest(document)
        memory = known.get(alert_id)
        if memory is None or memory.digest != d:
            known[alert_id] = AlertMemory(d, open_alert["kind"], open_alert["subject"])
            fx.publish(ALERTS, alert_id, document)
            if memory is None or memory.digest == RESOLVED:  # not a change of an open one
                fx.raised[open_alert["kind"]] = fx.raised.get(open_alert["kind"], 0) + 1
    for alert_id in sorted(set(known) - set(current)):
        memory = known[alert_id]
        if memory.digest != RESOLVED:
            memory.digest = RESOLVED
            fx.publish(ALERTS, alert_id, _resolved(alert_id, memory))


def unresolved_alert(
    state: Waiting,
    key: str,
    now: int,
    cfg: Config,
    resolved: bool,
    references: list[str],
    message: str,
) -> dict[str, Document]:
    """An entity referenced (by ``references``, event ids) but never created is alerted once it
    has waited ``cfg.grace_ms``; ``waiting_since`` records when the wait began."""
    if resolved or not references:
        state.waiting_since = None
        return {}
    if state.waiting_since is None:
        state.waiting_since = now
    if now - state.waiting_since < cfg.grace_ms:
        return {}
    return {
        f"unresolved/{key}": alert(
            "unresolved_reference", key, message, event_ids=sorted(set(references))
        )
    }


def is_outflow(shipment: Shipped) -> bool:
    """From inside the alliance (EU, Japan) to outside it."""
    return (
        shipment.from_country in ALLIANCE_COUNTRIES
        and shipment.to_country not in ALLIANCE_COUNTRIES
    )


def outflow_alert(key: str, shipment: Shipped, what: str) -> Document:
    return alert(
        "outflow",
        key,
        f"{what} shipped from {shipment.from_country} to {shipment.to_country}, "
        "outside the alliance",
        event_ids=[shipment.event_id],
        from_country=shipment.from_country,
        to_country=shipment.to_country,
        mass_kg=kg_from_grams(shipment.grams),
        hs_code=shipment.hs_code,
        rule="alliance-outflow",
        data=[alliance().cite()],
    )


def holder(shipments: dict[str, Shipped]) -> Document | None:
    """Where the latest shipment took an entity, and since when."""
    if not shipments:
        return None
    last = max(shipments.values(), key=lambda s: (s.occurred_at, s.event_id))
    return {"site_id": last.to_site_id, "country": last.to_country, "since": iso(last.occurred_at)}


def is_import(shipment: Shipped) -> bool:
    """A shipment from outside the alliance into it."""
    return (
        shipment.from_country not in ALLIANCE_COUNTRIES
        and shipment.to_country in ALLIANCE_COUNTRIES
    )


def non_compliant_import_alert(
    key: str, shipment: Shipped, what: str, maker: str, rules: str, missing: list[str]
) -> Document:
    """A battery of a maker outside the alliance shipped into it without disclosing what the
    alliance's rules require of every battery (``missing``, under rule set ``rules``)."""
    return alert(
        "non_compliant_import",
        key,
        f"{what} of {maker}, a maker outside the alliance, shipped from "
        f"{shipment.from_country} to {shipment.to_country} without disclosing: "
        f"{', '.join(missing)}",
        event_ids=[shipment.event_id],
        manufacturer=maker,
        from_country=shipment.from_country,
        to_country=shipment.to_country,
        rules=rules,
        missing=missing,
    )
