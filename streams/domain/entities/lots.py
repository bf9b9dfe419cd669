"""Lots: creation, debits, shipments and input profiles in; lot documents, profiles to the
lots and batteries made from them, recovery contributions and alerts out."""

from __future__ import annotations

from streams.domain.entities import provenance
from streams.domain.entities.alerts import (
    LOTS,
    alert,
    holder,
    is_outflow,
    outflow_alert,
    publish_alerts,
    publish_if_changed,
    unresolved_alert,
)
from streams.domain.entities.effects import Config, Document, Effects
from streams.domain.entities.genealogy import (
    MAX_GENEALOGY_DEPTH,
    MICROGRAMS_PER_GRAM,
    chosen,
    hold,
    lot_parts,
    materials_view,
    metal_in,
    mix,
    origins_view,
    revision,
    sorted_profile,
)
from streams.domain.entities.legality import black_mass_export_alerts, classification_view
from streams.domain.entities.provenance import keep
from streams.domain.entities.upstream import (
    hold_absence,
    missing_upstream,
    missing_view,
    send_absence,
)
from streams.domain.messages import (
    Absence,
    Fact,
    LotCreated,
    LotDebited,
    Message,
    MetalMass,
    Profile,
    ProfileUpdate,
    RecoveryContribution,
    RecoveryLabels,
    RecoveryShare,
    Shipped,
)
from streams.domain.quantities import iso, kg_from_grams, kg_from_micrograms, scaled, share, year
from streams.domain.routing import lot_key
from streams.domain.states import HeldProfile, LotState, derived, remember

#: Lot forms and creations whose shipment out of the alliance is an outflow.
OUTFLOW_LOT_KINDS = frozenset({"shredded", "recovered"})
OUTFLOW_LOT_FORMS = frozenset({"black_mass", "recovered"})
#: Micrograms of rounding allowed per input when checking a refining batch's metal balance.
ROUNDING_UG_PER_INPUT = 1


def lot_profile(
    lot_id: str, created: LotCreated, inputs: dict[str, HeldProfile], absent: dict[str, Absence]
) -> Profile:
    """The lot's profile: from its own composition, or mixed from the inputs it was made of,
    with what is missing upstream of it (:mod:`.upstream`)."""
    profile = _made_of(created, inputs)
    sources = [source for source, _ in lot_parts(created.inputs)]
    profile.missing_upstream, profile.missing_upstream_more = missing_upstream(
        sources, inputs, absent, lot_id, created.region
    )
    return profile


def _made_of(created: LotCreated, inputs: dict[str, HeldProfile]) -> Profile:
    g = created.grams
    if created.kind == "extracted":
        return Profile(
            grams=g,
            metals={m: MetalMass(g * p, 0, 0) for m, p in created.composition.items()},
            origins={f"{created.country}|{created.site_id}": g * MICROGRAMS_PER_GRAM},
            regions=[created.region],
        )
    if created.kind == "shredded":
        # Black mass is all waste-derived metal; its pre/post split follows the shredded mass.
        pre_g, post_g = created.pre_consumer_grams, created.post_consumer_grams
        metals = {}
        for m, p in created.composition.items():
            pre = scaled(g * p, pre_g, pre_g + post_g)
            metals[m] = MetalMass(g * p, pre, g * p - pre)
        return Profile(grams=g, metals=metals, origins={}, regions=[created.region])
    # refined or recovered: mix the inputs taken, by mass, then apply to the output's metal
    pool = mix(lot_parts(created.inputs), inputs)
    metals = {}
    for m, p in created.composition.items():
        total = g * p
        mixed = pool.metals.get(m, MetalMass(0, 0, 0))
        metals[m] = MetalMass(
            total,
            scaled(total, mixed.pre_consumer, mixed.total),
            scaled(total, mixed.post_consumer, mixed.total),
        )
    origins = {k: scaled(g, x, pool.grams) for k, x in pool.origins.items()}
    if created.kind == "recovered":
        origins = {}  # recovered material is secondary: it has no extraction origin
    return Profile(
        grams=g,
        metals=metals,
        origins=origins,
        complete=pool.complete,
        depth=pool.depth,
        regions=sorted({*pool.regions, created.region}),
    )


def _take_in(state: LotState, messages: list[Message]) -> tuple[set[str], bool]:
    """Record the facts and profiles; return the new consumers and whether a recovery came."""
    new_consumers: set[str] = set()
    new_recoveries = False
    for message in messages:
        match message:
            case LotCreated():
                keep(state.created, message)
            case LotDebited():
                if keep(state.debits, message):
                    new_consumers.update(message.consumers)
                    new_recoveries = new_recoveries or message.recovery_outputs is not None
            case Shipped():
                keep(state.shipments, message)
            case ProfileUpdate():
                hold(state.inputs, message.source, message.revision, message.profile)
            case Absence():
                hold_absence(state.absent, message)
    return new_consumers, new_recoveries


