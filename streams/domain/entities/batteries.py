"""Batteries: manufacture, use, shipment, shredding and component facts and input profiles in;
passports, profiles to the packs they are part of, tally contributions and alerts out."""

from __future__ import annotations

from typing import Any, NamedTuple

from schemas import disclosure
from schemas.values import ALLIANCE_COUNTRIES, operator_country, operator_id_platform
from streams.domain.entities import provenance
from streams.domain.entities.alerts import (
    PASSPORTS,
    alert,
    digest,
    holder,
    is_import,
    is_outflow,
    non_compliant_import_alert,
    outflow_alert,
    publish_alerts,
    unresolved_alert,
)
from streams.domain.entities.effects import Config, Document, Effects
from streams.domain.entities.genealogy import (
    MAX_GENEALOGY_DEPTH,
    chosen,
    hold,
    lot_parts,
    materials_view,
    mix,
    origins_view,
    revision,
    sorted_profile,
)
from streams.domain.entities.legality import waste_battery_export_alerts
from streams.domain.entities.provenance import PASSPORT_SHOWS, keep, preferred
from streams.domain.entities.upstream import (
    hold_absence,
    missing_upstream,
    missing_view,
    send_absence,
)
from streams.domain.links import passport_url
from streams.domain.messages import (
    Absence,
    DisclosureContribution,
    DisclosureLabels,
    DisclosureShare,
    Fact,
    Manufactured,
    Message,
    PartOf,
    Profile,
    ProfileUpdate,
    RecycledContentContribution,
    RecycledContentLabels,
    RecycledContentShare,
    Shipped,
    Shredded,
    Used,
)
from streams.domain.quantities import iso, kg_from_grams, year
from streams.domain.routing import battery_key, lot_key
from streams.domain.states import BatteryState, HeldProfile, TallyMembership, derived, remember

#: EU 2023/1542 Art. 8: minimum recycled content, share of the metal in active materials
#: (lead: in the battery), from 18 Aug 2031 and from 18 Aug 2036.
RECYCLED_CONTENT_MINIMUMS: dict[str, tuple[str, str]] = {
    "cobalt": ("0.16", "0.26"),
    "lithium": ("0.06", "0.12"),
    "nickel": ("0.06", "0.15"),
    "lead": ("0.85", "0.85"),
}
#: A status change: (time, event id, status).
StatusChange = tuple[int, str, str]


def _record_use(state: BatteryState, used: Used) -> None:
    if used.action != "state_of_health":
        keep(state.uses, used)
        return
    # Health reports come often and only the latest matters: keep the latest by (time, event
    # id). A maximum is the same in any order and unchanged by a replay, and the state stays
    # one report long however many arrive.
    latest = state.latest_health
    if latest is None or (used.occurred_at, used.event_id) > (latest.occurred_at, latest.event_id):
        state.latest_health = used
    elif latest.event_id == used.event_id:
        state.latest_health = preferred(latest, used)


def _take_in(state: BatteryState, messages: list[Message]) -> set[str]:
    """Record the facts and profiles; return the keys of packs it newly became part of."""
    new_parents: set[str] = set()
    for message in messages:
        match message:
            case Manufactured():
                keep(state.manufactured, message)
            case Used():
                _record_use(state, message)
            case Shipped():
                keep(state.shipments, message)
            case Shredded():
                keep(state.shredded, message)
            case PartOf():
                if keep(state.parents, message):
                    new_parents.add(message.parent)
            case ProfileUpdate():
                hold(state.inputs, message.source, message.revision, message.profile)
            case Absence():
                hold_absence(state.absent, message)
    return new_parents


def status_timeline(
    state: BatteryState, made: Manufactured | None, with_health: bool = True
) -> list[StatusChange]:
    timeline: list[StatusChange] = []
    if made is not None:
        timeline.append((made.occurred_at, made.event_id, "original"))
    timeline += [(u.occurred_at, u.event_id, u.status) for u in state.uses.values()]
    if with_health and state.latest_health is not None:
        h = state.latest_health
        timeline.append((h.occurred_at, h.event_id, h.status))
    timeline += [(s.occurred_at, s.event_id, "waste") for s in state.shredded.values()]
    return sorted(timeline)


def status_at(timeline: list[StatusChange], at: int) -> str | None:
    status = None
    for when, _, value in timeline:
        if when > at:
            break
        status = value
    return status


