"""State of every entity, changed only by messages to its key, and the documents it publishes.

Why the result does not depend on arrival order
-----------------------------------------------
Each entity keeps *facts* (what events said about it) in maps keyed by event id, never running
totals of events. A fact applied twice is the same map entry, so a redelivered event changes
nothing; facts arriving in any order end as the same maps. Everything published is computed from
those maps, iterating in sorted order with integer arithmetic (:mod:`.quantities`).

What one entity needs from another (a lot's composition and origins for the battery made from
it, a cell's materials for its pack, a battery's materials for its model's tally) travels as a
*profile* message carrying a version: the number of facts the sender's profile rests on, its own
plus the versions of the profiles it received. Versions only grow, and a profile that rests on
every fact is strictly newer than any that misses one, so a receiver that keeps the highest
version per sender ends with the final profile whatever order the messages took.

Deduplication memory is therefore the state itself: an entity remembers the ids of the events
that changed it because it needs those facts to recompute; there is no time window after which
a late duplicate could slip through. Its size is bounded by the entity's own history (a lot's
creation, debits and shipments; a battery's events), which is what a passport must keep anyway.
The exceptions are bounded on purpose: a battery keeps only its latest state-of-health
reading (a maximum, so order and replays do not matter), and an operator keeps at most
``PENDING_DETAIL`` events waiting for a certificate by id (the rest counted per hour) and the
``FLAGGED_DETAIL`` newest alerted ones.

Entity keys and what they hold
------------------------------
``lot/<id>``                        creation fact(s), debits, shipments, input-lot profiles
``battery/<id>``                    manufacture, use, shipment, shredding facts; input profiles
``operator/<id>``                   certification facts; events waiting for a certification
``recycled-content/<m>|<p>|<model>|<year>``  totals; each battery's contribution is stored
                                             beside it under ``recycled-content-part/...``
``recovery/<recycler>|<plant>|<year>``       totals; contributions under ``recovery-part/...``
"""

from __future__ import annotations

import bisect
import copy
import hashlib
import json
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from schemas.values import ALLIANCE_COUNTRIES
from streams.domain.quantities import (
    at_least,
    iso,
    kg_from_grams,
    kg_from_micrograms,
    micros,
    scaled,
    share,
    year,
)
from streams.domain.routing import Addressed, Message, battery_key, lot_key

State = dict[str, Any]
Profile = dict[str, Any]
#: Profiles hold lot mass in grams ("g"), per metal [metal, pre-consumer recycled,
#: post-consumer recycled] in micrograms ("m"), and mass of primary origin per "country|site"
#: in micrograms ("o"), plus whether every input is known ("c") and the genealogy depth ("d").
MICROGRAMS_PER_GRAM = 10**6

#: Published documents go to these outputs (see the topic registry for their topics).
PASSPORTS, LOTS, RECYCLED_CONTENT, RECOVERY, OPERATORS, ALERTS = (
    "passports",
    "lots",
    "recycled-content",
    "recovery",
    "operators",
    "alerts",
)

#: EU 2023/1542 Art. 8: minimum recycled content, share of the metal in active materials
#: (lead: in the battery), from 18 Aug 2031 and from 18 Aug 2036.
RECYCLED_CONTENT_MINIMUMS: dict[str, tuple[str, str]] = {
    "cobalt": ("0.16", "0.26"),
    "lithium": ("0.06", "0.12"),
    "nickel": ("0.06", "0.15"),
    "lead": ("0.85", "0.85"),
}
#: EU 2023/1542 Annex XII Part C: material recovery targets by 31 Dec 2027 and 31 Dec 2031.
RECOVERY_TARGETS: dict[str, tuple[str, str]] = {
    "cobalt": ("0.90", "0.95"),
    "copper": ("0.90", "0.95"),
    "lead": ("0.90", "0.95"),
    "nickel": ("0.90", "0.95"),
    "lithium": ("0.50", "0.80"),
}
#: Lot forms and creations whose shipment out of the alliance is an outflow.
OUTFLOW_LOT_KINDS = frozenset({"shredded", "recovered"})
OUTFLOW_LOT_FORMS = frozenset({"black_mass", "recovered"})
#: A genealogy deeper than this is taken for a cycle (lot A made from B made from A): the
#: profile stops propagating and an alert says so. Real chains, closed loops included, are far
#: shallower (mine, refinery, cathode, cell, module, pack, black mass, recovery: ~10 per loop).
MAX_GENEALOGY_DEPTH = 256
#: Grams of rounding allowed per input when checking a refining batch's metal balance.
ROUNDING_UG_PER_INPUT = 1


@dataclass
class Config:
    #: How long a reference to an unknown lot or battery, or an event from an operator without
    #: a valid certification, may wait for the missing event before it is alerted.
    grace_ms: int = 3_600_000


@dataclass
class Effects:
    """What handling a batch of messages caused: messages to other entities, documents."""

    messages: list[Addressed] = field(default_factory=list)
    published: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    #: Entries a handler stores beside its entity's state (same partition): key -> value.
    stored: dict[str, State] = field(default_factory=dict)
    #: How to read such entries (set by the engine); None reads nothing.
    loader: Callable[[str], State | None] | None = None

    def get(self, key: str) -> State | None:
        if key in self.stored:
            return self.stored[key]
        return self.loader(key) if self.loader else None

    def put(self, key: str, value: State) -> None:
        self.stored[key] = value

    def send(self, key: str, message: Message) -> None:
        self.messages.append((key, message))

    def publish(self, output: str, key: str, document: dict[str, Any]) -> None:
        self.published.append((output, key, document))


