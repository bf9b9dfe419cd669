"""The processors' ingest: a batch of event records -> entity messages, without pydantic.

:meth:`EventIngest.ingest` takes ``(topic, value, headers)`` records as a consumer delivers
them and returns the messages :func:`streams.domain.routing.route_batch` sends for the same
events (the property tests hold the two equal for generated events of every type), plus the
records it rejects with the reason, by index, for the runtime to dead-letter. It decodes with
the serde's plain readers (:meth:`schemas.serde.Serde.decode_plain`): masses arrive as grams and
shares as parts per million (the unscaled Avro decimals), times as microseconds, so no
``Decimal``, ``UUID``, ``datetime`` or model is built on the hot path.

Validation happens once, where events enter the system (the SDK, files, the gateway validate
with the pydantic models before producing; the mirror checks what it shares by the models'
rules, ``connectors/mirror/checks.py``). Here only what Avro cannot say and routing relies on is
checked, and a record failing it is rejected:

* the record's ``event_type`` field is its schema's type, and the topic's (a fact names it);
* masses are non-negative and within the decimal's precision (grams are summed and divided:
  a negative mass would corrupt every balance downstream);
* shares are in [0, 1], compositions name metals and sum to at most 1 (metal masses are
  grams x ppm);
* UUIDs are well formed (canonical form: event ids are the dedup key);
* the lists the contracts require non-empty are (a refining batch or a recovery without
  outputs, a shredding without batteries, would debit into nothing);
* the publisher: the operator id (with its check characters), the region it may publish into,
  the site id, by the envelope's own rules (:class:`schemas.events.Publisher`), checked once per
  distinct publisher (records reach the topics from producers that never used the models).

* a GTIN has its check digit; it is written as 14 digits, as the model writes it (the
  passport's GS1 Digital Link URL is built from it).

Not checked again: country and HS code formats, text lengths; they name things but change no
arithmetic.

Records of the partner's mirrored topics (``<partner>.batteryloop.events.*``) are read with
the shared schemas the serde was given, and their facts carry the agreement and the redacted
fields their headers name (:class:`~streams.domain.messages.SharedUnder`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from pydantic import ValidationError

from connectors.mirror.replication import read_sharing
from schemas.events import EVENT_MODELS, Publisher
from schemas.serde import DecodeError, Serde, describe_validation_error
from schemas.topics import EVENT_TOPICS
from schemas.values import MASS_PRECISION, Metal, gtin14
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
from streams.domain.routing import battery_key, lot_key, operator_key

#: One record as consumed: topic, value, headers.
IngestRecord = tuple[str, bytes | None, list[tuple[str, bytes]] | None]
Plain = dict[str, Any]
#: Agreement named for a mirrored record whose headers name none (a mirror of before the
#: ``batteryloop-agreement`` header).
UNNAMED_AGREEMENT = "unnamed"

_MASS_LIMIT = 10**MASS_PRECISION
_PPM_LIMIT = 10**6
_METALS = frozenset(m.value for m in Metal)
_KEY_FIELD = {t: model.KEY_FIELD for t, model in EVENT_MODELS.items()}


#: Bounded categories of a rejection, for metric labels (the reason itself is free text).
UNDECODABLE, WRONG_TOPIC, INVALID, INVALID_PUBLISHER = (
    "undecodable",
    "wrong_topic",
    "invalid",
    "invalid_publisher",
)
#: The event type of a record that could not be decoded.
UNKNOWN_TYPE = "unknown"


@dataclass(frozen=True, slots=True)
class Rejected:
    """A record of the batch that sends nothing: its index in the batch and why (``reason``,
    for the dead-letter headers), with its event type (:data:`UNKNOWN_TYPE` when undecodable)
    and a bounded ``category`` of the reason (for metrics)."""

    index: int
    reason: str
    event_type: str = UNKNOWN_TYPE
    category: str = INVALID


@dataclass
class Ingested:
    """What a batch sends (``messages``, in order), what it rejects, and how many events of
    each type it routed."""

    messages: list[Addressed] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    routed: dict[str, int] = field(default_factory=dict)


class _Invalid(ValueError):
    """A decoded record that breaks a rule routing relies on."""

    category = INVALID


class _InvalidPublisher(_Invalid):
    """A decoded record whose publisher breaks the envelope's rules."""

    category = INVALID_PUBLISHER