def battery_profile(
    battery_id: str, made: Manufactured, inputs: dict[str, HeldProfile], absent: dict[str, Absence]
) -> Profile:
    components: list[tuple[str, int | None]] = [(battery_key(c), None) for c in made.components]
    parts = lot_parts(made.inputs) + components
    profile = mix(parts, inputs)
    profile.regions = [*profile.regions, made.region]
    profile.missing_upstream, profile.missing_upstream_more = missing_upstream(
        [source for source, _ in parts], inputs, absent, battery_id, made.region
    )
    return sorted_profile(profile)


def recycled_content_tally_key(made: Manufactured) -> str:
    when = year(made.occurred_at)
    return f"recycled-content/{made.operator_id}|{made.site_id}|{made.model}|{when}"


def _send_profile(
    key: str, state: BatteryState, profile: Profile, new_parents: set[str], fx: Effects
) -> int:
    """Send a changed profile to every pack it is part of, an unchanged one to new ones."""
    current = revision(len(state.manufactured), state.inputs, state.absent)
    all_parents = sorted({p.parent for p in state.parents.values()})
    targets = all_parents if state.profile_revision != current else sorted(new_parents)
    for parent in targets:
        fx.send(parent, ProfileUpdate(source=key, revision=current, profile=profile))
    state.profile_revision = current
    return current


def _send_tally_contribution(
    key: str, state: BatteryState, made: Manufactured, profile: Profile, current: int, fx: Effects
) -> None:
    tally = recycled_content_tally_key(made)
    if state.tally == TallyMembership(tally, current):
        return
    labels = RecycledContentLabels(
        manufacturer=made.operator_id,
        plant=made.site_id,
        model=made.model,
        year=year(made.occurred_at),
    )
    metals = {m: v for m, v in profile.metals.items() if m in RECYCLED_CONTENT_MINIMUMS}
    share = RecycledContentShare(
        labels=labels, metals=metals, complete=profile.complete, regions=profile.regions
    )
    fx.send(tally, RecycledContentContribution(source=key, revision=current, share=share))
    # A battery whose chosen manufacture changed withdraws from the tally it was in.
    previous = state.tally
    if previous is not None and previous.tally != tally:
        withdrawn = RecycledContentContribution(source=key, revision=current, share=None)
        fx.send(previous.tally, withdrawn)
    state.tally = TallyMembership(tally, current)


# --- disclosure (schemas/disclosure.py, schemas/rules/) --------------------------------------


def maker_country(made: Manufactured) -> str:
    """The maker's country: as its manufacture event declares it, else as its id tells
    (a USCC is Chinese, a corporate number Japanese), else ``"unknown"``."""
    return made.manufacturer_country or operator_country(made.operator_id) or "unknown"


def maker_outside_alliance(made: Manufactured) -> bool:
    """Whether the maker is outside the alliance: an id no alliance platform issues (LEI,
    USCC), or a declared country outside it."""
    country = made.manufacturer_country
    return operator_id_platform(made.operator_id) is None or (
        country is not None and country not in ALLIANCE_COUNTRIES
    )


def disclosed_fields(made: Manufactured, profile: Profile) -> dict[str, Any]:
    """What the disclosure rules look at, by passport field name (raw forms: the rules check
    presence, and the passport's views of these need not be built to judge them)."""
    return {
        "manufacturer_id": made.operator_id,
        "plant_id": made.site_id,
        "manufacture_country": made.manufacture_country,
        "manufactured_at": made.occurred_at,
        "category": made.category,
        "model": made.model,
        "mass_kg": made.grams,
        "capacity_kwh": made.capacity_kwh,
        "chemistry": made.chemistry,
        "hazardous_substances": made.hazardous_substances,
        "extinguishing_agent": made.extinguishing_agent,
        "materials": profile.metals,
        "origin": profile.origins,
        "missing_upstream": profile.missing_upstream,
        "carbon_footprint": made.carbon_footprint,
        "due_diligence_report": made.due_diligence_report,
        "complete": profile.complete,
    }


def disclosure_status(made: Manufactured, profile: Profile) -> dict[str, Any]:
    """The passport's disclosure status under the current rule set."""
    return disclosure.evaluate(disclosed_fields(made, profile))


def disclosure_tally_key(made: Manufactured) -> str:
    return f"disclosure/{made.operator_id}|{maker_country(made)}"