# --- shared helpers ---------------------------------------------------------------------------


def digest(document: Any) -> str:
    text = json.dumps(document, sort_keys=True, separators=(",", ":"))
    return hashlib.blake2b(text.encode(), digest_size=12).hexdigest()


def _chosen(facts: dict[str, Any]) -> Any:
    """The fact a conflict is resolved to: lowest event id (same choice in every order)."""
    return facts[min(facts)] if facts else None


def _hold(inputs: dict[str, list[Any]], src: str, version: int, payload: Any) -> bool:
    """Keep the newest profile per sender; True when it replaced what was held."""
    held = inputs.get(src)
    if held is not None and held[0] >= version:
        return False
    inputs[src] = [version, payload]
    return True


def _version(own_facts: int, inputs: dict[str, list[Any]]) -> int:
    return own_facts + sum(int(v) for v, _ in inputs.values())


def _take(profile: Profile, g: int) -> Profile:
    """The part of a profiled lot that ``g`` grams of it carry."""
    total = profile["g"]
    return {
        "g": g,
        "m": {k: [scaled(x, g, total) for x in v] for k, v in profile["m"].items()},
        "o": {k: scaled(x, g, total) for k, x in profile["o"].items()},
    }


def _add(pool: Profile, part: Profile) -> None:
    pool["g"] += part["g"]
    for metal, values in part["m"].items():
        into = pool["m"].setdefault(metal, [0, 0, 0])
        for i, x in enumerate(values):
            into[i] += x
    for origin, g in part["o"].items():
        pool["o"][origin] = pool["o"].get(origin, 0) + g


def _empty_pool() -> Profile:
    return {"g": 0, "m": {}, "o": {}}


def _pool(
    parts: Iterable[tuple[str, int | None]], inputs: dict[str, list[Any]]
) -> tuple[Profile, bool, int]:
    """Mix the parts taken from inputs: (sender key, grams taken, or None for all of it).

    Returns the pool, whether every part's profile is known and complete, and the depth.
    """
    pool = _empty_pool()
    complete = True
    depth = 0
    for src, taken in parts:
        held = inputs.get(src)
        if held is None:
            complete = False
            continue
        profile = held[1]
        complete = complete and profile["c"]
        depth = max(depth, profile["d"] + 1)
        _add(pool, profile if taken is None else _take(profile, taken))
    return pool, complete, depth


def _lot_parts(taken: dict[str, int]) -> list[tuple[str, int | None]]:
    return [(lot_key(lot_id), g) for lot_id, g in sorted(taken.items())]


def _sorted_profile(p: Profile) -> Profile:
    return {**p, "m": dict(sorted(p["m"].items())), "o": dict(sorted(p["o"].items()))}


def _materials(metals: dict[str, list[int]]) -> dict[str, dict[str, Any]]:
    out = {}
    for metal, (total, pre, post) in sorted(metals.items()):
        out[metal] = {
            "mass_kg": kg_from_micrograms(total),
            "recycled_share": share(pre + post, total),
            "recycled_pre_consumer_share": share(pre, total),
            "recycled_post_consumer_share": share(post, total),
        }
    return out


def _origins(origins: dict[str, int], traced_g: int) -> dict[str, Any]:
    """Origin shares of the traced mass; ``origins`` holds micrograms per country|site."""
    traced = traced_g * MICROGRAMS_PER_GRAM
    countries: dict[str, int] = defaultdict(int)
    sites = []
    for origin, ug in sorted(origins.items()):
        country, _, site = origin.partition("|")
        countries[country] += ug
        sites.append({"country": country, "site_id": site, "share": share(ug, traced)})
    primary = sum(countries.values())
    return {
        "traced_mass_kg": kg_from_grams(traced_g),
        "primary_share": share(primary, traced),
        "secondary_share": share(traced - primary, traced),
        "countries": {c: share(ug, traced) for c, ug in sorted(countries.items())},
        "extraction_sites": sites,
    }


def _publish_if_changed(st: State, fx: Effects, output: str, key: str, doc: dict[str, Any]) -> None:
    d = digest(doc)
    if st.get("pub") != d:
        st["pub"] = d
        fx.publish(output, key, doc)


def _alert(kind: str, subject: str, message: str, **details: Any) -> dict[str, Any]:
    return {"kind": kind, "subject": subject, "message": message, "details": details}


def _publish_alerts(st: State, fx: Effects, current: dict[str, dict[str, Any]]) -> None:
    """Publish alerts that opened or changed; a vanished one is published as resolved."""
    known: dict[str, list[str]] = st.setdefault("alerts", {})
    for alert_id, alert in sorted(current.items()):
        doc = {"alert_id": alert_id, "status": "open", **alert}
        d = digest(doc)
        if known.get(alert_id, [None])[0] != d:
            known[alert_id] = [d, alert["kind"], alert["subject"]]
            fx.publish(ALERTS, alert_id, doc)
    for alert_id in sorted(set(known) - set(current)):
        d, kind, subject = known[alert_id]
        if d != "resolved":
            known[alert_id] = ["resolved", kind, subject]
            fx.publish(
                ALERTS,
                alert_id,
                {
                    "alert_id": alert_id,
                    "status": "resolved",
                    "kind": kind,
                    "subject": subject,
                    "message": "resolved by later events",
                    "details": {},
                },
            )
    if not known:
        del st["alerts"]