def _send_profile(
    key: str,
    state: LotState,
    created: LotCreated,
    profile: Profile,
    news: tuple[set[str], bool],
    fx: Effects,
) -> None:
    """Send a changed profile to every consumer, an unchanged one to new consumers only."""
    new_consumers, new_recoveries = news
    current = revision(len(state.created), state.inputs, state.absent)
    consumers = sorted({c for d in state.debits.values() for c in d.consumers})
    targets = consumers if state.profile_revision != current else sorted(new_consumers)
    for consumer in targets:
        fx.send(consumer, ProfileUpdate(source=key, revision=current, profile=profile))
    state.profile_revision = current
    if new_recoveries or state.recovery_revision != current:
        _send_recovery_contributions(key, created, profile, state.debits, current, fx)
        state.recovery_revision = current


def _send_recovery_contributions(
    key: str,
    created: LotCreated,
    profile: Profile,
    debits: dict[str, LotDebited],
    current: int,
    fx: Effects,
) -> None:
    for eid, debit in sorted(debits.items()):
        if debit.recovery_outputs is None:
            continue
        into = {m: debit.grams * p for m, p in created.composition.items()}
        out = metal_in(debit.recovery_outputs.values())
        labels = RecoveryLabels(
            recycler=debit.operator_id, plant=debit.site_id, year=year(debit.occurred_at)
        )
        share_ = RecoveryShare(
            labels=labels,
            input=dict(sorted(into.items())),
            output=dict(sorted(out.items())),
            regions=sorted({*profile.regions, debit.region}),
        )
        fx.send(
            recovery_tally_key(debit),
            RecoveryContribution(source=f"{key}#{eid}", revision=current, share=share_),
        )


def recovery_tally_key(debit: LotDebited) -> str:
    return f"recovery/{debit.operator_id}|{debit.site_id}|{year(debit.occurred_at)}"


def _overdrawn(key: str, lot_id: str, state: LotState, created: LotCreated) -> dict[str, Document]:
    consumed = sum(d.grams for d in state.debits.values())
    if consumed <= created.grams:
        return {}
    return {
        f"mass-balance/{key}": alert(
            "mass_balance",
            key,
            f"lot {lot_id} holds {kg_from_grams(created.grams)} kg but "
            f"{kg_from_grams(consumed)} kg were taken from it",
            mass_kg=kg_from_grams(created.grams),
            consumed_kg=kg_from_grams(consumed),
            event_ids=sorted(state.debits),
        )
    }


def _recovery_violations(
    key: str, created: LotCreated, debits: dict[str, LotDebited]
) -> dict[str, Document]:
    alerts = {}
    for eid, debit in sorted(debits.items()):
        if debit.recovery_outputs is None:
            continue
        held = {m: debit.grams * p for m, p in created.composition.items()}
        over = {
            m: {
                "input_kg": kg_from_micrograms(held.get(m, 0)),
                "recovered_kg": kg_from_micrograms(x),
            }
            for m, x in sorted(metal_in(debit.recovery_outputs.values()).items())
            if x > held.get(m, 0)
        }
        if over:
            alerts[f"mass-balance/recovery/{eid}"] = alert(
                "mass_balance",
                key,
                f"recovery {eid} recovered more {', '.join(over)} than its black mass held",
                event_ids=[eid],
                metals=over,
            )
    return alerts


def _refining_violation(
    key: str, created: LotCreated, inputs: dict[str, HeldProfile]
) -> dict[str, Document]:
    # Every output lot of a batch sees the whole batch; the first one speaks for it.
    if created.batch_outputs and lot_key(min(created.batch_outputs)) != key:
        return {}
    pool = mix(lot_parts(created.inputs), inputs)
    if not pool.complete:
        return {}  # cannot judge before every input is known
    slack = ROUNDING_UG_PER_INPUT * len(created.inputs)
    went_in = {m: mass.total for m, mass in pool.metals.items()}
    over = {
        m: {"input_kg": kg_from_micrograms(went_in.get(m, 0)), "output_kg": kg_from_micrograms(x)}
        for m, x in sorted(metal_in(created.batch_outputs.values()).items())
        if x > went_in.get(m, 0) + slack
    }
    if not over:
        return {}
    return {
        f"mass-balance/refining/{created.event_id}": alert(
            "mass_balance",
            key,
            f"refining batch {created.batch_id} put out more {', '.join(over)} than went in",
            event_ids=[created.event_id],
            metals=over,
        )
    }