def _send_disclosure(
    key: str,
    state: BatteryState,
    made: Manufactured,
    status: dict[str, Any],
    current: int,
    fx: Effects,
) -> None:
    """The battery's status to its maker's disclosure tally (withdrawn from a former one)."""
    tally = disclosure_tally_key(made)
    if state.disclosure == TallyMembership(tally, current):
        return
    labels = DisclosureLabels(manufacturer=made.operator_id, country=maker_country(made))
    share = DisclosureShare(labels=labels, rules=status["rules"], missing=status["missing"])
    fx.send(tally, DisclosureContribution(source=key, revision=current, share=share))
    previous = state.disclosure
    if previous is not None and previous.tally != tally:
        fx.send(previous.tally, DisclosureContribution(source=key, revision=current, share=None))
    state.disclosure = TallyMembership(tally, current)


def _non_compliant_imports(
    key: str, battery_id: str, state: BatteryState, made: Manufactured, status: dict[str, Any]
) -> dict[str, Document]:
    """Shipments into the alliance of a battery whose maker is outside it and whose passport
    misses what the rules require."""
    if not status["missing"] or not maker_outside_alliance(made):
        return {}
    what = f"battery {battery_id}"
    return {
        f"non-compliant-import/{eid}": non_compliant_import_alert(
            key, shipment, what, made.operator_id, status["rules"], status["missing"]
        )
        for eid, shipment in sorted(state.shipments.items())
        if is_import(shipment)
    }


def _manufactured_alerts(
    key: str, battery_id: str, state: BatteryState, made: Manufactured, profile: Profile
) -> dict[str, Document]:
    alerts = {}
    if profile.depth > MAX_GENEALOGY_DEPTH:
        alerts[f"genealogy-cycle/{key}"] = alert(
            "genealogy_cycle", key, f"battery {battery_id} contains itself"
        )
    if len(state.manufactured) > 1:
        alerts[f"conflict/{key}"] = alert(
            "conflicting_events",
            key,
            f"{len(state.manufactured)} manufacture events for battery {battery_id}; "
            f"using {made.event_id}",
            event_ids=sorted(state.manufactured),
            regions=provenance.regions(state.manufactured.values()),
        )
    return alerts


def _outflows(
    key: str, battery_id: str, state: BatteryState, timeline: list[StatusChange]
) -> dict[str, Document]:
    """Shipments of the battery, while it was waste, out of the alliance."""
    what = f"waste battery {battery_id}"
    as_waste = {
        eid: shipment
        for eid, shipment in sorted(state.shipments.items())
        if is_outflow(shipment) and status_at(timeline, shipment.occurred_at) == "waste"
    }
    alerts = {f"outflow/{eid}": outflow_alert(key, s, what) for eid, s in as_waste.items()}
    alerts.update(waste_battery_export_alerts(key, battery_id, as_waste))
    return alerts


def _references(state: BatteryState) -> list[str]:
    """Event ids that refer to the battery."""
    health = [state.latest_health.event_id] if state.latest_health is not None else []
    return [*state.uses, *state.shipments, *state.shredded, *state.parents, *health]


def _only_health(messages: list[Message]) -> bool:
    return all(isinstance(m, Used) and m.action == "state_of_health" for m in messages)


def handle_battery(
    key: str, state: BatteryState, messages: list[Message], now: int, cfg: Config, fx: Effects
) -> BatteryState:
    memo = derived(state)
    if (
        isinstance(memo, PassportParts)
        and memo.health_only
        and (memo.cfg is cfg or memo.cfg == cfg)
        and _only_health(messages)
    ):
        # Health readings change only the latest reading: no profile, tally contribution or
        # alert of a manufactured battery without outflow shipments rests on it, and the
        # passport takes it in when published.
        for reading in messages:
            assert isinstance(reading, Used)
            _record_use(state, reading)
        return state
    new_parents = _take_in(state, messages)
    made = chosen(state.manufactured)
    battery_id = key.split("/", 1)[1]
    alerts: dict[str, Document] = {}
    profile = None
    if made is not None:
        profile = battery_profile(battery_id, made, state.inputs, state.absent)
        status = disclosure_status(made, profile)
        if profile.depth <= MAX_GENEALOGY_DEPTH:
            current = _send_profile(key, state, profile, new_parents, fx)
            _send_tally_contribution(key, state, made, profile, current, fx)
            _send_disclosure(key, state, made, status, current, fx)
        alerts.update(_manufactured_alerts(key, battery_id, state, made, profile))
        alerts.update(_non_compliant_imports(key, battery_id, state, made, status))
    else:
        parents = sorted({p.parent for p in state.parents.values()})
        state.absence_revision = send_absence(
            key, state.shipments, state.absence_revision, parents, new_parents, fx
        )
    timeline = status_timeline(state, made)
    outflows = False
    if made is not None:
        outflows = any(is_outflow(s) for s in state.shipments.values())
        alerts.update(_outflows(key, battery_id, state, timeline))
    message = f"battery {battery_id} is referenced but was never manufactured"
    alerts.update(
        unresolved_alert(state, key, now, cfg, made is not None, _references(state), message)
    )
    publish_alerts(state, fx, alerts)
    # The passport's parts are built when published, once per batch however many rounds.
    remember(state, None if profile is None else _Made(profile, not outflows, cfg))
    return state