def _unresolved_alert(
    st: State,
    key: str,
    now: int,
    cfg: Config,
    resolved: bool,
    references: list[str],
    message: str,
) -> dict[str, dict[str, Any]]:
    """An entity referenced (by ``references``, event ids) but never created is alerted once it
    has waited ``cfg.grace_ms``; ``since`` records when the wait began."""
    if resolved or not references:
        st.pop("since", None)
        return {}
    st.setdefault("since", now)
    if now - st["since"] < cfg.grace_ms:
        return {}
    return {
        f"unresolved/{key}": _alert(
            "unresolved_reference", key, message, event_ids=sorted(set(references))
        )
    }


def _outflow_alert(key: str, eid: str, ship: dict[str, Any], what: str) -> dict[str, Any]:
    return _alert(
        "outflow",
        key,
        f"{what} shipped from {ship['from_country']} to {ship['to_country']}, outside the alliance",
        event_ids=[eid],
        from_country=ship["from_country"],
        to_country=ship["to_country"],
        mass_kg=kg_from_grams(ship["g"]),
        hs_code=ship["hs"],
    )


def _outflow(ship: dict[str, Any]) -> bool:
    return (
        ship["from_country"] in ALLIANCE_COUNTRIES and ship["to_country"] not in ALLIANCE_COUNTRIES
    )


def _holder(ships: dict[str, Any]) -> dict[str, Any] | None:
    if not ships:
        return None
    last = max(ships.values(), key=lambda s: (s["at"], s["eid"]))
    return {"site_id": last["to_site"], "country": last["to_country"], "since": iso(last["at"])}


# --- lots -------------------------------------------------------------------------------------


def _lot_profile(fact: dict[str, Any], inputs: dict[str, list[Any]]) -> Profile:
    g = fact["g"]
    comp: dict[str, int] = fact["comp"]
    kind = fact["kind"]
    if kind == "extracted":
        return {
            "g": g,
            "m": {m: [g * p, 0, 0] for m, p in comp.items()},
            "o": {f"{fact['country']}|{fact['site']}": g * MICROGRAMS_PER_GRAM},
            "c": True,
            "d": 0,
        }
    if kind == "shredded":
        # Black mass is all waste-derived metal; its pre/post split follows the shredded mass.
        pre_g, post_g = fact["pre_g"], fact["post_g"]
        metals = {}
        for m, p in comp.items():
            pre = scaled(g * p, pre_g, pre_g + post_g)
            metals[m] = [g * p, pre, g * p - pre]
        return {"g": g, "m": metals, "o": {}, "c": True, "d": 0}
    # refined or recovered: mix the inputs taken, by mass, then apply to the output's metal
    pool, complete, depth = _pool(_lot_parts(fact["inputs"]), inputs)
    metals = {}
    for m, p in comp.items():
        total = g * p
        pool_total, pool_pre, pool_post = pool["m"].get(m, [0, 0, 0])
        metals[m] = [
            total,
            scaled(total, pool_pre, pool_total),
            scaled(total, pool_post, pool_total),
        ]
    origins = {k: scaled(g, x, pool["g"]) for k, x in pool["o"].items()}
    if kind == "recovered":
        origins = {}  # recovered material is secondary: it has no extraction origin
    return {"g": g, "m": metals, "o": origins, "c": complete, "d": depth}


