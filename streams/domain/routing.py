"""Lifecycle events -> messages to the entities whose state they change.

An event is about one entity (its Kafka key) but touches others: a refining batch creates its
output lots and debits its input lots; a manufacture event creates a battery, debits lots and
makes cells part of a pack; a shredding event turns batteries to waste and creates a black mass
lot. Routing splits each event into one message per touched entity, keyed by that entity, so
every entity's state is changed only by messages to its own key (one partition, one writer).
:func:`route` dispatches on the event's type to one small function per type.

Entity keys: ``lot/<lot id>``, ``battery/<battery id>``, ``operator/<operator id>``; the tallies
add ``recycled-content/...`` and ``recovery/...`` (see :mod:`streams.domain.entities`).
Every message carries the id of the event it came from, which is what makes applying it twice
harmless. The messages themselves are defined in :mod:`streams.domain.messages`.

An event of the partner region arrives as a :class:`Received`: the event as the partner's
data-sharing policy let it through, with the agreement it came under and the field paths the
policy redacted; every fact it makes carries both (documents show them, see
:mod:`streams.domain.entities`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
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
from streams.domain.messages import (
    Addressed,
    BlackMassClass,
    Certification,
    CertificationCheck,
    CheckedEvent,
    LotCreated,
    LotDebited,
    LotPortion,
    Manufactured,
    PartOf,
    SharedUnder,
    Shipped,
    Shredded,
    Used,
)
from streams.domain.quantities import grams, micros, ppm

__all__ = [
    "Addressed",
    "Received",
    "battery_key",
    "lot_key",
    "operator_key",
    "route",
    "route_batch",
]


@dataclass(frozen=True, slots=True)
class Received:
    """An event and how it reached this ledger: ``shared`` is None for one published on the
    ledger's own cluster, else the agreement the partner region shared it under; ``redacted``
    the event's field paths that policy dropped or transformed."""

    event: Event
    shared: SharedUnder | None = None
    redacted: tuple[str, ...] = ()


def lot_key(lot_id: str) -> str:
    return f"lot/{lot_id}"


def battery_key(battery_id: str) -> str:
    return f"battery/{battery_id}"


def operator_key(operator_id: str) -> str:
    return f"operator/{operator_id}"


def _ppm(composition: Composition) -> dict[str, int]:
    return {metal.value: ppm(share) for metal, share in sorted(composition.items()) if share}


def _taken(inputs: Iterable[LotInput]) -> dict[str, int]:
    """Grams taken from each input lot; a lot listed twice is taken twice."""
    out: dict[str, int] = defaultdict(int)
    for item in inputs:
        out[item.lot_id] += grams(item.mass_kg)
    return dict(sorted(out.items()))


def _envelope(event: Event, via: Received | None = None) -> dict[str, Any]:
    """The fields every fact repeats from its event (and how the event arrived)."""
    envelope = {
        "event_id": str(event.event_id),
        "event_type": event.event_type,
        "occurred_at": micros(event.occurred_at),
        "operator_id": event.operator_id,
        "site_id": event.site_id,
        "region": event.region.value,
    }
    if via is not None and via.shared is not None:
        envelope["shared"] = via.shared
        envelope["redacted"] = tuple(sorted(set(via.redacted)))
    return envelope


def _portion(output: LotOutput) -> LotPortion:
    return LotPortion(grams(output.mass_kg), _ppm(output.composition))


def _output_created(env: dict[str, Any], kind: str, output: LotOutput, **extra: Any) -> Addressed:
    """The message creating an output lot of a refining batch or a recovery."""
    created = LotCreated(
        **env,
        kind=kind,
        form=output.form.value,
        material=output.material,
        grams=grams(output.mass_kg),
        composition=_ppm(output.composition),
        **extra,
    )
    return lot_key(output.lot_id), created


def _debits(env: dict[str, Any], taken: dict[str, int], consumers: list[str]) -> list[Addressed]:
    return [
        (lot_key(lot_id), LotDebited(**env, grams=g, consumers=consumers))
        for lot_id, g in taken.items()
    ]


def _route_extraction(event: ExtractionEvent, env: dict[str, Any]) -> list[Addressed]:
    created = LotCreated(
        **env,
        kind="extracted",
        form=event.form.value,
        material=event.material,
        grams=grams(event.mass_kg),
        composition=_ppm(event.composition),
        country=event.country,
    )
    return [(lot_key(event.lot_id), created)]


def _route_refining(event: RefiningEvent, env: dict[str, Any]) -> list[Addressed]:
    taken = _taken(event.inputs)
    batch = {o.lot_id: _portion(o) for o in event.outputs}
    out = [
        _output_created(
            env, "refined", o, batch_id=event.batch_id, inputs=taken, batch_outputs=batch
        )
        for o in event.outputs
    ]
    return out + _debits(env, taken, sorted(lot_key(o.lot_id) for o in event.outputs))


def _route_manufacture(event: ManufactureEvent, env: dict[str, Any]) -> list[Addressed]:
    taken = _taken(event.inputs)
    cf = event.carbon_footprint
    key = battery_key(event.battery_id)
    made = Manufactured(
        **env,
        passport_id=str(event.passport_id),
        level=event.level.value,
        category=event.category.value,
        model=event.model,
        chemistry=event.chemistry,
        grams=grams(event.mass_kg),
        capacity_kwh=str(event.capacity_kwh),
        carbon_footprint=None if cf is None else cf.model_dump(mode="json", exclude_none=True),
        inputs=taken,
        components=sorted(set(event.components)),
        manufacture_country=event.manufacture_country,
        manufacturer_country=event.manufacturer_country,
        due_diligence_report=event.due_diligence_report,
        hazardous_substances=event.hazardous_substances,
        extinguishing_agent=event.extinguishing_agent,
        gtin=event.gtin,
    )
    parts: list[Addressed] = [(battery_key(c), PartOf(**env, parent=key)) for c in made.components]
    return [(key, made), *_debits(env, taken, [key]), *parts]