def _created_alerts(
    key: str, lot_id: str, state: LotState, created: LotCreated, profile: Profile
) -> dict[str, Document]:
    """What is wrong with a created lot: overdrawn, conflicting creations, impossible batches."""
    alerts = {**_overdrawn(key, lot_id, state, created)}
    alerts.update(_recovery_violations(key, created, state.debits))
    if created.kind == "refined":
        alerts.update(_refining_violation(key, created, state.inputs))
    if profile.depth > MAX_GENEALOGY_DEPTH:
        alerts[f"genealogy-cycle/{key}"] = alert(
            "genealogy_cycle",
            key,
            f"lot {lot_id} descends from itself or from a chain over "
            f"{MAX_GENEALOGY_DEPTH} steps deep; its profile is not propagated",
        )
    if len(state.created) > 1:
        alerts[f"conflict/{key}"] = alert(
            "conflicting_events",
            key,
            f"{len(state.created)} events each create lot {lot_id}; using {created.event_id}",
            event_ids=sorted(state.created),
            regions=provenance.regions(state.created.values()),
        )
    return alerts


def _outflows(
    key: str, lot_id: str, state: LotState, created: LotCreated | None
) -> dict[str, Document]:
    """Shipments of black mass or recovered material out of the alliance."""
    if created is None or not (
        created.kind in OUTFLOW_LOT_KINDS or created.form in OUTFLOW_LOT_FORMS
    ):
        return {}
    what = f"{created.form.replace('_', ' ')} lot {lot_id}"
    alerts = {
        f"outflow/{eid}": outflow_alert(key, shipment, what)
        for eid, shipment in sorted(state.shipments.items())
        if is_outflow(shipment)
    }
    if created.form == "black_mass":
        alerts.update(
            black_mass_export_alerts(key, lot_id, created.classification, state.shipments)
        )
    return alerts


def handle_lot(
    key: str, state: LotState, messages: list[Message], now: int, cfg: Config, fx: Effects
) -> LotState:
    news = _take_in(state, messages)
    created = chosen(state.created)
    lot_id = key.split("/", 1)[1]
    alerts: dict[str, Document] = {}
    if created is not None:
        profile = sorted_profile(lot_profile(lot_id, created, state.inputs, state.absent))
        if profile.depth <= MAX_GENEALOGY_DEPTH:
            _send_profile(key, state, created, profile, news, fx)
        alerts.update(_created_alerts(key, lot_id, state, created, profile))
    else:
        consumers = sorted({c for d in state.debits.values() for c in d.consumers})
        state.absence_revision = send_absence(
            key, state.shipments, state.absence_revision, consumers, news[0], fx
        )
    alerts.update(_outflows(key, lot_id, state, created))
    references = [*state.debits, *state.shipments]
    message = f"lot {lot_id} is referenced but no event created it"
    alerts.update(unresolved_alert(state, key, now, cfg, created is not None, references, message))
    publish_alerts(state, fx, alerts)
    remember(state, (created, profile) if created is not None else None)
    return state


def publish_lot(key: str, state: LotState, cfg: Config, fx: Effects) -> None:
    """Publish the lot document if it changed (none before the lot is created), from the
    creation and profile its handler last derived."""
    parts = derived(state)
    if parts is None:
        return
    created, profile = parts
    lot_id = key.split("/", 1)[1]
    publish_if_changed(state, fx, LOTS, lot_id, lot_view(lot_id, created, profile, state, cfg))


def lot_view(
    lot_id: str, created: LotCreated, profile: Profile, state: LotState, cfg: Config
) -> Document:
    """The lot document: what it is, what is left of it, what it is made of, where it is, and
    where its facts came from (:mod:`.provenance`)."""
    facts: list[Fact] = [
        *state.created.values(),
        *state.debits.values(),
        *state.shipments.values(),
    ]
    consumed = sum(d.grams for d in state.debits.values())
    missing = sorted(k for k in created.inputs if lot_key(k) not in state.inputs)
    return {
        "lot_id": lot_id,
        "kind": created.kind,
        "form": created.form,
        "material": created.material,
        "mass_kg": kg_from_grams(created.grams),
        "consumed_kg": kg_from_grams(consumed),
        "remaining_kg": kg_from_grams(created.grams - consumed),
        "consumed_by": len(state.debits),
        "composition": {m: share(p, 10**6) for m, p in sorted(created.composition.items())},
        "materials": materials_view(profile.metals),
        "origin": origins_view(profile.origins, profile.grams),
        "inputs": {k: kg_from_grams(g) for k, g in sorted(created.inputs.items())},
        "created_by": {
            "event_id": created.event_id,
            "event_type": created.event_type,
            "operator_id": created.operator_id,
            "site_id": created.site_id,
            "region": created.region,
            "occurred_at": iso(created.occurred_at),
        },
        "location": holder(state.shipments),
        "complete": profile.complete,
        "missing_inputs": missing,
        "missing_upstream": missing_view(profile.missing_upstream),
        "missing_upstream_more": profile.missing_upstream_more,
        # A classified black mass says how it is classed (absent otherwise: other lots'
        # documents stay as they were).
        **(
            {}
            if created.classification is None
            else {"classification": classification_view(created.classification)}
        ),
        **provenance.view(created.region, cfg, facts, profile.regions, provenance.LOT_SHOWS),
    }