def handle_lot(
    key: str, st: State, messages: list[Message], now: int, cfg: Config, fx: Effects
) -> State:
    created = st.setdefault("created", {})
    debits = st.setdefault("debits", {})
    ships = st.setdefault("ships", {})
    inputs = st.setdefault("in", {})
    new_consumers: set[str] = set()
    new_recoveries = False
    for msg in messages:
        kind = msg["m"]
        if kind == "created":
            created.setdefault(msg["fact"]["eid"], msg["fact"])
        elif kind == "debit":
            fact = msg["fact"]
            if fact["eid"] not in debits:
                debits[fact["eid"]] = fact
                new_consumers.update(fact["consumers"])
                new_recoveries = new_recoveries or "recovery" in fact
        elif kind == "shipped":
            ships.setdefault(msg["fact"]["eid"], msg["fact"])
        elif kind == "profile":
            _hold(inputs, msg["src"], msg["v"], msg["p"])
    fact = _chosen(created)
    version = _version(len(created), inputs)
    profile = None if fact is None else _sorted_profile(_lot_profile(fact, inputs))
    alerts: dict[str, dict[str, Any]] = {}
    lot_id = key.split("/", 1)[1]

    if profile is not None and profile["d"] > MAX_GENEALOGY_DEPTH:
        alerts[f"genealogy-cycle/{key}"] = _alert(
            "genealogy_cycle",
            key,
            f"lot {lot_id} descends from itself or from a chain over "
            f"{MAX_GENEALOGY_DEPTH} steps deep; its profile is not propagated",
        )
    elif profile is not None:
        consumers = sorted({c for d in debits.values() for c in d["consumers"]})
        targets = consumers if st.get("pv") != version else sorted(new_consumers)
        for consumer in targets:
            fx.send(consumer, {"m": "profile", "src": key, "v": version, "p": profile})
        st["pv"] = version
        if new_recoveries or st.get("rv") != version:
            _send_recovery_contributions(key, fact, debits, version, fx)
            st["rv"] = version

    consumed = sum(d["g"] for d in debits.values())
    if fact is not None:
        if consumed > fact["g"]:
            alerts[f"mass-balance/{key}"] = _alert(
                "mass_balance",
                key,
                f"lot {lot_id} holds {kg_from_grams(fact['g'])} kg but "
                f"{kg_from_grams(consumed)} kg were taken from it",
                mass_kg=kg_from_grams(fact["g"]),
                consumed_kg=kg_from_grams(consumed),
                event_ids=sorted(debits),
            )
        alerts.update(_recovery_violations(key, fact, debits))
        if fact["kind"] == "refined" and profile is not None:
            alerts.update(_refining_violation(key, fact, inputs))
        if len(created) > 1:
            alerts[f"conflict/{key}"] = _alert(
                "conflicting_events",
                key,
                f"{len(created)} events each create lot {lot_id}; using {fact['eid']}",
                event_ids=sorted(created),
            )
    for eid, ship in sorted(ships.items()):
        if (
            fact is not None
            and _outflow(ship)
            and (fact["kind"] in OUTFLOW_LOT_KINDS or fact["form"] in OUTFLOW_LOT_FORMS)
        ):
            what = f"{fact['form'].replace('_', ' ')} lot {lot_id}"
            alerts[f"outflow/{eid}"] = _outflow_alert(key, eid, ship, what)
    alerts.update(
        _unresolved_alert(
            st,
            key,
            now,
            cfg,
            fact is not None,
            [*debits, *ships],
            f"lot {lot_id} is referenced but no event created it",
        )
    )
    _publish_alerts(st, fx, alerts)
    if fact is not None:
        _publish_if_changed(st, fx, LOTS, lot_id, _lot_view(lot_id, fact, profile, st, consumed))
    return st


def _lot_view(
    lot_id: str, fact: dict[str, Any], profile: Profile | None, st: State, consumed: int
) -> dict[str, Any]:
    assert profile is not None
    missing = sorted(k for k in fact.get("inputs", {}) if lot_key(k) not in st["in"])
    return {
        "lot_id": lot_id,
        "kind": fact["kind"],
        "form": fact["form"],
        "material": fact["material"],
        "mass_kg": kg_from_grams(fact["g"]),
        "consumed_kg": kg_from_grams(consumed),
        "remaining_kg": kg_from_grams(fact["g"] - consumed),
        "consumed_by": len(st["debits"]),
        "composition": {m: share(p, 10**6) for m, p in sorted(fact["comp"].items())},
        "materials": _materials(profile["m"]),
        "origin": _origins(profile["o"], profile["g"]),
        "inputs": {k: kg_from_grams(g) for k, g in sorted(fact.get("inputs", {}).items())},
        "created_by": {
            "event_id": fact["eid"],
            "event_type": fact["type"],
            "operator_id": fact["op"],
            "site_id": fact["site"],
            "region": fact["region"],
            "occurred_at": iso(fact["at"]),
        },
        "location": _holder(st["ships"]),
        "complete": profile["c"],
        "missing_inputs": missing,
    }


def _metal_in(lots: Iterable[list[Any]]) -> dict[str, int]:
    """Micrograms of each metal in lots given as [grams, {metal: ppm}]."""
    out: dict[str, int] = defaultdict(int)
    for g, comp in lots:
        for m, p in comp.items():
            out[m] += g * p
    return out


def _recovery_key(debit: dict[str, Any]) -> str:
    return f"recovery/{debit['op']}|{debit['site']}|{year(debit['at'])}"


def _send_recovery_contributions(
    key: str, fact: dict[str, Any], debits: dict[str, Any], version: int, fx: Effects
) -> None:
    for eid, debit in sorted(debits.items()):
        if "recovery" not in debit:
            continue
        into = {m: debit["g"] * p for m, p in fact["comp"].items()}
        out = _metal_in(debit["recovery"]["outputs"].values())
        contribution = {
            "labels": {"recycler": debit["op"], "plant": debit["site"], "year": year(debit["at"])},
            "in": dict(sorted(into.items())),
            "out": dict(sorted(out.items())),
        }
        fx.send(
            _recovery_key(debit),
            {"m": "contribution", "src": f"{key}#{eid}", "v": version, "p": contribution},
        )


def _recovery_violations(key: str, fact: dict[str, Any], debits: dict[str, Any]) -> dict[str, Any]:
    alerts = {}
    for eid, debit in sorted(debits.items()):
        if "recovery" not in debit:
            continue
        out = _metal_in(debit["recovery"]["outputs"].values())
        over = {
            m: {
                "input_kg": kg_from_micrograms(debit["g"] * fact["comp"].get(m, 0)),
                "recovered_kg": kg_from_micrograms(x),
            }
            for m, x in sorted(out.items())
            if x > debit["g"] * fact["comp"].get(m, 0)
        }
        if over:
            alerts[f"mass-balance/recovery/{eid}"] = _alert(
                "mass_balance",
                key,
                f"recovery {eid} recovered more {', '.join(over)} than its black mass held",
                event_ids=[eid],
                metals=over,
            )
    return alerts