class _Made(NamedTuple):
    """What the handler derived for a manufactured battery's passport, until published."""

    profile: Profile
    health_only: bool
    cfg: Config


def publish_passport(key: str, state: BatteryState, cfg: Config, fx: Effects) -> None:
    """Publish the passport if it changed since last published (none before manufacture).

    Its digest (``published``) is :meth:`PassportParts.digest`, of the parts, so that a health
    reading is judged without encoding the whole passport.
    """
    parts = derived(state)
    if isinstance(parts, _Made):
        made = chosen(state.manufactured)
        assert made is not None  # a profile was derived from it
        derived_, parts = (
            parts,
            passport_parts(key.split("/", 1)[1], state, made, parts.profile, parts.cfg),
        )
        parts.health_only = derived_.health_only
        remember(state, parts)
    if not isinstance(parts, PassportParts):
        return
    health = state.latest_health
    if parts.published and parts.published_with == health:
        return  # same parts, same latest reading: the passport last published
    varying = parts.varying(health)
    fingerprint = parts.digest(varying)
    if state.published != fingerprint:
        state.published = fingerprint
        fx.publish(PASSPORTS, key.split("/", 1)[1], {**parts.static, **varying})
    parts.published, parts.published_with = True, health


def _passports(made: Manufactured, uses: list[Used]) -> list[str]:
    """Passport ids in the order they were issued (a repurposed battery gets a new one)."""
    passports = [made.passport_id]
    for use in uses:
        if use.new_passport_id and use.new_passport_id not in passports:
            passports.append(use.new_passport_id)
    return passports


class PassportParts:
    """A battery passport taken apart: every field that does not depend on the latest health
    reading (``static``), built once per change of the other facts, and what the fields that
    do (``varying``: status, state of health, provenance) are computed from.

    Health readings are most of a battery's events; with the parts kept beside the state in
    memory, a reading costs a few comparisons and the assembly of the document instead of the
    whole passport. ``{**static, **varying(latest)}`` is the passport (:func:`passport_view`).
    """

    __slots__ = (
        "agreements",
        "cfg",
        "health_only",
        "published",
        "published_with",
        "reading",
        "redacted",
        "regions",
        "shared_under",
        "static",
        "static_digest",
        "timeline_end",
        "upstream",
    )

    def __init__(
        self,
        static: Document,
        timeline_end: StatusChange | None,
        reading: Used | None,
        facts: list[Fact],
        upstream: list[str],
        cfg: Config,
    ) -> None:
        self.static = static
        self.static_digest: str | None = None
        #: The last status change but the latest reading, and the latest reading among uses.
        self.timeline_end = timeline_end
        self.reading = reading
        self.upstream = set(upstream)
        facts_regions = {f.region for f in facts} | self.upstream
        self.regions = sorted(facts_regions)
        self.agreements = {
            (f.shared.agreement, f.shared.direction) for f in facts if f.shared is not None
        }
        self.shared_under = _shared_under(self.agreements)
        self.redacted = provenance.redacted_fields(facts, PASSPORT_SHOWS)
        self.cfg = cfg
        #: Whether a batch of health readings alone may skip the handler's other work: no
        #: alert rests on the status (set by the handler; an outflow alert does).
        self.health_only = False
        #: Whether the passport was published (or found unchanged) from these parts, and the
        #: latest reading it was built with.
        self.published = False
        self.published_with: Used | None = None

    def varying(self, health: Used | None) -> Document:
        """The passport's fields that the latest health reading (``health``) can change."""
        end, reading = self.timeline_end, self.reading
        regions, shared_under, redacted = self.regions, self.shared_under, self.redacted
        if health is not None:
            change = (health.occurred_at, health.event_id, health.status)
            end = change if end is None or change >= end else end
            # Ties go to the latest reading, as a stable sort with it appended last does.
            if reading is None or (health.occurred_at, health.event_id) >= (
                reading.occurred_at,
                reading.event_id,
            ):
                reading = health
            if health.region not in regions:
                regions = sorted({*regions, health.region})
            if health.shared is not None:
                agreement = (health.shared.agreement, health.shared.direction)
                shared_under = _shared_under({*self.agreements, agreement})
            if health.redacted:
                more = provenance.redacted_fields([health], PASSPORT_SHOWS)
                redacted = sorted({*redacted, *more})
        return {
            "status": end[2] if end is not None else "original",
            "state_of_health": reading.state_of_health if reading is not None else None,
            "regions": regions,
            "shared_under": shared_under,
            "redacted": redacted,
        }

    def digest(self, varying: Document) -> str:
        """The passport's digest: of the static fields' digest and the varying fields (the
        same passport, the same digest, without encoding it whole per reading)."""
        if self.static_digest is None:
            self.static_digest = digest(self.static)
        return digest([self.static_digest, varying])