class EventIngest:
    """Decodes and routes batches of event records.

    ``serde``: decodes (give it the shared schemas of the partner's mirror). ``mirrored``: the
    partner's mirrored topics on this cluster -> their event type. ``shared_direction``: the
    direction their events arrive in (``"jp-to-eu"``), named in their facts.
    """

    def __init__(
        self,
        serde: Serde,
        mirrored: Mapping[str, str] | None = None,
        shared_direction: str = "",
    ) -> None:
        self.serde = serde
        self.mirrored = dict(mirrored or {})
        self.shared_direction = shared_direction
        self.topic_event_type = {
            **{spec.name: t for t, spec in EVENT_TOPICS.items()},
            **self.mirrored,
        }
        #: publisher (operator, site, region) -> what is wrong with it, None: nothing
        self._publishers: dict[tuple[str, str, str], str | None] = {}

    def ingest(self, records: Sequence[IngestRecord]) -> Ingested:
        """The messages of a batch, in the order :func:`route_batch` gives them: each event's
        messages in record order, then one certification check per operator."""
        out = Ingested()
        checks: dict[str, list[CheckedEvent]] = defaultdict(list)
        routed: dict[str, int] = defaultdict(int)
        for index, (topic, value, headers) in enumerate(records):
            try:
                event_type, record, _ = self.serde.decode_plain(value, topic=topic)
                expected = self.topic_event_type.get(topic)
                if expected is not None and event_type != expected:
                    reason = f"a {event_type} event on the {expected} topic"
                    out.rejected.append(Rejected(index, reason, event_type, WRONG_TOPIC))
                    continue
                if record["event_type"] != event_type:
                    raise _Invalid(
                        f"event_type {record['event_type']!r} in a record of the "
                        f"{event_type} schema"
                    )
                env = self._envelope(event_type, record, topic, headers)
                messages = _ROUTES[event_type](record, env)
            except DecodeError as exc:
                out.rejected.append(Rejected(index, exc.reason, UNKNOWN_TYPE, UNDECODABLE))
                continue
            except _Invalid as exc:
                reason = f"invalid {event_type} event: {exc}"
                out.rejected.append(Rejected(index, reason, event_type, exc.category))
                continue
            out.messages.extend(messages)
            routed[event_type] += 1
            if event_type != "certification":
                checks[env["operator_id"]].append(
                    CheckedEvent(
                        env["event_id"],
                        env["occurred_at"],
                        event_type,
                        str(record[_KEY_FIELD[event_type]]),
                    )
                )
        for operator_id, items in checks.items():
            out.messages.append((operator_key(operator_id), CertificationCheck(events=items)))
        out.routed = dict(routed)
        return out

    def _envelope(
        self,
        event_type: str,
        record: Plain,
        topic: str,
        headers: list[tuple[str, bytes]] | None,
    ) -> dict[str, Any]:
        publisher = (record["operator_id"], record["site_id"], record["region"])
        problem = self._publishers.get(publisher, _UNCHECKED)
        if problem is _UNCHECKED:
            problem = self._publishers[publisher] = _publisher_problem(*publisher)
            if len(self._publishers) > _PUBLISHERS_KEPT:
                self._publishers.clear()
        if problem is not None:
            raise _InvalidPublisher(problem)
        env = {
            "event_id": record["event_id"],
            "event_type": event_type,
            "occurred_at": record["occurred_at"],
            "operator_id": record["operator_id"],
            "site_id": record["site_id"],
            "region": record["region"],
        }
        if topic in self.mirrored:
            agreement, redacted = read_sharing(headers)
            env["shared"] = SharedUnder(agreement or UNNAMED_AGREEMENT, self.shared_direction)
            env["redacted"] = tuple(sorted(set(redacted)))
        return env


# --- the rules routing relies on ------------------------------------------------------------

_UNCHECKED = "unchecked"
#: Publishers remembered as checked; the memory is dropped whole beyond it.
_PUBLISHERS_KEPT = 100_000


def _publisher_problem(operator_id: str, site_id: str, region: str) -> str | None:
    """What breaks the envelope's publisher rules (operator id and its check characters, the
    operator's region, the site id), or None. A record that names another platform's operator
    or a malformed site would otherwise become part of every document it touches."""
    try:
        Publisher(operator_id=operator_id, site_id=site_id, region=region)
    except ValidationError as exc:
        return describe_validation_error(exc)
    return None


def _mass(grams: int, where: str) -> int:
    if not 0 <= grams < _MASS_LIMIT:
        raise _Invalid(f"{where}: mass of {grams} g is negative or beyond the contract's range")
    return grams


def _share(ppm: int, where: str) -> int:
    if not 0 <= ppm <= _PPM_LIMIT:
        raise _Invalid(f"{where}: share of {Decimal(ppm).scaleb(-6).normalize()} is outside [0, 1]")
    return ppm