def _refining_violation(
    key: str, fact: dict[str, Any], inputs: dict[str, list[Any]]
) -> dict[str, Any]:
    # Every output lot of a batch sees the whole batch; the first one speaks for it.
    if fact["batch_outputs"] and lot_key(min(fact["batch_outputs"])) != key:
        return {}
    pool, complete, _ = _pool(_lot_parts(fact["inputs"]), inputs)
    if not complete:
        return {}  # cannot judge before every input is known
    out = _metal_in(fact["batch_outputs"].values())
    slack = ROUNDING_UG_PER_INPUT * len(fact["inputs"])
    over = {
        m: {
            "input_kg": kg_from_micrograms(pool["m"].get(m, [0])[0]),
            "output_kg": kg_from_micrograms(x),
        }
        for m, x in sorted(out.items())
        if x > pool["m"].get(m, [0])[0] + slack
    }
    if not over:
        return {}
    return {
        f"mass-balance/refining/{fact['eid']}": _alert(
            "mass_balance",
            key,
            f"refining batch {fact['batch']} put out more {', '.join(over)} than went in",
            event_ids=[fact["eid"]],
            metals=over,
        )
    }


# --- batteries --------------------------------------------------------------------------------


def _status_timeline(st: State, made: dict[str, Any] | None) -> list[tuple[int, str, str]]:
    timeline = []
    if made is not None:
        timeline.append((made["at"], made["eid"], "original"))
    timeline += [(u["at"], u["eid"], u["status"]) for u in st["uses"].values()]
    if "health" in st:
        timeline.append((st["health"]["at"], st["health"]["eid"], st["health"]["status"]))
    timeline += [(s["at"], s["eid"], "waste") for s in st["shreds"].values()]
    return sorted(timeline)


def _status_at(timeline: list[tuple[int, str, str]], at: int) -> str | None:
    status = None
    for when, _, value in timeline:
        if when > at:
            break
        status = value
    return status


def _battery_profile(made: dict[str, Any], inputs: dict[str, list[Any]]) -> Profile:
    components: list[tuple[str, int | None]] = [(battery_key(c), None) for c in made["components"]]
    pool, complete, depth = _pool(_lot_parts(made["inputs"]) + components, inputs)
    return _sorted_profile({**pool, "c": complete, "d": depth})


def _tally_key(made: dict[str, Any]) -> str:
    return f"recycled-content/{made['op']}|{made['site']}|{made['model']}|{year(made['at'])}"


def handle_battery(
    key: str, st: State, messages: list[Message], now: int, cfg: Config, fx: Effects
) -> State:
    made_facts = st.setdefault("made", {})
    uses = st.setdefault("uses", {})
    ships = st.setdefault("ships", {})
    shreds = st.setdefault("shreds", {})
    parents = st.setdefault("parents", {})
    inputs = st.setdefault("in", {})
    new_parents: set[str] = set()
    for msg in messages:
        kind = msg["m"]
        fact: dict[str, Any] = msg.get("fact") or {}
        if kind == "manufactured":
            made_facts.setdefault(fact["eid"], fact)
        elif kind == "used" and fact["action"] == "state_of_health":
            # Health reports come often and only the latest matters: keep the latest by
            # (time, event id). A maximum is the same in any order and unchanged by a replay,
            # and the state stays one report long however many arrive.
            latest = st.get("health")
            if latest is None or (fact["at"], fact["eid"]) > (latest["at"], latest["eid"]):
                st["health"] = fact
        elif kind == "used":
            uses.setdefault(fact["eid"], fact)
        elif kind == "shipped":
            ships.setdefault(fact["eid"], fact)
        elif kind == "shredded":
            shreds.setdefault(fact["eid"], fact)
        elif kind == "part_of":
            if fact["eid"] not in parents:
                parents[fact["eid"]] = fact
                new_parents.add(fact["parent"])
        elif kind == "profile":
            _hold(inputs, msg["src"], msg["v"], msg["p"])
    made = _chosen(made_facts)
    battery_id = key.split("/", 1)[1]
    alerts: dict[str, dict[str, Any]] = {}
    profile = None
    if made is not None:
        version = _version(len(made_facts), inputs)
        profile = _battery_profile(made, inputs)
        if profile["d"] > MAX_GENEALOGY_DEPTH:
            alerts[f"genealogy-cycle/{key}"] = _alert(
                "genealogy_cycle", key, f"battery {battery_id} contains itself"
            )
        else:
            all_parents = sorted({p["parent"] for p in parents.values()})
            targets = all_parents if st.get("pv") != version else sorted(new_parents)
            for parent in targets:
                fx.send(parent, {"m": "profile", "src": key, "v": version, "p": profile})
            st["pv"] = version
            _send_tally_contribution(key, st, made, profile, version, fx)
        if len(made_facts) > 1:
            alerts[f"conflict/{key}"] = _alert(
                "conflicting_events",
                key,
                f"{len(made_facts)} manufacture events for battery {battery_id}; "
                f"using {made['eid']}",
                event_ids=sorted(made_facts),
            )
    timeline = _status_timeline(st, made)
    for eid, ship in sorted(ships.items()):
        if made is not None and _outflow(ship) and _status_at(timeline, ship["at"]) == "waste":
            what = f"waste battery {battery_id}"
            alerts[f"outflow/{eid}"] = _outflow_alert(key, eid, ship, what)
    health = [st["health"]["eid"]] if "health" in st else []
    alerts.update(
        _unresolved_alert(
            st,
            key,
            now,
            cfg,
            made is not None,
            [*uses, *ships, *shreds, *parents, *health],
            f"battery {battery_id} is referenced but was never manufactured",
        )
    )
    _publish_alerts(st, fx, alerts)
    if made is not None and profile is not None:
        doc = _passport_view(battery_id, st, made, profile, timeline)
        _publish_if_changed(st, fx, PASSPORTS, battery_id, doc)
    return st