def _optional_str(value: object | None) -> str | None:
    return None if value is None else str(value)


def _route_use(event: UseCollectionEvent, env: dict[str, Any]) -> list[Addressed]:
    used = Used(
        **env,
        action=event.action.value,
        status=event.status.value,
        state_of_health=_optional_str(event.state_of_health),
        new_passport_id=_optional_str(event.new_passport_id),
        predecessor_passport_id=_optional_str(event.predecessor_passport_id),
    )
    return [(battery_key(event.battery_id), used)]


def _classification(event: ShreddingEvent) -> BlackMassClass | None:
    c = event.classification
    if c is None:
        return None
    return BlackMassClass(
        waste_code=c.waste_code,
        hazardous=c.hazardous,
        basel_entry=c.basel_entry,
        hs_code=c.hs_code,
        chemistry_family=c.chemistry_family.value,
        meets_gb_t_45203=c.meets_gb_t_45203,
    )


def _route_shredding(event: ShreddingEvent, env: dict[str, Any]) -> list[Addressed]:
    pre = sum(grams(i.mass_kg) for i in event.inputs if i.waste_origin is WasteOrigin.pre_consumer)
    post = sum(grams(i.mass_kg) for i in event.inputs) - pre
    black_mass = LotCreated(
        **env,
        kind="shredded",
        form="black_mass",
        material="black mass",
        grams=grams(event.mass_kg),
        composition=_ppm(event.composition),
        pre_consumer_grams=pre,
        post_consumer_grams=post,
        classification=_classification(event),
    )
    shredded: list[Addressed] = [
        (
            battery_key(item.battery_id),
            Shredded(
                **env,
                black_mass_lot_id=event.black_mass_lot_id,
                grams=grams(item.mass_kg),
            ),
        )
        for item in event.inputs
    ]
    return [(lot_key(event.black_mass_lot_id), black_mass), *shredded]


def _route_recovery(event: RecoveryEvent, env: dict[str, Any]) -> list[Addressed]:
    black_mass = event.black_mass_lot_id
    debit = LotDebited(
        **env,
        grams=grams(event.input_mass_kg),
        consumers=sorted(lot_key(o.lot_id) for o in event.outputs),
        recovery_outputs={o.lot_id: _portion(o) for o in event.outputs},
    )
    created = [
        _output_created(env, "recovered", o, inputs={black_mass: debit.grams})
        for o in event.outputs
    ]
    return [(lot_key(black_mass), debit), *created]


def _route_shipment(event: ShipmentEvent, env: dict[str, Any]) -> list[Addressed]:
    shipped = Shipped(
        **env,
        grams=grams(event.mass_kg),
        from_site_id=event.from_site_id,
        from_country=event.from_country,
        to_site_id=event.to_site_id,
        to_country=event.to_country,
        hs_code=event.hs_code,
    )
    subject = event.subject_id
    key = lot_key(subject) if event.subject is ShipmentSubject.lot else battery_key(subject)
    return [(key, shipped)]


def _route_certification(event: CertificationEvent, env: dict[str, Any]) -> list[Addressed]:
    certification = Certification(
        **env,
        action=event.action.value,
        scheme_region=event.scheme_region.value,
        scheme=event.scheme,
        certificate_id=event.certificate_id,
        valid_until=None if event.valid_until is None else micros(event.valid_until),
    )
    return [(operator_key(event.subject_operator_id), certification)]


def route(arrival: Event | Received) -> list[Addressed]:
    """The messages an event sends, each addressed to an entity key."""
    via = arrival if isinstance(arrival, Received) else None
    event = arrival.event if isinstance(arrival, Received) else arrival
    env = _envelope(event, via)
    match event:
        case ExtractionEvent():
            return _route_extraction(event, env)
        case RefiningEvent():
            return _route_refining(event, env)
        case ManufactureEvent():
            return _route_manufacture(event, env)
        case UseCollectionEvent():
            return _route_use(event, env)
        case ShreddingEvent():
            return _route_shredding(event, env)
        case RecoveryEvent():
            return _route_recovery(event, env)
        case ShipmentEvent():
            return _route_shipment(event, env)
        case CertificationEvent():
            return _route_certification(event, env)
    raise TypeError(f"no routing for {type(event).__name__}")


def route_batch(events: Iterable[Event | Received]) -> list[Addressed]:
    """Route a batch, plus one certification check per operator for the batch's events.

    Certification events are not checked: they come from the certifying body, not from an
    operator in the supply chain.
    """
    out: list[Addressed] = []
    checks: dict[str, list[CheckedEvent]] = defaultdict(list)
    for arrival in events:
        out.extend(route(arrival))
        event = arrival.event if isinstance(arrival, Received) else arrival
        if not isinstance(event, CertificationEvent):
            checks[event.operator_id].append(
                CheckedEvent(
                    str(event.event_id), micros(event.occurred_at), event.event_type, event.key()
                )
            )
    for operator_id, items in checks.items():
        out.append((operator_key(operator_id), CertificationCheck(events=items)))
    return out