def _ppm(composition: dict[str, int], where: str) -> dict[str, int]:
    """A composition in ppm per metal, metals in name order, zero shares left out."""
    total = 0
    for metal, part in composition.items():
        if metal not in _METALS:
            raise _Invalid(f"{where}: {metal!r} is not a metal tracked in compositions")
        total += _share(part, f"{where}.{metal}")
    if total > _PPM_LIMIT:
        total_share = Decimal(total).scaleb(-6).normalize()
        raise _Invalid(f"{where}: composition shares sum to {total_share}, more than 1")
    return {metal: part for metal, part in sorted(composition.items()) if part}


def _not_empty(items: list[Any], where: str) -> list[Any]:
    if not items:
        raise _Invalid(f"{where}: at least one item is required")
    return items


def _decimal_text(unscaled: int, scale: int) -> str:
    """``str()`` of the Decimal a reader of the contract gets for this value (``"75.000"``)."""
    return str(Decimal(unscaled).scaleb(-scale))


def _fixed_text(unscaled: int, scale: int) -> str:
    """The Decimal as pydantic writes it in JSON (fixed point: ``"0.000"``)."""
    return format(Decimal(unscaled).scaleb(-scale), "f")


# --- one function per event type, as in streams.domain.routing -------------------------------


def _taken(inputs: list[Plain], where: str) -> dict[str, int]:
    """Grams taken from each input lot; a lot listed twice is taken twice."""
    out: dict[str, int] = defaultdict(int)
    for item in inputs:
        out[item["lot_id"]] += _mass(item["mass_kg"], f"{where}.mass_kg")
    return dict(sorted(out.items()))


def _portion(output: Plain) -> LotPortion:
    return LotPortion(
        _mass(output["mass_kg"], "outputs.mass_kg"), _ppm(output["composition"], "composition")
    )


def _output_created(env: dict[str, Any], kind: str, output: Plain, **extra: Any) -> Addressed:
    created = LotCreated(
        **env,
        kind=kind,
        form=output["form"],
        material=output["material"],
        grams=_mass(output["mass_kg"], "outputs.mass_kg"),
        composition=_ppm(output["composition"], "outputs.composition"),
        **extra,
    )
    return lot_key(output["lot_id"]), created


def _debits(env: dict[str, Any], taken: dict[str, int], consumers: list[str]) -> list[Addressed]:
    return [
        (lot_key(lot_id), LotDebited(**env, grams=g, consumers=consumers))
        for lot_id, g in taken.items()
    ]


def _extraction(r: Plain, env: dict[str, Any]) -> list[Addressed]:
    created = LotCreated(
        **env,
        kind="extracted",
        form=r["form"],
        material=r["material"],
        grams=_mass(r["mass_kg"], "mass_kg"),
        composition=_ppm(r["composition"], "composition"),
        country=r["country"],
    )
    return [(lot_key(r["lot_id"]), created)]


def _refining(r: Plain, env: dict[str, Any]) -> list[Addressed]:
    taken = _taken(_not_empty(r["inputs"], "inputs"), "inputs")
    outputs = _not_empty(r["outputs"], "outputs")
    batch = {o["lot_id"]: _portion(o) for o in outputs}
    out = [
        _output_created(
            env, "refined", o, batch_id=r["batch_id"], inputs=taken, batch_outputs=batch
        )
        for o in outputs
    ]
    return out + _debits(env, taken, sorted(lot_key(o["lot_id"]) for o in outputs))


def _manufacture(r: Plain, env: dict[str, Any]) -> list[Addressed]:
    taken = _taken(r["inputs"], "inputs")
    cf = r["carbon_footprint"]
    key = battery_key(r["battery_id"])
    components = sorted(set(r["components"]))
    made = Manufactured(
        **env,
        passport_id=r["passport_id"],
        level=r["level"],
        category=r["category"],
        model=r["model"],
        chemistry=r["chemistry"],
        grams=_mass(r["mass_kg"], "mass_kg"),
        capacity_kwh=_decimal_text(_mass(r["capacity_kwh"], "capacity_kwh"), 3),
        carbon_footprint=None if cf is None else _carbon_footprint(cf),
        inputs=taken,
        components=components,
        # v1 records read through the current schema: the v2 fields arrive as None
        manufacture_country=r.get("manufacture_country"),
        manufacturer_country=r.get("manufacturer_country"),
        due_diligence_report=r.get("due_diligence_report"),
        hazardous_substances=r.get("hazardous_substances"),
        extinguishing_agent=r.get("extinguishing_agent"),
        gtin=_gtin(r.get("gtin")),
    )
    parts: list[Addressed] = [(battery_key(c), PartOf(**env, parent=key)) for c in components]
    return [(key, made), *_debits(env, taken, [key]), *parts]


