"""Lifecycle events -> messages to the entities whose state they change.

An event is about one entity (its Kafka key) but touches others: a refining batch creates its
output lots and debits its input lots; a manufacture event creates a battery, debits lots and
makes cells part of a pack; a shredding event turns batteries to waste and creates a black mass
lot. Routing splits each event into one message per touched entity, keyed by that entity, so
every entity's state is changed only by messages to its own key (one partition, one writer).

Entity keys: ``lot/<lot id>``, ``battery/<battery id>``, ``operator/<operator id>``; the tallies
add ``recycled-content/...`` and ``recovery/...`` (see :mod:`streams.domain.entities`).
Every message carries the id of the event it came from, which is what makes applying it twice
harmless.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from schemas.events import (
    CertificationEvent,
    Composition,
    Event,
    ExtractionEvent,
    LotInput,
    LotOutput,
    ManufactureEvent,
    RecoveryEvent,
    RefiningEvent,
    ShipmentEvent,
    ShipmentSubject,
    ShreddingEvent,
    UseCollectionEvent,
    WasteOrigin,
)
from streams.domain.quantities import grams, micros, ppm

Message = dict[str, Any]
Addressed = tuple[str, Message]


def lot_key(lot_id: str) -> str:
    return f"lot/{lot_id}"


def battery_key(battery_id: str) -> str:
    return f"battery/{battery_id}"


def operator_key(operator_id: str) -> str:
    return f"operator/{operator_id}"


def _comp(composition: Composition) -> dict[str, int]:
    return {metal.value: ppm(share) for metal, share in sorted(composition.items()) if share}


def _taken(inputs: Iterable[LotInput]) -> dict[str, int]:
    """Grams taken from each input lot; a lot listed twice is taken twice."""
    out: dict[str, int] = defaultdict(int)
    for item in inputs:
        out[item.lot_id] += grams(item.mass_kg)
    return dict(sorted(out.items()))


def _envelope(event: Event) -> Message:
    return {
        "eid": str(event.event_id),
        "type": event.event_type,
        "at": micros(event.occurred_at),
        "op": event.operator_id,
        "site": event.site_id,
        "region": event.region.value,
    }


def _created(env: Message, kind: str, output: LotOutput, extra: Message) -> Addressed:
    """The message creating an output lot of a refining batch or a recovery."""
    fact = {
        **env,
        "kind": kind,
        "form": output.form.value,
        "material": output.material,
        "g": grams(output.mass_kg),
        "comp": _comp(output.composition),
        **extra,
    }
    return lot_key(output.lot_id), {"m": "created", "fact": fact}


def route(event: Event) -> list[Addressed]:
    """The messages ``event`` sends, each addressed to an entity key."""
    env = _envelope(event)
    out: list[Addressed] = []
    if isinstance(event, ExtractionEvent):
        fact = {
            **env,
            "kind": "extracted",
            "form": event.form.value,
            "material": event.material,
            "g": grams(event.mass_kg),
            "comp": _comp(event.composition),
            "country": event.country,
        }
        out.append((lot_key(event.lot_id), {"m": "created", "fact": fact}))
    elif isinstance(event, RefiningEvent):
        taken = _taken(event.inputs)
        batch = {o.lot_id: [grams(o.mass_kg), _comp(o.composition)] for o in event.outputs}
        consumers = sorted(lot_key(o.lot_id) for o in event.outputs)
        for output in event.outputs:
            extra = {"batch": event.batch_id, "inputs": taken, "batch_outputs": batch}
            out.append(_created(env, "refined", output, extra))
        for lot_id, g in taken.items():
            debit = {**env, "g": g, "consumers": consumers}
            out.append((lot_key(lot_id), {"m": "debit", "fact": debit}))
    elif isinstance(event, ManufactureEvent):
        taken = _taken(event.inputs)
        cf = event.carbon_footprint
        fact = {
            **env,
            "passport": str(event.passport_id),
            "level": event.level.value,
            "category": event.category.value,
            "model": event.model,
            "chemistry": event.chemistry,
            "g": grams(event.mass_kg),
            "kwh": str(event.capacity_kwh),
            "cf": None if cf is None else cf.model_dump(mode="json", exclude_none=True),
            "inputs": taken,
            "components": sorted(set(event.components)),
        }
        key = battery_key(event.battery_id)
        out.append((key, {"m": "manufactured", "fact": fact}))
        for lot_id, g in taken.items():
            out.append(
                (lot_key(lot_id), {"m": "debit", "fact": {**env, "g": g, "consumers": [key]}})
            )
        for component in fact["components"]:
            part = {**env, "parent": key}
            out.append((battery_key(component), {"m": "part_of", "fact": part}))
    elif isinstance(event, UseCollectionEvent):
        fact = {
            **env,
            "action": event.action.value,
            "status": event.status.value,
            "soh": None if event.state_of_health is None else str(event.state_of_health),
            "new_passport": None if event.new_passport_id is None else str(event.new_passport_id),
            "predecessor": (
                None
                if event.predecessor_passport_id is None
                else str(event.predecessor_passport_id)
            ),
        }
        out.append((battery_key(event.battery_id), {"m": "used", "fact": fact}))
    elif isinstance(event, ShreddingEvent):
        pre = sum(
            grams(i.mass_kg) for i in event.inputs if i.waste_origin is WasteOrigin.pre_consumer
        )
        post = sum(grams(i.mass_kg) for i in event.inputs) - pre
        fact = {
            **env,
            "kind": "shredded",
            "form": "black_mass",
            "material": "black mass",
            "g": grams(event.mass_kg),
            "comp": _comp(event.composition),
            "pre_g": pre,
            "post_g": post,
        }
        out.append((lot_key(event.black_mass_lot_id), {"m": "created", "fact": fact}))
        for item in event.inputs:
            shred = {**env, "lot": event.black_mass_lot_id, "g": grams(item.mass_kg)}
            out.append((battery_key(item.battery_id), {"m": "shredded", "fact": shred}))
    elif isinstance(event, RecoveryEvent):
        bm = event.black_mass_lot_id
        outputs = {o.lot_id: [grams(o.mass_kg), _comp(o.composition)] for o in event.outputs}
        consumers = sorted(lot_key(o.lot_id) for o in event.outputs)
        debit = {
            **env,
            "g": grams(event.input_mass_kg),
            "consumers": consumers,
            "recovery": {"outputs": outputs},
        }
        out.append((lot_key(bm), {"m": "debit", "fact": debit}))
        for output in event.outputs:
            out.append(_created(env, "recovered", output, {"inputs": {bm: debit["g"]}}))
    elif isinstance(event, ShipmentEvent):
        fact = {
            **env,
            "g": grams(event.mass_kg),
            "from_site": event.from_site_id,
            "from_country": event.from_country,
            "to_site": event.to_site_id,
            "to_country": event.to_country,
            "hs": event.hs_code,
        }
        subject = event.subject_id
        key = lot_key(subject) if event.subject is ShipmentSubject.lot else battery_key(subject)
        out.append((key, {"m": "shipped", "fact": fact}))
    elif isinstance(event, CertificationEvent):
        fact = {
            **env,
            "action": event.action.value,
            "scheme_region": event.scheme_region.value,
            "scheme": event.scheme,
            "certificate": event.certificate_id,
            "until": None if event.valid_until is None else micros(event.valid_until),
        }
        out.append((operator_key(event.subject_operator_id), {"m": "certification", "fact": fact}))
    else:  # pragma: no cover - every event type is routed above
        raise TypeError(f"no routing for {type(event).__name__}")
    return out


def route_batch(events: Iterable[Event]) -> list[Addressed]:
    """Route a batch, plus one certification check per operator for the batch's events.

    Certification events are not checked: they come from the certifying body, not from an
    operator in the supply chain.
    """
    out: list[Addressed] = []
    checks: dict[str, list[list[Any]]] = defaultdict(list)
    for event in events:
        out.extend(route(event))
        if not isinstance(event, CertificationEvent):
            checks[event.operator_id].append(
                [str(event.event_id), micros(event.occurred_at), event.event_type, event.key()]
            )
    for operator_id, items in checks.items():
        out.append((operator_key(operator_id), {"m": "check", "events": items}))
    return out