def _send_tally_contribution(
    key: str, st: State, made: dict[str, Any], profile: Profile, version: int, fx: Effects
) -> None:
    tally = _tally_key(made)
    if st.get("tv") == [tally, version]:
        return
    contribution = {
        "labels": {
            "manufacturer": made["op"],
            "plant": made["site"],
            "model": made["model"],
            "year": year(made["at"]),
        },
        "m": {m: v for m, v in profile["m"].items() if m in RECYCLED_CONTENT_MINIMUMS},
        "c": profile["c"],
    }
    fx.send(tally, {"m": "contribution", "src": key, "v": version, "p": contribution})
    # A battery whose chosen manufacture changed withdraws from the tally it was in.
    previous = st.get("tv")
    if previous is not None and previous[0] != tally:
        fx.send(previous[0], {"m": "contribution", "src": key, "v": version, "p": None})
    st["tv"] = [tally, version]


def _passport_view(
    battery_id: str,
    st: State,
    made: dict[str, Any],
    profile: Profile,
    timeline: list[tuple[int, str, str]],
) -> dict[str, Any]:
    uses = sorted(st["uses"].values(), key=lambda u: (u["at"], u["eid"]))
    passports = [made["passport"]]
    for use in uses:
        if use["new_passport"] and use["new_passport"] not in passports:
            passports.append(use["new_passport"])
    health = sorted(
        [u for u in uses if u["soh"] is not None] + ([st["health"]] if "health" in st else []),
        key=lambda u: (u["at"], u["eid"]),
    )
    shreds = sorted(st["shreds"].values(), key=lambda s: (s["at"], s["eid"]))
    missing = sorted(
        [k for k in made["inputs"] if lot_key(k) not in st["in"]]
        + [c for c in made["components"] if battery_key(c) not in st["in"]]
    )
    return {
        "battery_id": battery_id,
        "passport_id": passports[-1],
        "predecessor_passport_id": passports[-2] if len(passports) > 1 else None,
        "passport_history": passports,
        "status": timeline[-1][2] if timeline else "original",
        "state_of_health": health[-1]["soh"] if health else None,
        "category": made["category"],
        "level": made["level"],
        "model": made["model"],
        "chemistry": made["chemistry"],
        "manufacturer_id": made["op"],
        "plant_id": made["site"],
        "region": made["region"],
        "manufactured_at": iso(made["at"]),
        "mass_kg": kg_from_grams(made["g"]),
        "capacity_kwh": made["kwh"],
        "carbon_footprint": made["cf"],
        "components": made["components"],
        "part_of": sorted({p["parent"].split("/", 1)[1] for p in st["parents"].values()}),
        "materials": _materials(profile["m"]),
        "origin": _origins(profile["o"], profile["g"]),
        "holder": _holder(st["ships"]),
        "shredded_into": shreds[-1]["lot"] if shreds else None,
        "complete": profile["c"],
        "missing_inputs": missing,
    }


# --- operators --------------------------------------------------------------------------------


class CertificationIndex:
    """Which times an operator's certifications cover; built once, asked many times.

    Per scheme (either region's: certification is mutual), the latest certification fact at or
    before a time decides: certified and not expired covers; revoked does not.
    """

    def __init__(self, certs: Iterable[dict[str, Any]]) -> None:
        by_scheme: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for c in certs:
            by_scheme.setdefault((c["scheme_region"], c["scheme"]), []).append(c)
        self._timelines = [
            sorted(facts, key=lambda c: (c["at"], c["eid"])) for facts in by_scheme.values()
        ]
        self._keys = [[(c["at"], c["eid"]) for c in t] for t in self._timelines]

    def covers(self, at: int) -> bool:
        return self.covering(at) is not None

    def covering(self, at: int) -> dict[str, Any] | None:
        """The certification fact that covers ``at`` (the first scheme's that does), or None."""
        for timeline, keys in zip(self._timelines, self._keys, strict=True):
            i = bisect.bisect_right(keys, (at, "\uffff")) - 1
            if i >= 0:
                fact = timeline[i]
                if fact["action"] == "certified" and (fact["until"] is None or fact["until"] >= at):
                    return fact
        return None