def _gtin(gtin: str | None) -> str | None:
    """The GTIN as 14 digits, as the model normalises it: the passport's URL is built from it,
    so a record that was never validated must not carry one that is no GTIN."""
    if gtin is None:
        return None
    try:
        return gtin14(gtin)
    except ValueError as exc:
        raise _Invalid(f"gtin: {exc}") from None


def _carbon_footprint(cf: Plain) -> dict[str, str]:
    """As ``CarbonFootprint.model_dump(mode="json", exclude_none=True)`` gives it."""
    return {
        name: _fixed_text(_mass(value, f"carbon_footprint.{name}"), 3)
        for name, value in cf.items()
        if value is not None
    }


def _use(r: Plain, env: dict[str, Any]) -> list[Addressed]:
    health = r["state_of_health"]
    used = Used(
        **env,
        action=r["action"],
        status=r["status"],
        state_of_health=(
            None if health is None else _decimal_text(_share(health, "state_of_health"), 6)
        ),
        new_passport_id=r["new_passport_id"],
        predecessor_passport_id=r["predecessor_passport_id"],
    )
    return [(battery_key(r["battery_id"]), used)]


def _shredding(r: Plain, env: dict[str, Any]) -> list[Addressed]:
    inputs = _not_empty(r["inputs"], "inputs")
    pre = post = 0
    shredded: list[Addressed] = []
    for item in inputs:
        g = _mass(item["mass_kg"], "inputs.mass_kg")
        if item["waste_origin"] == "pre_consumer":
            pre += g
        else:
            post += g
        shredded.append(
            (
                battery_key(item["battery_id"]),
                Shredded(**env, black_mass_lot_id=r["black_mass_lot_id"], grams=g),
            )
        )
    black_mass = LotCreated(
        **env,
        kind="shredded",
        form="black_mass",
        material="black mass",
        grams=_mass(r["mass_kg"], "mass_kg"),
        composition=_ppm(r["composition"], "composition"),
        pre_consumer_grams=pre,
        post_consumer_grams=post,
        classification=_classification(r.get("classification")),
    )
    return [(lot_key(r["black_mass_lot_id"]), black_mass), *shredded]


def _classification(c: Plain | None) -> BlackMassClass | None:
    """As routing gives it. Not checked again (a name, not arithmetic), except that the
    hazardous mark agrees with the code's asterisk: the export rules read the mark."""
    if c is None:
        return None
    if c["waste_code"].endswith("*") != c["hazardous"]:
        raise _Invalid(
            f"classification.waste_code {c['waste_code']!r} and hazardous={c['hazardous']} "
            "disagree (an asterisk marks a hazardous entry of the List of Waste)"
        )
    return BlackMassClass(
        waste_code=c["waste_code"],
        hazardous=c["hazardous"],
        basel_entry=c["basel_entry"],
        hs_code=c["hs_code"],
        chemistry_family=c["chemistry_family"],
        meets_gb_t_45203=c["meets_gb_t_45203"],
    )


def _recovery(r: Plain, env: dict[str, Any]) -> list[Addressed]:
    black_mass = r["black_mass_lot_id"]
    outputs = _not_empty(r["outputs"], "outputs")
    grams = _mass(r["input_mass_kg"], "input_mass_kg")
    debit = LotDebited(
        **env,
        grams=grams,
        consumers=sorted(lot_key(o["lot_id"]) for o in outputs),
        recovery_outputs={o["lot_id"]: _portion(o) for o in outputs},
    )
    created = [_output_created(env, "recovered", o, inputs={black_mass: grams}) for o in outputs]
    return [(lot_key(black_mass), debit), *created]


def _shipment(r: Plain, env: dict[str, Any]) -> list[Addressed]:
    shipped = Shipped(
        **env,
        grams=_mass(r["mass_kg"], "mass_kg"),
        from_site_id=r["from_site_id"],
        from_country=r["from_country"],
        to_site_id=r["to_site_id"],
        to_country=r["to_country"],
        hs_code=r["hs_code"],
    )
    subject = r["subject_id"]
    key = lot_key(subject) if r["subject"] == "lot" else battery_key(subject)
    return [(key, shipped)]


def _certification(r: Plain, env: dict[str, Any]) -> list[Addressed]:
    certification = Certification(
        **env,
        action=r["action"],
        scheme_region=r["scheme_region"],
        scheme=r["scheme"],
        certificate_id=r["certificate_id"],
        valid_until=r["valid_until"],
    )
    return [(operator_key(r["subject_operator_id"]), certification)]


_ROUTES: dict[str, Callable[[Plain, dict[str, Any]], list[Addressed]]] = {
    "extraction": _extraction,
    "refining": _refining,
    "manufacture": _manufacture,
    "use_collection": _use,
    "shredding": _shredding,
    "recovery": _recovery,
    "shipment": _shipment,
    "certification": _certification,
}