def _shared_under(agreements: set[tuple[str, str]]) -> list[dict[str, str]]:
    return [{"agreement": a, "direction": d} for a, d in sorted(agreements)]


def passport_parts(
    battery_id: str,
    state: BatteryState,
    made: Manufactured,
    profile: Profile,
    cfg: Config,
) -> PassportParts:
    """The passport's parts (:class:`PassportParts`)."""
    uses = sorted(state.uses.values(), key=lambda u: (u.occurred_at, u.event_id))
    passports = _passports(made, uses)
    readings = [u for u in uses if u.state_of_health is not None]
    shreds = sorted(state.shredded.values(), key=lambda s: (s.occurred_at, s.event_id))
    missing = sorted(
        [k for k in made.inputs if lot_key(k) not in state.inputs]
        + [c for c in made.components if battery_key(c) not in state.inputs]
    )
    timeline = status_timeline(state, made, with_health=False)
    static = {
        "battery_id": battery_id,
        "passport_id": passports[-1],
        "predecessor_passport_id": passports[-2] if len(passports) > 1 else None,
        "passport_history": passports,
        "url": passport_url(cfg.passport_base_url, battery_id, made.gtin),
        "gtin": made.gtin,
        "category": made.category,
        "level": made.level,
        "model": made.model,
        "chemistry": made.chemistry,
        "manufacturer_id": made.operator_id,
        "plant_id": made.site_id,
        "region": made.region,
        "manufactured_at": iso(made.occurred_at),
        "mass_kg": kg_from_grams(made.grams),
        "capacity_kwh": made.capacity_kwh,
        "carbon_footprint": made.carbon_footprint,
        "manufacture_country": made.manufacture_country,
        "manufacturer_country": made.manufacturer_country,
        "maker_outside_alliance": maker_outside_alliance(made),
        "due_diligence_report": made.due_diligence_report,
        "hazardous_substances": made.hazardous_substances,
        "extinguishing_agent": made.extinguishing_agent,
        "disclosure": disclosure_status(made, profile),
        "components": made.components,
        "part_of": sorted({p.parent.split("/", 1)[1] for p in state.parents.values()}),
        "materials": materials_view(profile.metals),
        "origin": origins_view(profile.origins, profile.grams),
        "holder": holder(state.shipments),
        "shredded_into": shreds[-1].black_mass_lot_id if shreds else None,
        "complete": profile.complete,
        "missing_inputs": missing,
        "missing_upstream": missing_view(profile.missing_upstream),
        "missing_upstream_more": profile.missing_upstream_more,
        "home_region": made.region,
        "replica": cfg.region is not None and made.region != cfg.region,
    }
    return PassportParts(
        static,
        timeline[-1] if timeline else None,
        readings[-1] if readings else None,
        _facts(state, with_health=False),
        profile.regions,
        cfg,
    )


def passport_view(
    battery_id: str, state: BatteryState, made: Manufactured, profile: Profile, cfg: Config
) -> Document:
    """The battery passport: identity, status, health, make-up, origin, where it is, and
    where its facts came from (:mod:`.provenance`)."""
    parts = passport_parts(battery_id, state, made, profile, cfg)
    return {**parts.static, **parts.varying(state.latest_health)}


def _facts(state: BatteryState, with_health: bool = True) -> list[Fact]:
    latest = state.latest_health if with_health else None
    health = [latest] if latest is not None else []
    return [
        *state.manufactured.values(),
        *state.uses.values(),
        *health,
        *state.shipments.values(),
        *state.shredded.values(),
        *state.parents.values(),
    ]