def certified_at(certs: Iterable[dict[str, Any]], at: int) -> bool:
    return CertificationIndex(certs).covers(at)


#: Events waiting for their operator's certification are kept one by one up to this many per
#: operator; beyond that they are counted per hour in which they occurred. A burst read before
#: the certificate (on a replay, partitions are read in any order) must not grow an operator's
#: state without bound. Counting in bulk gives up exact deduplication for those: a replayed
#: event there is counted again in the alert's total (it cannot change passports or tallies).
PENDING_DETAIL = 500
#: Flagged events remembered by id (the newest), for deduplication and the alert's examples.
FLAGGED_DETAIL = 100
_HOUR_US = 3600 * 10**6


def handle_operator(
    key: str, st: State, messages: list[Message], now: int, cfg: Config, fx: Effects
) -> State:
    certs = st.setdefault("certs", {})
    pending = st.setdefault("pending", {})
    bulk = st.setdefault("bulk", {})
    flagged = st.setdefault("flagged", {})
    for msg in messages:
        if msg["m"] == "certification":
            certs.setdefault(msg["fact"]["eid"], msg["fact"])
    index = CertificationIndex(certs.values())
    for msg in messages:
        if msg["m"] != "check":
            continue
        for eid, at, event_type, subject in msg["events"]:
            if index.covers(at) or eid in pending or eid in flagged:
                continue
            if len(pending) < PENDING_DETAIL:
                pending[eid] = [at, event_type, subject, now]
            else:
                hour = bulk.setdefault(str(at // _HOUR_US), [0, now, at, at])
                hour[0] += 1
                hour[2], hour[3] = min(hour[2], at), max(hour[3], at)

    def flag(count: int, example: tuple[str, list[Any]] | None = None) -> None:
        st["flagged_total"] = st.get("flagged_total", 0) + count
        if example is not None:
            flagged[example[0]] = example[1]
            if len(flagged) > FLAGGED_DETAIL:
                oldest = min(flagged.items(), key=lambda kv: (kv[1][0], kv[0]))[0]
                del flagged[oldest]

    for eid in sorted(pending):
        at, event_type, subject, seen = pending[eid]
        if index.covers(at):
            del pending[eid]
        elif now - seen >= cfg.grace_ms:
            del pending[eid]
            flag(1, (eid, [at, event_type, subject]))
    for hour_key in sorted(bulk):
        count, seen, first, last = bulk[hour_key]
        # Covered at both ends of the hour counts as covered (certificates change rarely).
        if index.covers(first) and index.covers(last):
            del bulk[hour_key]
        elif now - seen >= cfg.grace_ms:
            del bulk[hour_key]
            flag(count)
    operator_id = key.split("/", 1)[1]
    alerts = {}
    if st.get("flagged_total"):
        newest = sorted(flagged.items(), key=lambda kv: (kv[1][0], kv[0]))[-10:]
        alerts[f"uncertified/{key}"] = _alert(
            "uncertified_operator",
            key,
            f"{st['flagged_total']} event(s) from operator {operator_id}, which held no valid "
            "certification in either region when they occurred",
            events=st["flagged_total"],
            latest=[
                {"event_id": e, "event_type": t, "subject": s, "occurred_at": iso(a)}
                for e, (a, t, s) in newest
            ],
        )
    _publish_alerts(st, fx, alerts)
    if certs:
        doc = {
            "operator_id": operator_id,
            "certifications": [
                {
                    "event_id": c["eid"],
                    "action": c["action"],
                    "scheme_region": c["scheme_region"],
                    "scheme": c["scheme"],
                    "certificate_id": c["certificate"],
                    "occurred_at": iso(c["at"]),
                    "valid_until": None if c["until"] is None else iso(c["until"]),
                }
                for c in sorted(certs.values(), key=lambda c: (c["at"], c["eid"]))
            ],
        }
        _publish_if_changed(st, fx, OPERATORS, operator_id, doc)
    return st


def operator_certified(document: dict[str, Any] | None, at: int) -> bool:
    """Read side of :func:`certified_at`, over a published operator document."""
    if not document:
        return False
    certs = [
        {
            "eid": c["event_id"],
            "action": c["action"],
            "scheme_region": c["scheme_region"],
            "scheme": c["scheme"],
            "at": micros(datetime.fromisoformat(c["occurred_at"])),
            "until": None
            if c["valid_until"] is None
            else micros(datetime.fromisoformat(c["valid_until"])),
        }
        for c in document["certifications"]
    ]
    return certified_at(certs, at)


# --- tallies ----------------------------------------------------------------------------------


def _apply_contributions(
    key: str, st: State, messages: list[Message], width: int, fx: Effects
) -> None:
    """Replace each source's contribution by its newest version, keeping exact totals.

    A tally holds only its totals and counts; each source's last contribution is an entry of
    its own (``<key>#<source>``, see :func:`part_key`), stored beside the tally in the same
    partition. So a tally stays small however many batteries a model sells in a year.
    """
    totals: dict[str, list[int]] = st.setdefault("t", {})
    counts = st.setdefault("n", {"sources": 0, "incomplete": 0})
    for msg in messages:
        if msg["m"] != "contribution":
            continue
        part = part_key(key, msg["src"])
        old = fx.get(part)
        if old is not None and old["v"] >= msg["v"]:
            continue
        for sign, contribution in ((-1, old["p"] if old else None), (1, msg["p"])):
            if contribution is None:
                continue
            st["labels"] = contribution["labels"]
            counts["sources"] += sign
            counts["incomplete"] += sign * (not contribution.get("c", True))
            for metal, values in _contribution_metals(contribution, width).items():
                into = totals.setdefault(metal, [0] * width)
                for i, x in enumerate(values):
                    into[i] += sign * x
        fx.put(part, {"v": msg["v"], "p": msg["p"]})


def part_key(tally_key: str, source: str) -> str:
    """Key of one source's contribution to a tally: ``<kind>-part/<tally>#<source key>``."""
    kind, _, rest = tally_key.partition("/")
    return f"{kind}-part/{rest}#{source}"


def _contribution_metals(contribution: dict[str, Any], width: int) -> dict[str, list[int]]:
    if width == 3:  # recycled content: [metal, pre, post]
        metals: dict[str, list[int]] = contribution["m"]
        return metals
    names = set(contribution["in"]) | set(contribution["out"])  # recovery: [in, out]
    return {m: [contribution["in"].get(m, 0), contribution["out"].get(m, 0)] for m in names}


def handle_recycled_content(
    key: str, st: State, messages: list[Message], now: int, cfg: Config, fx: Effects
) -> State:
    _apply_contributions(key, st, messages, 3, fx)
    if "labels" not in st:
        return st
    metals = {}
    for metal, (low, high) in RECYCLED_CONTENT_MINIMUMS.items():
        total, pre, post = st["t"].get(metal, [0, 0, 0])
        metals[metal] = {
            "total_kg": kg_from_micrograms(total),
            "recycled_kg": kg_from_micrograms(pre + post),
            "recycled_pre_consumer_kg": kg_from_micrograms(pre),
            "recycled_post_consumer_kg": kg_from_micrograms(post),
            "recycled_share": share(pre + post, total),
            "pre_consumer_share": share(pre, total),
            "post_consumer_share": share(post, total),
            "minimum_2031": low,
            "minimum_2036": high,
            "meets_2031": at_least(pre + post, total, low) if total else None,
            "meets_2036": at_least(pre + post, total, high) if total else None,
        }
    doc = {
        **st["labels"],
        "batteries": st["n"]["sources"],
        "batteries_incomplete": st["n"]["incomplete"],
        "metals": metals,
        "basis": "mass balance over the lot genealogy; lead over the battery, "
        "cobalt, lithium and nickel over the active materials declared as inputs",
    }
    _publish_if_changed(st, fx, RECYCLED_CONTENT, key.split("/", 1)[1], doc)
    return st


def handle_recovery(
    key: str, st: State, messages: list[Message], now: int, cfg: Config, fx: Effects
) -> State:
    _apply_contributions(key, st, messages, 2, fx)
    if "labels" not in st:
        return st
    metals = {}
    for metal, (by_2027, by_2031) in RECOVERY_TARGETS.items():
        into, out = st["t"].get(metal, [0, 0])
        metals[metal] = {
            "input_kg": kg_from_micrograms(into),
            "recovered_kg": kg_from_micrograms(out),
            "efficiency": share(out, into),
            "target_2027": by_2027,
            "target_2031": by_2031,
            "meets_2027": at_least(out, into, by_2027) if into else None,
            "meets_2031": at_least(out, into, by_2031) if into else None,
        }
    doc = {**st["labels"], "recoveries": st["n"]["sources"], "metals": metals}
    _publish_if_changed(st, fx, RECOVERY, key.split("/", 1)[1], doc)
    return st


HANDLERS = {
    "lot": handle_lot,
    "battery": handle_battery,
    "operator": handle_operator,
    "recycled-content": handle_recycled_content,
    "recovery": handle_recovery,
}


def handle(
    key: str, state: State | None, messages: list[Message], now: int, cfg: Config, fx: Effects
) -> State:
    """Apply ``messages`` (all addressed to ``key``) to its state; return the new state."""
    kind = key.split("/", 1)[0]
    try:
        handler = HANDLERS[kind]
    except KeyError:
        raise ValueError(f"no entity kind {kind!r} (key {key!r})") from None
    return handler(key, state if state is not None else {}, messages, now, cfg, fx)


def due(key: str, state: State, cfg: Config) -> int | None:
    """When (wall ms) ``key`` next needs a tick to raise a waiting alert; None if never."""
    if "since" in state and f"unresolved/{key}" not in state.get("alerts", {}):
        return int(state["since"]) + cfg.grace_ms
    waiting = [int(p[3]) for p in state.get("pending", {}).values()]
    waiting += [int(h[1]) for h in state.get("bulk", {}).values()]
    if waiting:
        return min(waiting) + cfg.grace_ms
    return None


def document(key: str, state: State, now: int, cfg: Config) -> dict[str, Any] | None:
    """The document ``key`` publishes for ``state`` (for read views), without changing it."""
    scratch = copy.deepcopy(state)
    scratch.pop("pub", None)
    fx = Effects()
    handle(key, scratch, [], now, cfg, fx)
    return next((doc for output, _, doc in fx.published if output != ALERTS), None)
